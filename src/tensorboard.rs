//! TensorBoard event files, written natively: TFRecord framing (the same masked CRC-32C as the
//! data shards, `yt8m_data::tfrecord::frame_record`) around `tensorflow.Event` messages.
//!
//! Reference: tensorflow/core/util/event.proto and tensorflow/core/framework/summary.proto
//! (field numbers below are theirs); TensorBoard's `EventFileLoader` reads any file whose name
//! contains `tfevents`, the first record being the `file_version` event `brain.Event:2`.
//! Scalars use `Summary.Value.simple_value`, which every TensorBoard version (and
//! `EventAccumulator.Scalars`) reads as a scalar series.
//!
//! Each writer opens a new file (`events.out.tfevents.<unix seconds>.<host>.<pid>[.<k>].yt8m`),
//! so a resumed run adds a file beside the earlier ones; TensorBoard merges all files of a
//! directory by step. Every event is flushed at once: a crash loses nothing logged before it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// tensorflow.Event (only the fields yt8m writes).
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// tensorflow.Summary.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// tensorflow.Summary.Value with its `simple_value` (float) arm.
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

/// Appends scalar summaries to one event file.
pub struct EventWriter {
    file: std::fs::File,
    path: PathBuf,
    buf: Vec<u8>,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        .unwrap_or_else(|| "localhost".into())
}

impl EventWriter {
    /// Creates `dir` (if needed) and a new event file in it, starting with the version record.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let stem = format!(
            "events.out.tfevents.{}.{}.{}",
            now() as u64,
            hostname(),
            std::process::id()
        );
        // The same process may open a second writer within the same second (a run resumed
        // by the library in-process): such files take a counter, as TensorFlow's writer does.
        let mut k = 0u32;
        let (file, path) = loop {
            let name = if k == 0 {
                format!("{stem}.yt8m")
            } else {
                format!("{stem}.{k}.yt8m")
            };
            let path = dir.join(name);
            match std::fs::OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&path)
            {
                Ok(f) => break (f, path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && k < 1000 => k += 1,
                Err(e) => return Err(Error::io(&path, e)),
            }
        };
        let mut w = Self {
            file,
            path,
            buf: Vec::new(),
        };
        w.write_event(Event {
            wall_time: now(),
            step: 0,
            what: Some(What::FileVersion("brain.Event:2".into())),
        })?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `tag → value` pairs as one event at `step`. Non-finite values are written as they
    /// are (TensorBoard shows NaN), so a diverging run stays visible.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let value = values
            .iter()
            .map(|(tag, v)| SummaryValue {
                tag: (*tag).to_string(),
                simple_value: Some(*v as f32),
            })
            .collect();
        self.write_event(Event {
            wall_time: now(),
            step: step.min(i64::MAX as u64) as i64,
            what: Some(What::Summary(Summary { value })),
        })
    }

    fn write_event(&mut self, e: Event) -> Result<()> {
        use prost::Message;
        let payload = e.encode_to_vec();
        self.buf.clear();
        yt8m_data::tfrecord::frame_record(&payload, &mut self.buf);
        self.file
            .write_all(&self.buf)
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn events_read_back_as_tfrecords() {
        let dir = std::env::temp_dir().join(format!("yt8m-tb-{}", std::process::id()));
        let mut w = EventWriter::create(&dir).unwrap();
        w.scalars(7, &[("train/lr", 0.5), ("train/loss", 2.0)])
            .unwrap();
        let path = w.path().to_path_buf();
        drop(w);
        let mut r = yt8m_data::tfrecord::RecordReader::open(&path).unwrap();
        let mut buf = Vec::new();
        let mut events = Vec::new();
        while r.next_into(&mut buf).unwrap().is_some() {
            events.push(Event::decode(&buf[..]).unwrap());
        }
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].what,
            Some(What::FileVersion("brain.Event:2".into()))
        );
        assert_eq!(events[1].step, 7);
        let Some(What::Summary(s)) = &events[1].what else {
            panic!("second event is not a summary")
        };
        assert_eq!(s.value[0].tag, "train/lr");
        assert_eq!(s.value[0].simple_value, Some(0.5));
        assert_eq!(s.value[1].simple_value, Some(2.0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
