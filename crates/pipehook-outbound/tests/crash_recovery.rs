//! The `outbound.delivery` handler after a crash, driven directly against a real store (SQLite, and
//! PostgreSQL when reachable) and a real local receiver: a job claimed again after its success was recorded
//! sends nothing, and a lease lost before anything was recorded does not use up a retry. Jobs are claimed,
//! failed and completed here as the worker pool does, so a "crash" is a job that is not completed, or a
//! handler dropped mid-request, followed by its lease running out.

use pipehook_domain::org::{AccountId, OrgName, Organization};
use pipehook_domain::secret::MasterKey;
use pipehook_domain::time::Timestamp;
use pipehook_outbound::ssrf::AddressPolicy;
use pipehook_outbound::{HookSecret, Outbound, OutboundConfig, PublishInput, JOB_KIND};
use pipehook_store::testing::{self, TestStore};
use pipehook_store::{FailOutcome, HookFields, HookRecord, HookScope, Job, JobContext, JobFailure, JobHandler, Store};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Short enough for a test, long enough that an abandoned lease is clearly not held.
const LEASE: Duration = Duration::from_millis(300);
const SCHEDULE: [Duration; 3] = [Duration::from_millis(50); 3];

#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Read the request, never answer (the sender dies waiting).
    Hang,
}

#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers))
    }
}

/// A minimal HTTP/1.1 receiver: records every request and answers from its script, then `then`.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(script: Vec<Answer>, then: Answer) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (g, s) = (got.clone(), script.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, g.clone(), s.clone(), then));
            }
        });
        Receiver { url, got }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) {
        for _ in 0..500 {
            if self.got.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the receiver got {} requests, wanted {n}", self.got().len());
    }
}

async fn serve(
    mut conn: tokio::net::TcpStream,
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    then: Answer,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + len {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf[head_end..head_end + len].to_vec();
    got.lock().unwrap().push(Received { headers, body });
    let answer = script.lock().unwrap().pop_front().unwrap_or(then);
    match answer {
        // Hold the connection until the sender goes away.
        Answer::Hang => while matches!(conn.read(&mut chunk).await, Ok(n) if n > 0) {},
        Answer::Status(code) => {
            let resp = format!("HTTP/1.1 {code} Scripted\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi");
            let _ = conn.write_all(resp.as_bytes()).await;
            let _ = conn.shutdown().await;
        }
    }
}

struct Setup {
    store: Arc<dyn Store>,
    outbound: Arc<Outbound>,
    hook: HookRecord,
}

async fn setup(store: Arc<dyn Store>, url: &str) -> Setup {
    let key = MasterKey::generate();
    let mut tx = store.begin().await.unwrap();
    let org: Organization = tx.create_org(&OrgName::parse("acme").unwrap(), &AccountId::generate()).await.unwrap();
    let fields = HookFields {
        display_name: "Hook".into(),
        payload_url: url.into(),
        secret_ciphertext: Some(HookSecret::encrypt(&key, org.id, "s3cr3t")),
        active: true,
        format: "raw".into(),
        filters: Vec::new(),
        groups: Vec::new(),
    };
    let hook = tx.insert_hook(org.id, &HookScope::org(), "h", &fields).await.unwrap();
    tx.commit().await.unwrap();
    let config = OutboundConfig {
        retry_schedule: SCHEDULE.to_vec(),
        allowed_networks: AddressPolicy::parse_networks("127.0.0.0/8").unwrap(),
        timeout: Duration::from_secs(5),
        ..OutboundConfig::default()
    };
    let outbound = Arc::new(Outbound::new(store.clone(), key, config).unwrap());
    let input = PublishInput { kind: "build_failed".into(), payload: r#"{"n": 1}"#.into(), ..PublishInput::default() };
    let published = outbound.publish(&org, input).await.unwrap();
    assert_eq!(published.deliveries, 1);
    Setup { store, outbound, hook }
}

/// The delivery job, once it is due (or its lease has run out).
async fn claim(store: &dyn Store) -> Job {
    for _ in 0..500 {
        if let Some(job) = store.claim(&[JOB_KIND], 1, LEASE).await.unwrap().pop() {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the delivery job never became claimable");
}

fn delivery_id(job: &Job) -> String {
    job.payload["delivery"].as_str().unwrap().to_owned()
}

/// A job claimed again after its success was recorded (the worker died before completing it) sends nothing.
async fn recorded_success_is_not_sent_again(store: Arc<dyn Store>) {
    let receiver = Receiver::start(Vec::new(), Answer::Status(200)).await;
    let s = setup(store, &receiver.url).await;
    let first = claim(&*s.store).await;
    assert_eq!(first.attempt, 1);
    s.outbound.handle(&first, &JobContext::default()).await.expect("delivered");
    assert_eq!(receiver.got().len(), 1);
    // Crash: the job is never completed; its lease runs out and it is claimed again.
    let again = claim(&*s.store).await;
    assert_eq!((again.id, again.attempt), (first.id, 2));
    s.outbound.handle(&again, &JobContext::default()).await.expect("nothing left to do");
    s.store.complete(&[again.lease]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.got().len(), 1, "a recorded success is never sent again");
    let id = delivery_id(&first);
    let attempts = s.store.delivery_attempts(&id).await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.attempt.response_code).collect::<Vec<_>>(), vec![200]);
    let delivery = s.store.delivery(&id).await.unwrap().unwrap();
    assert_eq!((delivery.status.as_str(), delivery.attempts), ("succeeded", 1));
    assert!(s.store.claim(&[JOB_KIND], 1, LEASE).await.unwrap().is_empty(), "the job is done");
}

/// A lease lost mid-request (sent, nothing recorded) is not an attempt: the next claim is attempt 1 of the
/// schedule, so a failing receiver still gets every retry, each with the same delivery id. A manual
/// redelivery in between does not count either.
async fn lost_lease_does_not_use_up_a_retry(store: Arc<dyn Store>) {
    let receiver = Receiver::start(vec![Answer::Hang], Answer::Status(500)).await;
    let s = setup(store, &receiver.url).await;
    let first = claim(&*s.store).await;
    let id = delivery_id(&first);
    let (outbound, job) = (s.outbound.clone(), first.clone());
    let in_flight = tokio::spawn(async move { outbound.handle(&job, &JobContext::default()).await });
    receiver.wait_for(1).await;
    // Crash mid-request: the request went out, no answer came, nothing is recorded.
    in_flight.abort();
    assert!(in_flight.await.unwrap_err().is_cancelled());
    assert!(s.store.delivery_attempts(&id).await.unwrap().is_empty());

    let manual = s.outbound.redeliver(&s.hook, &id).await.unwrap().expect("the delivery exists");
    assert_eq!((manual.trigger.as_str(), manual.response_code), ("redeliver", 500));

    let mut errors = Vec::new();
    let mut claims = Vec::new();
    loop {
        let job = claim(&*s.store).await;
        assert_eq!(job.id, first.id);
        claims.push(job.attempt);
        match s.outbound.handle(&job, &JobContext::default()).await {
            Ok(()) => {
                s.store.complete(&[job.lease]).await.unwrap();
                break;
            }
            Err(JobFailure::Retry { error, after }) => {
                assert!(after <= Duration::from_millis(60), "{after:?} is not the schedule's 50 ms ± 20 %");
                let outcome = s.store.fail(&job.lease, &error, Some(Timestamp::now().saturating_add(after))).await;
                assert!(matches!(outcome.unwrap(), Some(FailOutcome::Retrying { .. })));
                errors.push(error);
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(claims, vec![2, 3, 4, 5], "the job's claims, the lost one included");
    let numbers: Vec<&str> = errors.iter().map(|e| e.split(':').next().unwrap()).collect();
    assert_eq!(numbers, vec!["scheduled send 1 of 4", "scheduled send 2 of 4", "scheduled send 3 of 4"], "{errors:?}");
    // Attempt numbers count every attempt of the delivery, the redelivery first.
    let logged: Vec<(String, i64)> =
        s.store.delivery_attempts(&id).await.unwrap().into_iter().map(|l| (l.attempt.trigger, l.number)).collect();
    let want: Vec<(String, i64)> =
        [("redeliver", 1), ("scheduled", 2), ("scheduled", 3), ("scheduled", 4), ("scheduled", 5)]
            .into_iter()
            .map(|(t, n)| (t.to_owned(), n))
            .collect();
    assert_eq!(logged, want);

    // The lost request, the redelivery, then 1 try + 3 retries: all of the schedule.
    let got = receiver.got();
    assert_eq!(got.len(), 2 + 1 + SCHEDULE.len());
    for r in &got {
        assert_eq!(r.header("webhook-id"), id, "one delivery id for every copy");
        assert_eq!(r.header("pulumi-webhook-id"), id);
        assert_eq!(r.body, got[0].body, "the same body every time");
    }
    let logged = s.store.delivery_attempts(&id).await.unwrap();
    let triggers: Vec<&str> = logged.iter().map(|l| l.attempt.trigger.as_str()).collect();
    assert_eq!(triggers, vec!["redeliver", "scheduled", "scheduled", "scheduled", "scheduled"]);
    assert!(logged.iter().all(|l| l.attempt.response_code == 500));
    let delivery = s.store.delivery(&id).await.unwrap().unwrap();
    assert_eq!((delivery.status.as_str(), delivery.attempts), ("failed", 5));
}

async fn on_both(body: impl Fn(Arc<dyn Store>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) {
    let sqlite: TestStore = testing::sqlite().await;
    body(sqlite.store.clone()).await;
    if let Some(pg) = testing::postgres().await {
        body(pg.store.clone()).await;
    }
}

#[tokio::test]
async fn a_recorded_success_is_not_sent_again() {
    on_both(|s| Box::pin(recorded_success_is_not_sent_again(s))).await;
}

#[tokio::test]
async fn a_lost_lease_does_not_use_up_a_retry() {
    on_both(|s| Box::pin(lost_lease_does_not_use_up_a_retry(s))).await;
}
