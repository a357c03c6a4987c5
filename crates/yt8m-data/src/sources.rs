//! Input paths → shard files, and shard files → videos. Accepts files, directories, glob
//! patterns and list files (`.list`/`.txt`, one path per line as PaddleVideo writes them,
//! joined with `data_prefix`). Shards are TFRecords (official layout) or PaddleVideo pickles.

use super::pickle::{self, Value};
use super::tfrecord::{MappedRecords, RecordReader, ShardBytes};
use super::video::{FeatureSpec, Level, Video, VideoFeatures, decode_video, decode_video_mapped};
use crate::error::{DataError, DataErrorKind, Location};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardKind {
    TfRecord,
    /// PaddleVideo pickle: one dict per file (split) or a list of dicts (per shard).
    Pickle,
}

pub fn shard_kind(path: &Path) -> ShardKind {
    match path.extension().and_then(|e| e.to_str()) {
        Some("pkl") | Some("pickle") => ShardKind::Pickle,
        _ => ShardKind::TfRecord,
    }
}

fn is_list_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("list") | Some("txt")
    )
}

fn is_shard_name(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("tfrecord") | Some("tfrecords") | Some("tfrec") | Some("pkl") | Some("pickle")
    )
}

/// Expands user paths into an ordered, de-duplicated list of shard files.
/// `data_prefix` (PaddleVideo's key) is joined to relative entries of list files.
///
/// Inputs are OS strings: a file name that is not UTF-8 (legal on Unix) is taken as written.
/// Only a UTF-8 input can be a glob pattern (the pattern language is text); a non-UTF-8 one is
/// a file, directory or list file.
pub fn expand_paths(
    inputs: &[impl AsRef<std::ffi::OsStr>],
    data_prefix: Option<&Path>,
) -> Result<Vec<PathBuf>, DataError> {
    let mut out: Vec<PathBuf> = Vec::new();
    for input in inputs {
        let p = PathBuf::from(input.as_ref());
        let pattern = input.as_ref().to_str().filter(|_| !p.exists());
        if let Some(input) = pattern.filter(|s| s.contains("**")) {
            out.extend(recursive_glob(input)?);
        } else if let Some(input) = pattern.filter(|s| s.contains(['*', '?', '['])) {
            let paths = glob::glob(input).map_err(|e| {
                DataError::new(
                    DataErrorKind::Empty,
                    Location::file(input),
                    format!("bad glob pattern: {e}"),
                )
            })?;
            let mut found: Vec<PathBuf> = paths
                .filter_map(|r| r.ok())
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(DataError::new(
                    DataErrorKind::Empty,
                    Location::file(input),
                    "glob pattern matches no files",
                )
                .hint("check the pattern (quote it so the shell does not expand it)"));
            }
            out.extend(found);
        } else if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| DataError::io(&p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_shard_name(p))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(DataError::new(DataErrorKind::Empty, Location::file(&p), "directory holds no .tfrecord or .pkl files")
                    .hint("point at the shard files, a glob such as 'DIR/train*.tfrecord', or a .list file"));
            }
            out.extend(found);
        } else if is_list_file(&p) {
            let text = crate::files::read_regular_text(&p, 1 << 30, "PaddleVideo .list")?;
            let base = data_prefix
                .map(Path::to_path_buf)
                .unwrap_or_else(|| p.parent().unwrap_or(Path::new(".")).to_path_buf());
            let mut n = 0;
            for line in text.lines() {
                // PaddleVideo's FeatureDataset: `filename = line.strip()` — the whole line,
                // surrounding whitespace removed, spaces inside kept. Blank lines are skipped
                // (PaddleVideo would fail on them later, opening "").
                let entry = line.trim();
                if entry.is_empty() {
                    continue;
                }
                let e = PathBuf::from(entry);
                out.push(if e.is_absolute() { e } else { base.join(e) });
                n += 1;
            }
            if n == 0 {
                return Err(DataError::new(
                    DataErrorKind::Empty,
                    Location::file(&p),
                    "list file has no entries",
                ));
            }
        } else if p.is_file() {
            out.push(p);
        } else if p.exists() {
            return Err(not_regular(&p));
        } else {
            return Err(DataError::new(
                DataErrorKind::NotFound,
                Location::file(&p),
                "no such file or directory",
            )
            .hint("give shard files, directories, glob patterns or .list files"));
        }
    }
    // List-file entries were taken as written: a FIFO or device there would block or never end.
    if let Some(p) = out.iter().find(|p| p.exists() && !p.is_file()) {
        return Err(not_regular(p));
    }
    // The same file under two names (a symlink, `./x` and `x`, a hard link) is read once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(file_identity(p)));
    if out.is_empty() {
        return Err(DataError::new(
            DataErrorKind::Empty,
            Location::file("<inputs>"),
            "no input files given",
        ));
    }
    Ok(out)
}

/// (device, inode) where the file system tells it, else the path as written.
fn file_identity(p: &Path) -> (u64, u64, PathBuf) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(p) {
            return (m.dev(), m.ino(), PathBuf::new());
        }
    }
    (0, 0, p.to_path_buf())
}

/// Deepest directory a `**` pattern descends into.
const MAX_GLOB_DEPTH: usize = 64;

/// Expands a pattern with `**` by walking the directory below its fixed prefix ourselves: the
/// glob crate follows symlinked directories without noticing cycles (`DIR/up -> ..` made
/// `DIR/**/*.tfrecord` read one file 41 times, and two such links grow exponentially). A
/// directory that is its own ancestor (same device and inode) is a cycle and refused, naming it.
/// A directory reached again by another way that is not its own ancestor (a symlink to a
/// sibling) is searched once. Depth is bounded; no recursion (an explicit stack).
fn recursive_glob(pattern: &str) -> Result<Vec<PathBuf>, DataError> {
    let bad = |m: String| DataError::new(DataErrorKind::Empty, Location::file(pattern), m);
    let matcher = glob::Pattern::new(pattern).map_err(|e| bad(format!("bad glob pattern: {e}")))?;
    // The walk starts at the longest leading run of components without wildcards.
    let mut base = PathBuf::new();
    for c in Path::new(pattern).components() {
        let s = c.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[']) {
            break;
        }
        base.push(c);
    }
    if base.as_os_str().is_empty() {
        base = PathBuf::from(".");
    }
    let strip_dot = !pattern.starts_with("./") && base == Path::new(".");
    let opts = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    let mut found = Vec::new();
    let mut visited = std::collections::HashSet::new();
    // Each entry: a directory and the identities of the directories above it on this path.
    let mut stack = vec![(base.clone(), Vec::new())];
    while let Some((dir, ancestors)) = stack.pop() {
        let depth = ancestors.len();
        let id = file_identity(&dir);
        if ancestors.contains(&id) {
            return Err(bad(format!(
                "{} leads back to a directory already searched (a symlink cycle)",
                dir.display()
            ))
            .hint("remove the looping symlink, or narrow the pattern so '**' does not cross it"));
        }
        if !visited.insert(id.clone()) {
            continue; // already searched by another way
        }
        if depth > MAX_GLOB_DEPTH {
            return Err(bad(format!(
                "'**' descends more than {MAX_GLOB_DEPTH} directories below {}",
                base.display()
            )));
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue; // unreadable directories are skipped, as glob does
        };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries.into_iter().rev() {
            let shown = if strip_dot {
                e.strip_prefix(".")
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|_| e.clone())
            } else {
                e.clone()
            };
            if e.is_dir() {
                let mut up = ancestors.clone();
                up.push(id.clone());
                stack.push((e, up));
            } else if e.is_file() && matcher.matches_path_with(&shown, opts) {
                found.push(shown);
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(bad("glob pattern matches no files".into())
            .hint("check the pattern (quote it so the shell does not expand it)"));
    }
    Ok(found)
}

fn not_regular(p: &Path) -> DataError {
    DataError::new(
        DataErrorKind::Io,
        Location::file(p),
        "is not a regular file (a FIFO, device or socket)",
    )
    .hint("give shard files, directories, glob patterns or .list files; copy streamed data to a file first")
}

/// Counts of what a read skipped (only with `skip_corrupt`).
#[derive(Debug, Default)]
pub struct ReadStats {
    pub records: usize,
    pub skipped: Vec<DataError>,
    /// Frame-level videos with no frames, left out of batches (ids, for the report).
    pub zero_frames: Vec<String>,
    /// Byte ranges skipped to resynchronise after broken record headers, one line each
    /// (file, bytes, records read after them).
    pub resyncs: Vec<String>,
    /// Frame-level videos whose modalities have different frame counts (within max_frames):
    /// read as the official reader does (length from rgb; a shorter modality padded with 0.0
    /// after dequantization, a longer one cut), and counted here so it is reported.
    pub frame_count_mismatch: usize,
    /// The first such video, for the message.
    pub frame_count_example: Option<String>,
}

impl ReadStats {
    pub fn merge(&mut self, other: ReadStats) {
        self.records += other.records;
        self.skipped.extend(other.skipped);
        self.zero_frames.extend(other.zero_frames);
        self.resyncs.extend(other.resyncs);
        self.frame_count_mismatch += other.frame_count_mismatch;
        if self.frame_count_example.is_none() {
            self.frame_count_example = other.frame_count_example;
        }
    }

    /// A warning about modalities of unequal length, if any were read.
    pub fn frame_count_warning(&self) -> Option<String> {
        (self.frame_count_mismatch > 0).then(|| {
            format!(
                "{} video(s) have modalities with different frame counts, e.g. {}; read as the official reader does: the length comes from the first modality (rgb), a shorter one is padded with 0.0, a longer one cut",
                self.frame_count_mismatch,
                self.frame_count_example.as_deref().unwrap_or("?")
            )
        })
    }

    /// Lines for a report: every skipped record and byte range (empty when nothing was lost).
    pub fn loss_report(&self) -> Vec<String> {
        let mut v: Vec<String> = self.skipped.iter().map(|e| e.to_string()).collect();
        v.extend(self.resyncs.iter().cloned());
        v
    }
}

/// Where a shard reader leaves each video's uint8 frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameStore {
    /// Copied out into the video's own arrays ([`VideoFeatures::Frames`]).
    #[default]
    Copied,
    /// Left in the memory-mapped file ([`VideoFeatures::Mapped`]; see [`MappedRecords`] for
    /// the one hazard). Falls back to `InRecord` where a file cannot be mapped usefully and
    /// with `skip_corrupt` (skipping needs the resynchronising reader).
    Mapped,
    /// Left in the buffer the record was read into ([`VideoFeatures::Mapped`] over
    /// [`ShardBytes::Record`]): no copy after the read, and nothing is mapped. A video that
    /// keeps less than half of its record's bytes (`max_frames` cut most frames) is copied
    /// out instead, so the record's bytes are not held for nothing.
    InRecord,
}

enum Source {
    TfRecord {
        reader: RecordReader,
        buf: Vec<u8>,
        in_record: bool,
    },
    Mapped(MappedRecords),
    Pickle(PickleVideos),
}

/// The videos of one shard in file order, as an iterator. With `skip_corrupt`, bad records are
/// skipped and kept in [`ShardVideos::stats`]; otherwise the first one is yielded as the error
/// and the iteration ends. A file with no record at all is an `Empty` error.
pub struct ShardVideos {
    path: std::path::PathBuf,
    spec: FeatureSpec,
    skip_corrupt: bool,
    source: Source,
    stats: ReadStats,
    done: bool,
}

/// Opens a shard (TFRecord or PaddleVideo pickle) for reading video by video.
pub fn videos(
    path: &Path,
    spec: &FeatureSpec,
    skip_corrupt: bool,
) -> Result<ShardVideos, DataError> {
    videos_with(path, spec, skip_corrupt, FrameStore::Copied)
}

/// [`videos`], with the uint8 frames left where `store` says (pickles always copy).
pub fn videos_with(
    path: &Path,
    spec: &FeatureSpec,
    skip_corrupt: bool,
    store: FrameStore,
) -> Result<ShardVideos, DataError> {
    let source = match shard_kind(path) {
        ShardKind::TfRecord => match (store == FrameStore::Mapped && !skip_corrupt)
            .then(|| MappedRecords::open(path))
            .transpose()?
            .flatten()
        {
            Some(m) => Source::Mapped(m),
            None => Source::TfRecord {
                reader: RecordReader::open(path)?,
                buf: Vec::new(),
                in_record: store != FrameStore::Copied,
            },
        },
        ShardKind::Pickle => Source::Pickle(paddle_pickle_videos(path, spec)?),
    };
    Ok(ShardVideos {
        path: path.to_path_buf(),
        spec: spec.clone(),
        skip_corrupt,
        source,
        stats: ReadStats::default(),
        done: false,
    })
}

impl ShardVideos {
    /// What was read and skipped so far (complete once the iterator is exhausted).
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }
    pub fn into_stats(self) -> ReadStats {
        self.stats
    }

    fn next_tfrecord(&mut self) -> Option<Result<Video, DataError>> {
        let Source::TfRecord {
            reader,
            buf,
            in_record,
        } = &mut self.source
        else {
            return None;
        };
        loop {
            let rec = match reader.next_into(buf) {
                Ok(Some(rec)) => rec,
                Ok(None) => {
                    self.stats.resyncs = reader.skip_report();
                    if self.stats.records == 0
                        && self.stats.skipped.is_empty()
                        && reader.next_index() == 0
                    {
                        return Some(Err(DataError::new(
                            DataErrorKind::Empty,
                            Location::file(&self.path),
                            "file is empty (0 records)",
                        )
                        .hint("remove it from the inputs, or re-create it")));
                    }
                    return None;
                }
                Err(e) if self.skip_corrupt && e.kind == DataErrorKind::Corrupt => {
                    self.stats.skipped.push(e);
                    continue;
                }
                Err(e) => return Some(Err(e)),
            };
            let loc = Location::file(&self.path).record(rec.index, rec.offset);
            let decoded = if *in_record {
                // The buffer becomes the video's; the next record gets a new one.
                let bytes = Arc::new(ShardBytes::Record(std::mem::take(buf)));
                decode_video_mapped(&bytes, 0..bytes.len(), &self.spec, &loc).map(|mut v| {
                    v.release_record_if_mostly_unused();
                    v
                })
            } else {
                decode_video(buf, &self.spec, &loc)
            };
            match decoded {
                Ok(v) => return Some(Ok(v)),
                Err(e) if self.skip_corrupt && e.kind == DataErrorKind::Corrupt => {
                    self.stats.skipped.push(e)
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl ShardVideos {
    fn next_mapped(&mut self) -> Option<Result<Video, DataError>> {
        let Source::Mapped(records) = &mut self.source else {
            return None;
        };
        match records.next_range() {
            Ok(Some((rec, range))) => {
                let loc = Location::file(&self.path).record(rec.index, rec.offset);
                Some(decode_video_mapped(records.map(), range, &self.spec, &loc))
            }
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl Iterator for ShardVideos {
    type Item = Result<Video, DataError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = match &mut self.source {
            Source::TfRecord { .. } => self.next_tfrecord(),
            Source::Mapped(_) => self.next_mapped(),
            Source::Pickle(p) => p.next(),
        };
        match &r {
            Some(Ok(v)) => {
                self.stats.records += 1;
                note_frame_counts(v, &self.spec, &self.path, &mut self.stats);
            }
            Some(Err(_)) | None => self.done = true,
        }
        r
    }
}

/// Reads every video of one shard, in file order, calling `f` for each (a callback over
/// [`videos`]). `f` returns `false` to stop early.
pub fn read_shard(
    path: &Path,
    spec: &FeatureSpec,
    skip_corrupt: bool,
    f: impl FnMut(Video) -> bool,
) -> Result<ReadStats, DataError> {
    read_shard_with(path, spec, skip_corrupt, FrameStore::Copied, f)
}

/// [`read_shard`] over [`videos_with`] (`store`: where the frames are left).
pub fn read_shard_with(
    path: &Path,
    spec: &FeatureSpec,
    skip_corrupt: bool,
    store: FrameStore,
    mut f: impl FnMut(Video) -> bool,
) -> Result<ReadStats, DataError> {
    let mut it = videos_with(path, spec, skip_corrupt, store)?;
    for v in it.by_ref() {
        if !f(v?) {
            break;
        }
    }
    Ok(it.into_stats())
}

fn note_frame_counts(v: &Video, spec: &FeatureSpec, path: &Path, stats: &mut ReadStats) {
    if let VideoFeatures::Frames(_) | VideoFeatures::Mapped(_) = &v.features {
        let rows: Vec<usize> = spec
            .dims
            .iter()
            .enumerate()
            .map(|(m, &d)| v.rows(m, d.max(1)))
            .collect();
        if rows.iter().any(|&r| r != v.num_frames) {
            stats.frame_count_mismatch += 1;
            if stats.frame_count_example.is_none() {
                let names: Vec<String> = spec
                    .frame_names
                    .iter()
                    .zip(&rows)
                    .map(|(n, r)| format!("{n} {r}"))
                    .collect();
                stats.frame_count_example = Some(format!(
                    "{}: video '{}' ({} frames)",
                    path.display(),
                    v.id,
                    names.join(", ")
                ));
            }
        }
    }
}

/// PaddleVideo's layout, for hints.
const LAYOUT_HINT: &str = "PaddleVideo's layout is a dict (or a list of dicts) with keys video, label, feature, audio, nframes, \
                           as written by data/yt8m/tf2pkl.py and split_yt8m.py";

/// The videos of a PaddleVideo pickle, converted one at a time: the file is parsed whole (a
/// pickle has no framing), but frames are copied out per video as they are taken.
pub struct PickleVideos {
    path: std::path::PathBuf,
    spec: FeatureSpec,
    items: std::vec::IntoIter<Value>,
    index: usize,
    /// Frame bytes handed out so far (bounded by the file's size).
    materialised: usize,
    file_len: usize,
    failed: bool,
}

impl Iterator for PickleVideos {
    type Item = Result<Video, DataError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.items.next()?;
        let i = self.index;
        self.index += 1;
        let r = self.video(i, &item);
        self.failed = r.is_err();
        Some(r)
    }
}

impl PickleVideos {
    fn video(&mut self, i: usize, item: &Value) -> Result<Video, DataError> {
        let layout_hint = LAYOUT_HINT;
        let loc = Location::file(&self.path);
        let loc = Location {
            record: Some(i),
            ..loc
        };
        let Some(keys) = item.dict_items() else {
            return Err(DataError::new(
                DataErrorKind::Schema,
                loc,
                format!("item is a {}, not a dict", item.type_name()),
            )
            .hint(layout_hint));
        };
        let key_names: Vec<String> = keys
            .iter()
            .filter_map(|(k, _)| k.as_str_or_bytes())
            .collect();
        let need = |k: &str| -> Result<Value, DataError> {
            item.get(k).ok_or_else(|| {
                DataError::new(
                    DataErrorKind::Schema,
                    loc.clone().key(k),
                    format!("missing key '{k}'; the dict has keys {key_names:?}"),
                )
                .hint(layout_hint)
            })
        };
        let id_value = need("video")?;
        let Some(id) = id_value.as_str_or_bytes() else {
            return Err(DataError::new(
                DataErrorKind::Schema,
                loc.clone().key("video"),
                format!("'video' is a {}, not a string", id_value.type_name()),
            )
            .hint(layout_hint));
        };
        let loc = loc.clone().video(&id);
        let (labels, has_labels) = match item.get("label") {
            None => (Vec::new(), false),
            Some(v) => {
                let list: Vec<i64> = match v.as_list() {
                    Some(l) => l
                        .iter()
                        .map(|x| {
                            x.as_int().ok_or_else(|| {
                                DataError::new(
                                    DataErrorKind::Schema,
                                    loc.clone().key("label"),
                                    format!("a label is a {}, not an int", x.type_name()),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    None => pickle::ndarray(&v).and_then(|a| a.to_i64()).map_err(|e| {
                        DataError::new(
                            DataErrorKind::Schema,
                            loc.clone().key("label"),
                            format!("label is not a list of ints: {}", e.0),
                        )
                    })?,
                };
                let mut labels = Vec::with_capacity(list.len());
                for l in list {
                    if l < 0 || l as usize >= self.spec.num_classes {
                        return Err(DataError::new(
                            DataErrorKind::Schema,
                            loc.clone().key("label"),
                            format!(
                                "label id {l} is outside 0..={} (num_classes {})",
                                self.spec.num_classes.saturating_sub(1),
                                self.spec.num_classes
                            ),
                        ));
                    }
                    labels.push(l as u32);
                }
                (labels, true)
            }
        };
        let nframes = match item.get("nframes") {
            None => None,
            Some(v) => match v.as_int() {
                Some(n) if n >= 0 => Some(n),
                _ => {
                    return Err(DataError::new(
                        DataErrorKind::Schema,
                        loc.clone().key("nframes"),
                        format!("'nframes' is a {}, not a non-negative int", v.type_name()),
                    )
                    .hint(layout_hint));
                }
            },
        };
        let mut feats = Vec::new();
        let mut rows0 = 0;
        for (m, (name, &dim)) in self
            .spec
            .frame_names
            .iter()
            .zip(&self.spec.dims)
            .enumerate()
        {
            // tf2pkl stores rgb under 'feature'.
            let key = if item.get(name).is_some() {
                name.as_str()
            } else if name == "rgb" {
                "feature"
            } else {
                name.as_str()
            };
            let arr = pickle::ndarray(&need(key)?).map_err(|e| {
                DataError::new(DataErrorKind::Schema, loc.clone().key(key), e.0).hint(layout_hint)
            })?;
            if arr.dtype != pickle::DType::U8 || arr.shape.len() != 2 || arr.shape[1] != dim {
                return Err(DataError::new(
                    DataErrorKind::Schema,
                    loc.clone().key(key),
                    format!(
                        "expected uint8 [frames, {dim}], found {:?} {:?}",
                        arr.dtype, arr.shape
                    ),
                )
                .hint("check MODEL.feature_dims; PaddleVideo stores quantized uint8 features"));
            }
            let rows = arr.shape[0];
            if m == 0 {
                rows0 = rows;
            }
            let keep = rows
                .min(self.spec.max_frames)
                .min(nframes.map(|n| n as usize).unwrap_or(usize::MAX));
            self.materialised = self.materialised.saturating_add(keep * dim);
            if self.materialised > self.file_len {
                return Err(DataError::new(
                DataErrorKind::Corrupt,
                loc.clone().key(key),
                format!(
                    "the pickle's videos would hold more frame bytes ({}+) than the {}-byte file: the same array is referenced by several videos",
                        self.materialised, self.file_len
                ),
            )
            .hint("PaddleVideo writes each video's frames once; re-create the file with data/yt8m/tf2pkl.py"));
            }
            feats.push(arr.data[..keep * dim].to_vec());
        }
        let num_frames = rows0
            .min(self.spec.max_frames)
            .min(nframes.map(|n| n as usize).unwrap_or(usize::MAX));
        Ok(Video {
            id,
            labels,
            has_labels,
            features: VideoFeatures::Frames(feats),
            num_frames,
            total_frames: rows0,
            segments: None,
        })
    }
}

/// Reads a PaddleVideo pickle (`data/yt8m/tf2pkl.py` per-shard list or `split_yt8m.py`
/// per-video dict): keys `video`, `label`, `feature` (rgb uint8 [n,1024]), `audio`
/// (uint8 [n,128]), `nframes`; str or bytes keys.
pub fn paddle_pickle_videos(path: &Path, spec: &FeatureSpec) -> Result<PickleVideos, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if bytes.is_empty() {
        return Err(DataError::new(
            DataErrorKind::Empty,
            Location::file(path),
            "file is empty",
        ));
    }
    let layout_hint = LAYOUT_HINT;
    let root = pickle::loads(&bytes).map_err(|e| {
        DataError::new(
            DataErrorKind::Corrupt,
            Location::file(path),
            format!("not a readable pickle: {}", e.0),
        )
        .hint(layout_hint)
    })?;
    // The values hold their own copies: the file's bytes can go before frames are copied out.
    let file_len = bytes.len();
    drop(bytes);
    // A pickle can reference one array from many videos (memo GET), so what it materialises is
    // bounded by what the file holds: each byte of frames may be used once.
    let items = match &root {
        Value::List(l) => l.borrow().clone(),
        v if v.dict_items().is_some() => vec![v.clone()],
        other => {
            return Err(DataError::new(
                DataErrorKind::Schema,
                Location::file(path),
                format!(
                    "pickle holds a {}, not a dict or list of dicts",
                    other.type_name()
                ),
            )
            .hint(layout_hint));
        }
    };
    if spec.level != Level::Frame {
        return Err(DataError::new(DataErrorKind::Schema, Location::file(path), "PaddleVideo pickles hold frame-level features, but the model expects video-level features")
            .hint("use a frame-level model config"));
    }
    Ok(PickleVideos {
        path: path.to_path_buf(),
        spec: spec.clone(),
        items: items.into_iter(),
        index: 0,
        materialised: 0,
        file_len,
        failed: false,
    })
}

/// Every video of a PaddleVideo pickle.
pub fn read_paddle_pickle(path: &Path, spec: &FeatureSpec) -> Result<Vec<Video>, DataError> {
    paddle_pickle_videos(path, spec)?.collect()
}

/// The segment examples a [`crate::batch::Loader`] with `segments` makes of `path` (rated
/// start times within the frames read): this reads every record whole, frames included.
pub fn count_segment_examples(path: &Path, spec: &FeatureSpec) -> Result<usize, DataError> {
    let mut n = 0;
    read_shard(path, spec, false, |v| {
        n += v.rated_starts(spec.num_classes).map_or(0, |r| r.len());
        true
    })?;
    Ok(n)
}

/// Number of videos in a shard without decoding: TFRecord framing only (seeks over payloads),
/// PaddleVideo pickles by loading them.
pub fn count_records(path: &Path) -> Result<usize, DataError> {
    use std::io::{Read, Seek, SeekFrom};
    match shard_kind(path) {
        ShardKind::Pickle => {
            let spec = FeatureSpec {
                num_classes: usize::MAX,
                max_frames: 0,
                ..Default::default()
            };
            Ok(read_paddle_pickle(path, &spec)?.len())
        }
        ShardKind::TfRecord => {
            let mut f = std::io::BufReader::new(
                std::fs::File::open(path).map_err(|e| DataError::io(path, e))?,
            );
            let mut n = 0;
            let mut hdr = [0u8; 12];
            loop {
                match f.read_exact(&mut hdr) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(n),
                    Err(e) => return Err(DataError::io(path, e)),
                }
                let len = u64::from_le_bytes(hdr[..8].try_into().unwrap());
                f.seek(SeekFrom::Current(len as i64 + 4))
                    .map_err(|e| DataError::io(path, e))?;
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthConfig, write_synthetic};
    use crate::tfrecord::ShardBytes;

    /// Frames left in the record's buffer read the same as copied ones; the buffer is kept
    /// only while the video uses most of it.
    #[test]
    fn frames_left_in_their_record_equal_copied_ones_and_release_it_when_cut() {
        let dir = std::env::temp_dir().join(format!("yt8m-inrecord-{}", std::process::id()));
        let cfg = SynthConfig {
            num_videos: 12,
            num_shards: 1,
            min_frames: 20,
            max_frames: 40,
            ..SynthConfig::default()
        };
        let file = write_synthetic(&dir, &cfg).unwrap().files[0].clone();
        for (max_frames, held) in [(300, true), (5, false)] {
            let spec = FeatureSpec {
                max_frames,
                num_classes: cfg.num_classes,
                ..FeatureSpec::default()
            };
            let read = |store| {
                let mut out = Vec::new();
                read_shard_with(&file, &spec, false, store, |v| {
                    out.push(v);
                    true
                })
                .unwrap();
                out
            };
            let (copied, in_record) = (read(FrameStore::Copied), read(FrameStore::InRecord));
            // (Frames and Mapped features are different variants: compare what they hold.)
            let content = |vs: &[Video]| -> Vec<(String, Vec<u32>, usize, Vec<Vec<u8>>)> {
                vs.iter()
                    .map(|v| {
                        let frames = [1024, 128]
                            .iter()
                            .enumerate()
                            .map(|(m, &d)| {
                                let mut out = vec![0; v.rows(m, d) * d];
                                assert!(v.copy_frames(m, d, v.rows(m, d), &mut out));
                                out
                            })
                            .collect();
                        (v.id.clone(), v.labels.clone(), v.num_frames, frames)
                    })
                    .collect()
            };
            assert_eq!(copied.len(), 12);
            assert!(
                content(&copied) == content(&in_record),
                "max_frames {max_frames}: frames differ"
            );
            for v in &in_record {
                let kept = matches!(&v.features,
                    VideoFeatures::Mapped(f) if matches!(*f.map, ShardBytes::Record(_)));
                assert_eq!(kept, held, "max_frames {max_frames}: {:?}", v.features);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
