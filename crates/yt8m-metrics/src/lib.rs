//! YouTube-8M metrics, identical to the official evaluator (google/youtube-8m `eval_util.py`,
//! `average_precision_calculator.py`): Hit@1, PERR, global GAP@k and per-class mAP, streamed
//! batch by batch with O(N·k) memory. Definitions and quirks:
//! `shared/docs/yt8m_data_and_metrics.md` §5.
//!
//! **Tie order.** With equal scores the official AP depends on the order of the pooled pairs:
//! every `(score, label)` pair is `heapq.heappush`ed, the heap's list is permuted with
//! `random.seed(0); random.sample(range(m), m)`, then stable-sorted by score, descending.
//! [`TieOrder::Official`] replays exactly that (binary-heap sift, CPython's MT19937 and
//! `_randbelow`), so numbers match the official code bit for bit whenever the top-k sets match.
//! [`TieOrder::Deterministic`] orders ties by video index, then class.
//!
//! **Unsubmitted classes.** A score of −∞ means "not predicted": it never enters the GAP
//! pool, as in Kaggle's GAP over the submitted (label, confidence) pairs.
//!
//! **Top-k boundary.** Which of several equal scores at the k-th place the official code keeps
//! comes from `numpy.argpartition`, whose choice depends on the numpy build and CPU. With
//! [`TieOrder::Official`], rows whose k-th score is tied with the next one are re-selected
//! with an emulation of numpy 2.x on AVX-512 machines ([`numpy_select`]), which reproduces the
//! golden values of the official evaluator; rows without such a tie (almost all) take the fast
//! path, whose set is then unambiguous. [`TieOrder::Deterministic`] keeps the lowest class
//! index among boundary ties.

mod ap;
pub mod mt;
pub mod numpy_select;

use ap::{Pair, PyHeap, ap_official_from_heap, average_precision};

use serde::Serialize;

/// How equal scores are ordered in AP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum TieOrder {
    /// The official evaluator's heap + `random.seed(0)` shuffle + stable sort.
    #[default]
    Official,
    /// Score descending, then video index, then class index.
    Deterministic,
}

/// Which aggregation to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum MetricMode {
    /// Official `EvaluationMetrics`: sample-weighted Hit@1/PERR, GAP pooled over all videos.
    #[default]
    Official,
    /// PaddleVideo's `HitOneMetric`: unweighted mean of per-batch Hit@1/PERR/GAP
    /// (test batch 8 by default).
    Paddlevideo,
}

/// A score type the evaluator accepts (the official evaluator sees float32 probabilities;
/// keeping them as f32 halves the memory traffic of the per-row scans).
pub trait Score: Copy + PartialOrd + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn is_finite(self) -> bool;
}

impl Score for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
}

impl Score for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
}

/// A score that is NaN or infinite, refused by [`Evaluator::accumulate_finite`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFinite {
    /// Row within the batch given to `accumulate_finite`.
    pub row: usize,
    pub class: usize,
    pub value: f64,
}

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "predictions row {} class {} is {}: scores must be finite",
            self.row, self.class, self.value
        )
    }
}

impl std::error::Error for NonFinite {}

/// The first non-finite score of a row. The common all-finite case is one branch-free pass
/// (it vectorizes), done while the row is in cache for the top-k scans anyway.
fn first_non_finite<T: Score>(row: &[T]) -> Option<usize> {
    let ok = row
        .chunks(64)
        .all(|c| c.iter().fold(true, |a, &x| a & x.is_finite()));
    if ok {
        None
    } else {
        row.iter().position(|&x| !x.is_finite())
    }
}

/// Indices of the `k` largest scores, ordered by score descending then index ascending (so
/// ties at the boundary keep the lowest index).
///
/// Two cheap passes instead of a running top-k (whose ~k·ln(n/k) insertions dominated): a
/// vectorized lower bound of the k-th largest score, then only the few scores at or above it
/// are ordered.
pub fn top_k_indices<T: Score>(row: &[T], k: usize) -> Vec<usize> {
    let n = row.len();
    let k = k.min(n);
    if k == 0 {
        return vec![];
    }
    let by_rank =
        |a: &(T, usize), b: &(T, usize)| b.0.to_f64().total_cmp(&a.0.to_f64()).then(a.1.cmp(&b.1));
    const G: usize = 64;
    let bound = if k <= G && n >= 2 * G {
        // 64 running maxima over interleaved groups (independent lanes, so this vectorizes);
        // they are 64 distinct scores, so their k-th largest bounds the row's from below.
        let mut m: [T; G] = row[..G].try_into().expect("64 scores");
        for chunk in row[G..].chunks_exact(G) {
            for l in 0..G {
                m[l] = if chunk[l] > m[l] { chunk[l] } else { m[l] };
            }
        }
        let (_, kth, _) = m.select_nth_unstable_by(k - 1, |a, b| b.to_f64().total_cmp(&a.to_f64()));
        Some(*kth)
    } else {
        None
    };
    let mut cand: Vec<(T, usize)> = match bound {
        Some(t) => {
            // Few scores reach the bound: test 16 at a time with a branch-free compare (it
            // vectorizes) and look inside only the blocks that hold one (~1 in 8).
            const B: usize = 16;
            let mut cand = Vec::with_capacity(2 * G);
            for (bi, block) in row.chunks(B).enumerate() {
                if block.iter().fold(false, |a, &s| a | (s >= t)) {
                    cand.extend(
                        block
                            .iter()
                            .enumerate()
                            .filter(|&(_, &s)| s >= t)
                            .map(|(o, &s)| (s, bi * B + o)),
                    );
                }
            }
            cand
        }
        None => row.iter().enumerate().map(|(j, &s)| (s, j)).collect(),
    };
    if cand.len() > k {
        cand.select_nth_unstable_by(k - 1, by_rank);
        cand.truncate(k);
    }
    cand.sort_by(by_rank);
    cand.into_iter().map(|(_, j)| j).collect()
}

/// Per-row results: Hit@1, PERR, the GAP top-k and the positive classes.
struct RowOut {
    hit: f64,
    perr: f64,
    /// The row's top-k as (class, score, label), read while the row is in cache (reading
    /// them later from a 1.5 GB array cost a cache miss each: a fifth of `evaluate`).
    top: Vec<(u32, f64, u8)>,
    positives: Vec<u32>,
}

/// Hit@1 (label at the first index of the maximum), PERR (a row without positives scores 0:
/// the official `[-0:]` keeps every class; only scores > 0 count) and the top-k classes.
fn row_metrics<T: Score>(row: &[T], labels: &[u8], top_k: usize, numpy_ties: bool) -> RowOut {
    // Labels are sparse: test 16 bytes at a time.
    let mut positives: Vec<u32> = Vec::new();
    for (bi, block) in labels.chunks(16).enumerate() {
        if block.iter().fold(0u8, |a, &l| a | l) != 0 {
            positives.extend(
                block
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| **l > 0)
                    .map(|(o, _)| (bi * 16 + o) as u32),
            );
        }
    }
    let npos = positives.len();
    // One extra place shows whether the k-th score is tied with the next one.
    let top = top_k_indices(row, top_k.max(npos).max(1) + 1);
    // A row with no score at all (every class −∞, "not predicted") hits nothing.
    let hit = if row[top[0]].to_f64() == f64::NEG_INFINITY {
        0.0
    } else {
        labels[top[0]] as f64
    };
    let select = |k: usize| -> Vec<usize> {
        let boundary_tie = k < top.len() && row[top[k - 1]] == row[top[k]];
        if boundary_tie && numpy_ties {
            let r: Vec<f64> = row.iter().map(|x| x.to_f64()).collect();
            numpy_select::top_k(&r, k)
        } else {
            top[..k.min(top.len())].to_vec()
        }
    };
    let perr = if npos == 0 {
        0.0
    } else {
        let mut hits = 0.0;
        for j in select(npos) {
            if row[j].to_f64() > 0.0 {
                hits += labels[j] as f64;
            }
        }
        hits / npos as f64
    };
    let top = select(top_k)
        .into_iter()
        .map(|j| (j as u32, row[j].to_f64(), labels[j]))
        .collect();
    RowOut {
        hit,
        perr,
        top,
        positives,
    }
}

/// Final numbers.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Metrics {
    pub mode: MetricMode,
    pub tie_order: TieOrder,
    pub top_k: usize,
    pub num_videos: usize,
    pub hit_at_one: f64,
    pub perr: f64,
    pub gap: f64,
    /// Mean per-class AP over classes with positives (official mode only).
    pub map: Option<f64>,
    pub num_classes_in_map: Option<usize>,
    /// PaddleVideo mode: batch size used.
    pub batch_size: Option<usize>,
}

/// Streaming evaluator: `accumulate` per batch, `finish` once (clone it to read metrics
/// midway, as the Python `Evaluator.get` does).
#[derive(Clone)]
pub struct Evaluator {
    num_classes: usize,
    top_k: usize,
    tie: TieOrder,
    mode: MetricMode,
    n: usize,
    sum_hit: f64,
    sum_perr: f64,
    /// Official: global pool, in official push order (per batch, class-major).
    global: PyHeap,
    global_plain: Vec<Pair>,
    num_pos: f64,
    /// Per-class pools for mAP (same pairs, class by class).
    per_class: Vec<Vec<Pair>>,
    class_pos: Vec<f64>,
    /// PaddleVideo mode: per-batch metrics.
    batch_metrics: Vec<(f64, f64, f64)>,
    batch_size: usize,
    /// PaddleVideo mode: rows waiting to fill a batch.
    pending_scores: Vec<f64>,
    pending_labels: Vec<u8>,
}

impl Evaluator {
    pub fn new(num_classes: usize, top_k: usize, tie: TieOrder) -> Self {
        Evaluator {
            num_classes,
            top_k: top_k.min(num_classes).max(1),
            tie,
            mode: MetricMode::Official,
            n: 0,
            sum_hit: 0.0,
            sum_perr: 0.0,
            global: PyHeap::default(),
            global_plain: Vec::new(),
            num_pos: 0.0,
            per_class: vec![Vec::new(); num_classes],
            class_pos: vec![0.0; num_classes],
            batch_metrics: Vec::new(),
            batch_size: 0,
            pending_scores: Vec::new(),
            pending_labels: Vec::new(),
        }
    }

    /// PaddleVideo's per-batch mean (batches of `batch_size` in arrival order, regardless of
    /// how `accumulate` is called).
    pub fn paddlevideo(num_classes: usize, top_k: usize, batch_size: usize, tie: TieOrder) -> Self {
        let mut e = Self::new(num_classes, top_k, tie);
        e.mode = MetricMode::Paddlevideo;
        e.batch_size = batch_size.max(1);
        e
    }

    pub fn num_videos(&self) -> usize {
        self.n
    }

    /// Adds a batch: `scores` and `labels` are row-major `[B, C]`. A score of −∞ means "not
    /// predicted" (see the module docs); callers refuse NaN themselves or use
    /// [`Self::accumulate_finite`].
    pub fn accumulate<T: Score>(&mut self, scores: &[T], labels: &[u8]) {
        let r = self.accumulate_checked(scores, labels, false);
        debug_assert!(r.is_ok(), "unchecked accumulate cannot fail");
    }

    /// [`Self::accumulate`], refusing the batch (and changing nothing) if any score is NaN or
    /// ±∞. The check rides along the per-row scans, so it costs next to nothing.
    pub fn accumulate_finite<T: Score>(
        &mut self,
        scores: &[T],
        labels: &[u8],
    ) -> Result<(), NonFinite> {
        self.accumulate_checked(scores, labels, true)
    }

    fn accumulate_checked<T: Score>(
        &mut self,
        scores: &[T],
        labels: &[u8],
        check: bool,
    ) -> Result<(), NonFinite> {
        let c = self.num_classes;
        assert_eq!(
            scores.len(),
            labels.len(),
            "scores and labels differ in size"
        );
        if c == 0 {
            return Ok(()); // no classes, nothing to rank (callers refuse this before)
        }
        assert_eq!(scores.len() % c, 0, "scores are not [B, {c}]");
        match self.mode {
            MetricMode::Official => self.accumulate_official(scores, labels, check),
            MetricMode::Paddlevideo => {
                if check && let Some(i) = first_non_finite(scores) {
                    return Err(NonFinite {
                        row: i / c,
                        class: i % c,
                        value: scores[i].to_f64(),
                    });
                }
                self.pending_scores
                    .extend(scores.iter().map(|x| x.to_f64()));
                self.pending_labels.extend_from_slice(labels);
                let per = self.batch_size * c;
                while self.pending_scores.len() >= per {
                    let s: Vec<f64> = self.pending_scores.drain(..per).collect();
                    let l: Vec<u8> = self.pending_labels.drain(..per).collect();
                    self.paddle_batch(&s, &l);
                }
                Ok(())
            }
        }
    }

    fn paddle_batch(&mut self, s: &[f64], l: &[u8]) {
        let mut e = Evaluator::new(self.num_classes, self.top_k, self.tie);
        let r = e.accumulate_official(s, l, false);
        debug_assert!(r.is_ok());
        let m = e.finish_official(false);
        self.n += m.num_videos;
        self.batch_metrics.push((m.hit_at_one, m.perr, m.gap));
    }

    /// Each row's hit, PERR, top-k pairs and positives: rows are independent, so they are split
    /// over the cores and joined in row order (the first error is the first bad row's).
    fn official_rows<T: Score>(
        &self,
        scores: &[T],
        labels: &[u8],
        check: bool,
    ) -> Result<Vec<RowOut>, NonFinite> {
        let c = self.num_classes;
        let b = scores.len() / c;
        let k = self.top_k;
        let numpy_ties = self.tie == TieOrder::Official;
        let threads = available_cores().min(b.div_ceil(256)).max(1);
        let per = b.div_ceil(threads);
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    sc.spawn(move || -> Result<Vec<RowOut>, NonFinite> {
                        let lo = (t * per).min(b);
                        let hi = ((t + 1) * per).min(b);
                        (lo..hi)
                            .map(|i| {
                                let row = &scores[i * c..(i + 1) * c];
                                if check && let Some(j) = first_non_finite(row) {
                                    return Err(NonFinite {
                                        row: i,
                                        class: j,
                                        value: row[j].to_f64(),
                                    });
                                }
                                Ok(row_metrics(row, &labels[i * c..(i + 1) * c], k, numpy_ties))
                            })
                            .collect()
                    })
                })
                .collect();
            // Joined in order, so the first error reported is the first bad row.
            let mut rows = Vec::with_capacity(b);
            for h in hs {
                rows.extend(h.join().expect("metric worker panicked")?);
            }
            Ok(rows)
        })
    }

    /// Adds a batch as the official evaluator does: hit and PERR summed per video, each
    /// class's top-k pairs pushed class by class into the global pool (its tie order).
    fn accumulate_official<T: Score>(
        &mut self,
        scores: &[T],
        labels: &[u8],
        check: bool,
    ) -> Result<(), NonFinite> {
        let c = self.num_classes;
        let b = scores.len() / c;
        // Nothing of `self` changes until every row has passed the finiteness check.
        let rows = self.official_rows(scores, labels, check)?;
        let mut hit = 0.0;
        let mut perr = 0.0;
        // Each class's pool takes this batch's pairs in video order; the global pool then takes
        // them class by class (the official push order), straight from the class pools, so no
        // batch-sized pair array is built (two fewer 48 MB allocations per 100k videos).
        let starts: Vec<usize> = self.per_class.iter().map(Vec::len).collect();
        let mut counts = vec![0usize; c];
        for r in &rows {
            for &(class, _, _) in &r.top {
                counts[class as usize] += 1;
            }
        }
        for (pool, &n) in self.per_class.iter_mut().zip(&counts) {
            pool.reserve(n);
        }
        for (i, r) in rows.iter().enumerate() {
            hit += r.hit;
            perr += r.perr;
            for &(class, score, label) in &r.top {
                // −∞ marks "not predicted" (Kaggle CSVs list ≤ 20 classes per video): such
                // classes are not in the submitted list, so they never enter the pool.
                if score == f64::NEG_INFINITY {
                    continue;
                }
                self.per_class[class as usize].push(Pair {
                    score,
                    label,
                    video: (self.n + i) as u32,
                    class,
                });
            }
            for &j in &r.positives {
                self.class_pos[j as usize] += 1.0;
                self.num_pos += 1.0;
            }
        }
        drop(rows);
        // The official code adds mean * batch_size.
        self.sum_hit += hit / b as f64 * b as f64;
        self.sum_perr += perr / b as f64 * b as f64;
        let added = || {
            self.per_class
                .iter()
                .zip(&starts)
                .flat_map(|(pool, &s)| pool[s..].iter().copied())
        };
        match self.tie {
            TieOrder::Official => {
                let new: usize = counts.iter().sum();
                self.global.items.reserve(new);
                for p in added() {
                    self.global.push(p);
                }
            }
            TieOrder::Deterministic => {
                let v: Vec<Pair> = added().collect();
                self.global_plain.extend(v);
            }
        }
        self.n += b;
        Ok(())
    }

    fn finish_official(&self, with_map: bool) -> Metrics {
        let gap = || match self.tie {
            TieOrder::Official => {
                if self.global.items.is_empty() || self.num_pos <= 0.0 {
                    0.0
                } else {
                    ap_official_from_heap(&self.global.items, self.num_pos)
                }
            }
            TieOrder::Deterministic => {
                average_precision(&self.global_plain, self.num_pos, self.tie)
            }
        };
        if !with_map {
            return self.official_metrics(gap(), None, None);
        }
        let classes: Vec<usize> = (0..self.num_classes)
            .filter(|&j| self.class_pos[j] > 0.0)
            .collect();
        // GAP (one long sort) runs on its own thread beside the per-class APs, which are
        // independent and share the other cores, each keeping class order.
        let threads = available_cores()
            .saturating_sub(1)
            .min(classes.len().div_ceil(64))
            .max(1);
        let per = classes.len().div_ceil(threads).max(1);
        let (gap, aps): (f64, Vec<f64>) = std::thread::scope(|sc| {
            let g = sc.spawn(gap);
            let hs: Vec<_> = classes
                .chunks(per)
                .map(|chunk| {
                    sc.spawn(move || {
                        chunk
                            .iter()
                            .map(|&j| {
                                average_precision(&self.per_class[j], self.class_pos[j], self.tie)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let aps = hs
                .into_iter()
                .flat_map(|h| h.join().expect("mAP worker panicked"))
                .collect();
            (g.join().expect("GAP worker panicked"), aps)
        });
        let map = if aps.is_empty() {
            0.0
        } else {
            aps.iter().sum::<f64>() / aps.len() as f64
        };
        self.official_metrics(gap, Some(map), Some(aps.len()))
    }

    fn official_metrics(&self, gap: f64, map: Option<f64>, ncls: Option<usize>) -> Metrics {
        let n = self.n.max(1) as f64;
        Metrics {
            mode: MetricMode::Official,
            tie_order: self.tie,
            top_k: self.top_k,
            num_videos: self.n,
            hit_at_one: self.sum_hit / n,
            perr: self.sum_perr / n,
            gap,
            map,
            num_classes_in_map: ncls,
            batch_size: None,
        }
    }

    /// Final metrics.
    pub fn finish(mut self) -> Metrics {
        match self.mode {
            MetricMode::Official => self.finish_official(true),
            MetricMode::Paddlevideo => {
                if !self.pending_scores.is_empty() {
                    // drop_last=False: the last partial batch counts as a whole batch.
                    let s = std::mem::take(&mut self.pending_scores);
                    let l = std::mem::take(&mut self.pending_labels);
                    self.paddle_batch(&s, &l);
                }
                let nb = self.batch_metrics.len().max(1) as f64;
                let mean = |f: fn(&(f64, f64, f64)) -> f64| {
                    self.batch_metrics.iter().map(f).sum::<f64>() / nb
                };
                Metrics {
                    mode: MetricMode::Paddlevideo,
                    tie_order: self.tie,
                    top_k: self.top_k,
                    num_videos: self.n,
                    hit_at_one: mean(|m| m.0),
                    perr: mean(|m| m.1),
                    gap: mean(|m| m.2),
                    map: None,
                    num_classes_in_map: None,
                    batch_size: Some(self.batch_size),
                }
            }
        }
    }
}

impl Metrics {
    /// Human table.
    pub fn render(&self) -> String {
        let mode = match self.mode {
            MetricMode::Official => {
                "official YouTube-8M evaluator (sample-weighted Hit@1/PERR, global GAP)".to_string()
            }
            MetricMode::Paddlevideo => format!(
                "PaddleVideo (unweighted mean of per-batch metrics, batch {})",
                self.batch_size.unwrap_or(0)
            ),
        };
        let mut s = format!(
            "metrics: {mode}; top_k {}; ties {:?}; {} videos\n",
            self.top_k, self.tie_order, self.num_videos
        );
        s.push_str(&format!(
            "  Hit@1  {:.6}\n  PERR   {:.6}\n  GAP    {:.6}\n",
            self.hit_at_one, self.perr, self.gap
        ));
        if let Some(m) = self.map {
            s.push_str(&format!(
                "  mAP    {:.6} (over {} classes with positives)\n",
                m,
                self.num_classes_in_map.unwrap_or(0)
            ));
        }
        s
    }
}

/// Cores in this process's affinity mask (falls back to 1).
fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[rows, classes]` scores in a few distinct levels (many ties) and sparse labels.
    fn data(rows: usize, classes: usize) -> (Vec<f32>, Vec<u8>) {
        let mut s = 0x2545F4914F6CDD1Du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let scores = (0..rows * classes)
            .map(|_| (next() % 50) as f32 / 50.0)
            .collect();
        let labels = (0..rows * classes)
            .map(|_| u8::from(next() % 40 == 0))
            .collect();
        (scores, labels)
    }

    #[test]
    fn accumulate_finite_refuses_the_first_bad_score_and_changes_nothing() {
        let (rows, c) = (1200, 30); // enough rows for several worker threads
        let (mut s, l) = data(rows, c);
        let clean = {
            let mut e = Evaluator::new(c, 20, TieOrder::Official);
            e.accumulate_finite(&s, &l).expect("finite scores");
            e.finish()
        };
        s[1000 * c + 7] = f32::INFINITY;
        s[700 * c + 3] = f32::NAN;
        let mut e = Evaluator::new(c, 20, TieOrder::Official);
        let err = e
            .accumulate_finite(&s, &l)
            .expect_err("NaN must be refused");
        assert_eq!((err.row, err.class), (700, 3));
        assert!(err.value.is_nan());
        assert!(err.to_string().contains("row 700 class 3"), "{err}");
        assert_eq!(e.num_videos(), 0);
        // −∞ ("not predicted") is refused here too, and accepted by the unchecked path.
        s[700 * c + 3] = f32::NEG_INFINITY;
        s[1000 * c + 7] = 0.5;
        let err = e
            .accumulate_finite(&s, &l)
            .expect_err("-inf must be refused");
        assert_eq!((err.row, err.class), (700, 3));
        let mut p = Evaluator::paddlevideo(c, 20, 8, TieOrder::Official);
        assert_eq!(p.accumulate_finite(&s, &l).map_err(|e| e.row), Err(700));
        // The refused batches left nothing behind: the clean data gives the clean numbers.
        let (s, _) = data(rows, c);
        e.accumulate_finite(&s, &l).expect("finite scores");
        let m = e.finish();
        assert_eq!(
            (m.hit_at_one, m.perr, m.gap, m.map),
            (clean.hit_at_one, clean.perr, clean.gap, clean.map)
        );
    }

    #[test]
    fn batches_give_the_numbers_of_one_batch() {
        // The official pools are filled class by class per batch: splitting the rows differently
        // changes the push order, but with distinct scores GAP and mAP cannot change.
        let (rows, c) = (900, 40);
        let (s, l) = data(rows, c);
        let s: Vec<f64> = s
            .iter()
            .enumerate()
            .map(|(i, &x)| x as f64 + i as f64 * 1e-9)
            .collect();
        let one = {
            let mut e = Evaluator::new(c, 20, TieOrder::Official);
            e.accumulate(&s, &l);
            e.finish()
        };
        let mut e = Evaluator::new(c, 20, TieOrder::Official);
        for (lo, hi) in [(0, 1), (1, 300), (300, 301), (301, 900)] {
            e.accumulate(&s[lo * c..hi * c], &l[lo * c..hi * c]);
        }
        let many = e.finish();
        assert_eq!(one.num_videos, many.num_videos);
        for (a, b) in [
            (one.hit_at_one, many.hit_at_one),
            (one.perr, many.perr),
            (one.gap, many.gap),
            (one.map.unwrap(), many.map.unwrap()),
        ] {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        assert!(one.gap > 0.0 && one.gap < 1.0, "gap {}", one.gap);
    }
}
