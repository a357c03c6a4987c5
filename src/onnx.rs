//! ONNX export, written by hand from the public ONNX schema (onnx/onnx.proto3): no Rust crate
//! or libtorch API exports a tch model to ONNX. The graph uses standard operators only
//! (opset 17), with the ONNX `LSTM` operator (`direction=bidirectional`, `sequence_lens`) for
//! the recurrent part, dynamic batch and time.
//!
//! AttentionLSTM inputs: one tensor per modality `[batch, time, D]` (uint8 quantized, or float
//! already dequantized) and `lengths` int64 `[batch]`. Outputs: `logits` and `probabilities`
//! (sigmoid), `[batch, C]`. Video-level models take `[batch, D]` float per modality.

use crate::config::Config;
use crate::data::proto::{put_bytes_field, put_varint};
use crate::data::video::{DEQ_BIAS, DEQ_SCALE};
use crate::error::{Error, Result};
use crate::model::{Model, Net};
use tch::{Kind, Tensor};

const OPSET: i64 = 17;
const IR_VERSION: i64 = 8;

// TensorProto.DataType
const FLOAT: i64 = 1;
const UINT8: i64 = 2;
const INT32: i64 = 6;
const INT64: i64 = 7;

fn put_int_field(out: &mut Vec<u8>, num: u32, v: i64) {
    put_varint(out, (num as u64) << 3);
    put_varint(out, v as u64);
}

fn put_str(out: &mut Vec<u8>, num: u32, s: &str) {
    put_bytes_field(out, num, s.as_bytes());
}

/// Attribute values.
enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Str(String),
}

fn attribute(name: &str, a: &Attr) -> Vec<u8> {
    let mut o = Vec::new();
    put_str(&mut o, 1, name);
    match a {
        Attr::Int(v) => {
            put_int_field(&mut o, 3, *v);
            put_int_field(&mut o, 20, 2);
        }
        Attr::Ints(v) => {
            for x in v {
                put_int_field(&mut o, 8, *x);
            }
            put_int_field(&mut o, 20, 7);
        }
        Attr::Str(s) => {
            put_bytes_field(&mut o, 4, s.as_bytes());
            put_int_field(&mut o, 20, 3);
        }
    }
    o
}

/// A graph under construction.
struct Graph {
    nodes: Vec<Vec<u8>>,
    inits: Vec<Vec<u8>>,
    inputs: Vec<Vec<u8>>,
    outputs: Vec<Vec<u8>>,
    counter: usize,
}

fn value_info(name: &str, elem: i64, dims: &[Result<i64, &str>]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        match d {
            Ok(v) => put_int_field(&mut dim, 1, *v),
            Err(p) => put_str(&mut dim, 2, p),
        }
        put_bytes_field(&mut shape, 1, &dim);
    }
    let mut tt = Vec::new();
    put_int_field(&mut tt, 1, elem);
    put_bytes_field(&mut tt, 2, &shape);
    let mut ty = Vec::new();
    put_bytes_field(&mut ty, 1, &tt);
    let mut vi = Vec::new();
    put_str(&mut vi, 1, name);
    put_bytes_field(&mut vi, 2, &ty);
    vi
}

impl Graph {
    fn new() -> Self {
        Graph {
            nodes: vec![],
            inits: vec![],
            inputs: vec![],
            outputs: vec![],
            counter: 0,
        }
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{hint}_{}", self.counter)
    }

    /// Adds a node with the given output names.
    fn node_named(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)], outs: &[String]) {
        let mut o = Vec::new();
        for i in inputs {
            put_str(&mut o, 1, i);
        }
        for x in outs {
            put_str(&mut o, 2, x);
        }
        put_str(&mut o, 3, &outs[0]);
        put_str(&mut o, 4, op);
        for (name, a) in attrs {
            put_bytes_field(&mut o, 5, &attribute(name, a));
        }
        self.nodes.push(o);
    }

    /// Adds a node with fresh output names; returns them.
    fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: &[(&str, Attr)],
        n_out: usize,
    ) -> Vec<String> {
        let outs: Vec<String> = (0..n_out).map(|_| self.fresh(&op.to_lowercase())).collect();
        self.node_named(op, inputs, attrs, &outs);
        outs
    }

    fn op(&mut self, op: &str, inputs: &[&str]) -> String {
        self.node(op, inputs, &[], 1).remove(0)
    }

    fn op_attr(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.node(op, inputs, attrs, 1).remove(0)
    }

    fn init_f32(&mut self, hint: &str, t: &Tensor) -> String {
        let name = self.fresh(hint);
        let t = t
            .to_kind(Kind::Float)
            .to_device(tch::Device::Cpu)
            .contiguous();
        let n = t.numel();
        let mut data = vec![0f32; n];
        t.copy_data(&mut data, n);
        let mut raw = Vec::with_capacity(n * 4);
        for x in data {
            raw.extend_from_slice(&x.to_le_bytes());
        }
        self.init_raw(&name, &t.size(), FLOAT, &raw);
        name
    }

    fn init_i64(&mut self, hint: &str, dims: &[i64], v: &[i64]) -> String {
        let name = self.fresh(hint);
        let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.init_raw(&name, dims, INT64, &raw);
        name
    }

    fn scalar_f32(&mut self, hint: &str, v: f32) -> String {
        let name = self.fresh(hint);
        self.init_raw(&name, &[], FLOAT, &v.to_le_bytes());
        name
    }

    fn init_raw(&mut self, name: &str, dims: &[i64], dtype: i64, raw: &[u8]) {
        let mut o = Vec::new();
        for d in dims {
            put_int_field(&mut o, 1, *d);
        }
        put_int_field(&mut o, 2, dtype);
        put_str(&mut o, 8, name);
        put_bytes_field(&mut o, 9, raw);
        self.inits.push(o);
    }

    fn finish(self, name: &str, doc: &str) -> Vec<u8> {
        let mut g = Vec::new();
        for n in &self.nodes {
            put_bytes_field(&mut g, 1, n);
        }
        put_str(&mut g, 2, name);
        for i in &self.inits {
            put_bytes_field(&mut g, 5, i);
        }
        put_str(&mut g, 10, doc);
        for i in &self.inputs {
            put_bytes_field(&mut g, 11, i);
        }
        for o in &self.outputs {
            put_bytes_field(&mut g, 12, o);
        }
        let mut m = Vec::new();
        put_int_field(&mut m, 1, IR_VERSION);
        put_str(&mut m, 2, "yt8m");
        put_str(&mut m, 3, env!("CARGO_PKG_VERSION"));
        put_bytes_field(&mut m, 7, &g);
        let mut opset = Vec::new();
        put_str(&mut opset, 1, "");
        put_int_field(&mut opset, 2, OPSET);
        put_bytes_field(&mut m, 8, &opset);
        m
    }
}

fn var(model: &Model, name: &str) -> Result<Tensor> {
    model
        .vs
        .variables()
        .get(name)
        .map(|t| t.shallow_clone())
        .ok_or_else(|| Error::Invalid(format!("ONNX export: the model has no variable '{name}'")))
}

/// Torch/Paddle LSTM gate blocks (i, f, g, o) → ONNX order (i, o, f, c).
fn onnx_gates(t: &Tensor) -> Tensor {
    let c = t.chunk(4, 0);
    Tensor::cat(&[&c[0], &c[3], &c[1], &c[2]], 0)
}

/// Whether exported graphs take quantized uint8 or dequantized float features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum InputKind {
    #[default]
    Uint8,
    Float,
}

/// Serialized ONNX model for `model`.
pub fn export_onnx_with(model: &Model, cfg: &Config, input: InputKind) -> Result<Vec<u8>> {
    let mut g = Graph::new();
    let names = match cfg.MODEL.level {
        crate::data::Level::Frame => cfg.MODEL.head.feature_names.clone(),
        crate::data::Level::Video => cfg.MODEL.head.mean_feature_names.clone(),
    };
    let dims = &cfg.MODEL.head.feature_dims;
    let c = cfg.MODEL.head.num_classes as i64;
    let logits = match &model.net {
        Net::AttentionLstm(_) => {
            let h = cfg.MODEL.head.lstm_size as i64;
            let elem = if input == InputKind::Uint8 {
                UINT8
            } else {
                FLOAT
            };
            for (n, d) in names.iter().zip(dims) {
                g.inputs.push(value_info(
                    n,
                    elem,
                    &[Err("batch"), Err("time"), Ok(*d as i64)],
                ));
            }
            g.inputs.push(value_info("lengths", INT64, &[Err("batch")]));
            let seq_lens = g.op_attr("Cast", &["lengths"], &[("to", Attr::Int(INT32))]);
            let scale = g.scalar_f32("deq_scale", DEQ_SCALE);
            let bias = g.scalar_f32("deq_bias", DEQ_BIAS);
            let one = g.init_i64("one", &[], &[1]);
            let zero = g.init_i64("zero", &[], &[0]);
            let axes0 = g.init_i64("axes0", &[1], &[0]);
            let axes1 = g.init_i64("axes1", &[1], &[1]);
            let axes2 = g.init_i64("axes2", &[1], &[2]);
            let reshape_flat = g.init_i64("shape_bt_", &[3], &[0, 0, -1]);
            let neg_inf = g.scalar_f32("neg_inf", f32::NEG_INFINITY);
            // Validity mask [B, T] from the lengths (shared by the modalities).
            let shape = g.op("Shape", &[&names[0]]);
            let t = g.op_attr("Gather", &[&shape, &one], &[("axis", Attr::Int(0))]);
            let range = g.op("Range", &[&zero, &t, &one]);
            let range = g.op("Unsqueeze", &[&range, &axes0]);
            let lens = g.op("Unsqueeze", &["lengths", &axes1]);
            let valid = g.op("Less", &[&range, &lens]);
            let mut pools = Vec::new();
            for (i, n) in names.iter().enumerate() {
                let x = if input == InputKind::Uint8 {
                    // The official reader's two f32 ops: q * f32(4/255) + f32(-1.9921875).
                    let f = g.op_attr("Cast", &[n], &[("to", Attr::Int(FLOAT))]);
                    let f = g.op("Mul", &[&f, &scale]);
                    g.op("Add", &[&f, &bias])
                } else {
                    n.clone()
                };
                let w = g.init_f32("fc_w", &var(model, &format!("fc_feature{i}.weight"))?);
                let b = g.init_f32("fc_b", &var(model, &format!("fc_feature{i}.bias"))?);
                let e = g.op("MatMul", &[&x, &w]);
                let e = g.op("Add", &[&e, &b]);
                let e = g.op("Tanh", &[&e]);
                let e = g.op_attr("Transpose", &[&e], &[("perm", Attr::Ints(vec![1, 0, 2]))]);
                let p = |s: &str| var(model, &format!("bi_lstm{i}.{s}"));
                let wx = Tensor::stack(
                    &[
                        onnx_gates(&p("weight_ih_l0")?),
                        onnx_gates(&p("weight_ih_l0_reverse")?),
                    ],
                    0,
                );
                let rx = Tensor::stack(
                    &[
                        onnx_gates(&p("weight_hh_l0")?),
                        onnx_gates(&p("weight_hh_l0_reverse")?),
                    ],
                    0,
                );
                let bx = Tensor::stack(
                    &[
                        Tensor::cat(
                            &[onnx_gates(&p("bias_ih_l0")?), onnx_gates(&p("bias_hh_l0")?)],
                            0,
                        ),
                        Tensor::cat(
                            &[
                                onnx_gates(&p("bias_ih_l0_reverse")?),
                                onnx_gates(&p("bias_hh_l0_reverse")?),
                            ],
                            0,
                        ),
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
                    &[
                        ("direction", Attr::Str("bidirectional".into())),
                        ("hidden_size", Attr::Int(h)),
                    ],
                    1,
                );
                // Y [T, 2, B, H] → [B, T, 2, H] → [B, T, 2H]
                let y = g.op_attr(
                    "Transpose",
                    &[&y[0]],
                    &[("perm", Attr::Ints(vec![2, 0, 1, 3]))],
                );
                let hseq = g.op("Reshape", &[&y, &reshape_flat]);
                let aw = g.init_f32("att_w", &var(model, &format!("att_fc{i}.weight"))?);
                let ab = g.init_f32("att_b", &var(model, &format!("att_fc{i}.bias"))?);
                let a = g.op("MatMul", &[&hseq, &aw]);
                let a = g.op("Add", &[&a, &ab]);
                let a = g.op("Squeeze", &[&a, &axes2]);
                let a = g.op("Where", &[&valid, &a, &neg_inf]);
                let w = g.op_attr("Softmax", &[&a], &[("axis", Attr::Int(1))]);
                let w = g.op("Unsqueeze", &[&w, &axes2]);
                let hw = g.op("Mul", &[&hseq, &w]);
                pools.push(g.op_attr("ReduceSum", &[&hw, &axes1], &[("keepdims", Attr::Int(0))]));
            }
            let refs: Vec<&str> = pools.iter().map(|s| s.as_str()).collect();
            let z = g.op_attr("Concat", &refs, &[("axis", Attr::Int(1))]);
            let dense = |g: &mut Graph, x: &str, layer: &str| -> Result<String> {
                let w = g.init_f32("w", &var(model, &format!("{layer}.weight"))?);
                let b = g.init_f32("b", &var(model, &format!("{layer}.bias"))?);
                let y = g.op("MatMul", &[x, &w]);
                Ok(g.op("Add", &[&y, &b]))
            };
            let o1 = dense(&mut g, &z, "fc_out1")?;
            let o1 = g.op("Relu", &[&o1]);
            let o2 = dense(&mut g, &o1, "fc_out2")?;
            let o2 = g.op("Tanh", &[&o2]);
            dense(&mut g, &o2, "fc_logit")?
        }
        Net::Logistic(_) | Net::Moe(_) => {
            for (n, d) in names.iter().zip(dims) {
                g.inputs
                    .push(value_info(n, FLOAT, &[Err("batch"), Ok(*d as i64)]));
            }
            let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
            let x = g.op_attr("Concat", &refs, &[("axis", Attr::Int(1))]);
            if let Net::Logistic(_) = &model.net {
                let w = g.init_f32("w", &var(model, "logistic.weight")?);
                let b = g.init_f32("b", &var(model, "logistic.bias")?);
                let y = g.op("MatMul", &[&x, &w]);
                g.op("Add", &[&y, &b])
            } else {
                let m = cfg.MODEL.head.num_mixtures.max(1) as i64;
                let gw = g.init_f32("gate_w", &var(model, "gate.weight")?);
                let ew = g.init_f32("expert_w", &var(model, "experts.weight")?);
                let eb = g.init_f32("expert_b", &var(model, "experts.bias")?);
                let gshape = g.init_i64("gshape", &[2], &[-1, m + 1]);
                let eshape = g.init_i64("eshape", &[2], &[-1, m]);
                let cshape = g.init_i64("cshape", &[2], &[-1, c]);
                let starts = g.init_i64("starts", &[1], &[0]);
                let ends = g.init_i64("ends", &[1], &[m]);
                let axes1 = g.init_i64("axes1", &[1], &[1]);
                let gates = g.op("MatMul", &[&x, &gw]);
                let gates = g.op("Reshape", &[&gates, &gshape]);
                let gates = g.op_attr("Softmax", &[&gates], &[("axis", Attr::Int(1))]);
                let gates = g.op("Slice", &[&gates, &starts, &ends, &axes1]);
                let ex = g.op("MatMul", &[&x, &ew]);
                let ex = g.op("Add", &[&ex, &eb]);
                let ex = g.op("Reshape", &[&ex, &eshape]);
                let ex = g.op("Sigmoid", &[&ex]);
                let p = g.op("Mul", &[&gates, &ex]);
                let p = g.op_attr("ReduceSum", &[&p, &axes1], &[("keepdims", Attr::Int(0))]);
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
    };
    g.node_named("Identity", &[&logits], &[], &["logits".to_string()]);
    g.node_named("Sigmoid", &["logits"], &[], &["probabilities".to_string()]);
    g.outputs
        .push(value_info("logits", FLOAT, &[Err("batch"), Ok(c)]));
    g.outputs
        .push(value_info("probabilities", FLOAT, &[Err("batch"), Ok(c)]));
    Ok(g.finish(
        &format!("yt8m_{}", model.arch.name()),
        "exported by yt8m; see bundle.json for the inputs",
    ))
}

pub fn export_onnx(model: &Model, cfg: &Config) -> Result<Vec<u8>> {
    export_onnx_with(model, cfg, InputKind::Uint8)
}
