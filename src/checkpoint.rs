//! The run directory and its checkpoints: opening a run (lock, resume checks, stale
//! temporaries), writing checkpoints atomically, finding `latest` and `best`, pruning.
//!
//! Layout: `RUN/config.yaml` (the resolved config), `RUN/metrics.jsonl`, `RUN/.lock` (flock,
//! the holder's PID), `RUN/checkpoints/epoch_NNNNN/` and `best/` (model.safetensors,
//! optimizer.safetensors, state.json, config.yaml — written last, so its presence marks a
//! complete checkpoint), `RUN/checkpoints/latest` (the name of the newest epoch directory).

use crate::config::Config;
use crate::distributed::Comm;
use crate::error::{Error, Result};
use crate::model::Model; // checkpoints save models; models know no checkpoints
use crate::optim::Optimizer;
use crate::runtime::{replace_dir, sync_file, write_atomic};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::Tensor;

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

pub(crate) fn ckpt_dir(run: &Path, epoch: usize) -> PathBuf {
    run.join("checkpoints").join(format!("epoch_{epoch:05}"))
}

/// Writes a checkpoint directory atomically: build under a temp name, then rename.
pub(crate) fn save_checkpoint(
    dir: &Path,
    model: &Model,
    opt: &Optimizer,
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
    [
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
        "config.yaml",
    ]
    .iter()
    .all(|f| dir.join(f).is_file())
}

/// The checkpoint `latest` points at; when the pointer is missing or dangling (a kill between
/// writing a checkpoint and the pointer, a deleted directory), the newest complete epoch, with
/// a message.
pub fn latest_checkpoint(run: &Path) -> Option<PathBuf> {
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
    let (_, d) = epoch_dirs(run)
        .into_iter()
        .rev()
        .find(|(_, p)| complete(p))?;
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
            tracing::warn!(
                "restoring {} from {} (a save of it was interrupted)",
                best.display(),
                p.display()
            );
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
                "{} is in use by another training (PID {}); two runs in one directory would overwrite each other's checkpoints\n  hint: wait for it to finish, stop it, or choose another --out",
                run.display(),
                holder
                    .trim()
                    .parse::<u32>()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|_| "unknown".into())
            )));
        }
        let _ = f.set_len(0);
        let _ = f.seek(std::io::SeekFrom::Start(0));
        let _ = write!(f, "{}", std::process::id());
        let _ = f.flush();
        Ok(RunLock { _file: f })
    }
}

/// The `checkpoints/epoch_NNNNN` directories of a run, by epoch.
fn epoch_dirs(run: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(run.join("checkpoints")) else {
        return Vec::new();
    };
    let mut v: Vec<(usize, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e
                .file_name()
                .to_str()?
                .strip_prefix("epoch_")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort();
    v
}

pub(crate) fn prune(run: &Path, keep_last: usize, save_interval: usize) {
    let epochs = epoch_dirs(run);
    let n = epochs.len();
    for (i, (e, dir)) in epochs.iter().enumerate() {
        // PaddleVideo's save_interval epochs stay; others roll over.
        let kept_by_interval = save_interval > 0 && e % save_interval == 1 % save_interval.max(1);
        if i + keep_last.max(1) < n && !kept_by_interval {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Where the run starts. Rank 0 creates the run directory (refusing one that already holds
/// checkpoints unless resuming) and writes the resolved config, or with `--resume` checks that
/// the model shape did not change and reads the latest checkpoint's progress; the other workers
/// receive rank 0's progress.
pub(crate) fn open_run(
    cfg: &Config,
    run: &Path,
    resume: bool,
    allow_config_change: bool,
    comm: &dyn Comm,
) -> Result<(TrainState, Option<PathBuf>, Option<RunLock>)> {
    let saved_cfg_path = run.join("config.yaml");
    let mut state = TrainState {
        epoch: 0,
        global_step: 0,
        seed: cfg.TRAIN.seed,
        best_metric: None,
        best_epoch: None,
        metric_name: cfg.TRAIN.best_metric.key().to_string(),
    };
    let mut resume_from = None;
    let mut lock = None;
    if comm.rank() == 0 {
        std::fs::create_dir_all(run).map_err(|e| Error::io(run, e))?;
        lock = Some(RunLock::acquire(run)?);
        crate::runtime::set_run_log(&run.join("train.log"))?;
        clean_checkpoints(run)?;
        if resume {
            let saved = Config::load(Some(&saved_cfg_path), &[]).map_err(|e| Error::Invalid(format!(
                "--resume: cannot read the run's config ({e})\n  hint: --out must name an existing run directory")))?;
            let diff = cfg.model_shape_diff(&saved);
            if !diff.is_empty() {
                return Err(Error::Invalid(format!(
                    "--resume refused: the model shape changed since {} was written:\n  {}\n  hint: resume with the run's own config (-c {}) or start a new run directory",
                    saved_cfg_path.display(),
                    diff.join("\n  "),
                    saved_cfg_path.display()
                )));
            }
            let changes = cfg.hyperparameter_diff(&saved);
            if !changes.is_empty() {
                if !allow_config_change {
                    return Err(Error::Invalid(format!(
                        "--resume refused: the config changed since {} was written (saved → now):\n  {}\n  hint: resume with the run's own config (-c {}), or pass --allow-config-change to continue with the new values (the change is logged in config_changes.yaml)",
                        saved_cfg_path.display(),
                        changes.join("\n  "),
                        saved_cfg_path.display()
                    )));
                }
                tracing::warn!(
                    "resuming with a changed config (--allow-config-change):\n  {}",
                    changes.join("\n  ")
                );
                log_config_change(run, &changes)?;
            }
            let ck = latest_checkpoint(run).ok_or_else(|| Error::Invalid(format!(
                "--resume: {} has no complete checkpoint yet\n  hint: start the run again without --resume", run.display())))?;
            state = serde_json::from_slice(
                &std::fs::read(ck.join("state.json")).map_err(|e| Error::io(&ck, e))?,
            )
            .map_err(|e| Error::Corrupt(format!("{}: bad state.json: {e}\n  hint: resume from an earlier checkpoint (move this one aside)", ck.display())))?;
            resume_from = Some(ck);
        } else if latest_checkpoint(run).is_some() {
            return Err(Error::Invalid(format!(
                "{} already holds a run with checkpoints\n  hint: add --resume to continue it, or choose another --out",
                run.display()
            )));
        }
        // A resumed run keeps its original config.yaml (changes go to config_changes.yaml).
        if !resume {
            write_atomic(&saved_cfg_path, cfg.to_yaml().as_bytes())?;
        }
    }
    let mut st_bytes = serde_json::to_vec(&state).unwrap();
    comm.broadcast_bytes(&mut st_bytes);
    let state = serde_json::from_slice(&st_bytes)
        .map_err(|e| Error::Internal(format!("bad state from rank 0: {e}")))?;
    Ok((state, resume_from, lock))
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

/// A `-w` argument as a loadable path: the `RUN/checkpoints/latest` pointer becomes the
/// checkpoint directory it names; anything else is returned as it is.
pub fn weights_path(path: &Path) -> Result<PathBuf> {
    Ok(resolve_latest(path)?.unwrap_or_else(|| path.to_path_buf()))
}

/// Appends a resume's config changes to `RUN/config_changes.yaml` (a list of entries).
fn log_config_change(run: &Path, changes: &[String]) -> Result<()> {
    use std::io::Write;
    let path = run.join("config_changes.yaml");
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut entry = format!("- resumed_unix: {when}\n  changes:\n");
    for c in changes {
        entry.push_str(&format!(
            "    - {}\n",
            serde_json::to_string(c).unwrap_or_default()
        ));
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    f.write_all(entry.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&path, e))
}
