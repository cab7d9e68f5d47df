//! Counters and latency histograms for `/metrics`, in Prometheus' text format. Model threads
//! record into one shared `Metrics`; gauges (queue, running sequences, KV blocks) are read
//! from the loaded models when the page is asked for.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// A Prometheus histogram of durations.
#[derive(Default)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative; summed when rendered).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub requests_failed: AtomicU64,
    pub requests_rejected: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub prompt_tokens_cached: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub time_to_first_token: Histogram,
    pub inter_token_latency: Histogram,
}

/// What the loaded models hold now, summed over them.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Gauges {
    pub models_loaded: u64,
    pub queued: u64,
    pub running: u64,
    pub kv_blocks_used: u64,
    pub kv_blocks_free: u64,
    pub prefix_hits: u64,
    pub prefix_lookups: u64,
}

fn counter(out: &mut String, name: &str, help: &str, v: &AtomicU64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
}

fn gauge(out: &mut String, name: &str, help: &str, v: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

impl Metrics {
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        counter(&mut out, "kiln_requests_total", "Generation requests finished.", &self.requests);
        counter(
            &mut out,
            "kiln_requests_failed_total",
            "Generation requests that ended in an error.",
            &self.requests_failed,
        );
        counter(
            &mut out,
            "kiln_requests_rejected_total",
            "Requests refused because the queue was full.",
            &self.requests_rejected,
        );
        counter(&mut out, "kiln_prompt_tokens_total", "Prompt tokens of finished requests.", &self.prompt_tokens);
        counter(
            &mut out,
            "kiln_prompt_tokens_cached_total",
            "Prompt tokens found in the prefix cache instead of computed.",
            &self.prompt_tokens_cached,
        );
        counter(&mut out, "kiln_generated_tokens_total", "Tokens generated.", &self.generated_tokens);
        self.time_to_first_token.render(
            &mut out,
            "kiln_time_to_first_token_seconds",
            "From the request reaching its model to its first generated text.",
        );
        self.inter_token_latency.render(
            &mut out,
            "kiln_inter_token_latency_seconds",
            "Between successive pieces of generated text of one request.",
        );
        gauge(&mut out, "kiln_models_loaded", "Models loaded.", g.models_loaded as f64);
        gauge(&mut out, "kiln_queue_depth", "Requests waiting to run.", g.queued as f64);
        gauge(&mut out, "kiln_running_sequences", "Sequences in the running batch.", g.running as f64);
        gauge(&mut out, "kiln_kv_blocks_used", "KV cache blocks held by sequences.", g.kv_blocks_used as f64);
        gauge(
            &mut out,
            "kiln_kv_blocks_free",
            "KV cache blocks free or holding evictable cached prefixes.",
            g.kv_blocks_free as f64,
        );
        let rate = if g.prefix_lookups == 0 { 0.0 } else { g.prefix_hits as f64 / g.prefix_lookups as f64 };
        gauge(&mut out, "kiln_prefix_cache_hit_rate", "Blocks found in the prefix cache per block looked up.", rate);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.requests.fetch_add(3, Ordering::Relaxed);
        m.time_to_first_token.observe(Duration::from_millis(30));
        m.time_to_first_token.observe(Duration::from_millis(300));
        m.time_to_first_token.observe(Duration::from_secs(500));
        let g = Gauges { running: 2, prefix_hits: 1, prefix_lookups: 4, ..Gauges::default() };
        let text = m.render(&g);
        assert!(text.contains("# TYPE kiln_requests_total counter\nkiln_requests_total 3\n"), "{text}");
        assert!(text.contains("kiln_time_to_first_token_seconds_bucket{le=\"0.025\"} 0\n"));
        assert!(text.contains("kiln_time_to_first_token_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("kiln_time_to_first_token_seconds_bucket{le=\"0.5\"} 2\n"));
        // Beyond the last bound: only in +Inf.
        assert!(text.contains("kiln_time_to_first_token_seconds_bucket{le=\"120\"} 2\n"));
        assert!(text.contains("kiln_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("kiln_time_to_first_token_seconds_count 3\n"));
        assert!(text.contains("kiln_time_to_first_token_seconds_sum 500.33\n"));
        assert!(text.contains("kiln_running_sequences 2\n"));
        assert!(text.contains("kiln_prefix_cache_hit_rate 0.25\n"));
        // Every sample line is `name value` or `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
