//! Embeds libtorch's library directory as an rpath so the `yt8m` binary and the tests run
//! without LD_LIBRARY_PATH and without Python (torch-sys only sets the rpath on its own
//! C++ shim, not on the final executables).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    grpc();
    bundled_configs();
    println!("cargo:rerun-if-env-changed=YT8M_RPATH");
    // YT8M_RPATH=wheel: the engine of the Python wheel (`./dev wheel`), installed as
    // site-packages/yt8m/_bin/yt8m-core: libtorch is the `torch` package beside it, found
    // relative to the binary whatever the environment's path.
    let wheel = std::env::var("YT8M_RPATH").as_deref() == Ok("wheel");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        if wheel {
            println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../../torch/lib");
            println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../../nvidia/nccl/lib");
            // The engine's own directory holds `libnccl.so`, the name cudarc opens: a shim
            // needing the libnccl.so.2 that pip's nvidia-nccl package ships (./dev wheel).
            println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN");
        } else {
            // `$ORIGIN`-independent absolute path: the venv lives outside the repository at a
            // fixed place (see `./dev setup`); LD_LIBRARY_PATH still wins for another libtorch
            // 2.11.
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
            // NCCL from the same wheel (nvidia/nccl/lib), for the `nccl` feature's run-time
            // loading (`./dev setup` adds the `libnccl.so` name cudarc looks for).
            let nccl = std::path::Path::new(&dir).join("../../nvidia/nccl/lib");
            if nccl.is_dir() {
                println!("cargo:rustc-link-arg=-Wl,-rpath,{}", nccl.display());
            }
        }
        // What `yt8m info` shows as the libtorch linked against: the wheel's engine was built
        // against this machine's venv, which a pip user does not have; its rpath says where it
        // looks instead.
        if wheel {
            println!(
                "cargo:rustc-env=YT8M_LIBTORCH_LIB=$ORIGIN/../../torch/lib (the torch package installed beside yt8m)"
            );
        } else {
            println!("cargo:rustc-env=YT8M_LIBTORCH_LIB={dir}");
        }
        // The CUDA backend (libtorch_cuda.so) registers itself when loaded, but nothing calls
        // into it directly, so the default `--as-needed` drops it from the executable and CUDA
        // then reads as unavailable even on a GPU machine (tch-rs issues #329, #980). Linking
        // `libtorch.so` without `--as-needed` keeps it: in the CUDA builds of torch,
        // libtorch.so itself needs libtorch_cuda.so, and in the CPU builds it does not, so one
        // binary loads either (naming libtorch_cuda.so here made the CPU build unloadable).
        // tests/runtime.rs checks that the CUDA backend is loaded where it exists.
        let lib = std::path::Path::new(&dir);
        if lib.join("libtorch.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}

/// The configs shipped inside the binary (src/configs.rs): every `configs/*.yaml` but the
/// test-only ones, in name order, each with the `# summary:` line at its top.
fn bundled_configs() {
    const TEST_ONLY: &[&str] = &["tiny_test"];
    let root =
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dir = root.join("configs");
    // The directory's own time changes when a file is added or removed.
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .expect("configs/ is part of the repository")
        .map(|e| e.expect("a readable configs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = String::from("&[\n");
    for p in files {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if TEST_ONLY.contains(&name.as_str()) {
            continue;
        }
        println!("cargo:rerun-if-changed={}", p.display());
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let Some(summary) = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# summary:"))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            panic!(
                "configs/{name}.yaml: its first line must be `# summary: WHAT IT IS` (yt8m config list shows it)"
            );
        };
        out.push_str(&format!(
            "    Bundled {{ name: {name:?}, summary: {summary:?}, yaml: include_str!({:?}) }},\n",
            p.display().to_string()
        ));
    }
    out.push_str("]\n");
    let dest = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"))
        .join("bundled_configs.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}

/// The Open Inference Protocol's gRPC service (`yt8m serve --grpc-port`), generated from
/// proto/grpc_predict_v2.proto with the vendored protoc.
fn grpc() {
    println!("cargo:rerun-if-changed=proto/grpc_predict_v2.proto");
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc for this platform");
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure()
        .build_client(false)
        // Undecodable requests are INVALID_ARGUMENT, not prost's INTERNAL (src/serve/grpc.rs).
        .codec_path("crate::serve::grpc::RequestCodec")
        .compile_protos(&["proto/grpc_predict_v2.proto"], &["proto"])
        .expect("proto/grpc_predict_v2.proto compiles");
}
