//! `yt8m demo`: the whole flow on an embedded default — synthetic shards in the official
//! format, inspect, train a small AttentionLSTM with validation, test with the official and
//! PaddleVideo metrics, export a bundle with ONNX, predict with it. On the binary's side (issue
//! #28: it narrates with banners); tests/train.rs runs it as the README's first command does.

use std::io::Write;
use std::path::{Path, PathBuf};
use yt8m::config::Config;
use yt8m::data::inspect::{inspect_file, render_table};
use yt8m::data::sources::expand_paths;
use yt8m::data::synth::{SynthConfig, write_synthetic};
use yt8m::error::{Error, Result};
use yt8m::metrics::{MetricMode, Metrics};
use yt8m::runtime::write_atomic;
use yt8m::train::TrainOptions;

const DEMO_CONFIG: &str = include_str!("../../configs/demo_small.yaml");

/// Runs the demo under `dir`, narrating to `out`: data in `dir/data`, the run in `dir/run`, the
/// bundle in `dir/bundle`, the curves in `dir/curves.png`.
pub fn run(dir: &Path, out: &mut dyn Write) -> Result<()> {
    let t0 = std::time::Instant::now();
    let data = make_data(dir, out)?;
    let (cfg, run, best, _curves) = train_with_curves(dir, &data, out)?;
    test_both_ways(&cfg, &best, out)?;
    export_and_predict(dir, &data, &cfg, &best, out)?;
    writeln!(
        out,
        "\ndemo finished in {:.0} s; run directory {}",
        t0.elapsed().as_secs_f64(),
        run.display()
    )
    .map_err(out_err)?;
    Ok(())
}

fn out_err(e: std::io::Error) -> Error {
    Error::io("<demo output>", e)
}

/// Step 1: synthetic train and test shards under `dir/data`, and their `inspect` table.
fn make_data(dir: &Path, out: &mut dyn Write) -> Result<PathBuf> {
    let data = dir.join("data");
    writeln!(
        out,
        "[demo 1/5] synthetic YouTube-8M frame-level shards (official SequenceExample format) under {}",
        data.display()
    ).map_err(out_err)?;
    for (split, n, shards, seed) in [("train", 384usize, 4usize, 1u64), ("test", 128, 1, 2)] {
        let cfg = SynthConfig {
            num_videos: n,
            num_shards: shards,
            seed,
            prefix: split.into(),
            ..Default::default()
        };
        let s = write_synthetic(&data.join(split), &cfg)?;
        writeln!(
            out,
            "  {split}: {} videos, {} frames, {} shard(s)",
            s.videos,
            s.frames,
            s.files.len()
        )
        .map_err(out_err)?;
    }
    let files = expand_paths(
        &[
            data.join("train").display().to_string(),
            data.join("test").display().to_string(),
        ],
        None,
    )?;
    let reports: Vec<_> = files
        .iter()
        .map(|f| inspect_file(f, false))
        .collect::<Result<_, _>>()?;
    write!(out, "{}", render_table(&reports)).map_err(out_err)?;

    Ok(data)
}

/// Step 2: train configs/demo_small.yaml with validation into `dir/run`, and draw its curves.
/// Returns the config, the run directory, the best checkpoint and the curves' PNG.
fn train_with_curves(
    dir: &Path,
    data: &Path,
    out: &mut dyn Write,
) -> Result<(Config, PathBuf, PathBuf, PathBuf)> {
    writeln!(
        out,
        "\n[demo 2/5] train a small AttentionLSTM (configs/demo_small.yaml) with validation"
    )
    .map_err(out_err)?;
    let overrides = vec![
        format!("DATASET.train.file_path={}", data.join("train").display()),
        format!("DATASET.valid.file_path={}", data.join("test").display()),
        format!("DATASET.test.file_path={}", data.join("test").display()),
    ];
    let cfg = Config::from_yaml("configs/demo_small.yaml", DEMO_CONFIG, &overrides)?;
    let run = dir.join("run");
    if run.exists() {
        std::fs::remove_dir_all(&run).map_err(|e| Error::io(&run, e))?;
    }
    let s = yt8m::train::train(
        cfg.clone(),
        &TrainOptions {
            output: run.clone(),
            validate: true,
            quiet: true,
            ..Default::default()
        },
    )?;
    writeln!(
        out,
        "  {} epochs, {} steps, {:.0} samples/s; best checkpoint {}",
        s.epochs,
        s.steps,
        s.samples_per_s,
        s.best_checkpoint
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    )
    .map_err(out_err)?;
    let curves = dir.join("curves.png");
    yt8m::plot::plot(&yt8m::plot::PlotOptions {
        runs: vec![run.clone()],
        out: curves.clone(),
        metrics: vec![yt8m::plot::Metric::Loss, yt8m::plot::Metric::Gap],
        panel: (640, 400),
    })?;
    writeln!(
        out,
        "  curves: {} (yt8m plot); TensorBoard: tensorboard --logdir {}",
        curves.display(),
        run.join("tb").display()
    )
    .map_err(out_err)?;

    let best = s.best_checkpoint.unwrap_or(s.last_checkpoint);
    Ok((cfg, run, best, curves))
}

/// Steps 3 and 4: the best checkpoint's official metrics (its report written where `yt8m
/// test` writes it, so the bundle's model card shows them) beside the class-prior baseline,
/// then PaddleVideo's per-batch metrics. Returns the official metrics and the baseline GAP.
fn test_both_ways(cfg: &Config, best: &Path, out: &mut dyn Write) -> Result<(Metrics, f64)> {
    writeln!(
        out,
        "\n[demo 3/5] test the best checkpoint with the official metrics"
    )
    .map_err(out_err)?;
    let r = yt8m::infer::test_run(cfg, best, 8, yt8m::kinds::Precision::Fp32)?;
    write!(out, "{}", r.metrics.render()).map_err(out_err)?;
    let chance = yt8m::evaluate::class_prior_gap(&cfg)?;
    writeln!(
        out,
        "  class-prior baseline (every video scored by class frequency): GAP {chance:.4}"
    )
    .map_err(out_err)?;

    write_atomic(
        &yt8m::infer::default_report_path(&best),
        serde_json::to_string_pretty(&r)
            .expect("a report serializes")
            .as_bytes(),
    )?;
    writeln!(
        out,
        "\n[demo 4/5] the same checkpoint with PaddleVideo's per-batch metrics (batch 8)"
    )
    .map_err(out_err)?;
    let mut pv = cfg.clone();
    pv.METRIC.mode = MetricMode::Paddlevideo;
    let r2 = yt8m::infer::test_run(&pv, &best, 8, yt8m::kinds::Precision::Fp32)?;
    write!(out, "{}", r2.metrics.render()).map_err(out_err)?;

    Ok((r.metrics, chance))
}

/// Step 5: export a bundle of the best checkpoint to `dir/bundle` and predict the first test
/// videos with it.
fn export_and_predict(
    dir: &Path,
    data: &Path,
    cfg: &Config,
    best: &Path,
    out: &mut dyn Write,
) -> Result<PathBuf> {
    writeln!(
        out,
        "\n[demo 5/5] export a bundle (safetensors, ONNX, vocabulary, model card) and predict with it"
    ).map_err(out_err)?;
    let bundle_dir = dir.join("bundle");
    let mut model = yt8m::model::Model::new(cfg.architecture(), tch::Device::Cpu, tch::Kind::Float);
    model.load_weights(&best)?;
    let m = yt8m::bundle::export(
        &cfg,
        &model,
        &best,
        &yt8m::bundle::ExportOptions {
            output: bundle_dir.clone(),
            vocabulary: None,
            onnx: true,
            onnx_input: yt8m::onnx::InputKind::Uint8,
        },
    )?;
    writeln!(
        out,
        "  {}: {}",
        bundle_dir.display(),
        m.files.keys().cloned().collect::<Vec<_>>().join(", ")
    )
    .map_err(out_err)?;
    let b = yt8m::bundle::load(&bundle_dir, tch::Device::Cpu)?;
    let test_shard = data.join("test").join("test0000.tfrecord");
    let opt = yt8m::predict::PredictOptions {
        top_k: 3,
        batch_size: 64,
        bucket_window: yt8m::predict::DEFAULT_BUCKET_WINDOW,
        format: yt8m::predict::Format::Table,
        score: yt8m::predict::ScoreFn::Sigmoid,
        skip_corrupt: false,
        show_labels: true,
        segments: None,
        video: Default::default(),
    };
    let mut predicted = Vec::new();
    yt8m::predict::predict(
        &b,
        &[test_shard.display().to_string()],
        &opt,
        &mut predicted,
    )?;
    // The first three videos (top 3 classes and the true labels each).
    let text = String::from_utf8_lossy(&predicted);
    for line in text.lines().take(3 * 5) {
        writeln!(out, "{line}").map_err(out_err)?;
    }
    Ok(bundle_dir)
}

#[derive(clap::Args)]
#[command(
    after_help = "Makes synthetic frame-level shards, trains a small AttentionLSTM with validation, tests it, \
                  exports a bundle, predicts with it and plots the curves, all under --dir.\n\n\
                  Examples:\n  yt8m demo\n  yt8m demo --dir /tmp/yt8m-demo"
)]
pub(crate) struct DemoArgs {
    /// Working directory for data and runs.
    #[arg(long, default_value = "demo")]
    dir: PathBuf,
}

pub(crate) fn demo(a: DemoArgs) -> anyhow::Result<()> {
    run(&a.dir, &mut std::io::stdout())?;
    Ok(())
}
