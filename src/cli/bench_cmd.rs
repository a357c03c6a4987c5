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
    Eval(EvalArgs),
    /// Training throughput of the AttentionLSTM with the whole data path (synthetic shards).
    #[command(
        after_help = "Examples:\n  yt8m bench train                                  # full model, batch 128\n  yt8m bench train -c configs/demo_small.yaml --batch-size 16,128"
    )]
    Train(TrainArgs),
    /// Inference throughput (videos/s), optionally against onnxruntime on the exported graph.
    #[command(
        after_help = "Examples:\n  yt8m bench predict --batch-size 1,64 --python ~/.cache/yt8m/venv/bin/python\n  yt8m bench predict --batch-size 64 --steps 7 --precision fp32,bf16   # prints the speed-up"
    )]
    Predict(PredictArgs),
    /// The 2019 segment task's inference (every 5-frame segment scored and ranked per class)
    /// against whole-video prediction on the same videos and weights: frames/s of each. The
    /// model must be frame level.
    #[command(
        after_help = "Examples:\n  yt8m bench segments                       # full AttentionLSTM, 64 videos\n  yt8m bench segments -c configs/demo_small.yaml --videos 512"
    )]
    Segments(SegmentsArgs),
    /// Load test of `yt8m serve` (1, 8, 64 clients) beside offline predict on the same bundle
    /// and videos, and optionally the bundle's ONNX graph in onnxruntime behind Python's
    /// http.server under the same load.
    #[command(
        after_help = "Example:\n  yt8m bench serve --model demo/bundle --python ~/.cache/yt8m/venv/bin/python\n\n\
                      Prints one table row per load level (videos/s, frames/s, p50/p90/p99 latency), the offline\n\
                      numbers, the ratios the serving goals are stated in, an overload run (queue bound 16,\n\
                      64 clients: only 503s beyond the bound) and the server's memory before and after."
    )]
    Serve(ServeArgs),
    /// `yt8m extract` vs the official extractor (OpenCV + TensorFlow) on the same video and
    /// files, side by side: frames/s and how many quantized bytes agree.
    #[command(
        after_help = "Example:\n  yt8m bench extract --python ~/.cache/yt8m/tfvenv/bin/python --seconds 20\n\n\
                      With --python (TensorFlow + opencv-python-headless), scripts/bench_extract.py writes a\n\
                      full-size Inception-v3 stand-in (or uses --extractor DIR) and runs the official loop;\n\
                      without it, --extractor DIR times yt8m alone."
    )]
    Extract(ExtractArgs),
    /// Read + decode + batch throughput over shards (optionally vs TensorFlow).
    #[command(
        after_help = "Example:\n  yt8m bench read '../shared/data/yt8m/real/validate*.tfrecord' --level video \\\n      --tf-python ~/.cache/yt8m/tfvenv/bin/python --tf-script scripts/bench_tf_read.py"
    )]
    Read(ReadArgs),
}

/// `yt8m bench eval`'s arguments.
#[derive(clap::Args)]
pub(crate) struct EvalArgs {
    /// Videos (rows) of the random predictions.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) videos: usize,
    /// Classes (columns) of the random predictions.
    #[arg(long, default_value_t = 3862)]
    pub(crate) classes: usize,
    /// Python with numpy, to run the reference side by side.
    #[arg(long)]
    pub(crate) python: Option<PathBuf>,
    /// The numpy reference evaluator to time (../shared/tools/yt8m_eval_ref.py).
    #[arg(long)]
    pub(crate) reference: Option<PathBuf>,
}

/// The model a benchmark builds: its config, overrides and device.
#[derive(clap::Args)]
pub(crate) struct ModelArgs {
    /// Model config (default: configs/attention_lstm_youtube8m.yaml's model).
    #[arg(short, long)]
    pub(crate) config: Option<PathBuf>,
    /// Override a config key (repeatable), as for `train`.
    #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
    pub(crate) overrides: Vec<String>,
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long)]
    pub(crate) device: Option<DeviceSpec>,
}

/// `yt8m bench train`'s arguments.
#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Batch sizes to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "128")]
    pub(crate) batch_size: Vec<usize>,
    /// Timed training steps per batch size.
    #[arg(long, default_value_t = 2)]
    pub(crate) steps: usize,
    /// Untimed steps first (allocator and thread-pool warm-up).
    #[arg(long, default_value_t = 1)]
    pub(crate) warmup: usize,
    /// Compute types to time side by side: fp32, bf16 (mixed precision: float32 master
    /// weights), auto (comma-separated; default TRAIN.precision).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) precision: Vec<Precision>,
}

/// `yt8m bench predict`'s arguments.
#[derive(clap::Args)]
pub(crate) struct PredictArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Batch sizes to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub(crate) batch_size: Vec<usize>,
    /// Timed batches per size; with the warm-up, rounded up to whole windows of 8
    /// length-sorted batches (predict's batching).
    #[arg(long, default_value_t = 3)]
    pub(crate) steps: usize,
    /// Untimed batches first (allocator and thread-pool warm-up).
    #[arg(long, default_value_t = 1)]
    pub(crate) warmup: usize,
    /// Python with onnxruntime + numpy, to time the ONNX graph side by side.
    #[arg(long)]
    pub(crate) python: Option<PathBuf>,
    /// Compute types to time side by side on the same weights and batches: fp32, bf16,
    /// auto (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "fp32")]
    pub(crate) precision: Vec<Precision>,
}

/// `yt8m bench segments`'s arguments.
#[derive(clap::Args)]
pub(crate) struct SegmentsArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Synthetic videos (1–300 frames) to score both ways.
    #[arg(long, default_value_t = 64)]
    pub(crate) videos: usize,
    /// Videos per forward pass for whole videos (predict's default).
    #[arg(long, default_value_t = 64)]
    pub(crate) batch_size: usize,
    /// Segments per forward pass (predict --segments' default).
    #[arg(long, default_value_t = 1024)]
    pub(crate) segment_batch: usize,
}

/// `yt8m bench serve`'s arguments.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// A frame-level bundle (from `yt8m export`).
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// Concurrent clients per level, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub(crate) concurrency: Vec<usize>,
    /// Seconds per level.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) seconds: f64,
    /// Distinct synthetic videos sent, round robin.
    #[arg(long, default_value_t = 256)]
    pub(crate) videos: usize,
    /// The server's --max-batch, and the offline batch size compared with.
    #[arg(long, default_value_t = 64)]
    pub(crate) max_batch: usize,
    /// The server's --max-delay-ms.
    #[arg(long, default_value_t = 5)]
    pub(crate) max_delay_ms: u64,
    /// Python with onnxruntime + numpy: also load scripts/onnx_server.py (the DIY server).
    #[arg(long)]
    pub(crate) python: Option<PathBuf>,
    /// The DIY server script.
    #[arg(long, default_value = "scripts/onnx_server.py")]
    pub(crate) onnx_script: PathBuf,
    /// Device of the server and the offline run: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: DeviceSpec,
}

/// `yt8m bench extract`'s arguments.
#[derive(clap::Args)]
pub(crate) struct ExtractArgs {
    /// Seconds of test video (640x360, 30 fps): that many frames are extracted.
    #[arg(long, default_value_t = 20)]
    pub(crate) seconds: usize,
    /// The extractor files (default with --python: a full-size stand-in).
    #[arg(long, value_name = "DIR")]
    pub(crate) extractor: Option<PathBuf>,
    /// Python with TensorFlow and opencv-python-headless, for the official side.
    #[arg(long)]
    pub(crate) python: Option<PathBuf>,
    /// The official side's script.
    #[arg(long, default_value = "scripts/bench_extract.py")]
    pub(crate) script: PathBuf,
    /// Frames per Inception call (yt8m extract --batch-size).
    #[arg(long, default_value_t = 8)]
    pub(crate) batch_size: usize,
}

/// `yt8m bench read`'s arguments.
#[derive(clap::Args)]
pub(crate) struct ReadArgs {
    /// Shards: files, directories, quoted globs or .list files.
    #[arg(required = true)]
    pub(crate) paths: Vec<std::ffi::OsString>,
    /// frame (SequenceExample rgb/audio) or video (Example mean_rgb/mean_audio).
    #[arg(long, default_value = "frame")]
    pub(crate) level: Level,
    /// Videos per batch.
    #[arg(long, default_value_t = 128)]
    pub(crate) batch_size: usize,
    /// Python with TensorFlow, to time tf.data + tf.io.parse_* on the same shards.
    #[arg(long)]
    pub(crate) tf_python: Option<PathBuf>,
    /// The TensorFlow reader script (scripts/bench_tf_read.py).
    #[arg(long)]
    pub(crate) tf_script: Option<PathBuf>,
}

pub(crate) fn bench(b: BenchCmd) -> Result<()> {
    let table = match b {
        BenchCmd::Eval(a) => a.run()?,
        BenchCmd::Train(a) => a.run()?,
        BenchCmd::Predict(a) => a.run()?,
        BenchCmd::Extract(a) => a.run()?,
        BenchCmd::Segments(a) => a.run()?,
        BenchCmd::Serve(a) => a.run()?,
        BenchCmd::Read(a) => a.run()?,
    };
    print!("{table}");
    Ok(())
}

impl EvalArgs {
    fn run(self) -> Result<String> {
        let workdir = bench::default_workdir();
        let (py, rf) = (self.python.as_deref(), self.reference.as_deref());
        Ok(bench_data::bench_eval(
            self.videos,
            self.classes,
            py,
            rf,
            &workdir,
        )?)
    }
}

impl TrainArgs {
    fn run(self) -> Result<String> {
        let mut o =
            model_bench_options(self.model, self.batch_size, self.steps, self.warmup, None)?;
        o.precisions = self.precision;
        Ok(bench::bench_train(&o)?)
    }
}

impl PredictArgs {
    fn run(self) -> Result<String> {
        let mut o = model_bench_options(
            self.model,
            self.batch_size,
            self.steps,
            self.warmup,
            self.python,
        )?;
        o.precisions = self.precision;
        Ok(bench_predict::bench_predict(&o)?)
    }
}

impl ExtractArgs {
    fn run(self) -> Result<String> {
        yt8m::threads::configure_torch_threads();
        Ok(bench_data::bench_extract(
            &bench_data::ExtractBenchOptions {
                seconds: self.seconds.max(1),
                extractor: self.extractor,
                python: self.python,
                script: self.script,
                batch_size: self.batch_size.max(1),
            },
        )?)
    }
}

impl SegmentsArgs {
    fn run(self) -> Result<String> {
        let o = model_bench_options(self.model, vec![self.batch_size], 1, 0, None)?;
        let (videos, per_call) = (self.videos.max(1), self.segment_batch.max(1));
        Ok(bench::bench_segments(&o, videos, per_call)?)
    }
}

impl ServeArgs {
    fn run(self) -> Result<String> {
        yt8m::threads::configure_torch_threads();
        Ok(bench_serve::run(&bench_serve::LoadOptions {
            bundle: self.model,
            concurrency: self.concurrency,
            seconds: self.seconds,
            videos: self.videos.max(1),
            max_batch: self.max_batch.max(1),
            max_delay_ms: self.max_delay_ms,
            onnx_python: self.python,
            onnx_script: self.onnx_script,
            device: self.device,
        })?)
    }
}

impl ReadArgs {
    fn run(self) -> Result<String> {
        let spec = yt8m::data::FeatureSpec {
            level: self.level,
            ..Default::default()
        };
        let (py, script) = (self.tf_python.as_deref(), self.tf_script.as_deref());
        Ok(bench_data::bench_read(
            &self.paths,
            spec,
            self.batch_size,
            py,
            script,
        )?)
    }
}

pub(crate) const FULL_CONFIG: &str = include_str!("../../configs/attention_lstm_youtube8m.yaml");

pub(crate) fn model_bench_options(
    model: ModelArgs,
    batch_sizes: Vec<usize>,
    steps: usize,
    warmup: usize,
    python: Option<PathBuf>,
) -> Result<bench::ModelBenchOptions> {
    let ModelArgs {
        config,
        overrides,
        device,
    } = model;
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
