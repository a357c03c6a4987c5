//! TensorFlow checkpoints in the V1 format (`tf.train.Saver(write_version=1)`), read without
//! TensorFlow: the format of AudioSet's `vggish_model.ckpt`, which
//! tensorflow/models `research/audioset/vggish/vggish_slim.py` restores with `write_version=1`.
//!
//! The file is one LevelDB-style table (tensorflow/core/lib/io/table*.cc, block format of
//! LevelDB: prefix-compressed entries, restart points, a 5-byte block trailer of compression
//! type and masked CRC32C; a 48-byte footer with the index block's handle and the magic
//! 0xdb4775248b80fb57). TensorFlow's `TensorSliceWriter` writes it uncompressed. The entry with
//! the empty key holds `SavedTensorSlices.meta` (every variable's name, shape, type and
//! slices); every other entry holds `SavedTensorSlices.data`, one slice's values
//! (tensorflow/core/util/saved_tensor_slice.proto). Only whole-variable slices are read (what
//! an unpartitioned Saver writes); a partitioned variable is refused with its name.
//!
//! Every byte is hostile: block handles are checked against the file, varints and lengths
//! against their block, and each block's CRC is verified.

use std::collections::HashMap;
use std::path::Path;

use tch::Tensor;

use super::tfgraph::{decode_tensor, pb};

/// The largest checkpoint read, whole, into memory (VGGish's is 288 MB).
pub const MAX_CHECKPOINT_BYTES: u64 = 1 << 30;
const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const FOOTER_LEN: usize = 48;

mod slices {
    //! tensorflow/core/util/saved_tensor_slice.proto and tensor_slice.proto (the fields read).
    use super::pb::{TensorProto, TensorShapeProto};

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SavedTensorSlices {
        #[prost(message, optional, tag = "1")]
        pub meta: Option<SavedTensorSliceMeta>,
        #[prost(message, optional, tag = "2")]
        pub data: Option<SavedSlice>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SavedTensorSliceMeta {
        #[prost(message, repeated, tag = "1")]
        pub tensor: Vec<SavedSliceMeta>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SavedSliceMeta {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
        #[prost(int32, tag = "3")]
        pub r#type: i32,
        #[prost(message, repeated, tag = "4")]
        pub slice: Vec<TensorSliceProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SavedSlice {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub slice: Option<TensorSliceProto>,
        #[prost(message, optional, tag = "3")]
        pub data: Option<TensorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorSliceProto {
        #[prost(message, repeated, tag = "1")]
        pub extent: Vec<Extent>,
    }

    /// `start` and `length` unset: the whole dimension.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Extent {
        #[prost(int64, tag = "1")]
        pub start: i64,
        #[prost(int64, optional, tag = "2")]
        pub length: Option<i64>,
    }
}

/// Why a checkpoint could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CheckpointError {
    pub path: String,
    pub message: String,
}

/// A varint at `pos` (protobuf's reader: at most 10 bytes, no bits past 64), moving `pos` past it.
fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut c = yt8m_data::proto::Cursor::new(b.get(*pos..)?);
    let v = c.varint().ok()?;
    *pos += c.position();
    Some(v)
}

/// A block handle `(offset, size)` read at `pos`, checked against the file.
fn handle(b: &[u8], pos: &mut usize, file_len: usize) -> Result<(usize, usize), String> {
    let off = varint(b, pos).ok_or("a cut block handle")?;
    let size = varint(b, pos).ok_or("a cut block handle")?;
    off.checked_add(size)
        .and_then(|e| e.checked_add(5))
        .filter(|&e| e <= file_len as u64)
        .ok_or_else(|| format!("a block at {off} of {size} bytes runs past the end"))?;
    Ok((off as usize, size as usize))
}

/// A table entry: its full key and its value in the file.
type Entry<'a> = (Vec<u8>, &'a [u8]);

/// The entries of one block, after checking its trailer (type 0 = uncompressed, CRC32C).
fn block_entries(file: &[u8], (off, size): (usize, usize)) -> Result<Vec<Entry<'_>>, String> {
    let block = &file[off..off + size];
    let trailer = &file[off + size..off + size + 5];
    if trailer[0] != 0 {
        return Err(format!(
            "a block at byte {off} is compressed (type {}); TensorFlow writes checkpoint tables \
             uncompressed, so the file is not one",
            trailer[0]
        ));
    }
    let want = u32::from_le_bytes(trailer[1..5].try_into().expect("4 bytes"));
    // LevelDB's masked CRC32C over the block and its type byte (as TFRecord masks its CRCs).
    if yt8m_data::tfrecord::masked_crc(&file[off..off + size + 1]) != want {
        return Err(format!(
            "the block at byte {off} fails its CRC (a damaged file)"
        ));
    }
    if size < 4 {
        return Err(format!("the block at byte {off} is too short"));
    }
    let restarts = u32::from_le_bytes(block[size - 4..].try_into().expect("4 bytes")) as usize;
    let data_end = size
        .checked_sub(4 + restarts.checked_mul(4).ok_or("bad restarts")?)
        .ok_or_else(|| format!("the block at byte {off} claims {restarts} restart points"))?;
    let mut out = Vec::new();
    let mut pos = 0;
    let mut key: Vec<u8> = Vec::new();
    let bad = || format!("a cut entry in the block at byte {off}");
    while pos < data_end {
        let shared = varint(block, &mut pos).ok_or_else(bad)? as usize;
        let unshared = varint(block, &mut pos).ok_or_else(bad)? as usize;
        let vlen = varint(block, &mut pos).ok_or_else(bad)? as usize;
        if shared > key.len() {
            return Err(bad());
        }
        let kend = pos
            .checked_add(unshared)
            .filter(|&e| e <= data_end)
            .ok_or_else(bad)?;
        key.truncate(shared);
        key.extend_from_slice(&block[pos..kend]);
        let vend = kend
            .checked_add(vlen)
            .filter(|&e| e <= data_end)
            .ok_or_else(bad)?;
        out.push((key.clone(), &block[kend..vend]));
        pos = vend;
    }
    Ok(out)
}

/// Every variable of a V1 checkpoint: name → float32/int tensor.
pub fn read_checkpoint(path: &Path) -> Result<HashMap<String, Tensor>, CheckpointError> {
    let err = |m: String| CheckpointError {
        path: path.display().to_string(),
        message: m,
    };
    let md = std::fs::metadata(path).map_err(|e| err(format!("{e}")))?;
    if !md.is_file() {
        return Err(err("not a regular file".into()));
    }
    if md.len() > MAX_CHECKPOINT_BYTES {
        return Err(err(format!(
            "{} bytes: larger than any checkpoint read here",
            md.len()
        )));
    }
    let file = std::fs::read(path).map_err(|e| err(format!("{e}")))?;
    parse(&file).map_err(|m| {
        err(format!(
            "{m}\n  hint: give the V1 checkpoint as published (vggish_model.ckpt from \
             https://storage.googleapis.com/audioset/vggish_model.ckpt)"
        ))
    })
}

fn parse(file: &[u8]) -> Result<HashMap<String, Tensor>, String> {
    use prost::Message;
    if file.len() < FOOTER_LEN {
        return Err("too short for a TensorFlow checkpoint table".into());
    }
    let footer = &file[file.len() - FOOTER_LEN..];
    let magic = u64::from_le_bytes(footer[40..48].try_into().expect("8 bytes"));
    if magic != TABLE_MAGIC {
        return Err(
            "not a TensorFlow V1 checkpoint (no table magic at its end; a V2 checkpoint is a \
             .index file beside .data-* files)"
                .into(),
        );
    }
    let mut pos = 0;
    let _meta_index = handle(footer, &mut pos, file.len())?;
    let index = handle(footer, &mut pos, file.len())?;
    let mut metas: Vec<slices::SavedSliceMeta> = Vec::new();
    let mut data: HashMap<String, pb::TensorProto> = HashMap::new();
    for (_, h) in block_entries(file, index)? {
        let mut p = 0;
        let bh = handle(h, &mut p, file.len())?;
        for (key, value) in block_entries(file, bh)? {
            let s = slices::SavedTensorSlices::decode(value)
                .map_err(|e| format!("an entry is not a SavedTensorSlices message ({e})"))?;
            if key.is_empty() {
                metas.extend(s.meta.map(|m| m.tensor).unwrap_or_default());
            } else if let Some(d) = s.data {
                let whole = d
                    .slice
                    .as_ref()
                    .is_none_or(|sl| sl.extent.iter().all(|e| e.start == 0 && e.length.is_none()));
                if !whole {
                    return Err(format!(
                        "variable '{}' is saved in slices (a partitioned variable): not supported",
                        d.name
                    ));
                }
                if data
                    .insert(d.name.clone(), d.data.unwrap_or_default())
                    .is_some()
                {
                    return Err(format!("variable '{}' is saved twice", d.name));
                }
            }
        }
    }
    if metas.is_empty() {
        return Err("the checkpoint lists no variables".into());
    }
    let mut out = HashMap::new();
    for m in metas {
        let mut tp = data
            .remove(&m.name)
            .ok_or_else(|| format!("variable '{}' is listed but has no values", m.name))?;
        tp.dtype = m.r#type;
        tp.tensor_shape = m.shape.clone();
        let t = decode_tensor(&tp).map_err(|e| format!("variable '{}': {e}", m.name))?;
        out.insert(m.name, t);
    }
    Ok(out)
}
