//! Running a model over data without autograd: scores for `test`, `predict` and validation.

use crate::data::batch::Loader;
use crate::error::{Error, Result};
use crate::metrics::{Evaluator, MetricMode, Metrics, TieOrder};
use crate::model::{Model, batch_inputs};
use std::path::{Path, PathBuf};

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
    /// One line per skipped record / byte range.
    pub skipped: Vec<String>,
}

/// Puts the rows of length-bucketed batches back into stream (file) order and releases them in
/// the loader's unbucketed batch boundaries (consecutive chunks of `bs` positions), so metrics
/// whose value depends on order — the official evaluator's tie order, PaddleVideo's per-batch
/// means — equal those of an unbucketed pass while the model computes on little padding.
pub struct InOrder {
    bs: u64,
    next: u64,
    rows: std::collections::HashMap<u64, (Vec<f64>, Vec<u8>)>,
}

impl InOrder {
    pub fn new(batch_size: usize) -> Self {
        InOrder {
            bs: batch_size.max(1) as u64,
            next: 0,
            rows: Default::default(),
        }
    }

    /// Adds one row (`scores` `[C]`, `labels` `[C]`) at stream position `pos`.
    pub fn push(&mut self, pos: u64, scores: Vec<f64>, labels: Vec<u8>) {
        self.rows.insert(pos, (scores, labels));
    }

    /// The next complete chunk in order (`[n, C]` scores and labels), if every row of it has
    /// arrived; with `finish`, the last, shorter chunk too.
    pub fn pop(&mut self, finish: bool) -> Result<Option<(Vec<f64>, Vec<u8>)>> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let end = self.next + self.bs;
        let n = (self.next..end)
            .take_while(|p| self.rows.contains_key(p))
            .count() as u64;
        if n < self.bs && !(finish && n as usize == self.rows.len()) {
            if finish {
                return Err(Error::Internal(format!(
                    "internal: evaluation rows out of order (position {} missing)",
                    self.next + n
                )));
            }
            return Ok(None);
        }
        let (mut s, mut l) = (Vec::new(), Vec::new());
        for p in self.next..self.next + n {
            let (a, b) = self.rows.remove(&p).expect("checked above");
            s.extend(a);
            l.extend(b);
        }
        self.next += n;
        Ok(Some((s, l)))
    }
}

/// Runs `model` over `loader` (epoch 0 order) and scores sigmoid probabilities as
/// PaddleVideo and the official evaluator both do. Bucketed loaders are fine: rows are put
/// back into file order before they reach the metrics.
pub fn evaluate_model(model: &Model, loader: &Loader, s: &EvalSettings) -> Result<EvalResult> {
    let c = loader.spec().num_classes;
    let mut ev = match s.mode {
        MetricMode::Official => Evaluator::new(c, s.top_k, s.tie_order),
        MetricMode::Paddlevideo => Evaluator::paddlevideo(c, s.top_k, s.paddle_batch, s.tie_order),
    };
    let mut loss = 0.0;
    let mut videos = 0;
    let mut progress = crate::runtime::Progress::new("evaluating", loader.files());
    let mut it = loader.epoch(0);
    let mut order = InOrder::new(loader.config().batch_size);
    tch::no_grad(|| -> Result<()> {
        for b in it.by_ref() {
            let b = b?;
            progress.tick(videos);
            if b.has_labels.iter().any(|h| !h) {
                return Err(Error::Invalid(format!(
                    "video '{}' has no labels key (a test split?): metrics need labels; use `yt8m predict` for unlabelled data",
                    b.ids[b.has_labels.iter().position(|h| !h).unwrap()]
                )));
            }
            crate::threads::adapt_torch_threads();
            let inp = batch_inputs(&b, model.device(), model.kind);
            // bf16 inference: sigmoid, loss and metrics in float32.
            let logits = crate::model::widen(model.forward(&inp, false));
            let labels = inp.labels.to_kind(logits.kind());
            loss += crate::model::bce_sum(&logits, &labels).double_value(&[]);
            let probs = logits
                .sigmoid()
                .to_kind(tch::Kind::Float)
                .to_kind(tch::Kind::Double)
                .to_device(tch::Device::Cpu);
            let scores = Vec::<f64>::try_from(probs.flatten(0, -1))?;
            for (i, &pos) in b.positions.iter().enumerate() {
                let row = i * c..(i + 1) * c;
                let labels = b.labels[row.clone()].iter().map(|&x| x as u8).collect();
                order.push(pos, scores[row].to_vec(), labels);
            }
            while let Some((s, l)) = order.pop(false)? {
                ev.accumulate(&s, &l);
            }
            videos += b.len();
        }
        while let Some((s, l)) = order.pop(true)? {
            ev.accumulate(&s, &l);
        }
        Ok(())
    })?;
    let skipped = it.stats().skipped.len();
    let lost = it.stats().loss_report();
    if let Some(w) = it.stats().frame_count_warning() {
        tracing::warn!("{w}");
    }
    for l in &lost {
        tracing::warn!("skipped: {l}");
    }
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
        skipped: lost,
    })
}

/// The JSON report of `yt8m test`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct TestReport {
    pub metrics: Metrics,
    pub num_videos: usize,
    pub loss_per_video: f64,
    pub weights: String,
    pub weights_sha256: String,
    pub skipped_records: usize,
    /// The compute type as `--precision` spells it: fp32, bf16 (fp64 for parity runs).
    #[serde(default)]
    pub precision: String,
    /// Every skipped record and byte range (`--skip-corrupt`), so a report never hides a loss.
    pub skipped: Vec<String>,
    pub config: serde_json::Value,
    pub date_unix: u64,
}

/// `yt8m test`: the config's test split through the model.
pub fn test_run(
    cfg: &crate::config::Config,
    weights: &std::path::Path,
    paddle_batch: usize,
    precision: crate::kinds::Precision,
) -> Result<TestReport> {
    let device = cfg.TRAIN.device.resolve()?;
    let kind = cfg.TRAIN.dtype.kind();
    crate::threads::configure_torch_threads();
    let mut model = Model::new(cfg.architecture(), device, kind);
    let weights = &crate::checkpoint::weights_path(weights)?;
    model.load_weights(weights)?;
    if let (tch::Kind::BFloat16, why) = model.use_precision(precision) {
        tracing::info!("computing in bf16 ({why}); sigmoid, loss and metrics in float32");
    }
    let loader = cfg.loader(crate::config::Split::Test)?;
    let s = EvalSettings {
        top_k: cfg.METRIC.gap_top_k,
        tie_order: cfg.METRIC.tie_order,
        mode: cfg.METRIC.mode,
        paddle_batch,
    };
    let r = evaluate_model(&model, &loader, &s)?;
    let wfile = crate::model::weights_file(weights);
    Ok(TestReport {
        num_videos: r.videos,
        loss_per_video: r.loss / r.videos as f64,
        weights: wfile.display().to_string(),
        weights_sha256: crate::runtime::sha256_file(&wfile)?,
        skipped_records: r.skipped_records,
        precision: crate::kinds::kind_name(model.kind).into(),
        skipped: r.skipped,
        config: serde_json::to_value(cfg).unwrap_or_default(),
        date_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        metrics: r.metrics,
    })
}

/// Where `yt8m test` writes its report by default: the run directory for a checkpoint of a
/// run (`RUN/checkpoints/NAME` → `RUN/test_report.json`; checkpoints stay exactly what
/// training wrote), else beside the weights file.
pub fn default_report_path(weights: &Path) -> PathBuf {
    let dir = weights_dir(weights);
    match dir.parent() {
        Some(ck)
            if ck.file_name().is_some_and(|n| n == "checkpoints")
                && dir.join("state.json").is_file() =>
        {
            ck.parent()
                .unwrap_or(Path::new("."))
                .join("test_report.json")
        }
        _ => dir.join("test_report.json"),
    }
}

/// The directory holding the weights: the checkpoint directory, or the file's directory.
fn weights_dir(weights: &Path) -> PathBuf {
    if weights.is_dir() {
        weights.to_path_buf()
    } else {
        weights.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

/// The test report that belongs to `weights`: the default location (then the old one, inside
/// the checkpoint), used only when its recorded sha256 is the weights file's, so a model card
/// never shows another checkpoint's metrics.
pub fn report_for(weights: &Path) -> Option<(PathBuf, TestReport)> {
    let sha = crate::runtime::sha256_file(&crate::model::weights_file(weights)).ok()?;
    let inside = weights_dir(weights).join("test_report.json");
    for p in [default_report_path(weights), inside] {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        match serde_json::from_slice::<TestReport>(&bytes) {
            Ok(r) if r.weights_sha256 == sha => return Some((p, r)),
            Ok(_) => tracing::info!(
                "{} belongs to other weights (sha256 differs); not used for the model card",
                p.display()
            ),
            Err(e) => tracing::warn!("{} is not a yt8m test report ({e})", p.display()),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::InOrder;

    #[test]
    fn rows_come_back_in_stream_order_and_original_batch_boundaries() {
        // 7 rows (batches of 3 in file order: 0..3, 3..6, 6) arriving length-sorted.
        let mut o = InOrder::new(3);
        let mut chunks = Vec::new();
        for &p in &[5u64, 1, 6, 0, 3, 2, 4] {
            o.push(p, vec![p as f64, -(p as f64)], vec![p as u8, 0]);
            while let Some((s, l)) = o.pop(false).unwrap() {
                assert_eq!(s.len(), l.len());
                chunks.push(s.iter().step_by(2).map(|&x| x as u64).collect::<Vec<_>>());
            }
        }
        while let Some((s, _)) = o.pop(true).unwrap() {
            chunks.push(s.iter().step_by(2).map(|&x| x as u64).collect::<Vec<_>>());
        }
        assert_eq!(chunks, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        // A hole at the end is an error, not silently dropped rows.
        let mut o = InOrder::new(2);
        o.push(1, vec![0.0], vec![0]);
        assert!(o.pop(true).is_err());
    }
}
