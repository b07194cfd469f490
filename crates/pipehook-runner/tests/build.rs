//! Tests of the CodeBuild build runner with real processes under `/bin/sh` (and bash), and real git
//! repositories in temporary directories.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pipehook_runner::build::{
    run_build, BuildIdentity, BuildOutcome, BuildPhase, BuildRequest, Downloaded, FnSource, GitSource, NoSource,
    PhaseObserver, PhaseType, SourceStep, StatusType,
};
use pipehook_runner::buildspec::parse;
use pipehook_runner::exec::{Executor, LogSink};
use tokio_util::sync::CancellationToken;

fn request(dir: &Path, buildspec: &str) -> BuildRequest {
    BuildRequest {
        identity: BuildIdentity {
            build_id: "my-project:3f2c8a4e-1b7d-4c9a-9e0f-5a6b7c8d9e0f".into(),
            build_arn: "arn:aws:codebuild:eu-west-1:123456789012:build/my-project:3f2c8a4e-1b7d-4c9a-9e0f-5a6b7c8d9e0f"
                .into(),
            build_number: 7,
            initiator: "alice".into(),
            source_version: Some("refs/heads/main".into()),
            source_repo_url: Some("https://git.example.com/acme/widgets.git".into()),
        },
        buildspec: parse(buildspec).unwrap_or_else(|e| panic!("{e}")),
        source_dir: dir.join("src"),
        env: Vec::new(),
        timeout: Duration::from_secs(60),
        log_limit: 64 * 1024,
        submitted_at: None,
        executor: Executor::Direct,
        registry: None,
    }
}

async fn run(request: &BuildRequest) -> BuildOutcome {
    run_build(request, &NoSource, &(), &CancellationToken::new(), None).await
}

/// The phases the build went through, with their statuses (COMPLETED has none).
fn phases(outcome: &BuildOutcome) -> Vec<(PhaseType, Option<StatusType>)> {
    outcome.phases.iter().map(|p| (p.phase_type, p.phase_status)).collect()
}

use PhaseType::*;
use StatusType::{Failed, Stopped, Succeeded, TimedOut};

const OK: Option<StatusType> = Some(Succeeded);
const FAILED: Option<StatusType> = Some(Failed);

fn all_succeeded() -> Vec<(PhaseType, Option<StatusType>)> {
    vec![
        (Submitted, OK),
        (Queued, OK),
        (Provisioning, OK),
        (DownloadSource, OK),
        (Install, OK),
        (PreBuild, OK),
        (Build, OK),
        (PostBuild, OK),
        (UploadArtifacts, OK),
        (Finalizing, OK),
        (Completed, None),
    ]
}

fn context(outcome: &BuildOutcome, phase: PhaseType) -> (String, String) {
    let c = &outcome.phase(phase).unwrap().contexts[0];
    (c.status_code.clone(), c.message.clone())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn a_passing_build_and_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(&request(
        dir.path(),
        "version: 0.2\nphases:\n  install:\n    commands:\n      - echo installing\n  build:\n    commands:\n      - echo building\n      - echo to stderr >&2\n",
    ))
    .await;
    assert_eq!(outcome.build_status, Succeeded, "{}", outcome.log);
    assert_eq!(phases(&outcome), all_succeeded());
    for phase in &outcome.phases[..outcome.phases.len() - 1] {
        let end = phase.end_time.expect("every phase but COMPLETED ends");
        assert!(end >= phase.start_time);
        assert!(phase.duration_in_seconds.is_some());
        assert!(phase.contexts.is_empty(), "{phase:?}");
    }
    let completed = outcome.phases.last().unwrap();
    assert_eq!((completed.end_time, completed.duration_in_seconds), (None, None));
    let log = &outcome.log;
    for needle in [
        "Entering phase INSTALL\n",
        "[Container] Running command echo installing\ninstalling\n",
        "Phase complete: INSTALL State: SUCCEEDED\n",
        "[Container] Running command echo building\nbuilding\n",
        "[Container] Running command echo to stderr >&2\nto stderr\n",
        "Phase context status code:  Message: \n",
        "Entering phase UPLOAD_ARTIFACTS\n",
        "Build SUCCEEDED\n",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    // The phases appear in the log in order, and the state directory stays out of the workspace.
    let order: Vec<usize> =
        ["PROVISIONING", "DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD", "FINALIZING"]
            .iter()
            .map(|p| log.find(&format!("Entering phase {p}\n")).unwrap())
            .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{log}");
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("src")).unwrap().collect();
    assert!(entries.is_empty(), "the workspace holds {entries:?}");
    assert!(!outcome.log_truncated);
}

#[tokio::test]
async fn the_shell_session_carries_across_commands_and_phases() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let spec = format!(
        r#"
version: 0.2
env:
  variables:
    FROM_SPEC: spec
    OVERRIDDEN: by-spec
    NUMBER: 42
phases:
  install:
    commands:
      - mkdir -p sub/dir && cd sub/dir
      - export EXPORTED=yes PATH="$PWD/bin:$PATH"
      - PLAIN=only-here
      - 'echo "same phase: $PLAIN $(pwd)" > {out}/install.txt'
  pre_build:
    commands:
      - unset FROM_SPEC
  build:
    commands:
      - echo "pwd=$(pwd)" > {out}/build.txt
      - echo "exported=$EXPORTED plain=${{PLAIN:-unset}} spec=${{FROM_SPEC:-unset}} overridden=$OVERRIDDEN number=$NUMBER" >> {out}/build.txt
      - echo "path=${{PATH%%:*}}" >> {out}/build.txt
      - env | grep '^CODEBUILD_' | sort > {out}/codebuild.txt
"#,
        out = out.display()
    );
    let mut request = request(dir.path(), &spec);
    request.env = vec![
        ("OVERRIDDEN".into(), "by-project".into()),
        ("CODEBUILD_WEBHOOK_EVENT".into(), "PUSH".into()),
        ("CODEBUILD_BUILD_ID".into(), "a caller cannot override this".into()),
    ];
    let outcome = run(&request).await;
    assert_eq!(outcome.build_status, Succeeded, "{}", outcome.log);
    let src = request.source_dir.display().to_string();
    assert_eq!(read(&out.join("install.txt")), format!("same phase: only-here {src}/sub/dir\n"));
    assert_eq!(
        read(&out.join("build.txt")),
        format!(
            "pwd={src}/sub/dir\nexported=yes plain=unset spec=unset overridden=by-project number=42\npath={src}/sub/dir/bin\n"
        )
    );
    let codebuild = read(&out.join("codebuild.txt"));
    for line in [
        "CODEBUILD_BUILD_ARN=arn:aws:codebuild:eu-west-1:123456789012:build/my-project:3f2c8a4e-1b7d-4c9a-9e0f-5a6b7c8d9e0f",
        "CODEBUILD_BUILD_ID=my-project:3f2c8a4e-1b7d-4c9a-9e0f-5a6b7c8d9e0f",
        "CODEBUILD_BUILD_NUMBER=7",
        "CODEBUILD_BUILD_SUCCEEDING=1",
        "CODEBUILD_CI=true",
        "CODEBUILD_INITIATOR=alice",
        "CODEBUILD_LOG_PATH=3f2c8a4e-1b7d-4c9a-9e0f-5a6b7c8d9e0f",
        "CODEBUILD_SOURCE_REPO_URL=https://git.example.com/acme/widgets.git",
        "CODEBUILD_SOURCE_VERSION=refs/heads/main",
        &format!("CODEBUILD_SRC_DIR={src}"),
        "CODEBUILD_WEBHOOK_EVENT=PUSH",
    ] {
        assert!(codebuild.lines().any(|l| l == line), "{line:?} missing from\n{codebuild}");
    }
    assert!(codebuild.lines().any(|l| l.starts_with("CODEBUILD_START_TIME=")), "{codebuild}");
    // No source step resolved anything.
    assert!(!codebuild.contains("CODEBUILD_RESOLVED_SOURCE_VERSION"), "{codebuild}");
}

#[tokio::test]
async fn bash_when_the_buildspec_asks_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shell.txt");
    let spec = format!(
        "version: 0.2\nenv:\n  shell: bash\nphases:\n  install:\n    commands:\n      - export ARR_LEN=$(a=(1 2 3); echo ${{#a[@]}})\n  build:\n    commands:\n      - echo \"$BASH_VERSION $ARR_LEN\" > {}\n",
        out.display()
    );
    let outcome = run(&request(dir.path(), &spec)).await;
    assert_eq!(outcome.build_status, Succeeded, "{}", outcome.log);
    let text = read(&out);
    assert!(text.trim_end().ends_with(" 3") && !text.starts_with(' '), "{text:?}");
}

#[tokio::test]
async fn version_0_1_runs_each_command_in_its_own_shell() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let spec = format!(
        "version: 0.1\nphases:\n  build:\n    commands:\n      - mkdir sub && cd sub\n      - export X=1\n      - echo \"$(pwd) ${{X:-unset}}\" > {}\n",
        out.display()
    );
    let request = request(dir.path(), &spec);
    let outcome = run(&request).await;
    assert_eq!(outcome.build_status, Succeeded, "{}", outcome.log);
    assert_eq!(read(&out), format!("{} unset\n", request.source_dir.display()));
}

#[tokio::test]
async fn a_failing_build_still_runs_post_build() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let spec = format!(
        r#"
version: 0.2
phases:
  build:
    commands:
      - echo first >> {out}
      - "false"
      - echo never >> {out}
    finally:
      - echo "finally $CODEBUILD_BUILD_SUCCEEDING" >> {out}
  post_build:
    commands:
      - echo "post_build $CODEBUILD_BUILD_SUCCEEDING" >> {out}
"#,
        out = out.display()
    );
    let outcome = run(&request(dir.path(), &spec)).await;
    assert_eq!(outcome.build_status, Failed, "{}", outcome.log);
    // The phase's remaining command is skipped, its finally runs; POST_BUILD sees the build failing.
    assert_eq!(read(&out), "first\nfinally 1\npost_build 0\n");
    let mut want = all_succeeded();
    want[6].1 = FAILED;
    assert_eq!(phases(&outcome), want);
    assert_eq!(
        context(&outcome, Build),
        ("COMMAND_EXECUTION_ERROR".into(), "Error while executing command: false. Reason: exit status 1".into())
    );
    assert!(
        outcome.log.contains("[Container] Command did not exit successfully false exit status 1\n"),
        "{}",
        outcome.log
    );
    assert!(outcome.log.contains("Phase complete: BUILD State: FAILED\n"));
    assert!(outcome.log.contains(
        "Phase context status code: COMMAND_EXECUTION_ERROR Message: Error while executing command: false. Reason: exit status 1\n"
    ));
    assert!(outcome.log.contains("Build FAILED\n"));
}

#[tokio::test]
async fn a_failing_install_skips_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let spec = format!(
        r#"
version: 0.2
phases:
  install:
    commands:
      - exit 3
    finally:
      - echo install-finally >> {out}
  pre_build:
    commands: [echo pre_build >> {out}]
  build:
    commands: [echo build >> {out}]
  post_build:
    commands: [echo post_build >> {out}]
"#,
        out = out.display()
    );
    let outcome = run(&request(dir.path(), &spec)).await;
    assert_eq!(outcome.build_status, Failed);
    // `exit` ends the phase's shell: the failure is recorded with its command, the phase's `finally` still
    // runs, and no later phase does.
    assert_eq!(read(&out), "install-finally\n");
    assert_eq!(
        phases(&outcome),
        [
            (Submitted, OK),
            (Queued, OK),
            (Provisioning, OK),
            (DownloadSource, OK),
            (Install, FAILED),
            (Finalizing, OK),
            (Completed, None)
        ]
    );
    assert_eq!(context(&outcome, Install).1, "Error while executing command: exit 3. Reason: exit status 3");
}

#[tokio::test]
async fn a_failing_pre_build_skips_build_and_post_build_but_runs_its_finally() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let spec = format!(
        r#"
version: 0.2
phases:
  install:
    commands: [echo install >> {out}]
  pre_build:
    commands:
      - ls /nonexistent-pipehook-path
    finally:
      - echo pre_build-finally >> {out}
  build:
    commands: [echo build >> {out}]
  post_build:
    commands: [echo post_build >> {out}]
"#,
        out = out.display()
    );
    let outcome = run(&request(dir.path(), &spec)).await;
    assert_eq!(outcome.build_status, Failed);
    assert_eq!(read(&out), "install\npre_build-finally\n");
    assert_eq!(
        phases(&outcome),
        [
            (Submitted, OK),
            (Queued, OK),
            (Provisioning, OK),
            (DownloadSource, OK),
            (Install, OK),
            (PreBuild, FAILED),
            (Finalizing, OK),
            (Completed, None)
        ]
    );
    let (code, message) = context(&outcome, PreBuild);
    assert_eq!(code, "COMMAND_EXECUTION_ERROR");
    assert!(
        message.starts_with("Error while executing command: ls /nonexistent-pipehook-path. Reason: exit status "),
        "{message}"
    );
    assert!(outcome.log.contains("No such file or directory"), "{}", outcome.log);
}

#[tokio::test]
async fn a_failing_finally_fails_its_phase() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "version: 0.2\nphases:\n  build:\n    commands: [\"true\"]\n    finally:\n      - exit 4\n      - echo not reached\n";
    let outcome = run(&request(dir.path(), spec)).await;
    assert_eq!(outcome.build_status, Failed);
    assert_eq!(outcome.phase(Build).unwrap().phase_status, FAILED);
    assert_eq!(context(&outcome, Build).1, "Error while executing command: exit 4. Reason: exit status 4");
    assert!(!outcome.log.contains("Running command echo not reached"));
    // A failed BUILD still goes on to POST_BUILD.
    assert_eq!(outcome.phase(PostBuild).unwrap().phase_status, OK);
}

#[tokio::test]
async fn exit_in_a_command_or_in_finally() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    // `exit 0` ends the phase's commands early but successfully; `finally` still runs.
    let spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo a >> {out}\n      - exit 0\n      - echo never >> {out}\n    finally:\n      - echo fin >> {out}\n",
        out = out.display()
    );
    let outcome = run(&request(dir.path(), &spec)).await;
    assert_eq!(outcome.build_status, Succeeded, "{}", outcome.log);
    assert_eq!(read(&out), "a\nfin\n");
    // A successful `exit 0` in `finally` does not hide the failure of a command.
    let spec = "version: 0.2\nphases:\n  build:\n    commands: [\"false\"]\n    finally: [exit 0]\n";
    let outcome = run(&request(dir.path(), spec)).await;
    assert_eq!(outcome.build_status, Failed);
    assert_eq!(context(&outcome, Build).1, "Error while executing command: false. Reason: exit status 1");
}

#[tokio::test]
async fn on_failure_continue_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let spec = format!(
        r#"
version: 0.2
phases:
  install:
    on-failure: CONTINUE
    commands:
      - "false"
      - echo skipped >> {out}
  pre_build:
    commands: [echo "pre_build $CODEBUILD_BUILD_SUCCEEDING" >> {out}]
  build:
    commands: [echo build >> {out}]
"#,
        out = out.display()
    );
    let outcome = run(&request(dir.path(), &spec)).await;
    assert_eq!(outcome.build_status, Failed);
    assert_eq!(read(&out), "pre_build 0\nbuild\n");
    let mut want = all_succeeded();
    want[4].1 = FAILED;
    assert_eq!(phases(&outcome), want);
}

#[tokio::test]
async fn the_build_timeout_ends_it_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - sleep 30\n    finally:\n      - echo finally >> {out}\n  post_build:\n    commands: [echo post >> {out}]\n",
        out = out.display()
    );
    let mut request = request(dir.path(), &spec);
    request.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let outcome = run(&request).await;
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(outcome.build_status, TimedOut);
    assert!(!out.exists(), "nothing runs after a timeout");
    assert_eq!(
        phases(&outcome),
        [
            (Submitted, OK),
            (Queued, OK),
            (Provisioning, OK),
            (DownloadSource, OK),
            (Install, OK),
            (PreBuild, OK),
            (Build, Some(TimedOut)),
            (Finalizing, OK),
            (Completed, None)
        ]
    );
    assert_eq!(context(&outcome, Build), ("BUILD_TIMED_OUT".into(), "Build has timed out".into()));
    assert!(outcome.log.contains("Build TIMED_OUT\n"));
}

#[tokio::test]
async fn a_stop_ends_it_stopped_and_kills_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - sleep 60 & echo $! > {pid}; wait\n",
        pid = pid_file.display()
    );
    let request = request(dir.path(), &spec);
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stopper.cancel();
    });
    let started = Instant::now();
    let outcome = run_build(&request, &NoSource, &(), &stop, None).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(outcome.build_status, Stopped, "{}", outcome.log);
    assert_eq!(outcome.phase(Build).unwrap().phase_status, Some(Stopped));
    assert_eq!(outcome.phase(PostBuild), None);
    assert_eq!(outcome.phases.last().unwrap().phase_type, Completed);
    // The background sleep was in the phase's process group and is gone.
    let pid = read(&pid_file).trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')) {
            break;
        }
        assert!(Instant::now() < deadline, "process {pid} still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Stopped before it started: nothing is provisioned.
    let stop = CancellationToken::new();
    stop.cancel();
    let outcome = run_build(&request, &NoSource, &(), &stop, None).await;
    assert_eq!(outcome.build_status, Stopped);
    assert_eq!(phases(&outcome), [(Submitted, OK), (Queued, OK), (Finalizing, OK), (Completed, None)]);
}

/// Records every report of the observer.
#[derive(Default)]
struct Recorder(Mutex<Vec<Vec<BuildPhase>>>);

#[async_trait]
impl PhaseObserver for Recorder {
    async fn phases_changed(&self, phases: &[BuildPhase]) {
        self.0.lock().unwrap().push(phases.to_vec());
    }
}

#[tokio::test]
async fn the_observer_sees_every_transition_and_the_sink_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let request =
        request(dir.path(), "version: 0.2\nphases:\n  build:\n    commands: [echo hello; sleep 0.6; echo world]\n");
    let recorder = Recorder::default();
    let (sink, mut snapshots) = LogSink::new();
    let seen = tokio::spawn(async move {
        let mut all = Vec::new();
        while snapshots.changed().await.is_ok() {
            all.push(snapshots.borrow_and_update().clone());
        }
        all
    });
    let outcome = run_build(&request, &NoSource, &recorder, &CancellationToken::new(), Some(&sink)).await;
    drop(sink);
    let snapshots = seen.await.unwrap();
    assert_eq!(outcome.build_status, Succeeded);
    assert_eq!(snapshots.last().unwrap(), &outcome.log);
    // While BUILD ran, a snapshot showed its first line without its last.
    assert!(
        snapshots.iter().any(|s| s.contains("\nhello\n") && !s.contains("\nworld\n")),
        "no partial snapshot among {} snapshots: {snapshots:#?}",
        snapshots.len()
    );
    let reports = recorder.0.into_inner().unwrap();
    // The first report has SUBMITTED and QUEUED; then each phase is reported when it starts and ends.
    let current: Vec<(PhaseType, Option<StatusType>)> =
        reports.iter().map(|phases| phases.last().map(|p| (p.phase_type, p.phase_status)).unwrap()).collect();
    let mut want = vec![(Queued, OK)];
    for phase in [Provisioning, DownloadSource, Install, PreBuild, Build, PostBuild, UploadArtifacts, Finalizing] {
        want.push((phase, None));
        want.push((phase, OK));
    }
    want.push((Completed, None));
    assert_eq!(current, want);
    assert_eq!(reports.last().unwrap(), &outcome.phases);
}

/// An origin repository with one commit.
fn origin(dir: &Path) -> (String, String) {
    let path = dir.join("origin");
    std::fs::create_dir(&path).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&path)
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .env("GIT_AUTHOR_NAME", "Ada Lovelace")
            .env("GIT_AUTHOR_EMAIL", "ada@example.com")
            .env("GIT_COMMITTER_NAME", "Ada Lovelace")
            .env("GIT_COMMITTER_EMAIL", "ada@example.com")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    git(&["init", "--quiet", "-b", "main"]);
    std::fs::write(path.join("hello.txt"), "hello from git\n").unwrap();
    git(&["add", "hello.txt"]);
    git(&["commit", "--quiet", "-m", "Add hello"]);
    (path.display().to_string(), git(&["rev-parse", "HEAD"]))
}

#[tokio::test]
async fn download_source_with_git() {
    let dir = tempfile::tempdir().unwrap();
    let (url, commit) = origin(dir.path());
    let out = dir.path().join("out.txt");
    let spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - cat hello.txt > {out}\n      - echo \"$CODEBUILD_RESOLVED_SOURCE_VERSION\" >> {out}\n",
        out = out.display()
    );
    let request = request(dir.path(), &spec);
    let source = GitSource { url: url.clone(), revision: Some("main".into()), extra_env: Vec::new() };
    let outcome = run_build(&request, &source, &(), &CancellationToken::new(), None).await;
    assert_eq!(outcome.build_status, Succeeded, "{}", outcome.log);
    assert_eq!(outcome.resolved_source_version.as_deref(), Some(commit.as_str()));
    assert_eq!(read(&out), format!("hello from git\n{commit}\n"));
    assert!(outcome.log.contains(&format!("checked out {commit} Add hello\n")), "{}", outcome.log);

    // A revision git cannot find fails DOWNLOAD_SOURCE with git's own message, and nothing runs.
    let dir2 = tempfile::tempdir().unwrap();
    let request = self::request(dir2.path(), &spec);
    let source = GitSource { url, revision: Some("no-such-branch".into()), extra_env: Vec::new() };
    let outcome = run_build(&request, &source, &(), &CancellationToken::new(), None).await;
    assert_eq!(outcome.build_status, Failed);
    assert_eq!(
        phases(&outcome),
        [
            (Submitted, OK),
            (Queued, OK),
            (Provisioning, OK),
            (DownloadSource, FAILED),
            (Finalizing, OK),
            (Completed, None)
        ]
    );
    let (code, message) = context(&outcome, DownloadSource);
    assert_eq!(code, "CLIENT_ERROR");
    assert!(message.starts_with("git fetch failed: ") && message.contains("no-such-branch"), "{message}");
    assert!(outcome.log.contains(&format!("DOWNLOAD_SOURCE failed: {message}")));
    assert!(!out.exists() || !read(&out).is_empty());
}

/// A source step that never finishes.
struct Hang;

#[async_trait]
impl SourceStep for Hang {
    async fn download(&self, _dest: &Path, _timeout: Duration) -> Result<Downloaded, String> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_hanging_source_step_times_out_or_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut request = request(dir.path(), "version: 0.2\nphases:\n  build:\n    commands: [\"true\"]\n");
    request.timeout = Duration::from_millis(300);
    let outcome = run_build(&request, &Hang, &(), &CancellationToken::new(), None).await;
    assert_eq!(outcome.build_status, TimedOut);
    assert_eq!(outcome.phase(DownloadSource).unwrap().phase_status, Some(TimedOut));
    assert_eq!(outcome.phase(Install), None);

    request.timeout = Duration::from_secs(60);
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stopper.cancel();
    });
    let outcome = run_build(&request, &Hang, &(), &stop, None).await;
    assert_eq!(outcome.build_status, Stopped);
    assert_eq!(outcome.phase(DownloadSource).unwrap().phase_status, Some(Stopped));
}

#[tokio::test]
async fn a_closure_as_source_step() {
    let dir = tempfile::tempdir().unwrap();
    let request = request(dir.path(), "version: 0.2\nphases:\n  build:\n    commands: [test -f made-by-closure]\n");
    let source = FnSource(|dest: std::path::PathBuf, _timeout| async move {
        tokio::fs::write(dest.join("made-by-closure"), "x").await.map_err(|e| e.to_string())?;
        Ok(Downloaded { resolved_source_version: Some("abc123".into()), summary: None })
    });
    let outcome = run_build(&request, &source, &(), &CancellationToken::new(), None).await;
    assert_eq!(outcome.build_status, Succeeded, "{}", outcome.log);
    assert_eq!(outcome.resolved_source_version.as_deref(), Some("abc123"));
}

#[tokio::test]
async fn each_phase_output_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut request = request(
        dir.path(),
        "version: 0.2\nphases:\n  build:\n    commands:\n      - i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done\n",
    );
    request.log_limit = 1024;
    let outcome = run(&request).await;
    assert_eq!(outcome.build_status, Succeeded);
    assert!(outcome.log_truncated);
    assert!(outcome.log.contains("bytes truncated"), "{}", outcome.log);
    assert!(outcome.log.contains("line-1999\n"));
    assert!(outcome.log.len() < 8 * 1024, "{}", outcome.log.len());
}
