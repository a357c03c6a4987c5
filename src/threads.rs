//! Thread budget: libtorch's OpenMP pool gets the cores this process may run on, never more
//! (oversubscribed OpenMP was measured 40x slower here).

/// Cores in this process's affinity mask (falls back to the machine's count).
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Sets libtorch's intra-op threads: `YT8M_THREADS` if set, else the cores we own.
pub fn configure_torch_threads() -> usize {
    let n = std::env::var("YT8M_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(available_cores);
    tch::set_num_threads(n as i32);
    tch::set_num_interop_threads(1);
    n
}
