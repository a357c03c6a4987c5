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

/// A computing kind as the `--precision` flag spells it ("fp32", "bf16"; "fp64" for the
/// float64 parity runs): one spelling in tables, logs and test reports.
pub fn kind_name(k: tch::Kind) -> &'static str {
    match k {
        tch::Kind::BFloat16 => "bf16",
        tch::Kind::Double => "fp64",
        _ => "fp32",
    }
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
                _ => match native_bf16_cpu() {
                    Ok(f) => (tch::Kind::BFloat16, format!("auto: the CPU has {f}")),
                    Err(why) => (tch::Kind::Float, format!("auto: {why}")),
                },
            },
        }
    }
}

/// The CPU's native bf16 features (from /proc/cpuinfo), if any, and if libtorch may use them:
/// `None` also when the user capped libtorch's or oneDNN's instruction set below them
/// (`ATEN_CPU_CAPABILITY=avx2|default`, `ONEDNN_MAX_CPU_ISA=AVX2|...`), since bf16 is then
/// emulated as on a CPU without it (measured on AVX2: a 4096³ bf16 GEMM takes minutes).
pub fn cpu_bf16_flags() -> Option<String> {
    native_bf16_cpu().ok()
}

/// As [`cpu_bf16_flags`], with the reason when bf16 is not native.
pub fn native_bf16_cpu() -> Result<String, String> {
    if let Some(cap) = isa_cap_below_bf16(|k| std::env::var(k).ok()) {
        return Err(format!("{cap} caps the instruction set below native bf16"));
    }
    let info = std::fs::read_to_string("/proc/cpuinfo")
        .map_err(|e| format!("cannot read /proc/cpuinfo ({e})"))?;
    let flags = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .ok_or("no flags line in /proc/cpuinfo")?;
    let have: Vec<&str> = ["avx512_bf16", "amx_bf16"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    if have.is_empty() {
        return Err("the CPU has neither avx512_bf16 nor AMX (bf16 would be emulated)".into());
    }
    Ok(have.join(" and "))
}

/// `Some("VAR=value")` when an environment variable caps libtorch's kernels (ATen's dispatch)
/// or oneDNN's below the ISAs with bf16 instructions.
fn isa_cap_below_bf16(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(v) = var("ATEN_CPU_CAPABILITY")
        && matches!(v.to_ascii_lowercase().as_str(), "default" | "avx2")
    {
        return Some(format!("ATEN_CPU_CAPABILITY={v}"));
    }
    for k in ["ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"] {
        if let Some(v) = var(k) {
            // oneDNN's names below AVX512_CORE_BF16 (docs: dev_guide_cpu_dispatcher_control).
            let below = [
                "SSE41",
                "AVX",
                "AVX2",
                "AVX2_VNNI",
                "AVX2_VNNI_2",
                "AVX512_CORE",
                "AVX512_CORE_VNNI",
            ];
            if below.contains(&v.to_ascii_uppercase().as_str()) {
                return Some(format!("{k}={v}"));
            }
        }
    }
    None
}

/// Whether `--precision auto` computes in bf16 on `device` (native bf16), and why. Tests and
/// benchmarks that would run bf16 at full size do so only where this holds: elsewhere every
/// bf16 product is emulated and takes many times fp32's time.
pub fn bf16_is_native(device: tch::Device) -> (bool, String) {
    let (k, why) = Precision::Auto.resolve(device);
    (k == tch::Kind::BFloat16, why)
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
        let why = if cuda_backend_loaded() {
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

/// Short device name for logs ("cpu", "cuda:0").
pub fn device_name(d: tch::Device) -> String {
    match d {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}

/// Path of the shared library named `name` mapped into this process (Linux; None elsewhere).
pub(crate) fn mapped_library(name: &str) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.rsplit('/').next() == Some(name))
        .map(str::to_string)
}

/// libtorch_cuda.so is mapped: without it CUDA reads as unavailable even on a GPU machine.
pub fn cuda_backend_loaded() -> bool {
    mapped_library("libtorch_cuda.so").is_some()
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

#[cfg(test)]
mod isa_cap_tests {
    use super::isa_cap_below_bf16;

    #[test]
    fn instruction_set_caps_below_bf16_turn_auto_to_fp32() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
        };
        assert_eq!(isa_cap_below_bf16(env(&[])), None);
        assert_eq!(
            isa_cap_below_bf16(env(&[("ATEN_CPU_CAPABILITY", "avx2")])).as_deref(),
            Some("ATEN_CPU_CAPABILITY=avx2")
        );
        assert!(isa_cap_below_bf16(env(&[("ATEN_CPU_CAPABILITY", "default")])).is_some());
        assert_eq!(
            isa_cap_below_bf16(env(&[("ATEN_CPU_CAPABILITY", "avx512")])),
            None
        );
        assert!(isa_cap_below_bf16(env(&[("ONEDNN_MAX_CPU_ISA", "avx2")])).is_some());
        assert!(isa_cap_below_bf16(env(&[("DNNL_MAX_CPU_ISA", "AVX512_CORE")])).is_some());
        assert_eq!(
            isa_cap_below_bf16(env(&[("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")])),
            None
        );
        assert_eq!(
            isa_cap_below_bf16(env(&[("ONEDNN_MAX_CPU_ISA", "ALL")])),
            None
        );
    }
}
