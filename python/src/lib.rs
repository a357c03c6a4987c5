//! `yt8m._native`: the Python face of yt8m-data (TF-free reading of the official TFRecord
//! shards and PaddleVideo pickles) and yt8m-metrics (the official Hit@1 / PERR / GAP / mAP).
//! The public API, its docstrings and argument handling live in `python/yt8m/__init__.py`;
//! this module does the work and holds no Python-level policy.
//!
//! No libtorch, no TensorFlow: the wheel depends on numpy only. Reading runs on Rust threads;
//! `BatchIter.__next__` releases the GIL while it waits for the next batch.

use numpy::ndarray::{Array1, Array2, Array3, ArrayView2, Ix2, Ix3, ShapeBuilder};
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::PathBuf;
use std::sync::Arc;
use yt8m_data::batch::{
    BufferPool, EpochIter, Loader, LoaderConfig, ModalityData, OrderedVideos, ordered_videos_with,
};
use yt8m_data::sources::{FrameStore, ShardKind, expand_paths, shard_kind};
use yt8m_data::tfrecord::{RecordReader, ShardBytes};
use yt8m_data::video::{FrameSpan, MappedFrames};
use yt8m_data::{DataError, FeatureSpec, Level, Video, VideoFeatures, dequantize};
use yt8m_metrics::{Evaluator as RsEvaluator, MetricMode, Metrics, TieOrder};

mod errors;
use errors::{Yt8mDataError, Yt8mError, Yt8mInternalError, err, internal, invalid, not_found_type};

fn parse_level(level: &str) -> PyResult<Option<Level>> {
    match level {
        "auto" => Ok(None),
        "frame" => Ok(Some(Level::Frame)),
        "video" => Ok(Some(Level::Video)),
        other => Err(invalid(format!(
            "level '{other}' is not one of 'auto', 'frame', 'video'"
        ))),
    }
}

/// The level of a shard from its first record (pickles are PaddleVideo's frame-level ones).
fn detect_level(path: &std::path::Path) -> Result<Level, DataError> {
    if shard_kind(path) == ShardKind::Pickle {
        return Ok(Level::Frame);
    }
    let mut r = RecordReader::open(path)?;
    let mut buf = Vec::new();
    match r.next_into(&mut buf)? {
        None => Ok(Level::Frame), // empty: the reader reports it with the file's name
        Some(_) => Ok(yt8m_data::video::summarize(&buf)
            .map(|s| s.level)
            .unwrap_or(Level::Frame)),
    }
}

fn spec(level: Level, max_frames: Option<usize>, num_classes: usize) -> FeatureSpec {
    FeatureSpec {
        level,
        max_frames: max_frames.unwrap_or(usize::MAX),
        num_classes,
        ..FeatureSpec::default()
    }
}

fn files(paths: Vec<PathBuf>) -> PyResult<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(invalid(
            "no paths given: pass files, directories, glob patterns or .list files",
        ));
    }
    expand_paths(&paths, None).map_err(err)
}

/// Keeps a memory-mapped shard alive while numpy arrays view it (their `base`).
#[pyclass(frozen, module = "yt8m._native")]
struct MappedShard {
    map: Arc<ShardBytes>,
}

/// Modality `m` of mapped frames as a numpy array: a read-only strided view into the map when
/// the frames lie at one stride (no copy), else the copied bytes.
fn mapped_array<'py>(
    py: Python<'py>,
    f: &MappedFrames,
    m: usize,
    owner: &Bound<'py, MappedShard>,
) -> PyResult<Bound<'py, PyAny>> {
    match &f.spans[m] {
        FrameSpan::InPlace {
            offset,
            stride,
            rows,
            width,
        } => {
            // The decoder checked every row lies inside the record, which lies inside the map.
            let end = if *rows == 0 {
                *offset
            } else {
                offset + (rows - 1) * stride + width
            };
            if end > f.map.len() {
                return Err(internal(format!(
                    "internal: frames end at byte {end}, past the mapped file's {} bytes",
                    f.map.len()
                )));
            }
            // SAFETY: the view stays within the map (checked above); `owner` holds the map
            // and becomes the array's base, so the bytes outlive the array; the array is made
            // read-only below (the map is PROT_READ, and a non-buffer base stops numpy from
            // making it writeable again).
            let a = unsafe {
                let view = ArrayView2::from_shape_ptr(
                    (*rows, *width).strides((*stride, 1)),
                    f.map.as_ptr().add(*offset),
                );
                let a = PyArray2::<u8>::borrow_from_array(&view, owner.clone().into_any());
                (*a.as_array_ptr()).flags &= !numpy::npyffi::NPY_ARRAY_WRITEABLE;
                a
            };
            Ok(a.into_any())
        }
        FrameSpan::Copied { data, width } => {
            let a = Array2::from_shape_vec((data.len() / width, *width), data.clone())
                .map_err(|e| internal(format!("internal: {e}")))?;
            Ok(a.into_pyarray(py).into_any())
        }
    }
}

/// One video as a dict of numpy arrays. `owner`: the mapped shard of `Mapped` frames (reused
/// across the videos of one file).
fn video_dict<'py>(
    py: Python<'py>,
    v: Video,
    spec: &FeatureSpec,
    deq: bool,
    owner: &mut Option<Bound<'py, MappedShard>>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", &v.id)?;
    let labels: Vec<i64> = v.labels.iter().map(|&l| l as i64).collect();
    d.set_item("labels", labels.into_pyarray(py))?;
    d.set_item("has_labels", v.has_labels)?;
    match v.features {
        VideoFeatures::Frames(mods) => {
            d.set_item("num_frames", v.num_frames)?;
            d.set_item("total_frames", v.total_frames)?;
            for ((m, name), dim) in mods.into_iter().zip(&spec.frame_names).zip(&spec.dims) {
                let rows = m.len() / dim;
                if deq {
                    let f: Vec<f32> = m.iter().map(|&q| dequantize(q)).collect();
                    let a = Array2::from_shape_vec((rows, *dim), f).expect("rows × dim");
                    d.set_item(name, a.into_pyarray(py))?;
                } else {
                    let a = Array2::from_shape_vec((rows, *dim), m).expect("rows × dim");
                    d.set_item(name, a.into_pyarray(py))?;
                }
            }
        }
        VideoFeatures::Mapped(f) => {
            d.set_item("num_frames", v.num_frames)?;
            d.set_item("total_frames", v.total_frames)?;
            for (m, (name, &dim)) in spec.frame_names.iter().zip(&spec.dims).enumerate() {
                if deq {
                    let rows = f.spans[m].rows();
                    let mut out = Vec::with_capacity(rows * dim);
                    for r in 0..rows {
                        out.extend(f.row(m, r).iter().map(|&q| dequantize(q)));
                    }
                    let a = Array2::from_shape_vec((rows, dim), out).expect("rows × dim");
                    d.set_item(name, a.into_pyarray(py))?;
                    continue;
                }
                let same = owner
                    .as_ref()
                    .is_some_and(|o| Arc::ptr_eq(&o.get().map, &f.map));
                if !same {
                    *owner = Some(Bound::new(py, MappedShard { map: f.map.clone() })?);
                }
                let o = owner.as_ref().expect("set above");
                d.set_item(name, mapped_array(py, &f, m, o)?)?;
            }
        }
        VideoFeatures::Mean(mods) => {
            for (m, name) in mods.into_iter().zip(&spec.mean_names) {
                d.set_item(name, Array1::from_vec(m).into_pyarray(py))?;
            }
        }
        VideoFeatures::FloatFrames(mods) => {
            for ((m, name), dim) in mods.into_iter().zip(&spec.frame_names).zip(&spec.dims) {
                let rows = m.len() / dim;
                let a = Array2::from_shape_vec((rows, *dim), m).expect("rows × dim");
                d.set_item(name, a.into_pyarray(py))?;
            }
        }
    }
    if let Some(s) = v.segments {
        let seg = PyDict::new(py);
        seg.set_item("start_times", s.start_times.into_pyarray(py))?;
        seg.set_item("labels", s.labels.into_pyarray(py))?;
        seg.set_item("scores", s.scores.into_pyarray(py))?;
        d.set_item("segments", seg)?;
    }
    Ok(d)
}

/// Videos of several shards in file order, decoded by reader threads (one file per thread at
/// a time, merged back in order).
#[pyclass(unsendable, module = "yt8m._native")]
struct VideoIter {
    it: Option<OrderedVideos>,
    specs: Vec<FeatureSpec>,
    dequantize: bool,
    /// The mapped shard the last views came from (copy=False).
    owner: Option<Py<MappedShard>>,
}

#[pymethods]
impl VideoIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(it) = self.it.as_mut() else {
            return Ok(None);
        };
        // The readers decode on their own threads; wait for them without holding the GIL.
        match py.detach(|| it.next()) {
            Some(Ok(v)) => {
                let sp = &self.specs[it.file_index()];
                let mut owner = self.owner.take().map(|o| o.into_bound(py));
                let d = video_dict(py, v, sp, self.dequantize, &mut owner);
                self.owner = owner.map(Bound::unbind);
                d.map(Some)
            }
            Some(Err(e)) => Err(err(e)),
            None => Ok(None),
        }
    }

    /// Every record or byte range skipped so far (with skip_corrupt=True).
    #[getter]
    fn skipped(&self) -> Vec<String> {
        self.it
            .as_ref()
            .map(|it| it.stats().loss_report())
            .unwrap_or_default()
    }
}

#[pyfunction]
#[pyo3(signature = (paths, level, max_frames, dequantize, skip_corrupt, num_threads, copy))]
#[allow(clippy::too_many_arguments)]
fn read(
    paths: Vec<PathBuf>,
    level: &str,
    max_frames: Option<usize>,
    dequantize: bool,
    skip_corrupt: bool,
    num_threads: usize,
    copy: bool,
) -> PyResult<VideoIter> {
    let level = parse_level(level)?;
    let files = files(paths)?;
    // A file whose first record cannot tell its level is read as frame level; the reader then
    // reports the real problem, in file order.
    let specs: Vec<FeatureSpec> = files
        .iter()
        .map(|f| {
            let l = level.unwrap_or_else(|| detect_level(f).unwrap_or(Level::Frame));
            spec(l, max_frames, usize::MAX)
        })
        .collect();
    let it = ordered_videos_with(
        files.into_iter().zip(specs.iter().cloned()).collect(),
        skip_corrupt,
        num_threads,
        if copy {
            FrameStore::Copied
        } else {
            FrameStore::Mapped
        },
    );
    Ok(VideoIter {
        it: Some(it),
        specs,
        dequantize,
        owner: None,
    })
}

/// Padded batches from the loader's threads.
#[pyclass(unsendable, module = "yt8m._native")]
struct BatchIter {
    it: Option<EpochIter>,
    spec: FeatureSpec,
    pool: Arc<BufferPool>,
    /// Held until the iterator is exhausted or dropped.
    lease: Option<PoolLease>,
}

/// The frame buffers of every `read_batches` iterator in the process, so that each epoch (a
/// new iterator) starts with the buffers of the last instead of page-faulting ~260 MB of fresh
/// ones in (1.19x an epoch of 1 GB: docs/benchmarks.md). Freed [`POOL_IDLE`] after the last
/// iterator ends, so nothing is kept once reading is over (`YT8M_POOL_IDLE_MS` sets that wait:
/// the tests shorten it).
static SHARED_POOL: std::sync::OnceLock<Arc<BufferPool>> = std::sync::OnceLock::new();
/// Iterators alive, and a count of those ever started (a trim only runs if none started since).
static LIVE_ITERATORS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static STARTED_ITERATORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(20);
/// Buffers kept: a batch being built, the prefetched ones, the one Python holds and a few it
/// may keep, for two iterators at a time (a training and a validation loop), two modalities.
const POOL_KEEP: usize = 2 * 2 * (4 + 4);

/// One iterator's claim on [`SHARED_POOL`].
struct PoolLease;

impl PoolLease {
    fn new() -> (PoolLease, Arc<BufferPool>) {
        use std::sync::atomic::Ordering;
        LIVE_ITERATORS.fetch_add(1, Ordering::SeqCst);
        STARTED_ITERATORS.fetch_add(1, Ordering::SeqCst);
        let pool = SHARED_POOL
            .get_or_init(|| BufferPool::new(POOL_KEEP))
            .clone();
        (PoolLease, pool)
    }
}

impl Drop for PoolLease {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        if LIVE_ITERATORS.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let started = STARTED_ITERATORS.load(Ordering::SeqCst);
        let idle = std::env::var("YT8M_POOL_IDLE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(std::time::Duration::from_millis)
            .unwrap_or(POOL_IDLE);
        // A sleeping thread, not a timer service: one per last iterator to end, gone after.
        let _ = std::thread::Builder::new()
            .name("yt8m-pool-trim".into())
            .spawn(move || {
                std::thread::sleep(idle);
                if LIVE_ITERATORS.load(Ordering::SeqCst) == 0
                    && STARTED_ITERATORS.load(Ordering::SeqCst) == started
                {
                    if let Some(p) = SHARED_POOL.get() {
                        p.clear();
                    }
                }
            });
    }
}

/// A batch's frame buffer or label matrix while a numpy array views it (its `base`); handed
/// back to the loader's pool when the array is gone, so the next batch reuses the memory
/// instead of mapping and page-faulting 44 MB afresh (see `BufferPool`).
#[pyclass(frozen, module = "yt8m._native")]
struct Pooled {
    buf: PooledBuf,
    pool: Arc<BufferPool>,
}

enum PooledBuf {
    Frames(Vec<u8>),
    Labels(Vec<f32>),
}

impl Drop for Pooled {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.buf, PooledBuf::Frames(Vec::new())) {
            PooledBuf::Frames(v) => self.pool.give(v),
            PooledBuf::Labels(v) => self.pool.give_labels(v),
        }
    }
}

/// `v` as a writable numpy array of `shape` owning it until it is freed; `wrap` says which of
/// the pool's lists it goes back to.
fn pooled_array<'py, T: numpy::Element, D: numpy::ndarray::Dimension>(
    py: Python<'py>,
    v: Vec<T>,
    shape: D,
    pool: &Arc<BufferPool>,
    wrap: fn(Vec<T>) -> PooledBuf,
) -> PyResult<Bound<'py, PyAny>> {
    if v.len() != shape.size() {
        return Err(internal(format!(
            "internal: {} values for a {:?} batch array",
            v.len(),
            shape.slice()
        )));
    }
    let ptr = v.as_ptr();
    let owner = Bound::new(
        py,
        Pooled {
            buf: wrap(v),
            pool: pool.clone(),
        },
    )?;
    // SAFETY: the view covers exactly the vector's values (checked above); the vector moved
    // into `owner` without reallocating (a Vec's heap pointer is stable across moves) and is
    // never touched again until `owner` is dropped, which numpy does only after the array (its
    // base) is gone. The array is the buffer's only user, so writing through it is sound: it
    // stays writable, as a copied batch would be.
    let a = unsafe {
        let view = numpy::ndarray::ArrayView::<T, D>::from_shape_ptr(shape, ptr);
        numpy::PyArray::<T, D>::borrow_from_array(&view, owner.into_any())
    };
    Ok(a.into_any())
}

#[pymethods]
impl BatchIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(it) = self.it.as_mut() else {
            return Ok(None);
        };
        // The readers decode on their own threads; wait for them without holding the GIL.
        let next = py.detach(|| it.next());
        let b = match next {
            None => {
                self.it = None;
                self.lease = None;
                return Ok(None);
            }
            Some(r) => r.map_err(err)?,
        };
        let d = PyDict::new(py);
        let n = b.len();
        d.set_item("ids", PyList::new(py, &b.ids)?)?;
        d.set_item("lengths", b.lengths.clone().into_pyarray(py))?;
        let shape = Ix2(n, b.num_classes);
        let labels = pooled_array(py, b.labels, shape, &self.pool, PooledBuf::Labels)?;
        d.set_item("labels", labels)?;
        d.set_item("has_labels", b.has_labels.clone().into_pyarray(py))?;
        let names = match self.spec.level {
            Level::Frame => &self.spec.frame_names,
            Level::Video => &self.spec.mean_names,
        };
        for (m, name) in b.modalities.into_iter().zip(names) {
            match (m.data, self.spec.level) {
                (ModalityData::U8(q), _) => {
                    d.set_item(
                        name,
                        pooled_array(
                            py,
                            q,
                            Ix3(n, b.max_len, m.dim),
                            &self.pool,
                            PooledBuf::Frames,
                        )?,
                    )?;
                }
                (ModalityData::F32(f), Level::Video) => {
                    let a = Array2::from_shape_vec((n, m.dim), f).expect("B × D");
                    d.set_item(name, a.into_pyarray(py))?;
                }
                (ModalityData::F32(f), Level::Frame) => {
                    let a = Array3::from_shape_vec((n, b.max_len, m.dim), f).expect("B × T × D");
                    d.set_item(name, a.into_pyarray(py))?;
                }
            }
        }
        Ok(Some(d))
    }
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (paths, batch_size, shuffle_buffer, seed, bucket_by_length, num_threads, level, max_frames, num_classes, drop_last, skip_corrupt, epoch))]
fn read_batches(
    paths: Vec<PathBuf>,
    batch_size: usize,
    shuffle_buffer: usize,
    seed: u64,
    bucket_by_length: bool,
    num_threads: usize,
    level: &str,
    max_frames: usize,
    num_classes: usize,
    drop_last: bool,
    skip_corrupt: bool,
    epoch: u64,
) -> PyResult<BatchIter> {
    if batch_size == 0 {
        return Err(invalid("batch_size must be at least 1"));
    }
    if num_classes == 0 || num_classes > 1_000_000 {
        return Err(invalid(format!(
            "num_classes {num_classes} is out of range 1..=1000000"
        )));
    }
    if max_frames == 0 {
        return Err(invalid("max_frames must be at least 1"));
    }
    let files = files(paths)?;
    let level = match parse_level(level)? {
        Some(l) => l,
        None => detect_level(&files[0]).map_err(err)?,
    };
    let sp = spec(level, Some(max_frames), num_classes);
    let cfg = LoaderConfig {
        batch_size,
        shuffle: shuffle_buffer > 0,
        shuffle_buffer,
        seed,
        bucket_by_length,
        drop_last,
        num_readers: num_threads,
        skip_corrupt,
        ..LoaderConfig::default()
    };
    let (lease, pool) = PoolLease::new();
    let loader = Loader::new(files, sp.clone(), cfg).with_buffers(pool.clone());
    Ok(BatchIter {
        it: Some(loader.epoch(epoch)),
        spec: sp,
        pool,
        lease: Some(lease),
    })
}

/// Buffers the `read_batches` iterators keep for reuse now (for the tests).
#[pyfunction]
fn batch_buffers_kept() -> usize {
    SHARED_POOL.get().map_or(0, |p| p.kept())
}

/// `inspect --json` of the files, as a JSON string (the wrapper parses it).
#[pyfunction]
#[pyo3(signature = (paths, skip_corrupt))]
fn inspect_json(py: Python<'_>, paths: Vec<PathBuf>, skip_corrupt: bool) -> PyResult<String> {
    let files = files(paths)?;
    let reports = py.detach(|| {
        files
            .iter()
            .map(|f| yt8m_data::inspect::inspect_file(f, skip_corrupt))
            .collect::<Result<Vec<_>, _>>()
    });
    let reports = reports.map_err(err)?;
    Ok(serde_json::json!({ "files": reports }).to_string())
}

fn metrics_dict<'py>(py: Python<'py>, m: &Metrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("hit_at_one", m.hit_at_one)?;
    d.set_item("perr", m.perr)?;
    d.set_item("gap", m.gap)?;
    d.set_item("map", m.map)?;
    d.set_item("num_classes_in_map", m.num_classes_in_map)?;
    d.set_item("num_videos", m.num_videos)?;
    d.set_item("top_k", m.top_k)?;
    d.set_item(
        "mode",
        match m.mode {
            MetricMode::Official => "official",
            MetricMode::Paddlevideo => "paddlevideo",
        },
    )?;
    d.set_item("batch_size", m.batch_size)?;
    Ok(d)
}

/// The streaming evaluator (the starter's `EvaluationMetrics`).
#[pyclass(module = "yt8m._native")]
struct Evaluator {
    num_classes: usize,
    top_k: usize,
    mode: MetricMode,
    batch_size: usize,
    tie: TieOrder,
    inner: RsEvaluator,
}

fn make(
    num_classes: usize,
    top_k: usize,
    mode: MetricMode,
    batch_size: usize,
    tie: TieOrder,
) -> RsEvaluator {
    match mode {
        MetricMode::Official => RsEvaluator::new(num_classes, top_k, tie),
        MetricMode::Paddlevideo => RsEvaluator::paddlevideo(num_classes, top_k, batch_size, tie),
    }
}

fn parse_mode(mode: &str) -> PyResult<MetricMode> {
    match mode {
        "official" => Ok(MetricMode::Official),
        "paddlevideo" => Ok(MetricMode::Paddlevideo),
        o => Err(invalid(format!(
            "mode '{o}' is not 'official' or 'paddlevideo'"
        ))),
    }
}

fn parse_tie(t: &str) -> PyResult<TieOrder> {
    match t {
        "official" => Ok(TieOrder::Official),
        "deterministic" => Ok(TieOrder::Deterministic),
        o => Err(invalid(format!(
            "tie_order '{o}' is not 'official' or 'deterministic'"
        ))),
    }
}

/// Checks shapes and finiteness, then feeds `[B, C]` scores (f32 or f64) and 0/1 labels.
fn feed(
    ev: &mut RsEvaluator,
    c: usize,
    predictions: &Bound<'_, PyAny>,
    labels: PyReadonlyArray2<'_, u8>,
) -> PyResult<()> {
    let lshape = labels.shape().to_vec();
    let labels = labels
        .as_slice()
        .map_err(|_| invalid("labels must be C-contiguous"))?;
    let check = |pshape: &[usize]| -> PyResult<()> {
        if pshape.len() != 2 || pshape[1] != c {
            return Err(invalid(format!(
                "predictions have shape {pshape:?}, expected [videos, {c}] (num_classes)"
            )));
        }
        if lshape != pshape {
            return Err(invalid(format!(
                "labels have shape {lshape:?}, predictions {pshape:?}: they must match"
            )));
        }
        Ok(())
    };
    // float32 and float64 scores take the same path; the evaluator is generic over both. It
    // refuses NaN/±∞ during its own per-row scans (no separate pass over the array).
    // Other Python threads run meanwhile: the arrays stay borrowed read-only.
    fn scored<T: yt8m_metrics::Score>(
        py: Python<'_>,
        ev: &mut RsEvaluator,
        s: &[T],
        labels: &[u8],
    ) -> PyResult<()> {
        py.detach(|| ev.accumulate_finite(s, labels))
            .map_err(|e| invalid(e.to_string()))
    }
    let contiguous = || invalid("predictions must be C-contiguous");
    if let Ok(p) = predictions.extract::<PyReadonlyArray2<'_, f32>>() {
        check(p.shape())?;
        scored(
            predictions.py(),
            ev,
            p.as_slice().map_err(|_| contiguous())?,
            labels,
        )?;
    } else {
        let p = predictions.extract::<PyReadonlyArray2<'_, f64>>()?;
        check(p.shape())?;
        scored(
            predictions.py(),
            ev,
            p.as_slice().map_err(|_| contiguous())?,
            labels,
        )?;
    }
    Ok(())
}

#[pymethods]
impl Evaluator {
    #[new]
    #[pyo3(signature = (num_classes, top_k, mode, batch_size, tie_order))]
    fn new(
        num_classes: usize,
        top_k: usize,
        mode: &str,
        batch_size: usize,
        tie_order: &str,
    ) -> PyResult<Self> {
        if num_classes == 0 || num_classes > 1_000_000 {
            return Err(invalid(format!(
                "num_classes {num_classes} is out of range 1..=1000000"
            )));
        }
        if top_k == 0 {
            return Err(invalid("top_k must be at least 1"));
        }
        let mode = parse_mode(mode)?;
        let tie = parse_tie(tie_order)?;
        Ok(Evaluator {
            num_classes,
            top_k,
            mode,
            batch_size,
            tie,
            inner: make(num_classes, top_k, mode, batch_size, tie),
        })
    }

    fn accumulate(
        &mut self,
        predictions: &Bound<'_, PyAny>,
        labels: PyReadonlyArray2<'_, u8>,
    ) -> PyResult<()> {
        feed(&mut self.inner, self.num_classes, predictions, labels)
    }

    fn get<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if self.inner.num_videos() == 0 && self.mode == MetricMode::Official {
            return Err(invalid("no videos accumulated yet"));
        }
        metrics_dict(py, &self.inner.clone().finish())
    }

    fn clear(&mut self) {
        self.inner = make(
            self.num_classes,
            self.top_k,
            self.mode,
            self.batch_size,
            self.tie,
        );
    }

    #[getter]
    fn num_videos(&self) -> usize {
        self.inner.num_videos()
    }
}

#[pyfunction]
#[pyo3(signature = (predictions, labels, top_k, mode, batch_size, tie_order))]
fn evaluate<'py>(
    py: Python<'py>,
    predictions: &Bound<'py, PyAny>,
    labels: PyReadonlyArray2<'py, u8>,
    top_k: usize,
    mode: &str,
    batch_size: usize,
    tie_order: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let shape = labels.shape().to_vec();
    if shape.len() != 2 || shape[0] == 0 || shape[1] == 0 {
        return Err(invalid(format!(
            "labels have shape {shape:?}: expected [videos, classes], both > 0"
        )));
    }
    let mut ev = Evaluator::new(shape[1], top_k, mode, batch_size, tie_order)?;
    feed(&mut ev.inner, shape[1], predictions, labels)?;
    metrics_dict(py, &ev.inner.finish())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Yt8mError", m.py().get_type::<Yt8mError>())?;
    m.add("Yt8mDataError", m.py().get_type::<Yt8mDataError>())?;
    m.add("Yt8mInternalError", m.py().get_type::<Yt8mInternalError>())?;
    m.add("Yt8mNotFoundError", not_found_type(m.py())?)?;
    // The package's version is the crate's (pyproject takes it from python/Cargo.toml).
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(read, m)?)?;
    m.add_function(wrap_pyfunction!(read_batches, m)?)?;
    m.add_function(wrap_pyfunction!(batch_buffers_kept, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_json, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_class::<Evaluator>()?;
    m.add_class::<VideoIter>()?;
    m.add_class::<MappedShard>()?;
    m.add_class::<BatchIter>()?;
    Ok(())
}
