//! `yt8m train`: PaddleVideo's recipe (centered RMSProp, L2 per parameter group, piecewise
//! learning rate per epoch, summed BCE) with what a modern run needs: a run directory holding
//! the resolved config, atomic checkpoints (weights, optimizer state, progress), exact resume,
//! validation with the official metrics, best-checkpoint selection, progress and JSONL logs.
//!
//! Reproducibility: every epoch reseeds libtorch (dropout) with `seed + epoch` and shuffles
//! with a stream derived from `(seed, epoch)`, so a run resumed from an epoch checkpoint ends
//! with the same weights as one that never stopped.

use crate::config::Config;
use crate::data::batch::Loader;
use crate::data::sources::expand_paths;
use crate::error::{Error, Result};
use crate::infer::{EvalSettings, evaluate_model};
use crate::model::attention_lstm::bce_sum;
use crate::model::{Model, batch_inputs};
use crate::optim::{RmsProp, RmsPropConfig};
use crate::runtime::{parse_device, parse_kind, write_atomic};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Tensor;

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
}

/// Progress saved with each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    pub global_step: usize,
    pub seed: u64,
    pub best_metric: Option<f64>,
    pub best_epoch: Option<usize>,
    pub metric_name: String,
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
    pub last_valid: Option<serde_json::Value>,
    pub samples_per_s: f64,
}

fn split_loader(cfg: &Config, split: &str) -> Result<Loader> {
    let sp = cfg.split(split);
    let paths = sp
        .file_path
        .as_ref()
        .map(|p| p.to_vec())
        .unwrap_or_default();
    if paths.is_empty() {
        return Err(Error::Invalid(format!(
            "DATASET.{split}.file_path is not set\n  hint: give shards with -o DATASET.{split}.file_path='data/{split}*.tfrecord' (files, dirs, globs or .list files)"
        )));
    }
    let prefix = sp.data_prefix.as_ref().map(PathBuf::from);
    let files = expand_paths(&paths, prefix.as_deref())?;
    Ok(Loader::new(
        files,
        cfg.feature_spec(),
        cfg.loader_config(split),
    ))
}

/// Counts the records of a split cheaply (TFRecord framing only) for the progress bar.
fn count_videos(loader: &Loader) -> Option<usize> {
    let mut n = 0;
    for f in loader.files() {
        n += crate::data::sources::count_records(f).ok()?;
    }
    Some(n)
}

pub fn l2_groups(model: &Model, decay: f64) -> Vec<(String, Tensor, f64)> {
    let no_decay = model.no_decay();
    model
        .named_variables()
        .into_iter()
        .map(|(n, t)| {
            let l2 = if no_decay.contains(&n.as_str()) {
                0.0
            } else {
                decay
            };
            (n, t, l2)
        })
        .collect()
}

fn ckpt_dir(run: &Path, epoch: usize) -> PathBuf {
    run.join("checkpoints").join(format!("epoch_{epoch:05}"))
}

/// Writes a checkpoint directory atomically: build under a temp name, then rename.
fn save_checkpoint(
    dir: &Path,
    model: &Model,
    opt: &RmsProp,
    state: &TrainState,
    cfg: &Config,
) -> Result<()> {
    let parent = dir.parent().unwrap();
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp = parent.join(format!(
        ".tmp-{}-{}",
        dir.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    model.save_safetensors(&tmp.join("model.safetensors"))?;
    let st: Vec<(String, Tensor)> = opt
        .state_tensors()
        .into_iter()
        .map(|(n, t)| (n, t.to_device(tch::Device::Cpu)))
        .collect();
    let refs: Vec<(&str, &Tensor)> = st.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, tmp.join("optimizer.safetensors"))?;
    write_atomic(
        &tmp.join("state.json"),
        serde_json::to_string_pretty(state).unwrap().as_bytes(),
    )?;
    write_atomic(&tmp.join("config.yaml"), cfg.to_yaml().as_bytes())?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
    // Make the rename durable before pointing `latest` at it.
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn latest_checkpoint(run: &Path) -> Option<PathBuf> {
    let p = std::fs::read_to_string(run.join("checkpoints").join("latest")).ok()?;
    let d = run.join("checkpoints").join(p.trim());
    d.join("state.json").exists().then_some(d)
}

fn prune(run: &Path, keep_last: usize, save_interval: usize) {
    let root = run.join("checkpoints");
    let Ok(rd) = std::fs::read_dir(&root) else {
        return;
    };
    let mut epochs: Vec<usize> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("epoch_"))
                .and_then(|n| n.parse().ok())
        })
        .collect();
    epochs.sort_unstable();
    let n = epochs.len();
    for (i, &e) in epochs.iter().enumerate() {
        // PaddleVideo's save_interval epochs stay; others roll over.
        let kept_by_interval = save_interval > 0 && e % save_interval == 1 % save_interval.max(1);
        if i + keep_last.max(1) < n && !kept_by_interval {
            let _ = std::fs::remove_dir_all(ckpt_dir(run, e));
        }
    }
}

struct JsonLog(std::fs::File);

impl JsonLog {
    fn write(&mut self, v: serde_json::Value) {
        let _ = writeln!(self.0, "{v}");
        let _ = self.0.flush();
    }
}

fn metric_value(name: &str, v: &serde_json::Value) -> Option<f64> {
    v.get(name).and_then(|x| x.as_f64())
}

/// Trains according to `cfg`. Returns where things were written.
pub fn train(mut cfg: Config, opts: &TrainOptions) -> Result<TrainSummary> {
    let run = opts.output.clone();
    std::fs::create_dir_all(&run).map_err(|e| Error::io(&run, e))?;
    let saved_cfg_path = run.join("config.yaml");
    let mut start_epoch = 0;
    let mut state = TrainState {
        epoch: 0,
        global_step: 0,
        seed: cfg.TRAIN.seed,
        best_metric: None,
        best_epoch: None,
        metric_name: cfg.TRAIN.best_metric.clone(),
    };
    let resume_from = if opts.resume {
        let saved = Config::load(Some(&saved_cfg_path), &[]).map_err(|e| Error::Invalid(format!(
            "--resume: cannot read the run's config ({e})\n  hint: --output must name an existing run directory")))?;
        let diff = cfg.model_shape_diff(&saved);
        if !diff.is_empty() {
            return Err(Error::Invalid(format!(
                "--resume refused: the model shape changed since {} was written:\n  {}\n  hint: resume with the run's own config (-c {}) or start a new run directory",
                saved_cfg_path.display(),
                diff.join("\n  "),
                saved_cfg_path.display()
            )));
        }
        let ck = latest_checkpoint(&run).ok_or_else(|| Error::Invalid(format!(
            "--resume: {} has no complete checkpoint yet\n  hint: start the run again without --resume", run.display())))?;
        Some(ck)
    } else {
        if latest_checkpoint(&run).is_some() {
            return Err(Error::Invalid(format!(
                "{} already holds a run with checkpoints\n  hint: add --resume to continue it, or choose another --output",
                run.display()
            )));
        }
        None
    };
    if let Some(ck) = &resume_from {
        let s: TrainState = serde_json::from_slice(
            &std::fs::read(ck.join("state.json")).map_err(|e| Error::io(ck, e))?,
        )
        .map_err(|e| Error::Invalid(format!("{}: bad state.json: {e}", ck.display())))?;
        start_epoch = s.epoch;
        cfg.TRAIN.seed = s.seed;
        state = s;
    }
    write_atomic(&saved_cfg_path, cfg.to_yaml().as_bytes())?;

    let device = parse_device(&cfg.TRAIN.device)?;
    let kind = parse_kind(&cfg.TRAIN.dtype)?;
    let threads = crate::threads::configure_torch_threads();
    tch::manual_seed(cfg.TRAIN.seed as i64);
    let mut model = Model::new(cfg.architecture(), device, kind);
    if let Some(w) = &opts.init_weights {
        load_weights_any(&mut model, w)?;
    }
    let rms = RmsPropConfig {
        rho: cfg.OPTIMIZER.rho,
        epsilon: cfg.OPTIMIZER.epsilon,
        momentum: cfg.OPTIMIZER.momentum,
        centered: cfg.OPTIMIZER.centered,
    };
    let mut opt = RmsProp::new(rms, l2_groups(&model, cfg.OPTIMIZER.weight_decay.value));
    if let Some(ck) = &resume_from {
        model.load_safetensors(&ck.join("model.safetensors"))?;
        let st = Tensor::read_safetensors(ck.join("optimizer.safetensors"))?;
        opt.load_state(|k| {
            st.iter()
                .find(|(n, _)| n == k)
                .map(|(_, t)| t.shallow_clone())
        })
        .map_err(|e| Error::Invalid(format!("{}: {e}", ck.display())))?;
        tracing::info!(
            "resumed from {} (epoch {} done, step {})",
            ck.display(),
            state.epoch,
            state.global_step
        );
    }

    let train_loader = split_loader(&cfg, "train")?;
    let valid_loader = if opts.validate {
        Some(split_loader(&cfg, "valid")?)
    } else {
        None
    };
    let n_train = count_videos(&train_loader);
    let bs = cfg.DATASET.batch_size;
    let steps_per_epoch = n_train.map(|n| {
        if cfg.DATASET.drop_last {
            n / bs
        } else {
            n.div_ceil(bs)
        }
    });
    if steps_per_epoch == Some(0) {
        return Err(Error::Invalid(format!(
            "the training split has {} videos, fewer than one batch of {bs} (DATASET.drop_last is on)\n  hint: lower DATASET.batch_size or add data",
            n_train.unwrap_or(0)
        )));
    }
    let total_steps = steps_per_epoch.map(|s| s * cfg.epochs).unwrap_or(0);
    tracing::info!(
        "training {} ({} parameters) on {} with {threads} thread(s), {} train files{}, {} epochs",
        model.arch.name(),
        model.num_parameters(),
        crate::model::attention_lstm::device_name(device),
        train_loader.files().len(),
        n_train
            .map(|n| format!(" ({n} videos)"))
            .unwrap_or_default(),
        cfg.epochs
    );
    let mut log = JsonLog(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(run.join("metrics.jsonl"))
            .map_err(|e| Error::io(&run, e))?,
    );
    let eval = EvalSettings {
        top_k: cfg.METRIC.gap_top_k,
        tie_order: cfg.METRIC.tie_order,
        mode: cfg.METRIC.mode,
        paddle_batch: cfg.DATASET.test_batch_size.unwrap_or(8),
    };
    let higher_better = cfg.TRAIN.best_metric != "loss";
    let mut last_ckpt = resume_from.clone().unwrap_or_default();
    let mut last_valid = None;
    let mut final_loss = f64::NAN;
    let mut sps_total = (0usize, 0f64);
    let end_epoch = opts
        .stop_after_epochs
        .map(|n| (start_epoch + n).min(cfg.epochs))
        .unwrap_or(cfg.epochs);

    for epoch in start_epoch..end_epoch {
        tch::manual_seed(cfg.TRAIN.seed.wrapping_add(epoch as u64) as i64);
        let pb = if opts.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(steps_per_epoch.unwrap_or(0) as u64)
        };
        pb.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                .unwrap()
                .progress_chars("=> "),
        );
        pb.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
        let t_epoch = Instant::now();
        let mut wait = 0f64;
        let (mut loss_sum, mut seen, mut steps) = (0f64, 0usize, 0usize);
        let mut it = train_loader.epoch(epoch as u64);
        let mut t_wait = Instant::now();
        while let Some(b) = it.next() {
            let b = b?;
            wait += t_wait.elapsed().as_secs_f64();
            let lr = cfg
                .OPTIMIZER
                .learning_rate
                .lr(epoch, state.global_step, total_steps);
            let inp = batch_inputs(&b, device, kind);
            let logits = model.forward(&inp, true);
            let loss = bce_sum(&logits, &inp.labels);
            let lv = loss.double_value(&[]);
            if !lv.is_finite() {
                return Err(Error::Invalid(format!(
                    "loss became {lv} at epoch {} step {} (global step {}); stopped. The last good checkpoint is {}\n  hint: lower OPTIMIZER.learning_rate or set OPTIMIZER.grad_clip",
                    epoch + 1,
                    steps,
                    state.global_step,
                    if last_ckpt.as_os_str().is_empty() {
                        "none (no epoch finished)".to_string()
                    } else {
                        last_ckpt.display().to_string()
                    }
                )));
            }
            opt.zero_grad();
            loss.backward();
            let gnorm = if cfg.OPTIMIZER.grad_clip > 0.0 {
                Some(opt.clip_grad_norm(cfg.OPTIMIZER.grad_clip))
            } else {
                None
            };
            opt.step(lr);
            state.global_step += 1;
            steps += 1;
            seen += b.len();
            loss_sum += lv;
            let el = t_epoch.elapsed().as_secs_f64();
            let sps = seen as f64 / el.max(1e-9);
            pb.set_message(format!(
                "loss {:.3} lr {lr:.2e} {sps:.1} samples/s data-wait {:.0}%",
                lv / b.len() as f64,
                100.0 * wait / el.max(1e-9)
            ));
            pb.inc(1);
            if cfg.log_interval > 0 && steps % cfg.log_interval == 0 {
                log.write(serde_json::json!({"kind": "train_step", "epoch": epoch + 1, "step": steps, "global_step": state.global_step,
                    "loss": lv, "loss_per_video": lv / b.len() as f64, "lr": lr, "samples_per_s": sps, "data_wait_share": wait / el.max(1e-9), "grad_norm": gnorm}));
                if opts.quiet {
                    tracing::info!(
                        "epoch {} step {steps} loss {:.4} lr {lr:.2e} {sps:.1} samples/s data-wait {:.0}%",
                        epoch + 1,
                        lv / b.len() as f64,
                        100.0 * wait / el.max(1e-9)
                    );
                }
            }
            t_wait = Instant::now();
        }
        let skipped = it.stats().skipped.len();
        drop(it);
        pb.finish_and_clear();
        let el = t_epoch.elapsed().as_secs_f64();
        sps_total.0 += seen;
        sps_total.1 += el;
        final_loss = loss_sum / seen.max(1) as f64;
        let mut rec = serde_json::json!({"kind": "epoch", "epoch": epoch + 1, "steps": steps, "videos": seen, "train_loss_per_video": final_loss,
            "seconds": el, "samples_per_s": seen as f64 / el, "data_wait_share": wait / el, "skipped_records": skipped,
            "lr": cfg.OPTIMIZER.learning_rate.lr(epoch, state.global_step.saturating_sub(1), total_steps)});
        if skipped > 0 {
            tracing::warn!(
                "epoch {}: skipped {skipped} corrupt record(s) (DATASET.skip_corrupt)",
                epoch + 1
            );
        }
        state.epoch = epoch + 1;
        let do_val = valid_loader.is_some()
            && cfg.TRAIN.val_interval > 0
            && ((epoch + 1) % cfg.TRAIN.val_interval == 0 || epoch + 1 == cfg.epochs);
        let mut is_best = false;
        if let (true, Some(vl)) = (do_val, &valid_loader) {
            let r = evaluate_model(&model, vl, &eval)?;
            let m = &r.metrics;
            let v = serde_json::json!({"hit_at_one": m.hit_at_one, "perr": m.perr, "gap": m.gap, "map": m.map, "loss": r.loss / r.videos as f64, "videos": r.videos, "mode": m.mode});
            tracing::info!(
                "epoch {} valid: Hit@1 {:.4} PERR {:.4} GAP {:.4} mAP {:.4} loss/video {:.3} ({} videos, {:?} metrics)",
                epoch + 1,
                m.hit_at_one,
                m.perr,
                m.gap,
                m.map.unwrap_or(f64::NAN),
                r.loss / r.videos as f64,
                r.videos,
                m.mode
            );
            if let Some(x) = metric_value(&cfg.TRAIN.best_metric, &v) {
                let better = match state.best_metric {
                    None => true,
                    Some(b) => {
                        if higher_better {
                            x > b
                        } else {
                            x < b
                        }
                    }
                };
                if better {
                    state.best_metric = Some(x);
                    state.best_epoch = Some(epoch + 1);
                    is_best = true;
                }
            }
            rec["valid"] = v.clone();
            last_valid = Some(v);
        }
        tracing::info!(
            "epoch {}/{} done: train loss/video {final_loss:.4}, {:.1} samples/s, data wait {:.0}%",
            epoch + 1,
            cfg.epochs,
            seen as f64 / el,
            100.0 * wait / el
        );
        log.write(rec);
        let dir = ckpt_dir(&run, epoch + 1);
        save_checkpoint(&dir, &model, &opt, &state, &cfg)?;
        write_atomic(
            &run.join("checkpoints").join("latest"),
            dir.file_name().unwrap().to_string_lossy().as_bytes(),
        )?;
        last_ckpt = dir.clone();
        if is_best {
            save_checkpoint(
                &run.join("checkpoints").join("best"),
                &model,
                &opt,
                &state,
                &cfg,
            )?;
        }
        prune(&run, cfg.TRAIN.keep_last, cfg.save_interval);
    }
    let best = run.join("checkpoints").join("best");
    Ok(TrainSummary {
        run_dir: run.clone(),
        epochs: state.epoch,
        steps: state.global_step,
        last_checkpoint: last_ckpt,
        best_checkpoint: best.exists().then_some(best),
        final_train_loss: final_loss,
        last_valid,
        samples_per_s: sps_total.0 as f64 / sps_total.1.max(1e-9),
    })
}

/// Loads `.safetensors`, a checkpoint directory, or a PaddleVideo `.pdparams`.
pub fn load_weights_any(model: &mut Model, path: &Path) -> Result<()> {
    let p = if path.is_dir() {
        path.join("model.safetensors")
    } else {
        path.to_path_buf()
    };
    if p.extension().and_then(|e| e.to_str()) == Some("pdparams") {
        let t: Vec<(String, Tensor)> = crate::convert::read_pdparams(&p)?.into_iter().collect();
        model.load_named(&p.display().to_string(), &t)
    } else {
        if !p.exists() {
            return Err(Error::Weights { path: p.display().to_string(), message: "no such file\n  hint: pass a .safetensors file, a checkpoint directory or a .pdparams".into() });
        }
        model.load_safetensors(&p)
    }
}
