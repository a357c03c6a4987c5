//! `yt8m train`: PaddleVideo's recipe (centered RMSProp, L2 per parameter group, piecewise
//! learning rate per epoch, summed BCE) with what a modern run needs: a run directory holding
//! the resolved config, atomic checkpoints (weights, optimizer state, progress), exact resume,
//! validation with the official metrics, best-checkpoint selection, progress and JSONL logs.
//!
//! Reproducibility: every epoch reseeds libtorch (dropout) with `seed + epoch` and shuffles
//! with a stream derived from `(seed, epoch)`, so a run resumed from an epoch checkpoint ends
//! with the same weights as one that never stopped.

use crate::config::Config;
use crate::data::batch::{Batch, Loader};
use crate::data::sources::expand_paths;
use crate::distributed::Comm;
use crate::error::{Error, Result};
use crate::infer::{EvalSettings, evaluate_model};
use crate::model::attention_lstm::bce_sum;
use crate::model::{Model, batch_inputs};
use crate::optim::{RmsProp, RmsPropConfig};
use crate::runtime::{parse_device, parse_kind, replace_dir, sync_file, write_atomic};
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
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
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
    // safetensors does not sync: without this a power loss after the rename could leave a
    // checkpoint whose names are there but whose weights are not.
    sync_file(&tmp.join("model.safetensors"))?;
    sync_file(&tmp.join("optimizer.safetensors"))?;
    // config.yaml last: its presence marks a complete checkpoint directory.
    write_atomic(&tmp.join("config.yaml"), cfg.to_yaml().as_bytes())?;
    if let Ok(d) = std::fs::File::open(&tmp) {
        let _ = d.sync_all();
    }
    // Swapped in atomically (an existing `best` is never deleted first).
    replace_dir(&tmp, dir)
}

/// A checkpoint directory holding everything resume needs (config.yaml is written last).
fn complete(dir: &Path) -> bool {
    ["model.safetensors", "optimizer.safetensors", "state.json", "config.yaml"]
        .iter()
        .all(|f| dir.join(f).is_file())
}

/// The checkpoint `latest` points at; when the pointer is missing or dangling (a kill between
/// writing a checkpoint and the pointer, a deleted directory), the newest complete epoch, with
/// a message.
fn latest_checkpoint(run: &Path) -> Option<PathBuf> {
    let root = run.join("checkpoints");
    let pointer = std::fs::read_to_string(root.join("latest")).ok();
    if let Some(p) = &pointer {
        let name = p.trim();
        // Only a plain epoch directory name inside checkpoints/ is followed.
        if !name.is_empty() && !name.contains(['/', '\\']) && name != ".." && name != "." {
            let d = root.join(name);
            if complete(&d) {
                return Some(d);
            }
        }
    }
    let mut epochs: Vec<(usize, PathBuf)> = std::fs::read_dir(&root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n: usize = e.file_name().to_str()?.strip_prefix("epoch_")?.parse().ok()?;
            Some((n, e.path()))
        })
        .filter(|(_, p)| complete(p))
        .collect();
    epochs.sort();
    let (_, d) = epochs.pop()?;
    if let Some(p) = pointer {
        tracing::warn!(
            "{}: 'latest' names '{}', which is not a complete checkpoint; using the newest complete one, {}",
            root.display(),
            p.trim(),
            d.display()
        );
    }
    Some(d)
}

/// Removes what an interrupted save left in checkpoints/ (temporary directories, files of
/// atomic writes), restoring `best` from a complete temporary copy if a kill hit the swap on a
/// file system without atomic exchange. Called with the run lock held.
fn clean_checkpoints(run: &Path) -> Result<()> {
    let root = run.join("checkpoints");
    let Ok(rd) = std::fs::read_dir(&root) else {
        return Ok(());
    };
    let best = root.join("best");
    let mut stale = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") || (name.starts_with('.') && name.contains(".tmp-")) {
            stale.push((name, e.path()));
        }
    }
    stale.sort();
    for (name, p) in stale {
        if name.starts_with(".tmp-best-") && !best.exists() && p.is_dir() && complete(&p) {
            tracing::warn!("restoring {} from {} (a save of it was interrupted)", best.display(), p.display());
            std::fs::rename(&p, &best).map_err(|e| Error::io(&best, e))?;
            continue;
        }
        tracing::info!("removing {} left by an interrupted save", p.display());
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

/// An exclusive lock on a run directory (`RUN/.lock`, flock), held for the whole training: a
/// second `yt8m train` into the same directory fails at once naming the holder's PID. The lock
/// dies with the process (kill -9 included), so no stale lock ever blocks a resume.
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    pub fn acquire(run: &Path) -> Result<RunLock> {
        use std::io::{Read, Seek, Write};
        use std::os::unix::io::AsRawFd;
        let path = run.join(".lock");
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // SAFETY: a valid open descriptor.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            return Err(Error::Invalid(format!(
                "{} is in use by another training (PID {}); two runs in one directory would overwrite each other's checkpoints\n  hint: wait for it to finish, stop it, or choose another --output",
                run.display(),
                holder.trim().parse::<u32>().map(|p| p.to_string()).unwrap_or_else(|_| "unknown".into())
            )));
        }
        let _ = f.set_len(0);
        let _ = f.seek(std::io::SeekFrom::Start(0));
        let _ = write!(f, "{}", std::process::id());
        let _ = f.flush();
        Ok(RunLock { _file: f })
    }
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

/// Where the run starts. Rank 0 creates the run directory (refusing one that already holds
/// checkpoints unless resuming) and writes the resolved config, or with `--resume` checks that
/// the model shape did not change and reads the latest checkpoint's progress; the other workers
/// receive rank 0's progress.
fn open_run(
    cfg: &Config,
    opts: &TrainOptions,
    comm: &dyn Comm,
) -> Result<(TrainState, Option<PathBuf>, Option<RunLock>)> {
    let run = &opts.output;
    let saved_cfg_path = run.join("config.yaml");
    let mut state = TrainState {
        epoch: 0,
        global_step: 0,
        seed: cfg.TRAIN.seed,
        best_metric: None,
        best_epoch: None,
        metric_name: cfg.TRAIN.best_metric.clone(),
    };
    let mut resume_from = None;
    let mut lock = None;
    if comm.rank() == 0 {
        std::fs::create_dir_all(run).map_err(|e| Error::io(run, e))?;
        lock = Some(RunLock::acquire(run)?);
        clean_checkpoints(run)?;
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
            let ck = latest_checkpoint(run).ok_or_else(|| Error::Invalid(format!(
                "--resume: {} has no complete checkpoint yet\n  hint: start the run again without --resume", run.display())))?;
            state = serde_json::from_slice(
                &std::fs::read(ck.join("state.json")).map_err(|e| Error::io(&ck, e))?,
            )
            .map_err(|e| Error::Invalid(format!("{}: bad state.json: {e}", ck.display())))?;
            resume_from = Some(ck);
        } else if latest_checkpoint(run).is_some() {
            return Err(Error::Invalid(format!(
                "{} already holds a run with checkpoints\n  hint: add --resume to continue it, or choose another --output",
                run.display()
            )));
        }
        write_atomic(&saved_cfg_path, cfg.to_yaml().as_bytes())?;
    }
    let mut st_bytes = serde_json::to_vec(&state).unwrap();
    comm.broadcast_bytes(&mut st_bytes);
    let state = serde_json::from_slice(&st_bytes)
        .map_err(|e| Error::Invalid(format!("bad state from rank 0: {e}")))?;
    Ok((state, resume_from, lock))
}

/// The model and optimizer at the run's start point: fresh (seeded), initial weights on rank 0,
/// or the resumed checkpoint; with several workers everyone then takes rank 0's weights and
/// optimizer state.
fn build_model(
    cfg: &Config,
    opts: &TrainOptions,
    resume_from: Option<&Path>,
    comm: &dyn Comm,
) -> Result<(Model, RmsProp)> {
    let device = parse_device(&cfg.TRAIN.device)?;
    let kind = parse_kind(&cfg.TRAIN.dtype)?;
    tch::manual_seed(cfg.TRAIN.seed as i64);
    let mut model = Model::new(cfg.architecture(), device, kind);
    if let (0, Some(w)) = (comm.rank(), &opts.init_weights) {
        load_weights_any(&mut model, w)?;
    }
    let rms = RmsPropConfig {
        rho: cfg.OPTIMIZER.rho,
        epsilon: cfg.OPTIMIZER.epsilon,
        momentum: cfg.OPTIMIZER.momentum,
        centered: cfg.OPTIMIZER.centered,
    };
    let mut opt = RmsProp::new(rms, l2_groups(&model, cfg.OPTIMIZER.weight_decay.value));
    if let Some(ck) = resume_from {
        model.load_safetensors(&ck.join("model.safetensors"))?;
        let st = crate::model::read_safetensors(&ck.join("optimizer.safetensors"))?;
        opt.load_state(|k| {
            st.iter()
                .find(|(n, _)| n == k)
                .map(|(_, t)| t.shallow_clone())
        })
        .map_err(|e| Error::Invalid(format!("{}: {e}", ck.display())))?;
    }
    if comm.size() > 1 {
        let mut all: Vec<Tensor> = model
            .named_variables()
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        all.extend(
            opt.state_tensors()
                .into_iter()
                .map(|(_, t)| t.shallow_clone()),
        );
        broadcast_tensors(comm, &all);
    }
    Ok((model, opt))
}

/// This worker's training loader: shards r, r+N, ... of the split.
fn worker_loader(cfg: &Config, comm: &dyn Comm) -> Result<Loader> {
    let all = split_loader(cfg, "train")?;
    let (rank, world) = (comm.rank(), comm.size());
    if world == 1 {
        return Ok(all);
    }
    // Every worker sees the same file list, so every one fails here alike (no worker waits in
    // a collective for one that already stopped).
    if all.files().len() < world {
        return Err(Error::Invalid(format!(
            "{world} workers but only {} training shard(s): workers read whole shards, so at least one would have nothing\n  hint: use at most {} worker(s) (mpirun -np {}), or split the data into more shards",
            all.files().len(),
            all.files().len(),
            all.files().len()
        )));
    }
    let files: Vec<PathBuf> = all
        .files()
        .iter()
        .skip(rank)
        .step_by(world)
        .cloned()
        .collect();
    Ok(Loader::new(
        files,
        cfg.feature_spec(),
        cfg.loader_config("train"),
    ))
}

/// Videos of this worker's split (None when they cannot be counted cheaply) and the steps of
/// one epoch, the same on every worker: each step is a collective, so the smallest wins.
fn count_steps(
    cfg: &Config,
    loader: &Loader,
    comm: &dyn Comm,
) -> Result<(Option<usize>, Option<usize>)> {
    let n_train = count_videos(loader);
    let bs = cfg.DATASET.batch_size;
    let local = n_train.map(|n| {
        if cfg.DATASET.drop_last {
            n / bs
        } else {
            n.div_ceil(bs)
        }
    });
    let steps = if comm.size() > 1 {
        Some(comm.allreduce_min(local.unwrap_or(0) as u64) as usize)
    } else {
        local
    };
    if steps == Some(0) {
        return Err(Error::Invalid(format!(
            "the training split has {} videos{}, fewer than one batch of {bs} (DATASET.drop_last is on)\n  hint: lower DATASET.batch_size or add data",
            n_train.unwrap_or(0),
            if comm.size() > 1 {
                format!(" on worker {} (or another worker)", comm.rank())
            } else {
                String::new()
            }
        )));
    }
    Ok((n_train, steps))
}

/// Averages gradients over the workers after each backward pass (PaddleVideo's DataParallel):
/// on the device through NCCL (GPUs, `nccl` feature), else through host memory over MPI.
struct GradSync {
    /// Receive buffer of the host all-reduce, reused every step.
    reduced: Vec<f32>,
    #[cfg(feature = "nccl")]
    nccl: Option<crate::distributed::nccl::Nccl>,
}

impl GradSync {
    /// NCCL when training on a GPU with several workers (unless TRAIN.distributed is mpi),
    /// or always with TRAIN.distributed: nccl (one worker included).
    fn new(cfg: &Config, comm: &dyn Comm, device: tch::Device) -> Result<Self> {
        let mode = cfg.TRAIN.distributed.as_str();
        if mode == "nccl" && !device.is_cuda() {
            return Err(Error::Invalid(format!(
                "TRAIN.distributed: nccl all-reduces on GPUs, but this run is on {}\n  hint: use --device cuda, or TRAIN.distributed: mpi for CPU workers",
                crate::model::attention_lstm::device_name(device)
            )));
        }
        #[cfg(not(feature = "nccl"))]
        {
            let _ = comm;
            if mode == "nccl" {
                return Err(Error::Invalid(
                    "TRAIN.distributed: nccl, but this yt8m was built without the `nccl` feature\n  hint: build with `./dev build` (it enables mpi and nccl)".into(),
                ));
            }
        }
        Ok(GradSync {
            reduced: Vec::new(),
            #[cfg(feature = "nccl")]
            nccl: if mode == "nccl" || (comm.size() > 1 && device.is_cuda() && mode != "mpi") {
                Some(crate::distributed::nccl::Nccl::init(comm)?)
            } else {
                None
            },
        })
    }

    fn average(&mut self, comm: &dyn Comm, vars: &[(String, Tensor)]) -> Result<()> {
        #[cfg(feature = "nccl")]
        if let Some(n) = &self.nccl {
            return n.average_grads(&vars.iter().map(|(_, v)| v.grad()).collect::<Vec<_>>());
        }
        if comm.size() == 1 {
            return Ok(());
        }
        let g = flat_grads(vars);
        self.reduced.resize(g.len(), 0.0);
        comm.allreduce_sum(&g, &mut self.reduced);
        set_grads(vars, &self.reduced, 1.0 / comm.size() as f64);
        Ok(())
    }
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
    opt: RmsProp,
    vars: Vec<(String, Tensor)>,
    grads: GradSync,
    state: TrainState,
    steps_per_epoch: Option<usize>,
    total_steps: usize,
    last_ckpt: PathBuf,
    log: Option<JsonLog>,
}

impl Trainer<'_> {
    fn main(&self) -> bool {
        self.comm.rank() == 0
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

    /// Forward, summed BCE, backward, gradient averaging, clipping, RMSProp step.
    /// Returns the batch's summed loss and the gradient norm when clipping.
    fn step(
        &mut self,
        b: &Batch,
        lr: f64,
        epoch: usize,
        step: usize,
    ) -> Result<(f64, Option<f64>)> {
        let inp = batch_inputs(b, self.model.device(), self.model.kind);
        let loss = bce_sum(&self.model.forward(&inp, true), &inp.labels);
        let lv = loss.double_value(&[]);
        if !lv.is_finite() {
            return Err(self.diverged(lv, epoch, step));
        }
        self.opt.zero_grad();
        loss.backward();
        self.grads.average(self.comm, &self.vars)?;
        let gnorm = (self.cfg.OPTIMIZER.grad_clip > 0.0)
            .then(|| self.opt.clip_grad_norm(self.cfg.OPTIMIZER.grad_clip));
        self.opt.step(lr);
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
            );
            let (lv, gnorm) = self.step(&b, lr, epoch, steps)?;
            steps += 1;
            videos += b.len();
            loss_sum += lv;
            let el = t_epoch.elapsed().as_secs_f64().max(1e-9);
            let sps = videos as f64 * world as f64 / el;
            let per_video = lv / b.len() as f64;
            pb.set_message(format!(
                "loss {per_video:.3} lr {lr:.2e} {sps:.1} samples/s data-wait {:.0}%",
                100.0 * wait / el
            ));
            pb.inc(1);
            if let (Some(log), true) = (
                self.log.as_mut(),
                self.cfg.log_interval > 0 && steps % self.cfg.log_interval == 0,
            ) {
                log.write(serde_json::json!({"kind": "train_step", "epoch": epoch + 1, "step": steps, "global_step": self.state.global_step,
                    "loss": lv, "loss_per_video": per_video, "lr": lr, "samples_per_s": sps, "data_wait_share": wait / el, "grad_norm": gnorm, "workers": world}));
                if self.opts.quiet {
                    tracing::info!(
                        "epoch {} step {steps} loss {per_video:.4} lr {lr:.2e} {sps:.1} samples/s data-wait {:.0}%",
                        epoch + 1,
                        100.0 * wait / el
                    );
                }
            }
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

    /// Validation metrics as logged, and whether they are the best so far (TRAIN.best_metric).
    fn validate(
        &mut self,
        epoch: usize,
        loader: &Loader,
        eval: &EvalSettings,
    ) -> Result<(serde_json::Value, bool)> {
        let r = evaluate_model(&self.model, loader, eval)?;
        let m = &r.metrics;
        let loss = r.loss / r.videos as f64;
        let v = serde_json::json!({"hit_at_one": m.hit_at_one, "perr": m.perr, "gap": m.gap, "map": m.map, "loss": loss, "videos": r.videos, "mode": m.mode});
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
        let higher_better = self.cfg.TRAIN.best_metric != "loss";
        let mut is_best = false;
        if let Some(x) = metric_value(&self.cfg.TRAIN.best_metric, &v) {
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
    let comm = crate::distributed::init(&cfg.TRAIN.distributed)?;
    let comm = comm.as_ref();
    let r = train_with(cfg, opts, comm);
    if let (Err(e), true) = (&r, comm.size() > 1) {
        // Say why, then take every worker down with this one instead of hanging them.
        eprintln!("error (worker {} of {}): {e}", comm.rank(), comm.size());
        comm.abort(1);
    }
    r
}

fn train_with(mut cfg: Config, opts: &TrainOptions, comm: &dyn Comm) -> Result<TrainSummary> {
    let (rank, world) = (comm.rank(), comm.size());
    let main = rank == 0;
    check_same_config(comm, &cfg)?;
    let run = opts.output.clone();
    let (state, resume_from, _lock) = open_run(&cfg, opts, comm)?;
    let start_epoch = state.epoch;
    let state_step = state.global_step;
    cfg.TRAIN.seed = state.seed;

    let threads = crate::threads::configure_torch_threads();
    let (model, opt) = build_model(&cfg, opts, resume_from.as_deref(), comm)?;
    if let Some(ck) = &resume_from {
        tracing::info!(
            "resumed from {} (epoch {} done, step {})",
            ck.display(),
            state.epoch,
            state.global_step
        );
    }
    let device = model.device();
    let grads = GradSync::new(&cfg, comm, device)?;
    let train_loader = worker_loader(&cfg, comm)?;
    let valid_loader = if opts.validate && main {
        Some(split_loader(&cfg, "valid")?)
    } else {
        None
    };
    let (n_train, steps_per_epoch) = count_steps(&cfg, &train_loader, comm)?;
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
    if let (Some(log), Some(ck)) = (log.as_mut(), &resume_from) {
        // Epochs after this line repeat none before it: they continue from the checkpoint.
        log.write(serde_json::json!({"kind": "resume", "from": ck.display().to_string(), "epoch": start_epoch, "global_step": state_step}));
    }
    let eval = EvalSettings {
        top_k: cfg.METRIC.gap_top_k,
        tie_order: cfg.METRIC.tie_order,
        mode: cfg.METRIC.mode,
        paddle_batch: cfg.DATASET.test_batch_size.unwrap_or(8),
    };
    let vars = model.named_variables();
    let mut t = Trainer {
        cfg: &cfg,
        opts,
        comm,
        model,
        opt,
        vars,
        grads,
        state,
        steps_per_epoch,
        total_steps: steps_per_epoch.map(|s| s * cfg.epochs).unwrap_or(0),
        last_ckpt: resume_from.clone().unwrap_or_default(),
        log,
    };
    let mut last_valid = None;
    let mut final_loss = f64::NAN;
    let mut sps_total = (0usize, 0f64);
    let end_epoch = opts
        .stop_after_epochs
        .map(|n| (start_epoch + n).min(cfg.epochs))
        .unwrap_or(cfg.epochs);

    for epoch in start_epoch..end_epoch {
        let e = t.run_epoch(epoch, &train_loader)?;
        if e.steps == 0 {
            return Err(Error::Invalid(format!(
                "epoch {} made no training step: {} video(s) read, none formed a batch{}{}\n  hint: check DATASET.train.file_path, DATASET.batch_size (with DATASET.drop_last) and the inputs (yt8m inspect PATH)",
                epoch + 1,
                e.videos,
                if e.zero_frames.is_empty() { String::new() } else { format!("; {} video(s) had zero frames", e.zero_frames.len()) },
                if e.skipped > 0 { format!("; {} corrupt record(s) skipped", e.skipped) } else { String::new() },
            )));
        }
        if let (Some(w), true) = (&e.frame_warning, main && epoch == start_epoch) {
            tracing::warn!("{w}");
        }
        if !e.zero_frames.is_empty() && main {
            tracing::warn!(
                "epoch {}: left out {} video(s) with zero frames, e.g. {}",
                epoch + 1,
                e.zero_frames.len(),
                e.zero_frames[0]
            );
        }
        let mut totals = [e.loss_sum, e.videos as f64, e.skipped as f64];
        comm.allreduce_sum_f64(&mut totals);
        let (loss_sum, seen, skipped) = (totals[0], totals[1] as usize, totals[2] as usize);
        let el = e.seconds;
        sps_total.0 += seen;
        sps_total.1 += el;
        final_loss = loss_sum / seen.max(1) as f64;
        t.state.epoch = epoch + 1;
        if !main {
            continue;
        }
        let mut rec = serde_json::json!({"kind": "epoch", "epoch": epoch + 1, "steps": e.steps, "videos": seen, "train_loss_per_video": final_loss,
            "seconds": el, "samples_per_s": seen as f64 / el, "data_wait_share": e.wait / el, "skipped_records": skipped, "workers": world,
            "lr": cfg.OPTIMIZER.learning_rate.lr(epoch, t.state.global_step.saturating_sub(1), t.total_steps)});
        if skipped > 0 {
            tracing::warn!(
                "epoch {}: skipped {skipped} corrupt record(s) or byte range(s) (DATASET.skip_corrupt)",
                epoch + 1
            );
            for l in &e.lost {
                tracing::warn!("skipped: {l}");
            }
            rec["skipped"] = serde_json::json!(e.lost);
        }
        let do_val = cfg.TRAIN.val_interval > 0
            && ((epoch + 1) % cfg.TRAIN.val_interval == 0 || epoch + 1 == cfg.epochs);
        let mut is_best = false;
        if let (true, Some(vl)) = (do_val, &valid_loader) {
            let (v, best) = t.validate(epoch, vl, &eval)?;
            is_best = best;
            rec["valid"] = v.clone();
            last_valid = Some(v);
        }
        tracing::info!(
            "epoch {}/{} done: train loss/video {final_loss:.4}, {:.1} samples/s, data wait {:.0}%",
            epoch + 1,
            cfg.epochs,
            seen as f64 / el,
            100.0 * e.wait / el
        );
        if let Some(log) = t.log.as_mut() {
            log.write(rec);
        }
        t.checkpoint(epoch, is_best)?;
    }
    let best = run.join("checkpoints").join("best");
    Ok(TrainSummary {
        run_dir: run.clone(),
        epochs: t.state.epoch,
        steps: t.state.global_step,
        last_checkpoint: t.last_ckpt,
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
    let resolved;
    let path = match resolve_latest(path)? {
        Some(d) => {
            resolved = d;
            resolved.as_path()
        }
        None => path,
    };
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

/// `RUN/checkpoints/latest` (the pointer file) → the checkpoint directory it names (or the
/// newest complete one); None for any other path.
pub fn resolve_latest(path: &Path) -> Result<Option<PathBuf>> {
    if path.file_name().and_then(|n| n.to_str()) != Some("latest") || !path.is_file() {
        return Ok(None);
    }
    let Some(run) = path.parent().and_then(|c| c.parent()) else {
        return Ok(None);
    };
    match latest_checkpoint(run) {
        Some(d) => Ok(Some(d)),
        None => Err(Error::Weights {
            path: path.display().to_string(),
            message: "the run has no complete checkpoint to point at\n  hint: pass a checkpoint directory (RUN/checkpoints/epoch_NNNNN or best)".into(),
        }),
    }
}
