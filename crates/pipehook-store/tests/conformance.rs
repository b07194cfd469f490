//! Runs every conformance body against SQLite and PostgreSQL (see `pipehook_store::testing` for when
//! PostgreSQL is skipped or required).

use pipehook_store::{conformance, testing};

macro_rules! conformance {
    ($($name:ident => |$s:ident| $body:expr;)*) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let t = testing::sqlite().await;
                    let $s = t.store.clone();
                    $body;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(t) = testing::postgres().await else { return };
                    let $s = t.store.clone();
                    $body;
                }
            )*
        }
    };
}

conformance! {
    migrations_are_idempotent_and_ready => |s| conformance::migrations_are_idempotent_and_ready(&*s).await;
    orgs_crud_and_uniqueness => |s| conformance::orgs_crud_and_uniqueness(&*s).await;
    tokens_and_access_keys => |s| conformance::tokens_and_access_keys(&*s).await;
    organizations_are_isolated => |s| conformance::organizations_are_isolated(&*s).await;
    enqueue_commits_with_the_domain_write => |s| conformance::enqueue_commits_with_the_domain_write(&*s).await;
    claim_complete_in_order => |s| conformance::claim_complete_in_order(&*s).await;
    scheduled_jobs_wait_for_run_at => |s| conformance::scheduled_jobs_wait_for_run_at(&*s).await;
    fail_retries_then_dies => |s| conformance::fail_retries_then_dies(&*s).await;
    expired_lease_is_reclaimed_and_old_holder_is_fenced => |s| conformance::expired_lease_is_reclaimed_and_old_holder_is_fenced(&*s).await;
    writes_are_fenced_by_the_lease => |s| conformance::writes_are_fenced_by_the_lease(s).await;
    a_restarted_node_recovers_its_own_leases => |s| conformance::a_restarted_node_recovers_its_own_leases(&*s).await;
    claims_are_fair_between_an_organizations_groups => |s| conformance::claims_are_fair_between_an_organizations_groups(&*s).await;
    claims_are_fair_between_organizations => |s| conformance::claims_are_fair_between_organizations(&*s).await;
    extended_lease_is_kept => |s| conformance::extended_lease_is_kept(&*s).await;
    lost_lease_on_last_attempt_dies => |s| conformance::lost_lease_on_last_attempt_dies(&*s).await;
    defer_waits_without_using_an_attempt => |s| conformance::defer_waits_without_using_an_attempt(&*s).await;
    release_returns_job_without_using_an_attempt => |s| conformance::release_returns_job_without_using_an_attempt(&*s).await;
    concurrent_workers_drain_exactly_once => |s| conformance::concurrent_workers_drain_exactly_once(s).await;
    pipelines_versions_and_isolation => |s| conformance::pipelines_versions_and_isolation(&*s).await;
    executions_actions_and_stops => |s| conformance::executions_actions_and_stops(&*s).await;
    webhooks_inbound_log_and_dedupe => |s| conformance::webhooks_inbound_log_and_dedupe(&*s).await;
    inbound_log_size_budget => |s| conformance::inbound_log_size_budget(&*s).await;
    killed_worker_job_is_completed_by_another => |s| conformance::killed_worker_job_is_completed_by_another(s).await;
    cancelled_writes_never_wedge_the_writer => |s| conformance::cancelled_writes_never_wedge_the_writer(s).await;
    outbound_hooks_events_deliveries_and_relay => |s| conformance::outbound_hooks_events_deliveries_and_relay(&*s).await;
    delivery_log_and_hook_health => |s| conformance::delivery_log_and_hook_health(&*s).await;
    outbound_payload_text_and_attempt_numbers => |s| conformance::outbound_payload_text_and_attempt_numbers(&*s).await;
    execution_numbers_count_within_the_pipeline => |s| conformance::execution_numbers_count_within_the_pipeline(&*s).await;
    build_projects_builds_and_webhooks => |s| conformance::build_projects_builds_and_webhooks(&*s).await;
}
