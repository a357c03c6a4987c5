//! Centered RMSProp with PaddleVideo's exact update, per-parameter L2 decay, learning-rate
//! schedules and gradient clipping.
//!
//! Reference: `paddle.optimizer.RMSProp(centered=True)` as used by PaddleVideo's
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

/// One parameter's optimizer state.
pub struct ParamState {
    pub name: String,
    pub param: Tensor,
    pub l2: f64,
    pub mean_square: Tensor,
    pub mean_grad: Tensor,
    pub momentum: Tensor,
}

pub struct RmsProp {
    pub cfg: RmsPropConfig,
    pub params: Vec<ParamState>,
    rho: f64,
    eps: f64,
}

impl RmsProp {
    /// `params`: (name, variable, L2 coefficient).
    pub fn new(cfg: RmsPropConfig, params: Vec<(String, Tensor, f64)>) -> Self {
        // Paddle passes rho/epsilon as float attributes.
        let rho = cfg.rho as f32 as f64;
        let eps = cfg.epsilon as f32 as f64;
        let params = params
            .into_iter()
            .map(|(name, param, l2)| {
                let z = || param.zeros_like();
                ParamState {
                    mean_square: z(),
                    mean_grad: z(),
                    momentum: z(),
                    name,
                    param,
                    l2,
                }
            })
            .collect();
        RmsProp {
            cfg,
            params,
            rho,
            eps,
        }
    }

    /// Applies one update with learning rate `lr` using the gradients in `.grad()`.
    pub fn step(&mut self, lr: f64) {
        let (rho, eps, mom_c, centered) =
            (self.rho, self.eps, self.cfg.momentum, self.cfg.centered);
        tch::no_grad(|| {
            for p in &mut self.params {
                let g = p.param.grad();
                if !g.defined() {
                    continue;
                }
                let g = if p.l2 != 0.0 { &g + &p.param * p.l2 } else { g };
                let _ = p
                    .mean_square
                    .g_mul_scalar_(rho)
                    .g_add_(&(g.square() * (1.0 - rho)));
                let denom = if centered {
                    let _ = p.mean_grad.g_mul_scalar_(rho).g_add_(&(&g * (1.0 - rho)));
                    (&p.mean_square - p.mean_grad.square() + eps).sqrt()
                } else {
                    (&p.mean_square + eps).sqrt()
                };
                let upd = g * lr / denom;
                if mom_c != 0.0 {
                    let _ = p.momentum.g_mul_scalar_(mom_c).g_add_(&upd);
                } else {
                    p.momentum.copy_(&upd);
                }
                let _ = p.param.g_sub_(&p.momentum);
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
            let mut total = 0.0;
            for p in &self.params {
                let g = p.param.grad();
                if g.defined() {
                    total += g
                        .to_kind(Kind::Double)
                        .square()
                        .sum(Kind::Double)
                        .double_value(&[]);
                }
            }
            let norm = total.sqrt();
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

    /// State tensors by name for checkpoints: `<param>/mean_square`, `/mean_grad`, `/momentum`.
    pub fn state_tensors(&self) -> Vec<(String, &Tensor)> {
        let mut v = Vec::new();
        for p in &self.params {
            v.push((format!("{}/mean_square", p.name), &p.mean_square));
            v.push((format!("{}/mean_grad", p.name), &p.mean_grad));
            v.push((format!("{}/momentum", p.name), &p.momentum));
        }
        v
    }

    /// Restores state saved by [`Self::state_tensors`].
    pub fn load_state(&mut self, get: impl Fn(&str) -> Option<Tensor>) -> Result<(), String> {
        for p in &mut self.params {
            for (suffix, t) in [
                ("mean_square", &mut p.mean_square),
                ("mean_grad", &mut p.mean_grad),
                ("momentum", &mut p.momentum),
            ] {
                let key = format!("{}/{suffix}", p.name);
                let src = get(&key).ok_or_else(|| format!("optimizer state lacks '{key}'"))?;
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
    /// Learning rate at 0-based `epoch`, global `step` of `total_steps`.
    pub fn lr(&self, epoch: usize, step: usize, total_steps: usize) -> f64 {
        match self {
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
        }
        Ok(())
    }
}
