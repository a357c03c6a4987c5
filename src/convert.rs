//! `yt8m convert`: PaddleVideo `.pdparams` → safetensors, with no Python.
//!
//! A `.pdparams` is a pickle (protocol 2–4) of a dict name → numpy array
//! (`numpy.core.multiarray._reconstruct` with numpy 1.x, `numpy._core` with 2.x). Full-model
//! checkpoints prefix every key with `head.` (`Recognizer1D`); Paddle's `nn.LSTM` also stores
//! each LSTM tensor under an alias (`bi_lstm0.0.cell_fw.weight_ih` = `bi_lstm0.weight_ih_l0`,
//! `cell_bw` = `_reverse`). Either spelling is accepted; the canonical names are written.

use crate::data::pickle::{self, DType};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// Canonical name for a Paddle key, or `None` for non-tensor entries.
pub fn canonical_name(key: &str) -> String {
    let k = key.strip_prefix("head.").unwrap_or(key);
    // bi_lstm{i}.0.cell_{fw,bw}.{weight_ih,weight_hh,bias_ih,bias_hh}
    if let Some((prefix, rest)) = k.split_once(".0.cell_") {
        if let Some((dir, what)) = rest.split_once('.') {
            let suffix = if dir == "bw" { "_reverse" } else { "" };
            return format!("{prefix}.{what}_l0{suffix}");
        }
    }
    k.to_string()
}

/// Reads a `.pdparams` into canonical name → tensor (dtype as stored).
pub fn read_pdparams(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    // Regular files only (a FIFO blocked, a device streamed forever); 64 GiB is far above any
    // released checkpoint (AttentionLSTM_yt8.pdparams: ~435 MB).
    let bytes = crate::data::files::read_regular(path, 64 << 30, "PaddleVideo .pdparams")?;
    let werr = |m: String| Error::Weights {
        path: path.display().to_string(),
        message: m,
    };
    let root = pickle::loads(&bytes).map_err(|e| werr(format!("not a readable pickle: {}\n  hint: a .pdparams is written by paddle.save(model.state_dict(), path)", e.0)))?;
    let items = root.dict_items().ok_or_else(|| {
        werr(format!(
            "holds a {}, not a dict of arrays",
            root.type_name()
        ))
    })?;
    let mut out: BTreeMap<String, Tensor> = BTreeMap::new();
    for (k, v) in items {
        let Some(key) = k.as_str_or_bytes() else {
            continue;
        };
        if key == "StructuredToParameterName@@" {
            continue;
        }
        let arr = match pickle::ndarray(&v) {
            Ok(a) => a,
            Err(e) => return Err(werr(format!("entry '{key}': {}", e.0))),
        };
        let shape: Vec<i64> = arr.shape.iter().map(|&d| d as i64).collect();
        let kind = match arr.dtype {
            DType::F32 => Kind::Float,
            DType::F64 => Kind::Double,
            other => {
                return Err(werr(format!(
                    "entry '{key}' has dtype {other:?}; expected float32/float64"
                )));
            }
        };
        let t = Tensor::f_from_data_size(&arr.data, &shape, kind)?;
        let name = canonical_name(&key);
        if let Some(prev) = out.get(&name) {
            // An alias must hold the same values as its canonical twin.
            if prev.size() != t.size() || !prev.equal(&t) {
                return Err(werr(format!(
                    "'{key}' and another key both map to '{name}' but differ"
                )));
            }
            continue;
        }
        out.insert(name, t);
    }
    if out.is_empty() {
        return Err(werr("no tensors found".into()));
    }
    Ok(out)
}

/// Converts `.pdparams` → safetensors (float32). Returns the tensor names and shapes.
pub fn convert_pdparams(input: &Path, output: &Path) -> Result<Vec<(String, Vec<i64>)>> {
    let t = read_pdparams(input)?;
    let list: Vec<(String, Tensor)> = t
        .into_iter()
        .map(|(k, v)| (k, v.to_kind(Kind::Float)))
        .collect();
    let refs: Vec<(&str, &Tensor)> = list.iter().map(|(k, v)| (k.as_str(), v)).collect();
    if crate::runtime::same_file(input, output) {
        return Err(crate::error::Error::Invalid(format!(
            "output {} is the input; refusing to overwrite it",
            output.display()
        )));
    }
    // Written beside the destination, synced, then renamed: never a half-written file.
    let tmp = crate::runtime::AtomicFile::create(output)?;
    Tensor::write_safetensors(&refs, tmp.temp_path())?;
    tmp.commit()?;
    Ok(list.iter().map(|(k, v)| (k.clone(), v.size())).collect())
}
