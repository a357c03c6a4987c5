//! Seeing a run (issue #17): TensorBoard event files read by TensorBoard's own reader, PNG
//! curves from `yt8m plot` decoded back, and every `Examples:` line of the help run as written.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn python() -> String {
    std::env::var("YT8M_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/yt8m/venv/bin/python",
            std::env::var("HOME").unwrap()
        )
    })
}

fn yt8m(args: &[String]) -> String {
    let o = Command::new(bin())
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
    yt8m(&a);
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
    let mut a = tiny_train_args(&run, &d.join("data"), &["--resume".into(), "-o".into(), "epochs=4".into()]);
    a.push("--validate".into());
    a.push("-o".into());
    a.push(format!("DATASET.valid.file_path={}", d.join("data").display()));
    yt8m(&a);
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
    let text = yt8m(&[
        "plot".into(),
        run.display().to_string(),
        run.display().to_string(),
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
    // A run without validation: a clear error naming the metric and the fix; no file written.
    let bare = d.join("bare");
    yt8m(&tiny_train_args(&bare, &d.join("data"), &["-o".into(), "epochs=1".into()]));
    let o = Command::new(bin())
        .args(["plot", bare.to_str().unwrap(), "--metric", "gap", "--out"])
        .arg(d.join("none.png"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("valid GAP") && err.contains("--validate"), "{err}");
    assert!(!d.join("none.png").exists());
}

#[test]
fn predict_and_test_report_progress_over_many_shards() {
    let d = tempdir("progress");
    let run = tiny_run(&d);
    let bundle = d.join("bundle");
    yt8m(&[
        "export".into(),
        "-w".into(),
        run.join("checkpoints/latest").display().to_string(),
        "--out".into(),
        bundle.display().to_string(),
    ]);
    // Every tick logs (interval 0): the lines count videos of the framing-scanned total.
    for args in [
        vec!["predict".to_string(), "--model".into(), bundle.display().to_string(), d.join("data").display().to_string(), "--format".into(), "jsonl".into()],
        vec!["test".to_string(), "-w".into(), run.join("checkpoints/latest").display().to_string(), "-o".into(), format!("DATASET.test.file_path={}", d.join("data").display())],
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
