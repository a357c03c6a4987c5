//! `yt8m bench`: its subcommands and arguments; the benchmarks are in `bench` and
//! `bench_serve`.

use super::{bench, bench_data, bench_predict, bench_serve};
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use yt8m::config::{Config, DeviceSpec};
use yt8m::data::Level;
use yt8m::kinds::Precision;

#[derive(Subcommand)]
pub(crate) enum BenchCmd {
    /// Evaluator time vs shared/tools/yt8m_eval_ref.py on the same random .npz.
    #[command(
        after_help = "Example:\n  yt8m bench eval --videos 100000 --classes 3862 \\\n      --python ~/.cache/yt8m/venv/bin/python --reference ../shared/tools/yt8m_eval_ref.py"
    )]
    Eval {
        /// Videos (rows) of the random predictions.
        #[arg(long, default_value_t = 100_000)]
        videos: usize,
        /// Classes (columns) of the random predictions.
        #[arg(long, default_value_t = 3862)]
        classes: usize,
        /// Python with numpy, to run the reference side by side.
        #[arg(long)]
        python: Option<PathBuf>,
        /// The numpy reference evaluator to time (../shared/tools/yt8m_eval_ref.py).
        #[arg(long)]
        reference: Option<PathBuf>,
    },
    /// Training throughput of the AttentionLSTM with the whole data path (synthetic shards).
    #[command(
        after_help = "Examples:\n  yt8m bench train                                  # full model, batch 128\n  yt8m bench train -c configs/demo_small.yaml --batch-size 16,128"
    )]
    Train {
        /// Model config (default: configs/attention_lstm_youtube8m.yaml's model).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Override a config key (repeatable), as for `train`.
        #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Batch sizes to time, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "128")]
        batch_size: Vec<usize>,
        /// Timed training steps per batch size.
        #[arg(long, default_value_t = 2)]
        steps: usize,
        /// Untimed steps first (allocator and thread-pool warm-up).
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Device: auto, cpu, cuda, cuda:N.
        #[arg(long)]
        device: Option<DeviceSpec>,
        /// Compute types to time side by side: fp32, bf16 (mixed precision: float32 master
        /// weights), auto (comma-separated; default TRAIN.precision).
        #[arg(long, value_enum, value_delimiter = ',')]
        precision: Vec<Precision>,
    },
    /// Inference throughput (videos/s), optionally against onnxruntime on the exported graph.
    #[command(
        after_help = "Examples:\n  yt8m bench predict --batch-size 1,64 --python ~/.cache/yt8m/venv/bin/python\n  yt8m bench predict --batch-size 64 --steps 7 --precision fp32,bf16   # prints the speed-up"
    )]
    Predict {
        /// Model config (default: configs/attention_lstm_youtube8m.yaml's model).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Override a config key (repeatable), as for `train`.
        #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Batch sizes to time, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,64")]
        batch_size: Vec<usize>,
        /// Timed batches per size; with the warm-up, rounded up to whole windows of 8
        /// length-sorted batches (predict's batching).
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Untimed batches first (allocator and thread-pool warm-up).
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Device: auto, cpu, cuda, cuda:N.
        #[arg(long)]
        device: Option<DeviceSpec>,
        /// Python with onnxruntime + numpy, to time the ONNX graph side by side.
        #[arg(long)]
        python: Option<PathBuf>,
        /// Compute types to time side by side on the same weights and batches: fp32, bf16,
        /// auto (comma-separated).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "fp32")]
        precision: Vec<Precision>,
    },
    /// The 2019 segment task's inference (every 5-frame segment scored and ranked per class)
    /// against whole-video prediction on the same videos and weights: frames/s of each.
    #[command(
        after_help = "Examples:\n  yt8m bench segments                       # full AttentionLSTM, 64 videos\n  yt8m bench segments -c configs/demo_small.yaml --videos 512"
    )]
    Segments {
        /// Model config (default: configs/attention_lstm_youtube8m.yaml's model); frame level.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Override a config key (repeatable), as for `train`.
        #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Synthetic videos (1–300 frames) to score both ways.
        #[arg(long, default_value_t = 64)]
        videos: usize,
        /// Videos per forward pass for whole videos (predict's default).
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// Segments per forward pass (predict --segments' default).
        #[arg(long, default_value_t = 1024)]
        segment_batch: usize,
        /// Device: auto, cpu, cuda, cuda:N.
        #[arg(long)]
        device: Option<DeviceSpec>,
    },
    /// Load test of `yt8m serve` (1, 8, 64 clients) beside offline predict on the same bundle
    /// and videos, and optionally the bundle's ONNX graph in onnxruntime behind Python's
    /// http.server under the same load.
    #[command(
        after_help = "Example:\n  yt8m bench serve --model demo/bundle --python ~/.cache/yt8m/venv/bin/python\n\n\
                      Prints one table row per load level (videos/s, frames/s, p50/p90/p99 latency), the offline\n\
                      numbers, the ratios the serving goals are stated in, an overload run (queue bound 16,\n\
                      64 clients: only 503s beyond the bound) and the server's memory before and after."
    )]
    Serve {
        /// A frame-level bundle (from `yt8m export`).
        #[arg(long)]
        model: PathBuf,
        /// Concurrent clients per level, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
        concurrency: Vec<usize>,
        /// Seconds per level.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Distinct synthetic videos sent, round robin.
        #[arg(long, default_value_t = 256)]
        videos: usize,
        /// The server's --max-batch, and the offline batch size compared with.
        #[arg(long, default_value_t = 64)]
        max_batch: usize,
        /// The server's --max-delay-ms.
        #[arg(long, default_value_t = 5)]
        max_delay_ms: u64,
        /// Python with onnxruntime + numpy: also load scripts/onnx_server.py (the DIY server).
        #[arg(long)]
        python: Option<PathBuf>,
        /// The DIY server script.
        #[arg(long, default_value = "scripts/onnx_server.py")]
        onnx_script: PathBuf,
        /// Device of the server and the offline run: auto, cpu, cuda, cuda:N.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
    },
    /// `yt8m extract` vs the official extractor (OpenCV + TensorFlow) on the same video and
    /// files, side by side: frames/s and how many quantized bytes agree.
    #[command(
        after_help = "Example:\n  yt8m bench extract --python ~/.cache/yt8m/tfvenv/bin/python --seconds 20\n\n\
                      With --python (TensorFlow + opencv-python-headless), scripts/bench_extract.py writes a\n\
                      full-size Inception-v3 stand-in (or uses --extractor DIR) and runs the official loop;\n\
                      without it, --extractor DIR times yt8m alone."
    )]
    Extract {
        /// Seconds of test video (640x360, 30 fps): that many frames are extracted.
        #[arg(long, default_value_t = 20)]
        seconds: usize,
        /// The extractor files (default with --python: a full-size stand-in).
        #[arg(long, value_name = "DIR")]
        extractor: Option<PathBuf>,
        /// Python with TensorFlow and opencv-python-headless, for the official side.
        #[arg(long)]
        python: Option<PathBuf>,
        /// The official side's script.
        #[arg(long, default_value = "scripts/bench_extract.py")]
        script: PathBuf,
        /// Frames per Inception call (yt8m extract --batch-size).
        #[arg(long, default_value_t = 8)]
        batch_size: usize,
    },
    /// Read + decode + batch throughput over shards (optionally vs TensorFlow).
    #[command(
        after_help = "Example:\n  yt8m bench read '../shared/data/yt8m/real/validate*.tfrecord' --level video \\\n      --tf-python ~/.cache/yt8m/tfvenv/bin/python --tf-script scripts/bench_tf_read.py"
    )]
    Read {
        /// Shards: files, directories, quoted globs or .list files.
        #[arg(required = true)]
        paths: Vec<std::ffi::OsString>,
        /// frame (SequenceExample rgb/audio) or video (Example mean_rgb/mean_audio).
        #[arg(long, default_value = "frame")]
        level: Level,
        /// Videos per batch.
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        /// Python with TensorFlow, to time tf.data + tf.io.parse_* on the same shards.
        #[arg(long)]
        tf_python: Option<PathBuf>,
        /// The TensorFlow reader script (scripts/bench_tf_read.py).
        #[arg(long)]
        tf_script: Option<PathBuf>,
    },
}

pub(crate) fn bench(b: BenchCmd) -> Result<()> {
    match b {
        BenchCmd::Eval {
            videos,
            classes,
            python,
            reference,
        } => {
            print!(
                "{}",
                bench_data::bench_eval(
                    videos,
                    classes,
                    python.as_deref(),
                    reference.as_deref(),
                    &bench::default_workdir()
                )?
            );
        }
        BenchCmd::Train {
            config,
            overrides,
            batch_size,
            steps,
            warmup,
            device,
            precision,
        } => {
            let mut o =
                model_bench_options(config, overrides, batch_size, steps, warmup, device, None)?;
            o.precisions = precision;
            print!("{}", bench::bench_train(&o)?);
        }
        BenchCmd::Predict {
            config,
            overrides,
            batch_size,
            steps,
            warmup,
            device,
            python,
            precision,
        } => {
            let mut o =
                model_bench_options(config, overrides, batch_size, steps, warmup, device, python)?;
            o.precisions = precision;
            print!("{}", bench_predict::bench_predict(&o)?);
        }
        BenchCmd::Extract {
            seconds,
            extractor,
            python,
            script,
            batch_size,
        } => {
            yt8m::threads::configure_torch_threads();
            print!(
                "{}",
                bench_data::bench_extract(&bench_data::ExtractBenchOptions {
                    seconds: seconds.max(1),
                    extractor,
                    python,
                    script,
                    batch_size: batch_size.max(1),
                })?
            );
        }
        BenchCmd::Segments {
            config,
            overrides,
            videos,
            batch_size,
            segment_batch,
            device,
        } => {
            let o = model_bench_options(config, overrides, vec![batch_size], 1, 0, device, None)?;
            print!(
                "{}",
                bench::bench_segments(&o, videos.max(1), segment_batch.max(1))?
            );
        }
        BenchCmd::Serve {
            model,
            concurrency,
            seconds,
            videos,
            max_batch,
            max_delay_ms,
            python,
            onnx_script,
            device,
        } => {
            yt8m::threads::configure_torch_threads();
            print!(
                "{}",
                bench_serve::run(&bench_serve::LoadOptions {
                    bundle: model,
                    concurrency,
                    seconds,
                    videos: videos.max(1),
                    max_batch: max_batch.max(1),
                    max_delay_ms,
                    onnx_python: python,
                    onnx_script,
                    device,
                })?
            );
        }
        BenchCmd::Read {
            paths,
            level,
            batch_size,
            tf_python,
            tf_script,
        } => {
            let spec = yt8m::data::FeatureSpec {
                level,
                ..Default::default()
            };
            print!(
                "{}",
                bench_data::bench_read(
                    &paths,
                    spec,
                    batch_size,
                    tf_python.as_deref(),
                    tf_script.as_deref()
                )?
            );
        }
    }
    Ok(())
}

pub(crate) const FULL_CONFIG: &str = include_str!("../../configs/attention_lstm_youtube8m.yaml");

pub(crate) fn model_bench_options(
    config: Option<PathBuf>,
    overrides: Vec<String>,
    batch_sizes: Vec<usize>,
    steps: usize,
    warmup: usize,
    device: Option<DeviceSpec>,
    python: Option<PathBuf>,
) -> Result<bench::ModelBenchOptions> {
    let mut cfg = match &config {
        Some(p) => Config::load(Some(p), &overrides)?,
        None => Config::from_yaml(
            "configs/attention_lstm_youtube8m.yaml",
            FULL_CONFIG,
            &overrides,
        )?,
    };
    if let Some(d) = device {
        cfg.TRAIN.device = d;
    }
    Ok(bench::ModelBenchOptions {
        config: cfg,
        batch_sizes,
        steps,
        warmup,
        workdir: bench::default_workdir(),
        python,
        precisions: Vec::new(),
    })
}
