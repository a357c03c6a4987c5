//! Batches for the model, built on background threads: reader threads decode shards in
//! parallel, one assembler thread merges them back **in shard order** (so shuffling is
//! reproducible for a seed, whatever the thread timing), shuffles through a buffer, optionally
//! buckets by length, and packs uint8 batches. Nothing here is as large as PaddleVideo's float
//! masks: a batch carries per-video lengths only.

use super::sources::{FrameStore, ReadStats, read_shard_with};
use super::video::{FeatureSpec, Video, VideoFeatures};
use crate::error::{DataError, DataErrorKind, Location, panic_text};
use crate::rng::Rng;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub shuffle: bool,
    /// Videos held for shuffling across shards (the TF idiom's `shuffle(buffer)`).
    pub shuffle_buffer: usize,
    pub seed: u64,
    /// Sort each window of `bucket_window` batches by length before cutting batches, so a
    /// batch's padded length is close to its real frames.
    pub bucket_by_length: bool,
    pub bucket_window: usize,
    pub drop_last: bool,
    /// Decoder threads (0 = min(available cores, 4)).
    pub num_readers: usize,
    /// Batches prepared ahead of the model.
    pub prefetch: usize,
    pub skip_corrupt: bool,
    /// 2019 segment task: the examples are each video's rated 5-frame segments (labels: the
    /// classes rated positive), not the videos.
    pub segments: bool,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 16,
            shuffle: false,
            shuffle_buffer: 2048,
            seed: 1234,
            bucket_by_length: false,
            bucket_window: 16,
            drop_last: false,
            num_readers: 0,
            prefetch: 4,
            skip_corrupt: false,
            segments: false,
        }
    }
}

/// Features of one modality for a batch.
#[derive(Debug, Clone)]
pub enum ModalityData {
    /// Frame level: quantized `[B, T, D]`, rows past a video's length are 0 (masked later).
    U8(Vec<u8>),
    /// Floats `[B, T, D]`: video level (T = 1) or dequantized frames; padding is 0.0.
    F32(Vec<f32>),
}

#[derive(Debug, Clone)]
pub struct ModalityBatch {
    pub dim: usize,
    pub data: ModalityData,
    /// Valid rows per video `[B]` (≤ `lengths`; shorter when a modality has fewer frames:
    /// the official reader pads those rows with 0.0 after dequantization).
    pub rows: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct Batch {
    pub ids: Vec<String>,
    /// Frames per video `[B]` (from the first modality, capped at max_frames; 1 at video level).
    pub lengths: Vec<i64>,
    /// Padded time `T` = max(lengths).
    pub max_len: usize,
    pub modalities: Vec<ModalityBatch>,
    /// Multi-hot `[B, C]`.
    pub labels: Vec<f32>,
    pub num_classes: usize,
    /// False for videos from a split without labels.
    pub has_labels: Vec<bool>,
    /// Each video's position in the epoch's stream (before bucketing), so evaluation can put
    /// scores of length-sorted batches back into file order `[B]`.
    pub positions: Vec<u64>,
}

/// Byte buffers for frame-level batches, recycled: a batch of 128 full-length videos is 44 MB,
/// above glibc's mmap threshold (32 MB at most), so each fresh buffer was mapped, page-faulted
/// in by the kernel and unmapped again when freed. Measured on 1 GB of frame-level shards
/// (Python `read_batches(files, 128)`, 2 cores): 1.5 s of system time against 1.0 s of user
/// time over three epochs, 7.1–8.3k videos/s; with the memory kept (glibc told not to unmap),
/// 17.7k. A consumer that owns a batch's buffers (the Python module's numpy arrays) gives each
/// back with [`BufferPool::give`] when done with it.
///
/// Buffers come back as they were left (numpy users may have written into them): the padding
/// is filled again for each batch. Zeroing whole buffers when given back instead measured
/// slower (twice the bytes written: the loader is bound by writes to memory).
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    /// Buffers kept at most; more given back are freed.
    keep: usize,
}

impl BufferPool {
    pub fn new(keep: usize) -> Arc<BufferPool> {
        Arc::new(BufferPool {
            free: Mutex::new(Vec::new()),
            keep,
        })
    }

    /// A buffer of `len` bytes whose contents are left over from earlier use (every byte is
    /// initialised: old data, or zeros where it grew); the caller overwrites all of them.
    pub fn take(&self, len: usize) -> Vec<u8> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        // The smallest buffer that holds `len` without reallocating; else the largest (it
        // grows once and is kept).
        let pick = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .or_else(|| free.iter().enumerate().max_by_key(|(_, b)| b.capacity()))
            .map(|(i, _)| i);
        let mut b = match pick {
            Some(i) => free.swap_remove(i),
            None => Vec::new(),
        };
        drop(free);
        if b.len() >= len {
            b.truncate(len);
        } else {
            b.resize(len, 0);
        }
        b
    }

    /// Returns a buffer for reuse (freed when the pool already keeps enough).
    pub fn give(&self, b: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.keep {
            free.push(b);
        }
    }
}

/// Groups `lengths` into batches of at most `bs` indices, each window of `bs * window`
/// consecutive items sorted by length (stable), so a batch pads to little more than its real
/// frames. `window` 0 or 1 sorts each batch alone (no reordering across batches).
pub fn length_buckets(lengths: &[usize], bs: usize, window: usize) -> Vec<Vec<usize>> {
    let bs = bs.max(1);
    let w = bs * window.max(1);
    let mut out = Vec::with_capacity(lengths.len().div_ceil(bs));
    for start in (0..lengths.len()).step_by(w) {
        let mut idx: Vec<usize> = (start..(start + w).min(lengths.len())).collect();
        idx.sort_by_key(|&i| lengths[i]);
        out.extend(idx.chunks(bs).map(|c| c.to_vec()));
    }
    out
}

impl Batch {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// Real frames in the batch (for throughput).
    pub fn frames(&self) -> usize {
        self.lengths.iter().map(|&l| l as usize).sum()
    }

    /// Packs videos into one batch (positions 0..B).
    pub fn from_videos(videos: &[Video], spec: &FeatureSpec) -> Batch {
        let idx: Vec<usize> = (0..videos.len()).collect();
        Self::from_indices(videos, &idx, spec)
    }

    /// Packs `videos[idx[0]], videos[idx[1]], ...` into one batch (a group of
    /// [`length_buckets`]); positions are the indices.
    pub fn from_indices(videos: &[Video], idx: &[usize], spec: &FeatureSpec) -> Batch {
        Self::from_indices_padded(videos, idx, spec, 1)
    }

    /// As [`Self::from_indices`], frame-level batches padded to a multiple of `frames` frames
    /// (lengths stay the videos' own, so masked models answer the same). A server uses it to
    /// bound how many tensor shapes its calls have: libtorch's CPU LSTM builds and caches one
    /// oneDNN primitive per (frames, batch) shape.
    pub fn from_indices_padded(
        videos: &[Video],
        idx: &[usize],
        spec: &FeatureSpec,
        frames: usize,
    ) -> Batch {
        Self::build(videos, idx, spec, frames, None)
    }

    /// As [`Self::from_indices_padded`], quantized frames written into buffers from `pool`
    /// (fresh zeroed ones without).
    pub fn build(
        videos: &[Video],
        idx: &[usize],
        spec: &FeatureSpec,
        frames: usize,
        pool: Option<&BufferPool>,
    ) -> Batch {
        let videos: Vec<&Video> = idx.iter().map(|&i| &videos[i]).collect();
        let b = videos.len();
        let t = videos
            .iter()
            .map(|v| v.num_frames)
            .max()
            .unwrap_or(1)
            .max(1);
        let frame_level = matches!(
            videos.first().map(|v| &v.features),
            Some(
                VideoFeatures::Frames(_) | VideoFeatures::Mapped(_) | VideoFeatures::FloatFrames(_)
            )
        );
        let t = if frame_level && frames > 1 {
            t.div_ceil(frames) * frames
        } else {
            t
        };
        let c = spec.num_classes;
        let mut labels = vec![0f32; b * c];
        for (i, v) in videos.iter().enumerate() {
            for &l in &v.labels {
                labels[i * c + l as usize] = 1.0;
            }
        }
        let mut modalities = Vec::with_capacity(spec.dims.len());
        for (m, &d) in spec.dims.iter().enumerate() {
            let mut rows = Vec::with_capacity(b);
            let data = match videos.first().map(|v| &v.features) {
                Some(VideoFeatures::Frames(_) | VideoFeatures::Mapped(_)) => {
                    let mut data = match pool {
                        Some(p) => p.take(b * t * d),
                        None => vec![0u8; b * t * d],
                    };
                    for (i, v) in videos.iter().enumerate() {
                        let r = v.rows(m, d).min(v.num_frames);
                        let row = &mut data[i * t * d..(i + 1) * t * d];
                        let copied = v.copy_frames(m, d, r, &mut row[..r * d]);
                        assert!(copied, "mixed feature kinds in one batch");
                        if pool.is_some() {
                            row[r * d..].fill(0); // a recycled buffer holds old frames there
                        }
                        rows.push(r as i64);
                    }
                    ModalityData::U8(data)
                }
                // Float rows: video level (T = 1) or dequantized frames; padding is 0.0.
                _ => {
                    let mut data = vec![0f32; b * t * d];
                    for (i, v) in videos.iter().enumerate() {
                        let (src, r) = match &v.features {
                            VideoFeatures::Mean(f) => (&f[m], 1),
                            VideoFeatures::FloatFrames(f) => {
                                (&f[m], (f[m].len() / d).min(v.num_frames))
                            }
                            VideoFeatures::Frames(_) | VideoFeatures::Mapped(_) => {
                                panic!("mixed feature kinds in one batch")
                            }
                        };
                        data[i * t * d..i * t * d + r * d].copy_from_slice(&src[..r * d]);
                        rows.push(r as i64);
                    }
                    ModalityData::F32(data)
                }
            };
            modalities.push(ModalityBatch { dim: d, data, rows });
        }
        Batch {
            ids: videos.iter().map(|v| v.id.clone()).collect(),
            lengths: videos.iter().map(|v| v.num_frames.max(1) as i64).collect(),
            max_len: t,
            modalities,
            labels,
            num_classes: c,
            has_labels: videos.iter().map(|v| v.has_labels).collect(),
            positions: idx.iter().map(|&i| i as u64).collect(),
        }
    }
}

/// Videos per message from a reader thread: one wake-up of the consumer per chunk instead of
/// per video (thread hand-offs were 13 % of reading mapped shards). Channels hold
/// [`CHUNKS_IN_FLIGHT`] chunks, so as many videos wait per reader as before (64).
const CHUNK: usize = 16;
const CHUNKS_IN_FLIGHT: usize = 4;

enum Msg {
    /// Up to [`CHUNK`] videos of one file, in file order.
    Videos(Vec<Video>),
    EndShard(ReadStats),
    Err(DataError),
}

/// Streams batches over a fixed list of shard files.
pub struct Loader {
    files: Arc<Vec<PathBuf>>,
    spec: Arc<FeatureSpec>,
    cfg: LoaderConfig,
    buffers: Option<Arc<BufferPool>>,
}

/// What the assembler sends: batches (or the error that stops the epoch), then `Done` once it
/// has read every shard. A channel that closes without `Done` means a thread died.
enum Out {
    Batch(Result<Batch, DataError>),
    Done,
}

/// One epoch's batches; dropping it stops the threads.
pub struct EpochIter {
    rx: Receiver<Out>,
    stats: Arc<Mutex<ReadStats>>,
    handles: Vec<JoinHandle<()>>,
    finished: bool,
}

impl Iterator for EpochIter {
    type Item = Result<Batch, DataError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.rx.recv() {
            Ok(Out::Batch(b)) => {
                if b.is_err() {
                    self.finished = true;
                }
                Some(b)
            }
            Ok(Out::Done) => {
                self.finished = true;
                None
            }
            // Never read a vanished thread as the end of the data: that would train on part of
            // it, or score half of a test split, and exit 0.
            Err(_) => {
                self.finished = true;
                Some(Err(DataError::new(
                    DataErrorKind::Internal,
                    Location::file("<loader>"),
                    "the batch assembler thread stopped before the end of the data",
                )
                .hint(
                    "this is a bug in yt8m; please report it with the command and inputs",
                )))
            }
        }
    }
}

impl EpochIter {
    /// Records read and skipped so far (complete once the iterator is exhausted).
    pub fn stats(&self) -> std::sync::MutexGuard<'_, ReadStats> {
        self.stats.lock().unwrap()
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // Unblock the assembler (its sends fail once rx is gone), then the readers.
        let (_tx, rx) = sync_channel(1);
        drop(std::mem::replace(&mut self.rx, rx));
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The videos of several files in file order, decoded by `threads` reader threads (file i on
/// thread i mod n) and merged back in order, so the stream is the same whatever the timing.
/// Zero-frame videos are kept. Dropping it stops the threads.
pub struct OrderedVideos {
    readers: Vec<Receiver<Msg>>,
    handles: Vec<JoinHandle<()>>,
    n_files: usize,
    file: usize,
    stats: ReadStats,
    done: bool,
    /// The rest of the last chunk received.
    pending: std::vec::IntoIter<Video>,
}

/// Starts reading `files` (each with its spec) on up to `threads` threads (0: automatic).
pub fn ordered_videos(
    files: Vec<(PathBuf, FeatureSpec)>,
    skip_corrupt: bool,
    threads: usize,
) -> OrderedVideos {
    ordered_videos_with(files, skip_corrupt, threads, FrameStore::Copied)
}

/// [`ordered_videos`], the frames left where `store` says ([`crate::sources::videos_with`]).
pub fn ordered_videos_with(
    files: Vec<(PathBuf, FeatureSpec)>,
    skip_corrupt: bool,
    threads: usize,
    store: FrameStore,
) -> OrderedVideos {
    let n = if threads == 0 {
        default_readers()
    } else {
        threads
    }
    .min(files.len())
    .max(1);
    let files: Vec<(PathBuf, Arc<FeatureSpec>)> =
        files.into_iter().map(|(f, s)| (f, Arc::new(s))).collect();
    let n_files = files.len();
    let mut readers = Vec::new();
    let mut handles = Vec::new();
    for w in 0..n {
        let (tx, rx) = sync_channel::<Msg>(CHUNKS_IN_FLIGHT);
        readers.push(rx);
        let mine: Vec<_> = files.iter().skip(w).step_by(n).cloned().collect();
        handles.push(std::thread::spawn(move || {
            reader_thread(mine, skip_corrupt, false, store, false, tx)
        }));
    }
    OrderedVideos {
        readers,
        handles,
        n_files,
        file: 0,
        stats: ReadStats::default(),
        done: false,
        pending: Vec::new().into_iter(),
    }
}

impl OrderedVideos {
    /// The index (into the files given) of the file the last video came from.
    pub fn file_index(&self) -> usize {
        self.file
    }

    /// What was read and skipped in the files finished so far.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }
}

impl Iterator for OrderedVideos {
    type Item = Result<Video, DataError>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(v) = self.pending.next() {
            return Some(Ok(v));
        }
        while !self.done && self.file < self.n_files {
            let n = self.readers.len();
            match self.readers[self.file % n].recv() {
                Ok(Msg::Videos(vs)) => {
                    self.pending = vs.into_iter();
                    if let Some(v) = self.pending.next() {
                        return Some(Ok(v));
                    }
                }
                Ok(Msg::EndShard(s)) => {
                    self.stats.merge(s);
                    self.file += 1;
                }
                Ok(Msg::Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Err(_) => {
                    self.done = true;
                    return Some(Err(DataError::new(
                        DataErrorKind::Internal,
                        Location::file("<reader>"),
                        "a reader thread stopped before the end of its files",
                    )
                    .hint("this is a bug in yt8m; please report it with the inputs")));
                }
            }
        }
        None
    }
}

impl Drop for OrderedVideos {
    fn drop(&mut self) {
        // Readers blocked on a full channel see it closed and stop.
        self.readers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

pub fn default_readers() -> usize {
    crate::available_cores().clamp(1, 4)
}

impl Loader {
    pub fn new(files: Vec<PathBuf>, spec: FeatureSpec, cfg: LoaderConfig) -> Self {
        Loader {
            files: Arc::new(files),
            spec: Arc::new(spec),
            cfg,
            buffers: None,
        }
    }

    /// Frame-level batches take their byte buffers from `pool` (see [`BufferPool`]); the
    /// consumer gives them back.
    pub fn with_buffers(mut self, pool: Arc<BufferPool>) -> Self {
        self.buffers = Some(pool);
        self
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }
    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }

    /// Starts the threads for `epoch` (the shuffle depends on seed and epoch only).
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        let cfg = self.cfg.clone();
        let mut rng = Rng::derive(cfg.seed, epoch);
        let mut order: Vec<usize> = (0..self.files.len()).collect();
        if cfg.shuffle {
            rng.shuffle(&mut order);
        }
        let n_readers = if cfg.num_readers == 0 {
            default_readers()
        } else {
            cfg.num_readers
        }
        .min(order.len())
        .max(1);
        let mut handles = Vec::new();
        let mut reader_rx = Vec::new();
        for w in 0..n_readers {
            let (tx, rx) = sync_channel::<Msg>(CHUNKS_IN_FLIGHT);
            reader_rx.push(rx);
            let mine: Vec<(PathBuf, Arc<FeatureSpec>)> = order
                .iter()
                .skip(w)
                .step_by(n_readers)
                .map(|&i| (self.files[i].clone(), self.spec.clone()))
                .collect();
            let skip = cfg.skip_corrupt;
            let segments = cfg.segments;
            handles.push(std::thread::spawn(move || {
                // Batches copy the frames anyway: from the record's buffer, not a second copy.
                reader_thread(mine, skip, true, FrameStore::InRecord, segments, tx)
            }));
        }
        let (btx, brx) = sync_channel(cfg.prefetch.max(1));
        let stats = Arc::new(Mutex::new(ReadStats::default()));
        let st = stats.clone();
        let spec = self.spec.clone();
        let n_files = order.len();
        let pool = self.buffers.clone();
        handles.push(std::thread::spawn(move || {
            let tx = btx.clone();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                assembler(reader_rx, n_files, &spec, cfg, pool, rng, btx, st)
            }));
            if let Err(p) = r {
                let _ = tx.send(Out::Batch(Err(DataError::new(
                    DataErrorKind::Internal,
                    Location::file("<loader>"),
                    format!("the batch assembler failed: {}", panic_text(p.as_ref())),
                )
                .hint(
                    "this is a bug in yt8m; please report it with the command and inputs",
                ))));
            }
        }));
        EpochIter {
            rx: brx,
            stats,
            handles,
            finished: false,
        }
    }
}

/// Fault injection for the tests of failure handling: `YT8M_FAULT_READER_PANIC=TEXT` makes a
/// reader thread panic on files whose path contains TEXT (nothing else in the code panics on
/// any input, so the path that reports a dead reader needs this to be tested at all).
fn inject_reader_fault(f: &std::path::Path) {
    if let Some(t) = std::env::var_os("YT8M_FAULT_READER_PANIC") {
        if f.to_string_lossy().contains(t.to_string_lossy().as_ref()) {
            panic!(
                "injected fault (YT8M_FAULT_READER_PANIC) while reading {}",
                f.display()
            );
        }
    }
}

/// Reads `files` in order, each with its spec, sending videos then the file's stats (or its
/// error). `drop_empty`: leave out videos without frames (training has nothing to pool over),
/// listing them in the stats. `segments`: send each video's rated 5-frame segments instead
/// of the video ([`Video::segment_examples`]).
fn reader_thread(
    files: Vec<(PathBuf, Arc<FeatureSpec>)>,
    skip: bool,
    drop_empty: bool,
    store: FrameStore,
    segments: bool,
    tx: SyncSender<Msg>,
) {
    for (f, spec) in files {
        let spec = spec.as_ref();
        let mut alive = true;
        let mut empty = Vec::new();
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut bad: Option<DataError> = None;
        // A panic while reading one file fails the epoch naming the file, instead of closing
        // the channel (which the assembler would take for the end of the data).
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inject_reader_fault(&f);
            let r = read_shard_with(&f, spec, skip, store, |v| {
                // A video without frames has nothing to pool over: leave it out, and report it.
                if v.num_frames == 0 && drop_empty {
                    empty.push(format!("{}: {}", f.display(), v.id));
                    return true;
                }
                if segments {
                    match v.segment_examples(
                        crate::synth::SEGMENT_FRAMES,
                        &spec.dims,
                        spec.num_classes,
                    ) {
                        Ok(list) => chunk.extend(list),
                        Err(e) => {
                            bad = Some(
                                DataError::new(
                                    DataErrorKind::Schema,
                                    Location::file(&f).video(&v.id).key("segment_labels"),
                                    e,
                                )
                                .hint("2019 segment ratings must name classes of the model and start at frame 0 or later"),
                            );
                            return false;
                        }
                    }
                } else {
                    chunk.push(v);
                }
                if chunk.len() >= CHUNK {
                    alive = tx.send(Msg::Videos(std::mem::take(&mut chunk))).is_ok();
                }
                alive
            });
            // What was read before an error or the end of the file goes first.
            if alive && !chunk.is_empty() {
                alive = tx.send(Msg::Videos(std::mem::take(&mut chunk))).is_ok();
            }
            match bad.take() {
                Some(e) => Err(e),
                None => r,
            }
        }))
        .unwrap_or_else(|p| {
            Err(DataError::new(
                DataErrorKind::Internal,
                Location::file(&f),
                format!("reading this file failed: {}", panic_text(p.as_ref())),
            )
            .hint("this is a bug in yt8m; please report it with the file"))
        });
        if !alive {
            return;
        }
        let msg = match r {
            Ok(mut s) => {
                s.zero_frames = empty;
                Msg::EndShard(s)
            }
            Err(e) => Msg::Err(e),
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn assembler(
    readers: Vec<Receiver<Msg>>,
    n_files: usize,
    spec: &FeatureSpec,
    cfg: LoaderConfig,
    pool: Option<Arc<BufferPool>>,
    mut rng: Rng,
    out: SyncSender<Out>,
    stats: Arc<Mutex<ReadStats>>,
) {
    let bs = cfg.batch_size.max(1);
    let window = if cfg.bucket_by_length {
        bs * cfg.bucket_window.max(1)
    } else {
        bs
    };
    let mut buffer: Vec<Video> = Vec::new(); // shuffle buffer
    let mut pending: Vec<Video> = Vec::new(); // window being filled
    let next_position = std::cell::Cell::new(0u64); // stream position of pending[0]
    let emit_window = |pending: &mut Vec<Video>, rng: &mut Rng| -> Vec<Batch> {
        let lengths: Vec<usize> = pending.iter().map(|v| v.num_frames).collect();
        let groups = if cfg.bucket_by_length {
            length_buckets(&lengths, bs, cfg.bucket_window)
        } else {
            (0..lengths.len())
                .collect::<Vec<_>>()
                .chunks(bs)
                .map(|c| c.to_vec())
                .collect()
        };
        let mut batches: Vec<Batch> = Vec::new();
        for g in groups {
            // Only the window's last, short batch can be dropped (a full window cuts into
            // full batches).
            if g.len() < bs && cfg.drop_last {
                continue;
            }
            let mut b = Batch::build(pending, &g, spec, 1, pool.as_deref());
            b.positions
                .iter_mut()
                .for_each(|p| *p += next_position.get());
            batches.push(b);
        }
        next_position.set(next_position.get() + pending.len() as u64);
        pending.clear();
        if cfg.shuffle && cfg.bucket_by_length {
            rng.shuffle(&mut batches);
        }
        batches
    };
    let push = |v: Video, pending: &mut Vec<Video>, rng: &mut Rng| -> Option<Vec<Batch>> {
        pending.push(v);
        if pending.len() >= window {
            Some(emit_window(pending, rng))
        } else {
            None
        }
    };
    let send_all = |batches: Vec<Batch>| -> bool {
        batches
            .into_iter()
            .all(|b| out.send(Out::Batch(Ok(b))).is_ok())
    };

    for k in 0..n_files {
        let rx = &readers[k % readers.len()];
        loop {
            match rx.recv() {
                Ok(Msg::Videos(vs)) => {
                    for v in vs {
                        let v = if cfg.shuffle {
                            if buffer.len() < cfg.shuffle_buffer.max(1) {
                                buffer.push(v);
                                continue;
                            }
                            let j = rng.below(buffer.len() as u64) as usize;
                            std::mem::replace(&mut buffer[j], v)
                        } else {
                            v
                        };
                        if let Some(b) = push(v, &mut pending, &mut rng) {
                            if !send_all(b) {
                                return;
                            }
                        }
                    }
                }
                Ok(Msg::EndShard(s)) => {
                    stats.lock().unwrap().merge(s);
                    break;
                }
                Ok(Msg::Err(e)) => {
                    let _ = out.send(Out::Batch(Err(e)));
                    return;
                }
                // The reader is gone without ending its shard: it died (or the epoch was
                // dropped, in which case nobody reads this).
                Err(_) => {
                    let _ = out.send(Out::Batch(Err(DataError::new(
                        DataErrorKind::Internal,
                        Location::file("<loader>"),
                        format!("a reader thread stopped before the end of shard {k}"),
                    )
                    .hint(
                        "this is a bug in yt8m; please report it with the command and inputs",
                    ))));
                    return;
                }
            }
        }
    }
    // Drain the shuffle buffer in random order.
    rng.shuffle(&mut buffer);
    for v in buffer.drain(..) {
        if let Some(b) = push(v, &mut pending, &mut rng) {
            if !send_all(b) {
                return;
            }
        }
    }
    let b = emit_window(&mut pending, &mut rng);
    if send_all(b) {
        let _ = out.send(Out::Done);
    }
}

#[cfg(test)]
mod tests {
    use super::length_buckets;

    #[test]
    fn length_buckets_sort_within_windows_and_keep_every_index_once() {
        let lengths = [5, 1, 4, 2, 3, 9, 7, 8, 6];
        // Windows of 2 batches of 2: [0..4) sorted, [4..8) sorted, then [8].
        let g = length_buckets(&lengths, 2, 2);
        assert_eq!(
            g,
            vec![vec![1, 3], vec![2, 0], vec![4, 6], vec![7, 5], vec![8]]
        );
        // Window 1: batches in input order, each sorted (no reordering across batches).
        let g = length_buckets(&lengths, 4, 1);
        assert_eq!(g, vec![vec![1, 3, 2, 0], vec![4, 6, 7, 5], vec![8]]);
        let mut all: Vec<usize> = length_buckets(&lengths, 3, 16).concat();
        all.sort();
        assert_eq!(all, (0..lengths.len()).collect::<Vec<_>>());
        assert!(length_buckets(&[], 4, 4).is_empty());
    }
}
