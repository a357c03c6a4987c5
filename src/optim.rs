//! The optimizers, with their references' exact updates, per-parameter L2 decay,
//! learning-rate schedules and gradient clipping.
//!
//! **RMSProp** (centered): `paddle.optimizer.RMSProp(centered=True)` as used by PaddleVideo's
//! `attention_lstm_youtube8m.yaml` (see `shared/docs/attention_lstm_spec.md` §c and
//! `shared/data/paddle_parity/README.md`):
//! ```text
//! g'  = g + l2·w
//! ms  = ρ·ms + (1−ρ)·g'²
//! mg  = ρ·mg + (1−ρ)·g'
//! mom = momentum·mom + lr·g' / sqrt(ms − mg² + ε)
//! w  -= mom
//! ```
//! Paddle's kernel takes ρ and ε as C++ floats, so the effective constants are
//! `f32(0.95)` and `f32(1e-6)` even in float64; we use the same.
//!
//! **Adam**: TensorFlow 1's `tf.train.AdamOptimizer` (the YouTube-8M starter's `train.py`;
//! tensorflow/core/kernels/training_ops.cc `ApplyAdam`), at step t (1-based):
//! ```text
//! g' = g + l2·w
//! m  = m + (g' − m)·(1 − β1)
//! v  = v + (g'² − v)·(1 − β2)
//! w -= lr·sqrt(1 − β2^t)/(1 − β1^t) · m / (sqrt(v) + ε)        (β1 0.9, β2 0.999, ε 1e-8)
//! ```
//! `OPTIMIZER.adam_variant: paddle` is `paddle.optimizer.Adam` (PaddlePaddle's `adam` kernel,
//! the legacy video zoo's `AdamOptimizer`): the same with ε scaled by `sqrt(1 − β2^t)`, i.e.
//! `m̂ / (sqrt(v̂) + ε)` on the bias-corrected moments (PyTorch's Adam too).
//!
//! The step count is the run's global step (saved in `state.json`), so resume continues the
//! bias correction exactly.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RmsPropConfig {
    pub rho: f64,
    pub epsilon: f64,
    pub momentum: f64,
    pub centered: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            rho: 0.95,
            epsilon: 1e-6,
            momentum: 0.0,
            centered: true,
        }
    }
}

/// `OPTIMIZER.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
pub enum OptimizerName {
    /// PaddleVideo's centered RMSProp.
    #[default]
    #[serde(rename = "RMSProp")]
    #[value(name = "RMSProp")]
    RmsProp,
    /// TensorFlow 1's Adam (the starter's `AdamOptimizer`).
    #[serde(rename = "Adam", alias = "AdamOptimizer")]
    #[value(name = "Adam")]
    Adam,
}

/// `OPTIMIZER.grad_clip_by`: what `OPTIMIZER.grad_clip` bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClipBy {
    /// The norm of all gradients together.
    #[default]
    Global,
    /// Each gradient's own norm (the starter's `utils.clip_gradient_norms`, `tf.clip_by_norm`).
    Tensor,
}

/// `OPTIMIZER.adam_variant`: where Adam's ε goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AdamVariant {
    /// TensorFlow 1's `ApplyAdam`: `m / (sqrt(v) + ε)` on the raw moments (the starter).
    #[default]
    Tensorflow,
    /// Paddle's `adam` (and PyTorch's): ε on the bias-corrected moments (the legacy video
    /// zoo's NeXtVLAD and AttentionCluster).
    Paddle,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Algorithm {
    RmsProp(RmsPropConfig),
    Adam {
        beta1: f64,
        beta2: f64,
        epsilon: f64,
        variant: AdamVariant,
    },
}

/// One parameter's optimizer state.
pub struct ParamState {
    pub name: String,
    pub param: Tensor,
    pub l2: f64,
    /// RMSProp: mean_square, mean_grad, momentum. Adam: m, v.
    pub slots: Vec<Tensor>,
}

pub struct Optimizer {
    pub algo: Algorithm,
    pub params: Vec<ParamState>,
}

impl Algorithm {
    /// Checkpoint names of the per-parameter state tensors.
    fn slot_names(&self) -> &'static [&'static str] {
        match self {
            Algorithm::RmsProp(_) => &["mean_square", "mean_grad", "momentum"],
            Algorithm::Adam { .. } => &["moment1", "moment2"],
        }
    }
}

impl Optimizer {
    /// `params`: (name, variable, L2 coefficient).
    pub fn new(algo: Algorithm, params: Vec<(String, Tensor, f64)>) -> Self {
        let n = algo.slot_names().len();
        let params = params
            .into_iter()
            .map(|(name, param, l2)| ParamState {
                slots: (0..n).map(|_| param.zeros_like()).collect(),
                name,
                param,
                l2,
            })
            .collect();
        Optimizer { algo, params }
    }

    /// PaddleVideo's RMSProp.
    pub fn rms_prop(cfg: RmsPropConfig, params: Vec<(String, Tensor, f64)>) -> Self {
        Self::new(Algorithm::RmsProp(cfg), params)
    }

    /// Applies update number `t` (1-based: the global step after this one) with learning rate
    /// `lr`, using the gradients in `.grad()`.
    pub fn step(&mut self, lr: f64, t: u64) {
        match self.algo.clone() {
            Algorithm::RmsProp(cfg) => self.rms_prop_step(&cfg, lr),
            Algorithm::Adam {
                beta1,
                beta2,
                epsilon,
                variant,
            } => {
                let t = t.max(1) as i32;
                let lr_t = lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t));
                let epsilon = match variant {
                    AdamVariant::Tensorflow => epsilon,
                    AdamVariant::Paddle => epsilon * (1.0 - beta2.powi(t)).sqrt(),
                };
                self.for_each_grad(|p, g| {
                    let (m, v) = p.slots.split_at_mut(1);
                    let _ = m[0].g_add_(&((&g - &m[0]) * (1.0 - beta1)));
                    let _ = v[0].g_add_(&((g.square() - &v[0]) * (1.0 - beta2)));
                    let upd = &m[0] * lr_t / (v[0].sqrt() + epsilon);
                    let _ = p.param.g_sub_(&upd);
                });
            }
        }
    }

    fn rms_prop_step(&mut self, cfg: &RmsPropConfig, lr: f64) {
        // Paddle passes rho/epsilon as float attributes.
        let rho = cfg.rho as f32 as f64;
        let eps = cfg.epsilon as f32 as f64;
        let (mom_c, centered) = (cfg.momentum, cfg.centered);
        self.for_each_grad(|p, g| {
            let [mean_square, mean_grad, momentum] = &mut p.slots[..] else {
                unreachable!("RMSProp keeps three slots")
            };
            let _ = mean_square
                .g_mul_scalar_(rho)
                .g_add_(&(g.square() * (1.0 - rho)));
            let denom = if centered {
                let _ = mean_grad.g_mul_scalar_(rho).g_add_(&(&g * (1.0 - rho)));
                (&*mean_square - mean_grad.square() + eps).sqrt()
            } else {
                (&*mean_square + eps).sqrt()
            };
            let upd = g * lr / denom;
            if mom_c != 0.0 {
                let _ = momentum.g_mul_scalar_(mom_c).g_add_(&upd);
            } else {
                momentum.copy_(&upd);
            }
            let _ = p.param.g_sub_(&*momentum);
        });
    }

    /// Calls `f` with each parameter that has a gradient and that gradient plus its L2 term
    /// (`g + l2·w`), without recording autograd.
    fn for_each_grad(&mut self, mut f: impl FnMut(&mut ParamState, Tensor)) {
        tch::no_grad(|| {
            for p in &mut self.params {
                let g = p.param.grad();
                if !g.defined() {
                    continue;
                }
                let g = if p.l2 != 0.0 { &g + &p.param * p.l2 } else { g };
                f(p, g);
            }
        });
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.param.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// Global L2 norm of the gradients; scales them down to `max_norm` if above.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            // Summed on the device; one read (a read per parameter stalls a GPU).
            let norm = self
                .params
                .iter()
                .map(|p| p.param.grad())
                .filter(Tensor::defined)
                .map(|g| g.to_kind(Kind::Double).square().sum(Kind::Double))
                .reduce(|a, b| a + b)
                .map_or(0.0, |t| t.double_value(&[]))
                .sqrt();
            if max_norm > 0.0 && norm > max_norm {
                let s = max_norm / (norm + 1e-6);
                for p in &self.params {
                    let mut g = p.param.grad();
                    if g.defined() {
                        let _ = g.g_mul_scalar_(s);
                    }
                }
            }
            norm
        })
    }

    /// Clips each upstream variable's gradient to L2 norm `max_norm` on its own, as
    /// `tf.clip_by_norm` (`g · max_norm / max(‖g‖, max_norm)`, in that order). `group` names
    /// the upstream variable a parameter belongs to (TF keeps an LSTM layer's input and
    /// recurrent weights in one kernel, so they are clipped together). Returns the global norm
    /// before clipping.
    pub fn clip_grad_norm_per_tensor(
        &mut self,
        max_norm: f64,
        group: impl Fn(&str) -> String,
    ) -> f64 {
        tch::no_grad(|| {
            let mut groups: Vec<(String, Vec<Tensor>)> = Vec::new();
            for p in &self.params {
                let g = p.param.grad();
                if !g.defined() {
                    continue;
                }
                let k = group(&p.name);
                match groups.iter_mut().find(|(n, _)| *n == k) {
                    Some((_, v)) => v.push(g),
                    None => groups.push((k, vec![g])),
                }
            }
            // Summed on the device; one read at the end (a read per group stalls a GPU).
            let mut total: Option<Tensor> = None;
            for (_, gs) in &mut groups {
                let sq = gs
                    .iter()
                    .map(|g| g.square().sum(g.kind()))
                    .reduce(|a, b| a + b)
                    .expect("a group has a member");
                let sq64 = sq.to_kind(Kind::Double);
                total = Some(match total {
                    Some(t) => t + sq64,
                    None => sq64,
                });
                let den = sq.sqrt().clamp_min(max_norm);
                for g in gs.iter_mut() {
                    let clipped = (&*g * max_norm) / &den;
                    g.copy_(&clipped);
                }
            }
            total.map_or(0.0, |t| t.double_value(&[]).sqrt())
        })
    }

    /// State tensors by name for checkpoints: `<param>/<slot>` (RMSProp: mean_square,
    /// mean_grad, momentum; Adam: moment1, moment2).
    pub fn state_tensors(&self) -> Vec<(String, &Tensor)> {
        let names = self.algo.slot_names();
        let mut v = Vec::new();
        for p in &self.params {
            for (n, t) in names.iter().zip(&p.slots) {
                v.push((format!("{}/{n}", p.name), t));
            }
        }
        v
    }

    /// Restores state saved by [`Self::state_tensors`].
    pub fn load_state(&mut self, get: impl Fn(&str) -> Option<Tensor>) -> Result<(), String> {
        let names = self.algo.slot_names();
        for p in &mut self.params {
            for (suffix, t) in names.iter().zip(p.slots.iter_mut()) {
                let key = format!("{}/{suffix}", p.name);
                let src = get(&key).ok_or_else(|| {
                    format!("optimizer state lacks '{key}' (was the run trained with another OPTIMIZER.name?)")
                })?;
                if src.size() != t.size() {
                    return Err(format!(
                        "optimizer state '{key}' has shape {:?}, expected {:?}",
                        src.size(),
                        t.size()
                    ));
                }
                tch::no_grad(|| t.copy_(&src));
            }
        }
        Ok(())
    }
}

/// Learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", deny_unknown_fields)]
pub enum LrSchedule {
    /// Paddle `PiecewiseDecay`: `values[i]` until epoch `boundaries[i]` (stepped per epoch).
    PiecewiseDecay {
        boundaries: Vec<usize>,
        values: Vec<f64>,
    },
    /// Linear warm-up over `warmup_steps` steps, then cosine to `min_lr` at the last step.
    CosineWarmup {
        learning_rate: f64,
        #[serde(default)]
        warmup_steps: usize,
        #[serde(default)]
        min_lr: f64,
    },
    Constant {
        learning_rate: f64,
    },
    /// TensorFlow's `exponential_decay` over examples, as the starter's train.py uses it:
    /// `learning_rate · decay_rate^(examples / decay_examples)`, the exponent floored
    /// (`staircase`, the starter's) or not; examples = global step × batch size × workers.
    ExponentialDecay {
        learning_rate: f64,
        decay_rate: f64,
        decay_examples: u64,
        #[serde(default = "yes")]
        staircase: bool,
    },
}

fn yes() -> bool {
    true
}

impl Default for LrSchedule {
    fn default() -> Self {
        LrSchedule::PiecewiseDecay {
            boundaries: vec![5, 8],
            values: vec![2.5e-4, 2.5e-5, 2.5e-6],
        }
    }
}

impl LrSchedule {
    /// Learning rate at 0-based `epoch`, global `step` of `total_steps`, after `examples`
    /// training examples (all workers).
    pub fn lr(&self, epoch: usize, step: usize, total_steps: usize, examples: u64) -> f64 {
        match self {
            LrSchedule::ExponentialDecay {
                learning_rate,
                decay_rate,
                decay_examples,
                staircase,
            } => {
                let p = examples as f64 / (*decay_examples).max(1) as f64;
                learning_rate * decay_rate.powf(if *staircase { p.floor() } else { p })
            }
            LrSchedule::PiecewiseDecay { boundaries, values } => {
                let i = boundaries.iter().filter(|&&b| epoch >= b).count();
                values[i.min(values.len() - 1)]
            }
            LrSchedule::CosineWarmup {
                learning_rate,
                warmup_steps,
                min_lr,
            } => {
                if step < *warmup_steps {
                    learning_rate * (step + 1) as f64 / *warmup_steps as f64
                } else {
                    let span = total_steps.saturating_sub(*warmup_steps).max(1) as f64;
                    let p = ((step - warmup_steps) as f64 / span).min(1.0);
                    min_lr
                        + (learning_rate - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
                }
            }
            LrSchedule::Constant { learning_rate } => *learning_rate,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let rate = |key: &str, v: f64| -> Result<(), String> {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{key} is {v}; a learning rate must be a finite number ≥ 0"
                ))
            }
        };
        match self {
            LrSchedule::PiecewiseDecay { boundaries, values } => {
                if values.len() != boundaries.len() + 1 {
                    return Err(format!(
                        "PiecewiseDecay needs len(values) = len(boundaries) + 1, got {} and {}",
                        values.len(),
                        boundaries.len()
                    ));
                }
                for (i, &v) in values.iter().enumerate() {
                    rate(&format!("values[{i}]"), v)?;
                }
                if boundaries.windows(2).any(|w| w[0] > w[1]) {
                    return Err(format!(
                        "boundaries {boundaries:?} must be increasing epochs"
                    ));
                }
            }
            LrSchedule::CosineWarmup {
                learning_rate,
                min_lr,
                ..
            } => {
                rate("learning_rate", *learning_rate)?;
                rate("min_lr", *min_lr)?;
            }
            LrSchedule::Constant { learning_rate } => rate("learning_rate", *learning_rate)?,
            LrSchedule::ExponentialDecay {
                learning_rate,
                decay_rate,
                decay_examples,
                ..
            } => {
                rate("learning_rate", *learning_rate)?;
                if !(decay_rate.is_finite() && *decay_rate > 0.0) {
                    return Err(format!(
                        "decay_rate is {decay_rate}; it must be a finite number > 0 (the starter's 0.95)"
                    ));
                }
                if *decay_examples == 0 {
                    return Err(
                        "decay_examples must be at least 1 (the starter's 4000000)".to_string()
                    );
                }
            }
        }
        Ok(())
    }
}
