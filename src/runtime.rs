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
        return Err(Error::Invalid(
            "CUDA requested but libtorch sees no GPU (check the driver, or use --device cpu)"
                .into(),
        ));
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
