//! PaddleVideo's AttentionLSTM head on libtorch.
//!
//! Reference: PaddleVideo `paddlevideo/modeling/heads/attention_lstm_head.py`
//! (`AttentionLstmHead`, commit ed245e9), specified in `shared/docs/attention_lstm_spec.md`.
//! Parameter names and layouts are PaddleVideo's one to one: Linear weights are stored
//! `[in, out]` (`y = x @ W + b`), LSTM weights `[4H, in]` with gates i, f, g, o.
//!
//! Variable-length semantics without packed sequences: PaddleVideo's bidirectional LSTM with
//! `sequence_length` runs the reverse direction from each video's last real frame. We run the
//! forward direction over the padded batch and the reverse direction as a *forward* LSTM over
//! each video reversed within its own length (one index gather), then reverse back. Both
//! calls hit libtorch's fused LSTM kernel (9x faster than packing on CPU), and the outputs
//! equal Paddle's: padding after a video's end never reaches its real steps.

use super::{cast, xavier};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// Model shape. Field names follow PaddleVideo's `MODEL.head` keys; `fc_out1_size` /
/// `fc_out2_size` are hard-coded to 8192 / 4096 upstream and configurable here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttentionLstmConfig {
    pub num_classes: usize,
    /// Widths of the modalities, rgb then audio.
    pub feature_dims: Vec<usize>,
    pub embedding_size: usize,
    pub lstm_size: usize,
    pub fc_out1_size: usize,
    pub fc_out2_size: usize,
    /// Dropout after the LSTM (Paddle `upscale_in_train`).
    pub dropout: f64,
}

impl Default for AttentionLstmConfig {
    fn default() -> Self {
        AttentionLstmConfig {
            num_classes: 3862,
            feature_dims: vec![1024, 128],
            embedding_size: 512,
            lstm_size: 1024,
            fc_out1_size: 8192,
            fc_out2_size: 4096,
            dropout: 0.5,
        }
    }
}

impl super::NetworkConfig for AttentionLstmConfig {
    fn from_head(h: &super::HeadConfig) -> Self {
        AttentionLstmConfig {
            num_classes: h.num_classes,
            feature_dims: h.feature_dims.clone(),
            embedding_size: h.embedding_size,
            lstm_size: h.lstm_size,
            fc_out1_size: h.fc_out1_size,
            fc_out2_size: h.fc_out2_size,
            dropout: h.dropout,
        }
    }
    fn display_name(&self) -> &'static str {
        "AttentionLSTM"
    }
    fn keys(&self) -> &'static [&'static str] {
        &[
            "feature_names",
            "embedding_size",
            "lstm_size",
            "fc_out1_size",
            "fc_out2_size",
            "dropout",
        ]
    }
    /// Paddle's `upscale_in_train` dropout is the identity at inference.
    fn free_keys(&self) -> &'static [&'static str] {
        &["dropout"]
    }
    fn validate(&self) -> std::result::Result<(), String> {
        let widths = [
            self.embedding_size,
            self.lstm_size,
            self.fc_out1_size,
            self.fc_out2_size,
        ];
        if widths.contains(&0) {
            return Err("MODEL.head widths (embedding_size, lstm_size, fc_out1_size, fc_out2_size) must be positive (PaddleVideo: 512, 1024, 8192, 4096)".into());
        }
        Ok(())
    }
    super::network_widths!(Frame);
    fn parameter_estimate(&self) -> Option<u64> {
        use super::{add, mul};
        let (c, e, l) = (
            self.num_classes as u64,
            self.embedding_size as u64,
            self.lstm_size as u64,
        );
        let (f1, f2) = (self.fc_out1_size as u64, self.fc_out2_size as u64);
        let m = self.feature_dims.len() as u64;
        let dims = super::sum_dims(&self.feature_dims)?;
        // Per modality: input fc, two LSTM directions (4 gates), attention; then the two fc
        // layers and the logits.
        let lstm = mul(mul(8, l)?, add(add(e, l)?, 2)?)?;
        // (+ biases: E and 1 per modality, then f1, f2 and c.)
        let per = add(add(mul(dims, e)?, mul(m, lstm)?)?, mul(mul(m, 2)?, l)?)?;
        let per = add(per, mul(m, add(e, 1)?)?)?;
        let head = add(
            add(mul(mul(mul(m, 2)?, l)?, f1)?, mul(f1, f2)?)?,
            mul(f2, c)?,
        )?;
        add(add(per, head)?, add(add(f1, f2)?, c)?)
    }
    /// FLOPs of one AttentionLSTM forward pass for a video of `t` frames (multiply-adds × 2).
    fn forward_flops(&self, t: f64) -> f64 {
        let cfg = self;
        let (e, h) = (cfg.embedding_size as f64, cfg.lstm_size as f64);
        let mut per_frame = 0.0;
        for &d in &cfg.feature_dims {
            per_frame += 2.0 * d as f64 * e; // fc_feature
            per_frame += 2.0 * 2.0 * 4.0 * h * (e + h); // two LSTM directions
            per_frame += 2.0 * 2.0 * h; // attention logit
            per_frame += 2.0 * 2.0 * h; // weighted sum
        }
        let pool = 2.0 * h * cfg.feature_dims.len() as f64;
        let head = 2.0
            * (pool * cfg.fc_out1_size as f64
                + cfg.fc_out1_size as f64 * cfg.fc_out2_size as f64
                + cfg.fc_out2_size as f64 * cfg.num_classes as f64);
        per_frame * t + head
    }
    fn cost_follows_frames(&self) -> bool {
        true
    }
    fn build(&self, root: &nn::Path) -> Box<dyn super::Network> {
        Box::new(AttentionLstm::new(root, self))
    }
}

/// One modality's branch: `fc_feature{i}`, `bi_lstm{i}`, `att_fc{i}`.
#[derive(Debug)]
struct Branch {
    fc_w: Tensor,
    fc_b: Tensor,
    /// `[w_ih, w_hh, b_ih, b_hh]` forward direction.
    fw: [Tensor; 4],
    /// The same for the reverse direction (`*_reverse`).
    bw: [Tensor; 4],
    att_w: Tensor,
    att_b: Tensor,
}

#[derive(Debug)]
pub struct AttentionLstm {
    pub cfg: AttentionLstmConfig,
    branches: Vec<Branch>,
    out1_w: Tensor,
    out1_b: Tensor,
    out2_w: Tensor,
    out2_b: Tensor,
    logit_w: Tensor,
    logit_b: Tensor,
    /// The head computes in float32 whatever the branches' kind (bf16 inference).
    head_fp32: bool,
}

/// Names of the parameters without L2 decay (PaddleVideo: `ParamAttr(regularizer=L2Decay(0.0))`).
pub const NO_DECAY: [&str; 3] = ["fc_out1.bias", "fc_out2.bias", "fc_logit.bias"];

/// Intermediate outputs, for parity tests.
pub struct Trace {
    pub fc_feature: Vec<Tensor>,
    pub bi_lstm: Vec<Tensor>,
    pub att_fc: Vec<Tensor>,
    pub att_out: Tensor,
    pub fc_out1: Tensor,
    pub fc_out2: Tensor,
}

/// Inverted dropout as PaddleVideo's `upscale_in_train` (kept values × 1/(1−p)), with a
/// cheaper mask than libtorch's `dropout`, which draws one Bernoulli variate per element
/// (`bernoulli_` took 1.4 s of a 19.7 s batch-128 training step, profiled on 2 cores). For the
/// recipe's p = 0.5 the mask is the bits of random bytes (8 elements per draw: 10x faster); other
/// p compare uniforms with 1−p (2.5x). Same distribution, same seeding.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p <= 0.0 {
        return x.shallow_clone();
    }
    if p >= 1.0 {
        return x.zeros_like();
    }
    let n = x.numel() as i64;
    let dev = x.device();
    let keep = if p == 0.5 {
        let bytes = Tensor::randint(256, [(n + 7) / 8, 1], (Kind::Uint8, dev));
        let shifts = Tensor::arange(8, (Kind::Uint8, dev));
        bytes
            .bitwise_right_shift(&shifts)
            .bitwise_and(1)
            .view([-1])
            .narrow(0, 0, n)
    } else {
        Tensor::rand([n], (Kind::Float, dev)).lt(1.0 - p)
    };
    let mut scale = keep.view(x.size().as_slice()).to_kind(x.kind());
    let _ = scale.g_mul_scalar_(1.0 / (1.0 - p));
    x * scale
}

/// Index that reverses each row of `[B, T]` within its length: `len-1-t` for `t < len`, `t`
/// after (those positions are masked). It is its own inverse on the valid part.
pub fn reverse_index(lengths: &Tensor, t: i64) -> Tensor {
    let dev = lengths.device();
    let ar = Tensor::arange(t, (Kind::Int64, dev)).unsqueeze(0); // [1, T]
    let len = lengths.unsqueeze(1); // [B, 1]
    let rev = &len - 1 - &ar;
    rev.where_self(&ar.lt_tensor(&len), &ar.expand_as(&rev))
}

impl AttentionLstm {
    /// Builds the variables under `vs` with PaddleVideo's initialisation.
    pub fn new(vs: &nn::Path, cfg: &AttentionLstmConfig) -> Self {
        let (e, h) = (cfg.embedding_size as i64, cfg.lstm_size as i64);
        let lstm_init = Init::Uniform {
            lo: -1.0 / (h as f64).sqrt(),
            up: 1.0 / (h as f64).sqrt(),
        };
        let mut branches = Vec::new();
        for (i, &d) in cfg.feature_dims.iter().enumerate() {
            let d = d as i64;
            let fc = vs.sub(format!("fc_feature{i}"));
            let lstm = vs.sub(format!("bi_lstm{i}"));
            let att = vs.sub(format!("att_fc{i}"));
            let dir = |suffix: &str| -> [Tensor; 4] {
                [
                    lstm.var(&format!("weight_ih_l0{suffix}"), &[4 * h, e], lstm_init),
                    lstm.var(&format!("weight_hh_l0{suffix}"), &[4 * h, h], lstm_init),
                    lstm.var(&format!("bias_ih_l0{suffix}"), &[4 * h], lstm_init),
                    lstm.var(&format!("bias_hh_l0{suffix}"), &[4 * h], lstm_init),
                ]
            };
            branches.push(Branch {
                fc_w: fc.var("weight", &[d, e], xavier(d, e)),
                fc_b: fc.var("bias", &[e], Init::Const(0.0)),
                fw: dir(""),
                bw: dir("_reverse"),
                att_w: att.var("weight", &[2 * h, 1], xavier(2 * h, 1)),
                att_b: att.var("bias", &[1], Init::Const(0.0)),
            });
        }
        let pool = 2 * h * cfg.feature_dims.len() as i64;
        let (o1, o2, c) = (
            cfg.fc_out1_size as i64,
            cfg.fc_out2_size as i64,
            cfg.num_classes as i64,
        );
        let normal = Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        AttentionLstm {
            cfg: cfg.clone(),
            branches,
            out1_w: vs
                .sub("fc_out1")
                .var("weight", &[pool, o1], xavier(pool, o1)),
            out1_b: vs.sub("fc_out1").var("bias", &[o1], normal),
            out2_w: vs.sub("fc_out2").var("weight", &[o1, o2], xavier(o1, o2)),
            out2_b: vs.sub("fc_out2").var("bias", &[o2], normal),
            logit_w: vs.sub("fc_logit").var("weight", &[o2, c], xavier(o2, c)),
            logit_b: vs.sub("fc_logit").var("bias", &[c], normal),
            head_fp32: false,
        }
    }

    /// Puts the three head layers back in float32 after the variables were cast to bf16.
    /// Measured here (AMX CPU, 2 threads): a [1, 4096] × [4096, 8192] product takes 4.7 ms in
    /// bf16 but 3.5 ms in float32 (the head is ~83 M weights read once per batch-1 video),
    /// while at batch 64 the float32 head adds about 1 % to a batch's time: so the LSTMs,
    /// input layers and attention run in bf16 and the head in float32.
    pub fn head_in_float32(&mut self) {
        self.head_fp32 = true;
        tch::no_grad(|| {
            for t in [
                &self.out1_w,
                &self.out1_b,
                &self.out2_w,
                &self.out2_b,
                &self.logit_w,
                &self.logit_b,
            ] {
                let mut t = t.shallow_clone();
                let f = t.to_kind(Kind::Float);
                t.set_data(&f);
            }
        });
    }

    /// One direction of the LSTM over `[B, T, E]`, batch-first, zero initial state.
    fn lstm_dir(x: &Tensor, p: &[Tensor; 4], train: bool) -> Tensor {
        let (b, h) = (x.size()[0], p[1].size()[1]);
        let z = Tensor::zeros([1, b, h], (x.kind(), x.device()));
        let p: Vec<Tensor> = p.iter().map(|t| cast(t, x.kind())).collect();
        let params: Vec<&Tensor> = p.iter().collect();
        let (out, _, _) = x.lstm(&[&z, &z], &params, true, 1, 0.0, train, false, true);
        out
    }

    /// Length-aware bidirectional LSTM: `x` `[B, T, E]`, `lengths` `[B]` (int64, same device)
    /// → `[B, T, 2H]`, zero at `t ≥ len`.
    fn bi_lstm(x: &Tensor, br: &Branch, lengths: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let t = x.size()[1];
        let e = x.size()[2];
        let fw = Self::lstm_dir(x, &br.fw, train);
        let idx = reverse_index(lengths, t);
        let gather_x = idx.unsqueeze(2).expand([-1, -1, e], false);
        let x_rev = x.gather(1, &gather_x, false);
        let bw_rev = Self::lstm_dir(&x_rev, &br.bw, train);
        let hsz = bw_rev.size()[2];
        let bw = bw_rev.gather(1, &idx.unsqueeze(2).expand([-1, -1, hsz], false), false);
        Tensor::cat(&[fw, bw], 2) * mask.unsqueeze(2)
    }

    /// Forward pass on float features. `features[m]` `[B, T, D_m]`, `lengths` `[B]` int64.
    /// Returns logits `[B, C]` (and intermediates if `trace`).
    pub fn forward_features(
        &self,
        features: &[Tensor],
        lengths: &Tensor,
        train: bool,
        trace: bool,
    ) -> (Tensor, Option<Trace>) {
        let t = features[0].size()[1];
        let dev = features[0].device();
        let kind = features[0].kind();
        let lengths = lengths.to_device(dev);
        let valid = super::valid_frames(&lengths, t); // [B, T] bool
        let mask = valid.to_kind(kind);
        let mut pools = Vec::new();
        let mut tr = trace.then(|| (Vec::new(), Vec::new(), Vec::new()));
        for (br, x) in self.branches.iter().zip(features) {
            let pre = x.matmul(&cast(&br.fc_w, kind)) + cast(&br.fc_b, kind); // [B, T, E]
            let emb = pre.tanh();
            let h = Self::bi_lstm(&emb, br, &lengths, &mask, train); // [B, T, 2H]
            let hd = dropout(&h, self.cfg.dropout, train);
            let a = hd.matmul(&cast(&br.att_w, kind)) + cast(&br.att_b, kind); // [B, T, 1]
            // Masked softmax over valid frames (max-subtracted; PaddleVideo's exp/sum without
            // it is equal within rounding).
            let neg = Tensor::full([1], f64::NEG_INFINITY, (kind, dev));
            let w = a
                .squeeze_dim(2)
                .where_self(&valid, &neg)
                .softmax(1, kind)
                .unsqueeze(2); // [B, T, 1]
            pools.push((&hd * &w).sum_dim_intlist(1, false, kind)); // [B, 2H]
            if let Some((f, l, at)) = tr.as_mut() {
                f.push(pre);
                l.push(h);
                at.push(a);
            }
        }
        // The head computes in the branches' kind, except after `head_in_float32` (bf16
        // inference: float32 is faster there for small batches).
        let hk = if self.head_fp32 { Kind::Float } else { kind };
        let z = cast(&Tensor::cat(&pools, 1), hk);
        let o1 = z.matmul(&cast(&self.out1_w, hk)) + cast(&self.out1_b, hk);
        let o2 = o1.relu().matmul(&cast(&self.out2_w, hk)) + cast(&self.out2_b, hk);
        let logits = o2.tanh().matmul(&cast(&self.logit_w, hk)) + cast(&self.logit_b, hk);
        let trace = tr.map(|(f, l, at)| Trace {
            fc_feature: f,
            bi_lstm: l,
            att_fc: at,
            att_out: z,
            fc_out1: o1,
            fc_out2: o2,
        });
        (logits, trace)
    }
}

/// Torch/Paddle LSTM gate blocks (i, f, g, o) → ONNX order (i, o, f, c).
pub(crate) fn onnx_gates(t: &Tensor) -> Tensor {
    let c = t.chunk(4, 0);
    Tensor::cat(&[&c[0], &c[3], &c[1], &c[2]], 0)
}

impl super::Network for AttentionLstm {
    fn forward(&self, inputs: &super::Inputs, train: bool) -> Tensor {
        self.forward_features(&inputs.features, &inputs.lengths, train, false)
            .0
    }
    fn decays(&self, name: &str) -> bool {
        !NO_DECAY.contains(&name)
    }
    fn computes_in(&mut self, kind: Kind) {
        if kind == Kind::BFloat16 {
            self.head_in_float32();
        }
    }
    fn flatten_rnn_weights(&mut self) {
        for br in &self.branches {
            super::cudnn_flatten_lstm(&br.fw);
            super::cudnn_flatten_lstm(&br.bw);
        }
    }

    /// Per modality: dequantize (uint8 inputs: the official reader's two f32 ops), dense +
    /// tanh, the bidirectional ONNX `LSTM` with `sequence_lens` (exact for padded batches),
    /// attention logits masked past each length, softmax over time, weighted sum; then the
    /// concatenation through fc_out1 (relu), fc_out2 (tanh) and the logit layer.
    fn onnx_logits(
        &self,
        g: &mut crate::onnx::Graph,
        io: &crate::onnx::GraphInputs,
    ) -> crate::error::Result<String> {
        use crate::onnx::Attr;
        let h = self.branches[0].fw[1].size()[1];
        let lengths = io.lengths.as_deref().unwrap_or("lengths");
        let seq_lens = g.op_attr("Cast", &[lengths], vec![("to", Attr::Int(6))]); // INT32
        let axes1 = g.init_i64("axes1", &[1], &[1]);
        let axes2 = g.init_i64("axes2", &[1], &[2]);
        let reshape_flat = g.init_i64("shape_bt_", &[3], &[0, 0, -1]);
        let neg_inf = g.scalar_f32("neg_inf", f32::NEG_INFINITY);
        // Validity mask [B, T] from the lengths (shared by the modalities).
        let valid = io.valid_frames(g);
        let inputs = io.float_features(g);
        let mut pools = Vec::new();
        for (br, x) in self.branches.iter().zip(&inputs) {
            let e = g.dense(x, &br.fc_w, &br.fc_b);
            let e = g.op("Tanh", &[&e]);
            let e = g.op_attr(
                "Transpose",
                &[&e],
                vec![("perm", Attr::Ints(vec![1, 0, 2]))],
            );
            let gates = |d: &[Tensor; 4], k: usize| onnx_gates(&d[k]);
            let wx = Tensor::stack(&[gates(&br.fw, 0), gates(&br.bw, 0)], 0);
            let rx = Tensor::stack(&[gates(&br.fw, 1), gates(&br.bw, 1)], 0);
            let bx = Tensor::stack(
                &[
                    Tensor::cat(&[gates(&br.fw, 2), gates(&br.fw, 3)], 0),
                    Tensor::cat(&[gates(&br.bw, 2), gates(&br.bw, 3)], 0),
                ],
                0,
            );
            let (wn, rn, bn) = (
                g.init_f32("lstm_w", &wx),
                g.init_f32("lstm_r", &rx),
                g.init_f32("lstm_b", &bx),
            );
            let y = g.node(
                "LSTM",
                &[&e, &wn, &rn, &bn, &seq_lens],
                vec![
                    ("direction", Attr::Str("bidirectional".into())),
                    ("hidden_size", Attr::Int(h)),
                ],
                1,
            );
            // Y [T, 2, B, H] → [B, T, 2, H] → [B, T, 2H]
            let y = g.op_attr(
                "Transpose",
                &[&y[0]],
                vec![("perm", Attr::Ints(vec![2, 0, 1, 3]))],
            );
            let hseq = g.op("Reshape", &[&y, &reshape_flat]);
            let a = g.dense(&hseq, &br.att_w, &br.att_b);
            let a = g.op("Squeeze", &[&a, &axes2]);
            let a = g.op("Where", &[&valid, &a, &neg_inf]);
            let w = g.op_attr("Softmax", &[&a], vec![("axis", Attr::Int(1))]);
            let w = g.op("Unsqueeze", &[&w, &axes2]);
            let hw = g.op("Mul", &[&hseq, &w]);
            pools.push(g.op_attr(
                "ReduceSum",
                &[&hw, &axes1],
                vec![("keepdims", Attr::Int(0))],
            ));
        }
        let refs: Vec<&str> = pools.iter().map(|s| s.as_str()).collect();
        let z = g.op_attr("Concat", &refs, vec![("axis", Attr::Int(1))]);
        let o1 = g.dense(&z, &self.out1_w, &self.out1_b);
        let o1 = g.op("Relu", &[&o1]);
        let o2 = g.dense(&o1, &self.out2_w, &self.out2_b);
        let o2 = g.op("Tanh", &[&o2]);
        Ok(g.dense(&o2, &self.logit_w, &self.logit_b))
    }
}

#[cfg(test)]
mod tests {
    use super::dropout;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn dropout_keeps_each_element_with_probability_1_minus_p_and_rescales() {
        let _rng = crate::model::TORCH_RNG
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let x = Tensor::ones([64, 50, 33], (Kind::Float, Device::Cpu)); // odd numel: 105,600
        for p in [0.5, 0.3] {
            tch::manual_seed(4);
            let y = dropout(&x, p, true);
            let kept = y
                .ne(0.0)
                .to_kind(Kind::Double)
                .mean(Kind::Double)
                .double_value(&[]);
            let n = x.numel() as f64;
            let sd = (p * (1.0 - p) / n).sqrt();
            println!("p {p}: kept {kept:.4} (expected {:.4} ± {sd:.4})", 1.0 - p);
            assert!((kept - (1.0 - p)).abs() < 5.0 * sd);
            let vals = y.masked_select(&y.ne(0.0));
            let want = 1.0 / (1.0 - p);
            assert!((vals - want).abs().max().double_value(&[]) < 1e-6);
            // Same seed, same mask; neighbouring elements independent (not one bit per byte).
            tch::manual_seed(4);
            assert!(dropout(&x, p, true).equal(&y));
            let flat = y.ne(0.0).view([-1]).to_kind(Kind::Double);
            let both = (flat.narrow(0, 0, 105_599) * flat.narrow(0, 1, 105_599))
                .mean(Kind::Double)
                .double_value(&[]);
            assert!(
                (both - (1.0 - p) * (1.0 - p)).abs() < 0.01,
                "adjacent kept {both}"
            );
        }
        assert!(dropout(&x, 0.5, false).equal(&x));
    }
}
