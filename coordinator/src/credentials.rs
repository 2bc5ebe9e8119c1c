//! `rota-coordinator --credentials FILE`: who may call what, one entry per token holder.
//!
//! ```yaml
//! - name: farm            # shown in logs, and later in who-did-what
//!   role: agent           # agent: AgentService.Connect only
//!   token_file: agent.token
//! - name: dashboard
//!   role: read            # list, show, logs, wait, watch
//!   token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! - name: alice
//!   role: admin           # everything ControlService offers
//!   token_file: /etc/rota/alice.token
//! ```
//!
//! Each entry gives its token either as a file (first line, as `--token-file` reads it; a
//! relative path is relative to the credentials file) or as the SHA-256 of the token in hex
//! (`printf %s "$TOKEN" | sha256sum`), so the file itself holds no secret.

use std::path::Path;

use anyhow::Context as _;
use rota_proto::access::{read_token, Credential, Credentials, Role};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    role: String,
    token_sha256: Option<String>,
    token_file: Option<std::path::PathBuf>,
}

/// Reads and checks a credentials file. Errors are one line naming the file and the entry.
pub fn load(path: &Path) -> anyhow::Result<Credentials> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read credentials file {}", path.display()))?;
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> anyhow::Result<Credentials> {
    let file = path.display();
    let entries: Vec<Entry> = serde_norway::from_str(text).map_err(|err| {
        anyhow::anyhow!(
            "{file}: {} (expected a list of {{name, role, token_sha256 or token_file}})",
            one_line(&err.to_string())
        )
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut list = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let at = format!("{file}: entry {} ({:?})", i + 1, entry.name);
        let role = Role::parse(&entry.role).with_context(|| at.clone())?;
        let credential = match (entry.token_sha256, entry.token_file) {
            (Some(hex), None) => Credential::with_sha256_hex(&entry.name, role, &hex),
            (None, Some(token_file)) => {
                let token = read_token(&dir.join(token_file))
                    .map_err(anyhow::Error::msg)
                    .with_context(|| at.clone())?;
                Credential::with_token(&entry.name, role, &token)
            }
            _ => anyhow::bail!("{at}: give exactly one of token_sha256 and token_file"),
        };
        list.push(credential.with_context(|| at.clone())?);
    }
    Credentials::new(list).with_context(|| file.to_string())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        format!(
            "{:#}",
            parse(Path::new("/etc/rota/creds.yaml"), text).unwrap_err()
        )
    }

    #[test]
    fn a_file_of_three_roles_is_read_with_token_files_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent.token"), "agent-secret\n").unwrap();
        let file = dir.path().join("creds.yaml");
        std::fs::write(
            &file,
            format!(
                "- {{name: farm, role: agent, token_file: agent.token}}\n\
                 - {{name: ci, role: read, token_sha256: {}}}\n\
                 - {{name: alice, role: admin, token_file: {}}}\n",
                "a".repeat(64),
                dir.path().join("agent.token").display()
            ),
        )
        .unwrap();
        // Same token file twice: the two credentials would be one token with two roles.
        let message = format!("{:#}", load(&file).unwrap_err());
        assert!(message.contains("have the same token"), "{message}");

        std::fs::write(dir.path().join("alice.token"), "alice-secret\n").unwrap();
        std::fs::write(
            &file,
            "- {name: farm, role: agent, token_file: agent.token}\n\
             - {name: alice, role: admin, token_file: alice.token}\n",
        )
        .unwrap();
        let creds = load(&file).unwrap();
        let connect = creds
            .check(
                "/rota.v1.AgentService/Connect",
                Some(b"Bearer agent-secret"),
            )
            .unwrap();
        assert_eq!((&*connect.name, connect.role), ("farm", Role::Agent));
        let submit = creds
            .check(
                "/rota.v1.ControlService/Submit",
                Some(b"Bearer alice-secret"),
            )
            .unwrap();
        assert_eq!((&*submit.name, submit.role), ("alice", Role::Admin));
    }

    #[test]
    fn mistakes_are_one_line_naming_the_file_and_the_entry() {
        let e = err("- {name: x, role: root, token_sha256: abc}\n");
        assert!(e.contains("creds.yaml: entry 1 (\"x\")"), "{e}");
        assert!(e.contains("role must be agent, read or admin"), "{e}");
        let e = err("- {name: x, role: read}\n");
        assert!(
            e.contains("exactly one of token_sha256 and token_file"),
            "{e}"
        );
        let e = err("- {name: x, role: read, token_sha256: abc}\n");
        assert!(e.contains("64 hex digits"), "{e}");
        let e = err("- {name: x, role: read, token: abc}\n");
        assert!(e.contains("creds.yaml") && e.contains("token"), "{e}");
        let e = err("- {name: x, role: read, token_file: missing.token}\n");
        assert!(e.contains("/etc/rota/missing.token"), "{e}");
        assert!(err("[]").contains("no credentials"));
        for message in [
            err("- {name: x, role: root, token_sha256: abc}\n"),
            err("not: [a list"),
        ] {
            assert_eq!(message.lines().count(), 1, "{message}");
        }
    }
}
