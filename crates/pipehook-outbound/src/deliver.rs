//! Publishing events and delivering them.
//!
//! Publishing writes the event, one delivery per matching active hook and one `outbound.delivery` job per
//! delivery in one transaction, so an accepted event is never lost and never half-fanned-out. A worker then
//! sends each delivery: the body rendered in the hook's format, signed with the hook's secret, to the vetted
//! address (see [`crate::ssrf`]), without following redirects. Every attempt is logged with what came back.
//!
//! Outcome rules: a 2xx is success. Anything else (another status, a 3xx, a timeout, a connection error, a
//! refused address) is a failed attempt, retried on the schedule (with ±20 % jitter; `Retry-After` honoured,
//! never sooner than the schedule and at most a day later) until the schedule runs out. 410 Gone stops
//! retrying and deactivates the hook; a hook whose attempts have failed continuously for `disable_after`
//! (5 days) is deactivated. 429 and 503 also pause the whole endpoint until `Retry-After` (or a short
//! default). Each endpoint (scheme, host and port) has its own concurrency limit; a delivery that finds its
//! endpoint busy or paused waits without using an attempt, so one slow receiver never holds the workers the
//! other receivers need. Delivery is at least once: a worker that dies mid-attempt leaves the job to be
//! claimed again, and the retry carries the same delivery id (`webhook-id`, `Pulumi-Webhook-ID`) for receivers
//! to dedupe on. A claim after the first reads the delivery's log first: a recorded success (or final failure)
//! is never sent again, and the attempt's place in the retry schedule is the number of scheduled attempts
//! recorded, so a lease lost to a crash does not use up a retry.

use async_trait::async_trait;
use pipehook_domain::org::{OrgId, Organization};
use pipehook_domain::secret::MasterKey;
use pipehook_domain::time::Timestamp;
use pipehook_store::{
    AttemptRecord, AttemptWrite, DeliveryRecord, HookRecord, Job, JobContext, JobFailure, JobHandler, NewJob,
    OutboundEvent, Publication, Store, StoreError,
};
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::format::{render, EventView};
use crate::kinds;
use crate::sign;
use crate::ssrf::{AddressPolicy, Refused, VettingResolver};

pub const JOB_KIND: &str = "outbound.delivery";

/// Response bodies are logged up to this size.
pub const LOGGED_RESPONSE_BYTES: usize = 16 * 1024;

/// Idempotency keys of published events are remembered this long.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The associated data a hook's secret is encrypted under: the ciphertext only decrypts for its organization.
pub fn secret_context(org: OrgId) -> String {
    format!("outbound-hook-secret:{}", org.0)
}

#[derive(Debug, Clone)]
pub struct OutboundConfig {
    pub timeout: Duration,
    /// Delay before each retry; its length is the number of retries.
    pub retry_schedule: Vec<Duration>,
    /// Concurrent requests per endpoint (scheme, host, port), per node.
    pub endpoint_concurrency: usize,
    /// A hook failing continuously this long is deactivated.
    pub disable_after: Duration,
    pub allowed_networks: Vec<ipnet::IpNet>,
    pub user_agent: String,
    /// This server's public URL (`PIPEHOOK_PUBLIC_URL`, else the address the API is bound to), without a
    /// trailing slash: the links in run events' bodies (`api_url`, `html_url`, ...) point at its API.
    pub public_url: String,
}

impl OutboundConfig {
    pub fn default_schedule() -> Vec<Duration> {
        [5, 300, 1800, 7200, 18000, 36000, 36000].into_iter().map(Duration::from_secs).collect()
    }
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            retry_schedule: Self::default_schedule(),
            endpoint_concurrency: 16,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            allowed_networks: Vec::new(),
            user_agent: format!("pipehook/{}", env!("CARGO_PKG_VERSION")),
            public_url: String::new(),
        }
    }
}

/// An event to publish.
#[derive(Debug, Clone, Default)]
pub struct PublishInput {
    pub kind: String,
    /// The payload's JSON text (an object), kept and sent exactly as given.
    pub payload: String,
    pub project: Option<String>,
    pub stack: Option<String>,
    pub env: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    pub event_id: String,
    /// Deliveries created (0 for a repeated idempotency key).
    pub deliveries: usize,
    /// The idempotency key was seen within the window: nothing new was stored.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A hook's secret, decrypted only to sign.
pub enum HookSecret {}

impl HookSecret {
    pub fn encrypt(key: &MasterKey, org: OrgId, secret: &str) -> String {
        key.encrypt(&secret_context(org), secret.as_bytes())
    }
}

#[derive(Default)]
struct Endpoint {
    in_flight: usize,
    paused_until: Option<Instant>,
    /// Deliveries turned away for lack of a slot, minus slots taken since: grows while the endpoint is slow,
    /// and makes turned-away deliveries wait longer, so a large backlog for a slow receiver does not keep the
    /// queue busy re-deferring it.
    busy_streak: u32,
}

pub struct Outbound {
    store: Arc<dyn Store>,
    master_key: MasterKey,
    config: OutboundConfig,
    client: reqwest::Client,
    policy: AddressPolicy,
    endpoints: Arc<Mutex<HashMap<String, Endpoint>>>,
    org_names: Mutex<HashMap<OrgId, String>>,
    caches: Caches,
    recorder: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<(AttemptWrite, Ack)>>,
}

type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Attempts written per transaction by the recorder.
const RECORD_BATCH: usize = 256;

/// Writes the attempts of concurrent deliveries together: one transaction for whatever is waiting, like the
/// worker pool's completer, instead of one per delivery.
async fn record_batches(store: Arc<dyn Store>, mut rx: tokio::sync::mpsc::UnboundedReceiver<(AttemptWrite, Ack)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < RECORD_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (writes, acks): (Vec<AttemptWrite>, Vec<Ack>) = batch.into_iter().unzip();
        let result = store.record_attempts(writes).await.map_err(|e| e.to_string());
        for ack in acks {
            let _ = ack.send(result.clone());
        }
    }
}

/// Short-lived read caches for the hot paths. Events never change, so they are kept until evicted. Hooks and
/// the hooks an event reaches are kept for [`HOOK_TTL`]; this node forgets them at once when it changes a
/// hook (API writes call [`Outbound::forget_hooks`], deactivations here do it themselves), so only changes made
/// on another node take up to the TTL to apply.
#[derive(Default)]
struct Caches {
    events: Mutex<HashMap<String, Arc<OutboundEvent>>>,
    hooks: Mutex<HashMap<i64, (Instant, Arc<HookRecord>)>>,
    reach: Mutex<HashMap<ReachKey, Reached>>,
}

/// Organization, project, stack, environment.
type ReachKey = (OrgId, Option<String>, Option<String>, Option<String>);
/// When they were read, and the active hooks reached.
type Reached = (Instant, Arc<Vec<HookRecord>>);

/// How long a cached hook is trusted (changes made on other nodes apply within this).
pub const HOOK_TTL: Duration = Duration::from_secs(1);
const CACHE_MAX: usize = 4096;

fn bounded_insert<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, k: K, v: V) {
    if map.len() >= CACHE_MAX {
        map.clear();
    }
    map.insert(k, v);
}

/// Holds one of an endpoint's concurrency slots.
struct Slot {
    endpoints: Arc<Mutex<HashMap<String, Endpoint>>>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(&self.key) {
            e.in_flight = e.in_flight.saturating_sub(1);
            if e.in_flight == 0 && e.paused_until.is_none_or(|p| p <= Instant::now()) {
                map.remove(&self.key);
            }
        }
    }
}

/// What one HTTP attempt produced.
struct Sent {
    record: AttemptRecord,
    retry_after: Option<Duration>,
}

impl Outbound {
    pub fn new(store: Arc<dyn Store>, master_key: MasterKey, config: OutboundConfig) -> Result<Self, String> {
        let policy = AddressPolicy::new(config.allowed_networks.clone());
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(VettingResolver { policy: policy.clone() }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| format!("building the outbound HTTP client: {e}"))?;
        Ok(Self {
            store,
            master_key,
            config,
            client,
            policy,
            endpoints: Arc::default(),
            org_names: Mutex::default(),
            caches: Caches::default(),
            recorder: std::sync::OnceLock::new(),
        })
    }

    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    /// Stores an event with one delivery (and job) per active hook it reaches. A repeated idempotency key
    /// within 24 hours returns the first event and stores nothing.
    pub async fn publish(&self, org: &Organization, input: PublishInput) -> Result<PublishOutcome, PublishError> {
        if !kinds::is_kind(&input.kind) {
            return Err(PublishError::Invalid(format!("unknown event kind {:?}", input.kind)));
        }
        if !is_json_object(&input.payload) {
            return Err(PublishError::Invalid("payload must be a JSON object".into()));
        }
        if input.stack.is_some() && input.project.is_none() {
            return Err(PublishError::Invalid("stackName needs projectName".into()));
        }
        if let Some(k) = &input.idempotency_key {
            if k.is_empty() || k.len() > 255 {
                return Err(PublishError::Invalid("Idempotency-Key must be 1 to 255 characters".into()));
            }
        }
        self.publish_unchecked(org.id, input).await
    }

    async fn publish_unchecked(&self, org: OrgId, input: PublishInput) -> Result<PublishOutcome, PublishError> {
        let now = Timestamp::now();
        let since = now.saturating_sub(IDEMPOTENCY_WINDOW);
        if let Some(key) = &input.idempotency_key {
            if let Some(e) = self.store.event_by_idempotency_key(org, key, since).await? {
                return Ok(PublishOutcome { event_id: e.id, deliveries: 0, duplicate: true });
            }
        }
        let hooks = self.reach(org, input.project.as_deref(), input.stack.as_deref(), input.env.as_deref()).await?;
        let event = OutboundEvent {
            id: uuid::Uuid::new_v4().to_string(),
            org,
            kind: input.kind,
            payload: input.payload,
            project: input.project,
            stack: input.stack,
            env: input.env,
            idempotency_key: input.idempotency_key,
            created_at: now,
        };
        let publication = self.publication(event, &hooks, since);
        let outcome = PublishOutcome {
            event_id: publication.event.id.clone(),
            deliveries: publication.deliveries.len(),
            duplicate: false,
        };
        match self.store.publish(publication.clone()).await {
            Ok(()) => Ok(outcome),
            // Two publishes with one key raced; the other one won.
            Err(StoreError::Conflict(_)) if publication.event.idempotency_key.is_some() => {
                let key = publication.event.idempotency_key.as_deref().unwrap_or_default();
                let first = self.store.event_by_idempotency_key(org, key, since).await?;
                let first = first.ok_or_else(|| StoreError::Conflict("idempotency key".into()))?;
                Ok(PublishOutcome { event_id: first.id, deliveries: 0, duplicate: true })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The event with a delivery and a job for each hook subscribed to its kind.
    pub fn publication(&self, event: OutboundEvent, hooks: &[HookRecord], since: Timestamp) -> Publication {
        let mut deliveries = Vec::new();
        let mut jobs = Vec::new();
        for h in hooks.iter().filter(|h| h.active && kinds::subscribed(&h.filters, &h.groups, &event.kind)) {
            let d = DeliveryRecord {
                id: uuid::Uuid::new_v4().to_string(),
                org: event.org,
                hook_id: h.id,
                event_id: event.id.clone(),
                kind: event.kind.clone(),
                status: "pending".into(),
                attempts: 0,
                created_at: event.created_at,
                updated_at: event.created_at,
            };
            jobs.push(
                NewJob::new(JOB_KIND, json!({"delivery": d.id, "hook": h.id, "event": event.id}))
                    .org(event.org)
                    // The handler decides when to stop; these are spare attempts for lost workers.
                    .max_attempts(self.config.retry_schedule.len() as u32 + 5),
            );
            deliveries.push(d);
        }
        Publication { event, deliveries, jobs, idempotency_since: since }
    }

    /// Sends a `ping` event to the hook now (not queued), logs it as a delivery with one attempt, and returns
    /// that attempt. Works on inactive hooks, so a fixed endpoint can be checked before reactivating it.
    pub async fn ping(&self, org: &Organization, hook: &HookRecord) -> Result<AttemptRecord, StoreError> {
        let now = Timestamp::now();
        let event = OutboundEvent {
            id: uuid::Uuid::new_v4().to_string(),
            org: org.id,
            kind: kinds::PING.into(),
            payload: json!({
                "kind": kinds::PING,
                "message": "pipehook webhook ping",
                "organization": org.name.to_string(),
                "hookName": hook.name,
                "timestamp": now.to_rfc3339(),
            })
            .to_string(),
            project: non_empty(&hook.scope.project),
            stack: non_empty(&hook.scope.stack),
            env: non_empty(&hook.scope.env),
            idempotency_key: None,
            created_at: now,
        };
        let delivery = DeliveryRecord {
            id: uuid::Uuid::new_v4().to_string(),
            org: org.id,
            hook_id: hook.id,
            event_id: event.id.clone(),
            kind: event.kind.clone(),
            status: "pending".into(),
            attempts: 0,
            created_at: now,
            updated_at: now,
        };
        self.store
            .publish(Publication {
                event: event.clone(),
                deliveries: vec![delivery.clone()],
                jobs: Vec::new(),
                idempotency_since: now,
            })
            .await?;
        let sent = self.send(hook, &delivery, &event, "ping").await;
        let ok = is_success(sent.record.response_code);
        self.store
            .record_attempt(AttemptWrite {
                attempt: sent.record.clone(),
                delivery_status: if ok { "succeeded" } else { "failed" }.into(),
                hook_health: None,
            })
            .await?;
        Ok(sent.record)
    }

    /// Sends a delivery's event again now, with the same delivery id, and returns the attempt. `None` when
    /// the hook has no such delivery (or its event has been pruned).
    pub async fn redeliver(&self, hook: &HookRecord, delivery_id: &str) -> Result<Option<AttemptRecord>, StoreError> {
        let Some(delivery) = self.store.delivery(delivery_id).await? else { return Ok(None) };
        if delivery.hook_id != hook.id {
            return Ok(None);
        }
        let Some(event) = self.store.outbound_event(delivery.org, &delivery.event_id).await? else {
            return Ok(None);
        };
        let sent = self.send(hook, &delivery, &event, "redeliver").await;
        let ok = is_success(sent.record.response_code);
        let status = if ok { "succeeded".to_owned() } else { delivery.status.clone() };
        let health = self.health_after(hook, &sent.record);
        let (changed, deactivated) = (health.is_some(), health.as_ref().is_some_and(|h| h.1.is_some()));
        self.record(AttemptWrite { attempt: sent.record.clone(), delivery_status: status, hook_health: health })
            .await?;
        if changed {
            self.forget_hook(hook.id, deactivated);
        }
        Ok(Some(sent.record))
    }

    /// The hook's new failure-run state after an attempt, if it changes.
    fn health_after(&self, hook: &HookRecord, a: &AttemptRecord) -> Option<(Option<Timestamp>, Option<String>)> {
        if is_success(a.response_code) {
            return hook.failing_since.map(|_| (None, None));
        }
        if a.response_code == 410 {
            return Some((
                Some(hook.failing_since.unwrap_or(a.attempted_at)),
                Some("the endpoint answered 410 Gone".into()),
            ));
        }
        let since = hook.failing_since.unwrap_or(a.attempted_at);
        let failing_for = Duration::from_millis(a.attempted_at.0.saturating_sub(since.0).max(0) as u64);
        if failing_for >= self.config.disable_after {
            return Some((
                Some(since),
                Some(format!("every delivery attempt failed since {} ({:?})", since.to_rfc3339(), failing_for)),
            ));
        }
        if hook.failing_since.is_none() {
            return Some((Some(since), None));
        }
        None
    }

    /// Why deliveries to `payload_url` would be refused by the address policy, if they would: said when a hook
    /// is created or changed, instead of only in its delivery log. A literal address is checked as it is; a
    /// host name is resolved now (bounded to 2 s), and a name that does not resolve yet is no warning (it may
    /// by the time deliveries go). Deliveries check again, on the addresses they connect to.
    pub async fn address_warning(&self, payload_url: &str) -> Option<String> {
        let url = reqwest::Url::parse(payload_url).ok()?;
        let port = url.port_or_known_default().unwrap_or(443);
        let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_owned();
        let addrs: Vec<std::net::IpAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(a) => vec![a],
            Err(_) => {
                let lookup = tokio::net::lookup_host((host, port));
                match tokio::time::timeout(Duration::from_secs(2), lookup).await {
                    Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                    _ => return None,
                }
            }
        };
        addrs
            .into_iter()
            .find_map(|a| self.policy.check(a).err())
            .map(|refused| format!("deliveries to this URL will be refused: {refused}"))
    }

    /// Forgets cached hooks, after any hook was created, changed or deleted through this node.
    pub fn forget_hooks(&self) {
        lock(&self.caches.hooks).clear();
        lock(&self.caches.reach).clear();
    }

    /// Records an attempt through the batching recorder (started on first use).
    async fn record(&self, w: AttemptWrite) -> Result<(), StoreError> {
        let sender = self.recorder.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(record_batches(self.store.clone(), rx));
            tx
        });
        let (ack, done) = tokio::sync::oneshot::channel();
        let lost = || StoreError::failed("the attempt recorder stopped");
        sender.send((w, ack)).map_err(|_| lost())?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::failed(e)),
            Err(_) => Err(lost()),
        }
    }

    fn forget_hook(&self, id: i64, deactivated: bool) {
        lock(&self.caches.hooks).remove(&id);
        if deactivated {
            lock(&self.caches.reach).clear();
        }
    }

    /// The active hooks an event at this place reaches (cached for [`HOOK_TTL`]).
    pub async fn reach(
        &self,
        org: OrgId,
        project: Option<&str>,
        stack: Option<&str>,
        env: Option<&str>,
    ) -> Result<Arc<Vec<HookRecord>>, StoreError> {
        let key = (org, project.map(str::to_owned), stack.map(str::to_owned), env.map(str::to_owned));
        if let Some((at, hooks)) = lock(&self.caches.reach).get(&key) {
            if at.elapsed() < HOOK_TTL {
                return Ok(hooks.clone());
            }
        }
        let hooks = Arc::new(self.store.hooks_for_event(org, project, stack, env).await?);
        bounded_insert(&mut lock(&self.caches.reach), key, (Instant::now(), hooks.clone()));
        Ok(hooks)
    }

    async fn cached_hook(&self, id: i64) -> Result<Option<Arc<HookRecord>>, StoreError> {
        if let Some((at, h)) = lock(&self.caches.hooks).get(&id) {
            if at.elapsed() < HOOK_TTL {
                return Ok(Some(h.clone()));
            }
        }
        let Some(h) = self.store.hook_by_id(id).await? else { return Ok(None) };
        let h = Arc::new(h);
        bounded_insert(&mut lock(&self.caches.hooks), id, (Instant::now(), h.clone()));
        Ok(Some(h))
    }

    async fn cached_event(&self, org: OrgId, id: &str) -> Result<Option<Arc<OutboundEvent>>, StoreError> {
        if let Some(e) = lock(&self.caches.events).get(id) {
            if e.org == org {
                return Ok(Some(e.clone()));
            }
        }
        let Some(e) = self.store.outbound_event(org, id).await? else { return Ok(None) };
        let e = Arc::new(e);
        bounded_insert(&mut lock(&self.caches.events), id.to_owned(), e.clone());
        Ok(Some(e))
    }

    pub(crate) async fn org_name(&self, org: OrgId) -> String {
        if let Some(n) = self.org_names.lock().unwrap_or_else(|p| p.into_inner()).get(&org) {
            return n.clone();
        }
        let name = match self.store.org_by_id(org).await {
            Ok(Some(o)) => o.name.to_string(),
            _ => return String::new(),
        };
        self.org_names.lock().unwrap_or_else(|p| p.into_inner()).insert(org, name.clone());
        name
    }

    /// One HTTP attempt; never fails: every problem becomes the attempt's record.
    async fn send(&self, hook: &HookRecord, d: &DeliveryRecord, e: &OutboundEvent, trigger: &str) -> Sent {
        let org_name = self.org_name(e.org).await;
        let view = EventView {
            id: &e.id,
            kind: &e.kind,
            organization: &org_name,
            project: e.project.as_deref(),
            stack: e.stack.as_deref(),
            env: e.env.as_deref(),
            payload: &e.payload,
            created_at: e.created_at,
        };
        let body = render(&hook.format, &view);
        let now = Timestamp::now();
        let ts = now.0 / 1000;
        let mut headers: Vec<(&'static str, String)> = vec![
            ("content-type", "application/json".into()),
            ("user-agent", self.config.user_agent.clone()),
            ("pulumi-webhook-id", d.id.clone()),
            ("pulumi-webhook-kind", e.kind.clone()),
            ("webhook-id", d.id.clone()),
            ("webhook-timestamp", ts.to_string()),
        ];
        let mut record = AttemptRecord {
            seq: 0,
            delivery_id: d.id.clone(),
            org: e.org,
            hook_id: hook.id,
            kind: e.kind.clone(),
            trigger: trigger.into(),
            payload: body.clone(),
            attempted_at: now,
            duration_ms: 0,
            request_url: hook.payload_url.clone(),
            request_headers: Value::Null,
            response_code: 0,
            response_headers: json!({}),
            response_body: String::new(),
        };
        if let Some(ct) = &hook.secret_ciphertext {
            match self.master_key.decrypt(&secret_context(e.org), ct) {
                Ok(secret) => {
                    headers.push(("pulumi-webhook-signature", sign::pulumi_signature(&secret, body.as_bytes())));
                    headers.push(("webhook-signature", sign::standard_signature(&secret, &d.id, ts, body.as_bytes())));
                }
                Err(_) => {
                    record.request_headers = headers_json(&headers);
                    record.response_body = "the hook's secret cannot be decrypted with this server's master key; \
                                            nothing was sent"
                        .into();
                    return Sent { record, retry_after: None };
                }
            }
        }
        record.request_headers = headers_json(&headers);
        let started = Instant::now();
        let outcome = self.http(&hook.payload_url, &headers, body).await;
        record.duration_ms = started.elapsed().as_millis() as i64;
        match outcome {
            Ok((code, resp_headers, resp_body, retry_after)) => {
                record.response_code = i64::from(code);
                record.response_headers = resp_headers;
                record.response_body = resp_body;
                Sent { record, retry_after }
            }
            Err(reason) => {
                record.response_body = reason;
                Sent { record, retry_after: None }
            }
        }
    }

    /// POSTs the body; `Err` is the reason no response came.
    async fn http(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: String,
    ) -> Result<(u16, Value, String, Option<Duration>), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid payload URL: {e}"))?;
        // Literal addresses never reach the resolver, so they are vetted here.
        let host = parsed.host_str().unwrap_or_default();
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
            self.policy.check(ip).map_err(|r| r.to_string())?;
        }
        let mut req = self.client.post(parsed);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let mut resp = req.body(body).send().await.map_err(describe_error)?;
        let code = resp.status().as_u16();
        let mut hmap = serde_json::Map::new();
        for (k, v) in resp.headers() {
            hmap.insert(k.as_str().to_owned(), Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()));
        }
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let mut buf = Vec::new();
        let mut truncated = false;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    let room = LOGGED_RESPONSE_BYTES.saturating_sub(buf.len());
                    buf.extend_from_slice(&c[..c.len().min(room)]);
                    if c.len() > room {
                        truncated = true;
                        break;
                    }
                }
                Ok(None) => break,
                // The status already came; a body cut short does not change the verdict.
                Err(_) => break,
            }
        }
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        if truncated {
            text.push_str("…(truncated)");
        }
        Ok((code, Value::Object(hmap), text, retry_after))
    }

    /// Takes a slot of the endpoint, or says how long to wait for one.
    fn acquire(&self, url: &str) -> Result<Slot, Duration> {
        let key = endpoint_key(url);
        let mut map = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(key.clone()).or_default();
        let now = Instant::now();
        if let Some(until) = e.paused_until {
            if until > now {
                return Err(until - now);
            }
            e.paused_until = None;
        }
        let limit = self.config.endpoint_concurrency.max(1);
        if e.in_flight >= limit {
            e.busy_streak = e.busy_streak.saturating_add(1);
            return Err(busy_wait(e.busy_streak, limit));
        }
        e.in_flight += 1;
        e.busy_streak = e.busy_streak.saturating_sub(4);
        Ok(Slot { endpoints: self.endpoints.clone(), key })
    }

    fn pause(&self, url: &str, for_: Duration) {
        let mut map = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(endpoint_key(url)).or_default();
        let until = Instant::now() + for_;
        if e.paused_until.is_none_or(|p| p < until) {
            e.paused_until = Some(until);
        }
    }

    /// The delay before retry number `n` (1-based), jittered ±20 %, honouring `Retry-After` within bounds.
    fn retry_delay(&self, n: usize, retry_after: Option<Duration>) -> Duration {
        let base = self.config.retry_schedule[n - 1];
        let factor = rand::thread_rng().gen_range(0.8..=1.2);
        let jittered = base.mul_f64(factor);
        match retry_after {
            Some(ra) => jittered.max(ra.min(Duration::from_secs(24 * 3600))),
            None => jittered,
        }
    }
}

/// How long a delivery turned away from a full endpoint waits: 250 ms doubling for every `4 × limit` turned
/// away (net of slots taken), up to 30 s, with jitter.
fn busy_wait(streak: u32, limit: usize) -> Duration {
    let doublings = (streak as usize / (4 * limit)).min(7) as u32;
    let hi = (250u64 << doublings).min(30_000);
    Duration::from_millis(rand::thread_rng().gen_range(hi / 2..=hi))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Whether `text` is one JSON object, read without turning its numbers into floats (any number JSON's grammar
/// allows passes: the text is what is kept and sent).
fn is_json_object(text: &str) -> bool {
    text.trim_start().starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

pub fn is_success(code: i64) -> bool {
    (200..300).contains(&code)
}

fn headers_json(h: &[(&'static str, String)]) -> Value {
    Value::Object(h.iter().map(|(k, v)| ((*k).to_owned(), Value::from(v.clone()))).collect())
}

fn endpoint_key(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}:{}", u.scheme(), u.host_str().unwrap_or(""), u.port_or_known_default().unwrap_or(0)),
        Err(_) => url.to_owned(),
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate_parse(v)?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

fn httpdate_parse(v: &str) -> Option<std::time::SystemTime> {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| *m == parts[2])? as u64
        + 1;
    let year: u64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4].split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if hms.len() != 3 || !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

/// A transport error as the delivery log shows it: the policy refusal when that was the cause.
fn describe_error(e: reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return r.to_string();
        }
        source = s.source();
    }
    if e.is_timeout() {
        return "timed out waiting for the endpoint".into();
    }
    if e.is_connect() {
        let mut msg = String::from("could not connect");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg = format!("{msg}: {s}");
            source = s.source();
        }
        return msg;
    }
    format!("request failed: {e}")
}

/// The `outbound.delivery` job handler.
#[async_trait]
impl JobHandler for Outbound {
    async fn handle(&self, job: &Job, _ctx: &JobContext) -> Result<(), JobFailure> {
        let field = |k: &str| job.payload.get(k).cloned().unwrap_or(Value::Null);
        let (Some(delivery_id), Some(hook_id), Some(event_id)) = (
            field("delivery").as_str().map(str::to_owned),
            field("hook").as_i64(),
            field("event").as_str().map(str::to_owned),
        ) else {
            return Err(JobFailure::Permanent(format!("malformed delivery job payload: {}", job.payload)));
        };
        let store_err = |e: StoreError| JobFailure::Retry { error: e.to_string(), after: Duration::from_secs(5) };
        // Scheduled attempts already recorded. A later claim may follow a recorded outcome whose job was not
        // completed (a crash before the worker pool's batched `complete`), or a lease lost before anything was
        // recorded: the log, not the claim count, says where the delivery stands. A first claim has no history,
        // so it reads nothing.
        let attempts_before = if job.attempt > 1 {
            match self.store.delivery_progress(&delivery_id).await.map_err(store_err)? {
                // Gone: its hook was deleted, and took its deliveries with it.
                None => return Ok(()),
                // Its success (or final failure) is recorded: never sent again.
                Some(p) if matches!(p.status.as_str(), "succeeded" | "failed") => return Ok(()),
                Some(p) => p.scheduled_attempts.max(0),
            }
        } else {
            0
        };
        // A deleted hook took its deliveries with it.
        let Some(hook) = self.cached_hook(hook_id).await.map_err(store_err)? else { return Ok(()) };
        if !hook.active {
            let record = skipped(&hook, &delivery_id, &event_id, job, "the hook is inactive; delivery abandoned");
            self.store
                .record_attempt(AttemptWrite { attempt: record, delivery_status: "failed".into(), hook_health: None })
                .await
                .map_err(store_err)?;
            return Ok(());
        }
        let slot = match self.acquire(&hook.payload_url) {
            Ok(s) => s,
            Err(wait) => return Err(JobFailure::Defer { after: wait }),
        };
        let Some(event) = self.cached_event(hook.org, &event_id).await.map_err(store_err)? else {
            return Ok(());
        };
        let delivery = DeliveryRecord {
            id: delivery_id,
            org: hook.org,
            hook_id,
            event_id,
            kind: event.kind.clone(),
            status: "pending".into(),
            attempts: attempts_before,
            created_at: event.created_at,
            updated_at: event.created_at,
        };
        let sent = self.send(&hook, &delivery, &event, "scheduled").await;
        drop(slot);
        let code = sent.record.response_code;
        if code == 429 || code == 503 {
            self.pause(
                &hook.payload_url,
                sent.retry_after.unwrap_or(Duration::from_secs(5)).min(Duration::from_secs(3600)),
            );
        }
        // 1-based number of this attempt within the retry schedule; lost leases do not use it up.
        let attempt_no = usize::try_from(attempts_before).unwrap_or(usize::MAX).saturating_add(1);
        let ok = is_success(code);
        let health = self.health_after(&hook, &sent.record);
        let deactivated = health.as_ref().is_some_and(|h| h.1.is_some());
        let retries_left = attempt_no <= self.config.retry_schedule.len() && code != 410 && !deactivated;
        let status = if ok {
            "succeeded"
        } else if retries_left {
            "pending"
        } else {
            "failed"
        };
        let health_changed = health.is_some();
        self.record(AttemptWrite { attempt: sent.record.clone(), delivery_status: status.into(), hook_health: health })
            .await
            .map_err(store_err)?;
        if health_changed {
            self.forget_hook(hook_id, deactivated);
        }
        if ok || !retries_left {
            return Ok(());
        }
        Err(JobFailure::Retry {
            // The schedule's count, named so: an attempt's number (API, CLI) counts every attempt of the
            // delivery, redeliveries included.
            error: format!(
                "scheduled send {attempt_no} of {}: {}",
                self.config.retry_schedule.len() + 1,
                summary(&sent.record)
            ),
            after: self.retry_delay(attempt_no, sent.retry_after),
        })
    }
}

fn summary(a: &AttemptRecord) -> String {
    if a.response_code == 0 {
        a.response_body.clone()
    } else {
        format!("HTTP {}", a.response_code)
    }
}

fn skipped(hook: &HookRecord, delivery_id: &str, _event_id: &str, job: &Job, why: &str) -> AttemptRecord {
    AttemptRecord {
        seq: 0,
        delivery_id: delivery_id.to_owned(),
        org: hook.org,
        hook_id: hook.id,
        kind: String::new(),
        trigger: "scheduled".into(),
        payload: String::new(),
        attempted_at: Timestamp::now(),
        duration_ms: 0,
        request_url: hook.payload_url.clone(),
        request_headers: json!({}),
        response_code: 0,
        response_headers: json!({}),
        response_body: format!("{why} (run {} of the delivery's job)", job.attempt),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("soon"), None);
        let past = parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(past, Some(Duration::ZERO), "a date in the past means now");
        let t = httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
    }

    #[test]
    fn busy_endpoints_push_deliveries_further_out() {
        assert!(busy_wait(1, 16) <= Duration::from_millis(250));
        assert!(busy_wait(16 * 4 * 3, 16) >= Duration::from_millis(1000));
        assert!(busy_wait(u32::MAX, 16) <= Duration::from_secs(30));
    }

    #[test]
    fn endpoint_keys_include_the_default_port() {
        assert_eq!(endpoint_key("https://a.example/x?y"), "https://a.example:443");
        assert_eq!(endpoint_key("http://a.example:8080/"), "http://a.example:8080");
    }
}
