//! The storage conformance suite: one body per behaviour, each taking a freshly migrated, empty store.
//!
//! `tests/conformance.rs` runs every body against SQLite always and against PostgreSQL when a server is
//! reachable (required in CI). A body panics on the first broken expectation.

use pipehook_domain::credentials::{AccessKeyId, ApiToken, TokenHash};
use pipehook_domain::org::{AccountId, OrgId, OrgName, Organization};
use pipehook_domain::time::Timestamp;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{FailOutcome, JobId, NewJob, Store, StoreError};

/// A claim by the node `node`, without caps.
async fn claim_as(
    store: &dyn Store,
    node: &str,
    kinds: &[&str],
    limit: u32,
    lease_for: Duration,
) -> crate::StoreResult<Vec<crate::Job>> {
    store.claim_fair(&crate::Claimer { node: node.into(), max_running_per_org: None }, kinds, limit, lease_for).await
}

async fn org(store: &dyn Store, name: &str) -> Organization {
    let mut tx = store.begin().await.unwrap();
    let o = tx.create_org(&OrgName::parse(name).unwrap(), &AccountId::generate()).await.unwrap();
    tx.commit().await.unwrap();
    o
}

pub async fn migrations_are_idempotent_and_ready(store: &dyn Store) {
    store.migrate().await.expect("second migrate is a no-op");
    store.ready().await.expect("ready after migrate");
}

pub async fn orgs_crud_and_uniqueness(store: &dyn Store) {
    let name = OrgName::parse("acme").unwrap();
    let account = AccountId::parse("123456789012").unwrap();
    let mut tx = store.begin().await.unwrap();
    let created = tx.create_org(&name, &account).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(created.name, name);
    assert_eq!(created.account_id, account);

    assert_eq!(store.org_by_name(&name).await.unwrap(), Some(created.clone()));
    assert_eq!(store.org_by_id(created.id).await.unwrap(), Some(created.clone()));
    assert_eq!(store.org_by_name(&OrgName::parse("nope").unwrap()).await.unwrap(), None);

    // Settings: `{}` until set, then what was stored.
    assert_eq!(store.org_settings(created.id).await.unwrap(), serde_json::json!({}));
    let mut tx = store.begin().await.unwrap();
    assert!(tx.set_org_settings(created.id, &serde_json::json!({"suppressDuplicateBuilds": true})).await.unwrap());
    assert!(!tx.set_org_settings(OrgId(i64::MAX), &serde_json::json!({})).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(store.org_settings(created.id).await.unwrap(), serde_json::json!({"suppressDuplicateBuilds": true}));

    let mut tx = store.begin().await.unwrap();
    let dup_name = tx.create_org(&name, &AccountId::parse("999999999999").unwrap()).await;
    assert!(matches!(dup_name, Err(StoreError::Conflict(_))), "duplicate name: {dup_name:?}");
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    let dup_account = tx.create_org(&OrgName::parse("other").unwrap(), &account).await;
    assert!(matches!(dup_account, Err(StoreError::Conflict(_))), "duplicate account id: {dup_account:?}");
    drop(tx);

    org(store, "beta").await;
    let names: Vec<String> = store.list_orgs().await.unwrap().into_iter().map(|o| o.name.to_string()).collect();
    assert_eq!(names, ["acme", "beta"]);
}

pub async fn tokens_and_access_keys(store: &dyn Store) {
    let o = org(store, "acme").await;
    let token = ApiToken::generate();
    let mut tx = store.begin().await.unwrap();
    let tid = tx.create_token(o.id, &token.hash(), "ci").await.unwrap();
    let key = AccessKeyId::generate();
    tx.create_access_key(o.id, &key, "v1:ciphertext", "sdk").await.unwrap();
    tx.commit().await.unwrap();

    let p = store.token_principal(&token.hash()).await.unwrap().expect("token authenticates");
    assert_eq!((p.token, p.org.id), (tid, o.id));
    assert!(store.token_principal(&TokenHash::of("phk_wrong")).await.unwrap().is_none());

    let rec = store.access_key(&key).await.unwrap().expect("key is stored");
    assert_eq!((rec.org, rec.secret_ciphertext.as_str(), rec.revoked_at), (o.id, "v1:ciphertext", None));
    assert_eq!(store.count_active_credentials().await.unwrap(), 2);

    let mut tx = store.begin().await.unwrap();
    assert!(matches!(tx.create_token(o.id, &token.hash(), "again").await, Err(StoreError::Conflict(_))));
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(tx.create_access_key(o.id, &key, "v1:x", "").await, Err(StoreError::Conflict(_))));
    drop(tx);

    let mut tx = store.begin().await.unwrap();
    assert!(tx.set_access_key_secret(o.id, &key, "v1:rotated").await.unwrap());
    assert!(tx.revoke_token(o.id, tid).await.unwrap());
    assert!(!tx.revoke_token(o.id, tid).await.unwrap(), "revoking twice reports nothing revoked");
    assert!(tx.revoke_access_key(o.id, &key).await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.token_principal(&token.hash()).await.unwrap().is_none(), "revoked token must not authenticate");
    let rec = store.access_key(&key).await.unwrap().unwrap();
    assert!(rec.revoked_at.is_some());
    assert_eq!(rec.secret_ciphertext, "v1:rotated");
    assert_eq!(store.count_active_credentials().await.unwrap(), 0);
    assert!(store.list_tokens(o.id).await.unwrap()[0].revoked_at.is_some());
}

pub async fn organizations_are_isolated(store: &dyn Store) {
    let a = org(store, "org-a").await;
    let b = org(store, "org-b").await;
    let (ta, tb) = (ApiToken::generate(), ApiToken::generate());
    let (ka, kb) = (AccessKeyId::generate(), AccessKeyId::generate());
    let mut tx = store.begin().await.unwrap();
    let ida = tx.create_token(a.id, &ta.hash(), "a").await.unwrap();
    let idb = tx.create_token(b.id, &tb.hash(), "b").await.unwrap();
    tx.create_access_key(a.id, &ka, "v1:a", "").await.unwrap();
    tx.create_access_key(b.id, &kb, "v1:b", "").await.unwrap();
    tx.commit().await.unwrap();

    let tokens_a = store.list_tokens(a.id).await.unwrap();
    assert_eq!(tokens_a.iter().map(|t| t.id).collect::<Vec<_>>(), [ida]);
    assert!(tokens_a.iter().all(|t| t.org == a.id));
    let keys_b = store.list_access_keys(b.id).await.unwrap();
    assert_eq!(keys_b.iter().map(|k| k.id.clone()).collect::<Vec<_>>(), std::slice::from_ref(&kb));
    assert_eq!(store.token_principal(&tb.hash()).await.unwrap().unwrap().org.id, b.id);

    // Writes scoped to org A cannot touch org B's credentials.
    let mut tx = store.begin().await.unwrap();
    assert!(!tx.revoke_token(a.id, idb).await.unwrap());
    assert!(!tx.revoke_access_key(a.id, &kb).await.unwrap());
    assert!(!tx.set_access_key_secret(a.id, &kb, "v1:stolen").await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.token_principal(&tb.hash()).await.unwrap().is_some());
    let kb_rec = store.access_key(&kb).await.unwrap().unwrap();
    assert_eq!((kb_rec.secret_ciphertext.as_str(), kb_rec.revoked_at), ("v1:b", None));
}

pub async fn enqueue_commits_with_the_domain_write(store: &dyn Store) {
    // Rolled back (dropped) transaction: neither the organization nor its jobs exist.
    let mut tx = store.begin().await.unwrap();
    tx.create_org(&OrgName::parse("ghost").unwrap(), &AccountId::generate()).await.unwrap();
    tx.enqueue(&[NewJob::new("t.atomic", json!({"n": 1}))]).await.unwrap();
    drop(tx);
    assert!(store.org_by_name(&OrgName::parse("ghost").unwrap()).await.unwrap().is_none());
    assert!(store.claim(&["t.atomic"], 10, Duration::from_secs(30)).await.unwrap().is_empty());

    // A failing domain write (duplicate name) after the enqueue: the caller abandons the tx; no job remains.
    let existing = org(store, "taken").await;
    let mut tx = store.begin().await.unwrap();
    tx.enqueue(&[NewJob::new("t.atomic", json!({"n": 2}))]).await.unwrap();
    assert!(tx.create_org(&existing.name, &AccountId::generate()).await.is_err());
    drop(tx);
    assert!(store.claim(&["t.atomic"], 10, Duration::from_secs(30)).await.unwrap().is_empty());

    // Committed: both exist.
    let mut tx = store.begin().await.unwrap();
    let o = tx.create_org(&OrgName::parse("real").unwrap(), &AccountId::generate()).await.unwrap();
    let ids = tx.enqueue(&[NewJob::new("t.atomic", json!({"n": 3})).org(o.id)]).await.unwrap();
    tx.commit().await.unwrap();
    let got = store.claim(&["t.atomic"], 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id, got[0].org, &got[0].payload), (ids[0], Some(o.id), &json!({"n": 3})));
}

pub async fn claim_complete_in_order(store: &dyn Store) {
    let jobs: Vec<NewJob> = (0..5).map(|i| NewJob::new("t.basic", json!({"i": i}))).collect();
    let ids = store.enqueue(&jobs).await.unwrap();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in input order");
    store.enqueue(&[NewJob::new("t.other", json!(null))]).await.unwrap();

    let first = store.claim(&["t.basic"], 3, Duration::from_secs(30)).await.unwrap();
    assert_eq!(first.iter().map(|j| j.id).collect::<Vec<_>>(), ids[..3]);
    assert!(first.iter().all(|j| j.attempt == 1 && j.kind == "t.basic"));
    assert_eq!(first[2].payload, json!({"i": 2}));
    let rest = store.claim(&["t.basic"], 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(rest.iter().map(|j| j.id).collect::<Vec<_>>(), ids[3..], "held jobs are not claimed again");
    assert!(store.claim(&["t.basic"], 10, Duration::from_secs(30)).await.unwrap().is_empty());

    let leases: Vec<_> = first.iter().chain(&rest).map(|j| j.lease).collect();
    assert_eq!(store.complete(&leases).await.unwrap().len(), 5);
    assert!(store.complete(&leases).await.unwrap().is_empty(), "completing twice completes nothing");
    let depth = store.depth().await.unwrap();
    assert_eq!(depth.len(), 1, "only the other kind remains: {depth:?}");
    assert_eq!((depth[0].kind.as_str(), depth[0].state.as_str(), depth[0].count), ("t.other", "ready", 1));
    assert!(store.claim(&[], 10, Duration::from_secs(30)).await.unwrap().is_empty());
}

pub async fn scheduled_jobs_wait_for_run_at(store: &dyn Store) {
    let later = Timestamp::now().saturating_add(Duration::from_secs(3600));
    let soon = Timestamp::now().saturating_add(Duration::from_millis(300));
    store.enqueue(&[NewJob::new("t.sched", json!(1)).run_at(later)]).await.unwrap();
    let soon_id = store.enqueue(&[NewJob::new("t.sched", json!(2)).run_at(soon)]).await.unwrap()[0];
    assert!(store.claim(&["t.sched"], 10, Duration::from_secs(30)).await.unwrap().is_empty());
    let depth = store.depth().await.unwrap();
    assert_eq!(depth.iter().find(|d| d.state == "scheduled").map(|d| d.count), Some(2));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got = store.claim(&["t.sched"], 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), [soon_id]);
}

pub async fn fail_retries_then_dies(store: &dyn Store) {
    let id = store.enqueue(&[NewJob::new("t.fail", json!({"x": 1})).max_attempts(2)]).await.unwrap()[0];
    let j = store.claim(&["t.fail"], 1, Duration::from_secs(30)).await.unwrap().remove(0);
    let retry_at = Timestamp::now().saturating_add(Duration::from_millis(200));
    assert_eq!(
        store.fail(&j.lease, "boom 1", Some(retry_at)).await.unwrap(),
        Some(FailOutcome::Retrying { at: retry_at })
    );
    assert!(
        store.claim(&["t.fail"], 1, Duration::from_secs(30)).await.unwrap().is_empty(),
        "not before its retry time"
    );
    assert_eq!(store.fail(&j.lease, "again", None).await.unwrap(), None, "a released lease cannot fail again");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let j2 = store.claim(&["t.fail"], 1, Duration::from_secs(30)).await.unwrap().remove(0);
    assert_eq!((j2.id, j2.attempt), (id, 2));
    assert_eq!(store.fail(&j2.lease, "boom 2", Some(Timestamp::now())).await.unwrap(), Some(FailOutcome::Dead));
    assert!(store.claim(&["t.fail"], 1, Duration::from_secs(30)).await.unwrap().is_empty());

    let dead = store.list_dead(Some("t.fail"), None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempts, dead[0].last_error.as_deref()), (id, 2, Some("boom 2")));
    assert_eq!(dead[0].payload, json!({"x": 1}));
    assert!(store.list_dead(Some("t.other"), None, 10).await.unwrap().is_empty());

    // A permanent failure (no retry time) dies on its first attempt.
    store.enqueue(&[NewJob::new("t.fail", json!(2))]).await.unwrap();
    let j3 = store.claim(&["t.fail"], 1, Duration::from_secs(30)).await.unwrap().remove(0);
    assert_eq!(store.fail(&j3.lease, &"x".repeat(10_000), None).await.unwrap(), Some(FailOutcome::Dead));
    let dead = store.list_dead(None, None, 10).await.unwrap();
    assert_eq!(dead.iter().map(|d| d.id).collect::<Vec<_>>(), [j3.id, id], "newest first");
    assert!(dead[0].last_error.as_ref().unwrap().len() < 5000, "stored errors are bounded");
    assert_eq!(store.list_dead(None, Some(j3.id), 10).await.unwrap().len(), 1, "pagination by id");
    assert_eq!(store.depth().await.unwrap().iter().find(|d| d.state == "dead").map(|d| d.count), Some(2));

    assert!(store.requeue_dead(id).await.unwrap());
    assert!(!store.requeue_dead(id).await.unwrap(), "no longer dead");
    assert!(!store.requeue_dead(JobId(i64::MAX)).await.unwrap());
    let again = store.claim(&["t.fail"], 1, Duration::from_secs(30)).await.unwrap();
    assert_eq!((again[0].id, again[0].attempt), (id, 1), "requeued with fresh attempts");
}

pub async fn expired_lease_is_reclaimed_and_old_holder_is_fenced(store: &dyn Store) {
    let id = store.enqueue(&[NewJob::new("t.lease", json!(null))]).await.unwrap()[0];
    let a = store.claim(&["t.lease"], 1, Duration::from_millis(200)).await.unwrap().remove(0);
    assert!(store.claim(&["t.lease"], 1, Duration::from_secs(30)).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Worker A "died": its lease ran out without being extended. B takes the job over.
    let b = store.claim(&["t.lease"], 1, Duration::from_secs(30)).await.unwrap().remove(0);
    assert_eq!((b.id, b.attempt), (id, 2));
    assert_ne!(a.lease.token, b.lease.token);
    assert!(store.extend(&[a.lease], Duration::from_secs(30)).await.unwrap().is_empty());
    assert!(store.complete(&[a.lease]).await.unwrap().is_empty(), "A's stale lease completes nothing");
    assert_eq!(store.fail(&a.lease, "late", None).await.unwrap(), None);
    assert_eq!(store.release(&[a.lease]).await.unwrap(), 0);
    assert_eq!(store.complete(&[b.lease]).await.unwrap(), [b.lease]);
    assert!(store.depth().await.unwrap().is_empty());
}

/// Fencing: a transaction that holds a job's lease writes as its holder or not at all. A stale holder's
/// transaction is refused, and a claim racing a held transaction never takes the job before it commits.
pub async fn writes_are_fenced_by_the_lease(store: Arc<dyn Store>) {
    let id = store.enqueue(&[NewJob::new("t.fence", json!(null))]).await.unwrap()[0];
    let a = claim_as(&*store, "node-a", &["t.fence"], 1, Duration::from_millis(200)).await.unwrap().remove(0);
    let mut tx = store.begin().await.unwrap();
    tx.hold(&a.lease).await.expect("the holder's lease holds");
    tx.commit().await.unwrap();

    // The lease runs out while a transaction holds it: the claim that races it cannot take the job until the
    // transaction has ended (SQLite: the claim waits for the write lock; PostgreSQL: the row is locked).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tx = store.begin().await.unwrap();
    tx.hold(&a.lease).await.expect("an expired lease nobody took over still holds");
    let claimer = {
        let store = store.clone();
        tokio::spawn(async move {
            let jobs = claim_as(&*store, "node-b", &["t.fence"], 1, Duration::from_secs(30)).await.unwrap();
            (jobs, std::time::Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let committed = std::time::Instant::now();
    tx.commit().await.unwrap();
    let (jobs, at) = claimer.await.unwrap();
    if let Some(b) = jobs.first() {
        assert!(at >= committed, "a claim took a job inside its holder's transaction");
        assert_eq!(b.id, id);
    }
    let b = match jobs.into_iter().next() {
        Some(b) => b,
        None => claim_as(&*store, "node-b", &["t.fence"], 1, Duration::from_secs(30)).await.unwrap().remove(0),
    };
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(tx.hold(&a.lease).await, Err(StoreError::LeaseLost)), "the stale holder is fenced");
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    tx.hold(&b.lease).await.expect("the new holder writes");
    tx.commit().await.unwrap();
    assert_eq!(store.complete(&[b.lease]).await.unwrap(), [b.lease]);
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(tx.hold(&b.lease).await, Err(StoreError::LeaseLost)), "a completed job holds no lease");
}

/// A restarted node takes back at once the jobs its previous life held; other nodes' jobs stay theirs.
pub async fn a_restarted_node_recovers_its_own_leases(store: &dyn Store) {
    let ids = store.enqueue(&(0..3).map(|i| NewJob::new("t.recover", json!(i))).collect::<Vec<_>>()).await.unwrap();
    let mine = claim_as(store, "node-r", &["t.recover"], 2, Duration::from_secs(60)).await.unwrap();
    let theirs = claim_as(store, "node-s", &["t.recover"], 1, Duration::from_secs(60)).await.unwrap();
    assert_eq!((mine.len(), theirs.len()), (2, 1));
    assert_eq!(store.recover("").await.unwrap(), 0, "an anonymous node recovers nothing");
    assert_eq!(store.recover("node-r").await.unwrap(), 2);
    let again = claim_as(store, "node-r", &["t.recover"], 10, Duration::from_secs(60)).await.unwrap();
    let mut got: Vec<JobId> = again.iter().map(|j| j.id).collect();
    got.sort();
    let mut want: Vec<JobId> = mine.iter().map(|j| j.id).collect();
    want.sort();
    assert_eq!(got, want, "only the node's own jobs come back, at once");
    assert!(again.iter().all(|j| j.attempt == 2), "the lost claim counts towards max_attempts: {again:?}");
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(tx.hold(&mine[0].lease).await, Err(StoreError::LeaseLost)), "the previous life is fenced");
    drop(tx);
    assert_eq!(store.complete(&theirs.iter().map(|j| j.lease).collect::<Vec<_>>()).await.unwrap().len(), 1);
    assert_eq!(store.complete(&again.iter().map(|j| j.lease).collect::<Vec<_>>()).await.unwrap().len(), 2);
    assert_eq!(ids.len(), 3);
}

/// Claims are fair between organizations: one organization's old backlog does not starve another's single
/// job, and no organization runs more than the claimer's cap, across claims.
pub async fn claims_are_fair_between_organizations(store: &dyn Store) {
    let (a, b) = (org(store, "fair-a").await, org(store, "fair-b").await);
    let backlog: Vec<NewJob> = (0..300).map(|i| NewJob::new("t.fair", json!(i)).org(a.id)).collect();
    store.enqueue(&backlog).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let single = store.enqueue(&[NewJob::new("t.fair", json!("b")).org(b.id)]).await.unwrap()[0];
    let unowned = store.enqueue(&[NewJob::new("t.fair", json!("none"))]).await.unwrap()[0];
    let first = store.claim(&["t.fair"], 3, Duration::from_secs(60)).await.unwrap();
    let ids: Vec<JobId> = first.iter().map(|j| j.id).collect();
    assert!(ids.contains(&single), "the other organization's job is in the first claim: {first:?}");
    assert!(ids.contains(&unowned), "jobs of no organization take their turn too: {first:?}");
    assert_eq!(first.iter().filter(|j| j.org == Some(a.id)).count(), 1);
    store.complete(&first.iter().map(|j| j.lease).collect::<Vec<_>>()).await.unwrap();

    // A cap of 5 running jobs per organization, across claims.
    let capped = crate::Claimer { node: "n".into(), max_running_per_org: Some(5) };
    let c1 = store.claim_fair(&capped, &["t.fair"], 3, Duration::from_secs(60)).await.unwrap();
    let c2 = store.claim_fair(&capped, &["t.fair"], 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!((c1.len(), c2.len()), (3, 2), "the cap counts what is already running");
    assert!(store.claim_fair(&capped, &["t.fair"], 10, Duration::from_secs(60)).await.unwrap().is_empty());
    // Another organization is not held back by the first one's cap.
    let other = store.enqueue(&[NewJob::new("t.fair", json!("b2")).org(b.id)]).await.unwrap()[0];
    let c3 = store.claim_fair(&capped, &["t.fair"], 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(c3.iter().map(|j| j.id).collect::<Vec<_>>(), [other]);
    // Oldest first within an organization.
    let mut payloads: Vec<i64> = c1.iter().chain(&c2).filter_map(|j| j.payload.as_i64()).collect();
    payloads.sort();
    assert_eq!(payloads, [1, 2, 3, 4, 5]);
}

/// Inside an organization, claims are shared between its groups (`fair_key`: pipelines, projects) the same
/// way: one pipeline's backlog does not hold back another pipeline's execution, even one slot at a time.
pub async fn claims_are_fair_between_an_organizations_groups(store: &dyn Store) {
    let a = org(store, "groups").await;
    let backlog: Vec<NewJob> =
        (0..200).map(|i| NewJob::new("t.group", json!(i)).org(a.id).fair_key("pipeline:1")).collect();
    store.enqueue(&backlog).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let other =
        store.enqueue(&[NewJob::new("t.group", json!("p2")).org(a.id).fair_key("pipeline:2")]).await.unwrap()[0];
    // Pipeline 1 already runs one job: a single free slot goes to pipeline 2, despite pipeline 1's older backlog.
    let first = store.claim(&["t.group"], 1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(first[0].payload, json!(0), "the oldest job first when nothing runs");
    let second = store.claim(&["t.group"], 1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(second.iter().map(|j| j.id).collect::<Vec<_>>(), [other], "the other pipeline's job next");
    let third = store.claim(&["t.group"], 2, Duration::from_secs(60)).await.unwrap();
    assert_eq!(third.iter().map(|j| j.payload.clone()).collect::<Vec<_>>(), [json!(1), json!(2)]);
}

pub async fn extended_lease_is_kept(store: &dyn Store) {
    store.enqueue(&[NewJob::new("t.extend", json!(null))]).await.unwrap();
    let j = store.claim(&["t.extend"], 1, Duration::from_millis(300)).await.unwrap().remove(0);
    assert_eq!(store.extend(&[j.lease], Duration::from_secs(30)).await.unwrap(), [j.lease]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store.claim(&["t.extend"], 1, Duration::from_secs(30)).await.unwrap().is_empty());
    assert_eq!(store.complete(&[j.lease]).await.unwrap(), [j.lease]);
}

pub async fn lost_lease_on_last_attempt_dies(store: &dyn Store) {
    let id = store.enqueue(&[NewJob::new("t.lost", json!(null)).max_attempts(1)]).await.unwrap()[0];
    store.claim(&["t.lost"], 1, Duration::from_millis(100)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store.claim(&["t.lost"], 1, Duration::from_secs(30)).await.unwrap().is_empty());
    let dead = store.list_dead(Some("t.lost"), None, 10).await.unwrap();
    assert_eq!(dead.iter().map(|d| d.id).collect::<Vec<_>>(), [id]);
    assert!(dead[0].last_error.as_deref().unwrap_or_default().contains("lease expired"));
}

pub async fn defer_waits_without_using_an_attempt(store: &dyn Store) {
    let id = store.enqueue(&[NewJob::new("t.defer", json!(null)).max_attempts(1)]).await.unwrap()[0];
    let j = store.claim(&["t.defer"], 1, Duration::from_secs(30)).await.unwrap().remove(0);
    assert!(store.defer(&j.lease, Timestamp::now().saturating_add(Duration::from_millis(200))).await.unwrap());
    assert!(!store.defer(&j.lease, Timestamp::now()).await.unwrap(), "the lease is gone after a defer");
    assert!(store.claim(&["t.defer"], 1, Duration::from_secs(30)).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let again = store.claim(&["t.defer"], 1, Duration::from_secs(30)).await.unwrap().remove(0);
    assert_eq!((again.id, again.attempt), (id, 1), "a deferred job keeps its attempts (max 1 here)");
}

pub async fn release_returns_job_without_using_an_attempt(store: &dyn Store) {
    let id = store.enqueue(&[NewJob::new("t.release", json!(null))]).await.unwrap()[0];
    let j = store.claim(&["t.release"], 1, Duration::from_secs(30)).await.unwrap().remove(0);
    assert_eq!(store.release(&[j.lease]).await.unwrap(), 1);
    let again = store.claim(&["t.release"], 1, Duration::from_secs(30)).await.unwrap().remove(0);
    assert_eq!((again.id, again.attempt), (id, 1));
}

/// 8 workers drain 10,000 jobs concurrently: every job is completed exactly once, none is lost, and no job
/// is ever held by two workers at once.
pub async fn concurrent_workers_drain_exactly_once(store: Arc<dyn Store>) {
    const JOBS: usize = 10_000;
    const WORKERS: usize = 8;
    let batch: Vec<NewJob> = (0..JOBS).map(|i| NewJob::new("t.drain", json!({ "i": i }))).collect();
    let mut all_ids = Vec::new();
    for chunk in batch.chunks(1000) {
        all_ids.extend(store.enqueue(chunk).await.unwrap());
    }
    let held: Arc<Mutex<HashSet<JobId>>> = Arc::default();
    let completed: Arc<Mutex<HashMap<JobId, u32>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (store, held, completed) = (store.clone(), held.clone(), completed.clone());
        tasks.push(tokio::spawn(async move {
            let mut idle = 0;
            while idle < 3 {
                let jobs = store.claim(&["t.drain"], 50, Duration::from_secs(60)).await.unwrap();
                if jobs.is_empty() {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                idle = 0;
                {
                    let mut h = held.lock().unwrap();
                    for j in &jobs {
                        assert!(h.insert(j.id), "worker {w}: job {:?} is already held by another worker", j.id);
                    }
                }
                let leases: Vec<_> = jobs.iter().map(|j| j.lease).collect();
                let done = store.complete(&leases).await.unwrap();
                assert_eq!(done.len(), leases.len(), "worker {w}: a lease was lost mid-drain");
                {
                    let mut h = held.lock().unwrap();
                    for j in &jobs {
                        h.remove(&j.id);
                    }
                }
                let mut c = completed.lock().unwrap();
                for l in done {
                    *c.entry(l.job).or_default() += 1;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker panicked");
    }
    let c = completed.lock().unwrap().clone();
    assert_eq!(c.len(), JOBS, "every job completed");
    assert!(c.values().all(|&n| n == 1), "no job completed twice");
    assert!(all_ids.iter().all(|id| c.contains_key(id)), "no job lost");
    assert!(store.depth().await.unwrap().is_empty(), "queue empty after drain");
}

/// A worker takes a job and dies mid-job (never extends); another worker, polling, completes it after the
/// lease expires, and the dead worker's late completion is refused.
pub async fn killed_worker_job_is_completed_by_another(store: Arc<dyn Store>) {
    let id = store.enqueue(&[NewJob::new("t.kill", json!({"work": "x"}))]).await.unwrap()[0];
    let doomed = {
        let store = store.clone();
        tokio::spawn(async move {
            let j = store.claim(&["t.kill"], 1, Duration::from_millis(300)).await.unwrap().remove(0);
            // Simulate a long job; this task is aborted (killed) before it finishes.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            store.complete(&[j.lease]).await.unwrap();
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    doomed.abort();
    let rescuer = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                let jobs = store.claim(&["t.kill"], 1, Duration::from_secs(30)).await.unwrap();
                if let Some(j) = jobs.into_iter().next() {
                    return (j.id, j.attempt, store.complete(&[j.lease]).await.unwrap().len());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the killed worker's job was never handed to another worker");
        })
    };
    assert_eq!(rescuer.await.unwrap(), (id, 2, 1));
    assert!(store.depth().await.unwrap().is_empty());
}

fn decl(name: &str, marker: &str) -> serde_json::Value {
    json!({"name": name, "roleArn": "arn:aws:iam::123456789012:role/x", "stages": [], "marker": marker})
}

pub async fn pipelines_versions_and_isolation(store: &dyn Store) {
    let a = org(store, "org-a").await;
    let b = org(store, "org-b").await;
    let mut tx = store.begin().await.unwrap();
    let p = tx.create_pipeline(a.id, "deploy", &decl("deploy", "v1")).await.unwrap();
    tx.create_pipeline(b.id, "deploy", &decl("deploy", "b")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((p.version, p.declaration["version"].as_i64()), (1, Some(1)), "the store stamps the version");

    let mut tx = store.begin().await.unwrap();
    assert!(matches!(tx.create_pipeline(a.id, "deploy", &decl("deploy", "dup")).await, Err(StoreError::Conflict(_))));
    drop(tx);

    let mut tx = store.begin().await.unwrap();
    let v2 = tx.update_pipeline(a.id, "deploy", &decl("deploy", "v2")).await.unwrap().unwrap();
    assert!(tx.update_pipeline(a.id, "absent", &decl("absent", "x")).await.unwrap().is_none());
    tx.commit().await.unwrap();
    assert_eq!((v2.version, v2.declaration["marker"].as_str()), (2, Some("v2")));
    let v1 = store.pipeline_version(a.id, "deploy", 1).await.unwrap().unwrap();
    assert_eq!((v1["marker"].as_str(), v1["version"].as_i64()), (Some("v1"), Some(1)));
    assert!(store.pipeline_version(a.id, "deploy", 3).await.unwrap().is_none());

    // Org B's pipeline of the same name is untouched and invisible to org A.
    let pb = store.pipeline(b.id, "deploy").await.unwrap().unwrap();
    assert_eq!((pb.version, pb.declaration["marker"].as_str()), (1, Some("b")));
    assert_eq!(store.list_pipelines(a.id, None, 10).await.unwrap().len(), 1);
    assert_eq!(store.count_pipelines(b.id).await.unwrap(), 1);

    let mut tx = store.begin().await.unwrap();
    for n in ["alpha", "beta", "gamma"] {
        tx.create_pipeline(a.id, n, &decl(n, "x")).await.unwrap();
    }
    tx.commit().await.unwrap();
    let page1: Vec<String> = store.list_pipelines(a.id, None, 2).await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(page1, ["alpha", "beta"]);
    let page2: Vec<String> =
        store.list_pipelines(a.id, Some("beta"), 10).await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(page2, ["deploy", "gamma"]);

    let mut tx = store.begin().await.unwrap();
    tx.set_tags(a.id, "arn:x", &[("k".into(), "v".into()), ("k2".into(), "v2".into())]).await.unwrap();
    tx.set_tags(a.id, "arn:x", &[("k".into(), "v1".into())]).await.unwrap();
    tx.remove_tags(a.id, "arn:x", &["k2".into()]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.tags(a.id, "arn:x").await.unwrap(), [("k".to_string(), "v1".to_string())]);
    assert!(store.tags(b.id, "arn:x").await.unwrap().is_empty());

    let mut tx = store.begin().await.unwrap();
    assert!(!tx.delete_pipeline(b.id, "alpha", "arn:alpha").await.unwrap(), "org B cannot delete org A's pipeline");
    assert!(tx.delete_pipeline(a.id, "deploy", "arn:x").await.unwrap());
    assert!(!tx.delete_pipeline(a.id, "deploy", "arn:x").await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.pipeline(a.id, "deploy").await.unwrap().is_none());
    assert!(store.pipeline_version(a.id, "deploy", 1).await.unwrap().is_none());
    assert!(store.tags(a.id, "arn:x").await.unwrap().is_empty(), "tags go with the pipeline");
    assert!(store.pipeline(b.id, "deploy").await.unwrap().is_some());
}

pub async fn executions_actions_and_stops(store: &dyn Store) {
    use crate::{ActionExecutionRecord, NewExecution, StopRequest};
    let a = org(store, "org-a").await;
    let b = org(store, "org-b").await;
    let mut tx = store.begin().await.unwrap();
    let p = tx.create_pipeline(a.id, "deploy", &decl("deploy", "v1")).await.unwrap();
    let new = |id: &str, token: Option<&str>| NewExecution {
        id: id.into(),
        org: a.id,
        pipeline_id: p.id,
        pipeline_name: "deploy".into(),
        pipeline_version: 1,
        execution_mode: "QUEUED".into(),
        trigger: json!({"triggerType": "StartPipelineExecution"}),
        source_revisions: json!([]),
        variables: json!([]),
        client_request_token: token.map(str::to_owned),
    };
    let e1 = tx.insert_execution(&new("e1", Some("tok"))).await.unwrap();
    tx.insert_execution(&new("e2", None)).await.unwrap();
    tx.insert_execution(&new("e3", None)).await.unwrap();
    tx.record_run_event(a.id, "pipeline_execution_started", "e1", &json!({"n": 1})).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(e1.status, "InProgress");

    let mut tx = store.begin().await.unwrap();
    assert!(matches!(tx.insert_execution(&new("e4", Some("tok"))).await, Err(StoreError::Conflict(_))));
    drop(tx);
    assert_eq!(store.execution_by_token(a.id, p.id, "tok").await.unwrap().unwrap().id, "e1");
    assert!(store.execution(b.id, "e1").await.unwrap().is_none(), "org B cannot read org A's execution");

    let newest: Vec<String> =
        store.list_executions(a.id, p.id, None, 2).await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(newest, ["e3", "e2"]);
    let seq_e2 = store.execution(a.id, "e2").await.unwrap().unwrap().seq;
    let older: Vec<String> =
        store.list_executions(a.id, p.id, Some(seq_e2), 10).await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(older, ["e1"]);

    let action = |id: &str, exec: &str, name: &str, idx: i64| ActionExecutionRecord {
        seq: 0,
        id: id.into(),
        execution_id: exec.into(),
        org: a.id,
        pipeline_id: p.id,
        stage_name: "Build".into(),
        action_name: name.into(),
        stage_index: 1,
        action_index: idx,
        status: "InProgress".into(),
        input: json!({"configuration": {"Command": "true"}}),
        output: json!({}),
        error_code: None,
        error_message: None,
        log: String::new(),
        start_time: Timestamp::now(),
        last_update_time: Timestamp::now(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.start_action(&action("a1", "e1", "Compile", 0)).await.unwrap();
    tx.start_action(&action("a2", "e1", "Lint", 1)).await.unwrap();
    tx.set_action_log("a1", "partial").await.unwrap();
    tx.finish_action("a1", "Succeeded", &json!({"exitCode": 0}), None, "full log").await.unwrap();
    tx.finish_action("a2", "Failed", &json!({}), Some(("JobFailed", "exit 2")), "oops").await.unwrap();
    tx.set_execution_status(a.id, "e1", "Failed", Some("Lint failed")).await.unwrap();
    tx.start_action(&action("a3", "e2", "Compile", 0)).await.unwrap();
    tx.commit().await.unwrap();

    let acts = store.action_executions(a.id, "e1").await.unwrap();
    assert_eq!(
        acts.iter().map(|x| (x.id.as_str(), x.status.as_str())).collect::<Vec<_>>(),
        [("a1", "Succeeded"), ("a2", "Failed")]
    );
    assert_eq!((acts[0].log.as_str(), acts[1].error_code.as_deref()), ("full log", Some("JobFailed")));
    let latest = store.latest_action_executions(a.id, p.id).await.unwrap();
    assert_eq!(latest.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["a3", "a2"], "newest per action");
    let listed = store.list_action_executions(a.id, p.id, Some("e1"), None, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(store.action_executions(b.id, "e1").await.unwrap().is_empty());
    let active: Vec<String> = store.active_executions(a.id, p.id).await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(active, ["e2", "e3"]);

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.request_stop(a.id, "e2", false, Some("enough")).await.unwrap(), StopRequest::Accepted);
    assert_eq!(tx.request_stop(a.id, "e2", false, None).await.unwrap(), StopRequest::Duplicate);
    assert_eq!(tx.request_stop(a.id, "e2", true, None).await.unwrap(), StopRequest::Accepted, "escalate to abandon");
    assert_eq!(tx.request_stop(a.id, "e1", false, None).await.unwrap(), StopRequest::NotStoppable);
    assert_eq!(tx.request_stop(b.id, "e3", false, None).await.unwrap(), StopRequest::NotFound);
    tx.commit().await.unwrap();
    let e2 = store.execution(a.id, "e2").await.unwrap().unwrap();
    assert_eq!((e2.status.as_str(), e2.stop_requested, e2.stop_abandon), ("Stopping", true, true));
    assert_eq!(
        store.run_events(a.id, "e1").await.unwrap(),
        [("pipeline_execution_started".to_string(), json!({"n": 1}))]
    );

    // Deleting the pipeline removes its executions and actions.
    let mut tx = store.begin().await.unwrap();
    tx.delete_pipeline(a.id, "deploy", "arn").await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.execution(a.id, "e1").await.unwrap().is_none());
    assert!(store.action_executions(a.id, "e1").await.unwrap().is_empty());
}

/// The inbound log's size budget: the oldest requests go until the rest fit, counted as
/// [`crate::webhooks::inbound_size`] says (multi-byte characters by their bytes), across organizations; a log
/// within the budget is left alone.
pub async fn inbound_log_size_budget(store: &dyn Store) {
    use crate::webhooks::inbound_size;
    use crate::InboundRecord;
    let a = org(store, "org-a").await;
    let b = org(store, "org-b").await;
    let req = |org: OrgId, n: usize, body: String| InboundRecord {
        seq: 0,
        id: format!("r{n}"),
        org,
        webhook_id: 1,
        webhook_name: "gh".into(),
        received_at: Timestamp(1_000 + n as i64),
        peer: "127.0.0.1".into(),
        headers: json!({"x-github-event": "push"}),
        body,
        body_truncated: false,
        delivery_id: None,
        verdict: "filtered".into(),
        detail: json!({"reason": "é"}),
        execution_id: None,
    };
    // Ten requests of 1,000 bytes of body each (the even ones in two-byte characters), alternating orgs.
    let records: Vec<InboundRecord> = (0..10)
        .map(|n| {
            let body = if n % 2 == 0 { "é".repeat(500) } else { "x".repeat(1_000) };
            req(if n % 2 == 0 { a.id } else { b.id }, n, body)
        })
        .collect();
    let size = inbound_size(&records[0]);
    assert_eq!(size, inbound_size(&records[1]), "bytes, not characters");
    let mut tx = store.begin().await.unwrap();
    for r in &records {
        tx.insert_inbound(r).await.unwrap();
    }
    tx.commit().await.unwrap();
    let ids = |org: OrgId| async move {
        store.list_inbound(org, None, None, None, 100).await.unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>()
    };

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.prune_inbound_to_size(10 * size).await.unwrap(), 0, "exactly at the budget");
    assert_eq!(tx.prune_inbound_to_size(u64::MAX).await.unwrap(), 0);
    // Room for three and a half: the four newest do not fit, the three newest do.
    assert_eq!(tx.prune_inbound_to_size(3 * size + size / 2).await.unwrap(), 7);
    tx.commit().await.unwrap();
    assert_eq!(ids(a.id).await, ["r8"]);
    assert_eq!(ids(b.id).await, ["r9", "r7"]);
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.prune_inbound_to_size(0).await.unwrap(), 3);
    assert_eq!(tx.prune_inbound_to_size(0).await.unwrap(), 0, "an empty log");
    tx.commit().await.unwrap();
    assert!(ids(a.id).await.is_empty() && ids(b.id).await.is_empty());
}

pub async fn webhooks_inbound_log_and_dedupe(store: &dyn Store) {
    use crate::{InboundRecord, NewWebhook, WebhookUpdate};
    let a = org(store, "org-a").await;
    let b = org(store, "org-b").await;
    let mut tx = store.begin().await.unwrap();
    let p = tx.create_pipeline(a.id, "deploy", &decl("deploy", "v1")).await.unwrap();
    let new = |name: &str, hash: &str| NewWebhook {
        org: a.id,
        name: name.into(),
        pipeline_id: p.id,
        url_token_hash: hash.into(),
        url_token_ciphertext: format!("v1:{hash}"),
        definition: json!({"name": name, "targetPipeline": "deploy"}),
        secret_ciphertext: Some("v1:secret".into()),
    };
    let w = tx.insert_webhook(&new("gh", "h1")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (w.revision, w.pipeline_name.as_str(), w.secret_ciphertext.as_deref()),
        (1, "deploy", Some("v1:secret"))
    );

    let mut tx = store.begin().await.unwrap();
    assert!(matches!(tx.insert_webhook(&new("gh", "h2")).await, Err(StoreError::Conflict(_))), "name taken");
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(tx.insert_webhook(&new("other", "h1")).await, Err(StoreError::Conflict(_))), "token unique");
    drop(tx);

    let update = WebhookUpdate {
        pipeline_id: p.id,
        definition: json!({"name": "gh", "v": 2}),
        secret_ciphertext: Some("v1:new".into()),
        previous_secret_ciphertext: Some("v1:secret".into()),
        previous_secret_expires_at: Some(Timestamp(5)),
    };
    let mut tx = store.begin().await.unwrap();
    let w2 = tx.update_webhook(a.id, "gh", 1, &update).await.unwrap().unwrap();
    assert!(tx.update_webhook(a.id, "gh", 1, &update).await.unwrap().is_none(), "a stale revision loses");
    assert!(tx.update_webhook(b.id, "gh", 2, &update).await.unwrap().is_none(), "org B cannot touch it");
    tx.set_webhook_registration(a.id, "gh", Some(("E1", "boom")), Some("77")).await.unwrap();
    tx.touch_webhook(w.id, Timestamp(1234)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(w2.revision, 2);
    let got = store.webhook(a.id, "gh").await.unwrap().unwrap();
    assert_eq!(got.previous_secret_ciphertext.as_deref(), Some("v1:secret"));
    assert_eq!((got.error_code.as_deref(), got.third_party_hook_id.as_deref()), (Some("E1"), Some("77")));
    assert_eq!(got.last_triggered, Some(Timestamp(1234)));
    assert_eq!(store.webhook_by_token("h1").await.unwrap().unwrap().id, w.id);
    assert!(store.webhook(b.id, "gh").await.unwrap().is_none());
    assert_eq!(store.count_webhooks(a.id).await.unwrap(), 1);
    assert_eq!(store.list_webhooks(a.id, None, 10).await.unwrap().len(), 1);

    let req = |id: &str, verdict: &str, delivery: Option<&str>, at: i64| InboundRecord {
        seq: 0,
        id: id.into(),
        org: a.id,
        webhook_id: w.id,
        webhook_name: "gh".into(),
        received_at: Timestamp(at),
        peer: "127.0.0.1".into(),
        headers: json!({"x-github-event": "push"}),
        body: "{}".into(),
        body_truncated: false,
        delivery_id: delivery.map(str::to_owned),
        verdict: verdict.into(),
        detail: json!({}),
        execution_id: None,
    };
    let now = Timestamp::now();
    let mut tx = store.begin().await.unwrap();
    assert!(tx.claim_delivery(w.id, "d1", "r1", now, Timestamp(now.0 - 1000)).await.unwrap());
    tx.insert_inbound(&req("r1", "triggered", Some("d1"), now.0)).await.unwrap();
    assert!(!tx.claim_delivery(w.id, "d1", "r2", now, Timestamp(now.0 - 1000)).await.unwrap(), "duplicate");
    tx.insert_inbound(&req("r2", "duplicate", Some("d1"), now.0)).await.unwrap();
    tx.insert_inbound(&req("r3", "filtered", None, now.0)).await.unwrap();
    tx.commit().await.unwrap();
    let first = store.first_delivery(w.id, "d1", Timestamp(now.0 - 1000)).await.unwrap().unwrap();
    assert_eq!((first.id.as_str(), first.verdict.as_str()), ("r1", "triggered"));
    let all: Vec<String> =
        store.list_inbound(a.id, None, None, None, 10).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(all, ["r3", "r2", "r1"]);
    let dups = store.list_inbound(a.id, Some("gh"), Some("duplicate"), None, 10).await.unwrap();
    assert_eq!(dups.len(), 1);
    assert!(store.inbound(b.id, "r1").await.unwrap().is_none(), "org B cannot read org A's log");
    // After the window, the same delivery id is new again.
    let mut tx = store.begin().await.unwrap();
    let later = Timestamp(now.0 + 10_000);
    assert!(tx.claim_delivery(w.id, "d1", "r4", later, Timestamp(later.0 - 1000)).await.unwrap());
    assert_eq!(tx.prune_inbound(Timestamp(now.0 + 1)).await.unwrap(), 3);
    tx.commit().await.unwrap();
    assert!(store.list_inbound(a.id, None, None, None, 10).await.unwrap().is_empty());

    // Deleting the pipeline deletes its webhooks.
    let mut tx = store.begin().await.unwrap();
    tx.delete_pipeline(a.id, "deploy", "arn").await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.webhook(a.id, "gh").await.unwrap().is_none());
}

pub async fn outbound_hooks_events_deliveries_and_relay(store: &dyn Store) {
    use crate::{AttemptRecord, AttemptWrite, DeliveryRecord, HookFields, HookScope, OutboundEvent, Publication};
    let acme = org(store, "acme").await;
    let other = org(store, "other").await;
    let fields = |url: &str| HookFields {
        display_name: "Hook".into(),
        payload_url: url.into(),
        secret_ciphertext: Some("v1:ciphertext".into()),
        active: true,
        format: "raw".into(),
        filters: vec!["build_failed".into()],
        groups: vec!["stacks".into()],
    };
    let mut tx = store.begin().await.unwrap();
    let org_hook = tx.insert_hook(acme.id, &HookScope::org(), "h", &fields("https://a/")).await.unwrap();
    let dev = tx.insert_hook(acme.id, &HookScope::stack("web", "dev"), "h", &fields("https://b/")).await.unwrap();
    let prod = tx.insert_hook(acme.id, &HookScope::stack("web", "prod"), "p", &fields("https://c/")).await.unwrap();
    let env = tx.insert_hook(acme.id, &HookScope::env("cfg", "prod"), "e", &fields("https://d/")).await.unwrap();
    tx.insert_hook(other.id, &HookScope::org(), "h", &fields("https://x/")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(org_hook.filters, vec!["build_failed".to_owned()]);
    assert_eq!(dev.scope, HookScope::stack("web", "dev"));
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        tx.insert_hook(acme.id, &HookScope::org(), "h", &fields("https://a/")).await,
        Err(StoreError::Conflict(_))
    ));
    drop(tx);

    let ids = |hs: Vec<crate::HookRecord>| hs.into_iter().map(|h| h.id).collect::<Vec<_>>();
    assert_eq!(ids(store.hooks_for_event(acme.id, None, None, None).await.unwrap()), vec![org_hook.id]);
    assert_eq!(
        ids(store.hooks_for_event(acme.id, Some("web"), Some("dev"), None).await.unwrap()),
        vec![org_hook.id, dev.id]
    );
    assert_eq!(
        ids(store.hooks_for_event(acme.id, Some("web"), None, None).await.unwrap()),
        vec![org_hook.id, dev.id, prod.id],
        "a project without a stack reaches all its stacks"
    );
    assert_eq!(ids(store.hooks_for_event(acme.id, None, None, Some("prod")).await.unwrap()), vec![org_hook.id, env.id]);
    assert_eq!(
        ids(store.hooks_for_event(acme.id, Some("web"), None, Some("prod")).await.unwrap()),
        vec![org_hook.id, dev.id, prod.id],
        "an environment of another project is not reached"
    );

    // Update keeps the row; deactivation records the reason and reactivation clears it.
    let mut tx = store.begin().await.unwrap();
    let mut f = fields("https://a2/");
    f.secret_ciphertext = None;
    let updated = tx.update_hook(org_hook.id, &f).await.unwrap().unwrap();
    tx.set_hook_health(org_hook.id, Some(Timestamp(5)), Some("410 Gone")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((updated.payload_url.as_str(), updated.secret_ciphertext.as_deref()), ("https://a2/", None));
    let off = store.hook_by_id(org_hook.id).await.unwrap().unwrap();
    assert!(!off.active);
    assert_eq!((off.disabled_reason.as_deref(), off.failing_since), (Some("410 Gone"), Some(Timestamp(5))));
    assert!(store.hooks_for_event(acme.id, None, None, None).await.unwrap().is_empty(), "inactive hooks get nothing");
    let mut tx = store.begin().await.unwrap();
    let back = tx.update_hook(org_hook.id, &fields("https://a/")).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert!(back.active && back.disabled_reason.is_none() && back.failing_since.is_none());

    // Publish: event, deliveries and jobs together; a live idempotency key conflicts.
    let now = Timestamp::now();
    let event = |id: &str, key: Option<&str>| OutboundEvent {
        id: id.into(),
        org: acme.id,
        kind: "build_failed".into(),
        payload: r#"{"n": 1}"#.into(),
        project: Some("web".into()),
        stack: None,
        env: None,
        idempotency_key: key.map(str::to_owned),
        created_at: now,
    };
    let delivery = DeliveryRecord {
        id: "d1".into(),
        org: acme.id,
        hook_id: dev.id,
        event_id: "e1".into(),
        kind: "build_failed".into(),
        status: "pending".into(),
        attempts: 0,
        created_at: now,
        updated_at: now,
    };
    store
        .publish(Publication {
            event: event("e1", Some("k")),
            deliveries: vec![delivery.clone()],
            jobs: vec![NewJob::new("outbound.delivery", json!({"delivery": "d1"})).org(acme.id)],
            idempotency_since: Timestamp(0),
        })
        .await
        .unwrap();
    let dup = store
        .publish(Publication {
            event: event("e2", Some("k")),
            deliveries: Vec::new(),
            jobs: Vec::new(),
            idempotency_since: Timestamp(0),
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert!(store.outbound_event(acme.id, "e2").await.unwrap().is_none(), "nothing of the duplicate is stored");
    assert_eq!(store.event_by_idempotency_key(acme.id, "k", Timestamp(0)).await.unwrap().unwrap().id, "e1");
    assert!(store
        .event_by_idempotency_key(acme.id, "k", now.saturating_add(Duration::from_secs(1)))
        .await
        .unwrap()
        .is_none());
    // Past its window the key is free again.
    store
        .publish(Publication {
            event: event("e3", Some("k")),
            deliveries: Vec::new(),
            jobs: Vec::new(),
            idempotency_since: now.saturating_add(Duration::from_secs(1)),
        })
        .await
        .unwrap();
    assert!(store.outbound_event(other.id, "e1").await.unwrap().is_none(), "events are per organization");
    assert_eq!(store.delivery("d1").await.unwrap().unwrap(), delivery);
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);
    let jobs = store.claim(&["outbound.delivery"], 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].payload["delivery"], "d1");

    // Attempts, newest first, with the delivery's status.
    for code in [500, 200] {
        let attempt = AttemptRecord {
            seq: 0,
            delivery_id: "d1".into(),
            org: acme.id,
            hook_id: dev.id,
            kind: "build_failed".into(),
            trigger: "scheduled".into(),
            payload: "{}".into(),
            attempted_at: Timestamp::now(),
            duration_ms: 3,
            request_url: "https://b/".into(),
            request_headers: json!({"webhook-id": "d1"}),
            response_code: code,
            response_headers: json!({}),
            response_body: "ok".into(),
        };
        let status = if code == 200 { "succeeded" } else { "pending" };
        store
            .record_attempt(AttemptWrite {
                attempt,
                delivery_status: status.into(),
                hook_health: Some((if code == 200 { None } else { Some(Timestamp(7)) }, None)),
            })
            .await
            .unwrap();
    }
    // An attempt for a delivery deleted meanwhile is skipped without failing its batch.
    let mut orphan = store.list_attempts(dev.id, None, 1).await.unwrap().remove(0);
    orphan.delivery_id = "deleted-meanwhile".into();
    let batch = vec![AttemptWrite { attempt: orphan, delivery_status: "failed".into(), hook_health: None }];
    store.record_attempts(batch).await.unwrap();
    let attempts = store.list_attempts(dev.id, None, 10).await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.response_code).collect::<Vec<_>>(), vec![200, 500]);
    assert_eq!(store.list_attempts(dev.id, Some(attempts[0].seq), 10).await.unwrap().len(), 1);
    let d = store.delivery("d1").await.unwrap().unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("succeeded", 2));
    assert_eq!(store.hook_by_id(dev.id).await.unwrap().unwrap().failing_since, None);
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);

    // The relay sees each run event once.
    let mut tx = store.begin().await.unwrap();
    tx.record_run_event(acme.id, "build_started", "x", &json!({"a": 1})).await.unwrap();
    tx.record_run_event(acme.id, "build_succeeded", "x", &json!({"a": 2})).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let rows = tx.unrelayed_run_events(10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(), vec!["build_started", "build_succeeded"]);
    assert_eq!(rows[1].payload, json!({"a": 2}));
    tx.mark_relayed(&rows.iter().map(|r| r.seq).collect::<Vec<_>>()).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(tx.unrelayed_run_events(10).await.unwrap().is_empty());
    drop(tx);

    // Pruning keeps pending deliveries; deleting a hook takes its deliveries and attempts.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.prune_outbound(Timestamp::now().saturating_add(Duration::from_secs(1))).await.unwrap(), 2);
    tx.commit().await.unwrap();
    assert!(store.delivery("d1").await.unwrap().is_none(), "finished deliveries are pruned");
    assert!(store.outbound_event(acme.id, "e1").await.unwrap().is_none());
    let mut tx = store.begin().await.unwrap();
    assert!(tx.delete_hook(acme.id, &HookScope::stack("web", "dev"), "h").await.unwrap());
    assert!(!tx.delete_hook(acme.id, &HookScope::stack("web", "dev"), "h").await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.hook(acme.id, &HookScope::stack("web", "dev"), "h").await.unwrap().is_none());
    assert_eq!(store.list_hooks(acme.id, &HookScope::org()).await.unwrap().len(), 1);
    assert_eq!(store.list_hooks(other.id, &HookScope::org()).await.unwrap().len(), 1);
}

pub async fn build_projects_builds_and_webhooks(store: &dyn Store) {
    use crate::builds::{inbound_webhook_id, inbound_webhook_name};
    use crate::{
        BuildStart, BuildTriggerWrite, BuildWebhookFields, DeliveryClaim, InboundRecord, NewBuild, NewBuildWebhook,
        StopRequest, TriggerOutcome,
    };
    let a = org(store, "org-a").await;
    let b = org(store, "org-b").await;

    // Projects: unique per organization, isolated, updated in place.
    let mut tx = store.begin().await.unwrap();
    let p = tx.create_project(a.id, "web", &json!({"name": "web", "source": {"type": "NO_SOURCE"}})).await.unwrap();
    tx.create_project(b.id, "web", &json!({"name": "web"})).await.unwrap();
    tx.create_project(a.id, "api", &json!({"name": "api"})).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((p.name.as_str(), p.build_counter), ("web", 0));
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(tx.create_project(a.id, "web", &json!({})).await, Err(StoreError::Conflict(_))));
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    let u = tx.update_project(a.id, "web", &json!({"name": "web", "description": "d"})).await.unwrap().unwrap();
    assert!(tx.update_project(a.id, "nope", &json!({})).await.unwrap().is_none());
    tx.commit().await.unwrap();
    assert_eq!(u.document["description"], "d");
    let names: Vec<String> = store.list_projects(a.id).await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["api", "web"]);
    assert_eq!(store.project(b.id, "web").await.unwrap().unwrap().document, json!({"name": "web"}));

    // Builds: numbers per project, idempotency tokens, listing in both orders with cursors.
    let new_build = |n: usize, token: Option<&str>| NewBuild {
        id: format!("web:0000000{n}-0000-4000-8000-000000000000"),
        org: a.id,
        project_name: "web".into(),
        source_version: Some("main".into()),
        initiator: "alice".into(),
        env_overrides: json!([{"name": "X", "value": "1", "type": "PLAINTEXT"}]),
        buildspec_override: None,
        idempotency_token: token.map(str::to_owned),
        trigger: json!({}),
        phases: json!([{"phaseType": "SUBMITTED"}]),
        start_time: Timestamp::now(),
        idempotency_since: Timestamp(0),
    };
    let mut tx = store.begin().await.unwrap();
    let b1 = tx.insert_build(&new_build(1, Some("tok"))).await.unwrap();
    let b2 = tx.insert_build(&new_build(2, None)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((b1.build_number, b2.build_number), (1, 2));
    assert_eq!((b1.status.as_str(), b1.current_phase.as_str()), ("IN_PROGRESS", "SUBMITTED"));
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(tx.insert_build(&new_build(3, Some("tok"))).await, Err(StoreError::Conflict(_))));
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    let mut gone = new_build(4, None);
    gone.project_name = "gone".into();
    assert!(matches!(tx.insert_build(&gone).await, Err(StoreError::NotFound(_))));
    drop(tx);
    assert_eq!(store.build_by_token(a.id, "web", "tok", Timestamp(0)).await.unwrap().unwrap().id, b1.id);
    assert!(store.build_by_token(a.id, "web", "tok", Timestamp(i64::MAX)).await.unwrap().is_none());
    assert!(store.build(b.id, &b1.id).await.unwrap().is_none(), "org B does not see org A's builds");
    let same: Vec<i64> = store
        .builds_of_commit(a.id, "web", "main", Timestamp(0))
        .await
        .unwrap()
        .iter()
        .map(|b| b.build_number)
        .collect();
    assert_eq!(same, [1, 2], "by sourceVersion, oldest first");
    assert!(store.builds_of_commit(a.id, "web", "main", Timestamp(i64::MAX)).await.unwrap().is_empty());
    assert!(store.builds_of_commit(b.id, "web", "main", Timestamp(0)).await.unwrap().is_empty());
    let desc: Vec<i64> =
        store.list_builds(a.id, Some("web"), false, None, 10).await.unwrap().iter().map(|b| b.build_number).collect();
    assert_eq!(desc, [2, 1]);
    let asc = store.list_builds(a.id, None, true, None, 1).await.unwrap();
    assert_eq!(asc[0].id, b1.id);
    let next = store.list_builds(a.id, None, true, Some(asc[0].seq), 10).await.unwrap();
    assert_eq!(next.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), [b2.id.as_str()]);
    assert!(store.list_builds(b.id, None, false, None, 10).await.unwrap().is_empty());

    // Progress, stop requests, finishing.
    let mut tx = store.begin().await.unwrap();
    tx.set_build_progress(
        a.id,
        &b1.id,
        Some(&json!([{"phaseType": "BUILD"}])),
        Some("BUILD"),
        Some("abc"),
        Some("log1"),
    )
    .await
    .unwrap();
    assert_eq!(tx.request_build_stop(a.id, &b1.id).await.unwrap(), StopRequest::Accepted);
    assert_eq!(tx.request_build_stop(a.id, &b1.id).await.unwrap(), StopRequest::Duplicate);
    assert_eq!(tx.request_build_stop(b.id, &b1.id).await.unwrap(), StopRequest::NotFound);
    tx.finish_build(a.id, &b2.id, "SUCCEEDED", &json!([]), None, "done").await.unwrap();
    assert_eq!(tx.request_build_stop(a.id, &b2.id).await.unwrap(), StopRequest::NotStoppable);
    tx.commit().await.unwrap();
    let got = store.build(a.id, &b1.id).await.unwrap().unwrap();
    assert_eq!(
        (got.current_phase.as_str(), got.resolved_source_version.as_deref(), got.logs.as_str(), got.stop_requested),
        ("BUILD", Some("abc"), "log1", true)
    );
    let done = store.build(a.id, &b2.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status.as_str(), done.current_phase.as_str(), done.logs.as_str()),
        ("SUCCEEDED", "COMPLETED", "done")
    );
    assert!(done.end_time.is_some());

    // Webhooks: one per project, by token, updated, deleted with the project.
    let fields = |secret: &str| BuildWebhookFields {
        secret_ciphertext: Some(secret.into()),
        branch_filter: Some("^main$".into()),
        filter_groups: json!([[{"type": "EVENT", "pattern": "PUSH", "excludeMatchedPattern": false}]]),
        build_type: Some("BUILD".into()),
        manual_creation: false,
        status: "ACTIVE".into(),
        status_message: None,
        third_party_hook_id: Some("9".into()),
        last_modified_secret: Timestamp(10),
    };
    let mut tx = store.begin().await.unwrap();
    let w = tx
        .insert_build_webhook(&NewBuildWebhook {
            org: a.id,
            project_id: p.id,
            url_token_hash: "th".into(),
            url_token_ciphertext: "v1:t".into(),
            fields: fields("v1:s"),
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((w.project_name.as_str(), w.third_party_hook_id.as_deref()), ("web", Some("9")));
    let mut tx = store.begin().await.unwrap();
    let dup = NewBuildWebhook {
        org: a.id,
        project_id: p.id,
        url_token_hash: "th2".into(),
        url_token_ciphertext: "v1:t".into(),
        fields: fields("v1:s"),
    };
    assert!(matches!(tx.insert_build_webhook(&dup).await, Err(StoreError::Conflict(_))), "one per project");
    drop(tx);
    assert_eq!(store.build_webhook_by_token("th").await.unwrap().unwrap().id, w.id);
    assert!(store.build_webhook(b.id, "web").await.unwrap().is_none());
    let mut tx = store.begin().await.unwrap();
    let w2 = tx.update_build_webhook(w.id, &fields("v1:rotated")).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(w2.secret_ciphertext.as_deref(), Some("v1:rotated"));
    assert_eq!(w2.filter_groups[0][0]["type"], "EVENT");

    // A webhook request: delivery claim, build, job, start event and inbound record together.
    let inbound = |id: &str, verdict: &str| InboundRecord {
        seq: 0,
        id: id.into(),
        org: a.id,
        webhook_id: inbound_webhook_id(w.id),
        webhook_name: inbound_webhook_name("web"),
        received_at: Timestamp::now(),
        peer: "127.0.0.1".into(),
        headers: json!({}),
        body: "{}".into(),
        body_truncated: false,
        delivery_id: Some("d-1".into()),
        verdict: verdict.into(),
        detail: json!({}),
        execution_id: None,
    };
    let start = BuildStart {
        build: new_build(5, None),
        job: NewJob::new("codebuild.build", json!({"org": a.id.0})).org(a.id),
        event_kind: "build_started".into(),
        event: json!({"projectName": "web"}),
    };
    let claim = DeliveryClaim { webhook_id: inbound_webhook_id(w.id), delivery_id: "d-1".into(), cutoff: Timestamp(0) };
    let (outcome, built) = store
        .record_build_trigger(BuildTriggerWrite {
            inbound: inbound("r1", "triggered"),
            delivery: Some(claim.clone()),
            build: Some(start.clone()),
        })
        .await
        .unwrap();
    assert_eq!(outcome, TriggerOutcome::Recorded);
    let built = built.unwrap();
    assert_eq!(built.build_number, 3);
    let events = store.run_events(a.id, &built.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].0.as_str(), &events[0].1["buildNumber"]), ("build_started", &json!(3)));
    let jobs: u64 = store.depth().await.unwrap().iter().filter(|d| d.kind == "codebuild.build").map(|d| d.count).sum();
    assert_eq!(jobs, 1, "the build's job");
    let mut again = start.clone();
    again.build.id = "web:other".into();
    let (outcome, built) = store
        .record_build_trigger(BuildTriggerWrite {
            inbound: inbound("r2", "triggered"),
            delivery: Some(claim),
            build: Some(again),
        })
        .await
        .unwrap();
    assert_eq!((outcome, built), (TriggerOutcome::Duplicate, None));
    assert!(store.build(a.id, "web:other").await.unwrap().is_none());
    assert!(store.inbound(a.id, "r2").await.unwrap().is_none());
    let logged = store.list_inbound(a.id, Some("project:web"), None, None, 10).await.unwrap();
    assert_eq!(logged.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r1"]);

    // Deleting the project deletes its webhook; its builds stay.
    let mut tx = store.begin().await.unwrap();
    assert!(tx.delete_project(a.id, "web").await.unwrap());
    assert!(!tx.delete_project(a.id, "web").await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.build_webhook_by_token("th").await.unwrap().is_none());
    assert!(store.project(a.id, "web").await.unwrap().is_none());
    assert!(store.build(a.id, &b1.id).await.unwrap().is_some());
    assert!(store.project(b.id, "web").await.unwrap().is_some(), "org B's project is untouched");
}

/// Writes cancelled at every point (while starting, inside, while committing) never leave the writer inside
/// a transaction: afterwards writes succeed, readiness holds, and only committed writes are visible.
/// Cancellation is what an HTTP client hanging up mid-request, or an aborted task, does to a store call.
pub async fn cancelled_writes_never_wedge_the_writer(store: Arc<dyn Store>) {
    let o = org(&*store, "cancel").await;
    let mut committed = 0usize;
    for round in 0..300u64 {
        let store2 = store.clone();
        let name = format!("c-{round}");
        let write = async move {
            let mut tx = store2.begin().await?;
            tx.create_token(o.id, &ApiToken::generate().hash(), &name).await?;
            tx.commit().await
        };
        // Cut the write short after a varying number of polls (0 = before it starts), with other tasks in
        // the way so the cut lands at different points: inside BEGIN, between statements, inside COMMIT.
        let cut = round % 12;
        let outcome = tokio::select! {
            biased;
            r = write => Some(r),
            _ = async {
                for _ in 0..cut {
                    tokio::task::yield_now().await;
                }
            } => None,
        };
        if let Some(r) = outcome {
            r.expect("an uncancelled write succeeds");
            committed += 1;
        }
        // A concurrent reader-writer, as a request arriving meanwhile would be.
        if round % 50 == 0 {
            store.ready().await.expect("ready between cancellations");
        }
    }
    // The writer is usable: a plain write, a queue write and readiness all work (with a bound, so a wedged
    // writer fails the test instead of hanging it).
    let after = async {
        let mut tx = store.begin().await?;
        tx.create_token(o.id, &ApiToken::generate().hash(), "after").await?;
        tx.commit().await?;
        store.enqueue(&[NewJob::new("t.after", json!({}))]).await?;
        store.ready().await
    };
    tokio::time::timeout(Duration::from_secs(30), after)
        .await
        .expect("writes still complete after cancelled ones")
        .expect("writes still succeed after cancelled ones");
    let tokens = store.list_tokens(o.id).await.unwrap();
    assert!(tokens.len() > committed, "every completed write is kept ({} tokens, {committed} completed)", tokens.len());
    assert!(tokens.len() <= 301, "no write counted twice");
}

/// The delivery log: attempts numbered within their delivery (not across the hook), each with its delivery's
/// status and, while it waits for a retry, when its job is due; and a hook's health from its attempts.
pub async fn delivery_log_and_hook_health(store: &dyn Store) {
    use crate::{
        AttemptRecord, AttemptWrite, DeliveryRecord, HookFields, HookHealth, HookScope, OutboundEvent, Publication,
    };
    let o = org(store, "log").await;
    let fields = HookFields {
        display_name: "Hook".into(),
        payload_url: "https://h/".into(),
        secret_ciphertext: None,
        active: true,
        format: "raw".into(),
        filters: Vec::new(),
        groups: Vec::new(),
    };
    let mut tx = store.begin().await.unwrap();
    let hook = tx.insert_hook(o.id, &HookScope::org(), "h", &fields).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.hook_health(hook.id).await.unwrap(), HookHealth::default());

    // Two deliveries (ids are UUIDs in real use), each with its job; the second's job is due in an hour.
    let (first, second) = ("6d7c1a52-0000-4000-8000-000000000001", "6d7c1a52-0000-4000-8000-000000000002");
    let later = Timestamp::now().saturating_add(Duration::from_secs(3600));
    for (event, delivery, run_at) in [("e1", first, None), ("e2", second, Some(later))] {
        let now = Timestamp::now();
        let mut job = NewJob::new("outbound.delivery", json!({"delivery": delivery, "event": event, "hook": hook.id}));
        if let Some(at) = run_at {
            job = job.run_at(at);
        }
        store
            .publish(Publication {
                event: OutboundEvent {
                    id: event.into(),
                    org: o.id,
                    kind: "build_failed".into(),
                    payload: "{}".into(),
                    project: None,
                    stack: None,
                    env: None,
                    idempotency_key: None,
                    created_at: now,
                },
                deliveries: vec![DeliveryRecord {
                    id: delivery.into(),
                    org: o.id,
                    hook_id: hook.id,
                    event_id: event.into(),
                    kind: "build_failed".into(),
                    status: "pending".into(),
                    attempts: 0,
                    created_at: now,
                    updated_at: now,
                }],
                jobs: vec![job.org(o.id)],
                idempotency_since: Timestamp(0),
            })
            .await
            .unwrap();
    }
    let attempt = |delivery: &str, code: i64, at: i64| AttemptRecord {
        seq: 0,
        delivery_id: delivery.into(),
        org: o.id,
        hook_id: hook.id,
        kind: "build_failed".into(),
        trigger: "scheduled".into(),
        payload: "{}".into(),
        attempted_at: Timestamp(at),
        duration_ms: 1,
        request_url: "https://h/".into(),
        request_headers: json!({}),
        response_code: code,
        response_headers: json!({}),
        response_body: String::new(),
    };
    // first: 500 then 200 (succeeded); second: 0 (no answer), still pending.
    for (delivery, code, at, status) in
        [(first, 500, 1_000, "pending"), (first, 200, 2_000, "succeeded"), (second, 0, 3_000, "pending")]
    {
        let w =
            AttemptWrite { attempt: attempt(delivery, code, at), delivery_status: status.into(), hook_health: None };
        store.record_attempt(w).await.unwrap();
    }

    let log = store.delivery_log(hook.id, None, 10).await.unwrap();
    let summary: Vec<(&str, i64, i64, Option<&str>, i64)> = log
        .iter()
        .map(|l| {
            let status = l.delivery_status.as_deref();
            (l.attempt.delivery_id.as_str(), l.attempt.response_code, l.number, status, l.delivery_attempts)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (second, 0, 1, Some("pending"), 1),
            (first, 200, 2, Some("succeeded"), 2),
            (first, 500, 1, Some("succeeded"), 2),
        ],
        "newest first, numbered within each delivery"
    );
    assert_eq!(log[0].next_attempt_at, Some(later), "the pending delivery's job is due then");
    assert_eq!((log[1].next_attempt_at, log[2].next_attempt_at), (None, None), "nothing is due for a finished one");
    // The cursor pages as list_attempts does.
    let older = store.delivery_log(hook.id, Some(log[0].attempt.seq), 1).await.unwrap();
    assert_eq!((older.len(), older[0].attempt.seq), (1, log[1].attempt.seq));
    // One delivery's attempts, oldest first.
    let one = store.delivery_attempts(first).await.unwrap();
    assert_eq!(one.iter().map(|l| (l.number, l.attempt.response_code)).collect::<Vec<_>>(), vec![(1, 500), (2, 200)]);
    assert!(store.delivery_attempts("6d7c1a52-0000-4000-8000-00000000dead").await.unwrap().is_empty());
    // Only the first delivery's job is due now; the second's waits for `later`.
    let claimed = store.claim(&["outbound.delivery"], 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].payload["delivery"], first);

    // Health: the last success, the last failure, the failures since the success.
    let health = store.hook_health(hook.id).await.unwrap();
    assert_eq!(
        health,
        HookHealth {
            last_success: Some(Timestamp(2_000)),
            last_failure: Some(Timestamp(3_000)),
            consecutive_failures: 1
        }
    );

    // What the scheduled sender reads on a retry: the status and the scheduled attempts only.
    let progress =
        |status: &str, n: i64| Some(crate::outbound::DeliveryProgress { status: status.into(), scheduled_attempts: n });
    assert_eq!(store.delivery_progress(first).await.unwrap(), progress("succeeded", 2));
    assert_eq!(store.delivery_progress(second).await.unwrap(), progress("pending", 1));
    let mut manual = attempt(second, 500, 4_000);
    manual.trigger = "redeliver".into();
    let w = AttemptWrite { attempt: manual, delivery_status: "pending".into(), hook_health: None };
    store.record_attempt(w).await.unwrap();
    assert_eq!(store.delivery_progress(second).await.unwrap(), progress("pending", 1), "a redelivery is not counted");
    assert_eq!(store.delivery(second).await.unwrap().unwrap().attempts, 2, "though it is an attempt");
    assert_eq!(store.delivery_progress("6d7c1a52-0000-4000-8000-00000000dead").await.unwrap(), None);
}

/// An event's payload is kept as the text it was published as (numbers no float could hold, spacing, key
/// order), and every attempt keeps the number it was given within its delivery, whatever made it, when older
/// attempts are pruned.
pub async fn outbound_payload_text_and_attempt_numbers(store: &dyn Store) {
    use crate::{AttemptRecord, AttemptWrite, DeliveryRecord, HookFields, HookScope, OutboundEvent, Publication};
    let o = org(store, "verbatim").await;
    let fields = HookFields {
        display_name: "Hook".into(),
        payload_url: "https://h/".into(),
        secret_ciphertext: None,
        active: true,
        format: "raw".into(),
        filters: Vec::new(),
        groups: Vec::new(),
    };
    let mut tx = store.begin().await.unwrap();
    let hook = tx.insert_hook(o.id, &HookScope::org(), "h", &fields).await.unwrap();
    tx.commit().await.unwrap();
    let text = "{\"t\": 1796521054.0618753, \"big\":12345678901234567890123,\"z\":-0.0, \"b\" : [1.0, 123456789012345678],\n \"a\": \"\\u00e9\"}";
    let delivery = "6d7c1a52-0000-4000-8000-0000000000a1";
    let now = Timestamp::now();
    store
        .publish(Publication {
            event: OutboundEvent {
                id: "verbatim-1".into(),
                org: o.id,
                kind: "build_failed".into(),
                payload: text.into(),
                project: None,
                stack: None,
                env: None,
                idempotency_key: None,
                created_at: now,
            },
            deliveries: vec![DeliveryRecord {
                id: delivery.into(),
                org: o.id,
                hook_id: hook.id,
                event_id: "verbatim-1".into(),
                kind: "build_failed".into(),
                status: "pending".into(),
                attempts: 0,
                created_at: now,
                updated_at: now,
            }],
            jobs: Vec::new(),
            idempotency_since: Timestamp(0),
        })
        .await
        .unwrap();
    assert_eq!(store.outbound_event(o.id, "verbatim-1").await.unwrap().unwrap().payload, text, "byte for byte");

    let attempt = |trigger: &str, code: i64, at: i64| AttemptRecord {
        seq: 0,
        delivery_id: delivery.into(),
        org: o.id,
        hook_id: hook.id,
        kind: "build_failed".into(),
        trigger: trigger.into(),
        payload: text.into(),
        attempted_at: Timestamp(at),
        duration_ms: 1,
        request_url: "https://h/".into(),
        request_headers: json!({}),
        response_code: code,
        response_headers: json!({}),
        response_body: String::new(),
    };
    let write = |a: AttemptRecord| AttemptWrite { attempt: a, delivery_status: "pending".into(), hook_health: None };
    store.record_attempt(write(attempt("scheduled", 500, 1_000))).await.unwrap();
    // Two in one batch (the recorder writes attempts made at the same time together): two numbers.
    store
        .record_attempts(vec![write(attempt("redeliver", 500, 2_000)), write(attempt("scheduled", 500, 2_001))])
        .await
        .unwrap();
    let numbers = |log: Vec<crate::LoggedAttempt>| {
        log.iter().map(|l| (l.attempt.trigger.clone(), l.number)).collect::<Vec<(String, i64)>>()
    };
    let s = |t: &str, n: i64| (t.to_owned(), n);
    assert_eq!(
        numbers(store.delivery_attempts(delivery).await.unwrap()),
        vec![s("scheduled", 1), s("redeliver", 2), s("scheduled", 3)]
    );
    // Older attempts pruned: the ones kept keep their numbers, and the next one follows the count.
    let mut tx = store.begin().await.unwrap();
    tx.prune_outbound(Timestamp(1_500)).await.unwrap();
    tx.commit().await.unwrap();
    store.record_attempt(write(attempt("redeliver", 200, 3_000))).await.unwrap();
    assert_eq!(
        numbers(store.delivery_log(hook.id, None, 10).await.unwrap()),
        vec![s("redeliver", 4), s("scheduled", 3), s("redeliver", 2)]
    );
    assert_eq!(store.delivery(delivery).await.unwrap().unwrap().attempts, 4);
}

/// An execution's number counts the executions of its pipeline only, from 1.
pub async fn execution_numbers_count_within_the_pipeline(store: &dyn Store) {
    use crate::NewExecution;
    let a = org(store, "numbers").await;
    let b = org(store, "numbers-b").await;
    let mut tx = store.begin().await.unwrap();
    let p = tx.create_pipeline(a.id, "one", &decl("one", "v1")).await.unwrap();
    let q = tx.create_pipeline(a.id, "two", &decl("two", "v1")).await.unwrap();
    let new = |id: &str, pipeline: &crate::PipelineRecord| NewExecution {
        id: id.into(),
        org: a.id,
        pipeline_id: pipeline.id,
        pipeline_name: pipeline.name.clone(),
        pipeline_version: 1,
        execution_mode: "QUEUED".into(),
        trigger: json!({"triggerType": "StartPipelineExecution"}),
        source_revisions: json!([]),
        variables: json!([]),
        client_request_token: None,
    };
    for (id, pipeline) in [("n1", &p), ("n2", &q), ("n3", &p), ("n4", &p), ("n5", &q)] {
        tx.insert_execution(&new(id, pipeline)).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut got = Vec::new();
    for id in ["n1", "n2", "n3", "n4", "n5"] {
        got.push(store.execution_number(a.id, id).await.unwrap());
    }
    assert_eq!(got, [Some(1), Some(1), Some(2), Some(3), Some(2)]);
    assert_eq!(store.execution_number(a.id, "missing").await.unwrap(), None);
    assert_eq!(store.execution_number(b.id, "n1").await.unwrap(), None, "another organization's execution");
}
