//! A small Prometheus registry: request counters and latency histograms by route, method and status, and
//! job outcomes by kind. Queue depth is read from the store at scrape time, so it is never stale.

use pipehook_store::QueueDepth;
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
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    jobs: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl Metrics {
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let h = map.entry((route.to_owned(), method.to_owned(), status)).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
    }

    /// Counts a finished job attempt: `outcome` is `completed`, `retried`, `dead` or `lost` (lease lost).
    pub fn job_outcome(&self, kind: &str, outcome: &'static str) {
        let mut map = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((kind.to_owned(), outcome)).or_default() += 1;
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, depth: Option<&[QueueDepth]>) -> String {
        let mut out = String::new();
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
        out.push_str("# HELP pipehook_http_requests_total HTTP requests by route template, method and status.\n");
        out.push_str("# TYPE pipehook_http_requests_total counter\n");
        for ((route, method, status), h) in &requests {
            let _ = writeln!(
                out,
                "pipehook_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                escape(method),
                h.count
            );
        }
        out.push_str("# HELP pipehook_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE pipehook_http_request_duration_seconds histogram\n");
        for ((route, method, status), h) in &requests {
            let labels = format!("route=\"{}\",method=\"{}\",status=\"{status}\"", escape(route), escape(method));
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
        out.push_str("# HELP pipehook_jobs_total Finished job attempts by kind and outcome.\n");
        out.push_str("# TYPE pipehook_jobs_total counter\n");
        for ((kind, outcome), n) in self.jobs.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "pipehook_jobs_total{{kind=\"{}\",outcome=\"{outcome}\"}} {n}", escape(kind));
        }
        out.push_str("# HELP pipehook_queue_jobs Jobs in the durable queue by kind and state.\n");
        out.push_str("# TYPE pipehook_queue_jobs gauge\n");
        for d in depth.unwrap_or_default() {
            let _ = writeln!(
                out,
                "pipehook_queue_jobs{{kind=\"{}\",state=\"{}\"}} {}",
                escape(&d.kind),
                escape(&d.state),
                d.count
            );
        }
        out.push_str("# HELP pipehook_queue_up 1 when the queue depth could be read from the database.\n");
        out.push_str("# TYPE pipehook_queue_up gauge\n");
        let _ = writeln!(out, "pipehook_queue_up {}", u8::from(depth.is_some()));
        out
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
        m.observe_request("/healthz", "GET", 200, Duration::from_millis(3));
        m.observe_request("/healthz", "GET", 200, Duration::from_millis(300));
        m.job_outcome("t.kind", "completed");
        let depth = [QueueDepth { kind: "t.kind".into(), state: "ready".into(), count: 7 }];
        let text = m.render(Some(&depth));
        assert!(text.contains("pipehook_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 2"));
        assert!(text.contains("pipehook_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",status=\"200\",le=\"0.005\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(text.contains("pipehook_jobs_total{kind=\"t.kind\",outcome=\"completed\"} 1"));
        assert!(text.contains("pipehook_queue_jobs{kind=\"t.kind\",state=\"ready\"} 7"));
        assert!(text.contains("pipehook_queue_up 1"));
        assert!(m.render(None).contains("pipehook_queue_up 0"));
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
