//! Thread budget: libtorch's OpenMP pool gets the cores this process may run on, never more
//! (oversubscribed OpenMP was measured 40x slower here).

use std::sync::OnceLock;

pub use yt8m_data::available_cores;

/// Sets libtorch's intra-op threads once per process: `YT8M_THREADS` if set, else the cores
/// we own. Inter-op parallelism stays at 1 (our own reader threads do the overlap).
pub fn configure_torch_threads() -> usize {
    configure_torch_threads_or(available_cores())
}

/// As [`configure_torch_threads`], with `default` threads when YT8M_THREADS is unset (a server
/// leaves a core to its network threads). Any count is capped at the cores this process may
/// run on (OpenMP beyond them only oversubscribes: measured 6–40x slower here; 100,000 asked
/// threads kept a server from ever becoming ready).
pub fn configure_torch_threads_or(default: usize) -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        // main() refuses a malformed YT8M_THREADS before any work; a library caller's falls
        // back to the default, with a warning.
        let asked = match threads_from_env() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("{e}; using the default");
                None
            }
        };
        let n = bound_threads(asked.unwrap_or(default.max(1)), "libtorch threads");
        tch::set_num_threads(n as i32);
        // Fails if libtorch already ran parallel work; the intra-op setting is what matters.
        let _ = std::panic::catch_unwind(|| tch::set_num_interop_threads(1));
        n
    })
}

/// `YT8M_THREADS` checked: `Ok(None)` when unset or empty, `Ok(Some(n))` for a positive integer,
/// an error naming the value otherwise (it used to be ignored silently).
pub fn threads_from_env() -> Result<Option<usize>, String> {
    match std::env::var("YT8M_THREADS") {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(format!(
            "YT8M_THREADS={v:?} is not a number of threads"
        )),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!(
                "YT8M_THREADS={v:?} is not a positive whole number of threads (e.g. YT8M_THREADS=1; unset it for every core this process owns)"
            )),
        },
    }
}

/// `n` capped at the cores this process may run on, with a warning when it was more.
pub fn bound_threads(n: usize, what: &str) -> usize {
    let cores = available_cores().max(1);
    if n > cores {
        tracing::warn!(
            "{n} {what} asked for, but this process may run on {cores} core(s): using {cores} (more threads than cores only oversubscribe them)"
        );
        return cores;
    }
    n.max(1)
}

/// Keeps freed tensor memory in the process instead of returning it to the kernel.
///
/// glibc serves allocations above 32 MB (a 1152×11586 MoE gradient is 53 MB) with a fresh
/// `mmap` each time and unmaps them on free, so every training step page-faults its
/// gradients in again: measured here, MoE training spent more time in the kernel than in
/// compute (sys 5.5 min of 6.5 min); with this, 1.9x faster. Set `YT8M_MALLOC=default` to
/// keep glibc's behaviour.
pub fn tune_allocator() {
    if std::env::var("YT8M_MALLOC").as_deref() == Ok("default") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        // SAFETY: mallopt only adjusts allocator parameters; called before other threads start.
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// oneDNN primitives kept by a server (oneDNN's default: 1024).
pub const SERVER_ONEDNN_CACHE: usize = 256;

/// Bounds oneDNN's primitive cache for a long-running server, unless the user chose a capacity
/// (`ONEDNN_PRIMITIVE_CACHE_CAPACITY`, or its old name `DNNL_...`).
///
/// libtorch runs CPU LSTMs as oneDNN RNN primitives, one per (frames, batch, threads) shape,
/// and keeps up to 1024 of them (about 0.5 MB each); a server's merged batches have ever-new
/// shapes, so its memory kept growing — measured with the demo bundle at 64 clients: 427 →
/// 683 → 748 MB over 90 k requests and still rising. Measured, same bundle (docs/benchmarks.md
/// #serving has the tables): 32 entries kept memory flat (391 → 519 → 521 MB) at the same
/// 64-client throughput, but cost lone requests (1 client) about a third of their rate, every
/// one of them rebuilding its primitive; no cache at all, 30 % at 64 clients too. The server
/// therefore pads its calls to a multiple of 8 frames (38 frame counts up to 300, so lone
/// requests find theirs) and keeps 256 — a bound of about 128 MB where the default's is half
/// a gigabyte.
///
/// Call it before libtorch creates its first primitive and before other threads start (it
/// sets an environment variable, which oneDNN reads when its cache is first used).
pub fn bound_onednn_cache() {
    let chosen = [
        "ONEDNN_PRIMITIVE_CACHE_CAPACITY",
        "DNNL_PRIMITIVE_CACHE_CAPACITY",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some());
    if !chosen {
        // SAFETY: called at the start of `yt8m serve`, while the process has one thread.
        unsafe {
            std::env::set_var(
                "ONEDNN_PRIMITIVE_CACHE_CAPACITY",
                SERVER_ONEDNN_CACHE.to_string(),
            )
        };
    }
}

/// For long-running servers, on top of [`tune_allocator`]: request buffers come and go at every
/// call from several threads, and keeping every freed page in per-thread arenas makes the
/// resident size grow instead of staying flat.
pub fn default_allocator() {
    if std::env::var("YT8M_MALLOC").as_deref() == Ok("keep") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        // SAFETY: mallopt only adjusts allocator parameters.
        // Large request buffers stay on the heap (mmap per buffer page-faults every request:
        // measured 2.2x slower serving), but few arenas and a trim threshold bound what
        // freed memory is kept.
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}
