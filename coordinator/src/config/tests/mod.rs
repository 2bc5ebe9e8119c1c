//! Config files as a user writes them: the examples, every error message, expansion, defaults
//! and the RunSpec a job becomes. Shared helpers live here.

mod dsari;
mod errors;
mod jobs;
mod notify;

use std::path::{Path, PathBuf};

use super::*;

fn load(path: &str, content: &str) -> Definitions {
    load_str(path, content).unwrap_or_else(|e| panic!("{e}"))
}

fn error(path: &str, content: &str) -> String {
    match load_str(path, content) {
        Ok(_) => panic!("{path} was accepted:\n{content}"),
        Err(e) => e.to_string(),
    }
}

fn job<'a>(defs: &'a Definitions, name: &str) -> &'a JobDef {
    defs.jobs
        .iter()
        .find(|j| j.name == name)
        .unwrap_or_else(|| panic!("no job {name}"))
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}
