//! Whole-database copies (`pipehook_store::copy`): the SQLite snapshot taken while writers run, and SQLite
//! into PostgreSQL (skipped with a visible `SKIPPED:` line without PostgreSQL, unless required).

use pipehook_domain::credentials::ApiToken;
use pipehook_domain::org::{AccountId, OrgName};
use pipehook_store::copy::{self, CopyError};
use pipehook_store::postgres::{PgOptions, PgStore};
use pipehook_store::sqlite::{Durability, SqliteOptions, SqliteStore};
use pipehook_store::{testing, NewJob, Queue, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

async fn sqlite_at(path: &Path) -> Arc<SqliteStore> {
    let opts = SqliteOptions { durability: Durability::Normal, ..SqliteOptions::default() };
    let s = SqliteStore::open(path, &opts).await.expect("open sqlite");
    s.migrate().await.expect("migrate");
    Arc::new(s)
}

async fn add_org(s: &dyn Store, name: &str) {
    let mut tx = s.begin().await.unwrap();
    let org = tx.create_org(&OrgName::parse(name).unwrap(), &AccountId::generate()).await.unwrap();
    tx.create_token(org.id, &ApiToken::generate().hash(), "t").await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_consistent_while_writers_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pipehook.db");
    let store = sqlite_at(&db).await;
    for i in 0..50 {
        add_org(&*store, &format!("before-{i}")).await;
    }
    // A writer keeps committing (an organization and its token together) during the snapshot.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..400 {
                add_org(&*store, &format!("during-{i}")).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let snap = dir.path().join("snap.db");
    let size = copy::sqlite_snapshot(&db, &snap).await.expect("snapshot");
    writer.await.unwrap();
    assert!(size > 0);
    assert!(matches!(copy::sqlite_snapshot(&db, &snap).await, Err(CopyError::Refused(_))), "no overwrite");

    // The copy opens as a store of its own, with every organization committed before it and each one's token.
    let copied = sqlite_at(&snap).await;
    let orgs = copied.list_orgs().await.unwrap();
    assert!(orgs.len() >= 50, "{}", orgs.len());
    for o in &orgs {
        assert_eq!(copied.list_tokens(o.id).await.unwrap().len(), 1, "{} has its token", o.name);
    }
    let counts = copy::sqlite_table_counts(&snap).await.unwrap();
    assert_eq!(counts["organizations"], counts["api_tokens"]);
    assert!(!counts.contains_key("_sqlx_migrations"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_is_copied_into_a_fresh_postgres_once() {
    let Some(guard) = testing::postgres_schema().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pipehook.db");
    let store = sqlite_at(&db).await;
    for name in ["acme", "globex", "initech"] {
        add_org(&*store, name).await;
    }
    // Three jobs, the newest completed: SQLite's AUTOINCREMENT remembers id 3 although no row has it.
    store.enqueue(&[NewJob::new("k", serde_json::json!({"n": 1}))]).await.unwrap();
    store.enqueue(&[NewJob::new("k", serde_json::json!({"n": 2}))]).await.unwrap();
    let third = store.enqueue(&[NewJob::new("k", serde_json::json!({"n": 3}))]).await.unwrap()[0];
    let claimed = store.claim(&["k"], 3, Duration::from_secs(60)).await.unwrap();
    let lease = claimed.iter().find(|j| j.id == third).unwrap().lease;
    assert_eq!(store.complete(&[lease]).await.unwrap().len(), 1);
    store.close().await;

    let report = copy::sqlite_to_postgres(&db, &guard.url, Some(&guard.schema)).await.expect("copy");
    let src = copy::sqlite_table_counts(&db).await.unwrap();
    let dst = copy::postgres_table_counts(&guard.url, Some(&guard.schema)).await.unwrap();
    assert_eq!(src, dst, "every table, the same number of rows");
    assert_eq!(report.tables.len(), src.len());
    assert_eq!(dst["organizations"], 3);
    assert_eq!(dst["jobs"], 2);
    let order: Vec<&str> = report.tables.iter().map(|t| t.table.as_str()).collect();
    let pos = |t: &str| order.iter().position(|x| *x == t).unwrap();
    assert!(pos("organizations") < pos("api_tokens") && pos("pipelines") < pos("webhooks"), "{order:?}");

    // The same ids on PostgreSQL, and new rows continue after them (and after the completed job's id).
    let pg = PgStore::connect(&guard.url, &PgOptions { max_connections: 2, schema: Some(guard.schema.clone()) })
        .await
        .unwrap();
    pg.ready().await.unwrap();
    let orgs = pg.list_orgs().await.unwrap();
    assert_eq!(orgs.iter().map(|o| o.id.0).collect::<Vec<_>>(), [1, 2, 3]);
    add_org(&pg, "hooli").await;
    assert_eq!(pg.org_by_name(&OrgName::parse("hooli").unwrap()).await.unwrap().unwrap().id.0, 4);
    let next = pg.enqueue(&[NewJob::new("k", serde_json::json!({}))]).await.unwrap()[0];
    assert_eq!(next.0, 4, "an AUTOINCREMENT id given out on SQLite is never reused");

    // A second copy into the same (now used) database is refused and changes nothing.
    let again = copy::sqlite_to_postgres(&db, &guard.url, Some(&guard.schema)).await;
    assert!(matches!(&again, Err(CopyError::Refused(m)) if m.contains("already has data")), "{again:?}");
    assert_eq!(pg.list_orgs().await.unwrap().len(), 4);
    pg.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_differences_and_old_sources_are_refused_loudly() {
    let Some(guard) = testing::postgres_schema().await else { return };
    let dir = tempfile::tempdir().unwrap();

    // Not a database at all, and not a pipehook database.
    let missing = copy::sqlite_to_postgres(&dir.path().join("none.db"), &guard.url, Some(&guard.schema)).await;
    assert!(matches!(missing, Err(CopyError::Refused(_))), "{missing:?}");
    let empty = dir.path().join("empty.db");
    let s = SqliteStore::open(&empty, &SqliteOptions::default()).await.unwrap();
    s.close().await;
    let not_ours = copy::sqlite_to_postgres(&empty, &guard.url, Some(&guard.schema)).await;
    assert!(matches!(&not_ours, Err(CopyError::Refused(m)) if m.contains("not a pipehook database")), "{not_ours:?}");

    // A table only SQLite has: named, and nothing copied.
    let db = dir.path().join("pipehook.db");
    let store = sqlite_at(&db).await;
    add_org(&*store, "acme").await;
    store.close().await;
    with_sqlite(&db, "CREATE TABLE stray (id INTEGER PRIMARY KEY, note TEXT)").await;
    let e = copy::sqlite_to_postgres(&db, &guard.url, Some(&guard.schema)).await;
    assert!(matches!(&e, Err(CopyError::SchemaMismatch(m)) if m.contains("stray")), "{e:?}");
    with_sqlite(&db, "DROP TABLE stray").await;

    // A column only SQLite has.
    with_sqlite(&db, "ALTER TABLE organizations ADD COLUMN motto TEXT").await;
    let e = copy::sqlite_to_postgres(&db, &guard.url, Some(&guard.schema)).await;
    assert!(matches!(&e, Err(CopyError::SchemaMismatch(m)) if m.contains("organizations.motto")), "{e:?}");
    let counts = copy::postgres_table_counts(&guard.url, Some(&guard.schema)).await.unwrap();
    assert!(counts.values().all(|n| *n == 0), "a failed copy leaves the target empty: {counts:?}");
    with_sqlite(&db, "ALTER TABLE organizations DROP COLUMN motto").await;

    // A value PostgreSQL cannot hold (SQLite keeps a NUL inside text, PostgreSQL refuses it): the table is named,
    // and nothing is copied.
    with_sqlite(
        &db,
        "INSERT INTO inbound_requests (id, org_id, webhook_id, webhook_name, received_at, peer, headers, body, \
         body_truncated, verdict, detail) VALUES ('r1', 1, 1, 'gh', 1, 'p', '{}', 'a' || char(0) || 'b', 0, \
         'filtered', '{}')",
    )
    .await;
    let e = copy::sqlite_to_postgres(&db, &guard.url, Some(&guard.schema)).await;
    let message = e.as_ref().map(|_| String::new()).unwrap_or_else(|e| e.to_string());
    assert!(message.contains("inbound_requests") && message.contains("NUL"), "{e:?}");
    let counts = copy::postgres_table_counts(&guard.url, Some(&guard.schema)).await.unwrap();
    assert!(counts.values().all(|n| *n == 0), "{counts:?}");
    with_sqlite(&db, "DELETE FROM inbound_requests").await;
    let report = copy::sqlite_to_postgres(&db, &guard.url, Some(&guard.schema)).await.expect("then it copies");
    assert_eq!(report.total_rows(), 2, "the organization and its token");
}

/// Runs one statement on a SQLite file (to make a schema pipehook would never make).
async fn with_sqlite(path: &Path, sql: &str) {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(path).connect().await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}
