//! PaddleVideo's pickles as videos: `data/yt8m/tf2pkl.py`'s per-shard lists and
//! `split_yt8m.py`'s per-video dicts (keys `video`, `label`, `feature`, `audio`, `nframes`),
//! parsed by [`crate::pickle`] and checked key by key.

use crate::error::{DataError, DataErrorKind, Location};
use crate::pickle::{self, Value};
use crate::video::{FeatureSpec, Level, Video, VideoFeatures};
use std::path::Path;

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
        let (labels, has_labels) = labels(item, &loc, self.spec.num_classes)?;
        let nframes = nframes(item, &loc)?;
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

/// A video's `label` (a list of ints or an int ndarray), each in `0..num_classes`; whether
/// the key was there.
fn labels(item: &Value, loc: &Location, num_classes: usize) -> Result<(Vec<u32>, bool), DataError> {
    match item.get("label") {
        None => Ok((Vec::new(), false)),
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
                if l < 0 || l as usize >= num_classes {
                    return Err(DataError::new(
                        DataErrorKind::Schema,
                        loc.clone().key("label"),
                        format!(
                            "label id {l} is outside 0..={} (num_classes {})",
                            num_classes.saturating_sub(1),
                            num_classes
                        ),
                    ));
                }
                labels.push(l as u32);
            }
            Ok((labels, true))
        }
    }
}

/// A video's `nframes`, when given (a non-negative int).
fn nframes(item: &Value, loc: &Location) -> Result<Option<i64>, DataError> {
    match item.get("nframes") {
        None => Ok(None),
        Some(v) => match v.as_int() {
            Some(n) if n >= 0 => Ok(Some(n)),
            _ => Err(DataError::new(
                DataErrorKind::Schema,
                loc.clone().key("nframes"),
                format!("'nframes' is a {}, not a non-negative int", v.type_name()),
            )
            .hint(LAYOUT_HINT)),
        },
    }
}
