//! Models: the network registry (one match on [`NetworkName`]), the traits each network
//! implements in its own file, [`Model`] (a built network with its variables) and the shared
//! layers and losses. A batch's upload to the device is in [`inputs`].

pub mod attention_cluster;
pub mod attention_lstm;
pub mod dbof;
pub mod frame_logistic;
pub mod inputs;
pub mod lstm_model;
pub mod nextvlad;
pub mod paddle_ops;
pub mod video_level;

pub mod section;

pub use attention_cluster::{AttentionCluster, AttentionClusterConfig};
pub use nextvlad::{NextVlad, NextVladConfig};
pub use section::HeadConfig;

pub use attention_lstm::{AttentionLstm, AttentionLstmConfig};
pub use dbof::{Dbof, DbofConfig};
pub use frame_logistic::{FrameLogistic, FrameLogisticConfig};
pub use lstm_model::{LstmModel, LstmModelConfig};
pub use video_level::VideoLevelConfig;
pub use video_level::{Logistic, Moe, pooled_input};

pub use inputs::{Inputs, batch_inputs};

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::path::Path;
use std::sync::Arc;
use tch::{Device, Kind, Tensor, nn};

/// `MODEL.head.name`: which network. The one name for it: [`Architecture`] is a network
/// with its shape, [`Network`] a built one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
pub enum NetworkName {
    /// PaddleVideo's AttentionLSTM head (frame level).
    #[default]
    #[value(name = "AttentionLstmHead")]
    AttentionLstmHead,
    /// Google's starter logistic regression (video level).
    #[value(name = "LogisticModel")]
    LogisticModel,
    /// Google's starter mixture of experts (video level).
    #[value(name = "MoeModel")]
    MoeModel,
    /// Google's starter `FrameLevelLogisticModel` (frame level).
    #[value(name = "FrameLevelLogisticModel")]
    FrameLevelLogisticModel,
    /// Google's starter `LstmModel`: stacked LSTMs + MoE (frame level).
    #[value(name = "LstmModel")]
    LstmModel,
    /// Google's starter `DbofModel`: Deep Bag of Frames + MoE (frame level).
    #[value(name = "DbofModel")]
    DbofModel,
    /// NeXtVLAD as PaddlePaddle's legacy video zoo has it (frame level).
    #[value(name = "NeXtVLADHead")]
    #[serde(rename = "NeXtVLADHead", alias = "NEXTVLAD")]
    NextVladHead,
    /// Attention Clusters with shifting as PaddlePaddle's legacy video zoo has it (frame
    /// level).
    #[value(name = "AttentionClusterHead")]
    #[serde(alias = "AttentionCluster")]
    AttentionClusterHead,
}

impl std::fmt::Display for NetworkName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        let v = self.to_possible_value().expect("every name is a value");
        f.write_str(v.get_name())
    }
}

/// What a network is before it is built: its typed config, read from `MODEL.head`'s flat
/// keys, with everything the rest of the program asks of it (checks, size, cost, the keys it
/// reads) and how to build it. Each network's file implements it next to its layers; the one
/// match on [`NetworkName`] is [`Architecture::from_head`].
pub trait NetworkConfig: Any + DynEq + std::fmt::Debug + Send + Sync {
    /// Its config from `MODEL.head` (no checks: [`NetworkConfig::validate`] does them).
    fn from_head(h: &HeadConfig) -> Self
    where
        Self: Sized;
    /// The name in reports, bundles, model cards and bench tables.
    fn display_name(&self) -> &'static str;
    /// The `MODEL.head` keys it reads besides `name`, `num_classes`, `feature_num` and
    /// `feature_dims`. Saved configs leave the others out, and resuming compares these.
    fn keys(&self) -> &'static [&'static str];
    /// Keys among [`NetworkConfig::keys`] that leave the trained model as it is, so a resumed
    /// run may change them (a training-only dropout, a file whose values the weights carry).
    fn free_keys(&self) -> &'static [&'static str] {
        &[]
    }
    /// Checks its own keys (the shared ones are checked by the config); the message names
    /// the key and a typical value.
    fn validate(&self) -> std::result::Result<(), String> {
        Ok(())
    }
    /// Frame-level (SequenceExample) or video-level (Example) input.
    fn level(&self) -> crate::data::Level;
    fn num_classes(&self) -> usize;
    /// Input width per modality.
    fn feature_dims(&self) -> &[usize];
    /// Trainable parameters from the widths alone, so absurd widths are refused before any
    /// allocation; None when the count overflows.
    fn parameter_estimate(&self) -> Option<u64>;
    /// FLOPs of one forward pass for a video of `t` frames (multiply-adds × 2; the matrix
    /// products, which dominate).
    fn forward_flops(&self, t: f64) -> f64;
    /// Whether a forward pass costs in proportion to the padded frames (it reads every
    /// frame), rather than to a fixed number of sampled ones or none: then merging videos of
    /// very different lengths into one call wastes work.
    fn cost_follows_frames(&self) -> bool {
        false
    }
    /// The network with fresh variables under `root`.
    fn build(&self, root: &nn::Path) -> Box<dyn Network>;
}

/// The [`NetworkConfig`] methods every network's config has alike: its level and its
/// `num_classes` and `feature_dims` fields. `network_widths!(Frame)` inside the impl.
macro_rules! network_widths {
    ($level:ident) => {
        fn level(&self) -> crate::data::Level {
            crate::data::Level::$level
        }
        fn num_classes(&self) -> usize {
            self.num_classes
        }
        fn feature_dims(&self) -> &[usize] {
            &self.feature_dims
        }
    };
}
pub(crate) use network_widths;

/// Equality across [`NetworkConfig`] trait objects (same type and equal fields).
pub trait DynEq {
    fn dyn_eq(&self, other: &dyn Any) -> bool;
}

impl<T: PartialEq + 'static> DynEq for T {
    fn dyn_eq(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>() == Some(self)
    }
}

/// A network with its shape: a [`NetworkConfig`] of whichever network `MODEL.head.name` names.
#[derive(Clone)]
pub struct Architecture(Arc<dyn NetworkConfig>);

impl std::fmt::Debug for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for Architecture {
    fn eq(&self, other: &Self) -> bool {
        let other: &dyn Any = &*other.0;
        self.0.dyn_eq(other)
    }
}

impl<C: NetworkConfig> From<C> for Architecture {
    fn from(c: C) -> Self {
        Architecture(Arc::new(c))
    }
}

impl std::ops::Deref for Architecture {
    type Target = dyn NetworkConfig;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl Architecture {
    /// The network `MODEL.head.name` names, with its keys read from the section. Adding a
    /// network: its file (config, [`NetworkConfig`], [`Network`]), a [`NetworkName`] variant
    /// and an arm here, and its new keys in [`HeadConfig`] (docs/architecture.md).
    pub fn from_head(h: &HeadConfig) -> Architecture {
        fn read<C: NetworkConfig>(h: &HeadConfig) -> Architecture {
            Architecture(Arc::new(C::from_head(h)))
        }
        match h.name {
            NetworkName::AttentionLstmHead => read::<AttentionLstmConfig>(h),
            NetworkName::LogisticModel | NetworkName::MoeModel => read::<VideoLevelConfig>(h),
            NetworkName::FrameLevelLogisticModel => read::<FrameLogisticConfig>(h),
            NetworkName::LstmModel => read::<LstmModelConfig>(h),
            NetworkName::DbofModel => read::<DbofConfig>(h),
            NetworkName::NextVladHead => read::<NextVladConfig>(h),
            NetworkName::AttentionClusterHead => read::<AttentionClusterConfig>(h),
        }
    }

    /// The typed config when the network is a `C` (e.g. AttentionLSTM's, for its bench).
    pub fn config<C: NetworkConfig>(&self) -> Option<&C> {
        let any: &dyn Any = &*self.0;
        any.downcast_ref::<C>()
    }

    /// [`NetworkConfig::display_name`].
    pub fn name(&self) -> &'static str {
        self.0.display_name()
    }
}

/// A built network: its forward pass, which parameters skip L2, and its ONNX graph, so
/// training, inference and export never ask which network it is. Its widths are its
/// [`Architecture`]'s (the bundle's checked loading compares every tensor's shape with them).
pub trait Network: Any + Send + std::fmt::Debug {
    /// Logits `[B, C]` from per-modality features `[B, T, D_m]` and lengths `[B]`.
    fn forward(&self, inputs: &Inputs, train: bool) -> Tensor;
    /// Whether the variable `name` takes the L2 decay (`OPTIMIZER.weight_decay`): all of
    /// them unless the upstream model exempts some (PaddleVideo's output biases; the starter
    /// regularises only its fully connected weights).
    fn decays(&self, _name: &str) -> bool {
        true
    }
    /// The upstream variable that parameter `name` is part of, for per-variable gradient
    /// clipping (`OPTIMIZER.grad_clip_by: tensor`): itself unless the upstream layout joins
    /// several of ours (TF's LSTM kernel holds our `w_ih` and `w_hh`).
    fn clip_group(&self, name: &str) -> String {
        name.to_string()
    }
    /// Probabilities `[B, C]`: the sigmoid of the logits, or the model's own where its logits
    /// come from clamped probabilities (MoE), so losses on probabilities see the real ones.
    fn probabilities(&self, inputs: &Inputs, train: bool) -> Tensor {
        self.forward(inputs, train).sigmoid()
    }
    /// Called after the variables were cast to `kind` for inference ([`Model::set_compute_kind`]):
    /// a network that keeps some of its computation in float32 says so here.
    fn computes_in(&mut self, _kind: Kind) {}
    /// Lays each LSTM's weights out as one cuDNN buffer ([`cudnn_flatten_lstm`]); called
    /// whenever the variables were created or changed kind (their storage is new then).
    fn flatten_rnn_weights(&mut self) {}
    /// Reads what the config's files hold for a fresh network (NeXtVLAD's `eigen_file`),
    /// before any weights are loaded over it.
    fn init_from_files(&self, _eigen_file: Option<&Path>) -> Result<()> {
        Ok(())
    }
    /// Adds the network to an ONNX graph whose inputs are declared in `io`; returns the name
    /// of the logits value `[batch, C]`.
    fn onnx_logits(
        &self,
        g: &mut crate::onnx::Graph,
        io: &crate::onnx::GraphInputs,
    ) -> Result<String>;
}

/// Checked `u64` arithmetic for [`NetworkConfig::parameter_estimate`].
pub(crate) fn add(a: u64, b: u64) -> Option<u64> {
    a.checked_add(b)
}

/// Checked `u64` arithmetic for [`NetworkConfig::parameter_estimate`].
pub(crate) fn mul(a: u64, b: u64) -> Option<u64> {
    a.checked_mul(b)
}

/// Σ `dims`, checked.
pub(crate) fn sum_dims(dims: &[usize]) -> Option<u64> {
    dims.iter().try_fold(0u64, |a, &d| a.checked_add(d as u64))
}

/// Parameters of the starter's MoE classifier on `input` features: gate `[in, C·(k+1)]`
/// without bias, experts `[in, C·k]` with bias.
pub(crate) fn moe_parameters(input: u64, classes: u64, mixtures: u64) -> Option<u64> {
    add(
        mul(mul(input, classes)?, add(mul(mixtures, 2)?, 1)?)?,
        mul(classes, mixtures)?,
    )
}

/// FLOPs of the starter's MoE classifier on `input` features.
pub(crate) fn moe_flops(input: f64, classes: usize, mixtures: usize) -> f64 {
    2.0 * input * classes as f64 * (2 * mixtures + 1) as f64
}

/// A model with its variables.
pub struct Model {
    pub vs: nn::VarStore,
    pub net: Box<dyn Network>,
    pub arch: Architecture,
    pub kind: Kind,
}

impl Model {
    pub fn new(arch: impl Into<Architecture>, device: Device, kind: Kind) -> Self {
        let arch = arch.into();
        let mut vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut net = arch.build(&root);
        if kind != Kind::Float {
            vs.set_kind(kind);
        }
        if device.is_cuda() {
            crate::kinds::cuda_fp32_is_ieee();
        }
        net.flatten_rnn_weights();
        Model {
            vs,
            net,
            arch,
            kind,
        }
    }

    /// The network as its own type when it is a `N` (tests reach into a network's layers).
    pub fn network_as<N: Network>(&self) -> Option<&N> {
        let any: &dyn Any = &*self.net;
        any.downcast_ref::<N>()
    }

    /// The AttentionLSTM network, if that is the architecture.
    pub fn attention_lstm(&self) -> Option<&AttentionLstm> {
        self.network_as()
    }

    /// Computes in `kind` from now on (inference in bf16): the variables are cast (weights on
    /// disk stay as they were) and inputs are uploaded in that kind. Logits come out in it;
    /// callers take them to float32 before sigmoid, losses and metrics.
    pub fn set_compute_kind(&mut self, kind: Kind) {
        if kind != self.kind {
            self.vs.set_kind(kind);
            self.kind = kind;
            self.net.computes_in(kind);
            self.net.flatten_rnn_weights();
        }
    }

    /// Applies an inference `--precision`: bf16 casts the model ([`Model::set_compute_kind`]),
    /// fp32 keeps the storage kind (float32, or float64 for parity runs). Returns the kind it
    /// now computes in and why.
    pub fn use_precision(&mut self, p: crate::kinds::Precision) -> (Kind, String) {
        let (kind, why) = p.resolve(self.device());
        if kind == Kind::BFloat16 {
            self.set_compute_kind(kind);
        }
        (self.kind, why)
    }

    /// What a fresh model takes from files its config names (NeXtVLAD's `eigen_file`,
    /// `MODEL.eigen_file`), before any weights are loaded over it. Takes the file, not the
    /// config: the model knows nothing of the config (config → model, never back).
    pub fn init_from_files(&self, eigen_file: Option<&Path>) -> Result<()> {
        self.net.init_from_files(eigen_file)
    }

    /// The built network (forward, no-decay list, ONNX graph).
    pub fn network(&self) -> &dyn Network {
        &*self.net
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Logits `[B, C]`.
    pub fn forward(&self, inputs: &Inputs, train: bool) -> Tensor {
        self.net.forward(inputs, train)
    }

    /// Variables sorted by name.
    pub fn named_variables(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn num_parameters(&self) -> i64 {
        self.vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    /// Copies named tensors into the variables, checking every name and shape.
    pub fn load_named(&mut self, source: &str, tensors: &[(String, Tensor)]) -> Result<()> {
        let vars = self.vs.variables();
        let mut missing: Vec<&String> = vars
            .keys()
            .filter(|k| !tensors.iter().any(|(n, _)| n == *k))
            .collect();
        missing.sort();
        if !missing.is_empty() {
            return Err(Error::Weights {
                path: source.into(),
                message: format!(
                    "missing tensor(s) {missing:?}\n  hint: was it written for another model type?"
                ),
            });
        }
        // Sorted, so the first mismatch reported is the same on every run.
        let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in sorted {
            let Some(var) = vars.get(name) else { continue };
            if var.size() != t.size() {
                return Err(Error::Weights {
                    path: source.into(),
                    message: format!(
                        "tensor '{name}' has shape {:?}, the model expects {:?}\n  hint: the config's model widths must match the weights (MODEL.head)",
                        t.size(),
                        var.size()
                    ),
                });
            }
            if !t.is_floating_point() {
                return Err(Error::Weights {
                    path: source.into(),
                    message: format!("tensor '{name}' holds {:?} values, not floats", t.kind()),
                });
            }
            // NaN or Inf weights would print NaN scores with exit 0.
            if t.isfinite().logical_not().any().int64_value(&[]) != 0 {
                return Err(Error::Weights {
                    path: source.into(),
                    message: format!(
                        "tensor '{name}' holds NaN or Inf values\n  hint: the weights come from a diverged or damaged run; use an earlier checkpoint"
                    ),
                });
            }
            tch::no_grad(|| {
                let mut v = var.shallow_clone();
                v.copy_(&t.to_kind(v.kind()).to_device(v.device()));
            });
        }
        Ok(())
    }

    /// Parameter groups for the optimizer: every variable with its L2 coefficient (`decay`,
    /// or 0 where the architecture exempts it: [`Network::decays`]).
    pub fn param_groups(&self, decay: f64) -> Vec<(String, Tensor, f64)> {
        let net = self.network();
        self.named_variables()
            .into_iter()
            // Batch norm's moving statistics are state, not parameters.
            .filter(|(_, t)| t.requires_grad())
            .map(|(n, t)| {
                let l2 = if net.decays(&n) { decay } else { 0.0 };
                (n, t, l2)
            })
            .collect()
    }

    /// Loads `.safetensors`, a checkpoint directory, or a PaddleVideo `.pdparams` (the
    /// `RUN/checkpoints/latest` pointer is resolved by [`crate::checkpoint::weights_path`]).
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        let p = weights_file(path);
        if p.extension().and_then(|e| e.to_str()) == Some("pdparams") {
            let t: Vec<(String, Tensor)> = crate::convert::read_pdparams(&p)?.into_iter().collect();
            self.load_named(&p.display().to_string(), &t)
        } else {
            if !p.exists() {
                return Err(Error::NotFound { path: p.display().to_string(), message: "no such weights file\n  hint: pass a .safetensors file, a checkpoint directory or a .pdparams".into() });
            }
            self.load_safetensors(&p)
        }
    }

    /// Writes the weights as safetensors (float32 on disk unless the model is float64).
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let named = self.named_variables();
        let refs: Vec<(&str, Tensor)> = named
            .iter()
            .map(|(n, t)| (n.as_str(), t.to_device(Device::Cpu)))
            .collect();
        Tensor::write_safetensors(&refs, path).map_err(|e| {
            Error::Internal(format!(
                "{}: cannot write the weights: {}\n  hint: check the free space and permissions there (a failed save leaves earlier checkpoints intact)",
                path.display(),
                crate::error::torch_message(&e)
            ))
        })?;
        Ok(())
    }

    pub fn load_safetensors(&mut self, path: &Path) -> Result<()> {
        let t = read_safetensors(path)?;
        self.load_named(&path.display().to_string(), &t)
    }
}

/// Reads a safetensors file defensively: only a regular file (a FIFO or `/dev/zero` would hang
/// or exhaust memory), the header and every tensor's extent checked by the `safetensors` crate
/// before any tensor is made.
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let werr = |m: String| Error::Weights {
        path: path.display().to_string(),
        message: m,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(werr("not a regular file\n  hint: pass a .safetensors file, a checkpoint directory or a .pdparams".into())),
        Err(e) => return Err(werr(format!("cannot read: {e}\n  hint: pass a .safetensors file, a checkpoint directory or a .pdparams"))),
    }
    Tensor::read_safetensors(path)
        .map_err(|e| werr(format!("not a readable safetensors file: {e}")))
}

/// PaddleVideo's loss (`TRAIN.loss: bce_sum`, the default): `BCEWithLogitsLoss(reduction=
/// 'sum')` over batch and classes.
pub fn bce_sum(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.binary_cross_entropy_with_logits::<Tensor>(labels, None, None, tch::Reduction::Sum)
}

/// The loss `TRAIN.loss` of a batch (float32 under bf16 compute), and the factor that turns
/// it into a sum over the batch's `b` videos (how losses are logged and compared).
pub fn training_loss(
    model: &Model,
    inp: &Inputs,
    name: crate::kinds::LossName,
    train: bool,
) -> (Tensor, f64) {
    use crate::kinds::LossName;
    let b = inp.labels.size()[0] as f64;
    match name {
        LossName::BceSum | LossName::BceMean => {
            let logits = widen(model.forward(inp, train));
            let loss = bce_sum(&logits, &inp.labels.to_kind(logits.kind()));
            if name == LossName::BceMean {
                (loss / b, b)
            } else {
                (loss, 1.0)
            }
        }
        LossName::CrossEntropy => {
            let p = widen(model.network().probabilities(inp, train));
            (starter_cross_entropy(&p, &inp.labels.to_kind(p.kind())), b)
        }
    }
}

/// The starter's `losses.CrossEntropyLoss` (`TRAIN.loss: cross_entropy`) on probabilities
/// `p` `[B, C]`: `mean_b Σ_c −[y·log(p + ε) + (1 − y)·log(1 − p + ε)]`, ε = 1e-5.
pub fn starter_cross_entropy(p: &Tensor, labels: &Tensor) -> Tensor {
    let eps = 1e-5;
    let pos = (p + eps).log();
    let neg = (p.neg() + (1.0 + eps)).log();
    let xent = -(labels * pos + (labels.neg() + 1.0) * neg);
    xent.sum_dim_intlist(1, false, p.kind()).mean(p.kind())
}

/// Glorot/Xavier uniform, U(−a, a) with a = √(6 / (fan_in + fan_out)): Paddle's
/// `XavierInitializer` (uniform) and TensorFlow's `glorot_uniform_initializer`, the default
/// weight init of both upstreams.
pub(crate) fn xavier(fan_in: i64, fan_out: i64) -> nn::Init {
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    nn::Init::Uniform { lo: -a, up: a }
}

/// `t` in `kind` (a differentiable cast: mixed-precision training keeps float32 master weights
/// and computes in bf16; gradients flow back through the cast in float32). No copy when the
/// kinds already agree (float32 / float64 runs, bf16 inference).
/// Makes one LSTM direction's `[w_ih, w_hh, b_ih, b_hh]` views into one contiguous buffer
/// on CUDA, as PyTorch's `nn.LSTM.flatten_parameters` does: cuDNN reads its weights from a
/// single buffer, and weights held apart are copied into a fresh one at every call, with
/// a warning each time (17,037 lines in one GPU check before this). Values are unchanged;
/// later in-place updates (optimizer steps, loaded weights) keep the layout. A no-op off
/// CUDA or without cuDNN; where cuDNN refuses (a kind it lacks), the weights stay apart and
/// cuDNN compacts them per call as before.
pub(crate) fn cudnn_flatten_lstm(p: &[Tensor; 4]) {
    if !p[0].device().is_cuda() || !tch::Cuda::cudnn_is_available() {
        return;
    }
    let (input, hidden) = (p[0].size()[1], p[1].size()[1]);
    // mode 2 is cuDNN's LSTM; no projection, one layer, batch-first, one direction.
    let flat = tch::no_grad(|| {
        Tensor::f_internal_cudnn_rnn_flatten_weight(p, 4, input, 2, hidden, 0, 1, true, false)
    });
    if let Err(e) = flat {
        tracing::debug!("LSTM weights left apart (cuDNN compacts them per call): {e}");
    }
}

pub(crate) fn cast(t: &Tensor, kind: Kind) -> Tensor {
    if t.kind() == kind {
        t.shallow_clone()
    } else {
        t.to_kind(kind)
    }
}

/// `[B, T]` bool on `lengths`' device: `t < lengths[b]`, the frames a video really has.
pub(crate) fn valid_frames(lengths: &Tensor, t: i64) -> Tensor {
    Tensor::arange(t, (Kind::Int64, lengths.device()))
        .unsqueeze(0)
        .lt_tensor(&lengths.unsqueeze(1))
}

/// The frames `index` (`[B, S]`, int64) of `x` (`[B, T, D]`) → `[B, S, D]` (the sampling
/// heads: DBoF, AttentionCluster).
pub(crate) fn gather_frames(x: &Tensor, index: &Tensor) -> Tensor {
    let (b, s, d) = (x.size()[0], index.size()[1], x.size()[2]);
    let idx = index
        .to_device(x.device())
        .unsqueeze(2)
        .expand([b, s, d], false);
    x.gather(1, &idx, false)
}

/// bf16 results as float32 (sigmoid, softmax, losses and metrics stay in float32); float32 and
/// float64 pass through.
pub fn widen(t: Tensor) -> Tensor {
    if matches!(t.kind(), Kind::BFloat16 | Kind::Half) {
        t.to_kind(Kind::Float)
    } else {
        t
    }
}

/// What ONNX export needs of a model: its shape from the architecture, its nodes from the
/// network.
impl crate::onnx::Exportable for Model {
    fn name(&self) -> &str {
        self.arch.name()
    }
    fn level(&self) -> crate::data::Level {
        self.arch.level()
    }
    fn feature_dims(&self) -> Vec<i64> {
        self.arch.feature_dims().iter().map(|&d| d as i64).collect()
    }
    fn num_classes(&self) -> i64 {
        self.arch.num_classes() as i64
    }
    fn add_logits(
        &self,
        g: &mut crate::onnx::Graph,
        io: &crate::onnx::GraphInputs,
    ) -> Result<String> {
        self.net.onnx_logits(g, io)
    }
}

/// Unit tests that seed libtorch's global generator (or draw from it) hold this, so parallel
/// tests cannot draw between a seed and its use.
#[cfg(test)]
pub(crate) static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The weights file of a `-w` argument: a checkpoint directory's `model.safetensors`, or the
/// file itself.
pub fn weights_file(weights: &Path) -> std::path::PathBuf {
    if weights.is_dir() {
        weights.join("model.safetensors")
    } else {
        weights.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_save_names_the_file_once() {
        let m = Model::new(
            crate::model::VideoLevelConfig {
                num_classes: 3,
                feature_dims: vec![4],
                num_mixtures: 0,
            },
            Device::Cpu,
            Kind::Float,
        );
        let e = m.save_safetensors(Path::new("/dev/full")).unwrap_err();
        let shown = format!("{:#}", anyhow::Error::from(e));
        println!("{shown}");
        assert!(
            shown.starts_with("/dev/full: cannot write the weights"),
            "{shown}"
        );
        assert_eq!(shown.matches("No space left").count(), 1, "{shown}");
    }
}
