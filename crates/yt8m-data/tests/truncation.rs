//! A shard cut short by another process while it is mapped (crate::mapguard): the readers
//! and the batch loader report it as an error naming the file instead of dying of SIGBUS.
//! Without the guard each of these tests kills the test process.

use std::path::{Path, PathBuf};
use yt8m_data::batch::{Loader, LoaderConfig};
use yt8m_data::synth::{SynthConfig, write_synthetic};
use yt8m_data::tfrecord::MappedRecords;
use yt8m_data::{DataErrorKind, FeatureSpec};

/// A fresh directory for one test (removed when dropped).
struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("yt8m-truncation-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn shards(dir: &Path, videos: usize, shards: usize, seed: u64) -> Vec<PathBuf> {
    let cfg = SynthConfig {
        num_videos: videos,
        num_shards: shards,
        min_frames: 20,
        max_frames: 40,
        seed,
        ..SynthConfig::default()
    };
    write_synthetic(dir, &cfg).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tfrecord"))
        .collect();
    files.sort();
    files
}

fn truncate(f: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(f)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn a_guarded_map_truncated_while_read_is_an_error_naming_the_file() {
    let dir = TempDir::new("records");
    let files = shards(dir.path(), 40, 1, 3);
    let f = &files[0];
    let size = std::fs::metadata(f).unwrap().len();
    assert!(
        size > 64 * 4096,
        "the shard must span many pages ({size} bytes)"
    );
    let mut recs = MappedRecords::open(f, true).unwrap().unwrap();
    assert!(recs.next_range().unwrap().is_some());
    truncate(f, 4096);
    let mut read = 1;
    let err = loop {
        match recs.next_range() {
            Ok(Some(_)) => read += 1,
            Ok(None) => panic!("read to the end of a truncated file without an error"),
            Err(e) => break e,
        }
    };
    println!("after {read} record(s): {err}");
    assert_eq!(err.kind, DataErrorKind::Io);
    let text = err.to_string();
    assert!(text.contains("shrank while it was being read"), "{text}");
    assert!(text.contains(&f.display().to_string()), "{text}");
    assert_eq!(recs.map().truncated(), Some(f.as_path()));
    // Once failed, the reader stays at its end.
    assert!(recs.next_range().unwrap().is_none());
}

#[test]
fn the_loader_fails_the_epoch_when_a_shard_is_truncated_under_it() {
    let dir = TempDir::new("loader");
    let files = shards(dir.path(), 600, 3, 5);
    let cfg = LoaderConfig {
        batch_size: 2,
        num_readers: 1,
        prefetch: 1,
        ..LoaderConfig::default()
    };
    let loader = Loader::new(files.clone(), FeatureSpec::default(), cfg);
    let mut epoch = loader.epoch(0);
    let first = epoch.next().unwrap().unwrap();
    assert_eq!(first.len(), 2);
    // The one reader is in the first shard, at most a few chunks ahead (bounded channels):
    // most of it is still to be read, and what was read of it is still to be copied.
    let last = &files[0];
    truncate(last, 4096);
    let mut batches = 1;
    let err = loop {
        match epoch.next() {
            Some(Ok(_)) => batches += 1,
            Some(Err(e)) => break e,
            None => panic!("the epoch ended without an error after a shard was truncated"),
        }
    };
    println!("after {batches} batches: {err}");
    assert!(epoch.next().is_none(), "the epoch goes on after its error");
    let text = err.to_string();
    assert!(text.contains("shrank while it was being read"), "{text}");
    assert!(text.contains(&last.display().to_string()), "{text}");
}

#[test]
fn an_unguarded_map_of_an_intact_file_reads_as_before() {
    let dir = TempDir::new("intact");
    let files = shards(dir.path(), 10, 1, 7);
    for guarded in [false, true] {
        let mut recs = MappedRecords::open(&files[0], guarded).unwrap().unwrap();
        let mut n = 0;
        while recs.next_range().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 10);
        assert_eq!(recs.map().truncated(), None);
    }
}
