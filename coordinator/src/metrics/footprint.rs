//! What the data dir holds on disk, for `rota status` and `/metrics` alike (one measure, so
//! the two never disagree): the store's files, the artifact content, the free space.
//!
//! Each is a few `stat`s (the artifact content is one directory listing: one file per
//! distinct content, so its cost grows with the artifacts kept, never with the runs). Log
//! bytes are not measured here: the engine keeps that count as runs finish and are pruned
//! (a walk of every run's log directory would grow with the runs).

use std::path::Path;

/// Bytes on disk, as of one measure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// `rota.db` and its `-wal` file.
    pub store_bytes: u64,
    /// Stored artifact content (`artifacts/content/*`, each distinct content once).
    pub artifact_bytes: u64,
    /// What an unprivileged writer may still use on the data dir's filesystem.
    pub free_bytes: u64,
}

/// Measures `data_dir` now; a file that cannot be read counts 0 (a scrape or a status never
/// fails for it).
pub fn measure(data_dir: &Path) -> Footprint {
    let file_len = |name: &str| std::fs::metadata(data_dir.join(name)).map_or(0, |m| m.len());
    let content = data_dir.join("artifacts").join("content");
    let artifact_bytes = std::fs::read_dir(content).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    });
    Footprint {
        store_bytes: file_len("rota.db") + file_len("rota.db-wal"),
        artifact_bytes,
        free_bytes: crate::datadir::free_bytes(data_dir).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_store_files_and_each_stored_content() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("rota.db"), [0u8; 100]).unwrap();
        std::fs::write(d.join("rota.db-wal"), [0u8; 20]).unwrap();
        std::fs::create_dir_all(d.join("artifacts/content")).unwrap();
        std::fs::create_dir_all(d.join("artifacts/partial")).unwrap();
        std::fs::write(d.join("artifacts/content/aa"), [0u8; 7]).unwrap();
        std::fs::write(d.join("artifacts/content/bb"), [0u8; 5]).unwrap();
        // Still arriving: not held yet.
        std::fs::write(d.join("artifacts/partial/cc"), [0u8; 1000]).unwrap();
        let f = measure(d);
        assert_eq!(f.store_bytes, 120);
        assert_eq!(f.artifact_bytes, 12);
        assert!(f.free_bytes > 0);
        assert_eq!(measure(&d.join("missing")).artifact_bytes, 0);
    }
}
