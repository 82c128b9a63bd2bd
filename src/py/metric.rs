//! Native bases of Counter, Gauge, Summary and Histogram.
//!
//! `fastprom.metrics` declares `class Counter(NativeCounter, MetricWrapperBase)`: the Python
//! base runs construction and validation once, then calls `_init_parent` or `_init_child`
//! here. After that the hot methods (`inc`, `set`, `observe`, `labels`) are native and reach
//! the atomics in the core without a Python frame.

use std::sync::{Arc, OnceLock};

use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::amount::{self, Amount};
use super::errors::{runtime_error, value_error};
use super::python;
use super::value::{Part, ValueView};
use crate::core::family::{find_sample, Child, ChildValue, Family, FamilyView};
use crate::core::model::{Exemplar, MetricType};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Summary,
    Histogram,
}

impl Kind {
    fn metric_type(self) -> MetricType {
        match self {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
            Kind::Summary => MetricType::Summary,
            Kind::Histogram => MetricType::Histogram,
        }
    }
}

/// Set once by `_init_parent` or `_init_child`.
struct State {
    /// The exported family of a registered metric (labelled parent or unlabelled metric).
    family: Option<Arc<Family>>,
    /// The value cells of an observable metric (unlabelled, or a child).
    child: Option<Arc<Child>>,
    /// A labelled parent's children by label-value tuple, shared with Python's `_metrics`.
    /// Lookups read it without a lock: dict reads are atomic with or without the GIL, and
    /// every insert or removal happens in Python under the metric's `_lock`.
    children: Option<Py<PyDict>>,
    labelnames: Py<PyTuple>,
    /// A gauge in a `mostrecent` multiprocess mode refuses `inc` and `dec`.
    most_recent: bool,
    /// The documentation is a `str`, so the family can be rendered without Python.
    renders_natively: bool,
}

#[pyclass(frozen, subclass, module = "fastprom._native")]
pub struct NativeMetric {
    kind: Kind,
    state: OnceLock<State>,
}

impl NativeMetric {
    fn new(kind: Kind) -> NativeMetric {
        NativeMetric {
            kind,
            state: OnceLock::new(),
        }
    }

    #[inline]
    fn state(&self) -> PyResult<&State> {
        self.state.get().ok_or_else(|| {
            PyAttributeError::new_err("metric is not initialised: call MetricWrapperBase.__init__")
        })
    }

    /// The child's cells, or the reference's error for a labelled parent.
    #[inline]
    fn child(&self) -> PyResult<&Arc<Child>> {
        match &self.state()?.child {
            Some(child) => Ok(child),
            None => Err(value_error(format!(
                "{} metric is missing label values",
                self.kind.metric_type().as_str()
            ))),
        }
    }

    /// The family to render natively, or None when Python must produce the samples.
    fn native_family(&self) -> Option<&Arc<Family>> {
        let state = self.state.get()?;
        let family = state.family.as_ref()?;
        (state.renders_natively && !family.needs_python()).then_some(family)
    }

    pub fn family_view(&self, use_created: bool) -> Option<FamilyView> {
        Some(FamilyView::new(self.native_family()?.clone(), use_created))
    }
}

fn build_family(slf: &Bound<'_, NativeMetric>, kind: Kind) -> PyResult<(Arc<Family>, bool)> {
    let documentation = slf.getattr("_documentation")?;
    let doc_str = documentation.cast::<PyString>().ok().map(|d| d.to_string());
    let labelnames: Vec<String> = slf.getattr("_labelnames")?.extract()?;
    let family = Family::new(
        slf.getattr("_name")?.extract()?,
        doc_str.clone().unwrap_or_default(),
        slf.getattr("_unit")?.str()?.to_string(),
        kind.metric_type(),
        labelnames,
        &upper_bounds(slf, kind)?,
    );
    Ok((Arc::new(family), doc_str.is_some()))
}

fn upper_bounds(slf: &Bound<'_, NativeMetric>, kind: Kind) -> PyResult<Vec<f64>> {
    match kind {
        Kind::Histogram => slf.getattr("_upper_bounds")?.extract(),
        _ => Ok(Vec::new()),
    }
}

fn is_most_recent(slf: &Bound<'_, NativeMetric>, kind: Kind) -> PyResult<bool> {
    if kind != Kind::Gauge {
        return Ok(false);
    }
    let mode = slf.getattr("_multiprocess_mode")?;
    Ok(mode.eq("mostrecent")? || mode.eq("livemostrecent")?)
}

fn set_state(this: &NativeMetric, state: State) -> PyResult<()> {
    this.state
        .set(state)
        .map_err(|_| value_error("metric already initialised"))
}

/// The label-value tuple for a positional `labels()` call, if the call is well-formed.
fn positional_key<'py>(
    args: &Bound<'py, PyTuple>,
    expected: usize,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    if args.len() != expected || expected == 0 {
        return Ok(None);
    }
    if args.iter().all(|v| v.is_exact_instance_of::<PyString>()) {
        return Ok(Some(args.clone()));
    }
    let values = args.iter().map(|v| v.str()).collect::<PyResult<Vec<_>>>()?;
    Ok(Some(PyTuple::new(args.py(), values)?))
}

/// The label-value tuple for a keyword `labels()` call, if the call is well-formed.
fn keyword_key<'py>(
    kwargs: &Bound<'py, PyDict>,
    labelnames: &Bound<'py, PyTuple>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    if kwargs.len() != labelnames.len() {
        return Ok(None);
    }
    let mut values = Vec::with_capacity(labelnames.len());
    for name in labelnames.iter() {
        match kwargs.get_item(name)? {
            Some(v) => values.push(v.str()?),
            None => return Ok(None),
        }
    }
    Ok(Some(PyTuple::new(kwargs.py(), values)?))
}

fn exemplar_from_python(
    py: Python<'_>,
    labels: &Bound<'_, PyAny>,
    value: f64,
) -> PyResult<Exemplar> {
    python::validate_exemplar(py, labels)?;
    let dict = labels.cast::<PyDict>()?;
    let mut pairs = dict
        .iter()
        .map(|(k, v)| Ok((k.extract::<String>()?, v.extract::<String>()?)))
        .collect::<PyResult<Vec<_>>>()?;
    pairs.sort();
    let timestamp = python::time_now(py)?;
    Ok(Exemplar {
        labels: pairs,
        value,
        timestamp: Some(crate::core::format::python_float_repr(timestamp)),
    })
}

#[pymethods]
impl NativeMetric {
    /// Sets up a labelled parent; returns the dict of children (Python's `_metrics`).
    fn _init_parent(slf: &Bound<'_, Self>) -> PyResult<Py<PyDict>> {
        let this = slf.get();
        let (family, renders_natively) = build_family(slf, this.kind)?;
        let children = PyDict::new(slf.py()).unbind();
        set_state(
            this,
            State {
                family: Some(family),
                child: None,
                children: Some(children.clone_ref(slf.py())),
                labelnames: slf.getattr("_labelnames")?.cast_into::<PyTuple>()?.unbind(),
                most_recent: is_most_recent(slf, this.kind)?,
                renders_natively,
            },
        )?;
        Ok(children)
    }

    /// Sets up an observable metric (unlabelled, or a child) with its creation time.
    fn _init_child(slf: &Bound<'_, Self>, created: f64) -> PyResult<()> {
        let this = slf.get();
        let labels: Vec<String> = slf.getattr("_labelvalues")?.extract()?;
        let top_level = labels.is_empty();
        let child = Arc::new(match this.kind {
            Kind::Counter => Child::counter(labels, created),
            Kind::Gauge => Child::gauge(labels),
            Kind::Summary => Child::summary(labels, created),
            Kind::Histogram => Child::histogram(labels, created, &upper_bounds(slf, this.kind)?),
        });
        let (family, renders_natively) = if top_level {
            let (family, native) = build_family(slf, this.kind)?;
            family.insert(child.clone());
            (Some(family), native)
        } else {
            (None, true)
        };
        set_state(
            this,
            State {
                family,
                child: Some(child),
                children: None,
                labelnames: slf.getattr("_labelnames")?.cast_into::<PyTuple>()?.unbind(),
                most_recent: is_most_recent(slf, this.kind)?,
                renders_natively,
            },
        )
    }

    /// The child for these label values. Existing children are found here; anything else
    /// (a new child, or a call that raises) goes to `MetricWrapperBase.labels`.
    #[pyo3(signature = (*args, **kwargs))]
    fn labels<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(State {
            children: Some(children),
            labelnames,
            ..
        }) = slf.get().state.get()
        {
            let py = slf.py();
            let key = match kwargs.filter(|kw| !kw.is_empty()) {
                None => positional_key(args, labelnames.bind(py).len())?,
                Some(kw) if args.is_empty() => keyword_key(kw, labelnames.bind(py))?,
                Some(_) => None,
            };
            if let Some(key) = key {
                if let Some(child) = children.bind(py).get_item(&key)? {
                    return Ok(child);
                }
            }
        }
        slf.call_method("_labels_slow", args.clone(), kwargs)
    }

    /// A child was added to `_metrics` (called under the metric's `_lock`).
    fn _link_child(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyAny>,
        child: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        // The family keys a child by its own `_labelvalues`; `key` mirrors the Python hook.
        let _ = key;
        let Some(family) = &slf.get().state()?.family else {
            return Ok(());
        };
        if let Ok(native) = child.cast::<NativeMetric>() {
            if let Some(cells) = native.get().state.get().and_then(|s| s.child.clone()) {
                family.insert(cells);
            }
        }
        Ok(())
    }

    /// `(found, value)` of the first sample named `name` with exactly `labels`, read from the
    /// cells; `found` is None when Python must collect this metric instead.
    fn _sample_value(
        slf: &Bound<'_, Self>,
        name: &str,
        labels: &Bound<'_, PyDict>,
    ) -> PyResult<(Option<bool>, Option<f64>)> {
        let Some(family) = slf.get().native_family() else {
            return Ok((None, None));
        };
        let mut pairs = Vec::with_capacity(labels.len());
        for (k, v) in labels.iter() {
            match (k.cast::<PyString>(), v.cast::<PyString>()) {
                (Ok(k), Ok(v)) => pairs.push((k.to_string(), v.to_string())),
                // Native label values are all str, and a str never equals anything else.
                _ => return Ok((Some(false), None)),
            }
        }
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let value = find_sample(family, python::use_created(slf.py())?, name, &pairs);
        Ok((Some(value.is_some()), value))
    }

    /// Children were removed from `_metrics`; `None` means all of them.
    fn _unlink_children(slf: &Bound<'_, Self>, keys: Option<Vec<Vec<String>>>) -> PyResult<()> {
        let Some(family) = &slf.get().state()?.family else {
            return Ok(());
        };
        match keys {
            None => family.clear(),
            Some(keys) => keys.iter().for_each(|k| family.remove(k)),
        }
        Ok(())
    }

    /// This child's samples come from Python from now on (`Gauge.set_function`).
    fn _mark_python_samples(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.get().child()?.set_python_samples();
        Ok(())
    }

    /// The samples of an observable metric: `Sample(suffix, labels, value, None, exemplar)`.
    fn _child_samples<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let child = slf.get().child()?;
        let bounds = match &child.value {
            ChildValue::Histogram(h) => h.bounds().to_vec(),
            _ => Vec::new(),
        };
        let mut samples = Vec::new();
        let mut failure = None;
        child.visit(python::use_created(py)?, &mut |s| {
            let labels = PyDict::new(py);
            if let Some(bound) = s.bucket.and_then(|b| bounds.get(b)) {
                let le = crate::core::format::float_to_go_string(*bound);
                if let Err(e) = labels.set_item("le", le) {
                    failure = Some(e);
                }
            }
            match python::sample(py, s.suffix, labels, s.value, s.exemplar) {
                Ok(sample) => samples.push(sample),
                Err(e) => failure = Some(e),
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        PyTuple::new(py, samples)
    }

    #[getter]
    fn _value(slf: &Bound<'_, Self>) -> PyResult<ValueView> {
        let this = slf.get();
        match this.kind {
            Kind::Counter | Kind::Gauge => Ok(ValueView::new(
                this.child_or_missing(slf, "_value")?,
                Part::Main,
            )),
            _ => Err(missing_attribute(slf, "_value")),
        }
    }

    #[getter]
    fn _sum(slf: &Bound<'_, Self>) -> PyResult<ValueView> {
        let this = slf.get();
        match this.kind {
            Kind::Summary | Kind::Histogram => Ok(ValueView::new(
                this.child_or_missing(slf, "_sum")?,
                Part::Sum,
            )),
            _ => Err(missing_attribute(slf, "_sum")),
        }
    }

    #[getter]
    fn _count(slf: &Bound<'_, Self>) -> PyResult<ValueView> {
        let this = slf.get();
        match this.kind {
            Kind::Summary => Ok(ValueView::new(
                this.child_or_missing(slf, "_count")?,
                Part::Count,
            )),
            _ => Err(missing_attribute(slf, "_count")),
        }
    }

    #[getter]
    fn _buckets<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyList>> {
        let this = slf.get();
        let child = this.child_or_missing(slf, "_buckets")?;
        let ChildValue::Histogram(h) = &child.value else {
            return Err(missing_attribute(slf, "_buckets"));
        };
        let views = (0..h.bounds().len()).map(|i| ValueView::new(child.clone(), Part::Bucket(i)));
        let views = views
            .map(|v| Bound::new(slf.py(), v))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(slf.py(), views)
    }

    #[getter(_created)]
    fn created(slf: &Bound<'_, Self>) -> PyResult<f64> {
        let this = slf.get();
        match this.kind {
            Kind::Gauge => Err(missing_attribute(slf, "_created")),
            _ => Ok(this.child_or_missing(slf, "_created")?.created()),
        }
    }

    #[setter(_created)]
    fn set_created(slf: &Bound<'_, Self>, value: f64) -> PyResult<()> {
        slf.get()
            .child_or_missing(slf, "_created")?
            .set_created(value);
        Ok(())
    }
}

impl NativeMetric {
    /// The child, or the AttributeError the reference raises for value attributes of a parent.
    fn child_or_missing(
        &self,
        slf: &Bound<'_, NativeMetric>,
        attribute: &str,
    ) -> PyResult<Arc<Child>> {
        self.state
            .get()
            .and_then(|s| s.child.clone())
            .ok_or_else(|| missing_attribute(slf, attribute))
    }
}

fn missing_attribute(slf: &Bound<'_, NativeMetric>, attribute: &str) -> PyErr {
    let type_name = slf
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    PyAttributeError::new_err(format!(
        "'{type_name}' object has no attribute '{attribute}'"
    ))
}

fn negative_counter() -> PyErr {
    value_error("Counters can only be incremented by non-negative amounts.")
}

#[pyclass(frozen, extends = NativeMetric, subclass, module = "fastprom._native")]
pub struct NativeCounter;

#[pymethods]
impl NativeCounter {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyClassInitializer<Self> {
        PyClassInitializer::from(NativeMetric::new(Kind::Counter)).add_subclass(NativeCounter)
    }

    /// Increment by `amount` (default 1); whole amounts take the integer cell.
    #[pyo3(signature = (amount = None, exemplar = None))]
    fn inc(
        slf: &Bound<'_, Self>,
        amount: Option<&Bound<'_, PyAny>>,
        exemplar: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let child = slf.as_super().get().child()?;
        let added = match amount {
            None => {
                child.counter_inc_int(1);
                1.0
            }
            Some(a) => match amount::fast(a) {
                Some(Amount::Int(n)) if n >= 0 => {
                    child.counter_inc_int(n as u64);
                    n as f64
                }
                Some(Amount::Int(_)) => return Err(negative_counter()),
                Some(Amount::Float(f)) if f < 0.0 => return Err(negative_counter()),
                Some(Amount::Float(f)) => {
                    child.counter_inc(f);
                    f
                }
                None => {
                    if amount::is_negative(a)? {
                        return Err(negative_counter());
                    }
                    let f = amount::added_to_zero(a)?;
                    child.counter_inc(f);
                    f
                }
            },
        };
        if let Some(labels) = exemplar.filter(|e| e.is_truthy().unwrap_or(false)) {
            child.set_exemplar(0, exemplar_from_python(slf.py(), labels, added)?);
        }
        Ok(())
    }

    /// Reset to zero, for a logical process restart without a real one.
    fn reset(slf: &Bound<'_, Self>) -> PyResult<()> {
        let base = slf.as_super();
        let child = base.get().child_or_missing(base, "_value")?;
        child.set(0.0);
        child.set_created(python::time_now(slf.py())?);
        Ok(())
    }
}

#[pyclass(frozen, extends = NativeMetric, subclass, module = "fastprom._native")]
pub struct NativeGauge;

#[pymethods]
impl NativeGauge {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyClassInitializer<Self> {
        PyClassInitializer::from(NativeMetric::new(Kind::Gauge)).add_subclass(NativeGauge)
    }

    #[pyo3(signature = (amount = None))]
    fn inc(slf: &Bound<'_, Self>, amount: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let base = slf.as_super().get();
        if base.state()?.most_recent {
            return Err(runtime_error(
                "inc must not be used with the mostrecent mode",
            ));
        }
        let child = base.child()?;
        child.gauge_add(match amount {
            None => 1.0,
            Some(a) => amount::to_f64(a)?,
        });
        Ok(())
    }

    #[pyo3(signature = (amount = None))]
    fn dec(slf: &Bound<'_, Self>, amount: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let base = slf.as_super().get();
        if base.state()?.most_recent {
            return Err(runtime_error(
                "dec must not be used with the mostrecent mode",
            ));
        }
        let child = base.child()?;
        child.gauge_add(match amount {
            None => -1.0,
            Some(a) => match amount::fast(a) {
                Some(Amount::Int(n)) => -(n as f64),
                Some(Amount::Float(f)) => -f,
                None => amount::added_to_zero(&amount::negated(a)?)?,
            },
        });
        Ok(())
    }

    fn set(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let child = slf.as_super().get().child()?;
        child.set(amount::float_of(value)?);
        Ok(())
    }
}

#[pyclass(frozen, extends = NativeMetric, subclass, module = "fastprom._native")]
pub struct NativeSummary;

#[pymethods]
impl NativeSummary {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyClassInitializer<Self> {
        PyClassInitializer::from(NativeMetric::new(Kind::Summary)).add_subclass(NativeSummary)
    }

    fn observe(slf: &Bound<'_, Self>, amount: &Bound<'_, PyAny>) -> PyResult<()> {
        let child = slf.as_super().get().child()?;
        let ChildValue::Summary(h) = &child.value else { return Ok(()) };
        match amount::to_f64(amount) {
            Ok(v) => h.observe(v),
            Err(e) => {
                // The reference counts the observation before adding the amount fails.
                h.add_observations(1);
                return Err(e);
            }
        }
        Ok(())
    }
}

#[pyclass(frozen, extends = NativeMetric, subclass, module = "fastprom._native")]
pub struct NativeHistogram;

#[pymethods]
impl NativeHistogram {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyClassInitializer<Self> {
        PyClassInitializer::from(NativeMetric::new(Kind::Histogram)).add_subclass(NativeHistogram)
    }

    #[pyo3(signature = (amount, exemplar = None))]
    fn observe(
        slf: &Bound<'_, Self>,
        amount: &Bound<'_, PyAny>,
        exemplar: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let child = slf.as_super().get().child()?;
        let v = amount::to_f64(amount)?;
        let ChildValue::Histogram(h) = &child.value else {
            return Ok(());
        };
        h.observe(v);
        if let Some(labels) = exemplar.filter(|e| e.is_truthy().unwrap_or(false)) {
            if let Some(bucket) = h.bucket_index(v) {
                child.set_exemplar(bucket, exemplar_from_python(slf.py(), labels, v)?);
            }
        }
        Ok(())
    }
}
