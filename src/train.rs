//! `yt8m train`: PaddleVideo's recipe (centered RMSProp, L2 per parameter group, piecewise
//! learning rate per epoch, summed BCE) with what a modern run needs: a run directory holding
//! the resolved config, atomic checkpoints (weights, optimizer state, progress), exact resume,
//! validation with the official metrics, best-checkpoint selection, progress and JSONL logs.
//!
//! Reproducibility: every epoch reseeds libtorch (dropout) with `seed + epoch` and shuffles
//! with a stream derived from `(seed, epoch)`, so a run resumed from an epoch checkpoint ends
//! with the same weights as one that never stopped.

use crate::checkpoint::{TrainState, ckpt_dir, open_run, prune, save_checkpoint};
use crate::config::Config;
use crate::data::batch::{Batch, Loader};
use crate::distributed::{Comm, GradSync, check_same_config};
use crate::error::{Error, Result};
use crate::infer::{EvalSettings, evaluate_model};
use crate::model::{Model, batch_inputs};
use crate::optim::{ClipBy, Optimizer};
use crate::runtime::write_atomic;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use tch::Tensor;

mod log;
mod plan;
mod setup;
use log::RunLog;
pub use log::{LogRecord, ValidRecord, read_log};
pub use plan::{Plan, plan};
use setup::Setup;

/// What the command line adds to the config.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub output: PathBuf,
    pub validate: bool,
    pub resume: bool,
    /// Initial weights (.safetensors or PaddleVideo .pdparams).
    pub init_weights: Option<PathBuf>,
    /// Hide the progress bar (logs only).
    pub quiet: bool,
    /// Stop after this many epochs of this invocation (tests of resume).
    pub stop_after_epochs: Option<usize>,
    /// `--resume` with changed hyperparameters: continue (logging the change) instead of
    /// refusing.
    pub allow_config_change: bool,
}

/// Summary of a finished run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub run_dir: PathBuf,
    pub epochs: usize,
    pub steps: usize,
    pub last_checkpoint: PathBuf,
    pub best_checkpoint: Option<PathBuf>,
    pub final_train_loss: f64,
    pub last_valid: Option<ValidRecord>,
    pub samples_per_s: f64,
    /// This process's rank and the number of workers (1 without MPI).
    pub rank: usize,
    pub workers: usize,
}

/// One training step as the progress bar and the run log report it.
struct StepLine {
    /// 0-based.
    epoch: usize,
    /// 1-based, within the epoch.
    step: usize,
    loss: f64,
    per_video: f64,
    lr: f64,
    /// Over all workers.
    samples_per_s: f64,
    /// The epoch's share of time spent waiting for data so far.
    wait_share: f64,
    grad_norm: Option<f64>,
    /// " ETA 1h02m" when the epoch's length is known, else empty.
    eta: String,
}

/// One epoch's totals on this worker.
struct EpochStats {
    steps: usize,
    videos: usize,
    loss_sum: f64,
    /// Seconds the step waited for the loader.
    wait: f64,
    seconds: f64,
    skipped: usize,
    lost: Vec<String>,
    frame_warning: Option<String>,
    zero_frames: Vec<String>,
}

/// The state of a run between steps.
struct Trainer<'a> {
    cfg: &'a Config,
    opts: &'a TrainOptions,
    comm: &'a dyn Comm,
    model: Model,
    opt: Optimizer,
    vars: Vec<(String, Tensor)>,
    grads: GradSync,
    state: TrainState,
    steps_per_epoch: Option<usize>,
    total_steps: usize,
    last_ckpt: PathBuf,
    log: Option<RunLog>,
    /// The kind batches are computed in (the model's storage kind, or bf16 when mixed).
    compute: tch::Kind,
    /// The epoch this invocation stops after (for the ETA).
    end_epoch: usize,
}

impl Trainer<'_> {
    fn main(&self) -> bool {
        self.comm.rank() == 0
    }

    /// Training examples seen before global step `step` (all workers; full batches, as
    /// TensorFlow's `global_step · batch_size · towers`).
    fn examples_at(&self, step: usize) -> u64 {
        step as u64 * self.cfg.DATASET.batch_size as u64 * self.comm.size() as u64
    }

    fn progress_bar(&self, epoch: usize) -> ProgressBar {
        let pb = if self.opts.quiet || !self.main() {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(self.steps_per_epoch.unwrap_or(0) as u64)
        };
        pb.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                .unwrap()
                .progress_chars("=> "),
        );
        pb.set_prefix(format!("{}/{}", epoch + 1, self.cfg.epochs));
        pb
    }

    /// Forward, the loss (`TRAIN.loss`), backward, gradient averaging, clipping, optimizer
    /// step.
    /// Returns the batch's summed loss and the gradient norm when clipping.
    fn step(
        &mut self,
        b: &Batch,
        lr: f64,
        epoch: usize,
        step: usize,
    ) -> Result<(f64, Option<f64>)> {
        // Mixed precision (TRAIN.precision: bf16): inputs in bf16, weights cast per use (their
        // float32 masters get the gradients), loss in float32.
        let inp = batch_inputs(b, self.model.device(), self.compute);
        let (loss, to_sum) =
            crate::model::training_loss(&self.model, &inp, self.cfg.TRAIN.loss, true);
        // Logged as a sum over the batch whatever the loss averages.
        let lv = loss.double_value(&[]) * to_sum;
        if !lv.is_finite() {
            return Err(self.diverged(lv, epoch, step));
        }
        self.opt.zero_grad();
        loss.backward();
        self.grads.average(self.comm, &self.vars)?;
        // The global gradient norm: needed to clip, and recorded at every logged step (it
        // reads the gradients only, so training is unchanged).
        let logged = self.cfg.log_interval > 0 && (step + 1) % self.cfg.log_interval == 0;
        let o = &self.cfg.OPTIMIZER;
        let gnorm = (o.grad_clip > 0.0 || logged).then(|| match o.grad_clip_by {
            ClipBy::Global => self.opt.clip_grad_norm(o.grad_clip),
            ClipBy::Tensor if o.grad_clip > 0.0 => {
                let head = self.model.network();
                self.opt
                    .clip_grad_norm_per_tensor(o.grad_clip, |n| head.clip_group(n))
            }
            ClipBy::Tensor => self.opt.clip_grad_norm(0.0),
        });
        self.opt.step(lr, self.state.global_step as u64 + 1);
        self.state.global_step += 1;
        Ok((lv, gnorm))
    }

    fn diverged(&self, lv: f64, epoch: usize, step: usize) -> Error {
        Error::Invalid(format!(
            "loss became {lv} at epoch {} step {step} (global step {}{}); stopped. The last good checkpoint is {}\n  hint: lower OPTIMIZER.learning_rate or set OPTIMIZER.grad_clip",
            epoch + 1,
            self.state.global_step,
            if self.comm.size() > 1 {
                format!(", worker {}", self.comm.rank())
            } else {
                String::new()
            },
            if self.last_ckpt.as_os_str().is_empty() {
                "none (no epoch finished)".to_string()
            } else {
                self.last_ckpt.display().to_string()
            }
        ))
    }

    fn run_epoch(&mut self, epoch: usize, loader: &Loader) -> Result<EpochStats> {
        let (rank, world) = (self.comm.rank(), self.comm.size());
        // Dropout differs per worker, as on separate devices.
        tch::manual_seed(
            self.cfg
                .TRAIN
                .seed
                .wrapping_add(epoch as u64)
                .wrapping_add(rank as u64 * 7919) as i64,
        );
        let pb = self.progress_bar(epoch);
        let t_epoch = Instant::now();
        let (mut wait, mut loss_sum, mut videos, mut steps) = (0f64, 0f64, 0usize, 0usize);
        let mut it = loader.epoch(epoch as u64);
        let mut t_wait = Instant::now();
        while self.steps_per_epoch.is_none_or(|s| steps < s) {
            let Some(b) = it.next() else { break };
            let b = b?;
            wait += t_wait.elapsed().as_secs_f64();
            let lr = self.cfg.OPTIMIZER.learning_rate.lr(
                epoch,
                self.state.global_step,
                self.total_steps,
                self.examples_at(self.state.global_step),
            );
            let (lv, gnorm) = self.step(&b, lr, epoch, steps)?;
            steps += 1;
            videos += b.len();
            loss_sum += lv;
            let el = t_epoch.elapsed().as_secs_f64().max(1e-9);
            let sps = videos as f64 * world as f64 / el;
            let per_video = lv / b.len() as f64;
            // Time left for the whole run (this invocation's epochs), from this epoch's pace.
            let eta = self.steps_per_epoch.map(|spe| {
                let end = self.end_epoch.max(epoch + 1);
                let left = spe.saturating_sub(steps) + spe * (end - epoch - 1);
                fmt_duration(el / steps as f64 * left as f64)
            });
            let line = StepLine {
                epoch,
                step: steps,
                loss: lv,
                per_video,
                lr,
                samples_per_s: sps,
                wait_share: wait / el,
                grad_norm: gnorm,
                eta: eta.map(|e| format!(" ETA {e}")).unwrap_or_default(),
            };
            pb.set_message(format!(
                "loss/video {per_video:.3} lr {lr:.2e} {sps:.1} samples/s data-wait {:.0}%{}",
                100.0 * line.wait_share,
                line.eta
            ));
            pb.inc(1);
            self.log_step(&line);
            t_wait = Instant::now();
        }
        pb.finish_and_clear();
        let stats = it.stats();
        Ok(EpochStats {
            steps,
            videos,
            loss_sum,
            wait,
            seconds: t_epoch.elapsed().as_secs_f64(),
            skipped: stats.skipped.len() + stats.resyncs.len(),
            lost: stats.loss_report(),
            frame_warning: stats.frame_count_warning(),
            zero_frames: stats.zero_frames.clone(),
        })
    }

    /// Every `log_interval` steps: the step's record in the run log, and with `--quiet` (no
    /// progress bar) a log line.
    fn log_step(&mut self, l: &StepLine) {
        let due = self.cfg.log_interval > 0 && l.step % self.cfg.log_interval == 0;
        let Some(log) = self.log.as_mut().filter(|_| due) else {
            return;
        };
        log.write(
            &LogRecord::TrainStep {
                epoch: l.epoch + 1,
                step: l.step,
                global_step: self.state.global_step,
                loss: l.loss,
                loss_per_video: l.per_video,
                lr: l.lr,
                samples_per_s: l.samples_per_s,
                data_wait_share: l.wait_share,
                grad_norm: l.grad_norm,
                workers: self.comm.size(),
            },
            self.state.global_step,
        );
        if self.opts.quiet {
            tracing::info!(
                "epoch {} step {}{} loss/video {:.4} lr {:.2e} {:.1} samples/s data-wait {:.0}%{}",
                l.epoch + 1,
                l.step,
                self.steps_per_epoch
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default(),
                l.per_video,
                l.lr,
                l.samples_per_s,
                100.0 * l.wait_share,
                l.eta
            );
        }
    }

    /// Validation metrics as logged, and whether they are the best so far (TRAIN.best_metric).
    fn validate(
        &mut self,
        epoch: usize,
        loader: &Loader,
        eval: &EvalSettings,
    ) -> Result<(ValidRecord, bool)> {
        let r = evaluate_model(&self.model, loader, eval)?;
        let m = &r.metrics;
        let loss = r.loss / r.videos as f64;
        let v = ValidRecord {
            hit_at_one: m.hit_at_one,
            perr: m.perr,
            gap: m.gap,
            map: m.map,
            loss,
            videos: r.videos,
            mode: m.mode,
        };
        tracing::info!(
            "epoch {} valid: Hit@1 {:.4} PERR {:.4} GAP {:.4} mAP {:.4} loss/video {loss:.3} ({} videos, {:?} metrics)",
            epoch + 1,
            m.hit_at_one,
            m.perr,
            m.gap,
            m.map.unwrap_or(f64::NAN),
            r.videos,
            m.mode
        );
        let higher_better = self.cfg.TRAIN.best_metric.higher_is_better();
        let mut is_best = false;
        if let Some(x) = v.metric(self.cfg.TRAIN.best_metric) {
            let better = match self.state.best_metric {
                None => true,
                Some(b) if higher_better => x > b,
                Some(b) => x < b,
            };
            if better {
                self.state.best_metric = Some(x);
                self.state.best_epoch = Some(epoch + 1);
                is_best = true;
            }
        }
        Ok((v, is_best))
    }

    /// Writes the epoch's checkpoint (and `best`), points `latest` at it, prunes old ones.
    fn checkpoint(&mut self, epoch: usize, is_best: bool) -> Result<()> {
        let run = &self.opts.output;
        let dir = ckpt_dir(run, epoch + 1);
        save_checkpoint(&dir, &self.model, &self.opt, &self.state, self.cfg)?;
        write_atomic(
            &run.join("checkpoints").join("latest"),
            dir.file_name().unwrap().to_string_lossy().as_bytes(),
        )?;
        self.last_ckpt = dir;
        if is_best {
            let best = run.join("checkpoints").join("best");
            save_checkpoint(&best, &self.model, &self.opt, &self.state, self.cfg)?;
        }
        prune(run, self.cfg.TRAIN.keep_last, self.cfg.save_interval);
        Ok(())
    }
}

/// Trains according to `cfg`. Returns where things were written.
///
/// Started by `mpirun -np N yt8m train ...` (with the `mpi` feature), it trains data-parallel:
/// worker r reads shards r, r+N, ...; every step all-reduces the gradients and divides by N;
/// only rank 0 logs, validates and writes checkpoints.
pub fn train(cfg: Config, opts: &TrainOptions) -> Result<TrainSummary> {
    let comm = crate::distributed::init(cfg.TRAIN.distributed)?;
    let comm = comm.as_ref();
    let existed = opts.output.exists();
    let r = train_with(cfg, opts, comm);
    // A run that failed before its first step leaves no directory behind (a typo in a data
    // path must not leave a half-made run that the next attempt then refuses).
    if r.is_err() && !existed && comm.rank() == 0 {
        let run = &opts.output;
        let logged = std::fs::metadata(run.join("metrics.jsonl")).is_ok_and(|m| m.len() > 0);
        if !run.join("checkpoints").exists() && !logged {
            let _ = std::fs::remove_dir_all(run);
        }
    }
    if let (Err(e), true) = (&r, comm.size() > 1) {
        // Say why, then take every worker down with this one instead of hanging them.
        eprintln!("error (worker {} of {}): {e}", comm.rank(), comm.size());
        comm.abort(1);
    }
    r
}

fn train_with(mut cfg: Config, opts: &TrainOptions, comm: &dyn Comm) -> Result<TrainSummary> {
    check_same_config(comm, &cfg)?;
    let (state, resume_from, _lock) = open_run(
        &cfg,
        &opts.output,
        opts.resume,
        opts.allow_config_change,
        comm,
    )?;
    let start_epoch = state.epoch;
    cfg.TRAIN.seed = state.seed;
    let Setup {
        mut trainer,
        train_loader,
        valid_loader,
        eval,
    } = Setup::new(&cfg, opts, comm, state, resume_from)?;
    let t = &mut trainer;
    let mut last_valid = None;
    let mut final_loss = f64::NAN;
    let mut sps_total = (0usize, 0f64);
    for epoch in start_epoch..t.end_epoch {
        let e = t.run_epoch(epoch, &train_loader)?;
        if e.steps == 0 {
            return Err(no_step_error(epoch, &e));
        }
        let end = t.end_epoch(
            epoch,
            &e,
            epoch == start_epoch,
            valid_loader.as_ref(),
            &eval,
        )?;
        sps_total.0 += end.videos;
        sps_total.1 += end.seconds;
        final_loss = end.loss_per_video;
        if end.valid.is_some() {
            last_valid = end.valid;
        }
    }
    let (rank, world) = (comm.rank(), comm.size());
    let run = opts.output.clone();
    let best = run.join("checkpoints").join("best");
    Ok(TrainSummary {
        epochs: t.state.epoch,
        steps: t.state.global_step,
        last_checkpoint: std::mem::take(&mut t.last_ckpt),
        best_checkpoint: (rank == 0 && best.exists()).then_some(best),
        final_train_loss: final_loss,
        last_valid,
        samples_per_s: sps_total.0 as f64 / sps_total.1.max(1e-9),
        rank,
        workers: world,
        run_dir: run,
    })
}

/// An epoch that made no step: nothing would be learnt, so the run stops and says why.
fn no_step_error(epoch: usize, e: &EpochStats) -> Error {
    Error::Invalid(format!(
        "epoch {} made no training step: {} video(s) read, none formed a batch{}{}\n  hint: check DATASET.train.file_path, DATASET.batch_size (with DATASET.drop_last) and the inputs (yt8m inspect PATH)",
        epoch + 1,
        e.videos,
        if e.zero_frames.is_empty() {
            String::new()
        } else {
            format!("; {} video(s) had zero frames", e.zero_frames.len())
        },
        if e.skipped > 0 {
            format!("; {} corrupt record(s) skipped", e.skipped)
        } else {
            String::new()
        },
    ))
}

/// What an epoch adds to the run's summary (totals over the workers).
struct EpochEnd {
    videos: usize,
    seconds: f64,
    loss_per_video: f64,
    /// Set when the epoch was validated (rank 0).
    valid: Option<ValidRecord>,
}

impl Trainer<'_> {
    /// After an epoch's steps, on every worker: the totals over workers; then on rank 0 the
    /// warnings, validation (every `val_interval` epochs and the last), the log record and the
    /// checkpoint.
    fn end_epoch(
        &mut self,
        epoch: usize,
        e: &EpochStats,
        first: bool,
        valid_loader: Option<&Loader>,
        eval: &EvalSettings,
    ) -> Result<EpochEnd> {
        let (cfg, main) = (self.cfg, self.main());
        if main {
            warn_left_out(epoch, e, first);
        }
        let mut totals = [e.loss_sum, e.videos as f64, e.skipped as f64];
        self.comm.allreduce_sum_f64(&mut totals);
        let (loss_sum, seen, skipped) = (totals[0], totals[1] as usize, totals[2] as usize);
        let el = e.seconds;
        let loss_per_video = loss_sum / seen.max(1) as f64;
        self.state.epoch = epoch + 1;
        let mut end = EpochEnd {
            videos: seen,
            seconds: el,
            loss_per_video,
            valid: None,
        };
        if !main {
            return Ok(end);
        }
        if skipped > 0 {
            warn_skipped(epoch, skipped, &e.lost);
        }
        let do_val = cfg.TRAIN.val_interval > 0
            && ((epoch + 1) % cfg.TRAIN.val_interval == 0 || epoch + 1 == cfg.epochs);
        let mut is_best = false;
        if let (true, Some(vl)) = (do_val, valid_loader) {
            let (v, best) = self.validate(epoch, vl, eval)?;
            is_best = best;
            end.valid = Some(v);
        }
        let step = self.state.global_step.saturating_sub(1);
        let rec = LogRecord::Epoch {
            epoch: epoch + 1,
            steps: e.steps,
            videos: seen,
            train_loss_per_video: loss_per_video,
            seconds: el,
            samples_per_s: seen as f64 / el,
            data_wait_share: e.wait / el,
            skipped_records: skipped,
            workers: self.comm.size(),
            lr: cfg.OPTIMIZER.learning_rate.lr(
                epoch,
                step,
                self.total_steps,
                self.examples_at(step),
            ),
            valid: end.valid.clone(),
            skipped: e.lost.clone(),
        };
        tracing::info!(
            "epoch {}/{} done: train loss/video {loss_per_video:.4}, {:.1} samples/s, data wait {:.0}%",
            epoch + 1,
            cfg.epochs,
            seen as f64 / el,
            100.0 * e.wait / el
        );
        if let Some(log) = self.log.as_mut() {
            log.write(&rec, self.state.global_step);
        }
        self.checkpoint(epoch, is_best)?;
        Ok(end)
    }
}

/// What an epoch's reading left out on this worker: frames cut at max_frames (said once, at
/// the first epoch) and videos with no frames.
fn warn_left_out(epoch: usize, e: &EpochStats, first: bool) {
    if let (Some(w), true) = (&e.frame_warning, first) {
        tracing::warn!("{w}");
    }
    if !e.zero_frames.is_empty() {
        tracing::warn!(
            "epoch {}: left out {} video(s) with zero frames, e.g. {}",
            epoch + 1,
            e.zero_frames.len(),
            e.zero_frames[0]
        );
    }
}

/// Corrupt records or byte ranges skipped in an epoch (all workers), each named.
fn warn_skipped(epoch: usize, skipped: usize, lost: &[String]) {
    tracing::warn!(
        "epoch {}: skipped {skipped} corrupt record(s) or byte range(s) (DATASET.skip_corrupt)",
        epoch + 1
    );
    for l in lost {
        tracing::warn!("skipped: {l}");
    }
}

/// `1h05m`, `3m20s`, `42s`.
fn fmt_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(super::fmt_duration(42.4), "42s");
        assert_eq!(super::fmt_duration(200.0), "3m20s");
        assert_eq!(super::fmt_duration(3900.0), "1h05m");
        assert_eq!(super::fmt_duration(-1.0), "0s");
    }
}
