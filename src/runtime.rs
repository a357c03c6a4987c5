//! The process's runtime: files written atomically, progress of long passes, what libtorch is
//! loaded. (Device and dtype choices, and device names, are in [`crate::kinds`].)

use crate::error::{Error, Result};
pub use crate::kinds::{cuda_backend_loaded, device_name};
use tch::Device;

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
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.commit()
}

/// Progress of a long pass over shards, logged every 10 s: videos done of the total, rate and
/// time left (the total comes from the TFRecord framing alone, a cheap scan; pickles would
/// have to be parsed twice, so with any pickle there is no total). Silent for short passes.
/// `YT8M_PROGRESS_SECS` changes the interval.
pub struct Progress {
    what: &'static str,
    every: f64,
    total: Option<usize>,
    t0: std::time::Instant,
    last: std::time::Instant,
}

impl Progress {
    pub fn new(what: &'static str, files: &[std::path::PathBuf]) -> Self {
        use crate::data::sources::{ShardKind, count_records, shard_kind};
        let total = files
            .iter()
            .map(|f| {
                (shard_kind(f) == ShardKind::TfRecord)
                    .then(|| count_records(f).ok())
                    .flatten()
            })
            .sum();
        Self::with_total(what, total)
    }

    /// Progress towards `total` videos (None: unknown).
    pub fn with_total(what: &'static str, total: Option<usize>) -> Self {
        let now = std::time::Instant::now();
        let every = std::env::var("YT8M_PROGRESS_SECS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(10.0);
        Progress {
            what,
            every,
            total,
            t0: now,
            last: now,
        }
    }

    /// Logs a line when the interval passed since the last one.
    pub fn tick(&mut self, done: usize) {
        if self.last.elapsed().as_secs_f64() < self.every {
            return;
        }
        self.last = std::time::Instant::now();
        let el = self.t0.elapsed().as_secs_f64().max(1e-9);
        match self.total {
            Some(n) if n > 0 && done > 0 => tracing::info!(
                "{}: {done}/{n} videos ({:.0}%), {:.1} videos/s, about {:.0} s left",
                self.what,
                100.0 * done as f64 / n as f64,
                done as f64 / el,
                el / done as f64 * n.saturating_sub(done) as f64
            ),
            _ => tracing::info!(
                "{}: {done} videos, {:.1} videos/s",
                self.what,
                done as f64 / el
            ),
        }
    }
}

/// A file written under a temporary name in its destination directory and renamed over the
/// destination only by [`AtomicFile::commit`] (after flush and fsync). Dropped without a commit
/// (an error, a panic) it removes the temporary file: a failed command never leaves a partial
/// output, and never truncates an existing one. Missing parent directories are created (as
/// `export` and `synth` create theirs), and errors name the destination, never the temporary
/// name, which the user did not choose.
pub struct AtomicFile {
    tmp: std::path::PathBuf,
    dest: std::path::PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    /// Set once the rename succeeded; until then dropping removes the temporary file (also
    /// when the flush, fsync or rename of `commit` itself failed).
    committed: bool,
}

impl AtomicFile {
    pub fn create(dest: &std::path::Path) -> Result<Self> {
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        let name = dest
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{}: not a file path", dest.display())))?;
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Internal(format!(
                "cannot write {}: cannot create its directory {} ({e})\n  hint: check the path (a file of that name may be in the way) and its permissions",
                dest.display(),
                dir.display()
            ))
        })?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let f = std::fs::File::create(&tmp).map_err(|e| {
            Error::Internal(format!(
                "cannot write {}: {e}\n  hint: check that {} is a writable directory with free space",
                dest.display(),
                dir.display()
            ))
        })?;
        Ok(AtomicFile {
            tmp,
            dest: dest.to_path_buf(),
            file: Some(std::io::BufWriter::new(f)),
            committed: false,
        })
    }

    /// The temporary file's path, for writers that take a path (safetensors); `commit` syncs
    /// whatever was written there.
    pub fn temp_path(&self) -> &std::path::Path {
        &self.tmp
    }

    pub fn commit(mut self) -> Result<()> {
        let f = self.file.take().expect("not committed twice");
        let f = f
            .into_inner()
            .map_err(|e| Error::io(&self.dest, e.into_error()))?;
        drop(f);
        sync_file(&self.tmp).map_err(|e| match e {
            Error::Io { err, .. } => Error::io(&self.dest, err),
            e => e,
        })?;
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.committed = true;
        sync_parent(&self.dest);
        Ok(())
    }
}

impl std::io::Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("open").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("open").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// fsync of a path's directory, so a rename into it survives a power loss.
pub fn sync_parent(path: &std::path::Path) {
    if let Some(d) = path.parent() {
        let d = if d.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            d
        };
        if let Ok(f) = std::fs::File::open(d) {
            let _ = f.sync_all();
        }
    }
}

/// fsync of one file (written by a library that does not sync, e.g. safetensors).
pub fn sync_file(path: &std::path::Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Puts the complete directory `new` at `dest` without a moment where `dest` is missing:
/// Linux's `renameat2(RENAME_EXCHANGE)` swaps the two atomically, then the old contents (now at
/// `new`) are removed. Where the file system cannot exchange, the old directory is moved aside
/// first (a kill in between leaves it at `new`'s `.old` name, which resume restores).
pub fn replace_dir(new: &std::path::Path, dest: &std::path::Path) -> Result<()> {
    if !dest.exists() {
        std::fs::rename(new, dest).map_err(|e| Error::io(dest, e))?;
        sync_parent(dest);
        return Ok(());
    }
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_bytes()).ok();
    let (Some(a), Some(b)) = (c(new), c(dest)) else {
        return Err(Error::Invalid(format!(
            "{}: path holds a NUL byte",
            dest.display()
        )));
    };
    // SAFETY: two valid NUL-terminated paths; renameat2 only reads them.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        sync_parent(dest);
        std::fs::remove_dir_all(new).map_err(|e| Error::io(new, e))?;
        return Ok(());
    }
    let old = new.with_extension("old");
    std::fs::rename(dest, &old).map_err(|e| Error::io(dest, e))?;
    std::fs::rename(new, dest).map_err(|e| Error::io(dest, e))?;
    sync_parent(dest);
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// True when `a` and `b` name the same existing file (same device and inode: hard links and
/// `./x` vs `x` included).
pub fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
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
    /// What `--precision auto` computes in on the default device, and why.
    pub precision_auto: String,
    /// The `ffmpeg` that `yt8m extract` runs (its version line), or why none.
    pub ffmpeg: String,
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
        "not found: it comes with torch's CUDA build (pip's nvidia-nccl package); from the \
         repository, ./dev setup links it"
            .into()
    });
    #[cfg(not(feature = "nccl"))]
    let nccl = None;
    let dev = if tch::Cuda::is_available() {
        Device::Cuda(0)
    } else {
        Device::Cpu
    };
    let (k, why) = crate::kinds::Precision::Auto.resolve(dev);
    let precision_auto = format!(
        "{} on {} ({why})",
        crate::kinds::kind_name(k),
        device_name(dev)
    );
    RuntimeInfo {
        version: env!("CARGO_PKG_VERSION"),
        features,
        libtorch_dir: crate::kinds::mapped_library("libtorch_cpu.so")
            .map(|p| p.rsplit_once('/').map(|x| x.0.to_string()).unwrap_or(p)),
        libtorch_built_against: option_env!("YT8M_LIBTORCH_LIB"),
        cuda_backend_loaded: cuda_backend_loaded(),
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        cores: crate::threads::available_cores(),
        torch_threads,
        nccl,
        precision_auto,
        ffmpeg: ffmpeg_version(),
    }
}

/// `ffmpeg -version`'s first line, or what to install.
fn ffmpeg_version() -> String {
    match std::process::Command::new("ffmpeg")
        .arg("-version")
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("ffmpeg (no version line)")
            .to_string(),
        _ => "not found on PATH: yt8m extract and video inputs need it (apt-get install ffmpeg)"
            .into(),
    }
}

/// `RUN/train.log`: the log lines of a training run in plain text (no ANSI colours), beside
/// the run's other files. The CLI's logger writes every line here too once a run opened it.
static RUN_LOG: std::sync::Mutex<Option<std::fs::File>> = std::sync::Mutex::new(None);

/// Starts appending log lines to `path` (rank 0 of a training run).
pub fn set_run_log(path: &std::path::Path) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    if let Ok(mut g) = RUN_LOG.lock() {
        *g = Some(f);
    }
    Ok(())
}

/// A log writer for `RUN/train.log` (discards while no run is open).
pub struct RunLogWriter;

impl std::io::Write for RunLogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut g) = RUN_LOG.lock() {
            if let Some(f) = g.as_mut() {
                f.write_all(buf)?;
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Python's `"%g" % x`: 6 significant digits, fixed notation for decimal exponents −4 to 5,
/// else `d.ddddde±XX`, trailing zeros dropped (what the starter's inference.py writes; the
/// exponent is the one after rounding, as C's `%g` decides).
pub fn fmt_g(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{x:.5e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if (-4..6).contains(&exp) {
        trim(&format!("{:.*}", (5 - exp) as usize, x))
    } else {
        format!(
            "{}e{}{:02}",
            trim(mantissa),
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    }
}
