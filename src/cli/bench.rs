//! `yt8m bench train` and `bench segments`, and what the model benchmarks share (the GEMM
//! ceiling, benchmark data): the models' throughput printed as tables, alternatives side by side
//! in one run (the GEMM ceiling, PyTorch, bf16 against fp32). `bench predict` is in
//! `bench_predict.rs`, the evaluator's, readers' and extractor's benchmarks in `bench_data.rs`,
//! `bench serve` in `bench_serve.rs`. Results go to docs/benchmarks.md with
//! the command that produced them. Part of the binary, not the library (issue #28): it spawns
//! Python and prints tables, which no library user needs.

use std::path::{Path, PathBuf};
use std::time::Instant;
use yt8m::data::batch::{Batch, Loader};
use yt8m::data::sources::read_shard;
use yt8m::error::{Error, Result};
use yt8m::kinds::kind_name;

pub fn default_workdir() -> PathBuf {
    std::env::temp_dir().join("yt8m-bench")
}

/// The rate of one `[m, k] × [k, n]` product in `kind` on `device` (best of up to 4 rounds,
/// GFLOP/s). Bounded in time whatever the CPU: each round is sized from a timed call to about
/// 0.1 s, and no new round starts after 0.4 s (a 4096³ product takes ~0.3 s on two AVX-512
/// cores and seconds on slow ones).
pub fn gemm_rate(device: tch::Device, kind: tch::Kind, (m, k, n): (i64, i64, i64)) -> f64 {
    let a = tch::Tensor::randn([m, k], (kind, device));
    let b = tch::Tensor::randn([k, n], (kind, device));
    let once = || {
        let c = a.matmul(&b);
        let _ = c.sum(tch::Kind::Float).double_value(&[]); // synchronize (CUDA)
    };
    once(); // warm-up (oneDNN primitive creation)
    let t = Instant::now();
    once();
    let one = t.elapsed().as_secs_f64().max(1e-6);
    let reps = ((0.1 / one) as usize).clamp(1, 20);
    let mut best = one;
    let start = Instant::now();
    for _ in 0..4 {
        if start.elapsed().as_secs_f64() > 0.4 {
            break;
        }
        let t = Instant::now();
        for _ in 0..reps {
            once();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    2.0 * (m * k * n) as f64 / best / 1e9
}

/// GEMM rates per shape in fp32 and, with `bf16`, bf16: 4096³ and the model's own products at
/// batch `b` (input projection `[B·T, E]×[E, 4H]`, recurrence `[B, H]×[H, 4H]`, first head
/// layer). One 4096³ product is not this CPU's peak (it measured 184 GFLOP/s while the LSTM
/// kernel reached 345), so the ceiling is the best over these shapes, per dtype, in the same
/// run. bf16 is timed only when asked: emulated (CPUs without avx512_bf16/AMX) a 4096³ bf16
/// product takes minutes; its column is then NaN.
pub fn gemm_ceilings(
    device: tch::Device,
    mc: &yt8m::model::AttentionLstmConfig,
    b: i64,
    bf16: bool,
) -> (Vec<(String, f64, f64)>, f64, f64) {
    let (e, h) = (mc.embedding_size as i64, mc.lstm_size as i64);
    let pool = 2 * h * mc.feature_dims.len() as i64;
    let shapes = [
        ("4096×4096×4096".to_string(), (4096, 4096, 4096)),
        (
            format!("input proj [{}·150, {e}]×[{e}, {}]", b, 4 * h),
            (b * 150, e, 4 * h),
        ),
        (
            format!("recurrence [{b}, {h}]×[{h}, {}]", 4 * h),
            (b, h, 4 * h),
        ),
        (
            format!("head [{b}, {pool}]×[{pool}, {}]", mc.fc_out1_size),
            (b, pool, mc.fc_out1_size as i64),
        ),
    ];
    let rows: Vec<(String, f64, f64)> = shapes
        .into_iter()
        .map(|(name, s)| {
            let b16 = if bf16 {
                gemm_rate(device, tch::Kind::BFloat16, s)
            } else {
                f64::NAN
            };
            (name, gemm_rate(device, tch::Kind::Float, s), b16)
        })
        .collect();
    let f = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    let b16 = rows.iter().map(|r| r.2).fold(f64::NAN, f64::max);
    (rows, f, b16)
}

/// The one line a benchmark prints when it does not time bf16 although it could: why, and how
/// to ask for it.
pub(crate) fn bf16_not_timed(device: tch::Device) -> String {
    let (native, why) = yt8m::kinds::bf16_is_native(device);
    let why = why.trim_start_matches("auto: ");
    if native {
        format!(
            "bf16 not timed (not asked; native here: {why}): add it with --precision fp32,bf16\n"
        )
    } else {
        format!(
            "bf16 not timed ({why}: every bf16 product emulated, many times slower): ask with --precision fp32,bf16\n"
        )
    }
}

/// Options of `yt8m bench train` / `bench predict`.
pub struct ModelBenchOptions {
    pub config: yt8m::config::Config,
    pub batch_sizes: Vec<usize>,
    pub steps: usize,
    pub warmup: usize,
    pub workdir: PathBuf,
    pub python: Option<PathBuf>,
    /// Compute types to time side by side (inference).
    pub precisions: Vec<yt8m::kinds::Precision>,
}

fn synth_for_bench(dir: &Path, cfg: &yt8m::config::Config, videos: usize) -> Result<Vec<PathBuf>> {
    let sc = yt8m::data::synth::SynthConfig {
        num_videos: videos,
        num_shards: 4,
        num_classes: cfg.MODEL.head.num_classes,
        dims: cfg.MODEL.head.feature_dims.clone(),
        min_frames: 1,
        max_frames: 300,
        seed: 99,
        prefix: "bench".into(),
        ..Default::default()
    };
    Ok(yt8m::data::synth::write_synthetic(dir, &sc)
        .map_err(Error::from)?
        .files)
}

/// Training throughput with the whole data path (reader threads, bucketing, uint8 upload,
/// dequantization on the device), YouTube-8M-like lengths (uniform 1–300, some longer).
pub fn bench_train(o: &ModelBenchOptions) -> Result<String> {
    use yt8m::model::Model;
    let cfg = &o.config;
    let device = cfg.TRAIN.device.resolve()?;
    let threads = yt8m::threads::configure_torch_threads();
    let arch = cfg.architecture();
    if let Some(mc) = arch.config::<yt8m::model::AttentionLstmConfig>() {
        return bench_train_attention_lstm(o, mc, device, threads);
    }
    // Any other head: the same loop with the config's own loss and optimizer, in each
    // requested precision (bf16: mixed, float32 master weights).
    let mut table = String::new();
    let computes = train_computes(o, device);
    for &bs in &o.batch_sizes {
        for &compute in &computes {
            let r = train_loop(o, &arch, device, compute, bs, false)?;
            table.push_str(&r.row(bs, compute, o.steps));
            table.push('\n');
        }
    }
    let not_timed = if computes.contains(&tch::Kind::BFloat16) {
        String::new()
    } else {
        bf16_not_timed(device)
    };
    Ok(format!(
        "training throughput, {} ({} parameters, {} loss, {:?}), {} on {}, {threads} thread(s)\n{not_timed}\n| batch | compute | steps | samples/s | frames/s | real frames / padded | data wait | GFLOP/s (≈3x fwd) |\n|---|---|---|---|---|---|---|---|\n{table}",
        arch.name(),
        Model::new(arch.clone(), tch::Device::Cpu, tch::Kind::Float).num_parameters(),
        serde_json::to_value(cfg.TRAIN.loss)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        cfg.OPTIMIZER.name,
        cfg.TRAIN.dtype,
        yt8m::runtime::device_name(device)
    ))
}

/// What one timed training loop measured.
struct TrainRate {
    samples_per_s: f64,
    frames_per_s: f64,
    /// Real frames over padded frames.
    fill: f64,
    wait_share: f64,
    gflops: f64,
}

impl TrainRate {
    /// `| batch | compute | steps | samples/s | frames/s | fill | data wait | GFLOP/s |`
    fn row(&self, bs: usize, compute: tch::Kind, steps: usize) -> String {
        format!(
            "| {bs} | {} | {steps} | {:.2} | {:.0} | {:.2} | {:.1}% | {:.1} |",
            kind_name(compute),
            self.samples_per_s,
            self.frames_per_s,
            self.fill,
            100.0 * self.wait_share,
            self.gflops
        )
    }
}

/// The compute kinds `bench train` times: each requested precision (default the config's),
/// bf16 as mixed precision (float32 master weights and optimizer), else the storage dtype.
fn train_computes(o: &ModelBenchOptions, device: tch::Device) -> Vec<tch::Kind> {
    let cfg = &o.config;
    let precisions = if o.precisions.is_empty() {
        vec![cfg.TRAIN.precision]
    } else {
        o.precisions.clone()
    };
    precisions
        .iter()
        .map(|p| match p.resolve(device).0 {
            tch::Kind::BFloat16 => tch::Kind::BFloat16,
            _ => cfg.TRAIN.dtype.kind(),
        })
        .collect()
}

/// `o.warmup` + `o.steps` training steps at batch `bs` on fresh synthetic data through the
/// real loader, computing in `compute`. `paddle_recipe`: RMSProp on the summed BCE (the
/// AttentionLSTM's); otherwise the config's optimizer and `TRAIN.loss`.
fn train_loop(
    o: &ModelBenchOptions,
    arch: &yt8m::model::Architecture,
    device: tch::Device,
    compute: tch::Kind,
    bs: usize,
    paddle_recipe: bool,
) -> Result<TrainRate> {
    use yt8m::model::{Model, batch_inputs};
    let cfg = &o.config;
    let dir = o.workdir.join(format!("train_b{bs}"));
    let _ = std::fs::remove_dir_all(&dir);
    let files = synth_for_bench(&dir, cfg, bs * (o.steps + o.warmup) * 2)?;
    let mut lc = cfg.loader_config(yt8m::config::Split::Train);
    lc.batch_size = bs;
    lc.bucket_window = 4;
    let loader = Loader::new(files, cfg.feature_spec(), lc);
    tch::manual_seed(1);
    let model = Model::new(arch.clone(), device, cfg.TRAIN.dtype.kind());
    let mut opt = if paddle_recipe {
        yt8m::optim::Optimizer::rms_prop(
            yt8m::optim::RmsPropConfig::default(),
            model.param_groups(4e-4),
        )
    } else {
        yt8m::optim::Optimizer::new(
            cfg.OPTIMIZER.algorithm(),
            model.param_groups(cfg.OPTIMIZER.weight_decay.value),
        )
    };
    let (mut n, mut frames, mut padded, mut wait, mut el, mut flops) =
        (0usize, 0usize, 0usize, 0f64, 0f64, 0f64);
    let mut it = loader.epoch(0);
    for step in 0..o.steps + o.warmup {
        let tw = Instant::now();
        let Some(b) = it.next() else { break };
        let b = b?;
        let w = tw.elapsed().as_secs_f64();
        yt8m::threads::adapt_torch_threads();
        let t = Instant::now();
        let inp = batch_inputs(&b, device, compute);
        let name = if paddle_recipe {
            yt8m::kinds::LossName::BceSum
        } else {
            cfg.TRAIN.loss
        };
        let (loss, _) = yt8m::model::training_loss(&model, &inp, name, true);
        opt.zero_grad();
        loss.backward();
        opt.step(2.5e-4, step as u64 + 1);
        let _ = loss.double_value(&[]); // synchronize (CUDA)
        if step >= o.warmup {
            el += t.elapsed().as_secs_f64() + w;
            wait += w;
            n += b.len();
            frames += b.frames();
            padded += b.len() * b.max_len;
            flops += b
                .lengths
                .iter()
                .map(|&l| 3.0 * arch.forward_flops(l as f64))
                .sum::<f64>();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let el = el.max(1e-9);
    Ok(TrainRate {
        samples_per_s: n as f64 / el,
        frames_per_s: frames as f64 / el,
        fill: frames as f64 / padded.max(1) as f64,
        wait_share: wait / el,
        gflops: flops / el / 1e9,
    })
}

/// The AttentionLSTM's training benchmark, with the GEMM and LSTM-kernel ceilings it is
/// measured against.
fn bench_train_attention_lstm(
    o: &ModelBenchOptions,
    mc: &yt8m::model::AttentionLstmConfig,
    device: tch::Device,
    threads: usize,
) -> Result<String> {
    let cfg = &o.config;
    let arch = yt8m::model::Architecture::from(mc.clone());
    let maxb = *o.batch_sizes.iter().max().unwrap_or(&1) as i64;
    let computes = train_computes(o, device);
    let with_bf16 = computes.contains(&tch::Kind::BFloat16);
    let (shape_rows, ceiling_before, bf16_before) = gemm_ceilings(device, mc, maxb, with_bf16);
    // Rows without their last column (share of the ceiling, known at the end) and their GFLOP/s.
    let mut rows: Vec<(String, f64, tch::Kind)> = Vec::new();
    let head = format!(
        "training throughput, AttentionLSTM E={} H={} fc {}/{} C={}, {} on {}, {threads} thread(s)",
        mc.embedding_size,
        mc.lstm_size,
        mc.fc_out1_size,
        mc.fc_out2_size,
        mc.num_classes,
        cfg.TRAIN.dtype,
        yt8m::runtime::device_name(device)
    );
    let mut last: Vec<(tch::Kind, f64)> = Vec::new();
    for &bs in &o.batch_sizes {
        last.clear();
        for &compute in &computes {
            let r = train_loop(o, &arch, device, compute, bs, true)?;
            last.push((compute, r.samples_per_s));
            rows.push((r.row(bs, compute, o.steps), r.gflops, compute));
        }
    }
    let speedup = bf16_speedup(&last);
    let lstm_rows = lstm_kernel_rows(o, mc, device);
    // Shared machines drift: the larger of two ceiling measurements keeps the shares honest.
    let (shape_rows_after, ceiling_after, bf16_after) = gemm_ceilings(device, mc, maxb, with_bf16);
    let ceiling = ceiling_before.max(ceiling_after);
    let bf16_ceiling = bf16_before.max(bf16_after);
    let shapes = shape_table(&shape_rows, &shape_rows_after, with_bf16);
    let (ceilings, shape_head, not_timed) = if with_bf16 {
        (
            format!("fp32 {ceiling:.0}, bf16 {bf16_ceiling:.0} GFLOP/s"),
            "| GEMM shape | fp32 GFLOP/s | bf16 GFLOP/s |\n|---|---|---|",
            String::new(),
        )
    } else {
        (
            format!("fp32 {ceiling:.0} GFLOP/s"),
            "| GEMM shape | fp32 GFLOP/s |\n|---|---|",
            bf16_not_timed(device),
        )
    };
    // Each row against the ceiling of its own compute type.
    let table = |rows: &[(String, f64, tch::Kind)]| -> String {
        rows.iter()
            .map(|(r, g, k)| {
                let c = if *k == tch::Kind::BFloat16 {
                    bf16_ceiling
                } else {
                    ceiling
                };
                format!("{r} {:.0}% |\n", 100.0 * g / c)
            })
            .collect()
    };
    Ok(format!(
        "{head}; GEMM ceiling (best shape, larger of before/after): {ceilings}\n{not_timed}\n{shape_head}\n{shapes}\n| batch | compute | steps | samples/s | frames/s | real frames / padded | data wait | GFLOP/s (≈3x fwd) | share of its ceiling |\n|---|---|---|---|---|---|---|---|---|\n{}{speedup}\nLSTM kernel alone (one direction, E={} H={}, T=150, forward + backward):\n\n| batch | GFLOP/s | share of ceiling |\n|---|---|---|\n{}",
        table(&rows),
        mc.embedding_size,
        mc.lstm_size,
        table(&lstm_rows)
    ))
}

/// "bf16/fp32 speed-up" from the last batch size's samples/s, when both were timed.
fn bf16_speedup(last: &[(tch::Kind, f64)]) -> String {
    let v = |k: tch::Kind| last.iter().find(|s| s.0 == k).map(|s| s.1);
    match (v(tch::Kind::Float), v(tch::Kind::BFloat16)) {
        (Some(f), Some(b)) => format!(
            "\nbf16/fp32 speed-up (training, last batch size): {:.2}x\n",
            b / f
        ),
        _ => String::new(),
    }
}

/// The LSTM-bound part alone, per batch size: libtorch's fused kernel, one direction, forward +
/// backward at the model's widths over T = 150 (the mean length), as the model calls it. Rows
/// without their last column (the share of the ceiling), their GFLOP/s and kind.
fn lstm_kernel_rows(
    o: &ModelBenchOptions,
    mc: &yt8m::model::AttentionLstmConfig,
    device: tch::Device,
) -> Vec<(String, f64, tch::Kind)> {
    let (e, h) = (mc.embedding_size as i64, mc.lstm_size as i64);
    o.batch_sizes
        .iter()
        .map(|&bs| {
            let g = lstm_kernel_gflops(bs as i64, 150, e, h, device, o.steps.max(1));
            (format!("| {bs} | {g:.1} |"), g, tch::Kind::Float)
        })
        .collect()
}

/// The GEMM shapes' rows: per shape the larger of the two measurements (before and after the
/// training runs), fp32 and, where timed, bf16.
fn shape_table<S: std::fmt::Display>(
    before: &[(S, f64, f64)],
    after: &[(S, f64, f64)],
    with_bf16: bool,
) -> String {
    before
        .iter()
        .zip(after)
        .map(|(a, b)| {
            if with_bf16 {
                format!("| {} | {:.0} | {:.0} |\n", a.0, a.1.max(b.1), a.2.max(b.2))
            } else {
                format!("| {} | {:.0} |\n", a.0, a.1.max(b.1))
            }
        })
        .collect()
}

/// GFLOP/s of libtorch's fused LSTM (one direction) forward + backward on `[b, t, e]`.
fn lstm_kernel_gflops(b: i64, t: i64, e: i64, h: i64, device: tch::Device, reps: usize) -> f64 {
    let opts = (tch::Kind::Float, device);
    let x = tch::Tensor::randn([b, t, e], opts).set_requires_grad(true);
    let w: Vec<tch::Tensor> = [vec![4 * h, e], vec![4 * h, h], vec![4 * h], vec![4 * h]]
        .iter()
        .map(|s| (tch::Tensor::randn(s.as_slice(), opts) * 0.03).set_requires_grad(true))
        .collect();
    let z = tch::Tensor::zeros([1, b, h], opts);
    let run = || {
        let refs: Vec<&tch::Tensor> = w.iter().collect();
        let (out, _, _) = x.lstm(&[&z, &z], &refs, true, 1, 0.0, true, false, true);
        out.sum(tch::Kind::Float).backward();
        let _ = x.grad().sum(tch::Kind::Float).double_value(&[]); // synchronize (CUDA)
    };
    run(); // warm-up
    let t0 = Instant::now();
    for _ in 0..reps {
        run();
    }
    let el = t0.elapsed().as_secs_f64() / reps as f64;
    3.0 * 2.0 * 4.0 * h as f64 * (e + h) as f64 * (b * t) as f64 / el / 1e9
}

/// `n` synthetic videos of the config's shape, read back.
pub(crate) fn bench_videos(
    dir: &Path,
    cfg: &yt8m::config::Config,
    n: usize,
) -> Result<Vec<yt8m::data::Video>> {
    let mut vids = Vec::new();
    for f in &synth_for_bench(dir, cfg, n)? {
        read_shard(f, &cfg.feature_spec(), false, |v| {
            vids.push(v);
            true
        })?;
    }
    Ok(vids)
}

/// Seconds `model` takes over `batches` (after one untimed warm-up batch), probabilities on the
/// CPU included; each probability row goes to `each`, timed too.
fn time_probabilities(
    model: &yt8m::model::Model,
    batches: &[Batch],
    device: tch::Device,
    classes: usize,
    mut each: Option<&mut dyn FnMut(&[f32])>,
) -> f64 {
    use yt8m::model::batch_inputs;
    let mut el = 0.0;
    tch::no_grad(|| {
        // Warm-up (allocator, thread pool), untimed.
        if let Some(b) = batches.first() {
            let _ = model.forward(&batch_inputs(b, device, model.kind), false);
        }
        for b in batches {
            yt8m::threads::adapt_torch_threads();
            let t = Instant::now();
            let p = model
                .forward(&batch_inputs(b, device, model.kind), false)
                .to_kind(tch::Kind::Float)
                .sigmoid()
                .to_device(tch::Device::Cpu)
                .contiguous();
            if let Some(f) = each.as_deref_mut() {
                let mut all = vec![0f32; p.numel()];
                p.copy_data(&mut all, p.numel());
                for row in all.chunks(classes) {
                    f(row);
                }
            }
            el += t.elapsed().as_secs_f64();
        }
    });
    el
}

/// Every video cut into the 2019 task's 5-frame segments, in order.
fn five_frame_segments(vids: &[yt8m::data::Video], dims: &[usize]) -> Vec<yt8m::data::Video> {
    let mut segs = Vec::new();
    for v in vids {
        let mut s = 0;
        while let Some(w) = v.window(s, yt8m::segments::SEGMENT_LENGTH, dims) {
            segs.push(w);
            s += yt8m::segments::SEGMENT_LENGTH;
        }
    }
    segs
}

/// `yt8m bench segments`: the same videos scored whole (batches of `o.batch_sizes[0]`,
/// length-sorted windows as `predict`) and as 5-frame segments (batches of `segment_batch`,
/// then ranked per class with the 2019 class list when the model has the 2018 vocabulary),
/// frames/s of each, after an untimed warm-up batch.
pub fn bench_segments(
    o: &ModelBenchOptions,
    videos: usize,
    segment_batch: usize,
) -> Result<String> {
    use yt8m::model::Model;
    let cfg = &o.config;
    let spec = cfg.feature_spec();
    if spec.level != yt8m::data::Level::Frame {
        return Err(Error::Invalid(
            "bench segments needs a frame-level model config".into(),
        ));
    }
    let device = cfg.TRAIN.device.resolve()?;
    let threads = yt8m::threads::configure_torch_threads();
    tch::manual_seed(1);
    let model = Model::new(cfg.architecture(), device, tch::Kind::Float);
    let dir = o.workdir.join("segments");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let vids = bench_videos(&dir.join("data"), cfg, videos)?;
    let c = spec.num_classes;
    let frames: usize = vids.iter().map(|v| v.num_frames).sum();
    let run = |batches: &[Batch], each: Option<&mut dyn FnMut(&[f32])>| {
        time_probabilities(&model, batches, device, c, each)
    };
    // Whole videos, as predict batches them.
    let lengths: Vec<usize> = vids.iter().map(|v| v.num_frames).collect();
    let bs = o.batch_sizes.first().copied().unwrap_or(64).max(1);
    let whole: Vec<Batch> =
        yt8m::data::batch::length_buckets(&lengths, bs, yt8m::predict::DEFAULT_BUCKET_WINDOW)
            .into_iter()
            .map(|g| Batch::from_indices(&vids, &g, &spec))
            .collect();
    let t_whole = run(&whole, None);
    // Segments, as predict --segments cuts and batches them.
    let segs = five_frame_segments(&vids, &spec.dims);
    let idx: Vec<usize> = (0..segs.len()).collect();
    let seg_batches: Vec<Batch> = idx
        .chunks(segment_batch)
        .map(|g| Batch::from_indices(&segs, g, &spec))
        .collect();
    let allowed = (c == 3862)
        .then(|| yt8m::segments::class_list(Path::new("2019"), c))
        .transpose()?;
    let mut ranking = yt8m::segments::SegmentRanking::new(c, yt8m::segments::DEFAULT_MAX_PER_CLASS);
    let v0 = ranking.add_video("bench");
    // One pretend video whose segments follow each other (ids only break equal scores).
    let mut start = 0u32;
    let mut rank = |row: &[f32]| {
        ranking.add_scores(v0, start, row, 20, allowed.as_deref());
        start += yt8m::segments::SEGMENT_LENGTH as u32;
    };
    let t_seg = run(&seg_batches, Some(&mut rank));
    let _ = std::fs::remove_dir_all(&dir);
    let fw = frames as f64 / t_whole;
    let fs = frames as f64 / t_seg;
    Ok(format!(
        "segment vs whole-video inference ({}), {threads} thread(s), {} videos ({frames} frames, {} segments), after one untimed warm-up batch each\n\n| mode | batch | frames/s |\n|---|---|---|\n| whole videos | {bs} videos | {fw:.0} |\n| 5-frame segments + per-class ranking{} | {segment_batch} segments | {fs:.0} |\n\nsegments / whole: {:.2}x\n",
        cfg.architecture().name(),
        vids.len(),
        segs.len(),
        if allowed.is_some() {
            " (2019 classes)"
        } else {
            ""
        },
        fs / fw
    ))
}
