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

pub mod mt;
pub mod numpy_select;

use serde::Serialize;

/// How equal scores are ordered in AP.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TieOrder {
    /// The official evaluator's heap + `random.seed(0)` shuffle + stable sort.
    #[default]
    Official,
    /// Score descending, then video index, then class index.
    Deterministic,
}

/// Which aggregation to report.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum, serde::Deserialize,
)]
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
}

impl Score for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Score for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
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
        Some(t) => row
            .iter()
            .enumerate()
            .filter(|&(_, &s)| s >= t)
            .map(|(j, &s)| (s, j))
            .collect(),
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
    top: Vec<usize>,
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
    let top = select(top_k);
    RowOut {
        hit,
        perr,
        top,
        positives,
    }
}

/// Non-interpolated AP of an ordered label list, as the official loop sums it.
fn ap_of_ranked(labels: impl Iterator<Item = u8>, num_positives: f64) -> f64 {
    if num_positives <= 0.0 {
        return 0.0;
    }
    let delta = 1.0 / num_positives;
    let mut ap = 0.0;
    let mut poscount = 0.0;
    for (i, l) in labels.enumerate() {
        if l > 0 {
            poscount += 1.0;
            ap += poscount / (i + 1) as f64 * delta;
        }
    }
    ap
}

/// One pooled pair. `key` orders pairs for the deterministic tie rule.
#[derive(Clone, Copy, Debug)]
struct Pair {
    score: f64,
    label: u8,
    video: u32,
    class: u32,
}

/// `heapq`'s min-heap of `(score, label)` tuples, kept in the exact list layout CPython's
/// `heappush` produces (tuples compare by score, then label).
#[derive(Default, Clone)]
struct PyHeap {
    items: Vec<Pair>,
}

impl PyHeap {
    fn less(a: &Pair, b: &Pair) -> bool {
        a.score < b.score || (a.score == b.score && a.label < b.label)
    }
    fn push(&mut self, p: Pair) {
        self.items.push(p);
        let mut pos = self.items.len() - 1;
        while pos > 0 {
            let parent = (pos - 1) >> 1;
            if Self::less(&p, &self.items[parent]) {
                self.items[pos] = self.items[parent];
                pos = parent;
            } else {
                break;
            }
        }
        self.items[pos] = p;
    }
}

/// AP over pooled pairs under a tie rule. `pairs` must be in push order for `Official`.
fn average_precision(pairs: &[Pair], num_positives: f64, tie: TieOrder) -> f64 {
    if pairs.is_empty() || num_positives <= 0.0 {
        return 0.0;
    }
    match tie {
        TieOrder::Official => {
            let mut heap = PyHeap {
                items: Vec::with_capacity(pairs.len()),
            };
            for p in pairs {
                heap.push(*p);
            }
            ap_official_from_heap(&heap.items, num_positives)
        }
        TieOrder::Deterministic => {
            let mut v = pairs.to_vec();
            v.sort_by(|a, b| {
                b.score
                    .total_cmp(&a.score)
                    .then(a.video.cmp(&b.video))
                    .then(a.class.cmp(&b.class))
            });
            ap_of_ranked(v.iter().map(|p| p.label), num_positives)
        }
    }
}

fn ap_official_from_heap(heap: &[Pair], num_positives: f64) -> f64 {
    let m = heap.len();
    let perm = mt::Mt19937::python_seed(0).sample_permutation(m);
    let mut shuffled: Vec<Pair> = perm.iter().map(|&i| heap[i]).collect();
    // Python's sorted(..., reverse=True) is stable: equal scores keep the shuffled order.
    shuffled.sort_by(|a, b| b.score.total_cmp(&a.score));
    ap_of_ranked(shuffled.iter().map(|p| p.label), num_positives)
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

    /// Adds a batch: `scores` and `labels` are row-major `[B, C]`.
    pub fn accumulate<T: Score>(&mut self, scores: &[T], labels: &[u8]) {
        let c = self.num_classes;
        assert_eq!(
            scores.len(),
            labels.len(),
            "scores and labels differ in size"
        );
        if c == 0 {
            return; // no classes, nothing to rank (callers refuse this before)
        }
        assert_eq!(scores.len() % c, 0, "scores are not [B, {c}]");
        match self.mode {
            MetricMode::Official => self.accumulate_official(scores, labels),
            MetricMode::Paddlevideo => {
                self.pending_scores
                    .extend(scores.iter().map(|x| x.to_f64()));
                self.pending_labels.extend_from_slice(labels);
                let per = self.batch_size * c;
                while self.pending_scores.len() >= per {
                    let s: Vec<f64> = self.pending_scores.drain(..per).collect();
                    let l: Vec<u8> = self.pending_labels.drain(..per).collect();
                    self.paddle_batch(&s, &l);
                }
            }
        }
    }

    fn paddle_batch(&mut self, s: &[f64], l: &[u8]) {
        let mut e = Evaluator::new(self.num_classes, self.top_k, self.tie);
        e.accumulate_official(s, l);
        let m = e.finish_official(false);
        self.n += m.num_videos;
        self.batch_metrics.push((m.hit_at_one, m.perr, m.gap));
    }

    fn accumulate_official<T: Score>(&mut self, scores: &[T], labels: &[u8]) {
        let c = self.num_classes;
        let b = scores.len() / c;
        let k = self.top_k;
        let numpy_ties = self.tie == TieOrder::Official;
        // Rows are independent: split them over the cores, then merge in row order.
        let threads = available_cores().min(b.div_ceil(256)).max(1);
        let per = b.div_ceil(threads);
        let rows: Vec<RowOut> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    sc.spawn(move || {
                        let lo = (t * per).min(b);
                        let hi = ((t + 1) * per).min(b);
                        (lo..hi)
                            .map(|i| {
                                row_metrics(
                                    &scores[i * c..(i + 1) * c],
                                    &labels[i * c..(i + 1) * c],
                                    k,
                                    numpy_ties,
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter()
                .flat_map(|h| h.join().expect("metric worker panicked"))
                .collect()
        });
        let mut hit = 0.0;
        let mut perr = 0.0;
        // Official: pairs grouped by class, within a class in video order.
        let mut pairs: Vec<Pair> = Vec::with_capacity(b * k);
        for (i, r) in rows.iter().enumerate() {
            hit += r.hit;
            perr += r.perr;
            for &j in &r.top {
                let idx = i * c + j;
                // −∞ marks "not predicted" (Kaggle CSVs list ≤ 20 classes per video): such
                // classes are not in the submitted list, so they never enter the pool.
                if scores[idx].to_f64() == f64::NEG_INFINITY {
                    continue;
                }
                pairs.push(Pair {
                    score: scores[idx].to_f64(),
                    label: labels[idx],
                    video: (self.n + i) as u32,
                    class: j as u32,
                });
            }
        }
        for r in &rows {
            for &j in &r.positives {
                self.class_pos[j as usize] += 1.0;
                self.num_pos += 1.0;
            }
        }
        // Group by class keeping video order (a counting sort: stable and O(n)).
        let pairs = {
            let mut start = vec![0usize; c + 1];
            for p in &pairs {
                start[p.class as usize + 1] += 1;
            }
            for j in 0..c {
                start[j + 1] += start[j];
            }
            let mut out = vec![
                Pair {
                    score: 0.0,
                    label: 0,
                    video: 0,
                    class: 0
                };
                pairs.len()
            ];
            for p in pairs {
                let slot = &mut start[p.class as usize];
                out[*slot] = p;
                *slot += 1;
            }
            out
        };
        // The official code adds mean * batch_size.
        self.sum_hit += hit / b as f64 * b as f64;
        self.sum_perr += perr / b as f64 * b as f64;
        for p in pairs {
            match self.tie {
                TieOrder::Official => self.global.push(p),
                TieOrder::Deterministic => self.global_plain.push(p),
            }
            self.per_class[p.class as usize].push(p);
        }
        self.n += b;
    }

    fn finish_official(&self, with_map: bool) -> Metrics {
        let n = self.n.max(1) as f64;
        let gap = match self.tie {
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
        let (map, ncls) = if with_map {
            let classes: Vec<usize> = (0..self.num_classes)
                .filter(|&j| self.class_pos[j] > 0.0)
                .collect();
            // Classes are independent: spread them over the cores, keep class order.
            let threads = available_cores().min(classes.len().div_ceil(64)).max(1);
            let per = classes.len().div_ceil(threads).max(1);
            let aps: Vec<f64> = std::thread::scope(|sc| {
                let hs: Vec<_> = classes
                    .chunks(per)
                    .map(|chunk| {
                        sc.spawn(move || {
                            chunk
                                .iter()
                                .map(|&j| {
                                    average_precision(
                                        &self.per_class[j],
                                        self.class_pos[j],
                                        self.tie,
                                    )
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                hs.into_iter()
                    .flat_map(|h| h.join().expect("mAP worker panicked"))
                    .collect()
            });
            let m = if aps.is_empty() {
                0.0
            } else {
                aps.iter().sum::<f64>() / aps.len() as f64
            };
            (Some(m), Some(aps.len()))
        } else {
            (None, None)
        };
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
