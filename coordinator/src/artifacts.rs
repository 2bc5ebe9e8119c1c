//! The artifact content store, beside the logs: `<data-dir>/artifacts/content/<sha256>` holds
//! each distinct content once (content-addressed, so the same dump kept by two runs costs its
//! size once), `<data-dir>/artifacts/partial/<sha256>` a content still arriving. Which run has
//! which file under which path is in the SQL store (`store/artifacts.rs`); this is bytes only.
//!
//! A chunk is written at its offset, so a resent chunk is idempotent, and the content counts
//! as stored only when its last chunk arrived and the whole file hashes to its name. A run's
//! files are listed (and, for retention, deleted) by [`ArtifactStore::run_files`] and
//! [`ArtifactStore::remove_unreferenced`].
//!
//! With a PostgreSQL store each whole content is also copied into the database before it
//! counts as stored, and a coordinator that does not have the file fetches it from there
//! (`logs::archive`), so a dependent run gets its artifacts from whichever coordinator is
//! active.

pub mod capability;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use crate::logs::archive::Archive;

/// Why an artifact chunk was not stored.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact {path}: its content does not hash to {sha256}")]
    Checksum { path: String, sha256: String },
    /// The data dir has no room for it above `--reserve-mib` (RESOURCE_EXHAUSTED for an
    /// upload; the agent stream ends, as for a log chunk, and the agent resends later).
    #[error("artifact {path} not stored: {message}")]
    Full { path: String, message: String },
    #[error("artifact {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Where artifact bytes live.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
    /// Artifact bytes are not written while the filesystem has less free space than this
    /// (half of `--reserve-mib`, as for logs), so the room results need stays.
    reserve: u64,
    /// The database copy, with a PostgreSQL store.
    archive: Option<Arc<Archive>>,
}

impl ArtifactStore {
    pub fn new(root: PathBuf, reserve: u64) -> Self {
        ArtifactStore {
            root,
            reserve,
            archive: None,
        }
    }

    /// Also keeps every whole content in `archive` and fetches it from there when missing.
    pub fn with_archive(mut self, archive: Option<Arc<Archive>>) -> Self {
        self.archive = archive;
        self
    }

    /// Whether `more` bytes fit above the reserve: checked before the first byte of a write
    /// (and by an upload for its whole size), so a full disk stores nothing of it.
    pub fn check_room(&self, path: &str, more: u64) -> Result<(), ArtifactError> {
        // The data dir itself when `artifacts/` does not exist yet. No answer from statvfs
        // is no reason to refuse: the write itself reports a full disk.
        let at = if self.root.exists() {
            self.root.as_path()
        } else {
            self.root.parent().unwrap_or(&self.root)
        };
        let free = crate::datadir::free_bytes(at).unwrap_or(u64::MAX);
        if free < self.reserve.saturating_add(more) {
            return Err(ArtifactError::Full {
                path: path.to_owned(),
                message: format!(
                    "{} has {} KiB free, the reserve is {} KiB",
                    at.display(),
                    free >> 10,
                    self.reserve >> 10
                ),
            });
        }
        Ok(())
    }

    /// The stored content of `sha256` (a checked, lowercase hex digest).
    pub fn content(&self, sha256: &str) -> PathBuf {
        self.root.join("content").join(sha256)
    }

    fn partial(&self, sha256: &str) -> PathBuf {
        self.root.join("partial").join(sha256)
    }

    /// Whether the content is stored whole (here, or in the database).
    pub fn has(&self, sha256: &str, size: u64) -> bool {
        fs::metadata(self.content(sha256)).is_ok_and(|m| m.is_file() && m.len() == size)
            || self.archive.as_ref().is_some_and(|a| {
                a.content_size(sha256)
                    .inspect_err(|e| tracing::warn!("artifact {sha256}: {e}"))
                    .is_ok_and(|s| s == Some(size))
            })
    }

    /// How many bytes of a partial content are held (0 for none); see `ArtifactStatus`.
    pub fn partial_len(&self, sha256: &str, size: u64) -> u64 {
        fs::metadata(self.partial(sha256)).map_or(0, |m| m.len().min(size))
    }

    /// Writes one chunk; returns true once the content is stored whole and checked.
    pub fn write(
        &self,
        path: &str,
        sha256: &str,
        size: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<bool, ArtifactError> {
        if self.has(sha256, size) {
            return Ok(true);
        }
        let io_err = |source| ArtifactError::Io {
            path: path.to_owned(),
            source,
        };
        if offset + data.len() as u64 > self.partial_len(sha256, size) {
            self.check_room(path, data.len() as u64)?;
        }
        let partial = self.partial(sha256);
        for dir in [self.root.join("partial"), self.root.join("content")] {
            fs::create_dir_all(&dir).map_err(io_err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial)
            .map_err(io_err)?;
        file.write_all_at(data, offset).map_err(io_err)?;
        if offset + data.len() as u64 != size {
            return Ok(false);
        }
        if file.metadata().map_err(io_err)?.len() != size
            || sha256_of(&partial).map_err(io_err)? != sha256
        {
            let _ = fs::remove_file(&partial);
            return Err(ArtifactError::Checksum {
                path: path.to_owned(),
                sha256: sha256.to_owned(),
            });
        }
        file.sync_all().map_err(io_err)?;
        // Into the database before it counts as stored: a failure leaves the whole partial
        // file, and the next try copies it again.
        if let Some(archive) = &self.archive {
            archive.store_content(sha256, &partial).map_err(io_err)?;
        }
        fs::rename(&partial, self.content(sha256)).map_err(io_err)?;
        Ok(true)
    }

    /// Drops what arrived of a content whose upload failed: an upload that is refused leaves
    /// nothing behind.
    pub fn discard_partial(&self, sha256: &str) {
        let _ = fs::remove_file(self.partial(sha256));
    }

    /// Opens stored content for reading; content only in the database is fetched into the
    /// data dir first (and checked against its digest).
    pub fn open(&self, sha256: &str) -> io::Result<File> {
        match (File::open(self.content(sha256)), &self.archive) {
            (Err(e), Some(archive)) if e.kind() == io::ErrorKind::NotFound => {
                let Some(size) = archive.content_size(sha256)? else {
                    return Err(e);
                };
                for dir in [self.root.join("partial"), self.root.join("content")] {
                    fs::create_dir_all(&dir)?;
                }
                let partial = self.partial(sha256);
                archive.fetch_content(sha256, size, &partial)?;
                if sha256_of(&partial)? != sha256 {
                    let _ = fs::remove_file(&partial);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "artifact content {sha256} in the database does not hash to its name"
                        ),
                    ));
                }
                fs::rename(&partial, self.content(sha256))?;
                File::open(self.content(sha256))
            }
            (opened, _) => opened,
        }
    }

    /// Copies every stored content into the archive, each checked against its digest
    /// (`rota-coordinator migrate`); returns the contents and bytes copied.
    pub fn archive_all(&self) -> io::Result<(u64, u64)> {
        let Some(archive) = &self.archive else {
            return Ok((0, 0));
        };
        let entries = match fs::read_dir(self.root.join("content")) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(e),
        };
        let (mut contents, mut bytes) = (0, 0);
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_sha256(&name) {
                continue;
            }
            let path = entry.path();
            if sha256_of(&path)? != name {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not hash to its name", path.display()),
                ));
            }
            archive.store_content(&name, &path)?;
            contents += 1;
            bytes += entry.metadata()?.len();
        }
        Ok((contents, bytes))
    }

    /// The content files of a run's artifacts (as the SQL store lists them): what a run
    /// keeps in the data dir besides its logs.
    pub fn run_files<'a>(
        &'a self,
        artifacts: &'a [rota_proto::ArtifactFile],
    ) -> impl Iterator<Item = PathBuf> + 'a {
        artifacts.iter().map(|a| self.content(&a.sha256))
    }

    /// Deletes the content of each digest no run refers to any more (`still_used` answers
    /// from the SQL store): called after a run's artifact rows are deleted.
    pub fn remove_unreferenced(
        &self,
        sha256s: &[String],
        still_used: impl Fn(&str) -> bool,
    ) -> io::Result<()> {
        for sha in sha256s {
            if !still_used(sha) {
                match fs::remove_file(self.content(sha)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                if let Some(archive) = &self.archive {
                    archive.delete_content(sha)?;
                }
            }
        }
        Ok(())
    }
}

pub use rota_proto::digest::{hex, sha256_of};

/// Whether `text` is a lowercase hex SHA-256 (it names a file, so it is checked first).
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_counts_only_when_whole_and_matching_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path().to_path_buf(), 0);
        let data = b"hello artifact";
        let sha = hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
        assert!(!store.write("a.txt", &sha, 14, 0, &data[..5]).unwrap());
        assert!(!store.has(&sha, 14));
        // A resent chunk is idempotent.
        assert!(!store.write("a.txt", &sha, 14, 0, &data[..5]).unwrap());
        assert!(store.write("a.txt", &sha, 14, 5, &data[5..]).unwrap());
        assert_eq!(fs::read(store.content(&sha)).unwrap(), data);

        let wrong = "0".repeat(64);
        let err = store.write("b.txt", &wrong, 3, 0, b"abc").unwrap_err();
        assert!(matches!(err, ArtifactError::Checksum { .. }), "{err}");
        assert!(!store.has(&wrong, 3));
        assert!(is_sha256(&sha) && !is_sha256(&wrong.replace('0', "G")));
    }

    #[test]
    fn below_the_reserve_nothing_of_an_artifact_is_written() {
        let dir = tempfile::tempdir().unwrap();
        // A reserve larger than any disk: every write is below it.
        let store = ArtifactStore::new(dir.path().join("artifacts"), u64::MAX / 2);
        let data = b"hello artifact";
        let sha = hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
        let err = store.write("a.txt", &sha, 14, 0, data).unwrap_err();
        assert!(matches!(err, ArtifactError::Full { .. }), "{err}");
        assert!(err.to_string().contains("the reserve is"), "{err}");
        assert!(!store.has(&sha, 14));
        assert_eq!(store.partial_len(&sha, 14), 0, "no partial file either");
        assert!(!dir.path().join("artifacts").exists());
    }
}
