//! Open Inference Protocol (KServe v2) tensors: the JSON request with Triton's binary-data
//! extension parsed into videos, and the answer's tensors written back. Every length, shape
//! and offset from the request is checked before it is used (see ../shared/docs/
//! open_inference_protocol.md for what clients send).

use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::data::{FeatureSpec, Level, Location, Video, VideoFeatures};

/// A request problem: answered with 400 / INVALID_ARGUMENT and this message.
#[derive(Debug)]
pub struct BadRequest(pub String);

fn bad(m: impl Into<String>) -> BadRequest {
    BadRequest(m.into())
}

/// The datatypes yt8m reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Uint8,
    Int32,
    Int64,
    Fp32,
    Fp64,
    Bytes,
}

impl DataType {
    pub fn parse(s: &str) -> Result<Self, BadRequest> {
        Ok(match s {
            "UINT8" => DataType::Uint8,
            "INT32" => DataType::Int32,
            "INT64" => DataType::Int64,
            "FP32" => DataType::Fp32,
            "FP64" => DataType::Fp64,
            "BYTES" => DataType::Bytes,
            other => {
                return Err(bad(format!(
                    "datatype '{other}' is not accepted here (UINT8, INT32, INT64, FP32, FP64, BYTES)"
                )));
            }
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            DataType::Uint8 => "UINT8",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }
    fn size(self) -> Option<usize> {
        match self {
            DataType::Uint8 => Some(1),
            DataType::Int32 | DataType::Fp32 => Some(4),
            DataType::Int64 | DataType::Fp64 => Some(8),
            DataType::Bytes => None,
        }
    }
}

/// One input tensor's values, decoded.
#[derive(Debug, Clone)]
pub enum Values {
    U8(Vec<u8>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    Bytes(Vec<Vec<u8>>),
}

#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Values,
}

/// The number of elements of `shape`, refusing overflow and anything over `limit`.
pub fn numel(shape: &[usize], limit: usize) -> Result<usize, BadRequest> {
    let mut n: usize = 1;
    for &d in shape {
        n = n
            .checked_mul(d)
            .filter(|&n| n <= limit)
            .ok_or_else(|| bad(format!("shape {shape:?} holds more than {limit} elements")))?;
    }
    Ok(n)
}

/// Decodes `raw` (little-endian, row-major; BYTES length-prefixed) as `n` elements of `dt`.
pub fn from_raw(dt: DataType, raw: &[u8], n: usize, name: &str) -> Result<Values, BadRequest> {
    if let Some(size) = dt.size() {
        if raw.len() != n * size {
            return Err(bad(format!(
                "input '{name}': {} bytes of {} data for {n} elements (expected {})",
                raw.len(),
                dt.name(),
                n * size
            )));
        }
    }
    Ok(match dt {
        DataType::Uint8 => Values::U8(raw.to_vec()),
        DataType::Int32 => Values::I64(
            raw.chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
        ),
        DataType::Int64 => Values::I64(
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        DataType::Fp32 => Values::F32(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        DataType::Fp64 => Values::F32(
            raw.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
        ),
        DataType::Bytes => {
            let mut out = Vec::with_capacity(n.min(raw.len() / 4 + 1));
            let mut at = 0usize;
            while at < raw.len() {
                let Some(len) = raw.get(at..at + 4) else {
                    return Err(bad(format!(
                        "input '{name}': truncated BYTES length prefix at byte {at}"
                    )));
                };
                let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
                let body = raw.get(at + 4..at + 4 + len).ok_or_else(|| {
                    bad(format!(
                        "input '{name}': BYTES element {} claims {len} bytes, only {} left",
                        out.len(),
                        raw.len() - at - 4
                    ))
                })?;
                out.push(body.to_vec());
                at += 4 + len;
            }
            if out.len() != n {
                return Err(bad(format!(
                    "input '{name}': {} BYTES elements for a shape of {n}",
                    out.len()
                )));
            }
            Values::Bytes(out)
        }
    })
}

/// Flattens JSON `data` (flat or nested, row-major) into `n` values of `dt`.
pub fn from_json(dt: DataType, data: &Value, n: usize, name: &str) -> Result<Values, BadRequest> {
    let mut flat: Vec<&Value> = Vec::new();
    // Nesting is bounded by serde_json's own recursion limit (128); iterate, not recurse.
    let mut stack = vec![data];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a.iter().rev()),
            other => {
                flat.push(other);
                if flat.len() > n {
                    return Err(bad(format!(
                        "input '{name}': more data than its shape holds ({n})"
                    )));
                }
            }
        }
    }
    if flat.len() != n {
        return Err(bad(format!(
            "input '{name}': {} values for a shape of {n} elements",
            flat.len()
        )));
    }
    let num = |i: usize, v: &Value| -> Result<f64, BadRequest> {
        v.as_f64()
            .ok_or_else(|| bad(format!("input '{name}': element {i} is not a number ({v})")))
    };
    Ok(match dt {
        DataType::Uint8 => Values::U8(
            flat.iter()
                .enumerate()
                .map(|(i, v)| match v.as_u64() {
                    Some(x) if x <= 255 => Ok(x as u8),
                    _ => Err(bad(format!(
                        "input '{name}': element {i} is not a UINT8 ({v})"
                    ))),
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::Int32 | DataType::Int64 => Values::I64(
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64().ok_or_else(|| {
                        bad(format!(
                            "input '{name}': element {i} is not an integer ({v})"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        DataType::Fp32 | DataType::Fp64 => Values::F32(
            flat.iter()
                .enumerate()
                .map(|(i, v)| num(i, v).map(|x| x as f32))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Bytes => Values::Bytes(
            flat.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str()
                        .map(|s| s.as_bytes().to_vec())
                        .ok_or_else(|| bad(format!("input '{name}': element {i} is not a string")))
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// The `tfrecord` input's JSON elements, which are base64 (RFC 4648, standard alphabet): a
/// serialized record is binary, and a JSON string holds text, not bytes (its UTF-8 would mangle
/// every byte over 127). KServe's JSON form has no byte strings; Triton's clients send BYTES as
/// binary data (which needs no encoding); MLServer marks base64 with
/// `"parameters": {"content_type": "base64"}`, which is accepted and changes nothing here.
/// The `video` input's elements (video files' bytes) are base64 in JSON the same way.
pub fn base64_records(v: Values, name: &str) -> Result<Values, BadRequest> {
    use base64::Engine;
    let Values::Bytes(elements) = v else {
        return Ok(v); // a datatype other than BYTES: refused later, naming it
    };
    elements
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            base64::engine::general_purpose::STANDARD
                .decode(&e)
                .map_err(|err| {
                    bad(format!(
                        "input '{name}': element {i} is not base64 ({err}); in JSON each \
                         element is a base64 string (Python: base64.b64encode(data).decode()), \
                         or send the bytes as binary data (binary_data_size, as tritonclient \
                         does)"
                    ))
                })
        })
        .collect::<Result<_, _>>()
        .map(Values::Bytes)
}

/// The model's input and output tensors, as metadata lists them.
pub fn metadata(name: &str, spec: &FeatureSpec, num_classes: usize, video: bool) -> Value {
    let inputs = match spec.level {
        Level::Frame => {
            let mut v: Vec<Value> = spec
                .frame_names
                .iter()
                .zip(&spec.dims)
                .map(|(n, d)| json!({"name": n, "datatype": "UINT8", "shape": [-1, -1, d]}))
                .collect();
            v.push(json!({"name": "lengths", "datatype": "INT64", "shape": [-1]}));
            v.push(json!({"name": "tfrecord", "datatype": "BYTES", "shape": [-1]}));
            v
        }
        Level::Video => {
            let mut v: Vec<Value> = spec
                .mean_names
                .iter()
                .zip(&spec.dims)
                .map(|(n, d)| json!({"name": n, "datatype": "FP32", "shape": [-1, d]}))
                .collect();
            v.push(json!({"name": "tfrecord", "datatype": "BYTES", "shape": [-1]}));
            v
        }
    };
    let mut inputs = inputs;
    if video {
        inputs.push(json!({"name": "video", "datatype": "BYTES", "shape": [-1]}));
    }
    json!({
        "name": name,
        "versions": ["1"],
        "platform": "yt8m_libtorch",
        "inputs": inputs,
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, num_classes]},
            {"name": "top_k_classes", "datatype": "INT64", "shape": [-1, -1]},
            {"name": "top_k_scores", "datatype": "FP32", "shape": [-1, -1]},
            {"name": "top_k_labels", "datatype": "BYTES", "shape": [-1, -1]},
        ],
    })
}

/// Video files' bytes (the `video` input, alone) into videos for `spec`, extracted as `yt8m
/// extract` would (ids `video[i]`): each is written to a private temporary file for FFmpeg.
/// The error's kind says whose fault it is: the request's (a bad shape, an undecodable
/// video) or the server's (staging, FFmpeg missing).
pub fn video_files(
    inputs: &[Input],
    spec: &FeatureSpec,
    ex: &crate::extract::Extractor,
) -> crate::Result<Vec<Video>> {
    let bad = |m: String| crate::Error::Invalid(m);
    if inputs.len() != 1 {
        return Err(bad("give 'video' alone (one element per video file)".into()));
    }
    let t = &inputs[0];
    let Values::Bytes(files) = &t.values else {
        return Err(bad("input 'video' must be BYTES".into()));
    };
    if t.shape.len() != 1 {
        return Err(bad(format!(
            "input 'video' has shape {:?}; expected [videos]",
            t.shape
        )));
    }
    let dir = std::env::temp_dir().join(format!("yt8m-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| {
        crate::Error::Internal(format!(
            "cannot stage the video for FFmpeg in {}: {e}",
            dir.display()
        ))
    })?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut out = Vec::with_capacity(files.len());
    for (i, bytes) in files.iter().enumerate() {
        let path = dir.join(format!("{}.video", NEXT.fetch_add(1, Ordering::Relaxed)));
        let id = format!("video[{i}]");
        let r = std::fs::write(&path, bytes)
            .map_err(|e| {
                let m = format!("cannot stage it for FFmpeg in {} ({e})", dir.display());
                (crate::error::ErrorKind::Internal, m)
            })
            .and_then(|()| {
                ex.video(
                    &path,
                    &crate::extract::video::Sampling::default(),
                    &mut |_, _| {},
                )
                .and_then(|f| f.to_video(id.clone(), spec))
                // The staged file's name means nothing to the client.
                .map_err(|e| {
                    (
                        e.kind(),
                        e.to_string().replace(&path.display().to_string(), &id),
                    )
                })
            });
        let _ = std::fs::remove_file(&path);
        out.push(r.map_err(|(kind, e)| crate::Error::of_kind(kind, format!("{id}: {e}")))?);
    }
    Ok(out)
}

/// Turns the request's inputs into videos for `spec`, as `predict` reads them: frames capped
/// at `max_frames`, features finite.
pub fn videos(inputs: &[Input], spec: &FeatureSpec) -> Result<Vec<Video>, BadRequest> {
    let get = |n: &str| inputs.iter().find(|i| i.name == n);
    for i in inputs {
        let known = i.name == "tfrecord"
            || i.name == "lengths"
            || spec.frame_names.contains(&i.name) && spec.level == Level::Frame
            || spec.mean_names.contains(&i.name) && spec.level == Level::Video;
        if !known {
            return Err(bad(format!(
                "unknown input '{}' for this {}-level model (see its metadata for the inputs)",
                i.name, spec.level
            )));
        }
    }
    if let Some(t) = get("tfrecord") {
        if inputs.len() > 1 {
            return Err(bad(
                "give either 'tfrecord' or the feature tensors, not both",
            ));
        }
        let Values::Bytes(recs) = &t.values else {
            return Err(bad("input 'tfrecord' must be BYTES"));
        };
        if t.shape.len() != 1 {
            return Err(bad(format!(
                "input 'tfrecord' has shape {:?}; expected [videos]",
                t.shape
            )));
        }
        // Labels in the records are never used to predict: none may fail a request (as in
        // `predict`).
        let read = FeatureSpec {
            num_classes: usize::MAX,
            ..spec.clone()
        };
        return recs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let loc = Location::file(format!("tfrecord[{i}]"));
                // The reader's hints speak of files (CRCs, --skip-corrupt): a request has
                // neither, so it gets its own.
                let v = crate::data::video::decode_video(r, &read, &loc).map_err(|e| {
                    bad(format!(
                        "{}: {}\n  hint: each element must be one serialized tf.train.Example \
                         (video level) or SequenceExample (frame level) as the official shards \
                         hold them, without the TFRecord length and CRC framing",
                        e.location, e.message
                    ))
                })?;
                if v.num_frames == 0 {
                    return Err(bad(format!(
                        "tfrecord[{i}] (video '{}') has zero frames",
                        v.id
                    )));
                }
                Ok(v)
            })
            .collect();
    }
    match spec.level {
        Level::Frame => frame_videos(inputs, spec),
        Level::Video => mean_videos(inputs, spec),
    }
}

fn frame_videos(inputs: &[Input], spec: &FeatureSpec) -> Result<Vec<Video>, BadRequest> {
    let mut b = None;
    let mut t = None;
    let mut mods = Vec::new();
    for (name, &dim) in spec.frame_names.iter().zip(&spec.dims) {
        let i = inputs
            .iter()
            .find(|i| &i.name == name)
            .ok_or_else(|| bad(format!("input '{name}' is missing (or send 'tfrecord')")))?;
        if i.shape.len() != 3 || i.shape[2] != dim {
            return Err(bad(format!(
                "input '{name}' has shape {:?}; expected [videos, frames, {dim}]",
                i.shape
            )));
        }
        for (what, seen, now) in [
            ("videos", &mut b, i.shape[0]),
            ("frames", &mut t, i.shape[1]),
        ] {
            match seen {
                Some(x) if *x != now => {
                    return Err(bad(format!(
                        "inputs disagree on the number of {what}: {x} vs {now}"
                    )));
                }
                _ => *seen = Some(now),
            }
        }
        mods.push((name, dim, i));
    }
    let (b, t) = (b.unwrap_or(0), t.unwrap_or(0));
    if b == 0 || t == 0 {
        return Err(bad("no videos or no frames in the request"));
    }
    let lengths: Vec<usize> = match inputs.iter().find(|i| i.name == "lengths") {
        None => vec![t; b],
        Some(l) => {
            let Values::I64(v) = &l.values else {
                return Err(bad("input 'lengths' must be INT64 or INT32"));
            };
            if l.shape != [b] {
                return Err(bad(format!(
                    "input 'lengths' has shape {:?}; expected [{b}]",
                    l.shape
                )));
            }
            v.iter()
                .enumerate()
                .map(|(i, &x)| {
                    if x < 1 || x as usize > t {
                        Err(bad(format!(
                            "lengths[{i}] = {x}: must be between 1 and the frames dimension {t}"
                        )))
                    } else {
                        Ok(x as usize)
                    }
                })
                .collect::<Result<_, _>>()?
        }
    };
    lengths
        .iter()
        .enumerate()
        .map(|(v, &len)| frame_video(v, len, t, &mods, spec.max_frames))
        .collect()
}

/// Video `v` of a frame-level request: its first `min(len, max_frames)` frames of each
/// modality (`mods`: name, width, input; rows of `t` frames), uint8 or finite float32.
fn frame_video(
    v: usize,
    len: usize,
    t: usize,
    mods: &[(&String, usize, &Input)],
    max_frames: usize,
) -> Result<Video, BadRequest> {
    let keep = len.min(max_frames);
    let mut u8s = Vec::new();
    let mut f32s = Vec::new();
    for &(name, dim, i) in mods {
        let row = v * t * dim;
        match &i.values {
            Values::U8(x) => u8s.push(x[row..row + keep * dim].to_vec()),
            Values::F32(x) => {
                let s = &x[row..row + keep * dim];
                if let Some(j) = s.iter().position(|x| !x.is_finite()) {
                    return Err(bad(format!(
                        "input '{name}': video {v} frame {} column {} is {}: features must be finite",
                        j / dim,
                        j % dim,
                        s[j]
                    )));
                }
                f32s.push(s.to_vec())
            }
            _ => {
                return Err(bad(format!(
                    "input '{name}' must be UINT8 (quantized) or FP32"
                )));
            }
        }
    }
    let features = match (u8s.len(), f32s.len()) {
        (n, 0) if n == mods.len() => VideoFeatures::Frames(u8s),
        (0, n) if n == mods.len() => VideoFeatures::FloatFrames(f32s),
        _ => {
            return Err(bad(
                "feature inputs must share one datatype (all UINT8 or all FP32)",
            ));
        }
    };
    Ok(Video {
        id: format!("{v}"),
        labels: vec![],
        has_labels: false,
        features,
        num_frames: keep,
        total_frames: len,
        segments: None,
    })
}

fn mean_videos(inputs: &[Input], spec: &FeatureSpec) -> Result<Vec<Video>, BadRequest> {
    let mut b = None;
    let mut mods = Vec::new();
    for (name, &dim) in spec.mean_names.iter().zip(&spec.dims) {
        let i = inputs
            .iter()
            .find(|i| &i.name == name)
            .ok_or_else(|| bad(format!("input '{name}' is missing (or send 'tfrecord')")))?;
        if i.shape.len() != 2 || i.shape[1] != dim {
            return Err(bad(format!(
                "input '{name}' has shape {:?}; expected [videos, {dim}]",
                i.shape
            )));
        }
        match b {
            Some(x) if x != i.shape[0] => {
                return Err(bad(format!(
                    "inputs disagree on the number of videos: {x} vs {}",
                    i.shape[0]
                )));
            }
            _ => b = Some(i.shape[0]),
        }
        let Values::F32(x) = &i.values else {
            return Err(bad(format!("input '{name}' must be FP32")));
        };
        if let Some(j) = x.iter().position(|x| !x.is_finite()) {
            return Err(bad(format!(
                "input '{name}': video {} column {} is {}: features must be finite",
                j / dim,
                j % dim,
                x[j]
            )));
        }
        mods.push((dim, x));
    }
    let b = b.unwrap_or(0);
    if b == 0 {
        return Err(bad("no videos in the request"));
    }
    Ok((0..b)
        .map(|v| Video {
            id: format!("{v}"),
            labels: vec![],
            has_labels: false,
            features: VideoFeatures::Mean(
                mods.iter()
                    .map(|(d, x)| x[v * d..(v + 1) * d].to_vec())
                    .collect(),
            ),
            num_frames: 1,
            total_frames: 1,
            segments: None,
        })
        .collect())
}

/// One output tensor, ready to be written as JSON or raw bytes.
pub struct Output {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub datatype: DataType,
    pub values: Values,
}

impl Output {
    /// Little-endian raw bytes (BYTES length-prefixed).
    pub fn raw(&self) -> Vec<u8> {
        match &self.values {
            Values::U8(x) => x.clone(),
            Values::I64(x) => x.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Values::F32(x) => x.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Values::Bytes(x) => x
                .iter()
                .flat_map(|b| {
                    (b.len() as u32)
                        .to_le_bytes()
                        .into_iter()
                        .chain(b.iter().copied())
                })
                .collect(),
        }
    }

    pub fn json_data(&self) -> Value {
        match &self.values {
            Values::U8(x) => json!(x),
            Values::I64(x) => json!(x),
            Values::F32(x) => json!(x),
            Values::Bytes(x) => Value::Array(
                x.iter()
                    .map(|b| Value::String(String::from_utf8_lossy(b).into_owned()))
                    .collect(),
            ),
        }
    }
}

pub const OUTPUTS: [&str; 4] = [
    "probabilities",
    "top_k_classes",
    "top_k_scores",
    "top_k_labels",
];

/// The answer's tensors from `[videos, classes]` probabilities.
pub fn outputs(probs: &[Vec<f32>], k: usize, names: &[String], wanted: &[&str]) -> Vec<Output> {
    let b = probs.len();
    let c = probs.first().map(Vec::len).unwrap_or(0);
    let k = k.min(c);
    let mut top_i = Vec::with_capacity(b * k);
    let mut top_s = Vec::with_capacity(b * k);
    for row in probs {
        let mut idx: Vec<usize> = (0..c).collect();
        // Highest first; equal scores by class index, as torch.topk(sorted=True) on CPU does
        // for distinct values (ties are measure-zero for sigmoid outputs).
        idx.sort_by(|&x, &y| row[y].total_cmp(&row[x]).then(x.cmp(&y)));
        for &i in &idx[..k] {
            top_i.push(i as i64);
            top_s.push(row[i]);
        }
    }
    let mut out = Vec::new();
    for w in wanted {
        match *w {
            "probabilities" => out.push(Output {
                name: "probabilities",
                shape: vec![b, c],
                datatype: DataType::Fp32,
                values: Values::F32(probs.iter().flatten().copied().collect()),
            }),
            "top_k_classes" => out.push(Output {
                name: "top_k_classes",
                shape: vec![b, k],
                datatype: DataType::Int64,
                values: Values::I64(top_i.clone()),
            }),
            "top_k_scores" => out.push(Output {
                name: "top_k_scores",
                shape: vec![b, k],
                datatype: DataType::Fp32,
                values: Values::F32(top_s.clone()),
            }),
            "top_k_labels" => out.push(Output {
                name: "top_k_labels",
                shape: vec![b, k],
                datatype: DataType::Bytes,
                values: Values::Bytes(
                    top_i
                        .iter()
                        .map(|&i| {
                            names
                                .get(i as usize)
                                .cloned()
                                .unwrap_or_else(|| format!("class_{i}"))
                                .into_bytes()
                        })
                        .collect(),
                ),
            }),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_are_length_prefixed_and_checked() {
        let raw = [
            3u32.to_le_bytes().to_vec(),
            b"abc".to_vec(),
            0u32.to_le_bytes().to_vec(),
        ]
        .concat();
        let Values::Bytes(v) = from_raw(DataType::Bytes, &raw, 2, "x").unwrap() else {
            panic!()
        };
        assert_eq!(v, vec![b"abc".to_vec(), vec![]]);
        // A length beyond the buffer is an error, never a read past it.
        let lie = [u32::MAX.to_le_bytes().to_vec(), b"abc".to_vec()].concat();
        assert!(from_raw(DataType::Bytes, &lie, 1, "x").is_err());
        assert!(from_raw(DataType::Fp32, &[0u8; 7], 2, "x").is_err());
        assert!(numel(&[usize::MAX, 2], 1 << 30).is_err());
    }

    #[test]
    fn json_data_nested_or_flat() {
        let Values::I64(v) = from_json(DataType::Int64, &json!([[1, 2], [3, 4]]), 4, "x").unwrap()
        else {
            panic!()
        };
        assert_eq!(v, vec![1, 2, 3, 4]);
        assert!(from_json(DataType::Uint8, &json!([1, 256]), 2, "x").is_err());
        assert!(from_json(DataType::Fp32, &json!([1, 2, 3]), 2, "x").is_err());
    }
}
