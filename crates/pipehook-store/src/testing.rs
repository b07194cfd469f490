//! Fresh, migrated stores for tests, in this crate and in the others.
//!
//! PostgreSQL: `PIPEHOOK_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`); each store
//! gets its own schema, dropped when the [`TestStore`] is dropped. When the server is unreachable the tests
//! skip with a visible message, unless `PIPEHOOK_TEST_POSTGRES=required` (set by `.ci/run`), which turns
//! the skip into a failure.

use std::path::PathBuf;
use std::sync::Arc;

use crate::postgres::{PgOptions, PgStore};
use crate::sqlite::{Durability, SqliteOptions, SqliteStore};
use crate::Store;

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn postgres_url() -> String {
    std::env::var("PIPEHOOK_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned())
}

pub fn postgres_required() -> bool {
    std::env::var("PIPEHOOK_TEST_POSTGRES").is_ok_and(|v| v == "required")
}

/// A PostgreSQL schema for one test, dropped (with everything in it) when this is dropped.
pub struct SchemaGuard {
    pub url: String,
    pub schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        // Best effort, on a separate thread and runtime: the test's runtime may already be shutting down.
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let s = PgStore::connect(&url, &PgOptions { max_connections: 2, schema: None }).await.ok()?;
                let dropped = drop_unblocked(&s, &schema).await;
                s.close().await;
                dropped
            })
        })
        .join();
    }
}

/// Drops `schema`, ending what blocks it. A test on a current-thread runtime drops its guard on that runtime's
/// only thread: a transaction one of its tasks left open in the schema (a write between two statements when
/// the test ended) can then never finish, and would hold the DROP's lock forever. While the DROP waits, any
/// session blocking it that has sat idle inside a transaction for over 2 s is terminated.
async fn drop_unblocked(store: &PgStore, schema: &str) -> Option<()> {
    let mut conn = store.pool().acquire().await.ok()?;
    let me: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await.ok()?;
    let unblock = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let _ = sqlx::query(
                "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a \
                 WHERE a.pid = ANY(pg_blocking_pids($1)) AND a.state = 'idle in transaction' \
                 AND now() - a.state_change > interval '2 seconds'",
            )
            .bind(me)
            .execute(store.pool())
            .await;
        }
    };
    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    let drop = sqlx::query(&sql).execute(&mut *conn);
    tokio::select! {
        r = drop => r.ok().map(|_| ()),
        () = unblock => None,
    }
}

/// A fresh schema name on the test server, or `None` (after printing why) when the server is unreachable
/// and PostgreSQL is not required.
pub async fn postgres_schema() -> Option<SchemaGuard> {
    let url = postgres_url();
    match PgStore::connect(&url, &PgOptions { max_connections: 2, schema: None }).await {
        Ok(s) => {
            s.close().await;
            Some(SchemaGuard { url, schema: format!("t_{}", uuid_like()) })
        }
        Err(e) if !postgres_required() => {
            eprintln!("SKIPPED: PostgreSQL test: cannot connect to {url}: {e} (set PIPEHOOK_TEST_POSTGRES=required to fail instead)");
            None
        }
        Err(e) => panic!("PostgreSQL is required (PIPEHOOK_TEST_POSTGRES=required) but {url} is unreachable: {e}"),
    }
}

/// A migrated store that cleans up after itself.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile_dir::Dir>,
    _schema: Option<SchemaGuard>,
}

/// A fresh SQLite store in a temporary folder (removed on drop).
pub async fn sqlite() -> TestStore {
    let dir = tempfile_dir::Dir::new();
    let opts = SqliteOptions { durability: Durability::Normal, ..SqliteOptions::default() };
    let store = SqliteStore::open(&dir.path.join("pipehook.db"), &opts).await.expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    TestStore { store: Arc::new(store), _dir: Some(dir), _schema: None }
}

/// A fresh PostgreSQL store in its own schema, or `None` when PostgreSQL is skipped (see [`postgres_schema`]).
pub async fn postgres() -> Option<TestStore> {
    let guard = postgres_schema().await?;
    let opts = PgOptions { max_connections: 12, schema: Some(guard.schema.clone()) };
    let store = PgStore::connect(&guard.url, &opts).await.expect("connect postgres");
    store.migrate().await.expect("migrate postgres");
    Some(TestStore { store: Arc::new(store), _dir: None, _schema: Some(guard) })
}

fn uuid_like() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

/// A temporary directory without another dependency: created under the system temp folder, removed on drop.
mod tempfile_dir {
    use super::PathBuf;

    pub struct Dir {
        pub path: PathBuf,
    }

    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!("pipehook-test-{}", super::uuid_like()));
            std::fs::create_dir_all(&path).expect("create temp dir");
            Self { path }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
