//! `inspect`, `synth`, `extract`, `evaluate`: the verbs over data files.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;
use yt8m::data::Level;
use yt8m::data::inspect::{inspect_file, render_table};
use yt8m::data::sources::expand_paths;
use yt8m::data::synth::{SynthConfig, write_synthetic_with};
use yt8m::evaluate::{EvalOptions, read_kaggle_with_labels, read_npz};
use yt8m::metrics::{MetricMode, TieOrder};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  yt8m inspect data/train0000.tfrecord\n  yt8m inspect --json 'data/validate*.tfrecord'\n  yt8m inspect data/pkl_frame/ data/train.list"
)]
pub(crate) struct InspectArgs {
    /// Files, directories, glob patterns (quoted) or .list files.
    #[arg(required = true)]
    paths: Vec<std::ffi::OsString>,
    /// Print one JSON document ({"files": [...]}) instead of a table.
    #[arg(long)]
    json: bool,
    /// Count and report corrupt records instead of stopping at the first.
    #[arg(long)]
    skip_corrupt: bool,
}

#[derive(Args)]
#[command(
    after_help = "Example (what `yt8m demo` runs):\n  yt8m synth --out data/synth/train --num-videos 384 --num-shards 4 --seed 1 --prefix train\n  yt8m synth --out data/synth/test --num-videos 128 --num-shards 1 --seed 2 --prefix test"
)]
pub(crate) struct SynthArgs {
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// frame (SequenceExample, uint8 rgb/audio per frame) or video (Example, mean_rgb/mean_audio).
    #[arg(long, default_value = "frame")]
    level: Level,
    /// Videos in all, spread over the shards.
    #[arg(long, default_value_t = 512)]
    num_videos: usize,
    /// Files to write (PREFIX0000.tfrecord, ...).
    #[arg(long, default_value_t = 4)]
    num_shards: usize,
    /// Classes; each has its own feature pattern, so the data is learnable.
    #[arg(long, default_value_t = 20)]
    num_classes: usize,
    /// Feature widths, rgb then audio.
    #[arg(long, value_delimiter = ',', default_value = "1024,128")]
    dims: Vec<usize>,
    /// Shortest video, in frames.
    #[arg(long, default_value_t = 1)]
    min_frames: usize,
    /// Longest video; above 300 exercises the reader's truncation.
    #[arg(long, default_value_t = 320)]
    max_frames: usize,
    /// Labels per video: 1 to this many.
    #[arg(long, default_value_t = 3)]
    max_labels: usize,
    /// Noise level relative to the class patterns (higher = harder).
    #[arg(long, default_value_t = 0.6)]
    noise: f64,
    /// Random seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// File name prefix: PREFIX0000.tfrecord, ...
    #[arg(long, default_value = "train")]
    prefix: String,
    /// Omit the labels key (test-split style).
    #[arg(long)]
    no_labels: bool,
    /// 2019 segment task data: class patterns per 5-frame segment, and rated segments
    /// (segment_start_times/end_times/labels/scores) for one label of each video. Frame level.
    #[arg(long)]
    segments: bool,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  yt8m extract clip.mp4 videos/ --out features/   # ids are the paths, no labels\n  yt8m extract --csv videos.csv --out labelled/ --level video   # lines 'clip.mp4,3;17'\n  yt8m predict --model bundles/demo features/\n\nThe extractor files are the official ones, unchanged, in one directory (--extractor,\nYT8M_EXTRACTOR_DIR, or ~/yt8m where Google's feature_extractor.py puts them):\ninception-2015-12-05.tgz (or the classify_image_graph_def.pb it holds) and yt8m_pca.tgz (or its\nmean.npy, eigenvals.npy, eigenvecs.npy); for audio, vggish_model.ckpt and vggish_pca_params.npz.\nFrames are sampled as its frame_iterator does (the frame after each 1 s mark, at most 300),\nthrough the ffmpeg and ffprobe executables. Rerunning into the same --out resumes: complete\nshards are kept. docs/extract.md has the download commands and how each step is checked."
)]
pub(crate) struct ExtractArgs {
    /// Video files, quoted glob patterns, or directories searched for video files (.mp4, .mkv,
    /// .webm, ...).
    #[arg(value_name = "VIDEO", required_unless_present = "csv")]
    videos: Vec<PathBuf>,
    /// A CSV of '<video_file>,<labels>' lines, as the official extract_tfrecords_main.py takes.
    #[arg(long, value_name = "FILE", conflicts_with = "videos")]
    csv: Option<PathBuf>,
    /// Output directory for PREFIX0000.tfrecord, ... (created if missing).
    #[arg(long = "out", alias = "output", value_name = "DIR")]
    out: PathBuf,
    /// Directory with classify_image_graph_def.pb, mean.npy, eigenvals.npy, eigenvecs.npy
    /// [default: $YT8M_EXTRACTOR_DIR, else ~/yt8m].
    #[arg(long, value_name = "DIR")]
    extractor: Option<PathBuf>,
    /// frame (SequenceExample: rgb/audio bytes per frame) or video (Example: mean_rgb/mean_audio).
    #[arg(long, default_value = "frame")]
    level: Level,
    /// Frames sampled per second of video (the official --frames_per_second).
    #[arg(long, default_value_t = 1.0)]
    fps: f64,
    /// Frames at most per video, from its start.
    #[arg(long, default_value_t = 300)]
    max_frames: usize,
    /// Videos per output shard (each shard is written whole, then renamed into place).
    #[arg(long, default_value_t = 100)]
    videos_per_shard: usize,
    /// File name prefix: PREFIX0000.tfrecord, ...
    #[arg(long, default_value = "extract")]
    prefix: String,
    /// Frames per Inception call (8 measured fastest on 2 cores: docs/benchmarks.md).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Leave out videos that are missing or cannot be decoded (listed at the end) instead of
    /// stopping. A failure that is not the video's own (FFmpeg missing, a full disk) still
    /// stops the run.
    #[arg(long)]
    skip_bad_videos: bool,
    /// Audio features: vggish (vggish_model.ckpt + vggish_pca_params.npz in the extractor
    /// directory), zeros (the official extractor's default), or auto (vggish when its files are
    /// there).
    #[arg(long, value_enum, default_value_t = yt8m::extract::AudioSource::Auto)]
    audio: yt8m::extract::AudioSource,
    /// Zero audio, as the official extractor writes by default (= --audio zeros).
    #[arg(long, conflicts_with = "audio")]
    no_audio: bool,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  yt8m evaluate --scores preds.npz                    # predictions [N,C] + labels [N,C]\n  yt8m evaluate --scores preds.npz --json --top-k 20\n  yt8m evaluate --kaggle submission.csv --labels 'validate*.tfrecord'\n  yt8m evaluate --scores scores.npy --ids ids.txt --labels 'validate*.tfrecord'\n  yt8m evaluate --scores preds.npz --metric-mode paddlevideo   # per-batch mean, batch 8\n  yt8m evaluate --segments --submission seg.csv --labels 'validate*' --top-n 100000"
)]
pub(crate) struct EvaluateArgs {
    /// .npz holding `predictions` [N,C] and `labels` [N,C].
    #[arg(long, conflicts_with = "kaggle")]
    scores: Option<PathBuf>,
    /// Kaggle submission CSV (VideoId,LabelConfidencePairs); needs --labels.
    #[arg(long, requires = "labels")]
    kaggle: Option<PathBuf>,
    /// Shards whose labels the predictions are scored against (files, dirs, globs, .list),
    /// matched by video id; with --scores, also give --ids.
    #[arg(long, num_args = 1..)]
    labels: Vec<std::ffi::OsString>,
    /// With --scores and --labels: a text file with one video id per score row.
    #[arg(long, requires = "scores")]
    ids: Option<PathBuf>,
    /// Classes of the label space (3862 for the 2018 vocabulary, 4716 for 2017). Default: the
    /// width of the --scores array; 3862 for --kaggle.
    #[arg(long, value_parser = parse_num_classes)]
    num_classes: Option<usize>,
    /// GAP@k (capped at the number of classes).
    #[arg(long, default_value_t = 20)]
    top_k: usize,
    /// official: sample-weighted, global GAP; paddlevideo: mean of per-batch metrics.
    #[arg(long, value_enum, default_value_t = MetricMode::Official)]
    metric_mode: MetricMode,
    /// Order of equal scores in AP: official (heap + random.seed(0) shuffle) or deterministic.
    #[arg(long, value_enum, default_value_t = TieOrder::Official)]
    tie_order: TieOrder,
    /// Evaluator batch size (official: emulates EvaluationMetrics batches, matters only for
    /// ties; paddlevideo: the test batch, default 8). 0 = default.
    #[arg(long, default_value_t = 0)]
    batch_size: usize,
    /// Print one JSON object (hit_at_one, perr, gap, map, ...; with --segments: map,
    /// per_class, ...).
    #[arg(long)]
    json: bool,
    /// 2019 segment task: the mAP of a `Class,Segments` submission (--submission, e.g. from
    /// `predict --segments --format kaggle-segments`) over the rated segments of --labels, as
    /// the starter's segment_eval_inference.py computes it.
    #[arg(long, requires_all = ["submission", "labels"], conflicts_with_all = ["scores", "kaggle"])]
    segments: bool,
    /// With --segments: the segment submission CSV.
    #[arg(long, requires = "segments")]
    submission: Option<PathBuf>,
    /// With --segments: count only the first N segments of each class line (the script's
    /// --top_n; Kaggle scored mAP@100000). 0 = all.
    #[arg(long, default_value_t = 0, requires = "segments")]
    top_n: usize,
    /// With --segments: official (the script's count, which never matches the last segment of
    /// a line ending in a newline) or complete (every listed segment counts).
    #[arg(long, value_enum, default_value_t = yt8m::segments::SegmentList::Official, requires = "segments")]
    segment_list: yt8m::segments::SegmentList,
}

/// `--num-classes`: 1 to 1,000,000.
pub(crate) fn parse_num_classes(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=yt8m::config::MAX_CLASSES).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a class count from 1 to {} (YouTube-8M: 3862 in 2018, 4716 in 2017)",
            yt8m::config::MAX_CLASSES
        )),
    }
}

pub(crate) fn inspect(a: InspectArgs) -> Result<()> {
    let files = expand_paths(&a.paths, None)?;
    let mut reports = Vec::new();
    for f in &files {
        reports.push(inspect_file(f, a.skip_corrupt)?);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "files": reports }))?
        );
    } else {
        print!("{}", render_table(&reports));
    }
    let bad: usize = reports.iter().map(|r| r.corrupt_records).sum();
    if bad > 0 {
        eprintln!("warning: skipped {bad} corrupt record(s); see the report");
    }
    Ok(())
}

pub(crate) fn synth(a: SynthArgs) -> Result<()> {
    let level = a.level;
    if a.dims.len() != 2 {
        bail!("--dims takes two widths (rgb,audio), got {:?}", a.dims);
    }
    if a.num_classes == 0 || a.num_videos == 0 {
        bail!("--num-classes and --num-videos must be positive");
    }
    if a.segments && level != Level::Frame {
        bail!("--segments rates 5-frame segments: it needs --level frame");
    }
    let cfg = SynthConfig {
        level,
        num_videos: a.num_videos,
        num_shards: a.num_shards,
        num_classes: a.num_classes,
        dims: a.dims,
        min_frames: a.min_frames,
        max_frames: a.max_frames,
        max_labels: a.max_labels,
        noise: a.noise,
        seed: a.seed,
        prefix: a.prefix,
        no_labels: a.no_labels,
        segments: a.segments,
        ..Default::default()
    };
    let mut progress = yt8m::runtime::Progress::with_total("synth", Some(cfg.num_videos));
    let s = write_synthetic_with(&a.out, &cfg, &mut |videos, _| progress.tick(videos))
        .with_context(|| format!("writing synthetic data to {}", a.out.display()))?;
    println!(
        "wrote {} videos ({} frames, {:.1} MB) in {} file(s) under {}",
        s.videos,
        s.frames,
        s.bytes as f64 / 1e6,
        s.files.len(),
        a.out.display()
    );
    Ok(())
}

pub(crate) fn extract(a: ExtractArgs) -> Result<()> {
    use yt8m::extract::write::{WriteOptions, extract_all, inputs_from_csv, inputs_from_paths};
    if !(a.fps.is_finite() && a.fps > 0.0) {
        bail!(
            "--fps must be a positive number of frames per second (got {})",
            a.fps
        );
    }
    if a.max_frames == 0 || a.videos_per_shard == 0 || a.batch_size == 0 {
        bail!("--max-frames, --videos-per-shard and --batch-size must be positive");
    }
    yt8m::threads::configure_torch_threads();
    let dir = match a.extractor.clone().or_else(yt8m::extract::default_dir) {
        Some(d) => d,
        None => bail!("give the extractor files' directory with --extractor (HOME is not set)"),
    };
    let inputs = match &a.csv {
        Some(csv) => inputs_from_csv(csv)?,
        None => inputs_from_paths(&a.videos)?,
    };
    let audio = if a.no_audio {
        yt8m::extract::AudioSource::Zeros
    } else {
        a.audio
    };
    let ex = yt8m::extract::Extractor::load_with(&dir, a.batch_size, audio)?;
    let opts = WriteOptions {
        level: a.level,
        audio,
        videos_per_shard: a.videos_per_shard,
        prefix: a.prefix.clone(),
        every_ms: 1000.0 / a.fps,
        max_frames: a.max_frames,
        skip_bad_videos: a.skip_bad_videos,
    };
    tracing::info!(
        "extracting {} video(s) with {} into {} (audio: {})",
        inputs.len(),
        dir.display(),
        a.out.display(),
        if ex.has_audio() {
            "VGGish"
        } else {
            "zeros, as the official extractor writes by default"
        }
    );
    let mut progress = ExtractProgress::new(inputs.len());
    let t0 = std::time::Instant::now();
    let s = extract_all(&ex, &inputs, &a.out, &opts, &mut |e| progress.on(e))
        .with_context(|| format!("extracting into {}", a.out.display()))?;
    report_extract(&s, &a.out, t0.elapsed().as_secs_f64());
    Ok(())
}

/// `extract`'s progress: the bar over videos, and within a long video a line every 10 s
/// (`YT8M_PROGRESS_SECS`) with its frames so far.
struct ExtractProgress {
    n: usize,
    bar: yt8m::runtime::Progress,
    done: usize,
    every: f64,
    last_line: std::time::Instant,
    current: (usize, PathBuf),
}

impl ExtractProgress {
    fn new(n: usize) -> Self {
        ExtractProgress {
            n,
            bar: yt8m::runtime::Progress::with_total("extract", Some(n)),
            done: 0,
            every: std::env::var("YT8M_PROGRESS_SECS")
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(10.0),
            last_line: std::time::Instant::now(),
            current: (0, PathBuf::new()),
        }
    }

    fn on(&mut self, e: yt8m::extract::write::Event) {
        use yt8m::extract::write::Event;
        let n = self.n;
        match e {
            Event::Video(i, p) => {
                tracing::debug!("video {}/{n}: {}", i + 1, p.display());
                self.current = (i, p.to_path_buf());
            }
            Event::Frames(f, _) => {
                if self.last_line.elapsed().as_secs_f64() >= self.every {
                    self.last_line = std::time::Instant::now();
                    tracing::info!(
                        "extract: video {}/{n} ({}): {f} frames so far",
                        self.current.0 + 1,
                        self.current.1.display()
                    );
                }
            }
            Event::VideoDone(_) => {
                self.done += 1;
                self.bar.tick(self.done);
            }
        }
    }
}

/// What `extract` wrote, kept and skipped.
fn report_extract(s: &yt8m::extract::write::Summary, out: &std::path::Path, secs: f64) {
    println!(
        "wrote {} video(s), {} frames, in {} shard(s) under {} ({:.1} s, {:.1} frames/s){}",
        s.videos_written,
        s.frames_written,
        s.shards_written.len(),
        out.display(),
        secs,
        s.frames_written as f64 / secs.max(1e-9),
        if s.shards_kept.is_empty() {
            String::new()
        } else {
            format!(
                "; {} shard(s) kept from an earlier run",
                s.shards_kept.len()
            )
        }
    );
    if !s.bad_videos.is_empty() {
        println!(
            "skipped {} video(s) that could not be read:",
            s.bad_videos.len()
        );
        for (p, why) in &s.bad_videos {
            println!("  {}: {why}", p.display());
        }
    }
}

pub(crate) fn evaluate(a: EvaluateArgs) -> Result<()> {
    if a.segments {
        return evaluate_segments(a);
    }
    let opt = EvalOptions {
        top_k: a.top_k,
        tie_order: a.tie_order,
        mode: a.metric_mode,
        batch_size: a.batch_size,
    };
    let (scored, ids) = if let (Some(p), false) = (&a.scores, a.labels.is_empty()) {
        let (s, r) =
            yt8m::evaluate::read_scores_with_labels(p, a.ids.as_deref(), &a.labels, a.num_classes)?;
        (yt8m::evaluate::AnyScored::F64(s), Some(r))
    } else if let Some(p) = &a.scores {
        (read_npz(p)?, None)
    } else if let Some(csv) = &a.kaggle {
        let (s, r) = read_kaggle_with_labels(csv, &a.labels, a.num_classes.unwrap_or(3862))?;
        (yt8m::evaluate::AnyScored::F64(s), Some(r))
    } else {
        bail!("give --scores FILE.npz or --kaggle FILE.csv --labels SHARDS");
    };
    if scored.num_videos() == 0 {
        bail!("no videos to evaluate");
    }
    let m = scored.evaluate(&opt);
    if let Some(r) = &ids {
        if !r.predicted_without_labels.is_empty() || !r.labelled_without_prediction.is_empty() {
            eprintln!(
                "warning: {} predicted id(s) have no labels (ignored), {} labelled video(s) have no prediction (no pairs; their positives still count); first: {:?} / {:?}",
                r.predicted_without_labels.len(),
                r.labelled_without_prediction.len(),
                r.predicted_without_labels
                    .iter()
                    .take(3)
                    .collect::<Vec<_>>(),
                r.labelled_without_prediction
                    .iter()
                    .take(3)
                    .collect::<Vec<_>>()
            );
        }
    }
    if a.json {
        let mut v = serde_json::to_value(&m)?;
        if let Some(r) = ids {
            v["ids"] = serde_json::to_value(r)?;
        }
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print!("{}", m.render());
    }
    Ok(())
}

pub(crate) fn evaluate_segments(a: EvaluateArgs) -> Result<()> {
    let submission = a
        .submission
        .context("--segments needs --submission FILE.csv")?;
    let rated = yt8m::segments::read_rated_segments(&a.labels)?;
    let r = yt8m::segments::evaluate_submission(&submission, &rated, a.top_n, a.segment_list)?;
    if !r.classes_without_positives.is_empty() {
        eprintln!(
            "warning: {} submitted class(es) have no positive rated segment in the labels and are left out of the mean (segment_eval_inference.py stops with a KeyError on them): {:?}",
            r.classes_without_positives.len(),
            &r.classes_without_positives[..r.classes_without_positives.len().min(10)]
        );
    }
    if !r.classes_not_submitted.is_empty() {
        eprintln!(
            "note: {} class(es) with positive rated segments are not in the submission (not in the mean, as in the script): {:?}",
            r.classes_not_submitted.len(),
            &r.classes_not_submitted[..r.classes_not_submitted.len().min(10)]
        );
    }
    if !r.repeated_classes.is_empty() {
        eprintln!(
            "warning: class line(s) repeated, the last one counts: {:?}",
            r.repeated_classes
        );
    }
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        yt8m::segments::print_report(&r, &mut std::io::stdout().lock())?;
    }
    Ok(())
}
