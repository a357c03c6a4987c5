//! `yt8m bench`: throughput measurements printed as tables, alternatives side by side in one
//! run. Results go to docs/benchmarks.md with the command that produced them.

use crate::data::FeatureSpec;
use crate::data::batch::{Loader, LoaderConfig};
use crate::data::sources::{expand_paths, read_shard};
use crate::error::{Error, Result};
use crate::evaluate::{EvalOptions, Scored};
use crate::rng::Rng;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

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
    let loaded = crate::evaluate::read_npz(&npz)?;
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
    let mut ref_row = String::new();
    let mut t_ref = None;
    if let (Some(py), Some(rf)) = (python, reference) {
        // Time the reference's evaluate() alone (not numpy's loading), like ours below.
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
        if o.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout)
                .map_err(|e| Error::Invalid(format!("reference output: {e}")))?;
            let el = v["seconds"].as_f64().unwrap_or(f64::NAN);
            ref_row = format!(
                "| yt8m_eval_ref.py (numpy; official tie order) | {el:.2} | {:.6} | {:.6} | {:.6} | 1.0x |\n",
                v["gap"].as_f64().unwrap_or(f64::NAN),
                v["hit_at_one"].as_f64().unwrap_or(f64::NAN),
                v["perr"].as_f64().unwrap_or(f64::NAN)
            );
            t_ref = Some(el);
        } else {
            ref_row = format!(
                "| yt8m_eval_ref.py | failed: {} | | | | |\n",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
        }
    }
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
        crate::threads::available_cores()
    ));
    let _ = std::fs::remove_file(&npz);
    Ok(out)
}

/// Read + decode + batch throughput over shards, one thread vs all threads.
pub fn bench_read(
    inputs: &[String],
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
    for readers in [1, crate::threads::available_cores()] {
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
        let o = Command::new(py)
            .arg(script)
            .arg("--level")
            .arg(spec.level.to_string())
            .args(&files)
            .output()
            .map_err(|e| Error::Invalid(format!("cannot run {}: {e}", py.display())))?;
        if o.status.success() {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                // "name<TAB>threads<TAB>records<TAB>seconds"
                let p: Vec<&str> = line.split('\t').collect();
                if p.len() == 4 {
                    if let (Ok(n), Ok(s)) = (p[2].parse::<usize>(), p[3].parse::<f64>()) {
                        row(p[0], p[1].into(), n, s);
                    }
                }
            }
        } else {
            out.push_str(&format!(
                "| TensorFlow | failed: {} | | | |\n",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ));
        }
    }
    Ok(out)
}

pub fn default_workdir() -> PathBuf {
    std::env::temp_dir().join("yt8m-bench")
}
