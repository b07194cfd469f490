//! Tests of the git checkout helper against real repositories in temporary directories; nothing
//! here touches the network.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pipehook_runner::git::{checkout, checkout_with_env, GitError};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Runs git synchronously for setting up a fixture, with a fixed identity and no signing so the
/// machine's own configuration cannot get in the way.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"])
        .args(args)
        .env("GIT_AUTHOR_NAME", "Ada Lovelace")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada Lovelace")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// An origin repository with two commits on `main` and an annotated tag `v1` on the first.
struct Origin {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    first: String,
    second: String,
}

fn origin() -> Origin {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("origin");
    std::fs::create_dir(&path).unwrap();
    git(&path, &["init", "--quiet", "-b", "main"]);
    std::fs::write(path.join("file.txt"), "one\n").unwrap();
    git(&path, &["add", "file.txt"]);
    git(&path, &["commit", "--quiet", "-m", "First commit\n\nWith a body."]);
    let first = git(&path, &["rev-parse", "HEAD"]);
    git(&path, &["tag", "-a", "v1", "-m", "Version 1"]);
    std::fs::write(path.join("file.txt"), "two\n").unwrap();
    git(&path, &["commit", "--quiet", "-am", "Second commit"]);
    let second = git(&path, &["rev-parse", "HEAD"]);
    Origin { _dir: dir, path, first, second }
}

fn read(dest: &Path) -> String {
    std::fs::read_to_string(dest.join("file.txt")).unwrap()
}

#[tokio::test]
async fn checks_out_a_branch() {
    let origin = origin();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("src");
    let url = origin.path.to_str().unwrap();

    let result = checkout(url, Some("main"), &dest, TIMEOUT).await.unwrap();
    assert_eq!(result.commit, origin.second);
    assert_eq!(result.message.as_deref(), Some("Second commit"));
    assert_eq!(result.author.as_deref(), Some("Ada Lovelace <ada@example.com>"));
    assert_eq!(read(&dest), "two\n");
}

#[tokio::test]
async fn checks_out_the_default_branch_from_a_file_url() {
    let origin = origin();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("src");
    let url = format!("file://{}", origin.path.display());

    let result = checkout(&url, None, &dest, TIMEOUT).await.unwrap();
    assert_eq!(result.commit, origin.second);
    assert_eq!(read(&dest), "two\n");
}

#[tokio::test]
async fn checks_out_an_older_commit_by_full_sha() {
    let origin = origin();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("src");
    let url = origin.path.to_str().unwrap();

    let result = checkout(url, Some(&origin.first), &dest, TIMEOUT).await.unwrap();
    assert_eq!(result.commit, origin.first);
    assert_eq!(result.message.as_deref(), Some("First commit\n\nWith a body."));
    assert_eq!(read(&dest), "one\n");

    // Reusing the same directory for another revision replaces the checkout.
    let result = checkout(url, Some("main"), &dest, TIMEOUT).await.unwrap();
    assert_eq!(result.commit, origin.second);
    assert_eq!(read(&dest), "two\n");
}

#[tokio::test]
async fn falls_back_to_a_full_fetch_when_the_server_refuses_an_unadvertised_sha() {
    let origin = origin();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("src");
    let url = origin.path.to_str().unwrap();
    // Protocol v0 without uploadpack.allowReachableSHA1InWant refuses to send a commit that is
    // not a ref tip, as many servers do.
    let env = [("GIT_CONFIG_COUNT", "1"), ("GIT_CONFIG_KEY_0", "protocol.version"), ("GIT_CONFIG_VALUE_0", "0")];

    let result = checkout_with_env(url, Some(&origin.first), &dest, TIMEOUT, &env).await.unwrap();
    assert_eq!(result.commit, origin.first);
    assert_eq!(read(&dest), "one\n");
}

#[tokio::test]
async fn checks_out_an_abbreviated_sha_through_a_full_fetch() {
    let origin = origin();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("src");
    let url = origin.path.to_str().unwrap();

    let result = checkout(url, Some(&origin.first[..10]), &dest, TIMEOUT).await.unwrap();
    assert_eq!(result.commit, origin.first);
    assert_eq!(read(&dest), "one\n");
}

#[tokio::test]
async fn checks_out_a_tag() {
    let origin = origin();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("src");
    let url = origin.path.to_str().unwrap();

    let result = checkout(url, Some("v1"), &dest, TIMEOUT).await.unwrap();
    assert_eq!(result.commit, origin.first);
    assert_eq!(read(&dest), "one\n");
}

#[tokio::test]
async fn nonexistent_revision_reports_gits_message() {
    let origin = origin();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("src");
    let url = origin.path.to_str().unwrap();
    // LC_ALL=C so git's message is the untranslated one this test looks for.
    let env = [("LC_ALL", "C")];

    let err = checkout_with_env(url, Some("no-such-branch"), &dest, TIMEOUT, &env).await.unwrap_err();
    match &err {
        GitError::Failed { step, message } => {
            assert_eq!(*step, "fetch");
            assert!(message.contains("couldn't find remote ref no-such-branch"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(err.to_string().contains("no-such-branch"));

    // A commit id that is nowhere in the repository fails too, after the full-fetch fallback.
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let err = checkout_with_env(url, Some(missing), &dest, TIMEOUT, &env).await.unwrap_err();
    match &err {
        GitError::Failed { step: "fetch", message } => assert!(message.contains("not our ref"), "{message}"),
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_repository_reports_gits_message() {
    let work = tempfile::tempdir().unwrap();
    let url = work.path().join("not-a-repo");
    let env = [("LC_ALL", "C")];
    let err =
        checkout_with_env(url.to_str().unwrap(), None, &work.path().join("src"), TIMEOUT, &env).await.unwrap_err();
    match err {
        GitError::Failed { step: "fetch", message } => assert!(message.contains("not-a-repo"), "{message}"),
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn option_like_revision_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let err = checkout("/nonexistent", Some("--upload-pack=touch /tmp/x"), work.path(), TIMEOUT).await.unwrap_err();
    assert!(matches!(err, GitError::InvalidRevision(_)), "{err:?}");
}

#[tokio::test]
async fn insteadof_from_the_git_configuration_is_honoured() {
    let origin = origin();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("src");
    let config = work.path().join("gitconfig");
    let fake = "https://git.example.invalid/team/app.git";
    std::fs::write(&config, format!("[url \"file://{}\"]\n\tinsteadOf = {fake}\n", origin.path.display())).unwrap();

    let env = [("GIT_CONFIG_GLOBAL", config.to_str().unwrap())];
    let result = checkout_with_env(fake, Some("main"), &dest, TIMEOUT, &env).await.unwrap();
    assert_eq!(result.commit, origin.second);
    assert_eq!(read(&dest), "two\n");
}

#[tokio::test]
async fn timeout_kills_git_and_its_helpers() {
    let work = tempfile::tempdir().unwrap();
    let pid_file = work.path().join("helper.pid");
    // A stand-in for ssh that never answers; git appends its own arguments, which `:` swallows.
    let ssh = format!("sleep 30 & echo $! > '{}'; wait; :", pid_file.display());
    let env = [("GIT_SSH_COMMAND", ssh.as_str()), ("GIT_SSH_VARIANT", "simple")];
    let started = std::time::Instant::now();

    let err = checkout_with_env(
        "ssh://git.example.invalid/team/app.git",
        Some("main"),
        &work.path().join("src"),
        Duration::from_millis(500),
        &env,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, GitError::TimedOut { step: "fetch", .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());

    let pid = std::fs::read_to_string(&pid_file).expect("the fake ssh ran");
    let until = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let alive = Command::new("kill").args(["-0", pid.trim()]).stderr(std::process::Stdio::null()).status();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
        if !alive.unwrap().success() || zombie {
            break;
        }
        assert!(std::time::Instant::now() < until, "the fake ssh's child {pid} is still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
