//! The server's Prometheus metrics (`GET /metrics`): per-model request counts by status,
//! videos, queue depth, arriving requests, threads and measured cost of the latest calls, and
//! histograms of batch sizes and request latency.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use axum::http::StatusCode;

use super::Model;

/// A histogram with fixed upper bounds, Prometheus style.
pub(super) struct Hist {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Hist {
    pub(super) fn new(bounds: &'static [f64]) -> Self {
        Hist {
            bounds,
            counts: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
    pub(super) fn observe(&self, x: f64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if x <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros
            .fetch_add((x * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            out.push_str(&format!(
                "{name}_bucket{{{labels},le=\"{b}\"}} {}\n",
                c.load(Ordering::Relaxed)
            ));
        }
        let n = self.count.load(Ordering::Relaxed);
        out.push_str(&format!("{name}_bucket{{{labels},le=\"+Inf\"}} {n}\n"));
        out.push_str(&format!(
            "{name}_sum{{{labels}}} {}\n",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!("{name}_count{{{labels}}} {n}\n"));
    }
}

const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const VIDEOS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

pub(super) struct Stats {
    /// Requests by answer status.
    pub(super) requests: Mutex<BTreeMap<u16, u64>>,
    pub(super) videos: AtomicU64,
    pub(super) latency: Hist,
    pub(super) batch: Hist,
    /// libtorch threads of the latest model call.
    pub(super) call_threads: AtomicUsize,
    /// [`super::batcher::FrameCost`]'s estimate (f64 bits; 0 before the first call).
    pub(super) frame_cost_bits: AtomicU64,
}

impl Stats {
    pub(super) fn new() -> Self {
        Stats {
            requests: Mutex::new(BTreeMap::new()),
            videos: AtomicU64::new(0),
            latency: Hist::new(SECONDS),
            batch: Hist::new(VIDEOS),
            call_threads: AtomicUsize::new(0),
            frame_cost_bits: AtomicU64::new(0),
        }
    }
    pub(super) fn answered(&self, code: StatusCode, t0: Instant) {
        *self
            .requests
            .lock()
            .unwrap()
            .entry(code.as_u16())
            .or_default() += 1;
        self.latency.observe(t0.elapsed().as_secs_f64());
    }
}

/// The Prometheus text of every model's metrics.
pub(super) fn render<'a>(models: impl Iterator<Item = &'a Model> + Clone) -> String {
    let mut out = String::new();
    out.push_str("# HELP yt8m_requests_total Inference requests answered, by model and HTTP status.\n# TYPE yt8m_requests_total counter\n");
    for m in models.clone() {
        for (code, n) in m.stats.requests.lock().unwrap().iter() {
            out.push_str(&format!(
                "yt8m_requests_total{{model=\"{}\",code=\"{code}\"}} {n}\n",
                m.name
            ));
        }
    }
    // One value per model.
    let mut per_model = |name: &str, kind: &str, help: &str, value: &dyn Fn(&Model) -> f64| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for m in models.clone() {
            out.push_str(&format!("{name}{{model=\"{}\"}} {}\n", m.name, value(m)));
        }
    };
    per_model("yt8m_videos_total", "counter", "Videos predicted.", &|m| {
        m.stats.videos.load(Ordering::Relaxed) as f64
    });
    per_model(
        "yt8m_queue_videos",
        "gauge",
        "Videos queued or being computed.",
        &|m| m.waiting.load(Ordering::SeqCst) as f64,
    );
    per_model(
        "yt8m_arriving_requests",
        "gauge",
        "Infer requests whose body is still arriving.",
        &|m| m.arriving.load(Ordering::SeqCst) as f64,
    );
    per_model(
        "yt8m_call_threads",
        "gauge",
        "libtorch threads of the latest model call (every free core for heavy models).",
        &|m| m.stats.call_threads.load(Ordering::Relaxed) as f64,
    );
    per_model(
        "yt8m_frame_cost_seconds",
        "gauge",
        "Measured model work per frame in core-seconds; from 1e-4 every call takes all cores.",
        &|m| f64::from_bits(m.stats.frame_cost_bits.load(Ordering::Relaxed)),
    );
    out.push_str(
        "# HELP yt8m_batch_videos Videos per model call.\n# TYPE yt8m_batch_videos histogram\n",
    );
    for m in models.clone() {
        m.stats.batch.render(
            &mut out,
            "yt8m_batch_videos",
            &format!("model=\"{}\"", m.name),
        );
    }
    out.push_str("# HELP yt8m_request_seconds Time from request to answer.\n# TYPE yt8m_request_seconds histogram\n");
    for m in models.clone() {
        m.stats.latency.render(
            &mut out,
            "yt8m_request_seconds",
            &format!("model=\"{}\"", m.name),
        );
    }
    out
}
