//! ONNX export: no Rust crate or libtorch API exports a tch model to ONNX, so graphs are built
//! here with the schema's own message types ([`proto`], prost) and standard operators only
//! (opset 17), with the ONNX `LSTM` operator (`direction=bidirectional`, `sequence_lens`) for
//! the recurrent part, dynamic batch and time. Each network adds its own nodes through
//! [`Exportable::add_logits`] (implemented in model/, which depends on this module and not the
//! other way round); this module declares inputs and outputs.
//!
//! Frame-level inputs: one tensor per modality `[batch, time, D]` (uint8 quantized, or float
//! already dequantized) and `lengths` int64 `[batch]`. Video-level: `[batch, D]` float per
//! modality. Outputs: `logits` and `probabilities` (sigmoid), `[batch, C]`.

pub mod proto;

use crate::data::Level;
use crate::error::Result;
use proto::{
    AttributeProto, AttributeType, DataType, Dimension, DimensionValue, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TensorType, TypeProto,
    ValueInfoProto,
};
use tch::{Kind, Tensor};

const OPSET: i64 = 17;
const IR_VERSION: i64 = 8;

/// What the exporter needs of a network (`model::Model` implements it): this module knows
/// no model type, so models depend on it and not the other way round.
pub trait Exportable {
    /// Architecture name, for the graph's name.
    fn name(&self) -> &str;
    fn level(&self) -> Level;
    /// Input width per modality.
    fn feature_dims(&self) -> Vec<i64>;
    fn num_classes(&self) -> i64;
    /// Adds the network's nodes to `g`, reading the inputs in `io`; returns the name of the
    /// logits value `[batch, C]`.
    fn add_logits(&self, g: &mut Graph, io: &GraphInputs) -> Result<String>;
}

/// Whether exported frame-level graphs take quantized uint8 or dequantized float features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum InputKind {
    #[default]
    Uint8,
    Float,
}

/// A node attribute value.
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Str(String),
}

fn attribute(name: &str, a: Attr) -> AttributeProto {
    let mut p = AttributeProto {
        name: name.into(),
        ..Default::default()
    };
    match a {
        Attr::Int(v) => {
            p.i = v;
            p.r#type = AttributeType::Int as i32;
        }
        Attr::Ints(v) => {
            p.ints = v;
            p.r#type = AttributeType::Ints as i32;
        }
        Attr::Str(s) => {
            p.s = s.into_bytes();
            p.r#type = AttributeType::String as i32;
        }
    }
    p
}

/// A dimension of a declared input or output: fixed, or named and dynamic.
pub enum Dim {
    Fixed(i64),
    Named(&'static str),
}

fn value_info(name: &str, elem: DataType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(v) => DimensionValue::DimValue(*v),
                Dim::Named(p) => DimensionValue::DimParam(p.to_string()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorType {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

/// A graph under construction: nodes get fresh output names, weights become initializers.
pub struct Graph {
    g: GraphProto,
    counter: usize,
}

impl Graph {
    fn new() -> Self {
        Graph {
            g: GraphProto::default(),
            counter: 0,
        }
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{hint}_{}", self.counter)
    }

    /// Adds a node with the given output names.
    pub fn node_named(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        outs: &[String],
    ) {
        self.g.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outs.to_vec(),
            name: outs[0].clone(),
            op_type: op.into(),
            domain: String::new(),
            attribute: attrs.into_iter().map(|(n, a)| attribute(n, a)).collect(),
        });
    }

    /// Adds a node with fresh output names; returns them.
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        n_out: usize,
    ) -> Vec<String> {
        let outs: Vec<String> = (0..n_out).map(|_| self.fresh(&op.to_lowercase())).collect();
        self.node_named(op, inputs, attrs, &outs);
        outs
    }

    /// One-output node without attributes.
    pub fn op(&mut self, op: &str, inputs: &[&str]) -> String {
        self.node(op, inputs, Vec::new(), 1).remove(0)
    }

    /// One-output node with attributes.
    pub fn op_attr(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.node(op, inputs, attrs, 1).remove(0)
    }

    fn init(&mut self, hint: &str, dims: &[i64], dtype: DataType, raw: Vec<u8>) -> String {
        let name = self.fresh(hint);
        self.g.initializer.push(TensorProto {
            dims: dims.to_vec(),
            data_type: dtype as i32,
            name: name.clone(),
            raw_data: raw,
        });
        name
    }

    /// A weight as a float32 initializer.
    pub fn init_f32(&mut self, hint: &str, t: &Tensor) -> String {
        let t = t
            .to_kind(Kind::Float)
            .to_device(tch::Device::Cpu)
            .contiguous();
        let n = t.numel();
        let mut data = vec![0f32; n];
        t.copy_data(&mut data, n);
        let raw = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.init(hint, &t.size(), DataType::Float, raw)
    }

    pub fn init_i64(&mut self, hint: &str, dims: &[i64], v: &[i64]) -> String {
        let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.init(hint, dims, DataType::Int64, raw)
    }

    pub fn scalar_f32(&mut self, hint: &str, v: f32) -> String {
        self.init(hint, &[], DataType::Float, v.to_le_bytes().to_vec())
    }

    /// Batch norm at inference folded to `x · s + t` (`s = γ / √(var + ε)`,
    /// `t = β − mean · s`), whatever the framework's ε and statistics.
    pub fn batch_norm(
        &mut self,
        x: &str,
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f64,
    ) -> String {
        let scale = gamma / (var + eps).sqrt();
        let shift = beta - mean * &scale;
        let s = self.init_f32("bn_scale", &scale);
        let t = self.init_f32("bn_shift", &shift);
        let y = self.op("Mul", &[x, &s]);
        self.op("Add", &[&y, &t])
    }

    /// The frames `index` (int64 `[B, S]`) of `x` (`[B, T, d]`) → `[B, S, d]`
    /// (GatherElements over time; [`crate::model::gather_frames`] in the graph).
    pub fn gather_frames(&mut self, x: &str, index: &str, d: i64) -> String {
        let axes2 = self.init_i64("axes2", &[1], &[2]);
        let idx = self.op("Unsqueeze", &[index, &axes2]); // [B, S, 1]
        let shape = self.op("Shape", &[&idx]);
        let zero = self.init_i64("zero1", &[1], &[0]);
        let two = self.init_i64("two1", &[1], &[2]);
        let bs = self.op("Slice", &[&shape, &zero, &two]);
        let last = self.init_i64("d_dim", &[1], &[d]);
        let full = self.op_attr("Concat", &[&bs, &last], vec![("axis", Attr::Int(0))]);
        let idx = self.op("Expand", &[&idx, &full]); // [B, S, d]
        self.op_attr("GatherElements", &[x, &idx], vec![("axis", Attr::Int(1))])
    }

    /// `x · w + b` (a dense layer stored `[in, out]`).
    pub fn dense(&mut self, x: &str, w: &Tensor, b: &Tensor) -> String {
        let w = self.init_f32("w", w);
        let b = self.init_f32("b", b);
        let y = self.op("MatMul", &[x, &w]);
        self.op("Add", &[&y, &b])
    }
}

/// The graph's declared inputs, for a network to read.
pub struct GraphInputs {
    /// One per modality, in the model's order.
    pub features: Vec<String>,
    /// Frame level: `lengths` int64 `[batch]`.
    pub lengths: Option<String>,
    pub kind: InputKind,
}

impl GraphInputs {
    /// The frame inputs as float32 `[batch, time, D_m]`: uint8 ones dequantized as the
    /// official reader does (`q · f32(4/255) + f32(−1.9921875)`, two f32 ops), float ones as
    /// they are (a float graph then carries no unused dequantization constants).
    pub fn float_features(&self, g: &mut Graph) -> Vec<String> {
        use crate::data::video::{DEQ_BIAS, DEQ_SCALE};
        if self.kind != InputKind::Uint8 {
            return self.features.clone();
        }
        let scale = g.scalar_f32("deq_scale", DEQ_SCALE);
        let bias = g.scalar_f32("deq_bias", DEQ_BIAS);
        self.features
            .iter()
            .map(|n| {
                let f = g.op_attr("Cast", &[n], vec![("to", Attr::Int(1))]); // FLOAT
                let f = g.op("Mul", &[&f, &scale]);
                g.op("Add", &[&f, &bias])
            })
            .collect()
    }

    /// The frames each video has, `[batch, time]` bool (`t < lengths[b]`), from the first
    /// modality's time axis.
    pub fn valid_frames(&self, g: &mut Graph) -> String {
        let lengths = self.lengths.as_deref().unwrap_or("lengths");
        let one = g.init_i64("one", &[], &[1]);
        let zero = g.init_i64("zero", &[], &[0]);
        let axes0 = g.init_i64("axes0", &[1], &[0]);
        let axes1 = g.init_i64("axes1", &[1], &[1]);
        let shape = g.op("Shape", &[&self.features[0]]);
        let t = g.op_attr("Gather", &[&shape, &one], vec![("axis", Attr::Int(0))]);
        let range = g.op("Range", &[&zero, &t, &one]);
        let range = g.op("Unsqueeze", &[&range, &axes0]);
        let lens = g.op("Unsqueeze", &[lengths, &axes1]);
        g.op("Less", &[&range, &lens])
    }
}

/// Declares the graph's inputs (frame level: the features `[batch, time, d]` in `input`'s
/// element type and `lengths [batch]`; video level: float features `[batch, d]`) and says
/// what the network's graph reads.
fn graph_inputs(
    g: &mut Graph,
    level: Level,
    feature_names: &[String],
    dims: &[i64],
    input: InputKind,
) -> GraphInputs {
    match level {
        Level::Frame => {
            let elem = match input {
                InputKind::Uint8 => DataType::Uint8,
                InputKind::Float => DataType::Float,
            };
            for (n, &d) in feature_names.iter().zip(dims) {
                g.g.input.push(value_info(
                    n,
                    elem,
                    &[Dim::Named("batch"), Dim::Named("time"), Dim::Fixed(d)],
                ));
            }
            g.g.input.push(value_info(
                "lengths",
                DataType::Int64,
                &[Dim::Named("batch")],
            ));
            GraphInputs {
                features: feature_names.to_vec(),
                lengths: Some("lengths".into()),
                kind: input,
            }
        }
        Level::Video => {
            for (n, &d) in feature_names.iter().zip(dims) {
                g.g.input.push(value_info(
                    n,
                    DataType::Float,
                    &[Dim::Named("batch"), Dim::Fixed(d)],
                ));
            }
            GraphInputs {
                features: feature_names.to_vec(),
                lengths: None,
                kind: InputKind::Float,
            }
        }
    }
}

/// Serialized ONNX model for `model`, its inputs named `feature_names` (one per modality).
/// Widths and classes come from the loaded weights, not from a config.
pub fn export_onnx_with(
    net: &dyn Exportable,
    feature_names: &[String],
    input: InputKind,
) -> Result<Vec<u8>> {
    use prost::Message;
    let dims = net.feature_dims();
    if dims.len() != feature_names.len() {
        return Err(crate::error::Error::Invalid(format!(
            "ONNX export: {} feature names {feature_names:?} for a model with {} modalities",
            feature_names.len(),
            dims.len()
        )));
    }
    let mut g = Graph::new();
    let io = graph_inputs(&mut g, net.level(), feature_names, &dims, input);
    let logits = net.add_logits(&mut g, &io)?;
    let c = net.num_classes();
    g.node_named("Identity", &[&logits], Vec::new(), &["logits".to_string()]);
    g.node_named(
        "Sigmoid",
        &["logits"],
        Vec::new(),
        &["probabilities".to_string()],
    );
    for out in ["logits", "probabilities"] {
        g.g.output.push(value_info(
            out,
            DataType::Float,
            &[Dim::Named("batch"), Dim::Fixed(c)],
        ));
    }
    g.g.name = format!("yt8m_{}", net.name());
    g.g.doc_string = "exported by yt8m; see bundle.json for the inputs".into();
    let m = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "yt8m".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: String::new(),
        graph: Some(g.g),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
    };
    Ok(m.encode_to_vec())
}

/// The uint8-input graph with inputs named `input_names` (`Config::input_names`: the
/// feature names of the model's level, then `lengths` for frame level).
pub fn export_onnx(net: &dyn Exportable, input_names: &[String]) -> Result<Vec<u8>> {
    export_onnx_with(net, input_names, InputKind::Uint8)
}

#[cfg(test)]
mod tests {
    use super::proto::*;
    use prost::Message;

    /// Every node input is a graph input, an initializer or an earlier output (topological
    /// order), and every initializer is used.
    fn check_wiring(bytes: &[u8]) {
        let m = ModelProto::decode(bytes).unwrap();
        let g = m.graph.unwrap();
        let mut known: std::collections::HashSet<String> =
            g.input.iter().map(|v| v.name.clone()).collect();
        let inits: Vec<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
        known.extend(inits.iter().cloned());
        let mut used = std::collections::HashSet::new();
        for n in &g.node {
            for i in &n.input {
                assert!(
                    known.contains(i),
                    "{} reads '{i}' before it exists",
                    n.op_type
                );
                used.insert(i.clone());
            }
            known.extend(n.output.iter().cloned());
        }
        for i in &inits {
            assert!(used.contains(i), "initializer '{i}' is never used");
        }
        for o in &g.output {
            assert!(known.contains(&o.name));
        }
    }

    #[test]
    fn graphs_are_wired_and_carry_no_unused_initializers() {
        let _rng = crate::model::TORCH_RNG
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        use crate::config::Config;
        use crate::model::Model;
        for (level_overrides, kinds) in [
            (
                vec![
                    "MODEL.head.lstm_size=8",
                    "MODEL.head.embedding_size=8",
                    "MODEL.head.fc_out1_size=8",
                    "MODEL.head.fc_out2_size=8",
                    "MODEL.head.num_classes=5",
                ],
                vec![super::InputKind::Uint8, super::InputKind::Float],
            ),
            (
                vec![
                    "MODEL.head.name=MoeModel",
                    "MODEL.level=video",
                    "MODEL.head.num_classes=5",
                ],
                vec![super::InputKind::Float],
            ),
            (
                vec![
                    "MODEL.head.name=LogisticModel",
                    "MODEL.level=video",
                    "MODEL.head.num_classes=5",
                ],
                vec![super::InputKind::Float],
            ),
            (
                vec![
                    "MODEL.head.name=FrameLevelLogisticModel",
                    "MODEL.head.num_classes=5",
                ],
                vec![super::InputKind::Uint8, super::InputKind::Float],
            ),
            (
                vec![
                    "MODEL.head.name=LstmModel",
                    "MODEL.head.lstm_cells=4",
                    "MODEL.head.num_classes=5",
                ],
                vec![super::InputKind::Uint8, super::InputKind::Float],
            ),
            (
                vec![
                    "MODEL.head.name=DbofModel",
                    "MODEL.head.dbof_cluster_size=6",
                    "MODEL.head.dbof_hidden_size=4",
                    "MODEL.head.num_classes=5",
                ],
                vec![super::InputKind::Uint8, super::InputKind::Float],
            ),
            (
                vec![
                    "MODEL.head.name=DbofModel",
                    "MODEL.head.dbof_add_batch_norm=false",
                    "MODEL.head.dbof_activation=relu6",
                    "MODEL.head.dbof_pooling_method=average",
                    "MODEL.head.dbof_cluster_size=6",
                    "MODEL.head.dbof_hidden_size=4",
                    "MODEL.head.num_classes=5",
                ],
                vec![super::InputKind::Uint8],
            ),
            (
                vec![
                    "MODEL.head.name=NeXtVLADHead",
                    "MODEL.head.cluster_size=4",
                    "MODEL.head.hidden_size=8",
                    "MODEL.head.groups=4",
                    "MODEL.head.num_classes=5",
                ],
                vec![super::InputKind::Uint8, super::InputKind::Float],
            ),
            (
                vec![
                    "MODEL.head.name=AttentionClusterHead",
                    "MODEL.head.seg_num=5",
                    "MODEL.head.cluster_nums=[2, 2]",
                    "MODEL.head.fc1_size=6",
                    "MODEL.head.fc2_size=6",
                    "MODEL.head.num_classes=5",
                ],
                vec![super::InputKind::Uint8, super::InputKind::Float],
            ),
        ] {
            let ov: Vec<String> = level_overrides.iter().map(|s| s.to_string()).collect();
            let cfg = Config::from_yaml("t", "", &ov).unwrap();
            let m = Model::new(cfg.architecture(), tch::Device::Cpu, tch::Kind::Float);
            for k in kinds {
                check_wiring(&super::export_onnx_with(&m, &cfg.input_names(), k).unwrap());
            }
        }
    }

    #[test]
    fn messages_round_trip_through_prost() {
        let m = ModelProto {
            ir_version: 8,
            producer_name: "yt8m".into(),
            graph: Some(GraphProto {
                node: vec![NodeProto {
                    input: vec!["a".into()],
                    output: vec!["b".into()],
                    op_type: "Relu".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            ..Default::default()
        };
        let bytes = m.encode_to_vec();
        assert_eq!(ModelProto::decode(&bytes[..]).unwrap(), m);
    }
}
