//! `yt8m serve`: bundles served over the Open Inference Protocol (KServe v2 / Triton) REST API,
//! with Triton's binary tensor extension (what `tritonclient` sends by default), dynamic
//! batching and Prometheus metrics.
//!
//! Shape of the server, one file per concern: axum on a tokio runtime parses and checks
//! requests (here: routes, handlers, admission; `tensor.rs`: the protocol's tensors) over a
//! bounded accept loop (`http.rs`; gRPC: `grpc.rs` on `grpc_listener.rs`); each model has
//! one inference thread that owns the libtorch model (`batcher.rs`). Requests queue as jobs;
//! the thread takes the first job, waits at most `max_delay` for more (up to `max_batch`
//! videos), runs them as `predict` does (length-sorted batches, `predict::probabilities`) and
//! answers each job on its own channel. The network threads never run the model. A job that
//! would take the queue past `max_queue` videos is refused at once with 503. `metrics.rs`
//! counts and renders `/metrics`. (`yt8m bench serve`'s load generator is on the binary's side:
//! src/bench_serve.rs.)
//!
//! Reference: ../shared/docs/open_inference_protocol.md (KServe's REST spec, Triton's
//! binary-data extension).

mod batcher;
pub mod engine;
mod grpc;
mod grpc_listener;
pub mod http;
pub mod kserve;
mod metrics;
pub mod tensor;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::data::FeatureSpec;
use crate::error::{Error, ErrorKind, Result};
use crate::kinds::{DeviceSpec, Precision};
use batcher::{Batching, CoreBudget, Job, model_thread};
use metrics::Stats;
use tensor::{BadRequest, Input, OUTPUTS};

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
    /// The extractor files' directory: with it, models take a `video` input (video files'
    /// bytes), extracted as `yt8m extract` does.
    pub extractor: Option<PathBuf>,
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
    /// For `video` inputs; one extraction at a time (it uses the cores the model threads use).
    extractor: Option<Arc<Mutex<crate::extract::Extractor>>>,
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
    /// Requested outputs, each binary or not; None = all four.
    pub outputs: Option<Vec<kserve::RequestedOutput>>,
    /// Default for outputs without their own choice (`binary_data_output`).
    pub all_binary: bool,
}

impl Call {
    /// The classes per top-k output (`top_k`, default 20) and the outputs to send back, each
    /// binary or JSON; a bad `top_k` or an unknown output is the client's error.
    pub(crate) fn plan(
        &self,
        num_classes: usize,
    ) -> std::result::Result<(usize, Vec<(&'static str, bool)>), BadRequest> {
        let top_k = match self.top_k {
            None => 20.min(num_classes),
            Some(k) if k >= 1 && (k as u64) <= num_classes as u64 => k as usize,
            Some(k) => {
                return Err(BadRequest(format!(
                    "parameter top_k {k} must be an integer in 1..={num_classes}"
                )));
            }
        };
        let wanted = match &self.outputs {
            None => OUTPUTS.iter().map(|o| (*o, self.all_binary)).collect(),
            Some(outs) => outs
                .iter()
                .map(|o| match OUTPUTS.iter().find(|k| **k == o.name) {
                    Some(known) => Ok((*known, o.binary)),
                    None => Err(BadRequest(format!(
                        "unknown output '{}'; outputs: {OUTPUTS:?}",
                        o.name
                    ))),
                })
                .collect::<std::result::Result<_, _>>()?,
        };
        Ok((top_k, wanted))
    }
}

impl From<kserve::InferRequest> for Call {
    fn from(r: kserve::InferRequest) -> Call {
        Call {
            inputs: r.inputs,
            top_k: r.top_k,
            outputs: r.outputs,
            all_binary: r.all_binary,
        }
    }
}

type CallError = (StatusCode, String);

/// The videos of a call: decoded from its feature tensors, or extracted from its `video`
/// files (on a blocking thread; needs `--extractor`).
async fn call_videos(
    s: &Server,
    m: &Arc<Model>,
    call: &Call,
) -> std::result::Result<Vec<crate::data::Video>, CallError> {
    let bad = |e: BadRequest| (StatusCode::BAD_REQUEST, e.0);
    Ok(if call.inputs.iter().any(|i| i.name == "video") {
        let Some(ex) = &s.extractor else {
            return Err((
                StatusCode::BAD_REQUEST,
                "this server takes no 'video' input: start it with --extractor DIR (the \
                 official extractor files, see yt8m extract --help)"
                    .into(),
            ));
        };
        let (ex, spec) = (ex.clone(), m.spec.clone());
        let inputs = call.inputs.clone();
        tokio::task::spawn_blocking(move || {
            let ex = ex.lock().unwrap_or_else(|e| e.into_inner());
            tensor::video_files(&inputs, &spec, &ex)
        })
        .await
        .map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("extraction failed: {e}"),
            )
        })?
        .map_err(|e| {
            // The client's video (undecodable, a bad shape) or the server's failure (FFmpeg
            // missing, no room to stage the file).
            let status = match e.kind() {
                ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            (status, e.to_string())
        })?
    } else {
        tensor::videos(&call.inputs, &m.spec).map_err(bad)?
    })
}

/// Checks a call, queues its videos and waits for the answer: the outputs and, per output,
/// whether it goes back as raw bytes.
pub(crate) async fn run_call(
    s: &Server,
    m: &Arc<Model>,
    call: Call,
    arrival: Option<&Arrival>,
) -> std::result::Result<Vec<(tensor::Output, bool)>, CallError> {
    let bad = |e: BadRequest| (StatusCode::BAD_REQUEST, e.0);
    let videos = call_videos(s, m, &call).await?;
    let (top_k, wanted) = call.plan(m.num_classes).map_err(bad)?;
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
    let mut req = kserve::parse(headers, body, s.opts.max_body_bytes)
        .map_err(|e: BadRequest| (StatusCode::BAD_REQUEST, e.0))?;
    let id = req.id.take();
    let outs = run_call(s, m, Call::from(req), arrival).await?;
    let (json_len, body) = kserve::response(&m.name, id.as_ref(), &outs);
    let mut headers = HeaderMap::new();
    if json_len == body.len() {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
    } else {
        headers.insert(
            "inference-header-content-length",
            HeaderValue::from(json_len),
        );
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    Ok((StatusCode::OK, headers, body).into_response())
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
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        metrics::render(s.models.values().map(|m| m.as_ref())),
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
    let (models, threads) = load_models(&opts, device)?;
    let extractor = match &opts.extractor {
        Some(dir) => {
            let ex =
                crate::extract::Extractor::load_with(dir, 8, crate::extract::AudioSource::Auto)
                    .map_err(|e| Error::of_kind(e.kind(), format!("--extractor: {e}")))?;
            tracing::info!(
                "video inputs: extracted with the files in {}",
                dir.display()
            );
            Some(Arc::new(Mutex::new(ex)))
        }
        None => None,
    };
    let server = Arc::new(Server {
        models,
        opts: opts.clone(),
        stopping: AtomicBool::new(false),
        extractor,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::data::available_cores().clamp(1, 4))
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the network runtime: {e}")))?;
    let r = rt.block_on(listen(server.clone()));
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

/// Each `--model` loaded (sha256 and shapes checked) with its batching thread started.
#[allow(clippy::type_complexity)]
fn load_models(
    opts: &ServeOptions,
    device: tch::Device,
) -> Result<(
    BTreeMap<String, Arc<Model>>,
    Vec<std::thread::JoinHandle<()>>,
)> {
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
            meta: tensor::metadata(name, &spec, c, opts.extractor.is_some()),
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
                .map_err(|e| Error::Internal(format!("cannot start the model thread: {e}")))?,
        );
        models.insert(name.clone(), m);
    }
    Ok((models, threads))
}

/// The REST routes: inference behind the arrival count and the body deadline, then health,
/// metadata and metrics.
fn router(s: &Arc<Server>) -> axum::Router {
    axum::Router::new()
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer))
        .route_layer(axum::middleware::from_fn_with_state(
            (s.opts.limits.body_timeout, s.opts.max_body_bytes),
            http::body_in_time,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            s.clone(),
            count_arrivals,
        ))
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready),
        )
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(s.opts.max_body_bytes))
        .with_state(s.clone())
}

async fn bind(addr: SocketAddr, flag: &'static str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::Invalid(format!(
            "cannot listen on {addr}: {e}\n  hint: choose another {flag} or stop what holds it"
        ))
    })
}

type GrpcTask = tokio::task::JoinHandle<std::result::Result<(), tonic::transport::Error>>;

/// The gRPC service on `--grpc-port`, if asked for: its address and task.
async fn start_grpc(
    s: &Arc<Server>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Option<(SocketAddr, GrpcTask)>> {
    let Some(g) = s.opts.grpc else {
        return Ok(None);
    };
    let l = bind(g, "--grpc-port").await?;
    let gaddr = l.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
    let limit = s.opts.max_body_bytes;
    let svc = grpc::GrpcInferenceServiceServer::new(grpc::Service(s.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX);
    let rx = stop.clone();
    let limits = s.opts.limits;
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
    Ok(Some((gaddr, task)))
}

/// One line a minute: what each model did.
fn log_every_minute(s: Arc<Server>) {
    tokio::spawn(async move {
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            for m in s.models.values() {
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
}

/// Listens on the REST port (and gRPC's) until SIGTERM / SIGINT, then lets in-flight
/// requests finish within the grace period.
async fn listen(s: Arc<Server>) -> Result<()> {
    let app = router(&s);
    let listener = bind(s.opts.http, "--http-port").await?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(shutdown_signal(s.clone(), stop_tx));
    let grpc = start_grpc(&s, &stop_rx).await?;
    tracing::info!(
        "serving {} model(s) over the Open Inference Protocol at http://{addr}/v2{} (metrics: /metrics); max batch {}, max delay {} ms, queue bound {} videos",
        s.models.len(),
        grpc.as_ref()
            .map(|(g, _)| format!(" and grpc://{g}"))
            .unwrap_or_default(),
        s.opts.max_batch,
        s.opts.max_delay.as_millis(),
        s.opts.max_queue
    );
    log_every_minute(s.clone());
    let limits = s.opts.limits;
    http::serve(listener, app, limits, stop_rx).await;
    if let Some((_, task)) = grpc {
        // tonic waits for its connections to close: bounded by the same grace period.
        match tokio::time::timeout(limits.grace, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(Error::Internal(format!("gRPC server error: {e}"))),
            Ok(Err(e)) => return Err(Error::Internal(format!("gRPC server task: {e}"))),
            Err(_) => tracing::warn!(
                "gRPC connections still open after the {:.0} s grace period: dropped",
                limits.grace.as_secs_f64()
            ),
        }
    }
    Ok(())
}
