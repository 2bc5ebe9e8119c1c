//! The per-run log cap (`max_log_bytes`): one chatty run must not fill the disk, yet the start
//! and the end of its output are what a person reads. A stream keeps its first half of the cap
//! in its log file as it arrives; bytes past that go round a ring file of the other half, so
//! the ring always holds the latest ones. When the attempt finishes, the file becomes head,
//! a marker saying how much was cut (`[rota: N bytes cut]`), then the tail in order.
//!
//! The ring file is a 16-byte header (the stream's received length in the agent's offsets, and
//! the cap it was written under) followed by the ring. Offsets agents send and are told stay
//! the agent's: a resent chunk lands on the same ring positions, so it stays idempotent.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

const HEADER: u64 = 16;

/// (head, tail) byte counts of a cap.
pub fn split(cap: u64) -> (u64, u64) {
    let head = cap / 2;
    (head, cap - head)
}

/// A stream's ring of latest bytes.
#[derive(Debug)]
pub struct Ring {
    file: File,
    /// Received length, in agent offsets.
    end: u64,
    cap: u64,
}

impl Ring {
    /// Opens an existing ring; None when the stream never went past its head.
    pub fn open(path: &Path) -> io::Result<Option<Ring>> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut header = [0u8; HEADER as usize];
        file.read_exact_at(&mut header, 0)?;
        let end = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
        let cap = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
        Ok(Some(Ring { file, end, cap }))
    }

    /// A new ring for a stream whose head (under `cap`) is full.
    pub fn create(path: &Path, cap: u64) -> io::Result<Ring> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)?;
        let ring = Ring {
            file,
            end: split(cap).0,
            cap,
        };
        ring.write_header()?;
        Ok(ring)
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    pub fn cap(&self) -> u64 {
        self.cap
    }

    fn write_header(&self) -> io::Result<()> {
        let mut header = [0u8; HEADER as usize];
        header[..8].copy_from_slice(&self.end.to_le_bytes());
        header[8..].copy_from_slice(&self.cap.to_le_bytes());
        self.file.write_all_at(&header, 0)
    }

    /// Writes `data`, which starts at agent offset `pos` (at or past the head, at most the
    /// received end). Only its last tail-length bytes can matter, and none older than the
    /// ring already holds (they would overwrite newer ones).
    pub fn write(&mut self, pos: u64, data: &[u8]) -> io::Result<()> {
        let (head, tail) = split(self.cap);
        let oldest = self.end.saturating_sub(tail).max(head);
        let skip = (data.len() as u64)
            .saturating_sub(tail)
            .max(oldest.saturating_sub(pos))
            .min(data.len() as u64);
        let (mut pos, mut data) = (pos + skip, &data[skip as usize..]);
        while !data.is_empty() {
            let at = (pos - head) % tail;
            let n = ((tail - at) as usize).min(data.len());
            self.file.write_all_at(&data[..n], HEADER + at)?;
            pos += n as u64;
            data = &data[n..];
        }
        if pos > self.end {
            self.end = pos;
            self.write_header()?;
        }
        Ok(())
    }

    /// Appends the marker and the tail in order to `main` (which holds exactly the head; a
    /// previous, interrupted assembly is cut back first) and syncs it. Returns the bytes cut.
    pub fn assemble_into(&self, main: &File) -> io::Result<u64> {
        let (head, tail) = split(self.cap);
        let past_head = self.end - head;
        let (cut, start, kept) = if past_head <= tail {
            (0, 0, past_head)
        } else {
            (past_head - tail, past_head % tail, tail)
        };
        let mut ring = vec![0u8; kept as usize];
        self.file.read_exact_at(&mut ring, HEADER)?;
        let mut out = Vec::with_capacity(ring.len() + 40);
        if cut > 0 {
            out.extend_from_slice(format!("\n[rota: {cut} bytes cut]\n").as_bytes());
        }
        out.extend_from_slice(&ring[start as usize..]);
        out.extend_from_slice(&ring[..start as usize]);
        main.set_len(head)?;
        main.write_all_at(&out, head)?;
        main.sync_data()?;
        Ok(cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capped(cap: u64, chunks: &[&[u8]]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let main_path = dir.path().join("1.stdout");
        let main = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&main_path)
            .unwrap();
        let (head, _) = split(cap);
        let mut ring: Option<Ring> = None;
        let mut pos = 0u64;
        for chunk in chunks {
            let mut data = *chunk;
            if pos < head {
                let n = ((head - pos) as usize).min(data.len());
                main.write_all_at(&data[..n], pos).unwrap();
                pos += n as u64;
                data = &data[n..];
            }
            if !data.is_empty() {
                let r = ring.get_or_insert_with(|| {
                    Ring::create(&dir.path().join("1.stdout.tail"), cap).unwrap()
                });
                r.write(pos, data).unwrap();
                pos += data.len() as u64;
            }
        }
        if let Some(r) = &ring {
            let reopened = Ring::open(&dir.path().join("1.stdout.tail"))
                .unwrap()
                .unwrap();
            assert_eq!((reopened.end(), reopened.cap()), (r.end(), r.cap()));
            reopened.assemble_into(&main).unwrap();
        }
        std::fs::read(&main_path).unwrap()
    }

    #[test]
    fn a_stream_within_its_cap_is_kept_whole() {
        assert_eq!(capped(10, &[b"abc", b"defgh", b"ij"]), b"abcdefghij");
        assert_eq!(capped(10, &[b"abcdefg"]), b"abcdefg");
    }

    #[test]
    fn a_longer_stream_keeps_head_and_tail_around_a_marker() {
        let data: Vec<u8> = (b'a'..=b'z').collect();
        let want = b"abcde\n[rota: 16 bytes cut]\nvwxyz".to_vec();
        assert_eq!(capped(10, &[&data]), want);
        let pieces: Vec<&[u8]> = data.chunks(3).collect();
        assert_eq!(capped(10, &pieces), want);
        let pieces: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(capped(10, &pieces), want);
    }
}
