//! Prometheus metrics: requests and latency per route, plus the archive's size, at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::AppState;

/// Upper bounds of the latency histogram buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Counters since the server started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, route pattern, status) → requests.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// route pattern → latency.
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .expect("metrics")
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
        let mut latency = self.latency.lock().expect("metrics");
        let h = latency.entry(route.to_string()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// The Prometheus text exposition of every counter, plus `extra` lines.
    pub fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP kairos_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE kairos_http_requests_total counter\n");
        for ((method, route, status), n) in self.requests.lock().expect("metrics").iter() {
            let _ = writeln!(
                out,
                "kairos_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP kairos_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE kairos_http_request_duration_seconds histogram\n");
        for (route, h) in self.latency.lock().expect("metrics").iter() {
            let route = escape(route);
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "kairos_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "kairos_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "kairos_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "kairos_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        for (name, help, value) in extra {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

/// The Prometheus text exposition of what searches read of the catalog: each kind of record
/// asked for, answered from memory or read from the catalog, and the bytes kept of each.
pub fn render_search_reads(counts: &[kairos_store::remembered::ReadCount]) -> String {
    let mut out = String::from(
        "# HELP kairos_search_catalog_reads_total Records searches asked the catalog for, \
         by kind and by whether memory answered (unchanged since last read) or SQLite.\n\
         # TYPE kairos_search_catalog_reads_total counter\n",
    );
    for c in counts {
        for (from, n) in [("memory", c.remembered), ("catalog", c.read)] {
            let _ = writeln!(
                out,
                "kairos_search_catalog_reads_total{{kind=\"{}\",from=\"{from}\"}} {n}",
                c.kind
            );
        }
    }
    out.push_str(
        "# HELP kairos_search_catalog_memory_bytes Bytes of catalog records searches keep in \
         memory, by kind (128 MiB at most in all).\n\
         # TYPE kairos_search_catalog_memory_bytes gauge\n",
    );
    for c in counts {
        let _ = writeln!(
            out,
            "kairos_search_catalog_memory_bytes{{kind=\"{}\"}} {}",
            c.kind, c.bytes
        );
    }
    out
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The middleware: times every request and counts it under its route pattern (never the raw
/// path, whose ids would make one series per asset).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let result = next.call(req).await;
    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    if let Some(state) = state {
        state
            .metrics
            .record(&method, &route, status, started.elapsed().as_secs_f64());
    }
    result
}
