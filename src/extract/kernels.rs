//! CPU kernels for the Inception graph's memory-bound ops, each one pass over channels-last
//! (NHWC) memory: the legacy `ResizeBilinear` and `BatchNormWithGlobalNormalization` with the
//! `Relu` that follows it. As libtorch ops they took a fifth of the graph's time on two cores
//! (gathers and four passes over every activation; docs/benchmarks.md, issue 30).
//!
//! Bit-for-bit the values of the libtorch expressions they replace, which equal TensorFlow's
//! kernels (tensorflow/core/kernels/image/resize_bilinear_op.cc `compute_lerp`,
//! tensorflow/core/kernels/batch_norm_op.h): the same f32 operations in the same order, with
//! no fused multiply-add (Rust never contracts `a * b + c`).
//!
//! One thread each: threads spawned per op fought libtorch's spinning OpenMP workers and lost
//! (15 against 19.7 frames/s), while a one-thread pass keeps pace with libtorch's two-thread
//! passes and FFmpeg decodes on the other core meanwhile. On more threads the batch norm goes
//! back to libtorch's in-place ops ([`batch_norm_in_one_pass`]).

use tch::{Device, Kind, Tensor};

/// One output coordinate of a bilinear resize along an axis: the lower and upper source
/// indices and the weight of the upper one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Tap {
    pub lo: usize,
    pub hi: usize,
    pub frac: f32,
}

/// TensorFlow's source coordinates for `out` positions over `inn` (legacy scaler
/// `out × scale`, or half-pixel centres), in f32 as its kernel computes them; the scale is
/// TensorFlow's `CalculateResizeScale`, a float division.
pub(super) fn resize_taps(inn: i64, out: i64, align: bool, half: bool) -> Vec<Tap> {
    let scale = if align && out > 1 {
        (inn - 1) as f32 / (out - 1) as f32
    } else {
        inn as f32 / out as f32
    };
    (0..out)
        .map(|o| {
            let src = if half {
                ((o as f32 + 0.5) * scale - 0.5).max(0.0)
            } else {
                o as f32 * scale
            };
            let lo = (src.floor() as i64).min(inn - 1).max(0);
            Tap {
                lo: lo as usize,
                hi: (lo + 1).min(inn - 1).max(0) as usize,
                frac: src - src.floor(),
            }
        })
        .collect()
}

/// `x` as a float slice when it is a CPU float tensor whose memory is NHWC-contiguous
/// (logical NCHW with channels-last strides), with its `[n, h, w, c]`.
fn nhwc_slice(x: &Tensor) -> Option<(&[f32], [usize; 4])> {
    if x.device() != Device::Cpu || x.kind() != Kind::Float || x.dim() != 4 {
        return None;
    }
    if !x.permute([0, 2, 3, 1]).is_contiguous() {
        return None;
    }
    let s = x.size();
    let dims = [s[0], s[2], s[3], s[1]].map(|d| d as usize);
    let n = dims.iter().product::<usize>();
    // SAFETY: a CPU float tensor whose memory is n contiguous f32 values from its data pointer
    // (checked above); the slice lives no longer than the borrow of `x`, and nothing writes to
    // a graph value once computed.
    let data = unsafe { std::slice::from_raw_parts(x.data_ptr() as *const f32, n) };
    Some((data, dims))
}

/// A new CPU float tensor `[n, c, h, w]` with channels-last memory, filled by `fill` through
/// its memory as an NHWC slice.
fn new_nhwc(n: usize, h: usize, w: usize, c: usize, fill: impl FnOnce(&mut [f32])) -> Tensor {
    let t = Tensor::empty([n, h, w, c].map(|d| d as i64), (Kind::Float, Device::Cpu));
    // SAFETY: a new contiguous CPU float tensor of n·h·w·c values that nothing else references
    // while `fill` runs.
    fill(unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, n * h * w * c) });
    t.permute([0, 3, 1, 2])
}

/// Legacy bilinear resize of a channels-last float batch (`x` logical `[n, c, h, w]`) to
/// `[n, c, oh, ow]` channels-last; `None` when `x` is not a CPU float NHWC-contiguous tensor
/// (the caller then uses libtorch ops).
pub(super) fn resize_bilinear_nhwc(x: &Tensor, ys: &[Tap], xs: &[Tap]) -> Option<Tensor> {
    let (src, [n, h, w, c]) = nhwc_slice(x)?;
    let (oh, ow) = (ys.len(), xs.len());
    if ys.iter().any(|t| t.hi >= h) || xs.iter().any(|t| t.hi >= w) {
        return None;
    }
    let orow = ow * c;
    let kernel = |out: &mut [f32]| {
        for (r, dst) in out.chunks_exact_mut(orow).enumerate() {
            let (img, oy) = (r / oh, r % oh);
            let y = ys[oy];
            let base = img * h * w * c;
            let top = &src[base + y.lo * w * c..][..w * c];
            let bottom = &src[base + y.hi * w * c..][..w * c];
            for (px, xt) in dst.chunks_exact_mut(c).zip(xs) {
                let (l, h) = (xt.lo * c, xt.hi * c);
                let corners = top[l..l + c]
                    .iter()
                    .zip(&top[h..h + c])
                    .zip(bottom[l..l + c].iter().zip(&bottom[h..h + c]));
                for (o, ((tl, tr), (bl, br))) in px.iter_mut().zip(corners) {
                    let t = tl + (tr - tl) * xt.frac;
                    let b = bl + (br - bl) * xt.frac;
                    *o = t + (b - t) * y.frac;
                }
            }
        }
    };
    Some(new_nhwc(n, oh, ow, c, kernel))
}

/// Whether a batch norm of `x` takes [`batch_norm_nhwc`]: on the CPU, with at most
/// [`ONE_PASS_MAX_THREADS`] libtorch threads. With more, libtorch's four passes (in place, on
/// every thread) would outrun one pass on one thread.
pub(super) fn batch_norm_in_one_pass(x: &Tensor) -> bool {
    x.device() == Device::Cpu && tch::get_num_threads() <= ONE_PASS_MAX_THREADS
}

/// The most libtorch threads for which the one-pass batch norm is used: against libtorch's
/// in-place passes it gained 2% on one core and 1.3% on two (docs/benchmarks.md, issue 30), and
/// a single thread cannot keep up with many.
pub(super) const ONE_PASS_MAX_THREADS: i32 = 2;

/// `(x − mean) · inv + beta` per channel, then ReLU when `relu`, over a channels-last float
/// batch in one pass: into `x` itself with `in_place` (the caller's promise that nothing else
/// reads it: a fresh convolution output with one reader), else into a new tensor. `None` when
/// `x` is not a CPU float NHWC-contiguous tensor or the parameters are not one per channel.
pub(super) fn batch_norm_nhwc(
    x: &Tensor,
    mean: &[f32],
    inv: &[f32],
    beta: &[f32],
    relu: bool,
    in_place: bool,
) -> Option<Tensor> {
    let (src, [n, h, w, c]) = nhwc_slice(x)?;
    if mean.len() != c || inv.len() != c || beta.len() != c || c == 0 {
        return None;
    }
    let per_channel = |y: f32, (m, (s, b)): (&f32, (&f32, &f32))| {
        let y = (y - m) * s + b;
        // `y < 0` is false for NaN, which carries on to CheckNumerics as in ReLU.
        if relu && y < 0.0 { 0.0 } else { y }
    };
    if in_place {
        let len = src.len();
        // SAFETY: `x`'s own memory (checked CPU float NHWC-contiguous above; `src` is not used
        // again); the caller guarantees no other reader, so no other reference sees the writes.
        let out = unsafe { std::slice::from_raw_parts_mut(x.data_ptr() as *mut f32, len) };
        for px in out.chunks_exact_mut(c) {
            for (o, p) in px.iter_mut().zip(mean.iter().zip(inv.iter().zip(beta))) {
                *o = per_channel(*o, p);
            }
        }
        return Some(x.shallow_clone());
    }
    Some(new_nhwc(n, h, w, c, |out| {
        for (px, x) in out.chunks_exact_mut(c).zip(src.chunks_exact(c)) {
            let params = mean.iter().zip(inv.iter().zip(beta));
            for (o, (x, p)) in px.iter_mut().zip(x.iter().zip(params)) {
                *o = per_channel(*x, p);
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channels_last(t: &Tensor) -> Tensor {
        t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    }

    fn bit_equal(a: &Tensor, b: &Tensor) -> bool {
        let a = Vec::<f32>::try_from(a.contiguous().view(-1)).unwrap();
        let b = Vec::<f32>::try_from(b.contiguous().view(-1)).unwrap();
        a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn resize_equals_the_libtorch_expression_bit_for_bit() {
        tch::manual_seed(3);
        for (n, h, w, oh, ow, align, half) in [
            (3, 37, 64, 299, 299, false, false),
            (2, 360, 640, 299, 299, false, false),
            (1, 5, 7, 3, 11, true, false),
            (2, 9, 4, 13, 2, false, true),
            (1, 1, 1, 4, 4, false, false),
        ] {
            let x =
                channels_last(&(Tensor::rand([n, 3, h, w], (Kind::Float, Device::Cpu)) * 255.0));
            let (ys, xs) = (
                resize_taps(h, oh, align, half),
                resize_taps(w, ow, align, half),
            );
            let ours = resize_bilinear_nhwc(&x, &ys, &xs).expect("a channels-last CPU batch");
            assert_eq!(ours.size(), [n, 3, oh, ow]);
            assert!(
                ours.permute([0, 2, 3, 1]).is_contiguous(),
                "channels-last out"
            );
            // The libtorch path the graph takes off the CPU and in other layouts.
            let want = super::super::tfgraph::resize_bilinear(&x, &ys, &xs);
            let diff = (&ours - &want).abs().max().double_value(&[]);
            println!("resize {h}x{w} -> {oh}x{ow}: max |diff| {diff:e}");
            assert!(bit_equal(&ours, &want), "{h}x{w} -> {oh}x{ow}");
        }
    }

    #[test]
    fn batch_norm_equals_the_libtorch_ops_bit_for_bit_with_and_without_relu() {
        tch::manual_seed(4);
        let c = 48;
        let x = channels_last(&Tensor::randn([4, c, 33, 35], (Kind::Float, Device::Cpu)));
        let p = |s: f64| Tensor::randn([c], (Kind::Float, Device::Cpu)) * s;
        let (mean, var, beta, gamma) = (p(0.5), p(1.0).abs() + 0.1, p(0.3), p(2.0));
        let inv = (&var + 1e-3).rsqrt() * &gamma;
        let v = |t: &Tensor| Vec::<f32>::try_from(t).unwrap();
        let pc = |t: &Tensor| t.reshape([1, -1, 1, 1]);
        let mut want = x.f_sub(&pc(&mean)).unwrap();
        let _ = want.f_mul_(&pc(&inv)).unwrap();
        let _ = want.f_add_(&pc(&beta)).unwrap();
        for relu in [false, true] {
            let want = if relu {
                want.relu()
            } else {
                want.shallow_clone()
            };
            for in_place in [false, true] {
                let input = x.copy();
                let ours = batch_norm_nhwc(&input, &v(&mean), &v(&inv), &v(&beta), relu, in_place)
                    .unwrap();
                let diff = (&ours - &want).abs().max().double_value(&[]);
                println!("batch norm (relu {relu}, in place {in_place}): max |diff| {diff:e}");
                assert!(ours.permute([0, 2, 3, 1]).is_contiguous());
                assert!(bit_equal(&ours, &want), "relu {relu}, in place {in_place}");
                // In place writes the input's own memory; otherwise the input is untouched.
                assert_eq!(bit_equal(&input, &want), in_place);
                assert_eq!(bit_equal(&input, &x), !in_place);
            }
        }
        // NaN carries through the ReLU, as libtorch's and TensorFlow's do.
        let nan = channels_last(&Tensor::full(
            [1, c, 1, 1],
            f64::NAN,
            (Kind::Float, Device::Cpu),
        ));
        let out = batch_norm_nhwc(&nan, &v(&mean), &v(&inv), &v(&beta), true, false).unwrap();
        assert!(out.isnan().all().int64_value(&[]) == 1);
    }

    #[test]
    fn other_layouts_and_kinds_are_left_to_libtorch() {
        let nchw = Tensor::zeros([1, 3, 4, 4], (Kind::Float, Device::Cpu));
        let taps = resize_taps(4, 2, false, false);
        assert!(resize_bilinear_nhwc(&nchw, &taps, &taps).is_none());
        let double = channels_last(&nchw.to_kind(Kind::Double));
        assert!(batch_norm_nhwc(&double, &[0.0; 3], &[1.0; 3], &[0.0; 3], true, true).is_none());
        let cl = channels_last(&nchw);
        assert!(batch_norm_nhwc(&cl, &[0.0; 2], &[1.0; 2], &[0.0; 2], true, true).is_none());
    }
}
