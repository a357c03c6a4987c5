//! YouTube-8M features from raw video (issue #30), as Google's starter code makes them
//! (google/youtube-8m `feature_extractor/`): frames sampled as `frame_iterator` samples them
//! ([`video`]), the 2015 Inception-v3 graph run without TensorFlow up to `pool_3`
//! ([`tfgraph`]), the published PCA with whitening and the 8-bit quantization ([`pca`]), and
//! records in the official frame-level (`SequenceExample`) or video-level (`Example`) layout
//! ([`write`]). Audio: VGGish embeddings as AudioSet and MediaPipe's YouTube-8M graph make
//! them ([`audio`], [`vggish`], [`tfckpt`]) when the VGGish files are there, else as
//! `extract_tfrecords_main.py` writes it by default (`insert_zero_audio_features`): 128 zero
//! bytes per frame and a zero `mean_audio`.

pub mod archive;
pub mod audio;
mod kernels;
pub mod pca;
pub mod tfckpt;
pub mod tfgraph;
pub mod vggish;
pub mod video;
pub mod write;

use std::path::{Path, PathBuf};

use crate::error::ErrorKind;
use tch::{Kind, Tensor};

use pca::{PCA_DIMS, Pca, PcaError};
use tfgraph::{GraphError, TfGraph};
use video::{SampledFrames, Sampling, VideoError};

/// The graph file's name inside `inception-2015-12-05.tgz`.
pub const GRAPH_FILE: &str = "classify_image_graph_def.pb";
/// The published archive holding it.
pub const GRAPH_TGZ: &str = "inception-2015-12-05.tgz";
/// Where the official graph takes a decoded frame (uint8 `[H, W, 3]`, RGB).
pub const FEED: &str = "DecodeJpeg:0";
/// The activations the official extractor keeps (`[1, 2048]`).
pub const FETCH: &str = "pool_3/_reshape:0";
/// Decoded bytes per Inception call at most (eight 1080p frames; an 8K frame goes alone).
const MAX_BATCH_BYTES: usize = 8 * 1920 * 1080 * 3;
/// Audio width of YouTube-8M records.
pub const AUDIO_DIMS: usize = 128;

/// Why extraction failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Pca(#[from] PcaError),
    #[error(transparent)]
    Video(#[from] VideoError),
    /// A file or directory given to extraction (the extractor's files, the inputs, the output
    /// directory), with what kind of failure it is.
    #[error("{path}: {message}")]
    Files {
        kind: ErrorKind,
        path: PathBuf,
        message: String,
    },
    #[error(transparent)]
    Data(#[from] yt8m_data::DataError),
    /// Writing the output.
    #[error(transparent)]
    Output(#[from] crate::Error),
}

impl ExtractError {
    /// Whose fault it is: a missing or undecodable video is the input's (`NotFound`,
    /// `CorruptData`), a missing FFmpeg or a failed write is not (`Internal`), so
    /// `--skip-bad-videos` skips the first and stops on the second, and the server answers 400
    /// or 500.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ExtractError::Graph(_) => ErrorKind::CorruptData,
            ExtractError::Pca(e) => e.kind,
            ExtractError::Video(VideoError::NoTool { .. }) => ErrorKind::Internal,
            ExtractError::Video(VideoError::Video { .. }) => ErrorKind::CorruptData,
            ExtractError::Files { kind, .. } => *kind,
            ExtractError::Data(e) => ErrorKind::of_data(e),
            ExtractError::Output(e) => e.kind(),
        }
    }

    /// Whether the video itself is at fault (missing, damaged, not a video): what
    /// `--skip-bad-videos` may skip.
    pub fn is_bad_video(&self) -> bool {
        matches!(self.kind(), ErrorKind::NotFound | ErrorKind::CorruptData)
    }
}

/// The library error of the same kind and message, so callers (the server, the Python
/// engine, the CLI) branch on extraction failures as on any other.
impl From<ExtractError> for crate::Error {
    fn from(e: ExtractError) -> Self {
        match e {
            ExtractError::Data(d) => crate::Error::Data(d),
            ExtractError::Output(e) => e,
            e => crate::Error::of_kind(e.kind(), e.to_string()),
        }
    }
}

/// The extractor's files, as the official code lays them out in its `model_dir` (`~/yt8m` by
/// default): `classify_image_graph_def.pb` from inception-2015-12-05.tgz and `mean.npy`,
/// `eigenvals.npy`, `eigenvecs.npy` from yt8m_pca.tgz.
pub fn default_dir() -> Option<PathBuf> {
    std::env::var_os("YT8M_EXTRACTOR_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join("yt8m")))
}

/// Where the audio features come from (a closed set).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AudioSource {
    /// VGGish when `vggish_model.ckpt` and `vggish_pca_params.npz` are in the extractor
    /// directory, else zeros.
    #[default]
    Auto,
    /// VGGish; its files must be there.
    Vggish,
    /// 128 zero bytes per frame, as the official extractor writes by default.
    Zeros,
}

/// Frames of one size (the first's) as the graph's `[n, h, w, 3]` uint8 feed.
pub fn frames_tensor(frames: &[video::Frame]) -> Tensor {
    let (h, w) = frames.first().map_or((0, 0), |f| (f.height, f.width));
    let mut bytes = Vec::with_capacity(frames.len() * h * w * 3);
    for f in frames {
        bytes.extend_from_slice(&f.rgb);
    }
    Tensor::from_slice(&bytes).reshape([frames.len() as i64, h as i64, w as i64, 3])
}

/// The feature extractor: Inception's pool_3 then the PCA for RGB; VGGish for audio.
pub struct Extractor {
    graph: TfGraph,
    pca: Pca,
    /// Frames per graph call.
    batch: usize,
    vggish: Option<vggish::Vggish>,
}

/// One video's audio features (VGGish).
pub struct AudioFeatures {
    /// k × 128 bytes: one example per second of audio, k ≤ the RGB frames.
    pub bytes: Vec<u8>,
    /// The mean of the PCA'd (unquantized) features, as `mean_rgb` is of RGB's.
    pub mean: Vec<f32>,
    pub frames: usize,
}

/// One video's features, before quantization.
pub struct VideoFeatures {
    /// `[frames, 1024]` row-major: PCA-whitened RGB features (float32).
    pub rgb: Vec<f32>,
    pub frames: usize,
    /// OpenCV's POS_MSEC of each frame taken.
    pub frame_time_ms: Vec<f64>,
    /// None: zero audio (no VGGish files, `--audio zeros`, or a video without sound).
    pub audio: Option<AudioFeatures>,
}

impl VideoFeatures {
    /// The official `mean_rgb` (float32 running sum / frames).
    pub fn mean_rgb(&self) -> Vec<f32> {
        pca::mean_features(&self.rgb, PCA_DIMS)
    }

    /// `mean_audio`: VGGish's, or zeros.
    pub fn mean_audio(&self) -> Vec<f32> {
        match &self.audio {
            Some(a) => a.mean.clone(),
            None => vec![0.0; AUDIO_DIMS],
        }
    }

    /// The audio list: VGGish's examples, or one zero frame per RGB frame (the official
    /// default).
    pub fn audio_frames(&self) -> Vec<Vec<u8>> {
        match &self.audio {
            Some(a) => a.bytes.chunks(AUDIO_DIMS).map(<[u8]>::to_vec).collect(),
            None => vec![vec![0u8; AUDIO_DIMS]; self.frames],
        }
    }

    /// One quantized frame (1024 bytes).
    pub fn rgb_bytes(&self, frame: usize) -> Vec<u8> {
        pca::quantize(&self.rgb[frame * PCA_DIMS..(frame + 1) * PCA_DIMS])
    }

    /// The video as the reader decodes the record `yt8m extract` writes for it (no labels), for
    /// a model reading `spec`: what predicting on the extracted shards would see.
    pub fn to_video(
        &self,
        id: String,
        spec: &yt8m_data::FeatureSpec,
    ) -> Result<yt8m_data::video::Video, ExtractError> {
        use yt8m_data::video::{Level, Video, VideoFeatures as F};
        if spec.dims != [PCA_DIMS, AUDIO_DIMS] {
            return Err(ExtractError::Files {
                kind: ErrorKind::InvalidInput,
                path: PathBuf::from(&id),
                message: format!(
                    "the model reads features of widths {:?}; extracted features are rgb 1024 and \
                     audio 128 (the YouTube-8M layout)",
                    spec.dims
                ),
            });
        }
        let (features, num_frames) = match spec.level {
            Level::Video => (F::Mean(vec![self.mean_rgb(), self.mean_audio()]), 1),
            Level::Frame => {
                let n = self.frames.min(spec.max_frames.max(1));
                let rgb = (0..n).flat_map(|i| self.rgb_bytes(i)).collect();
                let audio = match &self.audio {
                    Some(a) => a.bytes[..a.frames.min(n) * AUDIO_DIMS].to_vec(),
                    None => vec![0u8; n * AUDIO_DIMS],
                };
                (F::Frames(vec![rgb, audio]), n)
            }
        };
        Ok(Video {
            id,
            labels: Vec::new(),
            has_labels: false,
            features,
            num_frames,
            total_frames: self.frames,
            segments: None,
        })
    }
}

/// The Inception graph from `dir`: `classify_image_graph_def.pb`, else read out of the archive
/// as distributed; with the path to name in errors.
fn load_graph(dir: &Path) -> Result<(TfGraph, PathBuf), ExtractError> {
    let mut graph_path = dir.join(GRAPH_FILE);
    let tgz = dir.join(GRAPH_TGZ);
    let graph = if graph_path.is_file() {
        TfGraph::load(&graph_path)?
    } else if tgz.is_file() {
        // The archive as distributed: the graph is read from it.
        let members =
            archive::read_members(&tgz, &[GRAPH_FILE]).map_err(|m| ExtractError::Files {
                kind: ErrorKind::CorruptData,
                path: tgz.clone(),
                message: m,
            })?;
        let Some((_, bytes)) = members.into_iter().next() else {
            return Err(ExtractError::Files {
                kind: ErrorKind::CorruptData,
                path: tgz,
                message: format!("holds no {GRAPH_FILE}: not the published archive"),
            });
        };
        graph_path = PathBuf::from(format!("{}:{GRAPH_FILE}", tgz.display()));
        TfGraph::from_bytes(&bytes, &graph_path)?
    } else {
        return Err(ExtractError::Files {
            kind: ErrorKind::NotFound,
            path: graph_path,
            message: format!(
                "missing: put {GRAPH_TGZ} (from \
                 http://download.tensorflow.org/models/image/imagenet/{GRAPH_TGZ}) or the \
                 {GRAPH_FILE} it holds here (the official extractor's ~/yt8m has both once \
                 it ran)"
            ),
        });
    };
    Ok((graph, graph_path))
}

/// VGGish from `dir` when `audio` asks for it (or finds its files, for `auto`).
fn load_vggish(dir: &Path, audio: AudioSource) -> Result<Option<vggish::Vggish>, ExtractError> {
    Ok(match audio {
        AudioSource::Zeros => None,
        AudioSource::Auto if !vggish::Vggish::present(dir) => None,
        AudioSource::Auto | AudioSource::Vggish => {
            for f in [vggish::CHECKPOINT_FILE, vggish::PCA_FILE] {
                if !dir.join(f).is_file() {
                    return Err(ExtractError::Files {
                        kind: ErrorKind::NotFound,
                        path: dir.join(f),
                        message: format!(
                            "missing: VGGish audio needs {} and {} (from \
                             https://storage.googleapis.com/audioset/); or give --audio zeros",
                            vggish::CHECKPOINT_FILE,
                            vggish::PCA_FILE
                        ),
                    });
                }
            }
            Some(vggish::Vggish::load(dir)?)
        }
    })
}

impl Extractor {
    /// Loads the graph and the PCA from `dir` and checks they fit together.
    pub fn load(dir: &Path, batch: usize) -> Result<Extractor, ExtractError> {
        Self::load_with(dir, batch, AudioSource::Zeros)
    }

    /// [`Extractor::load`] with audio features from `audio`.
    pub fn load_with(
        dir: &Path,
        batch: usize,
        audio: AudioSource,
    ) -> Result<Extractor, ExtractError> {
        if !dir.is_dir() {
            return Err(ExtractError::Files {
                kind: ErrorKind::NotFound,
                path: dir.to_path_buf(),
                message: format!(
                    "not a directory: give the directory holding {GRAPH_FILE} (from \
                     http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz) \
                     and mean.npy, eigenvals.npy, eigenvecs.npy (from http://data.yt8m.org/yt8m_pca.tgz) \
                     with --extractor or YT8M_EXTRACTOR_DIR (the official extractor's ~/yt8m works as is)"
                ),
            });
        }
        let (graph, graph_path) = load_graph(dir)?;
        let pca = Pca::load(dir)?;
        for n in [FEED, FETCH] {
            let node = n.split(':').next().unwrap_or(n);
            if !graph.has_node(node) {
                return Err(ExtractError::Files {
                    kind: ErrorKind::CorruptData,
                    path: graph_path,
                    message: format!(
                        "has no node '{node}': it is not the 2015 Inception-v3 graph the \
                         YouTube-8M features come from"
                    ),
                });
            }
        }
        let vggish = load_vggish(dir, audio)?;
        Ok(Extractor {
            graph,
            pca,
            batch: batch.max(1),
            vggish,
        })
    }

    /// Whether audio features are VGGish's (else zeros).
    pub fn has_audio(&self) -> bool {
        self.vggish.is_some()
    }

    /// VGGish features of `path`'s first audio stream for `frames` RGB frames (one example per
    /// second from 0); None without VGGish or without an audio stream.
    fn audio(&self, path: &Path, frames: usize) -> Result<Option<AudioFeatures>, ExtractError> {
        let Some(v) = &self.vggish else {
            return Ok(None);
        };
        let Some(samples) = audio::decode_audio(path, frames as f64 + 1.0)? else {
            tracing::info!(
                "{}: no audio stream; its audio features are zeros",
                path.display()
            );
            return Ok(None);
        };
        let ex = audio::examples(&audio::log_mel(&samples), frames);
        let k = ex.size()[0] as usize;
        if k == 0 {
            return Ok(None);
        }
        let pca = tch::no_grad(|| v.pca(&v.embed(&ex)));
        let mean: Vec<f32> =
            Vec::try_from(&pca.mean_dim(0, false, Kind::Double).to_kind(Kind::Float))
                .unwrap_or_default();
        Ok(Some(AudioFeatures {
            bytes: vggish::quantize(&pca),
            mean,
            frames: k,
        }))
    }

    /// Runs Inception on `frames` (`[n, h, w, 3]` uint8, one size), telling `on_node` each
    /// node's op type and time: the breakdown `yt8m bench extract` prints.
    pub fn time_graph(
        &self,
        frames: &Tensor,
        on_node: &mut dyn FnMut(&str, std::time::Duration),
    ) -> Result<(), ExtractError> {
        let _ = tch::no_grad(|| self.graph.run_timed(FEED, frames, FETCH, Some(on_node)))?;
        Ok(())
    }

    /// `[n, h, w, 3]` uint8 RGB frames (one size) → `[n, 1024]` float32 PCA features.
    pub fn rgb_features(&self, frames: &Tensor) -> Result<Tensor, ExtractError> {
        let pool = tch::no_grad(|| self.graph.run(FEED, frames, FETCH))?;
        let n = frames.size()[0];
        let pool = pool.reshape([n, -1]).to_kind(Kind::Float);
        let width = pool.size()[1] as usize;
        if width != self.pca.input_dims() {
            return Err(ExtractError::Files {
                kind: ErrorKind::CorruptData,
                path: self.pca.dir().join("mean.npy"),
                message: format!(
                    "the PCA takes {}-d features but the graph's {FETCH} gives {width}: the \
                     graph and the PCA files do not belong together",
                    self.pca.input_dims()
                ),
            });
        }
        Ok(tch::no_grad(|| self.pca.apply(&pool)))
    }

    /// Samples `path` as the official extractor does and computes each frame's features;
    /// `on_frame` is told after each batch (frames done, frames in all).
    pub fn video(
        &self,
        path: &Path,
        sampling: &Sampling,
        on_frames: &mut dyn FnMut(usize, usize),
    ) -> Result<VideoFeatures, ExtractError> {
        let mut src = SampledFrames::open(path, sampling)?;
        // The frame count is known once FFmpeg has decoded to the last one: the bound is shown.
        let total = sampling.max_frames;
        let mut out = VideoFeatures {
            rgb: Vec::with_capacity(64 * PCA_DIMS),
            frames: 0,
            frame_time_ms: Vec::with_capacity(64),
            audio: None,
        };
        let mut pending: Vec<video::Frame> = Vec::new();
        // Frames are pulled from FFmpeg on their own thread, two batches ahead: otherwise its
        // pipe (one frame deep) fills while a batch computes and decoding stops with it.
        std::thread::scope(|scope| -> Result<(), ExtractError> {
            let (tx, rx) = std::sync::mpsc::sync_channel(2 * self.batch);
            scope.spawn(move || {
                loop {
                    let f = src.next_frame();
                    let end = !matches!(f, Ok(Some(_)));
                    if tx.send(f).is_err() || end {
                        break;
                    }
                }
            });
            loop {
                let f = rx.recv().unwrap_or(Ok(None))?;
                // A batch holds frames of one size: flush on a size change, when full, or at
                // the end.
                // Large frames (4K, 8K) go in smaller batches: the float copy of a batch is 4x
                // its bytes.
                let bytes: usize = pending.iter().map(|p| p.rgb.len()).sum();
                let flush = match (&f, pending.first()) {
                    (Some(f), Some(p)) => {
                        f.height != p.height
                            || f.width != p.width
                            || bytes + f.rgb.len() > MAX_BATCH_BYTES
                    }
                    (None, Some(_)) => true,
                    _ => false,
                } || pending.len() >= self.batch;
                if flush {
                    self.run_batch(path, &mut pending, &mut out)?;
                    on_frames(out.frames, total);
                }
                match f {
                    Some(f) => pending.push(f),
                    None => return Ok(()),
                }
            }
        })?;
        if out.frames == 0 {
            return Err(VideoError::Video {
                path: path.to_path_buf(),
                message: "no frame could be taken from it".into(),
            }
            .into());
        }
        out.audio = self.audio(path, out.frames)?;
        Ok(out)
    }

    fn run_batch(
        &self,
        path: &Path,
        pending: &mut Vec<video::Frame>,
        out: &mut VideoFeatures,
    ) -> Result<(), ExtractError> {
        if pending.is_empty() {
            return Ok(());
        }
        let feats = self.rgb_features(&frames_tensor(pending))?;
        let v: Vec<f32> = Vec::try_from(&feats.reshape([-1])).map_err(|e| ExtractError::Files {
            kind: ErrorKind::Internal,
            path: path.to_path_buf(),
            message: format!("reading features back: {e}"),
        })?;
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(VideoError::Video {
                path: path.to_path_buf(),
                message: format!(
                    "the frame at {} ms gave a non-finite feature (the official quantize would fail too)",
                    pending[i / PCA_DIMS].time_ms
                ),
            }
            .into());
        }
        out.rgb.extend_from_slice(&v);
        for f in pending.drain(..) {
            out.frame_time_ms.push(f.time_ms);
            out.frames += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod kind_tests {
    use super::*;

    /// Missing extractor files are `NotFound`, files that are not what they claim
    /// `CorruptData`, and the library error keeps the kind (the server's 400 vs 500, the
    /// Python exception class, `--skip-bad-videos`).
    #[test]
    fn extraction_failures_say_whose_fault_they_are() {
        let d = std::env::temp_dir().join(format!("yt8m-extract-kinds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let load = |dir: &Path| {
            Extractor::load_with(dir, 8, AudioSource::Zeros)
                .err()
                .unwrap()
        };
        let e = load(&d.join("nowhere"));
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        std::fs::create_dir_all(&d).unwrap();
        let e = load(&d);
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains(GRAPH_FILE), "{e}");
        let lib = crate::Error::from(e);
        assert_eq!(lib.kind(), ErrorKind::NotFound);
        assert!(lib.to_string().contains(GRAPH_FILE), "{lib}");
        std::fs::write(d.join(GRAPH_FILE), b"\xff\xff\xff not a GraphDef").unwrap();
        let e = load(&d);
        assert_eq!(e.kind(), ErrorKind::CorruptData, "{e}");
        let lib = crate::Error::from(e);
        assert_eq!(lib.kind(), ErrorKind::CorruptData, "{lib}");
        assert!(lib.to_string().contains(GRAPH_FILE), "{lib}");
        let no_tool = ExtractError::Video(VideoError::NoTool {
            tool: "ffmpeg",
            err: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert!(!no_tool.is_bad_video());
        assert_eq!(crate::Error::from(no_tool).kind(), ErrorKind::Internal);
        let broken = ExtractError::Video(VideoError::Video {
            path: d.join("a.mp4"),
            message: "FFmpeg cannot read it".into(),
        });
        assert!(broken.is_bad_video());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
