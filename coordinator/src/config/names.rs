//! dsari's rule for names of jobs, job groups, concurrency groups (and our jobsets): they end up
//! in file paths, environment variables and command lines, so the alphabet is small.

/// The rule in words, for error messages.
pub const NAME_RULE: &str = "^[- A-Za-z0-9_+.:@]+$, at most 64 characters, not . or ..";

/// Whether `name` matches `^[- A-Za-z0-9_+.:@]+$`, has at most 64 characters and is not `.`
/// or `..` (dsari's `is_valid_name`).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" -_+.:@".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::is_valid_name;

    #[test]
    fn names_follow_dsari() {
        for ok in [
            "job1",
            "dump-db1",
            "a b",
            "x_y+z.w:v@u",
            "...",
            &"a".repeat(64),
        ] {
            assert!(is_valid_name(ok), "{ok:?}");
        }
        for bad in ["", ".", "..", "bad/name", "tab\there", "é", &"a".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }
}
