//! CodeBuild buildspec files (YAML), the subset pipehook runs.
//!
//! Supported: `version`, `env.variables`, `env.shell`, and `phases.install|pre_build|build|post_build`, each
//! with `commands`, `finally` and `on-failure` (`ABORT`, the default, or `CONTINUE`).
//!
//! - **`version`** must be `0.2` or `0.1` (number or string). Version 0.1 keeps its documented meaning: every
//!   command runs in its own shell, so a `cd` or a variable set by one command is gone for the next. Under
//!   0.2 all commands share one shell session (see `build.rs` for how that session spans phases).
//! - **`env.variables`** is a map of names to values. Values that YAML reads as numbers or booleans are turned
//!   into their text (`10` → `"10"`, `true` → `"true"`, `1.50` → `"1.5"`: YAML has parsed the number, so
//!   quote a value whose exact spelling matters). Names must be shell variable names.
//! - **`env.shell`** is `bash` or `/bin/sh` (the default), CodeBuild's Linux shells.
//! - **Commands** are strings; a number or boolean item (`- true`) is its text. A command written as
//!   `- echo a: b` is a YAML map, not a string, and is refused with a hint to quote it.
//! - **Ignored**, because they are CodeBuild's but outside pipehook's subset: the top-level `artifacts`,
//!   `reports`, `cache`, `batch`, `proxy` and `run-as`; `env.exported-variables` and `env.git-credential-helper`;
//!   a phase's `run-as` and `runtime-versions`. **Refused**: `env.parameter-store` and `env.secrets-manager`
//!   (their variables would silently be missing), and any key CodeBuild does not define (most likely a typo).
//!
//! Errors name the place: `phases.build.commands[2] must be a string ...`, `env.variables.PORT must be a
//! string, number or boolean`.

use yaml_serde::Value;

/// How a buildspec's commands share a shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildspecVersion {
    /// Every command in its own shell.
    V0_1,
    /// All commands of the build in one shell session.
    V0_2,
}

/// The shell that runs the commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shell {
    /// `/bin/sh`, CodeBuild's default on Linux.
    #[default]
    Sh,
    /// `bash`.
    Bash,
}

impl Shell {
    /// The program that runs a phase script.
    pub fn program(self) -> &'static str {
        match self {
            Shell::Sh => "/bin/sh",
            Shell::Bash => "bash",
        }
    }
}

/// What a failed command does to the rest of the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// The default: the build goes on only with what CodeBuild always runs after a failure (see `build.rs`).
    #[default]
    Abort,
    /// The phase is FAILED but the build moves on to the next phase.
    Continue,
}

/// One phase's commands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Phase {
    pub commands: Vec<String>,
    /// Commands that run after `commands`, even when one of them failed.
    pub finally: Vec<String>,
    pub on_failure: OnFailure,
}

impl Phase {
    /// Whether the phase has nothing to run.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty() && self.finally.is_empty()
    }
}

/// The four command phases, each absent when the buildspec does not name it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Phases {
    pub install: Option<Phase>,
    pub pre_build: Option<Phase>,
    pub build: Option<Phase>,
    pub post_build: Option<Phase>,
}

/// A parsed buildspec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buildspec {
    pub version: BuildspecVersion,
    /// `env.variables`, in the file's order.
    pub variables: Vec<(String, String)>,
    pub shell: Shell,
    pub phases: Phases,
}

/// Why a buildspec was refused: `path` says where (`phases.build.commands[2]`, empty for the whole file),
/// `message` what is wrong; `Display` joins them into one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct BuildspecError {
    pub path: String,
    pub message: String,
}

impl BuildspecError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        BuildspecError { path: path.into(), message: message.into() }
    }

    fn render(&self) -> String {
        if self.path.is_empty() {
            format!("invalid buildspec: {}", self.message)
        } else {
            format!("invalid buildspec: {} {}", self.path, self.message)
        }
    }
}

/// Top-level keys CodeBuild defines that pipehook ignores.
const IGNORED_TOP: [&str; 6] = ["artifacts", "reports", "cache", "batch", "proxy", "run-as"];
/// `env` keys CodeBuild defines that pipehook ignores.
const IGNORED_ENV: [&str; 2] = ["exported-variables", "git-credential-helper"];
/// `env` keys CodeBuild defines that pipehook refuses.
const REFUSED_ENV: [&str; 2] = ["parameter-store", "secrets-manager"];
/// Phase keys CodeBuild defines that pipehook ignores.
const IGNORED_PHASE: [&str; 2] = ["run-as", "runtime-versions"];
/// The phases, in the order they run.
pub const PHASE_NAMES: [&str; 4] = ["install", "pre_build", "build", "post_build"];

/// Parses a buildspec's YAML text.
pub fn parse(text: &str) -> Result<Buildspec, BuildspecError> {
    let doc: Value =
        yaml_serde::from_str(text).map_err(|e| BuildspecError::new("", format!("is not valid YAML: {e}")))?;
    let top = match doc {
        Value::Mapping(map) => map,
        Value::Null => return Err(BuildspecError::new("", "is empty")),
        _ => return Err(BuildspecError::new("", "must be a YAML map with version and phases at the top")),
    };
    let mut version = None;
    let mut variables = Vec::new();
    let mut shell = Shell::default();
    let mut phases = Phases::default();
    for (key, value) in &top {
        let key = key_text(key, "")?;
        match key.as_str() {
            "version" => version = Some(parse_version(value)?),
            "env" => (variables, shell) = parse_env(value)?,
            "phases" => phases = parse_phases(value)?,
            k if IGNORED_TOP.contains(&k) => {}
            k => {
                return Err(BuildspecError::new(
                    k,
                    "is not a buildspec key; pipehook reads version, env and phases (and ignores artifacts, reports, cache, batch, proxy, run-as)",
                ))
            }
        }
    }
    let version = version.ok_or_else(|| BuildspecError::new("version", "is missing; use version: 0.2"))?;
    Ok(Buildspec { version, variables, shell, phases })
}

pub(crate) fn key_text(key: &Value, parent: &str) -> Result<String, BuildspecError> {
    match key {
        Value::String(s) => Ok(s.clone()),
        other => Err(BuildspecError::new(parent, format!("has a key that is not a string: {}", show(other)))),
    }
}

/// A short rendering of a value for messages.
pub(crate) fn show(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a map".to_string(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

fn parse_version(value: &Value) -> Result<BuildspecVersion, BuildspecError> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => return Err(BuildspecError::new("version", format!("must be 0.2, not {}", show(other)))),
    };
    match text.as_str() {
        "0.2" => Ok(BuildspecVersion::V0_2),
        "0.1" => Ok(BuildspecVersion::V0_1),
        other => Err(BuildspecError::new("version", format!("must be 0.2 (or the older 0.1), not {other}"))),
    }
}

fn parse_env(value: &Value) -> Result<(Vec<(String, String)>, Shell), BuildspecError> {
    let map = match value {
        Value::Null => return Ok((Vec::new(), Shell::default())),
        Value::Mapping(map) => map,
        other => return Err(BuildspecError::new("env", format!("must be a map, not {}", show(other)))),
    };
    let mut variables = Vec::new();
    let mut shell = Shell::default();
    for (key, value) in map {
        let key = key_text(key, "env")?;
        let path = format!("env.{key}");
        match key.as_str() {
            "variables" => variables = parse_variables(value)?,
            "shell" => {
                shell = match value {
                    Value::String(s) if s == "bash" => Shell::Bash,
                    Value::String(s) if s == "/bin/sh" || s == "sh" => Shell::Sh,
                    other => {
                        return Err(BuildspecError::new(
                            path,
                            format!("must be bash or /bin/sh, not {} (pipehook runs Linux shells only)", show(other)),
                        ))
                    }
                }
            }
            k if IGNORED_ENV.contains(&k) => {}
            k if REFUSED_ENV.contains(&k) => {
                return Err(BuildspecError::new(
                    path,
                    "is not supported by pipehook (it reads AWS services); set these variables in the project's environment instead",
                ))
            }
            _ => return Err(BuildspecError::new(path, "is not an env key; pipehook reads env.variables and env.shell")),
        }
    }
    Ok((variables, shell))
}

fn parse_variables(value: &Value) -> Result<Vec<(String, String)>, BuildspecError> {
    let map = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Mapping(map) => map,
        other => {
            return Err(BuildspecError::new(
                "env.variables",
                format!("must be a map of names to values, not {}", show(other)),
            ))
        }
    };
    let mut variables = Vec::with_capacity(map.len());
    for (key, value) in map {
        let name = match key {
            Value::String(s) => s.clone(),
            other => {
                return Err(BuildspecError::new(
                    "env.variables",
                    format!("has a name that is not a string: {}", show(other)),
                ))
            }
        };
        let path = format!("env.variables.{name}");
        if !is_variable_name(&name) {
            return Err(BuildspecError::new(
                path,
                "is not a valid variable name (letters, digits and _, not starting with a digit)",
            ));
        }
        let text = scalar_text(value).ok_or_else(|| {
            BuildspecError::new(path, format!("must be a string, number or boolean, not {}", show(value)))
        })?;
        variables.push((name, text));
    }
    Ok(variables)
}

/// A string, number or boolean as text.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether `name` can be a shell variable: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_phases(value: &Value) -> Result<Phases, BuildspecError> {
    let map = match value {
        Value::Null => return Ok(Phases::default()),
        Value::Mapping(map) => map,
        other => return Err(BuildspecError::new("phases", format!("must be a map of phases, not {}", show(other)))),
    };
    let mut phases = Phases::default();
    for (key, value) in map {
        let key = key_text(key, "phases")?;
        let path = format!("phases.{key}");
        let slot = match key.as_str() {
            "install" => &mut phases.install,
            "pre_build" => &mut phases.pre_build,
            "build" => &mut phases.build,
            "post_build" => &mut phases.post_build,
            _ => {
                return Err(BuildspecError::new(
                    path,
                    "is not a phase; the phases are install, pre_build, build and post_build",
                ))
            }
        };
        *slot = Some(parse_phase(&path, value)?);
    }
    Ok(phases)
}

fn parse_phase(path: &str, value: &Value) -> Result<Phase, BuildspecError> {
    let map = match value {
        Value::Null => return Ok(Phase::default()),
        Value::Mapping(map) => map,
        other => {
            return Err(BuildspecError::new(
                path,
                format!("must be a map with commands (and finally, on-failure), not {}", show(other)),
            ))
        }
    };
    let mut phase = Phase::default();
    for (key, value) in map {
        let key = key_text(key, path)?;
        let here = format!("{path}.{key}");
        match key.as_str() {
            "commands" => phase.commands = parse_commands(&here, value)?,
            "finally" => phase.finally = parse_commands(&here, value)?,
            "on-failure" => {
                phase.on_failure = match value {
                    Value::String(s) if s == "ABORT" => OnFailure::Abort,
                    Value::String(s) if s == "CONTINUE" => OnFailure::Continue,
                    other => {
                        return Err(BuildspecError::new(
                            here,
                            format!("must be ABORT or CONTINUE, not {}", show(other)),
                        ))
                    }
                }
            }
            k if IGNORED_PHASE.contains(&k) => {}
            _ => {
                return Err(BuildspecError::new(
                    here,
                    "is not a phase key; a phase has commands, finally and on-failure",
                ))
            }
        }
    }
    Ok(phase)
}

fn parse_commands(path: &str, value: &Value) -> Result<Vec<String>, BuildspecError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Sequence(items) => items,
        other => return Err(BuildspecError::new(path, format!("must be a list of strings, not {}", show(other)))),
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Mapping(_) => Err(BuildspecError::new(
                format!("{path}[{index}]"),
                "must be a string, not a map (a command containing \": \" must be quoted)",
            )),
            other => scalar_text(other).ok_or_else(|| {
                BuildspecError::new(format!("{path}[{index}]"), format!("must be a string, not {}", show(other)))
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_buildspec() {
        let spec = parse(
            r#"
version: 0.2
env:
  shell: bash
  variables:
    GREETING: "hello world"
    PORT: 8080
    RATIO: 1.50
    DEBUG: true
    EMPTY: ""
  exported-variables: [GREETING]
  git-credential-helper: yes
phases:
  install:
    runtime-versions:
      python: 3.12
    commands:
      - echo install
  pre_build:
    on-failure: CONTINUE
    commands:
      - 'echo "a: b"'
      - true
      - 42
  build:
    commands:
      - |
        echo one
        echo two
    finally:
      - echo cleanup
  post_build:
artifacts:
  files: ['**/*']
reports:
  unit: {files: [x.xml]}
cache:
  paths: [/root/.m2/**/*]
"#,
        )
        .unwrap();
        assert_eq!(spec.version, BuildspecVersion::V0_2);
        assert_eq!(spec.shell, Shell::Bash);
        let vars: Vec<(&str, &str)> = spec.variables.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            vars,
            [("GREETING", "hello world"), ("PORT", "8080"), ("RATIO", "1.5"), ("DEBUG", "true"), ("EMPTY", "")]
        );
        assert_eq!(spec.phases.install.as_ref().unwrap().commands, ["echo install"]);
        let pre = spec.phases.pre_build.as_ref().unwrap();
        assert_eq!(pre.on_failure, OnFailure::Continue);
        assert_eq!(pre.commands, ["echo \"a: b\"", "true", "42"]);
        let build = spec.phases.build.as_ref().unwrap();
        assert_eq!(
            (build.commands.as_slice(), build.finally.as_slice(), build.on_failure),
            (
                ["echo one\necho two\n".to_string()].as_slice(),
                ["echo cleanup".to_string()].as_slice(),
                OnFailure::Abort
            )
        );
        assert_eq!(spec.phases.post_build, Some(Phase::default()));
    }

    #[test]
    fn versions() {
        for (text, want) in [
            ("version: 0.2", Ok(BuildspecVersion::V0_2)),
            ("version: '0.2'", Ok(BuildspecVersion::V0_2)),
            ("version: 0.1", Ok(BuildspecVersion::V0_1)),
            ("version: \"0.1\"", Ok(BuildspecVersion::V0_1)),
            ("version: 0.3", Err("invalid buildspec: version must be 0.2 (or the older 0.1), not 0.3")),
            ("version: 1", Err("invalid buildspec: version must be 0.2 (or the older 0.1), not 1")),
            ("version: [0.2]", Err("invalid buildspec: version must be 0.2, not a list")),
            ("phases: {}", Err("invalid buildspec: version is missing; use version: 0.2")),
        ] {
            match (parse(text), want) {
                (Ok(spec), Ok(v)) => assert_eq!(spec.version, v, "{text}"),
                (Err(e), Err(message)) => assert_eq!(e.to_string(), message, "{text}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn errors_name_the_place() {
        let cases = [
            ("", "invalid buildspec: is empty"),
            ("- a\n- b", "invalid buildspec: must be a YAML map with version and phases at the top"),
            ("version: 0.2\nphases:\n  build:\n    commands: echo hi", "invalid buildspec: phases.build.commands must be a list of strings, not \"echo hi\""),
            ("version: 0.2\nphases:\n  build:\n    commands:\n      - echo a\n      - [x]", "invalid buildspec: phases.build.commands[1] must be a string, not a list"),
            ("version: 0.2\nphases:\n  build:\n    commands:\n      - echo a: b", "invalid buildspec: phases.build.commands[0] must be a string, not a map (a command containing \": \" must be quoted)"),
            ("version: 0.2\nphases:\n  build:\n    commands:\n      -", "invalid buildspec: phases.build.commands[0] must be a string, not null"),
            ("version: 0.2\nphases:\n  post_build:\n    finally: {a: b}", "invalid buildspec: phases.post_build.finally must be a list of strings, not a map"),
            ("version: 0.2\nphases:\n  build:\n    on-failure: RETRY", "invalid buildspec: phases.build.on-failure must be ABORT or CONTINUE, not \"RETRY\""),
            ("version: 0.2\nphases:\n  build:\n    command: [x]", "invalid buildspec: phases.build.command is not a phase key; a phase has commands, finally and on-failure"),
            ("version: 0.2\nphases:\n  test:\n    commands: [x]", "invalid buildspec: phases.test is not a phase; the phases are install, pre_build, build and post_build"),
            ("version: 0.2\nphases: [build]", "invalid buildspec: phases must be a map of phases, not a list"),
            ("version: 0.2\nphases:\n  build: echo", "invalid buildspec: phases.build must be a map with commands (and finally, on-failure), not \"echo\""),
            ("version: 0.2\nenv:\n  variables:\n    PORT: [1]", "invalid buildspec: env.variables.PORT must be a string, number or boolean, not a list"),
            ("version: 0.2\nenv:\n  variables:\n    EMPTY:", "invalid buildspec: env.variables.EMPTY must be a string, number or boolean, not null"),
            ("version: 0.2\nenv:\n  variables:\n    MY-VAR: x", "invalid buildspec: env.variables.MY-VAR is not a valid variable name (letters, digits and _, not starting with a digit)"),
            ("version: 0.2\nenv:\n  variables: [A]", "invalid buildspec: env.variables must be a map of names to values, not a list"),
            ("version: 0.2\nenv:\n  shell: powershell.exe", "invalid buildspec: env.shell must be bash or /bin/sh, not \"powershell.exe\" (pipehook runs Linux shells only)"),
            ("version: 0.2\nenv:\n  parameter-store:\n    TOKEN: /x", "invalid buildspec: env.parameter-store is not supported by pipehook (it reads AWS services); set these variables in the project's environment instead"),
            ("version: 0.2\nenv:\n  secrets-manager: {}", "invalid buildspec: env.secrets-manager is not supported by pipehook (it reads AWS services); set these variables in the project's environment instead"),
            ("version: 0.2\nenv:\n  varibles: {}", "invalid buildspec: env.varibles is not an env key; pipehook reads env.variables and env.shell"),
            ("version: 0.2\nphase: {}", "invalid buildspec: phase is not a buildspec key; pipehook reads version, env and phases (and ignores artifacts, reports, cache, batch, proxy, run-as)"),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text);
            assert_eq!(err.to_string(), want, "{text}");
        }
        let err = parse("version: 0.2\nphases:\n  build:\n    commands: [\"unclosed").unwrap_err();
        assert!(err.to_string().starts_with("invalid buildspec: is not valid YAML: "), "{err}");
        assert_eq!(err.path, "");
        let err = parse("version: 0.2\nversion: 0.2\n").unwrap_err();
        assert!(err.to_string().contains("is not valid YAML"), "{err}");
    }

    #[test]
    fn empty_phases_and_env_are_fine() {
        let spec = parse("version: 0.2\nenv:\nphases:\n  install:\n  build:\n    commands:\n").unwrap();
        assert!(spec.variables.is_empty());
        assert_eq!(spec.phases.install, Some(Phase::default()));
        assert!(spec.phases.build.as_ref().unwrap().is_empty());
        assert_eq!(spec.phases.pre_build, None);
    }

    #[test]
    fn variable_names() {
        for (name, ok) in [
            ("A", true),
            ("_a1", true),
            ("PATH", true),
            ("1A", false),
            ("", false),
            ("A B", false),
            ("A-B", false),
            ("É", false),
        ] {
            assert_eq!(is_variable_name(name), ok, "{name:?}");
        }
    }
}
