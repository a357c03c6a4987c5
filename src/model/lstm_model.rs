//! The starter's `LstmModel` (google/youtube-8m `frame_level_models.py`, commit e6f6bf6): a
//! stack of `lstm_layers` LSTMs of `lstm_cells` units over the starter's normalised frames
//! ([`super::frame_logistic::starter_frames`]), run to each video's length
//! (`tf.nn.dynamic_rnn(..., sequence_length=num_frames)`); the last layer's final hidden state
//! goes to the video-level classifier, the starter's `MoeModel` (`moe_num_mixtures`, default 2).
//!
//! TF's `BasicLSTMCell` keeps one kernel `[in + H, 4H]` with gates (i, j, f, o) and one bias,
//! and adds `forget_bias = 1.0` to f at every step. We keep libtorch's layout for its fused
//! LSTM: per layer `w_ih` `[4H, in]`, `w_hh` `[4H, H]`, `b_ih` `[4H]` with gates (i, f, g, o),
//! the forget bias folded into `b_ih` (so a fresh model starts as TF's does: f = 1);
//! [`tf_to_torch_lstm`] converts TF variables. Initialisation as TF's: kernel Glorot uniform
//! over `[in + H, 4H]`, bias 0 (+1 on f).
//!
//! A video of length 0 keeps the zero initial state, as `dynamic_rnn` does.
//!
//! Checked against the upstream code run in TensorFlow (`scripts/starter_parity.py`,
//! tests/starter.rs): predictions, loss and every gradient.

use super::cast;
use super::frame_logistic::{onnx_starter_frames, starter_frames};
use super::video_level::Moe;
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Init};

/// Shape; field names are the starter's flags (`--lstm_cells`, `--lstm_layers`,
/// `--moe_num_mixtures`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LstmModelConfig {
    pub num_classes: usize,
    pub feature_dims: Vec<usize>,
    pub lstm_cells: usize,
    pub lstm_layers: usize,
    pub num_mixtures: usize,
}

impl super::NetworkConfig for LstmModelConfig {
    fn from_head(h: &super::HeadConfig) -> Self {
        LstmModelConfig {
            num_classes: h.num_classes,
            feature_dims: h.feature_dims.clone(),
            lstm_cells: h.lstm_cells,
            lstm_layers: h.lstm_layers,
            num_mixtures: h.num_mixtures.max(1),
        }
    }
    fn display_name(&self) -> &'static str {
        "LstmModel"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["feature_names", "num_mixtures", "lstm_cells", "lstm_layers"]
    }
    fn validate(&self) -> std::result::Result<(), String> {
        if self.lstm_cells == 0 || self.lstm_layers == 0 {
            return Err(
                "MODEL.head.lstm_cells and lstm_layers must be positive (the starter's 1024 and 2)"
                    .into(),
            );
        }
        Ok(())
    }
    super::network_widths!(Frame);
    fn parameter_estimate(&self) -> Option<u64> {
        use super::{add, mul};
        let dims = super::sum_dims(&self.feature_dims)?;
        let (hc, k) = (self.lstm_cells as u64, self.num_mixtures as u64);
        // Layer 1 [ΣD + H, 4H] + bias, the others [2H, 4H] + bias; MoE on H.
        let first = mul(add(add(dims, hc)?, 1)?, mul(4, hc)?)?;
        let rest = mul(
            (self.lstm_layers as u64).saturating_sub(1),
            mul(add(mul(2, hc)?, 1)?, mul(4, hc)?)?,
        )?;
        let moe = super::moe_parameters(hc, self.num_classes as u64, k)?;
        add(add(first, rest)?, moe)
    }
    fn forward_flops(&self, t: f64) -> f64 {
        let h = self.lstm_cells as f64;
        let dims = self.feature_dims.iter().sum::<usize>() as f64;
        let first = 2.0 * 4.0 * h * (dims + h);
        let rest = (self.lstm_layers.saturating_sub(1)) as f64 * 2.0 * 4.0 * h * 2.0 * h;
        (first + rest) * t + super::moe_flops(h, self.num_classes, self.num_mixtures)
    }
    fn cost_follows_frames(&self) -> bool {
        true
    }
    fn build(&self, root: &nn::Path) -> Box<dyn super::Network> {
        Box::new(LstmModel::new(root, self))
    }
}

/// One layer: `[w_ih, w_hh, b_ih]`, torch gate order.
#[derive(Debug)]
struct Layer {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    /// Zeros `[4H]`, not a variable: TF's cell has one bias and libtorch's fused kernel
    /// wants two. Kept (in the weights' kind) so cuDNN can hold all four in one buffer.
    b_hh: Tensor,
}

#[derive(Debug)]
pub struct LstmModel {
    layers: Vec<Layer>,
    moe: Moe,
    hidden: i64,
}

/// Gate blocks (a, b, c, d) along dim 0 → (a, c, b, d): TF's (i, j, f, o) ↔ libtorch's
/// (i, f, g, o), either way.
fn swap_middle_gates(t: &Tensor) -> Tensor {
    let c = t.chunk(4, 0);
    Tensor::cat(&[&c[0], &c[2], &c[1], &c[3]], 0)
}

/// TF `BasicLSTMCell` variables (kernel `[in + H, 4H]`, bias `[4H]`, gates i, j, f, o) →
/// libtorch's `(w_ih [4H, in], w_hh [4H, H], b_ih [4H])`, gates i, f, g, o, with the forget
/// bias added.
pub fn tf_to_torch_lstm(
    kernel: &Tensor,
    bias: &Tensor,
    input: i64,
    forget_bias: f64,
) -> (Tensor, Tensor, Tensor) {
    let reorder = swap_middle_gates;
    let k = kernel.transpose(0, 1); // [4H, in + H], gate rows i, j, f, o
    let w_ih = reorder(&k.narrow(1, 0, input));
    let w_hh = reorder(&k.narrow(1, input, k.size()[1] - input));
    let b = reorder(bias);
    let h = b.size()[0] / 4;
    let fb = Tensor::cat(
        &[
            Tensor::zeros([h], (b.kind(), b.device())),
            Tensor::full([h], forget_bias, (b.kind(), b.device())),
            Tensor::zeros([2 * h], (b.kind(), b.device())),
        ],
        0,
    );
    (w_ih.contiguous(), w_hh.contiguous(), b + fb)
}

/// The inverse for gradients (and weights): libtorch-layout `(w_ih, w_hh, b_ih)` → TF's
/// `(kernel [in + H, 4H], bias [4H])`, without the forget bias.
pub fn torch_to_tf_lstm(w_ih: &Tensor, w_hh: &Tensor, b_ih: &Tensor) -> (Tensor, Tensor) {
    // i, f, g, o → i, j(=g), f, o
    let reorder = swap_middle_gates;
    let k = Tensor::cat(&[reorder(w_ih), reorder(w_hh)], 1).transpose(0, 1);
    (k.contiguous(), reorder(b_ih))
}

impl LstmModel {
    pub fn new(vs: &nn::Path, cfg: &LstmModelConfig) -> Self {
        let h = cfg.lstm_cells as i64;
        let mut layers = Vec::new();
        let mut input: i64 = cfg.feature_dims.iter().sum::<usize>() as i64;
        for l in 0..cfg.lstm_layers {
            let p = vs.sub(format!("lstm_l{l}"));
            // Glorot uniform over TF's kernel [in + H, 4H].
            let a = (6.0 / ((input + h) + 4 * h) as f64).sqrt();
            let init = Init::Uniform { lo: -a, up: a };
            let b_ih = p.var("b_ih", &[4 * h], Init::Const(0.0));
            tch::no_grad(|| {
                let _ = b_ih.narrow(0, h, h).fill_(1.0); // forget_bias = 1.0
            });
            layers.push(Layer {
                w_ih: p.var("w_ih", &[4 * h, input], init),
                w_hh: p.var("w_hh", &[4 * h, h], init),
                b_hh: b_ih.zeros_like().detach(),
                b_ih,
            });
            input = h;
        }
        LstmModel {
            layers,
            moe: Moe::new(
                &vs.sub("moe"),
                &[h as usize],
                cfg.num_classes as i64,
                cfg.num_mixtures.max(1) as i64,
            ),
            hidden: h,
        }
    }

    /// The last layer's hidden state at each video's last frame `[B, H]` (zero for length 0),
    /// from the starter input `x` `[B, T, ΣD]`.
    pub fn final_state(&self, x: &Tensor, lengths: &Tensor, train: bool) -> Tensor {
        let (b, kind, dev) = (x.size()[0], x.kind(), x.device());
        let z = Tensor::zeros([1, b, self.hidden], (kind, dev));
        let mut y = x.shallow_clone();
        for l in &self.layers {
            let p = [
                cast(&l.w_ih, kind),
                cast(&l.w_hh, kind),
                cast(&l.b_ih, kind),
                cast(&l.b_hh, kind),
            ];
            let params: Vec<&Tensor> = p.iter().collect();
            // Steps past a video's length never reach its earlier steps, so running the
            // padded batch and reading each video's own last step is exact.
            y = y
                .lstm(&[&z, &z], &params, true, 1, 0.0, train, false, true)
                .0;
        }
        let lengths = lengths.to_device(dev);
        let last = (&lengths - 1).clamp_min(0); // [B]
        let idx = last.view([b, 1, 1]).expand([b, 1, self.hidden], false);
        let h = y.gather(1, &idx, false).squeeze_dim(1);
        h * lengths.gt(0).to_kind(kind).unsqueeze(1)
    }

    /// Probabilities `[B, C]` (the starter's predictions).
    pub fn probabilities(&self, x: &Tensor, lengths: &Tensor, train: bool) -> Tensor {
        self.moe.probabilities(&self.final_state(x, lengths, train))
    }
}

impl super::Network for LstmModel {
    fn flatten_rnn_weights(&mut self) {
        for l in &mut self.layers {
            l.b_hh = l
                .w_ih
                .new_zeros([l.w_ih.size()[0]], (l.w_ih.kind(), l.w_ih.device()));
            super::cudnn_flatten_lstm(&[
                l.w_ih.shallow_clone(),
                l.w_hh.shallow_clone(),
                l.b_ih.shallow_clone(),
                l.b_hh.shallow_clone(),
            ]);
        }
    }
    fn forward(&self, inputs: &super::Inputs, train: bool) -> Tensor {
        let x = starter_frames(&inputs.features);
        self.moe
            .forward(&self.final_state(&x, &inputs.lengths, train))
    }
    fn probabilities(&self, inputs: &super::Inputs, train: bool) -> Tensor {
        let x = starter_frames(&inputs.features);
        self.probabilities(&x, &inputs.lengths, train)
    }
    /// The MoE's `slim.l2_regularizer(1e-8)` is on its two weight matrices; the LSTM cells
    /// have none.
    fn decays(&self, name: &str) -> bool {
        name == "moe.gate.weight" || name == "moe.experts.weight"
    }
    /// TF's `kernel` is our `w_ih` and `w_hh` together.
    fn clip_group(&self, name: &str) -> String {
        match name.strip_suffix(".w_ih").or(name.strip_suffix(".w_hh")) {
            Some(layer) => format!("{layer}.kernel"),
            None => name.to_string(),
        }
    }

    /// The starter frames, then one ONNX `LSTM` per layer with `sequence_lens` (its `Y_h` is
    /// the state at each video's last frame), then the MoE.
    fn onnx_logits(
        &self,
        g: &mut crate::onnx::Graph,
        io: &crate::onnx::GraphInputs,
    ) -> crate::error::Result<String> {
        use crate::onnx::Attr;
        let x = onnx_starter_frames(g, io);
        let lengths = io.lengths.as_deref().unwrap_or("lengths");
        let seq_lens = g.op_attr("Cast", &[lengths], vec![("to", Attr::Int(6))]); // INT32
        let axes1 = g.init_i64("axes1", &[1], &[1]);
        let axes0 = g.init_i64("axes0", &[1], &[0]);
        // [B, T, F] → [T, B, F]
        let mut y = g.op_attr(
            "Transpose",
            &[&x],
            vec![("perm", Attr::Ints(vec![1, 0, 2]))],
        );
        let mut last = String::new();
        for l in &self.layers {
            // ONNX gate order i, o, f, c; one direction.
            let onnx = super::attention_lstm::onnx_gates;
            let w = g.init_f32("lstm_w", &onnx(&l.w_ih).unsqueeze(0));
            let r = g.init_f32("lstm_r", &onnx(&l.w_hh).unsqueeze(0));
            let bias = Tensor::cat(&[onnx(&l.b_ih), l.b_ih.zeros_like()], 0).unsqueeze(0);
            let bn = g.init_f32("lstm_b", &bias);
            let outs = g.node(
                "LSTM",
                &[&y, &w, &r, &bn, &seq_lens],
                vec![("hidden_size", Attr::Int(self.hidden))],
                2,
            );
            // Y [T, 1, B, H] → [T, B, H] for the next layer; Y_h [1, B, H] → [B, H].
            y = g.op("Squeeze", &[&outs[0], &axes1]);
            last = g.op("Squeeze", &[&outs[1], &axes0]);
        }
        Ok(self.moe.onnx(g, &last))
    }
}
