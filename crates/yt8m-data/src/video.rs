//! One YouTube-8M video decoded from a TFRecord payload, with the official reader's semantics
//! (google/youtube-8m `readers.py`: `YT8MFrameFeatureReader`, `YT8MAggregatedFeatureReader`).
//! Frame features stay uint8; they are dequantized late, on the model's device.

use super::proto::{self, Feature, ParsedExample};
use crate::error::{DataError, DataErrorKind, Location};
use crate::tfrecord::ShardBytes;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;

/// Official dequantization constants, computed as the TF reader does: in f32, scale then bias
/// as two separate ops (`q * f32(4/255) + f32(4/512 - 2)`). Not "fixed": the +4/512 offset is
/// the reference's quirk.
pub const DEQ_SCALE: f32 = (4.0f64 / 255.0) as f32;
pub const DEQ_BIAS: f32 = -1.9921875;

#[inline]
pub fn dequantize(q: u8) -> f32 {
    q as f32 * DEQ_SCALE + DEQ_BIAS
}

/// Which kind of record the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// `tf.train.SequenceExample` with one uint8 byte string per frame.
    #[default]
    Frame,
    /// `tf.train.Example` with `mean_rgb` / `mean_audio` floats.
    Video,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Frame => "frame",
            Level::Video => "video",
        })
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "frame" => Ok(Level::Frame),
            "video" => Ok(Level::Video),
            other => Err(format!("'{other}' is not a level: use frame or video")),
        }
    }
}

/// How to read a record: feature names and widths come from the model config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub level: Level,
    /// Frame-level feature list names, e.g. `["rgb", "audio"]`.
    pub frame_names: Vec<String>,
    /// Video-level feature names, e.g. `["mean_rgb", "mean_audio"]`.
    pub mean_names: Vec<String>,
    /// Width of each modality, e.g. `[1024, 128]`.
    pub dims: Vec<usize>,
    pub num_classes: usize,
    /// Keep the first `max_frames` frames (official reader: 300).
    pub max_frames: usize,
}

impl Default for FeatureSpec {
    fn default() -> Self {
        FeatureSpec {
            level: Level::Frame,
            frame_names: vec!["rgb".into(), "audio".into()],
            mean_names: vec!["mean_rgb".into(), "mean_audio".into()],
            dims: vec![1024, 128],
            num_classes: 3862,
            max_frames: 300,
        }
    }
}

/// 2019 segment ratings (parallel lists).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Segments {
    pub start_times: Vec<i64>,
    pub labels: Vec<i64>,
    pub scores: Vec<f32>,
}

/// Where one modality's frames are, for [`VideoFeatures::Mapped`].
#[derive(Debug, Clone, PartialEq)]
pub enum FrameSpan {
    /// `rows` frames of `width` bytes, the first at byte `offset` of the map, each `stride`
    /// bytes after the previous (the protobuf framing between frames is constant when every
    /// frame has the same width, as the official writer makes them).
    InPlace {
        offset: usize,
        stride: usize,
        rows: usize,
        width: usize,
    },
    /// Frames whose framing is irregular (legal protobuf, e.g. non-minimal varints), copied
    /// out: `[rows, width]`.
    Copied { data: Vec<u8>, width: usize },
}

impl FrameSpan {
    pub fn rows(&self) -> usize {
        match self {
            FrameSpan::InPlace { rows, .. } => *rows,
            FrameSpan::Copied { data, width } => data.len() / (*width).max(1),
        }
    }
}

/// uint8 frames left where they were read ([`decode_video_mapped`]): in a memory-mapped shard,
/// or in the buffer the record was read into; no copy was made.
#[derive(Clone)]
pub struct MappedFrames {
    pub map: Arc<ShardBytes>,
    /// One per modality.
    pub spans: Vec<FrameSpan>,
}

impl MappedFrames {
    /// Bytes per frame of modality `m`.
    pub fn row_width(&self, m: usize) -> usize {
        match &self.spans[m] {
            FrameSpan::InPlace { width, .. } | FrameSpan::Copied { width, .. } => *width,
        }
    }

    /// Frame `r` of modality `m`.
    pub fn row(&self, m: usize, r: usize) -> &[u8] {
        match &self.spans[m] {
            FrameSpan::InPlace {
                offset,
                stride,
                width,
                ..
            } => {
                let at = offset + r * stride;
                &self.map[at..at + width]
            }
            FrameSpan::Copied { data, width } => &data[r * width..(r + 1) * width],
        }
    }
}

impl std::fmt::Debug for MappedFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFrames")
            .field("map_len", &self.map.len())
            .field("spans", &self.spans)
            .finish()
    }
}

impl PartialEq for MappedFrames {
    /// Same frames, wherever they lie.
    fn eq(&self, o: &Self) -> bool {
        self.spans.len() == o.spans.len()
            && (0..self.spans.len()).all(|m| {
                let n = self.spans[m].rows();
                n == o.spans[m].rows() && (0..n).all(|r| self.row(m, r) == o.row(m, r))
            })
    }
}

/// Per-modality features of one video.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoFeatures {
    /// uint8 `[rows_m, dim_m]` per modality, rows capped at `max_frames`.
    Frames(Vec<Vec<u8>>),
    /// uint8 frames still where they were read, in a memory-mapped shard or in the record's
    /// buffer (`rows_m` per modality, capped at `max_frames`); only [`decode_video_mapped`]
    /// makes these.
    Mapped(MappedFrames),
    /// f32 `[dim_m]` per modality.
    Mean(Vec<Vec<f32>>),
    /// Already dequantized frames, f32 `[rows_m, dim_m]` per modality (`.npy` input).
    FloatFrames(Vec<Vec<f32>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    pub id: String,
    /// Sorted as stored; empty for the test split.
    pub labels: Vec<u32>,
    /// False when the record has no `labels` key (test split).
    pub has_labels: bool,
    pub features: VideoFeatures,
    /// Frames used (min(rgb frames, max_frames)); 1 for video-level.
    pub num_frames: usize,
    /// Frames stored in the record for the first modality (before the cap).
    pub total_frames: usize,
    pub segments: Option<Segments>,
}

impl Video {
    /// Rows kept for modality `m` (frame level); may differ from `num_frames` for audio.
    pub fn rows(&self, m: usize, dim: usize) -> usize {
        match &self.features {
            VideoFeatures::Frames(f) => f[m].len() / dim,
            VideoFeatures::Mapped(f) => f.spans[m].rows(),
            VideoFeatures::FloatFrames(f) => f[m].len() / dim,
            VideoFeatures::Mean(_) => 1,
        }
    }

    /// Copies the first `rows` uint8 frames of modality `m` (`dim` wide) into `out`
    /// (`rows * dim` bytes), with `store`'s kind of stores. False when the video holds no
    /// uint8 frames.
    pub fn copy_frames(
        &self,
        m: usize,
        dim: usize,
        rows: usize,
        out: &mut [u8],
        store: crate::stream::Store,
    ) -> bool {
        match &self.features {
            VideoFeatures::Frames(f) => store.copy(out, &f[m][..rows * dim]),
            VideoFeatures::Mapped(f) => match &f.spans[m] {
                // One bounds check for all rows: per-row slicing cost as much as the copy for
                // audio's 128-byte frames.
                FrameSpan::InPlace {
                    offset,
                    stride,
                    width,
                    ..
                } if *width == dim => store.copy_rows(out, &f.map[*offset..], rows, dim, *stride),
                _ => {
                    for (r, dst) in out.chunks_exact_mut(dim).take(rows).enumerate() {
                        store.copy(dst, f.row(m, r));
                    }
                }
            },
            _ => return false,
        }
        true
    }

    /// The file, when the guarded map this video's frames lie in lost pages
    /// ([`crate::mapguard`]): frames copied from it since may be zeros instead of the file's.
    pub fn source_truncated(&self) -> Option<&std::path::Path> {
        match &self.features {
            VideoFeatures::Mapped(f) => f.map.truncated(),
            _ => None,
        }
    }

    /// Copies frames left in a record's buffer ([`ShardBytes::Record`]) out of it when they are
    /// less than half of its bytes (`max_frames` cut most of them), so the video does not
    /// hold the whole record for them. Frames in a mapped file stay (the map costs nothing).
    pub fn release_record_if_mostly_unused(&mut self) {
        let VideoFeatures::Mapped(f) = &self.features else {
            return;
        };
        if !matches!(*f.map, ShardBytes::Record(_)) {
            return;
        }
        let kept: usize = f
            .spans
            .iter()
            .map(|s| match s {
                FrameSpan::InPlace { rows, width, .. } => rows * width,
                FrameSpan::Copied { .. } => 0,
            })
            .sum();
        if kept * 2 >= f.map.len() {
            return;
        }
        let frames = (0..f.spans.len())
            .map(|m| {
                let rows = f.spans[m].rows();
                let mut out = Vec::with_capacity(rows * f.row_width(m));
                for r in 0..rows {
                    out.extend_from_slice(f.row(m, r));
                }
                out
            })
            .collect();
        self.features = VideoFeatures::Frames(frames);
    }

    /// Frames `[start, start + len)` of a frame-level video as a video of their own (the 2019
    /// segment task scores each 5-frame segment this way), with `num_frames` the frames that
    /// exist there (fewer than `len` at the end, as the starter's `get_segments` counts them).
    /// `dims` are the modality widths. None for video-level features or an empty window.
    pub fn window(&self, start: usize, len: usize, dims: &[usize]) -> Option<Video> {
        if start >= self.num_frames {
            return None;
        }
        let end = (start + len).min(self.num_frames);
        let slice = |rows: usize| (start.min(rows), end.min(rows));
        // Rows [start, end) of each modality's `[rows, dim]` matrix (audio may have fewer).
        fn rows_of<T: Clone>(
            f: &[Vec<T>],
            dims: &[usize],
            start: usize,
            end: usize,
        ) -> Vec<Vec<T>> {
            dims.iter()
                .enumerate()
                .map(|(m, &d)| {
                    let rows = f[m].len() / d.max(1);
                    f[m][start.min(rows) * d..end.min(rows) * d].to_vec()
                })
                .collect()
        }
        let features = match &self.features {
            VideoFeatures::Frames(f) => VideoFeatures::Frames(rows_of(f, dims, start, end)),
            VideoFeatures::Mapped(f) => VideoFeatures::Frames(
                dims.iter()
                    .enumerate()
                    .map(|(m, &d)| {
                        let (a, b) = slice(f.spans[m].rows());
                        let mut out = Vec::with_capacity((b - a) * d);
                        for r in a..b {
                            out.extend_from_slice(f.row(m, r));
                        }
                        out
                    })
                    .collect(),
            ),
            VideoFeatures::FloatFrames(f) => {
                VideoFeatures::FloatFrames(rows_of(f, dims, start, end))
            }
            VideoFeatures::Mean(_) => return None,
        };
        Some(Video {
            id: self.id.clone(),
            labels: self.labels.clone(),
            has_labels: self.has_labels,
            features,
            num_frames: end - start,
            total_frames: end - start,
            segments: None,
        })
    }
}

/// One training example of the 2019 segment task: a rated start time and the classes rated
/// positive there.
#[derive(Debug, Clone, PartialEq)]
pub struct RatedStart {
    pub start: usize,
    /// Classes with a rating > 0 at this start, sorted (empty: rated negative only).
    pub labels: Vec<u32>,
}

impl Video {
    /// The rated start times of this video as the starter's reader makes segment examples
    /// (readers.py, `segment_labels=True`): one per distinct `segment_start_times` value, in
    /// order of first appearance (`tf.unique`), labelled with the classes rated > 0 there.
    /// Starts at or past the frames read are left out (the starter would read zero padding
    /// there). Errors name the offending value: a negative start or a class outside
    /// `0..num_classes`.
    pub fn rated_starts(&self, num_classes: usize) -> Result<Vec<RatedStart>, String> {
        let Some(s) = &self.segments else {
            return Ok(Vec::new());
        };
        let mut out: Vec<RatedStart> = Vec::new();
        let mut at: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
        for ((&start, &label), &score) in s.start_times.iter().zip(&s.labels).zip(&s.scores) {
            if start < 0 {
                return Err(format!("segment start time {start} is negative"));
            }
            if label < 0 || label as u64 >= num_classes as u64 {
                return Err(format!(
                    "segment label {label} is outside 0..={}",
                    num_classes.saturating_sub(1)
                ));
            }
            let i = *at.entry(start).or_insert_with(|| {
                out.push(RatedStart {
                    start: start as usize,
                    labels: Vec::new(),
                });
                out.len() - 1
            });
            if score > 0.0 && !out[i].labels.contains(&(label as u32)) {
                out[i].labels.push(label as u32);
            }
        }
        out.retain(|r| r.start < self.num_frames);
        for r in &mut out {
            r.labels.sort_unstable();
        }
        Ok(out)
    }

    /// [`Self::rated_starts`] as videos of their own: frames `[start, start + len)`, id
    /// `video:start`, labels the classes rated positive.
    pub fn segment_examples(
        &self,
        len: usize,
        dims: &[usize],
        num_classes: usize,
    ) -> Result<Vec<Video>, String> {
        let mut out = Vec::new();
        for r in self.rated_starts(num_classes)? {
            if let Some(mut w) = self.window(r.start, len, dims) {
                w.id = format!("{}:{}", self.id, r.start);
                w.labels = r.labels;
                w.has_labels = true;
                out.push(w);
            }
        }
        Ok(out)
    }
}

pub(crate) fn bytes_to_string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The id, accepting the 2018+ `id` and the 2017 `video_id` keys.
pub fn video_id(p: &ParsedExample) -> Option<(String, &'static str)> {
    for key in ["id", "video_id"] {
        if let Some(Feature::Bytes(v)) = p.feature(key) {
            if let Some(b) = v.first() {
                return Some((bytes_to_string(b), key));
            }
        }
    }
    None
}

fn describe_keys(p: &ParsedExample) -> String {
    let mut s = format!("context/features: [{}]", p.keys().join(", "));
    if p.is_sequence {
        s.push_str(&format!("; feature_lists: [{}]", p.list_keys().join(", ")));
    }
    s
}

/// The id and 2019 segment ratings of one record, reading only its context (any level, any
/// feature widths): what scoring a segment submission needs. None when the record has none of
/// the three segment keys; an error naming the key when they are only partly there, of the
/// wrong type, or of different lengths.
pub fn decode_segments(
    payload: &[u8],
    loc: &Location,
) -> Result<(String, Option<Segments>), DataError> {
    let p = proto::parse_example(payload).map_err(|e| {
        DataError::new(
            DataErrorKind::Corrupt,
            loc.clone(),
            format!("not a valid tf.train.Example/SequenceExample: {}", e.0),
        )
    })?;
    let schema = |loc: Location, msg: String| DataError::new(DataErrorKind::Schema, loc, msg);
    let Some((id, _)) = video_id(&p) else {
        return Err(schema(
            loc.clone().key("id"),
            format!(
                "no 'id' bytes feature; the record has {}",
                describe_keys(&p)
            ),
        ));
    };
    let loc = loc.clone().video(&id);
    Ok((id, segments_of(&p, &loc, true)?))
}

/// The 2019 segment ratings of a parsed record (`loc` names its video). `strict` (scoring a
/// submission): one of the three keys missing or of the wrong type is an error naming it, and
/// empty lists count; otherwise (training and prediction read them in passing) such a record
/// just has no ratings. Lists of different lengths are an error either way.
fn segments_of(
    p: &ParsedExample,
    loc: &Location,
    strict: bool,
) -> Result<Option<Segments>, DataError> {
    const KEYS: [&str; 3] = ["segment_start_times", "segment_labels", "segment_scores"];
    let schema = |loc: Location, msg: String| DataError::new(DataErrorKind::Schema, loc, msg);
    let f: Vec<Option<&Feature>> = KEYS.iter().map(|k| p.feature(k)).collect();
    if f.iter().all(Option::is_none) {
        return Ok(None);
    }
    let (mut ints, mut scores): ([Vec<i64>; 2], Vec<f32>) = Default::default();
    for (i, key) in KEYS.iter().enumerate() {
        match (f[i], i) {
            (Some(Feature::Int64(v)), 0 | 1) => ints[i] = v.clone(),
            (Some(Feature::Float(v)), 2) => scores = v.clone(),
            (Some(Feature::Empty), _) if strict => {}
            _ if !strict => return Ok(None),
            (Some(other), _) => {
                let want = if i < 2 { "int64_list" } else { "float_list" };
                return Err(schema(
                    loc.clone().key(*key),
                    format!("'{key}' is a {}, expected {want}", other.kind_name()),
                ));
            }
            (None, _) => {
                return Err(schema(
                    loc.clone().key(*key),
                    format!("'{key}' is missing while the other segment keys are there"),
                )
                .hint("2019 records carry segment_start_times, segment_labels and segment_scores together"));
            }
        }
    }
    let [start_times, labels] = ints;
    if start_times.len() != labels.len() || labels.len() != scores.len() {
        return Err(schema(
            loc.clone().key(KEYS[0]),
            format!(
                "segment lists differ in length: start_times {}, labels {}, scores {}",
                start_times.len(),
                labels.len(),
                scores.len()
            ),
        ));
    }
    Ok(Some(Segments {
        start_times,
        labels,
        scores,
    }))
}

/// Decodes one payload. `loc` carries file, record index and offset for messages.
pub fn decode_video(
    payload: &[u8],
    spec: &FeatureSpec,
    loc: &Location,
) -> Result<Video, DataError> {
    decode(payload, spec, loc, None)
}

/// [`decode_video`] of the record whose payload is `map[payload]`, leaving uint8 frames in the
/// map ([`VideoFeatures::Mapped`]): the frames are not copied. Video-level records decode as
/// usual.
pub fn decode_video_mapped(
    map: &Arc<ShardBytes>,
    payload: Range<usize>,
    spec: &FeatureSpec,
    loc: &Location,
) -> Result<Video, DataError> {
    decode(&map[payload], spec, loc, Some(map))
}

fn decode(
    payload: &[u8],
    spec: &FeatureSpec,
    loc: &Location,
    mapped: Option<&Arc<ShardBytes>>,
) -> Result<Video, DataError> {
    let schema = |loc: Location, msg: String| DataError::new(DataErrorKind::Schema, loc, msg);
    let p = proto::parse_example(payload).map_err(|e| {
        DataError::new(
            DataErrorKind::Corrupt,
            loc.clone(),
            format!("not a valid tf.train.Example/SequenceExample: {}", e.0),
        )
        .hint("the CRCs passed, so the writer produced something else than YouTube-8M records")
    })?;
    let Some((id, _)) = video_id(&p) else {
        return Err(schema(
            loc.clone().key("id"),
            format!(
                "no 'id' (2018+) or 'video_id' (2017) bytes feature; the record has {}",
                describe_keys(&p)
            ),
        )
        .hint("is this a YouTube-8M file? yt8m inspect PATH shows what it holds"));
    };
    let loc = loc.clone().video(&id);

    let (labels, has_labels) = match p.feature("labels") {
        None => (Vec::new(), false),
        Some(Feature::Int64(v)) => {
            let mut out = Vec::with_capacity(v.len());
            for &l in v {
                if l < 0 || l as u64 >= spec.num_classes as u64 {
                    return Err(schema(loc.key("labels"), format!("label id {l} is outside 0..={} (num_classes {})", spec.num_classes.saturating_sub(1), spec.num_classes))
                        .hint("set model num_classes to the dataset's class count (3862 for 2018, 4716 for 2017)"));
                }
                out.push(l as u32);
            }
            (out, true)
        }
        Some(Feature::Empty) => (Vec::new(), true),
        Some(f) => {
            return Err(schema(
                loc.key("labels"),
                format!("'labels' is a {}, expected int64_list", f.kind_name()),
            ));
        }
    };

    let segments = segments_of(&p, &loc, false)?;

    match spec.level {
        Level::Frame => {
            if !p.is_sequence {
                let means: Vec<_> = spec
                    .mean_names
                    .iter()
                    .filter(|n| p.feature(n).is_some())
                    .cloned()
                    .collect();
                return Err(schema(loc, format!(
                    "this file holds video-level features (a tf.train.Example with {}), but the model expects frame-level features (a SequenceExample with feature lists {:?})",
                    if means.is_empty() { describe_keys(&p) } else { means.join(", ") },
                    spec.frame_names))
                    .hint("train a video-level model on it (configs/logistic_video.yaml, MODEL.level: video), or point data at frame-level shards"));
            }
            let mut feats = Vec::with_capacity(spec.frame_names.len());
            let mut spans = Vec::new();
            let mut num_frames = 0;
            let mut total_frames = 0;
            for (m, (name, &dim)) in spec.frame_names.iter().zip(&spec.dims).enumerate() {
                let Some(list) = p.feature_list(name) else {
                    return Err(schema(
                        loc.key(name.as_str()),
                        format!(
                            "feature list '{name}' is missing; the record has {}",
                            describe_keys(&p)
                        ),
                    )
                    .hint("set MODEL.feature_names / feature_dims to the lists your files hold"));
                };
                // Mapped: frames stay in place while their offsets form one stride; the
                // first irregular one copies those before it and the rest are copied too.
                let base = mapped.map(|m| m.as_ptr() as usize);
                let mut place: Option<(usize, usize)> = None; // (first offset, stride)
                let mut in_place = base.is_some();
                let mut data = if in_place {
                    Vec::new()
                } else {
                    Vec::with_capacity(spec.max_frames.min(400) * dim)
                };
                let n = proto::for_each_frame(list, |i, bytes, nvalues| {
                    if nvalues != 1 {
                        return Err(proto::ProtoError(format!("frame {i} has {nvalues} byte strings, expected exactly 1")));
                    }
                    if bytes.len() != dim {
                        return Err(proto::ProtoError(format!(
                            "frame {i} has {} bytes, expected {dim} (the configured width of '{name}', MODEL.feature_dims)", bytes.len())));
                    }
                    if i >= spec.max_frames {
                        return Ok(());
                    }
                    if in_place {
                        let at = bytes.as_ptr() as usize - base.unwrap_or(0);
                        match place {
                            None if i == 0 => place = Some((at, dim)),
                            Some((first, _)) if i == 1 && at > first => place = Some((first, at - first)),
                            Some((first, stride)) if at == first + i * stride => {}
                            _ => {
                                in_place = false;
                                if let (Some(map), Some((first, stride))) = (mapped, place) {
                                    for r in 0..i {
                                        let at = first + r * stride;
                                        data.extend_from_slice(&map[at..at + dim]);
                                    }
                                }
                            }
                        }
                    }
                    if !in_place {
                        data.extend_from_slice(bytes);
                    }
                    Ok(())
                })
                .map_err(|e| schema(loc.clone().key(name.as_str()), e.0))?;
                if m == 0 {
                    total_frames = n;
                    num_frames = n.min(spec.max_frames);
                }
                if mapped.is_none() {
                    feats.push(data);
                } else if in_place {
                    let (offset, stride) = place.unwrap_or((0, dim));
                    spans.push(FrameSpan::InPlace {
                        offset,
                        stride,
                        rows: n.min(spec.max_frames),
                        width: dim,
                    });
                } else {
                    spans.push(FrameSpan::Copied { data, width: dim });
                }
            }
            let features = match mapped {
                Some(map) => VideoFeatures::Mapped(MappedFrames {
                    map: map.clone(),
                    spans,
                }),
                None => VideoFeatures::Frames(feats),
            };
            Ok(Video {
                id,
                labels,
                has_labels,
                features,
                num_frames,
                total_frames,
                segments,
            })
        }
        Level::Video => {
            if p.is_sequence && spec.mean_names.iter().any(|n| p.feature(n).is_none()) {
                return Err(schema(loc, format!(
                    "this file holds frame-level features (a SequenceExample with feature lists [{}]), but the model expects video-level features {:?}",
                    p.list_keys().join(", "), spec.mean_names))
                    .hint("use a frame-level model config (configs/attention_lstm_youtube8m.yaml), or point data at video-level shards"));
            }
            let mut feats = Vec::with_capacity(spec.mean_names.len());
            for (name, &dim) in spec.mean_names.iter().zip(&spec.dims) {
                match p.feature(name) {
                    Some(Feature::Float(v)) if v.len() == dim => {
                        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                            return Err(DataError::new(
                                DataErrorKind::Corrupt,
                                loc.key(name.as_str()),
                                format!("value {i} is {}: features must be finite", v[i]),
                            )
                            .hint("the record's CRC passed, so its writer stored this value; drop the video, or pass --skip-corrupt (DATASET.skip_corrupt: true) to skip and report such records"));
                        }
                        feats.push(v.clone())
                    }
                    Some(Feature::Float(v)) => {
                        return Err(schema(
                            loc.key(name.as_str()),
                            format!(
                                "has {} floats, expected {dim} (MODEL.feature_dims)",
                                v.len()
                            ),
                        ));
                    }
                    Some(f) => {
                        return Err(schema(
                            loc.key(name.as_str()),
                            format!("is a {}, expected float_list", f.kind_name()),
                        ));
                    }
                    None => {
                        return Err(schema(loc.key(name.as_str()), format!("feature '{name}' is missing; the record has {}", describe_keys(&p)))
                            .hint("set MODEL.feature_names / feature_dims to the features your files hold"));
                    }
                }
            }
            Ok(Video {
                id,
                labels,
                has_labels,
                features: VideoFeatures::Mean(feats),
                num_frames: 1,
                total_frames: 1,
                segments,
            })
        }
    }
}

/// What `inspect` learns from one record without a model config.
#[derive(Debug, Clone)]
pub struct RecordSummary {
    pub level: Level,
    pub id: Option<String>,
    pub id_key: Option<&'static str>,
    pub labels: Option<Vec<i64>>,
    /// Frames per feature list (frame level), e.g. `[("rgb", 170, 1024), ("audio", 170, 128)]`:
    /// name, frame count, width of the first frame.
    pub lists: Vec<(String, usize, usize)>,
    /// Float features with their lengths (video level, or extractor context).
    pub floats: Vec<(String, usize)>,
    pub has_segments: bool,
}

pub fn summarize(payload: &[u8]) -> Result<RecordSummary, proto::ProtoError> {
    let p = proto::parse_example(payload)?;
    let (id, id_key) = match video_id(&p) {
        Some((i, k)) => (Some(i), Some(k)),
        None => (None, None),
    };
    let labels = match p.feature("labels") {
        Some(Feature::Int64(v)) => Some(v.clone()),
        Some(Feature::Empty) => Some(Vec::new()),
        _ => None,
    };
    let mut lists = Vec::new();
    for (k, raw) in &p.feature_lists {
        let mut width = 0;
        let n = proto::for_each_in_list(raw, |i, f| {
            if i == 0 {
                if let Feature::Bytes(v) = &f {
                    width = v.first().map(|b| b.len()).unwrap_or(0);
                }
            }
            Ok(())
        })?;
        lists.push((bytes_to_string(k), n, width));
    }
    let floats = p
        .features
        .iter()
        .filter_map(|(k, f)| match f {
            Feature::Float(v) => Some((bytes_to_string(k), v.len())),
            _ => None,
        })
        .collect();
    Ok(RecordSummary {
        level: if p.is_sequence {
            Level::Frame
        } else {
            Level::Video
        },
        id,
        id_key,
        labels,
        lists,
        floats,
        has_segments: p.feature("segment_start_times").is_some(),
    })
}

#[cfg(test)]
mod segment_tests {
    use super::*;

    fn video(frames: usize, starts: &[i64], labels: &[i64], scores: &[f32]) -> Video {
        Video {
            id: "v".into(),
            labels: vec![1],
            has_labels: true,
            features: VideoFeatures::Frames(vec![
                (0..frames as u8).flat_map(|t| [t, t]).collect(),
                (0..frames as u8).collect(),
            ]),
            num_frames: frames,
            total_frames: frames,
            segments: Some(Segments {
                start_times: starts.to_vec(),
                labels: labels.to_vec(),
                scores: scores.to_vec(),
            }),
        }
    }

    #[test]
    fn rated_starts_follow_the_starters_reader() {
        // Starts in first-seen order (tf.unique); several classes at one start; a negative
        // rating gives an example without positives; a start past the frames is left out.
        let v = video(
            12,
            &[5, 0, 5, 10, 15],
            &[3, 3, 7, 3, 3],
            &[1.0, 0.0, 1.0, 1.0, 1.0],
        );
        let r = v.rated_starts(10).unwrap();
        let got: Vec<(usize, Vec<u32>)> = r.into_iter().map(|r| (r.start, r.labels)).collect();
        assert_eq!(got, vec![(5, vec![3, 7]), (0, vec![]), (10, vec![3])]);
        let ex = v.segment_examples(5, &[2, 1], 10).unwrap();
        assert_eq!(ex.len(), 3);
        assert_eq!(ex[0].id, "v:5");
        assert_eq!(ex[0].labels, vec![3, 7]);
        assert_eq!(ex[2].num_frames, 2); // frames 10, 11
        let VideoFeatures::Frames(f) = &ex[2].features else {
            panic!()
        };
        assert_eq!(f[0], vec![10, 10, 11, 11]);
        assert_eq!(f[1], vec![10, 11]);
        // Hostile values are errors naming them.
        let e = video(12, &[-5], &[3], &[1.0]).rated_starts(10).unwrap_err();
        assert!(e.contains("-5"), "{e}");
        let e = video(12, &[0], &[10], &[1.0]).rated_starts(10).unwrap_err();
        assert!(e.contains("label 10") && e.contains("0..=9"), "{e}");
        assert!(
            video(12, &[], &[], &[])
                .rated_starts(10)
                .unwrap()
                .is_empty()
        );
    }

    /// A SequenceExample with an id, one 2-byte rgb frame and the given context features.
    fn record(ctx: Vec<(&str, Vec<u8>)>) -> Vec<u8> {
        use proto::{EncFeature, encode_feature, encode_sequence_example};
        let mut c = vec![("id", encode_feature(&EncFeature::Bytes(vec![b"v"])))];
        c.extend(ctx);
        let frame = encode_feature(&EncFeature::Bytes(vec![&[1u8, 2][..]]));
        encode_sequence_example(&c, &[("rgb", vec![frame])])
    }

    #[test]
    fn segment_keys_strictly_for_scoring_leniently_for_reading() {
        use proto::{EncFeature, encode_feature};
        let ints = |v: &[i64]| encode_feature(&EncFeature::Int64(v));
        let floats = |v: &[f32]| encode_feature(&EncFeature::Float(v));
        let loc = Location::file("x.tfrecord");
        let spec = FeatureSpec {
            dims: vec![2],
            frame_names: vec!["rgb".into()],
            num_classes: 10,
            ..Default::default()
        };
        let read = |r: &[u8]| decode_video(r, &spec, &loc).map(|v| v.segments);
        // Complete: both read them.
        let ok = record(vec![
            ("segment_start_times", ints(&[0, 5])),
            ("segment_labels", ints(&[3, 3])),
            ("segment_scores", floats(&[1.0, 0.0])),
        ]);
        let (id, s) = decode_segments(&ok, &loc).unwrap();
        assert_eq!(id, "v");
        assert_eq!(s.as_ref().unwrap().labels, vec![3, 3]);
        assert_eq!(read(&ok).unwrap(), s);
        // A key missing or of the wrong type: an error naming it when scoring; no ratings when
        // reading for training or prediction.
        for (bad, needle) in [
            (
                record(vec![
                    ("segment_start_times", ints(&[0])),
                    ("segment_labels", ints(&[3])),
                ]),
                "'segment_scores' is missing",
            ),
            (
                record(vec![
                    ("segment_start_times", floats(&[0.0])),
                    ("segment_labels", ints(&[3])),
                    ("segment_scores", floats(&[1.0])),
                ]),
                "'segment_start_times' is a float_list, expected int64_list",
            ),
        ] {
            let e = decode_segments(&bad, &loc).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("x.tfrecord"), "{e}");
            assert_eq!(read(&bad).unwrap(), None);
        }
        // Lists of different lengths: an error for both.
        let uneven = record(vec![
            ("segment_start_times", ints(&[0, 5])),
            ("segment_labels", ints(&[3])),
            ("segment_scores", floats(&[1.0])),
        ]);
        for e in [
            decode_segments(&uneven, &loc).unwrap_err().to_string(),
            read(&uneven).unwrap_err().to_string(),
        ] {
            assert!(
                e.contains("segment lists differ in length: start_times 2, labels 1"),
                "{e}"
            );
        }
        // No segment keys: no ratings, no error.
        assert_eq!(decode_segments(&record(vec![]), &loc).unwrap().1, None);
    }
}
