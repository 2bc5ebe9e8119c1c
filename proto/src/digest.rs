//! SHA-256 of artifact files, one implementation for the agent (what it uploads), the CLI
//! (`rota artifact upload`) and the coordinator (what it verifies), so the three always agree
//! on the digest's spelling: lowercase hex.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The SHA-256 of a file's content, read in 1 MiB chunks (artifacts can be large).
pub fn sha256_of(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex(ctx.finish().as_ref()))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
