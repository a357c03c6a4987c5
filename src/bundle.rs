//! `yt8m export` bundles and their loading: everything `predict` (or another runtime) needs
//! in one directory.
//!
//! | file | content |
//! |---|---|
//! | `model.safetensors` | weights, PaddleVideo parameter names |
//! | `config.yaml` | the resolved config (model shape, feature names and widths, max_frames) |
//! | `vocabulary.csv` | `Index,Name` for every class |
//! | `model.onnx` | the same network as a standard ONNX graph (see [`crate::onnx`]) |
//! | `MODEL_CARD.md` | data, metrics of the last test, date, weights sha256 |
//! | `bundle.json` | manifest: format, architecture, inputs, sha256 of every file |

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::runtime::{sha256_file, write_atomic};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const BUNDLE_FORMAT: &str = "yt8m-bundle/1";
const VOCAB_2018: &str = include_str!("../assets/yt8m_2018_vocabulary.csv");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub architecture: String,
    pub num_classes: usize,
    pub level: String,
    pub feature_names: Vec<String>,
    pub feature_dims: Vec<usize>,
    pub max_frames: usize,
    pub files: BTreeMap<String, String>,
    pub created_unix: u64,
    pub yt8m_version: String,
}

/// Parses an `Index,Name[,...]` CSV into names by index (the `csv` crate: class names contain
/// commas and quotes, e.g. `"Hair Clipper, Beauty"`). A BOM and an `Index,...` header line
/// are accepted.
pub fn parse_vocabulary(text: &str, source: &str, num_classes: usize) -> Result<Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut names = vec![String::new(); num_classes];
    let mut seen = vec![false; num_classes];
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    for (k, rec) in rdr.records().enumerate() {
        let line = |r: &csv::StringRecord| r.position().map(|p| p.line()).unwrap_or(k as u64 + 1);
        let rec = rec.map_err(|e| Error::Invalid(format!("{source}: not valid CSV: {e}")))?;
        let ln = line(&rec);
        if k == 0
            && rec
                .get(0)
                .is_some_and(|f| f.trim().eq_ignore_ascii_case("index"))
        {
            continue;
        }
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let bad = || {
            Error::Invalid(format!(
                "{source}:{ln}: expected 'Index,Name,...', got '{}'",
                rec.iter().collect::<Vec<_>>().join(",")
            ))
        };
        let idx: usize = rec
            .get(0)
            .and_then(|f| f.trim().parse().ok())
            .ok_or_else(bad)?;
        let name = rec.get(1).ok_or_else(bad)?.to_string();
        if idx >= num_classes {
            return Err(Error::Invalid(format!(
                "{source}:{ln}: class index {idx} ≥ num_classes {num_classes}"
            )));
        }
        if seen[idx] {
            return Err(Error::Invalid(format!(
                "{source}:{ln}: class {idx} is named twice"
            )));
        }
        names[idx] = name;
        seen[idx] = true;
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(Error::Invalid(format!(
            "{source}: no name for class {missing} (the vocabulary must cover 0..{num_classes})"
        )));
    }
    Ok(names)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The vocabulary for a config: a given file, else the shipped 2018 one for 3862 classes,
/// else `class_N`.
pub fn vocabulary_for(num_classes: usize, path: Option<&Path>) -> Result<Vec<String>> {
    match path {
        Some(p) => {
            let text = crate::data::files::read_regular_text(p, 256 << 20, "vocabulary CSV")?;
            parse_vocabulary(&text, &p.display().to_string(), num_classes)
        }
        None if num_classes == 3862 => {
            parse_vocabulary(VOCAB_2018, "assets/yt8m_2018_vocabulary.csv", 3862)
        }
        None => Ok((0..num_classes).map(|i| format!("class_{i}")).collect()),
    }
}

/// Options of `yt8m export`.
pub struct ExportOptions {
    pub output: PathBuf,
    pub vocabulary: Option<PathBuf>,
    /// Also write model.onnx.
    pub onnx: bool,
    pub onnx_input: crate::onnx::InputKind,
}

/// Writes a bundle for `model` (already loaded from `weights`).
pub fn export(
    cfg: &Config,
    model: &Model,
    weights: &Path,
    opt: &ExportOptions,
) -> Result<Manifest> {
    // Everything is written into a temporary directory beside the destination, which is then
    // swapped in whole: a failed export leaves no half bundle and the previous one intact.
    let dest = &opt.output;
    let tmp_dir = staging_dir(dest)?;
    let out = &tmp_dir.0;
    let c = cfg.MODEL.head.num_classes;
    let names = vocabulary_for(c, opt.vocabulary.as_deref())?;
    model.save_safetensors(&out.join("model.safetensors"))?;
    crate::runtime::sync_file(&out.join("model.safetensors"))?;
    write_atomic(&out.join("config.yaml"), cfg.to_yaml().as_bytes())?;
    let mut vocab = String::from("Index,Name\n");
    for (i, n) in names.iter().enumerate() {
        vocab.push_str(&format!("{i},{}\n", csv_field(n)));
    }
    write_atomic(&out.join("vocabulary.csv"), vocab.as_bytes())?;
    if opt.onnx {
        let bytes = crate::onnx::export_onnx_with(model, &cfg.input_names(), opt.onnx_input)?;
        write_atomic(&out.join("model.onnx"), &bytes)?;
    }
    let weights_sha = sha256_file(&out.join("model.safetensors"))?;
    // Metrics of the last `yt8m test` of exactly these weights, if there is one.
    let (report_path, report) = match crate::infer::report_for(weights) {
        Some((p, r)) => (p, Some(r)),
        None => (PathBuf::new(), None),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let arch = model.arch.name().to_string();
    let card = model_card(
        cfg,
        model,
        weights,
        &weights_sha,
        now,
        report_path.as_path(),
        report.as_ref(),
    );
    write_atomic(&out.join("MODEL_CARD.md"), card.as_bytes())?;
    let mut files = BTreeMap::new();
    for f in [
        "model.safetensors",
        "config.yaml",
        "vocabulary.csv",
        "MODEL_CARD.md",
        "model.onnx",
    ] {
        let p = out.join(f);
        if p.exists() && (f != "model.onnx" || opt.onnx) {
            files.insert(f.to_string(), sha256_file(&p)?);
        }
    }
    let man = Manifest {
        format: BUNDLE_FORMAT.into(),
        architecture: arch,
        num_classes: c,
        level: cfg.MODEL.level.to_string(),
        feature_names: cfg.input_names(),
        feature_dims: cfg.MODEL.head.feature_dims.clone(),
        max_frames: cfg.DATASET.max_frames,
        files,
        created_unix: now,
        yt8m_version: env!("CARGO_PKG_VERSION").into(),
    };
    write_atomic(
        &out.join("bundle.json"),
        serde_json::to_string_pretty(&man).unwrap().as_bytes(),
    )?;
    crate::runtime::replace_dir(out, dest)?;
    Ok(man)
}

/// A fresh temporary directory beside `dest`, once `dest` is known to be a bundle directory,
/// an empty one, or new (export replaces it whole, so nothing else may be there).
fn staging_dir(dest: &Path) -> Result<TempDir> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    if dest.exists() && !dest.is_dir() {
        return Err(Error::Invalid(format!(
            "--out {} exists and is not a directory\n  hint: give a new or bundle directory",
            dest.display()
        )));
    }
    // An existing directory is replaced whole, so it must be a bundle (or empty).
    if dest.is_dir()
        && !dest.join("bundle.json").is_file()
        && std::fs::read_dir(dest)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::Invalid(format!(
            "--out {} exists and is not a bundle (no bundle.json); export replaces its directory whole\n  hint: give a new directory, or an existing bundle to replace",
            dest.display()
        )));
    }
    let tmp_dir = TempDir(parent.join(format!(
            ".{}.tmp-{}",
            dest.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "bundle".into()),
            std::process::id()
        )));
    if tmp_dir.0.exists() {
        std::fs::remove_dir_all(&tmp_dir.0).map_err(|e| Error::io(&tmp_dir.0, e))?;
    }
    std::fs::create_dir_all(&tmp_dir.0).map_err(|e| Error::io(&tmp_dir.0, e))?;
    Ok(tmp_dir)
}

/// MODEL_CARD.md: what the model is, what it was trained on, the metrics of the last `yt8m
/// test` of exactly these weights (`report`, found at `report_path`), and the vocabulary's
/// licence.
fn model_card(
    cfg: &Config,
    model: &Model,
    weights: &Path,
    weights_sha: &str,
    now: u64,
    report_path: &Path,
    report: Option<&crate::infer::TestReport>,
) -> String {
    let arch = model.arch.name();
    let c = cfg.MODEL.head.num_classes;
    let mut card = format!(
        "# {arch} YouTube-8M classifier\n\nExported by yt8m {} (unix time {now}).\n\n## Model\n\n- architecture: {arch} ({} parameters)\n- classes: {c}\n- input level: {}\n- features: {:?} with widths {:?} (uint8 quantized frames are dequantized as q·4/255 − 1.9921875)\n{}- source weights: `{}`\n- weights sha256: `{weights_sha}`\n\n",
        env!("CARGO_PKG_VERSION"),
        model.num_parameters(),
        cfg.MODEL.level,
        cfg.input_names(),
        cfg.MODEL.head.feature_dims,
        // Only frame-level models see frames.
        if cfg.MODEL.level == crate::data::Level::Frame {
            format!("- frames used: the first {}\n", cfg.DATASET.max_frames)
        } else {
            String::new()
        },
        weights.display()
    );
    card.push_str("## Data\n\n");
    let converted = weights.extension().and_then(|e| e.to_str()) == Some("pdparams");
    if converted {
        // The config says nothing true about how someone else's weights were trained.
        card.push_str(&format!(
            "- converted from `{}` (PaddleVideo weights); how they were trained is not recorded here\n\n## Metrics\n\n",
            weights.display()
        ));
    } else {
        let train = cfg
            .DATASET
            .train
            .file_path
            .as_ref()
            .map(|p| p.to_vec().join(", "))
            .unwrap_or_else(|| "(not recorded)".into());
        card.push_str(&format!(
            "- trained on: {train}\n- trained for {} epoch(s), batch {}\n\n## Metrics\n\n",
            cfg.epochs, cfg.DATASET.batch_size
        ));
    }
    match report {
        Some(r) => {
            let m = &r.metrics;
            let mode = serde_json::to_value(m.mode)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            card.push_str(&format!(
                "From `{}` ({} videos, {mode} metrics, top_k {}):\n\n| Hit@1 | PERR | GAP | mAP |\n|---|---|---|---|\n| {:.4} | {:.4} | {:.4} | {} |\n\n",
                report_path.display(),
                r.num_videos,
                m.top_k,
                m.hit_at_one,
                m.perr,
                m.gap,
                m.map.map(|x| format!("{x:.4}")).unwrap_or("-".into())
            ));
        }
        None => card.push_str("No test report found beside the weights; run `yt8m test -c CONFIG -w WEIGHTS` before exporting to record metrics here.\n\n"),
    }
    card.push_str("## Vocabulary\n\n`vocabulary.csv`. The YouTube-8M 2018 vocabulary is © Google, CC BY 4.0.\n");
    card
}

/// Removes a temporary directory unless it was moved into place.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `dir/name` when `name` is a plain file name (no separator, not `.`/`..`) of a regular file
/// (no symlink, device or FIFO): what a bundle may list. A hostile bundle.json naming
/// `../../etc/shadow` or `/dev/zero` is refused before anything is opened.
fn plain_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let bad = |m: String| Error::Corrupt(format!("bundle {}: {m}", dir.display()));
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || Path::new(name).is_absolute()
    {
        return Err(bad(format!(
            "bundle.json names '{name}', which is not a file name inside the bundle\n  hint: a bundle lists only its own files; re-export it"
        )));
    }
    let p = dir.join(name);
    match std::fs::symlink_metadata(&p) {
        Err(_) => Err(bad(format!(
            "{name} is missing\n  hint: re-export the bundle"
        ))),
        Ok(m) if m.is_file() => Ok(p),
        Ok(m) => Err(bad(format!(
            "{name} is not a regular file ({})\n  hint: re-export the bundle",
            if m.file_type().is_symlink() {
                "a symbolic link"
            } else if m.is_dir() {
                "a directory"
            } else {
                "a device, FIFO or socket"
            }
        ))),
    }
}

/// Reads at most `limit` bytes of a file, refusing a larger one.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut v = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut v)
        .map_err(|e| Error::io(path, e))?;
    if v.len() as u64 > limit {
        return Err(Error::Corrupt(format!(
            "{}: larger than {limit} bytes; not a bundle manifest",
            path.display()
        )));
    }
    Ok(v)
}

/// A loaded bundle.
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub config: Config,
    pub model: Model,
    pub names: Vec<String>,
}

/// Loads and checks a bundle: every listed file present with its sha256, the config valid, every
/// tensor of the right shape.
pub fn load(dir: &Path, device: tch::Device) -> Result<Bundle> {
    let bad = |m: String| Error::Corrupt(format!("bundle {}: {m}", dir.display()));
    let man_path = dir.join("bundle.json");
    if !man_path.exists() {
        return Err(Error::NotFound {
            path: format!("bundle {}", dir.display()),
            message: "no bundle.json\n  hint: make a bundle with `yt8m export -c CONFIG -w WEIGHTS --out DIR`"
                .into(),
        });
    }
    plain_file(dir, "bundle.json")?;
    let man_bytes = read_bounded(&man_path, 1 << 20)?;
    let man: Manifest = serde_json::from_slice(&man_bytes)
        .map_err(|e| bad(format!("bundle.json is not valid: {e}")))?;
    if man.files.len() > 64 {
        return Err(bad(format!(
            "bundle.json lists {} files; a bundle has at most a handful",
            man.files.len()
        )));
    }
    if man.format != BUNDLE_FORMAT {
        return Err(bad(format!(
            "format '{}' is not {BUNDLE_FORMAT}",
            man.format
        )));
    }
    for f in ["model.safetensors", "config.yaml", "vocabulary.csv"] {
        if !man.files.contains_key(f) {
            return Err(bad(format!("bundle.json does not list {f}")));
        }
    }
    for (f, sha) in &man.files {
        let p = plain_file(dir, f)?;
        let got = sha256_file(&p)?;
        if &got != sha {
            return Err(bad(format!(
                "{f} does not match bundle.json (sha256 {got}, expected {sha}): it was changed or replaced after export\n  hint: re-export the bundle"
            )));
        }
    }
    let config = Config::load(Some(&plain_file(dir, "config.yaml")?), &[])?;
    if config.MODEL.head.num_classes != man.num_classes {
        return Err(bad(format!(
            "config.yaml has {} classes, bundle.json {}",
            config.MODEL.head.num_classes, man.num_classes
        )));
    }
    let names = vocabulary_for(man.num_classes, Some(&plain_file(dir, "vocabulary.csv")?))?;
    let mut model = Model::new(config.architecture(), device, tch::Kind::Float);
    model.load_safetensors(&plain_file(dir, "model.safetensors")?)?;
    Ok(Bundle {
        dir: dir.to_path_buf(),
        manifest: man,
        config,
        model,
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_csv_with_quotes_commas_and_a_bom_round_trips() {
        let names = ["plain", "Hair, Beauty", "say \"hi\"", "multi\nline"];
        let mut text = String::from("\u{feff}Index,Name\n");
        for (i, n) in names.iter().enumerate() {
            text.push_str(&format!("{i},{}\n", csv_field(n)));
        }
        assert_eq!(parse_vocabulary(&text, "t", 4).unwrap(), names);
        let e = parse_vocabulary("0,a\n0,b\n", "t", 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("t:2") && e.contains("named twice"), "{e}");
        let e = parse_vocabulary("0,a\n", "t", 2).unwrap_err().to_string();
        assert!(e.contains("no name for class 1"), "{e}");
        let e = parse_vocabulary("x,a\n", "t", 1).unwrap_err().to_string();
        assert!(e.contains("t:1"), "{e}");
        // The shipped 2018 vocabulary: every class named, quoted names intact.
        let v = vocabulary_for(3862, None).unwrap();
        assert_eq!(v.len(), 3862);
        // (A few 2018 classes have no name in the official vocabulary.)
        assert!(v.iter().filter(|n| !n.is_empty()).count() > 3700);
        assert!(
            v.iter().any(|n| n.contains(',')),
            "no comma-holding name survived"
        );
    }
}
