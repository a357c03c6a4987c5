//! A batch for the model (uint8 frames padded per batch, per-video lengths, multi-hot labels;
//! nothing as large as PaddleVideo's float masks), its recycled buffers ([`BufferPool`]) and
//! the length bucketing. The threads that read shards into batches are in [`crate::loader`]
//! (re-exported here).

use super::video::{FeatureSpec, Video, VideoFeatures};
use crate::stream::Store;
use std::sync::{Arc, Mutex};

pub use crate::loader::{
    EpochIter, Loader, LoaderConfig, OrderedVideos, default_readers, ordered_videos,
    ordered_videos_with,
};

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
    /// Label matrices (`[B, C]` float32: 2 MB at B = 128, C = 3862), recycled for the same
    /// reason: fresh ones were page-faulted in and zeroed by `calloc`, 9 % of the loader's time.
    free_labels: Mutex<Vec<Vec<f32>>>,
    /// Buffers kept at most (of each kind); more given back are freed.
    keep: usize,
}

impl BufferPool {
    pub fn new(keep: usize) -> Arc<BufferPool> {
        Arc::new(BufferPool {
            free: Mutex::new(Vec::new()),
            free_labels: Mutex::new(Vec::new()),
            keep,
        })
    }

    /// A buffer of `len` bytes, and whether it is all zeros. A recycled one (the smallest that
    /// holds `len`, else the largest, grown once and kept) keeps whatever it held; with none
    /// in the pool, a fresh zeroed one (from `calloc`: its pages come zeroed from the kernel,
    /// and writing zeros into it first would be a third pass besides frames and padding).
    pub fn take(&self, len: usize) -> (Vec<u8>, bool) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let pick = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .or_else(|| free.iter().enumerate().max_by_key(|(_, b)| b.capacity()))
            .map(|(i, _)| i);
        let Some(i) = pick else {
            drop(free);
            return (vec![0u8; len], true);
        };
        let mut b = free.swap_remove(i);
        drop(free);
        if b.len() >= len {
            b.truncate(len);
        } else {
            b.resize(len, 0);
        }
        (b, false)
    }

    /// Returns a buffer for reuse (freed when the pool already keeps enough).
    pub fn give(&self, b: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.keep {
            free.push(b);
        }
    }

    /// Buffers kept now (frames and label matrices).
    pub fn kept(&self) -> usize {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).len()
            + self
                .free_labels
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len()
    }

    /// Frees every buffer kept (those in use come back later as usual).
    pub fn clear(&self) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.free_labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// `len` zeros (a recycled matrix, cleared).
    pub fn take_labels(&self, len: usize) -> Vec<f32> {
        let free = self
            .free_labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        match free {
            Some(mut v) => {
                v.clear();
                v.resize(len, 0.0);
                v
            }
            None => vec![0.0; len],
        }
    }

    /// Returns a label matrix for reuse.
    pub fn give_labels(&self, v: Vec<f32>) {
        let mut free = self.free_labels.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.keep {
            free.push(v);
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
        let mut labels = match pool {
            Some(p) => p.take_labels(b * c),
            None => vec![0f32; b * c],
        };
        for (i, v) in videos.iter().enumerate() {
            for &l in &v.labels {
                labels[i * c + l as usize] = 1.0;
            }
        }
        let mut modalities = Vec::with_capacity(spec.dims.len());
        let frames_u8 = matches!(
            videos.first().map(|v| &v.features),
            Some(VideoFeatures::Frames(_) | VideoFeatures::Mapped(_))
        );
        if frames_u8 {
            let mut bufs: Vec<(Vec<u8>, bool)> = spec
                .dims
                .iter()
                .map(|&d| match pool {
                    Some(p) => p.take(b * t * d),
                    None => (vec![0u8; b * t * d], true),
                })
                .collect();
            let rows = fill_frames(&videos, &spec.dims, t, &mut bufs);
            for ((d, (data, _)), rows) in spec.dims.iter().zip(bufs).zip(rows) {
                modalities.push(ModalityBatch {
                    dim: *d,
                    data: ModalityData::U8(data),
                    rows,
                });
            }
        } else {
            modalities.extend(
                spec.dims
                    .iter()
                    .enumerate()
                    .map(|(m, &d)| float_modality(&videos, m, d, t)),
            );
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

/// Modality `m` (`d` wide) of float videos as `[B, t, d]`: video level (t = 1) or dequantized
/// frames; padding is 0.0.
fn float_modality(videos: &[&Video], m: usize, d: usize, t: usize) -> ModalityBatch {
    let b = videos.len();
    let mut rows = Vec::with_capacity(b);
    let mut data = vec![0f32; b * t * d];
    for (i, v) in videos.iter().enumerate() {
        let (src, r) = match &v.features {
            VideoFeatures::Mean(f) => (&f[m], 1),
            VideoFeatures::FloatFrames(f) => (&f[m], (f[m].len() / d).min(v.num_frames)),
            VideoFeatures::Frames(_) | VideoFeatures::Mapped(_) => {
                panic!("mixed feature kinds in one batch")
            }
        };
        data[i * t * d..i * t * d + r * d].copy_from_slice(&src[..r * d]);
        rows.push(r as i64);
    }
    ModalityBatch {
        dim: d,
        data: ModalityData::F32(data),
        rows,
    }
}

/// Copies each video's uint8 frames into `bufs` (per modality a `[B, t, d]` buffer, and
/// whether it is zeroed already) and zeroes the padding of the others; returns the rows per
/// video and modality. Large batches bypass the cache ([`crate::stream`]: the loader is bound
/// by writes to memory) and are split over two threads, since one core's stores do not use the
/// memory's bandwidth.
fn fill_frames(
    videos: &[&Video],
    dims: &[usize],
    t: usize,
    bufs: &mut [(Vec<u8>, bool)],
) -> Vec<Vec<i64>> {
    let bytes: usize = bufs.iter().map(|b| b.0.len()).sum();
    // A small batch (a server's) is read by the model at once: leave it in the cache.
    let store = if bytes >= STREAM_BYTES {
        Store::Streaming
    } else {
        Store::Cached
    };
    let fill = |videos: &[&Video], bufs: Vec<(&mut [u8], bool)>| -> Vec<Vec<i64>> {
        let mut out = Vec::with_capacity(dims.len());
        for ((m, &d), (data, zeroed)) in dims.iter().enumerate().zip(bufs) {
            let mut rows = Vec::with_capacity(videos.len());
            for (i, v) in videos.iter().enumerate() {
                let r = v.rows(m, d).min(v.num_frames);
                let row = &mut data[i * t * d..(i + 1) * t * d];
                let (dst, pad) = row.split_at_mut(r * d);
                let copied = v.copy_frames(m, d, r, dst, store);
                assert!(copied, "mixed feature kinds in one batch");
                if !zeroed {
                    // A recycled buffer holds old frames there.
                    store.zero(pad);
                }
                rows.push(r as i64);
            }
            out.push(rows);
        }
        crate::stream::fence();
        out
    };
    let half = videos.len() / 2;
    if bytes < PARALLEL_FILL_BYTES || half == 0 || crate::available_cores() < 2 {
        return fill(
            videos,
            bufs.iter_mut()
                .map(|(b, z)| (b.as_mut_slice(), *z))
                .collect(),
        );
    }
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for ((b, z), &d) in bufs.iter_mut().zip(dims) {
        let (x, y) = b.split_at_mut(half * t * d);
        first.push((x, *z));
        second.push((y, *z));
    }
    let (a, z) = std::thread::scope(|s| {
        let h = s.spawn(|| fill(&videos[half..], second));
        let a = fill(&videos[..half], first);
        (a, h.join())
    });
    let z = z.unwrap_or_else(|p| std::panic::resume_unwind(p));
    a.into_iter()
        .zip(z)
        .map(|(mut x, y)| {
            x.extend(y);
            x
        })
        .collect()
}

/// Batches from this many bytes are written with stores that bypass the cache.
const STREAM_BYTES: usize = 1 << 20;

/// Batches below this many bytes are filled on one thread (a thread start costs more).
const PARALLEL_FILL_BYTES: usize = 4 << 20;

#[cfg(test)]
mod tests {
    use super::{Batch, BufferPool, ModalityData, length_buckets};
    use crate::video::{FeatureSpec, Video, VideoFeatures};

    /// Video `i`: `len` frames (audio two fewer), byte values from (i, frame, column).
    fn video(i: usize, len: usize) -> Video {
        let frames = |d: usize, rows: usize, salt: usize| -> Vec<u8> {
            (0..rows * d)
                .map(|k| (i * 31 + (k / d) * 7 + (k % d) + salt) as u8 | 1)
                .collect()
        };
        Video {
            id: format!("v{i}"),
            labels: vec![i as u32 % 5],
            has_labels: true,
            features: VideoFeatures::Frames(vec![
                frames(1024, len, 0),
                frames(128, len.saturating_sub(2), 3),
            ]),
            num_frames: len,
            total_frames: len,
            segments: None,
        }
    }

    #[test]
    fn large_batches_in_recycled_buffers_hold_exactly_the_frames_and_zero_padding() {
        // 64 videos up to 116 frames: 8.5 MB, past both the streaming and the two-thread sizes.
        let videos: Vec<Video> = (0..64).map(|i| video(i, 1 + (i * 37) % 120)).collect();
        let spec = FeatureSpec {
            num_classes: 5,
            ..FeatureSpec::default()
        };
        let pool = BufferPool::new(8);
        for round in 0..3 {
            let b = Batch::build(&videos, &(0..64).collect::<Vec<_>>(), &spec, 1, Some(&pool));
            let fresh = Batch::from_videos(&videos, &spec);
            let t = b.max_len;
            assert_eq!(t, videos.iter().map(|v| v.num_frames).max().unwrap());
            for (m, (got, want)) in b.modalities.iter().zip(&fresh.modalities).enumerate() {
                let (ModalityData::U8(g), ModalityData::U8(w)) = (&got.data, &want.data) else {
                    panic!("uint8 frames expected");
                };
                assert_eq!(got.rows, want.rows, "modality {m}");
                assert!(
                    g == w,
                    "round {round}, modality {m}: recycled batch differs"
                );
                // Fresh batches are the reference: check them against the videos too.
                let d = spec.dims[m];
                for (i, v) in videos.iter().enumerate() {
                    let VideoFeatures::Frames(f) = &v.features else {
                        unreachable!()
                    };
                    let row = &w[i * t * d..(i + 1) * t * d];
                    assert_eq!(&row[..f[m].len()], &f[m][..]);
                    assert!(row[f[m].len()..].iter().all(|&x| x == 0));
                }
            }
            assert_eq!(b.labels, fresh.labels);
            // Give the buffers back dirty, as a numpy user may leave them.
            for m in b.modalities {
                if let ModalityData::U8(mut v) = m.data {
                    v.fill(0xEE);
                    pool.give(v);
                }
            }
            let mut l = b.labels;
            l.fill(7.0);
            pool.give_labels(l);
        }
    }

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
