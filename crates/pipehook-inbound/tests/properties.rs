//! Property tests over what the internet sends to trigger URLs and what users put in webhooks: payload
//! normalization (any JSON under any provider's event header, any body under any content type), JSONPath rule
//! compilation and evaluation, and CodeBuild filter groups. Whatever the input: no panic, an answer in bounded
//! time, and only the documented errors.

use http::{HeaderMap, HeaderName, HeaderValue};
use pipehook_inbound::event::{self, is_commit_id, Provider, SourceEvent};
use pipehook_inbound::filter_groups::{self, SourceType, WebhookFilter};
use pipehook_inbound::rules::{self, Rule, RuleError, MAX_FIELD_CHARS};
use proptest::prelude::*;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Keys the providers' payloads use, so generated documents reach the mappings' interesting branches.
const KEYS: &[&str] = &[
    "ref",
    "after",
    "before",
    "head_commit",
    "id",
    "message",
    "commits",
    "added",
    "modified",
    "removed",
    "sender",
    "login",
    "repository",
    "full_name",
    "html_url",
    "pull_request",
    "number",
    "head",
    "base",
    "sha",
    "action",
    "merged",
    "release",
    "tag_name",
    "name",
    "workflow_job",
    "head_branch",
    "head_sha",
    "object_kind",
    "checkout_sha",
    "user_username",
    "user_id",
    "object_attributes",
    "iid",
    "source_branch",
    "target_branch",
    "last_commit",
    "merge_commit_sha",
    "project",
    "path_with_namespace",
    "push",
    "changes",
    "new",
    "old",
    "type",
    "target",
    "hash",
    "pullrequest",
    "source",
    "destination",
    "branch",
    "commit",
    "actor",
    "nickname",
    "account_id",
    "links",
    "href",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        prop_oneof![
            "\\PC{0,20}",
            "[0-9a-fA-F]{40}",
            "[0-9a-f]{7,12}",
            "refs/(heads|tags|pull)/[a-z0-9/._-]{0,12}",
            Just("0000000000000000000000000000000000000000".to_owned()),
            Just("\u{0}".to_owned()),
            "(opened|synchronize|closed|reopened|released|prereleased|queued|open|update|merge|close|reopen|branch|tag)",
        ]
        .prop_map(Value::String),
    ]
}

/// Any JSON document, its object keys mostly taken from the providers' payloads.
fn document() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => "\\PC{0,8}"], inner),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// Headers as git hosts (or anyone) send them: an event header of one of the providers, maybe a delivery id.
fn headers() -> impl Strategy<Value = HeaderMap> {
    let event = prop_oneof![
        (
            Just("x-github-event"),
            prop::sample::select(&["push", "pull_request", "release", "workflow_job", "ping", "x"][..])
        ),
        (
            Just("x-gitlab-event"),
            prop::sample::select(&["Push Hook", "Tag Push Hook", "Merge Request Hook", "Release Hook", "x"][..])
        ),
        (
            Just("x-event-key"),
            prop::sample::select(
                &["repo:push", "pullrequest:created", "pullrequest:fulfilled", "diagnostics:ping", "x:y"][..]
            )
        ),
    ];
    (prop::option::of(event), prop::option::of("[ -~]{0,250}"), prop::option::of("[ -~]{0,80}")).prop_map(
        |(event, delivery, content_type)| {
            let mut h = HeaderMap::new();
            if let Some((name, value)) = event {
                h.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
            }
            if let Some(d) = delivery.and_then(|d| HeaderValue::from_str(&d).ok()) {
                h.insert("x-github-delivery", d);
            }
            if let Some(c) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                h.insert("content-type", c);
            }
            h
        },
    )
}

fn check_event(e: &SourceEvent) {
    // A commit is a commit id: full hex, or (Bitbucket pull requests only) a hex abbreviation.
    // A push's `before` is the one place git's all-zero id is kept (the push created its ref).
    for (id, zero_kept) in [(&e.commit_id, false), (&e.previous_commit, true), (&e.merge_commit, false)] {
        let Some(id) = id else { continue };
        let abbreviated = e.provider == Provider::Bitbucket
            && (7..=64).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_hexdigit());
        assert!(is_commit_id(id) || abbreviated, "{id:?} in {e:?}");
        assert!(zero_kept || !id.bytes().all(|b| b == b'0'), "the all-zero id is no commit: {e:?}");
    }
    assert!(e.previous_head().is_none_or(|id| !id.bytes().all(|b| b == b'0')), "{e:?}");
    if let Some(branch) = &e.branch {
        assert_eq!(e.git_ref.as_deref(), Some(format!("refs/heads/{branch}").as_str()), "{e:?}");
    }
    for r in [&e.head_ref, &e.base_ref].into_iter().flatten() {
        assert!(r.starts_with("refs/"), "{r:?} in {e:?}");
    }
    if e.provider == Provider::Unknown {
        assert_eq!((&e.git_ref, &e.commit_id), (&None, &None), "an unknown provider reads nothing: {e:?}");
    }
    // What builds and logs derive from it must not panic either.
    let _ = e.codebuild_webhook_env();
    let _ = e.webhook_trigger();
    let _ = serde_json::to_string(e).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn normalization_never_fails_and_keeps_its_conventions(h in headers(), payload in document()) {
        let started = Instant::now();
        let e = event::normalize(&h, &payload);
        prop_assert!(started.elapsed() < Duration::from_secs(1));
        check_event(&e);
        let _ = event::delivery_id(&h);
    }

    #[test]
    fn any_body_under_any_content_type_is_a_payload_or_an_error(h in headers(), body in prop::collection::vec(any::<u8>(), 0..400)) {
        match event::json_payload(&h, &body) {
            Ok(json) => {
                // Whatever it is, counting its values and parsing it never panic.
                let _ = event::json_values(&json);
                let _ = serde_json::from_slice::<Value>(&json);
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }

    #[test]
    fn form_bodies_carry_their_payload_field(payload in document(), extra in "[a-z]{1,5}=[a-z0-9%+]{0,10}") {
        let text = payload.to_string();
        let body: String = form_urlencoded::Serializer::new(String::new()).append_pair("payload", &text).finish();
        let body = format!("{extra}&{body}");
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
        let json = event::json_payload(&h, body.as_bytes()).unwrap();
        prop_assert_eq!(&*json, text.as_bytes());
    }
}

/// JSONPath-ish text: the characters queries are made of, so most inputs get past the first character.
fn json_path_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[$@.\\[\\]*?()'\"=!<>&|a-z0-9 ,:-]{0,60}",
        "\\$(\\.[a-z]{1,5}|\\[[0-9*]\\]|\\.\\.[a-z*]{0,3}|\\[\\?@\\.[a-z]{1,3}( == '[a-z]{0,3}')?\\]){0,8}",
        "(\\.\\.|\\[\\?@|\\]|\\$|[a-z]|\\*|,){0,40}",
        "\\PC{0,160}",
    ]
}

fn match_equals_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof!["[ -~]{0,40}", "refs/heads/\\{(Branch|Nope|[a-z]{0,3})\\}", "\\PC{0,160}"])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rules_compile_or_fail_with_the_documented_errors(
        raw in prop::collection::vec((json_path_text(), match_equals_text()), 0..7),
        payload in document(),
    ) {
        let rules: Vec<Rule> = raw.into_iter().map(|(json_path, match_equals)| Rule { json_path, match_equals }).collect();
        let config: BTreeMap<String, String> = [("Branch".to_owned(), "main".to_owned())].into_iter().collect();
        let started = Instant::now();
        match rules::compile(&rules, &config) {
            Ok(compiled) => {
                prop_assert!(rules.len() <= rules::MAX_RULES);
                for r in &rules {
                    prop_assert!((1..=MAX_FIELD_CHARS).contains(&r.json_path.chars().count()));
                }
                let outcomes = rules::evaluate(&compiled, &payload);
                prop_assert_eq!(outcomes.len(), rules.len());
                for o in &outcomes {
                    prop_assert!(o.found.len() <= rules::MAX_FOUND_NODES);
                    if o.passed {
                        prop_assert!(!o.found.is_empty());
                    }
                }
                // The bounded evaluation runs each rule or says why it did not.
                let mut n = 0;
                rules::evaluate_bounded(&compiled, &payload, 1_000, |_| { n += 1; true });
                prop_assert_eq!(n, rules.len());
            }
            Err(e) => {
                let text = e.to_string();
                prop_assert!(!text.is_empty());
                match e {
                    RuleError::TooMany { count } => prop_assert!(count > rules::MAX_RULES),
                    RuleError::Length { .. }
                    | RuleError::InvalidPattern { .. }
                    | RuleError::TooCostly { .. }
                    | RuleError::UnknownPlaceholder { .. } => {}
                }
            }
        }
        prop_assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }
}

const FILTER_TYPES: &[&str] = &[
    "EVENT",
    "ACTOR_ACCOUNT_ID",
    "HEAD_REF",
    "BASE_REF",
    "FILE_PATH",
    "COMMIT_MESSAGE",
    "TAG_NAME",
    "RELEASE_NAME",
    "REPOSITORY_NAME",
    "ORGANIZATION_NAME",
    "WORKFLOW_NAME",
    "NOPE",
    "event",
];

fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        "(PUSH|PULL_REQUEST_CREATED|PULL_REQUEST_UPDATED|PULL_REQUEST_MERGED|PULL_REQUEST_CLOSED|PULL_REQUEST_REOPENED|RELEASED|PRERELEASED|WORKFLOW_JOB_QUEUED|NOPE)(, ?(PUSH|PULL_REQUEST_MERGED|RELEASED)){0,2}",
        "\\^?refs/heads/[a-z.*+?()|\\[\\]{}\\\\-]{0,20}\\$?",
        "[ -~]{0,40}",
        "\\PC{0,30}",
        Just("(a+)+$".to_owned()),
        Just("x{1000}{1000}".to_owned()),
    ]
}

fn groups() -> impl Strategy<Value = Vec<Vec<WebhookFilter>>> {
    prop::collection::vec(
        prop::collection::vec(
            (prop::sample::select(FILTER_TYPES), pattern(), any::<bool>()).prop_map(|(t, p, exclude)| {
                if exclude {
                    WebhookFilter::exclude(t, &p)
                } else {
                    WebhookFilter::new(t, &p)
                }
            }),
            0..4,
        ),
        0..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn filter_groups_compile_or_fail_with_invalid_input(
        groups in groups(),
        branch_filter in prop::option::of(pattern()),
        source in prop::sample::select(&SourceType::ALL[..]),
        h in headers(),
        payload in document(),
    ) {
        let started = Instant::now();
        match filter_groups::compile_webhook(branch_filter.as_deref(), &groups, source) {
            Ok(compiled) => {
                let e = event::normalize(&h, &payload);
                let evaluation = filter_groups::evaluate(&compiled, &e);
                let _ = serde_json::to_value(&evaluation).unwrap();
                // A hook subscribed to `events()` is sent every delivery of its provider that could start a build.
                let events = compiled.events();
                prop_assert!(!events.is_empty());
                if let Some(c) = e.codebuild_event.filter(|c| evaluation.passed && source.supports_event(*c)) {
                    prop_assert!(events.contains(&c), "{:?} not in {:?}", c, events);
                }
                for f in filter_groups::FilterType::ALL {
                    let _ = compiled.needs(f, &e);
                }
            }
            Err(e) => {
                prop_assert_eq!(e.aws_type(), "InvalidInputException");
                prop_assert!(!e.to_string().is_empty());
            }
        }
        prop_assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }
}
