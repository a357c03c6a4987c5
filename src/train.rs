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
use crate::distributed::Comm;
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
    /// This process's rank and the number of workers (1 without MPI).
    pub rank: usize,
    pub workers: usize,
}

/// The loader of a config split (`DATASET.<split>.file_path`, with `data_prefix`).
pub fn split_loader(cfg: &Config, split: &str) -> Result<Loader> {
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
/// Flattened f32 copy of every gradient (CPU), in variable order.
fn flat_grads(vars: &[(String, Tensor)]) -> Vec<f32> {
    let mut out = Vec::new();
    for (_, v) in vars {
        let g = v.grad();
        let n = v.numel();
        let start = out.len();
        out.resize(start + n, 0.0);
        if g.defined() {
            g.to_kind(tch::Kind::Float)
                .to_device(tch::Device::Cpu)
                .contiguous()
                .copy_data(&mut out[start..], n);
        }
    }
    out
}

/// Writes `flat * scale` back into the gradients.
fn set_grads(vars: &[(String, Tensor)], flat: &[f32], scale: f64) {
    let mut off = 0;
    tch::no_grad(|| {
        for (_, v) in vars {
            let n = v.numel();
            let mut g = v.grad();
            if g.defined() {
                g.copy_(&Tensor::from_slice(&flat[off..off + n]).view(v.size().as_slice()));
                let _ = g.g_mul_scalar_(scale);
            }
            off += n;
        }
    });
}

/// Every worker gets rank 0's values of `tensors` (weights, optimizer state).
fn broadcast_tensors(comm: &dyn Comm, tensors: &[Tensor]) {
    if comm.size() == 1 {
        return;
    }
    let total: usize = tensors.iter().map(|t| t.numel()).sum();
    let mut flat = vec![0f32; total];
    let mut off = 0;
    for t in tensors {
        let n = t.numel();
        t.to_kind(tch::Kind::Float)
            .to_device(tch::Device::Cpu)
            .contiguous()
            .copy_data(&mut flat[off..off + n], n);
        off += n;
    }
    comm.broadcast_f32(&mut flat);
    let mut off = 0;
    tch::no_grad(|| {
        for t in tensors {
            let n = t.numel();
            let mut dst = t.shallow_clone();
            dst.copy_(
                &Tensor::from_slice(&flat[off..off + n])
                    .view(t.size().as_slice())
                    .to_kind(t.kind())
                    .to_device(t.device()),
            );
            off += n;
        }
    });
}

/// Refuses to train when workers were given different configs (device excepted), naming the keys.
fn check_same_config(comm: &dyn Comm, cfg: &Config) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    let mut mine = serde_json::to_value(cfg).unwrap_or_default();
    mine["TRAIN"]["device"] = serde_json::Value::Null;
    let mut bytes = serde_json::to_vec(&mine).unwrap_or_default();
    comm.broadcast_bytes(&mut bytes);
    let root: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let mut diff = Vec::new();
    crate::distributed::config_diff(&root, &mine, "", &mut diff);
    let all_ok = comm.allreduce_min(diff.is_empty() as u64) == 1;
    if !diff.is_empty() {
        return Err(Error::Invalid(format!(
            "worker {} of {} was started with a config that differs from rank 0's:\n  {}\n  hint: give every worker the same -c/-o arguments",
            comm.rank(),
            comm.size(),
            diff.join("\n  ")
        )));
    }
    if !all_ok {
        return Err(Error::Invalid(format!(
            "another worker's config differs from rank 0's (it printed the keys); worker {} stops too",
            comm.rank()
        )));
    }
    Ok(())
}

/// Trains according to `cfg`. Returns where things were written.
///
/// Started by `mpirun -np N yt8m train ...` (with the `mpi` feature), it trains data-parallel:
/// worker r reads shards r, r+N, ...; every step all-reduces the gradients and divides by N;
/// only rank 0 logs, validates and writes checkpoints.
pub fn train(mut cfg: Config, opts: &TrainOptions) -> Result<TrainSummary> {
    let comm = crate::distributed::init(&cfg.TRAIN.distributed)?;
    let (rank, world) = (comm.rank(), comm.size());
    let main = rank == 0;
    check_same_config(comm.as_ref(), &cfg)?;
    let run = opts.output.clone();
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
    let mut resume_from = None;
    if main {
        std::fs::create_dir_all(&run).map_err(|e| Error::io(&run, e))?;
        if opts.resume {
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
            let s: TrainState = serde_json::from_slice(
                &std::fs::read(ck.join("state.json")).map_err(|e| Error::io(&ck, e))?,
            )
            .map_err(|e| Error::Invalid(format!("{}: bad state.json: {e}", ck.display())))?;
            state = s;
            resume_from = Some(ck);
        } else if latest_checkpoint(&run).is_some() {
            return Err(Error::Invalid(format!(
                "{} already holds a run with checkpoints\n  hint: add --resume to continue it, or choose another --output",
                run.display()
            )));
        }
        write_atomic(&saved_cfg_path, cfg.to_yaml().as_bytes())?;
    }
    // Workers take the progress rank 0 resumed from.
    let mut st_bytes = serde_json::to_vec(&state).unwrap();
    comm.broadcast_bytes(&mut st_bytes);
    state = serde_json::from_slice(&st_bytes)
        .map_err(|e| Error::Invalid(format!("bad state from rank 0: {e}")))?;
    start_epoch = start_epoch.max(state.epoch);
    cfg.TRAIN.seed = state.seed;

    let device = parse_device(&cfg.TRAIN.device)?;
    let kind = parse_kind(&cfg.TRAIN.dtype)?;
    let threads = crate::threads::configure_torch_threads();
    tch::manual_seed(cfg.TRAIN.seed as i64);
    let mut model = Model::new(cfg.architecture(), device, kind);
    if let (true, Some(w)) = (main, &opts.init_weights) {
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
    let vars = model.named_variables();
    // On GPUs with the `nccl` feature, gradients are all-reduced on the device.
    #[cfg(feature = "nccl")]
    let nccl = if world > 1 && device.is_cuda() && cfg.TRAIN.distributed != "mpi" {
        Some(crate::distributed::nccl::Nccl::init(comm.as_ref())?)
    } else {
        None
    };
    if world > 1 {
        // Identical starting point everywhere: rank 0's weights and optimizer state.
        let mut all: Vec<Tensor> = vars.iter().map(|(_, t)| t.shallow_clone()).collect();
        all.extend(
            opt.state_tensors()
                .into_iter()
                .map(|(_, t)| t.shallow_clone()),
        );
        broadcast_tensors(comm.as_ref(), &all);
    }

    let mut train_loader = split_loader(&cfg, "train")?;
    if world > 1 {
        let files: Vec<PathBuf> = train_loader
            .files()
            .iter()
            .skip(rank)
            .step_by(world)
            .cloned()
            .collect();
        if files.is_empty() {
            return Err(Error::Invalid(format!(
                "{world} workers but only {} training shard(s): worker {rank} has none\n  hint: use at most as many workers as shards",
                train_loader.files().len()
            )));
        }
        train_loader = Loader::new(files, cfg.feature_spec(), cfg.loader_config("train"));
    }
    let valid_loader = if opts.validate && main {
        Some(split_loader(&cfg, "valid")?)
    } else {
        None
    };
    let n_train = count_videos(&train_loader);
    let bs = cfg.DATASET.batch_size;
    let local_steps = n_train.map(|n| {
        if cfg.DATASET.drop_last {
            n / bs
        } else {
            n.div_ceil(bs)
        }
    });
    // Workers must take the same number of steps (each step is a collective).
    let steps_per_epoch = if world > 1 {
        Some(comm.allreduce_min(local_steps.unwrap_or(0) as u64) as usize)
    } else {
        local_steps
    };
    if steps_per_epoch == Some(0) {
        return Err(Error::Invalid(format!(
            "the training split has {} videos{}, fewer than one batch of {bs} (DATASET.drop_last is on)\n  hint: lower DATASET.batch_size or add data",
            n_train.unwrap_or(0),
            if world > 1 {
                format!(" on worker {rank} (or another worker)")
            } else {
                String::new()
            }
        )));
    }
    let total_steps = steps_per_epoch.map(|s| s * cfg.epochs).unwrap_or(0);
    if main {
        tracing::info!(
            "training {} ({} parameters) on {} with {threads} thread(s), {}, {} train files{}, {} epochs",
            model.arch.name(),
            model.num_parameters(),
            crate::model::attention_lstm::device_name(device),
            comm.name(),
            train_loader.files().len(),
            n_train
                .map(|n| format!(" ({n} videos)"))
                .unwrap_or_default(),
            cfg.epochs
        );
    }
    let mut log = if main {
        Some(JsonLog(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(run.join("metrics.jsonl"))
                .map_err(|e| Error::io(&run, e))?,
        ))
    } else {
        None
    };
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
    // Receive buffer of the host all-reduce, reused every step.
    let mut reduced: Vec<f32> = Vec::new();
    let end_epoch = opts
        .stop_after_epochs
        .map(|n| (start_epoch + n).min(cfg.epochs))
        .unwrap_or(cfg.epochs);

    for epoch in start_epoch..end_epoch {
        // Dropout differs per worker, as on separate devices.
        tch::manual_seed(
            cfg.TRAIN
                .seed
                .wrapping_add(epoch as u64)
                .wrapping_add(rank as u64 * 7919) as i64,
        );
        let pb = if opts.quiet || !main {
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
        while steps_per_epoch.is_none_or(|s| steps < s) {
            let Some(b) = it.next() else { break };
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
                    "loss became {lv} at epoch {} step {} (global step {}{}); stopped. The last good checkpoint is {}\n  hint: lower OPTIMIZER.learning_rate or set OPTIMIZER.grad_clip",
                    epoch + 1,
                    steps,
                    state.global_step,
                    if world > 1 {
                        format!(", worker {rank}")
                    } else {
                        String::new()
                    },
                    if last_ckpt.as_os_str().is_empty() {
                        "none (no epoch finished)".to_string()
                    } else {
                        last_ckpt.display().to_string()
                    }
                )));
            }
            opt.zero_grad();
            loss.backward();
            if world > 1 {
                #[cfg(feature = "nccl")]
                let on_device = match &nccl {
                    Some(n) => {
                        n.average_grads(&vars.iter().map(|(_, v)| v.grad()).collect::<Vec<_>>())?;
                        true
                    }
                    None => false,
                };
                #[cfg(not(feature = "nccl"))]
                let on_device = false;
                if !on_device {
                    let g = flat_grads(&vars);
                    reduced.resize(g.len(), 0.0);
                    comm.allreduce_sum(&g, &mut reduced);
                    set_grads(&vars, &reduced, 1.0 / world as f64);
                }
            }
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
            let sps = seen as f64 * world as f64 / el.max(1e-9);
            pb.set_message(format!(
                "loss {:.3} lr {lr:.2e} {sps:.1} samples/s data-wait {:.0}%",
                lv / b.len() as f64,
                100.0 * wait / el.max(1e-9)
            ));
            pb.inc(1);
            if let (Some(log), true) = (
                log.as_mut(),
                cfg.log_interval > 0 && steps % cfg.log_interval == 0,
            ) {
                log.write(serde_json::json!({"kind": "train_step", "epoch": epoch + 1, "step": steps, "global_step": state.global_step,
                    "loss": lv, "loss_per_video": lv / b.len() as f64, "lr": lr, "samples_per_s": sps, "data_wait_share": wait / el.max(1e-9), "grad_norm": gnorm, "workers": world}));
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
        let zero = it.stats().zero_frames.clone();
        drop(it);
        if !zero.is_empty() && main {
            tracing::warn!(
                "epoch {}: left out {} video(s) with zero frames, e.g. {}",
                epoch + 1,
                zero.len(),
                zero[0]
            );
        }
        pb.finish_and_clear();
        let el = t_epoch.elapsed().as_secs_f64();
        let mut totals = [loss_sum, seen as f64, skipped as f64];
        comm.allreduce_sum_f64(&mut totals);
        let (loss_sum, seen, skipped) = (totals[0], totals[1] as usize, totals[2] as usize);
        sps_total.0 += seen;
        sps_total.1 += el;
        final_loss = loss_sum / seen.max(1) as f64;
        state.epoch = epoch + 1;
        if !main {
            continue;
        }
        let mut rec = serde_json::json!({"kind": "epoch", "epoch": epoch + 1, "steps": steps, "videos": seen, "train_loss_per_video": final_loss,
            "seconds": el, "samples_per_s": seen as f64 / el, "data_wait_share": wait / el, "skipped_records": skipped, "workers": world,
            "lr": cfg.OPTIMIZER.learning_rate.lr(epoch, state.global_step.saturating_sub(1), total_steps)});
        if skipped > 0 {
            tracing::warn!(
                "epoch {}: skipped {skipped} corrupt record(s) (DATASET.skip_corrupt)",
                epoch + 1
            );
        }
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
        if let Some(log) = log.as_mut() {
            log.write(rec);
        }
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
        best_checkpoint: (main && best.exists()).then_some(best),
        final_train_loss: final_loss,
        last_valid,
        samples_per_s: sps_total.0 as f64 / sps_total.1.max(1e-9),
        rank,
        workers: world,
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
