//! The capability a run uploads its own artifacts with (`rota artifact upload`): a run must
//! not hold the agent's token (with it, it could act as the agent), so the coordinator mints,
//! per attempt, `rota-upload.<run id>.<attempt>.<HMAC-SHA256 of both>` and the agent hands it
//! to the run as `ROTA_ARTIFACT_TOKEN`. The tag proves the coordinator made it for that run
//! and attempt; that the attempt still runs is the engine's check at each upload, so the
//! capability dies with its attempt without any state to revoke.
//!
//! The key is 32 random bytes in `<data-dir>/upload.key` (mode 0600), kept across restarts so
//! a run that outlives a coordinator restart can still upload.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;

use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::logs::RunId;

const PREFIX: &str = "rota-upload";

/// Why a capability was refused; the text is what the caller reads.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapabilityError {
    #[error("the artifact capability is malformed: use the ROTA_ARTIFACT_TOKEN the run was given")]
    Malformed,
    #[error("the artifact capability for run {run_id} attempt {attempt} was not made by this coordinator")]
    Forged { run_id: String, attempt: u32 },
}

/// The key capabilities are made and checked with; cheap to clone.
#[derive(Clone)]
pub struct UploadKey(Arc<hmac::Key>);

impl std::fmt::Debug for UploadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UploadKey(..)")
    }
}

impl UploadKey {
    /// The key of `data_dir`, made on first use. Where it cannot be read or written (a full
    /// disk at start), a key for this process only, with a warning: uploads still work until
    /// the next restart.
    pub fn load_or_create(data_dir: &Path) -> UploadKey {
        let path = data_dir.join("upload.key");
        let bytes = match fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => Some(bytes),
            _ => {
                let fresh = random_key();
                let written = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)
                    .and_then(|mut f| f.write_all(&fresh).and_then(|()| f.sync_all()));
                match written {
                    Ok(()) => Some(fresh.to_vec()),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "cannot keep the artifact upload key ({e}): capabilities last until the next restart");
                        None
                    }
                }
            }
        };
        let bytes = bytes.unwrap_or_else(|| random_key().to_vec());
        UploadKey(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }

    /// A key for tests and for a coordinator without a data dir.
    pub fn ephemeral() -> UploadKey {
        UploadKey(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, &random_key())))
    }

    /// The capability of one attempt of one run.
    pub fn mint(&self, run_id: &str, attempt: u32) -> String {
        let tag = hmac::sign(&self.0, message(run_id, attempt).as_bytes());
        format!("{PREFIX}.{run_id}.{attempt}.{}", super::hex(tag.as_ref()))
    }

    /// The run and attempt a capability was made for (checked in constant time).
    pub fn check(&self, capability: &str) -> Result<(RunId, u32), CapabilityError> {
        let mut parts = capability.trim().split('.');
        let (Some(PREFIX), Some(run_id), Some(attempt), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CapabilityError::Malformed);
        };
        let run = RunId::parse(run_id).ok_or(CapabilityError::Malformed)?;
        let attempt: u32 = attempt.parse().map_err(|_| CapabilityError::Malformed)?;
        let tag = unhex(tag).ok_or(CapabilityError::Malformed)?;
        hmac::verify(&self.0, message(run_id, attempt).as_bytes(), &tag).map_err(|_| {
            CapabilityError::Forged {
                run_id: run_id.to_owned(),
                attempt,
            }
        })?;
        Ok((run, attempt))
    }
}

fn message(run_id: &str, attempt: u32) -> String {
    format!("{PREFIX}\0{run_id}\0{attempt}")
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .expect("the system's random source works");
    key
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "0b5c2a47-7d1e-4e4f-9a51-52c7a0c1a001";
    const OTHER: &str = "0b5c2a47-7d1e-4e4f-9a51-52c7a0c1a002";

    #[test]
    fn a_capability_names_its_run_and_attempt_and_nothing_else() {
        let key = UploadKey::ephemeral();
        let cap = key.mint(RUN, 2);
        let (run, attempt) = key.check(&cap).unwrap();
        assert_eq!((run.to_string().as_str(), attempt), (RUN, 2));

        // The same tag under another run or attempt, or another coordinator's key: refused.
        let tag = cap.rsplit('.').next().unwrap();
        for forged in [
            format!("rota-upload.{OTHER}.2.{tag}"),
            format!("rota-upload.{RUN}.3.{tag}"),
        ] {
            assert!(
                matches!(key.check(&forged), Err(CapabilityError::Forged { .. })),
                "{forged}"
            );
        }
        assert!(matches!(
            UploadKey::ephemeral().check(&cap),
            Err(CapabilityError::Forged { .. })
        ));
        for bad in [
            "",
            "rota-upload",
            "x.y.z.w",
            &format!("rota-upload.{RUN}.x.00"),
        ] {
            assert_eq!(key.check(bad), Err(CapabilityError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn the_key_outlives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cap = UploadKey::load_or_create(dir.path()).mint(RUN, 1);
        assert!(UploadKey::load_or_create(dir.path()).check(&cap).is_ok());
        let mode = fs::metadata(dir.path().join("upload.key"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
}
