//! Batch builds: a webhook with `buildType: BUILD_BATCH` starts a batch, whose builds come from the buildspec's
//! `batch` section, as in CodeBuild.
//!
//! Supported forms (exactly one per buildspec):
//! - `build-list`: independent builds, each `identifier`, `env.variables`, `buildspec` (a path in the source)
//!   and `ignore-failure`;
//! - `build-graph`: the same, plus `depend-on` (identifiers that must succeed first, a failed one with
//!   `ignore-failure` counting as done); a cycle or an unknown identifier is refused;
//! - `build-matrix`: `static` (`ignore-failure`, `env.variables` for every build) and `dynamic` (`buildspec`: a
//!   list of paths, `env.variables`: each name with a list of values): one build per combination, named
//!   `build_matrix_<n>`.
//!
//! `fast-fail: true` stops the running builds and starts no more once a build that does not ignore failure
//! fails. `build-fanout` and the per-build `env.image`, `env.type`, `env.compute-type`, `env.privileged-mode`,
//! `debug-session` keys are refused or ignored by name (pipehook runs every build on its own workers). At most
//! [`MAX_BUILDS`] builds per batch (CodeBuild's default `maximumBuildsAllowed`).
//!
//! The batch itself is the build the webhook started (its *coordinator*): its BUILD phase starts each build as
//! an ordinary build of the same project and commit (its own job and id, `buildBatchArn` pointing at the
//! coordinator, `CODEBUILD_BATCH_BUILD_IDENTIFIER` set), waits for them, and ends SUCCEEDED when every build
//! that does not ignore failure succeeded, FAILED otherwise, STOPPED when the coordinator was stopped (its
//! running builds are stopped with it), TIMED_OUT after `timeout-in-mins` (default 8 hours). A build whose
//! dependency failed is never started. The coordinating is a job of its own (`codebuild.batch`) that looks at
//! the batch's builds, starts what can start and is deferred until the next look: it holds no worker slot while
//! builds run, and a worker that dies mid-batch leaves the job to another.

use std::collections::{BTreeMap, BTreeSet};

use yaml_serde::Value;

use crate::buildspec::{is_variable_name, key_text, scalar_text, show, BuildspecError};

/// CodeBuild's default maximum of builds in a batch.
pub const MAX_BUILDS: usize = 100;

/// A buildspec's `batch` section.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Batch {
    pub fast_fail: bool,
    /// `timeout-in-mins`: how long the whole batch may take.
    pub timeout_minutes: Option<u64>,
    /// In the order given (graph builds in the file's order too; dependencies decide when they start).
    pub builds: Vec<BatchBuild>,
}

/// One build of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct BatchBuild {
    pub identifier: String,
    pub variables: Vec<(String, String)>,
    /// A buildspec file in the source, instead of the project's buildspec.
    pub buildspec: Option<String>,
    pub ignore_failure: bool,
    pub depend_on: Vec<String>,
}

type Map = yaml_serde::Mapping;

/// One cell of a build matrix: its buildspec file and variables.
type Combination = (Option<String>, Vec<(String, String)>);

fn err(path: impl Into<String>, message: impl Into<String>) -> BuildspecError {
    BuildspecError::new(path, message)
}

/// The `batch` section of a buildspec, or `None` when it has none.
pub fn parse_batch(text: &str) -> Result<Option<Batch>, BuildspecError> {
    let doc: Value = yaml_serde::from_str(text).map_err(|e| err("", format!("is not valid YAML: {e}")))?;
    let Some(section) = doc.as_mapping().and_then(|m| m.get("batch")) else { return Ok(None) };
    let map = as_map(section, "batch")?;
    let mut batch = Batch::default();
    let mut form = None;
    for (key, value) in map {
        let key = key_text(key, "batch")?;
        let path = format!("batch.{key}");
        match key.as_str() {
            "fast-fail" => batch.fast_fail = boolean(value, &path)?,
            "build-list" | "build-graph" | "build-matrix" => {
                if let Some(other) = form.replace(key.clone()) {
                    return Err(err(path, format!("cannot be used with batch.{other}: a batch has one form")));
                }
                batch.builds = match key.as_str() {
                    "build-list" => list(value, &path, false)?,
                    "build-graph" => list(value, &path, true)?,
                    _ => matrix(value, &path)?,
                };
            }
            "build-fanout" => return Err(err(path, "is not supported by pipehook (use build-list or build-matrix)")),
            "timeout-in-mins" => {
                let minutes = value.as_u64().filter(|m| (5..=2160).contains(m));
                batch.timeout_minutes = Some(minutes.ok_or_else(|| err(&path, "must be 5 to 2160 minutes"))?);
            }
            // The batch's own service role and reporting are CodeBuild's concerns.
            "combine-artifacts" | "service-role" | "report-build-status" => {}
            _ => return Err(err(path, "is not a batch key; use build-list, build-graph or build-matrix")),
        }
    }
    if form.is_none() {
        return Err(err("batch", "needs one of build-list, build-graph or build-matrix"));
    }
    if batch.builds.is_empty() {
        return Err(err("batch", "lists no builds"));
    }
    if batch.builds.len() > MAX_BUILDS {
        return Err(err("batch", format!("has {} builds; at most {MAX_BUILDS} are allowed", batch.builds.len())));
    }
    check_graph(&batch.builds)?;
    Ok(Some(batch))
}

fn as_map<'a>(value: &'a Value, path: &str) -> Result<&'a Map, BuildspecError> {
    value.as_mapping().ok_or_else(|| err(path, format!("must be a map, not {}", show(value))))
}

fn boolean(value: &Value, path: &str) -> Result<bool, BuildspecError> {
    value.as_bool().ok_or_else(|| err(path, format!("must be true or false, not {}", show(value))))
}

fn list(value: &Value, path: &str, graph: bool) -> Result<Vec<BatchBuild>, BuildspecError> {
    let items =
        value.as_sequence().ok_or_else(|| err(path, format!("must be a list of builds, not {}", show(value))))?;
    items.iter().enumerate().map(|(i, item)| entry(item, &format!("{path}[{i}]"), graph)).collect()
}

fn entry(value: &Value, path: &str, graph: bool) -> Result<BatchBuild, BuildspecError> {
    let mut b = BatchBuild::default();
    for (key, value) in as_map(value, path)? {
        let key = key_text(key, path)?;
        let at = format!("{path}.{key}");
        match key.as_str() {
            "identifier" => {
                b.identifier = scalar_text(value).ok_or_else(|| err(&at, "must be a string"))?;
                if !is_identifier(&b.identifier) {
                    return Err(err(at, "must be 1 to 127 letters, digits and _"));
                }
            }
            "env" => b.variables = entry_env(value, &at)?,
            "buildspec" => b.buildspec = Some(buildspec_path(value, &at)?),
            "ignore-failure" => b.ignore_failure = boolean(value, &at)?,
            "depend-on" if graph => {
                let ids = value.as_sequence().ok_or_else(|| err(&at, "must be a list of identifiers"))?;
                b.depend_on = ids
                    .iter()
                    .map(|v| scalar_text(v).ok_or_else(|| err(&at, "must be a list of identifiers")))
                    .collect::<Result<_, _>>()?;
            }
            "debug-session" => {}
            _ => return Err(err(at, "is not a key of a batch build")),
        }
    }
    if b.identifier.is_empty() {
        return Err(err(format!("{path}.identifier"), "is missing"));
    }
    Ok(b)
}

fn is_identifier(s: &str) -> bool {
    (1..=127).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A relative path inside the source, without `..`.
fn buildspec_path(value: &Value, path: &str) -> Result<String, BuildspecError> {
    let p = scalar_text(value).ok_or_else(|| err(path, "must be a path in the source"))?;
    let bad = p.is_empty() || p.starts_with('/') || p.split('/').any(|s| s == "..") || p.contains('\0');
    if bad {
        return Err(err(path, "must be a relative path inside the source, without .."));
    }
    Ok(p)
}

/// A batch build's `env`: `variables` are read; the compute settings pipehook has no use for are ignored.
fn entry_env(value: &Value, path: &str) -> Result<Vec<(String, String)>, BuildspecError> {
    let mut vars = Vec::new();
    for (key, value) in as_map(value, path)? {
        let key = key_text(key, path)?;
        let at = format!("{path}.{key}");
        match key.as_str() {
            "variables" => {
                for (name, v) in as_map(value, &at)? {
                    let name = key_text(name, &at)?;
                    if !is_variable_name(&name) {
                        return Err(err(format!("{at}.{name}"), "is not a valid variable name"));
                    }
                    let text = scalar_text(v)
                        .ok_or_else(|| err(format!("{at}.{name}"), "must be a string, number or boolean"))?;
                    vars.push((name, text));
                }
            }
            "image" | "type" | "compute-type" | "privileged-mode" | "fleet" => {}
            _ => return Err(err(at, "is not supported in a batch build's env (variables are)")),
        }
    }
    Ok(vars)
}

/// `build-matrix`: one build per combination of the dynamic buildspecs and variable values.
fn matrix(value: &Value, path: &str) -> Result<Vec<BatchBuild>, BuildspecError> {
    let (mut base, mut buildspecs, mut dynamic) = (BatchBuild::default(), vec![None], Vec::new());
    for (key, value) in as_map(value, path)? {
        let key = key_text(key, path)?;
        let at = format!("{path}.{key}");
        match key.as_str() {
            "static" => {
                for (k, v) in as_map(value, &at)? {
                    let k = key_text(k, &at)?;
                    let kat = format!("{at}.{k}");
                    match k.as_str() {
                        "ignore-failure" => base.ignore_failure = boolean(v, &kat)?,
                        "env" => base.variables = entry_env(v, &kat)?,
                        "debug-session" => {}
                        _ => return Err(err(kat, "is not a key of build-matrix.static")),
                    }
                }
            }
            "dynamic" => {
                for (k, v) in as_map(value, &at)? {
                    let k = key_text(k, &at)?;
                    let kat = format!("{at}.{k}");
                    match k.as_str() {
                        "buildspec" => {
                            let items = v.as_sequence().ok_or_else(|| err(&kat, "must be a list of paths"))?;
                            buildspecs =
                                items.iter().map(|p| buildspec_path(p, &kat).map(Some)).collect::<Result<_, _>>()?;
                        }
                        "env" => {
                            for (ek, ev) in as_map(v, &kat)? {
                                let ek = key_text(ek, &kat)?;
                                let eat = format!("{kat}.{ek}");
                                if ek != "variables" {
                                    // image, type, compute-type lists: one build per value in CodeBuild, all
                                    // alike here.
                                    if ev.as_sequence().is_some() {
                                        continue;
                                    }
                                    return Err(err(eat, "is not supported in build-matrix.dynamic.env"));
                                }
                                for (name, values) in as_map(ev, &eat)? {
                                    let name = key_text(name, &eat)?;
                                    let nat = format!("{eat}.{name}");
                                    if !is_variable_name(&name) {
                                        return Err(err(nat, "is not a valid variable name"));
                                    }
                                    let list =
                                        values.as_sequence().ok_or_else(|| err(&nat, "must be a list of values"))?;
                                    let values: Vec<String> = list
                                        .iter()
                                        .map(|v| {
                                            scalar_text(v)
                                                .ok_or_else(|| err(&nat, "must list strings, numbers or booleans"))
                                        })
                                        .collect::<Result<_, _>>()?;
                                    if values.is_empty() {
                                        return Err(err(nat, "lists no values"));
                                    }
                                    dynamic.push((name, values));
                                }
                            }
                        }
                        _ => return Err(err(kat, "is not a key of build-matrix.dynamic")),
                    }
                }
            }
            _ => return Err(err(at, "is not a key of build-matrix; use static and dynamic")),
        }
    }
    let mut combos: Vec<Combination> = buildspecs.into_iter().map(|b| (b, vec![])).collect();
    for (name, values) in &dynamic {
        let mut next = Vec::with_capacity(combos.len() * values.len());
        for (spec, vars) in &combos {
            for v in values {
                let mut vars = vars.clone();
                vars.push((name.clone(), v.clone()));
                next.push((spec.clone(), vars));
            }
        }
        if next.len() > MAX_BUILDS {
            return Err(err(path, format!("makes more than {MAX_BUILDS} builds")));
        }
        combos = next;
    }
    Ok(combos
        .into_iter()
        .enumerate()
        .map(|(i, (buildspec, vars))| {
            let mut variables = base.variables.clone();
            variables.extend(vars);
            BatchBuild {
                identifier: format!("build_matrix_{}", i + 1),
                variables,
                buildspec: buildspec.or_else(|| base.buildspec.clone()),
                ignore_failure: base.ignore_failure,
                depend_on: vec![],
            }
        })
        .collect())
}

/// Identifiers are unique, dependencies name builds of the batch, and there is no cycle.
fn check_graph(builds: &[BatchBuild]) -> Result<(), BuildspecError> {
    let mut ids = BTreeSet::new();
    for b in builds {
        if !ids.insert(b.identifier.as_str()) {
            return Err(err("batch", format!("has two builds named {}", b.identifier)));
        }
    }
    for b in builds {
        if let Some(d) = b.depend_on.iter().find(|d| !ids.contains(d.as_str())) {
            return Err(err("batch", format!("build {} depends on {d}, which is not in the batch", b.identifier)));
        }
    }
    // Kahn's algorithm: what never becomes ready is on a cycle.
    let mut pending: BTreeMap<&str, BTreeSet<&str>> =
        builds.iter().map(|b| (b.identifier.as_str(), b.depend_on.iter().map(String::as_str).collect())).collect();
    loop {
        let ready: Vec<&str> = pending.iter().filter(|(_, deps)| deps.is_empty()).map(|(id, _)| *id).collect();
        if ready.is_empty() {
            break;
        }
        for id in &ready {
            pending.remove(id);
        }
        for deps in pending.values_mut() {
            for id in &ready {
                deps.remove(id);
            }
        }
    }
    match pending.keys().next() {
        Some(id) => Err(err("batch", format!("build-graph has a dependency cycle through {id}"))),
        None => Ok(()),
    }
}

/// Where each build of a batch stands, for the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Waiting,
    Running,
    /// Ended with this CodeBuild status.
    Ended(&'static str),
    /// Never started: a dependency failed, or the batch failed fast or was stopped.
    Skipped,
}

/// The statuses a build can end with.
pub fn status_name(s: &str) -> &'static str {
    match s {
        "SUCCEEDED" => "SUCCEEDED",
        "FAILED" => "FAILED",
        "FAULT" => "FAULT",
        "TIMED_OUT" => "TIMED_OUT",
        "STOPPED" => "STOPPED",
        _ => "FAULT",
    }
}

/// The builds that can start now: waiting, with every dependency succeeded (or ended and ignoring failure).
pub fn ready(builds: &[BatchBuild], slots: &[Slot]) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = builds.iter().enumerate().map(|(i, b)| (b.identifier.as_str(), i)).collect();
    (0..builds.len())
        .filter(|&i| slots[i] == Slot::Waiting)
        .filter(|&i| {
            builds[i].depend_on.iter().all(|d| {
                let j = index[d.as_str()];
                matches!(slots[j], Slot::Ended("SUCCEEDED"))
                    || (builds[j].ignore_failure && matches!(slots[j], Slot::Ended(_)))
            })
        })
        .collect()
}

/// The waiting builds that can never start: a dependency ended badly (without ignoring failure) or was skipped.
pub fn blocked(builds: &[BatchBuild], slots: &[Slot]) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = builds.iter().enumerate().map(|(i, b)| (b.identifier.as_str(), i)).collect();
    (0..builds.len())
        .filter(|&i| slots[i] == Slot::Waiting)
        .filter(|&i| {
            builds[i].depend_on.iter().any(|d| {
                let j = index[d.as_str()];
                match slots[j] {
                    Slot::Skipped => true,
                    Slot::Ended(s) => s != "SUCCEEDED" && !builds[j].ignore_failure,
                    _ => false,
                }
            })
        })
        .collect()
}

/// The batch's status once every build has ended or been skipped.
pub fn outcome(builds: &[BatchBuild], slots: &[Slot], stopped: bool) -> &'static str {
    if stopped {
        return "STOPPED";
    }
    let failed = builds.iter().zip(slots).any(|(b, s)| !b.ignore_failure && *s != Slot::Ended("SUCCEEDED"));
    if failed {
        "FAILED"
    } else {
        "SUCCEEDED"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_batch_section() {
        assert_eq!(parse_batch("version: 0.2\nphases: {}\n").unwrap(), None);
    }

    #[test]
    fn a_build_list_and_a_graph() {
        let spec = "version: 0.2\nbatch:\n  fast-fail: true\n  build-graph:\n    - identifier: lint\n      env:\n        image: x\n        variables:\n          MODE: lint\n          LEVEL: 2\n    - identifier: test\n      depend-on: [lint]\n      buildspec: ci/test.yml\n      ignore-failure: true\n";
        let b = parse_batch(spec).unwrap().unwrap();
        assert!(b.fast_fail);
        assert_eq!(b.builds.len(), 2);
        assert_eq!(b.builds[0].variables, [("MODE".into(), "lint".into()), ("LEVEL".into(), "2".into())]);
        assert_eq!(b.builds[1].depend_on, ["lint"]);
        assert_eq!(b.builds[1].buildspec.as_deref(), Some("ci/test.yml"));
        assert!(b.builds[1].ignore_failure);
        let list =
            "version: 0.2\nbatch:\n  timeout-in-mins: 30\n  build-list:\n    - identifier: a\n    - identifier: b\n";
        let b = parse_batch(list).unwrap().unwrap();
        assert_eq!((b.builds.len(), b.timeout_minutes), (2, Some(30)));
    }

    #[test]
    fn a_matrix_is_every_combination() {
        let spec = "version: 0.2\nbatch:\n  build-matrix:\n    static:\n      ignore-failure: false\n      env:\n        variables:\n          CI: 'true'\n    dynamic:\n      env:\n        image: [a, b]\n        variables:\n          OS: [linux, mac]\n          RUST: [stable, beta, nightly]\n";
        let b = parse_batch(spec).unwrap().unwrap();
        assert_eq!(b.builds.len(), 6);
        assert_eq!(b.builds[0].identifier, "build_matrix_1");
        assert_eq!(
            b.builds[5].variables,
            [("CI".into(), "true".into()), ("OS".into(), "mac".into()), ("RUST".into(), "nightly".into())]
        );
    }

    #[test]
    fn refusals_name_the_place() {
        for (spec, want) in [
            ("batch:\n  build-list: []\n", "lists no builds"),
            ("batch:\n  fast-fail: true\n", "needs one of"),
            ("batch:\n  build-list: [{identifier: a}]\n  build-graph: [{identifier: b}]\n", "has one form"),
            ("batch:\n  build-list: [{identifier: a-b}]\n", "batch.build-list[0].identifier must be"),
            ("batch:\n  build-list: [{env: {}}]\n", "batch.build-list[0].identifier is missing"),
            ("batch:\n  build-list: [{identifier: a}, {identifier: a}]\n", "two builds named a"),
            ("batch:\n  build-list: [{identifier: a, depend-on: [b]}]\n", "is not a key of a batch build"),
            ("batch:\n  build-graph: [{identifier: a, depend-on: [b]}]\n", "depends on b"),
            ("batch:\n  build-graph: [{identifier: a, depend-on: [b]}, {identifier: b, depend-on: [a]}]\n", "cycle"),
            ("batch:\n  build-list: [{identifier: a, buildspec: ../x.yml}]\n", "relative path"),
            ("batch:\n  build-fanout: {parallelism: 2}\n", "not supported"),
            ("batch:\n  build-matrix: {dynamic: {env: {variables: {A: []}}}}\n", "lists no values"),
            ("batch:\n  timeout-in-mins: 3\n  build-list: [{identifier: a}]\n", "5 to 2160 minutes"),
        ] {
            let e = parse_batch(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }

    #[test]
    fn scheduling() {
        let b = |id: &str, deps: &[&str], ignore: bool| BatchBuild {
            identifier: id.into(),
            depend_on: deps.iter().map(|d| d.to_string()).collect(),
            ignore_failure: ignore,
            ..Default::default()
        };
        let builds = vec![b("a", &[], false), b("b", &["a"], false), b("c", &[], true), b("d", &["c"], false)];
        let mut slots = vec![Slot::Waiting; 4];
        assert_eq!(ready(&builds, &slots), [0, 2]);
        slots[0] = Slot::Ended("FAILED");
        slots[2] = Slot::Ended("FAILED");
        assert_eq!(ready(&builds, &slots), [3], "c ignores failure");
        assert_eq!(blocked(&builds, &slots), [1]);
        slots[1] = Slot::Skipped;
        slots[3] = Slot::Ended("SUCCEEDED");
        assert_eq!(outcome(&builds, &slots, false), "FAILED");
        slots[0] = Slot::Ended("SUCCEEDED");
        slots[1] = Slot::Ended("SUCCEEDED");
        assert_eq!(outcome(&builds, &slots, false), "SUCCEEDED");
        assert_eq!(outcome(&builds, &slots, true), "STOPPED");
    }
}
