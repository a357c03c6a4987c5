//! The binary finds libtorch by itself, keeps libtorch's CUDA backend linked (so a GPU is
//! seen where there is one), and a different libtorch 2.11 on LD_LIBRARY_PATH wins over the
//! embedded rpath (issue 8: "another torch 2.11 install's libtorch").

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn info(ld_library_path: Option<&Path>) -> serde_json::Value {
    let mut c = Command::new(bin());
    c.args(["info", "--json"]);
    match ld_library_path {
        Some(p) => c.env("LD_LIBRARY_PATH", p),
        None => c.env_remove("LD_LIBRARY_PATH"),
    };
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "yt8m info failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn libtorch_and_its_cuda_backend_are_loaded_without_ld_library_path() {
    let i = info(None);
    println!("{i:#}");
    let loaded = PathBuf::from(
        i["libtorch_dir"]
            .as_str()
            .expect("libtorch_cpu.so is mapped"),
    );
    assert_eq!(
        Some(loaded.to_str().unwrap()),
        i["libtorch_built_against"].as_str(),
        "the embedded rpath should pick the libtorch the binary was linked against"
    );
    if loaded.join("libtorch_cuda.so").exists() {
        // Without it `--as-needed` drops the CUDA backend and CUDA reads as unavailable on GPUs.
        assert_eq!(
            i["cuda_backend_loaded"], true,
            "libtorch_cuda.so not loaded"
        );
    }
    if i["cuda_available"] == false {
        let o = Command::new(bin())
            .args(["bench", "predict", "--device", "cuda"])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(e.contains("CUDA requested but"), "{e}");
        println!("--device cuda without a GPU: {e}");
    }
}

#[test]
fn another_libtorch_on_ld_library_path_wins() {
    let i = info(None);
    let lib = PathBuf::from(i["libtorch_dir"].as_str().unwrap());
    // A second install laid out as the wheel's (site-packages/torch/lib beside nvidia/, which
    // libtorch_cuda.so's $ORIGIN rpath needs): hard links, so no gigabytes are copied.
    let site = tempdir("other-torch").join("site-packages");
    let other = site.join("torch").join("lib");
    std::fs::create_dir_all(&other).unwrap();
    for e in std::fs::read_dir(&lib).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            if let Err(err) = std::fs::hard_link(e.path(), other.join(e.file_name())) {
                println!("skipped: cannot hard-link {} ({err})", e.path().display());
                return;
            }
        }
    }
    let nvidia = lib.join("../../nvidia");
    if nvidia.is_dir() {
        std::os::unix::fs::symlink(nvidia.canonicalize().unwrap(), site.join("nvidia")).unwrap();
    }
    let j = info(Some(&other));
    println!("with LD_LIBRARY_PATH={}: {j:#}", other.display());
    assert_eq!(j["libtorch_dir"].as_str(), other.to_str());
    assert_eq!(j["cuda_backend_loaded"], i["cuda_backend_loaded"]);
    // And it computes: a demo-sized synth + inspect round trip is not needed; one tensor op is
    // enough to prove the libraries resolve (info already ran libtorch calls).
    assert!(j["torch_threads"].as_u64().unwrap() >= 1);
    let _ = std::fs::remove_dir_all(site.parent().unwrap());
}
