//! `yt8m bench serve`: drives a `yt8m serve` process over loopback with a bounded number of
//! concurrent clients for a bounded time and reports videos/s, frames/s and latency
//! percentiles, beside the same bundle run offline (`predict::probabilities`) on the same
//! videos in the same run; optionally the same load against another server speaking the same
//! binary protocol (scripts/onnx_server.py: the bundle's ONNX graph in onnxruntime behind
//! Python's http.server, the do-it-yourself alternative). On the binary's side (issue #28): it
//! re-executes this program as the server and prints tables, which no library user needs.
//!
//! The clients are keep-alive HTTP/1.1 connections sending pre-encoded requests (Triton's
//! binary format, one video each), all multiplexed on one thread as wrk does, so the load
//! generator costs little of the machine the server also runs on. (It used one thread per
//! client before: at 64 clients those 64 threads took the cores from the server's network
//! threads, requests reached the batcher a few at a time, and the served throughput measured
//! the scheduler more than the server.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use yt8m::data::{Video, VideoFeatures};
use yt8m::error::{Error, Result};

/// What to measure.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub bundle: PathBuf,
    pub concurrency: Vec<usize>,
    pub seconds: f64,
    /// Distinct videos sent (round robin), with frames like the synthetic data's.
    pub videos: usize,
    pub max_batch: usize,
    pub max_delay_ms: u64,
    /// Python with onnxruntime + numpy to serve the bundle's ONNX graph the DIY way.
    pub onnx_python: Option<PathBuf>,
    pub onnx_script: PathBuf,
    /// Where the server and the offline run put the model.
    pub device: yt8m::kinds::DeviceSpec,
}

/// One load level's numbers.
#[derive(Debug, Clone)]
pub struct Level {
    pub what: String,
    pub concurrency: usize,
    pub requests: usize,
    pub ok: usize,
    pub refused: usize,
    pub other_errors: usize,
    pub videos_per_s: f64,
    pub frames_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    /// Videos per model call during this level (the server's /metrics; NaN where unknown).
    pub mean_batch: f64,
}

/// `yt8m_batch_videos_sum` and `_count` from the server's /metrics.
fn batch_metrics(port: u16) -> Option<(f64, f64)> {
    let mut m = String::new();
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    s.read_to_string(&mut m).ok()?;
    let val = |k: &str| -> Option<f64> {
        m.lines()
            .find(|l| l.starts_with(k))?
            .split_whitespace()
            .last()?
            .parse()
            .ok()
    };
    Some((
        val("yt8m_batch_videos_sum")?,
        val("yt8m_batch_videos_count")?,
    ))
}

/// A level driven against the server on `port`, with its mean model call.
fn drive_measured(
    port: u16,
    path: &str,
    reqs: &Arc<Vec<(Vec<u8>, usize, usize)>>,
    c: usize,
    seconds: f64,
    what: &str,
) -> Level {
    let before = batch_metrics(port);
    let mut l = drive(port, path, reqs, c, seconds, what);
    if let (Some(a), Some(b)) = (before, batch_metrics(port)) {
        if b.1 > a.1 {
            l.mean_batch = (b.0 - a.0) / (b.1 - a.1);
        }
    }
    l
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A frame-level video as an OIP binary request body and its JSON-header length.
fn encode(v: &Video) -> (Vec<u8>, usize) {
    let VideoFeatures::Frames(m) = &v.features else {
        unreachable!("synthetic frame-level videos")
    };
    let t = v.num_frames;
    let head = format!(
        r#"{{"inputs":[{{"name":"rgb","datatype":"UINT8","shape":[1,{t},1024],"parameters":{{"binary_data_size":{}}}}},{{"name":"audio","datatype":"UINT8","shape":[1,{t},128],"parameters":{{"binary_data_size":{}}}}},{{"name":"lengths","datatype":"INT64","shape":[1],"parameters":{{"binary_data_size":8}}}}],"outputs":[{{"name":"probabilities","parameters":{{"binary_data":true}}}}]}}"#,
        m[0].len(),
        m[1].len()
    );
    let mut body = head.clone().into_bytes();
    body.extend(&m[0]);
    body.extend(&m[1]);
    body.extend((t as i64).to_le_bytes());
    (body, head.len())
}

/// Sends one request on a keep-alive connection; returns the status.
async fn request(
    conn: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    head: &[u8],
    body: &[u8],
    sink: &mut Vec<u8>,
) -> std::io::Result<u16> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let s = conn.get_mut();
    s.write_all(head).await?;
    s.write_all(body).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    sink.resize(len, 0);
    conn.read_exact(sink).await?;
    Ok(code)
}

/// One client's counts.
#[derive(Default)]
struct Tally {
    lat: Vec<f64>,
    ok: usize,
    refused: usize,
    other: usize,
    frames: usize,
    videos: usize,
}

/// `c` clients for `seconds` against `port`: `c` keep-alive connections multiplexed on one
/// thread (as wrk does), so a load of 64 clients costs the shared machine one thread, not 64
/// that the scheduler would share the cores with against the server's own threads.
fn drive(
    port: u16,
    path: &str,
    reqs: &Arc<Vec<(Vec<u8>, usize, usize)>>,
    c: usize,
    seconds: f64,
    what: &str,
) -> Level {
    let t0 = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a one-thread runtime for the load generator");
    // Each request's HTTP head, written once rather than at every send.
    let heads: Arc<Vec<String>> = Arc::new(
        reqs.iter()
            .map(|(body, head_len, _)| {
                format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nInference-Header-Content-Length: {head_len}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
            })
            .collect(),
    );
    let tallies: Vec<Tally> = rt.block_on(async {
        let stop = Instant::now() + Duration::from_secs_f64(seconds);
        let tasks: Vec<_> = (0..c)
            .map(|w| tokio::spawn(client(port, reqs.clone(), heads.clone(), w, stop)))
            .collect();
        let mut out = Vec::with_capacity(c);
        for h in tasks {
            out.push(h.await.unwrap_or_default());
        }
        out
    });
    Level::of(what, c, tallies, t0.elapsed().as_secs_f64())
}

/// One keep-alive client until `stop`: request after request, cycling through every video
/// from its own offset `w`.
async fn client(
    port: u16,
    reqs: Arc<Vec<(Vec<u8>, usize, usize)>>,
    heads: Arc<Vec<String>>,
    w: usize,
    stop: Instant,
) -> Tally {
    let mut t = Tally::default();
    let connect = || async {
        let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.set_nodelay(true).ok()?;
        Some(tokio::io::BufReader::new(s))
    };
    let mut conn = connect().await;
    let mut sink = Vec::new();
    let mut i = w;
    while Instant::now() < stop {
        let (body, _, frames) = &reqs[i % reqs.len()];
        let head = &heads[i % reqs.len()];
        // Every client cycles through all the videos (from its own offset): with `i += c`
        // and as many videos as clients, each client sent one fixed video, and a server
        // answering short videos sooner was credited more videos/s than one serving every
        // length alike.
        i += 1;
        let Some(cn) = conn.as_mut() else {
            t.other += 1;
            break;
        };
        let t1 = Instant::now();
        let left = stop.saturating_duration_since(t1) + Duration::from_secs(30);
        match tokio::time::timeout(left, request(cn, head.as_bytes(), body, &mut sink)).await {
            Ok(Ok(200)) => {
                t.ok += 1;
                t.videos += 1;
                t.frames += frames;
                t.lat.push(t1.elapsed().as_secs_f64() * 1e3);
            }
            Ok(Ok(503)) => t.refused += 1,
            Ok(Ok(_)) => t.other += 1,
            Ok(Err(_)) | Err(_) => {
                t.other += 1;
                conn = connect().await;
            }
        }
    }
    t
}

impl Level {
    /// A load level from its clients' tallies over `secs` seconds.
    fn of(what: &str, concurrency: usize, tallies: Vec<Tally>, secs: f64) -> Level {
        let mut lat = Vec::new();
        let (mut ok, mut refused, mut other, mut frames, mut videos) = (0, 0, 0, 0, 0);
        for t in tallies {
            lat.extend(t.lat);
            ok += t.ok;
            refused += t.refused;
            other += t.other;
            frames += t.frames;
            videos += t.videos;
        }
        lat.sort_by(f64::total_cmp);
        Level {
            what: what.to_string(),
            concurrency,
            requests: ok + refused + other,
            ok,
            refused,
            other_errors: other,
            videos_per_s: videos as f64 / secs,
            frames_per_s: frames as f64 / secs,
            p50_ms: pct(&lat, 0.5),
            p90_ms: pct(&lat, 0.9),
            p99_ms: pct(&lat, 0.99),
            mean_batch: f64::NAN,
        }
    }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a process and waits for the line naming its port (`marker` followed by digits).
fn spawn_until_port(mut cmd: Command, marker: &str) -> Result<(Proc, u16)> {
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| Error::Invalid(format!("cannot start {cmd:?}: {e}")))?;
    let mut err = BufReader::new(child.stderr.take().expect("piped"));
    let proc = Proc(child);
    let mut line = String::new();
    loop {
        line.clear();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            return Err(Error::Invalid(format!("{cmd:?} exited before listening")));
        }
        if let Some(i) = line.find(marker) {
            let rest = &line[i + marker.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let port = rest[..end]
                .parse()
                .map_err(|_| Error::Invalid(format!("no port in: {line}")))?;
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
            });
            return Ok((proc, port));
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn device_arg(d: tch::Device) -> String {
    match d {
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

/// Runs the whole benchmark and returns the Markdown report.
pub fn run(o: &LoadOptions) -> Result<String> {
    let device = o.device.resolve()?;
    let b = yt8m::bundle::load(&o.bundle, device)?;
    if b.config.MODEL.level != yt8m::data::Level::Frame {
        return Err(Error::Invalid(
            "bench serve drives frame-level bundles".into(),
        ));
    }
    let work = Workload::new(o, &b)?;
    let offline = Offline::measure(o, &b, &work.videos)?;
    drop(b);
    let exe = std::env::current_exe().map_err(|e| Error::Invalid(e.to_string()))?;
    let served = Served::measure(o, &exe, device, &work.reqs)?;
    let (over, ready_after) = overload(o, &exe, device, &work.reqs)?;
    let diy = diy_levels(o, &work.reqs)?;
    Ok(report(
        o,
        device,
        &work,
        &offline,
        &served,
        &diy,
        &over,
        ready_after,
    ))
}

/// The videos every server gets: like the synthetic data's (1..=300 frames, learnable
/// patterns), decoded once, and each one's request body.
struct Workload {
    videos: Vec<Video>,
    /// Per video: the REST body, its JSON header's length, its frames.
    reqs: Arc<Vec<(Vec<u8>, usize, usize)>>,
    mean_frames: f64,
}

impl Workload {
    fn new(o: &LoadOptions, b: &yt8m::bundle::Bundle) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("yt8m-bench-serve-{}", std::process::id()));
        let synth = yt8m::data::synth::SynthConfig {
            num_videos: o.videos,
            num_shards: 1,
            seed: 5,
            max_frames: 300,
            num_classes: b.manifest.num_classes.min(20),
            ..Default::default()
        };
        let written = yt8m::data::synth::write_synthetic(&dir, &synth)?;
        let spec = b.config.feature_spec();
        let videos: Vec<Video> = yt8m::data::sources::videos(&written.files[0], &spec, false)?
            .collect::<std::result::Result<_, _>>()?;
        let _ = std::fs::remove_dir_all(&dir);
        let mean_frames =
            videos.iter().map(|v| v.num_frames).sum::<usize>() as f64 / videos.len() as f64;
        let reqs = Arc::new(
            videos
                .iter()
                .map(|v| {
                    let (body, head) = encode(v);
                    (body, head, v.num_frames)
                })
                .collect(),
        );
        Ok(Workload {
            videos,
            reqs,
            mean_frames,
        })
    }
}

/// The bundle run offline in this process on the same videos: batches of max_batch
/// (throughput, also on the server's thread count) and of 1 (latency).
struct Offline {
    videos_per_s: f64,
    /// With the server's libtorch threads when fewer than ours: (threads, videos/s).
    same_threads: Option<(usize, f64)>,
    /// Batch-1 latencies in ms, sorted.
    lat1: Vec<f64>,
}

impl Offline {
    fn measure(o: &LoadOptions, b: &yt8m::bundle::Bundle, videos: &[Video]) -> Result<Self> {
        let rate = || -> Result<f64> {
            let t = Instant::now();
            let mut done = 0;
            while t.elapsed().as_secs_f64() < o.seconds.min(10.0) {
                yt8m::predict::probabilities(b, videos, o.max_batch)?;
                done += videos.len();
            }
            Ok(done as f64 / t.elapsed().as_secs_f64())
        };
        let videos_per_s = rate()?;
        // The same with the server's libtorch threads (`yt8m serve` leaves a core to its
        // network threads, YT8M_THREADS overrides): what the server could reach at best here.
        let threads = tch::get_num_threads().max(1) as usize;
        let server_threads = std::env::var("YT8M_THREADS")
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(yt8m::data::available_cores().saturating_sub(1).max(1));
        let same_threads = if server_threads < threads {
            tch::set_num_threads(server_threads as i32);
            let r = rate();
            tch::set_num_threads(threads as i32);
            Some((server_threads, r?))
        } else {
            None
        };
        let mut lat1 = Vec::new();
        let t = Instant::now();
        let mut i = 0;
        while t.elapsed().as_secs_f64() < o.seconds.min(10.0) || lat1.len() < 20 {
            let t1 = Instant::now();
            yt8m::predict::probabilities(b, std::slice::from_ref(&videos[i % videos.len()]), 1)?;
            lat1.push(t1.elapsed().as_secs_f64() * 1e3);
            i += 1;
        }
        lat1.sort_by(f64::total_cmp);
        Ok(Offline {
            videos_per_s,
            same_threads,
            lat1,
        })
    }
}

/// `yt8m serve` of the bundle on a free loopback port, REST only, plus `extra`.
fn serve_command(
    o: &LoadOptions,
    exe: &std::path::Path,
    device: tch::Device,
    extra: &[String],
) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(["serve", "--model"]).arg(&o.bundle).args([
        "--name",
        "m",
        "--host",
        "127.0.0.1",
        "--http-port",
        "0",
        "--no-grpc",
    ]);
    cmd.arg("--device").arg(device_arg(device));
    cmd.args(extra);
    cmd
}

const INFER_PATH: &str = "/v2/models/m/infer";

/// `yt8m serve` at each concurrency level, then the heaviest once more (memory must not grow).
struct Served {
    levels: Vec<Level>,
    again: Level,
    /// Server RSS in KiB after the warm-up, after the levels, after the repeat.
    rss: (Option<u64>, Option<u64>, Option<u64>),
}

impl Served {
    fn measure(
        o: &LoadOptions,
        exe: &std::path::Path,
        device: tch::Device,
        reqs: &Arc<Vec<(Vec<u8>, usize, usize)>>,
    ) -> Result<Self> {
        let cmd = serve_command(
            o,
            exe,
            device,
            &[
                "--max-batch".into(),
                o.max_batch.to_string(),
                "--max-delay-ms".into(),
                o.max_delay_ms.to_string(),
            ],
        );
        let (server, port) = spawn_until_port(cmd, "http://127.0.0.1:")?;
        // Warm-up (allocator, thread pools), then the levels.
        let _ = drive(port, INFER_PATH, reqs, 2, 1.0, "warm-up");
        let rss0 = rss_kib(server.0.id());
        let mut levels = Vec::new();
        for &c in &o.concurrency {
            levels.push(drive_measured(
                port,
                INFER_PATH,
                reqs,
                c,
                o.seconds,
                "yt8m serve",
            ));
        }
        let rss1 = rss_kib(server.0.id());
        let top = o.concurrency.iter().copied().max().unwrap_or(1);
        let again = drive_measured(
            port,
            INFER_PATH,
            reqs,
            top,
            o.seconds,
            "yt8m serve (repeat)",
        );
        let rss2 = rss_kib(server.0.id());
        Ok(Served {
            levels,
            again,
            rss: (rss0, rss1, rss2),
        })
    }
}

/// A queue bound of 16 videos against 64 clients (4x): only 503s beyond it, and the server
/// ready afterwards.
fn overload(
    o: &LoadOptions,
    exe: &std::path::Path,
    device: tch::Device,
    reqs: &Arc<Vec<(Vec<u8>, usize, usize)>>,
) -> Result<(Level, bool)> {
    let cmd = serve_command(
        o,
        exe,
        device,
        &[
            "--max-batch".into(),
            "16".into(),
            "--max-queue".into(),
            "16".into(),
            "--max-delay-ms".into(),
            o.max_delay_ms.to_string(),
        ],
    );
    let (_server, port) = spawn_until_port(cmd, "http://127.0.0.1:")?;
    let over = drive(
        port,
        INFER_PATH,
        reqs,
        64,
        o.seconds.min(5.0),
        "overload (queue 16, 64 clients)",
    );
    let mut s =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| Error::Invalid(e.to_string()))?;
    let _ = s.write_all(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    Ok((over, r.starts_with("HTTP/1.1 200")))
}

/// The DIY alternative (onnxruntime behind Python's http.server) under the same load, when
/// a Python with onnxruntime was given.
fn diy_levels(o: &LoadOptions, reqs: &Arc<Vec<(Vec<u8>, usize, usize)>>) -> Result<Vec<Level>> {
    let Some(py) = &o.onnx_python else {
        return Ok(Vec::new());
    };
    let mut cmd = Command::new(py);
    cmd.arg(&o.onnx_script)
        .arg(o.bundle.join("model.onnx"))
        .args(["--port", "0"]);
    let (_proc, p) = spawn_until_port(cmd, "listening on 127.0.0.1:")?;
    let _ = drive(p, INFER_PATH, reqs, 2, 1.0, "warm-up");
    Ok(o.concurrency
        .iter()
        .map(|&c| {
            drive(
                p,
                INFER_PATH,
                reqs,
                c,
                o.seconds,
                "onnxruntime + Python http.server",
            )
        })
        .collect())
}

/// The tables and the ratios the serving goals are judged by.
#[allow(clippy::too_many_arguments)]
fn report(
    o: &LoadOptions,
    device: tch::Device,
    work: &Workload,
    offline: &Offline,
    served: &Served,
    diy: &[Level],
    over: &Level,
    ready_after: bool,
) -> String {
    let (mean_frames, offline_vps, lat1) = (work.mean_frames, offline.videos_per_s, &offline.lat1);
    let levels = &served.levels;
    let mut out = format!(
        "bench serve: {} on {} ({} videos, {:.0} frames each on average, one video per request), max batch {}, max delay {} ms, {} s per level, {} cores\n\n",
        o.bundle.display(),
        yt8m::runtime::device_name(device),
        work.videos.len(),
        mean_frames,
        o.max_batch,
        o.max_delay_ms,
        o.seconds,
        yt8m::data::available_cores()
    );
    out.push_str("| server | clients | requests | ok | 503 | other errors | videos/s | frames/s | p50 ms | p90 ms | p99 ms | videos / model call |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for l in levels.iter().chain(diy).chain(std::iter::once(over)) {
        out.push_str(&l.row());
    }
    out.push_str(&format!(
        "| offline predict, batch {} | - | - | - | - | - | {offline_vps:.1} | {:.0} | - | - | - | - |\n| offline predict, batch 1 | - | - | - | - | - | {:.1} | - | {:.2} | {:.2} | {:.2} | - |\n",
        o.max_batch,
        offline_vps * mean_frames,
        1e3 / pct(lat1, 0.5),
        pct(lat1, 0.5),
        pct(lat1, 0.9),
        pct(lat1, 0.99),
    ));
    if let Some((server_threads, v)) = offline.same_threads {
        out.push_str(&format!(
            "| offline predict, batch {}, {server_threads} libtorch thread(s) as the server | - | - | - | - | - | {v:.1} | {:.0} | - | - | - | - |\n",
            o.max_batch,
            v * mean_frames,
        ));
    }
    out.push('\n');
    out.push_str(&ratios(o, levels, diy, offline));
    out.push_str(&format!(
        "overload: {} ok, {} answered 503, {} other errors; ready afterwards: {ready_after}\n",
        over.ok, over.refused, over.other_errors
    ));
    let top = served.again.concurrency;
    let total: usize = levels.iter().map(|l| l.requests).sum::<usize>() + served.again.requests;
    if let (Some(a), Some(z), Some(y)) = served.rss {
        out.push_str(&format!(
            "server memory (RSS) after warm-up {:.1} MB, after the levels {:.1} MB, after {} more requests at {top} clients {:.1} MB ({total} requests in all)\n",
            a as f64 / 1024.0,
            z as f64 / 1024.0,
            served.again.requests,
            y as f64 / 1024.0
        ));
    }
    out
}

/// The report's ratios: served at the top level against offline batches (and against the
/// server's own thread count, and onnxruntime behind Python where it ran), and the 1-client
/// p99 against offline batch 1.
fn ratios(o: &LoadOptions, levels: &[Level], diy: &[Level], offline: &Offline) -> String {
    let (offline_vps, lat1) = (offline.videos_per_s, &offline.lat1);
    let mut out = String::new();
    if let Some(top) = levels.iter().max_by_key(|l| l.concurrency) {
        out.push_str(&format!(
            "served at {} clients / offline batch {}: {:.2}\n",
            top.concurrency,
            o.max_batch,
            top.videos_per_s / offline_vps
        ));
        if let Some((server_threads, v)) = offline.same_threads {
            out.push_str(&format!(
                "served at {} clients / offline batch {} on the server's {server_threads} libtorch thread(s): {:.2}\n",
                top.concurrency,
                o.max_batch,
                top.videos_per_s / v
            ));
        }
        if let Some(d) = diy.iter().find(|d| d.concurrency == top.concurrency) {
            out.push_str(&format!(
                "yt8m serve / onnxruntime+Python at {} clients: {:.2}x\n",
                top.concurrency,
                top.videos_per_s / d.videos_per_s
            ));
        }
    }
    if let Some(one) = levels.iter().find(|l| l.concurrency == 1) {
        out.push_str(&format!(
            "p99 at 1 client / offline batch-1 p99: {:.2}\n",
            one.p99_ms / pct(lat1, 0.99)
        ));
    }
    out
}

impl Level {
    /// The level's row of the report's table.
    fn row(&self) -> String {
        let call = if self.mean_batch.is_nan() {
            "-".to_string()
        } else {
            format!("{:.1}", self.mean_batch)
        };
        format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {call} |\n",
            self.what,
            self.concurrency,
            self.requests,
            self.ok,
            self.refused,
            self.other_errors,
            self.videos_per_s,
            self.frames_per_s,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms
        )
    }
}
