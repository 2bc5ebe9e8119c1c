//! Reading a config: one file, or a file and its `config_d` files merged (`sources.rs`).

use std::path::Path;

use super::error::ConfigError;
use super::model::Definitions;
use super::sources::{self, read_sources, SourceFile};
use super::validate;

/// Reads, parses and validates the config file at `path` with its `config_d` files.
pub fn load_file(path: &Path) -> Result<Definitions, ConfigError> {
    load_sources(&read_sources(path)?)
}

/// Parses and validates `content`; `path_for_messages` picks the format (by extension), names
/// the file in errors and gives the default jobset (its stem).
pub fn load_str(path_for_messages: &str, content: &str) -> Result<Definitions, ConfigError> {
    load_sources(&[SourceFile {
        path: path_for_messages.into(),
        content: content.into(),
    }])
}

/// Parses every file (a syntax error names its file), merges them in order as dsari does and
/// validates the result. The first file names the config in later errors and gives the
/// default jobset. `rota apply` and the coordinator's `--config` both end here.
pub fn load_sources(files: &[SourceFile]) -> Result<Definitions, ConfigError> {
    let Some((main, rest)) = files.split_first() else {
        return Err(ConfigError::Syntax {
            path: String::new(),
            message: "no config file given".into(),
        });
    };
    let mut doc = sources::parse(main)?;
    for file in rest {
        doc = sources::merge(doc, sources::parse(file)?);
    }
    validate::build(&main.path, doc)
}
