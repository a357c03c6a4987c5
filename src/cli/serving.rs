//! `predict`, `serve` and the Python package's `engine`: a bundle answering videos.

use crate::stdout_failed;
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;
use yt8m::config::DeviceSpec;
use yt8m::kinds::Precision;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  yt8m predict --model bundles/demo data/test0000.tfrecord\n  yt8m predict --model bundles/full video.pkl --score softmax --top-k 1 --format paddle\n  yt8m predict --model bundles/full 'frames/*.tfrecord' --format kaggle > submission.csv\n  yt8m predict --model bundles/full clip.npy --format jsonl\n  yt8m predict --model bundles/full clip.mp4   # a video: extracted first (yt8m extract)\n  yt8m predict --model bundles/full --segments 'validate*' --format kaggle-segments --out seg.csv\n\n.npy inputs hold [frames, 1152] (rgb then audio columns), uint8 quantized or float."
)]
pub(crate) struct PredictArgs {
    /// Bundle directory from `yt8m export`.
    #[arg(long)]
    model: PathBuf,
    /// TFRecord shards, PaddleVideo .pkl files, .npy arrays, directories, globs or .list files;
    /// or video files (.mp4, .mkv, .webm, ...), whose features are extracted first.
    #[arg(required = true)]
    inputs: Vec<std::ffi::OsString>,
    /// For video inputs: the extractor files' directory (see `yt8m extract --help`)
    /// [default: $YT8M_EXTRACTOR_DIR, else ~/yt8m].
    #[arg(long, value_name = "DIR")]
    extractor: Option<PathBuf>,
    /// For video inputs: audio features from VGGish, zeros, or auto (VGGish when its files
    /// are in the extractor directory).
    #[arg(long, value_enum, default_value_t = yt8m::extract::AudioSource::Auto)]
    audio: yt8m::extract::AudioSource,
    /// For video inputs: zero audio, as the official extractor writes (= --audio zeros).
    #[arg(long, conflicts_with = "audio")]
    no_audio: bool,
    /// Classes printed per video, best first.
    #[arg(long, default_value_t = 20)]
    top_k: usize,
    #[arg(long, value_enum, default_value_t = yt8m::predict::Format::Table)]
    format: yt8m::predict::Format,
    /// sigmoid (what the model is trained for), softmax, or logits. Default: sigmoid; softmax
    /// with --format paddle (PaddleVideo's tools/predict.py).
    #[arg(long, value_enum)]
    score: Option<yt8m::predict::ScoreFn>,
    /// Also print each video's true labels (table, jsonl, paddle) when its record has them.
    #[arg(long)]
    show_labels: bool,
    /// Videos per forward pass (larger is faster, up to memory); segments per forward pass
    /// with --segments. Default: 64 videos, 1024 segments.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Videos are read in windows of this many batches and sorted by length before batching,
    /// so little padding is computed; output keeps input order. 1 = no reordering across batches.
    #[arg(long, default_value_t = yt8m::predict::DEFAULT_BUCKET_WINDOW)]
    bucket_window: usize,
    /// cpu, cuda, cuda:N or auto (cuda when available).
    #[arg(long, default_value = "auto")]
    device: DeviceSpec,
    /// Compute type: fp32 (exact), bf16 (2–3.6x faster on CPUs with AMX / avx512_bf16 and on
    /// GPUs; probabilities within ~5e-3), auto (bf16 where it is fast). `yt8m info` shows
    /// what auto picks here.
    #[arg(long, value_enum, default_value = "fp32")]
    precision: Precision,
    /// Count and report corrupt TFRecord records instead of stopping at the first.
    #[arg(long)]
    skip_corrupt: bool,
    /// Write here instead of stdout (needed for --format npz).
    #[arg(long = "out", alias = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// 2019 segment task: score every --segment-length-frame segment of each video (the
    /// starter's recipe: the model run on the segment's frames alone); rows are segments with
    /// ids `video:start`. Use --format kaggle-segments for the Kaggle submission.
    #[arg(long)]
    segments: bool,
    /// Frames per segment (5 = the 2019 task's 5 seconds).
    #[arg(long, default_value_t = yt8m::segments::SEGMENT_LENGTH, requires = "segments")]
    segment_length: usize,
    /// Rank only these classes: a file with one id per line (non-integer lines such as a
    /// header are skipped), or `2019` for the 1,000 rated classes of the 2019 segment data
    /// (the starter's segment_label_ids.csv, built in).
    #[arg(long, value_name = "FILE|2019", requires = "segments")]
    segment_classes: Option<PathBuf>,
    /// --format kaggle-segments: segments kept per class (Kaggle's cap, the starter's
    /// --segment_max_pred).
    #[arg(long, default_value_t = yt8m::segments::DEFAULT_MAX_PER_CLASS, requires = "segments")]
    max_per_class: usize,
}

#[derive(Args)]
#[command(
    after_help = "Each bundle is served under its directory name (or --name, one per --model, in order) \
                  at /v2/models/NAME: metadata, ready, infer (JSON or Triton's binary tensors, as tritonclient \
                  sends them). Frame-level models take rgb UINT8 [-1,-1,1024], audio UINT8 [-1,-1,128] and \
                  lengths INT64 [-1] (FP32 frames too), or tfrecord BYTES [-1] (serialized records as in the \
                  shards); video-level models mean_rgb FP32 [-1,1024] and mean_audio FP32 [-1,128], or \
                  tfrecord. Outputs: probabilities, top_k_classes, top_k_scores, top_k_labels (parameter \
                  top_k, default 20). Concurrent requests are batched (--max-batch, --max-delay-ms); beyond \
                  --max-queue waiting videos a request gets 503 at once. /metrics is Prometheus text. \
                  SIGTERM or Ctrl-C: stop accepting, answer what is in flight, exit 0.\n\n\
                  Examples:\n  yt8m serve --model bundles/demo\n  \
                  yt8m serve --model bundles/demo --model bundles/moe --name attention --name moe --http-port 9000\n\n\
                  `curl localhost:8000/v2/models/demo` lists a model's inputs and outputs. See docs/serving.md for curl and tritonclient examples."
)]
pub(crate) struct ServeArgs {
    /// Bundle directories (from `yt8m export`); repeat for several models.
    #[arg(long, required = true)]
    model: Vec<PathBuf>,
    /// Also take a `video` input (BYTES, one video file per element), extracted with the
    /// official extractor files in DIR as `yt8m extract` does (see its --help).
    #[arg(long, value_name = "DIR")]
    extractor: Option<PathBuf>,
    /// Model names, in the order of --model (default: each bundle's directory name).
    #[arg(long)]
    name: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    host: std::net::IpAddr,
    /// HTTP port (the protocol's REST API and /metrics); 0 picks a free one.
    #[arg(long, default_value_t = 8000)]
    http_port: u16,
    /// gRPC port (inference.GRPCInferenceService, as tritonclient.grpc calls it); 0 picks a
    /// free one.
    #[arg(long, default_value_t = 8001)]
    grpc_port: u16,
    /// Serve REST only.
    #[arg(long)]
    no_grpc: bool,
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceSpec,
    /// Compute type: fp32, bf16 or auto (see `yt8m info`).
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,
    /// Most videos per model call; concurrent requests are merged up to this.
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// How long a request waits for others to share its batch.
    #[arg(long, default_value_t = 5)]
    max_delay_ms: u64,
    /// Videos waiting per model beyond which requests are refused with 503.
    #[arg(long, default_value_t = 1024)]
    max_queue: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 256 << 20)]
    max_body_bytes: usize,
    /// Answer 504 to a request not done within this many milliseconds.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Open HTTP connections at most; the next is answered 503 and closed (each connection
    /// holds a file handle: 20,000 idle ones used to exhaust the process's).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Seconds a request's headers may take to arrive, and an idle keep-alive connection may
    /// wait for its next request, before the connection is closed (slowloris).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout_s: u64,
    /// Seconds a request's body may take to arrive; slower bodies are answered 408.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_timeout_s: u64,
    /// After SIGTERM/SIGINT: seconds admitted requests may take to finish; then the server
    /// exits (0) whatever is still open, half-sent requests included.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    shutdown_grace_s: u64,
    /// libtorch threads (default: YT8M_THREADS, else the cores this process owns minus one,
    /// and all of them for every call of a model that costs over 100 µs per frame, such as the
    /// full-size AttentionLSTM on a CPU; by default never more than the cores other processes
    /// leave free, re-measured every second). The models of one server share this many
    /// threads: calls running at once split them.
    #[arg(long)]
    threads: Option<usize>,
}

pub(crate) fn predict(a: PredictArgs) -> Result<()> {
    yt8m::threads::configure_torch_threads();
    let device = a.device.resolve()?;
    let mut b = yt8m::bundle::load(&a.model, device)?;
    if let (tch::Kind::BFloat16, why) = b.model.use_precision(a.precision) {
        tracing::info!("computing in bf16 ({why})");
    }
    let opt = yt8m::predict::PredictOptions {
        top_k: a.top_k,
        batch_size: a.batch_size.unwrap_or(if a.segments { 1024 } else { 64 }),
        bucket_window: a.bucket_window,
        format: a.format,
        score: a.score.unwrap_or(match a.format {
            yt8m::predict::Format::Paddle => yt8m::predict::ScoreFn::Softmax,
            _ => yt8m::predict::ScoreFn::Sigmoid,
        }),
        show_labels: a.show_labels,
        skip_corrupt: a.skip_corrupt,
        segments: match a.segments {
            true => Some(yt8m::predict::SegmentOptions {
                length: a.segment_length,
                max_per_class: a.max_per_class,
                classes: a
                    .segment_classes
                    .as_deref()
                    .map(|p| yt8m::segments::class_list(p, b.manifest.num_classes))
                    .transpose()?,
            }),
            false => None,
        },
        video: yt8m::predict::VideoOptions {
            extractor: a.extractor.clone(),
            audio: if a.no_audio {
                yt8m::extract::AudioSource::Zeros
            } else {
                a.audio
            },
            ..Default::default()
        },
    };
    if a.format == yt8m::predict::Format::Npz && a.output.is_none() {
        bail!("--format npz writes a binary file: give --out FILE.npz");
    }
    let stats = match &a.output {
        Some(p) => yt8m::predict::predict_to_file(&b, &a.model, &a.inputs, &opt, p)?,
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            match yt8m::predict::predict(&b, &a.inputs, &opt, &mut lock) {
                Ok(s) => s,
                // `yt8m predict … | head`: a closed pipe ends quietly, a full disk is said as
                // for every command that prints (as print!'s failures are).
                Err(yt8m::Error::Output(err)) => {
                    let closed = err.kind() == std::io::ErrorKind::BrokenPipe;
                    std::process::exit(stdout_failed(&err.to_string(), closed))
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    if a.segments {
        tracing::info!(
            "{} segment(s) of {} video(s) scored",
            stats.segments,
            stats.videos
        );
    }
    tracing::info!(
        "{} video(s) predicted, {} with zero frames skipped, {} corrupt record(s) skipped",
        stats.videos,
        stats.skipped_zero_frames,
        stats.skipped_records
    );
    Ok(())
}

pub(crate) fn serve(a: ServeArgs) -> Result<()> {
    // First, while this is the only thread and before libtorch's first oneDNN primitive.
    yt8m::threads::bound_onednn_cache();
    if !a.name.is_empty() && a.name.len() != a.model.len() {
        bail!(
            "{} --name for {} --model: give one name per model, in order (or none)",
            a.name.len(),
            a.model.len()
        );
    }
    let models = a
        .model
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let name = a.name.get(i).cloned().unwrap_or_else(|| {
                std::fs::canonicalize(dir)
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_else(|| "model".into())
            });
            (name, dir.clone())
        })
        .collect();
    yt8m::threads::default_allocator();
    // libtorch gets the cores but one: the network threads parse requests beside it (on 2
    // cores, 2 libtorch threads halved the served throughput; docs/serving.md).
    let cores = yt8m::data::available_cores();
    let n = yt8m::threads::configure_torch_threads_or(a.threads.unwrap_or(cores.saturating_sub(1)));
    tracing::info!("libtorch threads: {n} of {cores} cores");
    yt8m::serve::serve(yt8m::serve::ServeOptions {
        models,
        http: std::net::SocketAddr::new(a.host, a.http_port),
        grpc: (!a.no_grpc).then(|| std::net::SocketAddr::new(a.host, a.grpc_port)),
        device: a.device,
        precision: a.precision,
        max_batch: a.max_batch,
        max_delay: std::time::Duration::from_millis(a.max_delay_ms),
        max_queue: a.max_queue,
        max_body_bytes: a.max_body_bytes,
        timeout: std::time::Duration::from_millis(a.timeout_ms),
        limits: yt8m::serve::http::ConnLimits {
            max_connections: a.max_connections as usize,
            header_timeout: std::time::Duration::from_secs(a.header_timeout_s),
            body_timeout: std::time::Duration::from_secs(a.body_timeout_s),
            grace: std::time::Duration::from_secs(a.shutdown_grace_s),
        },
        // Chosen counts (--threads, YT8M_THREADS) are kept for every call.
        all_threads: (a.threads.is_none() && std::env::var_os("YT8M_THREADS").is_none())
            .then_some(cores),
        extractor: a.extractor.clone(),
    })?;
    Ok(())
}

pub(crate) fn engine(
    model: PathBuf,
    device: DeviceSpec,
    precision: Precision,
    batch_size: usize,
) -> Result<()> {
    yt8m::threads::configure_torch_threads();
    let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
    let mut b = match yt8m::bundle::load(&model, device.resolve()?) {
        Ok(b) => b,
        Err(e) => {
            // Said on the protocol (with its kind) as well as on stderr.
            let _ = yt8m::serve::engine::refuse(&mut stdout.lock(), &e);
            return Err(e.into());
        }
    };
    b.model.use_precision(precision);
    yt8m::serve::engine::run(
        &b,
        batch_size.max(1),
        &mut stdin.lock(),
        &mut std::io::BufWriter::new(stdout.lock()),
    )?;
    Ok(())
}
