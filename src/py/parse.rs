//! The parsers' binding: Python text in, `Metric`/`Sample`/... objects and the exception out.
//!
//! `parse_text(text)` / `parse_openmetrics(text)` parse a whole string without the GIL and
//! return `(families, error)`: the families the reference's generator yields before it raises,
//! and the exception instance it raises (or None). `TextParser` / `OpenMetricsParser` do the
//! same incrementally for `text_fd_to_metric_families`: `feed(lines)` returns
//! `(families, error, stop)` where `stop` is the first line that is not a `str` (the caller
//! handles it), and `finish()` returns `(families, error)`.

use std::collections::HashMap;
use std::ffi::CString;
use std::hash::BuildHasherDefault;
use std::os::raw::c_char;

use pyo3::exceptions::{
    PyAttributeError, PyIndexError, PyKeyError, PyOverflowError, PyRuntimeError, PyTypeError,
    PyValueError,
};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PySet, PyString, PyTuple, PyType};

use crate::core::parse::openmetrics::OmParser;
use crate::core::parse::text::TextParser;
use crate::core::parse::{
    self, Family, Fx, Int, Labels, NativeHist, Num, Options, ParseError, Sample, Store, Ts,
};

// ---------------------------------------------------------------------------------------------
// Python classes the results are made of

struct Classes {
    metric: Py<PyType>,
    sample: Py<PyType>,
    exemplar: Py<PyType>,
    timestamp: Py<PyType>,
    native_histogram: Py<PyType>,
    bucket_span: Py<PyType>,
    /// Whether `Sample`/`Exemplar` can be allocated as plain tuples of their type.
    tuple_layout: bool,
}

fn classes(py: Python<'_>) -> PyResult<&Classes> {
    static CELL: PyOnceLock<Classes> = PyOnceLock::new();
    CELL.get_or_try_init(py, || {
        let samples = py.import("fastprom.samples")?;
        let core = py.import("fastprom.metrics_core")?;
        let ty = |m: &Bound<'_, PyModule>, n: &str| -> PyResult<Py<PyType>> {
            Ok(m.getattr(n)?.cast_into::<PyType>()?.unbind())
        };
        let sample = ty(&samples, "Sample")?;
        let exemplar = ty(&samples, "Exemplar")?;
        let tuple = py.get_type::<PyTuple>();
        let size = |t: &Bound<'_, PyType>| -> PyResult<(usize, usize)> {
            Ok((
                t.getattr("__basicsize__")?.extract()?,
                t.getattr("__itemsize__")?.extract()?,
            ))
        };
        let base = size(&tuple)?;
        let tuple_layout = size(sample.bind(py))? == base
            && size(exemplar.bind(py))? == base
            && sample.bind(py).is_subclass(&tuple)?
            && exemplar.bind(py).is_subclass(&tuple)?;
        Ok(Classes {
            metric: ty(&core, "Metric")?,
            sample,
            exemplar,
            timestamp: ty(&samples, "Timestamp")?,
            native_histogram: ty(&samples, "NativeHistogram")?,
            bucket_span: ty(&samples, "BucketSpan")?,
            tuple_layout,
        })
    })
}

/// Options from `fastprom.validation._legacy_validation` and `sys.get_int_max_str_digits()`.
fn options(py: Python<'_>) -> PyResult<Options> {
    let legacy = py
        .import("fastprom.validation")?
        .getattr("_legacy_validation")?
        .is_truthy()?;
    let sys = py.import("sys")?;
    let max_str_digits = match sys.getattr("get_int_max_str_digits") {
        Ok(f) => f.call0()?.extract()?,
        Err(_) => 0,
    };
    Ok(Options {
        legacy,
        max_str_digits,
    })
}

// ---------------------------------------------------------------------------------------------
// Strings

/// The WTF-8 bytes of a `str` (lone surrogates kept), borrowed when possible.
enum Text<'py> {
    Borrowed(*const u8, usize, std::marker::PhantomData<&'py ()>),
    Owned(Bound<'py, PyBytes>),
}

impl<'py> Text<'py> {
    fn new(s: &Bound<'py, PyString>) -> PyResult<Text<'py>> {
        let mut size: ffi::Py_ssize_t = 0;
        let p = unsafe { ffi::PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size) };
        if !p.is_null() {
            return Ok(Text::Borrowed(
                p as *const u8,
                size as usize,
                std::marker::PhantomData,
            ));
        }
        // Lone surrogates: encode them as WTF-8.
        drop(PyErr::take(s.py()));
        let b = s
            .call_method1("encode", ("utf-8", "surrogatepass"))?
            .cast_into::<PyBytes>()?;
        Ok(Text::Owned(b))
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Text::Borrowed(p, n, _) => unsafe { std::slice::from_raw_parts(*p, *n) },
            Text::Owned(b) => b.as_bytes(),
        }
    }
}

/// A `str` from WTF-8.
fn py_str(py: Python<'_>, b: &[u8]) -> PyResult<Py<PyAny>> {
    unsafe {
        if b.is_ascii() {
            let o = check(py, ffi::PyUnicode_New(b.len() as ffi::Py_ssize_t, 127))?;
            std::ptr::copy_nonoverlapping(b.as_ptr(), ffi::PyUnicode_DATA(o) as *mut u8, b.len());
            return Ok(Bound::from_owned_ptr(py, o).unbind());
        }
        let p = ffi::PyUnicode_DecodeUTF8(
            b.as_ptr() as *const c_char,
            b.len() as ffi::Py_ssize_t,
            c"surrogatepass".as_ptr(),
        );
        Bound::from_owned_ptr_or_err(py, p).map(Bound::unbind)
    }
}

// ---------------------------------------------------------------------------------------------
// Building the objects

struct Conv<'py, 'a> {
    py: Python<'py>,
    cls: &'a Classes,
    /// Names (sample and label names) seen in this call, shared between samples.
    names: HashMap<Vec<u8>, Py<PyAny>, BuildHasherDefault<Fx>>,
    /// The label names of the previous sample, by position.
    last_keys: Vec<(Vec<u8>, Py<PyAny>)>,
    /// The label values of the previous sample, by position.
    last_values: Vec<(Vec<u8>, Py<PyAny>)>,
    /// The previous sample name.
    last_name: Option<(Vec<u8>, Py<PyAny>)>,
}

impl<'py, 'a> Conv<'py, 'a> {
    fn new(py: Python<'py>, cls: &'a Classes) -> Self {
        Conv {
            py,
            cls,
            names: HashMap::default(),
            last_keys: Vec::new(),
            last_values: Vec::new(),
            last_name: None,
        }
    }

    /// A new reference to the name's `str`.
    fn name(&mut self, b: &[u8]) -> PyResult<*mut ffi::PyObject> {
        if let Some(o) = self.names.get(b) {
            return Ok(o.clone_ref(self.py).into_ptr());
        }
        let o = py_str(self.py, b)?;
        if self.names.len() < 100_000 {
            self.names.insert(b.to_vec(), o.clone_ref(self.py));
        }
        Ok(o.into_ptr())
    }

    fn int(&self, i: &Int) -> PyResult<*mut ffi::PyObject> {
        unsafe {
            let p = match i {
                Int::Small(v) => ffi::PyLong_FromLongLong(*v),
                Int::Big(d) => {
                    let c = CString::new(d.to_vec())
                        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
                    ffi::PyLong_FromString(c.as_ptr(), std::ptr::null_mut(), 10)
                }
            };
            check(self.py, p)
        }
    }

    fn num(&self, n: &Num) -> PyResult<*mut ffi::PyObject> {
        match n {
            Num::Int(i) => self.int(i),
            Num::Float(f) => unsafe { check(self.py, ffi::PyFloat_FromDouble(*f)) },
        }
    }

    fn ts(&self, t: &Option<Ts>) -> PyResult<*mut ffi::PyObject> {
        match t {
            None => Ok(none()),
            Some(Ts::Float(f)) => unsafe { check(self.py, ffi::PyFloat_FromDouble(*f)) },
            Some(Ts::Stamp(sec, nsec)) => {
                let cls = self.cls.timestamp.bind(self.py);
                let o = cls.call_method1("__new__", (cls,))?;
                let sec = unsafe { Bound::from_owned_ptr(self.py, self.int(sec)?) };
                o.setattr("sec", sec)?;
                o.setattr("nsec", *nsec)?;
                Ok(o.into_ptr())
            }
        }
    }

    fn labels(&mut self, store: &Store, l: Option<Labels>) -> PyResult<*mut ffi::PyObject> {
        let l = match l {
            None => return Ok(none()),
            Some(l) => l,
        };
        unsafe {
            let d = check(self.py, ffi::PyDict_New())?;
            let d = Bound::from_owned_ptr(self.py, d);
            for (i, &(k, v)) in store.pairs(l).iter().enumerate() {
                let kb = store.get(k);
                let k = match self.last_keys.get(i) {
                    Some((b, o)) if b[..] == *kb => o.clone_ref(self.py).into_bound(self.py),
                    _ => {
                        let o = Bound::from_owned_ptr(self.py, self.name(kb)?);
                        if i < 16 {
                            let entry = (kb.to_vec(), o.clone().unbind());
                            if i < self.last_keys.len() {
                                self.last_keys[i] = entry;
                            } else if i == self.last_keys.len() {
                                self.last_keys.push(entry);
                            }
                        }
                        o
                    }
                };
                let vb = store.get(v);
                let v = match self.last_values.get(i) {
                    Some((b, o)) if b[..] == *vb => o.clone_ref(self.py),
                    _ => {
                        let o = py_str(self.py, vb)?;
                        if i < self.last_values.len() {
                            let e = &mut self.last_values[i];
                            e.0.clear();
                            e.0.extend_from_slice(vb);
                            e.1 = o.clone_ref(self.py);
                        } else if i == self.last_values.len() && i < 16 {
                            self.last_values.push((vb.to_vec(), o.clone_ref(self.py)));
                        }
                        o
                    }
                };
                if ffi::PyDict_SetItem(d.as_ptr(), k.as_ptr(), v.as_ptr()) < 0 {
                    return Err(PyErr::fetch(self.py));
                }
            }
            Ok(d.into_ptr())
        }
    }

    /// An instance of a NamedTuple class from new references to its items.
    fn named_tuple(
        &self,
        cls: &Py<PyType>,
        items: &[*mut ffi::PyObject],
    ) -> PyResult<*mut ffi::PyObject> {
        unsafe {
            if self.cls.tuple_layout {
                let o = ffi::PyType_GenericAlloc(
                    cls.as_ptr() as *mut ffi::PyTypeObject,
                    items.len() as ffi::Py_ssize_t,
                );
                if o.is_null() {
                    for &i in items {
                        ffi::Py_DECREF(i);
                    }
                    return Err(PyErr::fetch(self.py));
                }
                for (k, &i) in items.iter().enumerate() {
                    ffi::PyTuple_SET_ITEM(o, k as ffi::Py_ssize_t, i);
                }
                return Ok(o);
            }
            let t = ffi::PyTuple_New(items.len() as ffi::Py_ssize_t);
            for (k, &i) in items.iter().enumerate() {
                ffi::PyTuple_SET_ITEM(t, k as ffi::Py_ssize_t, i);
            }
            let t = Bound::from_owned_ptr(self.py, t).cast_into_unchecked::<PyTuple>();
            Ok(cls.bind(self.py).call1(t)?.into_ptr())
        }
    }

    fn native_histogram(&self, nh: &NativeHist) -> PyResult<*mut ffi::PyObject> {
        let py = self.py;
        let int = |i: &Int| -> PyResult<Bound<'py, PyAny>> {
            unsafe { Ok(Bound::from_owned_ptr(py, self.int(i)?)) }
        };
        let spans = |s: &Option<Vec<(Int, Int)>>| -> PyResult<Bound<'py, PyAny>> {
            match s {
                None => Ok(py.None().into_bound(py)),
                Some(v) => {
                    let mut items = Vec::with_capacity(v.len());
                    for (a, b) in v {
                        items.push(self.cls.bucket_span.bind(py).call1((int(a)?, int(b)?))?);
                    }
                    Ok(PyTuple::new(py, items)?.into_any())
                }
            }
        };
        let deltas = |s: &Option<Vec<Int>>| -> PyResult<Bound<'py, PyAny>> {
            match s {
                None => Ok(py.None().into_bound(py)),
                Some(v) => Ok(
                    PyTuple::new(py, v.iter().map(int).collect::<PyResult<Vec<_>>>()?)?.into_any(),
                ),
            }
        };
        let o = self.cls.native_histogram.bind(py).call1((
            int(&nh.count_value)?,
            nh.sum_value,
            int(&nh.schema)?,
            nh.zero_threshold,
            int(&nh.zero_count)?,
            spans(&nh.pos_spans)?,
            spans(&nh.neg_spans)?,
            deltas(&nh.pos_deltas)?,
            deltas(&nh.neg_deltas)?,
        ))?;
        Ok(o.into_ptr())
    }

    fn sample(&mut self, store: &Store, s: &Sample) -> PyResult<*mut ffi::PyObject> {
        let mut items: [*mut ffi::PyObject; 6] = [std::ptr::null_mut(); 6];
        let r = (|| -> PyResult<()> {
            let nb = store.get(s.name);
            items[0] = match &self.last_name {
                Some((b, o)) if b[..] == *nb => o.clone_ref(self.py).into_ptr(),
                _ => {
                    let o = self.name(nb)?;
                    self.last_name = Some((nb.to_vec(), unsafe {
                        Bound::from_borrowed_ptr(self.py, o).unbind()
                    }));
                    o
                }
            };
            items[1] = self.labels(store, s.labels)?;
            items[2] = match &s.value {
                None => none(),
                Some(v) => self.num(v)?,
            };
            items[3] = self.ts(&s.timestamp)?;
            items[4] = match &s.exemplar {
                None => none(),
                Some(e) => {
                    let parts = [
                        self.labels(store, Some(e.labels))?,
                        self.num(&e.value)?,
                        self.ts(&e.timestamp)?,
                    ];
                    self.named_tuple(&self.cls.exemplar, &parts)?
                }
            };
            items[5] = match &s.native_histogram {
                None => none(),
                Some(nh) => self.native_histogram(nh)?,
            };
            Ok(())
        })();
        if let Err(e) = r {
            for i in items {
                if !i.is_null() {
                    unsafe { ffi::Py_DECREF(i) };
                }
            }
            return Err(e);
        }
        let o = self.named_tuple(&self.cls.sample, &items)?;
        // Like CPython's collector does for tuples: a sample of atomic items needs no tracking.
        if self.cls.tuple_layout && s.exemplar.is_none() && s.native_histogram.is_none() {
            if let Some(Ts::Stamp(..)) = s.timestamp {
            } else if items[1] == none_ptr() || unsafe { ffi::PyObject_GC_IsTracked(items[1]) } == 0
            {
                unsafe { ffi::PyObject_GC_UnTrack(o as *mut std::ffi::c_void) };
            }
        }
        Ok(o)
    }

    fn family(&mut self, store: &Store, f: &Family) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        let cls = self.cls.metric.bind(py);
        let m = cls.call_method1("__new__", (cls,))?;
        let samples = unsafe {
            let l = check(py, ffi::PyList_New(f.samples.len() as ffi::Py_ssize_t))?;
            let l = Bound::from_owned_ptr(py, l);
            for (i, s) in store.family_samples(f).iter().enumerate() {
                let o = self.sample(store, s)?;
                ffi::PyList_SET_ITEM(l.as_ptr(), i as ffi::Py_ssize_t, o);
            }
            l
        };
        m.setattr("name", py_str(py, &f.name)?)?;
        m.setattr("documentation", py_str(py, &f.documentation)?)?;
        m.setattr("unit", py_str(py, &f.unit)?)?;
        m.setattr("type", PyString::intern(py, f.typ))?;
        m.setattr("samples", samples)?;
        Ok(m)
    }

    fn families(&mut self, store: &Store, fams: &[Family]) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(self.py);
        for f in fams {
            out.append(self.family(store, f)?)?;
        }
        Ok(out)
    }
}

fn none_ptr() -> *mut ffi::PyObject {
    unsafe { ffi::Py_None() }
}

fn none() -> *mut ffi::PyObject {
    unsafe {
        let n = ffi::Py_None();
        ffi::Py_INCREF(n);
        n
    }
}

unsafe fn check(py: Python<'_>, p: *mut ffi::PyObject) -> PyResult<*mut ffi::PyObject> {
    if p.is_null() {
        Err(PyErr::fetch(py))
    } else {
        Ok(p)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// The exception instance the reference raises for `e`.
fn exception(py: Python<'_>, e: &ParseError) -> PyResult<Py<PyAny>> {
    let s = |b: &[u8]| py_str(py, b);
    let err = match e {
        ParseError::Value(m) => PyValueError::new_err(s(m)?),
        ParseError::ValueBare => PyValueError::new_err(()),
        ParseError::ValueArgs(m, a) => PyValueError::new_err((*m, s(a)?)),
        ParseError::ValueRepr(prefix, v) => {
            let r = s(v)?.bind(py).repr()?;
            PyValueError::new_err(format!("{prefix}{}", r.to_str()?))
        }
        ParseError::PyInt(v) => raised(py, py.get_type::<pyo3::types::PyInt>().call1((s(v)?,)))?,
        ParseError::PyFloat(v) => {
            raised(py, py.get_type::<pyo3::types::PyFloat>().call1((s(v)?,)))?
        }
        ParseError::Encode(v) => raised(py, s(v)?.bind(py).call_method1("encode", ("utf-8",)))?,
        ParseError::Index => PyIndexError::new_err("string index out of range"),
        ParseError::Key(k) => PyKeyError::new_err(*k),
        ParseError::Attribute(m) => PyAttributeError::new_err(*m),
        ParseError::Type(m) => PyTypeError::new_err(*m),
        ParseError::Overflow(m) => PyOverflowError::new_err(*m),
        ParseError::Clash {
            name,
            suffixes,
            clashing,
        } => {
            let mut all: Vec<&str> = suffixes.to_vec();
            all.push("");
            let set = PySet::new(py, &all)?;
            let mut first = None;
            for item in set.iter() {
                let suffix: String = item.extract()?;
                if clashing.contains(&suffix.as_str()) {
                    first = Some(suffix);
                    break;
                }
            }
            let mut m = b"Clashing name: ".to_vec();
            m.extend_from_slice(name);
            m.extend_from_slice(first.unwrap_or_default().as_bytes());
            PyValueError::new_err(s(&m)?)
        }
    };
    Ok(err.into_value(py).into_any())
}

/// The error of a call expected to raise.
fn raised(py: Python<'_>, r: PyResult<Bound<'_, PyAny>>) -> PyResult<PyErr> {
    match r {
        Err(e) => Ok(e),
        Ok(v) => Err(PyRuntimeError::new_err(format!(
            "fastprom parser: expected an exception, got {}",
            v.repr()?
        ))),
    }
    .inspect(|_| {
        let _ = py;
    })
}

fn result<'py>(
    py: Python<'py>,
    store: &Store,
    fams: &[Family],
    err: &Option<ParseError>,
) -> PyResult<(Bound<'py, PyList>, Py<PyAny>)> {
    let cls = classes(py)?;
    let mut conv = Conv::new(py, cls);
    // No collections while building: the new objects are all reachable.
    let was_enabled = unsafe { ffi::PyGC_Disable() };
    let list = conv.families(store, fams);
    if was_enabled != 0 {
        unsafe { ffi::PyGC_Enable() };
    }
    let list = list?;
    let e = match err {
        None => py.None(),
        Some(e) => exception(py, e)?,
    };
    Ok((list, e))
}

// ---------------------------------------------------------------------------------------------
// Functions and classes

thread_local! {
    /// The memory of the last parse on this thread, reused by the next one.
    static POOL: std::cell::RefCell<Option<Store>> = const { std::cell::RefCell::new(None) };
}

fn take_store() -> Store {
    POOL.with(|p| p.borrow_mut().take()).unwrap_or_default()
}

/// Keeps a store's memory for the next parse (up to a limit).
fn give_store(mut store: Store) {
    if store.arena.capacity() <= 32 << 20 && store.samples.capacity() <= 1 << 20 {
        store.arena.clear();
        store.pairs.clear();
        store.samples.clear();
        POOL.with(|p| *p.borrow_mut() = Some(store));
    }
}

/// `(families, error)` of the Prometheus text parser over a whole string.
#[pyfunction]
pub fn parse_text<'py>(text: &Bound<'py, PyString>) -> PyResult<(Bound<'py, PyList>, Py<PyAny>)> {
    let py = text.py();
    let opts = options(py)?;
    let t = Text::new(text)?;
    let bytes = t.bytes();
    let store = take_store();
    let (store, fams, err) = py.detach(|| parse::text::parse(bytes, opts, store));
    let r = result(py, &store, &fams, &err);
    give_store(store);
    r
}

/// `(families, error)` of the OpenMetrics parser over a whole string.
#[pyfunction]
pub fn parse_openmetrics<'py>(
    text: &Bound<'py, PyString>,
) -> PyResult<(Bound<'py, PyList>, Py<PyAny>)> {
    let py = text.py();
    let opts = options(py)?;
    let t = Text::new(text)?;
    let bytes = t.bytes();
    let store = take_store();
    let (store, fams, err) = py.detach(|| parse::openmetrics::parse(bytes, opts, store));
    let r = result(py, &store, &fams, &err);
    give_store(store);
    r
}

/// Either parser, line by line.
enum Inner {
    Text(TextParser),
    Om(OmParser),
}

impl Inner {
    fn feed(&mut self, line: &[u8], out: &mut Vec<Family>) -> Result<(), ParseError> {
        match self {
            Inner::Text(p) => p.feed_line(line, out),
            Inner::Om(p) => p.feed_line(line, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<Family>) -> Result<(), ParseError> {
        match self {
            Inner::Text(p) => p.finish(out),
            Inner::Om(p) => p.finish(out),
        }
    }

    fn store(&self) -> &Store {
        match self {
            Inner::Text(p) => &p.store,
            Inner::Om(p) => &p.store,
        }
    }

    fn compact(&mut self) {
        match self {
            Inner::Text(p) => p.compact(),
            Inner::Om(p) => p.compact(),
        }
    }
}

/// The incremental parser behind `text_fd_to_metric_families` (both formats).
#[pyclass(module = "fastprom._native")]
pub struct LineParser {
    inner: Inner,
    done: bool,
}

impl LineParser {
    fn run<'py>(
        &mut self,
        py: Python<'py>,
        lines: Option<&Bound<'py, PyList>>,
    ) -> PyResult<(Bound<'py, PyList>, Py<PyAny>, Py<PyAny>)> {
        if self.done {
            return Err(PyRuntimeError::new_err("parser already finished"));
        }
        let mut texts = Vec::new();
        let mut stop = py.None();
        let mut owned = Vec::new();
        if let Some(lines) = lines {
            for item in lines.iter() {
                match item.cast::<PyString>() {
                    Ok(s) => texts.push(Text::new(s)?),
                    Err(_) => {
                        stop = item.clone().unbind();
                        break;
                    }
                }
                owned.push(item);
            }
        }
        let finish = lines.is_none();
        let slices: Vec<&[u8]> = texts.iter().map(Text::bytes).collect();
        let inner = &mut self.inner;
        let (fams, err) = py.detach(|| {
            let mut out = Vec::new();
            let mut err = None;
            for t in &slices {
                if let Err(e) = inner.feed(t, &mut out) {
                    err = Some(e);
                    break;
                }
            }
            if finish && err.is_none() {
                err = inner.finish(&mut out).err();
            }
            (out, err)
        });
        if err.is_some() || finish {
            self.done = true;
        }
        let (list, e) = result(py, self.inner.store(), &fams, &err)?;
        if !fams.is_empty() {
            self.inner.compact();
        }
        drop(owned);
        Ok((list, e, stop))
    }
}

#[pymethods]
impl LineParser {
    /// `LineParser(openmetrics: bool)`.
    #[new]
    fn new(py: Python<'_>, openmetrics: bool) -> PyResult<LineParser> {
        let opts = options(py)?;
        Ok(LineParser {
            inner: if openmetrics {
                Inner::Om(OmParser::new(opts))
            } else {
                Inner::Text(TextParser::new(opts))
            },
            done: false,
        })
    }

    /// Feeds lines: `(families, error, stop)`; `stop` is the first line that is not a `str`.
    fn feed<'py>(
        &mut self,
        lines: &Bound<'py, PyList>,
    ) -> PyResult<(Bound<'py, PyList>, Py<PyAny>, Py<PyAny>)> {
        self.run(lines.py(), Some(lines))
    }

    /// After the last line: `(families, error)`.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<(Bound<'py, PyList>, Py<PyAny>)> {
        let (l, e, _) = self.run(py, None)?;
        Ok((l, e))
    }

    /// Whether the OpenMetrics parser has seen `# EOF`.
    #[getter]
    fn eof(&self) -> bool {
        match &self.inner {
            Inner::Om(p) => p.eof,
            Inner::Text(_) => false,
        }
    }
}

/// `parse_labels(labels_string, openmetrics)`: the labels dict, or the reference's exception.
#[pyfunction]
#[pyo3(signature = (labels_string, openmetrics=false))]
pub fn parse_labels<'py>(
    labels_string: &Bound<'py, PyString>,
    openmetrics: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = labels_string.py();
    let opts = options(py)?;
    let t = Text::new(labels_string)?;
    let mut store = Store::default();
    match parse::parse_labels(&mut store, t.bytes(), openmetrics, opts.legacy) {
        Ok(l) => {
            let mut conv = Conv::new(py, classes(py)?);
            let d = conv.labels(&store, Some(l))?;
            Ok(unsafe { Bound::from_owned_ptr(py, d) })
        }
        Err(e) => Err(PyErr::from_value(exception(py, &e)?.into_bound(py))),
    }
}
