//! Attention Clusters with the shifting operation (Long et al., arXiv 1711.09550) as
//! PaddlePaddle's legacy video zoo has it: PaddlePaddle/models
//! `PaddleCV/video/models/attention_cluster/{attention_cluster.py, shifting_attention.py,
//! logistic_model.py}` and its frame sampling in `reader/feature_reader.py` (commit 0173b12c).
//! Published there on YouTube-8M validate: Hit@1 0.87, PERR 0.78, GAP 0.84.
//!
//! ```text
//! seg_num frames per video, frame i = min(n − 1, ⌊(i + u)·n / seg_num⌋)             [S, D]
//! per modality, C = cluster_nums[m] attention units:
//!   weights = softmax over the S frames of (x · conv.weightᵀ + conv.bias)     [S, C]
//!   unit c:  l2_normalize((Σ_s weights[s, c]·x[s]) · shift_w[c] + shift_b[c]) / √C    [D]
//!   → [C·D] (unit-major)
//! concat → dropout (downgrade_in_infer) → fc1 tanh → fc2 tanh → logistic
//! ```
//!
//! **Sampling.** Upstream's reader draws u uniform per frame slot in training *and* at test
//! time. We draw so in training; inference, export and serving take u = ½ (evenly spaced
//! frames, `⌊(2i + 1)·n / (2·seg_num)⌋` in integers) so a bundle answers the same way twice.
//! [`AttentionCluster::forward_sampled`] takes given frames (parity with fixtures drawn by the
//! upstream reader). Frames are dequantized as the reader does (q·4/255 + 4/512 − 2).
//!
//! Variable names and layouts are upstream's (`satt0.conv.weight` `[C, D, 1, 1]`,
//! `fc1.weights` `[in, out]`, ...), so the released `AttentionCluster.pdparams` loads as is.
//! Checked against the upstream code run in paddlepaddle 2.6.2 (`scripts/paddle_zoo_parity.py`,
//! tests/paddle_zoo.rs).

use super::cast;
use super::paddle_ops::{
    dropout_downgrade, fc, l2_normalize, msra_normal, msra_uniform, onnx_dropout_downgrade,
    onnx_l2_normalize,
};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// Shape; names follow the legacy Paddle config (`MODEL.seg_num`, `cluster_nums`,
/// `drop_rate`; the hidden widths are hard-coded upstream as 1024 and 4096).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionClusterConfig {
    pub num_classes: usize,
    pub feature_dims: Vec<usize>,
    /// Frames sampled per video (100).
    pub seg_num: usize,
    /// Attention units per modality ([32, 32]).
    pub cluster_nums: Vec<usize>,
    pub fc1_size: usize,
    pub fc2_size: usize,
    pub drop_rate: f64,
}

impl super::NetworkConfig for AttentionClusterConfig {
    fn from_head(h: &super::HeadConfig) -> Self {
        AttentionClusterConfig {
            num_classes: h.num_classes,
            feature_dims: h.feature_dims.clone(),
            seg_num: h.seg_num,
            cluster_nums: h.cluster_nums.clone(),
            fc1_size: h.fc1_size,
            fc2_size: h.fc2_size,
            drop_rate: h.dropout,
        }
    }
    fn display_name(&self) -> &'static str {
        "AttentionCluster"
    }
    /// `dropout` scales by (1 − p) at inference (`downgrade_in_infer`): part of the model.
    fn keys(&self) -> &'static [&'static str] {
        &[
            "feature_names",
            "dropout",
            "seg_num",
            "cluster_nums",
            "fc1_size",
            "fc2_size",
        ]
    }
    fn validate(&self) -> std::result::Result<(), String> {
        if self.seg_num == 0 || self.fc1_size == 0 || self.fc2_size == 0 {
            return Err("MODEL.head.seg_num, fc1_size and fc2_size must be positive (legacy Paddle: 100, 1024, 4096)".into());
        }
        if self.cluster_nums.len() != self.feature_dims.len() || self.cluster_nums.contains(&0) {
            return Err(format!(
                "MODEL.head.cluster_nums {:?} must give a positive number of attention units per feature_dims entry {:?} (legacy Paddle: [32, 32])",
                self.cluster_nums, self.feature_dims
            ));
        }
        Ok(())
    }
    super::network_widths!(Frame);
    fn parameter_estimate(&self) -> Option<u64> {
        use super::{add, mul};
        let (f1, f2) = (self.fc1_size as u64, self.fc2_size as u64);
        let mut units = 0u64;
        let mut width = 0u64;
        for (&d, &k) in self.feature_dims.iter().zip(&self.cluster_nums) {
            units = add(units, mul(k as u64, add(d as u64, 3)?)?)?;
            width = add(width, mul(d as u64, k as u64)?)?;
        }
        let fcs = add(mul(add(width, 1)?, f1)?, mul(add(f1, 1)?, f2)?)?;
        add(add(units, fcs)?, mul(add(f2, 1)?, self.num_classes as u64)?)
    }
    /// Multiply-adds × 2 of one video (only the sampled frames are read).
    fn forward_flops(&self, _t: f64) -> f64 {
        let c = self;
        let s = c.seg_num as f64;
        let mut units = 0.0;
        let mut width = 0.0;
        for (&d, &k) in c.feature_dims.iter().zip(&c.cluster_nums) {
            // Scores and the weighted sums.
            units += 2.0 * 2.0 * s * d as f64 * k as f64;
            width += (d * k) as f64;
        }
        let (f1, f2) = (c.fc1_size as f64, c.fc2_size as f64);
        units + 2.0 * (width * f1 + f1 * f2 + f2 * c.num_classes as f64)
    }
    fn build(&self, root: &nn::Path) -> Box<dyn super::Network> {
        Box::new(AttentionCluster::new(root, self))
    }
}

#[derive(Debug)]
struct Unit {
    /// `conv.weight` `[C, D, 1, 1]` (a 1×1 convolution over the frames).
    conv_w: Tensor,
    conv_b: Tensor,
    shift_w: Tensor,
    shift_b: Tensor,
}

impl Unit {
    fn new(vs: &nn::Path, d: i64, c: i64) -> Self {
        let conv = vs.sub("conv");
        let glorot = Init::Randn {
            mean: 0.0,
            stdev: (1.0 / (c as f64).sqrt()).sqrt(),
        };
        Unit {
            conv_w: conv.var("weight", &[c, d, 1, 1], msra_normal(d)),
            conv_b: conv.var("bias", &[c], msra_uniform(c)),
            shift_w: vs.var("shift_w", &[c], glorot),
            shift_b: vs.var("shift_b", &[c], glorot),
        }
    }

    /// `x` `[B, S, D]` → `[B, C·D]`.
    fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let c = self.conv_b.size()[0];
        let b = x.size()[0];
        let w = cast(&self.conv_w, kind).flatten(1, 3); // [C, D]
        let scores = x.matmul(&w.tr()) + cast(&self.conv_b, kind); // [B, S, C]
        let weights = scores.softmax(1, kind);
        let pooled = weights.transpose(1, 2).bmm(x); // [B, C, D]
        let shift = pooled * cast(&self.shift_w, kind).view([1, c, 1])
            + cast(&self.shift_b, kind).view([1, c, 1]);
        let out = l2_normalize(&shift, 2) / (c as f64).sqrt();
        out.reshape([b, -1])
    }

    fn onnx(&self, g: &mut crate::onnx::Graph, x: &str) -> String {
        use crate::onnx::Attr;
        let c = self.conv_b.size()[0];
        let wt = self.conv_w.flatten(1, 3).tr();
        let scores = g.dense(x, &wt, &self.conv_b); // [B, S, C]
        let weights = g.op_attr("Softmax", &[&scores], vec![("axis", Attr::Int(1))]);
        let wt = g.op_attr(
            "Transpose",
            &[&weights],
            vec![("perm", Attr::Ints(vec![0, 2, 1]))],
        );
        let pooled = g.op("MatMul", &[&wt, x]); // [B, C, D]
        let sw = g.init_f32("shift_w", &self.shift_w.view([1, c, 1]));
        let sb = g.init_f32("shift_b", &self.shift_b.view([1, c, 1]));
        let y = g.op("Mul", &[&pooled, &sw]);
        let y = g.op("Add", &[&y, &sb]);
        let y = onnx_l2_normalize(g, &y, 2);
        let norm = g.scalar_f32("unit_norm", (c as f64).sqrt() as f32);
        let y = g.op("Div", &[&y, &norm]);
        let s2 = g.init_i64("shape_b_cd", &[2], &[0, -1]);
        g.op("Reshape", &[&y, &s2])
    }
}

#[derive(Debug)]
pub struct AttentionCluster {
    cfg: AttentionClusterConfig,
    units: Vec<Unit>,
    fc1_w: Tensor,
    fc1_b: Tensor,
    fc2_w: Tensor,
    fc2_b: Tensor,
    logits_w: Tensor,
    logits_b: Tensor,
}

impl AttentionCluster {
    pub fn new(vs: &nn::Path, cfg: &AttentionClusterConfig) -> Self {
        let units: Vec<Unit> = cfg
            .feature_dims
            .iter()
            .zip(&cfg.cluster_nums)
            .enumerate()
            .map(|(i, (&d, &c))| Unit::new(&vs.sub(format!("satt{i}")), d as i64, c as i64))
            .collect();
        let input: i64 = cfg
            .feature_dims
            .iter()
            .zip(&cfg.cluster_nums)
            .map(|(&d, &c)| (d * c) as i64)
            .sum();
        let (f1, f2, c) = (
            cfg.fc1_size as i64,
            cfg.fc2_size as i64,
            cfg.num_classes as i64,
        );
        let (p1, p2, pl) = (vs.sub("fc1"), vs.sub("fc2"), vs.sub("logistic"));
        AttentionCluster {
            units,
            fc1_w: p1.var("weights", &[input, f1], msra_normal(input)),
            fc1_b: p1.var("bias", &[f1], msra_uniform(f1)),
            fc2_w: p2.var("weights", &[f1, f2], msra_normal(f1)),
            fc2_b: p2.var("bias", &[f2], msra_uniform(f2)),
            logits_w: pl.var("weights", &[f2, c], msra_normal(f2)),
            logits_b: pl.var("bias", &[c], msra_normal(c)),
            cfg: cfg.clone(),
        }
    }

    /// Frames to use `[B, seg_num]` (int64): drawn as upstream's reader does in training
    /// (`min(n − 1, ⌊(i + u)·n / S⌋)`), evenly spaced (u = ½) otherwise.
    pub fn sample(&self, lengths: &Tensor, train: bool) -> Tensor {
        let s = self.cfg.seg_num as i64;
        let dev = lengths.device();
        let n = lengths.to_device(dev).unsqueeze(1); // [B, 1]
        let b = n.size()[0];
        let last = (&n - 1).clamp_min(0);
        let idx = if train {
            let u = Tensor::rand([b, s], (Kind::Double, dev));
            ((Tensor::arange(s, (Kind::Double, dev)).unsqueeze(0) + u) * n.to_kind(Kind::Double)
                / s as f64)
                .floor()
                .to_kind(Kind::Int64)
        } else {
            // Exact in integers: ⌊(2i + 1)·n / 2S⌋.
            (Tensor::arange(s, (Kind::Int64, dev)).unsqueeze(0) * 2 + 1)
                .g_mul(&n)
                .floor_divide_scalar(2 * s)
        };
        idx.minimum(&last)
    }

    /// Logits `[B, C]` from per-modality features `[B, T, D_m]` at the frames `index`
    /// `[B, S]`.
    pub fn forward_sampled(&self, features: &[Tensor], index: &Tensor, train: bool) -> Tensor {
        let parts: Vec<Tensor> = self
            .units
            .iter()
            .zip(features)
            .map(|(u, x)| u.forward(&super::gather_frames(x, index)))
            .collect();
        let v = dropout_downgrade(&Tensor::cat(&parts, 1), self.cfg.drop_rate, train);
        let h = fc(&v, &self.fc1_w, Some(&self.fc1_b)).tanh();
        let h = fc(&h, &self.fc2_w, Some(&self.fc2_b)).tanh();
        fc(&h, &self.logits_w, Some(&self.logits_b))
    }
}

impl super::Network for AttentionCluster {
    fn forward(&self, inputs: &super::Inputs, train: bool) -> Tensor {
        let index = self.sample(&inputs.lengths, train);
        self.forward_sampled(&inputs.features, &index, train)
    }
    /// Upstream sets no regularizer.
    fn decays(&self, _name: &str) -> bool {
        false
    }

    /// The evenly spaced frames (integer arithmetic, GatherElements), the attention units,
    /// the fc layers.
    fn onnx_logits(
        &self,
        g: &mut crate::onnx::Graph,
        io: &crate::onnx::GraphInputs,
    ) -> crate::error::Result<String> {
        use crate::onnx::Attr;
        let xs = io.float_features(g);
        let s = self.cfg.seg_num as i64;
        let lengths = io.lengths.as_deref().unwrap_or("lengths");
        let axes1 = g.init_i64("axes1", &[1], &[1]);
        let n = g.op("Unsqueeze", &[lengths, &axes1]); // [B, 1]
        let odd: Vec<i64> = (0..s).map(|i| 2 * i + 1).collect();
        let odd = g.init_i64("odd", &[1, s], &odd);
        let idx = g.op("Mul", &[&odd, &n]);
        let two_s = g.init_i64("two_s", &[], &[2 * s]);
        let idx = g.op("Div", &[&idx, &two_s]); // non-negative: truncation = floor
        let one = g.init_i64("one_i", &[], &[1]);
        let zero = g.init_i64("zero_i", &[], &[0]);
        let last = g.op("Sub", &[&n, &one]);
        let last = g.op("Max", &[&last, &zero]);
        let idx = g.op("Min", &[&idx, &last]); // [B, S]
        let mut parts = Vec::new();
        for (u, (x, &d)) in self.units.iter().zip(xs.iter().zip(&self.cfg.feature_dims)) {
            let xs = g.gather_frames(x, &idx, d as i64);
            parts.push(u.onnx(g, &xs));
        }
        let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
        let v = g.op_attr("Concat", &refs, vec![("axis", Attr::Int(1))]);
        let v = onnx_dropout_downgrade(g, &v, self.cfg.drop_rate);
        let h = g.dense(&v, &self.fc1_w, &self.fc1_b);
        let h = g.op("Tanh", &[&h]);
        let h = g.dense(&h, &self.fc2_w, &self.fc2_b);
        let h = g.op("Tanh", &[&h]);
        Ok(g.dense(&h, &self.logits_w, &self.logits_b))
    }
}
