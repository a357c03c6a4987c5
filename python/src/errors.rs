//! The package's exception classes, one per kind of failure (all `Yt8mError`s, itself a
//! `ValueError`), and the data crate's errors raised as them: what Python callers branch on
//! (`docs/python.md`, "Errors"). `yt8m.Bundle` raises the same classes from its engine's replies.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use yt8m_data::DataError;

pyo3::create_exception!(
    yt8m,
    Yt8mError,
    PyValueError,
    "A data or argument problem, with the file, record, key and a hint in its message."
);

pyo3::create_exception!(
    yt8m,
    Yt8mDataError,
    Yt8mError,
    "Data that is damaged or not what it claims (a CRC, a truncated record, a schema): a \
     Yt8mError."
);
pyo3::create_exception!(
    yt8m,
    Yt8mInternalError,
    Yt8mError,
    "yt8m or the machine failed (a read error, a reader thread's panic), not the input: a \
     Yt8mError."
);

/// `Yt8mNotFoundError(Yt8mError, FileNotFoundError)`, so both `except FileNotFoundError` and
/// `except Yt8mError` catch a missing path. Made with `type()`: an exception class declared
/// from Rust has one base.
static NOT_FOUND: pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>> = pyo3::sync::PyOnceLock::new();

pub(crate) fn not_found_type(py: Python<'_>) -> PyResult<&Bound<'_, pyo3::types::PyType>> {
    NOT_FOUND
        .get_or_try_init(py, || {
            let bases = pyo3::types::PyTuple::new(
                py,
                [
                    py.get_type::<Yt8mError>(),
                    py.get_type::<pyo3::exceptions::PyFileNotFoundError>(),
                ],
            )?;
            let ns = PyDict::new(py);
            ns.set_item(
                "__doc__",
                "A path that is not there (a shard, a bundle, a weights file): a Yt8mError and a \
                 FileNotFoundError.",
            )?;
            ns.set_item("__module__", "yt8m")?;
            let t = py
                .get_type::<pyo3::types::PyType>()
                .call1(("Yt8mNotFoundError", bases, ns))?;
            Ok(t.cast_into::<pyo3::types::PyType>()?.unbind())
        })
        .map(|t| t.bind(py))
}

/// A data error as the exception class of its kind (all of them `Yt8mError`s): what callers
/// branch on, the message keeping the file, record, key and hint.
pub(crate) fn err(e: DataError) -> PyErr {
    use yt8m_data::DataErrorKind as K;
    let msg = e.python_message();
    match e.kind {
        K::Corrupt | K::Schema => Yt8mDataError::new_err(msg),
        K::Io | K::Internal => Yt8mInternalError::new_err(msg),
        K::Empty => Yt8mError::new_err(msg),
        K::NotFound => Python::attach(|py| match not_found_type(py) {
            Ok(t) => PyErr::from_type(t.clone(), msg),
            Err(e) => e,
        }),
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> PyErr {
    Yt8mError::new_err(msg.into())
}

/// A broken invariant of ours (not the input's fault): `Yt8mInternalError`.
pub(crate) fn internal(msg: impl Into<String>) -> PyErr {
    Yt8mInternalError::new_err(msg.into())
}
