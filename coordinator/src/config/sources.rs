//! A config as dsari reads it: one file plus the files of its `config_d` directory, merged.
//!
//! dsari's `config_d` (default: `config.d` beside the config) holds more YAML/JSON files, all
//! `*.yaml` in name order, then all `*.json` in name order, each merged over the result so far:
//! mappings key by key (so a file in `config.d` adds jobs to `jobs`), anything else replaced.
//! rota reads the directory on the side that has the file (the CLI for `rota apply`, the
//! coordinator for `--config` and SIGHUP) and sends the texts; the merge and every check happen
//! in [`super::load_sources`], so each error still names the file it is in.

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::node::Node;

/// One file of a config: its path as the user named it (for messages) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: String,
    pub content: String,
}

/// Reads the config file at `path` and the files of its `config_d` directory, in merge order
/// (the file itself first). A relative `config_d` is relative to the file's directory. A
/// directory that does not exist contributes nothing, as in dsari.
pub fn read_sources(path: &Path) -> Result<Vec<SourceFile>, ConfigError> {
    let main = read(path)?;
    let dir = match config_d_key(&main)? {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                parent(path).join(dir)
            }
        }
        None => parent(path).join("config.d"),
    };
    let mut sources = vec![main];
    if dir.is_dir() {
        let listing = std::fs::read_dir(&dir).map_err(|error| ConfigError::Read {
            path: dir.display().to_string(),
            error,
        })?;
        let mut names: Vec<PathBuf> = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|error| ConfigError::Read {
                path: dir.display().to_string(),
                error,
            })?;
            if entry.path().is_file() {
                names.push(entry.path());
            }
        }
        names.sort();
        for ext in ["yaml", "json"] {
            for file in names
                .iter()
                .filter(|f| f.extension().is_some_and(|e| e == ext))
            {
                sources.push(read(file)?);
            }
        }
    }
    Ok(sources)
}

fn read(path: &Path) -> Result<SourceFile, ConfigError> {
    let shown = path.display().to_string();
    let content = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: shown.clone(),
        error,
    })?;
    Ok(SourceFile {
        path: shown,
        content,
    })
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The top-level `config_d` of the main file, if it is a string (a wrong type is reported by
/// validation later, with the file's other errors).
fn config_d_key(main: &SourceFile) -> Result<Option<String>, ConfigError> {
    Ok(match parse(main)? {
        Node::Map(entries) => entries.into_iter().find_map(|(k, v)| match v {
            Node::String(dir) if k == "config_d" => Some(dir),
            _ => None,
        }),
        _ => None,
    })
}

/// Parses one file: JSON for `.json`, YAML (which also reads JSON) for anything else.
pub(super) fn parse(file: &SourceFile) -> Result<Node, ConfigError> {
    let is_json = Path::new(&file.path)
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    let parsed: Result<Node, String> = if is_json {
        serde_json::from_str(&file.content).map_err(|e| e.to_string())
    } else {
        serde_norway::from_str(&file.content).map_err(|e| e.to_string())
    };
    parsed.map_err(|message| ConfigError::Syntax {
        path: file.path.clone(),
        message,
    })
}

/// dsari's `dict_merge(base, over)`: a mapping in both merges key by key (new keys go last, so
/// jobs keep file order); anything else in `over` replaces what `base` had.
pub(super) fn merge(base: Node, over: Node) -> Node {
    match (base, over) {
        (Node::Map(mut entries), Node::Map(over)) => {
            for (key, value) in over {
                match entries.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, old)) => {
                        let previous = std::mem::replace(old, Node::Null);
                        *old = merge(previous, value);
                    }
                    None => entries.push((key, value)),
                }
            }
            Node::Map(entries)
        }
        (_, over) => over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, Node)]) -> Node {
        Node::Map(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn mappings_merge_key_by_key_and_the_rest_is_replaced() {
        let s = |t: &str| Node::String(t.into());
        let base = map(&[("jobs", map(&[("a", s("1"))])), ("data_dir", s("/old"))]);
        let over = map(&[
            ("jobs", map(&[("b", s("2")), ("a", s("3"))])),
            ("data_dir", Node::Seq(vec![])),
        ]);
        assert_eq!(
            merge(base, over),
            map(&[
                ("jobs", map(&[("a", s("3")), ("b", s("2"))])),
                ("data_dir", Node::Seq(vec![])),
            ])
        );
    }
}
