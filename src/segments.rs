//! The 2019 segment task: per-class rankings of 5-second segments (the Kaggle submission that
//! the starter's `inference.py --segment_labels` writes) and the official segment mAP
//! (`segment_eval_inference.py` with `mean_average_precision_calculator.py`).
//!
//! References (github.com/google/youtube-8m, commit e6f6bf6): `inference.py` (`get_segments`,
//! `format_lines`, the heap post-processing in `inference`), `segment_eval_inference.py`
//! (`read_labels`, `read_segment_predictions`, `main`), `average_precision_calculator.py`
//! (`ap_at_n`). The behaviour is copied where it decides a number or a byte of output; the
//! places where the scripts fail (a header line, a class without positives) are errors or
//! warnings here, named in the comments.

use crate::data::sources::expand_paths;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

/// Frames per segment in the 2019 task (5 seconds at one frame per second).
pub const SEGMENT_LENGTH: usize = crate::data::synth::SEGMENT_FRAMES;
/// Segments kept per class in a submission (the starter's `--segment_max_pred`, Kaggle's cap).
pub const DEFAULT_MAX_PER_CLASS: usize = 100_000;

/// The 1,000 classes rated in the 2019 segment data (the starter's `segment_label_ids.csv`,
/// 2018 vocabulary ids; configs/segment_label_ids.csv), what `--segment-classes 2019` names.
pub const SEGMENT_LABEL_IDS_2019: &str = include_str!("../configs/segment_label_ids.csv");

/// `--segment-classes`: the bundled 2019 list for `2019`, else the file at `arg`.
pub fn class_list(arg: &Path, num_classes: usize) -> Result<Vec<bool>> {
    if arg == Path::new("2019") && !arg.exists() {
        return parse_class_list(SEGMENT_LABEL_IDS_2019, arg, num_classes);
    }
    read_class_list(arg, num_classes)
}

/// Classes allowed in a segment submission, from a file like the starter's
/// `segment_label_ids.csv` (one class id per line; lines that are not integers, such as its
/// `Index` header, are skipped, as `inference.py` skips them). `[classes]`: true = allowed.
pub fn read_class_list(path: &Path, num_classes: usize) -> Result<Vec<bool>> {
    let text = crate::data::files::read_regular_text(path, 64 << 20, "segment class list")?;
    parse_class_list(&text, path, num_classes)
}

fn parse_class_list(text: &str, path: &Path, num_classes: usize) -> Result<Vec<bool>> {
    let mut mask = vec![false; num_classes];
    let mut any = false;
    for (ln, line) in text.lines().enumerate() {
        let Ok(c) = line.trim().parse::<i64>() else {
            continue;
        };
        if c < 0 || c as usize >= num_classes {
            return Err(Error::Invalid(format!(
                "{}:{}: class {c} is outside the model's classes 0..={}\n  hint: the list must be for this model's vocabulary (segment_label_ids.csv is for the 3862-class 2018 vocabulary)",
                path.display(),
                ln + 1,
                num_classes - 1
            )));
        }
        mask[c as usize] = true;
        any = true;
    }
    if !any {
        return Err(Error::Invalid(format!(
            "{}: no class ids in it (one integer per line)\n  hint: give a file like configs/segment_label_ids.csv",
            path.display()
        )));
    }
    Ok(mask)
}

/// One ranked segment: `score` as the starter re-reads it (`float("%g" % p)`), the segment id
/// `videos[video]:start`.
#[derive(Clone, Copy)]
struct Entry {
    score: f64,
    video: u32,
    start: u32,
}

/// Per-class top segments, kept the way `inference.py` keeps them: one Python `heapq` of
/// `(score, "video:start")` tuples per class, capped with `heappushpop`, then sorted by score
/// (stable, descending). Ties are rare (scores have 6 digits) but decide the order of the
/// written ids, so the heap operations are Python's own, step for step.
/// Memory: classes × cap entries of 16 bytes, plus one id per video.
pub struct SegmentRanking {
    cap: usize,
    heaps: Vec<Vec<Entry>>,
    /// Classes in the order they were first pushed (the order of Python's dict, so of the
    /// output lines).
    order: Vec<usize>,
    videos: Vec<String>,
}

impl SegmentRanking {
    pub fn new(num_classes: usize, cap: usize) -> Self {
        SegmentRanking {
            cap: cap.max(1),
            heaps: vec![Vec::new(); num_classes],
            order: Vec::new(),
            videos: Vec::new(),
        }
    }

    /// Starts the segments of a new video; returns its index for [`push`](Self::push).
    pub fn add_video(&mut self, id: &str) -> u32 {
        self.videos.push(id.to_string());
        (self.videos.len() - 1) as u32
    }

    /// Python's `(score, segment_id) < (score, segment_id)`.
    fn lt(&self, a: &Entry, b: &Entry) -> bool {
        if a.score != b.score {
            return a.score < b.score;
        }
        self.id(a) < self.id(b)
    }

    fn id(&self, e: &Entry) -> String {
        format!("{}:{}", self.videos[e.video as usize], e.start)
    }

    /// One segment's scores `[classes]`, as inference.py handles a segment's predictions:
    /// multiplied by the class whitelist (`allowed`, when given), the `top_k` best classes
    /// taken (`format_lines`'s `np.argpartition`: among equal scores at the k-th place, the
    /// ones numpy 2.x picks on AVX-512 CPUs, emulated by [`crate::metrics::numpy_select`]) and
    /// sorted by score, each score written with `%g` and read back, classes outside the
    /// whitelist skipped, the rest offered to their class's heap in that order.
    pub fn add_scores(
        &mut self,
        video: u32,
        start: u32,
        scores: &[f32],
        top_k: usize,
        allowed: Option<&[bool]>,
    ) {
        let masked: Vec<f32> = match allowed {
            Some(a) => scores
                .iter()
                .zip(a)
                .map(|(&s, &ok)| s * if ok { 1.0 } else { 0.0 })
                .collect(),
            None => scores.to_vec(),
        };
        if masked.is_empty() {
            return;
        }
        let k = top_k.clamp(1, masked.len());
        let row: Vec<f64> = masked.iter().map(|&x| x as f64).collect();
        let mut idx = crate::metrics::numpy_select::top_k(&row, k);
        // format_lines sorts the line by score (stable), and the heaps are filled in line
        // order: the order in which classes first appear, so of the output's lines.
        idx.sort_by(|a, b| {
            masked[*b]
                .partial_cmp(&masked[*a])
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        for cls in idx {
            if allowed.is_some_and(|a| !a[cls]) {
                continue;
            }
            let score: f64 = crate::runtime::fmt_g(masked[cls] as f64)
                .parse()
                .unwrap_or(f64::NAN);
            if !score.is_nan() {
                self.push(cls, video, start, score);
            }
        }
    }

    /// Offers segment `start` of video `video` with `score` (already as re-read from `%g`)
    /// to class `cls`.
    pub fn push(&mut self, cls: usize, video: u32, start: u32, score: f64) {
        let item = Entry {
            score,
            video,
            start,
        };
        let mut heap = std::mem::take(&mut self.heaps[cls]);
        // A heap never shrinks (the cap is at least 1): empty means this class is new.
        if heap.is_empty() {
            self.order.push(cls);
        }
        if heap.len() >= self.cap {
            // heapq.heappushpop: replace the smallest only if it is smaller than the item.
            if self.lt(&heap[0], &item) {
                heap[0] = item;
                self.sift_up(&mut heap, 0);
            }
        } else {
            // heapq.heappush
            heap.push(item);
            let last = heap.len() - 1;
            self.sift_down(&mut heap, 0, last);
        }
        self.heaps[cls] = heap;
    }

    /// heapq's `_siftdown`: moves `heap[pos]` up towards the root.
    fn sift_down(&self, heap: &mut [Entry], start: usize, mut pos: usize) {
        let item = heap[pos];
        while pos > start {
            let parent = (pos - 1) >> 1;
            if self.lt(&item, &heap[parent]) {
                heap[pos] = heap[parent];
                pos = parent;
                continue;
            }
            break;
        }
        heap[pos] = item;
    }

    /// heapq's `_siftup`: moves the smaller child up until a leaf, then sifts down.
    fn sift_up(&self, heap: &mut [Entry], mut pos: usize) {
        let end = heap.len();
        let start = pos;
        let item = heap[pos];
        let mut child = 2 * pos + 1;
        while child < end {
            let right = child + 1;
            if right < end && !self.lt(&heap[child], &heap[right]) {
                child = right;
            }
            heap[pos] = heap[child];
            pos = child;
            child = 2 * pos + 1;
        }
        heap[pos] = item;
        self.sift_down(heap, start, pos);
    }

    /// Writes `Class,Segments` and one line per class (first-seen order), its segments by
    /// descending score: the file `inference.py --segment_labels` writes.
    pub fn write(mut self, out: &mut dyn Write) -> Result<()> {
        let io = Error::output;
        out.write_all(b"Class,Segments\n").map_err(io)?;
        for cls in std::mem::take(&mut self.order) {
            let mut heap = std::mem::take(&mut self.heaps[cls]);
            // list.sort(key=score, reverse=True) is stable: equal scores keep heap order.
            heap.sort_by(|a, b| b.score.total_cmp(&a.score));
            write!(out, "{cls},").map_err(io)?;
            for (i, e) in heap.iter().enumerate() {
                if i > 0 {
                    out.write_all(b" ").map_err(io)?;
                }
                write!(out, "{}:{}", self.videos[e.video as usize], e.start).map_err(io)?;
            }
            out.write_all(b"\n").map_err(io)?;
        }
        Ok(())
    }
}

/// Which listed segments of a submission line count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SegmentList {
    /// As `segment_eval_inference.py` counts them: it splits each line with its line break
    /// still attached, so the last segment of a line that ends in a newline never matches a
    /// rated segment (unless --top-n cut it off first).
    #[default]
    Official,
    /// Every listed segment counts.
    Complete,
}

/// The rated segments of the labels: `(segment id "video:start", class) → score`, as
/// `read_labels` builds them (a later rating of the same pair replaces an earlier one).
#[derive(Default)]
pub struct RatedSegments {
    pub ratings: HashMap<(String, i64), f32>,
    /// Videos read, and those that carried segment ratings.
    pub videos: usize,
    pub rated_videos: usize,
}

impl RatedSegments {
    /// Rated segments with a score > 0, per class (`positive_counter`).
    pub fn positives(&self) -> HashMap<i64, usize> {
        let mut p = HashMap::new();
        for ((_, c), &s) in &self.ratings {
            if s > 0.0 {
                *p.entry(*c).or_insert(0) += 1;
            }
        }
        p
    }
}

/// Reads `segment_start_times` / `segment_labels` / `segment_scores` of every video in the
/// label shards (files, directories, globs, .list files).
pub fn read_rated_segments(inputs: &[impl AsRef<std::ffi::OsStr>]) -> Result<RatedSegments> {
    let files = expand_paths(inputs, None)?;
    let mut rated = RatedSegments::default();
    let mut buf = Vec::new();
    for f in &files {
        // Segment ratings are context features: frames are not decoded (any width works).
        let mut reader = crate::data::tfrecord::RecordReader::open(f)?;
        while let Some(rec) = reader.next_into(&mut buf)? {
            let loc = crate::data::Location::file(f).record(rec.index, rec.offset);
            let (id, segments) = crate::data::video::decode_segments(&buf, &loc)?;
            rated.videos += 1;
            if let Some(s) = segments {
                rated.rated_videos += 1;
                for ((&start, &label), &score) in s.start_times.iter().zip(&s.labels).zip(&s.scores)
                {
                    rated
                        .ratings
                        .insert((format!("{id}:{start}"), label), score);
                }
            }
        }
    }
    if rated.ratings.is_empty() {
        return Err(Error::Invalid(format!(
            "no rated segments in {} file(s) ({} videos): the labels need the 2019 fields segment_start_times, segment_labels and segment_scores\n  hint: use the 2019 validate shards (or `yt8m synth --segments`)",
            files.len(),
            rated.videos
        )));
    }
    Ok(rated)
}

/// One class of a segment evaluation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClassAp {
    pub class: i64,
    pub ap: f64,
    /// Listed segments that are rated for this class (the ones that count).
    pub rated_listed: usize,
    /// Rated segments of this class with a score > 0.
    pub positives: usize,
}

/// `yt8m evaluate --segments`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SegmentReport {
    /// Mean of `per_class` AP (`np.mean(map_cal.peek_map_at_n())`).
    pub map: f64,
    /// The cap applied per class line (0 = none).
    pub top_n: usize,
    pub per_class: Vec<ClassAp>,
    /// Submitted classes with no positive rated segment: left out of the mean (the official
    /// script stops with a KeyError on them).
    pub classes_without_positives: Vec<i64>,
    /// Classes with positive rated segments that the submission does not list.
    pub classes_not_submitted: Vec<i64>,
    /// Classes whose line appeared more than once (the last line counts, as in the script).
    pub repeated_classes: Vec<i64>,
    pub rated_segments: usize,
}

/// Longest submission line accepted (100,000 ids of ~12 bytes fit in 1.2 MB).
const MAX_LINE: usize = 256 << 20;

/// Scores a segment submission (`Class,Segments` CSV) against rated segments, as
/// `segment_eval_inference.py` does: per class line, the first `top_n` listed ids (0 = all)
/// that are rated for that class, in their order, get the scores n/n, (n−1)/n, …; AP is the
/// calculator's `ap_at_n` with the class's count of positive rated segments as the number of
/// positives; mAP is the mean over the submitted classes.
pub fn evaluate_submission(
    path: &Path,
    rated: &RatedSegments,
    top_n: usize,
    rule: SegmentList,
) -> Result<SegmentReport> {
    let (file, _) = crate::data::files::open_regular(path, "segment submission CSV")?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let positives = rated.positives();
    let mut lists: HashMap<i64, (usize, f64)> = HashMap::new();
    let mut repeated = Vec::new();
    let mut line = Vec::new();
    let mut ln = 0usize;
    loop {
        line.clear();
        let n = std::io::Read::take(&mut reader, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::Io {
                path: path.display().to_string(),
                err: e,
            })?;
        if n == 0 {
            break;
        }
        ln += 1;
        if line.len() > MAX_LINE {
            return Err(Error::Invalid(format!(
                "{}:{ln}: line longer than {} MB\n  hint: a class line lists at most --top-n segments; is this a segment submission?",
                path.display(),
                MAX_LINE >> 20
            )));
        }
        let text = std::str::from_utf8(&line).map_err(|_| {
            Error::Invalid(format!(
                "{}:{ln}: not UTF-8 text\n  hint: a segment submission is a CSV 'Class,Segments' with ids 'video:start'",
                path.display()
            ))
        })?;
        let text = if ln == 1 {
            text.strip_prefix('\u{feff}').unwrap_or(text)
        } else {
            text
        };
        let Some((cls, ids, ended)) = class_line(text, ln, path)? else {
            continue;
        };
        let hits = rated_hits(rated, cls, ids, ended, top_n, rule);
        let ap = average_precision(&hits, positives.get(&cls).copied().unwrap_or(0));
        if lists.insert(cls, (hits.len(), ap)).is_some() {
            repeated.push(cls);
        }
    }
    report(path, rated, &positives, &lists, repeated, top_n)
}

/// A class line `class,video:start video:start ...` of a submission: the class, its ids and
/// whether the line ended with a line break (the official rule keeps it on the last id);
/// None for a blank line or the starter's `Class,Segments` header.
fn class_line<'a>(text: &'a str, ln: usize, path: &Path) -> Result<Option<(i64, &'a str, bool)>> {
    let ended = text.ends_with('\n');
    let body = text.trim_end_matches(['\n', '\r']);
    if body.trim().is_empty() {
        return Ok(None);
    }
    // The starter writes a `Class,Segments` header that segment_eval_inference.py cannot
    // read (int("Class") raises): skipped here.
    if ln == 1 && body.to_ascii_lowercase().starts_with("class,") {
        return Ok(None);
    }
    let (cls, ids) = match body.split(',').collect::<Vec<_>>()[..] {
        [c, ids] => (c, ids),
        _ => {
            return Err(Error::Invalid(format!(
                "{}:{ln}: expected 'class,video:start video:start ...' (one comma)",
                path.display()
            )));
        }
    };
    let cls: i64 = cls.trim().parse().map_err(|_| {
        Error::Invalid(format!(
            "{}:{ln}: class '{}' is not an integer",
            path.display(),
            cls.trim()
        ))
    })?;
    Ok(Some((cls, ids, ended)))
}

/// The ratings of the listed ids for `cls`, in list order, among the first `top_n` (all
/// when 0). Under the official rule a token that carried the line break can never match.
fn rated_hits(
    rated: &RatedSegments,
    cls: i64,
    ids: &str,
    ended: bool,
    top_n: usize,
    rule: SegmentList,
) -> Vec<f32> {
    let tokens: Vec<&str> = ids.split(' ').collect();
    let counted = if top_n > 0 {
        tokens.len().min(top_n)
    } else {
        tokens.len()
    };
    let newline_token = (rule == SegmentList::Official && ended).then_some(tokens.len() - 1);
    let mut hits: Vec<f32> = Vec::new();
    for (i, t) in tokens[..counted].iter().enumerate() {
        if Some(i) == newline_token {
            continue;
        }
        if let Some(&s) = rated.ratings.get(&(t.to_string(), cls)) {
            hits.push(s);
        }
    }
    hits
}

/// The mAP over submitted classes with positives, and what was left out or repeated.
fn report(
    path: &Path,
    rated: &RatedSegments,
    positives: &HashMap<i64, usize>,
    lists: &HashMap<i64, (usize, f64)>,
    mut repeated: Vec<i64>,
    top_n: usize,
) -> Result<SegmentReport> {
    let mut classes: Vec<i64> = lists.keys().copied().collect();
    classes.sort_unstable();
    let mut per_class = Vec::new();
    let mut without = Vec::new();
    for c in classes {
        let (listed, ap) = lists[&c];
        match positives.get(&c) {
            Some(&p) if p > 0 => per_class.push(ClassAp {
                class: c,
                ap,
                rated_listed: listed,
                positives: p,
            }),
            _ => without.push(c),
        }
    }
    let mut not_submitted: Vec<i64> = positives
        .keys()
        .filter(|c| !lists.contains_key(c))
        .copied()
        .collect();
    not_submitted.sort_unstable();
    if per_class.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no submitted class has a positive rated segment in the labels ({} class line(s) read)\n  hint: check that the submission and the label shards use the same class ids and video ids",
            path.display(),
            lists.len()
        )));
    }
    let aps: Vec<f64> = per_class.iter().map(|c| c.ap).collect();
    repeated.sort_unstable();
    repeated.dedup();
    Ok(SegmentReport {
        map: numpy_mean(&aps),
        top_n,
        per_class,
        classes_without_positives: without,
        classes_not_submitted: not_submitted,
        repeated_classes: repeated,
        rated_segments: rated.ratings.len(),
    })
}

/// `AveragePrecisionCalculator.ap_at_n(n=None)` on a ranked list whose scores are the ranks
/// themselves (distinct, so the shuffle and sort keep the list order): Σ over positions i of
/// positives, (positives so far)/(i+1) · 1/`num_positives`, in float64 in rank order.
fn average_precision(ratings: &[f32], num_positives: usize) -> f64 {
    if ratings.is_empty() || num_positives == 0 {
        return 0.0;
    }
    let delta_recall = 1.0 / num_positives as f64;
    let mut ap = 0.0;
    let mut poscount = 0.0;
    for (i, &r) in ratings.iter().enumerate() {
        if r > 0.0 {
            poscount += 1.0;
            ap += poscount / (i + 1) as f64 * delta_recall;
        }
    }
    ap
}

/// `np.mean` of float64 values: numpy's pairwise summation (blocks of 8 partial sums below
/// 128 elements, halves above), divided by the count.
pub fn numpy_mean(x: &[f64]) -> f64 {
    fn pairwise(a: &[f64]) -> f64 {
        let n = a.len();
        if n < 8 {
            a.iter().fold(0.0, |s, &v| s + v)
        } else if n <= 128 {
            let mut r = [0.0f64; 8];
            r.copy_from_slice(&a[..8]);
            let mut i = 8;
            while i + 8 <= n {
                for k in 0..8 {
                    r[k] += a[i + k];
                }
                i += 8;
            }
            let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            while i < n {
                res += a[i];
                i += 1;
            }
            res
        } else {
            let mut n2 = n / 2;
            n2 -= n2 % 8;
            pairwise(&a[..n2]) + pairwise(&a[n2..])
        }
    }
    if x.is_empty() {
        return f64::NAN;
    }
    pairwise(x) / x.len() as f64
}

/// Writes the segment-evaluation report as text.
pub fn print_report(r: &SegmentReport, out: &mut dyn Write) -> std::io::Result<()> {
    let cap = if r.top_n > 0 {
        r.top_n.to_string()
    } else {
        "all".into()
    };
    writeln!(
        out,
        "segment mAP@{cap}: {:.6} over {} class(es) ({} rated segments in the labels)",
        r.map,
        r.per_class.len(),
        r.rated_segments
    )?;
    Ok(())
}
