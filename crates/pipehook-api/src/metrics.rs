//! A small Prometheus registry: request counters and latency histograms by route (and AWS operation),
//! method and status, trigger answers by result, and job outcomes by kind. What the database knows (queue
//! depth and the oldest job's age, executions, builds and deliveries by status) is read from the store at
//! scrape time, so it is never stale; process figures come from `/proc/self`.

use pipehook_domain::time::Timestamp;
use pipehook_store::{QueueDepth, StatusCount};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestKey, Histogram>>,
    jobs: Mutex<BTreeMap<(String, &'static str), u64>>,
    triggers: Mutex<BTreeMap<(String, String), u64>>,
    inbound_dropped: Mutex<BTreeMap<&'static str, u64>>,
}

/// Route template, AWS operation (empty for other routes), method, status.
type RequestKey = (String, String, String, u16);

/// What the store knew at scrape time; `None` where it could not be read.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub depth: Option<Vec<QueueDepth>>,
    pub statuses: Option<Vec<StatusCount>>,
}

impl Metrics {
    /// Counts a request. `operation` is the AWS operation for `POST /` (bounded to the operations the endpoint
    /// has, see `aws::operation_label`), empty otherwise.
    pub fn observe_request(&self, route: &str, operation: &str, method: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let h = map.entry((route.to_owned(), operation.to_owned(), method.to_owned(), status)).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
    }

    /// Counts a trigger URL's answer: `trigger` is `pipeline` or `build`, `result` the answer's `result`
    /// (`triggered`, `filtered`, `duplicate`, `unauthenticated`, `rejected`, ...) or, for answers without one,
    /// `not_found`, `too_large` or `unavailable`.
    pub fn trigger(&self, trigger: &str, result: &str) {
        let mut map = self.triggers.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((trigger.to_owned(), result.to_owned())).or_default() += 1;
    }

    /// Counts inbound requests (or log records) dropped rather than stored: `reason` is `unauthenticated_rate`
    /// (over the per-webhook rate of logged unauthenticated requests) or `log_size_budget` (pruned to keep the
    /// inbound log within its size budget). A fixed set, so the label space stays bounded.
    pub fn inbound_dropped(&self, reason: &'static str, n: u64) {
        let mut map = self.inbound_dropped.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(reason).or_default() += n;
    }

    /// Counts a finished job attempt: `outcome` is `completed`, `retried`, `dead` or `lost` (lease lost).
    pub fn job_outcome(&self, kind: &str, outcome: &'static str) {
        let mut map = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((kind.to_owned(), outcome)).or_default() += 1;
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::new();
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let labels_of = |(route, operation, method, status): &RequestKey| {
            let mut l = format!("route=\"{}\",", escape(route));
            if !operation.is_empty() {
                let _ = write!(l, "operation=\"{}\",", escape(operation));
            }
            let _ = write!(l, "method=\"{}\",status=\"{status}\"", escape(method));
            l
        };
        header(
            &mut out,
            "pipehook_http_requests_total",
            "counter",
            "HTTP requests by route template, AWS operation, method and status.",
        );
        for (key, h) in &requests {
            let _ = writeln!(out, "pipehook_http_requests_total{{{}}} {}", labels_of(key), h.count);
        }
        header(&mut out, "pipehook_http_request_duration_seconds", "histogram", "HTTP request latency.");
        for (key, h) in &requests {
            let labels = labels_of(key);
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "pipehook_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(out, "pipehook_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "pipehook_http_request_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "pipehook_http_request_duration_seconds_count{{{labels}}} {}", h.count);
        }
        header(
            &mut out,
            "pipehook_triggers_total",
            "counter",
            "Requests to trigger URLs by trigger (pipeline, build) and result.",
        );
        for ((trigger, result), n) in self.triggers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                out,
                "pipehook_triggers_total{{trigger=\"{}\",result=\"{}\"}} {n}",
                escape(trigger),
                escape(result)
            );
        }
        header(
            &mut out,
            "pipehook_inbound_dropped_total",
            "counter",
            "Inbound requests counted but not logged, and log records pruned for size, by reason.",
        );
        for (reason, n) in self.inbound_dropped.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "pipehook_inbound_dropped_total{{reason=\"{reason}\"}} {n}");
        }
        header(&mut out, "pipehook_jobs_total", "counter", "Finished job attempts by kind and outcome.");
        for ((kind, outcome), n) in self.jobs.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "pipehook_jobs_total{{kind=\"{}\",outcome=\"{outcome}\"}} {n}", escape(kind));
        }
        let depth = snapshot.depth.as_deref();
        header(&mut out, "pipehook_queue_jobs", "gauge", "Jobs in the durable queue by kind and state.");
        for d in depth.unwrap_or_default() {
            let _ = writeln!(
                out,
                "pipehook_queue_jobs{{kind=\"{}\",state=\"{}\"}} {}",
                escape(&d.kind),
                escape(&d.state),
                d.count
            );
        }
        header(
            &mut out,
            "pipehook_queue_oldest_job_age_seconds",
            "gauge",
            "Age of the oldest job by kind and state (due ready jobs: since they became due).",
        );
        let now = Timestamp::now().0;
        for d in depth.unwrap_or_default() {
            if let Some(oldest) = d.oldest {
                let age = (now - oldest.0).max(0) as f64 / 1000.0;
                let _ = writeln!(
                    out,
                    "pipehook_queue_oldest_job_age_seconds{{kind=\"{}\",state=\"{}\"}} {age}",
                    escape(&d.kind),
                    escape(&d.state)
                );
            }
        }
        header(&mut out, "pipehook_queue_up", "gauge", "1 when the queue depth could be read from the database.");
        let _ = writeln!(out, "pipehook_queue_up {}", u8::from(depth.is_some()));
        for (what, name, help) in [
            ("execution", "pipehook_pipeline_executions", "Pipeline executions by status, all organizations."),
            ("build", "pipehook_builds", "CodeBuild builds by status, all organizations."),
            ("delivery", "pipehook_deliveries", "Outbound deliveries by status (pending, succeeded, failed)."),
        ] {
            header(&mut out, name, "gauge", help);
            for c in snapshot.statuses.as_deref().unwrap_or_default().iter().filter(|c| c.what == what) {
                let _ = writeln!(out, "{name}{{status=\"{}\"}} {}", escape(&c.status), c.count);
            }
        }
        header(&mut out, "pipehook_store_errors_total", "counter", "Database failures met by this process.");
        let _ = writeln!(out, "pipehook_store_errors_total {}", pipehook_store::database_errors());
        process_metrics(&mut out);
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The standard `process_*` metrics, from `/proc/self` (Linux; nothing elsewhere).
fn process_metrics(out: &mut String) {
    // Clock ticks and page size are 100 and 4096 on every Linux pipehook runs on; reading them needs libc.
    const TICKS: f64 = 100.0;
    const PAGE: f64 = 4096.0;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // Fields after the command name, which is in parentheses and may contain spaces.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    // rest[0] is field 3 (state): utime is field 14, stime 15, threads 20, starttime 22, vsize 23, rss 24.
    if let (Some(utime), Some(stime)) = (num(11), num(12)) {
        header(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
        let _ = writeln!(out, "process_cpu_seconds_total {}", (utime + stime) / TICKS);
    }
    if let Some(rss) = num(21) {
        header(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        let _ = writeln!(out, "process_resident_memory_bytes {}", rss * PAGE);
    }
    if let Some(vsize) = num(20) {
        header(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        let _ = writeln!(out, "process_virtual_memory_bytes {vsize}");
    }
    if let Some(threads) = num(17) {
        header(out, "process_threads", "gauge", "Threads of the process.");
        let _ = writeln!(out, "process_threads {threads}");
    }
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok())));
    if let (Some(boot), Some(start)) = (boot, num(19)) {
        header(
            out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
        );
        let _ = writeln!(out, "process_start_time_seconds {}", boot + start / TICKS);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        header(out, "process_open_fds", "gauge", "Open file descriptors.");
        let _ = writeln!(out, "process_open_fds {}", fds.count());
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_depth() {
        let m = Metrics::default();
        m.observe_request("/healthz", "", "GET", 200, Duration::from_millis(3));
        m.observe_request("/healthz", "", "GET", 200, Duration::from_millis(300));
        m.observe_request("/", "codepipeline.CreatePipeline", "POST", 200, Duration::from_millis(3));
        m.job_outcome("t.kind", "completed");
        m.trigger("pipeline", "triggered");
        m.trigger("pipeline", "triggered");
        m.inbound_dropped("unauthenticated_rate", 3);
        m.inbound_dropped("unauthenticated_rate", 1);
        let now = Timestamp::now();
        let snapshot = Snapshot {
            depth: Some(vec![
                QueueDepth {
                    kind: "t.kind".into(),
                    state: "ready".into(),
                    count: 7,
                    oldest: Some(Timestamp(now.0 - 90_000)),
                },
                QueueDepth { kind: "t.kind".into(), state: "scheduled".into(), count: 1, oldest: None },
            ]),
            statuses: Some(vec![
                StatusCount { what: "execution".into(), status: "Succeeded".into(), count: 3 },
                StatusCount { what: "delivery".into(), status: "failed".into(), count: 2 },
            ]),
        };
        let text = m.render(&snapshot);
        assert!(
            text.contains("pipehook_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("pipehook_http_requests_total{route=\"/\",operation=\"codepipeline.CreatePipeline\",method=\"POST\",status=\"200\"} 1"));
        assert!(text.contains("pipehook_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",status=\"200\",le=\"0.005\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(text.contains("pipehook_triggers_total{trigger=\"pipeline\",result=\"triggered\"} 2"));
        assert!(text.contains("pipehook_jobs_total{kind=\"t.kind\",outcome=\"completed\"} 1"));
        assert!(text.contains("pipehook_inbound_dropped_total{reason=\"unauthenticated_rate\"} 4"));
        assert!(text.contains("pipehook_queue_jobs{kind=\"t.kind\",state=\"ready\"} 7"));
        let age = text
            .lines()
            .find_map(|l| l.strip_prefix("pipehook_queue_oldest_job_age_seconds{kind=\"t.kind\",state=\"ready\"} "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("oldest job age");
        assert!((90.0..120.0).contains(&age), "{age}");
        assert!(!text.contains("state=\"scheduled\"} 0"));
        assert!(text.contains("pipehook_pipeline_executions{status=\"Succeeded\"} 3"));
        assert!(text.contains("pipehook_deliveries{status=\"failed\"} 2"));
        assert!(text.contains("pipehook_queue_up 1"));
        assert!(text.contains("pipehook_store_errors_total "));
        assert!(text.contains("process_resident_memory_bytes "));
        assert!(text.contains("process_open_fds "));
        assert!(m.render(&Snapshot::default()).contains("pipehook_queue_up 0"));
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
