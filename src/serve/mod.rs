//! `yt8m serve`: bundles served over the Open Inference Protocol (KServe v2 / Triton) REST API,
//! with Triton's binary tensor extension (what `tritonclient` sends by default), dynamic
//! batching and Prometheus metrics.
//!
//! Shape of the server: axum on a tokio runtime parses and checks requests; each model has one
//! inference thread that owns the libtorch model. Requests queue as jobs; the thread takes the
//! first job, waits at most `max_delay` for more (up to `max_batch` videos), runs them as
//! `predict` does (length-sorted batches, `predict::probabilities`) and answers each job on
//! its own channel. The network threads never run the model. A job that would take the queue
//! past `max_queue` videos is refused at once with 503.
//!
//! Reference: ../shared/docs/open_inference_protocol.md (KServe's REST spec, Triton's
//! binary-data extension).

mod grpc;
mod grpc_listener;
pub mod http;
pub mod load;
pub mod tensor;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::bundle::Bundle;
use crate::data::{FeatureSpec, Video};
use crate::error::{Error, Result};
use crate::kinds::{DeviceSpec, Precision};
use tensor::{BadRequest, DataType, Input, OUTPUTS};

/// What to serve and how.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// (name, bundle directory) per model.
    pub models: Vec<(String, PathBuf)>,
    pub http: SocketAddr,
    /// The gRPC API's address, if served.
    pub grpc: Option<SocketAddr>,
    pub device: DeviceSpec,
    pub precision: Precision,
    /// Videos per model call.
    pub max_batch: usize,
    /// How long the first job of a batch waits for others.
    pub max_delay: Duration,
    /// Videos waiting per model beyond which requests are refused (503).
    pub max_queue: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// A request not answered within this is answered 504.
    pub timeout: Duration,
    /// libtorch threads for a model call that may take every core, when more than the usual
    /// count: every call of a model heavy enough that the network's share of the machine is
    /// negligible ([`HEAVY_SECONDS_PER_FRAME`]), as far as other processes leave cores free
    /// ([`crate::threads::FreeCores`]). None: always the usual count (`--threads` or
    /// YT8M_THREADS given). Either way the models of one server share that many threads: a
    /// call claims its threads and gives them back after (at least one each).
    pub all_threads: Option<usize>,
    /// Connection cap and deadlines of the REST and gRPC listeners, and the shutdown grace
    /// period.
    pub limits: http::ConnLimits,
}

/// A histogram with fixed upper bounds, Prometheus style.
struct Hist {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Hist {
    fn new(bounds: &'static [f64]) -> Self {
        Hist {
            bounds,
            counts: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
    fn observe(&self, x: f64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if x <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros
            .fetch_add((x * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
    fn render(&self, out: &mut String, name: &str, labels: &str) {
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

struct Stats {
    /// Requests by answer status.
    requests: Mutex<BTreeMap<u16, u64>>,
    videos: AtomicU64,
    latency: Hist,
    batch: Hist,
    /// libtorch threads of the latest model call.
    call_threads: AtomicUsize,
    /// [`FrameCost`]'s estimate (f64 bits; 0 before the first call).
    frame_cost_bits: AtomicU64,
}

impl Stats {
    fn new() -> Self {
        Stats {
            requests: Mutex::new(BTreeMap::new()),
            videos: AtomicU64::new(0),
            latency: Hist::new(SECONDS),
            batch: Hist::new(VIDEOS),
            call_threads: AtomicUsize::new(0),
            frame_cost_bits: AtomicU64::new(0),
        }
    }
    fn answered(&self, code: StatusCode, t0: Instant) {
        *self
            .requests
            .lock()
            .unwrap()
            .entry(code.as_u16())
            .or_default() += 1;
        self.latency.observe(t0.elapsed().as_secs_f64());
    }
}

/// A unit of work: one request's videos and where to send their probabilities.
struct Job {
    videos: Vec<Video>,
    reply: tokio::sync::oneshot::Sender<std::result::Result<Vec<Vec<f32>>, String>>,
}

pub(crate) struct Model {
    name: String,
    spec: FeatureSpec,
    num_classes: usize,
    names: Vec<String>,
    meta: Value,
    jobs: Mutex<Option<Sender<Job>>>,
    /// Videos queued or being computed.
    waiting: AtomicUsize,
    /// HTTP infer requests whose head has arrived but which are not yet admitted (body still
    /// arriving, being parsed): the batcher waits for them (up to --max-delay-ms) rather than
    /// run a small batch they would just miss.
    arriving: AtomicUsize,
    stats: Stats,
}

/// One HTTP infer request in [`Model::arriving`] until it is admitted (or refused, or fails,
/// or its client goes away and the request is dropped).
pub(crate) struct Arrival {
    model: Arc<Model>,
    done: AtomicBool,
}

impl Arrival {
    fn new(m: &Arc<Model>) -> Self {
        m.arriving.fetch_add(1, Ordering::SeqCst);
        Arrival {
            model: m.clone(),
            done: AtomicBool::new(false),
        }
    }
    /// The request reached admission: no longer arriving.
    fn settle(&self) {
        if !self.done.swap(true, Ordering::SeqCst) {
            self.model.arriving.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Arrival {
    fn drop(&mut self) {
        self.settle();
    }
}

/// Layer of the infer routes: a request counts as arriving from its head on (the route
/// matched, the body not yet read: under load a 176 KB body takes a while, and the batch it
/// should join would otherwise run without it). The model is the handler's own lookup; an
/// unknown one is left to the handler's 404.
async fn count_arrivals(
    State(s): State<Arc<Server>>,
    Path(params): Path<BTreeMap<String, String>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Ok(m) = model_of(&s, &params) {
        req.extensions_mut().insert(Arc::new(Arrival::new(&m)));
    }
    next.run(req).await
}

pub(crate) struct Server {
    models: BTreeMap<String, Arc<Model>>,
    opts: ServeOptions,
    stopping: AtomicBool,
}

/// Answers with the protocol's error body `{"error": "..."}`.
fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (
        code,
        [("content-type", "application/json")],
        json!({ "error": msg.into() }).to_string(),
    )
        .into_response()
}

fn json_ok(v: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// A model call's fixed cost in padded frame slots, for cutting merged requests by length
/// ([`crate::predict::call_size`]).
const CALL_OVERHEAD_FRAMES: usize = 256;

/// Model calls are padded to a multiple of this many frames, so that their shapes come from
/// a small set and libtorch's oneDNN primitives (one per LSTM shape, see
/// [`crate::threads::SERVER_ONEDNN_CACHE`]) are found in its cache instead of rebuilt.
const FRAME_MULTIPLE: usize = 8;

/// Model work per frame (core-seconds, a call's frames plus 256 frame slots of fixed cost for
/// each of its calls) from which every call of the model takes all cores. The network side costs in
/// the order of a microsecond per frame (a frame is 1152 request bytes to receive, parse and
/// copy); at 100 µs per frame it needs about 1 % of a core beside a busy model, so keeping a
/// whole core for it only idles that core. Measured side by side on 2 cores, 64 clients: the
/// full-size AttentionLSTM (about 1.1 ms per frame on one thread) went from 6.5 to 9.3 videos/s
/// (0.63 → 0.96 of offline batch 64) with every call on both cores, while the demo bundle
/// (about 7 µs per frame) fell from 934 to 733: its calls are thousands of microsecond-sized
/// ops, each stalled when a network thread takes a core from an OpenMP worker. The two sit
/// a hundred times apart, this threshold in between.
pub const HEAVY_SECONDS_PER_FRAME: f64 = 100e-6;

/// Running estimate of a model's cost per frame, from its own calls.
#[derive(Debug, Default, Clone, Copy)]
struct FrameCost {
    /// Core-seconds per frame (exponential average over calls); None before the first call.
    per_frame: Option<f64>,
}

impl FrameCost {
    /// Records a call of `seconds` on `threads` libtorch threads over `frames` frames in
    /// `calls` model calls.
    fn observe(&mut self, seconds: f64, threads: usize, frames: usize, calls: usize) {
        let slots = (frames + calls * CALL_OVERHEAD_FRAMES).max(1) as f64;
        let x = seconds * threads.max(1) as f64 / slots;
        self.per_frame = Some(match self.per_frame {
            None => x,
            Some(m) => 0.8 * m + 0.2 * x,
        });
    }

    /// Whether every call should take all cores.
    fn heavy(&self) -> bool {
        self.per_frame.is_some_and(|c| c >= HEAVY_SECONDS_PER_FRAME)
    }
}

/// libtorch threads shared by the models of one server. Each model call claims its threads
/// and gives them back after, so models computing at once never run more OpenMP threads
/// together than the budget (oversubscribed OpenMP was measured 40x slower here): with two
/// heavy models, each taking every core when alone, the second gets what the first leaves.
/// Measured with two full-size AttentionLSTMs at 8 clients each on 2 cores, three alternating
/// runs: 9.5 / 8.8 / 9.7 videos/s in all with both on 2 threads, 7.9 / 9.9 / 9.2 with the
/// budget — no difference for their large GEMMs; the budget keeps the rule the project was
/// measured by (never more OpenMP threads than cores) for models of small ops.
#[derive(Debug)]
struct CoreBudget {
    total: usize,
    claimed: AtomicUsize,
}

impl CoreBudget {
    fn new(total: usize) -> Self {
        CoreBudget {
            total: total.max(1),
            claimed: AtomicUsize::new(0),
        }
    }

    /// Claims up to `want` threads, at least one, from what other calls leave.
    fn claim(&self, want: usize) -> Claim<'_> {
        let mut cur = self.claimed.load(Ordering::SeqCst);
        loop {
            let n = want.min(self.total.saturating_sub(cur)).max(1);
            match self
                .claimed
                .compare_exchange(cur, cur + n, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Claim { budget: self, n },
                Err(now) => cur = now,
            }
        }
    }
}

/// Threads claimed from a [`CoreBudget`], given back on drop.
struct Claim<'a> {
    budget: &'a CoreBudget,
    n: usize,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.budget.claimed.fetch_sub(self.n, Ordering::SeqCst);
    }
}

/// How a model thread batches and how many threads its calls may take.
struct Batching {
    max_batch: usize,
    max_delay: Duration,
    /// See [`ServeOptions::all_threads`].
    all_threads: Option<usize>,
    /// Shared by every model of the server.
    cores: Arc<CoreBudget>,
    /// The cores other processes leave free, when the thread count is ours to choose
    /// (`all_threads` is Some): no call takes more threads than that.
    free: Option<Arc<crate::threads::FreeCores>>,
}

/// The inference thread of one model.
fn model_thread(b: Bundle, rx: Receiver<Job>, model: Arc<Model>, opts: Batching) {
    let Batching {
        max_batch,
        max_delay,
        all_threads,
        cores,
        free,
    } = opts;
    // OpenMP's thread count is per thread: a new thread starts from the default (all cores),
    // not from what the main thread set, and the GEMMs would then spin a second core that the
    // network threads need (measured: 6-video model calls at 64 clients, the requests not
    // even admitted). Apply the configured count here.
    let by_frames = b.model.arch.cost_follows_frames();
    // The server's own budget (main set it), not the adaptive default of batch commands.
    let usual = crate::threads::configure_torch_threads_or(crate::threads::available_cores());
    tch::set_num_threads(usual as i32);
    let mut current = usual;
    let mut cost = FrameCost::default();
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut n = jobs[0].videos.len();
        let deadline = Instant::now() + max_delay;
        // Take what is queued; wait (up to max_delay) only while other requests are on their
        // way: more videos admitted than this batch holds, or requests whose bodies are still
        // arriving. A lone request runs at once, so batching costs no latency at low load;
        // under load, the requests that arrive within the delay join.
        while n < max_batch {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.videos.len();
                    jobs.push(j);
                    continue;
                }
                Err(_)
                    if model.waiting.load(Ordering::SeqCst) <= n
                        && model.arriving.load(Ordering::SeqCst) == 0 =>
                {
                    break;
                }
                Err(_) => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(j) => {
                    n += j.videos.len();
                    jobs.push(j);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // A heavy model takes every core for every call (HEAVY_SECONDS_PER_FRAME: the network
        // threads' share is negligible beside its calls; full-size AttentionLSTM at one client:
        // p99 2.1x offline batch 1 on one thread, 0.62x on all). A light one keeps the usual
        // count even for a lone request: measured on the demo bundle (about 7 µs per frame),
        // 2 cores, one client, two runs each: 586 / 566 videos/s (p50 1.76 ms) with lone
        // requests on both cores, 733 / 690 (p50 1.39 ms) on one; and giving every call that
        // empties the queue all cores had halved its throughput at 8 and 64 clients
        // (886 → 429, 1025 → 615 videos/s), the network threads starved in between.
        let want = match all_threads {
            Some(all) if cost.heavy() && all > usual => all,
            _ => usual,
        };
        // Never more threads than other processes leave cores for: OpenMP threads sharing a
        // core with a busy neighbour arrive late at every barrier and the whole call waits
        // (issue #27: 2 threads beside one busy process ran 0.43x of one thread).
        let want = match &free {
            Some(f) => want.min(f.now()).max(1),
            None => want,
        };
        let claim = cores.claim(want);
        let want = claim.n;
        if want != current {
            tch::set_num_threads(want as i32);
            current = want;
        }
        model.stats.call_threads.store(current, Ordering::Relaxed);
        let counts: Vec<usize> = jobs.iter().map(|j| j.videos.len()).collect();
        let mut videos = Vec::with_capacity(n);
        let mut replies = Vec::with_capacity(jobs.len());
        for j in jobs {
            videos.extend(j.videos);
            replies.push(j.reply);
        }
        model.stats.batch.observe(n as f64);
        // A panic in libtorch must not take the model down: the batch fails, the thread goes on.
        // Merged requests of very different lengths run as a few length-sorted calls when
        // that pads less than it costs in calls (a call's fixed cost taken as 256 frame slots).
        let call = if by_frames {
            let lengths: Vec<usize> = videos.iter().map(|v| v.num_frames).collect();
            crate::predict::call_size(&lengths, CALL_OVERHEAD_FRAMES)
        } else {
            max_batch
        };
        let call = call.clamp(1, max_batch);
        let started = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::predict::probabilities_padded(&b, &videos, call, FRAME_MULTIPLE)
        }));
        if matches!(r, Ok(Ok(_))) {
            let frames = videos.iter().map(|v| v.num_frames.max(1)).sum();
            cost.observe(
                started.elapsed().as_secs_f64(),
                current,
                frames,
                n.div_ceil(call),
            );
            let bits = cost.per_frame.unwrap_or(0.0).to_bits();
            model.stats.frame_cost_bits.store(bits, Ordering::Relaxed);
        }
        drop(claim);
        model.waiting.fetch_sub(n, Ordering::SeqCst);
        match r {
            Ok(Ok(mut probs)) => {
                for (reply, k) in replies.into_iter().zip(counts) {
                    let rest = probs.split_off(k);
                    let _ = reply.send(Ok(std::mem::replace(&mut probs, rest)));
                }
            }
            Ok(Err(e)) => {
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
            Err(p) => {
                let what = crate::error::panic_text(p.as_ref());
                tracing::error!("model '{}': inference failed: {what}", model.name);
                for reply in replies {
                    let _ = reply.send(Err(format!("inference failed: {what}")));
                }
            }
        }
    }
}

/// Reads the JSON header and binary tensors of an infer request.
fn parse_request(
    headers: &HeaderMap,
    body: &[u8],
    max_elements: usize,
) -> std::result::Result<(Value, Vec<Input>), BadRequest> {
    let json_len = match headers.get("inference-header-content-length") {
        None => body.len(),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|&n| n <= body.len())
            .ok_or_else(|| {
                BadRequest(format!(
                    "Inference-Header-Content-Length {:?} is not a byte count within the body ({} bytes)",
                    v,
                    body.len()
                ))
            })?,
    };
    let req: Value = serde_json::from_slice(&body[..json_len])
        .map_err(|e| BadRequest(format!("request is not valid JSON: {e}")))?;
    let mut bin = &body[json_len..];
    let inputs = req
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| BadRequest("request has no \"inputs\" list".into()))?;
    let mut out = Vec::with_capacity(inputs.len());
    for (k, i) in inputs.iter().enumerate() {
        let name = i
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| BadRequest(format!("inputs[{k}] has no \"name\"")))?;
        let dt = DataType::parse(
            i.get("datatype")
                .and_then(Value::as_str)
                .ok_or_else(|| BadRequest(format!("input '{name}' has no \"datatype\"")))?,
        )?;
        let shape: Vec<usize> = i
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| BadRequest(format!("input '{name}' has no \"shape\"")))?
            .iter()
            .map(|d| {
                d.as_u64().map(|d| d as usize).ok_or_else(|| {
                    BadRequest(format!(
                        "input '{name}': shape entries must be non-negative integers"
                    ))
                })
            })
            .collect::<std::result::Result<_, _>>()?;
        let n = tensor::numel(&shape, max_elements)?;
        let values = match i.get("parameters").and_then(|p| p.get("binary_data_size")) {
            Some(size) => {
                let size = size
                    .as_u64()
                    .map(|s| s as usize)
                    .filter(|&s| s <= bin.len())
                    .ok_or_else(|| {
                        BadRequest(format!(
                            "input '{name}': binary_data_size {size} exceeds the {} bytes left in the body",
                            bin.len()
                        ))
                    })?;
                let (raw, rest) = bin.split_at(size);
                bin = rest;
                tensor::from_raw(dt, raw, n, name)?
            }
            None => {
                let data = i.get("data").ok_or_else(|| {
                    BadRequest(format!(
                        "input '{name}' has neither \"data\" nor binary_data_size"
                    ))
                })?;
                let v = tensor::from_json(dt, data, n, name)?;
                if name == "tfrecord" {
                    tensor::base64_records(v)?
                } else {
                    v
                }
            }
        };
        if out.iter().any(|o: &Input| o.name == name) {
            return Err(BadRequest(format!("input '{name}' is given twice")));
        }
        out.push(Input {
            name: name.to_string(),
            shape,
            values,
        });
    }
    if !bin.is_empty() {
        return Err(BadRequest(format!(
            "{} bytes after the last binary input: the binary_data_size values do not add up",
            bin.len()
        )));
    }
    Ok((req, out))
}

async fn infer(
    State(s): State<Arc<Server>>,
    Path(params): Path<BTreeMap<String, String>>,
    arrival: Option<axum::Extension<Arc<Arrival>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let t0 = Instant::now();
    let m = match model_of(&s, &params) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let arrival = arrival.map(|a| a.0);
    let r = infer_model(&s, &m, &headers, &body, arrival.as_deref()).await;
    let resp = match r {
        Ok(resp) => resp,
        Err((code, msg)) => error(code, msg),
    };
    m.stats.answered(resp.status(), t0);
    resp
}

/// A request in protocol-neutral form (from REST JSON/binary or from gRPC).
pub(crate) struct Call {
    pub inputs: Vec<Input>,
    /// The `top_k` parameter, if given (checked here).
    pub top_k: Option<i64>,
    /// Requested outputs with "binary" each; None = all four.
    pub outputs: Option<Vec<(String, bool)>>,
    /// Default for outputs without their own choice (`binary_data_output`).
    pub all_binary: bool,
}

type CallError = (StatusCode, String);

/// Checks a call, queues its videos and waits for the answer: the outputs and, per output,
/// whether it goes back as raw bytes.
pub(crate) async fn run_call(
    s: &Server,
    m: &Arc<Model>,
    call: Call,
    arrival: Option<&Arrival>,
) -> std::result::Result<Vec<(tensor::Output, bool)>, CallError> {
    let bad = |e: BadRequest| (StatusCode::BAD_REQUEST, e.0);
    let videos = tensor::videos(&call.inputs, &m.spec).map_err(bad)?;
    let top_k = match call.top_k {
        None => 20.min(m.num_classes),
        Some(k) if k >= 1 && (k as u64) <= m.num_classes as u64 => k as usize,
        Some(k) => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "parameter top_k {k} must be an integer in 1..={}",
                    m.num_classes
                ),
            ));
        }
    };
    let mut wanted: Vec<(&'static str, bool)> = Vec::new();
    match &call.outputs {
        None => wanted.extend(OUTPUTS.iter().map(|o| (*o, call.all_binary))),
        Some(outs) => {
            for (n, binary) in outs {
                let Some(known) = OUTPUTS.iter().find(|k| *k == n) else {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        format!("unknown output '{n}'; outputs: {OUTPUTS:?}"),
                    ));
                };
                wanted.push((known, *binary));
            }
        }
    }
    let n = videos.len();
    if n > s.opts.max_queue {
        // Never admissible, however long the client waits: say so instead of "retry later".
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request holds {n} videos; model '{}' queues at most {} (--max-queue): split it",
                m.name, s.opts.max_queue
            ),
        ));
    }
    // Admission: refuse at once beyond the queue bound, never wait for room.
    let before = m.waiting.fetch_add(n, Ordering::SeqCst);
    if let Some(a) = arrival {
        a.settle();
    }
    if before + n > s.opts.max_queue || s.stopping.load(Ordering::SeqCst) {
        m.waiting.fetch_sub(n, Ordering::SeqCst);
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "model '{}' has {before} videos waiting (limit {}); retry later",
                m.name, s.opts.max_queue
            ),
        ));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sent = m
        .jobs
        .lock()
        .unwrap()
        .as_ref()
        .map(|j| j.send(Job { videos, reply: tx }).is_ok())
        .unwrap_or(false);
    if !sent {
        m.waiting.fetch_sub(n, Ordering::SeqCst);
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down".into(),
        ));
    }
    let probs = match tokio::time::timeout(s.opts.timeout, rx).await {
        Err(_) => {
            return Err((
                StatusCode::GATEWAY_TIMEOUT,
                format!("no answer within {} ms", s.opts.timeout.as_millis()),
            ));
        }
        Ok(Err(_)) => {
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "the model thread stopped".into(),
            ));
        }
        Ok(Ok(Err(e))) => return Err((StatusCode::INTERNAL_SERVER_ERROR, e)),
        Ok(Ok(Ok(p))) => p,
    };
    m.stats.videos.fetch_add(n as u64, Ordering::Relaxed);
    let names: Vec<&str> = wanted.iter().map(|(n, _)| *n).collect();
    let outs = tensor::outputs(&probs, top_k, &m.names, &names);
    Ok(outs
        .into_iter()
        .zip(wanted)
        .map(|(o, (_, b))| (o, b))
        .collect())
}

async fn infer_model(
    s: &Server,
    m: &Arc<Model>,
    headers: &HeaderMap,
    body: &[u8],
    arrival: Option<&Arrival>,
) -> std::result::Result<Response, CallError> {
    let bad = |e: BadRequest| (StatusCode::BAD_REQUEST, e.0);
    let (req, inputs) = parse_request(headers, body, s.opts.max_body_bytes).map_err(bad)?;
    let params = req.get("parameters");
    let top_k = match params.and_then(|p| p.get("top_k")) {
        None => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                format!("parameter top_k {v} must be an integer"),
            )
        })?),
    };
    let all_binary = params
        .and_then(|p| p.get("binary_data_output"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let outputs = req.get("outputs").and_then(Value::as_array).map(|outs| {
        outs.iter()
            .map(|o| {
                let n = o
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let binary = o
                    .get("parameters")
                    .and_then(|p| p.get("binary_data"))
                    .and_then(Value::as_bool)
                    .unwrap_or(all_binary);
                (n, binary)
            })
            .collect()
    });
    let outs = run_call(
        s,
        m,
        Call {
            inputs,
            top_k,
            outputs,
            all_binary,
        },
        arrival,
    )
    .await?;
    let mut json_outs = Vec::new();
    let mut raw = Vec::new();
    for (o, binary) in &outs {
        let mut j = json!({"name": o.name, "datatype": o.datatype.name(), "shape": o.shape});
        if *binary {
            let r = o.raw();
            j["parameters"] = json!({"binary_data_size": r.len()});
            raw.extend(r);
        } else {
            j["data"] = o.json_data();
        }
        json_outs.push(j);
    }
    let mut head = json!({"model_name": m.name, "model_version": "1", "outputs": json_outs});
    if let Some(id) = req.get("id") {
        head["id"] = id.clone();
    }
    let head = head.to_string().into_bytes();
    let mut resp_headers = HeaderMap::new();
    if raw.is_empty() {
        resp_headers.insert("content-type", HeaderValue::from_static("application/json"));
        return Ok((StatusCode::OK, resp_headers, head).into_response());
    }
    resp_headers.insert(
        "inference-header-content-length",
        HeaderValue::from(head.len()),
    );
    resp_headers.insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    let mut bodyv = head;
    bodyv.extend(raw);
    Ok((StatusCode::OK, resp_headers, bodyv).into_response())
}

impl Server {
    /// The model `name` at `version` (only "1" exists; empty = latest), for REST and gRPC alike.
    pub(crate) fn model(
        &self,
        name: &str,
        version: &str,
    ) -> std::result::Result<Arc<Model>, CallError> {
        if !version.is_empty() && version != "1" {
            return Err((
                StatusCode::NOT_FOUND,
                format!("model '{name}' has only version 1"),
            ));
        }
        self.models.get(name).cloned().ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!(
                    "unknown model '{name}'; served: {:?}",
                    self.models.keys().collect::<Vec<_>>()
                ),
            )
        })
    }
}

/// The model a REST path names (`{name}`, optionally `{version}`).
fn model_of(
    s: &Server,
    params: &BTreeMap<String, String>,
) -> std::result::Result<Arc<Model>, Response> {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    s.model(get("name"), get("version"))
        .map_err(|(code, msg)| error(code, msg))
}

async fn model_metadata(
    State(s): State<Arc<Server>>,
    Path(params): Path<BTreeMap<String, String>>,
) -> Response {
    match model_of(&s, &params) {
        Ok(m) => json_ok(m.meta.clone()),
        Err(r) => r,
    }
}

async fn model_ready(
    State(s): State<Arc<Server>>,
    Path(params): Path<BTreeMap<String, String>>,
) -> Response {
    match model_of(&s, &params) {
        Ok(_) if !s.stopping.load(Ordering::SeqCst) => StatusCode::OK.into_response(),
        Ok(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Err(r) => r,
    }
}

async fn server_metadata() -> Response {
    json_ok(json!({
        "name": "yt8m",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
}

async fn ready(State(s): State<Arc<Server>>) -> StatusCode {
    if s.stopping.load(Ordering::SeqCst) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn metrics(State(s): State<Arc<Server>>) -> Response {
    let mut out = String::new();
    out.push_str("# HELP yt8m_requests_total Inference requests answered, by model and HTTP status.\n# TYPE yt8m_requests_total counter\n");
    for m in s.models.values() {
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
        for m in s.models.values() {
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
    for m in s.models.values() {
        m.stats.batch.render(
            &mut out,
            "yt8m_batch_videos",
            &format!("model=\"{}\"", m.name),
        );
    }
    out.push_str("# HELP yt8m_request_seconds Time from request to answer.\n# TYPE yt8m_request_seconds histogram\n");
    for m in s.models.values() {
        m.stats.latency.render(
            &mut out,
            "yt8m_request_seconds",
            &format!("model=\"{}\"", m.name),
        );
    }
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        out,
    )
        .into_response()
}

/// Waits for SIGTERM or SIGINT, then marks the server as stopping and tells every listener.
async fn shutdown_signal(s: Arc<Server>, stop: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("stopping: no new requests; finishing those in flight");
    s.stopping.store(true, Ordering::SeqCst);
    let _ = stop.send(true);
}

async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Loads the bundles, serves until SIGTERM / SIGINT, then finishes in-flight requests.
pub fn serve(opts: ServeOptions) -> Result<()> {
    if opts.max_batch == 0 || opts.max_queue == 0 {
        return Err(Error::Invalid(
            "--max-batch and --max-queue must be at least 1".into(),
        ));
    }
    let device = opts.device.resolve()?;
    let mut models = BTreeMap::new();
    let mut threads = Vec::new();
    // The server's own budget (main set it), not the adaptive default of batch commands.
    let usual = crate::threads::configure_torch_threads_or(crate::threads::available_cores());
    let cores = Arc::new(CoreBudget::new(
        opts.all_threads.unwrap_or(usual).max(usual),
    ));
    // Calls follow the cores other processes leave free unless the count was fixed
    // (`--threads`, YT8M_THREADS) or the model runs on a GPU.
    let free = (opts.all_threads.is_some() && device == tch::Device::Cpu)
        .then(crate::threads::FreeCores::new)
        .flatten()
        .map(Arc::new);
    for (name, dir) in &opts.models {
        if models.contains_key(name) {
            return Err(Error::Invalid(format!(
                "two models named '{name}'\n  hint: give each --model its own --name"
            )));
        }
        // bundle::load checks every file's sha256 and every tensor's shape.
        let mut b = crate::bundle::load(dir, device)?;
        let (kind, why) = b.model.use_precision(opts.precision);
        let spec = b.config.feature_spec();
        let c = b.manifest.num_classes;
        tracing::info!(
            "model '{name}': {} from {} ({} classes, {}-level, {} parameters, {:?} on {}: {why})",
            b.model.arch.name(),
            dir.display(),
            c,
            spec.level,
            b.model.num_parameters(),
            kind,
            crate::runtime::device_name(device)
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let m = Arc::new(Model {
            name: name.clone(),
            meta: tensor::metadata(name, &spec, c),
            spec,
            num_classes: c,
            names: b.names.clone(),
            jobs: Mutex::new(Some(tx)),
            waiting: AtomicUsize::new(0),
            arriving: AtomicUsize::new(0),
            stats: Stats::new(),
        });
        let mm = m.clone();
        let batching = Batching {
            max_batch: opts.max_batch,
            max_delay: opts.max_delay,
            all_threads: opts.all_threads,
            cores: cores.clone(),
            free: free.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("model-{name}"))
                .spawn(move || model_thread(b, rx, mm, batching))
                .map_err(|e| Error::Invalid(format!("cannot start the model thread: {e}")))?,
        );
        models.insert(name.clone(), m);
    }
    let server = Arc::new(Server {
        models,
        opts: opts.clone(),
        stopping: AtomicBool::new(false),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::data::available_cores().clamp(1, 4))
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the network runtime: {e}")))?;
    let s2 = server.clone();
    let r: Result<()> = rt.block_on(async move {
        let app = axum::Router::new()
            .route("/v2/models/{name}/infer", post(infer))
            .route("/v2/models/{name}/versions/{version}/infer", post(infer))
            .route_layer(axum::middleware::from_fn_with_state(
                (s2.opts.limits.body_timeout, s2.opts.max_body_bytes),
                http::body_in_time,
            ))
            .route_layer(axum::middleware::from_fn_with_state(
                s2.clone(),
                count_arrivals,
            ))
            .route("/v2/health/live", get(|| async { StatusCode::OK }))
            .route("/v2/health/ready", get(ready))
            .route("/v2", get(server_metadata))
            .route("/v2/models/{name}", get(model_metadata))
            .route("/v2/models/{name}/versions/{version}", get(model_metadata))
            .route("/v2/models/{name}/ready", get(model_ready))
            .route("/v2/models/{name}/versions/{version}/ready", get(model_ready))
            .route("/metrics", get(metrics))
            .layer(DefaultBodyLimit::max(s2.opts.max_body_bytes))
            .with_state(s2.clone());
        let bind = |addr: SocketAddr, flag: &'static str| async move {
            tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                Error::Invalid(format!(
                    "cannot listen on {addr}: {e}\n  hint: choose another {flag} or stop what holds it"
                ))
            })
        };
        let listener = bind(s2.opts.http, "--http-port").await?;
        let addr = listener.local_addr().map_err(|e| Error::Invalid(e.to_string()))?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(shutdown_signal(s2.clone(), stop_tx));
        let grpc = match s2.opts.grpc {
            None => None,
            Some(g) => {
                let l = bind(g, "--grpc-port").await?;
                let gaddr = l.local_addr().map_err(|e| Error::Invalid(e.to_string()))?;
                let limit = s2.opts.max_body_bytes;
                let svc = grpc::GrpcInferenceServiceServer::new(grpc::Service(s2.clone()))
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(usize::MAX);
                let rx = stop_rx.clone();
                let limits = s2.opts.limits;
                let incoming = grpc_listener::incoming(l, limits, rx.clone());
                let ping = grpc_listener::keepalive_interval(&limits);
                let task = tokio::spawn(async move {
                    tonic::transport::Server::builder()
                        .http2_keepalive_interval(Some(ping))
                        .http2_keepalive_timeout(Some(limits.header_timeout))
                        .add_service(svc)
                        .serve_with_incoming_shutdown(incoming, stopped(rx))
                        .await
                });
                Some((gaddr, task))
            }
        };
        tracing::info!(
            "serving {} model(s) over the Open Inference Protocol at http://{addr}/v2{} (metrics: /metrics); max batch {}, max delay {} ms, queue bound {} videos",
            s2.models.len(),
            grpc.as_ref()
                .map(|(g, _)| format!(" and grpc://{g}"))
                .unwrap_or_default(),
            s2.opts.max_batch,
            s2.opts.max_delay.as_millis(),
            s2.opts.max_queue
        );
        // One line a minute: what each model did.
        let s3 = s2.clone();
        tokio::spawn(async move {
            let mut last: BTreeMap<String, u64> = BTreeMap::new();
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                for m in s3.models.values() {
                    let v = m.stats.videos.load(Ordering::Relaxed);
                    let prev = last.insert(m.name.clone(), v).unwrap_or(0);
                    tracing::info!(
                        "model '{}': {:.1} videos/s over the last minute, {} queued",
                        m.name,
                        (v - prev) as f64 / 60.0,
                        m.waiting.load(Ordering::SeqCst)
                    );
                }
            }
        });
        let limits = s2.opts.limits;
        http::serve(listener, app, limits, stop_rx).await;
        if let Some((_, task)) = grpc {
            // tonic waits for its connections to close: bounded by the same grace period.
            match tokio::time::timeout(limits.grace, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => return Err(Error::Invalid(format!("gRPC server error: {e}"))),
                Ok(Err(e)) => return Err(Error::Invalid(format!("gRPC server task: {e}"))),
                Err(_) => tracing::warn!(
                    "gRPC connections still open after the {:.0} s grace period: dropped",
                    limits.grace.as_secs_f64()
                ),
            }
        }
        Ok(())
    });
    // In-flight requests are answered; now let the model threads drain and stop.
    for m in server.models.values() {
        m.jobs.lock().unwrap().take();
    }
    for t in threads {
        let _ = t.join();
    }
    r?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_calls_share_the_core_budget() {
        let b = CoreBudget::new(4);
        let first = b.claim(4);
        assert_eq!(first.n, 4);
        // A second model computing meanwhile gets one thread, not four more.
        let second = b.claim(3);
        assert_eq!(second.n, 1);
        drop(first);
        let third = b.claim(4);
        assert_eq!(third.n, 3, "what the second leaves");
        drop(second);
        drop(third);
        assert_eq!(
            b.claimed.load(Ordering::SeqCst),
            0,
            "every claim given back"
        );
        assert_eq!(b.claim(2).n, 2);
    }

    #[test]
    fn frame_cost_tells_heavy_models_from_light_ones() {
        let mut c = FrameCost::default();
        assert!(!c.heavy(), "no call yet: keep the network's core");
        // Demo bundle, batch 64 on one thread: ~60 ms for 64 videos of 150 frames.
        c.observe(0.060, 1, 64 * 150, 1);
        assert!(!c.heavy(), "{:?}", c.per_frame);
        // A lone 10-frame video on two threads: its call overhead is not per-frame work.
        c.observe(0.001, 2, 10, 1);
        assert!(!c.heavy(), "{:?}", c.per_frame);
        // Full-size AttentionLSTM, batch 64 on one thread: ~11 s.
        let mut f = FrameCost::default();
        f.observe(11.0, 1, 64 * 150, 1);
        assert!(f.heavy(), "{:?}", f.per_frame);
        // One fast call does not flip the average at once.
        f.observe(0.001, 1, 150, 1);
        assert!(f.heavy(), "{:?}", f.per_frame);
    }
}
