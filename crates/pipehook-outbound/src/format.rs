//! One event, four bodies: `raw` (the event's JSON payload as published, byte for byte: its text is sent
//! without being parsed, so no number is rounded through a float), `slack` (an incoming-webhook message with
//! Block Kit blocks), `ms_teams` (an Office 365 connector MessageCard, which Teams incoming webhooks accept) and
//! `pulumi_deployments` (a Pulumi Deployments "create deployment" request, so a stack or environment hook can
//! start a deployment).

use pipehook_domain::time::Timestamp;
use serde_json::{json, Value};

/// What a formatter needs to know about an event.
#[derive(Debug, Clone)]
pub struct EventView<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub organization: &'a str,
    pub project: Option<&'a str>,
    pub stack: Option<&'a str>,
    pub env: Option<&'a str>,
    /// The payload's JSON text as published.
    pub payload: &'a str,
    pub created_at: Timestamp,
}

/// The body to send. `raw` is the published text itself; the other formats read what they summarize from it.
pub fn render(format: &str, e: &EventView<'_>) -> String {
    let parsed = || serde_json::from_str::<Value>(e.payload).unwrap_or(Value::Null);
    match format {
        "slack" => slack(e, &parsed()).to_string(),
        "ms_teams" => teams(e, &parsed()).to_string(),
        "pulumi_deployments" => deployment(e).to_string(),
        _ => e.payload.to_owned(),
    }
}

fn text(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match v.pointer(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// A one-line headline and its facts, shared by the chat formats.
struct Summary {
    title: String,
    facts: Vec<(String, String)>,
    good: Option<bool>,
    url: Option<String>,
}

fn summarize(e: &EventView<'_>, p: &Value) -> Summary {
    let place = match (e.project, e.stack, e.env) {
        (Some(pr), Some(st), _) => format!("{}/{pr}/{st}", e.organization),
        (pr, _, Some(env)) => format!("{}/{}{env}", e.organization, pr.map(|x| format!("{x}/")).unwrap_or_default()),
        (Some(pr), None, None) => format!("{}/{pr}", e.organization),
        _ => e.organization.to_owned(),
    };
    let subject = text(p, &["/app_name", "/pipeline", "/pipehook/pipeline", "/env_name", "/stackName", "/projectName"]);
    let verb = e.kind.replace('_', " ");
    let title = match &subject {
        Some(s) => format!("{verb}: {s} ({place})"),
        None => format!("{verb} ({place})"),
    };
    let mut facts = vec![("Event".to_owned(), e.kind.to_owned()), ("Where".to_owned(), place)];
    for (label, keys) in [
        ("Status", &["/status", "/result", "/deployment_state"][..]),
        ("Build", &["/build_num", "/pipehook/build_id"][..]),
        ("Execution", &["/execution_id", "/pipehook/execution_id"][..]),
        ("Branch", &["/commit/branch", "/pipehook/commit/branch"][..]),
        ("Commit", &["/commit/commit_id", "/pipehook/commit/commit_id"][..]),
        ("Message", &["/commit/msg", "/pipehook/commit/msg", "/message"][..]),
        ("By", &["/commit/committer", "/deployer", "/user/githubLogin", "/user/name"][..]),
        ("Environment", &["/env_name"][..]),
        ("Release", &["/release_version"][..]),
    ] {
        if let Some(v) = text(p, keys) {
            facts.push((label.to_owned(), v));
        }
    }
    let good = if e.kind.ends_with("_succeeded") {
        Some(true)
    } else if e.kind.ends_with("_failed") || e.kind.starts_with("policy_violation") || e.kind == "drift_detected" {
        Some(false)
    } else {
        None
    };
    let url = text(p, &["/html_url", "/updateUrl", "/deploymentUrl", "/url"]);
    Summary { title, facts, good, url }
}

fn slack(e: &EventView<'_>, p: &Value) -> Value {
    let s = summarize(e, p);
    let icon = match s.good {
        Some(true) => ":white_check_mark:",
        Some(false) => ":x:",
        None => ":information_source:",
    };
    let fields: Vec<Value> = s
        .facts
        .iter()
        .take(10) // Slack allows at most 10 fields in a section.
        .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}*\n{}", slack_escape(v))}))
        .collect();
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("{icon} *{}*", slack_escape(&s.title))}}),
        json!({"type": "section", "fields": fields}),
    ];
    if let Some(url) = &s.url {
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": url}
        ]}));
    }
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "text": format!("pipehook · {} · {}", e.id, e.created_at.to_rfc3339())}
    ]}));
    json!({"text": s.title, "blocks": blocks})
}

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn teams(e: &EventView<'_>, p: &Value) -> Value {
    let s = summarize(e, p);
    let color = match s.good {
        Some(true) => "2EB886",
        Some(false) => "D92D20",
        None => "0076D7",
    };
    let facts: Vec<Value> = s.facts.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    let mut card = json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": s.title,
        "themeColor": color,
        "title": s.title,
        "sections": [{"activityTitle": e.kind, "activitySubtitle": e.created_at.to_rfc3339(), "facts": facts, "markdown": false}],
    });
    if let Some(url) = s.url {
        card["potentialAction"] =
            json!([{"@type": "OpenUri", "name": "Open", "targets": [{"os": "default", "uri": url}]}]);
    }
    card
}

/// Pulumi Deployments' request body: run an `update` with the stack's own deployment settings, and say why.
fn deployment(e: &EventView<'_>) -> Value {
    json!({
        "operation": "update",
        "inheritSettings": true,
        "reason": format!("pipehook event {} ({})", e.id, e.kind),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(payload: &str) -> EventView<'_> {
        EventView {
            id: "evt-1",
            kind: "build_failed",
            organization: "acme",
            project: Some("web"),
            stack: None,
            env: None,
            payload,
            created_at: Timestamp(1_700_000_000_000),
        }
    }

    fn body(format: &str, p: &Value) -> Value {
        serde_json::from_str(&render(format, &view(&p.to_string()))).unwrap()
    }

    #[test]
    fn raw_is_the_published_text() {
        let p = "{\"t\": 1796521054.0618753, \"n\":12345678901234567890123 ,\"z\":-0.0,\"f\":1.0}";
        assert_eq!(render("raw", &view(p)), p);
        // A payload the other formats cannot read as JSON values still gets their message.
        assert!(render("slack", &view("{\"x\": 1e400}")).contains("build failed"));
    }

    #[test]
    fn slack_has_text_and_valid_blocks() {
        let p = json!({"app_name": "web <x>", "build_num": 7, "commit": {"branch": "main", "commit_id": "abc"}, "html_url": "https://ci/7"});
        let b = body("slack", &p);
        assert!(b["text"].as_str().unwrap().contains("build failed"));
        let blocks = b["blocks"].as_array().unwrap();
        assert!(blocks.iter().all(|bl| bl["type"].is_string()));
        assert!(blocks[0]["text"]["text"].as_str().unwrap().contains("&lt;x&gt;"), "mrkdwn escaped");
        assert!(blocks[1]["fields"].as_array().unwrap().len() <= 10);
        assert_eq!(blocks[2]["elements"][0]["url"], "https://ci/7");
    }

    #[test]
    fn teams_is_a_message_card() {
        let p = json!({"app_name": "web", "status": "Failed"});
        let b = body("ms_teams", &p);
        assert_eq!(b["@type"], "MessageCard");
        assert_eq!(b["@context"], "https://schema.org/extensions");
        assert_eq!(b["themeColor"], "D92D20");
        let facts = b["sections"][0]["facts"].as_array().unwrap();
        assert!(facts.iter().any(|f| f["name"] == "Status" && f["value"] == "Failed"));
    }

    #[test]
    fn deployments_body() {
        let p = json!({});
        let b = body("pulumi_deployments", &p);
        assert_eq!(b["operation"], "update");
        assert_eq!(b["inheritSettings"], true);
    }
}
