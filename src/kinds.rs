//! The closed sets of the config and the command line, as enums: a misspelt value is an error
//! that lists the valid ones (before, `MODEL.head.name: MoeModl` silently trained an
//! AttentionLSTM). Each serializes to the spelling PaddleVideo's YAML and our configs use, so
//! existing files load unchanged.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// `TRAIN.loss`: what training minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LossName {
    /// PaddleVideo's sigmoid cross-entropy on the logits, summed over classes and videos.
    #[default]
    BceSum,
    /// The starter's `CrossEntropyLoss`: −[y·log(p + 1e-5) + (1 − y)·log(1 − p + 1e-5)] on
    /// the probabilities, summed over classes, averaged over the batch.
    CrossEntropy,
    /// PaddlePaddle's legacy video zoo (NeXtVLAD, AttentionCluster): sigmoid cross-entropy on
    /// the logits, summed over classes, averaged over the batch.
    BceMean,
}

/// `MODEL.head.name`: which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
pub enum HeadName {
    /// PaddleVideo's AttentionLSTM head (frame level).
    #[default]
    #[value(name = "AttentionLstmHead")]
    AttentionLstmHead,
    /// Google's starter logistic regression (video level).
    #[value(name = "LogisticModel")]
    LogisticModel,
    /// Google's starter mixture of experts (video level).
    #[value(name = "MoeModel")]
    MoeModel,
    /// Google's starter `FrameLevelLogisticModel` (frame level).
    #[value(name = "FrameLevelLogisticModel")]
    FrameLevelLogisticModel,
    /// Google's starter `LstmModel`: stacked LSTMs + MoE (frame level).
    #[value(name = "LstmModel")]
    LstmModel,
    /// Google's starter `DbofModel`: Deep Bag of Frames + MoE (frame level).
    #[value(name = "DbofModel")]
    DbofModel,
    /// NeXtVLAD as PaddlePaddle's legacy video zoo has it (frame level).
    #[value(name = "NeXtVLADHead")]
    #[serde(rename = "NeXtVLADHead", alias = "NEXTVLAD")]
    NextVladHead,
    /// Attention Clusters with shifting as PaddlePaddle's legacy video zoo has it (frame
    /// level).
    #[value(name = "AttentionClusterHead")]
    #[serde(alias = "AttentionCluster")]
    AttentionClusterHead,
}

impl fmt::Display for HeadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeadName::AttentionLstmHead => "AttentionLstmHead",
            HeadName::LogisticModel => "LogisticModel",
            HeadName::MoeModel => "MoeModel",
            HeadName::FrameLevelLogisticModel => "FrameLevelLogisticModel",
            HeadName::LstmModel => "LstmModel",
            HeadName::DbofModel => "DbofModel",
            HeadName::NextVladHead => "NeXtVLADHead",
            HeadName::AttentionClusterHead => "AttentionClusterHead",
        })
    }
}

/// `TRAIN.dtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    #[default]
    Float32,
    /// For parity checks (PaddleVideo's float64 fixtures).
    Float64,
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::Float32 => "float32",
            Dtype::Float64 => "float64",
        })
    }
}

impl Dtype {
    pub fn kind(self) -> tch::Kind {
        match self {
            Dtype::Float32 => tch::Kind::Float,
            Dtype::Float64 => tch::Kind::Double,
        }
    }
}

/// `TRAIN.distributed`: how several processes train together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DistributedMode {
    /// MPI when started by mpirun, else one process.
    #[default]
    Auto,
    /// MPI required.
    Mpi,
    /// Gradients through NCCL on the device (MPI when started by mpirun); alone, the one-GPU
    /// check of that path.
    Nccl,
    /// One process, even under mpirun.
    None,
}

impl fmt::Display for DistributedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DistributedMode::Auto => "auto",
            DistributedMode::Mpi => "mpi",
            DistributedMode::Nccl => "nccl",
            DistributedMode::None => "none",
        })
    }
}

/// `TRAIN.best_metric`: what picks `checkpoints/best`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BestMetric {
    #[default]
    Gap,
    HitAtOne,
    Perr,
    Map,
    /// Validation loss (lower is better).
    Loss,
}

impl BestMetric {
    /// The key in validation records (`metrics.jsonl`).
    pub fn key(self) -> &'static str {
        match self {
            BestMetric::Gap => "gap",
            BestMetric::HitAtOne => "hit_at_one",
            BestMetric::Perr => "perr",
            BestMetric::Map => "map",
            BestMetric::Loss => "loss",
        }
    }
    pub fn higher_is_better(self) -> bool {
        self != BestMetric::Loss
    }
}

/// A dataset split of the config (`DATASET.train|valid|test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Valid,
    Test,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        })
    }
}

/// `--precision`: the compute type of inference (weights stay float32 in bundles and
/// checkpoints; sigmoid, losses and metrics stay float32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 everywhere.
    Fp32,
    /// bfloat16 matmuls and LSTMs (float32 accumulation in oneDNN / cuBLAS).
    Bf16,
    /// bf16 where the hardware has fast bf16 (CPU avx512_bf16 or AMX; CUDA), else fp32.
    #[default]
    Auto,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Auto => "auto",
        })
    }
}

impl Precision {
    /// The libtorch kind to compute in on `device`, and why.
    pub fn resolve(self, device: tch::Device) -> (tch::Kind, String) {
        match self {
            Precision::Fp32 => (tch::Kind::Float, "fp32 requested".into()),
            Precision::Bf16 => (tch::Kind::BFloat16, "bf16 requested".into()),
            Precision::Auto => match device {
                tch::Device::Cuda(_) => (
                    tch::Kind::BFloat16,
                    "auto: CUDA device (bf16 tensor cores)".into(),
                ),
                _ => match cpu_bf16_flags() {
                    Some(f) => (tch::Kind::BFloat16, format!("auto: the CPU has {f}")),
                    None => (
                        tch::Kind::Float,
                        "auto: the CPU has neither avx512_bf16 nor AMX (bf16 would be emulated)"
                            .into(),
                    ),
                },
            },
        }
    }
}

/// The CPU's native bf16 features (from /proc/cpuinfo), if any.
pub fn cpu_bf16_flags() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = info.lines().find(|l| l.starts_with("flags"))?;
    let have: Vec<&str> = ["avx512_bf16", "amx_bf16"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    (!have.is_empty()).then(|| have.join(" and "))
}

/// `TRAIN.device` / `--device`: `auto` (CUDA 0 when present, else CPU), `cpu`, `cuda`, `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| format!("'{s}' is not a device: use auto, cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl DeviceSpec {
    /// The libtorch device, checking that CUDA is there when asked for.
    pub fn resolve(self) -> Result<tch::Device> {
        match self {
            DeviceSpec::Auto => Ok(if tch::Cuda::is_available() {
                tch::Device::Cuda(0)
            } else {
                tch::Device::Cpu
            }),
            DeviceSpec::Cpu => Ok(tch::Device::Cpu),
            DeviceSpec::Cuda(i) => cuda(i),
        }
    }
}

fn cuda(i: usize) -> Result<tch::Device> {
    if !tch::Cuda::is_available() {
        let why = if crate::runtime::cuda_backend_loaded() {
            "libtorch sees no GPU (check the driver and CUDA_VISIBLE_DEVICES)"
        } else {
            "the loaded libtorch has no CUDA backend (a CPU-only libtorch? `yt8m info` shows which is loaded)"
        };
        return Err(Error::Invalid(format!(
            "CUDA requested but {why}; or use --device cpu"
        )));
    }
    let n = tch::Cuda::device_count() as usize;
    if i >= n {
        return Err(Error::Invalid(format!(
            "cuda:{i} requested but only {n} GPU(s) are visible"
        )));
    }
    Ok(tch::Device::Cuda(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_unknown_ones_list_the_valid() {
        for s in ["auto", "cpu", "cuda:0", "cuda:3"] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap().to_string(), s);
        }
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert!(
            "gpu"
                .parse::<DeviceSpec>()
                .unwrap_err()
                .contains("auto, cpu, cuda or cuda:N")
        );
        let e = serde_yaml_ng::from_str::<HeadName>("MoeModl")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("AttentionLstmHead") && e.contains("MoeModel"),
            "{e}"
        );
        assert_eq!(
            serde_yaml_ng::from_str::<BestMetric>("hit_at_one").unwrap(),
            BestMetric::HitAtOne
        );
        assert_eq!(
            serde_yaml_ng::to_string(&Dtype::Float64).unwrap().trim(),
            "float64"
        );
    }
}
