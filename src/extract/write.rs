//! Records in the official layout and the shards that hold them: what
//! google/youtube-8m `feature_extractor/extract_tfrecords_main.py` writes.
//!
//! Frame level (`SequenceExample`): context `id` (the video path as given), `labels` (int64,
//! sorted), `mean_rgb` (1024 floats), `mean_audio` (128 zeros); feature lists `rgb` (1024 bytes
//! per frame) and `audio` (128 zero bytes per frame: the official default
//! `insert_zero_audio_features`, which writes byte 0, i.e. -2 once dequantized, exactly as
//! here). Video level: the context alone, which is byte for byte the `Example` YouTube-8M's
//! video-level files hold (`SequenceExample.context` and `Example.features` are both field 1).
//!
//! Shards: videos are assigned to shards by their position in the input list
//! (`--videos-per-shard` each), each shard is written to a temporary name and renamed when
//! complete, and a manifest records the inputs and options: a rerun into the same directory
//! skips the shards already there (resume), and refuses a directory made from other inputs.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use yt8m_data::proto::{EncFeature, encode_feature, encode_sequence_example};
use yt8m_data::video::Level;

use super::video::Sampling;
use super::{ExtractError, Extractor, VideoFeatures};
use crate::error::ErrorKind;
use crate::runtime::{AtomicFile, write_atomic};

/// Video file extensions a directory is searched for.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "flv", "wmv", "mpg", "mpeg", "ts", "3gp", "ogv",
];
/// Whether `p` names a video file (by its extension, any case).
pub fn is_video_file(p: &Path) -> bool {
    p.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| VIDEO_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
}

/// Directory levels searched below a given directory.
const MAX_DEPTH: usize = 16;
/// Inputs at most (a CSV or a directory tree).
const MAX_INPUTS: usize = 10_000_000;

/// One video to extract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub path: PathBuf,
    /// Written as the record's `id` (the official code writes the path as given).
    pub id: String,
    /// Sorted class indices; None writes no `labels` key (a test split).
    pub labels: Option<Vec<i64>>,
}

/// `<video_file>,<labels>` lines with labels joined by `;` (the official
/// `--input_videos_csv`); relative paths are taken from the current directory, as there.
pub fn inputs_from_csv(csv: &Path) -> Result<Vec<Input>, ExtractError> {
    let ferr = |m: String| ExtractError::Files {
        kind: ErrorKind::InvalidInput,
        path: csv.to_path_buf(),
        message: m,
    };
    let text = std::fs::read(csv).map_err(|e| ExtractError::Files {
        kind: ErrorKind::of_io(&e),
        path: csv.to_path_buf(),
        message: format!("{e}"),
    })?;
    let text = String::from_utf8(text).map_err(|_| ferr("not UTF-8 text".into()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let lerr = |m: String| ferr(format!("line {}: {m}", n + 1));
        // The last comma splits: video paths may hold commas, labels never do.
        let Some((video, labels)) = line.rsplit_once(',') else {
            return Err(lerr(
                "expected '<video_file>,<labels>' with labels joined by ';' (e.g. clip.mp4,3;17)"
                    .into(),
            ));
        };
        let mut l = Vec::new();
        for s in labels.split(';') {
            let s = s.trim();
            let v: i64 = s.parse().map_err(|_| {
                lerr(format!(
                    "label '{s}' is not an integer (labels are class indices joined by ';')"
                ))
            })?;
            if v < 0 {
                return Err(lerr(format!("label {v} is negative")));
            }
            l.push(v);
        }
        l.sort_unstable();
        if out.len() >= MAX_INPUTS {
            return Err(lerr(format!("more than {MAX_INPUTS} videos")));
        }
        out.push(Input {
            path: PathBuf::from(video),
            id: video.to_string(),
            labels: Some(l),
        });
    }
    if out.is_empty() {
        return Err(ferr("no videos listed".into()));
    }
    Ok(out)
}

/// Files as given, the files a quoted glob pattern matches, and the video files under
/// directories (by extension, sorted, descending at most 16 levels), each once.
pub fn inputs_from_paths(paths: &[PathBuf]) -> Result<Vec<Input>, ExtractError> {
    let mut out: Vec<Input> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        // A quoted glob pattern (the shell expands unquoted ones).
        let pattern = p
            .to_str()
            .filter(|t| !p.exists() && t.contains(['*', '?', '[']));
        let found = match pattern {
            Some(pat) => yt8m_data::paths::glob_files(pat)?,
            None => {
                let md = std::fs::metadata(p).map_err(|e| ExtractError::Files {
                    kind: ErrorKind::of_io(&e),
                    path: p.clone(),
                    message: format!("{e}"),
                })?;
                if md.is_file() {
                    vec![p.clone()]
                } else {
                    videos_under(p)?
                }
            }
        };
        for q in found {
            if seen.insert(q.clone()) {
                out.push(Input {
                    id: q.display().to_string(),
                    path: q,
                    labels: None,
                });
            }
        }
    }
    Ok(out)
}

/// The video files under directory `p` (by extension), sorted: an iterative walk with a depth
/// limit (a symlink loop ends there) and a bound on how many; none is an error.
fn videos_under(p: &Path) -> Result<Vec<PathBuf>, ExtractError> {
    let mut found = Vec::new();
    let mut stack = vec![(p.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| ExtractError::Files {
            kind: ErrorKind::of_io(&e),
            path: dir.clone(),
            message: format!("{e}"),
        })?;
        for e in rd.flatten() {
            let q = e.path();
            if q.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((q, depth + 1));
                }
            } else if is_video_file(&q) {
                found.push(q);
                if found.len() > MAX_INPUTS {
                    return Err(ExtractError::Files {
                        kind: ErrorKind::InvalidInput,
                        path: p.to_path_buf(),
                        message: format!("more than {MAX_INPUTS} video files"),
                    });
                }
            }
        }
    }
    if found.is_empty() {
        return Err(ExtractError::Files {
            kind: ErrorKind::InvalidInput,
            path: p.to_path_buf(),
            message: format!(
                "no video files in it (looked for .{})",
                VIDEO_EXTENSIONS.join(", .")
            ),
        });
    }
    found.sort();
    Ok(found)
}

/// One record in the official layout.
pub fn encode_record(input: &Input, f: &VideoFeatures, level: Level) -> Vec<u8> {
    let mean_rgb = f.mean_rgb();
    let mean_audio = f.mean_audio();
    let mut context = vec![(
        "id",
        encode_feature(&EncFeature::Bytes(vec![input.id.as_bytes()])),
    )];
    if let Some(l) = &input.labels {
        context.push(("labels", encode_feature(&EncFeature::Int64(l))));
    }
    context.push(("mean_rgb", encode_feature(&EncFeature::Float(&mean_rgb))));
    context.push((
        "mean_audio",
        encode_feature(&EncFeature::Float(&mean_audio)),
    ));
    match level {
        // SequenceExample{context} without feature lists is Example{features}, byte for byte.
        Level::Video => yt8m_data::proto::encode_example(&context),
        Level::Frame => {
            let rgb: Vec<Vec<u8>> = (0..f.frames)
                .map(|i| encode_feature(&EncFeature::Bytes(vec![&f.rgb_bytes(i)])))
                .collect();
            let audio: Vec<Vec<u8>> = f
                .audio_frames()
                .iter()
                .map(|a| encode_feature(&EncFeature::Bytes(vec![a])))
                .collect();
            encode_sequence_example(&context, &[("rgb", rgb), ("audio", audio)])
        }
    }
}

/// How `extract` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteOptions {
    pub level: Level,
    /// The audio asked for (a resumed run must ask for the same).
    pub audio: super::AudioSource,
    pub videos_per_shard: usize,
    pub prefix: String,
    pub every_ms: f64,
    pub max_frames: usize,
    /// Keep going past videos that cannot be read (reported at the end). Not part of what a
    /// resumed run must match: rerunning with it after a bad video stopped a run is the point.
    #[serde(skip)]
    pub skip_bad_videos: bool,
}

impl WriteOptions {
    pub fn sampling(&self) -> Sampling {
        Sampling {
            every_ms: self.every_ms,
            max_frames: self.max_frames,
        }
    }
}

/// What a run wrote.
#[derive(Debug, Default)]
pub struct Summary {
    pub videos_written: usize,
    pub frames_written: usize,
    pub shards_written: Vec<PathBuf>,
    /// Shards already complete from an earlier run (resumed).
    pub shards_kept: Vec<PathBuf>,
    /// Videos left out with `skip_bad_videos`, and why.
    pub bad_videos: Vec<(PathBuf, String)>,
}

/// What a directory's shards were made from (`PREFIX.manifest.json`).
#[derive(Serialize, Deserialize, PartialEq)]
struct Manifest {
    options: WriteOptions,
    inputs: Vec<Input>,
}

fn manifest_path(out: &Path, prefix: &str) -> PathBuf {
    out.join(format!("{prefix}.manifest.json"))
}

/// Shard `k`'s file name.
pub fn shard_path(out: &Path, prefix: &str, k: usize) -> PathBuf {
    out.join(format!("{prefix}{k:04}.tfrecord"))
}

/// Events for a progress display.
pub enum Event<'a> {
    /// A video begins (its position in the input list).
    Video(usize, &'a Path),
    /// Frames done of the video's sampled frames.
    Frames(usize, usize),
    /// A video ended (written or skipped).
    VideoDone(usize),
}

/// Writes (or keeps) the run's manifest in `out`, refusing a directory whose shards come from
/// other videos or options: a resumed run continues only its own extraction.
fn claim_output(out: &Path, inputs: &[Input], opts: &WriteOptions) -> Result<(), ExtractError> {
    let per = opts.videos_per_shard.max(1);
    let manifest = Manifest {
        options: WriteOptions {
            skip_bad_videos: false,
            ..opts.clone()
        },
        inputs: inputs.to_vec(),
    };
    let mpath = manifest_path(out, &opts.prefix);
    if mpath.exists() {
        let old: Option<Manifest> = std::fs::read(&mpath)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        // A manifest whose run wrote no shard protects nothing: a different run may take over.
        let wrote_any = old.as_ref().is_some_and(|m| {
            let per = m.options.videos_per_shard.max(1);
            (0..m.inputs.len().div_ceil(per))
                .any(|k| shard_path(out, &m.options.prefix, k).exists())
        });
        if old.as_ref() != Some(&manifest) && (wrote_any || old.is_none()) {
            return Err(ExtractError::Files {
                kind: ErrorKind::InvalidInput,
                path: mpath,
                message: "this directory holds an extraction of other videos or with other \
                          options: give another --out, another --prefix, or delete its shards \
                          and this file to start over"
                    .into(),
            });
        }
        if old.as_ref() != Some(&manifest) {
            let json = serde_json::to_vec_pretty(&manifest).expect("plain data");
            write_atomic(&mpath, &json)?;
        }
    } else {
        // Shards without a manifest were not written by this run's inputs: never mixed in.
        if (0..inputs.len().div_ceil(per)).any(|k| shard_path(out, &opts.prefix, k).exists()) {
            return Err(ExtractError::Files {
                kind: ErrorKind::InvalidInput,
                path: shard_path(out, &opts.prefix, 0),
                message: format!(
                    "already exists without {}: give another --out or --prefix",
                    mpath.display()
                ),
            });
        }
        let json = serde_json::to_vec_pretty(&manifest).expect("plain data");
        write_atomic(&mpath, &json)?;
    }
    Ok(())
}

/// Extracts every input into shards under `out`, resuming where a run with the same inputs
/// and options stopped.
pub fn extract_all(
    ex: &Extractor,
    inputs: &[Input],
    out: &Path,
    opts: &WriteOptions,
    on_event: &mut dyn FnMut(Event),
) -> Result<Summary, ExtractError> {
    let per = opts.videos_per_shard.max(1);
    std::fs::create_dir_all(out).map_err(|e| ExtractError::Files {
        kind: ErrorKind::of_io(&e),
        path: out.to_path_buf(),
        message: format!("cannot create the output directory ({e})"),
    })?;
    claim_output(out, inputs, opts)?;
    let sampling = opts.sampling();
    let mut s = Summary::default();
    for (k, chunk) in inputs.chunks(per).enumerate() {
        let path = shard_path(out, &opts.prefix, k);
        if path.exists() {
            for i in 0..chunk.len() {
                on_event(Event::VideoDone(k * per + i));
            }
            s.shards_kept.push(path);
            continue;
        }
        let mut file = AtomicFile::create(&path)?;
        let mut framed = Vec::new();
        for (j, input) in chunk.iter().enumerate() {
            let i = k * per + j;
            on_event(Event::Video(i, &input.path));
            let r = ex.video(&input.path, &sampling, &mut |done, total| {
                on_event(Event::Frames(done, total))
            });
            let f = match r {
                Ok(f) => f,
                // Only the video's own faults: a missing FFmpeg would otherwise "skip" them all.
                Err(e) if opts.skip_bad_videos && e.is_bad_video() => {
                    tracing::warn!("skipped {}: {e}", input.path.display());
                    s.bad_videos.push((input.path.clone(), e.to_string()));
                    on_event(Event::VideoDone(i));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let rec = encode_record(input, &f, opts.level);
            framed.clear();
            yt8m_data::tfrecord::frame_record(&rec, &mut framed);
            file.write_all(&framed)
                .map_err(|e| crate::Error::io(&path, e))?;
            s.videos_written += 1;
            s.frames_written += f.frames;
            on_event(Event::VideoDone(i));
        }
        file.commit()?;
        s.shards_written.push(path);
    }
    Ok(s)
}
