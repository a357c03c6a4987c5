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
    #[error("{0}")]
    Invalid(String),
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

impl Error {
    pub fn io(path: impl AsRef<std::path::Path>, err: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            err,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
