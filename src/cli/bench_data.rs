//! `yt8m bench eval`, `bench read` and `bench extract`: the evaluator, the readers and the
//! feature extractor side by side with their Python references (numpy, TensorFlow, the
//! official extractor). The models' benchmarks are in `bench.rs`; what both print goes to
//! docs/benchmarks.md with the command that produced it.

use super::bench::default_workdir;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use yt8m::data::FeatureSpec;
use yt8m::data::batch::{Loader, LoaderConfig};
use yt8m::data::sources::{expand_paths, read_shard};
use yt8m::error::{Error, Result};
use yt8m::evaluate::{EvalOptions, Scored};
use yt8m::rng::Rng;

/// Random scores with YouTube-8M-like labels (1–15 per video, ~3 on average, long tail).
pub fn random_scored(n: usize, c: usize, seed: u64) -> Scored {
    let mut r = Rng::new(seed);
    let mut scores = Vec::with_capacity(n * c);
    let mut labels = vec![0u8; n * c];
    for i in 0..n {
        for _ in 0..c {
            scores.push(r.uniform() as f32 as f64);
        }
        let k = 1 + (r.uniform() * r.uniform() * 6.0) as usize;
        for _ in 0..k {
            // skewed class frequencies
            let j = ((r.uniform().powi(3)) * c as f64) as usize;
            labels[i * c + j.min(c - 1)] = 1;
            // a positive tends to score higher
            scores[i * c + j.min(c - 1)] = (0.97 + 0.03 * r.uniform()) as f32 as f64;
        }
    }
    Scored {
        num_videos: n,
        num_classes: c,
        scores,
        labels,
    }
}

fn write_npz(s: &Scored, path: &Path) -> Result<()> {
    let p = tch::Tensor::from_slice(&s.scores)
        .to_kind(tch::Kind::Float)
        .view([s.num_videos as i64, s.num_classes as i64]);
    let l = tch::Tensor::from_slice(&s.labels).view([s.num_videos as i64, s.num_classes as i64]);
    tch::Tensor::write_npz(&[("predictions", p), ("labels", l)], path)?;
    Ok(())
}

/// Times the reference evaluator's `evaluate()` alone (not numpy's loading, as ours) on
/// `npz`: its table row, and its seconds when it ran.
fn reference_eval_row(py: &Path, rf: &Path, npz: &Path) -> Result<(String, Option<f64>)> {
    let dir = rf.parent().unwrap_or(Path::new("."));
    let module = rf
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("yt8m_eval_ref");
    let code = format!(
        "import sys, json, time, numpy as np\nsys.path.insert(0, {dir:?})\nimport {module} as ref\nz = np.load({npz:?})\np, l = z['predictions'], z['labels']\nt = time.perf_counter()\nr = ref.evaluate(p, l)\nr['seconds'] = time.perf_counter() - t\nprint(json.dumps(r))",
        dir = dir.display().to_string(),
        npz = npz.display().to_string()
    );
    let o = Command::new(py)
        .arg("-c")
        .arg(code)
        .output()
        .map_err(|e| Error::Invalid(format!("cannot run {}: {e}", py.display())))?;
    if !o.status.success() {
        let row = format!(
            "| yt8m_eval_ref.py | failed: {} | | | | |\n",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return Ok((row, None));
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .map_err(|e| Error::Invalid(format!("reference output: {e}")))?;
    let el = v["seconds"].as_f64().unwrap_or(f64::NAN);
    let row = format!(
        "| yt8m_eval_ref.py (numpy; official tie order) | {el:.2} | {:.6} | {:.6} | {:.6} | 1.0x |\n",
        v["gap"].as_f64().unwrap_or(f64::NAN),
        v["hit_at_one"].as_f64().unwrap_or(f64::NAN),
        v["perr"].as_f64().unwrap_or(f64::NAN)
    );
    Ok((row, Some(el)))
}

/// Evaluator speed vs `shared/tools/yt8m_eval_ref.py` on the same file.
pub fn bench_eval(
    n: usize,
    c: usize,
    python: Option<&Path>,
    reference: Option<&Path>,
    workdir: &Path,
) -> Result<String> {
    std::fs::create_dir_all(workdir).map_err(|e| Error::io(workdir, e))?;
    let s = random_scored(n, c, 1);
    let npz = workdir.join(format!("bench_eval_{n}x{c}.npz"));
    write_npz(&s, &npz)?;
    let t = Instant::now();
    let loaded = yt8m::evaluate::read_npz(&npz)?;
    let t_read = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let ours = loaded.evaluate(&EvalOptions::default());
    let t_ours = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let ours_b = loaded.evaluate(&EvalOptions {
        batch_size: 1024,
        ..Default::default()
    });
    let t_ours_b = t.elapsed().as_secs_f64();
    let mut out = format!(
        "evaluator, N = {n} videos x C = {c} classes (random scores, realistic label counts)\n\n"
    );
    out.push_str(
        "| implementation | seconds | GAP | Hit@1 | PERR | speed-up |\n|---|---|---|---|---|---|\n",
    );
    let (ref_row, t_ref) = match (python, reference) {
        (Some(py), Some(rf)) => reference_eval_row(py, rf, &npz)?,
        _ => (String::new(), None),
    };
    out.push_str(&ref_row);
    let sp = |x: f64| {
        t_ref
            .map(|r| format!("{:.1}x", r / x))
            .unwrap_or("-".into())
    };
    out.push_str(&format!(
        "| yt8m, one batch | {t_ours:.2} | {:.6} | {:.6} | {:.6} | {} |\n",
        ours.gap,
        ours.hit_at_one,
        ours.perr,
        sp(t_ours)
    ));
    out.push_str(&format!(
        "| yt8m, batches of 1024 (as eval.py) | {t_ours_b:.2} | {:.6} | {:.6} | {:.6} | {} |\n",
        ours_b.gap,
        ours_b.hit_at_one,
        ours_b.perr,
        sp(t_ours_b)
    ));
    out.push_str(&format!(
        "\nTimes exclude loading the .npz (yt8m: {t_read:.2} s). yt8m uses {} thread(s).\n",
        yt8m::threads::available_cores()
    ));
    let _ = std::fs::remove_file(&npz);
    Ok(out)
}

/// Read + decode + batch throughput over shards, one thread vs all threads.
pub fn bench_read(
    inputs: &[impl AsRef<std::ffi::OsStr>],
    spec: FeatureSpec,
    batch_size: usize,
    tf_python: Option<&Path>,
    tf_script: Option<&Path>,
) -> Result<String> {
    let files = expand_paths(inputs, None)?;
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut out = format!(
        "read + decode, {} file(s), {:.1} MB, level {}\n\n| reader | threads | records/s | MB/s | seconds |\n|---|---|---|---|---|\n",
        files.len(),
        bytes as f64 / 1e6,
        spec.level
    );
    let mut row = |name: &str, threads: String, n: usize, el: f64| {
        out.push_str(&format!(
            "| {name} | {threads} | {:.0} | {:.1} | {el:.2} |\n",
            n as f64 / el,
            bytes as f64 / 1e6 / el
        ));
    };
    // Warm the page cache so every reader sees the same (memory-speed) I/O.
    for f in &files {
        let _ = std::fs::read(f);
    }
    // 1. decode only, one thread.
    let t = Instant::now();
    let mut n = 0;
    for f in &files {
        read_shard(f, &spec, false, |_| {
            n += 1;
            true
        })?;
    }
    row(
        "yt8m decode (read_shard)",
        "1".into(),
        n,
        t.elapsed().as_secs_f64(),
    );
    // 2. the loader: decode + batches (uint8), 1 reader and all readers.
    for readers in [1, yt8m::threads::available_cores()] {
        let cfg = LoaderConfig {
            batch_size,
            num_readers: readers,
            prefetch: 8,
            ..Default::default()
        };
        let loader = Loader::new(files.clone(), spec.clone(), cfg);
        let t = Instant::now();
        let mut n = 0;
        for b in loader.epoch(0) {
            n += b?.len();
        }
        row(
            &format!("yt8m loader → batches of {batch_size}"),
            format!("{readers} reader(s) + 1 assembler"),
            n,
            t.elapsed().as_secs_f64(),
        );
    }
    if let (Some(py), Some(script)) = (tf_python, tf_script) {
        match tf_read_rows(py, script, spec.level, &files)? {
            Ok(rows) => {
                for (name, threads, n, secs) in rows {
                    row(&name, threads, n, secs);
                }
            }
            Err(why) => out.push_str(&format!("| TensorFlow | failed: {why} | | | |\n")),
        }
    }
    Ok(out)
}

/// TensorFlow's readers, timed by `script` (scripts/bench_tf_read.py) on the same files: a
/// (name, threads, records, seconds) row per line it prints, or the last line of its error.
#[allow(clippy::type_complexity)]
fn tf_read_rows(
    py: &Path,
    script: &Path,
    level: yt8m::data::Level,
    files: &[std::path::PathBuf],
) -> Result<std::result::Result<Vec<(String, String, usize, f64)>, String>> {
    let o = Command::new(py)
        .arg(script)
        .arg("--level")
        .arg(level.to_string())
        .args(files)
        .output()
        .map_err(|e| Error::Invalid(format!("cannot run {}: {e}", py.display())))?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        return Ok(Err(err.lines().last().unwrap_or("").to_string()));
    }
    let mut rows = Vec::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        // "name<TAB>threads<TAB>records<TAB>seconds"
        let p: Vec<&str> = line.split('\t').collect();
        if p.len() == 4 {
            if let (Ok(n), Ok(s)) = (p[2].parse::<usize>(), p[3].parse::<f64>()) {
                rows.push((p[0].to_string(), p[1].to_string(), n, s));
            }
        }
    }
    Ok(Ok(rows))
}

/// `yt8m bench extract`: what the bench measures and with what.
pub struct ExtractBenchOptions {
    pub seconds: usize,
    /// The extractor files; None: the full-size stand-in `script prepare` writes.
    pub extractor: Option<PathBuf>,
    /// Python with TensorFlow + opencv-python-headless, and scripts/bench_extract.py.
    pub python: Option<PathBuf>,
    pub script: PathBuf,
    pub batch_size: usize,
}

fn run_json(cmd: &mut Command, what: &str) -> Result<serde_json::Value> {
    let o = cmd
        .output()
        .map_err(|e| Error::Invalid(format!("cannot run {what}: {e}")))?;
    if !o.status.success() {
        return Err(Error::Invalid(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        )));
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let last = text.lines().last().unwrap_or("");
    serde_json::from_str(last)
        .map_err(|e| Error::Invalid(format!("{what} printed no JSON ({e}): {last}")))
}

/// Every frame's quantized rgb bytes in a frame-level shard.
fn shard_rgb(path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    read_shard(path, &FeatureSpec::default(), false, |v| {
        if let yt8m::data::VideoFeatures::Frames(m) = &v.features {
            out.extend_from_slice(&m[0]);
        }
        true
    })?;
    Ok(out)
}

/// `yt8m extract` vs the official extractor's loop (OpenCV + TensorFlow, one frame per
/// session.run) on the same video and extractor files, side by side in one run: frames/s of
/// each, the ratio, and how many quantized bytes agree.
pub fn bench_extract(o: &ExtractBenchOptions) -> Result<String> {
    let work = default_workdir().join("extract");
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    let (dir, video) = extract_bench_inputs(o, &work)?;
    let mut out = format!(
        "extract: {} ({} s of 640x360 30 fps video), extractor files {}, {} core(s)\n\n\
         | pipeline | frames | seconds | frames/s | vs official |\n|---|---|---|---|---|\n",
        video.display(),
        o.seconds,
        dir.display(),
        yt8m::threads::available_cores()
    );
    let official = match &o.python {
        Some(py) => {
            let v = run_json(
                Command::new(py)
                    .arg(&o.script)
                    .arg("official")
                    .arg(&work)
                    .arg(&video)
                    .arg(&dir),
                "the official pipeline (scripts/bench_extract.py official)",
            )?;
            let (n, s) = (
                v["frames"].as_u64().unwrap_or(0) as usize,
                v["seconds"].as_f64().unwrap_or(f64::NAN),
            );
            out.push_str(&format!(
                "| official extract_tfrecords_main.py loop (OpenCV {}, TensorFlow {}, one frame per run) | {n} | {s:.1} | {:.2} | 1.00x |\n",
                v["opencv"].as_str().unwrap_or("?"),
                v["tensorflow"].as_str().unwrap_or("?"),
                n as f64 / s
            ));
            Some(n as f64 / s)
        }
        None => None,
    };
    let dest = work.join("yt8m");
    let ex =
        yt8m::extract::Extractor::load_with(&dir, o.batch_size, yt8m::extract::AudioSource::Zeros)?;
    let (frames, el) = time_yt8m_extract(&ex, &video, &dest)?;
    let rate = frames as f64 / el;
    out.push_str(&format!(
        "| yt8m extract (ffmpeg, libtorch, {} frames per call, {} thread(s)) | {frames} | {el:.1} | {rate:.2} | {} |\n",
        o.batch_size,
        tch::get_num_threads(),
        official.map_or("-".into(), |r| format!("{:.2}x", rate / r))
    ));
    if official.is_some() {
        let a = shard_rgb(&work.join("official.tfrecord"))?;
        let b = shard_rgb(&dest.join("extract0000.tfrecord"))?;
        out.push_str(&compare_quantized(&a, &b));
    }
    out.push_str(&extract_time_shares(&ex, &video, o.batch_size)?);
    Ok(out)
}

/// Where yt8m's time goes on `video`, each part alone: FFmpeg decoding and sampling, then the
/// graph's op types on the same frames in batches (after one warm-up batch), per frame.
fn extract_time_shares(
    ex: &yt8m::extract::Extractor,
    video: &Path,
    batch: usize,
) -> Result<String> {
    use yt8m::extract::video::{SampledFrames, Sampling};
    let t = Instant::now();
    let mut src = SampledFrames::open(video, &Sampling::default())
        .map_err(yt8m::extract::ExtractError::from)?;
    let mut frames = Vec::new();
    while let Some(f) = src
        .next_frame()
        .map_err(yt8m::extract::ExtractError::from)?
    {
        frames.push(f);
    }
    let decode = t.elapsed().as_secs_f64();
    let n = frames.len().max(1) as f64;
    let batches: Vec<tch::Tensor> = frames
        .chunks(batch.max(1))
        .filter(|c| {
            c.iter()
                .all(|f| (f.height, f.width) == (c[0].height, c[0].width))
        })
        .map(yt8m::extract::frames_tensor)
        .collect();
    let mut by_op: std::collections::BTreeMap<String, f64> = Default::default();
    let mut timed = 0;
    if let Some(first) = batches.first() {
        ex.time_graph(first, &mut |_, _| {})?;
        for b in &batches {
            ex.time_graph(b, &mut |op, d| {
                *by_op.entry(op.to_string()).or_default() += d.as_secs_f64();
            })?;
            timed += b.size()[0];
        }
    }
    let per = 1e3 / timed.max(1) as f64;
    let graph: f64 = by_op.values().sum();
    let mut ops: Vec<(String, f64)> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut out = format!(
        "\nwhere yt8m's time goes, each part alone ({} thread(s)):\n\n\
         | part | ms per frame | share of the graph |\n|---|---|---|\n\
         | decoding and sampling ({} frames, FFmpeg) | {:.1} | |\n\
         | Inception graph ({timed} frames, {batch} per call) | {:.1} | 100% |\n",
        tch::get_num_threads(),
        frames.len(),
        decode * 1e3 / n,
        graph * per,
    );
    let share = |s: f64| 100.0 * s / graph.max(f64::MIN_POSITIVE);
    let (mut shown, mut rest): (Vec<_>, Vec<_>) = ops.iter().partition(|(_, s)| share(*s) >= 0.1);
    if rest.len() == 1 {
        shown.append(&mut rest);
    }
    for (op, s) in shown {
        out.push_str(&format!("| {op} | {:.2} | {:.1}% |\n", s * per, share(*s)));
    }
    if !rest.is_empty() {
        let s: f64 = rest.iter().map(|(_, s)| s).sum();
        out.push_str(&format!(
            "| {} other op types | {:.2} | {:.1}% |\n",
            rest.len(),
            s * per,
            share(s)
        ));
    }
    Ok(out)
}

/// The extractor directory and the video: the stand-in builder's (with --python) or the given
/// files and an ffmpeg test clip.
fn extract_bench_inputs(o: &ExtractBenchOptions, work: &Path) -> Result<(PathBuf, PathBuf)> {
    if let Some(py) = &o.python {
        let mut c = Command::new(py);
        c.arg(&o.script)
            .arg("prepare")
            .arg(work)
            .arg(o.seconds.to_string());
        if let Some(d) = &o.extractor {
            c.arg(d);
        }
        let v = run_json(
            &mut c,
            "the stand-in builder (scripts/bench_extract.py prepare)",
        )?;
        let s = |k: &str| PathBuf::from(v[k].as_str().unwrap_or_default());
        return Ok((s("extractor"), s("video")));
    }
    let dir = o.extractor.clone().ok_or_else(|| {
        Error::Invalid(
            "give --python (TensorFlow + OpenCV, for the official side and the full-size \
             stand-in) or --extractor DIR (the official files) to time yt8m alone"
                .into(),
        )
    })?;
    let video = work.join(format!("clip_{}s.mp4", o.seconds));
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size=640x360:rate=30:duration={}",
            o.seconds
        ))
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&video)
        .status()
        .map_err(|e| Error::Invalid(format!("cannot run ffmpeg: {e}")))?;
    if !st.success() {
        return Err(Error::Invalid(
            "ffmpeg could not make the test video".into(),
        ));
    }
    Ok((dir, video))
}

/// `yt8m extract` of `video` into `dest`: frames written and seconds (graph loading excluded,
/// as on the official side).
fn time_yt8m_extract(
    ex: &yt8m::extract::Extractor,
    video: &Path,
    dest: &Path,
) -> Result<(usize, f64)> {
    use yt8m::extract::write::{WriteOptions, extract_all, inputs_from_paths};
    let _ = std::fs::remove_dir_all(dest);
    let inputs = inputs_from_paths(&[video.to_path_buf()])?;
    let opts = WriteOptions {
        level: yt8m::data::Level::Frame,
        audio: yt8m::extract::AudioSource::Zeros,
        videos_per_shard: 100,
        prefix: "extract".into(),
        every_ms: 1000.0,
        max_frames: 300,
        skip_bad_videos: false,
    };
    let t = Instant::now();
    let s = extract_all(ex, &inputs, dest, &opts, &mut |_| {})?;
    Ok((s.frames_written, t.elapsed().as_secs_f64()))
}

/// How many quantized rgb bytes of the two extractions agree (a line for the report).
fn compare_quantized(a: &[u8], b: &[u8]) -> String {
    if a.len() != b.len() {
        return format!(
            "\nframe counts differ: official {} bytes, yt8m {} bytes\n",
            a.len(),
            b.len()
        );
    }
    let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
    let by_one = a
        .iter()
        .zip(b)
        .filter(|(x, y)| (**x as i32 - **y as i32).abs() == 1)
        .count();
    format!(
        "\nquantized rgb bytes: {} of {} equal; {differ} differ ({by_one} by one: float32 \
         on both sides, a value on a rounding boundary may land either way)\n",
        a.len() - differ,
        a.len()
    )
}
