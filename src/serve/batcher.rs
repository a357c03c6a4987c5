//! One inference thread per model: takes queued jobs, merges them into model calls (at most
//! `--max-batch` videos, waiting at most `--max-delay-ms` for requests already on their way),
//! cuts them into length-sorted calls, chooses each call's libtorch threads (the shared
//! [`CoreBudget`], the model's measured [`FrameCost`], the cores other processes leave free)
//! and answers each job on its own channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::bundle::Bundle;
use crate::data::Video;

use super::Model;

/// A unit of work: one request's videos and where to send their probabilities.
pub(super) struct Job {
    pub(super) videos: Vec<Video>,
    pub(super) reply: tokio::sync::oneshot::Sender<std::result::Result<Vec<Vec<f32>>, String>>,
}

/// A model call's fixed cost in padded frame slots, for cutting merged requests by length
/// ([`call_size`]).
const CALL_OVERHEAD_FRAMES: usize = 256;

/// Model calls are padded to a multiple of this many frames, so that their shapes come from
/// a small set and libtorch's oneDNN primitives (one per LSTM shape, see
/// [`crate::threads::SERVER_ONEDNN_CACHE`]) are found in its cache instead of rebuilt.
const FRAME_MULTIPLE: usize = 8;

/// Model work per frame (core-seconds, a call's frames plus 256 frame slots of fixed cost for
/// each of its calls) from which every call of the model takes all cores. The network side costs in
/// the order of a microsecond per frame (a frame is 1152 request bytes to receive, parse and
/// copy); at 100 µs per frame it needs about 1 % of a core beside a busy model, so keeping a
/// whole core for it only idles that core. Measured side by side on 2 cores, 64 clients: the
/// full-size AttentionLSTM (about 1.1 ms per frame on one thread) went from 6.5 to 9.3 videos/s
/// (0.63 → 0.96 of offline batch 64) with every call on both cores, while the demo bundle
/// (about 7 µs per frame) fell from 934 to 733: its calls are thousands of microsecond-sized
/// ops, each stalled when a network thread takes a core from an OpenMP worker. The two sit
/// a hundred times apart, this threshold in between.
pub const HEAVY_SECONDS_PER_FRAME: f64 = 100e-6;

/// Running estimate of a model's cost per frame, from its own calls.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FrameCost {
    /// Core-seconds per frame (exponential average over calls); None before the first call.
    per_frame: Option<f64>,
}

impl FrameCost {
    /// Records a call of `seconds` on `threads` libtorch threads over `frames` frames in
    /// `calls` model calls.
    fn observe(&mut self, seconds: f64, threads: usize, frames: usize, calls: usize) {
        let slots = (frames + calls * CALL_OVERHEAD_FRAMES).max(1) as f64;
        let x = seconds * threads.max(1) as f64 / slots;
        self.per_frame = Some(match self.per_frame {
            None => x,
            Some(m) => 0.8 * m + 0.2 * x,
        });
    }

    /// Whether every call should take all cores.
    fn heavy(&self) -> bool {
        self.per_frame.is_some_and(|c| c >= HEAVY_SECONDS_PER_FRAME)
    }
}

/// libtorch threads shared by the models of one server. Each model call claims its threads
/// and gives them back after, so models computing at once never run more OpenMP threads
/// together than the budget (oversubscribed OpenMP was measured 40x slower here): with two
/// heavy models, each taking every core when alone, the second gets what the first leaves.
/// Measured with two full-size AttentionLSTMs at 8 clients each on 2 cores, three alternating
/// runs: 9.5 / 8.8 / 9.7 videos/s in all with both on 2 threads, 7.9 / 9.9 / 9.2 with the
/// budget — no difference for their large GEMMs; the budget keeps the rule the project was
/// measured by (never more OpenMP threads than cores) for models of small ops.
#[derive(Debug)]
pub(super) struct CoreBudget {
    total: usize,
    claimed: AtomicUsize,
}

impl CoreBudget {
    pub(super) fn new(total: usize) -> Self {
        CoreBudget {
            total: total.max(1),
            claimed: AtomicUsize::new(0),
        }
    }

    /// Claims up to `want` threads, at least one, from what other calls leave.
    fn claim(&self, want: usize) -> Claim<'_> {
        let mut cur = self.claimed.load(Ordering::SeqCst);
        loop {
            let n = want.min(self.total.saturating_sub(cur)).max(1);
            match self
                .claimed
                .compare_exchange(cur, cur + n, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Claim { budget: self, n },
                Err(now) => cur = now,
            }
        }
    }
}

/// Threads claimed from a [`CoreBudget`], given back on drop.
struct Claim<'a> {
    budget: &'a CoreBudget,
    n: usize,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.budget.claimed.fetch_sub(self.n, Ordering::SeqCst);
    }
}

/// How a model thread batches and how many threads its calls may take.
pub(super) struct Batching {
    pub(super) max_batch: usize,
    pub(super) max_delay: Duration,
    /// See [`ServeOptions::all_threads`].
    pub(super) all_threads: Option<usize>,
    /// Shared by every model of the server.
    pub(super) cores: Arc<CoreBudget>,
    /// The cores other processes leave free, when the thread count is ours to choose
    /// (`all_threads` is Some): no call takes more threads than that.
    pub(super) free: Option<Arc<crate::threads::FreeCores>>,
}

/// The inference thread of one model.
pub(super) fn model_thread(b: Bundle, rx: Receiver<Job>, model: Arc<Model>, opts: Batching) {
    let Batching {
        max_batch,
        max_delay,
        all_threads,
        cores,
        free,
    } = opts;
    // OpenMP's thread count is per thread: a new thread starts from the default (all cores),
    // not from what the main thread set, and the GEMMs would then spin a second core that the
    // network threads need (measured: 6-video model calls at 64 clients, the requests not
    // even admitted). Apply the configured count here.
    let by_frames = b.model.arch.cost_follows_frames();
    // The server's own budget (main set it), not the adaptive default of batch commands.
    let usual = crate::threads::configure_torch_threads_or(crate::threads::available_cores());
    tch::set_num_threads(usual as i32);
    let mut current = usual;
    let mut cost = FrameCost::default();
    while let Ok(first) = rx.recv() {
        let (jobs, n) = gather(first, &rx, &model, max_batch, max_delay);
        let want = call_threads(all_threads, usual, &cost, free.as_deref());
        let claim = cores.claim(want);
        let want = claim.n;
        if want != current {
            tch::set_num_threads(want as i32);
            current = want;
        }
        model.stats.call_threads.store(current, Ordering::Relaxed);
        let counts: Vec<usize> = jobs.iter().map(|j| j.videos.len()).collect();
        let mut videos = Vec::with_capacity(n);
        let mut replies = Vec::with_capacity(jobs.len());
        for j in jobs {
            videos.extend(j.videos);
            replies.push(j.reply);
        }
        model.stats.batch.observe(n as f64);
        // Merged requests of very different lengths run as a few length-sorted calls when
        // that pads less than it costs in calls (a call's fixed cost taken as 256 frame slots).
        let call = if by_frames {
            let lengths: Vec<usize> = videos.iter().map(|v| v.num_frames).collect();
            call_size(&lengths, CALL_OVERHEAD_FRAMES)
        } else {
            max_batch
        };
        let call = call.clamp(1, max_batch);
        let started = Instant::now();
        // A panic in libtorch must not take the model down: the batch fails, the thread goes on.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::predict::probabilities_padded(&b, &videos, call, FRAME_MULTIPLE)
        }));
        if matches!(r, Ok(Ok(_))) {
            let frames = videos.iter().map(|v| v.num_frames.max(1)).sum();
            cost.observe(
                started.elapsed().as_secs_f64(),
                current,
                frames,
                n.div_ceil(call),
            );
            let bits = cost.per_frame.unwrap_or(0.0).to_bits();
            model.stats.frame_cost_bits.store(bits, Ordering::Relaxed);
        }
        drop(claim);
        model.waiting.fetch_sub(n, Ordering::SeqCst);
        send_replies(&model, replies, &counts, r);
    }
}

/// The first job and whatever joins it: what is queued, and (up to `max_delay`) what arrives
/// while other requests are on their way (more videos admitted than this batch holds, or
/// requests whose bodies are still arriving). A lone request runs at once, so batching costs
/// no latency at low load; under load, the requests that arrive within the delay join.
/// Returns the jobs and their videos.
fn gather(
    first: Job,
    rx: &Receiver<Job>,
    model: &Model,
    max_batch: usize,
    max_delay: std::time::Duration,
) -> (Vec<Job>, usize) {
    let mut jobs = vec![first];
    let mut n = jobs[0].videos.len();
    let deadline = Instant::now() + max_delay;
    while n < max_batch {
        match rx.try_recv() {
            Ok(j) => {
                n += j.videos.len();
                jobs.push(j);
                continue;
            }
            Err(_)
                if model.waiting.load(Ordering::SeqCst) <= n
                    && model.arriving.load(Ordering::SeqCst) == 0 =>
            {
                break;
            }
            Err(_) => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(j) => {
                n += j.videos.len();
                jobs.push(j);
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    (jobs, n)
}

/// libtorch threads for the next call: the usual count, all of `all_threads` for a heavy
/// model, never more than other processes leave cores for.
fn call_threads(
    all_threads: Option<usize>,
    usual: usize,
    cost: &FrameCost,
    free: Option<&crate::threads::FreeCores>,
) -> usize {
    // A heavy model takes every core for every call (HEAVY_SECONDS_PER_FRAME: the network
    // threads' share is negligible beside its calls). A light one keeps the usual count even
    // for a lone request: its calls are many tiny ops, each stalled whenever a network thread
    // takes a core from an OpenMP worker (docs/benchmarks.md, "Serving", sessions 6-7).
    let want = match all_threads {
        Some(all) if cost.heavy() && all > usual => all,
        _ => usual,
    };
    // Never more threads than other processes leave cores for: OpenMP threads sharing a
    // core with a busy neighbour arrive late at every barrier and the whole call waits
    // (issue #27: 2 threads beside one busy process ran 0.43x of one thread).
    match free {
        Some(f) => want.min(f.now()).max(1),
        None => want,
    }
}

/// A model call's probabilities, its error, or the panic libtorch raised.
type CallResult = std::thread::Result<crate::error::Result<Vec<Vec<f32>>>>;

/// Each request's rows of the call's probabilities, or the call's error (a libtorch panic is
/// logged and answered as a failed inference; the model thread goes on).
fn send_replies(
    model: &Model,
    replies: Vec<tokio::sync::oneshot::Sender<std::result::Result<Vec<Vec<f32>>, String>>>,
    counts: &[usize],
    r: CallResult,
) {
    match r {
        Ok(Ok(mut probs)) => {
            for (reply, k) in replies.into_iter().zip(counts.iter().copied()) {
                let rest = probs.split_off(k);
                let _ = reply.send(Ok(std::mem::replace(&mut probs, rest)));
            }
        }
        Ok(Err(e)) => {
            for reply in replies {
                let _ = reply.send(Err(e.to_string()));
            }
        }
        Err(p) => {
            let what = crate::error::panic_text(p.as_ref());
            tracing::error!("model '{}': inference failed: {what}", model.name);
            for reply in replies {
                let _ = reply.send(Err(format!("inference failed: {what}")));
            }
        }
    }
}

/// Videos per model call for videos of `lengths` served together (`yt8m serve`'s merged
/// requests): the length-sorted videos cut into g equal runs, g = 1..=8 chosen to minimise the
/// padded frame slots plus `overhead` slots per call (a call's fixed cost). One call over
/// random lengths pads every video to the longest, about half of its slots wasted; four
/// calls of sorted videos waste a fifth.
pub(super) fn call_size(lengths: &[usize], overhead: usize) -> usize {
    let n = lengths.len();
    if n <= 1 {
        return n.max(1);
    }
    let mut sorted = lengths.to_vec();
    sorted.sort_unstable();
    let cost = |chunk: usize| -> usize {
        sorted
            .chunks(chunk)
            .map(|c| c.len() * c[c.len() - 1] + overhead)
            .sum()
    };
    (1..=8.min(n))
        .map(|g| n.div_ceil(g))
        .min_by_key(|&chunk| (cost(chunk), std::cmp::Reverse(chunk)))
        .unwrap_or(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_calls_share_the_core_budget() {
        let b = CoreBudget::new(4);
        let first = b.claim(4);
        assert_eq!(first.n, 4);
        // A second model computing meanwhile gets one thread, not four more.
        let second = b.claim(3);
        assert_eq!(second.n, 1);
        drop(first);
        let third = b.claim(4);
        assert_eq!(third.n, 3, "what the second leaves");
        drop(second);
        drop(third);
        assert_eq!(
            b.claimed.load(Ordering::SeqCst),
            0,
            "every claim given back"
        );
        assert_eq!(b.claim(2).n, 2);
    }

    #[test]
    fn frame_cost_tells_heavy_models_from_light_ones() {
        let mut c = FrameCost::default();
        assert!(!c.heavy(), "no call yet: keep the network's core");
        // Demo bundle, batch 64 on one thread: ~60 ms for 64 videos of 150 frames.
        c.observe(0.060, 1, 64 * 150, 1);
        assert!(!c.heavy(), "{:?}", c.per_frame);
        // A lone 10-frame video on two threads: its call overhead is not per-frame work.
        c.observe(0.001, 2, 10, 1);
        assert!(!c.heavy(), "{:?}", c.per_frame);
        // Full-size AttentionLSTM, batch 64 on one thread: ~11 s.
        let mut f = FrameCost::default();
        f.observe(11.0, 1, 64 * 150, 1);
        assert!(f.heavy(), "{:?}", f.per_frame);
        // One fast call does not flip the average at once.
        f.observe(0.001, 1, 150, 1);
        assert!(f.heavy(), "{:?}", f.per_frame);
    }
}

#[cfg(test)]
mod call_size_tests {
    use super::call_size;

    #[test]
    fn merged_requests_are_cut_where_padding_costs_more_than_a_call() {
        // Equal lengths: nothing to gain, one call.
        assert_eq!(call_size(&[100; 32], 256), 32);
        // One video: one call.
        assert_eq!(call_size(&[7], 256), 1);
        // Half short, half long: two calls of 16 (16·10 + 16·300 + 2·256 < 32·300 + 256).
        let mut l = vec![10; 16];
        l.extend([300; 16]);
        assert_eq!(call_size(&l, 256), 16);
        // A huge per-call cost keeps one call.
        assert_eq!(call_size(&l, 1_000_000), 32);
        // Uniform 1..=300 over 64 videos: several calls, never more than 8.
        let u: Vec<usize> = (0..64).map(|i| 1 + i * 299 / 63).collect();
        let c = call_size(&u, 256);
        assert!((8..64).contains(&c), "{c}");
    }
}
