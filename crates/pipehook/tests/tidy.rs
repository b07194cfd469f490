//! Checks of the rules ARCHITECTURE.md states, so they hold because a test fails, not because someone
//! remembered them:
//! - the pure crates (`pipehook-domain`, `pipehook-inbound`) depend on no runtime, HTTP stack or database;
//! - SQL is written only in `pipehook-store`;
//! - the SQLite and PostgreSQL migrations are kept in step (same files; the same tables, columns and indexes,
//!   whatever the type words);
//! - every setting with an environment variable is in `config.default.toml`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `[dependencies]` names of a crate's manifest.
fn dependencies(manifest: &Path) -> Vec<String> {
    let doc: toml::Table = std::fs::read_to_string(manifest).unwrap().parse().unwrap();
    doc.get("dependencies").and_then(|d| d.as_table()).map(|t| t.keys().cloned().collect()).unwrap_or_default()
}

#[test]
fn pure_crates_depend_on_no_runtime_http_or_database() {
    const IMPURE: [&str; 8] = ["tokio", "tokio-util", "axum", "hyper", "hyper-util", "sqlx", "reqwest", "tower"];
    for krate in ["pipehook-domain", "pipehook-inbound"] {
        let deps = dependencies(&root().join("crates").join(krate).join("Cargo.toml"));
        let bad: Vec<&String> = deps.iter().filter(|d| IMPURE.contains(&d.as_str())).collect();
        assert!(bad.is_empty(), "{krate} must stay pure (no I/O): it depends on {bad:?}");
    }
}

#[test]
fn sql_is_written_only_in_the_store() {
    // A statement's start inside a string literal: how SQL appears in Rust code.
    const STARTS: [&str; 7] = [
        "\"SELECT ",
        "\"INSERT INTO ",
        "\"DELETE FROM ",
        "\"CREATE TABLE",
        "\"ALTER TABLE",
        "\"WITH RECURSIVE",
        "\"UPDATE ",
    ];
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.file_name().is_some_and(|n| n == "pipehook-store") {
            continue;
        }
        if dir.join("src").is_dir() {
            rust_files(&dir.join("src"), &mut files);
        }
    }
    rust_files(&root().join("bench/src"), &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            // `"UPDATE ` followed by a table and SET; the others are unambiguous.
            if let Some(start) = STARTS.iter().find(|s| line.contains(*s)) {
                if *start == "\"UPDATE " && !line.contains(" SET ") {
                    continue;
                }
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "SQL outside pipehook-store (only the store writes SQL):\n{}", found.join("\n"));
}

/// What a migration declares: table → columns, and index names. Type words, constraints and data statements
/// are left out; they may differ between the backends.
#[derive(Debug, Default, PartialEq)]
struct Schema {
    columns: BTreeMap<String, BTreeSet<String>>,
    indexes: BTreeSet<String>,
}

fn ident(word: &str) -> String {
    word.trim_matches(|c: char| c == '"' || c == '(' || c == ')' || c == ',' || c == ';').to_ascii_lowercase()
}

fn schema_of(sql: &str) -> Schema {
    let mut schema = Schema::default();
    // Comments out, then one statement at a time.
    let text: String = sql.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    for statement in text.split(';') {
        let words: Vec<&str> = statement.split_whitespace().collect();
        let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let is = |i: usize, w: &str| upper.get(i).is_some_and(|u| u == w);
        if is(0, "CREATE") && is(1, "TABLE") {
            let name_at = if is(2, "IF") { 5 } else { 2 };
            let table = ident(words[name_at].split('(').next().unwrap());
            let body = &statement[statement.find('(').unwrap() + 1..statement.rfind(')').unwrap()];
            let mut depth = 0;
            let mut part = String::new();
            let mut parts = Vec::new();
            for c in body.chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(std::mem::take(&mut part));
                        continue;
                    }
                    _ => {}
                }
                part.push(c);
            }
            parts.push(part);
            let columns = schema.columns.entry(table).or_default();
            for p in parts {
                let first = p.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                if ["PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "CONSTRAINT", ""].contains(&first.as_str()) {
                    continue;
                }
                columns.insert(ident(p.split_whitespace().next().unwrap()));
            }
        } else if is(0, "ALTER") && is(1, "TABLE") {
            let table = ident(words[2]);
            if let Some(i) = upper.iter().position(|u| u == "COLUMN") {
                let column = ident(words[i + 1]);
                if is(3, "ADD") {
                    schema.columns.entry(table).or_default().insert(column);
                } else if is(3, "DROP") {
                    schema.columns.entry(table).or_default().remove(&column);
                }
            }
        } else if is(0, "CREATE") && (is(1, "INDEX") || (is(1, "UNIQUE") && is(2, "INDEX"))) {
            let at = if is(1, "UNIQUE") { 3 } else { 2 };
            let at = if is(at, "IF") { at + 3 } else { at };
            schema.indexes.insert(ident(words[at]));
        } else if is(0, "DROP") && is(1, "INDEX") {
            schema.indexes.remove(&ident(words.last().unwrap()));
        } else if is(0, "DROP") && is(1, "TABLE") {
            schema.columns.remove(&ident(words.last().unwrap()));
        }
    }
    schema
}

#[test]
fn the_two_backends_migrations_are_kept_in_step() {
    let dir = root().join("crates/pipehook-store/migrations");
    let names = |backend: &str| -> BTreeSet<String> {
        std::fs::read_dir(dir.join(backend))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect()
    };
    let (sqlite, postgres) = (names("sqlite"), names("postgres"));
    assert_eq!(sqlite, postgres, "every migration exists for both backends, under the same name");
    let (mut all_sqlite, mut all_postgres) = (String::new(), String::new());
    for name in &sqlite {
        let a = std::fs::read_to_string(dir.join("sqlite").join(name)).unwrap();
        let b = std::fs::read_to_string(dir.join("postgres").join(name)).unwrap();
        all_sqlite.push_str(&a);
        all_sqlite.push_str(";\n");
        all_postgres.push_str(&b);
        all_postgres.push_str(";\n");
        assert_eq!(schema_of(&a), schema_of(&b), "{name}: the backends declare different tables, columns or indexes");
    }
    // The schema as a whole, too (a column added on one side in one file and the other side in another).
    let (a, b) = (schema_of(&all_sqlite), schema_of(&all_postgres));
    assert!(
        a.columns.contains_key("jobs") && a.indexes.contains("jobs_fair"),
        "the parser reads the migrations: {a:?}"
    );
    assert_eq!(a, b);
}

#[test]
fn every_setting_is_in_the_defaults_file() {
    let defaults: toml::Table = std::fs::read_to_string(root().join("config.default.toml"))
        .unwrap()
        .parse()
        .expect("config.default.toml parses");
    let mut missing = Vec::new();
    for (var, key) in pipehook::config::ENV_VARS {
        let mut at: Option<&toml::Value> = None;
        let mut table = Some(&defaults);
        for part in key.split('.') {
            at = table.and_then(|t| t.get(part));
            table = at.and_then(|v| v.as_table());
        }
        if at.is_none() {
            missing.push(format!("{key} ({var})"));
        }
        let documented = std::fs::read_to_string(root().join("config.default.toml")).unwrap().contains(var);
        if !documented {
            missing.push(format!("{var} is not named in config.default.toml's comments"));
        }
    }
    assert!(missing.is_empty(), "settings missing from config.default.toml:\n{}", missing.join("\n"));
}

#[test]
fn the_schema_reader_sees_what_it_must() {
    let s = schema_of(
        "-- c\nCREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT NOT NULL DEFAULT 'x', b NUMERIC(10, 2), \
         UNIQUE (a, b));\nALTER TABLE t ADD COLUMN c BIGINT;\nCREATE UNIQUE INDEX t_a ON t(a) WHERE b > 0;",
    );
    assert_eq!(s.columns["t"], ["a", "b", "c", "id"].iter().map(|c| c.to_string()).collect());
    assert_eq!(s.indexes, ["t_a".to_owned()].into_iter().collect());
}
