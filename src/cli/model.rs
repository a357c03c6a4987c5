//! `train`, `test`, `convert`, `export`, `plot`: the verbs over a model's life, and the
//! config arguments they share (`-c`, `-o`, `--device`).

use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;
use yt8m::config::{Config, DeviceSpec, DistributedMode};
use yt8m::kinds::Precision;
use yt8m::metrics::MetricMode;
use yt8m::train::TrainOptions;

/// `-c` of the verbs whose `-w` may be a checkpoint directory (`test`, `export`).
pub(crate) const CONFIG_OR_CHECKPOINT: &str = "YAML config (PaddleVideo's attention_lstm_youtube8m.yaml layout + yt8m keys); \
    optional when -w is a checkpoint directory, whose own config.yaml is then used";

/// The config every model verb starts from: a YAML file, `-o` overrides, and the device.
#[derive(Args)]
pub(crate) struct ConfigArgs {
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
pub(crate) struct TrainArgs {
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
pub(crate) struct TestArgs {
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
pub(crate) struct ConvertArgs {
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
pub(crate) struct ExportArgs {
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
    after_help = "Each run's metrics.jsonl is read (TensorBoard: `tensorboard --logdir RUN/tb`). Train-step \
                  metrics are drawn against the global step, epoch and validation metrics against the epoch.\n\n\
                  Examples:\n  yt8m plot demo/run --out demo/curves.png\n  \
                  yt8m plot demo/run demo/run --metric loss,gap,hit_at_one --out curves.png\n  \
                  yt8m plot demo/run --metric lr,grad_norm --panel-size 800x500 --out lr.png"
)]
pub(crate) struct PlotArgs {
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

pub(crate) fn parse_size(s: &str) -> std::result::Result<(u32, u32), String> {
    let err = || format!("'{s}' is not WIDTHxHEIGHT (e.g. 640x480)");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(err)?;
    Ok((
        w.trim().parse().map_err(|_| err())?,
        h.trim().parse().map_err(|_| err())?,
    ))
}

pub(crate) fn train(a: TrainArgs) -> Result<()> {
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

pub(crate) fn test(a: TestArgs) -> Result<()> {
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

pub(crate) fn convert(a: ConvertArgs) -> Result<()> {
    let names = yt8m::convert::convert_pdparams(&a.input, &a.output)?;
    let n: i64 = names.iter().map(|(_, s)| s.iter().product::<i64>()).sum();
    println!(
        "wrote {} tensors ({n} parameters) to {}",
        names.len(),
        a.output.display()
    );
    Ok(())
}

pub(crate) fn export(a: ExportArgs) -> Result<()> {
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

pub(crate) fn plot(a: PlotArgs) -> Result<()> {
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
