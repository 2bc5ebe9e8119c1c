//! `notify`: webhooks at the top level and per job, checked like every other key.

use super::*;
use crate::notify::{Event, Format};

#[test]
fn notify_lists_are_read_at_the_top_and_per_job() {
    let yaml = "notify:\n  - url: https://hooks.example/rota\n    events: [failure, jobset_finished]\n    secret_file: /etc/rota/hook.secret\njobs:\n  build:\n    command: make\n    notify:\n      - {url: 'http://chat.example/in', format: slack, events: [any]}\n  test:\n    command: make test\n";
    let defs = load("c.yaml", yaml);
    assert_eq!(defs.notify.len(), 1);
    assert_eq!(
        defs.notify[0].events,
        [Event::Failure, Event::JobsetFinished]
    );
    assert_eq!(
        defs.notify[0].secret_file.as_deref(),
        Some("/etc/rota/hook.secret")
    );
    let build = job(&defs, "build");
    assert_eq!(build.notify[0].format, Format::Slack);
    assert_eq!(build.notify[0].events.len(), 5);
    assert!(job(&defs, "test").notify.is_empty());
}

#[test]
fn a_bad_notify_entry_names_the_file_the_job_and_the_key() {
    let err = error(
        "c.yaml",
        "jobs:\n  a:\n    command: x\n    notify: [{url: 'ftp://x/y'}]\n",
    );
    assert_eq!(
        err,
        "c.yaml: job \"a\": notify: notify url \"ftp://x/y\" must be http:// or https:// with a host"
    );
    let err = error("c.yaml", "notify: [{url: 'http://x', colour: red}]\n");
    assert!(err.starts_with("c.yaml: notify: "), "{err}");
    assert!(err.contains("colour"), "{err}");
    let err = error("c.yaml", "notify: [{url: 'http://x', events: [often]}]\n");
    assert!(err.contains("\"often\""), "{err}");
}
