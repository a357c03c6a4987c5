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
    /// A file, run directory or bundle that is not there.
    #[error("{path}: {message}")]
    NotFound { path: String, message: String },
    /// yt8m or the machine failed (a thread, the network runtime, a write): not the input's
    /// fault.
    #[error("{0}")]
    Internal(String),
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

impl Error {
    /// The kind of failure (the message keeps its location and hint whatever the kind).
    pub fn kind(&self) -> ErrorKind {
        use yt8m_data::error::DataErrorKind as D;
        match self {
            Error::Data(e) => match e.kind {
                D::Corrupt | D::Schema => ErrorKind::CorruptData,
                D::NotFound => ErrorKind::NotFound,
                D::Empty => ErrorKind::InvalidInput,
                D::Io | D::Internal => ErrorKind::Internal,
            },
            Error::Config { .. } | Error::Invalid(_) => ErrorKind::InvalidInput,
            Error::Weights { .. } => ErrorKind::CorruptData,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Internal(_) | Error::Torch(_) => ErrorKind::Internal,
            Error::Io { err, .. } if err.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Error::Io { .. } => ErrorKind::Internal,
        }
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
        // The engine's reply names the kind as the Python package reads it.
        assert_eq!(
            serde_json::to_value(ErrorKind::CorruptData).unwrap(),
            "corrupt_data"
        );
    }
}
