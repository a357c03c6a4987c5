//! Run configuration. PaddleVideo's `attention_lstm_youtube8m.yaml` loads as is (its keys are
//! all known here, unused ones included); our keys extend it. Unknown keys are errors that
//! name the key and its line. `-o KEY=VALUE` overrides use the same dotted paths.

use crate::data::batch::{Loader, LoaderConfig};
use crate::data::{FeatureSpec, Level};
use crate::error::{Error, Result};
pub use crate::kinds::{
    BestMetric, DeviceSpec, DistributedMode, Dtype, LossName, Precision, Split,
};
use crate::metrics::{MetricMode, TieOrder};
use crate::model::Architecture;
pub use crate::model::{HeadConfig, NetworkName};
pub use crate::optim::{AdamVariant, Algorithm, ClipBy, LrSchedule, OptimizerName, RmsPropConfig};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;
use std::path::Path;

mod validate;
mod yaml;
pub use yaml::apply_override;
use yaml::{check_yaml_nesting, duplicate_key, inline, prune_nulls, read_config_text};

/// One or several input paths (files, directories, globs, .list files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Paths {
    One(String),
    Many(Vec<String>),
}

impl Paths {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Paths::One(s) => vec![s.clone()],
            Paths::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// PaddleVideo: "Recognizer1D".
    pub framework: String,
    pub head: HeadConfig,
    /// Ours: frame (SequenceExample) or video (Example) features.
    pub level: Level,
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            framework: "Recognizer1D".into(),
            head: HeadConfig::default(),
            level: Level::Frame,
        }
    }
}

/// One split's inputs (`DATASET.train` / `valid` / `test`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitPaths {
    /// PaddleVideo: "FeatureDataset".
    pub format: Option<String>,
    /// PaddleVideo: a .list file; ours: also TFRecord/pkl files, directories, globs, or a list.
    pub file_path: Option<Paths>,
    /// PaddleVideo: joined to relative entries of .list files.
    pub data_prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetSection {
    pub batch_size: usize,
    /// PaddleVideo's worker processes; here: decoder threads (0 = automatic).
    pub num_workers: usize,
    pub shuffle_valid: bool,
    pub valid_batch_size: Option<usize>,
    pub test_batch_size: Option<usize>,
    pub train: SplitPaths,
    pub valid: SplitPaths,
    pub test: SplitPaths,
    /// Ours: shuffle the training split (shards and a shuffle buffer).
    pub shuffle: bool,
    pub max_frames: usize,
    pub shuffle_buffer: usize,
    pub bucket_by_length: bool,
    pub bucket_window: usize,
    pub skip_corrupt: bool,
    pub drop_last: bool,
    pub prefetch: usize,
    /// Ours: the 2019 segment task (the starter's `--segment_labels`): every split's examples
    /// are the videos' rated 5-frame segments, labelled with the classes rated positive.
    pub segment_labels: bool,
}

impl Default for DatasetSection {
    fn default() -> Self {
        DatasetSection {
            batch_size: 128,
            num_workers: 0,
            shuffle_valid: true,
            valid_batch_size: None,
            test_batch_size: None,
            train: SplitPaths::default(),
            valid: SplitPaths::default(),
            test: SplitPaths::default(),
            shuffle: true,
            max_frames: 300,
            shuffle_buffer: 2048,
            bucket_by_length: true,
            bucket_window: 16,
            skip_corrupt: false,
            drop_last: true,
            prefetch: 4,
            segment_labels: false,
        }
    }
}

/// PaddleVideo's PIPELINE section: only `decode.num_classes` matters; kept for compatibility.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSection {
    pub train: Option<PipelineSplit>,
    pub valid: Option<PipelineSplit>,
    pub test: Option<PipelineSplit>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSplit {
    pub decode: Option<Decode>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Decode {
    pub name: String,
    pub num_classes: Option<usize>,
    /// FeatureDecoder's padding length (512); not needed here (batches pad to their longest).
    pub max_len: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeightDecay {
    pub name: String,
    pub value: f64,
}

impl Default for WeightDecay {
    fn default() -> Self {
        WeightDecay {
            name: "L2".into(),
            value: 4e-4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerSection {
    /// `RMSProp` (PaddleVideo's, centered) or `Adam` (TensorFlow 1's, the starter's).
    pub name: OptimizerName,
    pub centered: bool,
    pub learning_rate: LrSchedule,
    pub weight_decay: WeightDecay,
    /// Ours (Paddle defaults).
    pub rho: f64,
    /// Unset: RMSProp 1e-6 (Paddle), Adam 1e-8 (TensorFlow).
    pub epsilon: Option<f64>,
    pub momentum: f64,
    /// Adam's moment decays (TensorFlow's 0.9 / 0.999).
    pub beta1: f64,
    pub beta2: f64,
    /// Ours: `tensorflow` (TF1's Adam, the starter's) or `paddle` (Paddle's, ε on the
    /// bias-corrected moments: the legacy video zoo's).
    pub adam_variant: AdamVariant,
    /// Ours: clip gradient norms to this (0 = off, PaddleVideo's setting; the starter's 1.0).
    pub grad_clip: f64,
    /// Ours: `global` (all gradients' norm) or `tensor` (each gradient's own, the starter's).
    pub grad_clip_by: ClipBy,
}

impl Default for OptimizerSection {
    fn default() -> Self {
        let r = RmsPropConfig::default();
        OptimizerSection {
            name: OptimizerName::RmsProp,
            centered: true,
            learning_rate: LrSchedule::default(),
            weight_decay: WeightDecay::default(),
            rho: r.rho,
            epsilon: None,
            momentum: r.momentum,
            beta1: 0.9,
            beta2: 0.999,
            adam_variant: AdamVariant::Tensorflow,
            grad_clip: 0.0,
            grad_clip_by: ClipBy::Global,
        }
    }
}

impl OptimizerSection {
    /// ε of the configured optimizer.
    pub fn epsilon(&self) -> f64 {
        self.epsilon.unwrap_or(match self.name {
            OptimizerName::RmsProp => RmsPropConfig::default().epsilon,
            OptimizerName::Adam => 1e-8,
        })
    }

    /// The update rule with its constants.
    pub fn algorithm(&self) -> Algorithm {
        match self.name {
            OptimizerName::RmsProp => Algorithm::RmsProp(RmsPropConfig {
                rho: self.rho,
                epsilon: self.epsilon(),
                momentum: self.momentum,
                centered: self.centered,
            }),
            OptimizerName::Adam => Algorithm::Adam {
                beta1: self.beta1,
                beta2: self.beta2,
                epsilon: self.epsilon(),
                variant: self.adam_variant,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricSection {
    /// PaddleVideo: "HitOneMetric".
    pub name: String,
    pub num_class: Option<usize>,
    /// PaddleVideo accepts and ignores this (5); GAP uses `gap_top_k`.
    pub top_k: Option<usize>,
    /// Ours.
    pub gap_top_k: usize,
    pub mode: MetricMode,
    pub tie_order: TieOrder,
}

impl Default for MetricSection {
    fn default() -> Self {
        MetricSection {
            name: "HitOneMetric".into(),
            num_class: None,
            top_k: None,
            gap_top_k: 20,
            mode: MetricMode::Official,
            tie_order: TieOrder::Official,
        }
    }
}

/// PaddleVideo's INFERENCE section (a copy of the head's widths); accepted, checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceSection {
    pub name: Option<String>,
    pub num_classes: Option<usize>,
    pub feature_num: Option<usize>,
    pub feature_dims: Option<Vec<usize>>,
    pub embedding_size: Option<usize>,
    pub lstm_size: Option<usize>,
}

/// Ours: how to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// auto (CUDA if present), cpu, cuda, cuda:N.
    pub device: DeviceSpec,
    pub seed: u64,
    /// Checkpoints kept besides best and last.
    pub keep_last: usize,
    /// Metric that picks the best checkpoint: gap, hit_at_one, perr, map, loss.
    pub best_metric: BestMetric,
    pub val_interval: usize,
    /// float32 or float64.
    pub dtype: Dtype,
    /// Data-parallel training: auto (MPI when started by mpirun), mpi, nccl, none.
    pub distributed: DistributedMode,
    /// Compute type of training: fp32, or bf16 mixed precision (float32 master weights and
    /// optimizer state, bf16 LSTMs and matmuls, loss in float32); auto = bf16 where fast.
    pub precision: Precision,
    /// Ours: the training loss: `bce_sum` (PaddleVideo's sigmoid cross-entropy summed over
    /// the batch) or `cross_entropy` (the starter's `CrossEntropyLoss`: on probabilities with
    /// ε = 1e-5, summed over classes, mean over the batch).
    pub loss: LossName,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            device: DeviceSpec::Auto,
            seed: 1234,
            keep_last: 3,
            best_metric: BestMetric::Gap,
            val_interval: 1,
            dtype: Dtype::Float32,
            distributed: DistributedMode::Auto,
            precision: Precision::Fp32,
            loss: LossName::BceSum,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(non_snake_case)]
pub struct Config {
    pub MODEL: ModelSection,
    pub DATASET: DatasetSection,
    pub PIPELINE: PipelineSection,
    pub OPTIMIZER: OptimizerSection,
    pub METRIC: MetricSection,
    pub INFERENCE: InferenceSection,
    pub TRAIN: TrainSection,
    pub model_name: String,
    pub log_interval: usize,
    pub epochs: usize,
    pub save_interval: usize,
    pub log_level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            MODEL: ModelSection::default(),
            DATASET: DatasetSection::default(),
            PIPELINE: PipelineSection::default(),
            OPTIMIZER: OptimizerSection::default(),
            METRIC: MetricSection::default(),
            INFERENCE: InferenceSection::default(),
            TRAIN: TrainSection::default(),
            model_name: "AttentionLSTM".into(),
            log_interval: 20,
            epochs: 10,
            save_interval: 2,
            log_level: "INFO".into(),
        }
    }
}

/// Largest `MODEL.head.num_classes` accepted (YouTube-8M has 3862 / 4716).
pub const MAX_CLASSES: usize = 1_000_000;

fn cfg_err(path: &str, message: impl Into<String>) -> Error {
    Error::Config {
        path: path.into(),
        message: message.into(),
    }
}

/// `p` made absolute against the working directory (not canonicalized: symlinks and `..`
/// stay as written, as the user would expect to see them in messages).
fn absolute(p: &Path) -> std::path::PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    // `absolute(".")` ends in "/."; drop it so joins read naturally.
    if abs.ends_with(".") {
        abs.parent().map(Path::to_path_buf).unwrap_or(abs)
    } else {
        abs
    }
}

/// `base/p` with the leading `..` of `p` taken off `base` (canonical, so no symlink makes that
/// differ from what the kernel would do): `/repo/configs` + `../data` = `/repo/data`.
fn join_clean(base: &Path, p: &str) -> std::path::PathBuf {
    let mut out = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    let mut comps = Path::new(p).components().peekable();
    while let Some(std::path::Component::ParentDir) = comps.peek() {
        if !out.pop() {
            break;
        }
        comps.next();
    }
    for c in comps {
        if c != std::path::Component::CurDir {
            out.push(c);
        }
    }
    out
}

/// Whether a data path names something: an existing file or directory, or a glob pattern
/// matching at least one path.
fn path_matches(p: &Path) -> bool {
    let s = p.to_string_lossy();
    if s.contains(['*', '?', '[']) {
        glob::glob(&s).is_ok_and(|mut g| g.next().is_some())
    } else {
        p.exists()
    }
}

impl Config {
    /// Loads a YAML file (or the defaults when `path` is None) and applies overrides.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Config> {
        let (name, text) = match path {
            Some(p) => (p.display().to_string(), read_config_text(p)?),
            None => ("<defaults>".to_string(), String::new()),
        };
        let base = path.map(|p| {
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            absolute(dir.unwrap_or(Path::new(".")))
        });
        Self::from_yaml_in(&name, &text, overrides, base.as_deref())
    }

    /// A config from YAML text; relative data paths in it are read from the working directory
    /// (there is no file whose directory they could be relative to).
    pub fn from_yaml(name: &str, text: &str, overrides: &[String]) -> Result<Config> {
        Self::from_yaml_in(name, text, overrides, None)
    }

    /// `base`: the config file's directory, against which its relative data paths resolve.
    /// Paths given with `-o` resolve against the working directory, as any command-line path.
    /// Both become absolute, so the config saved with a run works from anywhere.
    fn from_yaml_in(
        name: &str,
        text: &str,
        overrides: &[String],
        base: Option<&Path>,
    ) -> Result<Config> {
        if let Err(e) = check_yaml_nesting(text) {
            return Err(cfg_err(name, e));
        }
        if let Some((key, first, second)) = duplicate_key(text) {
            return Err(cfg_err(
                name,
                format!(
                    "key '{key}' appears twice, on lines {first} and {second}\n  hint: keep one of them"
                ),
            ));
        }
        // Typed parse of the file first, so errors carry the file's line numbers.
        let mut cfg: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| cfg_err(name, format!("{e}\n  hint: keys are PaddleVideo's (MODEL.head, DATASET, OPTIMIZER, ...) plus ours (see configs/README.md); check the spelling")))?
        };
        if let Some(base) = base {
            cfg.resolve_data_paths(base, name);
        }
        if !text.trim().is_empty() {
            // A file without MODEL would silently train the 108 M-parameter default head.
            let raw: Value = serde_yaml_ng::from_str(text).unwrap_or(Value::Null);
            let has_model = raw.as_mapping().is_some_and(|m| m.contains_key("MODEL"))
                || overrides.iter().any(|o| o.starts_with("MODEL."));
            if !has_model {
                return Err(cfg_err(
                    name,
                    "no MODEL section: the config must say which model to build\n  hint: start from configs/attention_lstm_youtube8m.yaml (frame level) or configs/logistic_video.yaml (video level)",
                ));
            }
        }
        let cfg = if overrides.is_empty() {
            cfg
        } else {
            let base = serde_yaml_ng::to_value(&cfg).map_err(|e| cfg_err(name, e.to_string()))?;
            let mut v = base.clone();
            for o in overrides {
                apply_override(&mut v, o).map_err(|e| cfg_err(name, e))?;
            }
            serde_yaml_ng::from_value(v).map_err(|e| {
                // serde does not say where in a value tree it failed: find the override that
                // breaks the config on its own, so the message names its key.
                let culprit = overrides.iter().find(|o| {
                    let mut one = base.clone();
                    apply_override(&mut one, o).is_ok()
                        && serde_yaml_ng::from_value::<Config>(one).is_err()
                });
                let what = culprit.map(|o| format!("-o {o}")).unwrap_or_else(|| "after -o overrides".into());
                cfg_err(name, format!("{what}: {e}\n  hint: override keys use the config's dotted paths, e.g. -o DATASET.batch_size=16 -o MODEL.head.lstm_size=64"))
            })?
        };
        let mut cfg = cfg;
        // PaddleVideo's top-level `model_name` defaults to AttentionLSTM; a starter model
        // says its own name.
        if cfg.model_name == Config::default().model_name
            && cfg.MODEL.head.name != NetworkName::AttentionLstmHead
        {
            cfg.model_name = cfg.MODEL.head.name.to_string();
        }
        // What is still relative came from -o (or from text without a file): the working
        // directory's.
        cfg.resolve_data_paths(&absolute(Path::new(".")), "");
        cfg.validate(name)?;
        Ok(cfg)
    }

    /// Makes the relative `file_path` entries and `data_prefix` of every split (and
    /// `MODEL.head.eigen_file`) absolute against `base`. A config file's path that exists only relative to the working directory (as
    /// PaddleVideo's configs assume, run from its repository root) is kept that way, with a
    /// warning, so such configs still load as they are.
    fn resolve_data_paths(&mut self, base: &Path, config_name: &str) {
        let cwd = absolute(Path::new("."));
        let resolve = |p: &str, key: &str| -> String {
            if p.is_empty() || Path::new(p).is_absolute() {
                return p.to_string();
            }
            let from_base = join_clean(base, p);
            if base == cwd.as_path() || path_matches(&from_base) || !path_matches(&cwd.join(p)) {
                return from_base.display().to_string();
            }
            tracing::warn!(
                "{key}: '{p}' is not under the config's directory {} but is under the working directory {}: read from there (PaddleVideo's convention); write it relative to {config_name}'s directory or absolute to silence this",
                base.display(),
                cwd.display()
            );
            join_clean(&cwd, p).display().to_string()
        };
        for (split, sp) in [
            ("train", &mut self.DATASET.train),
            ("valid", &mut self.DATASET.valid),
            ("test", &mut self.DATASET.test),
        ] {
            let key = format!("DATASET.{split}.file_path");
            sp.file_path = sp.file_path.take().map(|fp| match fp {
                Paths::One(p) => Paths::One(resolve(&p, &key)),
                Paths::Many(v) => Paths::Many(v.iter().map(|p| resolve(p, &key)).collect()),
            });
            let key = format!("DATASET.{split}.data_prefix");
            sp.data_prefix = sp.data_prefix.take().map(|p| resolve(&p, &key));
        }
        let e = self.MODEL.head.eigen_file.take();
        self.MODEL.head.eigen_file = e.map(|p| resolve(&p, "MODEL.head.eigen_file"));
    }

    /// Parameters of the configured network, from the widths alone (saturating; u64::MAX when
    /// it overflows), so absurd widths are refused before any allocation.
    pub fn parameter_estimate(&self) -> u64 {
        self.architecture().parameter_estimate().unwrap_or(u64::MAX)
    }

    /// The network the config asks for (MODEL.head.name) with its shape.
    pub fn architecture(&self) -> Architecture {
        Architecture::from_head(&self.MODEL.head)
    }

    /// The model's input names for its level: the feature lists (frame level) or the mean
    /// features (video level).
    pub fn input_names(&self) -> Vec<String> {
        match self.MODEL.level {
            Level::Frame => self.MODEL.head.feature_names.clone(),
            Level::Video => self.MODEL.head.mean_feature_names.clone(),
        }
    }

    pub fn feature_spec(&self) -> FeatureSpec {
        let h = &self.MODEL.head;
        FeatureSpec {
            level: self.MODEL.level,
            frame_names: h.feature_names.clone(),
            mean_names: h.mean_feature_names.clone(),
            dims: h.feature_dims.clone(),
            num_classes: h.num_classes,
            max_frames: self.DATASET.max_frames,
        }
    }

    /// Loader settings for a split: train shuffles and buckets; valid/test keep order.
    pub fn loader_config(&self, split: Split) -> LoaderConfig {
        let d = &self.DATASET;
        let train = split == Split::Train;
        let batch_size = match split {
            Split::Valid => d.valid_batch_size.unwrap_or(d.batch_size),
            Split::Test => d.test_batch_size.unwrap_or(d.batch_size),
            Split::Train => d.batch_size,
        };
        LoaderConfig {
            batch_size,
            shuffle: train && d.shuffle,
            shuffle_buffer: d.shuffle_buffer,
            seed: self.TRAIN.seed,
            // Evaluation buckets too: `infer::evaluate_model` puts scores back into file order
            // (metrics depend on it), so only the padding changes.
            bucket_by_length: d.bucket_by_length,
            bucket_window: d.bucket_window,
            drop_last: train && d.drop_last,
            num_readers: d.num_workers,
            prefetch: d.prefetch,
            skip_corrupt: d.skip_corrupt,
            segments: d.segment_labels,
        }
    }

    pub fn split(&self, split: Split) -> &SplitPaths {
        match split {
            Split::Train => &self.DATASET.train,
            Split::Valid => &self.DATASET.valid,
            Split::Test => &self.DATASET.test,
        }
    }

    /// The loader of a split (`DATASET.<split>.file_path`, with `data_prefix`).
    pub fn loader(&self, split: Split) -> Result<Loader> {
        let sp = self.split(split);
        let paths = sp
            .file_path
            .as_ref()
            .map(|p| p.to_vec())
            .unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::Invalid(format!(
                "DATASET.{split}.file_path is not set\n  hint: give shards with -o DATASET.{split}.file_path='data/{split}*.tfrecord' (files, dirs, globs or .list files)"
            )));
        }
        let prefix = sp.data_prefix.as_ref().map(std::path::PathBuf::from);
        let files =
            crate::data::sources::expand_paths(&paths, prefix.as_deref()).map_err(|mut e| {
                // Say which key gave the path and where relative paths were looked for.
                let more = format!(
                    "the path comes from DATASET.{split}.file_path{}; relative paths in a config file are read from the file's directory, those given with -o from the working directory",
                    if prefix.is_some() { " (with data_prefix)" } else { "" }
                );
                e.hint = Some(match e.hint.take() {
                    Some(h) => format!("{h}; {more}"),
                    None => more,
                });
                e
            })?;
        Ok(Loader::new(
            files,
            self.feature_spec(),
            self.loader_config(split),
        ))
    }

    /// The config as saved with runs and bundles and printed by `--print-config`: keys left
    /// unset (null) and keys the model never reads are left out, so a video-level config
    /// carries no LSTM sizes or frame settings and a frame-level one no mixture count.
    /// Loading the text back gives the same model and recipe.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.to_value()).expect("config serializes")
    }

    /// [`Config::to_yaml`]'s tree.
    pub fn to_value(&self) -> Value {
        let mut v = serde_yaml_ng::to_value(self).expect("config serializes");
        let arch = self.architecture();
        if let Some(m) = v["MODEL"]["head"].as_mapping_mut() {
            let used = |k: &str| SHARED_HEAD_KEYS.contains(&k) || arch.keys().contains(&k);
            m.retain(|k, _| k.as_str().is_some_and(used));
        }
        if arch.level() == Level::Video {
            if let Some(m) = v["DATASET"].as_mapping_mut() {
                for k in ["max_frames", "bucket_by_length", "bucket_window"] {
                    m.remove(k);
                }
            }
        }
        if let Some(m) = v["OPTIMIZER"].as_mapping_mut() {
            let other: &[&str] = match self.OPTIMIZER.name {
                OptimizerName::RmsProp => &["beta1", "beta2", "adam_variant"],
                OptimizerName::Adam => &["centered", "rho", "momentum"],
            };
            for k in other {
                m.remove(*k);
            }
        }
        prune_nulls(&mut v);
        v
    }

    /// Keys whose values differ between two configs' models (resume check): the network's
    /// name, its shared widths, the keys it reads but for those that leave a trained model
    /// as it is ([`crate::model::NetworkConfig::free_keys`]), and the level.
    pub fn model_shape_diff(&self, other: &Config) -> Vec<String> {
        let (a, b) = (&self.MODEL, &other.MODEL);
        let arch = self.architecture();
        let (new, old) = (
            serde_yaml_ng::to_value(&a.head).expect("config serializes"),
            serde_yaml_ng::to_value(&b.head).expect("config serializes"),
        );
        let keys = ["name", "num_classes", "feature_dims"]
            .into_iter()
            .chain(arch.keys().iter().copied())
            .filter(|k| !arch.free_keys().contains(k));
        let mut d: Vec<String> = keys
            .filter(|&k| new[k] != old[k])
            .map(|k| format!("MODEL.head.{k}: {} → {}", inline(&old[k]), inline(&new[k])))
            .collect();
        if a.level != b.level {
            d.push(format!("MODEL.level: {:?} → {:?}", b.level, a.level));
        }
        d
    }

    /// Keys whose values differ between a run's saved config and the one it is resumed with,
    /// as `key: saved → now`. Not part of the recipe, so free to change on resume: the number of
    /// epochs (extending a run is what resume is for; a CosineWarmup schedule then stretches to
    /// the new end), logging, validation and checkpoint cadence, the device and reader threads.
    pub fn hyperparameter_diff(&self, saved: &Config) -> Vec<String> {
        let strip = |c: &Config| {
            // The saved form: keys the model never reads cannot block a resume.
            let mut v = serde_json::to_value(c.to_value()).unwrap_or_default();
            for k in ["epochs", "log_interval", "save_interval", "log_level"] {
                v[k] = serde_json::Value::Null;
            }
            for k in ["device", "keep_last", "val_interval"] {
                v["TRAIN"][k] = serde_json::Value::Null;
            }
            v["DATASET"]["num_workers"] = serde_json::Value::Null;
            v["DATASET"]["prefetch"] = serde_json::Value::Null;
            v
        };
        let mut out = Vec::new();
        value_diff(&strip(saved), &strip(self), "", &mut out);
        out
    }
}

/// Differences between two configs (as JSON values) as dotted keys with both values: the one
/// diff under the resume checks and the workers' same-config check. Configs are nested a
/// bounded number of levels (YAML nesting is checked on load), so the recursion is bounded.
pub fn value_diff(
    a: &serde_json::Value,
    b: &serde_json::Value,
    prefix: &str,
    out: &mut Vec<String>,
) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => value_diff(u, v, &p, out),
                    (u, v) => {
                        let show = |x: Option<&serde_json::Value>| {
                            x.map(|x| x.to_string())
                                .unwrap_or_else(|| "(absent)".into())
                        };
                        out.push(format!("{p}: {} → {}", show(u), show(v)))
                    }
                }
            }
        }
        _ if a != b => out.push(format!("{prefix}: {a} → {b}")),
        _ => {}
    }
}

/// `MODEL.head` keys every network reads (its own are [`crate::model::NetworkConfig::keys`]).
const SHARED_HEAD_KEYS: [&str; 4] = ["name", "num_classes", "feature_num", "feature_dims"];

#[cfg(test)]
mod tests;
