#![allow(dead_code)]
//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// Where `../shared` should be: beside the repository (CI lays it there too); `YT8M_SHARED`
/// overrides.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("YT8M_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("shared")
        })
}

/// `../shared` (tests that call this first checked [`shared_present`] via `needs_shared!`).
pub fn shared() -> PathBuf {
    let p = shared_dir();
    assert!(
        p.join("data").is_dir(),
        "shared data not found at {} (set YT8M_SHARED)",
        p.display()
    );
    p
}

/// Whether `../shared` is there. Without it a test skips with a message and a line in
/// `$CARGO_TARGET_TMPDIR/skipped-shared.txt` (`./dev test` counts them at the end); on CI
/// (`CI` set), which always has it, a missing shared/ fails the test instead.
pub fn shared_present() -> bool {
    let p = shared_dir();
    if p.join("data").is_dir() {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: ../shared not found at {} on CI, which must provide it",
            p.display()
        );
    }
    eprintln!(
        "skipped {test}: it needs ../shared (not found at {}; set YT8M_SHARED)",
        p.display()
    );
    if let Some(dir) = option_env!("CARGO_TARGET_TMPDIR") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(PathBuf::from(dir).join("skipped-shared.txt"))
        {
            let _ = writeln!(f, "{test}");
        }
    }
    false
}

/// Returns from the calling test when `../shared` is absent (see [`shared_present`]).
#[macro_export]
macro_rules! needs_shared {
    () => {
        if !$crate::common::shared_present() {
            return;
        }
    };
}

pub fn yt8m_data(rel: &str) -> PathBuf {
    shared().join("data").join("yt8m").join(rel)
}

pub fn parity(rel: &str) -> PathBuf {
    shared().join("data").join("paddle_parity").join(rel)
}

pub fn read_json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

/// A fresh temporary directory under the target dir (kept after the run for inspection;
/// directories of earlier runs whose process is gone are removed here).
pub fn tempdir(name: &str) -> PathBuf {
    let base = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let prefix = format!("yt8m-test-{name}-");
    if let Ok(rd) = std::fs::read_dir(&base) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            let stale = n
                .strip_prefix(&prefix)
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
            if stale {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let d = base.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Path of the built `yt8m` binary (`YT8M_BIN` overrides: test binaries carried to another
/// machine, see scripts/gpu_pack.sh).
pub fn bin() -> PathBuf {
    std::env::var_os("YT8M_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_yt8m")))
}

/// The repository root (`YT8M_REPO` overrides, for carried test binaries).
pub fn repo() -> PathBuf {
    std::env::var_os("YT8M_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `yt8m train` arguments: configs/tiny_test.yaml, quiet, `--out run`, training shards
/// `data`, then `extra`.
pub fn tiny_train_args(
    run: &std::path::Path,
    data: &std::path::Path,
    extra: &[String],
) -> Vec<String> {
    let mut a = vec![
        "train".to_string(),
        "-c".into(),
        repo().join("configs/tiny_test.yaml").display().to_string(),
        "--quiet".into(),
        "--out".into(),
        run.display().to_string(),
        "-o".into(),
        format!("DATASET.train.file_path={}", data.display()),
    ];
    a.extend_from_slice(extra);
    a
}

/// `yt8m synth` into `out`: `videos` learnable frame-level videos over `shards` shards,
/// 1..=`max_frames` frames each.
pub fn synth_shards(
    out: &std::path::Path,
    videos: usize,
    shards: usize,
    seed: u64,
    max_frames: usize,
) {
    let o = std::process::Command::new(bin())
        .args(["synth", "--out", out.to_str().unwrap()])
        .args([
            "--num-videos",
            &videos.to_string(),
            "--num-shards",
            &shards.to_string(),
        ])
        .args([
            "--seed",
            &seed.to_string(),
            "--max-frames",
            &max_frames.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "synth failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Exact-comparison settings: no shuffling, bucketing, dropout or L2, and ε → 0: RMSProp is then
/// invariant to the gradient's scale, so the mean over workers (PaddleVideo's DataParallel) and
/// the single process's global-batch sum give the same update. The att_fc biases are left out
/// of the comparison: their gradient is analytically zero (softmax shift invariance), so with
/// ε → 0 RMSProp turns its 1e-9 round-off into full-size steps of arbitrary sign.
pub fn exact_overrides(epochs: usize, batch: usize) -> Vec<String> {
    [
        format!("epochs={epochs}"),
        format!("DATASET.batch_size={batch}"),
        "DATASET.shuffle=false".into(),
        "DATASET.bucket_by_length=false".into(),
        "MODEL.head.dropout=0.0".into(),
        "OPTIMIZER.weight_decay.value=0.0".into(),
        "OPTIMIZER.epsilon=1.0e-30".into(),
        "OPTIMIZER.learning_rate={name: Constant, learning_rate: 0.003}".into(),
    ]
    .into_iter()
    .flat_map(|o| ["-o".to_string(), o])
    .collect()
}

/// The test venv's Python (numpy, onnxruntime, tensorboard, tritonclient; `./dev test` installs
/// them), or YT8M_PYTHON.
pub fn python() -> String {
    std::env::var("YT8M_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/yt8m/venv/bin/python",
            std::env::var("HOME").unwrap()
        )
    })
}

/// Runs the `yt8m` binary (one libtorch thread) and returns its stdout; fails the test with
/// both streams when it exits non-zero.
pub fn yt8m_ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let o = std::process::Command::new(bin())
        .args(args)
        .env("YT8M_THREADS", "1")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "yt8m {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The largest absolute difference of two same-shaped tensors (in float64).
pub fn max_diff(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    let cpu = |t: &tch::Tensor| t.to_device(tch::Device::Cpu).to_kind(tch::Kind::Double);
    (cpu(a) - cpu(b)).abs().max().double_value(&[])
}

/// An exported frame-level graph's inputs for `batch`: uint8 `rgb`, `audio` `[B, T, D]` and
/// int64 `lengths`.
pub fn onnx_frame_inputs(batch: &yt8m::data::batch::Batch) -> Vec<(&'static str, tch::Tensor)> {
    let (b, t) = (batch.len() as i64, batch.max_len as i64);
    let mut inputs = Vec::new();
    for (m, name) in ["rgb", "audio"].into_iter().enumerate() {
        let yt8m::data::batch::ModalityData::U8(q) = &batch.modalities[m].data else {
            panic!("a frame-level batch holds uint8 frames")
        };
        let d = batch.modalities[m].dim as i64;
        inputs.push((name, tch::Tensor::from_slice(q).view([b, t, d])));
    }
    inputs.push(("lengths", tch::Tensor::from_slice(&batch.lengths)));
    inputs
}

/// The logits onnxruntime (`scripts/onnx_run.py` in the test venv) computes for `inputs`.
pub fn onnxruntime_logits(
    model: &std::path::Path,
    inputs: Vec<(&str, tch::Tensor)>,
    work: &std::path::Path,
) -> tch::Tensor {
    let inp = work.join("onnx_in.npz");
    let out = work.join("onnx_out.npz");
    tch::Tensor::write_npz(&inputs, &inp).unwrap();
    let o = std::process::Command::new(python())
        .arg(repo().join("scripts/onnx_run.py"))
        .arg(model)
        .arg(&inp)
        .arg(&out)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {} ({e}); `./dev test` installs onnxruntime into the venv (or set YT8M_PYTHON)", python())
        });
    assert!(
        o.status.success(),
        "onnxruntime failed:\n{}\n{}\n(`./dev test` installs numpy + onnxruntime into the venv)",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    println!("onnxruntime: {}", String::from_utf8_lossy(&o.stdout).trim());
    tch::Tensor::read_npz(&out)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k.starts_with("logits"))
        .unwrap()
        .1
}

// ---- reference fixtures (tests/fixtures/<dir>: starter, paddle_zoo) ----

/// A `yt8m serve` of one bundle named `tiny`, killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub port: u16,
    pub grpc: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `yt8m serve` for `bundle` (named `tiny`) on free ports, with `extra` arguments, and
/// waits until it listens.
pub fn start_server(bundle: &std::path::Path, extra: &[&str]) -> Server {
    start_server_with_env(bundle, extra, &[])
}

/// [`start_server`] with extra environment variables for the server process (e.g. a `PATH`
/// without FFmpeg).
pub fn start_server_with_env(
    bundle: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Server {
    use std::io::{BufRead, Read};
    let mut child = std::process::Command::new(bin())
        .args([
            "serve",
            "--model",
            bundle.to_str().unwrap(),
            "--name",
            "tiny",
        ])
        .args([
            "--host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--device",
            "cpu",
        ])
        .args(extra)
        .env("YT8M_THREADS", "1")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let t0 = std::time::Instant::now();
    let port = loop {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0
            || t0.elapsed() > std::time::Duration::from_secs(60)
        {
            panic!("server did not start: {line}");
        }
        if let Some(i) = line.find("http://127.0.0.1:") {
            let rest = &line[i + "http://127.0.0.1:".len()..];
            let http = rest[..rest.find('/').unwrap()].parse::<u16>().unwrap();
            let grpc = line
                .find("grpc://127.0.0.1:")
                .map(|j| {
                    let r = &line[j + "grpc://127.0.0.1:".len()..];
                    r[..r.find(|c: char| !c.is_ascii_digit()).unwrap()]
                        .parse::<u16>()
                        .unwrap()
                })
                .unwrap_or(0);
            break (http, grpc);
        }
    };
    let (port, grpc) = port;
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = err.read_to_string(&mut sink);
    });
    Server { child, port, grpc }
}

use std::collections::HashMap;
use tch::{Device, Kind, Tensor};
use yt8m::data::batch::{Batch, ModalityBatch, ModalityData};
use yt8m::data::npy::{NpyArray, read_npz};
use yt8m::model::{Inputs, Model, batch_inputs};

/// A reference fixture: `tests/fixtures/<dir>/<name>.npz` (arrays) and `.json` (settings).
pub struct Fixture {
    pub arrays: HashMap<String, NpyArray>,
    pub meta: serde_json::Value,
}

pub fn load_fixture(dir: &str, name: &str) -> Fixture {
    let dir = repo().join("tests/fixtures").join(dir);
    let arrays = read_npz(&dir.join(format!("{name}.npz")))
        .unwrap()
        .into_iter()
        .collect();
    let meta =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    Fixture { arrays, meta }
}

impl Fixture {
    pub fn f32(&self, key: &str) -> Tensor {
        let a = &self.arrays[key];
        let shape: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
        Tensor::from_slice(&a.to_f32()).view(shape.as_slice())
    }
    pub fn scalar(&self, key: &str) -> f64 {
        self.arrays[key].to_f64()[0]
    }
    pub fn dims(&self) -> Vec<usize> {
        self.meta["feature_dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect()
    }
    pub fn classes(&self) -> usize {
        self.meta["num_classes"].as_u64().unwrap() as usize
    }

    /// The fixture's batch through our own upload path (uint8 → dequantized, padding 0).
    pub fn inputs(&self) -> Inputs {
        self.inputs_on(Device::Cpu)
    }

    /// [`Fixture::inputs`] uploaded to `device`.
    pub fn inputs_on(&self, device: Device) -> Inputs {
        let lengths: Vec<i64> = self.arrays["in_lengths"]
            .to_f64()
            .iter()
            .map(|&x| x as i64)
            .collect();
        let t = self.arrays["in_rgb"].shape[1];
        let labels = self.arrays["in_labels"].to_f32();
        let modalities = ["in_rgb", "in_audio"]
            .iter()
            .zip(self.dims())
            .map(|(k, dim)| ModalityBatch {
                dim,
                data: ModalityData::U8(self.arrays[*k].to_f64().iter().map(|&x| x as u8).collect()),
                rows: lengths.clone(),
            })
            .collect();
        let batch = Batch {
            ids: (0..lengths.len()).map(|i| format!("v{i}")).collect(),
            max_len: t,
            lengths: lengths.clone(),
            modalities,
            num_classes: self.classes(),
            has_labels: vec![true; lengths.len()],
            positions: (0..lengths.len() as u64).collect(),
            labels,
        };
        batch_inputs(&batch, device, Kind::Float)
    }
}

pub fn var(m: &Model, name: &str) -> Tensor {
    m.vs.variables()
        .remove(name)
        .unwrap_or_else(|| panic!("no variable {name}"))
}

pub fn set(m: &Model, name: &str, v: &Tensor) {
    tch::no_grad(|| {
        var(m, name).copy_(v);
    });
}

/// `|a − b| ≤ atol + rtol·|b|` everywhere; prints the largest difference, llm.c style.
pub fn close(what: &str, ours: &Tensor, theirs: &Tensor, atol: f64, rtol: f64) {
    let (ours, theirs) = (&ours.to_device(Device::Cpu), &theirs.to_device(Device::Cpu));
    let d = max_diff(ours, theirs);
    let bound = (theirs.abs() * rtol + atol).min().double_value(&[]);
    let ok = (ours - theirs)
        .abs()
        .le_tensor(&(theirs.abs() * rtol + atol))
        .all()
        .int64_value(&[])
        == 1;
    println!("{what}: max |diff| {d:.3e}");
    assert!(
        ok,
        "{what}: max |diff| {d:.3e} exceeds {atol:e} + {rtol:e}·|ref| (min bound {bound:.3e})"
    );
}

/// Where parity tests run: the CPU, or `YT8M_TEST_DEVICE=cuda` (scripts/gpu_check.sh).
pub fn test_device() -> Device {
    match std::env::var("YT8M_TEST_DEVICE").as_deref() {
        Ok("cuda") => Device::Cuda(0),
        _ => Device::Cpu,
    }
}

/// libtorch's generator is one per process: a test that needs reproducible draws (a resume
/// compared with a straight run) holds this, and so does every test of its binary that draws
/// (training, sampling) while it runs.
pub fn torch_rng() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Trains `cfg` for `epochs` straight, and again stopped after epoch 1 and resumed, in `d`;
/// the last checkpoints' tensors (weights and state such as batch-norm statistics, one of
/// them named `…{state_suffix}`) must agree to 1e-6. The caller holds [`torch_rng`].
pub fn assert_resume_exact(
    cfg: &yt8m::config::Config,
    d: &std::path::Path,
    epochs: usize,
    state_suffix: &str,
) {
    use yt8m::train::{TrainOptions, train};
    let run = |dir: &std::path::Path, stop: Option<usize>, resume: bool| {
        train(
            cfg.clone(),
            &TrainOptions {
                output: dir.to_path_buf(),
                quiet: true,
                stop_after_epochs: stop,
                resume,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let straight = d.join("straight");
    run(&straight, None, false);
    let resumed = d.join("resumed");
    run(&resumed, Some(1), false);
    run(&resumed, None, true);
    let last = format!("checkpoints/epoch_{epochs:05}/model.safetensors");
    let load = |dir: &std::path::Path| {
        let mut v = yt8m::model::read_safetensors(&dir.join(&last)).unwrap();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let (a, b) = (load(&straight), load(&resumed));
    assert_eq!(a.len(), b.len());
    assert!(a.iter().any(|(n, _)| n.ends_with(state_suffix)));
    let mut max = 0f64;
    let mut differ = Vec::new();
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        let d = max_diff(ta, tb);
        if d > 1e-6 {
            differ.push(format!("{na} ({d:.2e})"));
        }
        max = max.max(d);
    }
    println!("max |straight − resumed| over weights and state: {max:e}");
    assert!(max <= 1e-6, "resumed run differs by {max}: {differ:?}");
}

/// Trains `configs/<config>` with `extra` overrides for `epochs` on the synthetic shards in
/// `d/train` (validation `d/valid`, 20 classes, batch 64), requires a GAP ≥ the class prior
/// + 0.3, exports a bundle and checks it: inference deterministic, the ONNX graph's logits
/// under onnxruntime within 1e-4 of ours, bf16 probabilities within 0.05. Returns the bundle.
pub fn train_export_and_check(
    d: &std::path::Path,
    config: &str,
    extra: Vec<String>,
    epochs: usize,
) -> PathBuf {
    use yt8m::config::Config;
    use yt8m::data::batch::Batch as DataBatch;
    use yt8m::train::{TrainOptions, train};
    let mut ov = vec![
        format!("epochs={epochs}"),
        format!("DATASET.train.file_path={}", d.join("train").display()),
        format!("DATASET.valid.file_path={}", d.join("valid").display()),
        format!("DATASET.test.file_path={}", d.join("valid").display()),
        "MODEL.head.num_classes=20".to_string(),
        "DATASET.batch_size=64".to_string(),
    ];
    ov.extend(extra);
    let cfg = Config::load(Some(&repo().join("configs").join(config)), &ov).unwrap();
    let prior = yt8m::evaluate::class_prior_gap(&cfg).unwrap();
    let run = d.join(format!("run-{config}"));
    let s = train(
        cfg.clone(),
        &TrainOptions {
            output: run.clone(),
            validate: true,
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    let v = s.last_valid.unwrap();
    println!(
        "{config}: {epochs} epochs → GAP {:.4}, Hit@1 {:.4} (class prior GAP {prior:.4})",
        v.gap, v.hit_at_one
    );
    assert!(
        v.gap > prior + 0.3,
        "{config}: GAP {} vs class prior {prior}",
        v.gap
    );

    let bundle = d.join(format!("bundle-{config}"));
    yt8m_ok(&[
        "export",
        "-w",
        s.best_checkpoint.as_ref().unwrap().to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
    ]);
    let b = yt8m::bundle::load(&bundle, Device::Cpu).unwrap();
    let mut vids = Vec::new();
    yt8m::data::sources::read_shard(
        &d.join("valid/train0000.tfrecord"),
        &b.config.feature_spec(),
        false,
        |v| {
            vids.push(v);
            vids.len() < 24
        },
    )
    .unwrap();
    let batch = DataBatch::from_videos(&vids, &b.config.feature_spec());
    let ours = tch::no_grad(|| {
        b.model
            .forward(&batch_inputs(&batch, Device::Cpu, Kind::Float), false)
    });
    // Inference is deterministic (evenly spaced frames where upstream samples, no dropout).
    let again = tch::no_grad(|| {
        b.model
            .forward(&batch_inputs(&batch, Device::Cpu, Kind::Float), false)
    });
    assert!(
        ours.equal(&again),
        "{config}: inference is not deterministic"
    );
    // Frames padded beyond the longest video (as `yt8m serve` pads its calls to a multiple of
    // 8) change no answer: every head reads only each video's own frames.
    let plain = yt8m::predict::probabilities(&b, &vids, 7).unwrap();
    let padded = yt8m::predict::probabilities_padded(&b, &vids, 7, 8).unwrap();
    let pad_diff = plain
        .iter()
        .flatten()
        .zip(padded.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("{config}: max |padded − plain| probability: {pad_diff:.3e}");
    assert!(
        pad_diff <= 1e-6,
        "{config}: padding changed probabilities by {pad_diff}"
    );
    let n = batch.len();
    let theirs = onnxruntime_logits(&bundle.join("model.onnx"), onnx_frame_inputs(&batch), &d);
    let diff = max_diff(&ours, &theirs);
    println!(
        "{config}: max |yt8m − onnxruntime| logits over {n} videos (lengths {:?}): {diff:.3e}",
        batch.lengths
    );
    assert!(diff < 1e-4, "{config}: ONNX logits differ by {diff}");

    // bf16 inference (`--precision bf16`) of the same bundle: probabilities close to fp32.
    let mut b16 = yt8m::bundle::load(&bundle, Device::Cpu).unwrap();
    b16.model.use_precision(yt8m::kinds::Precision::Bf16);
    let p16 = tch::no_grad(|| {
        yt8m::model::widen(
            b16.model
                .forward(&batch_inputs(&batch, Device::Cpu, b16.model.kind), false),
        )
        .sigmoid()
    });
    let d16 = max_diff(&ours.sigmoid(), &p16);
    println!("{config}: max |bf16 − fp32| probabilities {d16:.3e}");
    // Kernel-dependent: bf16 keeps 8 significant bits (relative rounding 2^-9 ≈ 2e-3 per
    // operand), and oneDNN's native kernels (avx512_bf16, AMX) and the emulated path (AVX2,
    // operands rounded to bf16, products summed in f32) round differently; 0.05 leaves room for
    // either on these small trained heads, and a wrong kernel (e.g. weights not converted) is off
    // by far more.
    assert!(d16 < 0.05, "{config}: bf16 probabilities differ by {d16}");
    bundle
}

/// Whether bf16 is native on this CPU (what `--precision auto` picks: avx512_bf16 or AMX, and no
/// `ATEN_CPU_CAPABILITY`/`ONEDNN_MAX_CPU_ISA` cap below them). Full-size bf16 checks run only
/// then; elsewhere every bf16 product is emulated (measured on an AVX2 EPYC: tests/video_level.rs
/// 1118 s, against 95 s where bf16 is native),
/// so they run at reduced sizes that still cover the same code paths, and say so.
pub fn bf16_native() -> bool {
    let (yes, why) = yt8m::kinds::bf16_is_native(tch::Device::Cpu);
    if !yes {
        println!("bf16 is not native here ({why}): the bf16 check runs at reduced size");
    }
    yes
}
