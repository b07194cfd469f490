//! The per-organization cap on queued work (`worker.max_queued_per_org`): a new pipeline execution or build is
//! refused while its organization already has that many waiting to run, so one organization cannot bury the
//! queue (claims are also shared fairly between organizations, see `pipehook_store::Queue::claim_fair`).
//!
//! The count comes from the queue (ready execution and build jobs, including those waiting their turn in a
//! QUEUED pipeline) and is kept for a second per organization, counting what this node admitted meanwhile, so
//! the check costs no read on most requests; a refusal is always decided on a fresh count. Several nodes
//! admitting at once may overshoot the cap by what each admitted within that second: it bounds a flood, it is
//! not an exact quota.

use pipehook_domain::org::OrgId;
use pipehook_store::Store;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a counted backlog is trusted.
const FRESH: Duration = Duration::from_secs(1);

/// The job kinds that are queued runs.
const RUN_KINDS: [&str; 2] = [pipehook_runner::pipeline::EXECUTION_JOB, pipehook_runner::codebuild::BUILD_JOB];

/// Why a run was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub queued: u64,
    pub max: u32,
}

impl Full {
    pub fn message(&self) -> String {
        format!(
            "The organization already has {} pipeline executions and builds waiting to run (the limit is {}); \
             try again once some have started",
            self.queued, self.max
        )
    }
}

#[derive(Default)]
pub struct Admission {
    max: Option<u32>,
    counted: Mutex<HashMap<OrgId, (Instant, u64)>>,
}

impl Admission {
    pub fn new(max: Option<u32>) -> Self {
        Self { max: max.filter(|m| *m > 0), counted: Mutex::default() }
    }

    /// Whether a cap is set (callers skip the checks the cap needs, such as looking up a repeated token,
    /// when it is not).
    pub fn is_capped(&self) -> bool {
        self.max.is_some()
    }

    /// Admits one more run of `org`, or says why not. A store failure admits (the write that follows reports
    /// it if the store is really down).
    pub async fn admit(&self, store: &dyn Store, org: OrgId) -> Result<(), Full> {
        let Some(max) = self.max else { return Ok(()) };
        let max64 = u64::from(max);
        let cached = self.lock().get(&org).filter(|(at, _)| at.elapsed() < FRESH).map(|(_, n)| *n);
        // The cached count also holds runs admitted since, some of which may have started already: a refusal
        // is decided on a fresh count.
        let queued = match cached {
            Some(n) if n < max64 => n,
            _ => match store.queued_jobs(org, &RUN_KINDS).await {
                Ok(n) => {
                    self.lock().insert(org, (Instant::now(), n));
                    n
                }
                Err(e) => {
                    tracing::warn!(error = %e, org = org.0, "counting an organization's queued runs failed; admitting");
                    return Ok(());
                }
            },
        };
        if queued >= max64 {
            return Err(Full { queued, max });
        }
        if let Some(entry) = self.lock().get_mut(&org) {
            entry.1 += 1;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OrgId, (Instant, u64)>> {
        self.counted.lock().unwrap_or_else(|p| p.into_inner())
    }
}
