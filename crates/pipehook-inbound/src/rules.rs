//! CodePipeline webhook filter rules: `jsonPath` + optional `matchEquals`, compiled once at PutWebhook and
//! evaluated against every trigger payload.
//!
//! AWS evaluates `jsonPath` with Jayway JsonPath and documents little else; pipehook uses RFC 9535 (through
//! `serde_json_path`), whose every query yields a possibly empty list of nodes and never fails at evaluation
//! time. The comparison rules, which AWS leaves unstated, are ours:
//!
//! - a rule that selects nothing fails (under Jayway a missing path throws `PathNotFoundException`, which we
//!   take to mean no match);
//! - without `matchEquals`, a rule passes when it selects anything at all;
//! - with `matchEquals`, it passes when ANY selected node equals the resolved value: a string byte for byte, a
//!   number, boolean or null by its JSON text (`"3"` matches `3`, `"true"` matches `true`; numbers are written
//!   the way `serde_json` writes them, so `1.50` in a payload is `1.5`); objects and arrays never match;
//! - a `jsonPath` that does not start with `$` is read relative to the root, as Jayway reads it: `$.` is put in
//!   front (`ref` is `$.ref`, `commits[*].id` is `$.commits[*].id`, and `.ref` becomes `$..ref`, as in Jayway),
//!   or `$` before a bracket (`['ref']` is `$['ref']`); a path that does not parse that way either is still an
//!   invalid pattern;
//! - the RFC 9535 functions `length()`, `count()` and `value()` are accepted in filters, but `match()` and
//!   `search()` are not (they are an invalid pattern): `serde_json_path` compiles their regex anew for every
//!   node on every evaluation, which one hostile rule could turn into a CPU sink on the trigger path, and
//!   CodePipeline's Jayway dialect has no such functions to be compatible with;
//! - `{Key}` placeholders in `matchEquals` are filled from the target action's configuration when the rule is
//!   compiled, so an unknown key is an error at PutWebhook rather than a webhook that silently never fires.
//!
//! A webhook passes when every rule passes; [`evaluate`] still runs them all, so `explain` can show each one.
//!
//! Cost: nested descendant segments and filters make some queries exponential in their nesting (see [`cost`]).
//! [`compile`] refuses those shapes ([`RuleError::TooCostly`]) (at most [`MAX_DESCENDANT_SEGMENTS`] `..` per rule,
//! filters at most [`MAX_FILTER_DEPTH`] deep, no `..` in a `$` query inside a filter, bracket selectors
//! repeating nodes at most [`MAX_SELECTOR_PRODUCT`] times, 150 characters), and [`evaluate_bounded`] does not
//! run a rule whose bound on the payload at hand exceeds the caller's budget: it fails with an `error` instead.

mod cost;

use std::collections::BTreeMap;
use std::io;

use serde_json::Value;
use serde_json_path::JsonPath;

pub use cost::{PayloadStats, MAX_DESCENDANT_SEGMENTS, MAX_FILTER_DEPTH, MAX_SELECTOR_PRODUCT};

/// At most this many rules per webhook (CodePipeline's `WebhookFilters` max).
pub const MAX_RULES: usize = 5;
/// `jsonPath` and `matchEquals` are each 1..=150 characters.
pub const MAX_FIELD_CHARS: usize = 150;
/// [`RuleOutcome::found`] keeps the JSON text of at most this many nodes...
pub const MAX_FOUND_NODES: usize = 5;
/// ...each cut to at most this many characters, so a rule selecting `$` cannot bloat the inbound log.
pub const MAX_FOUND_CHARS: usize = 200;

/// One filter rule as the user wrote it (CodePipeline's `WebhookFilterRule`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub json_path: String,
    pub match_equals: Option<String>,
}

/// A rule whose path is parsed and whose placeholders are resolved, ready to evaluate many times.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    index: usize,
    path: JsonPath,
    shape: cost::Shape,
    json_path: String,
    match_equals: Option<String>,
    wanted: Option<String>,
}

impl CompiledRule {
    /// The rule's position in the webhook's `filters`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The `jsonPath` as written.
    pub fn json_path(&self) -> &str {
        &self.json_path
    }

    /// The `matchEquals` as written, placeholders and all.
    pub fn match_equals(&self) -> Option<&str> {
        self.match_equals.as_deref()
    }

    /// The `matchEquals` with its placeholders filled in: the value nodes are compared with.
    pub fn wanted(&self) -> Option<&str> {
        self.wanted.as_deref()
    }
}

/// Why a webhook's filters were refused. Each variant names the AWS exception the API should answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The `jsonPath` is not an RFC 9535 query (AWS: `InvalidWebhookFilterPatternException`).
    #[error("filter {index}: jsonPath {path:?} is not a valid RFC 9535 JSONPath query: {reason}")]
    InvalidPattern { index: usize, path: String, reason: String },
    /// The `jsonPath` is valid, but of a shape that can cost too much on some payloads (see [`cost`]; AWS:
    /// `InvalidWebhookFilterPatternException` as well).
    #[error("filter {index}: jsonPath {path:?} is too costly to evaluate: {reason}")]
    TooCostly { index: usize, path: String, reason: String },
    /// `matchEquals` names a `{Key}` the target action's configuration lacks (AWS: `ValidationException`).
    #[error("filter {index}: matchEquals placeholder {{{key}}} is not a configuration key of the target action")]
    UnknownPlaceholder { index: usize, key: String },
    /// `field` (`"jsonPath"` or `"matchEquals"`) is empty or longer than 150 characters (AWS: `ValidationException`).
    #[error("filter {index}: {field} must be 1 to 150 characters long")]
    Length { index: usize, field: &'static str },
    /// More than five rules (AWS: `ValidationException`).
    #[error("a webhook has at most 5 filters, got {count}")]
    TooMany { count: usize },
}

/// What one rule did with one payload: what it wanted, what it found, whether it passed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleOutcome {
    pub index: usize,
    pub json_path: String,
    /// The resolved `matchEquals`, or `None` when the rule only asks that something be selected.
    pub wanted: Option<String>,
    /// The JSON text of up to 5 selected nodes, each cut to 200 characters (the last one `…` when cut).
    pub found: Vec<String>,
    pub passed: bool,
    /// Why the rule was not (fully) evaluated, which fails it: over the cost or time budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RuleOutcome {
    /// A rule that failed without a result: `error` says why.
    pub fn failed(rule: &CompiledRule, error: String) -> RuleOutcome {
        RuleOutcome {
            index: rule.index,
            json_path: rule.json_path.clone(),
            wanted: rule.wanted.clone(),
            found: Vec::new(),
            passed: false,
            error: Some(error),
        }
    }
}

/// Validates and compiles a webhook's rules. Placeholders are resolved from `action_configuration` (the target
/// action's `configuration` map), once, here: a configuration change therefore needs the webhook recompiled.
///
/// A path whose shape is too costly (see the module docs) is a [`RuleError::TooCostly`].
pub fn compile(
    rules: &[Rule],
    action_configuration: &BTreeMap<String, String>,
) -> Result<Vec<CompiledRule>, RuleError> {
    compile_checked(rules, action_configuration, true)
}

/// [`compile`] without the shape limits, for webhooks already stored (a webhook accepted before the limits
/// keeps working; its evaluations are still bounded by [`evaluate_bounded`]).
pub fn compile_stored(
    rules: &[Rule],
    action_configuration: &BTreeMap<String, String>,
) -> Result<Vec<CompiledRule>, RuleError> {
    compile_checked(rules, action_configuration, false)
}

fn compile_checked(
    rules: &[Rule],
    action_configuration: &BTreeMap<String, String>,
    check_shape: bool,
) -> Result<Vec<CompiledRule>, RuleError> {
    if rules.len() > MAX_RULES {
        return Err(RuleError::TooMany { count: rules.len() });
    }
    rules.iter().enumerate().map(|(index, rule)| compile_one(index, rule, action_configuration, check_shape)).collect()
}

fn compile_one(
    index: usize,
    rule: &Rule,
    configuration: &BTreeMap<String, String>,
    check_shape: bool,
) -> Result<CompiledRule, RuleError> {
    // AWS (Smithy) lengths count characters, not bytes.
    let length_ok = |s: &str| (1..=MAX_FIELD_CHARS).contains(&s.chars().count());
    if !length_ok(&rule.json_path) {
        return Err(RuleError::Length { index, field: "jsonPath" });
    }
    if let Some(match_equals) = &rule.match_equals {
        if !length_ok(match_equals) {
            return Err(RuleError::Length { index, field: "matchEquals" });
        }
    }
    let invalid = |reason| RuleError::InvalidPattern { index, path: rule.json_path.clone(), reason };
    let (path, rooted) = parse_path(&rule.json_path).map_err(invalid)?;
    let shape = cost::Shape::of(&rooted);
    if check_shape {
        cost::check(&shape).map_err(|reason| RuleError::TooCostly { index, path: rule.json_path.clone(), reason })?;
    }
    let wanted = rule
        .match_equals
        .as_deref()
        .map(|text| {
            resolve_placeholders(text, configuration).map_err(|key| RuleError::UnknownPlaceholder { index, key })
        })
        .transpose()?;
    Ok(CompiledRule {
        index,
        path,
        shape,
        json_path: rule.json_path.clone(),
        match_equals: rule.match_equals.clone(),
        wanted,
    })
}

/// Parses a `jsonPath`; one without the leading `$` is read relative to the root, as Jayway JsonPath (what AWS
/// evaluates rules with) reads it. The error is for the text that was parsed; the text parsed comes with the path.
fn parse_path(text: &str) -> Result<(JsonPath, String), String> {
    if text.starts_with('$') {
        return JsonPath::parse(text).map(|p| (p, text.to_owned())).map_err(|e| e.to_string());
    }
    let rooted = if text.starts_with('[') { format!("${text}") } else { format!("$.{text}") };
    match JsonPath::parse(&rooted) {
        Ok(p) => Ok((p, rooted)),
        Err(e) => Err(format!("{e} (read as {rooted:?})")),
    }
}

/// Replaces every `{Key}` with the configuration's value for `Key`, or returns the first unknown key.
///
/// A placeholder is `{`, a key of 1 to 50 letters, digits, `_`, `-` or `.`, then `}` (configuration keys are
/// identifiers such as `Branch` or `BranchName`; AWS caps them at 50 characters). Any other text with braces
/// in it (`{}`, a lone `{`, `{"a":1}`) is literal, so such values need no escaping. Replacement is a single
/// pass: a configuration value that itself contains `{X}` is inserted as it is.
fn resolve_placeholders(text: &str, configuration: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').filter(|&i| is_placeholder_key(&after[..i]));
        match close {
            Some(close) => {
                let key = &after[..close];
                let value = configuration.get(key).ok_or_else(|| key.to_string())?;
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_placeholder_key(key: &str) -> bool {
    (1..=50).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Runs every rule against `payload`. The webhook's verdict is that all outcomes passed; all rules are run
/// anyway so `explain` and the inbound log can say which ones failed and what they saw.
pub fn evaluate(rules: &[CompiledRule], payload: &Value) -> Vec<RuleOutcome> {
    rules.iter().map(|rule| evaluate_one(rule, payload)).collect()
}

/// [`evaluate`] with a cost budget, one rule at a time: a rule whose bound on this payload (in node visits, see
/// [`cost`]) exceeds `max_cost` is not run and fails with an `error` saying so. `each` receives every outcome
/// as soon as it is known and answers whether to go on (a caller that stopped waiting answers false, and the
/// remaining rules are not run).
pub fn evaluate_bounded(
    rules: &[CompiledRule],
    payload: &Value,
    max_cost: u64,
    mut each: impl FnMut(RuleOutcome) -> bool,
) {
    let mut stats = None;
    for rule in rules {
        let outcome = if rule.shape.is_trivial() {
            evaluate_one(rule, payload)
        } else {
            let stats = stats.get_or_insert_with(|| PayloadStats::of(payload));
            let bound = cost::estimate(&rule.shape, stats);
            if bound > max_cost as f64 {
                RuleOutcome::failed(
                    rule,
                    format!(
                        "not evaluated: on this payload ({} values, {} deep) the path could take up to {bound:.0} \
                         node visits, over the budget of {max_cost}",
                        stats.nodes, stats.depth
                    ),
                )
            } else {
                evaluate_one(rule, payload)
            }
        };
        if !each(outcome) {
            return;
        }
    }
}

fn evaluate_one(rule: &CompiledRule, payload: &Value) -> RuleOutcome {
    let nodes = rule.path.query(payload);
    let passed = !nodes.is_empty()
        && match rule.wanted.as_deref() {
            None => true,
            Some(wanted) => nodes.iter().any(|node| node_equals(node, wanted)),
        };
    RuleOutcome {
        index: rule.index,
        json_path: rule.json_path.clone(),
        wanted: rule.wanted.clone(),
        found: nodes.iter().take(MAX_FOUND_NODES).map(|node| json_text(node)).collect(),
        passed,
        error: None,
    }
}

/// Our equality between a selected node and the resolved `matchEquals` (see the module docs).
fn node_equals(node: &Value, wanted: &str) -> bool {
    match node {
        Value::String(s) => s == wanted,
        Value::Number(n) => n.to_string() == wanted,
        Value::Bool(true) => wanted == "true",
        Value::Bool(false) => wanted == "false",
        Value::Null => wanted == "null",
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// The node's JSON text, at most [`MAX_FOUND_CHARS`] characters. Serialisation stops once enough bytes are
/// written, so selecting a large object costs no more than selecting a small one.
fn json_text(node: &Value) -> String {
    // Four bytes per character at most, plus one to learn that there was more.
    let mut writer = Bounded { buf: Vec::new(), limit: MAX_FOUND_CHARS * 4 + 1 };
    // An error here only means the limit was reached; what was written so far is what we want.
    let _ = serde_json::to_writer(&mut writer, node);
    let text = match String::from_utf8(writer.buf) {
        Ok(text) => text,
        // The limit may cut a character in two; keep the whole characters before it.
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        }
    };
    if text.chars().count() <= MAX_FOUND_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_FOUND_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// A writer that keeps the first `limit` bytes and then refuses more.
struct Bounded {
    buf: Vec<u8>,
    limit: usize,
}

impl io::Write for Bounded {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.limit - self.buf.len();
        if room == 0 {
            return Err(io::Error::other("limit reached"));
        }
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(path: &str, equals: Option<&str>) -> Rule {
        Rule { json_path: path.to_string(), match_equals: equals.map(str::to_string) }
    }

    fn config() -> BTreeMap<String, String> {
        [("Branch", "main"), ("Owner", "Codertocat"), ("Repo", "Hello-World")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn payload() -> Value {
        json!({
            "ref": "refs/heads/main",
            "action": "opened",
            "number": 3,
            "ratio": 1.50,
            "draft": false,
            "merged": true,
            "closed_at": null,
            "repository": {"full_name": "Codertocat/Hello-World", "name": "Hello-World", "owner": {"login": "Codertocat"}},
            "commits": [
                {"id": "a1", "message": "fix", "modified": ["README.md"]},
                {"id": "b2", "message": "docs", "modified": ["docs/x.md", "src/lib.rs"]}
            ],
            "labels": [],
            "emoji": "héllo 🎉"
        })
    }

    /// One evaluation case: a single rule against [`payload`], whether it passes, and what it found.
    fn check(path: &str, equals: Option<&str>, passed: bool, found: &[&str]) {
        let compiled = compile(&[rule(path, equals)], &config()).unwrap_or_else(|e| panic!("{path}: {e}"));
        let outcome = &evaluate(&compiled, &payload())[0];
        assert_eq!(outcome.passed, passed, "{path} == {equals:?}: {outcome:?}");
        assert_eq!(outcome.found, found, "{path}");
    }

    #[test]
    fn evaluation_table() {
        // Strings compare byte for byte.
        check("$.ref", Some("refs/heads/main"), true, &[r#""refs/heads/main""#]);
        check("$.ref", Some("refs/heads/Main"), false, &[r#""refs/heads/main""#]);
        check("$.ref", Some("refs/heads/main "), false, &[r#""refs/heads/main""#]);
        check("$['ref']", Some("refs/heads/main"), true, &[r#""refs/heads/main""#]);
        check("$.emoji", Some("héllo 🎉"), true, &[r#""héllo 🎉""#]);
        // Placeholders resolve from the action configuration.
        check("$.ref", Some("refs/heads/{Branch}"), true, &[r#""refs/heads/main""#]);
        check("$.repository.full_name", Some("{Owner}/{Repo}"), true, &[r#""Codertocat/Hello-World""#]);
        // Numbers, booleans and null compare by their JSON text.
        check("$.number", Some("3"), true, &["3"]);
        check("$.number", Some("3.0"), false, &["3"]);
        check("$.number", Some("03"), false, &["3"]);
        check("$.ratio", Some("1.5"), true, &["1.5"]);
        check("$.merged", Some("true"), true, &["true"]);
        check("$.merged", Some("True"), false, &["true"]);
        check("$.draft", Some("false"), true, &["false"]);
        check("$.closed_at", Some("null"), true, &["null"]);
        // A string never equals a number spelled the same way in quotes.
        check("$.action", Some("\"opened\""), false, &[r#""opened""#]);
        // Objects and arrays never match, not even their own JSON text.
        check("$.labels", Some("[]"), false, &["[]"]);
        check("$.repository.owner", Some(r#"{"login":"Codertocat"}"#), false, &[r#"{"login":"Codertocat"}"#]);
        // Several selected nodes: any one matching is enough.
        check("$.commits[*].id", Some("b2"), true, &[r#""a1""#, r#""b2""#]);
        check("$.commits[*].id", Some("c3"), false, &[r#""a1""#, r#""b2""#]);
        check("$..modified[*]", Some("src/lib.rs"), true, &[r#""README.md""#, r#""docs/x.md""#, r#""src/lib.rs""#]);
        check("$.commits[?@.message == 'docs'].id", Some("b2"), true, &[r#""b2""#]);
        check("$.commits[?(@.message == 'docs')].id", None, true, &[r#""b2""#]);
        check("$.commits[?length(@.message) == 4].id", None, true, &[r#""b2""#]);
        check("$.commits[?count(@.modified[*]) == 2].id", None, true, &[r#""b2""#]);
        // Without the leading `$`, a path is read from the root, as Jayway (AWS) reads it.
        check("ref", Some("refs/heads/{Branch}"), true, &[r#""refs/heads/main""#]);
        check("repository.owner.login", Some("Codertocat"), true, &[r#""Codertocat""#]);
        check("commits[*].id", Some("b2"), true, &[r#""a1""#, r#""b2""#]);
        check("commits[?@.message == 'docs'].id", None, true, &[r#""b2""#]);
        check("['ref']", Some("refs/heads/main"), true, &[r#""refs/heads/main""#]);
        check("[*].full_name", Some("Codertocat/Hello-World"), true, &[r#""Codertocat/Hello-World""#]);
        check(".name", None, true, &[r#""Hello-World""#]);
        check("missing", None, false, &[]);
        // Selecting nothing fails, with or without matchEquals.
        check("$.missing", Some("x"), false, &[]);
        check("$.missing", None, false, &[]);
        check("$.labels[*]", None, false, &[]);
        check("$.commits[?@.message == 'nope']", None, false, &[]);
        // Without matchEquals, anything selected passes, null included (it is a value, not an absence).
        check("$.action", None, true, &[r#""opened""#]);
        check("$.closed_at", None, true, &["null"]);
        check("$.labels", None, true, &["[]"]);
    }

    #[test]
    fn found_is_bounded() {
        let many = json!({"items": (0..20).collect::<Vec<_>>(), "long": "x".repeat(1000), "wide": "é".repeat(1000)});
        let compiled = compile(
            &[rule("$.items[*]", None), rule("$.long", None), rule("$", None), rule("$.wide", None)],
            &config(),
        )
        .unwrap();
        let outcomes = evaluate(&compiled, &many);
        assert_eq!(outcomes[0].found, ["0", "1", "2", "3", "4"]);
        for outcome in &outcomes[1..] {
            let text = &outcome.found[0];
            assert_eq!(text.chars().count(), MAX_FOUND_CHARS, "{text}");
            assert!(text.ends_with('…'), "{text}");
        }
        assert!(outcomes[1].found[0].starts_with("\"xxx"));
        assert!(outcomes[3].found[0].starts_with("\"ééé"));
    }

    #[test]
    fn all_rules_are_evaluated_and_reported() {
        let rules = [rule("$.missing", None), rule("$.ref", Some("refs/heads/{Branch}")), rule("$.number", Some("4"))];
        let outcomes = evaluate(&compile(&rules, &config()).unwrap(), &payload());
        assert_eq!(
            outcomes.iter().map(|o| (o.index, o.passed)).collect::<Vec<_>>(),
            [(0, false), (1, true), (2, false)]
        );
        assert_eq!(outcomes[1].wanted.as_deref(), Some("refs/heads/main"));
        assert_eq!(outcomes[1].json_path, "$.ref");
        assert_eq!(outcomes[0].wanted, None);
        assert!(evaluate(&[], &payload()).is_empty(), "no rules: nothing to fail, so the webhook passes");
    }

    /// One compile case: the rules and the error expected (or `None` for success).
    fn check_compile(rules: &[Rule], want: Option<RuleError>) {
        match (compile(rules, &config()), want) {
            (Ok(_), None) => {}
            (Err(got), Some(want)) => assert_eq!(got, want),
            (got, want) => panic!("{rules:?}: wanted {want:?}, got {got:?}"),
        }
    }

    #[test]
    fn compile_table() {
        let ok = rule("$.ref", None);
        check_compile(&[], None);
        check_compile(&vec![ok.clone(); 5], None);
        check_compile(&vec![ok.clone(); 6], Some(RuleError::TooMany { count: 6 }));
        check_compile(&[rule("", None)], Some(RuleError::Length { index: 0, field: "jsonPath" }));
        check_compile(
            &[ok.clone(), rule("$.ref", Some(""))],
            Some(RuleError::Length { index: 1, field: "matchEquals" }),
        );
        let long_path = format!("$.{}", "a".repeat(148));
        check_compile(&[rule(&long_path, None)], None);
        check_compile(&[rule(&format!("{long_path}b"), None)], Some(RuleError::Length { index: 0, field: "jsonPath" }));
        // Lengths count characters: 150 two-byte characters are within the limit.
        check_compile(&[rule("$.ref", Some(&"é".repeat(150)))], None);
        check_compile(
            &[rule("$.ref", Some(&"é".repeat(151)))],
            Some(RuleError::Length { index: 0, field: "matchEquals" }),
        );
        check_compile(
            &[ok.clone(), rule("$.ref", Some("refs/heads/{Nope}"))],
            Some(RuleError::UnknownPlaceholder { index: 1, key: "Nope".into() }),
        );
        check_compile(
            &[rule("$.ref", Some("{branch}"))],
            Some(RuleError::UnknownPlaceholder { index: 0, key: "branch".into() }),
        );
        for bad in
            ["$.[", "$.ref.", "$[?(@.a =~ /x/)]", "$.ref.length()", "$[(@.length-1)]", " $.ref", "$.a[?@.b in ['x']]"]
        {
            match compile(&[rule(bad, None)], &config()) {
                Err(RuleError::InvalidPattern { index: 0, path, reason }) => {
                    assert_eq!(path, bad);
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?} should be an invalid pattern, got {other:?}"),
            }
        }
        // Relative paths that do not parse from the root either stay invalid, and say how they were read.
        for (bad, read_as) in [
            ("ref.", "$.ref."),
            ("ref[", "$.ref["),
            ("ref..", "$.ref.."),
            (" ref", "$. ref"),
            ("@.ref", "$.@.ref"),
            ("ref =~ /x/", "$.ref =~ /x/"),
            ("[?(@.a =~ /x/)]", "$[?(@.a =~ /x/)]"),
            ("commits[?match(@.message, 'd.*')]", "$.commits[?match(@.message, 'd.*')]"),
        ] {
            match compile(&[rule(bad, None)], &config()) {
                Err(RuleError::InvalidPattern { index: 0, path, reason }) => {
                    assert_eq!(path, bad, "the path is reported as written");
                    assert!(reason.ends_with(&format!("(read as {read_as:?})")), "{bad:?}: {reason}");
                }
                other => panic!("{bad:?} should be an invalid pattern, got {other:?}"),
            }
        }
        // The outcome shows the path as written.
        let compiled = compile(&[rule("ref", None)], &config()).unwrap();
        assert_eq!(compiled[0].json_path(), "ref");
        assert_eq!(evaluate(&compiled, &payload())[0].json_path, "ref");
    }

    /// The report's freezing rule: refused at put time, kept working when already stored, and not run when
    /// its bound on the payload is over the budget.
    #[test]
    fn costly_paths_are_refused_or_not_run() {
        let nested = "$..[?@..[?@..[?@..[?@..[?@..zz]]]]]";
        match compile(&[rule(nested, None)], &config()) {
            Err(e @ RuleError::TooCostly { index: 0, .. }) => {
                assert!(e.to_string().contains("too costly to evaluate: 6 descendant segments"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // Relative paths are checked as they are read.
        assert!(matches!(compile(&[rule(".a..b..c", None)], &config()), Err(RuleError::TooCostly { .. })));
        let stored = compile_stored(&[rule("$.ref", None), rule(nested, None)], &config()).unwrap();
        let mut deep = json!("zz");
        for _ in 0..100 {
            deep = Value::Array(vec![deep]);
        }
        let started = std::time::Instant::now();
        let mut outcomes = Vec::new();
        evaluate_bounded(&stored, &deep, 1_000_000, |o| {
            outcomes.push(o);
            true
        });
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
        assert_eq!(outcomes.len(), 2);
        assert!(!outcomes[0].passed && outcomes[0].error.is_none(), "a cheap rule is evaluated: {:?}", outcomes[0]);
        let error = outcomes[1].error.as_deref().unwrap();
        assert!(!outcomes[1].passed && error.contains("over the budget of 1000000"), "{error}");
        // Within the budget, the bounded evaluation is the plain one; a caller that stops gets no more.
        let cheap = compile(&[rule("$.ref", Some("refs/heads/main")), rule("$..name", None)], &config()).unwrap();
        let mut got = Vec::new();
        evaluate_bounded(&cheap, &payload(), 1_000_000, |o| {
            got.push(o);
            true
        });
        assert_eq!(got, evaluate(&cheap, &payload()));
        let mut calls = 0;
        evaluate_bounded(&cheap, &payload(), 1_000_000, |_| {
            calls += 1;
            false
        });
        assert_eq!(calls, 1);
    }

    #[test]
    fn placeholder_table() {
        fn check(text: &str, want: Result<&str, &str>) {
            assert_eq!(
                resolve_placeholders(text, &config()),
                want.map(str::to_string).map_err(str::to_string),
                "{text}"
            );
        }
        check("refs/heads/{Branch}", Ok("refs/heads/main"));
        check("{Owner}/{Repo}", Ok("Codertocat/Hello-World"));
        check("{Branch}{Branch}", Ok("mainmain"));
        check("plain", Ok("plain"));
        check("{}", Ok("{}"));
        check("a{", Ok("a{"));
        check("a}", Ok("a}"));
        check("{{Branch}}", Ok("{main}"));
        check("{ {Branch}", Ok("{ main"));
        check("{not a key}", Ok("{not a key}"));
        check(r#"{"a":1}"#, Ok(r#"{"a":1}"#));
        check("{Branch.Name_x-1}", Err("Branch.Name_x-1"));
        check(&format!("{{{}}}", "K".repeat(51)), Ok(&format!("{{{}}}", "K".repeat(51))));
        check("{Nope}", Err("Nope"));
        check("x{Branch}{Nope}", Err("Nope"));
    }
}
