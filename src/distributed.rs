//! Data-parallel training across processes and machines on MPI (Open MPI, started by
//! `mpirun`, as Horovod does): gradients are all-reduced with `MPI_Allreduce` and averaged,
//! PaddleVideo's `DataParallel` semantics (each worker's loss is a sum over its own batch; the
//! update uses the mean over workers). See docs/distributed.md.
//!
//! Built with the `mpi` cargo feature (`./dev` enables it); without it, or when not started by
//! `mpirun`, training runs as a single process.

use crate::config::{Config, DistributedMode};
use crate::error::{Error, Result};
use tch::Tensor;

/// The communication a training run needs.
pub trait Comm {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// Element-wise sum over all workers of `send` into `recv` (same length).
    fn allreduce_sum(&self, send: &[f32], recv: &mut [f32]);
    /// In-place sum of f64 (loss and sample counts for logs).
    fn allreduce_sum_f64(&self, buf: &mut [f64]);
    /// Minimum of a count over all workers.
    fn allreduce_min(&self, v: u64) -> u64;
    /// Rank 0's bytes on every worker.
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>);
    /// Rank 0's floats on every worker (in place, same length everywhere).
    fn broadcast_f32(&self, buf: &mut [f32]);
    fn name(&self) -> String;
    /// Ends every worker at once (MPI_Abort) after this one failed: returning normally would
    /// finalize MPI, which waits for workers that themselves wait in a collective for this
    /// one, and the job would hang forever. A single process does nothing here.
    fn abort(&self, _code: i32) {}
}

/// One process: every collective is the identity.
pub struct Single;

impl Comm for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn allreduce_sum(&self, send: &[f32], recv: &mut [f32]) {
        recv.copy_from_slice(send);
    }
    fn allreduce_sum_f64(&self, _: &mut [f64]) {}
    fn allreduce_min(&self, v: u64) -> u64 {
        v
    }
    fn broadcast_bytes(&self, _: &mut Vec<u8>) {}
    fn broadcast_f32(&self, _: &mut [f32]) {}
    fn name(&self) -> String {
        "single process".into()
    }
}

#[cfg(feature = "mpi")]
mod mpi_impl {
    use super::Comm;
    use mpi::collective::SystemOperation;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::*;

    pub struct Mpi {
        _universe: mpi::environment::Universe,
        world: SimpleCommunicator,
    }

    impl Mpi {
        pub fn init() -> Option<Self> {
            let universe = mpi::initialize()?;
            let world = universe.world();
            Some(Mpi {
                _universe: universe,
                world,
            })
        }
    }

    impl Comm for Mpi {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }
        fn size(&self) -> usize {
            self.world.size() as usize
        }
        fn allreduce_sum(&self, send: &[f32], recv: &mut [f32]) {
            self.world
                .all_reduce_into(send, recv, SystemOperation::sum());
        }
        fn allreduce_sum_f64(&self, buf: &mut [f64]) {
            let send = buf.to_vec();
            self.world
                .all_reduce_into(&send[..], buf, SystemOperation::sum());
        }
        fn allreduce_min(&self, v: u64) -> u64 {
            let mut out = 0u64;
            self.world
                .all_reduce_into(&v, &mut out, SystemOperation::min());
            out
        }
        fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
            let root = self.world.process_at_rank(0);
            let mut n = bytes.len() as u64;
            root.broadcast_into(&mut n);
            bytes.resize(n as usize, 0);
            root.broadcast_into(&mut bytes[..]);
        }
        fn broadcast_f32(&self, buf: &mut [f32]) {
            self.world.process_at_rank(0).broadcast_into(buf);
        }
        fn abort(&self, code: i32) {
            self.world.abort(code)
        }
        fn name(&self) -> String {
            format!(
                "MPI ({}), {} workers",
                mpi::environment::library_version()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim(),
                self.size()
            )
        }
    }
}

// ---- Gradient averaging and state sharing for training (used by `train`). ----

/// Flattened f32 copy of every gradient (CPU), in variable order.
pub(crate) fn flat_grads(vars: &[(String, Tensor)]) -> Vec<f32> {
    let mut out = Vec::new();
    for (_, v) in vars {
        let g = v.grad();
        let n = v.numel();
        let start = out.len();
        out.resize(start + n, 0.0);
        if g.defined() {
            g.to_kind(tch::Kind::Float)
                .to_device(tch::Device::Cpu)
                .contiguous()
                .copy_data(&mut out[start..], n);
        }
    }
    out
}

/// Writes `flat * scale` back into the gradients.
pub(crate) fn set_grads(vars: &[(String, Tensor)], flat: &[f32], scale: f64) {
    let mut off = 0;
    tch::no_grad(|| {
        for (_, v) in vars {
            let n = v.numel();
            let mut g = v.grad();
            if g.defined() {
                g.copy_(&Tensor::from_slice(&flat[off..off + n]).view(v.size().as_slice()));
                let _ = g.g_mul_scalar_(scale);
            }
            off += n;
        }
    });
}

/// Every worker gets rank 0's values of `tensors` (weights, optimizer state).
pub(crate) fn broadcast_tensors(comm: &dyn Comm, tensors: &[Tensor]) {
    if comm.size() == 1 {
        return;
    }
    let total: usize = tensors.iter().map(|t| t.numel()).sum();
    let mut flat = vec![0f32; total];
    let mut off = 0;
    for t in tensors {
        let n = t.numel();
        t.to_kind(tch::Kind::Float)
            .to_device(tch::Device::Cpu)
            .contiguous()
            .copy_data(&mut flat[off..off + n], n);
        off += n;
    }
    comm.broadcast_f32(&mut flat);
    let mut off = 0;
    tch::no_grad(|| {
        for t in tensors {
            let n = t.numel();
            let mut dst = t.shallow_clone();
            dst.copy_(
                &Tensor::from_slice(&flat[off..off + n])
                    .view(t.size().as_slice())
                    .to_kind(t.kind())
                    .to_device(t.device()),
            );
            off += n;
        }
    });
}

/// Refuses to train when workers were given different configs (device excepted), naming the keys.
pub(crate) fn check_same_config(comm: &dyn Comm, cfg: &Config) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    let mut mine = serde_json::to_value(cfg).unwrap_or_default();
    mine["TRAIN"]["device"] = serde_json::Value::Null;
    let mut bytes = serde_json::to_vec(&mine).unwrap_or_default();
    comm.broadcast_bytes(&mut bytes);
    let root: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let mut diff = Vec::new();
    crate::config::value_diff(&root, &mine, "", &mut diff);
    let all_ok = comm.allreduce_min(diff.is_empty() as u64) == 1;
    if !diff.is_empty() {
        return Err(Error::Invalid(format!(
            "worker {} of {} was started with a config that differs from rank 0's (rank 0's value → this worker's):\n  {}\n  hint: give every worker the same -c/-o arguments",
            comm.rank(),
            comm.size(),
            diff.join("\n  ")
        )));
    }
    if !all_ok {
        return Err(Error::Invalid(format!(
            "another worker's config differs from rank 0's (it printed the keys); worker {} stops too",
            comm.rank()
        )));
    }
    Ok(())
}

/// Averages gradients over the workers after each backward pass (PaddleVideo's DataParallel):
/// on the device through NCCL (GPUs, `nccl` feature), else through host memory over MPI.
pub(crate) struct GradSync {
    /// Receive buffer of the host all-reduce, reused every step.
    reduced: Vec<f32>,
    #[cfg(feature = "nccl")]
    nccl: Option<crate::distributed::nccl::Nccl>,
}

impl GradSync {
    /// NCCL when training on a GPU with several workers (unless TRAIN.distributed is mpi),
    /// or always with TRAIN.distributed: nccl (one worker included).
    pub(crate) fn new(cfg: &Config, comm: &dyn Comm, device: tch::Device) -> Result<Self> {
        let mode = cfg.TRAIN.distributed;
        if mode == DistributedMode::Nccl && !device.is_cuda() {
            return Err(Error::Invalid(format!(
                "TRAIN.distributed: nccl all-reduces on GPUs, but this run is on {}\n  hint: use --device cuda, or TRAIN.distributed: mpi for CPU workers",
                crate::runtime::device_name(device)
            )));
        }
        #[cfg(not(feature = "nccl"))]
        {
            let _ = comm;
            if mode == DistributedMode::Nccl {
                return Err(Error::Invalid(
                    "TRAIN.distributed: nccl, but this yt8m was built without the `nccl` feature\n  hint: build with `./dev build` (it enables mpi and nccl)".into(),
                ));
            }
        }
        Ok(GradSync {
            reduced: Vec::new(),
            #[cfg(feature = "nccl")]
            nccl: if mode == DistributedMode::Nccl
                || (comm.size() > 1 && device.is_cuda() && mode != DistributedMode::Mpi)
            {
                Some(crate::distributed::nccl::Nccl::init(comm)?)
            } else {
                None
            },
        })
    }

    pub(crate) fn average(&mut self, comm: &dyn Comm, vars: &[(String, Tensor)]) -> Result<()> {
        #[cfg(feature = "nccl")]
        if let Some(n) = &self.nccl {
            return n.average_grads(&vars.iter().map(|(_, v)| v.grad()).collect::<Vec<_>>());
        }
        if comm.size() == 1 {
            return Ok(());
        }
        let g = flat_grads(vars);
        self.reduced.resize(g.len(), 0.0);
        comm.allreduce_sum(&g, &mut self.reduced);
        set_grads(vars, &self.reduced, 1.0 / comm.size() as f64);
        Ok(())
    }
}

/// True when started by `mpirun` / another MPI launcher.
pub fn launched_by_mpi() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some())
}

/// `Auto` (MPI when launched by mpirun), `Mpi` (required), `Nccl` (MPI when launched by
/// mpirun; gradients always through NCCL, even for one worker: the one-GPU check of that path),
/// `None`.
pub fn init(mode: DistributedMode) -> Result<Box<dyn Comm>> {
    if mode == DistributedMode::None || (mode != DistributedMode::Mpi && !launched_by_mpi()) {
        return Ok(Box::new(Single));
    }
    #[cfg(feature = "mpi")]
    {
        match mpi_impl::Mpi::init() {
            Some(m) => Ok(Box::new(m)),
            None => Err(Error::Internal(
                "MPI was already initialised in this process".into(),
            )),
        }
    }
    #[cfg(not(feature = "mpi"))]
    {
        Err(Error::Invalid(
            "this yt8m was built without MPI support, but it was started by mpirun (or TRAIN.distributed: mpi)\n  hint: build with `./dev build` (it enables the `mpi` feature; needs Open MPI: apt-get install libopenmpi-dev openmpi-bin libclang-dev)".into(),
        ))
    }
}

/// GPU gradient all-reduce with NCCL on the tensors' device memory (feature `nccl`; the
/// library is loaded at run time, so building needs no CUDA toolkit). The NCCL id is created
/// on rank 0 and broadcast over MPI. Each worker must see exactly one GPU
/// (`CUDA_VISIBLE_DEVICES` per rank) and train on `cuda:0`; see docs/distributed.md.
#[cfg(feature = "nccl")]
pub mod nccl {
    use super::Comm;
    use crate::error::{Error, Result};
    use cudarc::nccl::{result, sys};
    use tch::Tensor;

    pub struct Nccl {
        comm: sys::ncclComm_t,
        size: usize,
    }

    // SAFETY: the communicator is used from the training thread only; NCCL communicators may
    // be moved between threads.
    unsafe impl Send for Nccl {}

    fn err(what: &str, e: impl std::fmt::Debug) -> Error {
        Error::Internal(format!(
            "NCCL {what} failed: {e:?}\n  hint: is libnccl.so.2 on the library path (it ships in the torch wheel's nvidia/nccl/lib)? Set TRAIN.distributed: mpi to all-reduce on the host instead"
        ))
    }

    impl Nccl {
        /// Collective: every worker calls it.
        pub fn init(mpi: &dyn Comm) -> Result<Nccl> {
            // SAFETY: only probes dlopen for the library names cudarc uses.
            if !unsafe { sys::is_culib_present() } {
                return Err(Error::Internal(
                    "NCCL library not found (cudarc opens libnccl.so)\n  hint: install torch's CUDA build, which brings NCCL (pip's nvidia-nccl package: the pip-installed yt8m finds it there; from the repository, ./dev setup links it), or set TRAIN.distributed: mpi to all-reduce on the host".into(),
                ));
            }
            let mut bytes = if mpi.rank() == 0 {
                let id = result::get_uniqueid().map_err(|e| err("ncclGetUniqueId", e))?;
                id.internal.iter().map(|&c| c as u8).collect()
            } else {
                Vec::new()
            };
            mpi.broadcast_bytes(&mut bytes);
            let mut id = sys::ncclUniqueId { internal: [0; 128] };
            for (d, s) in id.internal.iter_mut().zip(&bytes) {
                *d = *s as _;
            }
            let mut comm = std::ptr::null_mut();
            // SAFETY: `comm` is a valid out-pointer; the id came from ncclGetUniqueId on rank 0.
            unsafe { result::comm_init_rank(&mut comm, mpi.size() as i32, id, mpi.rank() as i32) }
                .map_err(|e| err("ncclCommInitRank", e))?;
            Ok(Nccl {
                comm,
                size: mpi.size(),
            })
        }

        /// Sums the gradients over workers and divides by their number, on the device.
        pub fn average_grads(&self, grads: &[Tensor]) -> Result<()> {
            let flat = Tensor::cat(
                &grads.iter().map(|g| g.flatten(0, -1)).collect::<Vec<_>>(),
                0,
            )
            .to_kind(tch::Kind::Float)
            .contiguous();
            let ptr = flat.data_ptr();
            // SAFETY: `flat` is a contiguous float32 CUDA buffer of `numel` elements alive for the
            // call; in-place all-reduce is allowed; the default stream orders it after `cat`.
            unsafe {
                result::all_reduce(
                    ptr,
                    ptr,
                    flat.numel(),
                    sys::ncclDataType_t::ncclFloat32,
                    sys::ncclRedOp_t::ncclSum,
                    self.comm,
                    std::ptr::null_mut(),
                )
            }
            .map_err(|e| err("ncclAllReduce", e))?;
            let flat = flat / self.size as f64;
            let mut off = 0i64;
            tch::no_grad(|| {
                for g in grads {
                    let n = g.numel() as i64;
                    let mut dst = g.shallow_clone();
                    dst.copy_(
                        &flat
                            .narrow(0, off, n)
                            .view(g.size().as_slice())
                            .to_kind(g.kind()),
                    );
                    off += n;
                }
            });
            Ok(())
        }
    }

    impl Drop for Nccl {
        fn drop(&mut self) {
            // SAFETY: destroyed once, after its last use.
            let _ = unsafe { result::comm_destroy(self.comm) };
        }
    }
}

#[cfg(all(test, feature = "nccl"))]
mod tests {
    /// The NCCL library is found at run time (through the embedded rpath to the torch wheel's
    /// nvidia/nccl/lib) and answers; no GPU is needed for this.
    #[test]
    fn nccl_loads_at_run_time() {
        // SAFETY: probes dlopen only.
        assert!(
            unsafe { cudarc::nccl::sys::is_culib_present() },
            "libnccl.so not found (./dev setup links it)"
        );
        let v = cudarc::nccl::result::get_nccl_version().expect("ncclGetVersion");
        println!("NCCL version code {v}");
        assert!(v >= 22000, "NCCL {v} is older than 2.20");
    }
}
