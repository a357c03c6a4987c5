//! The starter's `FrameLevelLogisticModel` (google/youtube-8m `frame_level_models.py`, commit
//! e6f6bf6), and the frame preprocessing every starter frame-level model gets from `train.py`.
//!
//! Input as the starter builds it: the modalities' dequantized frames concatenated
//! (`[B, T, ΣD]`, padded frames 0), every frame L2-normalised
//! (`tf.nn.l2_normalize(model_input_raw, 2)`: `x · rsqrt(max(Σx², 1e-12))`, so padding stays
//! 0). The model averages each video's frames (sum over time / `num_frames`) and applies one
//! fully connected layer with a sigmoid (`slim.fully_connected`: weights `[ΣD, C]` Xavier
//! uniform, biases 0, L2 1e-8 on the weights). Our logits are the layer's pre-sigmoid output.
//!
//! Checked against the upstream code run in TensorFlow (`scripts/starter_parity.py`,
//! tests/starter.rs): predictions, loss and every gradient.

use super::{cast, xavier};
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Init};

/// Shape of a starter frame-level model without hidden layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameLogisticConfig {
    pub num_classes: usize,
    pub feature_dims: Vec<usize>,
}

impl super::NetworkConfig for FrameLogisticConfig {
    fn from_head(h: &super::HeadConfig) -> Self {
        FrameLogisticConfig {
            num_classes: h.num_classes,
            feature_dims: h.feature_dims.clone(),
        }
    }
    fn display_name(&self) -> &'static str {
        "FrameLevelLogistic"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["feature_names"]
    }
    super::network_widths!(Frame);
    fn parameter_estimate(&self) -> Option<u64> {
        let dims = super::sum_dims(&self.feature_dims)?;
        super::mul(super::add(dims, 1)?, self.num_classes as u64)
    }
    fn forward_flops(&self, t: f64) -> f64 {
        // Normalisation and mean over the frames, then one layer.
        let dims = self.feature_dims.iter().sum::<usize>() as f64;
        3.0 * dims * t + 2.0 * dims * self.num_classes as f64
    }
    fn cost_follows_frames(&self) -> bool {
        true
    }
    fn build(&self, root: &nn::Path) -> Box<dyn super::Network> {
        Box::new(FrameLogistic::new(root, self))
    }
}

#[derive(Debug)]
pub struct FrameLogistic {
    /// `fully_connected/weights` `[ΣD, C]`.
    w: Tensor,
    /// `fully_connected/biases` `[C]`.
    b: Tensor,
}

/// train.py's model input: the modalities `[B, T, D_m]` concatenated and every frame
/// L2-normalised → `[B, T, ΣD]` (zero frames stay zero).
pub fn starter_frames(features: &[Tensor]) -> Tensor {
    let x = Tensor::cat(features, 2);
    let sq = x
        .square()
        .sum_dim_intlist(2, true, x.kind())
        .clamp_min(1e-12);
    &x * sq.rsqrt()
}

/// The same in an ONNX graph: dequantize uint8 inputs, zero the frames past `lengths` (the
/// ONNX inputs carry stored padding, which dequantizes to −1.99), concatenate, normalise.
/// Returns `[batch, time, ΣD]`.
pub fn onnx_starter_frames(g: &mut crate::onnx::Graph, io: &crate::onnx::GraphInputs) -> String {
    use crate::onnx::Attr;
    let axes2 = g.init_i64("axes2", &[1], &[2]);
    let valid = io.valid_frames(g);
    let valid = g.op_attr("Cast", &[&valid], vec![("to", Attr::Int(1))]); // FLOAT
    let valid = g.op("Unsqueeze", &[&valid, &axes2]); // [B, T, 1]
    let parts: Vec<String> = io
        .float_features(g)
        .iter()
        .map(|x| g.op("Mul", &[x, &valid]))
        .collect();
    let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
    let x = g.op_attr("Concat", &refs, vec![("axis", Attr::Int(2))]);
    let sq = g.op("Mul", &[&x, &x]);
    let sq = g.op_attr(
        "ReduceSum",
        &[&sq, &axes2],
        vec![("keepdims", Attr::Int(1))],
    );
    let eps = g.scalar_f32("l2_eps", 1e-12);
    let sq = g.op("Max", &[&sq, &eps]);
    let inv = g.op("Sqrt", &[&sq]);
    g.op("Div", &[&x, &inv])
}

impl FrameLogistic {
    pub fn new(vs: &nn::Path, cfg: &FrameLogisticConfig) -> Self {
        let input: i64 = cfg.feature_dims.iter().sum::<usize>() as i64;
        let c = cfg.num_classes as i64;
        let p = vs.sub("fully_connected");
        FrameLogistic {
            w: p.var("weights", &[input, c], xavier(input, c)),
            b: p.var("biases", &[c], Init::Const(0.0)),
        }
    }

    /// Logits `[B, C]` from the starter input `x` `[B, T, ΣD]` and `lengths` `[B]`.
    pub fn forward_frames(&self, x: &Tensor, lengths: &Tensor) -> Tensor {
        let kind = x.kind();
        let n = lengths.to_device(x.device()).to_kind(kind).unsqueeze(1);
        let avg = x.sum_dim_intlist(1, false, kind) / n;
        avg.matmul(&cast(&self.w, kind)) + cast(&self.b, kind)
    }
}

impl super::Network for FrameLogistic {
    fn forward(&self, inputs: &super::Inputs, _train: bool) -> Tensor {
        self.forward_frames(&starter_frames(&inputs.features), &inputs.lengths)
    }
    /// `slim.l2_regularizer(1e-8)` is on the weights only.
    fn decays(&self, name: &str) -> bool {
        name == "fully_connected.weights"
    }
    fn onnx_logits(
        &self,
        g: &mut crate::onnx::Graph,
        io: &crate::onnx::GraphInputs,
    ) -> crate::error::Result<String> {
        use crate::onnx::Attr;
        let x = onnx_starter_frames(g, io);
        let axes1 = g.init_i64("axes1", &[1], &[1]);
        let sum = g.op_attr("ReduceSum", &[&x, &axes1], vec![("keepdims", Attr::Int(0))]);
        let lengths = io.lengths.as_deref().unwrap_or("lengths");
        let n = g.op_attr("Cast", &[lengths], vec![("to", Attr::Int(1))]);
        let n = g.op("Unsqueeze", &[&n, &axes1]);
        let avg = g.op("Div", &[&sum, &n]);
        Ok(g.dense(&avg, &self.w, &self.b))
    }
}
