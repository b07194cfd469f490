//! Pipelines through the official AWS SDK for Rust: every operation, the documented errors, and executions
//! that really run commands.

use aws_sdk_codepipeline::error::ProvideErrorMetadata;
use aws_sdk_codepipeline::types::{
    ActionCategory, ActionDeclaration, ActionOwner, ActionTypeId, ArtifactStore, ArtifactStoreType, ExecutionMode,
    PipelineDeclaration, PipelineExecutionStatus, StageDeclaration, Tag,
};
use aws_sdk_codepipeline::Client;
use std::time::Duration;

use crate::support::{codepipeline, wait_done, TestServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY, TOKEN};

fn client(s: &TestServer) -> Client {
    codepipeline(&s.url, ACCESS_KEY_ID, SECRET_ACCESS_KEY, "us-east-1")
}

fn action(
    name: &str,
    category: ActionCategory,
    owner: ActionOwner,
    provider: &str,
    config: &[(&str, &str)],
) -> ActionDeclaration {
    let mut b = ActionDeclaration::builder()
        .name(name)
        .action_type_id(
            ActionTypeId::builder().category(category).owner(owner).provider(provider).version("1").build().unwrap(),
        )
        .run_order(1);
    for (k, v) in config {
        b = b.configuration(*k, *v);
    }
    b.build().unwrap()
}

fn source() -> ActionDeclaration {
    action(
        "Source",
        ActionCategory::Source,
        ActionOwner::ThirdParty,
        "GitHub",
        &[
            ("Owner", "octo"),
            ("Repo", "app"),
            ("Branch", "main"),
            ("OAuthToken", "****"),
            ("PollForSourceChanges", "false"),
        ],
    )
}

fn command(name: &str, cmd: &str) -> ActionDeclaration {
    action(name, ActionCategory::Build, ActionOwner::Custom, "Command", &[("Command", cmd)])
}

fn pipeline(name: &str, later: Vec<ActionDeclaration>) -> PipelineDeclaration {
    PipelineDeclaration::builder()
        .name(name)
        .role_arn("arn:aws:iam::123456789012:role/pipehook")
        .artifact_store(
            ArtifactStore::builder().r#type(ArtifactStoreType::S3).location("artifact-bucket").build().unwrap(),
        )
        .stages(StageDeclaration::builder().name("Source").actions(source()).build().unwrap())
        .stages(StageDeclaration::builder().name("Build").set_actions(Some(later)).build().unwrap())
        .execution_mode(ExecutionMode::Parallel)
        .build()
        .unwrap()
}

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_owned()
}

#[tokio::test]
async fn pipeline_crud_versions_pagination_and_tags() {
    let s = TestServer::start().await;
    let c = client(&s);
    let created = c
        .create_pipeline()
        .pipeline(pipeline("app", vec![command("Compile", "true")]))
        .tags(Tag::builder().key("team").value("ci").build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(created.pipeline.as_ref().unwrap().version, Some(1));
    assert_eq!(created.tags().len(), 1);

    let got = c.get_pipeline().name("app").send().await.unwrap();
    let meta = got.metadata.unwrap();
    assert_eq!(meta.pipeline_arn.as_deref(), Some("arn:aws:codepipeline:us-east-1:123456789012:app"));
    assert!(meta.created.is_some());
    let p = got.pipeline.unwrap();
    assert_eq!(p.stages().len(), 2);
    assert_eq!(p.stages()[0].actions()[0].configuration().unwrap()["Repo"], "app");

    let updated = c
        .update_pipeline()
        .pipeline(pipeline("app", vec![command("Compile", "true"), command("Lint", "true")]))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.pipeline.unwrap().version, Some(2));
    let v1 = c.get_pipeline().name("app").version(1).send().await.unwrap().pipeline.unwrap();
    assert_eq!(v1.stages()[1].actions().len(), 1, "version 1 is kept");
    let e = c.get_pipeline().name("app").version(9).send().await.unwrap_err();
    assert_eq!(code(&e), "PipelineVersionNotFoundException");

    for n in ["b-pipe", "c-pipe", "d-pipe"] {
        c.create_pipeline().pipeline(pipeline(n, vec![command("X", "true")])).send().await.unwrap();
    }
    let page1 = c.list_pipelines().max_results(2).send().await.unwrap();
    let names1: Vec<_> = page1.pipelines().iter().map(|p| p.name().unwrap().to_owned()).collect();
    assert_eq!(names1, ["app", "b-pipe"]);
    let page2 = c.list_pipelines().max_results(2).next_token(page1.next_token().unwrap()).send().await.unwrap();
    let names2: Vec<_> = page2.pipelines().iter().map(|p| p.name().unwrap().to_owned()).collect();
    assert_eq!(names2, ["c-pipe", "d-pipe"]);
    assert!(page2.next_token().is_none());
    let bad = c.list_pipelines().next_token("not-a-token").send().await.unwrap_err();
    assert_eq!(code(&bad), "InvalidNextTokenException");

    let arn = "arn:aws:codepipeline:us-east-1:123456789012:app";
    c.tag_resource()
        .resource_arn(arn)
        .tags(Tag::builder().key("env").value("prod").build().unwrap())
        .send()
        .await
        .unwrap();
    let tags = c.list_tags_for_resource().resource_arn(arn).send().await.unwrap();
    let keys: Vec<_> = tags.tags().iter().map(|t| t.key()).collect();
    assert_eq!(keys, ["env", "team"]);
    c.untag_resource().resource_arn(arn).tag_keys("team").send().await.unwrap();
    assert_eq!(c.list_tags_for_resource().resource_arn(arn).send().await.unwrap().tags().len(), 1);
    let e = c
        .list_tags_for_resource()
        .resource_arn("arn:aws:codepipeline:us-east-1:123456789012:nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let e = c.list_tags_for_resource().resource_arn("not-an-arn").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidArnException");

    c.delete_pipeline().name("app").send().await.unwrap();
    c.delete_pipeline().name("app").send().await.expect("deleting a missing pipeline succeeds");
    let e = c.get_pipeline().name("app").send().await.unwrap_err();
    assert_eq!(code(&e), "PipelineNotFoundException");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn invalid_pipelines_get_the_aws_error_for_each_rule() {
    let s = TestServer::start().await;
    let c = client(&s);
    let one_stage = PipelineDeclaration::builder()
        .name("one")
        .role_arn("arn:aws:iam::123456789012:role/pipehook")
        .artifact_store(
            ArtifactStore::builder().r#type(ArtifactStoreType::S3).location("artifact-bucket").build().unwrap(),
        )
        .stages(StageDeclaration::builder().name("Source").actions(source()).build().unwrap())
        .build()
        .unwrap();
    let mut source_later = pipeline("late", vec![command("Compile", "true")]);
    let mut src2 = source();
    src2.name = "Src2".into();
    source_later.stages[1].actions.push(src2);
    let dup_actions = pipeline("dup", vec![command("Same", "true"), command("Same", "true")]);
    let many: Vec<_> = (0..51).map(|i| command(&format!("A{i}"), "true")).collect();
    let too_many = pipeline("many", many);
    let bad_name = pipeline("bad name!", vec![command("X", "true")]);
    let unsupported =
        pipeline("s3", vec![action("Deploy", ActionCategory::Deploy, ActionOwner::Aws, "S3", &[("BucketName", "b")])]);
    let no_command = pipeline("nocmd", vec![action("Run", ActionCategory::Build, ActionOwner::Custom, "Command", &[])]);
    let cases: Vec<(PipelineDeclaration, &str)> = vec![
        (one_stage, "InvalidStructureException"),
        (source_later, "InvalidStructureException"),
        (dup_actions, "InvalidActionDeclarationException"),
        (too_many, "InvalidStageDeclarationException"),
        (bad_name, "ValidationException"),
        (unsupported, "InvalidActionDeclarationException"),
        (no_command, "InvalidActionDeclarationException"),
    ];
    for (p, want) in cases {
        let name = p.name.clone();
        let e = c.create_pipeline().pipeline(p).send().await.unwrap_err();
        assert_eq!(code(&e), want, "{name}: {:?}", e.message());
        assert!(e.message().is_some_and(|m| !m.is_empty()));
        assert!(c.get_pipeline().name(&name).send().await.is_err(), "{name}: nothing partial is stored");
    }
    c.create_pipeline().pipeline(pipeline("ok", vec![command("X", "true")])).send().await.unwrap();
    let e = c.create_pipeline().pipeline(pipeline("ok", vec![command("X", "true")])).send().await.unwrap_err();
    assert_eq!(code(&e), "PipelineNameInUseException");
    let aws_tag = Tag::builder().key("aws:reserved").value("x").build().unwrap();
    let e = c
        .create_pipeline()
        .pipeline(pipeline("t1", vec![command("X", "true")]))
        .tags(aws_tag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidTagsException");
    let tags: Vec<Tag> = (0..51).map(|i| Tag::builder().key(format!("k{i}")).value("v").build().unwrap()).collect();
    let e = c
        .create_pipeline()
        .pipeline(pipeline("t2", vec![command("X", "true")]))
        .set_tags(Some(tags))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "TooManyTagsException");
    let e = c.update_pipeline().pipeline(pipeline("absent", vec![command("X", "true")])).send().await.unwrap_err();
    assert_eq!(code(&e), "PipelineNotFoundException");
    let e = c.start_pipeline_execution().name("absent").send().await.unwrap_err();
    assert_eq!(code(&e), "PipelineNotFoundException");
    let e =
        c.get_pipeline_execution().pipeline_name("ok").pipeline_execution_id("not-a-uuid").send().await.unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    let e = c
        .get_pipeline_execution()
        .pipeline_name("ok")
        .pipeline_execution_id("00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "PipelineExecutionNotFoundException");

    s.stop().await.unwrap();
}

#[tokio::test]
async fn executions_run_commands_and_record_everything() {
    let s = TestServer::start().await;
    let c = client(&s);
    // Commands run sandboxed and write only inside their workspace: the run's facts are read from the log.
    let cmd =
        "echo \"facts: $PIPEHOOK_PIPELINE $PIPEHOOK_EXECUTION_ID $PIPEHOOK_BRANCH $PIPEHOOK_REPOSITORY $GREETING\"";
    let mut compile = command("Compile", cmd);
    compile
        .configuration
        .as_mut()
        .unwrap()
        .insert("EnvironmentVariables".into(), r#"[{"name":"GREETING","value":"hello"}]"#.into());
    c.create_pipeline().pipeline(pipeline("app", vec![compile])).send().await.unwrap();

    let id = c.start_pipeline_execution().name("app").client_request_token("req-1").send().await.unwrap();
    let id = id.pipeline_execution_id.unwrap();
    let again = c.start_pipeline_execution().name("app").client_request_token("req-1").send().await.unwrap();
    assert_eq!(again.pipeline_execution_id.unwrap(), id, "the same token starts nothing new");

    let e = wait_done(&c, "app", &id).await;
    assert_eq!(e.status, Some(PipelineExecutionStatus::Succeeded), "{:?}", e.status_summary);
    let (status, logs) =
        s.get(&format!("/api/orgs/default/pipelines/app/executions/{id}/logs?action=Compile"), Some(TOKEN)).await;
    assert_eq!(status, 200, "{logs}");
    let log = logs["actions"][0]["log"].as_str().unwrap_or_default();
    assert!(log.contains(&format!("facts: app {id} main octo/app hello\n")), "{log}");
    assert_eq!(e.trigger.unwrap().trigger_type.unwrap().as_str(), "StartPipelineExecution");

    let actions = c.list_action_executions().pipeline_name("app").send().await.unwrap();
    let mut seen: Vec<_> = actions
        .action_execution_details()
        .iter()
        .map(|a| {
            (
                a.stage_name().unwrap().to_owned(),
                a.action_name().unwrap().to_owned(),
                a.status().unwrap().as_str().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("Build".into(), "Compile".into(), "Succeeded".into()),
            ("Source".into(), "Source".into(), "Succeeded".into())
        ]
    );
    let list = c.list_pipeline_executions().pipeline_name("app").send().await.unwrap();
    assert_eq!(list.pipeline_execution_summaries().len(), 1);
    let state = c.get_pipeline_state().name("app").send().await.unwrap();
    let stages: Vec<_> = state
        .stage_states()
        .iter()
        .map(|st| (st.stage_name().unwrap().to_owned(), st.latest_execution().unwrap().status().as_str().to_owned()))
        .collect();
    assert_eq!(stages, [("Source".into(), "Succeeded".into()), ("Build".into(), "Succeeded".into())]);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn failures_timeouts_and_stops() {
    let s = TestServer::start().await;
    let c = client(&s);
    c.create_pipeline()
        .pipeline(pipeline("fails", vec![command("Boom", "echo broken >&2; exit 3")]))
        .send()
        .await
        .unwrap();
    c.create_pipeline()
        .pipeline(pipeline("missing", vec![command("Nope", "definitely-not-a-command-xyz")]))
        .send()
        .await
        .unwrap();
    let mut slow = command("Slow", "sleep 30");
    slow.configuration.as_mut().unwrap().insert("TimeoutSeconds".into(), "1".into());
    c.create_pipeline().pipeline(pipeline("slow", vec![slow])).send().await.unwrap();
    c.create_pipeline().pipeline(pipeline("stopme", vec![command("Long", "sleep 30")])).send().await.unwrap();

    let start = |n: &'static str| {
        let c = c.clone();
        async move { c.start_pipeline_execution().name(n).send().await.unwrap().pipeline_execution_id.unwrap() }
    };
    let (fails, missing, slow, stopme) =
        (start("fails").await, start("missing").await, start("slow").await, start("stopme").await);

    let error_of = |name: &'static str, id: String| {
        let c = c.clone();
        async move {
            let acts = c.list_action_executions().pipeline_name(name).send().await.unwrap();
            let a = acts.action_execution_details().iter().find(|a| a.stage_name() == Some("Build")).cloned().unwrap();
            assert_eq!(a.pipeline_execution_id(), Some(id.as_str()));
            let details = a.output().unwrap().execution_result().unwrap().error_details().cloned().unwrap();
            (
                a.status().unwrap().as_str().to_owned(),
                details.code().unwrap().to_owned(),
                details.message().unwrap().to_owned(),
            )
        }
    };
    let e = wait_done(&c, "fails", &fails).await;
    assert_eq!(e.status, Some(PipelineExecutionStatus::Failed));
    assert!(e.status_summary.unwrap().contains("Boom"));
    assert_eq!(
        error_of("fails", fails.clone()).await,
        ("Failed".into(), "JobFailed".into(), "Command exited with code 3".into())
    );
    let e = wait_done(&c, "missing", &missing).await;
    assert_eq!(e.status, Some(PipelineExecutionStatus::Failed));
    assert_eq!(error_of("missing", missing.clone()).await.2, "Command exited with code 127");
    let e = wait_done(&c, "slow", &slow).await;
    assert_eq!(e.status, Some(PipelineExecutionStatus::Failed));
    assert_eq!(error_of("slow", slow.clone()).await.1, "TimedOut");

    // Let the long command start, then stop with abandon.
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.stop_pipeline_execution()
        .pipeline_name("stopme")
        .pipeline_execution_id(&stopme)
        .abandon(true)
        .reason("enough")
        .send()
        .await
        .unwrap();
    let e = wait_done(&c, "stopme", &stopme).await;
    assert_eq!(e.status, Some(PipelineExecutionStatus::Stopped));
    assert_eq!(e.status_summary.as_deref(), Some("Stopped: enough"));
    assert_eq!(error_of("stopme", stopme.clone()).await.0, "Abandoned");
    let again =
        c.stop_pipeline_execution().pipeline_name("stopme").pipeline_execution_id(&stopme).send().await.unwrap_err();
    assert!(
        ["DuplicatedStopRequestException", "PipelineExecutionNotStoppableException"].contains(&code(&again).as_str())
    );
    let done =
        c.stop_pipeline_execution().pipeline_name("fails").pipeline_execution_id(&fails).send().await.unwrap_err();
    assert_eq!(code(&done), "PipelineExecutionNotStoppableException");
    let summaries = c.list_pipeline_executions().pipeline_name("stopme").send().await.unwrap();
    assert_eq!(summaries.pipeline_execution_summaries()[0].stop_trigger().unwrap().reason(), Some("enough"));
    s.stop().await.unwrap();
}

/// A worker dies mid-action (its task is dropped without releasing anything, and its command is killed).
/// Another worker takes the job over once the lease expires: the succeeded source action is not run again,
/// the interrupted action is failed with `WorkerLost`, and the execution ends Failed instead of hanging.
#[tokio::test]
async fn a_worker_killed_mid_action_fails_it_cleanly_and_never_reruns_succeeded_actions() {
    use pipehook::config::WorkerConfig;
    use pipehook::worker::{Handlers, WorkerPool};
    use pipehook_runner::pipeline::{PipelineRunner, RunnerConfig, EXECUTION_JOB};
    use pipehook_store::Store;

    // The server only serves the API; this test brings its own workers.
    let s = TestServer::builder().env("PIPEHOOK_ROLE", "api").start().await.unwrap();
    let c = client(&s);
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs.txt");
    c.create_pipeline()
        .pipeline(pipeline("crashy", vec![command("Long", &format!("echo run >> {}; sleep 30", runs.display()))]))
        .send()
        .await
        .unwrap();
    let id = c.start_pipeline_execution().name("crashy").send().await.unwrap().pipeline_execution_id.unwrap();

    let opts = pipehook_store::sqlite::SqliteOptions::default();
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(
        pipehook_store::sqlite::SqliteStore::open(&s.data_dir.join("pipehook.db"), &opts).await.unwrap(),
    );
    let pool = |store: std::sync::Arc<dyn Store>| {
        let mut handlers = Handlers::default();
        let runner = RunnerConfig::new(dir.path().join("ws"));
        handlers.register(EXECUTION_JOB, std::sync::Arc::new(PipelineRunner::new(store.clone(), runner)));
        let config = WorkerConfig {
            concurrency: 4,
            lease: Duration::from_millis(900),
            poll: Duration::from_millis(50),
            heartbeat: Duration::from_millis(300),
            drain: Duration::from_secs(5),
            node: String::new(),
            max_running_per_org: None,
            max_queued_per_org: None,
        };
        WorkerPool::new(store, handlers, config, Default::default())
    };
    let first = tokio::spawn(pool(store.clone()).run(tokio_util::sync::CancellationToken::new()));
    let org = store.org_by_name(&pipehook_domain::org::OrgName::parse("default").unwrap()).await.unwrap().unwrap().id;
    for _ in 0..200 {
        let acts = store.action_executions(org, &id).await.unwrap();
        if acts.iter().any(|a| a.action_name == "Long" && a.status == "InProgress") && runs.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.abort();
    let _ = first.await;

    let shutdown = tokio_util::sync::CancellationToken::new();
    let second = tokio::spawn(pool(store.clone()).run(shutdown.clone()));
    let e = wait_done(&c, "crashy", &id).await;
    shutdown.cancel();
    second.await.unwrap();
    assert_eq!(e.status, Some(PipelineExecutionStatus::Failed));
    assert!(e.status_summary.unwrap().contains("lost worker"));
    let acts = c.list_action_executions().pipeline_name("crashy").send().await.unwrap();
    let details = acts.action_execution_details();
    assert_eq!(details.len(), 2, "one record per action: nothing ran twice");
    let long = details.iter().find(|a| a.action_name() == Some("Long")).unwrap();
    assert_eq!(long.status().unwrap().as_str(), "Failed");
    let err = long.output().unwrap().execution_result().unwrap().error_details().unwrap();
    assert_eq!(err.code(), Some("WorkerLost"));
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 1, "the interrupted command is not run again");
    s.stop().await.unwrap();
}

async fn create_with_mode(c: &Client, name: &str, mode: ExecutionMode, cmd: &str) {
    let mut p = pipeline(name, vec![command("Work", cmd)]);
    p.execution_mode = Some(mode);
    c.create_pipeline().pipeline(p).send().await.unwrap();
}

#[tokio::test]
async fn queued_executions_run_one_at_a_time_and_superseded_ones_give_way() {
    let s = TestServer::start().await;
    let c = client(&s);
    create_with_mode(&c, "queued", ExecutionMode::Queued, "sleep 0.5").await;
    let a = c.start_pipeline_execution().name("queued").send().await.unwrap().pipeline_execution_id.unwrap();
    let b = c.start_pipeline_execution().name("queued").send().await.unwrap().pipeline_execution_id.unwrap();
    let (ea, eb) = (wait_done(&c, "queued", &a).await, wait_done(&c, "queued", &b).await);
    assert_eq!(
        (ea.status.clone(), eb.status.clone()),
        (Some(PipelineExecutionStatus::Succeeded), Some(PipelineExecutionStatus::Succeeded))
    );
    let acts = c.list_action_executions().pipeline_name("queued").send().await.unwrap();
    let work = |id: &str| {
        acts.action_execution_details()
            .iter()
            .find(|x| x.pipeline_execution_id() == Some(id) && x.action_name() == Some("Work"))
            .cloned()
            .unwrap()
    };
    let (wa, wb) = (work(&a), work(&b));
    assert!(
        wb.start_time().unwrap().secs() as f64 + wb.start_time().unwrap().subsec_nanos() as f64 / 1e9
            >= wa.last_update_time().unwrap().secs() as f64
                + wa.last_update_time().unwrap().subsec_nanos() as f64 / 1e9
                - 0.01,
        "the second execution's action starts after the first one's ends"
    );

    create_with_mode(&c, "superseded", ExecutionMode::Superseded, "sleep 1").await;
    let ids: Vec<String> = futures_ids(&c, "superseded", 3).await;
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(wait_done(&c, "superseded", id).await.status.unwrap());
    }
    assert_eq!(statuses.last(), Some(&PipelineExecutionStatus::Succeeded), "the newest execution runs: {statuses:?}");
    assert_eq!(statuses[1], PipelineExecutionStatus::Superseded, "a waiting older one is superseded: {statuses:?}");
    s.stop().await.unwrap();
}

async fn futures_ids(c: &Client, name: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(c.start_pipeline_execution().name(name).send().await.unwrap().pipeline_execution_id.unwrap());
    }
    ids
}
