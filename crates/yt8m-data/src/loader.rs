//! Batches built on background threads: reader threads decode shards in parallel, one
//! assembler thread merges them back **in shard order** (so shuffling is reproducible for a
//! seed, whatever the thread timing), shuffles through a buffer, optionally buckets by length,
//! and packs the batches ([`crate::batch::Batch`]).

use crate::batch::{Batch, BufferPool, length_buckets};
use crate::error::{DataError, DataErrorKind, Location, panic_text};
use crate::rng::Rng;
use crate::sources::{FrameStore, ReadStats, read_shard_with};
use crate::video::{FeatureSpec, Video};
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

/// Videos per message from a reader thread: one wake-up of the consumer per chunk instead of
/// per video (thread hand-offs were 13 % of reading mapped shards). Channels hold
/// [`CHUNKS_IN_FLIGHT`] chunks, so as many videos wait per reader as before (64).
const CHUNK: usize = 16;
const CHUNKS_IN_FLIGHT: usize = 4;
/// The batch loader's channels when its shards are memory-mapped: a video there is a few
/// offsets into the map, so each reader may run 256 videos ahead. Batches come from one shard
/// at a time (file i is reader i mod n's), so with 64 the other readers soon waited while one
/// worked: 1.1x an epoch of `read_batches` (docs/benchmarks.md). Records read into buffers
/// (`skip_corrupt`, pickles) keep [`CHUNKS_IN_FLIGHT`]: up to 350 KB a video.
const MAPPED_CHUNKS_IN_FLIGHT: usize = 16;

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
        let mapped = !cfg.skip_corrupt
            && self
                .files
                .iter()
                .all(|f| crate::paths::shard_kind(f) == crate::paths::ShardKind::TfRecord);
        let depth = if mapped {
            MAPPED_CHUNKS_IN_FLIGHT
        } else {
            CHUNKS_IN_FLIGHT
        };
        let mut handles = Vec::new();
        let mut reader_rx = Vec::new();
        for w in 0..n_readers {
            let (tx, rx) = sync_channel::<Msg>(depth);
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
                // Batches copy the frames anyway: straight from the mapped shard (1.35x
                // reading each record into a buffer first, docs/benchmarks.md), guarded: a
                // shard truncated meanwhile fails the epoch instead of killing the process.
                reader_thread(mine, skip, true, FrameStore::MappedGuarded, segments, tx)
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

/// A video's rated 5-frame segments as examples of their own ([`Video::segment_examples`]).
fn rated_segments(
    v: &Video,
    spec: &FeatureSpec,
    f: &std::path::Path,
) -> Result<Vec<Video>, DataError> {
    v.segment_examples(crate::synth::SEGMENT_FRAMES, &spec.dims, spec.num_classes)
        .map_err(|e| {
            DataError::new(
                DataErrorKind::Schema,
                Location::file(f).video(&v.id).key("segment_labels"),
                e,
            )
            .hint(
                "2019 segment ratings must name classes of the model and start at frame 0 or later",
            )
        })
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
                    match rated_segments(&v, spec, &f) {
                        Ok(list) => chunk.extend(list),
                        Err(e) => {
                            bad = Some(e);
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

/// Videos in stream order cut into batches: a window of `bucket_window` batches (or one batch)
/// at a time, sorted by length when bucketing, the window's batches shuffled when both
/// shuffling and bucketing (the order of the draws from the epoch's RNG is part of the
/// reproducible stream: resume depends on it).
struct Windows<'a> {
    cfg: &'a LoaderConfig,
    spec: &'a FeatureSpec,
    pool: Option<&'a BufferPool>,
    bs: usize,
    /// Videos per window.
    window: usize,
    /// The window being filled.
    pending: Vec<Video>,
    /// Stream position of `pending[0]`.
    next_position: u64,
}

impl<'a> Windows<'a> {
    fn new(cfg: &'a LoaderConfig, spec: &'a FeatureSpec, pool: Option<&'a BufferPool>) -> Self {
        let bs = cfg.batch_size.max(1);
        let window = if cfg.bucket_by_length {
            bs * cfg.bucket_window.max(1)
        } else {
            bs
        };
        Windows {
            cfg,
            spec,
            pool,
            bs,
            window,
            pending: Vec::new(),
            next_position: 0,
        }
    }

    /// Adds a video; the window's batches once it is full.
    fn push(&mut self, v: Video, rng: &mut Rng) -> Option<Vec<Result<Batch, DataError>>> {
        self.pending.push(v);
        (self.pending.len() >= self.window).then(|| self.emit(rng))
    }

    /// The batches of the window so far (the last, short one at the end of the data), or the
    /// error that ends the epoch.
    fn emit(&mut self, rng: &mut Rng) -> Vec<Result<Batch, DataError>> {
        let (cfg, bs) = (self.cfg, self.bs);
        let lengths: Vec<usize> = self.pending.iter().map(|v| v.num_frames).collect();
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
            let mut b = Batch::build(&self.pending, &g, self.spec, 1, self.pool);
            // Checked after the copy: a page lost before or during it was read as zeros.
            // The epoch ends there.
            if let Some(f) = g.iter().find_map(|&i| self.pending[i].source_truncated()) {
                return vec![Err(crate::tfrecord::truncated_while_read(f))];
            }
            b.positions
                .iter_mut()
                .for_each(|p| *p += self.next_position);
            batches.push(b);
        }
        self.next_position += self.pending.len() as u64;
        self.pending.clear();
        if cfg.shuffle && cfg.bucket_by_length {
            rng.shuffle(&mut batches);
        }
        batches.into_iter().map(Ok).collect()
    }
}

/// The TF idiom's `shuffle(buffer)`: `v` goes into the buffer, and once it holds `cap` videos a
/// random one comes out in its place (None while it fills).
fn shuffle_step(buffer: &mut Vec<Video>, cap: usize, v: Video, rng: &mut Rng) -> Option<Video> {
    if buffer.len() < cap.max(1) {
        buffer.push(v);
        return None;
    }
    let j = rng.below(buffer.len() as u64) as usize;
    Some(std::mem::replace(&mut buffer[j], v))
}

fn reader_died(shard: usize) -> DataError {
    DataError::new(
        DataErrorKind::Internal,
        Location::file("<loader>"),
        format!("a reader thread stopped before the end of shard {shard}"),
    )
    .hint("this is a bug in yt8m; please report it with the command and inputs")
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
    let mut buffer: Vec<Video> = Vec::new(); // shuffle buffer
    let mut windows = Windows::new(&cfg, spec, pool.as_deref());
    // Stops at the first error (sent, then false: the epoch ends there).
    let send_all = |batches: Vec<Result<Batch, DataError>>| -> bool {
        batches.into_iter().all(|b| {
            let ok = b.is_ok();
            out.send(Out::Batch(b)).is_ok() && ok
        })
    };

    for k in 0..n_files {
        let rx = &readers[k % readers.len()];
        loop {
            match rx.recv() {
                Ok(Msg::Videos(vs)) => {
                    for v in vs {
                        let v = if cfg.shuffle {
                            match shuffle_step(&mut buffer, cfg.shuffle_buffer, v, &mut rng) {
                                Some(v) => v,
                                None => continue,
                            }
                        } else {
                            v
                        };
                        if let Some(b) = windows.push(v, &mut rng) {
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
                    let _ = out.send(Out::Batch(Err(reader_died(k))));
                    return;
                }
            }
        }
    }
    // Drain the shuffle buffer in random order.
    rng.shuffle(&mut buffer);
    for v in buffer.drain(..) {
        if let Some(b) = windows.push(v, &mut rng) {
            if !send_all(b) {
                return;
            }
        }
    }
    let b = windows.emit(&mut rng);
    if send_all(b) {
        let _ = out.send(Out::Done);
    }
}
