//! The NCCL gradient path (issue 7) without MPI: refused with a fix on CPU devices, and on a
//! GPU one worker with `--distributed nccl` must train exactly as plain training does.
//! scripts/gpu_check.sh runs this binary on GPU machines.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Synthetic training shards for the NCCL checks.
fn small_shards(d: &Path) -> PathBuf {
    synth_shards(&d.join("shards"), 24, 2, 5, 30);
    d.join("shards")
}

#[test]
fn nccl_mode_on_a_cpu_device_is_refused_with_the_fix() {
    let d = tempdir("nccl-cpu");
    let data = small_shards(&d);
    let mut extra = exact_overrides(1, 4);
    extra.extend([
        "--device".into(),
        "cpu".into(),
        "--distributed".into(),
        "nccl".into(),
    ]);
    let o = Command::new(bin())
        .args(tiny_train_args(&d.join("run"), &data, &extra))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("nccl all-reduces on GPUs") && e.contains("hint"),
        "{e}"
    );
}

/// The one-GPU check of the NCCL path (issue 7): one worker with `--distributed nccl` sends
/// every gradient through ncclAllReduce on the device; the weights must equal plain
/// training's. Skipped (with a message) where libtorch sees no GPU.
#[cfg(feature = "nccl")]
#[test]
fn nccl_path_on_one_gpu_matches_plain_training() {
    let o = Command::new(bin())
        .args(["info", "--json"])
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    if info["cuda_available"] != true {
        println!("skipped: no GPU visible to libtorch ({info})");
        return;
    }
    println!("NCCL {}", info["nccl"]);
    let d = tempdir("nccl-gpu");
    let data = small_shards(&d);
    let mut runs = Vec::new();
    for mode in ["none", "nccl"] {
        let run = d.join(mode);
        let mut extra = exact_overrides(2, 4);
        extra.extend([
            "--device".into(),
            "cuda".into(),
            "--distributed".into(),
            mode.into(),
        ]);
        let o = Command::new(bin())
            .args(tiny_train_args(&run, &data, &extra))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut w =
            tch::Tensor::read_safetensors(run.join("checkpoints/epoch_00002/model.safetensors"))
                .unwrap();
        w.sort_by(|x, y| x.0.cmp(&y.0));
        runs.push(w);
    }
    let mut max = 0f64;
    for ((na, ta), (nb, tb)) in runs[0].iter().zip(&runs[1]) {
        assert_eq!(na, nb);
        if na.starts_with("att_fc") && na.ends_with(".bias") {
            continue; // analytically zero gradient (see exact_overrides)
        }
        max = max.max((ta - tb).abs().max().double_value(&[]));
    }
    println!("after 6 steps on the GPU: max |plain - NCCL| = {max:e}");
    assert!(max < 1e-4, "NCCL path changed the weights by {max}");
}
