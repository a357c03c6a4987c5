//! TensorFlow `GraphDef` files as distributed, read and run without TensorFlow: the ops of the
//! 2015 Inception-v3 graph (`classify_image_graph_def.pb` from `inception-2015-12-05.tgz`)
//! that Google's YouTube-8M feature extractor runs between the decoded frame (`DecodeJpeg:0`)
//! and the 2048-d activations it keeps (`pool_3/_reshape:0`); reference:
//! google/youtube-8m `feature_extractor/feature_extractor.py`.
//!
//! The messages are those of tensorflow/core/framework/{graph,node_def,attr_value,tensor,
//! tensor_shape,types}.proto (field numbers as published; only the fields read here are
//! declared, prost skips the rest). Semantics follow TensorFlow's kernels: NHWC tensors (kept
//! as NCHW inside, the layout libtorch's convolutions want), `SAME` padding split with the
//! extra row or column after, average pools that leave padding out of the count, legacy
//! `ResizeBilinear` (no half-pixel centres unless the attribute says so).
//!
//! The memory-bound ops run as one-pass CPU kernels ([`super::kernels`]: the resize, and each
//! batch norm fused with the `Relu` after it, in place), bit for bit the libtorch expressions
//! they replace; other devices and layouts take the libtorch path.
//!
//! Batching: the graph feeds one image; here the fed tensor holds a batch of frames of one size
//! (`[N, H, W, 3]`), the `ExpandDims` that makes the image a batch of one is the batch itself,
//! and a `Reshape` to a leading 1 keeps the N.
//!
//! Every byte of the file is hostile: sizes are checked against shapes before any allocation,
//! the walk over the graph is iterative with cycle detection, and unknown or unsupported ops
//! are named with the node.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tch::{Kind, Tensor};

use super::kernels;

/// The largest graph file read (the Inception graph is 91 MB).
pub const MAX_GRAPH_BYTES: u64 = 1 << 30;
/// Nodes at most (the Inception graph has about 1,000).
const MAX_NODES: usize = 200_000;

pub(super) mod pb {
    //! The GraphDef messages (TensorFlow's published field numbers).
    use std::collections::BTreeMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphDef {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeDef>,
        #[prost(message, optional, tag = "4")]
        pub versions: Option<VersionDef>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionDef {
        #[prost(int32, tag = "1")]
        pub producer: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeDef {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub op: String,
        #[prost(string, repeated, tag = "3")]
        pub input: Vec<String>,
        #[prost(btree_map = "string, message", tag = "5")]
        pub attr: BTreeMap<String, AttrValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttrValue {
        #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
        pub value: Option<Value>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "1")]
        List(ListValue),
        #[prost(bytes = "vec", tag = "2")]
        S(Vec<u8>),
        #[prost(int64, tag = "3")]
        I(i64),
        #[prost(float, tag = "4")]
        F(f32),
        #[prost(bool, tag = "5")]
        B(bool),
        #[prost(int32, tag = "6")]
        Type(i32),
        #[prost(message, tag = "7")]
        Shape(TensorShapeProto),
        #[prost(message, tag = "8")]
        Tensor(TensorProto),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListValue {
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub s: Vec<Vec<u8>>,
        #[prost(int64, repeated, tag = "3")]
        pub i: Vec<i64>,
        #[prost(float, repeated, tag = "4")]
        pub f: Vec<f32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "2")]
        pub dim: Vec<Dim>,
        #[prost(bool, tag = "3")]
        pub unknown_rank: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dim {
        #[prost(int64, tag = "1")]
        pub size: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int32, tag = "1")]
        pub dtype: i32,
        #[prost(message, optional, tag = "2")]
        pub tensor_shape: Option<TensorShapeProto>,
        #[prost(bytes = "vec", tag = "4")]
        pub tensor_content: Vec<u8>,
        #[prost(float, repeated, tag = "5")]
        pub float_val: Vec<f32>,
        #[prost(int32, repeated, tag = "7")]
        pub int_val: Vec<i32>,
        #[prost(int64, repeated, tag = "10")]
        pub int64_val: Vec<i64>,
    }

    /// Alias kept private to this module's users.
    pub type Attrs = BTreeMap<String, AttrValue>;
}

/// TensorFlow's `DataType` values used here.
const DT_FLOAT: i32 = 1;
const DT_INT32: i32 = 3;
const DT_UINT8: i32 = 4;
const DT_INT64: i32 = 9;

/// What went wrong, where.
#[derive(Debug, thiserror::Error)]
#[error("{path}{}: {message}", node.as_ref().map(|n| format!(", node '{n}'")).unwrap_or_default())]
pub struct GraphError {
    pub path: String,
    pub node: Option<String>,
    pub message: String,
}

/// The ops this runner knows (a closed set: anything else is refused with its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Const,
    Placeholder,
    Identity,
    CheckNumerics,
    Cast,
    ExpandDims,
    ResizeBilinear,
    Sub,
    Mul,
    Add,
    Conv2D,
    BatchNormWithGlobalNormalization,
    Relu,
    MaxPool,
    AvgPool,
    Concat,
    ConcatV2,
    Reshape,
}

impl OpKind {
    fn parse(op: &str) -> Option<OpKind> {
        use OpKind::*;
        Some(match op {
            "Const" => Const,
            "Placeholder" => Placeholder,
            "Identity" => Identity,
            "CheckNumerics" => CheckNumerics,
            "Cast" => Cast,
            "ExpandDims" => ExpandDims,
            "ResizeBilinear" => ResizeBilinear,
            "Sub" => Sub,
            "Mul" => Mul,
            "Add" | "AddV2" | "BiasAdd" => Add,
            "Conv2D" => Conv2D,
            "BatchNormWithGlobalNormalization" => BatchNormWithGlobalNormalization,
            "Relu" => Relu,
            "MaxPool" => MaxPool,
            "AvgPool" => AvgPool,
            "Concat" => Concat,
            "ConcatV2" => ConcatV2,
            "Reshape" => Reshape,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Padding {
    Same,
    Valid,
}

struct Node {
    name: String,
    op: String,
    /// Data inputs as (node index, output index); control inputs (`^name`) are dropped: the
    /// only ones in the Inception graph order `CheckNumerics` before an `Identity`.
    inputs: Vec<(usize, usize)>,
    attr: pb::Attrs,
}

/// A loaded graph.
pub struct TfGraph {
    path: PathBuf,
    nodes: Vec<Node>,
    by_name: HashMap<String, usize>,
    /// Decoded `Const` values, by node (filled when first needed).
    consts: std::sync::Mutex<HashMap<usize, Tensor>>,
    /// Convolution weights in libtorch's layout, per Conv2D node whose weights are constant.
    prepared: std::sync::Mutex<HashMap<usize, Tensor>>,
}

/// One value flowing through the graph.
struct Value {
    t: Tensor,
    /// A logically NHWC image batch kept as NCHW.
    nchw: bool,
    /// The leading dimension is the frames of the batch (the graph thinks it is 1).
    batched: bool,
}

impl Value {
    fn plain(t: Tensor) -> Value {
        Value {
            t,
            nchw: false,
            batched: false,
        }
    }
    /// The tensor in TensorFlow's logical layout.
    fn logical(&self) -> Tensor {
        if self.nchw {
            self.t.permute([0, 2, 3, 1])
        } else {
            self.t.shallow_clone()
        }
    }
}

fn split_input(s: &str) -> Option<(&str, usize)> {
    if s.starts_with('^') {
        return None;
    }
    match s.rsplit_once(':') {
        Some((n, i)) if !n.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) && !i.is_empty() => {
            Some((n, i.parse().ok()?))
        }
        _ => Some((s, 0)),
    }
}

impl TfGraph {
    /// Reads a binary `GraphDef` (a `.pb` as distributed).
    pub fn load(path: &Path) -> Result<TfGraph, GraphError> {
        let err = |m: String| GraphError {
            path: path.display().to_string(),
            node: None,
            message: m,
        };
        let md = std::fs::metadata(path).map_err(|e| err(format!("{e}")))?;
        if !md.is_file() {
            return Err(err("not a regular file".into()));
        }
        if md.len() > MAX_GRAPH_BYTES {
            return Err(err(format!(
                "{} bytes: larger than any graph this reads ({MAX_GRAPH_BYTES} at most)",
                md.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| err(format!("{e}")))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses `bytes` (named `path` in errors).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<TfGraph, GraphError> {
        use prost::Message;
        let err = |m: String| GraphError {
            path: path.display().to_string(),
            node: None,
            message: m,
        };
        let g = pb::GraphDef::decode(bytes).map_err(|e| {
            err(format!(
                "not a TensorFlow GraphDef ({e}); give the classify_image_graph_def.pb from inception-2015-12-05.tgz"
            ))
        })?;
        if g.node.len() > MAX_NODES {
            return Err(err(format!("{} nodes (at most {MAX_NODES})", g.node.len())));
        }
        let mut by_name = HashMap::with_capacity(g.node.len());
        for (i, n) in g.node.iter().enumerate() {
            if by_name.insert(n.name.clone(), i).is_some() {
                return Err(err(format!("two nodes are named '{}'", n.name)));
            }
        }
        let mut nodes = Vec::with_capacity(g.node.len());
        for n in g.node {
            let mut inputs = Vec::new();
            for s in &n.input {
                let Some((name, k)) = split_input(s) else {
                    continue;
                };
                let Some(&j) = by_name.get(name) else {
                    return Err(GraphError {
                        path: path.display().to_string(),
                        node: Some(n.name.clone()),
                        message: format!("input '{s}' names no node of the graph"),
                    });
                };
                inputs.push((j, k));
            }
            nodes.push(Node {
                name: n.name,
                op: n.op,
                inputs,
                attr: n.attr,
            });
        }
        Ok(TfGraph {
            path: path.to_path_buf(),
            nodes,
            by_name,
            consts: std::sync::Mutex::new(HashMap::new()),
            prepared: std::sync::Mutex::new(HashMap::new()),
        })
    }

    fn unsupported(&self, i: usize) -> GraphError {
        self.node_err(
            i,
            format!(
                "op '{}' is not supported (this runner knows the ops of the 2015 Inception-v3 graph between DecodeJpeg:0 and pool_3)",
                self.nodes[i].op
            ),
        )
    }

    fn node_err(&self, i: usize, message: impl Into<String>) -> GraphError {
        GraphError {
            path: self.path.display().to_string(),
            node: Some(self.nodes[i].name.clone()),
            message: message.into(),
        }
    }

    /// Whether the graph has a node called `name`.
    pub fn has_node(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Runs the graph from `feed` (a `node:output` name, given a batch of frames
    /// `[N, H, W, C]`) to `fetch` (`node:output`), returning `fetch` with its leading 1 as N.
    pub fn run(&self, feed: &str, frames: &Tensor, fetch: &str) -> Result<Tensor, GraphError> {
        self.run_timed(feed, frames, fetch, None)
    }

    /// [`TfGraph::run`], telling `on_node` each node's op type and the time it took (what
    /// `yt8m bench extract` reports as where the time goes).
    pub fn run_timed(
        &self,
        feed: &str,
        frames: &Tensor,
        fetch: &str,
        mut on_node: Option<&mut dyn FnMut(&str, Duration)>,
    ) -> Result<Tensor, GraphError> {
        let (feed_node, fetch_node) = self.ends(feed, fetch)?;
        let order = self.order(feed_node, fetch_node)?;
        self.refuse_unrunnable(&order, feed_node, feed)?;
        let mut readers = self.readers(&order, feed_node);
        let (fused, relu_after) = self.relu_fusion(&order, &readers, [feed_node, fetch_node]);
        let mut values: HashMap<usize, Value> = HashMap::new();
        for &i in &order {
            let v = if i == feed_node {
                Value {
                    t: frames.shallow_clone(),
                    nchw: false,
                    batched: true,
                }
            } else {
                let t0 = Instant::now();
                let v = if fused[i] {
                    let v = self.input(i, 0, &values)?;
                    Value {
                        t: v.t.shallow_clone(),
                        nchw: v.nchw,
                        batched: v.batched,
                    }
                } else {
                    // A batch norm writes over a convolution output that only it reads.
                    let in_place = self.nodes[i].op == "BatchNormWithGlobalNormalization"
                        && self.nodes[i].inputs.first().is_some_and(|&(j, _)| {
                            readers[j] == 1 && self.nodes[j].op == "Conv2D" && j != fetch_node
                        });
                    self.eval(i, &values, relu_after[i], in_place)?
                };
                if let Some(on_node) = on_node.as_mut() {
                    on_node(&self.nodes[i].op, t0.elapsed());
                }
                for &(j, k) in &self.nodes[i].inputs {
                    if k != 0 {
                        return Err(self.node_err(
                            i,
                            format!(
                                "reads output {k} of '{}': only first outputs are supported",
                                self.nodes[j].name
                            ),
                        ));
                    }
                    readers[j] -= 1;
                    if readers[j] == 0 && j != fetch_node {
                        values.remove(&j);
                    }
                }
                v
            };
            values.insert(i, v);
        }
        let out = values
            .remove(&fetch_node)
            .ok_or_else(|| self.graph_err(format!("'{fetch}' was not computed")))?;
        let checked = order.iter().find(|&&i| self.nodes[i].op == "CheckNumerics");
        if let Some(&c) = checked
            && out.t.isfinite().all().int64_value(&[]) == 0
        {
            return Err(self.node_err(
                c,
                "CheckNumerics: the values reaching the graph's CheckNumerics nodes hold NaN \
                 or infinities (the frame or the weights)",
            ));
        }
        Ok(out.logical())
    }

    fn graph_err(&self, message: String) -> GraphError {
        GraphError {
            path: self.path.display().to_string(),
            node: None,
            message,
        }
    }

    /// The fed and the fetched node of `node:output` names (first outputs only).
    fn ends(&self, feed: &str, fetch: &str) -> Result<(usize, usize), GraphError> {
        let resolve = |s: &str| -> Result<(usize, usize), GraphError> {
            let (n, k) = split_input(s)
                .ok_or_else(|| self.graph_err(format!("'{s}' is not a tensor name")))?;
            let i = *self.by_name.get(n).ok_or_else(|| {
                self.graph_err(format!("the graph has no node '{n}' (for '{s}')"))
            })?;
            Ok((i, k))
        };
        let (feed_node, feed_k) = resolve(feed)?;
        let (fetch_node, fetch_k) = resolve(fetch)?;
        if feed_k != 0 || fetch_k != 0 {
            return Err(
                self.graph_err("only the first output of a node can be fed or fetched".into())
            );
        }
        Ok((feed_node, fetch_node))
    }

    /// How many nodes of `order` read each value: it is freed after its last reader.
    fn readers(&self, order: &[usize], feed_node: usize) -> Vec<usize> {
        let mut readers = vec![0usize; self.nodes.len()];
        for &i in order {
            if i != feed_node {
                for &(j, _) in &self.nodes[i].inputs {
                    readers[j] += 1;
                }
            }
        }
        readers
    }

    /// Which batch norms apply the `Relu` after them in their own pass (`relu_after`) and which
    /// nodes then pass their input on (`fused`: the `Relu` and any `Identity`/`CheckNumerics`
    /// between, as the 2015 graph has): those whose value only the next of them reads in this
    /// run (`readers`), neither fed nor fetched (`ends`).
    fn relu_fusion(
        &self,
        order: &[usize],
        readers: &[usize],
        ends: [usize; 2],
    ) -> (Vec<bool>, Vec<bool>) {
        let mut fused = vec![false; self.nodes.len()];
        let mut relu_after = vec![false; self.nodes.len()];
        for &r in order {
            let n = &self.nodes[r];
            if n.op != "Relu" || r == ends[0] {
                continue;
            }
            // Back through pass-through nodes (the 2015 graph puts an `Identity` between).
            let mut chain = vec![r];
            let mut at = r;
            while let [(j, 0)] = self.nodes[at].inputs[..]
                && readers[j] == 1
                && !ends.contains(&j)
                && chain.len() < 8
            {
                chain.push(j);
                at = j;
                if !matches!(self.nodes[j].op.as_str(), "Identity" | "CheckNumerics") {
                    break;
                }
            }
            if self.nodes[at].op == "BatchNormWithGlobalNormalization" {
                relu_after[at] = true;
                for &k in &chain[..chain.len() - 1] {
                    fused[k] = true;
                }
            }
        }
        (fused, relu_after)
    }

    /// The nodes `fetch` needs, in post-order, stopping at the feed; iterative (no recursion
    /// on a hostile graph's depth), cycles refused.
    fn order(&self, feed_node: usize, fetch_node: usize) -> Result<Vec<usize>, GraphError> {
        let mut order = Vec::new();
        let mut state = vec![0u8; self.nodes.len()]; // 0 new, 1 on the stack, 2 done
        let mut stack = vec![(fetch_node, 0usize)];
        while let Some((i, next)) = stack.pop() {
            if next == 0 {
                if state[i] == 2 {
                    continue;
                }
                state[i] = 1;
            }
            let inputs: &[(usize, usize)] = if i == feed_node {
                &[]
            } else {
                &self.nodes[i].inputs
            };
            if next < inputs.len() {
                stack.push((i, next + 1));
                let j = inputs[next].0;
                match state[j] {
                    0 => stack.push((j, 0)),
                    1 => return Err(self.node_err(j, "the graph has a cycle through this node")),
                    _ => {}
                }
            } else {
                state[i] = 2;
                order.push(i);
            }
        }
        Ok(order)
    }

    /// Refuses what cannot run before computing anything: unknown ops first (a graph of
    /// another kind), then inputs nobody feeds.
    fn refuse_unrunnable(
        &self,
        order: &[usize],
        feed_node: usize,
        feed: &str,
    ) -> Result<(), GraphError> {
        for &i in order {
            if i != feed_node && OpKind::parse(&self.nodes[i].op).is_none() {
                return Err(self.unsupported(i));
            }
        }
        if let Some(&i) = order
            .iter()
            .find(|&&i| i != feed_node && self.nodes[i].op == "Placeholder")
        {
            return Err(self.node_err(
                i,
                format!("a placeholder that is not fed (the frames are fed at '{feed}')"),
            ));
        }
        Ok(())
    }

    fn attr(&self, i: usize, key: &str) -> Result<&pb::Value, GraphError> {
        self.nodes[i]
            .attr
            .get(key)
            .and_then(|a| a.value.as_ref())
            .ok_or_else(|| self.node_err(i, format!("attribute '{key}' is missing")))
    }

    fn attr_ints(&self, i: usize, key: &str) -> Result<Vec<i64>, GraphError> {
        match self.attr(i, key)? {
            pb::Value::List(l) => Ok(l.i.clone()),
            _ => Err(self.node_err(i, format!("attribute '{key}' is not a list of ints"))),
        }
    }

    fn attr_bool(&self, i: usize, key: &str, default: bool) -> Result<bool, GraphError> {
        match self.nodes[i].attr.get(key).and_then(|a| a.value.as_ref()) {
            None => Ok(default),
            Some(pb::Value::B(b)) => Ok(*b),
            Some(_) => Err(self.node_err(i, format!("attribute '{key}' is not a bool"))),
        }
    }

    fn attr_padding(&self, i: usize) -> Result<Padding, GraphError> {
        match self.attr(i, "padding")? {
            pb::Value::S(s) if s == b"SAME" => Ok(Padding::Same),
            pb::Value::S(s) if s == b"VALID" => Ok(Padding::Valid),
            _ => Err(self.node_err(i, "padding is neither SAME nor VALID")),
        }
    }

    /// `[1, a, b, 1]` window or stride attributes (NHWC) as (a, b).
    fn attr_hw(&self, i: usize, key: &str) -> Result<(i64, i64), GraphError> {
        let v = self.attr_ints(i, key)?;
        match v[..] {
            [1, a, b, 1] if a >= 1 && b >= 1 && a <= 4096 && b <= 4096 => Ok((a, b)),
            _ => Err(self.node_err(
                i,
                format!("{key} {v:?}: only [1, h, w, 1] is supported (NHWC)"),
            )),
        }
    }

    fn constant(&self, i: usize) -> Result<Tensor, GraphError> {
        if let Some(t) = self
            .consts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&i)
        {
            return Ok(t.shallow_clone());
        }
        let pb::Value::Tensor(tp) = self.attr(i, "value")? else {
            return Err(self.node_err(i, "a Const without a tensor value"));
        };
        let t = decode_tensor(tp).map_err(|m| self.node_err(i, m))?;
        self.consts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(i, t.shallow_clone());
        Ok(t)
    }

    fn input<'a>(
        &self,
        i: usize,
        k: usize,
        values: &'a HashMap<usize, Value>,
    ) -> Result<&'a Value, GraphError> {
        let j = self.nodes[i]
            .inputs
            .get(k)
            .ok_or_else(|| {
                self.node_err(
                    i,
                    format!("needs input {k}; it has {}", self.nodes[i].inputs.len()),
                )
            })?
            .0;
        values
            .get(&j)
            .ok_or_else(|| self.node_err(i, format!("input '{}' has no value", self.nodes[j].name)))
    }

    /// A constant input's values as i64 (shapes, axes, sizes).
    fn const_ints(
        &self,
        i: usize,
        k: usize,
        values: &HashMap<usize, Value>,
    ) -> Result<Vec<i64>, GraphError> {
        let v = self.input(i, k, values)?;
        if v.batched || v.t.dim() > 1 || v.t.numel() > 64 {
            return Err(self.node_err(i, format!("input {k} must be a small constant vector")));
        }
        let t = v.t.to_kind(Kind::Int64).reshape([-1]);
        Vec::<i64>::try_from(&t).map_err(|e| self.node_err(i, e.to_string()))
    }

    /// Node `i`'s value from its inputs' `values`. For a batch norm: with `relu` it also applies
    /// the `Relu` that is its only reader (which `run` then skips); with `in_place` it writes
    /// into its input, a convolution's output that nothing else reads.
    fn eval(
        &self,
        i: usize,
        values: &HashMap<usize, Value>,
        relu: bool,
        in_place: bool,
    ) -> Result<Value, GraphError> {
        let node = &self.nodes[i];
        let kind = OpKind::parse(&node.op).ok_or_else(|| self.unsupported(i))?;
        let torch = |e: tch::TchError| self.node_err(i, crate::error::torch_message(&e));
        let x = || self.input(i, 0, values);
        use OpKind::*;
        Ok(match kind {
            Const => Value::plain(self.constant(i)?),
            Placeholder => {
                return Err(self.node_err(i, "a placeholder that is not fed"));
            }
            Identity => {
                let v = x()?;
                Value {
                    t: v.t.shallow_clone(),
                    nchw: v.nchw,
                    batched: v.batched,
                }
            }
            CheckNumerics => {
                // Checked once on the result (NaN and infinities carry through every op here:
                // convolutions, ReLU, pools, sums), not with a pass and a sync per layer.
                let v = x()?;
                Value {
                    t: v.t.shallow_clone(),
                    nchw: v.nchw,
                    batched: v.batched,
                }
            }
            Cast => {
                let v = x()?;
                let to = match self.attr(i, "DstT")? {
                    pb::Value::Type(DT_FLOAT) => Kind::Float,
                    pb::Value::Type(DT_INT32) => Kind::Int,
                    pb::Value::Type(DT_INT64) => Kind::Int64,
                    _ => {
                        return Err(
                            self.node_err(i, "Cast to a type other than float, int32 or int64")
                        );
                    }
                };
                Value {
                    t: v.t.to_kind(to),
                    nchw: v.nchw,
                    batched: v.batched,
                }
            }
            ExpandDims => {
                let v = x()?;
                let axis = self.const_ints(i, 1, values)?;
                if v.batched && axis == [0] && v.t.dim() == 4 && !v.nchw {
                    // The image becomes a batch of one: here it is the batch of frames.
                    Value {
                        t: v.t.permute([0, 3, 1, 2]),
                        nchw: true,
                        batched: true,
                    }
                } else if !v.batched && axis.len() == 1 {
                    let a = axis[0];
                    let r = v.t.dim() as i64;
                    if a < -(r + 1) || a > r {
                        return Err(self.node_err(i, format!("axis {a} out of range for rank {r}")));
                    }
                    Value::plain(v.logical().unsqueeze(if a < 0 { a + r + 1 } else { a }))
                } else {
                    return Err(self.node_err(
                        i,
                        format!("ExpandDims on axis {axis:?} of the frames is not supported"),
                    ));
                }
            }
            ResizeBilinear => {
                let v = x()?;
                let size = self.const_ints(i, 1, values)?;
                let [h, w] = size[..] else {
                    return Err(
                        self.node_err(i, format!("size {size:?}: expected [height, width]"))
                    );
                };
                if !v.nchw || !(1..=8192).contains(&h) || !(1..=8192).contains(&w) {
                    return Err(self.node_err(
                        i,
                        format!(
                            "needs an NHWC image batch and a size within 1..=8192 (got {size:?})"
                        ),
                    ));
                }
                let align = self.attr_bool(i, "align_corners", false)?;
                let half = self.attr_bool(i, "half_pixel_centers", false)?;
                let sz = v.t.size();
                let ys = kernels::resize_taps(sz[2], h, align, half);
                let xs = kernels::resize_taps(sz[3], w, align, half);
                let x = v.t.f_to_kind(Kind::Float).map_err(torch)?;
                // Channels-last memory (NHWC, as TensorFlow holds it) from here on:
                // libtorch's pools vectorize over channels there, and its convolutions
                // keep the layout, 2x faster pools than NCHW.
                let t = match kernels::resize_bilinear_nhwc(&x, &ys, &xs) {
                    Some(t) => t,
                    None => resize_bilinear(&x, &ys, &xs)
                        .permute([0, 2, 3, 1])
                        .contiguous()
                        .permute([0, 3, 1, 2]),
                };
                Value {
                    t,
                    nchw: true,
                    batched: v.batched,
                }
            }
            Sub | Mul | Add => {
                let (a, b) = (x()?, self.input(i, 1, values)?);
                let (ta, tb) = (broadcastable(a, b), broadcastable(b, a));
                let t = match kind {
                    Sub => ta.f_sub(&tb),
                    Mul => ta.f_mul(&tb),
                    _ => ta.f_add(&tb),
                }
                .map_err(torch)?;
                let big = if a.t.dim() >= b.t.dim() { a } else { b };
                Value {
                    t,
                    nchw: big.nchw,
                    batched: a.batched || b.batched,
                }
            }
            Relu => {
                let v = x()?;
                Value {
                    t: v.t.relu(),
                    nchw: v.nchw,
                    batched: v.batched,
                }
            }
            Conv2D => {
                let v = x()?;
                let w = self.input(i, 1, values)?;
                if !v.nchw || w.t.dim() != 4 || w.batched {
                    return Err(
                        self.node_err(i, "needs an NHWC input and [kh, kw, in, out] weights")
                    );
                }
                let (sh, sw) = self.attr_hw(i, "strides")?;
                let pad = self.attr_padding(i)?;
                if let Ok(d) = self.attr_ints(i, "dilations")
                    && d.iter().any(|&x| x != 1)
                {
                    return Err(self.node_err(i, "dilated convolutions are not supported"));
                }
                // Constant weights are laid out for libtorch once, not on every run.
                let wi = node.inputs[1].0;
                let cached = self
                    .prepared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&i)
                    .map(Tensor::shallow_clone);
                let wt = match cached {
                    Some(t) => t,
                    None => {
                        // [kh, kw, in, out] → [out, in, kh, kw] in channels-last memory, the
                        // layout of the activations.
                        let t =
                            w.t.to_kind(Kind::Float)
                                .permute([3, 0, 1, 2])
                                .contiguous()
                                .permute([0, 3, 1, 2]);
                        if self.nodes[wi].op == "Const" {
                            self.prepared
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(i, t.shallow_clone());
                        }
                        t
                    }
                };
                let (kh, kw) = (wt.size()[2], wt.size()[3]);
                let t = match symmetric_pad(&v.t, pad, (kh, kw), (sh, sw)) {
                    Some(p) => v.t.f_conv2d(&wt, None::<Tensor>, [sh, sw], p, [1, 1], 1),
                    None => same_pad(&v.t, pad, (kh, kw), (sh, sw), 0.0).f_conv2d(
                        &wt,
                        None::<Tensor>,
                        [sh, sw],
                        [0, 0],
                        [1, 1],
                        1,
                    ),
                }
                .map_err(torch)?;
                Value {
                    t,
                    nchw: true,
                    batched: v.batched,
                }
            }
            BatchNormWithGlobalNormalization => {
                let v = x()?;
                let p: Vec<Tensor> = (1..5)
                    .map(|k| {
                        self.input(i, k, values)
                            .map(|p| p.t.to_kind(Kind::Float).reshape([1, -1, 1, 1]))
                    })
                    .collect::<Result<_, _>>()?;
                let eps = match self.attr(i, "variance_epsilon")? {
                    pb::Value::F(f) => *f as f64,
                    _ => return Err(self.node_err(i, "variance_epsilon is not a float")),
                };
                let scale = self.attr_bool(i, "scale_after_normalization", false)?;
                // TensorFlow's kernel: (x - m) * rsqrt(v + eps) [* gamma] + beta.
                let mut inv = (&p[1] + eps).rsqrt();
                if scale {
                    inv *= &p[3];
                }
                let floats = |t: &Tensor| Vec::<f32>::try_from(t.reshape([-1])).ok();
                let one_pass = if kernels::batch_norm_in_one_pass(&v.t) {
                    match (floats(&p[0]), floats(&inv), floats(&p[2])) {
                        (Some(m), Some(s), Some(b)) => {
                            kernels::batch_norm_nhwc(&v.t, &m, &s, &b, relu, in_place)
                        }
                        _ => None,
                    }
                } else {
                    None
                };
                let t = match one_pass {
                    Some(t) => t,
                    None => {
                        // One new tensor, the same operations in the same order.
                        let mut t = if in_place {
                            let mut t = v.t.shallow_clone();
                            let _ = t.f_sub_(&p[0]).map_err(torch)?;
                            t
                        } else {
                            v.t.f_sub(&p[0]).map_err(torch)?
                        };
                        let _ = t.f_mul_(&inv).map_err(torch)?;
                        let _ = t.f_add_(&p[2]).map_err(torch)?;
                        if relu {
                            let _ = t.f_relu_().map_err(torch)?;
                        }
                        t
                    }
                };
                Value {
                    t,
                    nchw: v.nchw,
                    batched: v.batched,
                }
            }
            MaxPool | AvgPool => {
                let v = x()?;
                if !v.nchw {
                    return Err(self.node_err(i, "needs an NHWC input"));
                }
                let k = self.attr_hw(i, "ksize")?;
                let s = self.attr_hw(i, "strides")?;
                let pad = self.attr_padding(i)?;
                let sym = symmetric_pad(&v.t, pad, k, s);
                let t = if let (MaxPool, Some(p)) = (kind, sym) {
                    // libtorch pads max pools with -inf, as the explicit padding would.
                    v.t.f_max_pool2d([k.0, k.1], [s.0, s.1], p, [1, 1], false)
                        .map_err(torch)?
                } else if let (AvgPool, Some(p)) = (kind, sym) {
                    // count_include_pad = false: TensorFlow's average over real inputs only.
                    v.t.f_avg_pool2d([k.0, k.1], [s.0, s.1], p, false, false, None)
                        .map_err(torch)?
                } else if kind == MaxPool {
                    same_pad(&v.t, pad, k, s, f64::NEG_INFINITY)
                        .f_max_pool2d([k.0, k.1], [s.0, s.1], [0, 0], [1, 1], false)
                        .map_err(torch)?
                } else {
                    // TensorFlow averages over the window's real inputs only.
                    let sum = same_pad(&v.t, pad, k, s, 0.0)
                        .f_avg_pool2d([k.0, k.1], [s.0, s.1], [0, 0], false, true, None)
                        .map_err(torch)?;
                    if pad == Padding::Same {
                        let ones = Tensor::ones(
                            [1, 1, v.t.size()[2], v.t.size()[3]],
                            (Kind::Float, v.t.device()),
                        );
                        let frac = same_pad(&ones, pad, k, s, 0.0)
                            .f_avg_pool2d([k.0, k.1], [s.0, s.1], [0, 0], false, true, None)
                            .map_err(torch)?;
                        sum / frac
                    } else {
                        sum
                    }
                };
                Value {
                    t,
                    nchw: true,
                    batched: v.batched,
                }
            }
            Concat | ConcatV2 => {
                let n = node.inputs.len();
                if n < 2 {
                    return Err(self.node_err(i, "a concatenation of nothing"));
                }
                let (axis_k, parts): (usize, Vec<usize>) = if kind == Concat {
                    (0, (1..n).collect())
                } else {
                    (n - 1, (0..n - 1).collect())
                };
                let axis = self.const_ints(i, axis_k, values)?;
                let vals: Vec<&Value> = parts
                    .iter()
                    .map(|&k| self.input(i, k, values))
                    .collect::<Result<_, _>>()?;
                let [a] = axis[..] else {
                    return Err(self.node_err(i, "the axis is not a scalar"));
                };
                if vals.iter().all(|v| v.nchw) && (a == 3 || a == -1) {
                    let ts: Vec<&Tensor> = vals.iter().map(|v| &v.t).collect();
                    Value {
                        t: Tensor::f_cat(&ts, 1).map_err(torch)?,
                        nchw: true,
                        batched: vals[0].batched,
                    }
                } else {
                    return Err(self.node_err(i, format!("concatenation along axis {a}: only the channels of image batches are supported")));
                }
            }
            Reshape => {
                let v = x()?;
                let mut shape = self.const_ints(i, 1, values)?;
                if v.batched {
                    match shape.first() {
                        Some(1) => shape[0] = v.t.size()[0],
                        Some(-1) if shape.len() > 1 => {}
                        _ => return Err(self.node_err(i, format!("reshape of the frames to {shape:?}: the leading dimension must stay 1 (the batch)"))),
                    }
                }
                let t = v.logical().contiguous().f_reshape(&shape).map_err(torch)?;
                Value {
                    t,
                    nchw: false,
                    batched: v.batched,
                }
            }
        })
    }
}

/// `a` shaped to combine with `b`: a per-channel vector against an NCHW batch becomes
/// `[1, C, 1, 1]`; anything in logical layout against an NCHW value is permuted.
fn broadcastable(a: &Value, b: &Value) -> Tensor {
    if a.nchw || !b.nchw {
        return a.t.shallow_clone();
    }
    match a.t.dim() {
        0 => a.t.shallow_clone(),
        1 => a.t.reshape([1, -1, 1, 1]),
        4 => a.t.permute([0, 3, 1, 2]),
        _ => a.t.shallow_clone(),
    }
}

/// TensorFlow's `SAME` padding: as much as the window needs, the odd one after.
/// TensorFlow's SAME padding of an NCHW input as (top+bottom, left+right) totals.
fn same_amounts(x: &Tensor, k: (i64, i64), s: (i64, i64)) -> (i64, i64) {
    let sz = x.size();
    let amount = |n: i64, k: i64, s: i64| {
        let out = (n + s - 1) / s;
        ((out - 1) * s + k - n).max(0)
    };
    (amount(sz[2], k.0, s.0), amount(sz[3], k.1, s.1))
}

/// The padding as libtorch's symmetric `padding` argument, when it is symmetric (even totals:
/// the usual case, odd kernels at stride 1), so no padded copy of the input is made.
fn symmetric_pad(x: &Tensor, pad: Padding, k: (i64, i64), s: (i64, i64)) -> Option<[i64; 2]> {
    match pad {
        Padding::Valid => Some([0, 0]),
        Padding::Same => {
            let (ph, pw) = same_amounts(x, k, s);
            (ph % 2 == 0 && pw % 2 == 0).then_some([ph / 2, pw / 2])
        }
    }
}

fn same_pad(x: &Tensor, pad: Padding, k: (i64, i64), s: (i64, i64), value: f64) -> Tensor {
    if pad == Padding::Valid {
        return x.shallow_clone();
    }
    let sz = x.size();
    let amount = |n: i64, k: i64, s: i64| {
        let out = (n + s - 1) / s;
        ((out - 1) * s + k - n).max(0)
    };
    let (ph, pw) = (amount(sz[2], k.0, s.0), amount(sz[3], k.1, s.1));
    if ph == 0 && pw == 0 {
        return x.shallow_clone();
    }
    x.pad(
        [pw / 2, pw - pw / 2, ph / 2, ph - ph / 2],
        "constant",
        value,
    )
}

/// Legacy TensorFlow bilinear resize of an NCHW float batch through libtorch ops (off the CPU,
/// or in layouts [`kernels::resize_bilinear_nhwc`] does not take), over the taps of
/// [`kernels::resize_taps`].
pub(super) fn resize_bilinear(x: &Tensor, ys: &[kernels::Tap], xs: &[kernels::Tap]) -> Tensor {
    let taps = |t: &[kernels::Tap]| {
        let lo: Vec<i64> = t.iter().map(|t| t.lo as i64).collect();
        let hi: Vec<i64> = t.iter().map(|t| t.hi as i64).collect();
        let frac: Vec<f32> = t.iter().map(|t| t.frac).collect();
        (
            Tensor::from_slice(&lo).to_device(x.device()),
            Tensor::from_slice(&hi).to_device(x.device()),
            Tensor::from_slice(&frac).to_device(x.device()),
        )
    };
    let (yl, yh, yf) = taps(ys);
    let (xl, xh, xf) = taps(xs);
    let top = x.index_select(2, &yl);
    let bottom = x.index_select(2, &yh);
    let yf = yf.view([1, 1, -1, 1]);
    let xf = xf.view([1, 1, 1, -1]);
    let interp_x = |rows: &Tensor| {
        let l = rows.index_select(3, &xl);
        let r = rows.index_select(3, &xh);
        &l + (&r - &l) * &xf
    };
    let t = interp_x(&top);
    let b = interp_x(&bottom);
    &t + (&b - &t) * &yf
}

/// A `TensorProto`'s values as a tensor, its size checked against its shape first.
pub(super) fn decode_tensor(tp: &pb::TensorProto) -> Result<Tensor, String> {
    let shape: Vec<i64> = tp
        .tensor_shape
        .as_ref()
        .map(|s| s.dim.iter().map(|d| d.size).collect())
        .unwrap_or_default();
    if shape.iter().any(|&d| d < 0) {
        return Err(format!("a constant of shape {shape:?}"));
    }
    let n = shape
        .iter()
        .try_fold(1u64, |n, &d| {
            n.checked_mul(d as u64).filter(|&n| n <= 1 << 31)
        })
        .ok_or_else(|| format!("a constant of shape {shape:?} is too large"))? as usize;
    let (kind, size) = match tp.dtype {
        DT_FLOAT => (Kind::Float, 4),
        DT_INT32 => (Kind::Int, 4),
        DT_INT64 => (Kind::Int64, 8),
        DT_UINT8 => (Kind::Uint8, 1),
        d => {
            return Err(format!(
                "a constant of TensorFlow data type {d} (float, int32, int64 and uint8 are read)"
            ));
        }
    };
    let t = if !tp.tensor_content.is_empty() {
        if tp.tensor_content.len() != n * size {
            return Err(format!(
                "a constant of shape {shape:?} holds {} bytes, not {}",
                tp.tensor_content.len(),
                n * size
            ));
        }
        Tensor::from_data_size(&tp.tensor_content, &shape, kind)
    } else {
        // Values in the typed fields; fewer than the shape holds repeat the last one.
        let fill = |len: usize| -> Result<Vec<usize>, String> {
            if len == 0 && n > 0 {
                return Err(format!("a constant of shape {shape:?} without values"));
            }
            Ok((0..n).map(|k| k.min(len.saturating_sub(1))).collect())
        };
        match tp.dtype {
            DT_FLOAT => {
                let idx = fill(tp.float_val.len())?;
                let v: Vec<f32> = idx.iter().map(|&k| tp.float_val[k]).collect();
                Tensor::from_slice(&v).reshape(&shape)
            }
            DT_INT32 | DT_UINT8 => {
                let idx = fill(tp.int_val.len())?;
                let v: Vec<i64> = idx.iter().map(|&k| tp.int_val[k] as i64).collect();
                Tensor::from_slice(&v).to_kind(kind).reshape(&shape)
            }
            _ => {
                let idx = fill(tp.int64_val.len())?;
                let v: Vec<i64> = idx.iter().map(|&k| tp.int64_val[k]).collect();
                Tensor::from_slice(&v).reshape(&shape)
            }
        }
    };
    Ok(t)
}

#[cfg(test)]
mod fusion_tests {
    use super::*;
    use prost::Message;
    use tch::Device;

    fn node(name: &str, op: &str, inputs: &[&str], attrs: Vec<(&str, pb::Value)>) -> pb::NodeDef {
        pb::NodeDef {
            name: name.into(),
            op: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            attr: attrs
                .into_iter()
                .map(|(k, v)| (k.to_string(), pb::AttrValue { value: Some(v) }))
                .collect(),
        }
    }

    fn constant(name: &str, dtype: i32, shape: &[i64], f: Vec<f32>, i: Vec<i32>) -> pb::NodeDef {
        let shape = pb::TensorShapeProto {
            dim: shape.iter().map(|&size| pb::Dim { size }).collect(),
            unknown_rank: false,
        };
        let t = pb::TensorProto {
            dtype,
            tensor_shape: Some(shape),
            float_val: f,
            int_val: i,
            ..Default::default()
        };
        node(
            name,
            "Const",
            &[],
            vec![
                ("dtype", pb::Value::Type(dtype)),
                ("value", pb::Value::Tensor(t)),
            ],
        )
    }

    /// `n` values in [-1, 1) from a multiplicative hash: both signs, so the ReLUs matter.
    /// Multiples of 1/512, so the convolutions below sum exactly in any order (oneDNN's order
    /// depends on the thread count: under AVX2 a 3-thread sum differed from a 1-thread one).
    fn floats(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|k| (((k as u32).wrapping_mul(2654435761) ^ seed) % 1024) as f32 / 512.0 - 1.0)
            .collect()
    }

    /// Two branches from the fed image `img` (`[n, h, w, 3]`): `a/conv` → `a/bn` → `a/id`
    /// (Identity) → `a/relu`, as the 2015 graph chains them, and `b/conv` → `b/bn` read by
    /// `b/relu` and by `out`, the concatenation of `a/relu`, `b/relu` and `b/bn` (4 channels
    /// each; weights and parameters from `floats`).
    fn fusion_graph() -> pb::GraphDef {
        let (c, o) = (3, 4);
        let bn_attrs = || {
            vec![
                ("variance_epsilon", pb::Value::F(1e-3)),
                ("scale_after_normalization", pb::Value::B(true)),
            ]
        };
        let conv_attrs = || {
            vec![
                (
                    "strides",
                    pb::Value::List(pb::ListValue {
                        i: vec![1, 1, 1, 1],
                        ..Default::default()
                    }),
                ),
                ("padding", pb::Value::S(b"VALID".to_vec())),
            ]
        };
        let mut g = pb::GraphDef {
            node: vec![
                node("img", "Placeholder", &[], vec![]),
                constant("dim", DT_INT32, &[], vec![], vec![0]),
                node("x", "ExpandDims", &["img", "dim"], vec![]),
                constant("axis", DT_INT32, &[], vec![], vec![3]),
            ],
            versions: None,
        };
        for (k, b) in ["a", "b"].iter().enumerate() {
            let s = k as u32 * 10;
            g.node.push(constant(
                &format!("{b}/w"),
                DT_FLOAT,
                &[1, 1, c, o],
                floats(12, s),
                vec![],
            ));
            for (p, name) in ["m", "v", "beta", "gamma"].iter().enumerate() {
                let mut v = floats(4, s + 1 + p as u32);
                if *name == "v" {
                    v.iter_mut().for_each(|x| *x = x.abs() + 0.1);
                }
                g.node
                    .push(constant(&format!("{b}/{name}"), DT_FLOAT, &[4], v, vec![]));
            }
            g.node.push(node(
                &format!("{b}/conv"),
                "Conv2D",
                &["x", &format!("{b}/w")],
                conv_attrs(),
            ));
            let ins = ["conv", "m", "v", "beta", "gamma"].map(|p| format!("{b}/{p}"));
            let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
            g.node.push(node(
                &format!("{b}/bn"),
                "BatchNormWithGlobalNormalization",
                &ins,
                bn_attrs(),
            ));
        }
        g.node.push(node("a/id", "Identity", &["a/bn"], vec![]));
        g.node.push(node("a/relu", "Relu", &["a/id"], vec![]));
        g.node.push(node("b/relu", "Relu", &["b/bn"], vec![]));
        g.node.push(node(
            "out",
            "Concat",
            &["axis", "a/relu", "b/relu", "b/bn"],
            vec![],
        ));
        g
    }

    /// A conv → batch norm → Identity → Relu chain (as the 2015 graph has) and a batch norm
    /// read twice (by a Relu and by the concatenation): the first is fused, the second not,
    /// and the output equals the ops computed one by one.
    #[test]
    fn a_batch_norm_takes_its_relu_only_when_the_relu_is_its_only_reader() {
        let (c, o) = (3, 4);
        let g = fusion_graph();
        let graph = TfGraph::from_bytes(&g.encode_to_vec(), Path::new("fusion.pb")).unwrap();

        let id = |n: &str| graph.by_name[n];
        let order = graph.order(id("img"), id("out")).unwrap();
        let readers = graph.readers(&order, id("img"));
        let (fused, relu_after) = graph.relu_fusion(&order, &readers, [id("img"), id("out")]);
        assert!(relu_after[id("a/bn")] && fused[id("a/id")] && fused[id("a/relu")]);
        assert!(!relu_after[id("b/bn")] && !fused[id("b/relu")]);

        // Multiples of 1/256: with `floats`' weights every product and sum is exact in f32.
        let img = Tensor::randint(256, [2, 5, 6, c], (Kind::Float, Device::Cpu)) / 256.0;
        // The one-pass kernel (few threads) and libtorch's in-place ops (more) give the same.
        let threads = tch::get_num_threads();
        let runs: Vec<Tensor> = [1, kernels::ONE_PASS_MAX_THREADS + 1]
            .into_iter()
            .map(|n| {
                tch::set_num_threads(n);
                assert_eq!(kernels::batch_norm_in_one_pass(&img), n == 1);
                graph.run("img", &img, "out").unwrap()
            })
            .collect();
        tch::set_num_threads(threads);
        assert!(runs[0].equal(&runs[1]), "the two batch norm paths differ");
        let got = &runs[0];
        // The same ops one by one, in TensorFlow's layout.
        let branch = |s: u32| {
            let w = Tensor::from_slice(&floats(12, s)).reshape([c, o]);
            let p = |k: u32| Tensor::from_slice(&floats(4, s + 1 + k));
            let conv = img.matmul(&w);
            let inv = (p(1).abs() + 0.1 + 1e-3).rsqrt() * p(3);
            (conv - p(0)) * inv + p(2)
        };
        let (a, b) = (branch(0), branch(10));
        let want = Tensor::cat(&[a.relu(), b.relu(), b], 3);
        let diff = (got - &want).abs().max().double_value(&[]);
        println!("fused graph vs the ops one by one: max |diff| {diff:e}");
        assert_eq!(got.size(), [2, 5, 6, 3 * o]);
        assert!(diff < 1e-5, "{diff}");
    }
}
