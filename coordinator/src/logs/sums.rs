//! What a finished attempt's log must read back as: each stream's length and the CRC-32C of
//! every [`SEGMENT`] of it, recorded in `<attempt>.sums` beside the log files when the result
//! is accepted, and checked on every read. A log file deleted, truncated, appended to or
//! changed in place then reads as an error naming the run, never as wrong bytes.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::crc32c::crc32c;
use super::{read_at, Stream};

/// Bytes per checksummed segment: a read checks whole segments, so this bounds the extra
/// bytes read to serve a small range.
pub const SEGMENT: u64 = 1 << 20;

const MAGIC: &str = "rota-log-sums 1";

/// One stream's recorded length and segment checksums.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSums {
    /// Bytes stored.
    pub len: u64,
    /// Bytes the agent reported (more than stored when the log was capped).
    pub received: u64,
    pub crcs: Vec<u32>,
}

impl StreamSums {
    /// Reads `path` (missing: empty) segment by segment.
    pub fn of_file(path: &Path) -> io::Result<StreamSums> {
        let mut sums = StreamSums::default();
        loop {
            let data = read_at(path, sums.len, SEGMENT as usize)?;
            if data.is_empty() {
                return Ok(sums);
            }
            sums.len += data.len() as u64;
            sums.received = sums.len;
            sums.crcs.push(crc32c(&data));
            if (data.len() as u64) < SEGMENT {
                return Ok(sums);
            }
        }
    }
}

/// Sums kept up as a file is appended to, so finishing a big log need not read it back.
/// Only valid while every write so far was an append at `len` since the file was empty.
#[derive(Debug, Clone, Default)]
pub struct Running {
    sums: StreamSums,
    /// CRC of the last, unfinished segment (its bytes: `len % SEGMENT`).
    open_crc: u32,
}

impl Running {
    /// Bytes covered so far.
    pub fn covered(&self) -> u64 {
        self.sums.len
    }

    /// Adds bytes appended at [`Self::covered`].
    pub fn append(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let in_segment = self.sums.len % SEGMENT;
            let n = ((SEGMENT - in_segment) as usize).min(data.len());
            self.open_crc = super::crc32c::crc32c_append(self.open_crc, &data[..n]);
            self.sums.len += n as u64;
            data = &data[n..];
            if self.sums.len.is_multiple_of(SEGMENT) {
                self.sums.crcs.push(self.open_crc);
                self.open_crc = 0;
            }
        }
    }

    /// The sums of everything appended.
    pub fn finish(&self) -> StreamSums {
        let mut sums = self.sums.clone();
        if !sums.len.is_multiple_of(SEGMENT) {
            sums.crcs.push(self.open_crc);
        }
        sums.received = sums.len;
        sums
    }
}

/// Both streams of one attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sums {
    pub stdout: StreamSums,
    pub stderr: StreamSums,
}

impl Sums {
    pub fn stream(&self, s: Stream) -> &StreamSums {
        match s {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }

    pub(crate) fn encode(&self) -> String {
        let mut out = format!("{MAGIC} segment={SEGMENT}\n");
        for s in [Stream::Stdout, Stream::Stderr] {
            let sums = self.stream(s);
            out.push_str(&format!("{} {} {}", s.ext(), sums.len, sums.received));
            for crc in &sums.crcs {
                out.push_str(&format!(" {crc:08x}"));
            }
            out.push('\n');
        }
        out
    }

    pub(crate) fn decode(text: &str) -> Option<Sums> {
        let mut lines = text.lines();
        if lines.next()? != format!("{MAGIC} segment={SEGMENT}") {
            return None;
        }
        let mut sums = Sums::default();
        for (s, line) in [Stream::Stdout, Stream::Stderr].into_iter().zip(&mut lines) {
            let mut words = line.split(' ');
            if words.next()? != s.ext() {
                return None;
            }
            let len: u64 = words.next()?.parse().ok()?;
            let received: u64 = words.next()?.parse().ok()?;
            let crcs = words
                .map(|w| u32::from_str_radix(w, 16).ok())
                .collect::<Option<Vec<u32>>>()?;
            if crcs.len() as u64 != len.div_ceil(SEGMENT) {
                return None;
            }
            let target = match s {
                Stream::Stdout => &mut sums.stdout,
                Stream::Stderr => &mut sums.stderr,
            };
            *target = StreamSums {
                len,
                received,
                crcs,
            };
        }
        Some(sums)
    }

    /// Writes `path` durably: a temporary file, synced, renamed over it, the directory synced.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("sums.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(self.encode().as_bytes())?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// The recorded sums; None when none were recorded (a live attempt, or a log older than
    /// checksums). A file that does not parse is reported as damaged by the caller.
    pub fn load(path: &Path) -> io::Result<Option<Result<Sums, ()>>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(Sums::decode(&text).ok_or(()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(Some(Err(()))),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_survive_encoding_and_cover_every_segment() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("1.stdout");
        std::fs::write(&log, vec![7u8; SEGMENT as usize * 2 + 5]).unwrap();
        let sums = Sums {
            stdout: StreamSums::of_file(&log).unwrap(),
            stderr: StreamSums::of_file(&dir.path().join("1.stderr")).unwrap(),
        };
        assert_eq!(sums.stdout.len, SEGMENT * 2 + 5);
        assert_eq!(sums.stdout.crcs.len(), 3);
        assert_eq!(sums.stderr, StreamSums::default());
        let path = dir.path().join("1.sums");
        sums.write(&path).unwrap();
        assert_eq!(Sums::load(&path).unwrap(), Some(Ok(sums)));
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(Sums::load(&path).unwrap(), Some(Err(())));
    }

    #[test]
    fn running_sums_of_appends_equal_the_sums_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("1.stdout");
        let data: Vec<u8> = (0..SEGMENT * 3 + 11).map(|i| (i % 253) as u8).collect();
        std::fs::write(&log, &data).unwrap();
        let mut running = Running::default();
        for piece in data.chunks(300_007) {
            running.append(piece);
        }
        assert_eq!(running.finish(), StreamSums::of_file(&log).unwrap());
    }
}
