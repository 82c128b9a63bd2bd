//! The one place where core errors become Python exceptions.

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

use crate::core::model::RenderError;

/// Errors raised by the binding layer with the reference's exception types and messages.
pub enum Error {
    /// `ValueError` with this message.
    Value(String),
    /// `RuntimeError` with this message.
    Runtime(String),
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Value(m) => PyValueError::new_err(m),
            Error::Runtime(m) => PyRuntimeError::new_err(m),
        }
    }
}

impl From<RenderError> for Error {
    fn from(e: RenderError) -> Error {
        Error::Value(e.message)
    }
}

pub fn value_error(message: impl Into<String>) -> PyErr {
    Error::Value(message.into()).into()
}

pub fn runtime_error(message: impl Into<String>) -> PyErr {
    Error::Runtime(message.into()).into()
}

/// `OSError(errno, "multiprocess file: ...")` for a failure on a multiprocess file.
pub fn multiprocess_file_error(e: std::io::Error) -> PyErr {
    let message = format!("multiprocess file: {e}");
    match e.raw_os_error() {
        Some(errno) => PyOSError::new_err((errno, message)),
        None => PyOSError::new_err(message),
    }
}
