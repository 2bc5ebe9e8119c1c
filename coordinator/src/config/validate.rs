//! The whole file: top-level keys, concurrency groups, jobs and job groups in file order, then
//! the checks that need every job at once (duplicates, `after` targets, cycles).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::error::{ConfigError, Scope};
use super::job::{build_job, environment};
use super::model::{Definitions, JobDef};
use super::names::{is_valid_name, NAME_RULE};
use super::node::Node;
use super::raw::{from_map, RawConcurrencyGroup, RawJob, RawTop, NO_EFFECT_JOB, NO_EFFECT_TOP};

/// Where a job was defined, to explain duplicates.
enum Origin {
    Jobs,
    JobGroup(String),
}

/// Validates the parsed document `doc` of the file `path` (as the user named it).
pub(super) fn build(path: &str, doc: Node) -> Result<Definitions, ConfigError> {
    let entries = match doc {
        Node::Map(entries) => entries,
        Node::Null => Vec::new(),
        other => {
            return Err(ConfigError::Syntax {
                path: path.into(),
                message: format!("expected a mapping at the top level, got {}", other.kind()),
            })
        }
    };
    let top: RawTop = from_map(path, &Scope::File, &entries, &[])?;
    let jobset = match top.jobset {
        Some(name) if is_valid_name(&name) => name,
        Some(name) => {
            return Err(invalid_top(
                path,
                "jobset",
                format!("invalid name \"{name}\" (must match {NAME_RULE})"),
            ))
        }
        None => default_jobset(path)?,
    };

    let mut warnings: Vec<String> = entries
        .iter()
        .filter(|(key, _)| NO_EFFECT_TOP.contains(&key.as_str()))
        .map(|(key, _)| no_effect(path, key, ""))
        .collect();
    // Per job key: the jobs and job groups that set it, for one warning each.
    let mut job_keys: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut note_job_keys = |scope: &Scope, body: &Node| {
        if let Node::Map(keys) = body {
            for (key, _) in keys {
                if let Some(known) = NO_EFFECT_JOB.iter().find(|k| **k == key.as_str()) {
                    job_keys.entry(known).or_default().push(scope.to_string());
                }
            }
        }
    };

    let mut groups = BTreeMap::new();
    let mut jobs: Vec<JobDef> = Vec::new();
    let mut origins: HashMap<String, Origin> = HashMap::new();
    for (section, value) in &entries {
        match section.as_str() {
            "concurrency_groups" => {
                for (name, body) in section_entries(path, section, value)? {
                    let scope = Scope::ConcurrencyGroup(name.clone());
                    check_name(path, &scope, name)?;
                    let raw: RawConcurrencyGroup =
                        from_map(path, &scope, body_entries(path, &scope, body)?, &[])?;
                    groups.insert(name.clone(), raw.max.unwrap_or(1));
                }
            }
            "jobs" => {
                for (name, body) in section_entries(path, section, value)? {
                    let scope = Scope::Job(name.clone());
                    check_name(path, &scope, name)?;
                    note_job_keys(&scope, body);
                    let raw: RawJob = from_map(
                        path,
                        &scope,
                        body_entries(path, &scope, body)?,
                        &["job_names"],
                    )?;
                    claim(path, &mut origins, name, Origin::Jobs)?;
                    jobs.push(build_job(path, &scope, name, None, raw)?);
                }
            }
            "job_groups" => {
                for (group, body) in section_entries(path, section, value)? {
                    let scope = Scope::JobGroup(group.clone());
                    check_name(path, &scope, group)?;
                    note_job_keys(&scope, body);
                    let mut raw: RawJob = from_map(
                        path,
                        &scope,
                        body_entries(path, &scope, body)?,
                        &["job_group"],
                    )?;
                    let names = raw
                        .job_names
                        .take()
                        .ok_or_else(|| ConfigError::MissingKey {
                            path: path.into(),
                            scope: scope.clone(),
                            key: "job_names".into(),
                        })?;
                    for name in &names {
                        check_name(path, &Scope::Job(name.clone()), name)?;
                        claim(path, &mut origins, name, Origin::JobGroup(group.clone()))?;
                        jobs.push(build_job(path, &scope, name, Some(group), raw.clone())?);
                    }
                }
            }
            _ => {}
        }
    }

    check_after(path, &jobs)?;
    if let Some(cycle) = find_cycle(&jobs) {
        return Err(ConfigError::Cycle {
            path: path.into(),
            cycle,
        });
    }
    for (key, scopes) in job_keys {
        let scopes: Vec<&str> = scopes.iter().map(|s| s.trim_end_matches(": ")).collect();
        warnings.push(no_effect(
            path,
            key,
            &format!(" (in {})", scopes.join(", ")),
        ));
    }
    Ok(Definitions {
        warnings,
        path: path.into(),
        jobset,
        parallel: top.parallel.unwrap_or(0),
        retention: super::retention::policy(top.retention.as_ref(), |key, message| {
            invalid_top(path, key, message)
        })?,
        environment: environment(path, &Scope::File, top.environment)?,
        notify: super::job::notify(path, &Scope::File, top.notify)?,
        groups,
        jobs,
    })
}

/// The warning for a dsari key rota accepts but does not act on.
fn no_effect(path: &str, key: &str, where_: &str) -> String {
    format!(
        "{path}: key \"{key}\"{where_} has no effect in rota (accepted for dsari compatibility)"
    )
}

fn invalid_top(path: &str, key: &str, message: String) -> ConfigError {
    ConfigError::InvalidValue {
        path: path.into(),
        scope: Scope::File,
        key: key.into(),
        message,
    }
}

/// The file's stem (`pipeline` for `examples/pipeline.yaml`), when no `jobset` is written.
fn default_jobset(path: &str) -> Result<String, ConfigError> {
    let stem = Path::new(path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("default");
    if is_valid_name(stem) {
        Ok(stem.to_string())
    } else {
        Err(invalid_top(
            path,
            "jobset",
            format!("the file name \"{stem}\" is not a valid jobset name (must match {NAME_RULE}); set jobset"),
        ))
    }
}

/// The entries of `jobs`, `job_groups` or `concurrency_groups` (empty when written as null).
fn section_entries<'a>(
    path: &str,
    section: &str,
    value: &'a Node,
) -> Result<&'a [(String, Node)], ConfigError> {
    match value {
        Node::Map(entries) => Ok(entries),
        Node::Null => Ok(&[]),
        other => Err(invalid_top(
            path,
            section,
            format!("expected a mapping of names, got {}", other.kind()),
        )),
    }
}

/// The keys of one job or group (none when written as null).
fn body_entries<'a>(
    path: &str,
    scope: &Scope,
    body: &'a Node,
) -> Result<&'a [(String, Node)], ConfigError> {
    match body {
        Node::Map(entries) => Ok(entries),
        Node::Null => Ok(&[]),
        other => Err(ConfigError::Syntax {
            path: path.into(),
            message: format!("{scope}expected a mapping of keys, got {}", other.kind()),
        }),
    }
}

fn check_name(path: &str, scope: &Scope, name: &str) -> Result<(), ConfigError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(ConfigError::InvalidName {
            path: path.into(),
            scope: scope.clone(),
        })
    }
}

/// Records where `name` is defined; a second definition is an error saying where both are.
fn claim(
    path: &str,
    origins: &mut HashMap<String, Origin>,
    name: &str,
    origin: Origin,
) -> Result<(), ConfigError> {
    let detail = match (origins.get(name), &origin) {
        (None, _) => {
            origins.insert(name.to_string(), origin);
            return Ok(());
        }
        (Some(Origin::JobGroup(a)), Origin::JobGroup(b)) if a == b => {
            format!("listed twice in job group \"{a}\"")
        }
        (Some(Origin::JobGroup(a)), Origin::JobGroup(b)) => {
            format!("defined in job groups \"{a}\" and \"{b}\"")
        }
        (Some(Origin::JobGroup(g)), Origin::Jobs) | (Some(Origin::Jobs), Origin::JobGroup(g)) => {
            format!("defined both in jobs and in job group \"{g}\"")
        }
        // Two entries of `jobs` with one name are refused by the parser (duplicate key).
        (Some(Origin::Jobs), Origin::Jobs) => "defined twice in jobs".to_string(),
    };
    Err(ConfigError::Duplicate {
        path: path.into(),
        job: name.into(),
        detail,
    })
}

fn check_after(path: &str, jobs: &[JobDef]) -> Result<(), ConfigError> {
    let names: std::collections::HashSet<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    for job in jobs {
        if let Some(target) = job.after.iter().find(|a| !names.contains(a.as_str())) {
            return Err(ConfigError::UnknownAfter {
                path: path.into(),
                job: job.name.clone(),
                target: target.clone(),
            });
        }
    }
    Ok(())
}

/// The first loop in the `after` graph, as `[a, b, a]`; jobs are visited in file order and each
/// job's `after` in the order written, so the answer is stable. Iterative, so a long chain of
/// jobs cannot overflow the stack. Every target must exist ([`check_after`] runs first).
fn find_cycle(jobs: &[JobDef]) -> Option<Vec<String>> {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let index: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    let mut state = vec![NEW; jobs.len()];
    for root in 0..jobs.len() {
        if state[root] != NEW {
            continue;
        }
        state[root] = ON_PATH;
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(top) = path.last_mut() {
            let (node, edge) = *top;
            let Some(target) = jobs[node].after.get(edge) else {
                state[node] = DONE;
                path.pop();
                continue;
            };
            top.1 += 1;
            let next = index[target.as_str()];
            match state[next] {
                NEW => {
                    state[next] = ON_PATH;
                    path.push((next, 0));
                }
                ON_PATH => {
                    let start = path.iter().position(|(n, _)| *n == next).unwrap_or(0);
                    let mut cycle: Vec<String> = path[start..]
                        .iter()
                        .map(|(n, _)| jobs[*n].name.clone())
                        .collect();
                    cycle.push(jobs[next].name.clone());
                    return Some(cycle);
                }
                _ => {}
            }
        }
    }
    None
}
