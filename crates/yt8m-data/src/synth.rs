//! `yt8m synth`: learnable synthetic data in the official formats (frame-level
//! SequenceExample, video-level Example), deterministic per seed. Each class owns a prototype
//! per modality; a video's signal frames are a prototype of one of its labels plus noise, the
//! rest pure noise, so attention pooling has something to find. Lengths span 1 frame to
//! beyond `max_frames` (the reader truncates to 300, as the official one does).

use super::proto::{EncFeature, encode_example, encode_feature, encode_sequence_example};
use super::tfrecord::RecordWriter;
use super::video::{Level, dequantize};
use crate::error::DataError;
use crate::rng::Rng;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, serde::Serialize)]
pub struct SynthConfig {
    pub level: Level,
    pub num_videos: usize,
    pub num_shards: usize,
    pub num_classes: usize,
    pub dims: Vec<usize>,
    pub frame_names: Vec<String>,
    pub mean_names: Vec<String>,
    pub min_frames: usize,
    pub max_frames: usize,
    pub max_labels: usize,
    /// Share of frames that carry a label's pattern (the rest is noise).
    pub signal_fraction: f64,
    /// Noise standard deviation relative to the pattern amplitude.
    pub noise: f64,
    pub seed: u64,
    pub prefix: String,
    /// Write no `labels` key (test-split style).
    pub no_labels: bool,
    /// 2019 segment task: the class patterns come per 5-frame segment (each segment shows one
    /// of the video's labels, or only noise), and each video gets rated segments for one of
    /// its labels (`segment_start_times`, `segment_end_times`, `segment_labels`,
    /// `segment_scores`: 1 where the segment shows that label, 0 where it does not).
    pub segments: bool,
}

/// Frames per rated segment in the 2019 data (5 seconds at one frame per second).
pub const SEGMENT_FRAMES: usize = 5;
/// Rated segments per video at most (the 2019 validate set has about 5 per video).
const RATED_PER_VIDEO: usize = 5;

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            level: Level::Frame,
            num_videos: 512,
            num_shards: 4,
            num_classes: 20,
            dims: vec![1024, 128],
            frame_names: vec!["rgb".into(), "audio".into()],
            mean_names: vec!["mean_rgb".into(), "mean_audio".into()],
            min_frames: 1,
            max_frames: 320,
            max_labels: 3,
            signal_fraction: 0.5,
            noise: 0.6,
            seed: 0,
            prefix: "train".into(),
            no_labels: false,
            segments: false,
        }
    }
}

const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62(mut n: usize, width: usize) -> String {
    let mut s = vec![b'0'; width];
    for i in (0..width).rev() {
        s[i] = B62[n % 62];
        n /= 62;
    }
    String::from_utf8(s).unwrap()
}

/// Shard suffix as in the 2018 data: `aa`..`az`, `aA`..`aZ`, `a0`..`a9`, `ba`, ...
fn shard_suffix(shard: usize) -> String {
    let a = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    format!("{}{}", a[(shard / 62) % 62] as char, a[shard % 62] as char)
}

fn quantize(x: f64) -> u8 {
    ((x.clamp(-2.0, 2.0) + 2.0) * 255.0 / 4.0).round() as u8
}

/// Summary of what was written.
#[derive(Debug, serde::Serialize)]
pub struct SynthSummary {
    pub files: Vec<PathBuf>,
    pub videos: usize,
    pub frames: usize,
    pub bytes: u64,
}

/// Writes `cfg.num_shards` files `<prefix>NNNN.tfrecord` into `out`.
pub fn write_synthetic(out: &Path, cfg: &SynthConfig) -> Result<SynthSummary, DataError> {
    write_synthetic_with(out, cfg, &mut |_, _| {})
}

/// [`write_synthetic`], calling `progress(videos written, bytes written)` after each video
/// (a gigabyte takes minutes: the CLI logs progress from this).
pub fn write_synthetic_with(
    out: &Path,
    cfg: &SynthConfig,
    progress: &mut dyn FnMut(usize, u64),
) -> Result<SynthSummary, DataError> {
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let mut rng = Rng::new(cfg.seed);
    let classes = Classes::new(cfg);
    let shards = cfg.num_shards.max(1);
    let mut summary = SynthSummary {
        files: Vec::new(),
        videos: 0,
        frames: 0,
        bytes: 0,
    };
    let per_shard = cfg.num_videos.div_ceil(shards);
    let id_width = if per_shard <= 62 * 62 { 2 } else { 4 };
    let mut written = 0;
    for s in 0..shards {
        let path = out.join(format!("{}{:04}.tfrecord", cfg.prefix, s));
        let mut w = RecordWriter::create(&path)?;
        let n = per_shard.min(cfg.num_videos - written);
        for i in 0..n {
            let id = format!("{}{}", base62(i, id_width), shard_suffix(s));
            // The draws happen in this order (labels, length, frames, ratings): the same seed
            // writes the same bytes.
            let labels = classes.labels(cfg, &mut rng);
            let nf = num_frames(cfg, &mut rng);
            let (frames, seg_label) = classes.frames(cfg, &mut rng, nf, &labels);
            let ratings = if cfg.segments {
                ratings(&mut rng, &labels, &seg_label)
            } else {
                Ratings::default()
            };
            let payload = encode_video(cfg, &id, &labels, &frames, &ratings, nf);
            summary.bytes += payload.len() as u64 + 16;
            summary.frames += nf;
            w.write(&payload)?;
            progress(written + i + 1, summary.bytes);
        }
        w.finish()?;
        written += n;
        summary.files.push(path);
    }
    summary.videos = written;
    Ok(summary)
}

/// The classes' feature patterns and frequencies.
struct Classes {
    /// `[modality][class][dim]` in [-1, 1].
    protos: Vec<Vec<Vec<f32>>>,
    /// Skewed class frequencies, like YouTube-8M's long tail.
    weights: Vec<f64>,
    wsum: f64,
}

impl Classes {
    fn new(cfg: &SynthConfig) -> Self {
        // Class prototypes are drawn from a fixed stream so train and test sets made with
        // different seeds share them (`--seed` varies the videos, `--pattern-seed` could vary
        // the task).
        let mut proto_rng = Rng::new(0x5EED_0000 + cfg.num_classes as u64);
        let protos: Vec<Vec<Vec<f32>>> = cfg
            .dims
            .iter()
            .map(|&d| {
                (0..cfg.num_classes)
                    .map(|_| {
                        (0..d)
                            .map(|_| (proto_rng.uniform() * 2.0 - 1.0) as f32)
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let weights: Vec<f64> = (0..cfg.num_classes)
            .map(|c| 1.0 / ((c + 1) as f64).sqrt())
            .collect();
        let wsum = weights.iter().sum();
        Classes {
            protos,
            weights,
            wsum,
        }
    }

    fn pick(&self, rng: &mut Rng) -> usize {
        let mut x = rng.uniform() * self.wsum;
        for (c, w) in self.weights.iter().enumerate() {
            x -= w;
            if x <= 0.0 {
                return c;
            }
        }
        self.weights.len() - 1
    }

    /// 1 to `max_labels` distinct classes, sorted.
    fn labels(&self, cfg: &SynthConfig, rng: &mut Rng) -> Vec<i64> {
        let nl = 1 + rng.below(cfg.max_labels.clamp(1, cfg.num_classes) as u64) as usize;
        let mut labels: Vec<i64> = Vec::new();
        while labels.len() < nl {
            let c = self.pick(rng) as i64;
            if !labels.contains(&c) {
                labels.push(c);
            }
        }
        labels.sort_unstable();
        labels
    }

    /// `nf` quantized frames per modality (`[modality][nf * dim]`): a label's pattern plus
    /// noise where the frame carries signal, noise alone elsewhere. In segment mode also which
    /// label (if any) each 5-frame segment shows; the first always shows one, so every video
    /// has a positive segment to find.
    fn frames(
        &self,
        cfg: &SynthConfig,
        rng: &mut Rng,
        nf: usize,
        labels: &[i64],
    ) -> (Vec<Vec<u8>>, Vec<Option<usize>>) {
        let mut frames: Vec<Vec<u8>> = cfg
            .dims
            .iter()
            .map(|&d| Vec::with_capacity(nf * d))
            .collect();
        let seg_label: Vec<Option<usize>> = if cfg.segments {
            (0..nf.div_ceil(SEGMENT_FRAMES))
                .map(|s| {
                    (s == 0 || rng.uniform() < cfg.signal_fraction)
                        .then(|| labels[rng.below(labels.len() as u64) as usize] as usize)
                })
                .collect()
        } else {
            Vec::new()
        };
        for t in 0..nf {
            let (signal, lab) = if cfg.segments {
                match seg_label[t / SEGMENT_FRAMES] {
                    Some(l) => (true, l),
                    None => (false, 0),
                }
            } else {
                // The first frame always carries signal so 1-frame videos stay learnable.
                let signal = t == 0 || rng.uniform() < cfg.signal_fraction;
                (
                    signal,
                    labels[rng.below(labels.len() as u64) as usize] as usize,
                )
            };
            for (m, &d) in cfg.dims.iter().enumerate() {
                for j in 0..d {
                    let base = if signal {
                        self.protos[m][lab][j] as f64
                    } else {
                        0.0
                    };
                    frames[m].push(quantize(base + cfg.noise * rng.normal()));
                }
            }
        }
        (frames, seg_label)
    }
}

/// Lengths: mostly spread over [min, max]; a few 1-frame videos.
fn num_frames(cfg: &SynthConfig, rng: &mut Rng) -> usize {
    let min = cfg.min_frames.max(1);
    if rng.below(16) == 0 {
        min
    } else {
        min + rng.below((cfg.max_frames.max(min) - min + 1) as u64) as usize
    }
}

/// A video's 2019 segment ratings (segment mode).
#[derive(Default)]
struct Ratings {
    starts: Vec<i64>,
    ends: Vec<i64>,
    labels: Vec<i64>,
    scores: Vec<f32>,
}

/// One of the video's labels, rated on up to RATED_PER_VIDEO distinct segments (the 2019
/// validate set rates about 5 segments of one class per video): 1 where the segment shows it.
fn ratings(rng: &mut Rng, labels: &[i64], seg_label: &[Option<usize>]) -> Ratings {
    let mut r = Ratings::default();
    let rated = labels[rng.below(labels.len() as u64) as usize];
    let mut order: Vec<usize> = (0..seg_label.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut chosen: Vec<usize> = order.into_iter().take(RATED_PER_VIDEO).collect();
    chosen.sort_unstable();
    for s in chosen {
        r.starts.push((s * SEGMENT_FRAMES) as i64);
        r.ends.push((s * SEGMENT_FRAMES + SEGMENT_FRAMES) as i64);
        r.labels.push(rated);
        r.scores.push(if seg_label[s] == Some(rated as usize) {
            1f32
        } else {
            0f32
        });
    }
    r
}

/// The serialized record: a SequenceExample (frame level) or an Example with the frames'
/// dequantized means (video level).
fn encode_video(
    cfg: &SynthConfig,
    id: &str,
    labels: &[i64],
    frames: &[Vec<u8>],
    r: &Ratings,
    nf: usize,
) -> Vec<u8> {
    let label_feat = encode_feature(&EncFeature::Int64(labels));
    let id_feat = encode_feature(&EncFeature::Bytes(vec![id.as_bytes()]));
    let mut ctx: Vec<(&str, Vec<u8>)> = vec![("id", id_feat)];
    if !cfg.no_labels {
        ctx.push(("labels", label_feat));
    }
    if cfg.segments {
        ctx.push((
            "segment_start_times",
            encode_feature(&EncFeature::Int64(&r.starts)),
        ));
        ctx.push((
            "segment_end_times",
            encode_feature(&EncFeature::Int64(&r.ends)),
        ));
        ctx.push((
            "segment_labels",
            encode_feature(&EncFeature::Int64(&r.labels)),
        ));
        ctx.push((
            "segment_scores",
            encode_feature(&EncFeature::Float(&r.scores)),
        ));
    }
    match cfg.level {
        Level::Frame => {
            let lists: Vec<(&str, Vec<Vec<u8>>)> = cfg
                .frame_names
                .iter()
                .zip(&cfg.dims)
                .zip(frames)
                .map(|((name, &d), f)| {
                    (
                        name.as_str(),
                        f.chunks(d)
                            .map(|row| encode_feature(&EncFeature::Bytes(vec![row])))
                            .collect(),
                    )
                })
                .collect();
            encode_sequence_example(&ctx, &lists)
        }
        Level::Video => {
            // mean of the dequantized frames, in f32 as the official extractor does.
            let means: Vec<Vec<f32>> = cfg
                .dims
                .iter()
                .zip(frames)
                .map(|(&d, f)| {
                    let mut acc = vec![0f32; d];
                    for row in f.chunks(d) {
                        for (a, &q) in acc.iter_mut().zip(row) {
                            *a += dequantize(q);
                        }
                    }
                    acc.iter().map(|a| a / nf as f32).collect()
                })
                .collect();
            for (name, m) in cfg.mean_names.iter().zip(&means) {
                ctx.push((name.as_str(), encode_feature(&EncFeature::Float(m))));
            }
            encode_example(&ctx)
        }
    }
}
