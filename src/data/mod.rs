//! Reading YouTube-8M data: TFRecord framing, Example/SequenceExample decoding, PaddleVideo
//! pickles, batching with background readers, synthetic data.

pub mod batch;
pub mod inspect;
pub mod npy;
pub mod pickle;
pub mod proto;
pub mod sources;
pub mod synth;
pub mod tfrecord;
pub mod video;

pub use video::{FeatureSpec, Level, Video, VideoFeatures, dequantize};
