//! A batch on the model's device: uint8 frames uploaded and dequantized there (one pass on the
//! CPU), lengths and labels. Only a `[B, T]` validity mask is ever built, never PaddleVideo's
//! data-sized float masks.

use super::valid_frames;
use crate::data::batch::{Batch, ModalityData};
use crate::data::video::{DEQ_BIAS, DEQ_SCALE};
use tch::{Device, Kind, Tensor};

/// Model inputs on the device.
pub struct Inputs {
    /// Per modality `[B, T, D]` float.
    pub features: Vec<Tensor>,
    /// `[B]` int64 on the device.
    pub lengths: Tensor,
    /// `[B, C]` float multi-hot.
    pub labels: Tensor,
}

/// Uploads a batch: uint8 → device → dequantize there (`q * f32(4/255) + f32(-1.9921875)`,
/// the official reader's two f32 ops), rows past a modality's own length set to 0.0 (the
/// official reader pads after dequantization). A float64 model dequantizes in float64
/// (`q * (4/255) + (4/512 − 2)`, PaddleVideo's numpy `dequantize` on uint8 arrays): float32
/// dequantization then a cast would cap every float64 comparison at ~3e-7 input error.
pub fn batch_inputs(batch: &Batch, device: Device, kind: Kind) -> Inputs {
    let b = batch.len() as i64;
    let t = batch.max_len as i64;
    let lengths = Tensor::from_slice(&batch.lengths).to_device(device);
    let features = batch
        .modalities
        .iter()
        .map(|m| {
            let d = m.dim as i64;
            match &m.data {
                ModalityData::U8(q) if device == Device::Cpu => {
                    dequantize_cpu(q, &m.rows, b, t, d, kind)
                }
                ModalityData::U8(q) => {
                    // Float64 models dequantize in float64; all others in the reader's float32.
                    let (deq, scale, bias) = if kind == Kind::Double {
                        (Kind::Double, DEQ_SCALE_F64, DEQ_BIAS_F64)
                    } else {
                        (Kind::Float, DEQ_SCALE as f64, DEQ_BIAS as f64)
                    };
                    let x = Tensor::from_slice(q)
                        .view([b, t, d])
                        .to_device(device)
                        .to_kind(deq);
                    let x = (x * scale) + bias;
                    let rows = Tensor::from_slice(&m.rows).to_device(device);
                    let valid = valid_frames(&rows, t).unsqueeze(2);
                    (x * valid.to_kind(deq)).to_kind(kind)
                }
                ModalityData::F32(v) => Tensor::from_slice(v)
                    .view([b, t, d])
                    .to_device(device)
                    .to_kind(kind),
            }
        })
        .collect();
    let labels = Tensor::from_slice(&batch.labels)
        .view([b, batch.num_classes as i64])
        .to_device(device)
        .to_kind(kind);
    Inputs {
        features,
        lengths,
        labels,
    }
}

/// `[B, T, D]` from uint8 frames on the CPU in one pass: a 256-entry table of the official
/// dequantization (the same two f32 ops as the device path, so the same bits; float64 for a
/// float64 `kind`), rows past `rows[b]` 0.0. The device path's cast, scale, shift and mask are
/// four passes with a temporary each (measured: a quarter of `yt8m serve`'s time on the demo
/// bundle, half of it in page faults for the temporaries).
fn dequantize_cpu(q: &[u8], rows: &[i64], b: i64, t: i64, d: i64, kind: Kind) -> Tensor {
    let n = (b * t * d) as usize;
    if n == 0 || q.len() != n {
        // Nothing to convert (or a malformed batch: let libtorch report the shape).
        return Tensor::from_slice(q).to_kind(kind).view([b, t, d]);
    }
    if kind == Kind::Double {
        let lut: [f64; 256] = std::array::from_fn(|i| i as f64 * DEQ_SCALE_F64 + DEQ_BIAS_F64);
        return fill_dequantized(q, rows, [b, t, d], &lut, Kind::Double);
    }
    let lut: [f32; 256] = std::array::from_fn(|i| crate::data::video::dequantize(i as u8));
    fill_dequantized(q, rows, [b, t, d], &lut, Kind::Float).to_kind(kind)
}

/// PaddleVideo's float64 dequantization (`feat * (4/255) + (4/512 − 2)` on a uint8 array in
/// numpy): what a float64 model sees.
const DEQ_SCALE_F64: f64 = 4.0 / 255.0;
const DEQ_BIAS_F64: f64 = 4.0 / 512.0 - 2.0;

/// Writes `lut[q]` for each video's first `rows[i]` frames and zeros after, into a new
/// contiguous CPU tensor of `kind` (whose element type must be `T`).
fn fill_dequantized<T: Copy + Default + tch::kind::Element>(
    q: &[u8],
    rows: &[i64],
    [b, t, d]: [i64; 3],
    lut: &[T; 256],
    kind: Kind,
) -> Tensor {
    debug_assert_eq!(T::KIND, kind);
    let n = (b * t * d) as usize;
    let out = Tensor::empty([b, t, d], (kind, Device::Cpu));
    // SAFETY: `out` is a new contiguous CPU tensor of n elements of type T (its kind is T's)
    // that nothing else references until this function returns it.
    let dst = unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut T, n) };
    let per = (t * d) as usize;
    for (i, (src, dst)) in q
        .chunks_exact(per)
        .zip(dst.chunks_exact_mut(per))
        .enumerate()
    {
        let valid = (rows.get(i).copied().unwrap_or(0).clamp(0, t) * d) as usize;
        for (o, &x) in dst[..valid].iter_mut().zip(&src[..valid]) {
            *o = lut[x as usize];
        }
        dst[valid..].fill(T::default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass CPU upload gives the device path's bits: cast, × f32(4/255), + f32 bias,
    /// rows past each video's own length 0.
    #[test]
    fn cpu_dequantization_equals_the_tensor_ops_bit_for_bit() {
        let (b, t, d) = (3i64, 5i64, 256i64);
        let q: Vec<u8> = (0..(b * t * d) as usize)
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        let rows = [5i64, 2, 0];
        let ours = dequantize_cpu(&q, &rows, b, t, d, Kind::Float);
        let x = Tensor::from_slice(&q).view([b, t, d]).to_kind(Kind::Float);
        let x = (x * DEQ_SCALE as f64) + DEQ_BIAS as f64;
        let valid = Tensor::arange(t, (Kind::Int64, Device::Cpu))
            .unsqueeze(0)
            .lt_tensor(&Tensor::from_slice(&rows).unsqueeze(1))
            .unsqueeze(2);
        let want = x * valid.to_kind(Kind::Float);
        assert!(ours.equal(&want));
        assert_eq!(ours.get(2).abs().sum(Kind::Float).double_value(&[]), 0.0);
    }

    /// A failed save (a full disk) says where and why once, not libtorch's text twice.
    /// A float64 model sees PaddleVideo's float64 dequantization, on the CPU path and on the
    /// tensor-op path alike: `q * (4/255) + (4/512 − 2)` computed in f64, not an f32 value
    /// widened (which differs by up to ~1.2e-7).
    #[test]
    fn float64_models_dequantize_in_float64() {
        let (b, t, d) = (2i64, 3i64, 256i64);
        let q: Vec<u8> = (0..(b * t * d) as usize).map(|i| (i % 256) as u8).collect();
        let rows = [3i64, 1];
        let ours = dequantize_cpu(&q, &rows, b, t, d, Kind::Double);
        assert_eq!(ours.kind(), Kind::Double);
        let v: Vec<f64> = Vec::try_from(ours.flatten(0, -1)).unwrap();
        let mut widened_err = 0f64;
        for (i, (&got, &x)) in v.iter().zip(&q).enumerate() {
            let frame = (i / d as usize) % t as usize;
            let video = i / (t * d) as usize;
            let want = if (frame as i64) < rows[video] {
                x as f64 * (4.0 / 255.0) + (4.0 / 512.0 - 2.0)
            } else {
                0.0
            };
            assert_eq!(got, want, "element {i} (q = {x})");
            if want != 0.0 {
                widened_err =
                    widened_err.max((crate::data::video::dequantize(x) as f64 - want).abs());
            }
        }
        println!(
            "float64 dequantization exact; the float32 value widened would differ by up to {widened_err:.1e}"
        );
        assert!(
            widened_err > 1e-8,
            "the test must be able to tell the two apart"
        );
        // The tensor-op path (used on GPUs) gives the same bits.
        let x = Tensor::from_slice(&q).view([b, t, d]).to_kind(Kind::Double);
        let x = (x * DEQ_SCALE_F64) + DEQ_BIAS_F64;
        let valid = Tensor::arange(t, (Kind::Int64, Device::Cpu))
            .unsqueeze(0)
            .lt_tensor(&Tensor::from_slice(&rows).unsqueeze(1))
            .unsqueeze(2);
        assert!(ours.equal(&(x * valid.to_kind(Kind::Double))));
    }
}
