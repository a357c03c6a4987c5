//! A training run's record, written by rank 0: `RUN/metrics.jsonl` (one tagged JSON line per
//! step, epoch or resume; read back by `yt8m plot` and the tests) and the same scalars as
//! TensorBoard events (`RUN/tb/`).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// One line of `RUN/metrics.jsonl` (tagged by `kind`), written by rank 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogRecord {
    /// Every `log_interval` steps.
    TrainStep {
        epoch: usize,
        step: usize,
        global_step: usize,
        /// Summed over the batch (PaddleVideo's loss).
        loss: f64,
        loss_per_video: f64,
        lr: f64,
        samples_per_s: f64,
        data_wait_share: f64,
        /// The global gradient norm (after averaging over workers, before clipping).
        grad_norm: Option<f64>,
        workers: usize,
    },
    /// At the end of each epoch.
    Epoch {
        epoch: usize,
        steps: usize,
        videos: usize,
        train_loss_per_video: f64,
        seconds: f64,
        samples_per_s: f64,
        data_wait_share: f64,
        skipped_records: usize,
        workers: usize,
        lr: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid: Option<ValidRecord>,
        /// Every skipped record and byte range (`--skip-corrupt`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        skipped: Vec<String>,
    },
    /// A `--resume`: the epochs after it continue from the checkpoint, they repeat nothing.
    Resume {
        from: String,
        epoch: usize,
        global_step: usize,
    },
}

/// Validation metrics of one epoch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ValidRecord {
    pub hit_at_one: f64,
    pub perr: f64,
    pub gap: f64,
    pub map: Option<f64>,
    /// Per video.
    pub loss: f64,
    pub videos: usize,
    pub mode: crate::metrics::MetricMode,
}

impl ValidRecord {
    pub fn metric(&self, m: crate::config::BestMetric) -> Option<f64> {
        use crate::config::BestMetric::*;
        match m {
            Gap => Some(self.gap),
            HitAtOne => Some(self.hit_at_one),
            Perr => Some(self.perr),
            Map => self.map,
            Loss => Some(self.loss),
        }
    }
}

/// Reads a run's `metrics.jsonl` back (for plots, tests, tools).
pub fn read_log(path: &Path) -> Result<Vec<LogRecord>> {
    let text = crate::data::files::read_regular_text(path, 16 << 30, "metrics.jsonl log")?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Error::Corrupt(format!(
                    "{}:{}: not a yt8m log record: {e}",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// Rank 0's record of a run: `metrics.jsonl` (the full records) and TensorBoard scalars
/// (`RUN/tb/`, see [`crate::tensorboard`]).
pub(super) struct RunLog {
    json: std::fs::File,
    tb: Option<crate::tensorboard::EventWriter>,
}

impl RunLog {
    pub(super) fn open(run: &Path) -> Result<Self> {
        let path = run.join("metrics.jsonl");
        let json = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let tb = crate::tensorboard::EventWriter::create(&run.join("tb"))?;
        Ok(Self { json, tb: Some(tb) })
    }

    /// Appends `r`; `global_step` places epoch records on TensorBoard's step axis.
    pub(super) fn write(&mut self, r: &LogRecord, global_step: usize) {
        let _ = writeln!(
            self.json,
            "{}",
            serde_json::to_string(r).expect("records serialize")
        );
        let _ = self.json.flush();
        let mut scalars: Vec<(&str, f64)> = Vec::new();
        match r {
            LogRecord::TrainStep {
                loss_per_video,
                lr,
                samples_per_s,
                data_wait_share,
                grad_norm,
                ..
            } => {
                scalars.extend([
                    ("train/loss_per_video", *loss_per_video),
                    ("train/lr", *lr),
                    ("train/samples_per_s", *samples_per_s),
                    ("train/data_wait", *data_wait_share),
                ]);
                if let Some(g) = grad_norm {
                    scalars.push(("train/grad_norm", *g));
                }
            }
            LogRecord::Epoch {
                train_loss_per_video,
                samples_per_s,
                valid,
                epoch,
                ..
            } => {
                scalars.extend([
                    ("epoch/train_loss_per_video", *train_loss_per_video),
                    ("epoch/samples_per_s", *samples_per_s),
                    ("epoch/epoch", *epoch as f64),
                ]);
                if let Some(v) = valid {
                    scalars.extend([
                        ("valid/hit_at_one", v.hit_at_one),
                        ("valid/perr", v.perr),
                        ("valid/gap", v.gap),
                        ("valid/loss_per_video", v.loss),
                    ]);
                    if let Some(m) = v.map {
                        scalars.push(("valid/map", m));
                    }
                }
            }
            LogRecord::Resume { .. } => {}
        }
        if let Some(tb) = self.tb.as_mut() {
            if let Err(e) = tb.scalars(global_step as u64, &scalars) {
                // The JSON log stays the record of the run; say once that the plots stop here.
                tracing::warn!("TensorBoard events no longer written: {e}");
                self.tb = None;
            }
        }
    }
}
