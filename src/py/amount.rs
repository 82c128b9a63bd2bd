//! Numbers passed to `inc`, `set` and `observe`.
//!
//! Exact `int` and `float` take a fast path. Anything else goes through the same Python
//! operation the reference performs (`value += amount`), so odd types behave and fail alike.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt};

/// A fast-path amount.
pub enum Amount {
    Int(i64),
    Float(f64),
}

/// `Some` for an exact `int` that fits in i64, or a `float` (numpy's float64 is a subclass).
#[inline]
pub fn fast(obj: &Bound<'_, PyAny>) -> Option<Amount> {
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Some(Amount::Float(f.value()));
    }
    if obj.cast_exact::<PyInt>().is_ok() {
        return obj.extract::<i64>().ok().map(Amount::Int);
    }
    None
}

/// `amount` as a float, any type: the fast path or the result of `0.0 += amount`.
#[inline]
pub fn to_f64(obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    match fast(obj) {
        Some(Amount::Float(f)) => Ok(f),
        Some(Amount::Int(i)) => Ok(i as f64),
        None => added_to_zero(obj),
    }
}

/// `0.0 += amount` in Python, for its result and its error message.
pub fn added_to_zero(obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    let py = obj.py();
    let zero = PyFloat::new(py, 0.0);
    // SAFETY: both pointers are valid for the call; the result is a new reference or NULL.
    let sum = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyNumber_InPlaceAdd(zero.as_ptr(), obj.as_ptr()))
    }?;
    sum.extract::<f64>()
}

/// `-amount` in Python (the reference's `dec` is `inc(-amount)`).
pub fn negated<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    obj.neg()
}

/// `float(value)` in Python (the reference's `Gauge.set` accepts strings).
pub fn float_of(obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Ok(f.value());
    }
    let py = obj.py();
    py.get_type::<PyFloat>().call1((obj,))?.extract::<f64>()
}

/// Whether `amount < 0` in Python (raises the reference's TypeError for odd types).
pub fn is_negative(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    obj.lt(0)
}

/// An optional amount argument that tells "not passed" from an explicit `None` (which the
/// reference rejects with a TypeError).
pub enum Arg<'py> {
    Missing,
    Given(Bound<'py, PyAny>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Arg<'py> {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Arg::Given(obj.to_owned()))
    }
}
