//! Running a model over data without autograd: scores for `test`, `predict` and validation.

use crate::data::batch::Loader;
use crate::error::{Error, Result};
use crate::metrics::{Evaluator, MetricMode, Metrics, TieOrder};
use crate::model::{Model, batch_inputs};

/// Evaluation settings.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    pub top_k: usize,
    pub tie_order: TieOrder,
    pub mode: MetricMode,
    /// PaddleVideo mode: metric batch.
    pub paddle_batch: usize,
}

/// Metrics plus the summed loss over a split.
pub struct EvalResult {
    pub metrics: Metrics,
    pub loss: f64,
    pub videos: usize,
    pub skipped_records: usize,
}

/// Runs `model` over `loader` (epoch 0 order) and scores sigmoid probabilities as
/// PaddleVideo and the official evaluator both do.
pub fn evaluate_model(model: &Model, loader: &Loader, s: &EvalSettings) -> Result<EvalResult> {
    let c = loader.spec().num_classes;
    let mut ev = match s.mode {
        MetricMode::Official => Evaluator::new(c, s.top_k, s.tie_order),
        MetricMode::Paddlevideo => Evaluator::paddlevideo(c, s.top_k, s.paddle_batch, s.tie_order),
    };
    let mut loss = 0.0;
    let mut videos = 0;
    let mut it = loader.epoch(0);
    tch::no_grad(|| -> Result<()> {
        for b in it.by_ref() {
            let b = b?;
            if b.has_labels.iter().any(|h| !h) {
                return Err(Error::Invalid(format!(
                    "video '{}' has no labels key (a test split?): metrics need labels; use `yt8m predict` for unlabelled data",
                    b.ids[b.has_labels.iter().position(|h| !h).unwrap()]
                )));
            }
            let inp = batch_inputs(&b, model.device(), model.kind);
            let logits = model.forward(&inp, false);
            loss += crate::model::attention_lstm::bce_sum(&logits, &inp.labels).double_value(&[]);
            let probs = logits
                .sigmoid()
                .to_kind(tch::Kind::Float)
                .to_kind(tch::Kind::Double)
                .to_device(tch::Device::Cpu);
            let scores = Vec::<f64>::try_from(probs.flatten(0, -1))?;
            let labels: Vec<u8> = b.labels.iter().map(|&x| x as u8).collect();
            ev.accumulate(&scores, &labels);
            videos += b.len();
        }
        Ok(())
    })?;
    let skipped = it.stats().skipped.len();
    let zero = it.stats().zero_frames.len();
    if zero > 0 {
        tracing::warn!(
            "left out {zero} video(s) with zero frames (no prediction possible), e.g. {}",
            it.stats().zero_frames[0]
        );
    }
    if videos == 0 {
        return Err(Error::Invalid("no videos were read".into()));
    }
    Ok(EvalResult {
        metrics: ev.finish(),
        loss,
        videos,
        skipped_records: skipped,
    })
}

/// The JSON report of `yt8m test`.
#[derive(Debug, serde::Serialize)]
pub struct TestReport {
    pub metrics: Metrics,
    pub num_videos: usize,
    pub loss_per_video: f64,
    pub weights: String,
    pub weights_sha256: String,
    pub skipped_records: usize,
    pub config: serde_json::Value,
    pub date_unix: u64,
}

/// `yt8m test`: the config's test split through the model.
pub fn test_run(
    cfg: &crate::config::Config,
    weights: &std::path::Path,
    paddle_batch: usize,
) -> Result<TestReport> {
    let device = crate::runtime::parse_device(&cfg.TRAIN.device)?;
    let kind = crate::runtime::parse_kind(&cfg.TRAIN.dtype)?;
    crate::threads::configure_torch_threads();
    let mut model = Model::new(cfg.architecture(), device, kind);
    crate::train::load_weights_any(&mut model, weights)?;
    let loader = crate::train::split_loader(cfg, "test")?;
    let s = EvalSettings {
        top_k: cfg.METRIC.gap_top_k,
        tie_order: cfg.METRIC.tie_order,
        mode: cfg.METRIC.mode,
        paddle_batch,
    };
    let r = evaluate_model(&model, &loader, &s)?;
    let wfile = if weights.is_dir() {
        weights.join("model.safetensors")
    } else {
        weights.to_path_buf()
    };
    Ok(TestReport {
        num_videos: r.videos,
        loss_per_video: r.loss / r.videos as f64,
        weights: wfile.display().to_string(),
        weights_sha256: crate::runtime::sha256_file(&wfile)?,
        skipped_records: r.skipped_records,
        config: serde_json::to_value(cfg).unwrap_or_default(),
        date_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        metrics: r.metrics,
    })
}
