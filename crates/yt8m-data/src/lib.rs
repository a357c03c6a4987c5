//! yt8m-data: reading YouTube-8M data without TensorFlow or libtorch — TFRecord framing with
//! both CRCs, Example/SequenceExample decoding, PaddleVideo pickles through a bounded pickle VM,
//! `.npy`/`.npz` arrays, batching with background readers, `inspect`, synthetic data.
//!
//! Every reader treats its bytes as hostile (see docs/reliability.md): errors name the file,
//! record, byte offset, video and key ([`error::DataError`]), nothing allocates more than the
//! input can hold, and nothing recurses without a bound.

pub mod batch;
pub mod error;
pub mod files;
pub mod inspect;
pub mod loader;
pub mod mapguard;
pub mod npy;
pub mod paddle_pickle;
pub mod paths;
pub mod pickle;
pub mod proto;
pub mod rng;
pub mod sources;
pub mod stream;
pub mod synth;
pub mod tfrecord;
pub mod video;

pub use error::{DataError, DataErrorKind, Location};
pub use video::{FeatureSpec, Level, Video, VideoFeatures, dequantize};

/// Cores in this process's affinity mask (falls back to 1).
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
