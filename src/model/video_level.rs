//! Video-level models from Google's YouTube-8M starter code (`video_level_models.py`):
//! `LogisticModel` and `MoeModel`, on the concatenated `mean_rgb` / `mean_audio` features
//! (or, on frame-level data, the mean of each video's valid frames).
//!
//! MoE (starter semantics): per class, a softmax gate over `num_mixtures + 1` entries (the
//! last one a "dummy expert" that always predicts 0) weighs `num_mixtures` sigmoid experts:
//! `p = Σ_m softmax(gate)_m · σ(expert_m)`. The gate has no bias, the experts do.

use super::xavier;
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Init};

#[derive(Debug)]
pub struct Logistic {
    w: Tensor,
    b: Tensor,
}

#[derive(Debug)]
pub struct Moe {
    gate_w: Tensor,
    expert_w: Tensor,
    expert_b: Tensor,
    mixtures: i64,
    classes: i64,
}

/// Shapes of the video-level models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoLevelConfig {
    pub num_classes: usize,
    pub feature_dims: Vec<usize>,
    /// 0 = logistic regression; ≥ 1 = MoE with this many experts (starter default 2).
    pub num_mixtures: usize,
}

/// `LogisticModel` and `MoeModel` share one config: MoE with 0 experts is the logistic model.
impl super::NetworkConfig for VideoLevelConfig {
    fn from_head(h: &super::HeadConfig) -> Self {
        VideoLevelConfig {
            num_classes: h.num_classes,
            feature_dims: h.feature_dims.clone(),
            num_mixtures: match h.name {
                super::NetworkName::LogisticModel => 0,
                _ => h.num_mixtures.max(1),
            },
        }
    }
    fn display_name(&self) -> &'static str {
        if self.num_mixtures == 0 {
            "Logistic"
        } else {
            "MoE"
        }
    }
    fn keys(&self) -> &'static [&'static str] {
        if self.num_mixtures == 0 {
            &["mean_feature_names"]
        } else {
            &["mean_feature_names", "num_mixtures"]
        }
    }
    super::network_widths!(Video);
    fn parameter_estimate(&self) -> Option<u64> {
        let (dims, c) = (
            super::sum_dims(&self.feature_dims)?,
            self.num_classes as u64,
        );
        match self.num_mixtures {
            0 => super::mul(super::add(dims, 1)?, c),
            k => super::moe_parameters(dims, c, k as u64),
        }
    }
    fn forward_flops(&self, _t: f64) -> f64 {
        let dims = self.feature_dims.iter().sum::<usize>() as f64;
        match self.num_mixtures {
            0 => 2.0 * dims * self.num_classes as f64,
            k => super::moe_flops(dims, self.num_classes, k),
        }
    }
    fn build(&self, root: &nn::Path) -> Box<dyn super::Network> {
        let (dims, c) = (&self.feature_dims, self.num_classes as i64);
        match self.num_mixtures {
            0 => Box::new(Logistic::new(root, dims, c)),
            k => Box::new(Moe::new(root, dims, c, k as i64)),
        }
    }
}

/// `[B, T, D_m]` per modality (+ lengths) → `[B, ΣD]`: the video-level row as is (T = 1) or
/// the mean over each video's valid frames.
pub fn pooled_input(features: &[Tensor], lengths: &Tensor) -> Tensor {
    let parts: Vec<Tensor> = features
        .iter()
        .map(|x| {
            let t = x.size()[1];
            if t == 1 {
                x.squeeze_dim(1)
            } else {
                // Padded rows are 0, so a plain sum over time divided by the length is the mean.
                x.sum_dim_intlist(1, false, x.kind())
                    / lengths.to_device(x.device()).to_kind(x.kind()).unsqueeze(1)
            }
        })
        .collect();
    Tensor::cat(&parts, 1)
}

impl Logistic {
    /// Weights `[ΣD, C]` over the concatenated modalities of widths `dims`.
    pub fn new(vs: &nn::Path, dims: &[usize], classes: i64) -> Self {
        let input: i64 = dims.iter().sum::<usize>() as i64;
        let p = vs.sub("logistic");
        Logistic {
            w: p.var("weight", &[input, classes], xavier(input, classes)),
            b: p.var("bias", &[classes], Init::Const(0.0)),
        }
    }
    /// Logits `[B, C]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.matmul(&super::cast(&self.w, x.kind())) + super::cast(&self.b, x.kind())
    }
}

impl Moe {
    pub fn new(vs: &nn::Path, dims: &[usize], classes: i64, mixtures: i64) -> Self {
        let input: i64 = dims.iter().sum::<usize>() as i64;
        let g = vs.sub("gate");
        let e = vs.sub("experts");
        Moe {
            gate_w: g.var(
                "weight",
                &[input, classes * (mixtures + 1)],
                xavier(input, classes * (mixtures + 1)),
            ),
            expert_w: e.var(
                "weight",
                &[input, classes * mixtures],
                xavier(input, classes * mixtures),
            ),
            expert_b: e.var("bias", &[classes * mixtures], Init::Const(0.0)),
            mixtures,
            classes,
        }
    }

    /// Probabilities `[B, C]`.
    pub fn probabilities(&self, x: &Tensor) -> Tensor {
        let b = x.size()[0];
        let (m, c) = (self.mixtures, self.classes);
        // Reshape as the starter code does: [B, C·(M+1)] → [B·C, M+1] (class-major).
        let gates = x
            .matmul(&super::cast(&self.gate_w, x.kind()))
            .view([b * c, m + 1])
            .softmax(1, x.kind());
        let experts = (x.matmul(&super::cast(&self.expert_w, x.kind()))
            + super::cast(&self.expert_b, x.kind()))
        .view([b * c, m])
        .sigmoid();
        (gates.narrow(1, 0, m) * experts)
            .sum_dim_intlist(1, false, x.kind())
            .view([b, c])
    }

    /// Logits of the clamped probabilities, so the shared BCE-with-logits loss applies:
    /// `σ(logit(p)) = p` within the clamp.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        // In float32 at least: in bf16, 1 − 1e-7 rounds to 1 and the logit becomes infinite.
        let p = super::widen(self.probabilities(x)).clamp(1e-7, 1.0 - 1e-7);
        p.log() - (-&p).log1p()
    }
}

/// The concatenated modalities `[batch, ΣD]` of a video-level graph.
fn onnx_concat(g: &mut crate::onnx::Graph, io: &crate::onnx::GraphInputs) -> String {
    let refs: Vec<&str> = io.features.iter().map(|s| s.as_str()).collect();
    g.op_attr("Concat", &refs, vec![("axis", crate::onnx::Attr::Int(1))])
}

impl super::Network for Logistic {
    fn forward(&self, inputs: &super::Inputs, _train: bool) -> Tensor {
        Logistic::forward(self, &pooled_input(&inputs.features, &inputs.lengths))
    }
    fn onnx_logits(
        &self,
        g: &mut crate::onnx::Graph,
        io: &crate::onnx::GraphInputs,
    ) -> crate::error::Result<String> {
        let x = onnx_concat(g, io);
        Ok(g.dense(&x, &self.w, &self.b))
    }
}

impl super::Network for Moe {
    fn forward(&self, inputs: &super::Inputs, _train: bool) -> Tensor {
        Moe::forward(self, &pooled_input(&inputs.features, &inputs.lengths))
    }
    fn probabilities(&self, inputs: &super::Inputs, _train: bool) -> Tensor {
        Moe::probabilities(self, &pooled_input(&inputs.features, &inputs.lengths))
    }
    fn onnx_logits(
        &self,
        g: &mut crate::onnx::Graph,
        io: &crate::onnx::GraphInputs,
    ) -> crate::error::Result<String> {
        let x = onnx_concat(g, io);
        Ok(self.onnx(g, &x))
    }
}

impl Moe {
    pub fn num_classes(&self) -> i64 {
        self.classes
    }

    /// The starter's MoE on `x` `[batch, in]` as in [`Moe::probabilities`], then the clamped
    /// logit; returns the logits' name.
    pub fn onnx(&self, g: &mut crate::onnx::Graph, x: &str) -> String {
        use crate::onnx::Attr;
        let (m, c) = (self.mixtures, self.classes);
        let gw = g.init_f32("gate_w", &self.gate_w);
        let gshape = g.init_i64("gshape", &[2], &[-1, m + 1]);
        let eshape = g.init_i64("eshape", &[2], &[-1, m]);
        let cshape = g.init_i64("cshape", &[2], &[-1, c]);
        let starts = g.init_i64("starts", &[1], &[0]);
        let ends = g.init_i64("ends", &[1], &[m]);
        let axes1 = g.init_i64("axes1", &[1], &[1]);
        let gates = g.op("MatMul", &[x, &gw]);
        let gates = g.op("Reshape", &[&gates, &gshape]);
        let gates = g.op_attr("Softmax", &[&gates], vec![("axis", Attr::Int(1))]);
        let gates = g.op("Slice", &[&gates, &starts, &ends, &axes1]);
        let ex = g.dense(x, &self.expert_w, &self.expert_b);
        let ex = g.op("Reshape", &[&ex, &eshape]);
        let ex = g.op("Sigmoid", &[&ex]);
        let p = g.op("Mul", &[&gates, &ex]);
        let p = g.op_attr("ReduceSum", &[&p, &axes1], vec![("keepdims", Attr::Int(0))]);
        let p = g.op("Reshape", &[&p, &cshape]);
        let lo = g.scalar_f32("lo", 1e-7);
        let hi = g.scalar_f32("hi", 1.0 - 1e-7);
        let p = g.op("Clip", &[&p, &lo, &hi]);
        let lp = g.op("Log", &[&p]);
        let onef = g.scalar_f32("onef", 1.0);
        let q = g.op("Sub", &[&onef, &p]);
        let lq = g.op("Log", &[&q]);
        g.op("Sub", &[&lp, &lq])
    }
}
