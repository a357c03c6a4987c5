//! The `yt8m` command line: parses arguments and calls the library.

mod bench;
mod bench_serve;
mod demo_cli;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use yt8m::config::{Config, DeviceSpec, DistributedMode};
use yt8m::data::Level;
use yt8m::data::inspect::{inspect_file, render_table};
use yt8m::data::sources::expand_paths;
use yt8m::data::synth::{SynthConfig, write_synthetic_with};
use yt8m::evaluate::{EvalOptions, read_kaggle_with_labels, read_npz};
use yt8m::kinds::Precision;
use yt8m::metrics::{MetricMode, TieOrder};
use yt8m::train::TrainOptions;

#[derive(Parser)]
#[command(
    name = "yt8m",
    version,
    about = "AttentionLSTM video classifiers on YouTube-8M features: train, test, export, predict",
    long_about = "yt8m reads the official YouTube-8M TFRecord shards (and PaddleVideo pickles) directly, \
                  trains PaddleVideo's AttentionLSTM on libtorch, and reports the official metrics.\n\n\
                  Start with `yt8m demo` (synthetic data, about 10 s on 2 cores), `yt8m inspect PATH` \
                  to see what your shards hold, and `yt8m COMMAND --help` for each step."
)]
struct Cli {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Summarize TFRecord shards or PaddleVideo pickles: records, CRCs, level, schema, frames, labels.
    Inspect(InspectArgs),
    /// Write learnable synthetic data in the official frame- or video-level format.
    Synth(SynthArgs),
    /// YouTube-8M features from your own video files (Inception-v3 + PCA, as Google's extractor).
    Extract(ExtractArgs),
    /// Score predictions made elsewhere (.npz / Kaggle CSV) with the official metrics.
    Evaluate(EvaluateArgs),
    /// Train a model from a config (PaddleVideo's YAML layout loads as is).
    Train(TrainArgs),
    /// Run a trained model over the config's test split and report the metrics.
    Test(TestArgs),
    /// Convert PaddleVideo .pdparams weights to safetensors (no Python).
    Convert(ConvertArgs),
    /// Write a self-contained bundle: weights, config, vocabulary, ONNX graph, model card.
    Export(ExportArgs),
    /// Top-k classes for videos in TFRecord shards, PaddleVideo .pkl files or .npy arrays.
    Predict(PredictArgs),
    /// Training curves of one or more runs as a PNG (loss, validation metrics, lr, ...).
    Plot(PlotArgs),
    /// Serve bundles online over the Open Inference Protocol (KServe v2 / Triton: REST and gRPC).
    Serve(ServeArgs),
    /// The end-to-end demo on synthetic data (what `./dev demo` runs).
    Demo(DemoArgs),
    /// Throughput benchmarks (tables for docs/benchmarks.md).
    #[command(subcommand)]
    Bench(BenchCmd),
    /// The configs inside this binary: list them, or write one out to start from.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// What this binary runs on: libtorch loaded, CUDA / cuDNN / GPUs, threads, MPI / NCCL, ffmpeg.
    #[command(
        after_help = "Example:\n  yt8m info\n  LD_LIBRARY_PATH=/opt/other-torch/lib yt8m info --json   # which libtorch is really loaded"
    )]
    Info {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The model of a bundle behind standard input and output (the Python package's
    /// `yt8m.Bundle` runs it; the protocol is in src/serve/engine.rs).
    #[command(hide = true)]
    Engine {
        /// Bundle directory from `yt8m export`.
        #[arg(long)]
        model: PathBuf,
        /// cpu, cuda, cuda:N or auto.
        #[arg(long, default_value = "auto")]
        device: DeviceSpec,
        /// fp32, bf16 or auto, as for `predict`.
        #[arg(long, value_enum, default_value = "fp32")]
        precision: Precision,
        /// Videos per forward pass.
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// The bundled configs, one per line: name and what it is.
    #[command(after_help = "Example:\n  yt8m config list")]
    List,
    /// Print a bundled config's YAML (or write it with --out), to edit and pass with -c.
    #[command(
        after_help = "Examples:\n  yt8m config show attention_lstm_youtube8m > my.yaml\n  yt8m config show moe_video --out configs/my_moe.yaml\n\nData paths in the bundled configs point where the repository's demo and tests put data\n(relative to the file); set your own in the file or with -o DATASET.train.file_path=..."
    )]
    Show {
        /// Config name, as `yt8m config list` prints it.
        name: String,
        /// Write the YAML here (parents created; an existing file is replaced whole) instead
        /// of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
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

/// `-c` of the verbs whose `-w` may be a checkpoint directory (`test`, `export`).
const CONFIG_OR_CHECKPOINT: &str = "YAML config (PaddleVideo's attention_lstm_youtube8m.yaml layout + yt8m keys); \
    optional when -w is a checkpoint directory, whose own config.yaml is then used";

/// The config every model verb starts from: a YAML file, `-o` overrides, and the device.
#[derive(Args)]
struct ConfigArgs {
    /// YAML config (PaddleVideo's attention_lstm_youtube8m.yaml layout + yt8m keys).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Override a config key: -o DATASET.batch_size=32 -o epochs=3 (repeatable; unknown keys are errors).
    #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Device: auto, cpu, cuda, cuda:N (overrides TRAIN.device).
    #[arg(long)]
    device: Option<DeviceSpec>,
}

impl ConfigArgs {
    fn load(&self) -> Result<Config> {
        self.load_or(None)
    }

    /// The config from -c, else the one a checkpoint directory (or RUN/checkpoints/latest)
    /// was saved with.
    fn load_for(&self, weights: &std::path::Path) -> Result<Config> {
        let resolved = yt8m::checkpoint::weights_path(weights)?;
        let own = resolved.join("config.yaml");
        self.load_or((resolved.is_dir() && own.is_file()).then_some(own))
    }

    /// The config from -c, else `fallback` (a checkpoint's own config.yaml).
    fn load_or(&self, fallback: Option<PathBuf>) -> Result<Config> {
        let path = match (&self.config, fallback) {
            (Some(p), _) => p.clone(),
            (None, Some(f)) => f,
            (None, None) => bail!(
                "give the config with -c CONFIG (e.g. -c configs/attention_lstm_youtube8m.yaml)"
            ),
        };
        let mut cfg = Config::load(Some(&path), &self.overrides)?;
        if let Some(d) = self.device {
            cfg.TRAIN.device = d;
        }
        Ok(cfg)
    }
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  yt8m train -c configs/attention_lstm_youtube8m.yaml \\\n      -o DATASET.train.file_path='data/frame/train*.tfrecord' --out runs/full\n  yt8m train -c configs/demo_small.yaml --validate --out runs/demo\n  yt8m train -c configs/demo_small.yaml --out runs/demo --resume     # continue after a crash\n  yt8m train -c configs/demo_small.yaml -w paddle/AttentionLSTM_yt8.pdparams --out runs/finetune\n  yt8m train -c configs/attention_lstm_youtube8m.yaml -o DATASET.train.file_path='data/*.tfrecord' \\\n      --dry-run     # the plan: videos, steps, parameters, memory\n\nThe run directory holds config.yaml (the resolved config), metrics.jsonl (one line per log\ninterval and per epoch) and checkpoints/epoch_NNNNN/ (model, optimizer state, progress), plus\ncheckpoints/best/ with --validate.\n\nDevices: --device auto|cpu|cuda|cuda:N (TRAIN.device); YT8M_THREADS caps libtorch's CPU threads.\n\nData-parallel (several processes, one or many machines), started by Open MPI's mpirun:\n  YT8M_THREADS=1 mpirun -np 2 yt8m train -c CONFIG --out runs/dp\n  mpirun --hostfile hosts -np 16 -x YT8M_THREADS=4 --mca plm_rsh_args \"-o ConnectTimeout=10\" \\\n      yt8m train -c CONFIG --out /shared/runs/dp16     # unreachable host: error after 10 s\nWorker r reads shards r, r+N, ...; gradients are averaged over workers every step (PaddleVideo's\nDataParallel); only rank 0 logs, validates and checkpoints. --distributed none ignores mpirun.\nGPUs: one rank per GPU (CUDA_VISIBLE_DEVICES per rank), --device cuda:0; gradients go through\nNCCL on the device. One GPU, no mpirun: --device cuda --distributed nccl checks that path.\nSee docs/distributed.md for addresses, ports, GPUs and failure handling."
)]
struct TrainArgs {
    #[command(flatten)]
    cfg: ConfigArgs,
    /// Run directory (config, logs, checkpoints).
    #[arg(
        long = "out",
        alias = "output",
        value_name = "DIR",
        default_value = "runs/train"
    )]
    output: PathBuf,
    /// Evaluate DATASET.valid every TRAIN.val_interval epochs with the official metrics; keep the best.
    #[arg(long)]
    validate: bool,
    /// Continue the run in --out from its latest checkpoint (the model shape must not change).
    #[arg(long)]
    resume: bool,
    /// Initial weights: .safetensors, a checkpoint directory, or a PaddleVideo .pdparams.
    #[arg(short = 'w', long)]
    weights: Option<PathBuf>,
    /// Data parallelism: auto (MPI when started by mpirun; NCCL for gradients on GPUs), mpi
    /// (required; gradients through the host), nccl (gradients through NCCL, one worker
    /// included), none (overrides TRAIN.distributed).
    #[arg(long, value_enum)]
    distributed: Option<DistributedMode>,
    /// fp32 (default, exact), bf16 mixed precision (float32 master weights; 3.7x at batch 128
    /// on AMX CPUs), auto (bf16 where fast); overrides TRAIN.precision.
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// No progress bar; log lines instead.
    #[arg(long)]
    quiet: bool,
    /// Stop after N epochs of this invocation (the run stays resumable).
    #[arg(long, hide = true)]
    stop_after_epochs: Option<usize>,
    /// With --resume: continue even though hyperparameters changed (the key-by-key change is
    /// logged and appended to RUN/config_changes.yaml; config.yaml stays the original).
    #[arg(long, requires = "resume")]
    allow_config_change: bool,
    /// Print the resolved config (file + -o overrides + flags) as YAML and exit.
    #[arg(long)]
    print_config: bool,
    /// Print the plan — videos, steps per epoch, parameters, memory for weights, gradients and
    /// optimizer state — and exit without training (no run directory is created).
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
#[command(
    mut_arg("config", |a| a.help(CONFIG_OR_CHECKPOINT)),
    after_help = "Examples:\n  yt8m test -c configs/demo_small.yaml -w runs/demo/checkpoints/best\n  yt8m test -w runs/demo/checkpoints/best      # the checkpoint's own config.yaml\n  yt8m test -c configs/attention_lstm_youtube8m.yaml -w AttentionLSTM_yt8.pdparams \\\n      --metric-mode paddlevideo\n\nPrints a table and writes a JSON report (metrics, mode, videos, config, weights sha256)."
)]
struct TestArgs {
    #[command(flatten)]
    cfg: ConfigArgs,
    /// Weights: .safetensors, a checkpoint directory, or a PaddleVideo .pdparams.
    #[arg(short = 'w', long)]
    weights: PathBuf,
    /// official (default) or paddlevideo (mean of per-batch metrics at --paddle-batch).
    #[arg(long, value_enum)]
    metric_mode: Option<MetricMode>,
    /// PaddleVideo mode's batch (PaddleVideo's test_batch_size default: 8).
    #[arg(long, default_value_t = 8)]
    paddle_batch: usize,
    /// Compute type: fp32 (exact), bf16 (fast where the CPU has avx512_bf16/AMX or on GPUs;
    /// metrics within ~0.002), auto (bf16 where fast). Sigmoid and metrics stay float32.
    #[arg(long, value_enum, default_value = "fp32")]
    precision: Precision,
    /// Where to write the JSON report (default: RUN/test_report.json for a run's checkpoint,
    /// else test_report.json beside the weights file).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  yt8m convert AttentionLSTM_yt8.pdparams --out attention_lstm.safetensors\n\nAccepts head-only and full-model (head.-prefixed) checkpoints, numpy 1.x or 2.x pickles,\nand Paddle's alias LSTM keys (cell_fw / cell_bw)."
)]
struct ConvertArgs {
    /// PaddleVideo .pdparams file.
    input: PathBuf,
    /// Output .safetensors.
    #[arg(long = "out", alias = "output", value_name = "FILE")]
    output: PathBuf,
}

#[derive(Args)]
#[command(
    mut_arg("config", |a| a.help(CONFIG_OR_CHECKPOINT)),
    after_help = "Examples:\n  yt8m export -c configs/demo_small.yaml -w runs/demo/checkpoints/best --out bundles/demo\n  yt8m export -w runs/demo/checkpoints/latest --out bundles/latest     # the checkpoint's own config\n  yt8m export -w runs/demo/checkpoints/best --onnx-input float --out bundles/float\n\nWithout -c, a checkpoint directory brings the config it was saved with.\n\nThe bundle holds model.safetensors, config.yaml, vocabulary.csv (the 2018 YouTube-8M names\nfor 3862-class models unless --vocabulary is given), model.onnx (standard ONNX, opset 17,\nLSTM operator; inputs per modality [batch, time, D] and lengths [batch], outputs logits and\nprobabilities), MODEL_CARD.md and bundle.json (manifest with sha256 of every file)."
)]
struct ExportArgs {
    #[command(flatten)]
    cfg: ConfigArgs,
    /// Weights: .safetensors, a checkpoint directory, or a PaddleVideo .pdparams.
    #[arg(short = 'w', long)]
    weights: PathBuf,
    /// Output directory (the bundle).
    #[arg(long = "out", alias = "output", value_name = "DIR")]
    out: PathBuf,
    /// Class names CSV (Index,Name,...); default: the 2018 vocabulary for 3862 classes, else class_N.
    #[arg(long)]
    vocabulary: Option<PathBuf>,
    /// Skip model.onnx.
    #[arg(long)]
    no_onnx: bool,
    /// ONNX feature inputs: uint8 (quantized, dequantized in the graph) or float.
    #[arg(long, value_enum, default_value_t = yt8m::onnx::InputKind::Uint8)]
    onnx_input: yt8m::onnx::InputKind,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  yt8m predict --model bundles/demo data/test0000.tfrecord\n  yt8m predict --model bundles/full video.pkl --score softmax --top-k 1 --format paddle\n  yt8m predict --model bundles/full 'frames/*.tfrecord' --format kaggle > submission.csv\n  yt8m predict --model bundles/full clip.npy --format jsonl\n  yt8m predict --model bundles/full clip.mp4   # a video: extracted first (yt8m extract)\n  yt8m predict --model bundles/full --segments 'validate*' --format kaggle-segments --out seg.csv\n\n.npy inputs hold [frames, 1152] (rgb then audio columns), uint8 quantized or float."
)]
struct PredictArgs {
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
    after_help = "Each run's metrics.jsonl is read (TensorBoard: `tensorboard --logdir RUN/tb`). Train-step \
                  metrics are drawn against the global step, epoch and validation metrics against the epoch.\n\n\
                  Examples:\n  yt8m plot demo/run --out demo/curves.png\n  \
                  yt8m plot demo/run demo/run --metric loss,gap,hit_at_one --out curves.png\n  \
                  yt8m plot demo/run --metric lr,grad_norm --panel-size 800x500 --out lr.png"
)]
struct PlotArgs {
    /// Run directories (each holds metrics.jsonl); several are overlaid with a legend.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Output PNG.
    #[arg(
        long = "out",
        alias = "output",
        value_name = "FILE",
        default_value = "curves.png"
    )]
    output: PathBuf,
    /// Metrics to draw, one panel each (comma-separated; default loss,gap).
    #[arg(long, value_enum, value_delimiter = ',')]
    metric: Vec<yt8m::plot::Metric>,
    /// Size of one panel, WIDTHxHEIGHT in pixels.
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    panel_size: (u32, u32),
}

fn parse_size(s: &str) -> std::result::Result<(u32, u32), String> {
    let err = || format!("'{s}' is not WIDTHxHEIGHT (e.g. 640x480)");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(err)?;
    Ok((
        w.trim().parse().map_err(|_| err())?,
        h.trim().parse().map_err(|_| err())?,
    ))
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
struct ServeArgs {
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

#[derive(Args)]
#[command(
    after_help = "Makes synthetic frame-level shards, trains a small AttentionLSTM with validation, tests it, \
                  exports a bundle, predicts with it and plots the curves, all under --dir.\n\n\
                  Examples:\n  yt8m demo\n  yt8m demo --dir /tmp/yt8m-demo"
)]
struct DemoArgs {
    /// Working directory for data and runs.
    #[arg(long, default_value = "demo")]
    dir: PathBuf,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  yt8m inspect data/train0000.tfrecord\n  yt8m inspect --json 'data/validate*.tfrecord'\n  yt8m inspect data/pkl_frame/ data/train.list"
)]
struct InspectArgs {
    /// Files, directories, glob patterns (quoted) or .list files.
    #[arg(required = true)]
    paths: Vec<std::ffi::OsString>,
    /// Print one JSON document ({"files": [...]}) instead of a table.
    #[arg(long)]
    json: bool,
    /// Count and report corrupt records instead of stopping at the first.
    #[arg(long)]
    skip_corrupt: bool,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  yt8m extract clip.mp4 videos/ --out features/   # ids are the paths, no labels\n  yt8m extract --csv videos.csv --out labelled/ --level video   # lines 'clip.mp4,3;17'\n  yt8m predict --model bundles/demo features/\n\nThe extractor files are the official ones, unchanged, in one directory (--extractor,\nYT8M_EXTRACTOR_DIR, or ~/yt8m where Google's feature_extractor.py puts them):\ninception-2015-12-05.tgz (or the classify_image_graph_def.pb it holds) and yt8m_pca.tgz (or its\nmean.npy, eigenvals.npy, eigenvecs.npy); for audio, vggish_model.ckpt and vggish_pca_params.npz.\nFrames are sampled as its frame_iterator does (the frame after each 1 s mark, at most 300),\nthrough the ffmpeg and ffprobe executables. Rerunning into the same --out resumes: complete\nshards are kept. docs/extract.md has the download commands and how each step is checked."
)]
struct ExtractArgs {
    /// Video files, quoted glob patterns, or directories searched for video files (.mp4, .mkv,
    /// .webm, ...).
    #[arg(value_name = "VIDEO", required_unless_present = "csv")]
    videos: Vec<PathBuf>,
    /// A CSV of '<video_file>,<labels>' lines, as the official extract_tfrecords_main.py takes.
    #[arg(long, value_name = "FILE", conflicts_with = "videos")]
    csv: Option<PathBuf>,
    /// Output directory for PREFIX0000.tfrecord, ... (created if missing).
    #[arg(long = "out", alias = "output", value_name = "DIR")]
    out: PathBuf,
    /// Directory with classify_image_graph_def.pb, mean.npy, eigenvals.npy, eigenvecs.npy
    /// [default: $YT8M_EXTRACTOR_DIR, else ~/yt8m].
    #[arg(long, value_name = "DIR")]
    extractor: Option<PathBuf>,
    /// frame (SequenceExample: rgb/audio bytes per frame) or video (Example: mean_rgb/mean_audio).
    #[arg(long, default_value = "frame")]
    level: Level,
    /// Frames sampled per second of video (the official --frames_per_second).
    #[arg(long, default_value_t = 1.0)]
    fps: f64,
    /// Frames at most per video, from its start.
    #[arg(long, default_value_t = 300)]
    max_frames: usize,
    /// Videos per output shard (each shard is written whole, then renamed into place).
    #[arg(long, default_value_t = 100)]
    videos_per_shard: usize,
    /// File name prefix: PREFIX0000.tfrecord, ...
    #[arg(long, default_value = "extract")]
    prefix: String,
    /// Frames per Inception call (8 measured fastest on 2 cores: docs/benchmarks.md).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Leave out videos that cannot be decoded (listed at the end) instead of stopping.
    #[arg(long)]
    skip_bad_videos: bool,
    /// Audio features: vggish (vggish_model.ckpt + vggish_pca_params.npz in the extractor
    /// directory), zeros (the official extractor's default), or auto (vggish when its files are
    /// there).
    #[arg(long, value_enum, default_value_t = yt8m::extract::AudioSource::Auto)]
    audio: yt8m::extract::AudioSource,
    /// Zero audio, as the official extractor writes by default (= --audio zeros).
    #[arg(long, conflicts_with = "audio")]
    no_audio: bool,
}

#[derive(Args)]
#[command(
    after_help = "Example (what `yt8m demo` runs):\n  yt8m synth --out data/synth/train --num-videos 384 --num-shards 4 --seed 1 --prefix train\n  yt8m synth --out data/synth/test --num-videos 128 --num-shards 1 --seed 2 --prefix test"
)]
struct SynthArgs {
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// frame (SequenceExample, uint8 rgb/audio per frame) or video (Example, mean_rgb/mean_audio).
    #[arg(long, default_value = "frame")]
    level: Level,
    /// Videos in all, spread over the shards.
    #[arg(long, default_value_t = 512)]
    num_videos: usize,
    /// Files to write (PREFIX0000.tfrecord, ...).
    #[arg(long, default_value_t = 4)]
    num_shards: usize,
    /// Classes; each has its own feature pattern, so the data is learnable.
    #[arg(long, default_value_t = 20)]
    num_classes: usize,
    /// Feature widths, rgb then audio.
    #[arg(long, value_delimiter = ',', default_value = "1024,128")]
    dims: Vec<usize>,
    /// Shortest video, in frames.
    #[arg(long, default_value_t = 1)]
    min_frames: usize,
    /// Longest video; above 300 exercises the reader's truncation.
    #[arg(long, default_value_t = 320)]
    max_frames: usize,
    /// Labels per video: 1 to this many.
    #[arg(long, default_value_t = 3)]
    max_labels: usize,
    /// Noise level relative to the class patterns (higher = harder).
    #[arg(long, default_value_t = 0.6)]
    noise: f64,
    /// Random seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// File name prefix: PREFIX0000.tfrecord, ...
    #[arg(long, default_value = "train")]
    prefix: String,
    /// Omit the labels key (test-split style).
    #[arg(long)]
    no_labels: bool,
    /// 2019 segment task data: class patterns per 5-frame segment, and rated segments
    /// (segment_start_times/end_times/labels/scores) for one label of each video. Frame level.
    #[arg(long)]
    segments: bool,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  yt8m evaluate --scores preds.npz                    # predictions [N,C] + labels [N,C]\n  yt8m evaluate --scores preds.npz --json --top-k 20\n  yt8m evaluate --kaggle submission.csv --labels 'validate*.tfrecord'\n  yt8m evaluate --scores scores.npy --ids ids.txt --labels 'validate*.tfrecord'\n  yt8m evaluate --scores preds.npz --metric-mode paddlevideo   # per-batch mean, batch 8\n  yt8m evaluate --segments --submission seg.csv --labels 'validate*' --top-n 100000"
)]
struct EvaluateArgs {
    /// .npz holding `predictions` [N,C] and `labels` [N,C].
    #[arg(long, conflicts_with = "kaggle")]
    scores: Option<PathBuf>,
    /// Kaggle submission CSV (VideoId,LabelConfidencePairs); needs --labels.
    #[arg(long, requires = "labels")]
    kaggle: Option<PathBuf>,
    /// Shards whose labels the predictions are scored against (files, dirs, globs, .list),
    /// matched by video id; with --scores, also give --ids.
    #[arg(long, num_args = 1..)]
    labels: Vec<std::ffi::OsString>,
    /// With --scores and --labels: a text file with one video id per score row.
    #[arg(long, requires = "scores")]
    ids: Option<PathBuf>,
    /// Classes of the label space (3862 for the 2018 vocabulary, 4716 for 2017). Default: the
    /// width of the --scores array; 3862 for --kaggle.
    #[arg(long, value_parser = parse_num_classes)]
    num_classes: Option<usize>,
    /// GAP@k (capped at the number of classes).
    #[arg(long, default_value_t = 20)]
    top_k: usize,
    /// official: sample-weighted, global GAP; paddlevideo: mean of per-batch metrics.
    #[arg(long, value_enum, default_value_t = MetricMode::Official)]
    metric_mode: MetricMode,
    /// Order of equal scores in AP: official (heap + random.seed(0) shuffle) or deterministic.
    #[arg(long, value_enum, default_value_t = TieOrder::Official)]
    tie_order: TieOrder,
    /// Evaluator batch size (official: emulates EvaluationMetrics batches, matters only for
    /// ties; paddlevideo: the test batch, default 8). 0 = default.
    #[arg(long, default_value_t = 0)]
    batch_size: usize,
    /// Print one JSON object (hit_at_one, perr, gap, map, ...; with --segments: map,
    /// per_class, ...).
    #[arg(long)]
    json: bool,
    /// 2019 segment task: the mAP of a `Class,Segments` submission (--submission, e.g. from
    /// `predict --segments --format kaggle-segments`) over the rated segments of --labels, as
    /// the starter's segment_eval_inference.py computes it.
    #[arg(long, requires_all = ["submission", "labels"], conflicts_with_all = ["scores", "kaggle"])]
    segments: bool,
    /// With --segments: the segment submission CSV.
    #[arg(long, requires = "segments")]
    submission: Option<PathBuf>,
    /// With --segments: count only the first N segments of each class line (the script's
    /// --top_n; Kaggle scored mAP@100000). 0 = all.
    #[arg(long, default_value_t = 0, requires = "segments")]
    top_n: usize,
    /// With --segments: official (the script's count, which never matches the last segment of
    /// a line ending in a newline) or complete (every listed segment counts).
    #[arg(long, value_enum, default_value_t = yt8m::segments::SegmentList::Official, requires = "segments")]
    segment_list: yt8m::segments::SegmentList,
}

/// Exit code for a failed write to standard output (`print!`'s panic message), after saying
/// what happened: a closed pipe (`yt8m inspect … | head -1`) ends quietly with 141, as Unix
/// tools killed by SIGPIPE do; any other failure (a full disk, `> /dev/full`) is an error, 1.
/// None for every other panic.
fn stdout_failure(panic_text: &str) -> Option<i32> {
    let err = panic_text.strip_prefix("failed printing to stdout: ")?;
    let broken_pipe = err.contains("Broken pipe") || err.contains("os error 32");
    Some(stdout_failed(err, broken_pipe))
}

/// Says why standard output failed (nothing for a closed pipe) and returns the exit code.
fn stdout_failed(err: &str, broken_pipe: bool) -> i32 {
    if broken_pipe {
        return 141;
    }
    eprintln!(
        "error: cannot write to standard output: {err}\n  hint: free space where the output goes, or redirect it elsewhere"
    );
    1
}

/// clap's own `exit` ignores failed writes, so `yt8m --help > /dev/full` exited 0 having printed
/// nothing: help and version are written here and a failed write is an error.
fn exit_on_clap(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let written = e
            .print()
            .and_then(|_| std::io::Write::flush(&mut std::io::stdout()));
        if let Err(err) = written {
            let broken_pipe = err.kind() == std::io::ErrorKind::BrokenPipe;
            std::process::exit(stdout_failed(&err.to_string(), broken_pipe));
        }
        std::process::exit(0);
    }
    e.exit()
}

fn main() {
    // A panic is a bug: say so plainly (what and where), without the default hook's backtrace
    // hint. Reader threads catch theirs and fail the command with the file's name.
    std::panic::set_hook(Box::new(|info| {
        let what = yt8m::error::panic_text(info.payload());
        // `print!` panics when standard output fails; that is the reader's doing, not a bug.
        if let Some(code) = stdout_failure(&what) {
            std::process::exit(code);
        }
        let at = info
            .location()
            .map(|l| format!(" ({}:{})", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "internal error{at}: {what}\n  hint: this is a bug in yt8m; please report it with the command and its inputs"
        );
    }));
    yt8m::threads::tune_allocator();
    let cli = Cli::try_parse().unwrap_or_else(|e| exit_on_clap(e));
    if let Err(e) = yt8m::threads::threads_from_env() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    // Colours only on a terminal and without NO_COLOR; RUN/train.log always plain.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(colour),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(|| yt8m::runtime::RunLogWriter)
                .with_target(false)
                .with_ansi(false),
        )
        .init();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    // libtorch's threads: the cores other processes leave free (a shared machine is the usual
    // case: with one busy process beside it, 2 threads on 2 cores ran at 0.4x of 1 thread).
    // Training keeps the count it starts with (its bits depend on it); inference follows the
    // load. A server has its own budget; YT8M_THREADS fixes the count for all.
    match &cli.cmd {
        Cmd::Train(_) | Cmd::Demo(_) => yt8m::threads::enable_adaptive_threads(false),
        Cmd::Test(_)
        | Cmd::Extract(_)
        | Cmd::Predict(_)
        | Cmd::Bench(_)
        | Cmd::Export(_)
        | Cmd::Info { .. }
        | Cmd::Engine { .. } => yt8m::threads::enable_adaptive_threads(true),
        _ => {}
    }
    match cli.cmd {
        Cmd::Inspect(a) => inspect(a),
        Cmd::Synth(a) => synth(a),
        Cmd::Extract(a) => extract(a),
        Cmd::Evaluate(a) => evaluate(a),
        Cmd::Train(a) => train(a),
        Cmd::Test(a) => test(a),
        Cmd::Convert(a) => convert(a),
        Cmd::Export(a) => export(a),
        Cmd::Predict(a) => predict(a),
        Cmd::Plot(a) => plot(a),
        Cmd::Serve(a) => serve(a),
        Cmd::Demo(a) => demo(a),
        Cmd::Bench(b) => bench(b),
        Cmd::Info { json } => info(json),
        Cmd::Config(c) => config_cmd(c),
        Cmd::Engine {
            model,
            device,
            precision,
            batch_size,
        } => engine(model, device, precision, batch_size),
    }
}

fn engine(
    model: PathBuf,
    device: DeviceSpec,
    precision: Precision,
    batch_size: usize,
) -> Result<()> {
    yt8m::threads::configure_torch_threads();
    let mut b = yt8m::bundle::load(&model, device.resolve()?)?;
    b.model.use_precision(precision);
    let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
    yt8m::serve::engine::run(
        &b,
        batch_size.max(1),
        &mut stdin.lock(),
        &mut std::io::BufWriter::new(stdout.lock()),
    )?;
    Ok(())
}

fn config_cmd(c: ConfigCmd) -> Result<()> {
    match c {
        ConfigCmd::List => {
            let width = yt8m::configs::BUNDLED
                .iter()
                .map(|b| b.name.len())
                .max()
                .unwrap_or(0);
            for b in yt8m::configs::BUNDLED {
                println!("{:<width$}  {}", b.name, b.summary);
            }
        }
        ConfigCmd::Show { name, out } => {
            let b = yt8m::configs::find(&name)?;
            match out {
                Some(p) => {
                    yt8m::runtime::write_atomic(&p, b.yaml.as_bytes())?;
                    eprintln!("wrote {} ({}) to {}", b.name, b.summary, p.display());
                }
                None => print!("{}", b.yaml),
            }
        }
    }
    Ok(())
}

fn info(json: bool) -> Result<()> {
    let i = yt8m::runtime::runtime_info();
    if json {
        println!("{}", serde_json::to_string_pretty(&i)?);
        return Ok(());
    }
    let or = |o: &Option<String>, none: &str| o.clone().unwrap_or_else(|| none.to_string());
    println!(
        "yt8m {} (features: {})",
        i.version,
        if i.features.is_empty() {
            "none".to_string()
        } else {
            i.features.join(", ")
        }
    );
    println!("libtorch loaded:     {}", or(&i.libtorch_dir, "unknown"));
    println!(
        "libtorch linked:     {}",
        i.libtorch_built_against.unwrap_or("unknown")
    );
    println!("CUDA backend loaded: {}", i.cuda_backend_loaded);
    println!(
        "CUDA available:      {} ({} GPU(s), cuDNN {})",
        i.cuda_available, i.cuda_devices, i.cudnn_available
    );
    println!(
        "CPU cores owned:     {} (libtorch threads {})",
        i.cores, i.torch_threads
    );
    println!(
        "NCCL:                {}",
        or(&i.nccl, "not built (feature nccl)")
    );
    println!("precision auto:      {}", i.precision_auto);
    println!("ffmpeg (extract):    {}", i.ffmpeg);
    Ok(())
}

fn inspect(a: InspectArgs) -> Result<()> {
    let files = expand_paths(&a.paths, None)?;
    let mut reports = Vec::new();
    for f in &files {
        reports.push(inspect_file(f, a.skip_corrupt)?);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "files": reports }))?
        );
    } else {
        print!("{}", render_table(&reports));
    }
    let bad: usize = reports.iter().map(|r| r.corrupt_records).sum();
    if bad > 0 {
        eprintln!("warning: skipped {bad} corrupt record(s); see the report");
    }
    Ok(())
}

fn evaluate_segments(a: EvaluateArgs) -> Result<()> {
    let submission = a
        .submission
        .context("--segments needs --submission FILE.csv")?;
    let rated = yt8m::segments::read_rated_segments(&a.labels)?;
    let r = yt8m::segments::evaluate_submission(&submission, &rated, a.top_n, a.segment_list)?;
    if !r.classes_without_positives.is_empty() {
        eprintln!(
            "warning: {} submitted class(es) have no positive rated segment in the labels and are left out of the mean (segment_eval_inference.py stops with a KeyError on them): {:?}",
            r.classes_without_positives.len(),
            &r.classes_without_positives[..r.classes_without_positives.len().min(10)]
        );
    }
    if !r.classes_not_submitted.is_empty() {
        eprintln!(
            "note: {} class(es) with positive rated segments are not in the submission (not in the mean, as in the script): {:?}",
            r.classes_not_submitted.len(),
            &r.classes_not_submitted[..r.classes_not_submitted.len().min(10)]
        );
    }
    if !r.repeated_classes.is_empty() {
        eprintln!(
            "warning: class line(s) repeated, the last one counts: {:?}",
            r.repeated_classes
        );
    }
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        yt8m::segments::print_report(&r, &mut std::io::stdout().lock())?;
    }
    Ok(())
}

fn synth(a: SynthArgs) -> Result<()> {
    let level = a.level;
    if a.dims.len() != 2 {
        bail!("--dims takes two widths (rgb,audio), got {:?}", a.dims);
    }
    if a.num_classes == 0 || a.num_videos == 0 {
        bail!("--num-classes and --num-videos must be positive");
    }
    if a.segments && level != Level::Frame {
        bail!("--segments rates 5-frame segments: it needs --level frame");
    }
    let cfg = SynthConfig {
        level,
        num_videos: a.num_videos,
        num_shards: a.num_shards,
        num_classes: a.num_classes,
        dims: a.dims,
        min_frames: a.min_frames,
        max_frames: a.max_frames,
        max_labels: a.max_labels,
        noise: a.noise,
        seed: a.seed,
        prefix: a.prefix,
        no_labels: a.no_labels,
        segments: a.segments,
        ..Default::default()
    };
    let mut progress = yt8m::runtime::Progress::with_total("synth", Some(cfg.num_videos));
    let s = write_synthetic_with(&a.out, &cfg, &mut |videos, _| progress.tick(videos))
        .with_context(|| format!("writing synthetic data to {}", a.out.display()))?;
    println!(
        "wrote {} videos ({} frames, {:.1} MB) in {} file(s) under {}",
        s.videos,
        s.frames,
        s.bytes as f64 / 1e6,
        s.files.len(),
        a.out.display()
    );
    Ok(())
}

fn extract(a: ExtractArgs) -> Result<()> {
    use yt8m::extract::write::{
        Event, WriteOptions, extract_all, inputs_from_csv, inputs_from_paths,
    };
    if !(a.fps.is_finite() && a.fps > 0.0) {
        bail!(
            "--fps must be a positive number of frames per second (got {})",
            a.fps
        );
    }
    if a.max_frames == 0 || a.videos_per_shard == 0 || a.batch_size == 0 {
        bail!("--max-frames, --videos-per-shard and --batch-size must be positive");
    }
    yt8m::threads::configure_torch_threads();
    let dir = match a.extractor.clone().or_else(yt8m::extract::default_dir) {
        Some(d) => d,
        None => bail!("give the extractor files' directory with --extractor (HOME is not set)"),
    };
    let inputs = match &a.csv {
        Some(csv) => inputs_from_csv(csv)?,
        None => inputs_from_paths(&a.videos)?,
    };
    let audio = if a.no_audio {
        yt8m::extract::AudioSource::Zeros
    } else {
        a.audio
    };
    let ex = yt8m::extract::Extractor::load_with(&dir, a.batch_size, audio)?;
    let opts = WriteOptions {
        level: a.level,
        audio,
        videos_per_shard: a.videos_per_shard,
        prefix: a.prefix.clone(),
        every_ms: 1000.0 / a.fps,
        max_frames: a.max_frames,
        skip_bad_videos: a.skip_bad_videos,
    };
    tracing::info!(
        "extracting {} video(s) with {} into {} (audio: {})",
        inputs.len(),
        dir.display(),
        a.out.display(),
        if ex.has_audio() {
            "VGGish"
        } else {
            "zeros, as the official extractor writes by default"
        }
    );
    let n = inputs.len();
    let mut progress = yt8m::runtime::Progress::with_total("extract", Some(n));
    let mut done = 0;
    let t0 = std::time::Instant::now();
    // Within a long video too: a line every 10 s (YT8M_PROGRESS_SECS) with its frames so far.
    let every = std::env::var("YT8M_PROGRESS_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(10.0);
    let mut last_line = std::time::Instant::now();
    let mut current = (0, PathBuf::new());
    let s = extract_all(&ex, &inputs, &a.out, &opts, &mut |e| match e {
        Event::Video(i, p) => {
            tracing::debug!("video {}/{n}: {}", i + 1, p.display());
            current = (i, p.to_path_buf());
        }
        Event::Frames(f, _) => {
            if last_line.elapsed().as_secs_f64() >= every {
                last_line = std::time::Instant::now();
                tracing::info!(
                    "extract: video {}/{n} ({}): {f} frames so far",
                    current.0 + 1,
                    current.1.display()
                );
            }
        }
        Event::VideoDone(_) => {
            done += 1;
            progress.tick(done);
        }
    })
    .with_context(|| format!("extracting into {}", a.out.display()))?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "wrote {} video(s), {} frames, in {} shard(s) under {} ({:.1} s, {:.1} frames/s){}",
        s.videos_written,
        s.frames_written,
        s.shards_written.len(),
        a.out.display(),
        secs,
        s.frames_written as f64 / secs.max(1e-9),
        if s.shards_kept.is_empty() {
            String::new()
        } else {
            format!(
                "; {} shard(s) kept from an earlier run",
                s.shards_kept.len()
            )
        }
    );
    if !s.bad_videos.is_empty() {
        println!(
            "skipped {} video(s) that could not be read:",
            s.bad_videos.len()
        );
        for (p, why) in &s.bad_videos {
            println!("  {}: {why}", p.display());
        }
    }
    Ok(())
}

fn evaluate(a: EvaluateArgs) -> Result<()> {
    if a.segments {
        return evaluate_segments(a);
    }
    let opt = EvalOptions {
        top_k: a.top_k,
        tie_order: a.tie_order,
        mode: a.metric_mode,
        batch_size: a.batch_size,
    };
    let (scored, ids) = if let (Some(p), false) = (&a.scores, a.labels.is_empty()) {
        let (s, r) =
            yt8m::evaluate::read_scores_with_labels(p, a.ids.as_deref(), &a.labels, a.num_classes)?;
        (yt8m::evaluate::AnyScored::F64(s), Some(r))
    } else if let Some(p) = &a.scores {
        (read_npz(p)?, None)
    } else if let Some(csv) = &a.kaggle {
        let (s, r) = read_kaggle_with_labels(csv, &a.labels, a.num_classes.unwrap_or(3862))?;
        (yt8m::evaluate::AnyScored::F64(s), Some(r))
    } else {
        bail!("give --scores FILE.npz or --kaggle FILE.csv --labels SHARDS");
    };
    if scored.num_videos() == 0 {
        bail!("no videos to evaluate");
    }
    let m = scored.evaluate(&opt);
    if let Some(r) = &ids {
        if !r.predicted_without_labels.is_empty() || !r.labelled_without_prediction.is_empty() {
            eprintln!(
                "warning: {} predicted id(s) have no labels (ignored), {} labelled video(s) have no prediction (no pairs; their positives still count); first: {:?} / {:?}",
                r.predicted_without_labels.len(),
                r.labelled_without_prediction.len(),
                r.predicted_without_labels
                    .iter()
                    .take(3)
                    .collect::<Vec<_>>(),
                r.labelled_without_prediction
                    .iter()
                    .take(3)
                    .collect::<Vec<_>>()
            );
        }
    }
    if a.json {
        let mut v = serde_json::to_value(&m)?;
        if let Some(r) = ids {
            v["ids"] = serde_json::to_value(r)?;
        }
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print!("{}", m.render());
    }
    Ok(())
}

fn plot(a: PlotArgs) -> Result<()> {
    let s = yt8m::plot::plot(&yt8m::plot::PlotOptions {
        runs: a.runs,
        out: a.output,
        metrics: a.metric,
        panel: a.panel_size,
    })?;
    let points: Vec<String> = s
        .points
        .iter()
        .map(|(m, n)| {
            format!(
                "{m} {}",
                n.iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            )
        })
        .collect();
    println!(
        "wrote {} ({}x{}; points per run: {})",
        s.out.display(),
        s.width,
        s.height,
        points.join(", ")
    );
    Ok(())
}

fn serve(a: ServeArgs) -> Result<()> {
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

fn demo(a: DemoArgs) -> Result<()> {
    demo_cli::run(&a.dir, &mut std::io::stdout())?;
    Ok(())
}

fn train(a: TrainArgs) -> Result<()> {
    let mut cfg = a.cfg.load()?;
    if let Some(d) = a.distributed {
        cfg.TRAIN.distributed = d;
    }
    if let Some(p) = a.precision {
        cfg.TRAIN.precision = p;
    }
    if a.print_config {
        print!("{}", cfg.to_yaml());
        return Ok(());
    }
    if a.dry_run {
        // The plan, then the same refusal a real run would give (exit 1, not a "0 steps"
        // success).
        let plan = yt8m::train::plan(&cfg)?;
        print!("{}", plan.text);
        if let Some(why) = plan.nothing_to_train {
            anyhow::bail!("{why}");
        }
        return Ok(());
    }
    let opts = TrainOptions {
        output: a.output,
        validate: a.validate,
        resume: a.resume,
        init_weights: a.weights,
        // No progress bar where nobody sees it: periodic log lines instead.
        quiet: a.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()),
        stop_after_epochs: a.stop_after_epochs,
        allow_config_change: a.allow_config_change,
    };
    let s = yt8m::train::train(cfg, &opts)?;
    if s.rank != 0 {
        return Ok(());
    }
    println!(
        "trained {} epoch(s), {} steps, {:.1} samples/s; last checkpoint {}{}",
        s.epochs,
        s.steps,
        s.samples_per_s,
        s.last_checkpoint.display(),
        s.best_checkpoint
            .map(|b| format!(", best {}", b.display()))
            .unwrap_or_default()
    );
    if let Some(v) = s.last_valid {
        println!("last validation: {}", serde_json::to_string(&v)?);
    }
    Ok(())
}

fn test(a: TestArgs) -> Result<()> {
    let mut cfg = a.cfg.load_for(&a.weights)?;
    if let Some(m) = a.metric_mode {
        cfg.METRIC.mode = m;
    }
    let weights = yt8m::checkpoint::weights_path(&a.weights)?;
    let r = yt8m::infer::test_run(&cfg, &weights, a.paddle_batch, a.precision)?;
    let report_path = a
        .report
        .unwrap_or_else(|| yt8m::infer::default_report_path(&weights));
    let text = serde_json::to_string_pretty(&r)?;
    yt8m::runtime::write_atomic(&report_path, text.as_bytes())?;
    if a.json {
        println!("{text}");
    } else {
        print!("{}", r.metrics.render());
        println!(
            "  loss/video {:.4}; report written to {}",
            r.loss_per_video,
            report_path.display()
        );
    }
    Ok(())
}

fn convert(a: ConvertArgs) -> Result<()> {
    let names = yt8m::convert::convert_pdparams(&a.input, &a.output)?;
    let n: i64 = names.iter().map(|(_, s)| s.iter().product::<i64>()).sum();
    println!(
        "wrote {} tensors ({n} parameters) to {}",
        names.len(),
        a.output.display()
    );
    Ok(())
}

fn bench(b: BenchCmd) -> Result<()> {
    match b {
        BenchCmd::Eval {
            videos,
            classes,
            python,
            reference,
        } => {
            print!(
                "{}",
                bench::bench_eval(
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
            print!("{}", bench::bench_predict(&o)?);
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
                bench::bench_extract(&bench::ExtractBenchOptions {
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
                bench::bench_read(
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

fn export(a: ExportArgs) -> Result<()> {
    let cfg = a.cfg.load_for(&a.weights)?;
    yt8m::threads::configure_torch_threads();
    let mut model = yt8m::model::Model::new(cfg.architecture(), tch::Device::Cpu, tch::Kind::Float);
    let weights = yt8m::checkpoint::weights_path(&a.weights)?;
    model.load_weights(&weights)?;
    let m = yt8m::bundle::export(
        &cfg,
        &model,
        &weights,
        &yt8m::bundle::ExportOptions {
            output: a.out.clone(),
            vocabulary: a.vocabulary,
            onnx: !a.no_onnx,
            onnx_input: a.onnx_input,
        },
    )?;
    println!(
        "bundle written to {}: {}",
        a.out.display(),
        m.files.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

fn predict(a: PredictArgs) -> Result<()> {
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
                // `yt8m predict … | head`: a closed pipe ends quietly, as print!'s does.
                Err(e) if e.to_string().contains("Broken pipe") => {
                    std::process::exit(stdout_failed(&e.to_string(), true))
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

const FULL_CONFIG: &str = include_str!("../configs/attention_lstm_youtube8m.yaml");

fn model_bench_options(
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

/// `--num-classes`: 1 to 1,000,000.
fn parse_num_classes(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=yt8m::config::MAX_CLASSES).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a class count from 1 to {} (YouTube-8M: 3862 in 2018, 4716 in 2017)",
            yt8m::config::MAX_CLASSES
        )),
    }
}
