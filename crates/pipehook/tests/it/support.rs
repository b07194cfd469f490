//! The test server: the real `run()` on 127.0.0.1:0 with a fresh SQLite folder or PostgreSQL schema, and
//! helpers to call it and to run the real binary.

use pipehook::app::StartError;
use pipehook::config::{Config, Overrides};
use pipehook_store::testing::{self, SchemaGuard};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "phk_test_token_0123456789abcdefghij";
pub const ACCESS_KEY_ID: &str = "AKIATESTTESTTESTTEST";
pub const SECRET_ACCESS_KEY: &str = "testsecretTESTSECRET/0123456789abcdefghi";
pub const ACCOUNT_ID: &str = "123456789012";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub url: String,
    pub data_dir: PathBuf,
    pub env: HashMap<String, String>,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<Result<(), StartError>>>,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<std::sync::Arc<SchemaGuard>>,
}

pub struct Builder {
    env: HashMap<String, String>,
    backend: Backend,
    shared_schema: Option<std::sync::Arc<SchemaGuard>>,
    data_dir: Option<PathBuf>,
}

impl Builder {
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.into(), v.into());
        self
    }

    pub fn backend(mut self, b: Backend) -> Self {
        self.backend = b;
        self
    }

    /// Use an existing PostgreSQL schema (several nodes on one database).
    pub fn schema(mut self, guard: std::sync::Arc<SchemaGuard>) -> Self {
        self.backend = Backend::Postgres;
        self.shared_schema = Some(guard);
        self
    }

    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// Starts the server; `None` when PostgreSQL was asked for and is skipped.
    pub async fn start(mut self) -> Option<TestServer> {
        let temp = if self.data_dir.is_none() { Some(tempfile::tempdir().unwrap()) } else { None };
        let data_dir = self.data_dir.clone().unwrap_or_else(|| temp.as_ref().unwrap().path().to_owned());
        self.env.entry("PIPEHOOK_DATA_DIR".into()).or_insert_with(|| data_dir.display().to_string());
        let schema = match (self.backend, self.shared_schema.take()) {
            (Backend::Sqlite, _) => None,
            (Backend::Postgres, Some(g)) => Some(g),
            (Backend::Postgres, None) => Some(std::sync::Arc::new(testing::postgres_schema().await?)),
        };
        if let Some(g) = &schema {
            self.env.insert("PIPEHOOK_DATABASE_URL".into(), g.url.clone());
            self.env.insert("PIPEHOOK_POSTGRES_SCHEMA".into(), g.schema.clone());
            self.env.insert("PIPEHOOK_POSTGRES_MAX_CONNECTIONS".into(), "4".into());
        }
        let env = self.env.clone();
        let config = Config::load(None, &|k| env.get(k).cloned(), &Overrides::default()).expect("test config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(pipehook::run(config, Some(listener), shutdown.clone()));
        let mut server =
            TestServer { url, data_dir, env: self.env, shutdown, handle: Some(handle), _dir: temp, _schema: schema };
        server.wait_healthy().await;
        Some(server)
    }
}

impl TestServer {
    /// A server with the standard test credentials bootstrapped, on SQLite.
    pub fn builder() -> Builder {
        let env: HashMap<String, String> = [
            ("PIPEHOOK_BOOTSTRAP_TOKEN", TOKEN),
            ("PIPEHOOK_BOOTSTRAP_AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("PIPEHOOK_BOOTSTRAP_AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("PIPEHOOK_BOOTSTRAP_ACCOUNT_ID", ACCOUNT_ID),
            ("PIPEHOOK_SQLITE_DURABILITY", "normal"),
            ("PIPEHOOK_SHUTDOWN_GRACE_SECONDS", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Builder { env, backend: Backend::Sqlite, shared_schema: None, data_dir: None }
    }

    pub async fn start() -> TestServer {
        Self::builder().start().await.expect("sqlite server")
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/healthz", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if self.handle.as_ref().is_some_and(|h| h.is_finished()) {
                panic!("server exited during start: {:?}", self.handle.as_mut().unwrap().await);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not become healthy");
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut req = self.client().get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.header("authorization", format!("token {t}"));
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    /// Stops the server the way SIGTERM does and returns what `run` returned.
    pub async fn stop(mut self) -> Result<(), StartError> {
        self.shutdown.cancel();
        self.handle.take().unwrap().await.expect("run panicked")
    }

    /// Runs the real `pipehook` binary against this server's database.
    /// Runs the real `pipehook` binary against this server's database. Asynchronously: the server runs on
    /// this test's runtime, and blocking it while the CLI waits for a lock the server holds would deadlock.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = tokio::process::Command::from(pipehook_cmd());
        cmd.envs(&self.env).args(args).output().await.expect("run pipehook")
    }

    /// [`TestServer::cli`] as a client of this server: `PIPEHOOK_SERVER` set, the caller's `AWS_*` credentials
    /// removed, and `env` added (e.g. the token and the access key pair).
    pub async fn cli_with(&self, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
        let mut cmd = tokio::process::Command::from(pipehook_cmd());
        for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"] {
            cmd.env_remove(k);
        }
        cmd.envs(&self.env).env("PIPEHOOK_SERVER", &self.url).envs(env.iter().copied());
        cmd.args(args).output().await.expect("run pipehook")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The compiled binary with a clean environment (no PIPEHOOK_* from the caller).
pub fn pipehook_cmd() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pipehook"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PIPEHOOK_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// A client of the official AWS SDK pointed at the server.
pub fn codepipeline(url: &str, key_id: &str, secret: &str, region: &str) -> aws_sdk_codepipeline::Client {
    let creds = aws_credential_types::Credentials::new(key_id, secret, None, None, "test");
    let conf = aws_sdk_codepipeline::Config::builder()
        .behavior_version(aws_sdk_codepipeline::config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_sdk_codepipeline::config::Region::new(region.to_owned()))
        .credentials_provider(creds)
        .build();
    aws_sdk_codepipeline::Client::from_conf(conf)
}

/// Waits for an execution to end (neither `InProgress` nor `Stopping`) and returns it, as the SDK reads it.
pub async fn wait_done(
    c: &aws_sdk_codepipeline::Client,
    pipeline: &str,
    id: &str,
) -> aws_sdk_codepipeline::types::PipelineExecution {
    use aws_sdk_codepipeline::types::PipelineExecutionStatus;
    for _ in 0..300 {
        let e = c.get_pipeline_execution().pipeline_name(pipeline).pipeline_execution_id(id).send().await.unwrap();
        let e = e.pipeline_execution.unwrap();
        if !matches!(e.status, Some(PipelineExecutionStatus::InProgress) | Some(PipelineExecutionStatus::Stopping)) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("execution {id} of {pipeline} did not finish");
}

/// A raw AWS JSON call signed by the official `aws-sigv4` signer, for bodies the SDK would never send
/// (malformed JSON, wrong types, oversized documents). Returns the status and the parsed body.
pub async fn signed_post(url: &str, target: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;

    let identity: Identity =
        aws_credential_types::Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("codepipeline")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let host = url.trim_start_matches("http://").to_owned();
    let headers = [
        ("content-type", "application/x-amz-json-1.1".to_owned()),
        ("x-amz-target", target.to_owned()),
        ("host", host.clone()),
    ];
    let uri = format!("{url}/");
    let signable = SignableRequest::new(
        "POST",
        uri.clone(),
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        SignableBody::Bytes(&body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder().method("POST").uri(&uri).body(()).unwrap();
    for (k, v) in &headers {
        request.headers_mut().insert(*k, http::HeaderValue::from_str(v).unwrap());
    }
    instructions.apply_to_request_http1x(&mut request);
    let mut req = reqwest::Client::new().post(&uri).body(body);
    for (k, v) in request.headers() {
        req = req.header(k.as_str(), v.to_str().unwrap());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}
