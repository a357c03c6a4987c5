//! yt8m: AttentionLSTM video classifiers on YouTube-8M features — training, evaluation,
//! export and serving from one binary, with no Python or TensorFlow at run time.
//!
//! Modules: [`data`] (TFRecord / PaddleVideo pickle readers, batching, synthetic data),
//! [`metrics`] (official Hit@1 / PERR / GAP / mAP), [`evaluate`] (scoring predictions made
//! elsewhere).

/// Data readers (no libtorch): the `yt8m-data` crate.
pub use yt8m_data as data;
pub use yt8m_data::rng;
/// The official metrics (no libtorch): the `yt8m-metrics` crate.
pub use yt8m_metrics as metrics;

pub mod error;
pub mod evaluate;
pub mod extract;
pub mod threads;

pub use error::{Error, Result};
pub mod bundle;
pub mod checkpoint;
pub mod config;
pub mod configs;
pub mod convert;
pub mod distributed;
pub mod infer;
pub mod kinds;
pub mod model;
pub mod onnx;
pub mod optim;
pub mod plot;
pub mod predict;
pub mod runtime;
pub mod segments;
pub mod serve;
pub mod tensorboard;
pub mod train;
