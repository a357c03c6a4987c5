//! The starter's `DbofModel`, Deep Bag of Frames (google/youtube-8m `frame_level_models.py`,
//! commit e6f6bf6), on the starter's normalised frames
//! ([`super::frame_logistic::starter_frames`]):
//!
//! ```text
//! sample `iterations` frames per video → [B·S, F]
//! input_bn → × cluster_weights [F, K] → cluster_bn (or + cluster_biases) → activation
//! → [B, S, K] → max (or mean) over S → × hidden1_weights [K, Hd] → hidden1_bn (or + biases)
//! → activation → the starter's MoE
//! ```
//!
//! Batch norm is slim's (`center`, `scale`, decay 0.999, ε 0.001; batch statistics in training
//! with the population variance, moving variance updated with the Bessel-corrected one),
//! libtorch's `batch_norm` with momentum 1 − decay computes the same. Initialisation as upstream:
//! weights N(0, 1/√fan_in), biases N(0, 1/√F) / N(0, 0.01), γ 1, β 0.
//!
//! **Sampling.** Upstream draws the frames at random (`SampleRandomFrames`: `⌊u·n⌋`, u uniform,
//! with replacement) in training *and* at test time. We draw them so in training; inference,
//! export and serving take `iterations` evenly spaced frames (`⌊(j + ½)·n / S⌋`, j = 0..S) so a
//! bundle answers the same way twice. [`Dbof::forward_sampled`] takes given frames (parity
//! with fixtures drawn by TensorFlow).

use super::cast;
use super::frame_logistic::{onnx_starter_frames, starter_frames};
use super::video_level::Moe;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// Nonlinearity of the cluster and hidden layers (`--dbof_activation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DbofActivation {
    #[default]
    Sigmoid,
    Relu6,
}

/// Pooling over the sampled frames (`--dbof_pooling_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DbofPooling {
    #[default]
    Max,
    Average,
}

/// Shape; names follow the starter's flags (`--iterations`, `--dbof_cluster_size`,
/// `--dbof_hidden_size`, `--dbof_add_batch_norm`, `--dbof_activation`,
/// `--dbof_pooling_method`, `--moe_num_mixtures`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbofConfig {
    pub num_classes: usize,
    pub feature_dims: Vec<usize>,
    pub iterations: usize,
    pub cluster_size: usize,
    pub hidden_size: usize,
    pub add_batch_norm: bool,
    pub activation: DbofActivation,
    pub pooling: DbofPooling,
    pub num_mixtures: usize,
    /// Moving-average decay of the batch norms' statistics (slim's 0.999; short runs need
    /// less, or evaluation sees statistics that barely left their initial 0 / 1).
    pub batch_norm_decay: f64,
}

impl super::NetworkConfig for DbofConfig {
    fn from_head(h: &super::HeadConfig) -> Self {
        DbofConfig {
            num_classes: h.num_classes,
            feature_dims: h.feature_dims.clone(),
            iterations: h.iterations,
            cluster_size: h.dbof_cluster_size,
            hidden_size: h.dbof_hidden_size,
            add_batch_norm: h.dbof_add_batch_norm,
            activation: h.dbof_activation,
            pooling: h.dbof_pooling_method,
            num_mixtures: h.num_mixtures.max(1),
            batch_norm_decay: h.dbof_batch_norm_decay,
        }
    }
    fn display_name(&self) -> &'static str {
        "DbofModel"
    }
    /// `dbof_batch_norm_decay` is not a shape, but the moving statistics it made are a
    /// different model at inference, so resuming compares it like one.
    fn keys(&self) -> &'static [&'static str] {
        &[
            "feature_names",
            "num_mixtures",
            "iterations",
            "dbof_cluster_size",
            "dbof_hidden_size",
            "dbof_add_batch_norm",
            "dbof_activation",
            "dbof_pooling_method",
            "dbof_batch_norm_decay",
        ]
    }
    fn validate(&self) -> std::result::Result<(), String> {
        let d = self.batch_norm_decay;
        if !(d > 0.0 && d < 1.0) {
            return Err(format!(
                "MODEL.head.dbof_batch_norm_decay is {d}; it must be in (0, 1) (slim's 0.999)"
            ));
        }
        if self.iterations == 0 || self.cluster_size == 0 || self.hidden_size == 0 {
            return Err("MODEL.head.iterations, dbof_cluster_size and dbof_hidden_size must be positive (the starter's 30, 8192 and 1024)".into());
        }
        Ok(())
    }
    super::network_widths!(Frame);
    fn parameter_estimate(&self) -> Option<u64> {
        use super::{add, mul};
        let dims = super::sum_dims(&self.feature_dims)?;
        let (kc, hd) = (self.cluster_size as u64, self.hidden_size as u64);
        // Batch norm: γ, β on the input, cluster and hidden layers; else biases.
        let post = if self.add_batch_norm {
            mul(2, add(add(dims, kc)?, hd)?)?
        } else {
            add(kc, hd)?
        };
        let layers = add(mul(dims, kc)?, mul(kc, hd)?)?;
        let moe = super::moe_parameters(hd, self.num_classes as u64, self.num_mixtures as u64)?;
        add(add(post, layers)?, moe)
    }
    /// Only the sampled frames reach the cluster layer.
    fn forward_flops(&self, _t: f64) -> f64 {
        let (k, hd) = (self.cluster_size as f64, self.hidden_size as f64);
        let dims = self.feature_dims.iter().sum::<usize>() as f64;
        2.0 * self.iterations as f64 * dims * k
            + 2.0 * k * hd
            + super::moe_flops(hd, self.num_classes, self.num_mixtures)
    }
    fn build(&self, root: &nn::Path) -> Box<dyn super::Network> {
        Box::new(Dbof::new(root, self))
    }
}

/// slim's batch norm: γ, β and the moving statistics (not trained).
#[derive(Debug)]
struct BatchNorm {
    gamma: Tensor,
    beta: Tensor,
    mean: Tensor,
    var: Tensor,
    /// 1 − decay.
    momentum: f64,
}

const BN_EPS: f64 = 0.001;

impl BatchNorm {
    fn new(p: &nn::Path, n: i64, decay: f64) -> Self {
        BatchNorm {
            gamma: p.var("gamma", &[n], Init::Const(1.0)),
            beta: p.var("beta", &[n], Init::Const(0.0)),
            mean: p.zeros_no_train("moving_mean", &[n]),
            var: p.ones_no_train("moving_variance", &[n]),
            momentum: 1.0 - decay,
        }
    }

    /// `x` `[N, C]`; in training normalises with the batch's statistics and updates the
    /// moving ones. Computed in the statistics' kind (float32 under bf16 mixed precision).
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let k = self.mean.kind();
        x.to_kind(k)
            .batch_norm(
                Some(&self.gamma),
                Some(&self.beta),
                Some(&self.mean),
                Some(&self.var),
                train,
                self.momentum,
                BN_EPS,
                false,
            )
            .to_kind(x.kind())
    }

    /// Inference in an ONNX graph, folded to `x · scale + shift`.
    fn onnx(&self, g: &mut crate::onnx::Graph, x: &str) -> String {
        g.batch_norm(x, &self.gamma, &self.beta, &self.mean, &self.var, BN_EPS)
    }
}

/// Either batch norm or a bias after a layer.
#[derive(Debug)]
enum Post {
    Norm(BatchNorm),
    Bias(Tensor),
}

impl Post {
    fn new(p: &nn::Path, scope: &str, bias: &str, n: i64, stdev: f64, bn: Option<f64>) -> Self {
        if let Some(decay) = bn {
            Post::Norm(BatchNorm::new(&p.sub(scope), n, decay))
        } else {
            Post::Bias(p.var(bias, &[n], Init::Randn { mean: 0.0, stdev }))
        }
    }
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Post::Norm(b) => b.forward(x, train),
            Post::Bias(b) => x + cast(b, x.kind()),
        }
    }
    fn onnx(&self, g: &mut crate::onnx::Graph, x: &str) -> String {
        match self {
            Post::Norm(b) => b.onnx(g, x),
            Post::Bias(b) => {
                let t = g.init_f32("bias", b);
                g.op("Add", &[x, &t])
            }
        }
    }
}

#[derive(Debug)]
pub struct Dbof {
    cfg: DbofConfig,
    input_bn: Option<BatchNorm>,
    cluster_w: Tensor,
    cluster_post: Post,
    hidden_w: Tensor,
    hidden_post: Post,
    moe: Moe,
}

impl Dbof {
    pub fn new(vs: &nn::Path, cfg: &DbofConfig) -> Self {
        let f: i64 = cfg.feature_dims.iter().sum::<usize>() as i64;
        let (k, hd) = (cfg.cluster_size as i64, cfg.hidden_size as i64);
        let normal = |fan_in: i64| Init::Randn {
            mean: 0.0,
            stdev: 1.0 / (fan_in as f64).sqrt(),
        };
        let bn = cfg.add_batch_norm.then_some(cfg.batch_norm_decay);
        Dbof {
            input_bn: bn.map(|d| BatchNorm::new(&vs.sub("input_bn"), f, d)),
            cluster_w: vs.var("cluster_weights", &[f, k], normal(f)),
            cluster_post: Post::new(
                vs,
                "cluster_bn",
                "cluster_biases",
                k,
                1.0 / (f as f64).sqrt(),
                bn,
            ),
            hidden_w: vs.var("hidden1_weights", &[k, hd], normal(k)),
            hidden_post: Post::new(vs, "hidden1_bn", "hidden1_biases", hd, 0.01, bn),
            moe: Moe::new(
                &vs.sub("moe"),
                &[hd as usize],
                cfg.num_classes as i64,
                cfg.num_mixtures.max(1) as i64,
            ),
            cfg: cfg.clone(),
        }
    }

    /// Frames to use `[B, S]` (int64): drawn as the starter does in training, evenly spaced
    /// otherwise.
    pub fn sample(&self, lengths: &Tensor, train: bool) -> Tensor {
        let s = self.cfg.iterations as i64;
        let dev = lengths.device();
        let n = lengths.to_kind(Kind::Float).unsqueeze(1); // [B, 1]
        let b = n.size()[0];
        let pos = if train {
            Tensor::rand([b, s], (Kind::Float, dev))
        } else {
            (Tensor::arange(s, (Kind::Float, dev)) + 0.5) / s as f64
        };
        (pos * n).floor().to_kind(Kind::Int64)
    }

    fn act(&self, x: Tensor) -> Tensor {
        match self.cfg.activation {
            DbofActivation::Sigmoid => x.sigmoid(),
            DbofActivation::Relu6 => x.clamp(0.0, 6.0),
        }
    }

    /// The hidden layer's output `[B, Hd]` (the MoE's input) from the starter input `x`
    /// `[B, T, F]` at the frames `index` `[B, S]`.
    fn hidden(&self, x: &Tensor, index: &Tensor, train: bool) -> Tensor {
        let (b, f) = (x.size()[0], x.size()[2]);
        let s = index.size()[1];
        let kind = x.kind();
        let mut v = super::gather_frames(x, index).reshape([b * s, f]);
        if let Some(bn) = &self.input_bn {
            v = bn.forward(&v, train);
        }
        let a = v.matmul(&cast(&self.cluster_w, kind));
        let a = self.act(self.cluster_post.forward(&a, train));
        let a = a.reshape([b, s, -1]);
        let pooled = match self.cfg.pooling {
            DbofPooling::Max => a.amax(1, false),
            DbofPooling::Average => a.mean_dim(1, false, kind),
        };
        let h = pooled.matmul(&cast(&self.hidden_w, kind));
        self.act(self.hidden_post.forward(&h, train))
    }

    /// Probabilities `[B, C]` from the starter input `x` `[B, T, F]` at the frames `index`
    /// `[B, S]`.
    pub fn forward_sampled(&self, x: &Tensor, index: &Tensor, train: bool) -> Tensor {
        self.moe.probabilities(&self.hidden(x, index, train))
    }

    /// The MoE's input for a batch, its frames sampled for `train`.
    fn hidden_of(&self, inputs: &super::Inputs, train: bool) -> Tensor {
        let x = starter_frames(&inputs.features);
        let index = self.sample(&inputs.lengths, train);
        self.hidden(&x, &index, train)
    }
}

impl super::Network for Dbof {
    fn forward(&self, inputs: &super::Inputs, train: bool) -> Tensor {
        self.moe.forward(&self.hidden_of(inputs, train))
    }
    fn probabilities(&self, inputs: &super::Inputs, train: bool) -> Tensor {
        self.moe.probabilities(&self.hidden_of(inputs, train))
    }
    /// Only the MoE carries `slim.l2_regularizer(1e-8)`.
    fn decays(&self, name: &str) -> bool {
        name == "moe.gate.weight" || name == "moe.experts.weight"
    }

    /// The starter frames, the evenly spaced frames (GatherElements), the folded batch norms,
    /// pooling and the MoE.
    fn onnx_logits(
        &self,
        g: &mut crate::onnx::Graph,
        io: &crate::onnx::GraphInputs,
    ) -> crate::error::Result<String> {
        use crate::onnx::Attr;
        let x = onnx_starter_frames(g, io); // [B, T, F]
        let s = self.cfg.iterations as i64;
        let f = self.cfg.feature_dims.iter().sum::<usize>() as i64;
        let lengths = io.lengths.as_deref().unwrap_or("lengths");
        let n = g.op_attr("Cast", &[lengths], vec![("to", Attr::Int(1))]);
        let axes1 = g.init_i64("axes1", &[1], &[1]);
        let n = g.op("Unsqueeze", &[&n, &axes1]); // [B, 1]
        let pos: Vec<f32> = (0..s).map(|j| (j as f32 + 0.5) / s as f32).collect();
        let pos = g.init_f32("dbof_pos", &Tensor::from_slice(&pos).view([1, s]));
        let idx = g.op("Mul", &[&pos, &n]);
        let idx = g.op("Floor", &[&idx]);
        let idx = g.op_attr("Cast", &[&idx], vec![("to", Attr::Int(7))]); // INT64 [B, S]
        let v = g.gather_frames(&x, &idx, f);
        let v = match &self.input_bn {
            Some(bn) => bn.onnx(g, &v),
            None => v,
        };
        let cw = g.init_f32("cluster_w", &self.cluster_w);
        let a = g.op("MatMul", &[&v, &cw]); // [B, S, K]
        let a = self.cluster_post.onnx(g, &a);
        let a = self.onnx_act(g, &a);
        // Opset 17: ReduceMax / ReduceMean take their axes as an attribute (ReduceSum as an
        // input).
        let reduce = match self.cfg.pooling {
            DbofPooling::Max => "ReduceMax",
            DbofPooling::Average => "ReduceMean",
        };
        let pooled = g.op_attr(
            reduce,
            &[&a],
            vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(0))],
        );
        let hw = g.init_f32("hidden_w", &self.hidden_w);
        let h = g.op("MatMul", &[&pooled, &hw]);
        let h = self.hidden_post.onnx(g, &h);
        let h = self.onnx_act(g, &h);
        Ok(self.moe.onnx(g, &h))
    }
}

impl Dbof {
    fn onnx_act(&self, g: &mut crate::onnx::Graph, x: &str) -> String {
        match self.cfg.activation {
            DbofActivation::Sigmoid => g.op("Sigmoid", &[x]),
            DbofActivation::Relu6 => {
                let lo = g.scalar_f32("zero_f", 0.0);
                let hi = g.scalar_f32("six_f", 6.0);
                g.op("Clip", &[x, &lo, &hi])
            }
        }
    }
}
