//! Reading a config file: JSON for `.json`, YAML (which also reads JSON) for anything else.

use std::path::Path;

use super::error::ConfigError;
use super::model::Definitions;
use super::node::Node;
use super::validate;

/// Reads, parses and validates the config file at `path`.
pub fn load_file(path: &Path) -> Result<Definitions, ConfigError> {
    let shown = path.display().to_string();
    let content = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: shown.clone(),
        error,
    })?;
    load_str(&shown, &content)
}

/// Parses and validates `content`; `path_for_messages` picks the format (by extension), names
/// the file in errors and gives the default jobset (its stem). `rota apply` uses this to check a
/// file the coordinator receives as text.
pub fn load_str(path_for_messages: &str, content: &str) -> Result<Definitions, ConfigError> {
    let is_json = Path::new(path_for_messages)
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    let parsed: Result<Node, String> = if is_json {
        serde_json::from_str(content).map_err(|e| e.to_string())
    } else {
        serde_norway::from_str(content).map_err(|e| e.to_string())
    };
    let doc = parsed.map_err(|message| ConfigError::Syntax {
        path: path_for_messages.into(),
        message,
    })?;
    validate::build(path_for_messages, doc)
}
