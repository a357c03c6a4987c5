//! yt8m: AttentionLSTM video classifiers on YouTube-8M features — training, evaluation,
//! export and serving from one binary, with no Python or TensorFlow at run time.
//!
//! Modules: [`data`] (TFRecord / PaddleVideo pickle readers, batching, synthetic data),
//! [`metrics`] (official Hit@1 / PERR / GAP / mAP), [`evaluate`] (scoring predictions made
//! elsewhere).

pub mod data;
pub mod error;
pub mod evaluate;
pub mod metrics;
pub mod rng;
pub mod threads;

pub use error::{Error, Result};
pub mod bench;
pub mod bundle;
pub mod config;
pub mod convert;
pub mod distributed;
pub mod infer;
pub mod model;
pub mod onnx;
pub mod optim;
pub mod predict;
pub mod runtime;
pub mod train;
