//! What the coordinator binary does when its PostgreSQL store fails under a batch (the
//! database restarted, the connection was cut): the engine's core has moved on past what was
//! committed, so, crash-only, it starts over from the store, in place: it executes itself again
//! with the same arguments and the same pid, and the new image waits for the database
//! ([`patience`]), takes its own lease back at once (same holder), recovers and serves. Agents
//! reconnect and report the runs they hold; nothing committed is lost, and nothing that was not
//! committed was acknowledged. A coordinator whose lease another one has taken meanwhile steps
//! down instead (exit 75), and a library user of the engine, which never enables this, exits 70
//! as before.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::sync::OnceLock;
use std::time::Duration;

use crate::store::Shared;

/// The arguments to execute again with, once [`enable`]d.
static ARGS: OnceLock<Vec<OsString>> = OnceLock::new();

/// Set in the environment of the image executed again: how many restarts in a row.
const RESTARTS: &str = "ROTA_COORDINATOR_RESTARTS";

/// Set in the environment of the image executed again: the address it listened on, to listen
/// on again (`--listen` with port 0 would pick another port).
const LISTENED: &str = "ROTA_COORDINATOR_LISTENED";

/// The address the coordinator listens on, once bound.
static BOUND: OnceLock<std::net::SocketAddr> = OnceLock::new();

/// Records where this coordinator listens, for an image executed again.
pub fn bound(addr: std::net::SocketAddr) {
    let _ = BOUND.set(addr);
}

/// The address an image executed again listens on: the one its predecessor listened on.
pub fn listen_again() -> Option<std::net::SocketAddr> {
    std::env::var(LISTENED).ok()?.parse().ok()
}

/// Lets a failed store batch restart this process (the `rota-coordinator` binary only).
pub fn enable() {
    let _ = ARGS.set(std::env::args_os().collect());
}

/// How long to wait for the database at start: none normally (a wrong URL or a database that
/// is down is reported at once), two minutes in an image executed again after a failure.
pub fn patience() -> Duration {
    if std::env::var_os(RESTARTS).is_some() {
        Duration::from_secs(120)
    } else {
        Duration::ZERO
    }
}

/// Ends this coordinator after a failed store batch: restarts it in place when enabled and the
/// store is PostgreSQL and still (or perhaps) its lease's; otherwise exits.
pub fn after_store_failure(db: Option<Shared>) -> ! {
    let Some((args, db)) = ARGS.get().zip(db) else {
        std::process::exit(70);
    };
    if crate::store::lease::still_held(&db) == Some(false) {
        eprintln!(
            "rota-coordinator: stepping down from {}: another coordinator took over",
            db.location
        );
        std::process::exit(75);
    }
    let restarts: u32 = std::env::var(RESTARTS)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // A failure that comes back at once (not a passing outage) must not spin: a second a
    // restart in a row, up to half a minute.
    std::thread::sleep(Duration::from_secs(u64::from(restarts.min(30))));
    eprintln!(
        "rota-coordinator: starting over from the store at {} (restart {})",
        db.location,
        restarts + 1
    );
    let mut again = std::process::Command::new("/proc/self/exe");
    again
        .arg0(&args[0])
        .args(&args[1..])
        .env(RESTARTS, (restarts + 1).to_string());
    if let Some(addr) = BOUND.get() {
        again.env(LISTENED, addr.to_string());
    }
    let err = again.exec();
    eprintln!("rota-coordinator: cannot execute itself again: {err}");
    std::process::exit(70);
}
