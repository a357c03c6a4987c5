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
    /// float32 everywhere (IEEE float32 on CUDA too: no TF32).
    Fp32,
    /// bfloat16 matmuls and LSTMs (float32 accumulation in oneDNN / cuBLAS).
    Bf16,
    /// bf16 where the hardware has fast bf16 (CPU avx512_bf16 or AMX; CUDA), else fp32.
    #[default]
    Auto,
}

/// Makes float32 on CUDA IEEE float32, as on the CPU: libtorch lets cuDNN run float32
/// LSTMs and convolutions in TF32 (10-bit mantissa) by default, which put the GPU's
/// fp32 logits 1e-3 (relative) off the CPU's and PaddleVideo's (the parity test failed
/// on an H100). `--precision fp32` promises float32; bf16 (the GPU's `auto`) is the
/// fast path. cuBLAS matmuls are IEEE already (libtorch's default). Process-wide, once.
pub fn cuda_fp32_is_ieee() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: see `at_context`; a plain setter, run once before the model computes.
    ONCE.call_once(|| unsafe {
        at_context::set_allow_tf32_cudnn(at_context::global_context(), false)
    });
}

/// Whether cuDNN may use TF32 for float32 (RNN, convolution), as libtorch's context says.
pub fn cudnn_tf32_allowed() -> (bool, bool) {
    // Float32Backend::CUDA = 1; Float32Op::CONV = 1, RNN = 2; Float32Precision::TF32 = 2.
    // SAFETY: see `at_context`; a const getter.
    let get = |op| unsafe { at_context::float32_precision(at_context::global_context(), 1, op) };
    (get(2) == 2, get(1) == 2)
}

/// tch has no binding for libtorch's float32 precision settings; these are libtorch_cpu's
/// exported C++ functions `at::globalContext()`, `at::Context::setAllowTF32CuDNN(bool)` and
/// `at::Context::float32Precision(Float32Backend, Float32Op)` (Itanium ABI: the object as
/// first argument; the enum classes are `int` with the values of ATen/Context.h), present in
/// the pinned torch 2.11 whether or not it has CUDA. `globalContext()` returns libtorch's
/// static context, never null.
mod at_context {
    unsafe extern "C" {
        #[link_name = "_ZN2at13globalContextEv"]
        pub fn global_context() -> *mut std::ffi::c_void;
        #[link_name = "_ZN2at7Context17setAllowTF32CuDNNEb"]
        pub fn set_allow_tf32_cudnn(ctx: *mut std::ffi::c_void, allow: bool);
        #[link_name = "_ZNK2at7Context16float32PrecisionENS_14Float32BackendENS_9Float32OpE"]
        pub fn float32_precision(ctx: *mut std::ffi::c_void, backend: i32, op: i32) -> i32;
    }
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
                cuda_fp32_is_ieee();
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
    cuda_fp32_is_ieee();
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
    fn float32_on_cuda_is_ieee_once_a_cuda_device_is_used() {
        // libtorch's default lets cuDNN use TF32 for float32 LSTMs and convolutions; the
        // setting is libtorch's, so it reads back the same with or without a GPU. (Where a
        // GPU is, another test may have used it first.)
        if !tch::Cuda::is_available() {
            assert_eq!(
                cudnn_tf32_allowed(),
                (true, true),
                "libtorch's default changed"
            );
        }
        cuda_fp32_is_ieee();
        assert_eq!(cudnn_tf32_allowed(), (false, false));
    }

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
