//! `yt8m inspect`: what a shard holds, checked record by record (both CRCs, the protobuf, the
//! frame widths), without a model config.

use super::sources::{ShardKind, shard_kind};
use super::tfrecord::RecordReader;
use super::video::{self, Level};
use crate::error::{DataError, DataErrorKind, Location};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Serialize, Clone)]
pub struct Stat {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

fn stat(v: &[usize]) -> Option<Stat> {
    if v.is_empty() {
        return None;
    }
    Some(Stat {
        min: *v.iter().min().unwrap() as f64,
        mean: v.iter().sum::<usize>() as f64 / v.len() as f64,
        max: *v.iter().max().unwrap() as f64,
    })
}

#[derive(Debug, Serialize, Clone)]
pub struct FileReport {
    pub path: String,
    pub format: &'static str,
    pub bytes: u64,
    pub records: usize,
    /// Both CRCs of every record verified (TFRecord only).
    pub crc_ok: bool,
    pub corrupt_records: usize,
    pub errors: Vec<String>,
    /// Byte ranges skipped to resynchronise after broken headers (`--skip-corrupt`).
    pub skipped_bytes: Vec<String>,
    /// "frame", "video", "mixed" or "unknown".
    pub level: String,
    /// "2017" (`video_id`), "2018" (`id`), "2019" (`id` + segment ratings).
    pub schema: String,
    pub id_key: Option<String>,
    /// Feature lists (frame level) or float features (video level) with their widths.
    pub features: BTreeMap<String, usize>,
    pub frames: Option<Stat>,
    pub videos_over_300_frames: usize,
    pub labels_per_video: Option<Stat>,
    pub label_min: Option<i64>,
    pub label_max: Option<i64>,
    pub videos_without_labels_key: usize,
    pub id_length: Option<Stat>,
    /// Suffix shared by every id (2018 shards end in a 2-char shard code), if any.
    pub id_common_suffix: Option<String>,
    pub first_ids: Vec<String>,
}

fn common_suffix(ids: &[String]) -> Option<String> {
    let first = ids.first()?;
    let mut n = first.len();
    for id in ids {
        let common = first
            .bytes()
            .rev()
            .zip(id.bytes().rev())
            .take_while(|(a, b)| a == b)
            .count();
        n = n.min(common);
    }
    (n > 0 && n < first.len()).then(|| first[first.len() - n..].to_string())
}

struct Acc {
    levels: BTreeMap<&'static str, usize>,
    id_keys: BTreeMap<&'static str, usize>,
    features: BTreeMap<String, usize>,
    frames: Vec<usize>,
    nlabels: Vec<usize>,
    lmin: Option<i64>,
    lmax: Option<i64>,
    no_labels: usize,
    ids: Vec<String>,
    segments: bool,
}

impl Acc {
    /// Counts one TFRecord record: its level, id key, features (with widths), frames, labels.
    fn record(&mut self, s: video::RecordSummary) {
        *self
            .levels
            .entry(match s.level {
                Level::Frame => "frame",
                Level::Video => "video",
            })
            .or_default() += 1;
        if let Some(k) = s.id_key {
            *self.id_keys.entry(k).or_default() += 1;
        }
        self.segments |= s.has_segments;
        match s.level {
            Level::Frame => {
                for (name, n, w) in &s.lists {
                    if *n > 0 {
                        self.features.entry(name.clone()).or_insert(*w);
                    }
                }
                self.frames.push(s.lists.first().map(|l| l.1).unwrap_or(0));
            }
            Level::Video => {
                for (name, n) in &s.floats {
                    self.features.entry(name.clone()).or_insert(*n);
                }
            }
        }
        self.labels(s.labels.as_deref());
        if let Some(id) = s.id {
            self.ids.push(id);
        }
    }

    fn new() -> Self {
        Acc {
            levels: BTreeMap::new(),
            id_keys: BTreeMap::new(),
            features: BTreeMap::new(),
            frames: vec![],
            nlabels: vec![],
            lmin: None,
            lmax: None,
            no_labels: 0,
            ids: vec![],
            segments: false,
        }
    }
    fn labels(&mut self, l: Option<&[i64]>) {
        match l {
            None => self.no_labels += 1,
            Some(l) => {
                self.nlabels.push(l.len());
                for &x in l {
                    self.lmin = Some(self.lmin.map_or(x, |m| m.min(x)));
                    self.lmax = Some(self.lmax.map_or(x, |m| m.max(x)));
                }
            }
        }
    }
    fn finish(
        self,
        path: &Path,
        format: &'static str,
        records: usize,
        corrupt: usize,
        errors: Vec<String>,
    ) -> FileReport {
        let level = match self.levels.len() {
            0 => "unknown".to_string(),
            1 => self.levels.keys().next().unwrap().to_string(),
            _ => "mixed".to_string(),
        };
        let id_key = self.id_keys.keys().next().map(|s| s.to_string());
        let schema = if id_key.as_deref() == Some("video_id") {
            "2017"
        } else if self.segments {
            "2019"
        } else if id_key.is_some() {
            "2018"
        } else {
            "unknown"
        };
        let id_lens: Vec<usize> = self.ids.iter().map(|s| s.len()).collect();
        FileReport {
            path: path.display().to_string(),
            format,
            bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            records,
            crc_ok: corrupt == 0,
            corrupt_records: corrupt,
            errors,
            skipped_bytes: Vec::new(),
            level,
            schema: schema.to_string(),
            id_key,
            features: self.features,
            videos_over_300_frames: self.frames.iter().filter(|&&f| f > 300).count(),
            frames: stat(&self.frames),
            labels_per_video: stat(&self.nlabels),
            label_min: self.lmin,
            label_max: self.lmax,
            videos_without_labels_key: self.no_labels,
            id_length: stat(&id_lens),
            id_common_suffix: common_suffix(&self.ids),
            first_ids: self.ids.iter().take(3).cloned().collect(),
        }
    }
}

/// A PaddleVideo pickle: frame-level by construction, rgb 1024 and audio 128.
fn inspect_pickle(path: &Path) -> Result<FileReport, DataError> {
    let mut acc = Acc::new();
    let spec = video::FeatureSpec {
        num_classes: usize::MAX,
        max_frames: usize::MAX,
        ..Default::default()
    };
    let vids = super::sources::read_paddle_pickle(path, &spec)?;
    for v in &vids {
        *acc.levels.entry("frame").or_default() += 1;
        acc.frames.push(v.total_frames);
        let l: Vec<i64> = v.labels.iter().map(|&x| x as i64).collect();
        acc.labels(v.has_labels.then_some(&l[..]));
        acc.ids.push(v.id.clone());
    }
    acc.features.insert("feature (rgb)".into(), 1024);
    acc.features.insert("audio".into(), 128);
    Ok(acc.finish(path, "paddlevideo-pickle", vids.len(), 0, vec![]))
}

/// Inspects one file. Corrupt records are an error unless `skip_corrupt`, in which case they
/// are counted in the report.
pub fn inspect_file(path: &Path, skip_corrupt: bool) -> Result<FileReport, DataError> {
    if shard_kind(path) == ShardKind::Pickle {
        return inspect_pickle(path);
    }
    let mut acc = Acc::new();
    let mut r = RecordReader::open(path)?;
    let mut buf = Vec::new();
    let mut records = 0;
    let mut corrupt = 0;
    let mut errors = Vec::new();
    loop {
        let rec = match r.next_into(&mut buf) {
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err(e) if skip_corrupt => {
                corrupt += 1;
                errors.push(e.to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        let s = match video::summarize(&buf) {
            Ok(s) => s,
            Err(e) => {
                let err = DataError::new(
                    DataErrorKind::Corrupt,
                    Location::file(path).record(rec.index, rec.offset),
                    format!("not a valid Example/SequenceExample: {}", e.0),
                );
                if skip_corrupt {
                    corrupt += 1;
                    errors.push(err.to_string());
                    continue;
                }
                return Err(err);
            }
        };
        records += 1;
        acc.record(s);
    }
    if records == 0 && corrupt == 0 {
        return Err(DataError::new(
            DataErrorKind::Empty,
            Location::file(path),
            "file is empty (0 records)",
        ));
    }
    let mut rep = acc.finish(path, "tfrecord", records, corrupt, errors);
    rep.skipped_bytes = r.skip_report();
    Ok(rep)
}

fn fmt_stat(s: &Option<Stat>) -> String {
    match s {
        Some(s) => format!("{}/{:.1}/{}", s.min, s.mean, s.max),
        None => "-".into(),
    }
}

/// The human table.
pub fn render_table(reports: &[FileReport]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<40} {:>7} {:>4} {:>6} {:>6} {:>15} {:>12} {:>11} {:>7}\n",
        "file",
        "records",
        "crc",
        "level",
        "schema",
        "frames min/mean/max",
        "labels/video",
        "label range",
        "no-lbl"
    ));
    let base = |r: &FileReport| {
        Path::new(&r.path)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| r.path.clone())
    };
    // Base names while they tell the files apart; the paths as given once two share one
    // (`inspect a/ b/` used to print two indistinguishable `train0000.tfrecord` rows).
    let mut seen = std::collections::HashSet::new();
    let unique = reports.iter().all(|r| seen.insert(base(r)));
    for r in reports {
        let name = if unique { base(r) } else { r.path.clone() };
        let range = match (r.label_min, r.label_max) {
            (Some(a), Some(b)) => format!("{a}..{b}"),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<40} {:>7} {:>4} {:>6} {:>6} {:>15} {:>12} {:>11} {:>7}\n",
            name,
            r.records,
            if r.crc_ok { "ok" } else { "BAD" },
            r.level,
            r.schema,
            fmt_stat(&r.frames),
            fmt_stat(&r.labels_per_video),
            range,
            r.videos_without_labels_key
        ));
        let feats: Vec<String> = r
            .features
            .iter()
            .map(|(k, v)| format!("{k}[{v}]"))
            .collect();
        out.push_str(&format!(
            "  features: {}; ids: {} (len {}, suffix {}){}\n",
            feats.join(", "),
            r.first_ids.join(", "),
            fmt_stat(&r.id_length),
            r.id_common_suffix.as_deref().unwrap_or("-"),
            if r.videos_over_300_frames > 0 {
                format!(
                    "; {} videos > 300 frames (truncated to max_frames when read)",
                    r.videos_over_300_frames
                )
            } else {
                String::new()
            }
        ));
        for e in r.errors.iter().take(5) {
            out.push_str(&format!("  corrupt: {e}\n"));
        }
        for e in &r.skipped_bytes {
            out.push_str(&format!("  {e}\n"));
        }
    }
    let total: usize = reports.iter().map(|r| r.records).sum();
    out.push_str(&format!("{} file(s), {} record(s)\n", reports.len(), total));
    out
}
