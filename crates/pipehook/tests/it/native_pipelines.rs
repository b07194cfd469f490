//! Pipelines, executions and logs over the native REST API (`/api/orgs/{org}/pipelines/...`), called with
//! plain HTTP, and the client commands of the real binary (`pipehook pipelines|executions|logs`) against the
//! same server. Commands are `echo` and `sleep` so the executions finish quickly.

use reqwest::Method;
use serde_json::{json, Value};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{pipehook_cmd, TestServer, TOKEN};

/// A declaration with a source stage and one `Command` action per `(name, command)`.
fn declaration(name: &str, commands: &[(&str, &str)]) -> Value {
    let actions: Vec<Value> = commands
        .iter()
        .map(|(action, command)| {
            json!({
                "name": action,
                "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "Command", "version": "1"},
                "configuration": {"Command": command},
                "runOrder": 1,
            })
        })
        .collect();
    json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/pipehook",
        "artifactStore": {"type": "S3", "location": "artifact-bucket"},
        "stages": [
            {"name": "Source", "actions": [{
                "name": "Source",
                "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
                "configuration": {"Owner": "octo", "Repo": "app", "Branch": "main", "OAuthToken": "****"},
                "runOrder": 1,
            }]},
            {"name": "Build", "actions": actions},
        ],
        "executionMode": "PARALLEL",
    })
}

/// Calls the server and returns the status and the JSON body (`null` when empty).
async fn call(s: &TestServer, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = s.client().request(method, format!("{}/api/orgs/{path}", s.url));
    if let Some(t) = token {
        req = req.header("authorization", format!("token {t}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect(&text) };
    (status, value)
}

async fn get(s: &TestServer, path: &str) -> (u16, Value) {
    call(s, Method::GET, path, Some(TOKEN), None).await
}

async fn post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    call(s, Method::POST, path, Some(TOKEN), Some(body)).await
}

/// Asserts the Pulumi error shape and returns the message.
fn error(status: u16, body: &Value) -> String {
    assert_eq!(body["code"], json!(status), "{body}");
    body["message"].as_str().expect("an error message").to_owned()
}

async fn wait_for(s: &TestServer, pipeline: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let (status, e) = get(s, &format!("default/pipelines/{pipeline}/executions/{id}")).await;
        assert_eq!(status, 200, "{e}");
        if done(&e) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("execution {id} of {pipeline} did not reach the expected state");
}

fn ended(e: &Value) -> bool {
    !matches!(e["status"].as_str(), Some("InProgress") | Some("Stopping"))
}

#[tokio::test]
async fn authentication_and_organization() {
    let s = TestServer::start().await;
    let (status, body) = call(&s, Method::GET, "default/pipelines", None, None).await;
    assert_eq!(status, 401);
    error(401, &body);
    let (status, _) = call(&s, Method::POST, "default/pipelines", Some("phk_wrong"), Some(declaration("a", &[]))).await;
    assert_eq!(status, 401);
    for (method, path) in [
        (Method::GET, "other/pipelines"),
        (Method::POST, "other/pipelines"),
        (Method::GET, "other/pipelines/app/executions/00000000-0000-0000-0000-000000000000/logs"),
        (Method::DELETE, "other/pipelines/app"),
    ] {
        let (status, body) = call(&s, method, path, Some(TOKEN), Some(json!({}))).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(error(403, &body).contains("'other'"));
    }
    // A method a route does not serve is answered in the same error shape.
    let (status, body) = call(&s, Method::PATCH, "default/pipelines", Some(TOKEN), None).await;
    assert_eq!(status, 405);
    error(405, &body);
}

#[tokio::test]
async fn pipeline_crud_validation_and_pagination() {
    let s = TestServer::start().await;
    let (status, created) = post(&s, "default/pipelines", declaration("app", &[("Compile", "true")])).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "app");
    assert_eq!(created["version"], 1);
    assert_eq!(created["executionMode"], "PARALLEL");
    assert!(created["created"].as_i64().unwrap() > 1_600_000_000_000, "epoch milliseconds");
    assert_eq!(created["pipeline"]["stages"].as_array().unwrap().len(), 2);
    assert_eq!(created["pipeline"]["version"], 1);

    // The wrapped form, as the AWS API and GetPipeline carry a declaration.
    let (status, wrapped) =
        post(&s, "default/pipelines", json!({"pipeline": declaration("second", &[("A", "true")])})).await;
    assert_eq!(status, 201, "{wrapped}");

    let (status, body) = post(&s, "default/pipelines", declaration("app", &[("Compile", "true")])).await;
    assert_eq!(status, 409);
    assert!(error(409, &body).contains("already exists"));

    // Validation messages come from the same rules the AWS API applies.
    let mut bad = declaration("bad", &[("Compile", "true")]);
    bad["stages"][1]["name"] = json!("has spaces");
    let (status, body) = post(&s, "default/pipelines", bad).await;
    assert_eq!(status, 400);
    assert!(error(400, &body).contains("validation error"), "{body}");
    let mut codebuild = declaration("cb", &[("Compile", "true")]);
    codebuild["stages"][1]["actions"][0]["actionTypeId"] =
        json!({"category": "Build", "owner": "AWS", "provider": "CodeDeploy", "version": "1"});
    let (status, body) = post(&s, "default/pipelines", codebuild).await;
    assert_eq!(status, 400);
    assert!(error(400, &body).contains("is not available"), "{body}");
    let (status, body) = post(&s, "default/pipelines", json!({"name": "x"})).await;
    assert_eq!(status, 400);
    assert!(error(400, &body).contains("invalid pipeline declaration"), "{body}");
    let res = s
        .client()
        .post(format!("{}/api/orgs/default/pipelines", s.url))
        .header("authorization", format!("token {TOKEN}"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);

    // Pages by name.
    let (status, page) = get(&s, "default/pipelines?limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(page["pipelines"].as_array().unwrap().len(), 1);
    assert_eq!(page["pipelines"][0]["name"], "app");
    let cursor = page["nextCursor"].as_str().expect("a next page").to_owned();
    let (_, page) = get(&s, &format!("default/pipelines?limit=1&cursor={cursor}")).await;
    assert_eq!(page["pipelines"][0]["name"], "second");
    assert_eq!(page["pipelines"][0]["version"], 1);
    assert!(page.get("nextCursor").is_none(), "{page}");
    let (status, body) = get(&s, "default/pipelines?limit=0").await;
    assert_eq!(status, 400);
    error(400, &body);

    let (status, got) = get(&s, "default/pipelines/app").await;
    assert_eq!(status, 200);
    assert_eq!(got["pipeline"]["stages"][1]["actions"][0]["configuration"]["Command"], "true");
    let (status, body) = get(&s, "default/pipelines/nope").await;
    assert_eq!(status, 404);
    assert!(error(404, &body).contains("'nope'"));
    let (status, body) = get(&s, "default/pipelines/bad%20name").await;
    assert_eq!(status, 400);
    error(400, &body);

    // Update: a new version; a stale version, another name or a missing pipeline are refused.
    let two = declaration("app", &[("Compile", "true"), ("Lint", "true")]);
    let (status, updated) = call(&s, Method::PUT, "default/pipelines/app", Some(TOKEN), Some(two.clone())).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["pipeline"]["stages"][1]["actions"].as_array().unwrap().len(), 2);
    let mut stale = two.clone();
    stale["version"] = json!(1);
    let (status, body) = call(&s, Method::PUT, "default/pipelines/app", Some(TOKEN), Some(stale)).await;
    assert_eq!(status, 409);
    assert!(error(409, &body).contains("version 2"), "{body}");
    let (status, body) = call(&s, Method::PUT, "default/pipelines/second", Some(TOKEN), Some(two.clone())).await;
    assert_eq!(status, 400);
    assert!(error(400, &body).contains("renamed"));
    let ghost = declaration("ghost", &[("A", "true")]);
    let (status, body) = call(&s, Method::PUT, "default/pipelines/ghost", Some(TOKEN), Some(ghost)).await;
    assert_eq!(status, 404);
    error(404, &body);

    let (status, body) = call(&s, Method::DELETE, "default/pipelines/second", Some(TOKEN), None).await;
    assert_eq!(status, 204);
    assert_eq!(body, Value::Null);
    let (status, body) = call(&s, Method::DELETE, "default/pipelines/second", Some(TOKEN), None).await;
    assert_eq!(status, 404);
    error(404, &body);
    let (_, page) = get(&s, "default/pipelines").await;
    assert_eq!(page["pipelines"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn executions_run_and_their_logs_are_served() {
    let s = TestServer::start().await;
    let mut decl = declaration("app", &[("Compile", "echo compiled-ok"), ("Fail", "echo broken >&2; exit 3")]);
    decl["pipelineType"] = json!("V2");
    decl["variables"] = json!([{"name": "flavour", "defaultValue": "plain"}]);
    let (status, body) = post(&s, "default/pipelines", decl).await;
    assert_eq!(status, 201, "{body}");

    let (status, body) = post(&s, "default/pipelines/nope/executions", json!({})).await;
    assert_eq!(status, 404);
    error(404, &body);
    let (status, body) =
        post(&s, "default/pipelines/app/executions", json!({"variables": [{"name": "x", "value": "1"}]})).await;
    assert_eq!(status, 400);
    assert!(error(400, &body).contains("'x' is not declared"), "{body}");
    let (status, body) =
        post(&s, "default/pipelines/app/executions", json!({"clientRequestToken": "not valid!"})).await;
    assert_eq!(status, 400);
    error(400, &body);

    // No body at all starts with defaults.
    let (status, started) = call(&s, Method::POST, "default/pipelines/app/executions", Some(TOKEN), None).await;
    assert_eq!(status, 202, "{started}");
    let first = started["pipelineExecutionId"].as_str().unwrap().to_owned();
    let body = json!({"clientRequestToken": "retry-1", "variables": [{"name": "flavour", "value": "spicy"}]});
    let (status, started) = post(&s, "default/pipelines/app/executions", body.clone()).await;
    assert_eq!(status, 202);
    let second = started["pipelineExecutionId"].as_str().unwrap().to_owned();
    let (_, again) = post(&s, "default/pipelines/app/executions", body).await;
    assert_eq!(again["pipelineExecutionId"], second.as_str(), "a repeated token returns the same execution");

    let e = wait_for(&s, "app", &first, ended).await;
    assert_eq!(e["status"], "Failed", "{e}");
    assert_eq!(e["trigger"]["type"], "StartPipelineExecution");
    assert!(e["trigger"]["detail"].as_str().unwrap().starts_with("pipehook:token/"));
    assert_eq!(e["variables"], json!([{"name": "flavour", "value": "plain"}]));
    let actions = e["actions"].as_array().unwrap();
    let by_name = |n: &str| actions.iter().find(|a| a["action"] == n).unwrap_or_else(|| panic!("{n} in {e}"));
    assert_eq!(by_name("Source")["stage"], "Source");
    assert_eq!(by_name("Source")["status"], "Succeeded");
    assert_eq!(by_name("Compile")["status"], "Succeeded");
    assert!(by_name("Compile")["endTime"].as_i64().unwrap() >= by_name("Compile")["startTime"].as_i64().unwrap());
    assert_eq!(by_name("Fail")["status"], "Failed");
    assert!(by_name("Fail")["errorCode"].is_string(), "{e}");
    let second_e = wait_for(&s, "app", &second, ended).await;
    assert_eq!(second_e["variables"], json!([{"name": "flavour", "value": "spicy"}]));

    let (status, logs) = get(&s, &format!("default/pipelines/app/executions/{first}/logs")).await;
    assert_eq!(status, 200);
    let logs = logs["actions"].as_array().unwrap().clone();
    assert_eq!(logs.len(), 3, "{logs:?}");
    let compile = logs.iter().find(|a| a["action"] == "Compile").unwrap();
    assert_eq!(compile["stage"], "Build");
    assert_eq!(compile["status"], "Succeeded");
    assert!(compile["log"].as_str().unwrap().contains("compiled-ok"), "{compile}");
    let (_, one) = get(&s, &format!("default/pipelines/app/executions/{first}/logs?action=Fail")).await;
    assert_eq!(one["actions"].as_array().unwrap().len(), 1);
    assert!(one["actions"][0]["log"].as_str().unwrap().contains("broken"), "{one}");
    let (status, body) = get(&s, &format!("default/pipelines/app/executions/{first}/logs?action=Nope")).await;
    assert_eq!(status, 404);
    assert!(error(404, &body).contains("'Nope'"));

    // Newest first, by pages.
    let (_, list) = get(&s, "default/pipelines/app/executions").await;
    let ids: Vec<&str> = list["executions"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second.as_str(), first.as_str()]);
    assert!(list["executions"][0]["startTime"].is_i64());
    let (_, page) = get(&s, "default/pipelines/app/executions?limit=1").await;
    assert_eq!(page["executions"][0]["id"], second.as_str());
    let cursor = page["nextCursor"].as_str().unwrap().to_owned();
    let (_, page) = get(&s, &format!("default/pipelines/app/executions?limit=1&cursor={cursor}")).await;
    assert_eq!(page["executions"][0]["id"], first.as_str());
    assert!(page.get("nextCursor").is_none());
    let (status, body) = get(&s, "default/pipelines/app/executions?cursor=abc").await;
    assert_eq!(status, 400);
    error(400, &body);

    let missing = "00000000-0000-0000-0000-000000000000";
    for path in [
        format!("default/pipelines/app/executions/{missing}"),
        format!("default/pipelines/app/executions/{missing}/logs"),
        format!("default/pipelines/nope/executions/{first}"),
    ] {
        let (status, body) = get(&s, &path).await;
        assert_eq!(status, 404, "{path}");
        error(404, &body);
    }
    // An execution is only found under its own pipeline.
    post(&s, "default/pipelines", declaration("other", &[("A", "true")])).await;
    let (status, _) = get(&s, &format!("default/pipelines/other/executions/{first}")).await;
    assert_eq!(status, 404);

    let (status, body) = post(&s, &format!("default/pipelines/app/executions/{first}/stop"), json!({})).await;
    assert_eq!(status, 409);
    assert!(error(409, &body).contains("cannot be stopped"), "{body}");
    let (status, body) = post(&s, &format!("default/pipelines/app/executions/{missing}/stop"), json!({})).await;
    assert_eq!(status, 404);
    error(404, &body);
}

#[tokio::test]
async fn stop_abandons_a_running_execution() {
    let s = TestServer::start().await;
    let (status, body) =
        post(&s, "default/pipelines", declaration("slow", &[("Wait", "echo waiting; sleep 30")])).await;
    assert_eq!(status, 201, "{body}");
    let (_, started) = post(&s, "default/pipelines/slow/executions", json!({})).await;
    let id = started["pipelineExecutionId"].as_str().unwrap().to_owned();
    let running = |e: &Value| e["actions"].as_array().unwrap().iter().any(|a| a["action"] == "Wait");
    let e = wait_for(&s, "slow", &id, running).await;
    let wait = e["actions"].as_array().unwrap().iter().find(|a| a["action"] == "Wait").unwrap().clone();
    assert_eq!(wait["status"], "InProgress");
    assert!(wait.get("endTime").is_none(), "a running action has no end time: {wait}");

    let path = format!("default/pipelines/slow/executions/{id}/stop");
    let (status, body) = post(&s, &path, json!({"abandon": "yes"})).await;
    assert_eq!(status, 400, "a wrongly typed member: {body}");
    let (status, body) = post(&s, &path, json!({"abandon": true, "reason": "not today"})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["pipelineExecutionId"], id.as_str());
    // Only escalating a stop to an abandon may repeat it; a second plain stop is a duplicate.
    let (status, body) = post(&s, &path, json!({"reason": "again"})).await;
    assert_eq!(status, 409, "a second stop: {body}");
    error(409, &body);

    let e = wait_for(&s, "slow", &id, ended).await;
    assert_eq!(e["status"], "Stopped", "{e}");
    assert_eq!(e["stop"], json!({"abandon": true, "reason": "not today"}));
    assert_eq!(e["stopRequested"], true);
}

// ---------------------------------------------------------------------------------------------------------
// The client commands of the real binary.
// ---------------------------------------------------------------------------------------------------------

/// The binary pointed at the server through the environment, as a user would configure it.
fn client(s: &TestServer, args: &[&str]) -> Command {
    let mut cmd = pipehook_cmd();
    cmd.env("PIPEHOOK_SERVER", &s.url).env("PIPEHOOK_TOKEN", TOKEN).args(args);
    cmd
}

/// Runs a command off the runtime's thread: the server it calls runs on that thread.
async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run pipehook")).await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn cli_client_end_to_end() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.json");
    let decl = declaration("cli-app", &[("Greet", "echo hello from the cli; sleep 1; echo second line")]);
    std::fs::write(&file, serde_json::to_vec_pretty(&json!({"pipeline": decl})).unwrap()).unwrap();
    let file = file.to_str().unwrap();

    let out = run(client(&s, &["pipelines", "create", "--file", file])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "created pipeline cli-app (version 1)");
    let out = run(client(&s, &["pipelines", "create", "--file", file])).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim(), "pipehook: 409 pipeline 'cli-app' already exists");

    let out = run(client(&s, &["pipelines", "list"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("NAME"), "{table}");
    let row = lines.next().unwrap();
    assert!(row.starts_with("cli-app") && row.contains("PARALLEL"), "{table}");
    let out = run(client(&s, &["--output", "json", "pipelines", "list"])).await;
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["pipelines"][0]["name"], "cli-app");
    assert_eq!(listed["pipelines"][0]["version"], 1);

    // --server and --org on the command line work as well as the environment.
    let mut cmd = client(&s, &["pipelines", "get", "cli-app", "--org", "default", "--server", &s.url]);
    cmd.env("PIPEHOOK_SERVER", "http://127.0.0.1:1");
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Greet"), "{}", stdout(&out));

    let out = run(client(&s, &["executions", "start", "cli-app"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_owned();
    assert_eq!(id.len(), 36, "only the id is printed: {id}");

    let out = run(client(&s, &["logs", "cli-app", &id, "--follow"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stdout(&out);
    assert!(log.contains("==> Build/Greet <=="), "{log}");
    assert_eq!(log.matches("hello from the cli").count(), 1, "each line once: {log}");
    assert_eq!(log.matches("second line").count(), 1, "{log}");
    assert!(stderr(&out).contains("ended: Succeeded"), "{}", stderr(&out));
    let out = run(client(&s, &["logs", "cli-app", &id, "--action", "Greet"])).await;
    assert!(stdout(&out).starts_with("hello from the cli"), "{}", stdout(&out));

    let out = run(client(&s, &["executions", "list", "cli-app"])).await;
    let table = stdout(&out);
    assert!(table.lines().nth(1).is_some_and(|l| l.starts_with(&id) && l.contains("Succeeded")), "{table}");
    let out = run(client(&s, &["--output", "json", "executions", "get", "cli-app", &id])).await;
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["status"], "Succeeded");
    let out = run(client(&s, &["executions", "stop", "cli-app", &id, "--abandon", "--reason", "late"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("pipehook: 409 "), "{}", stderr(&out));

    let out = run(client(&s, &["pipelines", "get", "nope"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim(), "pipehook: 404 pipeline 'nope' does not exist");
    let out = run(client(&s, &["pipelines", "list", "--org", "other"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("pipehook: 403 "), "{}", stderr(&out));
    let mut cmd = client(&s, &["pipelines", "list"]);
    cmd.env_remove("PIPEHOOK_TOKEN");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("PIPEHOOK_TOKEN"), "{}", stderr(&out));

    let out = run(client(&s, &["pipelines", "delete", "cli-app"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(client(&s, &["--output", "json", "pipelines", "list"])).await;
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), json!({"pipelines": []}));
}
