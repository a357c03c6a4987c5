//! `yt8m evaluate`: scores predictions made elsewhere (an .npz/.npy of scores, or a Kaggle
//! CSV) the official way. Labels come from the same .npz or from TFRecord shards (by id).

use crate::data::npy::{self, NpyArray, NpyDType};
use crate::data::sources::{expand_paths, read_shard};
use crate::data::{FeatureSpec, Level};
use crate::error::{Error, Result};
use crate::metrics::{Evaluator, MetricMode, Metrics, Score, TieOrder};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub top_k: usize,
    pub tie_order: TieOrder,
    pub mode: MetricMode,
    /// Rows per evaluator batch (official: emulates EvaluationMetrics batches; PaddleVideo:
    /// the test batch size). 0 = one batch (official) / 8 (PaddleVideo).
    pub batch_size: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            top_k: 20,
            tie_order: TieOrder::Official,
            mode: MetricMode::Official,
            batch_size: 0,
        }
    }
}

/// A dense score matrix with labels.
pub struct Scored<T: Score = f64> {
    pub num_videos: usize,
    pub num_classes: usize,
    /// `[N, C]`
    pub scores: Vec<T>,
    /// `[N, C]` 0/1
    pub labels: Vec<u8>,
}

/// Scores as stored: float32 files stay float32.
pub enum AnyScored {
    F32(Scored<f32>),
    F64(Scored<f64>),
}

impl AnyScored {
    pub fn evaluate(&self, opt: &EvalOptions) -> Metrics {
        match self {
            AnyScored::F32(s) => evaluate_dense(s, opt),
            AnyScored::F64(s) => evaluate_dense(s, opt),
        }
    }
    pub fn num_videos(&self) -> usize {
        match self {
            AnyScored::F32(s) => s.num_videos,
            AnyScored::F64(s) => s.num_videos,
        }
    }
}

/// The first NaN/Inf of a score array as an error naming row and class.
fn check_finite(a: &NpyArray, cols: usize, what: &str) -> Result<()> {
    if let Some((i, x)) = a.first_non_finite() {
        return Err(Error::Invalid(format!(
            "{what}: row {} class {} is {x}: scores must be finite\n  hint: fix the model or the export that wrote them (NaN usually means a diverged model)",
            i / cols.max(1),
            i % cols.max(1)
        )));
    }
    Ok(())
}

/// Reads `predictions` [N,C] and `labels` [N,C] from an .npz (the golden-file layout).
pub fn read_npz(path: &Path) -> Result<AnyScored> {
    let arrays = npy::read_npz(path).map_err(|mut e| {
        // The reader's own hint (e.g. a damaged file's) says more than the layout's.
        e.hint.get_or_insert_with(|| {
            "write it with numpy.savez(path, predictions=P, labels=Y)".into()
        });
        Error::Data(e)
    })?;
    let names: Vec<&str> = arrays.iter().map(|(k, _)| k.as_str()).collect();
    let find = |name: &str| arrays.iter().find(|(k, _)| k == name).map(|(_, t)| t);
    let p = find("predictions").ok_or_else(|| Error::Invalid(format!(
        "{}: no 'predictions' array (found {names:?})\n  hint: the .npz needs predictions [N,C] and labels [N,C]", path.display())))?;
    let y = find("labels").ok_or_else(|| Error::Invalid(format!(
        "{}: no 'labels' array (found {names:?})\n  hint: give labels in the .npz, or use --labels SHARDS with a Kaggle CSV", path.display())))?;
    if !p.dtype.is_numeric() || !y.dtype.is_numeric() {
        return Err(Error::Invalid(format!(
            "{}: 'predictions' and 'labels' must be number arrays",
            path.display()
        )));
    }
    let (ps, ys) = (&p.shape, &y.shape);
    if ps.len() != 2 || ps != ys {
        return Err(Error::Invalid(format!(
            "{}: predictions {ps:?} and labels {ys:?} must both be [N, C]",
            path.display()
        )));
    }
    let (nv, nc) = (ps[0], ps[1]);
    if nc == 0 {
        return Err(Error::Invalid(format!(
            "{}: predictions have 0 classes (shape {ps:?})",
            path.display()
        )));
    }
    check_finite(p, nc, &format!("{}: predictions", path.display()))?;
    let labels: Vec<u8> = match y.dtype {
        NpyDType::U8 | NpyDType::Bool => y.data.clone(),
        _ => {
            check_finite(y, nc, &format!("{}: labels", path.display()))?;
            y.to_f64()
                .into_iter()
                .map(|l| {
                    if l == 0.0 {
                        0
                    } else if l == 1.0 {
                        1
                    } else {
                        2
                    }
                })
                .collect()
        }
    };
    if let Some(i) = labels.iter().position(|&l| l > 1) {
        let v = y.to_f64()[i];
        return Err(Error::Invalid(format!(
            "{}: labels must be 0/1; row {} class {} is {v}",
            path.display(),
            i / nc,
            i % nc
        )));
    }
    Ok(match p.dtype {
        NpyDType::F32 => AnyScored::F32(Scored {
            num_videos: nv,
            num_classes: nc,
            scores: p.to_f32(),
            labels,
        }),
        _ => AnyScored::F64(Scored {
            num_videos: nv,
            num_classes: nc,
            scores: p.to_f64(),
            labels,
        }),
    })
}

/// Runs the evaluator over a dense matrix.
pub fn evaluate_dense<T: Score>(s: &Scored<T>, opt: &EvalOptions) -> Metrics {
    let c = s.num_classes;
    let mut ev = match opt.mode {
        MetricMode::Official => Evaluator::new(c, opt.top_k, opt.tie_order),
        MetricMode::Paddlevideo => Evaluator::paddlevideo(
            c,
            opt.top_k,
            if opt.batch_size == 0 {
                8
            } else {
                opt.batch_size
            },
            opt.tie_order,
        ),
    };
    let bs = if opt.batch_size == 0 {
        s.num_videos.max(1)
    } else {
        opt.batch_size
    };
    for start in (0..s.num_videos).step_by(bs) {
        let end = (start + bs).min(s.num_videos);
        ev.accumulate(&s.scores[start * c..end * c], &s.labels[start * c..end * c]);
    }
    ev.finish()
}

/// Missing ids on either side of a CSV evaluation.
#[derive(Debug, Default, serde::Serialize)]
pub struct IdReport {
    pub predicted_without_labels: Vec<String>,
    pub labelled_without_prediction: Vec<String>,
}

/// The `label score` pairs of line `ln` (0-based) of a Kaggle submission, checked: whole
/// pairs, class ids below `num_classes`, finite scores.
fn kaggle_pairs(
    csv: &Path,
    ln: usize,
    id: &str,
    pairs: &str,
    num_classes: usize,
) -> Result<Vec<(usize, f64)>> {
    let at = format!("{}:{}", csv.display(), ln + 1);
    let bad = |m: String| Error::Invalid(format!("{at}: {m}"));
    let toks: Vec<&str> = pairs.split_whitespace().collect();
    if toks.len() % 2 != 0 {
        return Err(bad("odd number of label/score tokens".into()));
    }
    let mut v = Vec::new();
    for p in toks.chunks(2) {
        let l: usize = p[0]
            .parse()
            .map_err(|_| bad(format!("bad label id '{}'", p[0])))?;
        let s: f64 = p[1]
            .parse()
            .map_err(|_| bad(format!("bad score '{}'", p[1])))?;
        if !s.is_finite() {
            return Err(bad(format!(
                "video '{}': score of class {l} is '{}': scores must be finite\n  hint: fix the model or script that wrote the submission",
                id.trim(),
                p[1]
            )));
        }
        if l >= num_classes {
            return Err(bad(format!("label {l} ≥ num_classes {num_classes}")));
        }
        v.push((l, s));
    }
    Ok(v)
}

/// Kaggle CSV (`VideoId,LabelConfidencePairs`) against labels read from shards, scored as
/// Kaggle's GAP: only the submitted pairs are ranked, the denominator is every positive label.
/// Videos in the shards without a prediction line have no pairs (their positives still count);
/// predictions for unknown ids are reported and ignored.
pub fn read_kaggle_with_labels(
    csv: &Path,
    label_inputs: &[impl AsRef<std::ffi::OsStr>],
    num_classes: usize,
) -> Result<(Scored, IdReport)> {
    let text = crate::data::files::read_regular_text(csv, 16 << 30, "Kaggle submission CSV")?;
    let mut preds: HashMap<String, Vec<(usize, f64)>> = HashMap::new();
    // Spreadsheet programs save CSV with a UTF-8 byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (ln == 0 && line.to_ascii_lowercase().starts_with("videoid")) {
            continue;
        }
        let (id, pairs) = line.split_once(',').ok_or_else(|| {
            Error::Invalid(format!(
                "{}:{}: expected 'id,label score label score ...'",
                csv.display(),
                ln + 1
            ))
        })?;
        let v = kaggle_pairs(csv, ln, id, pairs, num_classes)?;
        let id = id.trim().to_string();
        if let Some(first) = first_line.insert(id.clone(), ln + 1) {
            return Err(Error::Invalid(format!(
                "{}: video '{id}' appears twice, on lines {first} and {}\n  hint: a submission has one line per video; merge or drop one",
                csv.display(),
                ln + 1
            )));
        }
        preds.insert(id, v);
    }
    let (ids, labels) = shard_labels(label_inputs, num_classes)?;
    let (scores, report) = join_by_id(
        &ids,
        num_classes,
        preds.keys().cloned().collect(),
        |id, row| {
            let Some(v) = preds.get(id) else { return false };
            for &(l, s) in v {
                row[l] = s;
            }
            true
        },
    );
    let n = ids.len();
    Ok((
        Scored {
            num_videos: n,
            num_classes,
            scores,
            labels,
        },
        report,
    ))
}

/// GAP of scoring every test video by the training split's class frequencies: the trivial
/// baseline a model must beat.
pub fn class_prior_gap(cfg: &crate::config::Config) -> Result<f64> {
    let c = cfg.MODEL.head.num_classes;
    use crate::config::Split;
    let paths = |split: Split| -> Result<Vec<String>> {
        cfg.split(split)
            .file_path
            .as_ref()
            .map(|p| p.to_vec())
            .ok_or_else(|| Error::Invalid(format!("DATASET.{split}.file_path is not set")))
    };
    let (_, train) = shard_labels(&paths(Split::Train)?, c)?;
    let mut freq = vec![0f64; c];
    for row in train.chunks_exact(c) {
        for (f, &l) in freq.iter_mut().zip(row) {
            *f += l as f64;
        }
    }
    let (ids, labels) = shard_labels(&paths(Split::Test)?, c)?;
    let scores = freq.repeat(ids.len());
    let s = Scored {
        num_videos: ids.len(),
        num_classes: c,
        scores,
        labels,
    };
    Ok(evaluate_dense(&s, &EvalOptions::default()).gap)
}

/// Video ids and multi-hot label rows `[N, C]` of every video in the shards (either level).
/// The level of a shard's first record (PaddleVideo pickles are frame level).
fn first_record_level(path: &Path) -> Result<Level> {
    if crate::data::sources::shard_kind(path) == crate::data::sources::ShardKind::Pickle {
        return Ok(Level::Frame);
    }
    let mut r = crate::data::tfrecord::RecordReader::open(path)?;
    let mut buf = Vec::new();
    match r.next_into(&mut buf)? {
        Some(_) => Ok(crate::data::video::summarize(&buf)
            .map(|s| s.level)
            .unwrap_or(Level::Video)),
        None => Err(Error::Invalid(format!(
            "{}: file is empty (0 records)",
            path.display()
        ))),
    }
}

fn shard_labels(
    label_inputs: &[impl AsRef<std::ffi::OsStr>],
    num_classes: usize,
) -> Result<(Vec<String>, Vec<u8>)> {
    let files = expand_paths(label_inputs, None)?;
    let mut ids = Vec::new();
    let mut labels = Vec::new();
    for f in &files {
        // Labels only: read at the file's own level (from its first record), one frame at most.
        let level = first_record_level(f)?;
        let spec = FeatureSpec {
            level,
            num_classes,
            max_frames: 1,
            ..Default::default()
        };
        read_shard(f, &spec, false, |v| {
            ids.push(v.id.clone());
            let mut row = vec![0u8; num_classes];
            for &l in &v.labels {
                row[l as usize] = 1;
            }
            labels.extend(row);
            true
        })?;
    }
    let mut seen = std::collections::HashSet::new();
    let dups: Vec<&String> = ids.iter().filter(|id| !seen.insert(*id)).collect();
    if let Some(first) = dups.first() {
        tracing::warn!(
            "the label shards hold {} duplicate video id(s), e.g. '{first}': each copy counts as a video in the metrics",
            dups.len()
        );
    }
    Ok((ids, labels))
}

/// Score rows in the shards' video order: `fill(id, row)` writes a video's scores and says
/// whether it had any. Classes without a score stay −∞ ("not predicted": out of the GAP pool;
/// the video's positives still count, as on Kaggle). Ids on one side only are reported.
fn join_by_id(
    ids: &[String],
    num_classes: usize,
    predicted: Vec<String>,
    mut fill: impl FnMut(&str, &mut [f64]) -> bool,
) -> (Vec<f64>, IdReport) {
    let mut scores = vec![f64::NEG_INFINITY; ids.len() * num_classes];
    let mut report = IdReport::default();
    for (i, id) in ids.iter().enumerate() {
        if !fill(id, &mut scores[i * num_classes..(i + 1) * num_classes]) {
            report.labelled_without_prediction.push(id.clone());
        }
    }
    let known: std::collections::HashSet<&String> = ids.iter().collect();
    report.predicted_without_labels = predicted
        .into_iter()
        .filter(|id| !known.contains(id))
        .collect();
    report.predicted_without_labels.sort();
    (scores, report)
}

/// The scores of a `.npy`, or an `.npz`'s `predictions` (or its only array), with the `.npz`'s
/// own string `ids` when it has them (what `predict --format npz` writes).
fn read_score_array(scores_path: &Path) -> Result<(npy::NpyArray, Option<Vec<String>>)> {
    if scores_path.extension().and_then(|e| e.to_str()) == Some("npy") {
        return Ok((npy::read_npy(scores_path)?, None));
    }
    let arrays = npy::read_npz(scores_path)?;
    let names: Vec<String> = arrays.iter().map(|(k, _)| k.clone()).collect();
    let npz_ids = arrays
        .iter()
        .find(|(k, a)| k == "ids" && !a.dtype.is_numeric())
        .map(|(_, a)| a.to_strings());
    let only = arrays.len() == 1;
    match arrays.into_iter().find(|(k, _)| k == "predictions" || only) {
        Some((_, t)) => Ok((t, npz_ids)),
        None => Err(Error::Invalid(format!(
            "{}: no 'predictions' array (found {names:?})",
            scores_path.display()
        ))),
    }
}

/// The video id of each score row, and where they came from (to name in errors): `--ids`
/// (one per line), else the `.npz`'s `ids` array.
fn score_row_ids(
    scores_path: &Path,
    ids_path: Option<&Path>,
    npz_ids: Option<Vec<String>>,
) -> Result<(Vec<String>, String)> {
    Ok(match (ids_path, npz_ids) {
        (Some(f), _) => {
            let text = crate::data::files::read_regular_text(f, 4 << 30, "video id list")?;
            let ids = text
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            (ids, f.display().to_string())
        }
        (None, Some(ids)) => (ids, format!("{} (its ids array)", scores_path.display())),
        (None, None) => {
            return Err(Error::Invalid(format!(
                "{}: --scores with --labels needs the row ids: --ids FILE (one video id per score row), or an .npz with an 'ids' array (as `yt8m predict --format npz` writes)",
                scores_path.display()
            )));
        }
    })
}

/// An .npz / .npy of scores `[N, C]` (the `.npz` array `predictions`, or its only array) with
/// one video id per line in `ids_path` (row order), against labels read from shards.
pub fn read_scores_with_labels(
    scores_path: &Path,
    ids_path: Option<&Path>,
    label_inputs: &[impl AsRef<std::ffi::OsStr>],
    num_classes: Option<usize>,
) -> Result<(Scored, IdReport)> {
    let bad = |m: String| Error::Invalid(format!("{}: {m}", scores_path.display()));
    let (p, npz_ids) = read_score_array(scores_path)?;
    if !p.dtype.is_numeric() {
        return Err(bad("'predictions' holds strings, not scores".into()));
    }
    let size = p.shape.clone();
    // Without --num-classes the array's width is the label space.
    let num_classes = num_classes.or(size.get(1).copied()).unwrap_or(0);
    if size.len() != 2 || size[1] != num_classes || num_classes == 0 {
        return Err(bad(format!(
            "scores have shape {size:?}, expected [videos, {num_classes}] (--num-classes)"
        )));
    }
    check_finite(&p, num_classes, &scores_path.display().to_string())?;
    let (row_ids, ids_source) = score_row_ids(scores_path, ids_path, npz_ids)?;
    if row_ids.len() != size[0] {
        return Err(Error::Invalid(format!(
            "{ids_source}: {} ids for {} score rows in {}",
            row_ids.len(),
            size[0],
            scores_path.display()
        )));
    }
    let dense = p.to_f64();
    let row_of: HashMap<&str, usize> = row_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let (ids, labels) = shard_labels(label_inputs, num_classes)?;
    let (scores, report) = join_by_id(&ids, num_classes, row_ids.clone(), |id, row| {
        let Some(&r) = row_of.get(id) else {
            return false;
        };
        row.copy_from_slice(&dense[r * num_classes..(r + 1) * num_classes]);
        true
    });
    Ok((
        Scored {
            num_videos: ids.len(),
            num_classes,
            scores,
            labels,
        },
        report,
    ))
}
