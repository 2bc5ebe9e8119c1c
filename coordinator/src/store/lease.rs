//! One active coordinator per PostgreSQL database: a lease row in the database, with a fencing
//! epoch that every write transaction checks ([`Lease::fence`]).
//!
//! - A coordinator takes the lease when it is free or expired, raising the epoch; until then it
//!   is a standby and polls twice a second. A standby listens already, but its health says
//!   NOT_SERVING for the services (a load balancer or a Kubernetes readiness probe sends nothing
//!   to it) and it answers every call UNAVAILABLE, naming the active coordinator's address as
//!   the lease last showed it ([`Seen`]).
//! - The active renews the lease every [`RENEW`] on a connection of its own; the lease runs out
//!   [`TTL`] after the last renewal, by the database's clock (one clock for every coordinator).
//!   A paused active stops renewing, and a standby takes over within `TTL` plus a poll. The
//!   active's connections also hold a session advisory lock ([`LOCK_KEY`]): once a killed
//!   active's connections are gone the lock is free, and a standby takes over at its next poll.
//! - Each write transaction of the active reads the epoch `FOR SHARE` first: a taker's epoch
//!   raise waits for a transaction in flight, and a transaction that finds the epoch raised
//!   commits nothing. So an active that was paused (SIGSTOP) and wakes up after a standby took
//!   over cannot write; its batch fails and it exits (the engine is crash-only), as it does when
//!   its renewal finds the lease gone.
//! - The holder is named by host and data dir: a coordinator restarted on the same data dir
//!   takes its own lease back at once, since the data dir's lock proves its predecessor gone.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::Client;

use super::{Result, StoreError};

/// How long the lease lasts after its last renewal.
pub const TTL: Duration = Duration::from_secs(6);
/// How often the active renews it: twice more before it could run out.
pub const RENEW: Duration = Duration::from_millis(1500);
/// How often a standby looks whether the lease is free.
const POLL: Duration = Duration::from_millis(500);

/// The session-level advisory lock the active coordinator's connections hold: free only once
/// every session of the holder is gone, which lets a standby take over without waiting for the
/// lease to lapse. (Not the migrations' key: theirs is a transaction lock taken at start.)
pub const LOCK_KEY: i64 = 7_061_746_174;

/// Takes [`LOCK_KEY`] if no other session holds it; true when this session holds it now.
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock($1)";

/// The database's clock in milliseconds, the one every coordinator's lease is measured by.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The `application_name` of every connection of the coordinator named `holder`: a stable
/// hash (FNV-1a, the same in every build) of the name, which may be longer than the 63
/// bytes PostgreSQL keeps.
pub fn session_name(holder: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in holder.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("rota-coordinator {hash:016x}")
}

/// How long a take waits for the lease row: a holder's transaction in flight holds it (the
/// fence reads it `FOR SHARE`), and one of a paused holder would hold it until it wakes.
const TAKE_LOCK_TIMEOUT: &str = "SET lock_timeout = '1s'";

/// Who claims the lease: what a coordinator tells the database and is told while it waits.
#[derive(Clone)]
pub struct Claim {
    /// Names the coordinator (host and data dir): the same holder takes its own lease back at
    /// once.
    pub holder: String,
    /// Where clients reach it once it is active (a URL; empty: not listening), kept in the
    /// lease for standbys to tell their callers.
    pub address: String,
    /// Called when the lease is lost after it was held.
    pub on_lost: OnLost,
    /// Where a standby keeps the active coordinator it last saw.
    pub seen: Seen,
}

impl Claim {
    /// A claim that listens nowhere and only logs a lost lease (tools and tests).
    pub fn quiet(holder: String) -> Claim {
        Claim {
            holder,
            address: String::new(),
            on_lost: Arc::new(|_: &str, _: &str| {}),
            seen: Seen::default(),
        }
    }
}

/// The active coordinator as a standby last read it from the lease, for its answers ("the
/// active coordinator is at …"); empty until it has looked, and while it holds the lease itself.
#[derive(Clone, Debug, Default)]
pub struct Seen(Arc<Mutex<Option<Active>>>);

/// The holder of the lease, as a standby saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Active {
    pub holder: String,
    /// Where it listens (a URL), or empty when it did not say.
    pub address: String,
}

impl Seen {
    /// The active coordinator last seen, if any.
    pub fn get(&self) -> Option<Active> {
        self.0.lock().map(|a| a.clone()).unwrap_or(None)
    }

    fn set(&self, active: Option<Active>) {
        if let Ok(mut seen) = self.0.lock() {
            *seen = active;
        }
    }
}

/// The lease this coordinator holds.
#[derive(Debug, Clone)]
pub struct Lease {
    pub holder: String,
    pub epoch: i64,
}

impl Lease {
    /// Waits (as a standby) until this coordinator holds the lease of the database `client` is
    /// connected to, keeping `claim.seen` up to date meanwhile; `location` names the database
    /// in messages.
    pub fn acquire(client: &mut Client, claim: &Claim, location: &str) -> Result<Lease> {
        let holder = claim.holder.as_str();
        let take = format!(
            "INSERT INTO rota_lease AS l (id, holder, epoch, expires_at, address) \
             VALUES (1, $1, 1, {NOW_MS} + $2, $4) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, epoch = l.epoch + 1, \
             expires_at = excluded.expires_at, address = excluded.address \
             WHERE l.expires_at < {NOW_MS} OR l.holder = excluded.holder OR $3 \
             RETURNING epoch"
        );
        let expired_holder = format!(
            "SELECT holder FROM rota_lease WHERE id = 1 AND holder <> $1 AND expires_at < {NOW_MS}"
        );
        let end_sessions = format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid() \
             AND EXISTS (SELECT 1 FROM rota_lease WHERE id = 1 AND holder = $2 AND expires_at < {NOW_MS})"
        );
        let ttl = TTL.as_millis() as i64;
        let mut told: Option<String> = None;
        client.batch_execute(TAKE_LOCK_TIMEOUT)?;
        loop {
            // Holding the session lock proves the holder's sessions are all gone (killed,
            // its connections cut): no need to wait for its lease to lapse.
            let alone: bool = client.query_one(TRY_LOCK, &[&LOCK_KEY])?.get(0);
            // A holder whose lease lapsed but whose sessions live on (paused, or cut off from
            // its side only) may be inside a transaction that holds the lease row: its
            // sessions are ended, which aborts that transaction, rather than waited for.
            if let Some(row) = client.query_opt(&expired_holder, &[&holder])? {
                let old: String = row.get(0);
                match client.query_one(&end_sessions, &[&session_name(&old), &old]) {
                    Ok(row) if row.get::<_, i64>(0) > 0 => {
                        tracing::warn!(store = location, holder = %old, sessions = row.get::<_, i64>(0), "ended the sessions of a coordinator whose lease lapsed");
                    }
                    Ok(_) => {}
                    // Another database role, without pg_signal_backend: the take waits for
                    // the paused holder instead (each try bounded by the lock timeout).
                    Err(e) => {
                        tracing::warn!(store = location, holder = %old, "cannot end the sessions of a coordinator whose lease lapsed: {}", super::postgres_message(&e));
                    }
                }
            }
            let taken = match client.query_opt(&take, &[&holder, &ttl, &alone, &claim.address]) {
                Ok(row) => row,
                // The row is locked by a transaction in flight: look again at the next poll.
                Err(e) if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) => None,
                Err(e) => return Err(e.into()),
            };
            if let Some(row) = taken {
                client.batch_execute("RESET lock_timeout")?;
                let epoch: i64 = row.get(0);
                claim.seen.set(None);
                if told.is_some() {
                    tracing::warn!(
                        store = location,
                        epoch,
                        "took over the store's lease: active now"
                    );
                } else {
                    tracing::info!(store = location, epoch, "holding the store's lease");
                }
                return Ok(Lease {
                    holder: holder.to_owned(),
                    epoch,
                });
            }
            let active = client
                .query_opt("SELECT holder, address FROM rota_lease WHERE id = 1", &[])?
                .map(|r| Active {
                    holder: r.get(0),
                    address: r.get(1),
                });
            let other = active.as_ref().map(|a| a.holder.clone());
            claim.seen.set(active);
            if other != told {
                let by = other.as_deref().unwrap_or("?");
                tracing::warn!(store = location, active = by, "standby: another coordinator holds the store's lease; taking over when it lapses");
                eprintln!("rota-coordinator: standby: {by} is active on {location}; waiting for its lease to lapse");
                told = other;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Keeps the lease renewed from a thread of its own, on a connection of its own. When a
    /// renewal finds the lease taken, or none succeeds for a whole `TTL`, this coordinator is
    /// no longer the active one: it says so and exits, before a standby's writes could meet
    /// its own (its transactions are fenced in any case).
    pub fn keep(&self, config: postgres::Config, location: String, on_lost: OnLost) -> Keeper {
        let lease = self.clone();
        let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lost_flag = lost.clone();
        let step_down = move |location: &str, why: &str| {
            lost_flag.store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::error!(store = location, "no longer the active coordinator: {why}");
            on_lost(location, why);
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let renew = format!(
            "UPDATE rota_lease SET expires_at = {NOW_MS} + $3 WHERE id = 1 AND holder = $1 AND epoch = $2"
        );
        let spawned = std::thread::Builder::new()
            .name("rota-lease".into())
            .spawn(move || {
                let ttl = TTL.as_millis() as i64;
                let mut client: Option<Client> = None;
                // Whether this keeper's own connection holds the session lock (the store's
                // connection may hold it instead, from the takeover).
                let mut locked = false;
                let mut renewed = Instant::now();
                loop {
                    std::thread::sleep(RENEW);
                    if client.as_ref().is_none_or(Client::is_closed) {
                        client = config.connect(postgres::NoTls).ok();
                        locked = false;
                    }
                    if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                        // The store was closed: hand the lease over at once, not a TTL later.
                        if let Some(c) = client.as_mut() {
                            let _ = c.execute(Lease::RELEASE, &[&lease.holder, &lease.epoch]);
                        }
                        return;
                    }
                    let outcome = client
                        .as_mut()
                        .map(|c| c.execute(&renew, &[&lease.holder, &lease.epoch, &ttl]));
                    match outcome {
                        Some(Ok(1)) => {
                            renewed = Instant::now();
                            // Taken over by expiry, the session lock may still be the paused
                            // ex-active's; hold it once it is free, so the next standby takes
                            // over at once when this coordinator dies.
                            if !locked {
                                if let Some(c) = client.as_mut() {
                                    locked = c
                                        .query_one(TRY_LOCK, &[&LOCK_KEY])
                                        .map(|r| r.get(0))
                                        .unwrap_or(false);
                                }
                            }
                        }
                        Some(Ok(_)) => {
                            step_down(&location, "another coordinator took the lease");
                            return;
                        }
                        Some(Err(e)) => {
                            tracing::warn!(store = %location, "cannot renew the store's lease: {e}");
                            client = None;
                        }
                        None => tracing::warn!(store = %location, "cannot reach the database to renew the store's lease"),
                    }
                    if renewed.elapsed() >= TTL {
                        step_down(&location, "the lease ran out without a renewal");
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            lost.store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::error!(holder = %self.holder, "cannot start the lease thread: {e}");
        }
        Keeper { stop, lost }
    }

    /// Lets the lease lapse at once (the store is closed): a standby need not wait a `TTL`.
    pub const RELEASE: &'static str =
        "UPDATE rota_lease SET expires_at = 0 WHERE id = 1 AND holder = $1 AND epoch = $2";

    /// The SQL a write transaction of the active runs first: the current epoch, read-locked
    /// until the transaction ends.
    pub const FENCE: &'static str = "SELECT epoch FROM rota_lease WHERE id = 1 FOR SHARE";

    /// Whether the epoch a transaction read is still this lease's (and its keeper has not
    /// found it lost).
    pub fn fence(&self, found: Option<i64>, keeper: &Keeper, location: &str) -> Result<()> {
        let lost = keeper.lost.load(std::sync::atomic::Ordering::SeqCst);
        match found {
            Some(epoch) if epoch == self.epoch && !lost => Ok(()),
            found => Err(StoreError::Fenced {
                location: location.to_owned(),
                mine: self.epoch,
                found: found.unwrap_or(0),
            }),
        }
    }
}

/// Whether the lease in `db` is still this coordinator's epoch, asked on a connection of its
/// own; None when the database cannot be asked now.
pub fn still_held(db: &super::Shared) -> Option<bool> {
    let mut config = db.config.clone();
    config.connect_timeout(Duration::from_secs(2));
    let mut client = config.connect(postgres::NoTls).ok()?;
    let epoch: Option<i64> = client
        .query_opt("SELECT epoch FROM rota_lease WHERE id = 1", &[])
        .ok()?
        .map(|r| r.get(0));
    Some(epoch == Some(db.epoch) && !db.lost.load(std::sync::atomic::Ordering::SeqCst))
}

/// Renews the lease while it lives; dropped with the store, it stops renewing and releases
/// the lease, so a standby takes over at its next poll.
#[derive(Debug)]
pub struct Keeper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Set when a renewal found the lease gone: no transaction begins after that.
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Keeper {
    /// The flag a renewal sets when it finds the lease gone, for other writers that fence
    /// with this lease (the log archive).
    pub fn lost_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.lost.clone()
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What a coordinator does when its lease is found lost (after its transactions are already
/// refused): the coordinator exits (see [`exit_on_lost`]); a library user may only log.
pub type OnLost = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// A coordinator that lost its lease is no longer the active one: it exits, and its
/// supervisor (systemd, Kubernetes) starts it again as a standby. Exits 75 (EX_TEMPFAIL).
pub fn exit_on_lost() -> OnLost {
    Arc::new(|location: &str, why: &str| {
        eprintln!("rota-coordinator: stepping down from {location}: {why}");
        std::process::exit(75);
    })
}
