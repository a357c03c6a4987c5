//! `MODEL.head` as written in YAML: PaddleVideo's flat keys (`attention_lstm_youtube8m.yaml`
//! loads as is), the union of every network's. Each network reads its own keys from here into
//! its typed config ([`super::NetworkConfig::from_head`]) and checks them there; saved configs
//! keep only the keys the configured network reads ([`super::NetworkConfig::keys`]).
//!
//! A field here and a network's `from_head` are the only places a key is named twice: the
//! section must stay one typed struct so that serde reports unknown keys and bad values with
//! the file's line numbers (a per-network section chosen by `name` would need `flatten` or a
//! second parse, and serde's buffered `flatten` drops positions).

use super::NetworkName;
use super::dbof::{DbofActivation, DbofPooling};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadConfig {
    /// PaddleVideo: "AttentionLstmHead"; or the starter's "LogisticModel", "MoeModel".
    pub name: NetworkName,
    pub num_classes: usize,
    /// Ignored by PaddleVideo (it uses len(feature_dims)); accepted for compatibility.
    pub feature_num: Option<usize>,
    pub feature_dims: Vec<usize>,
    pub embedding_size: usize,
    pub lstm_size: usize,
    /// Ours: PaddleVideo hard-codes 8192 / 4096.
    pub fc_out1_size: usize,
    pub fc_out2_size: usize,
    /// Dropout rate (PaddleVideo's `dropout`; the legacy zoo's `drop_rate`).
    #[serde(alias = "drop_rate")]
    pub dropout: f64,
    /// Ours: TFRecord feature list names (frame level), rgb then audio.
    pub feature_names: Vec<String>,
    /// Ours: video-level feature names.
    pub mean_feature_names: Vec<String>,
    /// Ours: experts of `MoeModel` and of the starter frame models' MoE classifier (the
    /// starter's `--moe_num_mixtures`, default 2).
    pub num_mixtures: usize,
    /// Ours: `LstmModel`'s units per layer (the starter's `--lstm_cells`, default 1024).
    pub lstm_cells: usize,
    /// Ours: `LstmModel`'s stacked layers (the starter's `--lstm_layers`, default 2).
    pub lstm_layers: usize,
    /// Ours: `DbofModel`'s frames sampled per video (the starter's `--iterations`, 30).
    pub iterations: usize,
    /// Ours: `DbofModel`'s cluster layer width (`--dbof_cluster_size`, 8192).
    pub dbof_cluster_size: usize,
    /// Ours: `DbofModel`'s hidden layer width (`--dbof_hidden_size`, 1024).
    pub dbof_hidden_size: usize,
    /// Ours: batch norm in `DbofModel` (`--dbof_add_batch_norm`, true; false adds biases).
    pub dbof_add_batch_norm: bool,
    /// Ours: `sigmoid` or `relu6` (`--dbof_activation`).
    pub dbof_activation: DbofActivation,
    /// Ours: `max` or `average` over the sampled frames (`--dbof_pooling_method`).
    pub dbof_pooling_method: DbofPooling,
    /// Ours: `DbofModel`'s batch-norm moving-average decay (slim's default 0.999).
    pub dbof_batch_norm_decay: f64,
    /// Ours: `NeXtVLADHead`'s clusters per group K (legacy Paddle `cluster_size`, 128).
    pub cluster_size: usize,
    /// Ours: `NeXtVLADHead`'s hidden width H (`hidden_size`, 2048).
    pub hidden_size: usize,
    /// Ours: `NeXtVLADHead`'s groups G (`groups`, 8).
    pub groups: usize,
    /// Ours: `NeXtVLADHead`'s expansion λ (`expansion`, 2).
    pub expansion: usize,
    /// Ours: `NeXtVLADHead`'s gate bottleneck H / r (`gating_reduction`, 8).
    pub gating_reduction: usize,
    /// Ours: `NeXtVLADHead`'s rgb scaling, √eigenvalue + 1e-4 per dimension, from the
    /// starter's PCA eigenvalues (`eigen_file`, yt8m_pca/eigenvals.npy), read when training
    /// starts and saved with the weights. Unset: no scaling (upstream requires the file).
    pub eigen_file: Option<String>,
    /// Ours: `AttentionClusterHead`'s frames sampled per video (`seg_num`, 100).
    pub seg_num: usize,
    /// Ours: `AttentionClusterHead`'s attention units per modality (`cluster_nums`, [32, 32]).
    pub cluster_nums: Vec<usize>,
    /// Ours: `AttentionClusterHead`'s hidden widths (hard-coded upstream: 1024, 4096).
    pub fc1_size: usize,
    pub fc2_size: usize,
}

impl Default for HeadConfig {
    fn default() -> Self {
        let m = super::AttentionLstmConfig::default();
        HeadConfig {
            name: NetworkName::AttentionLstmHead,
            num_classes: m.num_classes,
            feature_num: Some(2),
            feature_dims: m.feature_dims,
            embedding_size: m.embedding_size,
            lstm_size: m.lstm_size,
            fc_out1_size: m.fc_out1_size,
            fc_out2_size: m.fc_out2_size,
            dropout: m.dropout,
            feature_names: vec!["rgb".into(), "audio".into()],
            mean_feature_names: vec!["mean_rgb".into(), "mean_audio".into()],
            num_mixtures: 2,
            lstm_cells: 1024,
            lstm_layers: 2,
            iterations: 30,
            dbof_cluster_size: 8192,
            dbof_hidden_size: 1024,
            dbof_add_batch_norm: true,
            dbof_activation: DbofActivation::Sigmoid,
            dbof_pooling_method: DbofPooling::Max,
            dbof_batch_norm_decay: 0.999,
            cluster_size: 128,
            hidden_size: 2048,
            groups: 8,
            expansion: 2,
            gating_reduction: 8,
            eigen_file: None,
            seg_num: 100,
            cluster_nums: vec![32, 32],
            fc1_size: 1024,
            fc2_size: 4096,
        }
    }
}
