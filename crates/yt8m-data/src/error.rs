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
        DataError::new(
            DataErrorKind::Io,
            Location::file(path),
            format!("cannot read: {err}"),
        )
        .hint("check that the path exists and is readable")
    }
}
