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
    // Class prototypes are drawn from a fixed stream so train and test sets made with different
    // seeds share them (`--seed` varies the videos, `--pattern-seed` could vary the task).
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
    // Skewed class frequencies, like YouTube-8M's long tail.
    let weights: Vec<f64> = (0..cfg.num_classes)
        .map(|c| 1.0 / ((c + 1) as f64).sqrt())
        .collect();
    let wsum: f64 = weights.iter().sum();
    let pick_class = |rng: &mut Rng| -> usize {
        let mut x = rng.uniform() * wsum;
        for (c, w) in weights.iter().enumerate() {
            x -= w;
            if x <= 0.0 {
                return c;
            }
        }
        cfg.num_classes - 1
    };
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
            let nl = 1 + rng.below(cfg.max_labels.clamp(1, cfg.num_classes) as u64) as usize;
            let mut labels: Vec<i64> = Vec::new();
            while labels.len() < nl {
                let c = pick_class(&mut rng) as i64;
                if !labels.contains(&c) {
                    labels.push(c);
                }
            }
            labels.sort_unstable();
            // Lengths: mostly spread over [min, max]; a few 1-frame videos.
            let nf = if rng.below(16) == 0 {
                cfg.min_frames.max(1)
            } else {
                cfg.min_frames.max(1)
                    + rng.below(
                        (cfg.max_frames.max(cfg.min_frames.max(1)) - cfg.min_frames.max(1) + 1)
                            as u64,
                    ) as usize
            };
            let mut frames: Vec<Vec<u8>> = cfg
                .dims
                .iter()
                .map(|&d| Vec::with_capacity(nf * d))
                .collect();
            // Segment mode: which label (if any) each 5-frame segment shows; the first always
            // shows one, so every video has a positive segment to find.
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
                            protos[m][lab][j] as f64
                        } else {
                            0.0
                        };
                        frames[m].push(quantize(base + cfg.noise * rng.normal()));
                    }
                }
            }
            // Ratings: one of the video's labels, on up to RATED_PER_VIDEO distinct segments
            // (the 2019 validate set rates about 5 segments of one class per video).
            let (mut starts, mut ends, mut seg_labels, mut seg_scores) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            if cfg.segments {
                let rated = labels[rng.below(labels.len() as u64) as usize];
                let mut order: Vec<usize> = (0..seg_label.len()).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.below(i as u64 + 1) as usize);
                }
                let mut chosen: Vec<usize> = order.into_iter().take(RATED_PER_VIDEO).collect();
                chosen.sort_unstable();
                for s in chosen {
                    starts.push((s * SEGMENT_FRAMES) as i64);
                    ends.push((s * SEGMENT_FRAMES + SEGMENT_FRAMES) as i64);
                    seg_labels.push(rated);
                    seg_scores.push(if seg_label[s] == Some(rated as usize) {
                        1f32
                    } else {
                        0f32
                    });
                }
            }
            let label_feat = encode_feature(&EncFeature::Int64(&labels));
            let id_feat = encode_feature(&EncFeature::Bytes(vec![id.as_bytes()]));
            let mut ctx: Vec<(&str, Vec<u8>)> = vec![("id", id_feat)];
            if !cfg.no_labels {
                ctx.push(("labels", label_feat));
            }
            if cfg.segments {
                ctx.push((
                    "segment_start_times",
                    encode_feature(&EncFeature::Int64(&starts)),
                ));
                ctx.push((
                    "segment_end_times",
                    encode_feature(&EncFeature::Int64(&ends)),
                ));
                ctx.push((
                    "segment_labels",
                    encode_feature(&EncFeature::Int64(&seg_labels)),
                ));
                ctx.push((
                    "segment_scores",
                    encode_feature(&EncFeature::Float(&seg_scores)),
                ));
            }
            let payload = match cfg.level {
                Level::Frame => {
                    let lists: Vec<(&str, Vec<Vec<u8>>)> = cfg
                        .frame_names
                        .iter()
                        .zip(&cfg.dims)
                        .zip(&frames)
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
                        .zip(&frames)
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
            };
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
