//! The `yt8m` command line: the verbs, the exit codes and the dispatch; each verb's arguments
//! and its call into the library are in `cli/`.

mod cli;

use anyhow::Result;
use clap::{Parser, Subcommand};
use cli::bench_cmd::{BenchCmd, bench};
use cli::data::{
    EvaluateArgs, ExtractArgs, InspectArgs, SynthArgs, evaluate, extract, inspect, synth,
};
use cli::demo::{DemoArgs, demo};
use cli::model::{
    ConvertArgs, ExportArgs, PlotArgs, TestArgs, TrainArgs, convert, export, plot, test, train,
};
use cli::serving::{PredictArgs, ServeArgs, engine, predict, serve};
use cli::tools::{ConfigCmd, config_cmd, info};
use std::path::PathBuf;
use yt8m::config::DeviceSpec;
use yt8m::kinds::Precision;

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
pub(crate) fn stdout_failed(err: &str, broken_pipe: bool) -> i32 {
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
