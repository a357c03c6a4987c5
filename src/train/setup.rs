//! Everything a run needs before its first step: the model and optimizer (fresh, from
//! `--init-weights`, or from the checkpoint a resume continues), this worker's loaders, the
//! step count for the progress bar, the run log, and the line that says what trains where.

use super::log::RunLog;
use super::{LogRecord, TrainOptions, Trainer};
use crate::checkpoint::TrainState;
use crate::config::{Config, Split};
use crate::data::batch::Loader;
use crate::distributed::{Comm, GradSync, broadcast_tensors};
use crate::error::{Error, Result};
use crate::infer::EvalSettings;
use crate::model::Model;
use crate::optim::Optimizer;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Counts the records of a split cheaply (TFRecord framing only) for the progress bar; with
/// DATASET.segment_labels, the rated segments (a full read of the split).
fn count_videos(loader: &Loader) -> Option<usize> {
    let mut n = 0;
    for f in loader.files() {
        n += if loader.config().segments {
            crate::data::sources::count_segment_examples(f, loader.spec()).ok()?
        } else {
            crate::data::sources::count_records(f).ok()?
        };
    }
    Some(n)
}

/// The model and optimizer at the run's start point: fresh (seeded), initial weights on rank 0,
/// or the resumed checkpoint; with several workers everyone then takes rank 0's weights and
/// optimizer state.
fn build_model(
    cfg: &Config,
    opts: &TrainOptions,
    resume_from: Option<&Path>,
    comm: &dyn Comm,
) -> Result<(Model, Optimizer)> {
    let device = cfg.TRAIN.device.resolve()?;
    let kind = cfg.TRAIN.dtype.kind();
    tch::manual_seed(cfg.TRAIN.seed as i64);
    let mut model = Model::new(cfg.architecture(), device, kind);
    model.init_from_files(
        cfg.MODEL
            .head
            .eigen_file
            .as_deref()
            .map(std::path::Path::new),
    )?;
    if let (0, Some(w)) = (comm.rank(), &opts.init_weights) {
        model.load_weights(&crate::checkpoint::weights_path(w)?)?;
    }
    let mut opt = Optimizer::new(
        cfg.OPTIMIZER.algorithm(),
        model.param_groups(cfg.OPTIMIZER.weight_decay.value),
    );
    if let Some(ck) = resume_from {
        model.load_safetensors(&ck.join("model.safetensors"))?;
        let st = crate::model::read_safetensors(&ck.join("optimizer.safetensors"))?;
        opt.load_state(|k| {
            st.iter()
                .find(|(n, _)| n == k)
                .map(|(_, t)| t.shallow_clone())
        })
        .map_err(|e| Error::Corrupt(format!("{}: {e}", ck.display())))?;
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
    let all = cfg.loader(Split::Train)?;
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
        cfg.loader_config(Split::Train),
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

/// A run ready for its first epoch: the model and optimizer at their start point, this
/// worker's loaders and the log.
pub(super) struct Setup<'a> {
    pub(super) trainer: Trainer<'a>,
    pub(super) train_loader: Loader,
    /// Rank 0 with validation on.
    pub(super) valid_loader: Option<Loader>,
    pub(super) eval: EvalSettings,
}

impl<'a> Setup<'a> {
    pub(super) fn new(
        cfg: &'a Config,
        opts: &'a TrainOptions,
        comm: &'a dyn Comm,
        state: TrainState,
        resume_from: Option<PathBuf>,
    ) -> Result<Self> {
        let main = comm.rank() == 0;
        let threads = crate::threads::configure_torch_threads();
        let (model, opt) = build_model(cfg, opts, resume_from.as_deref(), comm)?;
        if let Some(ck) = &resume_from {
            tracing::info!(
                "resumed from {} (epoch {} done, step {})",
                ck.display(),
                state.epoch,
                state.global_step
            );
        }
        let device = model.device();
        let grads = GradSync::new(cfg, comm, device)?;
        let train_loader = worker_loader(cfg, comm)?;
        let valid_loader = if opts.validate && main {
            Some(cfg.loader(Split::Valid)?)
        } else {
            None
        };
        let (n_train, steps_per_epoch) = count_steps(cfg, &train_loader, comm)?;
        if main {
            let files = train_loader.files().len();
            announce(&model, threads, comm, files, n_train, cfg.epochs);
        }
        let log = if main {
            Some(open_run_log(opts, resume_from.as_deref(), &state)?)
        } else {
            None
        };
        let eval = EvalSettings {
            top_k: cfg.METRIC.gap_top_k,
            tie_order: cfg.METRIC.tie_order,
            mode: cfg.METRIC.mode,
            paddle_batch: cfg.DATASET.test_batch_size.unwrap_or(8),
        };
        // The trainable variables, whose gradients workers average (batch norm's moving
        // statistics have none).
        let vars = model
            .named_variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        let compute = compute_kind(cfg, &model, main);
        let trainer = Trainer {
            end_epoch: opts
                .stop_after_epochs
                .map_or(cfg.epochs, |n| (state.epoch + n).min(cfg.epochs)),
            compute,
            cfg,
            opts,
            comm,
            model,
            opt,
            vars,
            grads,
            state,
            steps_per_epoch,
            total_steps: steps_per_epoch.map(|s| s * cfg.epochs).unwrap_or(0),
            last_ckpt: resume_from.unwrap_or_default(),
            log,
        };
        Ok(Setup {
            trainer,
            train_loader,
            valid_loader,
            eval,
        })
    }
}

/// The run's first line: what trains where, on what.
fn announce(
    model: &Model,
    threads: usize,
    comm: &dyn Comm,
    files: usize,
    videos: Option<usize>,
    epochs: usize,
) {
    tracing::info!(
        "training {} ({} parameters) on {} with {threads} thread(s), {}, {files} train files{}, {epochs} epochs",
        model.arch.name(),
        model.num_parameters(),
        crate::runtime::device_name(model.device()),
        comm.name(),
        videos.map(|n| format!(" ({n} videos)")).unwrap_or_default(),
    );
}

/// The run's log (`metrics.jsonl`), with a line saying where a resumed run continues from.
fn open_run_log(
    opts: &TrainOptions,
    resume_from: Option<&std::path::Path>,
    state: &TrainState,
) -> Result<RunLog> {
    let mut log = RunLog::open(&opts.output)?;
    if let Some(ck) = resume_from {
        // Epochs after this line repeat none before it: they continue from the checkpoint.
        log.write(
            &LogRecord::Resume {
                from: ck.display().to_string(),
                epoch: state.epoch,
                global_step: state.global_step,
            },
            state.global_step,
        );
    }
    Ok(log)
}

/// The kind the forward and backward passes compute in: bf16 under mixed precision (float32
/// master weights), else the weights' own.
fn compute_kind(cfg: &Config, model: &Model, main: bool) -> tch::Kind {
    match cfg.TRAIN.precision.resolve(model.device()) {
        (tch::Kind::BFloat16, why) => {
            if main {
                tracing::info!("mixed precision: bf16 compute, float32 master weights ({why})");
            }
            tch::Kind::BFloat16
        }
        _ => model.kind,
    }
}
