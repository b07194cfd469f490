//! Property tests over buildspecs, which come from users and from repositories (`buildspec.yml`): any text, any
//! YAML shaped like a buildspec, and batch sections parse or fail with an error that names its place, never
//! panicking, in bounded time; and a well-formed buildspec keeps its variables and commands as written.

use pipehook_runner::batch::{parse_batch, MAX_BUILDS};
use pipehook_runner::buildspec::parse;
use proptest::prelude::*;
use std::time::{Duration, Instant};
use yaml_serde::{Mapping, Value};

const KEYS: &[&str] = &[
    "version",
    "env",
    "variables",
    "shell",
    "phases",
    "install",
    "pre_build",
    "build",
    "post_build",
    "commands",
    "finally",
    "on-failure",
    "runtime-versions",
    "artifacts",
    "reports",
    "cache",
    "batch",
    "build-list",
    "build-graph",
    "build-matrix",
    "identifier",
    "depend-on",
    "ignore-failure",
    "buildspec",
    "fast-fail",
    "timeout-in-mins",
    "static",
    "dynamic",
    "parameter-store",
    "exported-variables",
    "git-credential-helper",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        Just(Value::Number(0.2.into())),
        prop_oneof![
            Just("0.2".to_owned()),
            Just("0.1".to_owned()),
            Just("bash".to_owned()),
            Just("/bin/sh".to_owned()),
            Just("ABORT".to_owned()),
            Just("CONTINUE".to_owned()),
            "[A-Za-z_][A-Za-z0-9_]{0,6}",
            "\\PC{0,20}",
        ]
        .prop_map(Value::String),
    ]
}

/// YAML documents whose keys are mostly a buildspec's.
fn document() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Sequence),
            prop::collection::vec(
                (prop_oneof![5 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => "\\PC{0,8}"], inner),
                0..6
            )
            .prop_map(|pairs| {
                let mut m = Mapping::new();
                for (k, v) in pairs {
                    m.insert(Value::String(k), v);
                }
                Value::Mapping(m)
            }),
        ]
    })
}

fn yaml_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,300}",
        "([a-z_-]{1,10}:( [ -~]{0,12})?\n( {2,4}- [ -~]{0,12}\n){0,3}){0,6}",
        // Aliases, anchors, tags and flow collections, the YAML features bombs are made of.
        "(&a \\[\\*a, ?\\*a\\]|\\*[a-z]|&[a-z] [a-z]|!![a-z]{1,5} |\\{[a-z]: ?\\[[a-z, ]{0,8}\\]\\}|<<: \\*[a-z]|[a-z]{1,4}: |\n){0,30}",
    ]
}

fn timed<T>(f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_text_parses_or_names_what_is_wrong(text in yaml_text()) {
        if let Err(e) = timed(|| parse(&text)) {
            prop_assert!(!e.message.is_empty());
            prop_assert!(!e.to_string().is_empty());
        }
        if let Err(e) = timed(|| parse_batch(&text)) {
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn buildspec_shaped_yaml_parses_or_names_its_place(doc in document()) {
        let text = yaml_serde::to_string(&doc).unwrap();
        match timed(|| parse(&text)) {
            Ok(spec) => {
                for (name, _) in &spec.variables {
                    prop_assert!(!name.is_empty());
                }
            }
            Err(e) => prop_assert!(!e.message.is_empty(), "{e:?}"),
        }
        match timed(|| parse_batch(&text)) {
            Ok(Some(batch)) => {
                prop_assert!(batch.builds.len() <= MAX_BUILDS);
                let ids: std::collections::BTreeSet<&str> = batch.builds.iter().map(|b| b.identifier.as_str()).collect();
                prop_assert_eq!(ids.len(), batch.builds.len(), "identifiers are unique");
                for b in &batch.builds {
                    for d in &b.depend_on {
                        prop_assert!(ids.contains(d.as_str()), "{d} is a build of the batch");
                    }
                }
            }
            Ok(None) => {}
            Err(e) => prop_assert!(!e.message.is_empty(), "{e:?}"),
        }
    }

    #[test]
    fn a_well_formed_buildspec_keeps_what_it_says(
        variables in prop::collection::btree_map("[A-Z_][A-Z0-9_]{0,8}", "[ -~]{0,16}", 0..4),
        install in prop::collection::vec("[ -~]{1,30}", 0..3),
        build in prop::collection::vec("[ -~]{1,30}", 1..4),
    ) {
        let mut env = Mapping::new();
        let mut vars = Mapping::new();
        for (k, v) in &variables {
            vars.insert(Value::String(k.clone()), Value::String(v.clone()));
        }
        env.insert("variables".into(), Value::Mapping(vars));
        let phase = |commands: &[String]| {
            let mut m = Mapping::new();
            m.insert("commands".into(), Value::Sequence(commands.iter().cloned().map(Value::String).collect()));
            Value::Mapping(m)
        };
        let mut phases = Mapping::new();
        if !install.is_empty() {
            phases.insert("install".into(), phase(&install));
        }
        phases.insert("build".into(), phase(&build));
        let mut top = Mapping::new();
        top.insert("version".into(), Value::String("0.2".into()));
        top.insert("env".into(), Value::Mapping(env));
        top.insert("phases".into(), Value::Mapping(phases));
        let text = yaml_serde::to_string(&Value::Mapping(top)).unwrap();
        let spec = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let want: Vec<(String, String)> = variables.into_iter().collect();
        let mut got = spec.variables.clone();
        got.sort();
        prop_assert_eq!(got, want);
        prop_assert_eq!(&spec.phases.build.as_ref().unwrap().commands, &build);
        let installed = spec.phases.install.as_ref().map(|p| p.commands.clone()).unwrap_or_default();
        prop_assert_eq!(installed, install);
    }
}
