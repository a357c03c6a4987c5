//! VGGish (tensorflow/models `research/audioset/vggish/vggish_slim.py`) from its published
//! checkpoint, and AudioSet's post-processing (`vggish_postprocess.py`): the 128-d audio
//! embeddings YouTube-8M's `audio` features are.
//!
//! Network (float32, NHWC in the original): a `[k, 96, 64]` log-mel patch → conv1 (3×3, SAME,
//! ReLU) → 2×2 max-pool → conv2 → pool → conv3/conv3_1, conv3/conv3_2 → pool →
//! conv4/conv4_1, conv4/conv4_2 → pool → flatten (height, width, channel order) →
//! fc1/fc1_1, fc1/fc1_2 (ReLU) → fc2 (no activation: the `vggish/fc2/BiasAdd` MediaPipe
//! reads). Widths come from the checkpoint (the published one: 64, 128, 256, 512, 4096, 128).
//!
//! Post-processing (float64, as numpy computes it): `pca_eigen_vectors @ (embedding -
//! pca_means)`, clipped to [-2, 2], scaled by 255/4 and cast to uint8 (truncation, unlike the
//! RGB features' rounding).

use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};
use yt8m_data::npy::read_npz;

use super::ExtractError;
use super::tfckpt::read_checkpoint;
use crate::error::ErrorKind;

/// The published checkpoint's file name (https://storage.googleapis.com/audioset/vggish_model.ckpt).
pub const CHECKPOINT_FILE: &str = "vggish_model.ckpt";
/// The published PCA parameters (https://storage.googleapis.com/audioset/vggish_pca_params.npz).
pub const PCA_FILE: &str = "vggish_pca_params.npz";
pub const EMBEDDING: usize = 128;

/// Convolution stages: the layers of each, then a pool.
const STAGES: [&[&str]; 4] = [
    &["conv1"],
    &["conv2"],
    &["conv3/conv3_1", "conv3/conv3_2"],
    &["conv4/conv4_1", "conv4/conv4_2"],
];
const FCS: [&str; 3] = ["fc1/fc1_1", "fc1/fc1_2", "fc2"];

pub struct Vggish {
    /// Per stage: (weight `[out, in, 3, 3]`, bias `[out]`) per layer.
    convs: Vec<Vec<(Tensor, Tensor)>>,
    /// (weight `[in, out]`, bias `[out]`).
    fcs: Vec<(Tensor, Tensor)>,
    /// `[128, 128]` float64.
    pca_matrix: Tensor,
    /// `[128, 1]` float64.
    pca_means: Tensor,
}

fn ferr(path: &Path, m: impl Into<String>) -> ExtractError {
    ExtractError::Files {
        kind: ErrorKind::CorruptData,
        path: path.to_path_buf(),
        message: m.into(),
    }
}

/// `vggish_pca_params.npz`: the `[128, 128]` eigenvectors and the 128 means (float64, as
/// `vggish_postprocess.py` applies them), shapes checked.
fn load_pca(pca_path: &Path) -> Result<(Tensor, Tensor), ExtractError> {
    let arrays = read_npz(pca_path).map_err(|e| ferr(pca_path, e.to_string()))?;
    let get = |k: &str| {
        arrays
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, a)| a)
            .ok_or_else(|| ferr(pca_path, format!("no array '{k}' (vggish_postprocess.py reads pca_eigen_vectors and pca_means)")))
    };
    let m = get("pca_eigen_vectors")?;
    let mu = get("pca_means")?;
    if m.shape != [EMBEDDING, EMBEDDING]
        || mu.shape.iter().product::<usize>() != EMBEDDING
        || !m.dtype.is_float()
        || !mu.dtype.is_float()
    {
        return Err(ferr(
            &pca_path,
            format!(
                "pca_eigen_vectors {:?} and pca_means {:?}: expected float [128, 128] and 128 values",
                m.shape, mu.shape
            ),
        ));
    }
    let pca_matrix = Tensor::from_slice(&m.to_f64()).reshape([EMBEDDING as i64, EMBEDDING as i64]);
    let pca_means = Tensor::from_slice(&mu.to_f64()).reshape([EMBEDDING as i64, 1]);
    Ok((pca_matrix, pca_means))
}

impl Vggish {
    /// Whether `dir` holds the VGGish files.
    pub fn present(dir: &Path) -> bool {
        dir.join(CHECKPOINT_FILE).is_file() && dir.join(PCA_FILE).is_file()
    }

    /// Loads the checkpoint and the PCA parameters from `dir`, checking every shape.
    pub fn load(dir: &Path) -> Result<Vggish, ExtractError> {
        let ckpt: PathBuf = dir.join(CHECKPOINT_FILE);
        let mut vars = read_checkpoint(&ckpt).map_err(|e| ferr(&ckpt, e.message))?;
        let mut take = |name: &str, rank: usize| -> Result<Tensor, ExtractError> {
            let full = format!("vggish/{name}");
            let t = vars.remove(&full).ok_or_else(|| {
                ferr(
                    &ckpt,
                    format!(
                        "no variable '{full}': not a VGGish checkpoint (vggish_slim.py's names)"
                    ),
                )
            })?;
            if t.dim() != rank || t.kind() != Kind::Float {
                return Err(ferr(
                    &ckpt,
                    format!(
                        "'{full}' is {:?} {:?}; expected rank {rank} float32",
                        t.kind(),
                        t.size()
                    ),
                ));
            }
            Ok(t)
        };
        let mut convs = Vec::new();
        let mut cin = 1;
        for stage in STAGES {
            let mut layers = Vec::new();
            for l in stage {
                let w = take(&format!("{l}/weights"), 4)?; // [3, 3, in, out]
                let b = take(&format!("{l}/biases"), 1)?;
                let s = w.size();
                if s[..3] != [3, 3, cin] || b.size() != [s[3]] {
                    return Err(ferr(
                        &ckpt,
                        format!(
                            "vggish/{l}: weights {s:?}, biases {:?}; expected [3, 3, {cin}, n] and [n]",
                            b.size()
                        ),
                    ));
                }
                cin = s[3];
                layers.push((w.permute([3, 2, 0, 1]).contiguous(), b));
            }
            convs.push(layers);
        }
        // Four 2×2 pools take 96×64 to 6×4.
        let mut fin = 6 * 4 * cin;
        let mut fcs = Vec::new();
        for (i, l) in FCS.iter().enumerate() {
            let w = take(&format!("{l}/weights"), 2)?;
            let b = take(&format!("{l}/biases"), 1)?;
            let s = w.size();
            let out_ok = i < 2 || s[1] == EMBEDDING as i64;
            if s[0] != fin || b.size() != [s[1]] || !out_ok {
                return Err(ferr(
                    &ckpt,
                    format!(
                        "vggish/{l}: weights {s:?}, biases {:?}; expected [{fin}, n] and [n] (n = {EMBEDDING} for fc2)",
                        b.size()
                    ),
                ));
            }
            fin = s[1];
            fcs.push((w, b));
        }
        let (pca_matrix, pca_means) = load_pca(&dir.join(PCA_FILE))?;
        Ok(Vggish {
            convs,
            fcs,
            pca_matrix,
            pca_means,
        })
    }

    /// `[k, 96, 64]` float32 log-mel examples → `[k, 128]` float32 embeddings (fc2, before any
    /// activation).
    pub fn embed(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let k = x.size()[0];
            let mut h = x.to_kind(Kind::Float).reshape([k, 1, 96, 64]);
            for stage in &self.convs {
                for (w, b) in stage {
                    // 3×3, stride 1, SAME: one row/column of zeros each side.
                    h = h.conv2d(w, Some(b), [1, 1], [1, 1], [1, 1], 1).relu();
                }
                // 2×2, stride 2, SAME on even sizes: no padding.
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
            // TensorFlow flattens NHWC.
            let mut h = h.permute([0, 2, 3, 1]).reshape([k, -1]);
            for (i, (w, b)) in self.fcs.iter().enumerate() {
                h = h.matmul(w) + b;
                if i + 1 < self.fcs.len() {
                    h = h.relu();
                }
            }
            h
        })
    }

    /// The PCA of `vggish_postprocess.py`: `[k, 128]` embeddings → `[k, 128]` float64.
    pub fn pca(&self, emb: &Tensor) -> Tensor {
        let e = emb.to_kind(Kind::Double).transpose(0, 1); // [128, k]
        self.pca_matrix
            .matmul(&(e - &self.pca_means))
            .transpose(0, 1)
            .contiguous()
    }

    /// `vggish_postprocess.Postprocessor.postprocess`: `[k, 128]` → k × 128 bytes.
    pub fn postprocess(&self, emb: &Tensor) -> Vec<u8> {
        quantize(&self.pca(emb))
    }
}

/// The quantization of `vggish_postprocess.py`: clip to [-2, 2], scale by 255/4 (float64), cast
/// to uint8, which truncates.
pub fn quantize(pca: &Tensor) -> Vec<u8> {
    let q = (pca.to_kind(Kind::Double).clamp(-2.0, 2.0) + 2.0) * (255.0 / 4.0);
    let v: Vec<f64> = Vec::try_from(&q.contiguous().reshape([-1])).unwrap_or_default();
    v.into_iter().map(|x| x as u8).collect()
}
