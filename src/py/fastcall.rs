//! The hottest methods as raw `METH_FASTCALL` C functions.
//!
//! PyO3's generated wrapper parses arguments generically, which costs more than the work of
//! `inc()` itself. These functions handle the common calls (no argument, or one exact `int` or
//! `float`, or `labels()` with exact `str` values of an existing child) directly and hand every
//! other call to the full PyO3 method of the same behaviour (`_inc`, `_observe`, `_labels`, ...),
//! which raises the reference's errors. They are installed as method descriptors of the exact
//! class, so CPython's specialised call path reaches them without any intermediate frame.

use std::ffi::{c_int, CStr};

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};
use pyo3::{Borrowed, PyClass};

use super::children::Children;
use super::metric::{Counter, Gauge, HasCore, Histogram, MetricCore, Summary};
use super::python;
use crate::core::family::{Child, ChildValue};

type Args = *const *mut ffi::PyObject;

/// Label values of a `labels()` call, on the stack for up to 8 labels.
type Labels<T> = smallvec::SmallVec<[T; 8]>;

/// A fast-path amount: an exact `int` that fits in i64, or an exact `float`.
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn as_f64(&self) -> f64 {
        match self {
            Number::Int(n) => *n as f64,
            Number::Float(f) => *f,
        }
    }
}

/// # Safety
/// `obj` is a valid object and the thread is attached.
unsafe fn number(obj: *mut ffi::PyObject) -> Option<Number> {
    // A float subclass (numpy's float64) holds its value the same way.
    if ffi::PyFloat_Check(obj) != 0 {
        return Some(Number::Float(ffi::PyFloat_AS_DOUBLE(obj)));
    }
    if ffi::PyLong_CheckExact(obj) != 0 {
        let mut overflow: c_int = 0;
        let n = ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
        let failed = n == -1 && !ffi::PyErr_Occurred().is_null();
        if overflow == 0 && !failed {
            return Some(Number::Int(n));
        }
        ffi::PyErr_Clear();
    }
    None
}

fn positional_count(nargsf: ffi::Py_ssize_t) -> ffi::Py_ssize_t {
    (nargsf as usize & !ffi::PY_VECTORCALL_ARGUMENTS_OFFSET) as ffi::Py_ssize_t
}

/// # Safety
/// `slf` is an instance of `T` (the method descriptor checked it) and the thread is attached.
unsafe fn core<'a, T: HasCore + PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync>(
    slf: *mut ffi::PyObject,
) -> &'a MetricCore {
    let py = Python::assume_attached();
    let obj = Borrowed::from_ptr(py, slf).cast_unchecked::<T>();
    // The object outlives this call: the caller holds a reference to it.
    obj.get().core()
}

/// # Safety
/// As for [`core`].
unsafe fn child<'a, T: HasCore + PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync>(
    slf: *mut ffi::PyObject,
) -> Option<&'a Child> {
    core::<T>(slf).observable_child()
}

fn none() -> *mut ffi::PyObject {
    // SAFETY: None is a valid object; we return a new reference.
    unsafe { ffi::Py_NewRef(ffi::Py_None()) }
}

/// Calls the full method `name` with the same arguments.
///
/// # Safety
/// The arguments are those CPython passed to a `METH_FASTCALL | METH_KEYWORDS` function.
unsafe fn forward(
    slf: *mut ffi::PyObject,
    args: Args,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    name: &Bound<'_, PyString>,
) -> *mut ffi::PyObject {
    let nargs = positional_count(nargsf) as usize;
    let nkw = if kwnames.is_null() {
        0
    } else {
        ffi::PyTuple_GET_SIZE(kwnames) as usize
    };
    let mut all = Vec::with_capacity(1 + nargs + nkw);
    all.push(slf);
    if nargs + nkw > 0 {
        all.extend_from_slice(std::slice::from_raw_parts(args, nargs + nkw));
    }
    ffi::PyObject_VectorcallMethod(name.as_ptr(), all.as_ptr(), (1 + nargs) as usize, kwnames)
}

/// `(only, nargs)`: whether the call has no keywords, and its positional count.
fn plain(nargsf: ffi::Py_ssize_t, kwnames: *mut ffi::PyObject) -> (bool, ffi::Py_ssize_t) {
    (kwnames.is_null(), positional_count(nargsf))
}

unsafe fn counter_inc_body(
    slf: *mut ffi::PyObject,
    args: Args,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    if let (true, nargs @ 0..=1) = plain(nargsf, kwnames) {
        if let Some(child) = child::<Counter>(slf) {
            if nargs == 0 {
                child.counter_inc_int(1);
                return none();
            }
            match number(*args) {
                Some(Number::Int(n)) if n >= 0 => {
                    child.counter_inc_int(n as u64);
                    return none();
                }
                Some(Number::Float(f)) if f >= 0.0 => {
                    child.counter_inc(f);
                    return none();
                }
                _ => {}
            }
        }
    }
    forward(
        slf,
        args,
        nargsf,
        kwnames,
        intern!(Python::assume_attached(), "_inc"),
    )
}

/// Gauge `inc` (`sign` 1) and `dec` (`sign` -1).
unsafe fn gauge_add(
    slf: *mut ffi::PyObject,
    args: Args,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    sign: f64,
    slow: &Bound<'_, PyString>,
) -> *mut ffi::PyObject {
    if let (true, nargs @ 0..=1) = plain(nargsf, kwnames) {
        if let Some(child) = core::<Gauge>(slf).plain_gauge_child() {
            let amount = if nargs == 0 {
                Some(1.0)
            } else {
                number(*args).map(|n| n.as_f64())
            };
            if let Some(v) = amount {
                child.gauge_add(sign * v);
                return none();
            }
        }
    }
    forward(slf, args, nargsf, kwnames, slow)
}

unsafe fn gauge_set_body(
    slf: *mut ffi::PyObject,
    args: Args,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    if let (true, 1) = plain(nargsf, kwnames) {
        let core = core::<Gauge>(slf);
        if let (Some(child), Some(n)) = (core.observable_child(), number(*args)) {
            if !core.set_records_time(child) {
                child.set(n.as_f64());
                return none();
            }
            let py = Python::assume_attached();
            return match python::coarse_time_now(py) {
                Ok(now) => {
                    child.set_at(n.as_f64(), now);
                    none()
                }
                Err(e) => {
                    e.restore(py);
                    std::ptr::null_mut()
                }
            };
        }
    }
    forward(
        slf,
        args,
        nargsf,
        kwnames,
        intern!(Python::assume_attached(), "_set"),
    )
}

/// `observe(x)` of a Histogram or a Summary.
unsafe fn observe_body<
    T: HasCore + PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync,
>(
    slf: *mut ffi::PyObject,
    args: Args,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    if let (true, 1) = plain(nargsf, kwnames) {
        if let (Some(child), Some(n)) = (child::<T>(slf), number(*args)) {
            if let ChildValue::Histogram(h) | ChildValue::Summary(h) = &child.value {
                h.observe(n.as_f64());
                return none();
            }
        }
    }
    forward(
        slf,
        args,
        nargsf,
        kwnames,
        intern!(Python::assume_attached(), "_observe"),
    )
}

/// The label values of a `labels()` call in label-name order, when all are exact `str`:
/// positional, or keywords naming each label once.
///
/// # Safety
/// `args`/`nargs`/`kwnames` are a `METH_FASTCALL | METH_KEYWORDS` call; `labelnames` a tuple.
unsafe fn label_values(
    args: Args,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
    labelnames: *mut ffi::PyObject,
) -> Option<Labels<*mut ffi::PyObject>> {
    let count = ffi::PyTuple_GET_SIZE(labelnames) as usize;
    let exact_str = |v: *mut ffi::PyObject| ffi::PyUnicode_CheckExact(v) != 0;
    if kwnames.is_null() {
        let values = std::slice::from_raw_parts(args, nargs);
        return (count == nargs && nargs > 0 && values.iter().all(|v| exact_str(*v)))
            .then(|| Labels::from_slice(values));
    }
    let names = ffi::PyTuple_GET_SIZE(kwnames) as usize;
    if nargs != 0 || names != count {
        return None;
    }
    let values = std::slice::from_raw_parts(args, names);
    let mut ordered = Labels::with_capacity(count);
    for i in 0..count {
        let wanted = ffi::PyTuple_GET_ITEM(labelnames, i as ffi::Py_ssize_t);
        // Keyword names are interned, and so are label names written as literals: try identity
        // first, then compare text.
        let position = (0..names)
            .find(|j| ffi::PyTuple_GET_ITEM(kwnames, *j as ffi::Py_ssize_t) == wanted)
            .or_else(|| {
                (0..names).find(|j| {
                    ffi::PyUnicode_Compare(
                        ffi::PyTuple_GET_ITEM(kwnames, *j as ffi::Py_ssize_t),
                        wanted,
                    ) == 0
                })
            })?;
        ordered.push(values[position]);
    }
    ffi::PyErr_Clear(); // PyUnicode_Compare only fails for non-str, which label names are not
    ordered.iter().all(|v| exact_str(*v)).then_some(ordered)
}

/// The text of exact `str` objects, or None (and no error) for one that is not UTF-8 (a lone
/// surrogate; the full method raises for it).
///
/// # Safety
/// The objects are exact `str` and outlive the returned slices.
unsafe fn texts<'a>(values: &[*mut ffi::PyObject]) -> Option<Labels<&'a str>> {
    let mut texts = Labels::with_capacity(values.len());
    for v in values {
        let mut size: ffi::Py_ssize_t = 0;
        let data = ffi::PyUnicode_AsUTF8AndSize(*v, &mut size);
        if data.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), size as usize);
        // SAFETY: CPython's UTF-8 form of a str is valid UTF-8.
        texts.push(std::str::from_utf8_unchecked(bytes));
    }
    Some(texts)
}

/// `labels(...)` with exact `str` values: the family is looked up with the borrowed text, and
/// the child (made if missing) comes back as its live handle or a new one.
unsafe fn labels_body<T: HasCore + PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync>(
    slf: *mut ffi::PyObject,
    args: Args,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let nargs = positional_count(nargsf) as usize;
    let py = Python::assume_attached();
    if let Some((children, labelnames)) = core::<T>(slf).children() {
        let values = label_values(args, nargs, kwnames, labelnames);
        if let Some(texts) = values.as_deref().and_then(|v| texts(v)) {
            let parent = Borrowed::from_ptr(py, slf);
            return match Children::labels(children.bind(py), &parent, &texts) {
                Ok(Some(child)) => child.into_ptr(),
                // A subclass builds its child with its own constructor, in the Python `labels`.
                Ok(None) => forward(slf, args, nargsf, kwnames, intern!(py, "_labels_slow")),
                Err(e) => {
                    e.restore(py);
                    std::ptr::null_mut()
                }
            };
        }
    }
    forward(slf, args, nargsf, kwnames, intern!(py, "_labels"))
}

/// Runs a fast path, turning a Rust panic into a Python exception (it must never unwind
/// into CPython, which would abort the process).
fn guard(body: impl FnOnce() -> *mut ffi::PyObject) -> *mut ffi::PyObject {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(_) => {
            // SAFETY: the interpreter called us, so this thread is attached.
            let py = unsafe { Python::assume_attached() };
            pyo3::panic::PanicException::new_err("fastprom: internal error in a fast path")
                .restore(py);
            std::ptr::null_mut()
        }
    }
}

/// The C entry points CPython calls: each runs its body under [`guard`].
macro_rules! entry_points {
    ($($name:ident => $body:expr;)*) => {
        $(
            unsafe extern "C" fn $name(
                slf: *mut ffi::PyObject,
                args: Args,
                nargsf: ffi::Py_ssize_t,
                kwnames: *mut ffi::PyObject,
            ) -> *mut ffi::PyObject {
                guard(|| ($body)(slf, args, nargsf, kwnames))
            }
        )*
    };
}

entry_points! {
    counter_inc => counter_inc_body;
    gauge_inc => |s, a, n, k| gauge_add(s, a, n, k, 1.0, intern!(Python::assume_attached(), "_inc"));
    gauge_dec => |s, a, n, k| gauge_add(s, a, n, k, -1.0, intern!(Python::assume_attached(), "_dec"));
    gauge_set => gauge_set_body;
    summary_observe => observe_body::<Summary>;
    histogram_observe => observe_body::<Histogram>;
    counter_labels => labels_body::<Counter>;
    gauge_labels => labels_body::<Gauge>;
    summary_labels => labels_body::<Summary>;
    histogram_labels => labels_body::<Histogram>;
}

type Fast = unsafe extern "C" fn(
    *mut ffi::PyObject,
    Args,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

/// Installs `function` as method `name` of `class` (replacing nothing: the full versions are
/// named `_name`). `doc` starts with the text signature `inspect.signature` reads.
fn install(
    class: &Bound<'_, PyType>,
    name: &'static CStr,
    doc: &'static CStr,
    function: Fast,
) -> PyResult<()> {
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: function,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: doc.as_ptr(),
    }));
    let py = class.py();
    // SAFETY: `def` lives forever; the descriptor is a new reference we hand to a Bound.
    let descr = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(class.as_type_ptr(), def))?
    };
    class.setattr(name.to_str().unwrap_or_default(), descr)
}

pub fn install_all(py: Python<'_>) -> PyResult<()> {
    let counter = py.get_type::<Counter>();
    let gauge = py.get_type::<Gauge>();
    let summary = py.get_type::<Summary>();
    let histogram = py.get_type::<Histogram>();
    install(
        &counter,
        c"inc",
        c"inc($self, amount=1, exemplar=None)\n--\n\nIncrement counter by the given amount.",
        counter_inc,
    )?;
    install(
        &gauge,
        c"inc",
        c"inc($self, amount=1)\n--\n\nIncrement gauge by the given amount.",
        gauge_inc,
    )?;
    install(
        &gauge,
        c"dec",
        c"dec($self, amount=1)\n--\n\nDecrement gauge by the given amount.",
        gauge_dec,
    )?;
    install(
        &gauge,
        c"set",
        c"set($self, value)\n--\n\nSet gauge to the given value.",
        gauge_set,
    )?;
    install(
        &summary,
        c"observe",
        c"observe($self, amount)\n--\n\nObserve the given amount.",
        summary_observe,
    )?;
    install(
        &histogram,
        c"observe",
        c"observe($self, amount, exemplar=None)\n--\n\nObserve the given amount.",
        histogram_observe,
    )?;
    let labels_doc = c"labels($self, /, *labelvalues, **labelkwargs)\n--\n\nReturn the child for the given labelset.";
    install(&counter, c"labels", labels_doc, counter_labels)?;
    install(&gauge, c"labels", labels_doc, gauge_labels)?;
    install(&summary, c"labels", labels_doc, summary_labels)?;
    install(&histogram, c"labels", labels_doc, histogram_labels)?;
    Ok(())
}
