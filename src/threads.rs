//! Thread budget: libtorch's OpenMP pool gets the cores this process may run on, never more
//! (oversubscribed OpenMP was measured 40x slower here), and by default only those that other
//! processes leave free, re-measured as the work goes on ([`adapt_torch_threads`]).

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use yt8m_data::available_cores;

/// Sets libtorch's intra-op threads once per process: `YT8M_THREADS` if set, else the cores we
/// own — after [`enable_adaptive_threads`] (the CLI), only those that other processes leave
/// free (measured over 40 ms here, then again by [`adapt_torch_threads`] at most once a second
/// when following). Inter-op parallelism stays at 1 (our own reader threads do the overlap).
///
/// Why free cores, not all of them: libtorch's OpenMP threads meet at a barrier after every
/// parallel op, and a thread that shares its core with another process arrives late at each
/// one while the others wait. Measured (demo model, `bench predict` batch 64, 2 cores, one
/// busy-looping process beside it): 2 threads 550–790 videos/s, 1 thread 1377–1425 (alone:
/// 2118–2137 and 1425–1453). `OMP_WAIT_POLICY=passive` avoids the collapse too but cost 2.7x
/// on an idle machine (795 vs 2172), and libgomp reads it only at start-up.
pub fn configure_torch_threads() -> usize {
    let n = configure_torch_threads_or(available_cores());
    let Some(follow) = *ADAPTIVE.lock().unwrap_or_else(|e| e.into_inner()) else {
        return n;
    };
    if threads_from_env().ok().flatten().is_some() {
        return n;
    }
    ADAPT
        .lock()
        .map(|mut a| {
            if a.is_none() {
                *a = Adaptive::start(n, follow);
            }
            a.as_ref().map_or(n, |s| s.threads)
        })
        .unwrap_or(n)
}

/// Re-measures how many of our cores other processes keep busy and sets libtorch's thread
/// count to the rest (at least one), at most once a second; a no-op unless
/// [`enable_adaptive_threads`]`(true)` let [`configure_torch_threads`] choose the count (not
/// `YT8M_THREADS`, not a server's budget).
/// Call it between batches from the thread that runs the model: OpenMP's thread count is a
/// per-thread setting. Returns the count in force.
pub fn adapt_torch_threads() -> Option<usize> {
    let mut guard = ADAPT.lock().ok()?;
    let a = guard.as_mut()?;
    if !a.follow {
        return Some(a.threads);
    }
    let n = a.free.now();
    if n != a.threads {
        tch::set_num_threads(n as i32);
        a.threads = n;
    }
    Some(n)
}

const ADAPT_EVERY: Duration = Duration::from_secs(1);

static ADAPT: Mutex<Option<Adaptive>> = Mutex::new(None);

/// None: the count is fixed (library use: tests, the Python module, servers). Some(follow):
/// the count starts from the free cores, and with `follow` keeps following them.
static ADAPTIVE: Mutex<Option<bool>> = Mutex::new(None);

/// Lets [`configure_torch_threads`] choose the count from the cores other processes leave free
/// (the CLI's default). `follow`: re-measure during the work (inference); without it the count
/// chosen at the start holds for the whole run (training: libtorch's reductions split by
/// thread, so a count that changed mid-run would change the weights' last bits, and a run and
/// its resumed twin under the same load must stay bit-identical).
pub fn enable_adaptive_threads(follow: bool) {
    *ADAPTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(follow);
}

/// What [`adapt_torch_threads`] needs between calls.
struct Adaptive {
    /// Whether [`adapt_torch_threads`] re-measures (else the first count holds).
    follow: bool,
    free: FreeCores,
    threads: usize,
}

impl Adaptive {
    fn start(max: usize, follow: bool) -> Option<Adaptive> {
        let free = FreeCores::with_max(max)?;
        std::thread::sleep(Duration::from_millis(40));
        let threads = free.measure();
        if threads != max {
            tracing::info!(
                "other processes are busy on this machine: libtorch uses {threads} of {max} thread(s){} (YT8M_THREADS fixes the count)",
                if follow {
                    " for now, re-measured every second"
                } else {
                    " for this run"
                }
            );
            tch::set_num_threads(threads as i32);
        }
        Some(Adaptive {
            follow,
            free,
            threads,
        })
    }
}

/// The cores other processes leave free (at most `max`): busy time of the owned CPUs minus
/// this process's own CPU time (a server's network threads are its own work, not a
/// neighbour's), re-measured at most once a second. A server's model threads share one
/// ([`FreeCores::now`] per call); the batch commands' count follows one
/// ([`adapt_torch_threads`]).
pub struct FreeCores {
    cpus: Vec<usize>,
    max: usize,
    state: Mutex<(CpuSample, usize)>,
}

impl FreeCores {
    /// Over every core this process may run on. None where /proc/stat or the affinity mask
    /// cannot be read (the count then stays fixed).
    pub fn new() -> Option<FreeCores> {
        Self::with_max(usize::MAX)
    }

    /// At most `max` (and the owned cores); until measured, all of them.
    fn with_max(max: usize) -> Option<FreeCores> {
        let cpus = owned_cpus()?;
        let max = max.min(cpus.len()).max(1);
        let first = CpuSample::take(&cpus)?;
        Some(FreeCores {
            cpus,
            max,
            state: Mutex::new((first, max)),
        })
    }

    /// Free cores (at least one) as of the last measurement, re-measured when that is over a
    /// second old.
    pub fn now(&self) -> usize {
        let Ok(mut st) = self.state.lock() else {
            return self.max;
        };
        if st.0.at.elapsed() >= ADAPT_EVERY {
            self.remeasure(&mut st);
        }
        st.1
    }

    /// Free cores over the time since the last measurement, measured now.
    fn measure(&self) -> usize {
        let Ok(mut st) = self.state.lock() else {
            return self.max;
        };
        self.remeasure(&mut st);
        st.1
    }

    fn remeasure(&self, st: &mut (CpuSample, usize)) {
        let Some(now) = CpuSample::take(&self.cpus) else {
            return;
        };
        let busy = others_busy(&st.0, &now);
        let n = threads_for(self.max, busy);
        if n != st.1 {
            tracing::debug!(
                "other processes keep {busy:.2} of our {} core(s) busy: libtorch threads {} → {n}",
                self.max,
                st.1
            );
        }
        *st = (now, n);
    }
}

/// Threads for `max` owned cores of which other processes keep `busy` busy: the rest, rounded,
/// at least one. A process sharing our cores shows less than a whole core while our threads
/// compete with it (3 runnable threads on 2 cores: ~0.67 each), so ½ a core counts as one.
fn threads_for(max: usize, busy: f64) -> usize {
    let taken = busy.max(0.0).round() as usize;
    max.saturating_sub(taken).clamp(1, max.max(1))
}

/// Busy time of our CPUs (all processes) and CPU time of this process, at one instant.
struct CpuSample {
    at: Instant,
    /// Seconds the owned CPUs spent outside idle/iowait since boot.
    busy: f64,
    /// Seconds of CPU this process used (all its threads).
    own: f64,
}

impl CpuSample {
    fn take(cpus: &[usize]) -> Option<CpuSample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let mut busy = 0u64;
        for line in stat.lines() {
            let Some(rest) = line.strip_prefix("cpu") else {
                break; // the cpu lines come first
            };
            let mut f = rest.split_whitespace();
            let Some(Ok(id)) = f.next().map(str::parse::<usize>) else {
                continue; // the "cpu" total line
            };
            if !cpus.contains(&id) {
                continue;
            }
            // user nice system idle iowait irq softirq steal (guest is inside user)
            let v: Vec<u64> = f.take(8).filter_map(|x| x.parse().ok()).collect();
            if v.len() == 8 {
                busy += v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
            }
        }
        // SAFETY: a zeroed rusage is a valid out-parameter for getrusage.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_SELF and a valid pointer.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
            return None;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        Some(CpuSample {
            at: Instant::now(),
            busy: busy as f64 / hz,
            own: tv(ru.ru_utime) + tv(ru.ru_stime),
        })
    }
}

/// Cores' worth of our CPUs that other processes used between two samples.
fn others_busy(a: &CpuSample, b: &CpuSample) -> f64 {
    let dt = b.at.duration_since(a.at).as_secs_f64();
    if dt <= 0.0 {
        return 0.0;
    }
    ((b.busy - a.busy) - (b.own - a.own)).max(0.0) / dt
}

/// The CPUs this process may run on (its affinity mask).
fn owned_cpus() -> Option<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is empty; sched_getaffinity fills it for this process.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 = this thread's process; the size is the set's.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return None;
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: i < CPU_SETSIZE.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect();
    (!cpus.is_empty()).then_some(cpus)
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
        Err(std::env::VarError::NotUnicode(v)) => {
            Err(format!("YT8M_THREADS={v:?} is not a number of threads"))
        }
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

#[cfg(test)]
mod adapt_tests {
    use super::*;

    #[test]
    fn threads_follow_the_cores_others_leave_free() {
        assert_eq!(threads_for(2, 0.05), 2);
        assert_eq!(
            threads_for(2, 0.6),
            1,
            "a hog sharing our cores shows ~2/3 of a core"
        );
        assert_eq!(threads_for(2, 1.0), 1);
        assert_eq!(threads_for(2, 2.0), 1, "at least one");
        assert_eq!(threads_for(16, 3.4), 13);
        assert_eq!(threads_for(1, 0.9), 1);
    }

    #[test]
    fn a_busy_loop_beside_us_is_measured() {
        let cpus = owned_cpus().expect("affinity");
        let a = CpuSample::take(&cpus).expect("/proc/stat");
        // Our own work counts as ours, not as another process's.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let b = CpuSample::take(&cpus).unwrap();
        let ours = others_busy(&a, &b);
        // Another process busy-looping for the same time.
        let mut hog = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let c = CpuSample::take(&cpus).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let d = CpuSample::take(&cpus).unwrap();
        let _ = hog.kill();
        let _ = hog.wait();
        let theirs = others_busy(&c, &d);
        println!("others busy while we spun: {ours:.2} cores; beside a busy loop: {theirs:.2}");
        // Machines are shared: only the difference is asserted, with a wide margin.
        assert!(theirs > ours + 0.4, "{ours} vs {theirs}");
    }

    #[test]
    fn a_server_sees_one_free_core_beside_a_busy_loop_on_each() {
        let f = FreeCores::new().expect("/proc/stat");
        let hogs: Vec<_> = (0..f.max)
            .map(|_| {
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .unwrap()
            })
            .collect();
        // The first measurement window opens now; the next call after a second closes it.
        std::thread::sleep(Duration::from_millis(100));
        f.state.lock().unwrap().0 = CpuSample::take(&f.cpus).unwrap();
        std::thread::sleep(ADAPT_EVERY + Duration::from_millis(200));
        let n = f.now();
        for mut h in hogs {
            let _ = h.kill();
            let _ = h.wait();
        }
        // Cached within the second: no re-measurement on every call.
        assert_eq!(f.now(), n);
        assert_eq!(
            n, 1,
            "{} busy loops on {} cores left {n} free",
            f.max, f.max
        );
    }
}
