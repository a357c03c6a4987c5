//! `yt8m predict`: top-k classes for videos from TFRecord shards, PaddleVideo pickles or
//! `.npy` arrays, with a bundle made by `yt8m export`.

use crate::bundle::Bundle;
use crate::data::batch::{Batch, length_buckets};
use crate::data::sources::{expand_paths, videos};
use crate::data::{FeatureSpec, Level, Video, VideoFeatures};
use crate::error::{Error, Result};
use crate::model::batch_inputs;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable table.
    Table,
    /// One JSON object per video.
    Jsonl,
    /// Kaggle submission CSV (VideoId,LabelConfidencePairs).
    Kaggle,
    /// PaddleVideo's tools/predict.py printout.
    Paddle,
    /// Every score `predictions` [N, C] float32 (per --score), `ids` [N] (numpy strings) and,
    /// when every video has labels, `labels` [N, C] uint8, as an .npz (needs --out):
    /// `yt8m evaluate --scores FILE.npz` scores it, numpy.load reads it.
    Npz,
    /// With --segments: the 2019 Kaggle submission (Class,Segments), each class's best
    /// segments `video:start` by descending score, as the starter's
    /// `inference.py --segment_labels` writes it.
    KaggleSegments,
}

/// `predict --segments`: score every `length`-frame segment of each video instead of the video.
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    /// Frames per segment (the 2019 task: 5).
    pub length: usize,
    /// `--format kaggle-segments`: segments kept per class.
    pub max_per_class: usize,
    /// Classes that may be ranked (`[classes]`, true = allowed; the starter's
    /// `segment_label_ids.csv` whitelist); None = all.
    pub classes: Option<Vec<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoreFn {
    /// Independent per-class probabilities (what the model is trained for).
    Sigmoid,
    /// Softmax over classes (PaddleVideo's predict.py).
    Softmax,
    /// The raw logits.
    Logits,
}

/// Default `--bucket-window`: batches per length-sorted window (8 × 64 full-length frame-level
/// videos hold ~180 MB of uint8 features).
pub const DEFAULT_BUCKET_WINDOW: usize = 8;

pub struct PredictOptions {
    pub top_k: usize,
    pub batch_size: usize,
    /// Windows of this many batches are sorted by length before batching (output order kept).
    pub bucket_window: usize,
    pub format: Format,
    pub score: ScoreFn,
    /// Print each video's true labels too (when its record has them).
    pub show_labels: bool,
    pub skip_corrupt: bool,
    /// Score segments instead of whole videos (rows are segments with ids `video:start`).
    pub segments: Option<SegmentOptions>,
    /// Raw video inputs (.mp4, .mkv, ...): their features are extracted first, as
    /// `yt8m extract` writes them.
    pub video: VideoOptions,
}

/// How raw video inputs become features ([`crate::extract`]).
#[derive(Debug, Clone, Default)]
pub struct VideoOptions {
    /// The extractor files' directory; None: `YT8M_EXTRACTOR_DIR`, else `~/yt8m`.
    pub extractor: Option<PathBuf>,
    pub sampling: crate::extract::video::Sampling,
    pub audio: crate::extract::AudioSource,
}

#[derive(Debug, Default)]
pub struct PredictStats {
    pub videos: usize,
    pub skipped_zero_frames: usize,
    pub skipped_records: usize,
    /// Videos whose id was seen before in this run (each is predicted and printed again).
    pub duplicate_ids: usize,
    /// With --segments: the segments scored (`videos` counts the videos they came from).
    pub segments: usize,
    seen: std::collections::HashSet<String>,
}

/// Reads one `.npy`: `[T, ΣD]` frames (uint8 quantized or float dequantized; rgb then audio
/// columns, the official reader's layout) for frame-level models, `[ΣD]` / `[1, ΣD]` for
/// video-level ones.
pub fn read_npy_video(path: &Path, spec: &FeatureSpec) -> Result<Video> {
    let a = crate::data::npy::read_npy(path)?;
    let total: usize = spec.dims.iter().sum();
    let size = a.shape.clone();
    let width = *size.last().unwrap_or(&0);
    let id = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dims_text = spec
        .dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    if size.is_empty() || size.len() > 2 || width != total {
        return Err(Error::Invalid(format!(
            "{}: array of shape {size:?}; the model expects [frames, {total}] ({dims_text}: {} columns side by side){}",
            path.display(),
            spec.frame_names.join(", "),
            if spec.level == Level::Video {
                format!(" or [{total}] for video-level features")
            } else {
                String::new()
            }
        )));
    }
    if let Some((i, x)) = a.first_non_finite() {
        return Err(Error::Invalid(format!(
            "{}: frame {} column {} is {x}: features must be finite\n  hint: fix or drop this video",
            path.display(),
            i / total,
            i % total
        )));
    }
    let rows = if size.len() == 2 { size[0] } else { 1 };
    let keep = rows.min(spec.max_frames);
    let features = match (spec.level, a.dtype) {
        (Level::Frame, crate::data::npy::NpyDType::U8) => {
            VideoFeatures::Frames(split_columns(&a.data, &spec.dims, keep))
        }
        (level, _) => {
            let flat = a.to_f32();
            if let Some(i) = flat.iter().position(|x| !x.is_finite()) {
                return Err(Error::Invalid(format!(
                    "{}: frame {} column {} does not fit in float32 ({})",
                    path.display(),
                    i / total,
                    i % total,
                    a.to_f64()[i]
                )));
            }
            if level == Level::Video {
                if rows != 1 {
                    return Err(Error::Invalid(format!(
                        "{}: video-level models take one row [{total}], got {rows} rows",
                        path.display()
                    )));
                }
                VideoFeatures::Mean(split_columns(&flat, &spec.dims, 1))
            } else {
                VideoFeatures::FloatFrames(split_columns(&flat, &spec.dims, keep))
            }
        }
    };
    let num_frames = if spec.level == Level::Video { 1 } else { keep };
    Ok(Video {
        id,
        labels: vec![],
        has_labels: false,
        features,
        num_frames,
        total_frames: rows,
        segments: None,
    })
}

/// `[rows, ΣD]` row-major → one `[rows, D_m]` block per modality (first `rows` rows).
fn split_columns<T: Copy>(flat: &[T], dims: &[usize], rows: usize) -> Vec<Vec<T>> {
    let total: usize = dims.iter().sum();
    let mut off = 0;
    dims.iter()
        .map(|&d| {
            let mut v = Vec::with_capacity(rows * d);
            for r in 0..rows {
                v.extend_from_slice(&flat[r * total + off..r * total + off + d]);
            }
            off += d;
            v
        })
        .collect()
}

struct Pending {
    videos: Vec<Video>,
    sources: Vec<String>,
    /// With --segments: each row's (video index in the ranking, start frame).
    segs: Vec<(u32, u32)>,
}

/// Where rows go besides the text output: the npz rows or the segment ranking.
#[derive(Default)]
struct Sinks {
    npz: Option<NpzRows>,
    ranking: Option<crate::segments::SegmentRanking>,
}

/// `--format npz`: every row, in input order.
#[derive(Default)]
struct NpzRows {
    ids: Vec<String>,
    scores: Vec<f32>,
    labels: Vec<u8>,
    /// False once a video without (usable) labels was seen: no `labels` array then.
    all_labelled: bool,
}

/// Sigmoid probabilities `[videos][classes]` of `videos`, in their order, computed on
/// length-sorted batches of at most `batch_size` as `predict` does (so a server and `predict`
/// give the same numbers).
pub fn probabilities(b: &Bundle, videos: &[Video], batch_size: usize) -> Result<Vec<Vec<f32>>> {
    probabilities_padded(b, videos, batch_size, 1)
}

/// As [`probabilities`], each frame-level call padded to a multiple of `frames` frames
/// ([`Batch::from_indices_padded`]; the same answers).
pub fn probabilities_padded(
    b: &Bundle,
    videos: &[Video],
    batch_size: usize,
    frames: usize,
) -> Result<Vec<Vec<f32>>> {
    let spec = b.config.feature_spec();
    let c = b.manifest.num_classes;
    let lengths: Vec<usize> = videos.iter().map(|v| v.num_frames).collect();
    let mut out: Vec<Vec<f32>> = vec![Vec::new(); videos.len()];
    for group in length_buckets(&lengths, batch_size.max(1), DEFAULT_BUCKET_WINDOW) {
        let batch = Batch::from_indices_padded(videos, &group, &spec, frames);
        let probs = tch::no_grad(|| {
            let inp = batch_inputs(&batch, b.model.device(), b.model.kind);
            crate::model::widen(b.model.forward(&inp, false))
                .sigmoid()
                .to_kind(tch::Kind::Float)
                .to_device(tch::Device::Cpu)
        });
        let mut all = vec![0f32; probs.numel()];
        probs.contiguous().copy_data(&mut all, probs.numel());
        for (r, &i) in group.iter().enumerate() {
            out[i] = all[r * c..(r + 1) * c].to_vec();
        }
    }
    Ok(out)
}

fn flush(
    b: &Bundle,
    p: &mut Pending,
    opt: &PredictOptions,
    out: &mut dyn Write,
    stats: &mut PredictStats,
    sinks: &mut Sinks,
) -> Result<()> {
    let mut npz = sinks.npz.as_mut();
    let mut ranking = sinks.ranking.as_mut();
    if p.videos.is_empty() {
        return Ok(());
    }
    crate::threads::adapt_torch_threads();
    let c = b.manifest.num_classes;
    let k = opt.top_k.clamp(1, c);
    // The segment whitelist multiplies the scores before the top k, as inference.py's
    // format_lines does (`video_prediction *= whitelisted_cls_mask`); the ranking applies it
    // itself (`SegmentRanking::add_scores`).
    let class_mask = opt
        .segments
        .as_ref()
        .and_then(|s| s.classes.as_ref())
        .filter(|_| ranking.is_none())
        .map(|m| {
            let m: Vec<f32> = m.iter().map(|&a| if a { 1.0 } else { 0.0 }).collect();
            tch::Tensor::from_slice(&m)
        });
    // Every score of every row: for npz output and for the segment ranking.
    let keep_all = npz.is_some() || ranking.is_some();
    let (top, full) = score_rows(b, &p.videos, opt, k, keep_all, class_mask.as_ref());
    if let Some(n) = npz.as_deref_mut() {
        for (i, video) in p.videos.iter().enumerate() {
            n.ids.push(video.id.clone());
            n.scores.extend_from_slice(&full[i]);
            let mut row = vec![0u8; c];
            for &l in &video.labels {
                row[l as usize] = 1;
            }
            n.labels.extend(row);
            n.all_labelled &= video.has_labels;
        }
        count_rows(stats, opt, p.videos.len());
        p.clear();
        return Ok(());
    }
    if let Some(r) = ranking.as_deref_mut() {
        let allowed = opt.segments.as_ref().and_then(|s| s.classes.as_deref());
        for (i, row) in full.iter().enumerate() {
            let (video, start) = p.segs[i];
            r.add_scores(video, start, row, opt.top_k, allowed);
        }
        count_rows(stats, opt, p.videos.len());
        p.clear();
        return Ok(());
    }
    for (i, video) in p.videos.iter().enumerate() {
        write_row(out, b, opt, k, video, &p.sources[i], &top[i])?;
    }
    count_rows(stats, opt, p.videos.len());
    p.clear();
    Ok(())
}

/// The scores of `videos` in length-sorted batches, back in input order: each row's top `k`
/// (class, score) pairs, or with `keep_all` every score of each row (npz output, the segment
/// ranking) and no top k. `class_mask` multiplies the scores first.
#[allow(clippy::type_complexity)]
fn score_rows(
    b: &Bundle,
    videos: &[Video],
    opt: &PredictOptions,
    k: usize,
    keep_all: bool,
    class_mask: Option<&tch::Tensor>,
) -> (Vec<Vec<(usize, f32)>>, Vec<Vec<f32>>) {
    let spec = b.config.feature_spec();
    let c = b.manifest.num_classes;
    // Length-sorted batches pad little; rows go back to input order for the output.
    let lengths: Vec<usize> = videos.iter().map(|v| v.num_frames).collect();
    let mut top: Vec<Vec<(usize, f32)>> = vec![Vec::new(); videos.len()];
    let mut full: Vec<Vec<f32>> = vec![Vec::new(); if keep_all { videos.len() } else { 0 }];
    for group in length_buckets(&lengths, opt.batch_size, opt.bucket_window) {
        let batch = Batch::from_indices(videos, &group, &spec);
        let scores = tch::no_grad(|| {
            let inp = batch_inputs(&batch, b.model.device(), b.model.kind);
            let logits = crate::model::widen(b.model.forward(&inp, false));
            match opt.score {
                ScoreFn::Sigmoid => logits.sigmoid(),
                ScoreFn::Softmax => logits.softmax(1, tch::Kind::Float),
                ScoreFn::Logits => logits,
            }
            .to_device(tch::Device::Cpu)
        });
        let scores = match class_mask {
            Some(m) => scores.to_kind(tch::Kind::Float) * m,
            None => scores,
        };
        if keep_all {
            let mut all = vec![0f32; scores.numel()];
            scores.contiguous().copy_data(&mut all, scores.numel());
            for (r, &i) in group.iter().enumerate() {
                full[i] = all[r * c..(r + 1) * c].to_vec();
            }
            continue;
        }
        // The printed formats need each row's top k only.
        let (vals, idx) = scores.topk(k as i64, 1, true, true);
        let mut v = vec![0f32; vals.numel()];
        vals.contiguous().copy_data(&mut v, vals.numel());
        let mut ix = vec![0i64; idx.numel()];
        idx.contiguous().copy_data(&mut ix, idx.numel());
        for (r, &i) in group.iter().enumerate() {
            top[i] = (0..k)
                .map(|j| (ix[r * k + j] as usize, v[r * k + j]))
                .collect();
        }
    }
    (top, full)
}

/// One row of the printed formats: video `video` from `source` with its top `k` classes.
fn write_row(
    out: &mut dyn Write,
    b: &Bundle,
    opt: &PredictOptions,
    k: usize,
    video: &Video,
    source: &str,
    row: &[(usize, f32)],
) -> Result<()> {
    let io = Error::output;
    match opt.format {
        Format::Table => {
            writeln!(
                out,
                "{} ({} frames, {})",
                video.id, video.num_frames, source
            )
            .map_err(io)?;
            for (rank, (cls, s)) in row.iter().enumerate() {
                writeln!(
                    out,
                    "  {:>3}. {:>5}  {:<40} {:.4}",
                    rank + 1,
                    cls,
                    b.names[*cls],
                    s
                )
                .map_err(io)?;
            }
            if opt.show_labels && video.has_labels {
                writeln!(out, "       true labels: {:?}", video.labels).map_err(io)?;
            }
        }
        Format::Jsonl => {
            let preds: Vec<serde_json::Value> = row
                .iter()
                .map(
                    |(cls, s)| serde_json::json!({"class": cls, "name": b.names[*cls], "score": s}),
                )
                .collect();
            let mut j = serde_json::json!({"id": video.id, "source": source, "num_frames": video.num_frames, "predictions": preds});
            if opt.show_labels && video.has_labels {
                j["labels"] = serde_json::json!(video.labels);
            }
            writeln!(out, "{j}").map_err(io)?;
        }
        Format::Kaggle => {
            let pairs: Vec<String> = row
                .iter()
                .map(|(cls, s)| format!("{cls} {}", crate::runtime::fmt_g(*s as f64)))
                .collect();
            writeln!(out, "{},{}", video.id, pairs.join(" ")).map_err(io)?;
        }
        Format::Paddle => {
            let classes: Vec<String> = row.iter().map(|(c, _)| c.to_string()).collect();
            let ss: Vec<String> = row.iter().map(|(_, s)| format!("{s}")).collect();
            writeln!(
                out,
                "Current video file: {} (video {})\n\ttop-{k} class: [{}]\n\ttop-{k} score: [{}]",
                source,
                video.id,
                classes.join(" "),
                ss.join(" ")
            )
            .map_err(io)?;
            if opt.show_labels && video.has_labels {
                writeln!(out, "\ttrue labels: {:?}", video.labels).map_err(io)?;
            }
        }
        Format::Npz | Format::KaggleSegments => {
            unreachable!("npz rows and segment rankings are collected above")
        }
    }
    Ok(())
}

impl Pending {
    fn clear(&mut self) {
        self.videos.clear();
        self.sources.clear();
        self.segs.clear();
    }
}

/// Rows are videos, or segments with --segments (whose videos were counted when read).
fn count_rows(stats: &mut PredictStats, opt: &PredictOptions, rows: usize) {
    if opt.segments.is_some() {
        stats.segments += rows;
    } else {
        stats.videos += rows;
    }
}

/// The files `predict` reads for `inputs` (.npy files, shards, directories, globs, .list files).
/// Inputs are OS strings, so file names that are not UTF-8 are accepted as written.
pub fn input_files(inputs: &[impl AsRef<std::ffi::OsStr>]) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for i in inputs {
        let p = Path::new(i.as_ref());
        if p.extension().is_some_and(|e| e == "npy") && p.is_file() {
            files.push(p.to_path_buf());
        } else {
            files.extend(expand_paths(std::slice::from_ref(i), None)?);
        }
    }
    Ok(files)
}

/// [`predict`] into the file `out`: written beside it and renamed at the end, so an error
/// leaves no partial file and never truncates an existing one; `out` may not be any file the
/// command reads (an input, or a file of the bundle at `bundle_dir`), under any spelling.
pub fn predict_to_file(
    b: &Bundle,
    bundle_dir: &Path,
    inputs: &[impl AsRef<std::ffi::OsStr>],
    opt: &PredictOptions,
    out: &Path,
) -> Result<PredictStats> {
    let files = input_files(inputs)?;
    let bundle_files: Vec<PathBuf> = b
        .manifest
        .files
        .keys()
        .map(|f| bundle_dir.join(f))
        .chain([bundle_dir.join("bundle.json")])
        .collect();
    if let Some(f) = files
        .iter()
        .chain(&bundle_files)
        .find(|f| crate::runtime::same_file(f, out))
    {
        return Err(Error::Invalid(format!(
            "--out {} is {}, which this command reads; refusing to overwrite it\n  hint: write predictions to a new file",
            out.display(),
            f.display()
        )));
    }
    let mut f = crate::runtime::AtomicFile::create(out)?;
    // A failed write names the file (to standard output it is said as the CLI says it).
    let s = predict_files(b, files, opt, &mut f).map_err(|e| match e {
        Error::Output(err) => Error::io(out, err),
        e => e,
    })?;
    f.commit()?;
    Ok(s)
}

/// Predicts every video of `inputs` (files, directories, globs, .list files).
pub fn predict(
    b: &Bundle,
    inputs: &[impl AsRef<std::ffi::OsStr>],
    opt: &PredictOptions,
    out: &mut dyn Write,
) -> Result<PredictStats> {
    predict_files(b, input_files(inputs)?, opt, out)
}

/// Segment scoring needs frames, and the segment submission needs segments.
fn check_segment_options(b: &Bundle, opt: &PredictOptions) -> Result<()> {
    match (&opt.segments, opt.format) {
        (None, Format::KaggleSegments) => Err(Error::Invalid(
            "--format kaggle-segments ranks segments: add --segments".into(),
        )),
        (Some(_), Format::Paddle) => Err(Error::Invalid(
            "--format paddle prints whole videos; with --segments use table, jsonl, kaggle, kaggle-segments or npz".into(),
        )),
        (Some(s), _) if s.length == 0 => Err(Error::Invalid(
            "--segment-length must be at least 1 frame (the 2019 task: 5)".into(),
        )),
        (Some(_), _) if b.config.feature_spec().level != crate::data::Level::Frame => {
            Err(Error::Invalid(format!(
                "--segments needs a frame-level model; this bundle's '{}' reads video-level features (mean_rgb/mean_audio), which have no frames to cut into segments\n  hint: export a frame-level model (attention_lstm, lstm, dbof, nextvlad, frame_logistic, ...)",
                b.manifest.architecture
            )))
        }
        (Some(s), _) => match &s.classes {
            Some(m) if m.len() != b.manifest.num_classes => Err(Error::Invalid(format!(
                "the segment class list covers {} classes, the model {}",
                m.len(),
                b.manifest.num_classes
            ))),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

impl Sinks {
    /// The outputs written at the end (an `.npz`, a segment ranking) for `opt.format`, after
    /// checking the segment options; a Kaggle CSV's header goes out at once.
    fn open(b: &Bundle, opt: &PredictOptions, out: &mut dyn Write) -> Result<Sinks> {
        let npz = (opt.format == Format::Npz).then(|| NpzRows {
            all_labelled: true,
            ..Default::default()
        });
        check_segment_options(b, opt)?;
        let ranking = (opt.format == Format::KaggleSegments).then(|| {
            crate::segments::SegmentRanking::new(
                b.manifest.num_classes,
                opt.segments.as_ref().map_or(1, |s| s.max_per_class),
            )
        });
        if opt.format == Format::Kaggle {
            writeln!(out, "VideoId,LabelConfidencePairs").map_err(Error::output)?;
        }
        Ok(Sinks { npz, ranking })
    }
}

/// [`predict`] over the files [`input_files`] expanded the inputs to.
fn predict_files(
    b: &Bundle,
    files: Vec<PathBuf>,
    opt: &PredictOptions,
    out: &mut dyn Write,
) -> Result<PredictStats> {
    let spec = b.config.feature_spec();
    let c = b.manifest.num_classes;
    // Labels are read but never needed to predict: an out-of-range one must not stop
    // prediction (it used to, hiding the real mistake); it only keeps labels out of npz output.
    let read_spec = crate::data::FeatureSpec {
        num_classes: usize::MAX,
        ..spec.clone()
    };
    let mut sinks = Sinks::open(b, opt, out)?;
    let mut stats = PredictStats::default();
    let mut p = Pending {
        videos: Vec::new(),
        sources: Vec::new(),
        segs: Vec::new(),
    };
    // Segments all have (nearly) the same length: no length-sorting window is needed, and a
    // window of full score rows (3862 floats each) would cost memory for nothing.
    let bs = match opt.segments {
        Some(_) => opt.batch_size.max(1),
        None => opt.batch_size.max(1) * opt.bucket_window.max(1),
    };
    // Many shards take long: a progress line every 10 s (stderr; the output stays clean).
    let mut progress = crate::runtime::Progress::new("predicting", &files);
    // Loaded at the first video file (the Inception graph is 91 MB).
    let mut extractor: Option<crate::extract::Extractor> = None;
    let cx = TakeContext {
        num_classes: c,
        dims: &spec.dims,
        segment_length: opt.segments.as_ref().map(|s| s.length),
    };
    for f in &files {
        let src = f.display().to_string();
        if crate::extract::write::is_video_file(f) {
            let v = video_file(f, opt, &spec, &mut extractor)?;
            p.take(v, &src, &cx, &mut stats, sinks.ranking.as_mut());
            progress.tick(stats.seen.len());
        } else if f.extension().and_then(|e| e.to_str()) == Some("npy") {
            let v = read_npy_video(f, &spec)?;
            p.take(v, &src, &cx, &mut stats, sinks.ranking.as_mut());
        } else {
            let mut shard = videos(f, &read_spec, opt.skip_corrupt)?;
            for v in shard.by_ref() {
                p.take(v?, &src, &cx, &mut stats, sinks.ranking.as_mut());
                progress.tick(stats.seen.len());
                if p.videos.len() >= bs {
                    flush(b, &mut p, opt, out, &mut stats, &mut sinks)?;
                }
            }
            stats.skipped_records += report_losses(&shard.into_stats());
        }
        if p.videos.len() >= bs {
            flush(b, &mut p, opt, out, &mut stats, &mut sinks)?;
        }
    }
    flush(b, &mut p, opt, out, &mut stats, &mut sinks)?;
    if let Some(n) = sinks.npz {
        n.write(c, out)?;
    }
    if let Some(r) = sinks.ranking {
        r.write(out)?;
    }
    if stats.videos == 0 && stats.skipped_zero_frames == 0 {
        return Err(Error::Invalid("no videos in the inputs".into()));
    }
    Ok(stats)
}

/// What [`Pending::take`] needs of the bundle and the options.
struct TakeContext<'a> {
    num_classes: usize,
    dims: &'a [usize],
    /// `--segments`: each video becomes its segments of this many frames.
    segment_length: Option<usize>,
}

impl Pending {
    /// Queues video `v` read from `src` (or its segments), counting duplicates and
    /// zero-frame videos (those get no prediction, with a warning).
    fn take(
        &mut self,
        mut v: Video,
        src: &str,
        cx: &TakeContext,
        stats: &mut PredictStats,
        ranking: Option<&mut crate::segments::SegmentRanking>,
    ) {
        if v.labels.iter().any(|&l| l as usize >= cx.num_classes) {
            v.labels.clear();
            v.has_labels = false;
        }
        if !stats.seen.insert(v.id.clone()) {
            stats.duplicate_ids += 1;
            if stats.duplicate_ids <= 5 {
                eprintln!(
                    "warning: {src}: video '{}' was already predicted from an earlier input; it appears twice in the output",
                    v.id
                );
            }
        }
        if v.num_frames == 0 {
            eprintln!(
                "warning: {src}: video '{}' has zero frames; no prediction",
                v.id
            );
            stats.skipped_zero_frames += 1;
        } else if let Some(length) = cx.segment_length {
            // inference.py's get_segments: frames [0, 5), [5, 10), ... up to the video's
            // frame count; the last segment may be shorter (its num_frames says so).
            stats.videos += 1;
            let index = ranking.map_or(0, |r| r.add_video(&v.id));
            let mut start = 0;
            while let Some(mut w) = v.window(start, length, cx.dims) {
                w.id = format!("{}:{start}", v.id);
                self.videos.push(w);
                self.sources.push(src.to_string());
                self.segs.push((index, start as u32));
                start += length;
            }
        } else {
            self.videos.push(v);
            self.sources.push(src.to_string());
        }
    }
}

/// The features of a video file, extracted as `yt8m extract` does; the extractor is loaded
/// at the first video file (the Inception graph is 91 MB).
fn video_file(
    f: &Path,
    opt: &PredictOptions,
    spec: &crate::data::FeatureSpec,
    extractor: &mut Option<crate::extract::Extractor>,
) -> Result<Video> {
    if extractor.is_none() {
        let dir = opt
            .video
            .extractor
            .clone()
            .or_else(crate::extract::default_dir)
            .unwrap_or_default();
        *extractor = Some(
            crate::extract::Extractor::load_with(&dir, 8, opt.video.audio).map_err(|e| {
                Error::of_kind(
                    e.kind(),
                    format!(
                        "{}: a video file: its features are extracted first, which needs the \
                     extractor files: {e}\n  hint: give --extractor DIR (see yt8m extract --help)",
                        f.display()
                    ),
                )
            })?,
        );
    }
    let ex = extractor.as_ref().expect("loaded above");
    ex.video(f, &opt.video.sampling, &mut |_, _| {})
        .and_then(|feats| feats.to_video(f.display().to_string(), spec))
        .map_err(Error::from)
}

/// Warns of what a shard lost (skipped records, resynchronised byte ranges, frame counts
/// cut); returns how many records or ranges were skipped.
fn report_losses(s: &crate::data::sources::ReadStats) -> usize {
    for e in &s.skipped {
        eprintln!("warning: skipped corrupt record: {e}");
    }
    for e in &s.resyncs {
        eprintln!("warning: {e}");
    }
    if let Some(w) = s.frame_count_warning() {
        eprintln!("warning: {w}");
    }
    s.skipped.len() + s.resyncs.len()
}

impl NpzRows {
    /// The `.npz` of `--format npz`: `predictions` `[videos, c]`, `ids`, and `labels` when
    /// every video had usable ones.
    fn write(self, c: usize, out: &mut dyn Write) -> Result<()> {
        use crate::data::npy::{NpyArray, NpyDType, write_npz};
        let rows = self.ids.len();
        let preds = NpyArray {
            shape: vec![rows, c],
            dtype: NpyDType::F32,
            data: self.scores.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        let ids = NpyArray::unicode(&self.ids);
        let labels = NpyArray {
            shape: vec![rows, c],
            dtype: NpyDType::U8,
            data: self.labels,
        };
        let mut arrays = vec![("predictions", &preds), ("ids", &ids)];
        if self.all_labelled {
            arrays.push(("labels", &labels));
        } else {
            eprintln!(
                "note: some videos have no (usable) labels: the .npz holds predictions and ids only"
            );
        }
        let mut buf = std::io::Cursor::new(Vec::new());
        write_npz(&mut buf, &arrays).map_err(|e| Error::Internal(format!("writing .npz: {e}")))?;
        out.write_all(buf.get_ref()).map_err(Error::output)?;
        Ok(())
    }
}
