//! Data errors. Every message names the file (and record, byte offset, video and key where
//! there are some) and says what to do next: the CLI prints them as they are.

use std::path::PathBuf;

/// Where in the input a problem was found.
#[derive(Debug, Clone, Default)]
pub struct Location {
    pub path: PathBuf,
    /// 0-based record (or video) index within the file.
    pub record: Option<usize>,
    /// Byte offset of the record's start within the file.
    pub offset: Option<u64>,
    /// Video id, when it was already decoded.
    pub video_id: Option<String>,
    /// Feature / field key.
    pub key: Option<String>,
}

impl Location {
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Location {
            path: path.into(),
            ..Default::default()
        }
    }
    pub fn record(mut self, index: usize, offset: u64) -> Self {
        self.record = Some(index);
        self.offset = Some(offset);
        self
    }
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn video(mut self, id: impl Into<String>) -> Self {
        self.video_id = Some(id.into());
        self
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(r) = self.record {
            write!(f, ": record {r}")?;
        }
        if let Some(o) = self.offset {
            write!(f, " (byte offset {o})")?;
        }
        if let Some(v) = &self.video_id {
            write!(f, ", video '{v}'")?;
        }
        if let Some(k) = &self.key {
            write!(f, ", key '{k}'")?;
        }
        Ok(())
    }
}

/// What kind of data problem it is; tests and `--skip-corrupt` look at this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataErrorKind {
    /// The TFRecord framing is broken: CRC mismatch, truncated record, bad length.
    Corrupt,
    /// The record's bytes are intact but do not match the expected schema.
    Schema,
    /// The file could not be opened or read.
    Io,
    /// The path does not exist.
    NotFound,
    /// Nothing to read: no files, empty file, empty list.
    Empty,
    /// A reader thread failed in a way that is a bug (a panic): the command must fail.
    Internal,
}

/// The text of a caught panic's payload.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
pub struct DataError {
    pub kind: DataErrorKind,
    pub location: Location,
    pub message: String,
    pub hint: Option<String>,
}

impl DataError {
    pub fn new(kind: DataErrorKind, location: Location, message: impl Into<String>) -> Self {
        DataError {
            kind,
            location,
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => DataErrorKind::NotFound,
            _ => DataErrorKind::Io,
        };
        DataError::new(kind, Location::file(path), format!("cannot read: {err}"))
            .hint("check that the path exists and is readable")
    }

    /// The message as the Python module shows it: hints written for the CLI (its flags, config
    /// keys and verbs) in the Python API's words (issue #27: "pass --skip-corrupt" told a
    /// notebook user about a flag they cannot pass). Each phrase is one the readers write;
    /// the test below produces every one of them.
    pub fn python_message(&self) -> String {
        const PYTHON_WORDS: &[(&str, &str)] = &[
            (
                "pass --skip-corrupt (DATASET.skip_corrupt: true)",
                "pass skip_corrupt=True",
            ),
            (
                "set model num_classes to the dataset's class count",
                "pass num_classes= the dataset's class count",
            ),
            ("yt8m inspect PATH shows", "yt8m.inspect(path) shows"),
        ];
        let mut text = self.to_string();
        for (cli, py) in PYTHON_WORDS {
            text = text.replace(cli, py);
        }
        text
    }
}

#[cfg(test)]
mod python_words_tests {
    use crate::proto::{EncFeature, encode_example, encode_feature};
    use crate::tfrecord::{RecordReader, frame_record};
    use crate::video::{FeatureSpec, Level, decode_video};
    use crate::{DataError, Location};

    fn video(features: &[(&str, EncFeature)]) -> Vec<u8> {
        let f: Vec<(&str, Vec<u8>)> = features
            .iter()
            .map(|(k, v)| (*k, encode_feature(v)))
            .collect();
        encode_example(&f)
    }

    #[test]
    fn every_cli_hint_of_the_readers_reads_in_python_words() {
        let spec = FeatureSpec {
            level: Level::Video,
            dims: vec![2, 1],
            num_classes: 5,
            ..FeatureSpec::default()
        };
        let loc = Location::file("x.tfrecord");
        let err = |rec: Vec<u8>| -> DataError { decode_video(&rec, &spec, &loc).unwrap_err() };
        let id = || EncFeature::Bytes(vec![b"v1".as_slice()]);
        let cases = [
            // No id: "yt8m inspect PATH shows what it holds".
            err(video(&[("labels", EncFeature::Int64(&[1]))])),
            // A label past num_classes: "set model num_classes ...".
            err(video(&[("id", id()), ("labels", EncFeature::Int64(&[7]))])),
            // A NaN feature: "pass --skip-corrupt (DATASET.skip_corrupt: true)".
            err(video(&[
                ("id", id()),
                ("mean_rgb", EncFeature::Float(&[f32::NAN, 0.0])),
                ("mean_audio", EncFeature::Float(&[0.0])),
            ])),
        ];
        // A broken record's CRC: the same skip-corrupt phrase from the framing reader.
        let dir = std::env::temp_dir().join(format!("yt8m-pywords-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.tfrecord");
        let mut rec = Vec::new();
        frame_record(b"payload", &mut rec);
        let last = rec.len() - 1;
        rec[last] ^= 0xff;
        std::fs::write(&path, &rec).unwrap();
        let framing = RecordReader::open(&path)
            .unwrap()
            .next_into(&mut Vec::new())
            .unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        for e in cases.iter().chain([&framing]) {
            let cli = e.to_string();
            let py = e.python_message();
            println!("{py}");
            assert_ne!(cli, py, "no Python words for: {cli}");
            for flag in ["--skip-corrupt", "DATASET.", "set model", "yt8m inspect"] {
                assert!(!py.contains(flag), "'{flag}' left in: {py}");
            }
        }
    }
}
