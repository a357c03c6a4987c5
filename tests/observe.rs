//! Seeing a run (issue #17): TensorBoard event files read by TensorBoard's own reader, PNG
//! curves from `yt8m plot` decoded back, and every `Examples:` line of the help run as written.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// A tiny run with validation: 3 epochs, a train-step record every 5 steps.
fn tiny_run(d: &Path) -> std::path::PathBuf {
    let data = d.join("data");
    synth_shards(&data, 96, 2, 3, 12);
    let run = d.join("run");
    let mut a = tiny_train_args(
        &run,
        &data,
        &[
            "--validate".into(),
            "-o".into(),
            format!("DATASET.valid.file_path={}", data.display()),
        ],
    );
    a.retain(|x| x != "--quiet");
    yt8m_ok(&a);
    run
}

#[test]
fn tensorboard_reads_the_event_files_and_they_match_metrics_jsonl() {
    let d = tempdir("tb");
    let run = tiny_run(&d);
    let log = yt8m::train::read_log(&run.join("metrics.jsonl")).unwrap();
    // What TensorBoard's EventAccumulator sees, as JSON {tag: [[step, value], ...]}.
    let script = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
out = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
print(json.dumps(out))
"#;
    let o = Command::new(python())
        .args(["-c", script, run.join("tb").to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); `./dev test` installs tensorboard into the venv (or set YT8M_PYTHON)", python()));
    assert!(
        o.status.success(),
        "TensorBoard's reader failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let tb: std::collections::BTreeMap<String, Vec<(i64, f64)>> =
        serde_json::from_slice(&o.stdout).unwrap();
    println!(
        "TensorBoard tags: {:?}",
        tb.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
    );
    // README documents every tag (issue #27: `epoch/*` were written but never described).
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for tag in tb.keys() {
        assert!(
            readme.contains(&format!("`{tag}`")),
            "README's TensorBoard table lacks `{tag}`"
        );
    }
    let mut steps = Vec::new();
    let mut epochs = Vec::new();
    for r in &log {
        match r {
            yt8m::train::LogRecord::TrainStep {
                global_step,
                loss_per_video,
                lr,
                samples_per_s,
                data_wait_share,
                grad_norm,
                ..
            } => steps.push((
                *global_step as i64,
                [
                    *loss_per_video,
                    *lr,
                    *samples_per_s,
                    *data_wait_share,
                    grad_norm.expect("grad_norm recorded"),
                ],
            )),
            yt8m::train::LogRecord::Epoch { valid, .. } => {
                epochs.push(valid.clone().expect("validated every epoch"))
            }
            _ => {}
        }
    }
    assert!(steps.len() >= 3 && epochs.len() == 3, "{log:?}");
    let mut max_diff = 0f64;
    for (i, tag) in [
        "train/loss_per_video",
        "train/lr",
        "train/samples_per_s",
        "train/data_wait",
        "train/grad_norm",
    ]
    .iter()
    .enumerate()
    {
        let series = tb.get(*tag).unwrap_or_else(|| panic!("no {tag}: {tb:?}"));
        assert_eq!(series.len(), steps.len(), "{tag}");
        for ((s, v), (gs, want)) in series.iter().zip(&steps) {
            assert_eq!(s, gs, "{tag}");
            // Summaries hold float32.
            let d = (v - want[i]).abs() / want[i].abs().max(1e-30);
            max_diff = max_diff.max(d);
            assert!(d < 1e-6, "{tag} at step {s}: {v} vs {}", want[i]);
        }
    }
    for tag in [
        "valid/hit_at_one",
        "valid/perr",
        "valid/gap",
        "valid/map",
        "valid/loss_per_video",
    ] {
        let series = tb.get(tag).unwrap_or_else(|| panic!("no {tag}: {tb:?}"));
        assert_eq!(series.len(), 3, "{tag}");
        for (x, v) in series.iter().zip(&epochs) {
            let want = match tag {
                "valid/hit_at_one" => v.hit_at_one,
                "valid/perr" => v.perr,
                "valid/gap" => v.gap,
                "valid/map" => v.map.unwrap(),
                _ => v.loss,
            };
            assert!((x.1 - want).abs() <= 1e-6 * want.abs().max(1.0), "{tag}");
        }
        // Steps increase epoch by epoch.
        assert!(series.windows(2).all(|w| w[0].0 < w[1].0), "{tag}");
    }
    println!("TensorBoard vs metrics.jsonl: max relative difference {max_diff:.2e} (float32)");
    // A resumed run adds a second file; TensorBoard reads both.
    let mut a = tiny_train_args(
        &run,
        &d.join("data"),
        &["--resume".into(), "-o".into(), "epochs=4".into()],
    );
    a.push("--validate".into());
    a.push("-o".into());
    a.push(format!(
        "DATASET.valid.file_path={}",
        d.join("data").display()
    ));
    yt8m_ok(&a);
    let files = std::fs::read_dir(run.join("tb")).unwrap().count();
    assert_eq!(files, 2);
    let o = Command::new(python())
        .args(["-c", script, run.join("tb").to_str().unwrap()])
        .output()
        .unwrap();
    let tb: std::collections::BTreeMap<String, Vec<(i64, f64)>> =
        serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(tb["valid/gap"].len(), 4);
}

/// Width, height and the set of distinct colours of a PNG.
fn decode_png(p: &Path) -> (u32, u32, usize) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    let px = &buf[..info.buffer_size()];
    let colours: std::collections::HashSet<&[u8]> = px.chunks(3).collect();
    (info.width, info.height, colours.len())
}

#[test]
fn plot_draws_runs_overlaid_as_a_png_of_the_asked_size() {
    let d = tempdir("plot");
    let run = tiny_run(&d);
    let out = d.join("curves.png");
    // A second run to overlay: a copy of the first under another name.
    let other = d.join("other");
    let cp = Command::new("cp")
        .arg("-r")
        .arg(&run)
        .arg(&other)
        .status()
        .unwrap();
    assert!(cp.success());
    let text = yt8m_ok(&[
        "plot".into(),
        run.display().to_string(),
        other.display().to_string(),
        "--metric".into(),
        "loss,gap,lr".into(),
        "--panel-size".into(),
        "500x300".into(),
        "--out".into(),
        out.display().to_string(),
    ]);
    assert!(text.contains("1500x300"), "{text}");
    let (w, h, colours) = decode_png(&out);
    assert_eq!((w, h), (1500, 300));
    // Axes, text and two series colours at least: not a blank canvas.
    assert!(colours > 10, "{colours} colours");
    // Five metrics: a grid of three columns (it was a 2500x300 strip); the same run given
    // twice is drawn once, with a warning (it made two identical legend entries).
    let o = Command::new(bin())
        .args(["plot", run.to_str().unwrap(), run.to_str().unwrap()])
        .args([
            "--metric",
            "loss,gap,hit_at_one,perr,lr",
            "--panel-size",
            "500x300",
        ])
        .arg("--out")
        .arg(d.join("grid.png"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("given twice: drawn once"), "{err}");
    assert_eq!(decode_png(&d.join("grid.png")).0, 1500);
    assert_eq!(decode_png(&d.join("grid.png")).1, 600);
    // A run without validation: a clear error naming the metric and the fix; no file written.
    let bare = d.join("bare");
    yt8m_ok(&tiny_train_args(
        &bare,
        &d.join("data"),
        &["-o".into(), "epochs=1".into()],
    ));
    let o = Command::new(bin())
        .args(["plot", bare.to_str().unwrap(), "--metric", "gap", "--out"])
        .arg(d.join("none.png"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("valid GAP") && err.contains("--validate"),
        "{err}"
    );
    assert!(!d.join("none.png").exists());
}

#[test]
fn predict_test_and_synth_report_progress() {
    let d = tempdir("progress");
    let run = tiny_run(&d);
    let bundle = d.join("bundle");
    yt8m_ok(&[
        "export".into(),
        "-w".into(),
        run.join("checkpoints/latest").display().to_string(),
        "--out".into(),
        bundle.display().to_string(),
    ]);
    // Every tick logs (interval 0): the lines count videos of the framing-scanned total.
    for args in [
        vec![
            "predict".to_string(),
            "--model".into(),
            bundle.display().to_string(),
            d.join("data").display().to_string(),
            "--format".into(),
            "jsonl".into(),
        ],
        vec![
            "test".to_string(),
            "-w".into(),
            run.join("checkpoints/latest").display().to_string(),
            "-o".into(),
            format!("DATASET.test.file_path={}", d.join("data").display()),
        ],
        // synth of a gigabyte takes minutes: it reports too (issue #27).
        vec![
            "synth".to_string(),
            "--out".into(),
            d.join("more").display().to_string(),
            "--num-videos".into(),
            "96".into(),
            "--max-frames".into(),
            "4".into(),
        ],
    ] {
        let o = Command::new(bin())
            .args(&args)
            .env("YT8M_THREADS", "1")
            .env("YT8M_PROGRESS_SECS", "0")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{args:?}: {err}");
        assert!(err.contains("/96 videos ("), "{args:?}: {err}");
        assert!(err.contains("s left"), "{err}");
        if args[0] == "predict" {
            // stdout stays the predictions alone.
            let out = String::from_utf8_lossy(&o.stdout);
            assert_eq!(out.lines().count(), 96);
            assert!(out.lines().all(|l| l.starts_with('{')), "{out}");
        }
    }
}

/// The `Examples:` lines of a help text, joined across `\` continuations, comments dropped.
fn examples(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut cont = String::new();
    for line in help.lines() {
        if line.starts_with("Example") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if !line.starts_with("  ") {
            inside = false;
            continue;
        }
        let code = match line.find("  #") {
            Some(i) => &line[..i],
            None => line,
        };
        let code = code.trim();
        if let Some(head) = code.strip_suffix('\\') {
            cont.push_str(head);
            continue;
        }
        let continued = !cont.is_empty();
        let full = format!("{cont}{code}");
        cont.clear();
        if full.contains("yt8m") {
            out.push(full);
        } else if !continued {
            // Help is wrapped at 100 columns: an example longer than that breaks into a
            // line that is not a command (and the first part runs without its end).
            out.push(format!("WRAPPED: {line}"));
        }
    }
    out
}

/// Option lines of a help text that carry no description.
fn undocumented_options(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let mut bad = Vec::new();
    let opt = |l: &str| {
        let t = l.trim_start();
        l.starts_with("  ") && t.starts_with('-') && l.len() - t.len() <= 6
    };
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("Example") {
            break; // option lists end where the examples begin
        }
        if !opt(l) {
            continue;
        }
        // "  -c, --config <CONFIG>  Text": text after two spaces past the signature, or on the
        // next, deeper-indented line.
        let t = l.trim_start();
        // "[default: x]" alone is not a description.
        let text = |x: &str| !x.trim().is_empty() && !x.trim().starts_with('[');
        let has_text = t.split_once("  ").is_some_and(|(_, rest)| text(rest));
        let next_is_text = lines
            .get(i + 1)
            .is_some_and(|n| n.len() - n.trim_start().len() > 8 && text(n));
        if !has_text && !next_is_text {
            bad.push(t.to_string());
        }
    }
    bad
}

fn help(args: &[&str]) -> String {
    let o = Command::new(bin())
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Examples that cannot run here, each with the reason; every entry must match a help line,
/// so the list cannot go stale.
const NOT_RUN_HERE: &[(&str, &str)] = &[
    (
        "--out runs/full",
        "full-size training (108 M parameters): the --dry-run example of the same config runs instead",
    ),
    (
        "-w paddle/AttentionLSTM_yt8.pdparams",
        "needs PaddleVideo's released full-size weights (not in the test data)",
    ),
    (
        "-w AttentionLSTM_yt8.pdparams --metric-mode",
        "needs PaddleVideo's released full-size weights (not in the test data)",
    ),
    (
        "yt8m serve ",
        "a server runs until stopped: tests/serve.rs starts it, queries it with tritonclient and stops it",
    ),
    (
        "yt8m bench ",
        "benchmarks (minutes each on 2 cores): ./dev bench runs them, docs/benchmarks.md has their tables",
    ),
];

#[test]
fn every_help_example_runs_as_written_and_every_option_is_described() {
    // The verbs, from the top-level help.
    let top = help(&[]);
    let mut verbs: Vec<Vec<String>> = Vec::new();
    let mut in_cmds = false;
    for l in top.lines() {
        if l.starts_with("Commands:") {
            in_cmds = true;
            continue;
        }
        if in_cmds {
            if l.trim().is_empty() {
                break;
            }
            // Wrapped descriptions are indented deeper than the verbs.
            let Some(v) = l.strip_prefix("  ").filter(|r| !r.starts_with(' ')) else {
                continue;
            };
            let v = v.split_whitespace().next().unwrap();
            if v == "help" {
                continue;
            }
            if v == "bench" {
                for sub in [
                    "eval", "train", "predict", "serve", "read", "segments", "extract",
                ] {
                    verbs.push(vec!["bench".into(), sub.into()]);
                }
            } else if v == "config" {
                for sub in ["list", "show"] {
                    verbs.push(vec!["config".into(), sub.into()]);
                }
            } else {
                verbs.push(vec![v.to_string()]);
            }
        }
    }
    assert!(verbs.len() >= 16, "{verbs:?}");
    let mut all = Vec::new();
    let mut bad = Vec::new();
    for v in &verbs {
        let args: Vec<&str> = v.iter().map(String::as_str).collect();
        let h = help(&args);
        let ex = examples(&h);
        for w in ex.iter().filter(|e| e.starts_with("WRAPPED")) {
            bad.push(format!(
                "`yt8m {}`: an example line was wrapped: {w}",
                v.join(" ")
            ));
        }
        if ex.is_empty() {
            bad.push(format!("`yt8m {}` has no Examples", v.join(" ")));
        }
        // One spelling per flag (issue #27): `--out` everywhere; `--output` is only a hidden
        // alias for old scripts.
        if h.contains("--output") || h.contains("<OUTPUT>") {
            bad.push(format!("`yt8m {}` shows --output / <OUTPUT>", v.join(" ")));
        }
        for o in undocumented_options(&h) {
            bad.push(format!(
                "`yt8m {}`: option without a description: {o}",
                v.join(" ")
            ));
        }
        all.push((v.join(" "), ex));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));

    // A working directory holding what the examples name.
    let s = tempdir("examples");
    std::fs::create_dir_all(s.join("configs")).unwrap();
    for e in std::fs::read_dir(repo().join("configs")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, s.join("configs").join(p.file_name().unwrap())).unwrap();
    }
    let synth = |dir: &str, prefix: &str, n: usize| {
        yt8m_ok(&[
            "synth".into(),
            "--out".into(),
            s.join(dir).display().to_string(),
            "--num-videos".into(),
            n.to_string(),
            "--num-shards".into(),
            "2".into(),
            "--prefix".into(),
            prefix.into(),
            "--max-frames".into(),
            "20".into(),
        ]);
    };
    synth("data", "train", 48);
    synth("data", "test", 16);
    synth("data", "validate", 32);
    // `train --dry-run` over 'data/*.tfrecord' (full config, batch 128) refuses fewer videos
    // than one batch, as `train` does: 128 in all there.
    synth("data", "extra", 32);
    synth("data/frame", "train", 32);
    // 2019-style: the segment examples of predict and evaluate read these too.
    yt8m_ok(&[
        "synth",
        "--segments",
        "--out",
        s.to_str().unwrap(),
        "--num-videos",
        "32",
        "--num-shards",
        "2",
        "--prefix",
        "validate",
        "--max-frames",
        "20",
    ]);
    synth("frames", "clip", 8);
    std::fs::write(
        s.join("data/train.list"),
        "train0000.tfrecord\ntrain0001.tfrecord\n",
    )
    .unwrap();
    std::fs::create_dir_all(s.join("data/pkl_frame")).unwrap();
    if shared_present() {
        std::fs::copy(
            yt8m_data("real/paddlevideo_example.pkl"),
            s.join("data/pkl_frame/example.pkl"),
        )
        .unwrap();
        std::fs::copy(
            yt8m_data("real/paddlevideo_example.pkl"),
            s.join("video.pkl"),
        )
        .unwrap();
        std::fs::copy(
            parity("c_recognizer1d.pdparams"),
            s.join("AttentionLSTM_yt8.pdparams"),
        )
        .unwrap();
    }
    // clip.npy: 12 frames of rgb + audio side by side.
    let mut npy = Vec::new();
    let frames: Vec<u8> = (0..12 * 1152).map(|i| (i * 7 % 251) as u8).collect();
    yt8m::data::npy::write_npy(&mut npy, &[12, 1152], "|u1", &frames).unwrap();
    std::fs::write(s.join("clip.npy"), npy).unwrap();

    // Videos for extract and predict, extracted with the stand-in extractor files
    // (tests/fixtures/extract) given as YT8M_EXTRACTOR_DIR, the documented default.
    std::fs::create_dir_all(s.join("videos")).unwrap();
    for (out, size) in [("clip.mp4", "64x48"), ("videos/other.mkv", "48x32")] {
        let o = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={size}:rate=10:duration=2"))
            .args(["-c:v", "mpeg4"])
            .arg(s.join(out))
            .output()
            .expect("ffmpeg (./dev setup installs it)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    std::fs::write(s.join("videos.csv"), "clip.mp4,3;17\nvideos/other.mkv,5\n").unwrap();

    // Run order: what an example reads, an earlier one wrote.
    let order = [
        "synth",
        "demo",
        "inspect",
        "train",
        "test",
        "export",
        "extract",
        "predict",
        "evaluate",
        "plot",
        "convert",
        "info",
        "config list",
        "config show",
        "serve",
        "bench eval",
        "bench train",
        "bench predict",
        "bench serve",
        "bench read",
        "bench segments",
        "bench extract",
    ];
    let mut used_rules = std::collections::HashSet::new();
    let mut ran = 0;
    let path = format!(
        "{}:{}",
        bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for verb in order {
        let Some((_, ex)) = all.iter().find(|(v, _)| v == verb) else {
            panic!("no verb {verb}")
        };
        for line in ex {
            if let Some((pat, why)) = NOT_RUN_HERE.iter().find(|(p, _)| line.contains(p)) {
                used_rules.insert(*pat);
                println!("not run: {line}\n  ({why})");
                continue;
            }
            if verb == "predict" && !s.join("bundles/full").exists() {
                // "bundles/full" in the examples: any bundle; the demo-sized one here.
                let _ = Command::new("cp")
                    .args(["-r", "bundles/demo", "bundles/full"])
                    .current_dir(&s)
                    .status();
            }
            if verb == "evaluate" && !s.join("preds.npz").exists() {
                // The examples' inputs: predictions of the demo bundle on validation shards.
                for (fmt, out) in [("npz", "preds.npz"), ("kaggle", "submission.csv")] {
                    let o = Command::new(bin())
                        .args([
                            "predict",
                            "--model",
                            "bundles/demo",
                            "validate*.tfrecord",
                            "--format",
                            fmt,
                            "--out",
                            out,
                        ])
                        .current_dir(&s)
                        .output()
                        .unwrap();
                    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                }
                let z = yt8m::data::npy::read_npz(&s.join("preds.npz")).unwrap();
                let get = |k: &str| &z.iter().find(|(n, _)| n == k).unwrap().1;
                let p = get("predictions");
                let mut npy = Vec::new();
                yt8m::data::npy::write_npy(&mut npy, &p.shape, &p.descr(), &p.data).unwrap();
                std::fs::write(s.join("scores.npy"), npy).unwrap();
                std::fs::write(s.join("ids.txt"), get("ids").to_strings().join("\n") + "\n")
                    .unwrap();
            }
            if !shared_present()
                && (line.contains(".pkl")
                    || line.contains("pdparams")
                    || line.contains("pkl_frame"))
            {
                println!("not run: {line}\n  (../shared absent)");
                continue;
            }
            let t = std::time::Instant::now();
            let o = Command::new("bash")
                .args(["-c", line])
                .current_dir(&s)
                .env("PATH", &path)
                .env("YT8M_THREADS", "1")
                .env("YT8M_EXTRACTOR_DIR", repo().join("tests/fixtures/extract"))
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "help example failed: {line}\n{}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            println!("ran ({:.1} s): {line}", t.elapsed().as_secs_f64());
            ran += 1;
        }
    }
    for (pat, _) in NOT_RUN_HERE {
        assert!(used_rules.contains(pat), "stale NOT_RUN_HERE entry '{pat}'");
    }
    println!("{ran} help examples ran as written");
    assert!(ran >= 25, "{ran}");
}
