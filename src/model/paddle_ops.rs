//! Layers of PaddlePaddle's legacy video zoo (PaddlePaddle/models `PaddleCV/video/models`,
//! Paddle 1.x `fluid.layers`) as NeXtVLAD and AttentionCluster use them, with the numerics of
//! the ops they appended:
//!
//! * `batch_norm` (momentum 0.9, ε 1e-5): batch statistics in training with the population
//!   variance, the moving mean and variance updated as `m·0.9 + batch·0.1` (Paddle keeps the
//!   population variance there too, unlike libtorch's `batch_norm`, which keeps the
//!   Bessel-corrected one; tests/paddle_zoo.rs checks the moving statistics against Paddle's).
//!   Over a LoD sequence (one row per frame, no padding) the statistics are those of the valid
//!   frames only: [`BatchNorm::forward_masked`].
//! * `dropout` with its default `downgrade_in_infer`: training keeps each value with
//!   probability 1 − p *without* rescaling; inference multiplies by 1 − p.
//! * `l2_normalize`, the `norm` op: `x / sqrt(Σx² + ε)`, ε = 1e-12.
//! * `fc` weights are `[in, out]`; `initializer.MSRA` is He initialisation on the fan-in
//!   (normal: σ = √(2/fan_in); uniform: ±√(6/fan_in); a 1-D variable's fan-in is its length).

use super::cast;
use tch::Tensor;
use tch::nn::{self, Init};

pub const BN_MOMENTUM: f64 = 0.9;
pub const BN_EPS: f64 = 1e-5;
/// `fluid.layers.l2_normalize`'s default ε.
pub const L2_EPS: f64 = 1e-12;

/// `MSRA(uniform=False)`.
pub fn msra_normal(fan_in: i64) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: (2.0 / fan_in as f64).sqrt(),
    }
}

/// `MSRA()` (uniform, the default).
pub fn msra_uniform(fan_in: i64) -> Init {
    let a = (6.0 / fan_in as f64).sqrt();
    Init::Uniform { lo: -a, up: a }
}

/// `fluid.layers.batch_norm` over the last axis: `scale` γ, `bias` β, and the moving
/// statistics (`mean`, `variance`; state, not trained).
#[derive(Debug)]
pub struct BatchNorm {
    pub scale: Tensor,
    pub bias: Tensor,
    pub mean: Tensor,
    pub variance: Tensor,
}

impl BatchNorm {
    pub fn new(p: &nn::Path, n: i64) -> Self {
        BatchNorm {
            scale: p.var("scale", &[n], Init::Const(1.0)),
            bias: p.var("bias", &[n], Init::Const(0.0)),
            mean: p.zeros_no_train("mean", &[n]),
            variance: p.ones_no_train("variance", &[n]),
        }
    }

    /// `x` `[N, C]`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_masked(x, None, train)
    }

    /// `x` `[..., C]`; in training the statistics are taken over the rows where `mask`
    /// (`x`'s shape without the last axis, 1.0 = a real frame) is set, or over all rows, and
    /// the moving statistics follow them. Computed in the statistics' kind (float32 under bf16
    /// mixed precision).
    pub fn forward_masked(&self, x: &Tensor, mask: Option<&Tensor>, train: bool) -> Tensor {
        let k = self.mean.kind();
        let xk = x.to_kind(k);
        let c = *x
            .size()
            .last()
            .expect("batch norm input has a channel axis");
        let (mean, var) = if train {
            let flat = xk.reshape([-1, c]);
            let (mean, var) = match mask {
                None => {
                    let mean = flat.mean_dim(0, false, k);
                    let var = (&flat - &mean).square().mean_dim(0, false, k);
                    (mean, var)
                }
                Some(m) => {
                    let m = m.to_kind(k).reshape([-1, 1]);
                    let n = m.sum(k).clamp_min(1.0);
                    let mean = (&flat * &m).sum_dim_intlist(0, false, k) / &n;
                    let var = ((&flat - &mean).square() * &m).sum_dim_intlist(0, false, k) / &n;
                    (mean, var)
                }
            };
            tch::no_grad(|| {
                let mut rm = self.mean.shallow_clone();
                let mut rv = self.variance.shallow_clone();
                let _ = rm.g_mul_scalar_(BN_MOMENTUM);
                let _ = rm.g_add_(&(mean.detach() * (1.0 - BN_MOMENTUM)));
                let _ = rv.g_mul_scalar_(BN_MOMENTUM);
                let _ = rv.g_add_(&(var.detach() * (1.0 - BN_MOMENTUM)));
            });
            (mean, var)
        } else {
            (self.mean.shallow_clone(), self.variance.shallow_clone())
        };
        let y = (xk - mean) * (var + BN_EPS).rsqrt() * &self.scale + &self.bias;
        y.to_kind(x.kind())
    }

    /// Inference in an ONNX graph, folded to `x · s + t`.
    pub fn onnx(&self, g: &mut crate::onnx::Graph, x: &str) -> String {
        g.batch_norm(
            x,
            &self.scale,
            &self.bias,
            &self.mean,
            &self.variance,
            BN_EPS,
        )
    }
}

/// `fluid.layers.dropout` (`downgrade_in_infer`): training keeps values with probability
/// 1 − p, unscaled; inference scales by 1 − p.
pub fn dropout_downgrade(x: &Tensor, p: f64, train: bool) -> Tensor {
    if p <= 0.0 {
        return x.shallow_clone();
    }
    if train {
        let keep = Tensor::rand_like(x).ge(p).to_kind(x.kind());
        x * keep
    } else {
        x * (1.0 - p)
    }
}

/// [`dropout_downgrade`] at inference in an ONNX graph: `x · (1 − p)`.
pub fn onnx_dropout_downgrade(g: &mut crate::onnx::Graph, x: &str, p: f64) -> String {
    if p <= 0.0 {
        return x.to_string();
    }
    let keep = g.scalar_f32("keep", (1.0 - p) as f32);
    g.op("Mul", &[x, &keep])
}

/// `fluid.layers.l2_normalize(x, dim)`: `x / sqrt(Σ_dim x² + 1e-12)`.
pub fn l2_normalize(x: &Tensor, dim: i64) -> Tensor {
    let n = x.square().sum_dim_intlist(dim, true, x.kind()) + L2_EPS;
    x * n.rsqrt()
}

/// The same in an ONNX graph over axis `axis`.
pub fn onnx_l2_normalize(g: &mut crate::onnx::Graph, x: &str, axis: i64) -> String {
    use crate::onnx::Attr;
    let axes = g.init_i64("l2_axes", &[1], &[axis]);
    let sq = g.op("Mul", &[x, x]);
    let sq = g.op_attr("ReduceSum", &[&sq, &axes], vec![("keepdims", Attr::Int(1))]);
    let eps = g.scalar_f32("l2_eps", L2_EPS as f32);
    let sq = g.op("Add", &[&sq, &eps]);
    let n = g.op("Sqrt", &[&sq]);
    g.op("Div", &[x, &n])
}

/// `x · w (+ b)` with Paddle's `[in, out]` weights, in `x`'s kind.
pub fn fc(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    let y = x.matmul(&cast(w, x.kind()));
    match b {
        Some(b) => y + cast(b, x.kind()),
        None => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn dropout_downgrade_keeps_without_rescaling_and_scales_at_inference() {
        let _g = crate::model::TORCH_RNG.lock().unwrap();
        tch::manual_seed(3);
        let x = Tensor::ones([200_000], (Kind::Float, Device::Cpu));
        let y = dropout_downgrade(&x, 0.3, true);
        // Kept values are the input itself (no 1/(1−p)); about 70% are kept.
        let kept = y
            .ne(0.0)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]);
        assert!((kept - 0.7).abs() < 0.01, "{kept}");
        assert_eq!(y.max().double_value(&[]), 1.0);
        let z = dropout_downgrade(&x, 0.3, false);
        assert!((z.mean(Kind::Float).double_value(&[]) - 0.7).abs() < 1e-6);
        assert!(dropout_downgrade(&x, 0.0, true).equal(&x));
    }

    #[test]
    fn masked_batch_norm_uses_only_the_masked_rows_and_the_population_variance() {
        let vs = nn::VarStore::new(Device::Cpu);
        let bn = BatchNorm::new(&vs.root(), 2);
        let x = Tensor::from_slice(&[1.0f32, 10.0, 3.0, 20.0, 100.0, -100.0]).view([3, 2]);
        let m = Tensor::from_slice(&[1.0f32, 1.0, 0.0]);
        let y = bn.forward_masked(&x, Some(&m), true);
        // Rows 0 and 1: mean (2, 15), population variance (1, 25).
        let want = Tensor::from_slice(&[-1.0f32, -1.0, 1.0, 1.0]).view([2, 2]);
        let got = y.narrow(0, 0, 2);
        let scale = (1.0f64 / (1.0 + BN_EPS)).sqrt();
        assert!(
            (got.narrow(1, 0, 1) - want.narrow(1, 0, 1) * scale)
                .abs()
                .max()
                .double_value(&[])
                < 1e-6
        );
        let mean: Vec<f32> = Vec::try_from(&bn.mean).unwrap();
        let var: Vec<f32> = Vec::try_from(&bn.variance).unwrap();
        assert_eq!(mean, vec![0.2, 1.5]);
        assert!((var[0] - (0.9 + 0.1)).abs() < 1e-6 && (var[1] - (0.9 + 2.5)).abs() < 1e-5);
    }
}
