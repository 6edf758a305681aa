//! Request metrics for `/metrics`: counts and latency histograms by route
//! template, method and status (never the path, which carries customers'
//! numbers), recorded by [`crate::request_context`] when the app has an
//! [`HttpMetrics`] in its data.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One route, method and status: its requests and their latencies.
#[derive(Debug, Default)]
struct Series {
    /// Requests per bucket: `buckets[i]` counts those at most `BUCKETS[i]`
    /// (not cumulative; summed when rendered).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

type Key = (String, String, u16);

/// The requests served so far, shared by every worker of the server.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    series: RwLock<HashMap<Key, Arc<Series>>>,
}

impl HttpMetrics {
    /// Counts one request of `route` (its template, or `(no route)`).
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let series = self.series_for(route, method, status);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            series.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        series.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        series.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn series_for(&self, route: &str, method: &str, status: u16) -> Arc<Series> {
        let key = (route.to_owned(), method.to_owned(), status);
        // A poisoned lock only means a panic elsewhere: the counts stay usable.
        if let Some(s) = self
            .series
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            return s.clone();
        }
        self.series
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone()
    }

    /// Appends the requests in Prometheus' text format:
    /// `maveraa_http_requests_total` and the histogram
    /// `maveraa_http_request_duration_seconds`.
    pub fn render(&self, out: &mut String) {
        let series = self
            .series
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut keys: Vec<&Key> = series.keys().collect();
        keys.sort();
        out.push_str("# HELP maveraa_http_requests_total Requests answered, by route template, method and status.\n");
        out.push_str("# TYPE maveraa_http_requests_total counter\n");
        for key in &keys {
            let s = &series[*key];
            let _ = writeln!(
                out,
                "maveraa_http_requests_total{{{}}} {}",
                labels(key),
                s.count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP maveraa_http_request_duration_seconds Time to answer, by route template, method and status.\n");
        out.push_str("# TYPE maveraa_http_request_duration_seconds histogram\n");
        for key in &keys {
            let s = &series[*key];
            let labels = labels(key);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += s.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "maveraa_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = s.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "maveraa_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let sum = s.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "maveraa_http_request_duration_seconds_sum{{{labels}}} {sum}"
            );
            let _ = writeln!(
                out,
                "maveraa_http_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
    }
}

/// `route="...",method="...",status="..."`, values escaped as Prometheus
/// requires.
fn labels((route, method, status): &Key) -> String {
    format!(
        "route=\"{}\",method=\"{}\",status=\"{status}\"",
        escape(route),
        escape(method)
    )
}

/// A label value: backslash, quote and line feed escaped.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_render_as_counters_and_cumulative_histograms() {
        let m = HttpMetrics::default();
        m.observe(
            "/api/public/contacts",
            "GET",
            200,
            Duration::from_micros(700),
        );
        m.observe(
            "/api/public/contacts",
            "GET",
            200,
            Duration::from_millis(30),
        );
        m.observe("(no route)", "GET", 404, Duration::from_secs(20));
        let mut out = String::new();
        m.render(&mut out);
        let contacts = "route=\"/api/public/contacts\",method=\"GET\",status=\"200\"";
        for line in [
            format!("maveraa_http_requests_total{{{contacts}}} 2"),
            format!("maveraa_http_request_duration_seconds_bucket{{{contacts},le=\"0.001\"}} 1"),
            format!("maveraa_http_request_duration_seconds_bucket{{{contacts},le=\"0.025\"}} 1"),
            format!("maveraa_http_request_duration_seconds_bucket{{{contacts},le=\"0.05\"}} 2"),
            format!("maveraa_http_request_duration_seconds_bucket{{{contacts},le=\"+Inf\"}} 2"),
            format!("maveraa_http_request_duration_seconds_count{{{contacts}}} 2"),
            // Past the last bound: only in +Inf.
            "maveraa_http_request_duration_seconds_bucket{route=\"(no route)\",method=\"GET\",status=\"404\",le=\"10\"} 0".to_owned(),
            "maveraa_http_request_duration_seconds_bucket{route=\"(no route)\",method=\"GET\",status=\"404\",le=\"+Inf\"} 1".to_owned(),
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line}\n{out}");
        }
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
