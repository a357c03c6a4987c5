//! Device and dtype selection shared by train, test and predict.

use crate::error::{Error, Result};
use tch::{Device, Kind};

/// "auto" → CUDA 0 if available, else CPU; "cpu"; "cuda"; "cuda:N".
pub fn parse_device(s: &str) -> Result<Device> {
    match s {
        "auto" => Ok(if tch::Cuda::is_available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        s if s.starts_with("cuda:") => cuda(s[5..].parse().map_err(|_| {
            Error::Invalid(format!("bad device '{s}' (use cpu, cuda, cuda:N or auto)"))
        })?),
        other => Err(Error::Invalid(format!(
            "unknown device '{other}' (use cpu, cuda, cuda:N or auto)"
        ))),
    }
}

fn cuda(i: usize) -> Result<Device> {
    if !tch::Cuda::is_available() {
        let why = if cuda_backend_loaded() {
            "libtorch sees no GPU (check the driver and CUDA_VISIBLE_DEVICES)"
        } else {
            "the loaded libtorch has no CUDA backend (a CPU-only libtorch? `yt8m info` shows which is loaded)"
        };
        return Err(Error::Invalid(format!(
            "CUDA requested but {why}; or use --device cpu"
        )));
    }
    let n = tch::Cuda::device_count() as usize;
    if i >= n {
        return Err(Error::Invalid(format!(
            "cuda:{i} requested but only {n} GPU(s) are visible"
        )));
    }
    Ok(Device::Cuda(i))
}

pub fn parse_kind(s: &str) -> Result<Kind> {
    match s {
        "float32" => Ok(Kind::Float),
        "float64" => Ok(Kind::Double),
        other => Err(Error::Invalid(format!(
            "dtype '{other}' must be float32 or float64"
        ))),
    }
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &std::path::Path) -> Result<String> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(format!("{:x}", h.finalize()))
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename).
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// What this process runs on: `yt8m info`, bug reports and the GPU check.
#[derive(Debug, serde::Serialize)]
pub struct RuntimeInfo {
    pub version: &'static str,
    /// Cargo features compiled in (mpi, nccl).
    pub features: Vec<&'static str>,
    /// Directory of the libtorch actually loaded (LD_LIBRARY_PATH wins over the rpath).
    pub libtorch_dir: Option<String>,
    /// The libtorch directory the binary was linked against (its embedded rpath).
    pub libtorch_built_against: Option<&'static str>,
    /// libtorch_cuda.so is mapped: without it CUDA reads as unavailable even on a GPU machine.
    pub cuda_backend_loaded: bool,
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    pub cores: usize,
    pub torch_threads: usize,
    /// NCCL version found at run time (`nccl` feature), or why not.
    pub nccl: Option<String>,
}

/// Path of the shared library named `name` mapped into this process (Linux; None elsewhere).
fn mapped_library(name: &str) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.rsplit('/').next() == Some(name))
        .map(str::to_string)
}

/// libtorch_cuda.so is mapped: without it CUDA reads as unavailable even on a GPU machine.
pub fn cuda_backend_loaded() -> bool {
    mapped_library("libtorch_cuda.so").is_some()
}

pub fn runtime_info() -> RuntimeInfo {
    let torch_threads = crate::threads::configure_torch_threads();
    #[allow(unused_mut)]
    let mut features = Vec::new();
    #[cfg(feature = "mpi")]
    features.push("mpi");
    #[cfg(feature = "nccl")]
    features.push("nccl");
    #[cfg(feature = "nccl")]
    // SAFETY: probes dlopen for the NCCL library, then asks its version.
    let nccl = Some(if unsafe { cudarc::nccl::sys::is_culib_present() } {
        match cudarc::nccl::result::get_nccl_version() {
            Ok(v) => format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100),
            Err(e) => format!("loaded, but ncclGetVersion failed: {e:?}"),
        }
    } else {
        "libnccl.so not found (./dev setup links it in the torch wheel's nvidia/nccl/lib)".into()
    });
    #[cfg(not(feature = "nccl"))]
    let nccl = None;
    RuntimeInfo {
        version: env!("CARGO_PKG_VERSION"),
        features,
        libtorch_dir: mapped_library("libtorch_cpu.so")
            .map(|p| p.rsplit_once('/').map(|x| x.0.to_string()).unwrap_or(p)),
        libtorch_built_against: option_env!("YT8M_LIBTORCH_LIB"),
        cuda_backend_loaded: cuda_backend_loaded(),
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        cores: crate::threads::available_cores(),
        torch_threads,
        nccl,
    }
}
