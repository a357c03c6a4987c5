//! `train --dry-run`: what a run would do (split size, steps, memory for the weights and the
//! optimizer's state) without doing it.

use crate::config::{Config, Split};
use crate::error::Result;

/// What `train` would do, without doing it: the training split's size, steps per epoch, the
/// model's parameters and the memory its state takes (`train --dry-run`).
pub fn plan(cfg: &Config) -> Result<Plan> {
    let loader = cfg.loader(Split::Train)?;
    let videos: usize = loader
        .files()
        .iter()
        .map(|f| crate::data::sources::count_records(f))
        .collect::<std::result::Result<Vec<_>, _>>()?
        .into_iter()
        .sum();
    let bs = cfg.DATASET.batch_size;
    let steps = if cfg.DATASET.drop_last {
        videos / bs
    } else {
        videos.div_ceil(bs)
    };
    let params = cfg.parameter_estimate();
    let dtype_bytes = if cfg.TRAIN.dtype == crate::config::Dtype::Float64 {
        8
    } else {
        4
    };
    // Weights and gradients, then RMSProp's mean square, mean gradient (centered) and
    // momentum, or Adam's two moments.
    let copies = match cfg.OPTIMIZER.name {
        crate::optim::OptimizerName::RmsProp => {
            3 + cfg.OPTIMIZER.centered as u64 + (cfg.OPTIMIZER.momentum > 0.0) as u64
        }
        crate::optim::OptimizerName::Adam => 4,
    };
    let gb = |x: u64| x as f64 / 1e9;
    let plan = format!(
        "model: {} ({} parameters)\ntraining split: {} file(s), {videos} videos\nbatch {bs}{}: {steps} steps per epoch, {} epochs, {} steps in all\nprecision: {} ({})\nmemory for weights, gradients and optimizer state: {:.2} GB ({copies} copies of the parameters in {}); activations come on top and grow with batch × frames\n",
        cfg.MODEL.head.name,
        params,
        loader.files().len(),
        if cfg.DATASET.drop_last {
            " (last partial batch dropped)"
        } else {
            ""
        },
        cfg.epochs,
        steps * cfg.epochs,
        cfg.TRAIN.precision,
        cfg.TRAIN.precision.resolve(cfg.TRAIN.device.resolve()?).1,
        gb(params * copies * dtype_bytes),
        cfg.TRAIN.dtype,
    );
    let nothing = (steps == 0).then(|| {
        format!(
            "nothing to train: {videos} videos are fewer than one batch of {bs}; `train` refuses this\n  hint: lower DATASET.batch_size (-o DATASET.batch_size=N), set DATASET.drop_last: false, or add data"
        )
    });
    Ok(Plan {
        text: plan,
        nothing_to_train: nothing,
    })
}

/// What `train --dry-run` prints, and why the run would be refused, if it would.
pub struct Plan {
    pub text: String,
    /// Set when the run would have no step (`train` refuses it; so does `--dry-run`).
    pub nothing_to_train: Option<String>,
}
