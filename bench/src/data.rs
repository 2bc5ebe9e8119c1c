//! The W3 payload: a deterministic byte stream where every 8-byte word depends on its position,
//! so a log that is shifted, truncated, duplicated or reordered anywhere fails the check (a
//! stream of zeros would hide every offset bug), plus a streaming checker for it.

use std::io::Write as _;

/// Word `k` of the stream (splitmix64 of the index): cheap, position-dependent, well mixed.
fn word(k: u64) -> u64 {
    let mut z = k.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `out` with the stream's bytes starting at byte `pos`.
pub fn fill_at(pos: u64, out: &mut [u8]) {
    let mut i = 0;
    while i < out.len() {
        let at = pos + i as u64;
        let bytes = word(at / 8).to_le_bytes();
        let from = (at % 8) as usize;
        let n = (8 - from).min(out.len() - i);
        out[i..i + n].copy_from_slice(&bytes[from..from + n]);
        i += n;
    }
}

/// `rota-bench gen BYTES`: writes the first BYTES bytes of the stream to stdout, in 64 KiB
/// writes (a pipe's natural unit), as fast as the reader takes them.
pub fn generate(bytes: u64) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = 0u64;
    while pos < bytes {
        let n = (bytes - pos).min(buf.len() as u64) as usize;
        fill_at(pos, &mut buf[..n]);
        out.write_all(&buf[..n])?;
        pos += n as u64;
    }
    out.flush()?;
    Ok(())
}

/// FNV-1a, 64 bit: a stable fingerprint for the report (the same on every build and machine).
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn value(self) -> u64 {
        self.0
    }
}

/// Checks chunks, in order, against the stream: length, first differing byte, and both
/// fingerprints.
#[derive(Debug, Default)]
pub struct Checker {
    pos: u64,
    first_mismatch: Option<u64>,
    got: Fnv,
    expected: Fnv,
    scratch: Vec<u8>,
}

/// What a [`Checker`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    pub len: u64,
    pub expected_len: u64,
    pub first_mismatch: Option<u64>,
    pub fnv1a64: String,
    pub expected_fnv1a64: String,
}

impl Verdict {
    pub fn exact(&self) -> bool {
        self.len == self.expected_len
            && self.first_mismatch.is_none()
            && self.fnv1a64 == self.expected_fnv1a64
    }
}

impl Checker {
    pub fn update(&mut self, data: &[u8]) {
        self.scratch.resize(data.len(), 0);
        fill_at(self.pos, &mut self.scratch);
        if self.first_mismatch.is_none() && data != self.scratch.as_slice() {
            if let Some(i) = data.iter().zip(&self.scratch).position(|(a, b)| a != b) {
                self.first_mismatch = Some(self.pos + i as u64);
            }
        }
        self.got.update(data);
        self.pos += data.len() as u64;
    }

    /// The verdict against a stream of `expected_len` bytes.
    pub fn finish(mut self, expected_len: u64) -> Verdict {
        let mut pos = 0;
        let mut buf = vec![0u8; 1 << 20];
        while pos < expected_len {
            let n = (expected_len - pos).min(buf.len() as u64) as usize;
            fill_at(pos, &mut buf[..n]);
            self.expected.update(&buf[..n]);
            pos += n as u64;
        }
        Verdict {
            len: self.pos,
            expected_len,
            first_mismatch: self.first_mismatch,
            fnv1a64: format!("{:016x}", self.got.value()),
            expected_fnv1a64: format!("{:016x}", self.expected.value()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_at_any_offset_matches_the_stream_from_zero() {
        let mut whole = vec![0u8; 100];
        fill_at(0, &mut whole);
        for start in [0usize, 1, 7, 8, 13, 64] {
            let mut part = vec![0u8; 100 - start];
            fill_at(start as u64, &mut part);
            assert_eq!(part, whole[start..]);
        }
    }

    #[test]
    fn the_checker_accepts_the_stream_in_any_chunking() {
        let mut whole = vec![0u8; 10_000];
        fill_at(0, &mut whole);
        let mut checker = Checker::default();
        for chunk in whole.chunks(333) {
            checker.update(chunk);
        }
        assert!(checker.finish(10_000).exact());
    }

    #[test]
    fn the_checker_finds_a_shifted_or_short_log() {
        let mut whole = vec![0u8; 10_000];
        fill_at(0, &mut whole);
        let mut shifted = Checker::default();
        shifted.update(&whole[..5000]);
        shifted.update(&whole[5008..]);
        let verdict = shifted.finish(10_000);
        assert!(!verdict.exact());
        assert_eq!(verdict.first_mismatch, Some(5000));

        let mut short = Checker::default();
        short.update(&whole[..9_999]);
        assert!(!short.finish(10_000).exact());
    }
}
