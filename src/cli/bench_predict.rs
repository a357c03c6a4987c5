//! `yt8m bench predict`: inference throughput at each batch size and precision, against the
//! GEMM ceiling, PyTorch and onnxruntime on the same exported graph and inputs, with the
//! quality of each precision against fp32. Results go to docs/benchmarks.md with the command.

use super::bench::{ModelBenchOptions, bench_videos, bf16_not_timed};
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use yt8m::data::batch::Batch;
use yt8m::error::{Error, Result};
use yt8m::kinds::kind_name;

/// Inference throughput (no autograd) at each batch size, optionally against onnxruntime on
/// the same exported graph and inputs.
pub fn bench_predict(o: &ModelBenchOptions) -> Result<String> {
    use yt8m::model::Model;
    let cfg = &o.config;
    let device = cfg.TRAIN.device.resolve()?;
    let threads = yt8m::threads::configure_torch_threads();
    let arch = cfg.architecture();
    tch::manual_seed(1);
    let model = Model::new(arch.clone(), device, tch::Kind::Float);
    let models = precision_models(&arch, device, &o.precisions);
    let dir = o.workdir.join("predict");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let maxb = *o.batch_sizes.iter().max().unwrap_or(&1);
    // Whole sorting windows only: a trailing partial window would be an unsorted batch that
    // `predict` on a long input never sees.
    let win = yt8m::predict::DEFAULT_BUCKET_WINDOW;
    let n_batches = (o.steps + o.warmup).div_ceil(win) * win;
    let vids = bench_videos(&dir.join("data"), cfg, maxb * n_batches)?;
    let onnx = match &o.python {
        Some(_) => {
            let p = dir.join("model.onnx");
            std::fs::write(&p, yt8m::onnx::export_onnx(&model, &cfg.input_names())?)
                .map_err(|e| Error::io(&p, e))?;
            Some(p)
        }
        None => None,
    };
    let mut out = format!(
        "inference throughput ({}), {} thread(s), lengths uniform 1–300, windows of {} batches sorted by length (as `yt8m predict`)\n\n| batch | precision | yt8m videos/s | yt8m frames/s | real frames / padded | onnxruntime videos/s (fp32) | ratio |\n|---|---|---|---|---|---|---|\n",
        arch.name(),
        threads,
        yt8m::predict::DEFAULT_BUCKET_WINDOW
    );
    if !models.iter().any(|m| m.1 == tch::Kind::BFloat16) {
        out.insert_str(
            out.find("\n\n").unwrap_or(out.len()) + 1,
            &bf16_not_timed(device),
        );
    }
    let mut quality = Vec::new();
    let mut last = Vec::new();
    for &bs in &o.batch_sizes {
        let used = &vids[..(bs * n_batches).min(vids.len())];
        let lengths: Vec<usize> = used.iter().map(|v| v.num_frames).collect();
        let batches: Vec<Batch> = yt8m::data::batch::length_buckets(&lengths, bs, win)
            .into_iter()
            .map(|g| Batch::from_indices(used, &g, &cfg.feature_spec()))
            .collect();
        let (speeds, differ) = time_precisions(&models, &batches, device, o.warmup);
        quality.extend(differ.map(|d| format!("batch {bs}: {d}")));
        let theirs = match (&o.python, &onnx) {
            (Some(py), Some(model_path)) => Some(onnxruntime_rate(
                py, model_path, &batches, cfg, &dir, threads, o.warmup,
            )?),
            _ => None,
        };
        for (k, (_, kind, v, f, share)) in speeds.iter().enumerate() {
            let (t, r) = match (k, theirs) {
                (0, Some(t)) => (format!("{t:.2}"), format!("{:.2}x", v / t)),
                _ => ("-".into(), "-".into()),
            };
            out.push_str(&format!(
                "| {bs} | {} | {v:.2} | {f:.0} | {share:.2} | {t} | {r} |\n",
                kind_name(*kind)
            ));
        }
        last = speeds;
    }
    out.push_str(&predict_footer(&models, &quality, &last));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

/// The same weights (seed 1) computing in each requested precision (fp32 when none is asked).
fn precision_models(
    arch: &yt8m::model::Architecture,
    device: tch::Device,
    precisions: &[yt8m::kinds::Precision],
) -> Vec<PrecisionModel> {
    let fp32 = [yt8m::kinds::Precision::Fp32];
    let precisions = if precisions.is_empty() {
        &fp32[..]
    } else {
        precisions
    };
    precisions
        .iter()
        .map(|p| {
            tch::manual_seed(1);
            let mut m = yt8m::model::Model::new(arch.clone(), device, tch::Kind::Float);
            let (kind, why) = m.use_precision(*p);
            (*p, kind, why, m)
        })
        .collect()
}

/// One precision's row at one batch size: the precision, its kind, videos/s, frames/s and the
/// share of real (unpadded) frames.
type Speed = (yt8m::kinds::Precision, tch::Kind, f64, f64, f64);

/// Times each precision on the same batches; with two or more, also how far the first two's
/// probabilities are apart on the first batch.
fn time_precisions(
    models: &[PrecisionModel],
    batches: &[Batch],
    device: tch::Device,
    warmup: usize,
) -> (Vec<Speed>, Option<String>) {
    let mut speeds = Vec::new();
    let mut probs: Vec<tch::Tensor> = Vec::new();
    for (p, kind, _, m) in models {
        let (rate, first) = time_model(m, batches, device, warmup);
        speeds.push((
            *p,
            *kind,
            rate.videos_per_s,
            rate.frames_per_s,
            rate.real_share,
        ));
        probs.extend(first);
    }
    let differ = match (probs.first(), probs.get(1)) {
        (Some(a), Some(b)) => {
            let d = (a - b).abs().max().double_value(&[]);
            Some(format!(
                "max |p_{} − p_{}| on the first batch = {d:.2e}",
                kind_name(models[0].1),
                kind_name(models[1].1)
            ))
        }
        _ => None,
    };
    (speeds, differ)
}

/// The same weights set to compute in one precision: the precision, the kind it resolved to
/// and why.
type PrecisionModel = (
    yt8m::kinds::Precision,
    tch::Kind,
    String,
    yt8m::model::Model,
);

/// Below `bench predict`'s table: why each precision, the first batches' differences, and
/// bf16's speed-up over fp32 at the largest batch.
fn predict_footer(models: &[PrecisionModel], quality: &[String], last: &[Speed]) -> String {
    let mut out = String::new();
    for (p, _, why, _) in models {
        out.push_str(&format!("\n{p}: {why}"));
    }
    out.push('\n');
    for q in quality {
        out.push_str(&format!("\nquality: {q}"));
    }
    let v = |k: tch::Kind| last.iter().find(|s| s.1 == k).map(|s| s.2);
    if let (Some(f), Some(b)) = (v(tch::Kind::Float), v(tch::Kind::BFloat16)) {
        out.push_str(&format!("\nbf16/fp32 speed-up: {:.2}x\n", b / f));
    }
    out
}

/// One model's throughput over `batches` (after `warmup` of them).
struct Rate {
    videos_per_s: f64,
    frames_per_s: f64,
    /// Real frames over padded frame slots.
    real_share: f64,
}

/// Times `m` over `batches` as `yt8m predict` runs them (upload, forward, sigmoid, back to
/// the CPU); also returns the first batch's probabilities, to compare precisions.
fn time_model(
    m: &yt8m::model::Model,
    batches: &[Batch],
    device: tch::Device,
    warmup: usize,
) -> (Rate, Option<tch::Tensor>) {
    let (mut el, mut n, mut frames, mut padded) = (0.0, 0usize, 0usize, 0usize);
    let mut first = None;
    tch::no_grad(|| {
        for (i, b) in batches.iter().enumerate() {
            yt8m::threads::adapt_torch_threads();
            let t = Instant::now();
            let logits = m.forward(&yt8m::model::batch_inputs(b, device, m.kind), false);
            let pr = logits
                .to_kind(tch::Kind::Float)
                .sigmoid()
                .to_device(tch::Device::Cpu);
            if i >= warmup {
                el += t.elapsed().as_secs_f64();
                n += b.len();
                frames += b.frames();
                padded += b.len() * b.max_len;
            }
            if i == 0 {
                first = Some(pr);
            }
        }
    });
    let rate = Rate {
        videos_per_s: n as f64 / el,
        frames_per_s: frames as f64 / el,
        real_share: frames as f64 / padded.max(1) as f64,
    };
    (rate, first)
}

/// onnxruntime's videos/s on the same batches through `scripts/onnx_run.py` with `py`,
/// timed inside its session (no Python overhead counted).
#[allow(clippy::too_many_arguments)]
fn onnxruntime_rate(
    py: &Path,
    model_path: &Path,
    batches: &[Batch],
    cfg: &yt8m::config::Config,
    dir: &Path,
    threads: usize,
    warmup: usize,
) -> Result<f64> {
    let mut total = 0.0;
    let mut m = 0;
    for (i, b) in batches.iter().enumerate() {
        let mut inputs = Vec::new();
        for (k, name) in cfg.MODEL.head.feature_names.iter().enumerate() {
            let yt8m::data::batch::ModalityData::U8(q) = &b.modalities[k].data else {
                continue;
            };
            inputs.push((
                name.as_str(),
                tch::Tensor::from_slice(q).view([
                    b.len() as i64,
                    b.max_len as i64,
                    b.modalities[k].dim as i64,
                ]),
            ));
        }
        inputs.push(("lengths", tch::Tensor::from_slice(&b.lengths)));
        let inp = dir.join("in.npz");
        tch::Tensor::write_npz(&inputs, &inp)?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/onnx_run.py");
        let r = Command::new(py)
            .arg(&script)
            .arg(model_path)
            .arg(&inp)
            .arg(dir.join("out.npz"))
            .arg("--threads")
            .arg(threads.to_string())
            .output()
            .map_err(|e| Error::Invalid(format!("cannot run {}: {e}", py.display())))?;
        if !r.status.success() {
            return Err(Error::Invalid(format!(
                "onnxruntime failed: {}",
                String::from_utf8_lossy(&r.stderr)
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap_or_default();
        if i >= warmup {
            total += v["seconds"][0].as_f64().unwrap_or(f64::NAN);
            m += b.len();
        }
    }
    Ok(m as f64 / total)
}
