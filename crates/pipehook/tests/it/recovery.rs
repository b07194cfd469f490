//! Fenced leases, recovery at start and draining, against the real binary (the harness is `faults.rs`'s):
//! - a node paused past its lease (SIGSTOP) whose executions another node took over changes nothing when it
//!   wakes up: no Deploy runs, no status flips from Failed to Succeeded, no second end event;
//! - a node restarted after `kill -9` takes its own jobs back at once instead of after the lease;
//! - SIGTERM drains: the running command finishes, the execution is handed off between actions and ends
//!   Succeeded after the restart; a command the drain had to kill is run again only where its stage opts in
//!   (`onFailure` RETRY), else it fails `WorkerLost` with its end events.

use pipehook_store::Store;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::faults::{api, execution, executions, status_counts, wait_all_ended, Cluster};

/// A pipeline with a GitHub source (no checkout) and one command stage per `(stage, command, retry)`; `retry`
/// sets the stage's `onFailure` to RETRY.
async fn create_pipeline(base: &str, name: &str, mode: &str, stages: &[(&str, &str, bool)]) {
    let mut list = vec![json!({"name": "Source", "actions": [{
        "name": "Source",
        "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
        "configuration": {"Owner": "o", "Repo": "r", "Branch": "main", "OAuthToken": "t"},
        "runOrder": 1,
    }]})];
    for (stage, command, retry) in stages {
        let category = if *stage == "Deploy" { "Deploy" } else { "Build" };
        let mut s = json!({"name": stage, "actions": [{
            "name": stage,
            "actionTypeId": {"category": category, "owner": "Custom", "provider": "Command", "version": "1"},
            "configuration": {"Command": command},
            "runOrder": 1,
        }]});
        if *retry {
            s["onFailure"] = json!({"result": "RETRY", "retryConfiguration": {"retryMode": "FAILED_ACTIONS"}});
        }
        list.push(s);
    }
    let pipeline = json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/pipehook",
        "artifactStore": {"type": "S3", "location": "artifact-bucket"},
        "stages": list,
        "executionMode": mode,
    });
    let (status, body) = api(base, Method::POST, "pipelines", Some(pipeline)).await;
    assert_eq!(status, 201, "{body}");
}

async fn start(base: &str, pipeline: &str) -> String {
    let (status, body) = api(base, Method::POST, &format!("pipelines/{pipeline}/executions"), Some(json!({}))).await;
    assert!((200..300).contains(&status), "{status} {body}");
    body["id"].as_str().or(body["pipelineExecutionId"].as_str()).expect("an execution id").to_owned()
}

fn action<'a>(e: &'a Value, name: &str) -> Option<&'a Value> {
    e["actions"].as_array()?.iter().find(|a| a["action"] == name)
}

/// Waits until `pred` holds for execution `id`; panics after `within`.
async fn wait_for(base: &str, pipeline: &str, id: &str, within: Duration, what: &str, pred: impl Fn(&Value) -> bool) {
    let started = Instant::now();
    loop {
        let e = execution(base, pipeline, id).await;
        if pred(&e) {
            return;
        }
        assert!(started.elapsed() < within, "{what} within {within:?}: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn in_progress(e: &Value, name: &str) -> bool {
    action(e, name).is_some_and(|a| a["status"] == "InProgress")
}

/// The run events of `subject` (an execution id), by kind, read from the node's database.
async fn run_events(store: &dyn Store, subject: &str) -> Vec<String> {
    let org = store
        .org_by_name(&pipehook_domain::org::OrgName::parse("default").unwrap())
        .await
        .unwrap()
        .expect("the default organization")
        .id;
    store.run_events(org, subject).await.unwrap().into_iter().map(|(kind, _)| kind).collect()
}

fn count(events: &[String], kind: &str) -> usize {
    events.iter().filter(|k| *k == kind).count()
}

async fn sqlite_store(data_dir: &Path) -> std::sync::Arc<dyn Store> {
    let opts = pipehook_store::sqlite::SqliteOptions::default();
    std::sync::Arc::new(pipehook_store::sqlite::SqliteStore::open(&data_dir.join("pipehook.db"), &opts).await.unwrap())
}

/// Every started run event has its end: `action_started` / `action_finished`, `build_started` /
/// `build_succeeded|failed`, `deploy_*`, and exactly one execution end.
fn assert_every_start_has_its_end(events: &[String], what: &str) {
    let ends = |k: &str| count(events, &format!("{k}_succeeded")) + count(events, &format!("{k}_failed"));
    assert_eq!(count(events, "action_started"), count(events, "action_finished"), "{what}: {events:?}");
    assert_eq!(count(events, "build_started"), ends("build"), "{what}: {events:?}");
    assert_eq!(count(events, "deploy_started"), ends("deploy"), "{what}: {events:?}");
    let execution_ends = ["succeeded", "failed", "stopped", "superseded"]
        .iter()
        .map(|k| count(events, &format!("pipeline_execution_{k}")))
        .sum::<usize>();
    assert_eq!(execution_ends, 1, "{what}: one end per execution: {events:?}");
}

/// Two nodes on PostgreSQL. Node A runs three executions' Build commands (6 s); it is paused (SIGSTOP) past its
/// 3 s lease, node B takes the executions over and fails them (`WorkerLost`: the commands had started), and A is
/// woken up (SIGCONT) after its commands ended. A must change nothing: no Deploy runs (its marker files stay
/// absent), the executions stay Failed, and each has exactly one end event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_that_lost_its_executions_changes_nothing() {
    let Some(mut cluster) = Cluster::postgres(2, &[("PIPEHOOK_WORKER_HEARTBEAT_MS", "500")]).await else { return };
    let marks = tempfile::tempdir().unwrap();
    let (a, b) = (cluster.url(0), cluster.url(1));
    // B must not claim the executions: paused until A holds them all.
    cluster.node(1).sigstop();
    let deploy = format!("touch {}/deploy-$PIPEHOOK_EXECUTION_ID", marks.path().display());
    create_pipeline(&a, "fenced", "PARALLEL", &[("Build", "sleep 6", false), ("Deploy", &deploy, false)]).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(start(&a, "fenced").await);
    }
    for id in &ids {
        wait_for(&a, "fenced", id, Duration::from_secs(20), "Build runs on A", |e| in_progress(e, "Build")).await;
    }
    let paused = Instant::now();
    cluster.node(1).sigcont();
    cluster.node(0).sigstop();
    // B takes them over once A's leases ran out (3 s after A's last heartbeat) and fails them.
    let (ended, took) = wait_all_ended(&b, "fenced", Duration::from_secs(20)).await;
    let counts = status_counts(&ended);
    assert_eq!(counts.get("Failed"), Some(&3), "B failed the executions A lost: {counts:?}");
    // A sleeps past the end of its commands (6 s after they started), then wakes up.
    let asleep = Duration::from_secs(8);
    tokio::time::sleep(asleep.saturating_sub(paused.elapsed())).await;
    cluster.node(0).sigcont();
    let woke = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;

    let schema_store = pg_store(&cluster).await;
    for id in &ids {
        let e = execution(&b, "fenced", id).await;
        assert_eq!(e["status"], "Failed", "{e}");
        assert_eq!(action(&e, "Build").unwrap()["errorCode"], "WorkerLost", "{e}");
        assert!(action(&e, "Deploy").is_none(), "A ran Deploy after losing the execution: {e}");
        assert!(!marks.path().join(format!("deploy-{id}")).exists(), "a fenced node's Deploy command ran");
        let events = run_events(&*schema_store, id).await;
        assert_every_start_has_its_end(&events, id);
        assert_eq!(count(&events, "pipeline_execution_succeeded"), 0, "{events:?}");
        assert_eq!(count(&events, "build_failed"), 1, "the lost Build's end event: {events:?}");
    }
    let log = cluster.node(0).log();
    assert!(log.contains("lease was lost"), "A noticed it lost its jobs:\n{log}");
    eprintln!(
        "fenced: 3 of 3 executions taken over in {took:?} after A paused; A woke {:?} after pausing; \
         0 Deploys ran, 0 status flips, 3 of 3 with one end event",
        woke - paused
    );
}

async fn pg_store(cluster: &Cluster) -> std::sync::Arc<dyn Store> {
    let env = &cluster.nodes[0].env;
    let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
    let opts = pipehook_store::postgres::PgOptions {
        schema: Some(get("PIPEHOOK_POSTGRES_SCHEMA")),
        ..pipehook_store::postgres::PgOptions::default()
    };
    std::sync::Arc::new(pipehook_store::postgres::PgStore::connect(&get("PIPEHOOK_DATABASE_URL"), &opts).await.unwrap())
}

/// SQLite with the default 20 s lease: a node killed (-9) in the middle of a QUEUED execution's command and
/// restarted takes its job back at once. The interrupted execution fails `WorkerLost` (its command had started)
/// with its end events, and the execution queued behind it runs, both within seconds of the restart, not after
/// the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_takes_its_work_back_at_once() {
    let mut cluster = Cluster::sqlite(&[("PIPEHOOK_WORKER_LEASE_SECONDS", "20")]).await;
    let base = cluster.url(0);
    create_pipeline(&base, "queued", "QUEUED", &[("Build", "sleep 60", false)]).await;
    let first = start(&base, "queued").await;
    wait_for(&base, "queued", &first, Duration::from_secs(20), "Build runs", |e| in_progress(e, "Build")).await;
    // Queued behind the first: it runs once the first has ended.
    let (status, _) = api(
        &base,
        Method::PUT,
        "pipelines/queued",
        Some(json!({
            "name": "queued",
            "roleArn": "arn:aws:iam::123456789012:role/pipehook",
            "artifactStore": {"type": "S3", "location": "artifact-bucket"},
            "executionMode": "QUEUED",
            "stages": [
                {"name": "Source", "actions": [{"name": "Source",
                    "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
                    "configuration": {"Owner": "o", "Repo": "r", "Branch": "main", "OAuthToken": "t"}, "runOrder": 1}]},
                {"name": "Build", "actions": [{"name": "Build",
                    "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "Command", "version": "1"},
                    "configuration": {"Command": "true"}, "runOrder": 1}]},
            ],
        })),
    )
    .await;
    assert_eq!(status, 200);
    let second = start(&base, "queued").await;
    cluster.node(0).kill9();
    let restarted = Instant::now();
    cluster.node(0).start().await;
    let base = cluster.url(0);
    let (all, _) = wait_all_ended(&base, "queued", Duration::from_secs(15)).await;
    let recovered = restarted.elapsed();
    let first_e = execution(&base, "queued", &first).await;
    let second_e = execution(&base, "queued", &second).await;
    assert_eq!(first_e["status"], "Failed", "{first_e}");
    assert_eq!(action(&first_e, "Build").unwrap()["errorCode"], "WorkerLost", "{first_e}");
    assert_eq!(second_e["status"], "Succeeded", "{second_e}");
    assert!(recovered < Duration::from_secs(15), "recovered in {recovered:?}, not after the 20 s lease");
    let store = sqlite_store(&cluster.nodes[0].data_dir).await;
    assert_every_start_has_its_end(&run_events(&*store, &first).await, &first);
    let log = cluster.node(0).log();
    assert!(log.contains("took back the jobs this node held"), "the start says what it took back:\n{log}");
    eprintln!(
        "restart recovery (SQLite, lease 20 s): {} executions ended {recovered:?} after the restart began",
        all.len()
    );
}

/// SIGTERM while a command runs, on SQLite. With a 30 s drain the command (3 s) finishes, the execution is
/// handed off before Deploy, the node exits 0, and after the restart the execution ends Succeeded with Build run
/// once. With a 1 s drain a 6 s command is killed: where its stage opts in to retries it runs again and
/// succeeds; where not, the action fails `WorkerLost` with its end events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_running_work_and_hands_it_off() {
    let marks = tempfile::tempdir().unwrap();
    let m = marks.path().display().to_string();
    let build = |name: &str, secs: u32| format!("echo run >> {m}/{name}-build; sleep {secs}");
    let deploy = |name: &str| format!("echo run >> {m}/{name}-deploy");
    let runs = |file: &str| std::fs::read_to_string(marks.path().join(file)).unwrap_or_default().lines().count();

    // A drain long enough for the command.
    let mut cluster = Cluster::sqlite(&[("PIPEHOOK_WORKER_DRAIN_SECONDS", "30")]).await;
    let base = cluster.url(0);
    create_pipeline(
        &base,
        "drained",
        "PARALLEL",
        &[("Build", &build("drained", 3), false), ("Deploy", &deploy("drained"), false)],
    )
    .await;
    let id = start(&base, "drained").await;
    wait_for(&base, "drained", &id, Duration::from_secs(20), "Build runs", |e| in_progress(e, "Build")).await;
    let asked = Instant::now();
    cluster.node(0).sigterm();
    let (status, took) = cluster.node(0).wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status:?}");
    assert!(took >= Duration::from_millis(1500), "the node waited for the command ({took:?})");
    assert_eq!(runs("drained-deploy"), 0, "the draining node started nothing new");
    cluster.node(0).start().await;
    let base = cluster.url(0);
    let (_, _) = wait_all_ended(&base, "drained", Duration::from_secs(20)).await;
    let e = execution(&base, "drained", &id).await;
    assert_eq!(e["status"], "Succeeded", "{e}");
    assert_eq!((runs("drained-build"), runs("drained-deploy")), (1, 1), "Build ran once, Deploy after the restart");
    eprintln!(
        "drain: SIGTERM to exit {:?} (command finished, execution handed off), Succeeded after restart",
        asked.elapsed()
    );
    drop(cluster);

    // A drain too short for the command.
    // The HTTP grace short too: under a loaded test machine the API server has been seen to wait out its grace
    // for an in-flight request, which is not what this measures.
    let mut cluster =
        Cluster::sqlite(&[("PIPEHOOK_WORKER_DRAIN_SECONDS", "1"), ("PIPEHOOK_SHUTDOWN_GRACE_SECONDS", "1")]).await;
    let base = cluster.url(0);
    create_pipeline(&base, "retried", "PARALLEL", &[("Build", &build("retried", 6), true)]).await;
    create_pipeline(&base, "plain", "PARALLEL", &[("Build", &build("plain", 6), false)]).await;
    let retried = start(&base, "retried").await;
    let plain = start(&base, "plain").await;
    for (p, id) in [("retried", &retried), ("plain", &plain)] {
        wait_for(&base, p, id, Duration::from_secs(20), "Build runs", |e| in_progress(e, "Build")).await;
    }
    cluster.node(0).sigterm();
    let (status, took) = cluster.node(0).wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "the drain is bounded ({took:?})");
    cluster.node(0).start().await;
    let base = cluster.url(0);
    wait_all_ended(&base, "retried", Duration::from_secs(30)).await;
    wait_all_ended(&base, "plain", Duration::from_secs(30)).await;
    let r = execution(&base, "retried", &retried).await;
    let p = execution(&base, "plain", &plain).await;
    assert_eq!(r["status"], "Succeeded", "a stage with onFailure RETRY runs the killed command again: {r}");
    assert_eq!(runs("retried-build"), 2);
    assert_eq!(p["status"], "Failed", "{p}");
    assert_eq!(action(&p, "Build").unwrap()["errorCode"], "WorkerLost", "{p}");
    assert_eq!(runs("plain-build"), 1, "a started command is not run again unasked");
    let store = sqlite_store(&cluster.nodes[0].data_dir).await;
    for id in [&retried, &plain] {
        assert_every_start_has_its_end(&run_events(&*store, id).await, id);
    }
    let all = executions(&base, "plain").await.len() + executions(&base, "retried").await.len();
    eprintln!(
        "drain 1 s: {all} executions, the RETRY one ran its command twice and succeeded, the other failed WorkerLost"
    );
}

/// A client that connected and sent nothing yet does not hold up a graceful stop: the node exits long before
/// its 10 s HTTP grace (it used to wait the grace out for such a connection, as the graceful shutdown waits for
/// every connection it watches, and a silent one is watched from its accept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_does_not_hold_up_a_graceful_stop() {
    let mut cluster = Cluster::sqlite(&[("PIPEHOOK_SHUTDOWN_GRACE_SECONDS", "10")]).await;
    let addr = cluster.url(0).trim_start_matches("http://").to_owned();
    let silent: Vec<tokio::net::TcpStream> =
        futures::future::join_all((0..3).map(|_| tokio::net::TcpStream::connect(addr.clone())))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.node(0).sigterm();
    let (status, took) = cluster.node(0).wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "the stop waited for silent connections ({took:?})");
    drop(silent);
}
