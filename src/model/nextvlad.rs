//! NeXtVLAD (Lin et al., arXiv 1811.05014; the best single model of the 2nd YouTube-8M
//! challenge) as PaddlePaddle's legacy video zoo has it: PaddlePaddle/models
//! `PaddleCV/video/models/nextvlad/{nextvlad.py, nextvlad_model.py, clf_model.py}` (commit
//! 0173b12c). Published there on YouTube-8M validate: Hit@1 0.8960, PERR 0.8132, GAP 0.8709.
//!
//! ```text
//! rgb:   q·4/255 − 2 (no half-bin offset upstream, unlike audio's q·4/255 − 2 + 4/512)
//!        × (√eigenvalue + 1e-4) per dimension (`eigen_file`, the starter's PCA eigenvalues)
//! per modality, per frame [D] → fc_expansion [λD] → x̃
//!   attention  = sigmoid(fc_group_attention(x̃))                       [G]
//!   activation = batch_norm(x̃ · cluster_weights [λD, G·K]) → [G, K] softmax over K × attention
//!   vlad[k, f] = Σ_frames Σ_g activation[g, k] · x̃[g, f] − (Σ activation[·, k]) · cluster_weights2[k, f]
//!   → transpose [f, k], l2-normalised over f, flattened f-major [F·K] (F = λD/G) → batch_norm
//! concat → dropout (downgrade_in_infer) → hidden1_fc (no bias) → batch_norm → × context gate
//!   gate = sigmoid(gating_fc2(relu(batch_norm(gating_fc1(·)))))  (SE-style, width H/r)
//! → logits_clf (the logistic classifier, L2Decay(l2_penalty) on its weights and bias)
//! ```
//!
//! Upstream feeds each video's frames as a LoD sequence (no padding, no mask): the cluster
//! batch norm's statistics are those of every real frame in the batch. Here frames arrive
//! padded; the mask keeps padding out of the statistics and the sums, so the numbers are the
//! LoD ones. Batch norm, dropout and `l2_normalize` are Paddle's ([`super::paddle_ops`]).
//! Checked against the upstream code run in paddlepaddle 2.6.2 (`scripts/paddle_zoo_parity.py`,
//! tests/paddle_zoo.rs): logits, loss, every gradient, the moving statistics, one Adam step and
//! inference.

use super::cast;
use super::paddle_ops::{
    BatchNorm, dropout_downgrade, fc, l2_normalize, msra_normal, onnx_dropout_downgrade,
    onnx_l2_normalize,
};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::Tensor;
use tch::nn::{self, Init};

/// Shape; names follow the legacy Paddle config (`MODEL.cluster_size`, `hidden_size`,
/// `groups`, `expansion`, `gating_reduction`, `drop_rate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextVladConfig {
    pub num_classes: usize,
    pub feature_dims: Vec<usize>,
    /// K, clusters per group (128).
    pub cluster_size: usize,
    /// H, the hidden layer (2048).
    pub hidden_size: usize,
    /// G (8).
    pub groups: usize,
    /// λ (2).
    pub expansion: usize,
    /// r: the gate's bottleneck is H / r (8).
    pub gating_reduction: usize,
    /// Dropout before the hidden layer (0.5, `downgrade_in_infer`).
    pub drop_rate: f64,
}

impl super::NetworkConfig for NextVladConfig {
    fn from_head(h: &super::HeadConfig) -> Self {
        NextVladConfig {
            num_classes: h.num_classes,
            feature_dims: h.feature_dims.clone(),
            cluster_size: h.cluster_size,
            hidden_size: h.hidden_size,
            groups: h.groups,
            expansion: h.expansion,
            gating_reduction: h.gating_reduction,
            drop_rate: h.dropout,
        }
    }
    fn display_name(&self) -> &'static str {
        "NeXtVLAD"
    }
    /// `dropout` scales by (1 − p) at inference (`downgrade_in_infer`): part of the model.
    fn keys(&self) -> &'static [&'static str] {
        &[
            "feature_names",
            "dropout",
            "cluster_size",
            "hidden_size",
            "groups",
            "expansion",
            "gating_reduction",
            "eigen_file",
        ]
    }
    /// The eigenvalues are read when training starts and saved with the weights.
    fn free_keys(&self) -> &'static [&'static str] {
        &["eigen_file"]
    }
    fn validate(&self) -> std::result::Result<(), String> {
        let bad = [
            self.cluster_size,
            self.hidden_size,
            self.groups,
            self.expansion,
            self.gating_reduction,
        ]
        .contains(&0)
            || self.gating_reduction > self.hidden_size;
        if bad {
            return Err("MODEL.head.cluster_size, hidden_size, groups, expansion and gating_reduction must be positive, gating_reduction at most hidden_size (legacy Paddle: 128, 2048, 8, 2, 8)".into());
        }
        if let Some(d) = self
            .feature_dims
            .iter()
            .find(|&&d| (d * self.expansion) % self.groups != 0)
        {
            return Err(format!(
                "MODEL.head.expansion × feature width ({} × {d}) must divide into MODEL.head.groups = {} equal groups",
                self.expansion, self.groups
            ));
        }
        Ok(())
    }
    super::network_widths!(Frame);
    fn parameter_estimate(&self) -> Option<u64> {
        use super::{add, mul};
        let (k, hd, g) = (
            self.cluster_size as u64,
            self.hidden_size as u64,
            self.groups as u64,
        );
        let hr = hd / (self.gating_reduction.max(1) as u64);
        let mut total = 0u64;
        let mut vlad = 0u64;
        for &d in &self.feature_dims {
            let e = mul(self.expansion as u64, d as u64)?;
            let f = e / g.max(1);
            // Expansion, attention, cluster weights (+ batch norm), weights2, the VLAD
            // batch norm.
            let block = add(mul(add(d as u64, 1)?, e)?, mul(add(e, 1)?, g)?)?;
            let block = add(block, mul(add(e, 2)?, mul(g, k)?)?)?;
            let block = add(block, mul(mul(k, f)?, 3)?)?;
            total = add(total, block)?;
            vlad = add(vlad, mul(k, f)?)?;
        }
        let head = add(mul(vlad, hd)?, mul(2, hd)?)?;
        let head = add(head, add(mul(mul(2, hd)?, hr)?, mul(2, hr)?)?)?;
        add(
            add(total, head)?,
            mul(add(hd, 1)?, self.num_classes as u64)?,
        )
    }
    /// Multiply-adds × 2 of one video of `t` frames.
    fn forward_flops(&self, t: f64) -> f64 {
        let c = self;
        let (g, k, lambda) = (c.groups as f64, c.cluster_size as f64, c.expansion as f64);
        let mut per_frame = 0.0;
        let mut vlad = 0.0;
        for &d in &c.feature_dims {
            let e = lambda * d as f64;
            // Expansion, group attention, cluster assignment, the VLAD sum.
            per_frame += 2.0 * (d as f64 * e + e * g + e * g * k + g * k * e / g);
            vlad += k * e / g;
        }
        let h = c.hidden_size as f64;
        let hr = h / c.gating_reduction as f64;
        per_frame * t + 2.0 * (vlad * h + 2.0 * h * hr + h * c.num_classes as f64)
    }
    fn cost_follows_frames(&self) -> bool {
        true
    }
    fn build(&self, root: &nn::Path) -> Box<dyn super::Network> {
        Box::new(NextVlad::new(root, self))
    }
}

/// Upstream's rgb dequantization lacks the half-bin offset that ours (and audio's) adds.
const RGB_SHIFT: f64 = 4.0 / 512.0;

/// One modality's NeXtVLAD block.
#[derive(Debug)]
struct Block {
    /// `fc_expansion_w` `[D, λD]`, `_b` `[λD]`.
    fc_w: Tensor,
    fc_b: Tensor,
    /// `fc_group_attention_w` `[λD, G]`, `_b` `[G]`.
    att_w: Tensor,
    att_b: Tensor,
    /// `cluster_weights` `[λD, G·K]`.
    cluster_w: Tensor,
    cluster_bn: BatchNorm,
    /// `cluster_weights2` `[K, F]`.
    cluster_w2: Tensor,
    vlad_bn: BatchNorm,
    groups: i64,
    k: i64,
    f: i64,
}

/// Upstream's variable prefixes: `video_` (rgb) and `audio_`.
fn prefix(i: usize) -> String {
    match i {
        0 => "video".into(),
        1 => "audio".into(),
        _ => format!("m{i}"),
    }
}

impl Block {
    fn new(vs: &nn::Path, name: &str, d: i64, cfg: &NextVladConfig) -> Self {
        let (e, g, k) = (
            cfg.expansion as i64 * d,
            cfg.groups as i64,
            cfg.cluster_size as i64,
        );
        let f = e / g;
        let v = |n: &str, dims: &[i64], init| vs.var(&format!("{name}_{n}"), dims, init);
        Block {
            fc_w: v("fc_expansion_w", &[d, e], msra_normal(d)),
            fc_b: v("fc_expansion_b", &[e], Init::Const(0.0)),
            att_w: v("fc_group_attention_w", &[e, g], msra_normal(e)),
            att_b: v("fc_group_attention_b", &[g], Init::Const(0.0)),
            cluster_w: v("cluster_weights", &[e, g * k], msra_normal(e)),
            cluster_bn: BatchNorm::new(&vs.sub(format!("{name}_cluster_bn")), g * k),
            cluster_w2: v("cluster_weights2", &[k, f], msra_normal(k)),
            vlad_bn: BatchNorm::new(&vs.sub(format!("{name}_vlad_bn")), k * f),
            groups: g,
            k,
            f,
        }
    }

    /// `x` `[B, T, D]`, `mask` `[B, T]` (1 = real frame) → `[B, F·K]`.
    fn forward(&self, x: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let (b, t) = (x.size()[0], x.size()[1]);
        let (g, k, f) = (self.groups, self.k, self.f);
        let kind = x.kind();
        let xe = fc(x, &self.fc_w, Some(&self.fc_b)); // [B, T, λD]
        let att = fc(&xe, &self.att_w, Some(&self.att_b)).sigmoid(); // [B, T, G]
        let act = fc(&xe, &self.cluster_w, None); // [B, T, G·K]
        let act = self.cluster_bn.forward_masked(&act, Some(mask), train);
        let act = act.view([b, t, g, k]).softmax(-1, kind)
            * att.unsqueeze(-1)
            * mask.to_kind(kind).view([b, t, 1, 1]);
        let act = act.reshape([b, t * g, k]);
        let a_sum = act.sum_dim_intlist(1, false, kind); // [B, K]
        let a = a_sum.unsqueeze(2) * cast(&self.cluster_w2, kind); // [B, K, F]
        let vlad = act.transpose(1, 2).bmm(&xe.reshape([b, t * g, f])) - a; // [B, K, F]
        let vlad = l2_normalize(&vlad.transpose(1, 2), 1); // [B, F, K]
        self.vlad_bn.forward(&vlad.reshape([b, f * k]), train)
    }

    fn onnx(
        &self,
        g: &mut crate::onnx::Graph,
        x: &str,
        mask4: &str,
    ) -> crate::error::Result<String> {
        use crate::onnx::Attr;
        let (gr, k, f) = (self.groups, self.k, self.f);
        let xe = g.dense(x, &self.fc_w, &self.fc_b);
        let att = g.dense(&xe, &self.att_w, &self.att_b);
        let att = g.op("Sigmoid", &[&att]);
        let axes3 = g.init_i64("axes3", &[1], &[3]);
        let att = g.op("Unsqueeze", &[&att, &axes3]); // [B, T, G, 1]
        let cw = g.init_f32("cluster_w", &self.cluster_w);
        let act = g.op("MatMul", &[&xe, &cw]);
        let act = self.cluster_bn.onnx(g, &act);
        let s4 = g.init_i64("shape_btgk", &[4], &[0, 0, gr, k]);
        let act = g.op("Reshape", &[&act, &s4]);
        let act = g.op_attr("Softmax", &[&act], vec![("axis", Attr::Int(-1))]);
        let act = g.op("Mul", &[&act, &att]);
        let act = g.op("Mul", &[&act, mask4]);
        let s3 = g.init_i64("shape_b_tg_k", &[3], &[0, -1, k]);
        let act = g.op("Reshape", &[&act, &s3]); // [B, T·G, K]
        let axes1 = g.init_i64("axes1", &[1], &[1]);
        let a_sum = g.op_attr(
            "ReduceSum",
            &[&act, &axes1],
            vec![("keepdims", Attr::Int(0))],
        );
        let axes2 = g.init_i64("axes2", &[1], &[2]);
        let a_sum = g.op("Unsqueeze", &[&a_sum, &axes2]); // [B, K, 1]
        let cw2 = g.init_f32("cluster_w2", &self.cluster_w2);
        let a = g.op("Mul", &[&a_sum, &cw2]); // [B, K, F]
        let act_t = g.op_attr(
            "Transpose",
            &[&act],
            vec![("perm", Attr::Ints(vec![0, 2, 1]))],
        );
        let sf = g.init_i64("shape_b_tg_f", &[3], &[0, -1, f]);
        let xr = g.op("Reshape", &[&xe, &sf]);
        let vlad = g.op("MatMul", &[&act_t, &xr]);
        let vlad = g.op("Sub", &[&vlad, &a]);
        let vlad = g.op_attr(
            "Transpose",
            &[&vlad],
            vec![("perm", Attr::Ints(vec![0, 2, 1]))],
        );
        let vlad = onnx_l2_normalize(g, &vlad, 1);
        let s2 = g.init_i64("shape_b_fk", &[2], &[0, -1]);
        let vlad = g.op("Reshape", &[&vlad, &s2]);
        Ok(self.vlad_bn.onnx(g, &vlad))
    }
}

#[derive(Debug)]
pub struct NextVlad {
    cfg: NextVladConfig,
    /// `eigen_param` `[D_rgb]`: √eigenvalue + 1e-4 (not trained; ones until
    /// [`NextVlad::load_eigenvalues`]).
    eigen: Tensor,
    blocks: Vec<Block>,
    hidden_w: Tensor,
    hidden_bn: BatchNorm,
    gate1_w: Tensor,
    gate_bn: BatchNorm,
    gate2_w: Tensor,
    logits_w: Tensor,
    logits_b: Tensor,
}

impl NextVlad {
    pub fn new(vs: &nn::Path, cfg: &NextVladConfig) -> Self {
        let dims: Vec<i64> = cfg.feature_dims.iter().map(|&d| d as i64).collect();
        let blocks: Vec<Block> = dims
            .iter()
            .enumerate()
            .map(|(i, &d)| Block::new(vs, &prefix(i), d, cfg))
            .collect();
        let vlad: i64 = blocks.iter().map(|b| b.k * b.f).sum();
        let h = cfg.hidden_size as i64;
        let hr = h / cfg.gating_reduction as i64;
        let c = cfg.num_classes as i64;
        NextVlad {
            eigen: vs.ones_no_train("eigen_param", &[dims[0]]),
            blocks,
            hidden_w: vs.var("hidden1_fc_weights", &[vlad, h], msra_normal(vlad)),
            hidden_bn: BatchNorm::new(&vs.sub("hidden1_bn"), h),
            gate1_w: vs.var("gating_fc1_weights", &[h, hr], msra_normal(h)),
            gate_bn: BatchNorm::new(&vs.sub("gating_bn"), hr),
            gate2_w: vs.var("gating_fc2_weights", &[hr, h], msra_normal(hr)),
            logits_w: vs.var("logits_clf_weights", &[h, c], msra_normal(h)),
            logits_b: vs.var("logits_clf_bias", &[c], Init::Const(0.0)),
            cfg: cfg.clone(),
        }
    }

    /// Sets the rgb scaling from the starter's PCA eigenvalue file (`eigen_file`: `.npy`,
    /// `[N]` or `[N, 1]`, N ≥ the rgb width; upstream takes the first D values of column 0)
    /// to `√eigenvalue + 1e-4`.
    pub fn load_eigenvalues(&self, path: &Path) -> Result<()> {
        let bad = |m: String| Error::Weights {
            path: path.display().to_string(),
            message: format!(
                "{m}\n  hint: MODEL.head.eigen_file is the YouTube-8M starter's yt8m_pca/eigenvals.npy (float, [1024, 1])"
            ),
        };
        let a = crate::data::npy::read_npy(path).map_err(|e| bad(e.to_string()))?;
        let d = self.eigen.size()[0] as usize;
        let (rows, cols) = match a.shape.as_slice() {
            [n] => (*n, 1),
            [n, c] if *c >= 1 => (*n, *c),
            s => return Err(bad(format!("shape {s:?}, expected [N] or [N, 1]"))),
        };
        if rows < d {
            return Err(bad(format!(
                "{rows} eigenvalues, the rgb features have {d} dimensions"
            )));
        }
        let all = a.to_f64();
        let v: Vec<f32> = (0..d).map(|i| all[i * cols]).map(|e| e as f32).collect();
        if let Some(i) = v.iter().position(|e| !e.is_finite() || *e < 0.0) {
            return Err(bad(format!(
                "eigenvalue {i} is {}: eigenvalues are finite and non-negative",
                v[i]
            )));
        }
        // Upstream: np.sqrt(float32 values) + 1e-4, in float32.
        let s: Vec<f32> = v.iter().map(|e| e.sqrt() + 1e-4f32).collect();
        tch::no_grad(|| {
            let mut e = self.eigen.shallow_clone();
            e.copy_(
                &Tensor::from_slice(&s)
                    .to_kind(e.kind())
                    .to_device(e.device()),
            );
        });
        Ok(())
    }

    /// The rgb scaling in use `[D_rgb]`.
    pub fn eigen_scale(&self) -> &Tensor {
        &self.eigen
    }

    /// Upstream's per-modality inputs from ours (dequantized with the half-bin offset).
    fn inputs(&self, features: &[Tensor]) -> Vec<Tensor> {
        features
            .iter()
            .enumerate()
            .map(|(i, x)| {
                if i == 0 {
                    (x - RGB_SHIFT) * cast(&self.eigen, x.kind())
                } else {
                    x.shallow_clone()
                }
            })
            .collect()
    }
}

impl super::Network for NextVlad {
    fn forward(&self, inputs: &super::Inputs, train: bool) -> Tensor {
        let xs = self.inputs(&inputs.features);
        let t = xs[0].size()[1];
        let mask = super::valid_frames(&inputs.lengths, t).to_kind(xs[0].kind());
        let parts: Vec<Tensor> = self
            .blocks
            .iter()
            .zip(&xs)
            .map(|(b, x)| b.forward(x, &mask, train))
            .collect();
        let v = dropout_downgrade(&Tensor::cat(&parts, 1), self.cfg.drop_rate, train);
        let h = self.hidden_bn.forward(&fc(&v, &self.hidden_w, None), train);
        let gate = self
            .gate_bn
            .forward(&fc(&h, &self.gate1_w, None), train)
            .relu();
        let gate = fc(&gate, &self.gate2_w, None).sigmoid();
        fc(&(h * gate), &self.logits_w, Some(&self.logits_b))
    }
    /// clf_model.py's `L2DecayRegularizer(l2_penalty)` is on the logistic layer only.
    fn decays(&self, name: &str) -> bool {
        name == "logits_clf_weights" || name == "logits_clf_bias"
    }

    fn init_from_files(&self, eigen_file: Option<&Path>) -> Result<()> {
        match eigen_file {
            Some(f) => self.load_eigenvalues(f),
            None => Ok(()),
        }
    }
    fn onnx_logits(
        &self,
        g: &mut crate::onnx::Graph,
        io: &crate::onnx::GraphInputs,
    ) -> crate::error::Result<String> {
        use crate::onnx::Attr;
        let xs = io.float_features(g);
        let valid = io.valid_frames(g);
        let valid = g.op_attr("Cast", &[&valid], vec![("to", Attr::Int(1))]); // FLOAT
        let axes23 = g.init_i64("axes23", &[2], &[2, 3]);
        let mask4 = g.op("Unsqueeze", &[&valid, &axes23]); // [B, T, 1, 1]
        let shift = g.scalar_f32("rgb_shift", RGB_SHIFT as f32);
        let eig = g.init_f32("eigen", &self.eigen);
        let mut parts = Vec::new();
        for (i, (b, x)) in self.blocks.iter().zip(&xs).enumerate() {
            let x = if i == 0 {
                let x = g.op("Sub", &[x, &shift]);
                g.op("Mul", &[&x, &eig])
            } else {
                x.clone()
            };
            parts.push(b.onnx(g, &x, &mask4)?);
        }
        let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
        let v = g.op_attr("Concat", &refs, vec![("axis", Attr::Int(1))]);
        let v = onnx_dropout_downgrade(g, &v, self.cfg.drop_rate);
        let hw = g.init_f32("hidden_w", &self.hidden_w);
        let h = g.op("MatMul", &[&v, &hw]);
        let h = self.hidden_bn.onnx(g, &h);
        let g1 = g.init_f32("gate1_w", &self.gate1_w);
        let gate = g.op("MatMul", &[&h, &g1]);
        let gate = self.gate_bn.onnx(g, &gate);
        let gate = g.op("Relu", &[&gate]);
        let g2 = g.init_f32("gate2_w", &self.gate2_w);
        let gate = g.op("MatMul", &[&gate, &g2]);
        let gate = g.op("Sigmoid", &[&gate]);
        let h = g.op("Mul", &[&h, &gate]);
        Ok(g.dense(&h, &self.logits_w, &self.logits_b))
    }
}
