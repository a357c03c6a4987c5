//! Input paths → shard files, and shard files → videos. Accepts files, directories, glob
//! patterns and list files (`.list`/`.txt`, one path per line as PaddleVideo writes them,
//! joined with `data_prefix`). Shards are TFRecords (official layout) or PaddleVideo pickles.

use super::tfrecord::{MappedRecords, RecordReader, ShardBytes};
use super::video::{FeatureSpec, Video, VideoFeatures, decode_video, decode_video_mapped};
use crate::error::{DataError, DataErrorKind, Location};
use std::path::Path;
use std::sync::Arc;

pub use crate::paddle_pickle::{PickleVideos, paddle_pickle_videos, read_paddle_pickle};
pub use crate::paths::{ShardKind, expand_paths, shard_kind};

/// Counts of what a read skipped (only with `skip_corrupt`).
#[derive(Debug, Default)]
pub struct ReadStats {
    pub records: usize,
    pub skipped: Vec<DataError>,
    /// Frame-level videos with no frames, left out of batches (ids, for the report).
    pub zero_frames: Vec<String>,
    /// Byte ranges skipped to resynchronise after broken record headers, one line each
    /// (file, bytes, records read after them).
    pub resyncs: Vec<String>,
    /// Frame-level videos whose modalities have different frame counts (within max_frames):
    /// read as the official reader does (length from rgb; a shorter modality padded with 0.0
    /// after dequantization, a longer one cut), and counted here so it is reported.
    pub frame_count_mismatch: usize,
    /// The first such video, for the message.
    pub frame_count_example: Option<String>,
}

impl ReadStats {
    pub fn merge(&mut self, other: ReadStats) {
        self.records += other.records;
        self.skipped.extend(other.skipped);
        self.zero_frames.extend(other.zero_frames);
        self.resyncs.extend(other.resyncs);
        self.frame_count_mismatch += other.frame_count_mismatch;
        if self.frame_count_example.is_none() {
            self.frame_count_example = other.frame_count_example;
        }
    }

    /// A warning about modalities of unequal length, if any were read.
    pub fn frame_count_warning(&self) -> Option<String> {
        (self.frame_count_mismatch > 0).then(|| {
            format!(
                "{} video(s) have modalities with different frame counts, e.g. {}; read as the official reader does: the length comes from the first modality (rgb), a shorter one is padded with 0.0, a longer one cut",
                self.frame_count_mismatch,
                self.frame_count_example.as_deref().unwrap_or("?")
            )
        })
    }

    /// Lines for a report: every skipped record and byte range (empty when nothing was lost).
    pub fn loss_report(&self) -> Vec<String> {
        let mut v: Vec<String> = self.skipped.iter().map(|e| e.to_string()).collect();
        v.extend(self.resyncs.iter().cloned());
        v
    }
}

/// Where a shard reader leaves each video's uint8 frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameStore {
    /// Copied out into the video's own arrays ([`VideoFeatures::Frames`]).
    #[default]
    Copied,
    /// Left in the memory-mapped file ([`VideoFeatures::Mapped`]; see [`MappedRecords`] for
    /// the one hazard). Falls back to `InRecord` where a file cannot be mapped usefully and
    /// with `skip_corrupt` (skipping needs the resynchronising reader).
    Mapped,
    /// As `Mapped`, the map guarded against truncation ([`crate::mapguard`]): for readers that
    /// copy the frames out and then check [`Video::source_truncated`] (the batch loader).
    /// Without the guard a shard cut short while mapped would end the process.
    MappedGuarded,
    /// Left in the buffer the record was read into ([`VideoFeatures::Mapped`] over
    /// [`ShardBytes::Record`]): no copy after the read, and nothing is mapped. A video that
    /// keeps less than half of its record's bytes (`max_frames` cut most frames) is copied
    /// out instead, so the record's bytes are not held for nothing.
    InRecord,
}

enum Source {
    TfRecord {
        reader: RecordReader,
        buf: Vec<u8>,
        in_record: bool,
    },
    Mapped(MappedRecords),
    Pickle(PickleVideos),
}

/// The videos of one shard in file order, as an iterator. With `skip_corrupt`, bad records are
/// skipped and kept in [`ShardVideos::stats`]; otherwise the first one is yielded as the error
/// and the iteration ends. A file with no record at all is an `Empty` error.
pub struct ShardVideos {
    path: std::path::PathBuf,
    spec: FeatureSpec,
    skip_corrupt: bool,
    source: Source,
    stats: ReadStats,
    done: bool,
}

/// Opens a shard (TFRecord or PaddleVideo pickle) for reading video by video.
pub fn videos(
    path: &Path,
    spec: &FeatureSpec,
    skip_corrupt: bool,
) -> Result<ShardVideos, DataError> {
    videos_with(path, spec, skip_corrupt, FrameStore::Copied)
}

/// [`videos`], with the uint8 frames left where `store` says (pickles always copy).
pub fn videos_with(
    path: &Path,
    spec: &FeatureSpec,
    skip_corrupt: bool,
    store: FrameStore,
) -> Result<ShardVideos, DataError> {
    let source = match shard_kind(path) {
        ShardKind::TfRecord => {
            match (matches!(store, FrameStore::Mapped | FrameStore::MappedGuarded) && !skip_corrupt)
                .then(|| MappedRecords::open(path, store == FrameStore::MappedGuarded))
                .transpose()?
                .flatten()
            {
                Some(m) => Source::Mapped(m),
                None => Source::TfRecord {
                    reader: RecordReader::open(path)?,
                    buf: Vec::new(),
                    in_record: store != FrameStore::Copied,
                },
            }
        }
        ShardKind::Pickle => Source::Pickle(paddle_pickle_videos(path, spec)?),
    };
    Ok(ShardVideos {
        path: path.to_path_buf(),
        spec: spec.clone(),
        skip_corrupt,
        source,
        stats: ReadStats::default(),
        done: false,
    })
}

impl ShardVideos {
    /// What was read and skipped so far (complete once the iterator is exhausted).
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }
    pub fn into_stats(self) -> ReadStats {
        self.stats
    }

    fn next_tfrecord(&mut self) -> Option<Result<Video, DataError>> {
        let Source::TfRecord {
            reader,
            buf,
            in_record,
        } = &mut self.source
        else {
            return None;
        };
        loop {
            let rec = match reader.next_into(buf) {
                Ok(Some(rec)) => rec,
                Ok(None) => {
                    self.stats.resyncs = reader.skip_report();
                    if self.stats.records == 0
                        && self.stats.skipped.is_empty()
                        && reader.next_index() == 0
                    {
                        return Some(Err(DataError::new(
                            DataErrorKind::Empty,
                            Location::file(&self.path),
                            "file is empty (0 records)",
                        )
                        .hint("remove it from the inputs, or re-create it")));
                    }
                    return None;
                }
                Err(e) if self.skip_corrupt && e.kind == DataErrorKind::Corrupt => {
                    self.stats.skipped.push(e);
                    continue;
                }
                Err(e) => return Some(Err(e)),
            };
            let loc = Location::file(&self.path).record(rec.index, rec.offset);
            let decoded = if *in_record {
                // The buffer becomes the video's; the next record gets a new one.
                let bytes = Arc::new(ShardBytes::Record(std::mem::take(buf)));
                decode_video_mapped(&bytes, 0..bytes.len(), &self.spec, &loc).map(|mut v| {
                    v.release_record_if_mostly_unused();
                    v
                })
            } else {
                decode_video(buf, &self.spec, &loc)
            };
            match decoded {
                Ok(v) => return Some(Ok(v)),
                Err(e) if self.skip_corrupt && e.kind == DataErrorKind::Corrupt => {
                    self.stats.skipped.push(e)
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl ShardVideos {
    fn next_mapped(&mut self) -> Option<Result<Video, DataError>> {
        let Source::Mapped(records) = &mut self.source else {
            return None;
        };
        match records.next_range() {
            Ok(Some((rec, range))) => {
                let loc = Location::file(&self.path).record(rec.index, rec.offset);
                Some(decode_video_mapped(records.map(), range, &self.spec, &loc))
            }
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl Iterator for ShardVideos {
    type Item = Result<Video, DataError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = match &mut self.source {
            Source::TfRecord { .. } => self.next_tfrecord(),
            Source::Mapped(_) => self.next_mapped(),
            Source::Pickle(p) => p.next(),
        };
        match &r {
            Some(Ok(v)) => {
                self.stats.records += 1;
                note_frame_counts(v, &self.spec, &self.path, &mut self.stats);
            }
            Some(Err(_)) | None => self.done = true,
        }
        r
    }
}

/// Reads every video of one shard, in file order, calling `f` for each (a callback over
/// [`videos`]). `f` returns `false` to stop early.
pub fn read_shard(
    path: &Path,
    spec: &FeatureSpec,
    skip_corrupt: bool,
    f: impl FnMut(Video) -> bool,
) -> Result<ReadStats, DataError> {
    read_shard_with(path, spec, skip_corrupt, FrameStore::Copied, f)
}

/// [`read_shard`] over [`videos_with`] (`store`: where the frames are left).
pub fn read_shard_with(
    path: &Path,
    spec: &FeatureSpec,
    skip_corrupt: bool,
    store: FrameStore,
    mut f: impl FnMut(Video) -> bool,
) -> Result<ReadStats, DataError> {
    let mut it = videos_with(path, spec, skip_corrupt, store)?;
    for v in it.by_ref() {
        if !f(v?) {
            break;
        }
    }
    Ok(it.into_stats())
}

fn note_frame_counts(v: &Video, spec: &FeatureSpec, path: &Path, stats: &mut ReadStats) {
    if let VideoFeatures::Frames(_) | VideoFeatures::Mapped(_) = &v.features {
        let rows: Vec<usize> = spec
            .dims
            .iter()
            .enumerate()
            .map(|(m, &d)| v.rows(m, d.max(1)))
            .collect();
        if rows.iter().any(|&r| r != v.num_frames) {
            stats.frame_count_mismatch += 1;
            if stats.frame_count_example.is_none() {
                let names: Vec<String> = spec
                    .frame_names
                    .iter()
                    .zip(&rows)
                    .map(|(n, r)| format!("{n} {r}"))
                    .collect();
                stats.frame_count_example = Some(format!(
                    "{}: video '{}' ({} frames)",
                    path.display(),
                    v.id,
                    names.join(", ")
                ));
            }
        }
    }
}

/// The segment examples a [`crate::batch::Loader`] with `segments` makes of `path` (rated
/// start times within the frames read): this reads every record whole, frames included.
pub fn count_segment_examples(path: &Path, spec: &FeatureSpec) -> Result<usize, DataError> {
    let mut n = 0;
    read_shard(path, spec, false, |v| {
        n += v.rated_starts(spec.num_classes).map_or(0, |r| r.len());
        true
    })?;
    Ok(n)
}

/// Number of videos in a shard without decoding: TFRecord framing only (seeks over payloads),
/// PaddleVideo pickles by loading them.
pub fn count_records(path: &Path) -> Result<usize, DataError> {
    use std::io::{Read, Seek, SeekFrom};
    match shard_kind(path) {
        ShardKind::Pickle => {
            let spec = FeatureSpec {
                num_classes: usize::MAX,
                max_frames: 0,
                ..Default::default()
            };
            Ok(read_paddle_pickle(path, &spec)?.len())
        }
        ShardKind::TfRecord => {
            let mut f = std::io::BufReader::new(
                std::fs::File::open(path).map_err(|e| DataError::io(path, e))?,
            );
            let mut n = 0;
            let mut hdr = [0u8; 12];
            loop {
                match f.read_exact(&mut hdr) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(n),
                    Err(e) => return Err(DataError::io(path, e)),
                }
                let len = u64::from_le_bytes(hdr[..8].try_into().unwrap());
                f.seek(SeekFrom::Current(len as i64 + 4))
                    .map_err(|e| DataError::io(path, e))?;
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthConfig, write_synthetic};
    use crate::tfrecord::ShardBytes;

    /// Frames left in the record's buffer read the same as copied ones; the buffer is kept
    /// only while the video uses most of it.
    #[test]
    fn frames_left_in_their_record_equal_copied_ones_and_release_it_when_cut() {
        let dir = std::env::temp_dir().join(format!("yt8m-inrecord-{}", std::process::id()));
        let cfg = SynthConfig {
            num_videos: 12,
            num_shards: 1,
            min_frames: 20,
            max_frames: 40,
            ..SynthConfig::default()
        };
        let file = write_synthetic(&dir, &cfg).unwrap().files[0].clone();
        for (max_frames, held) in [(300, true), (5, false)] {
            let spec = FeatureSpec {
                max_frames,
                num_classes: cfg.num_classes,
                ..FeatureSpec::default()
            };
            let read = |store| {
                let mut out = Vec::new();
                read_shard_with(&file, &spec, false, store, |v| {
                    out.push(v);
                    true
                })
                .unwrap();
                out
            };
            let (copied, in_record) = (read(FrameStore::Copied), read(FrameStore::InRecord));
            // (Frames and Mapped features are different variants: compare what they hold.)
            let content = |vs: &[Video]| -> Vec<(String, Vec<u32>, usize, Vec<Vec<u8>>)> {
                vs.iter()
                    .map(|v| {
                        let frames = [1024, 128]
                            .iter()
                            .enumerate()
                            .map(|(m, &d)| {
                                let mut out = vec![0; v.rows(m, d) * d];
                                assert!(v.copy_frames(
                                    m,
                                    d,
                                    v.rows(m, d),
                                    &mut out,
                                    crate::stream::Store::Cached
                                ));
                                out
                            })
                            .collect();
                        (v.id.clone(), v.labels.clone(), v.num_frames, frames)
                    })
                    .collect()
            };
            assert_eq!(copied.len(), 12);
            assert!(
                content(&copied) == content(&in_record),
                "max_frames {max_frames}: frames differ"
            );
            for v in &in_record {
                let kept = matches!(&v.features,
                    VideoFeatures::Mapped(f) if matches!(*f.map, ShardBytes::Record(_)));
                assert_eq!(kept, held, "max_frames {max_frames}: {:?}", v.features);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
