//! Embeds libtorch's library directory as an rpath so the `yt8m` binary and the tests run
//! without LD_LIBRARY_PATH and without Python (torch-sys only sets the rpath on its own
//! C++ shim, not on the final executables).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
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
    }
}
