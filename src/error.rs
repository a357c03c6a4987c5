//! Library errors. Every message names the file (and record / key where there is one) and
//! says what to do next: the CLI prints them as they are. Data errors (with their location)
//! come from `yt8m-data`.

pub use yt8m_data::error::{DataError, DataErrorKind, Location, panic_text};

/// The crate's error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("config {path}: {message}")]
    Config { path: String, message: String },
    #[error("weights {path}: {message}")]
    Weights { path: String, message: String },
    /// The caller asked for something that cannot be done as asked (an argument, an option, a
    /// request).
    #[error("{0}")]
    Invalid(String),
    /// A file that is damaged or not what it claims (a bundle manifest, a run's state, an
    /// extractor file, an undecodable video); the message names it.
    #[error("{0}")]
    Corrupt(String),
    /// A file, run directory or bundle that is not there (`path` empty when the message names
    /// it).
    #[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
    NotFound { path: String, message: String },
    /// yt8m or the machine failed (a thread, the network runtime, a write): not the input's
    /// fault.
    #[error("{0}")]
    Internal(String),
    /// Writing the command's output (standard output or `--out`) failed: a full disk, a closed
    /// pipe. Its own variant so the CLI can answer a closed pipe as Unix tools do.
    #[error("writing output: {0}")]
    Output(std::io::Error),
    /// Not a `#[from]` source: the CLI prints error chains (`{:#}`), and libtorch's own message
    /// would then follow ours a second time ("libtorch: X: X").
    #[error("libtorch: {}", torch_message(.0))]
    Torch(tch::TchError),
    // `err`, not `source`: thiserror would chain a field named `source`, and `{:#}` at the
    // CLI edge would then print the OS error twice.
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
}

/// A libtorch error without the C++ backtrace it carries ("Exception raised from ...",
/// "frame #0: ..."): the first lines say what happened, the rest only helps libtorch's authors.
pub fn torch_message(e: &tch::TchError) -> String {
    let s = e.to_string();
    let cut = ["Exception raised from", "frame #0"]
        .iter()
        .filter_map(|m| s.find(m))
        .min()
        .unwrap_or(s.len());
    s[..cut].trim_end().to_string()
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Error::Torch(e)
    }
}

/// What kind of failure an [`Error`] is, for callers that answer each differently: the
/// server's status code, the Python package's exception class, the engine's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A bad argument, option, config or request: fix the input and retry.
    InvalidInput,
    /// A path that does not exist.
    NotFound,
    /// Data or weights that are damaged or not what they claim (CRCs, schemas, NaN weights).
    CorruptData,
    /// yt8m, libtorch or the machine failed.
    Internal,
}

impl ErrorKind {
    /// A data error's kind: the shard's bytes (CRC, schema) are damaged data; an empty input is
    /// the caller's to fix.
    pub fn of_data(e: &DataError) -> ErrorKind {
        match e.kind {
            DataErrorKind::Corrupt | DataErrorKind::Schema => ErrorKind::CorruptData,
            DataErrorKind::NotFound => ErrorKind::NotFound,
            DataErrorKind::Empty => ErrorKind::InvalidInput,
            DataErrorKind::Io | DataErrorKind::Internal => ErrorKind::Internal,
        }
    }

    /// An OS error's kind: a missing path, or the machine's failure (permissions, a full disk).
    pub fn of_io(e: &std::io::Error) -> ErrorKind {
        if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Internal
        }
    }
}

impl Error {
    /// The kind of failure (the message keeps its location and hint whatever the kind).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Data(e) => ErrorKind::of_data(e),
            Error::Config { .. } | Error::Invalid(_) => ErrorKind::InvalidInput,
            Error::Weights { .. } | Error::Corrupt(_) => ErrorKind::CorruptData,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Internal(_) | Error::Torch(_) => ErrorKind::Internal,
            Error::Io { err, .. } | Error::Output(err) => ErrorKind::of_io(err),
        }
    }

    /// An error of `kind` saying `message` (which names the file): for messages that add
    /// context to another error without changing what kind of failure it is.
    pub fn of_kind(kind: ErrorKind, message: String) -> Self {
        match kind {
            ErrorKind::InvalidInput => Error::Invalid(message),
            ErrorKind::NotFound => Error::NotFound {
                path: String::new(),
                message,
            },
            ErrorKind::CorruptData => Error::Corrupt(message),
            ErrorKind::Internal => Error::Internal(message),
        }
    }

    /// Writing a command's output (standard output or `--out`) failed: the machine's failure
    /// (a full disk, a closed pipe), not the input's.
    pub fn output(err: std::io::Error) -> Self {
        Error::Output(err)
    }

    pub fn io(path: impl AsRef<std::path::Path>, err: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            err,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod kind_tests {
    use super::*;

    /// What a caller branches on: a missing path, damaged data, a bad argument, a failure of
    /// ours, whichever layer the error comes from.
    #[test]
    fn errors_say_what_kind_of_failure_they_are() {
        let missing = std::path::Path::new("/nonexistent/x.tfrecord");
        let read = yt8m_data::tfrecord::RecordReader::open(missing)
            .err()
            .expect("no file there");
        assert_eq!(Error::from(read).kind(), ErrorKind::NotFound);
        let gone = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(Error::io(missing, gone).kind(), ErrorKind::NotFound);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(Error::io(missing, denied).kind(), ErrorKind::Internal);
        let corrupt = DataError::new(DataErrorKind::Corrupt, Location::file(missing), "bad CRC");
        assert_eq!(Error::from(corrupt).kind(), ErrorKind::CorruptData);
        assert_eq!(Error::Invalid("x".into()).kind(), ErrorKind::InvalidInput);
        let b = crate::bundle::load(std::path::Path::new("/nonexistent"), tch::Device::Cpu);
        let e = b.err().expect("no bundle there");
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("no bundle.json"), "{e}");
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(Error::output(pipe).kind(), ErrorKind::Internal);
        // Context added to an error keeps its kind; a message that names the path stands alone.
        let e = Error::of_kind(ErrorKind::NotFound, "x.mp4: no such file".into());
        assert_eq!(
            (e.kind(), e.to_string().as_str()),
            (ErrorKind::NotFound, "x.mp4: no such file")
        );
        assert_eq!(Error::Corrupt("x".into()).kind(), ErrorKind::CorruptData);
        // The engine's reply names the kind as the Python package reads it.
        assert_eq!(
            serde_json::to_value(ErrorKind::CorruptData).unwrap(),
            "corrupt_data"
        );
    }
}
