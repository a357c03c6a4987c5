//! Embeds libtorch's library directory as an rpath so the `yt8m` binary and the tests run
//! without LD_LIBRARY_PATH and without Python (torch-sys only sets the rpath on its own
//! C++ shim, not on the final executables).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    grpc();
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        // `$ORIGIN`-independent absolute path: the venv lives outside the repository at a fixed
        // place (see scripts/setup.sh); LD_LIBRARY_PATH still wins for another libtorch 2.11.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=YT8M_LIBTORCH_LIB={dir}");
        // NCCL from the same wheel (nvidia/nccl/lib), for the `nccl` feature's run-time loading
        // (`./dev setup` adds the `libnccl.so` name cudarc looks for).
        let nccl = std::path::Path::new(&dir).join("../../nvidia/nccl/lib");
        if nccl.is_dir() {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", nccl.display());
        }
        // The CUDA backend (libtorch_cuda.so) registers itself when loaded, but nothing calls
        // into it directly, so the default `--as-needed` drops it from the executable and CUDA
        // then reads as unavailable even on a GPU machine (tch-rs issues #329, #980). Linking
        // `libtorch.so` (which itself needs torch_cpu and torch_cuda) without `--as-needed`
        // keeps it, as tch-rs's own build.rs does. tests/runtime.rs checks it is loaded.
        let lib = std::path::Path::new(&dir);
        if lib.join("libtorch.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch");
            if lib.join("libtorch_cuda.so").exists() {
                println!("cargo:rustc-link-arg=-ltorch_cuda");
            }
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
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
