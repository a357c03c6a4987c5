//! The published YouTube-8M PCA (`yt8m_pca.tgz`: `mean.npy`, `eigenvals.npy`, `eigenvecs.npy`)
//! and the official 8-bit quantization, as google/youtube-8m's feature extractor applies them
//! to Inception's `pool_3` activations:
//! - `feature_extractor/feature_extractor.py` (`_load_pca`, and the `pca_final_feature` ops
//!   that `_load_inception` appends to the graph: float32 throughout, since the arrays become
//!   `tf.constant(..., dtype=tf.float32)`): `(x - mean[:, 0]) @ eigenvecs.T[:, :1024]
//!   / sqrt(eigenvals[:1024, 0] + 1e-4)`;
//! - `feature_extractor/extract_tfrecords_main.py` (`quantize`): clip to [-2, 2], then
//!   `int(round((x + 2) * 255 / 4))` on float32 values (Python's `round` of a numpy float32
//!   rounds half to even), and the video's `mean_rgb` as the float32 running sum of the
//!   unquantized frame features divided by the frame count.

use std::path::{Path, PathBuf};

use crate::error::ErrorKind;
use tch::{Kind, Tensor};
use yt8m_data::npy::{NpyArray, read_npy};

/// Output width of the published PCA (the official code slices the first 1024 components).
pub const PCA_DIMS: usize = 1024;
/// The official quantization range.
pub const QUANT_MIN: f32 = -2.0;
pub const QUANT_MAX: f32 = 2.0;

/// Why the PCA files could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PcaError {
    /// Missing (`NotFound`) or not the published arrays (`CorruptData`).
    pub kind: ErrorKind,
    pub path: String,
    pub message: String,
}

/// The PCA as the official graph applies it: float32 mean, projection and whitening.
pub struct Pca {
    /// `[in]`: `mean.npy[:, 0]`.
    mean: Tensor,
    /// `[in, 1024]`: `eigenvecs.npy.T[:, :1024]`.
    proj: Tensor,
    /// `[1024]`: `sqrt(eigenvals.npy[:1024, 0] + 1e-4)` in float32.
    denom: Tensor,
    dir: PathBuf,
}

fn check_float(a: NpyArray, shown: String) -> Result<(NpyArray, String), PcaError> {
    if !a.dtype.is_float() {
        return Err(PcaError {
            kind: ErrorKind::CorruptData,
            path: shown,
            message: format!(
                "holds {} values; the published PCA is floating point",
                a.dtype.name()
            ),
        });
    }
    Ok((a, shown))
}

fn load_array(dir: &Path, name: &str) -> Result<(NpyArray, String), PcaError> {
    let p = dir.join(name);
    let shown = p.display().to_string();
    if !p.is_file() {
        return Err(PcaError {
            kind: ErrorKind::NotFound,
            path: shown,
            message: format!(
                "missing: the extractor directory needs {PCA_TGZ} (from \
                 http://data.yt8m.org/yt8m_pca.tgz) or the mean.npy, eigenvals.npy and \
                 eigenvecs.npy it holds"
            ),
        });
    }
    let a = read_npy(&p).map_err(|e| PcaError {
        kind: ErrorKind::CorruptData,
        path: shown.clone(),
        message: format!("{e}"),
    })?;
    check_float(a, shown)
}

/// The published archive's name.
pub const PCA_TGZ: &str = "yt8m_pca.tgz";
const PCA_FILES: [&str; 3] = ["mean.npy", "eigenvals.npy", "eigenvecs.npy"];

/// A column vector `[n, 1]` (the published layout) or a plain `[n]`: its values.
fn column(a: &NpyArray, path: &str, what: &str) -> Result<Vec<f32>, PcaError> {
    match a.shape[..] {
        [_] | [_, 1] => Ok(a.to_f32()),
        _ => Err(PcaError {
            kind: ErrorKind::CorruptData,
            path: path.into(),
            message: format!(
                "shape {:?}: {what} is a column ([n, 1], as published) or a vector",
                a.shape
            ),
        }),
    }
}

/// `mean.npy`, `eigenvals.npy` and `eigenvecs.npy` with the paths to name in errors: the files
/// as the official code leaves them in `dir`, else the archive as distributed.
fn read_pca_arrays(dir: &Path) -> Result<Vec<(NpyArray, String)>, PcaError> {
    let tgz = dir.join(PCA_TGZ);
    Ok(if !dir.join("mean.npy").is_file() && tgz.is_file() {
        let shown = tgz.display().to_string();
        let members = super::archive::read_members(&tgz, &PCA_FILES).map_err(|m| PcaError {
            kind: ErrorKind::CorruptData,
            path: shown.clone(),
            message: m,
        })?;
        let mut out = Vec::new();
        for name in PCA_FILES {
            let (_, bytes) = members
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| PcaError {
                    kind: ErrorKind::CorruptData,
                    path: shown.clone(),
                    message: format!("holds no {name}: not the published yt8m_pca.tgz"),
                })?;
            let inner = format!("{shown}:{name}");
            let a = yt8m_data::npy::read_npy_bytes(bytes, &inner).map_err(|e| PcaError {
                kind: ErrorKind::CorruptData,
                path: inner.clone(),
                message: format!("{e}"),
            })?;
            out.push(check_float(a, inner)?);
        }
        out
    } else {
        PCA_FILES
            .iter()
            .map(|n| load_array(dir, n))
            .collect::<Result<_, _>>()?
    })
}

impl Pca {
    /// Loads `mean.npy`, `eigenvals.npy` and `eigenvecs.npy` from `dir`, checking shapes
    /// against each other (`mean` `[in, 1]`, `eigenvals` `[>=1024, 1]`, `eigenvecs`
    /// `[>=1024, in]`; the published files have in = 2048 and square eigenvecs).
    pub fn load(dir: &Path) -> Result<Pca, PcaError> {
        let arrays = read_pca_arrays(dir)?;
        let mut arrays = arrays.into_iter();
        let (mean, mean_p) = arrays.next().expect("three");
        let mean = column(&mean, &mean_p, "the mean")?;
        let (vals, vals_p) = arrays.next().expect("three");
        let vals = column(&vals, &vals_p, "the eigenvalues")?;
        if vals.len() < PCA_DIMS {
            return Err(PcaError {
                kind: ErrorKind::CorruptData,
                path: vals_p,
                message: format!(
                    "{} eigenvalues; the official slicing keeps the first {PCA_DIMS}",
                    vals.len()
                ),
            });
        }
        let (vecs, vecs_p) = arrays.next().expect("three");
        let [rows, cols] = vecs.shape[..] else {
            return Err(PcaError {
                kind: ErrorKind::CorruptData,
                path: vecs_p,
                message: format!(
                    "shape {:?}: eigenvectors are a matrix, one per row",
                    vecs.shape
                ),
            });
        };
        if rows < PCA_DIMS || cols != mean.len() {
            return Err(PcaError {
                kind: ErrorKind::CorruptData,
                path: vecs_p,
                message: format!(
                    "shape [{rows}, {cols}]: expected at least {PCA_DIMS} eigenvectors of \
                     mean.npy's width {} (the published file is [2048, 2048])",
                    mean.len()
                ),
            });
        }
        if let Some(i) = vals[..PCA_DIMS]
            .iter()
            .position(|v| v.is_nan() || *v <= -1e-4)
        {
            return Err(PcaError {
                kind: ErrorKind::CorruptData,
                path: vals_p,
                message: format!(
                    "eigenvalue {i} is {}: whitening divides by sqrt(eigenvalue + 1e-4)",
                    vals[i]
                ),
            });
        }
        let width = cols as i64;
        let vecs = vecs.to_f32();
        let proj = Tensor::from_slice(&vecs[..PCA_DIMS * cols])
            .reshape([PCA_DIMS as i64, width])
            .transpose(0, 1)
            .contiguous();
        // float32 as in the official graph: tf.sqrt(float32(eigenvals) + float32(1e-4)).
        let denom: Vec<f32> = vals[..PCA_DIMS]
            .iter()
            .map(|v| (v + 1e-4f32).sqrt())
            .collect();
        if let Some(i) = mean.iter().position(|v| !v.is_finite()) {
            return Err(PcaError {
                kind: ErrorKind::CorruptData,
                path: mean_p,
                message: format!("value {i} is not finite"),
            });
        }
        Ok(Pca {
            mean: Tensor::from_slice(&mean),
            proj,
            denom: Tensor::from_slice(&denom),
            dir: dir.to_path_buf(),
        })
    }

    /// Width of the features the PCA takes (2048 for Inception's pool_3).
    pub fn input_dims(&self) -> usize {
        self.mean.size()[0] as usize
    }

    /// Where the files came from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Projects and whitens a batch: `[n, in]` float32 → `[n, 1024]` float32.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let dev = x.device();
        (x.to_kind(Kind::Float) - self.mean.to_device(dev)).matmul(&self.proj.to_device(dev))
            / self.denom.to_device(dev)
    }
}

/// The official `quantize`: one byte per value.
pub fn quantize(x: &[f32]) -> Vec<u8> {
    let scale = 255.0f32 / (QUANT_MAX - QUANT_MIN);
    x.iter()
        .map(|&v| {
            // NaN clips to NaN in numpy and then fails in int(); the extractor refuses
            // non-finite features before they get here. `as u8` saturates regardless.
            ((v.clamp(QUANT_MIN, QUANT_MAX) - QUANT_MIN) * scale).round_ties_even() as u8
        })
        .collect()
}

/// The official `mean_rgb`: a float32 running sum over frames, divided by the frame count.
/// `frames` is `[n, d]` row-major.
pub fn mean_features(frames: &[f32], d: usize) -> Vec<f32> {
    let n = frames.len() / d.max(1);
    let mut sum = vec![0f32; d];
    for row in frames.chunks_exact(d) {
        for (s, v) in sum.iter_mut().zip(row) {
            *s += v;
        }
    }
    // numpy: float32 array / Python int -> float32 division.
    sum.iter().map(|s| s / n as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_rounds_half_to_even_in_float32_and_clips() {
        // (x + 2) * 63.75: exact halves at x = -2 + k/63.75 are rare in float32; these are
        // exact: 0.5 -> 0 (even), 1.5 -> 2, 2.5 -> 2.
        let half = |k: f32| (k / 63.75f32) + QUANT_MIN;
        for (k, want) in [(0.5f32, 0u8), (1.5, 2), (2.5, 2), (254.5, 254)] {
            let x = half(k);
            let y = (x - QUANT_MIN) * 63.75f32;
            if y == k {
                assert_eq!(quantize(&[x]), [want], "{x} -> {y}");
            }
        }
        assert_eq!(
            quantize(&[-5.0, -2.0, 0.0, 2.0, 7.0]),
            [0, 0, 128, 255, 255]
        );
        // 0.0 -> 127.5 -> 128 (even).
        assert_eq!(quantize(&[0.0]), [128]);
    }

    #[test]
    fn the_mean_is_a_float32_running_sum() {
        let rows = [1.0f32, 2.0, 1e8, 3.0, 1.0, 5.0];
        let m = mean_features(&rows, 2);
        // float32: 1 + 1e8 + 1 = 1e8 (each 1 is lost), then / 3.
        assert_eq!(m, vec![(1.0f32 + 1e8 + 1.0) / 3.0, 10.0 / 3.0]);
    }
}
