//! Counter, Gauge, Summary and Histogram: the classes users instantiate are these native ones.
//!
//! `fastprom.metrics` grafts the Python-only methods (construction and validation, `collect`,
//! `remove`, decorators) onto them. The hot methods (`inc`, `set`, `observe`, `labels`) are
//! native methods of the very class of the instance, so CPython's specialised call path for
//! method descriptors applies (it requires the exact type), and they reach the atomics in the
//! core without a Python frame.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyAttributeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::amount::{self, Amount, Arg};
use super::attributes::{self, Attributes};
use super::children::Children;
use super::errors::{multiprocess_file_error, runtime_error, value_error};
use super::python;
use super::timer::Timer;
use super::value::{Part, ValueView};
use crate::core::family::{find_sample, Child, ChildValue, Family};
use crate::core::model::{Exemplar, MetricType};
use crate::core::multiprocess::mapped::MappedSpec;
use crate::core::native_histogram::NativeConfig;
use crate::core::observations::{ObservationCells, ObservationsPlan};
use crate::core::quantiles::{Objective, QuantileSpec};

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
    /// A labelled parent's children as Python's `_metrics` (the family holds them).
    children: Option<Py<Children>>,
    labelnames: Py<PyTuple>,
    /// A gauge in a `mostrecent` multiprocess mode refuses `inc` and `dec`.
    most_recent: bool,
    /// The documentation is a `str`, so the family can be rendered without Python.
    renders_natively: bool,
    /// Multiprocess mode: where this metric's children keep their cells.
    multiprocess: Option<Arc<MappedSpec>>,
}

/// A metric's unit as the writers print it: a false one (`''`, `None`) gives no UNIT line.
fn unit_text(unit: &Bound<'_, PyAny>) -> PyResult<String> {
    if !unit.is_truthy()? {
        return Ok(String::new());
    }
    Ok(unit.str()?.to_string())
}

fn build_family(slf: &Bound<'_, PyAny>, kind: Kind) -> PyResult<(Arc<Family>, bool)> {
    let documentation = slf.getattr(intern!(slf.py(), "_documentation"))?;
    let doc_str = documentation.cast::<PyString>().ok().map(|d| d.to_string());
    let labelnames: Vec<String> = slf.getattr(intern!(slf.py(), "_labelnames"))?.extract()?;
    let mut family = Family::new(
        slf.getattr(intern!(slf.py(), "_name"))?.extract()?,
        doc_str.clone().unwrap_or_default(),
        unit_text(&slf.getattr(intern!(slf.py(), "_unit"))?)?,
        kind.metric_type(),
        labelnames,
        &upper_bounds(slf, kind)?,
    );
    if let Some(spec) = quantile_spec(slf, kind)? {
        family = family.with_quantiles(spec);
    }
    if let Some(config) = native_config(slf, kind)? {
        family = family.with_native(config);
    }
    Ok((Arc::new(family), doc_str.is_some()))
}

/// A child's cells: in process memory, or in multiprocess mode entries of this process's file.
fn cells(
    kind: Kind,
    multiprocess: Option<&MappedSpec>,
    labelnames: &[String],
    labels: &[impl AsRef<str>],
    plan: &Arc<ObservationsPlan>,
    created: f64,
) -> std::io::Result<Child> {
    if let Some(spec) = multiprocess {
        let labels: Vec<String> = labels.iter().map(|v| v.as_ref().to_owned()).collect();
        return Child::mapped(spec, labelnames, &labels, plan, created);
    }
    Ok(match kind {
        Kind::Counter => Child::counter(labels, created),
        Kind::Gauge => Child::gauge(labels),
        Kind::Summary => Child::summary(labels, created, plan),
        Kind::Histogram => Child::histogram(labels, created, plan),
    })
}

/// A histogram's native bucket settings (`_native_histogram`, set by `Histogram.__init__`:
/// `(schema, zero threshold, max buckets, min reset seconds, max zero threshold)`), if it
/// keeps native buckets.
fn native_config(slf: &Bound<'_, PyAny>, kind: Kind) -> PyResult<Option<NativeConfig>> {
    if kind != Kind::Histogram {
        return Ok(None);
    }
    let settings: Option<(i32, f64, u32, f64, f64)> =
        match slf.getattr(intern!(slf.py(), "_native_histogram")) {
            Ok(settings) => settings.extract()?,
            Err(_) => None,
        };
    Ok(settings.map(
        |(schema, zero_threshold, max_buckets, min_reset, max_zero_threshold)| NativeConfig {
            zero_threshold,
            max_buckets,
            min_reset_duration: std::time::Duration::from_secs_f64(min_reset),
            max_zero_threshold,
            ..NativeConfig::with_schema(schema)
        },
    ))
}

/// A summary's objectives and window (`_objectives`, `_max_age`, `_age_buckets`, set by
/// `Summary.__init__`), if it estimates quantiles.
fn quantile_spec(slf: &Bound<'_, PyAny>, kind: Kind) -> PyResult<Option<QuantileSpec>> {
    let py = slf.py();
    if kind != Kind::Summary {
        return Ok(None);
    }
    let objectives: Option<Vec<(f64, f64)>> = match slf.getattr(intern!(py, "_objectives")) {
        Ok(objectives) => objectives.extract()?,
        Err(_) => None,
    };
    let Some(objectives) = objectives.filter(|o| !o.is_empty()) else {
        return Ok(None);
    };
    let objectives = objectives
        .into_iter()
        .map(|(quantile, error)| Objective { quantile, error })
        .collect();
    Ok(Some(QuantileSpec::new(
        objectives,
        slf.getattr(intern!(py, "_max_age"))?.extract()?,
        slf.getattr(intern!(py, "_age_buckets"))?.extract()?,
    )))
}

/// Multiprocess mode is on for a metric when `PROMETHEUS_MULTIPROC_DIR` is set as it is created
/// or `values.ValueClass` is a `MultiProcessValue` class (`fastprom.metrics._multiprocess_storage()`).
fn multiprocess_spec(slf: &Bound<'_, PyAny>, kind: Kind) -> PyResult<Option<Arc<MappedSpec>>> {
    let py = slf.py();
    let Some((directory, process)) = python::multiprocess_storage(py)? else {
        return Ok(None);
    };
    let metric_type = kind.metric_type();
    let prefix = match kind {
        Kind::Gauge => format!(
            "gauge_{}",
            slf.getattr(intern!(py, "_multiprocess_mode"))?.str()?
        ),
        _ => metric_type.as_str().to_string(),
    };
    let spec = MappedSpec::new(
        directory,
        prefix,
        process,
        slf.getattr(intern!(py, "_name"))?.extract()?,
        slf.getattr(intern!(py, "_documentation"))?
            .str()?
            .to_string(),
        metric_type,
    );
    Ok(Some(Arc::new(spec)))
}

fn upper_bounds(slf: &Bound<'_, PyAny>, kind: Kind) -> PyResult<Vec<f64>> {
    match kind {
        Kind::Histogram => slf.getattr(intern!(slf.py(), "_upper_bounds"))?.extract(),
        _ => Ok(Vec::new()),
    }
}

fn is_most_recent(slf: &Bound<'_, PyAny>, kind: Kind) -> PyResult<bool> {
    if kind != Kind::Gauge {
        return Ok(false);
    }
    let mode = slf.getattr(intern!(slf.py(), "_multiprocess_mode"))?;
    Ok(mode.eq("mostrecent")? || mode.eq("livemostrecent")?)
}

fn set_state(this: &MetricCore, state: State) -> PyResult<()> {
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

/// An exemplar's labels, checked as the reference checks them, recorded at `timestamp`.
fn exemplar_from_python(
    py: Python<'_>,
    labels: &Bound<'_, PyAny>,
    value: f64,
    timestamp: f64,
) -> PyResult<Exemplar> {
    python::validate_exemplar(py, labels)?;
    let dict = labels.cast::<PyDict>()?;
    let mut pairs = dict
        .iter()
        .map(|(k, v)| Ok((k.extract::<String>()?, v.extract::<String>()?)))
        .collect::<PyResult<Vec<_>>>()?;
    pairs.sort();
    Ok(Exemplar {
        labels: pairs,
        value,
        timestamp: Some(crate::core::format::python_float_repr(timestamp)),
    })
}

/// The amount each exemplar slot was recorded with.
type ExemplarAmounts = Mutex<Vec<Option<Py<PyAny>>>>;

/// What every metric class holds: its kind and, once initialised, its state.
pub struct MetricCore {
    kind: Kind,
    state: OnceLock<State>,
    /// `_labelvalues`: a native attribute, so children can share one attribute dict.
    labelvalues: Mutex<Option<Py<PyAny>>>,
    /// The Python attributes (`_name`, `_lock`, ...): the classes have no `__dict__`.
    attributes: Attributes,
    /// A parent's attributes for its natively created children (made at the first child).
    child_attributes: PyOnceLock<Py<PyDict>>,
    /// The amount each exemplar was recorded with, as passed (`collect()` returns it as is;
    /// the writers use the float the core keeps).
    exemplar_amounts: OnceLock<Box<ExemplarAmounts>>,
    /// A child object: its parent's children (which pin it when it must outlive its uses).
    owner: OnceLock<Py<Children>>,
    /// This object's address once it is its child's handle (see `children.rs`), else 0.
    handle_word: AtomicUsize,
}

impl Drop for MetricCore {
    fn drop(&mut self) {
        // First of all: from here on the child's handle word must not lead to this object.
        let word = *self.handle_word.get_mut();
        if let Some(child) = self.state.get().and_then(|s| s.child.as_ref()) {
            if word != 0 {
                child.clear_handle(word);
            }
        }
    }
}

impl MetricCore {
    fn new(kind: Kind) -> MetricCore {
        MetricCore {
            kind,
            state: OnceLock::new(),
            labelvalues: Mutex::new(None),
            attributes: Attributes::default(),
            child_attributes: PyOnceLock::new(),
            exemplar_amounts: OnceLock::new(),
            owner: OnceLock::new(),
            handle_word: AtomicUsize::new(0),
        }
    }

    /// The Python objects this core holds, for the garbage collector (which never runs while
    /// this thread holds one of the locks: no Python code runs under them).
    fn traverse(&self, visit: &pyo3::gc::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        self.attributes.traverse(visit)?;
        if let Some(children) = self.state.get().and_then(|s| s.children.as_ref()) {
            visit.call(children)?;
        }
        if let Some(owner) = self.owner.get() {
            visit.call(owner)?;
        }
        if let Ok(values) = self.labelvalues.try_lock() {
            if let Some(values) = values.as_ref() {
                visit.call(values)?;
            }
        }
        Ok(())
    }

    fn labelvalues(&self, slf: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if let Some(values) = self
            .labelvalues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return Ok(values.clone_ref(py));
        }
        // A handle's tuple is made at the first use.
        if let (Some(_), Some(child)) = (self.owner.get(), self.observable_child()) {
            let values = PyTuple::new(py, child.label_values().iter().collect::<Vec<_>>())?
                .into_any()
                .unbind();
            let mut slot = self.labelvalues.lock().unwrap_or_else(|e| e.into_inner());
            return Ok(slot.get_or_insert(values).clone_ref(py));
        }
        Err(missing_attribute(slf, "_labelvalues"))
    }

    fn set_labelvalues(&self, py: Python<'_>, value: Option<Py<PyAny>>) {
        self.pin(py);
        self.replace_labelvalues(value)
    }

    fn replace_labelvalues(&self, value: Option<Py<PyAny>>) {
        // The old value is freed after the lock is released (a finalizer may run Python).
        let old = std::mem::replace(
            &mut *self.labelvalues.lock().unwrap_or_else(|e| e.into_inner()),
            value,
        );
        drop(old);
    }

    /// The parent's attributes as a child's (without `_lock` and `_metrics`), made once.
    fn child_attributes<'py>(&self, slf: &Bound<'py, PyAny>) -> PyResult<&Bound<'py, PyDict>> {
        let py = slf.py();
        let template = self.child_attributes.get_or_try_init(py, || {
            let parent_only = [intern!(py, "_lock"), intern!(py, "_metrics")];
            self.attributes.copy_without(py, &parent_only)
        })?;
        Ok(template.bind(py))
    }

    /// A handle that now holds something of its own stays alive while its child exists.
    pub fn pin(&self, py: Python<'_>) {
        let word = self.handle_word.load(Ordering::Acquire);
        if let (Some(owner), Some(child), true) = (
            self.owner.get(),
            self.state.get().and_then(|s| s.child.as_ref()),
            word != 0,
        ) {
            // SAFETY: the word is this live object's address.
            let this =
                unsafe { Bound::from_borrowed_ptr(py, word as *mut pyo3::ffi::PyObject).unbind() };
            owner.get().pin(py, child, this);
        }
    }

    /// The cells of an observable metric (unlabelled, or a child).
    pub fn cells(&self) -> Option<&Arc<Child>> {
        self.state.get()?.child.as_ref()
    }

    /// Makes `obj` (whose core this is) its child's handle, unless another live handle is:
    /// returns that one's address.
    pub fn register_handle(&self, obj: &Bound<'_, PyAny>) -> Option<usize> {
        let child = self.observable_child()?;
        let word = obj.as_ptr() as usize;
        let existing = child.claim_handle(word);
        if existing.is_none() {
            self.handle_word.store(word, Ordering::Release);
        }
        existing
    }

    #[inline]
    fn state(&self) -> PyResult<&State> {
        self.state.get().ok_or_else(|| {
            PyAttributeError::new_err("metric is not initialised: call MetricWrapperBase.__init__")
        })
    }

    /// The child's cells, or the reference's error for a labelled parent.
    #[inline(always)]
    fn child(&self) -> PyResult<&Arc<Child>> {
        match self.state.get().and_then(|s| s.child.as_ref()) {
            Some(child) => Ok(child),
            None => Err(self.not_observable()),
        }
    }

    #[cold]
    fn not_observable(&self) -> PyErr {
        match self.state() {
            Err(e) => e,
            Ok(_) => value_error(format!(
                "{} metric is missing label values",
                self.kind.metric_type().as_str()
            )),
        }
    }

    /// The child's cells when this metric is observable (the fast paths' check).
    #[inline(always)]
    pub fn observable_child(&self) -> Option<&Child> {
        self.state.get().and_then(|s| s.child.as_deref())
    }

    /// The child a gauge's `inc`/`dec`/`set` may update natively: not one in a `mostrecent`
    /// mode (those refuse `inc` and timestamp `set`, in Python).
    #[inline(always)]
    pub fn plain_gauge_child(&self) -> Option<&Child> {
        let state = self.state.get()?;
        if state.most_recent {
            return None;
        }
        state.child.as_deref()
    }

    /// Whether this gauge's `set` records the time too: a `mostrecent` mode in a multiprocess
    /// file (the merge keeps the latest value).
    #[inline(always)]
    pub fn set_records_time(&self, child: &Child) -> bool {
        self.state.get().is_some_and(|s| s.most_recent) && child.is_mapped()
    }

    /// A labelled parent's children and tuple of label names (a borrowed pointer).
    #[inline(always)]
    pub fn children(&self) -> Option<(&Py<Children>, *mut pyo3::ffi::PyObject)> {
        let state = self.state.get()?;
        Some((state.children.as_ref()?, state.labelnames.as_ptr()))
    }

    /// The family to render natively, or None when Python must produce the samples.
    pub fn native_family(&self, _py: Python<'_>) -> Option<&Arc<Family>> {
        let state = self.state.get()?;
        let family = state.family.as_ref()?;
        (state.renders_natively && !family.needs_python()).then_some(family)
    }

    fn init_parent(&self, slf: &Bound<'_, PyAny>) -> PyResult<Py<Children>> {
        let (family, renders_natively) = build_family(slf, self.kind)?;
        let children = Py::new(
            slf.py(),
            Children::new(family.clone(), slf.clone().unbind()),
        )?;
        let state = State {
            family: Some(family),
            child: None,
            children: Some(children.clone_ref(slf.py())),
            labelnames: slf
                .getattr(intern!(slf.py(), "_labelnames"))?
                .cast_into::<PyTuple>()?
                .unbind(),
            most_recent: is_most_recent(slf, self.kind)?,
            renders_natively,
            multiprocess: multiprocess_spec(slf, self.kind)?,
        };
        set_state(self, state)?;
        Ok(children)
    }

    fn init_child(&self, slf: &Bound<'_, PyAny>, created: f64) -> PyResult<()> {
        let labels: Vec<String> = slf.getattr(intern!(slf.py(), "_labelvalues"))?.extract()?;
        let top_level = labels.is_empty();
        let multiprocess = multiprocess_spec(slf, self.kind)?;
        // Only multiprocess keys name the labels.
        let labelnames: Vec<String> = match multiprocess {
            Some(_) => slf.getattr(intern!(slf.py(), "_labelnames"))?.extract()?,
            None => Vec::new(),
        };
        let plan = Arc::new(ObservationsPlan::new(
            &upper_bounds(slf, self.kind)?,
            native_config(slf, self.kind)?,
            quantile_spec(slf, self.kind)?,
        ));
        let child = Arc::new(
            cells(
                self.kind,
                multiprocess.as_deref(),
                &labelnames,
                &labels,
                &plan,
                created,
            )
            .map_err(multiprocess_file_error)?,
        );
        let (family, renders_natively) = if top_level {
            let (family, native) = build_family(slf, self.kind)?;
            family.insert(child.clone());
            (Some(family), native)
        } else {
            (None, true)
        };
        let state = State {
            family,
            child: Some(child),
            children: None,
            labelnames: slf
                .getattr(intern!(slf.py(), "_labelnames"))?
                .cast_into::<PyTuple>()?
                .unbind(),
            most_recent: is_most_recent(slf, self.kind)?,
            renders_natively,
            multiprocess,
        };
        set_state(self, state)
    }

    /// The child for these label values, found or made natively; anything else (a new child
    /// of a subclass, or a call that raises) goes to the Python `labels`.
    fn labels<'py>(
        &self,
        slf: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(State {
            children: Some(children),
            labelnames,
            ..
        }) = self.state.get()
        {
            let py = slf.py();
            let key = match kwargs.filter(|kw| !kw.is_empty()) {
                None => positional_key(args, labelnames.bind(py).len())?,
                Some(kw) if args.is_empty() => keyword_key(kw, labelnames.bind(py))?,
                Some(_) => None,
            };
            if let Some(key) = key {
                let strings = key
                    .iter()
                    .map(|v| Ok(v.cast_into::<PyString>()?))
                    .collect::<PyResult<Vec<_>>>()?;
                let values = strings
                    .iter()
                    .map(|v| v.to_str())
                    .collect::<PyResult<Vec<&str>>>()?;
                let children = children.bind(py);
                if let Some(child) = Children::labels(children, slf, &values)? {
                    return Ok(child);
                }
            }
        }
        slf.call_method("_labels_slow", args.clone(), kwargs)
    }

    /// When a new child of this parent is created.
    pub fn creation_time(&self, py: Python<'_>) -> PyResult<f64> {
        match self.kind {
            Kind::Gauge => Ok(0.0),
            _ => python::time_now(py),
        }
    }

    /// The cells of a new child of this parent labelled `values` (in multiprocess mode,
    /// entries of this process's file).
    pub fn new_cells(&self, values: &[&str], created: f64) -> std::io::Result<Child> {
        let Some(state) = self.state.get() else {
            return Err(std::io::Error::other("metric is not initialised"));
        };
        let Some(family) = &state.family else {
            return Err(std::io::Error::other("not a labelled metric"));
        };
        cells(
            self.kind,
            state.multiprocess.as_deref(),
            &family.labelnames,
            values,
            family.observations_plan(),
            created,
        )
    }

    /// A child object of this parent (`slf`) for `child`'s cells: one of the four classes,
    /// made without its Python constructor, with the parent's attributes (as the constructor
    /// would set them), its label values made at their first use.
    pub fn new_handle<'py>(
        &self,
        slf: &Bound<'py, PyAny>,
        owner: &Bound<'py, Children>,
        child: Arc<Child>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let state = self.state()?;
        let handle = new_instance(py, self.kind)?;
        let child_state = State {
            family: None,
            child: Some(child),
            children: None,
            labelnames: state.labelnames.clone_ref(py),
            most_recent: state.most_recent,
            renders_natively: true,
            multiprocess: state.multiprocess.clone(),
        };
        if let Some(core) = metric_core(&handle) {
            set_state(core, child_state)?;
            core.attributes.share(self.child_attributes(slf)?);
            let _ = core.owner.set(owner.clone().unbind());
        }
        Ok(handle)
    }

    fn sample_value(
        &self,
        py: Python<'_>,
        name: &str,
        labels: &Bound<'_, PyDict>,
    ) -> PyResult<(Option<bool>, Option<f64>)> {
        let Some(family) = self.native_family(py) else {
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
        let value = find_sample(family, python::use_created(py)?, name, &pairs);
        Ok((Some(value.is_some()), value))
    }

    fn child_samples<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let child = self.child()?;
        let mut samples = Vec::new();
        let mut failure = None;
        child.visit(python::use_created(py)?, &mut |s| {
            let labels = PyDict::new(py);
            if let Some((name, value)) = s.bucket.and_then(|b| child.bucket_label(b)) {
                if let Err(e) = labels.set_item(name, value) {
                    failure = Some(e);
                }
            }
            let exemplar = s
                .exemplar
                .map(|e| (e, self.exemplar_amount(py, s.bucket.unwrap_or(0))));
            match python::sample(py, s.suffix, labels, s.value, exemplar) {
                Ok(sample) => samples.push(sample),
                Err(e) => failure = Some(e),
            }
        });
        match failure {
            Some(e) => Err(e),
            None => PyTuple::new(py, samples),
        }
    }

    /// A view of one of the child's cells, if this kind has it (else the reference's
    /// AttributeError, as for a labelled parent).
    fn view(
        &self,
        slf: &Bound<'_, PyAny>,
        attribute: &str,
        kinds: &[Kind],
        part: Part,
    ) -> PyResult<ValueView> {
        if !kinds.contains(&self.kind) {
            return Err(missing_attribute(slf, attribute));
        }
        Ok(ValueView::new(self.child_or_missing(slf, attribute)?, part))
    }

    fn buckets<'py>(&self, slf: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let child = self.child_or_missing(slf, "_buckets")?;
        let ChildValue::Histogram(h) = &child.value else {
            return Err(missing_attribute(slf, "_buckets"));
        };
        let views = (0..h.bounds().len())
            .map(|i| Bound::new(slf.py(), ValueView::new(child.clone(), Part::Bucket(i))));
        PyList::new(slf.py(), views.collect::<PyResult<Vec<_>>>()?)
    }

    fn created(&self, slf: &Bound<'_, PyAny>) -> PyResult<f64> {
        if self.kind == Kind::Gauge {
            return Err(missing_attribute(slf, "_created"));
        }
        Ok(self.child_or_missing(slf, "_created")?.created())
    }

    /// The child, or the AttributeError the reference raises for value attributes of a parent.
    fn child_or_missing(&self, slf: &Bound<'_, PyAny>, attribute: &str) -> PyResult<Arc<Child>> {
        self.state
            .get()
            .and_then(|s| s.child.clone())
            .ok_or_else(|| missing_attribute(slf, attribute))
    }

    fn set_exemplar(
        &self,
        py: Python<'_>,
        slot: usize,
        labels: Option<&Bound<'_, PyAny>>,
        amount: Py<PyAny>,
        value: f64,
    ) -> PyResult<()> {
        if let Some(labels) = labels.filter(|e| e.is_truthy().unwrap_or(false)) {
            let exemplar = exemplar_from_python(py, labels, value, python::time_now(py)?)?;
            self.store_exemplar(py, slot, exemplar, amount)?;
        }
        Ok(())
    }

    /// Keeps `exemplar` in `slot`, with the amount as passed (what `collect()` returns).
    fn store_exemplar(
        &self,
        py: Python<'_>,
        slot: usize,
        exemplar: Exemplar,
        amount: Py<PyAny>,
    ) -> PyResult<()> {
        let amounts = self.exemplar_amounts.get_or_init(Box::default);
        let mut amounts = amounts.lock().unwrap_or_else(|e| e.into_inner());
        if amounts.len() <= slot {
            amounts.resize_with(slot + 1, || None);
        }
        let replaced = amounts[slot].replace(amount);
        drop(amounts);
        // Freed after unlocking: a finalizer runs Python, which may hand the GIL to a
        // thread that forks, and no lock may be held then (see core::fork).
        drop(replaced);
        self.child()?.set_exemplar(slot, exemplar);
        // The amount lives in this object only.
        self.pin(py);
        Ok(())
    }

    fn exemplar_amount(&self, py: Python<'_>, slot: usize) -> Option<Py<PyAny>> {
        let amounts = self
            .exemplar_amounts
            .get()?
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        amounts
            .get(slot)
            .and_then(|a| a.as_ref())
            .map(|a| a.clone_ref(py))
    }
}

/// Observes every value of `values`: a buffer of float64 or float32 (a numpy array, read in
/// place when contiguous), or any iterable of numbers. A bad element raises what `observe`
/// would, after the elements before it were recorded (and, like `Summary.observe`, counted
/// itself when `count_failed`).
fn observe_batch(
    h: &ObservationCells,
    values: &Bound<'_, PyAny>,
    count_failed: bool,
) -> PyResult<()> {
    // SAFETY: `values` is a live object; PyObject_CheckBuffer only reads its type.
    if unsafe { pyo3::ffi::PyObject_CheckBuffer(values.as_ptr()) } != 0 {
        if let Ok(buffer) = PyBuffer::<f64>::get(values) {
            return observe_buffer(h, &buffer, values.py());
        }
        if let Ok(buffer) = PyBuffer::<f32>::get(values) {
            return observe_buffer(h, &buffer, values.py());
        }
    }
    let mut batch = Vec::with_capacity(1024);
    for item in values.try_iter()? {
        match amount::to_f64(&item?) {
            Ok(v) => batch.push(v),
            Err(e) => {
                h.observe_many(&batch);
                if count_failed {
                    h.add_observations(1);
                }
                return Err(e);
            }
        }
        if batch.len() == batch.capacity() {
            h.observe_many(&batch);
            batch.clear();
        }
    }
    h.observe_many(&batch);
    Ok(())
}

fn observe_buffer<T: pyo3::buffer::Element + Copy + Into<f64>>(
    h: &ObservationCells,
    buffer: &PyBuffer<T>,
    py: Python<'_>,
) -> PyResult<()> {
    match buffer.as_slice_ptr() {
        // SAFETY: the buffer stays exported while we read it, and no Python code runs meanwhile.
        Some(values) => h.observe_many(unsafe { values.as_ref() }),
        None => h.observe_many(&buffer.to_vec(py)?),
    }
    Ok(())
}

/// Records a Timer's duration straight into the cells when `metric` is one of the four classes
/// itself (a subclass may override the callback) and `callback` is what `time()` passes.
pub fn record_duration(
    metric: &Bound<'_, PyAny>,
    callback: &Bound<'_, PyString>,
    seconds: f64,
) -> bool {
    if !is_native_class(metric) {
        return false;
    }
    let Some(child) = metric_core(metric).and_then(|core| core.observable_child()) else {
        return false;
    };
    match (&child.value, callback.to_str()) {
        (ChildValue::Histogram(h) | ChildValue::Summary(h), Ok("observe")) => h.observe(seconds),
        (ChildValue::Gauge(_), Ok("set")) => child.set(seconds),
        _ => return false,
    }
    true
}

/// `setattr` (`delattr` when `value` is None) on a metric: its attribute store.
fn set_attribute(
    obj: &Bound<'_, PyAny>,
    core: &MetricCore,
    name: &Bound<'_, PyAny>,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let exact = is_native_class(obj);
    attributes::set_attribute(obj, &core.attributes, exact, name, value)?;
    core.pin(obj.py());
    Ok(())
}

/// Whether `obj`'s class is one of the four (not a subclass).
pub fn is_native_class(obj: &Bound<'_, PyAny>) -> bool {
    use pyo3::PyTypeInfo;
    let py = obj.py();
    // SAFETY: reading the type pointer of a live object.
    let class = unsafe { pyo3::ffi::Py_TYPE(obj.as_ptr()) };
    class == Counter::type_object_raw(py)
        || class == Gauge::type_object_raw(py)
        || class == Histogram::type_object_raw(py)
        || class == Summary::type_object_raw(py)
}

/// A new, uninitialised instance of the class of `kind` (no Python constructor runs).
fn new_instance(py: Python<'_>, kind: Kind) -> PyResult<Bound<'_, PyAny>> {
    let core = MetricCore::new(kind);
    Ok(match kind {
        Kind::Counter => Bound::new(py, Counter { core })?.into_any(),
        Kind::Gauge => Bound::new(py, Gauge { core })?.into_any(),
        Kind::Summary => Bound::new(py, Summary { core })?.into_any(),
        Kind::Histogram => Bound::new(py, Histogram { core })?.into_any(),
    })
}

/// The attribute store of a fastprom metric object.
pub fn attributes_of<'a>(obj: &'a Bound<'_, PyAny>) -> Option<&'a Attributes> {
    metric_core(obj).map(|core| &core.attributes)
}

/// The four metric classes, for code generic over them.
pub trait HasCore {
    fn core(&self) -> &MetricCore;
}

/// The core of any fastprom metric object (an instance of one of the four classes or of a
/// subclass).
pub fn metric_core<'a>(obj: &'a Bound<'_, PyAny>) -> Option<&'a MetricCore> {
    if let Ok(c) = obj.cast::<Counter>() {
        return Some(&c.get().core);
    }
    if let Ok(g) = obj.cast::<Gauge>() {
        return Some(&g.get().core);
    }
    if let Ok(h) = obj.cast::<Histogram>() {
        return Some(&h.get().core);
    }
    obj.cast::<Summary>().ok().map(|s| &s.get().core)
}

fn missing_attribute(slf: &Bound<'_, PyAny>, attribute: &str) -> PyErr {
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

/// The methods every metric class has. They are generated per class (not inherited from a
/// native base) so that each is a method of the instance's exact type.
macro_rules! metric_methods {
    ($class:ident, $kind:expr) => {
        impl HasCore for $class {
            fn core(&self) -> &MetricCore {
                &self.core
            }
        }

        #[pymethods]
        impl $class {
            #[new]
            #[pyo3(signature = (*_args, **_kwargs))]
            fn __new__(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
                $class {
                    core: MetricCore::new($kind),
                }
            }

            /// Sets up a labelled parent; returns its children (Python's `_metrics`).
            fn _init_parent(slf: &Bound<'_, Self>) -> PyResult<Py<Children>> {
                slf.get().core.init_parent(slf.as_any())
            }

            /// Sets up an observable metric (unlabelled, or a child) with its creation time.
            fn _init_child(slf: &Bound<'_, Self>, created: f64) -> PyResult<()> {
                slf.get().core.init_child(slf.as_any(), created)
            }

            /// The full `labels` (`fastcall.rs` installs the fast one as `labels`).
            #[pyo3(name = "_labels", signature = (*args, **kwargs))]
            fn labels<'py>(
                slf: &Bound<'py, Self>,
                args: &Bound<'py, PyTuple>,
                kwargs: Option<&Bound<'py, PyDict>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                slf.get().core.labels(slf.as_any(), args, kwargs)
            }

            /// `(found, value)` of the first sample named `name` with exactly `labels`, read from
            /// the cells; `found` is None when Python must collect this metric instead.
            fn _sample_value(
                &self,
                py: Python<'_>,
                name: &str,
                labels: &Bound<'_, PyDict>,
            ) -> PyResult<(Option<bool>, Option<f64>)> {
                self.core.sample_value(py, name, labels)
            }

            /// From now on this child's samples come from Python (`Gauge.set_function`).
            fn _mark_python_samples(&self) -> PyResult<()> {
                self.core.child()?.set_python_samples();
                Ok(())
            }

            /// The samples of an observable metric: `Sample(suffix, labels, value, None, exemplar)`.
            fn _child_samples<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
                self.core.child_samples(py)
            }

            #[getter]
            fn _value(slf: &Bound<'_, Self>) -> PyResult<ValueView> {
                slf.get().core.view(
                    slf.as_any(),
                    "_value",
                    &[Kind::Counter, Kind::Gauge],
                    Part::Main,
                )
            }

            #[getter]
            fn _sum(slf: &Bound<'_, Self>) -> PyResult<ValueView> {
                slf.get().core.view(
                    slf.as_any(),
                    "_sum",
                    &[Kind::Summary, Kind::Histogram],
                    Part::Sum,
                )
            }

            #[getter]
            fn _count(slf: &Bound<'_, Self>) -> PyResult<ValueView> {
                slf.get()
                    .core
                    .view(slf.as_any(), "_count", &[Kind::Summary], Part::Count)
            }

            #[getter]
            fn _buckets<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyList>> {
                slf.get().core.buckets(slf.as_any())
            }

            #[getter(_labelvalues)]
            fn labelvalues(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
                slf.get().core.labelvalues(slf.as_any())
            }

            #[setter(_labelvalues)]
            fn set_labelvalues(&self, py: Python<'_>, value: Option<Py<PyAny>>) {
                self.core.set_labelvalues(py, value)
            }

            fn __setattr__(
                slf: &Bound<'_, Self>,
                name: &Bound<'_, PyAny>,
                value: &Bound<'_, PyAny>,
            ) -> PyResult<()> {
                set_attribute(slf.as_any(), &slf.get().core, name, Some(value))
            }

            fn __delattr__(slf: &Bound<'_, Self>, name: &Bound<'_, PyAny>) -> PyResult<()> {
                set_attribute(slf.as_any(), &slf.get().core, name, None)
            }

            /// The attributes, as `vars()` shows them (this object's own dict from now on).
            #[getter(__dict__)]
            fn attribute_dict<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
                // The caller may change it: a handle keeps it from now on.
                slf.get().core.pin(slf.py());
                slf.get().core.attributes.own(slf.py())
            }

            fn __traverse__(
                &self,
                visit: pyo3::gc::PyVisit<'_>,
            ) -> Result<(), pyo3::PyTraverseError> {
                self.core.traverse(&visit)
            }

            fn __clear__(&self) {
                self.core.attributes.clear()
            }

            #[getter(_created)]
            fn created(slf: &Bound<'_, Self>) -> PyResult<f64> {
                slf.get().core.created(slf.as_any())
            }

            #[setter(_created)]
            fn set_created(slf: &Bound<'_, Self>, value: f64) -> PyResult<()> {
                slf.get()
                    .core
                    .child_or_missing(slf.as_any(), "_created")?
                    .set_created(value);
                Ok(())
            }
        }
    };
}

/// A Counter tracks counts of events or running totals.
#[pyclass(frozen, subclass, weakref, module = "fastprom.metrics")]
pub struct Counter {
    core: MetricCore,
}

metric_methods!(Counter, Kind::Counter);

#[pymethods]
impl Counter {
    /// Increment by `amount` (default 1); whole amounts take the integer cell.
    #[pyo3(name = "_inc", signature = (amount = Arg::Missing, exemplar = None))]
    fn inc(
        &self,
        py: Python<'_>,
        amount: Arg<'_>,
        exemplar: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let child = self.core.child()?;
        let added = match &amount {
            Arg::Missing => {
                child.counter_inc_int(1);
                1.0
            }
            Arg::Given(a) => match amount::fast(a) {
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
        if exemplar.is_some() {
            let amount = match &amount {
                Arg::Given(a) => a.clone().unbind(),
                Arg::Missing => 1i32.into_pyobject(py)?.into_any().unbind(),
            };
            self.core.set_exemplar(py, 0, exemplar, amount, added)?;
        }
        Ok(())
    }

    /// Reset to zero, for a logical process restart without a real one.
    fn reset(slf: &Bound<'_, Self>) -> PyResult<()> {
        let child = slf.get().core.child_or_missing(slf.as_any(), "_value")?;
        child.set(0.0);
        child.set_created(python::time_now(slf.py())?);
        Ok(())
    }
}

/// Gauge metric, to report instantaneous values.
#[pyclass(frozen, subclass, weakref, module = "fastprom.metrics")]
pub struct Gauge {
    core: MetricCore,
}

metric_methods!(Gauge, Kind::Gauge);

impl Gauge {
    /// The child, after the reference's check that `mostrecent` gauges are never incremented.
    #[inline]
    fn child_for_inc(&self, method: &str) -> PyResult<&Arc<Child>> {
        if self.core.state()?.most_recent {
            return Err(runtime_error(format!(
                "{method} must not be used with the mostrecent mode"
            )));
        }
        self.core.child()
    }
}

#[pymethods]
impl Gauge {
    /// Time a block of code or function (context manager or decorator) and `set` the seconds.
    fn time(slf: &Bound<'_, Self>) -> Timer {
        Timer::for_metric(
            slf.clone().into_any().unbind(),
            intern!(slf.py(), "set").clone().unbind(),
        )
    }

    #[pyo3(name = "_inc", signature = (amount = Arg::Missing))]
    fn inc(&self, amount: Arg<'_>) -> PyResult<()> {
        let child = self.child_for_inc("inc")?;
        child.gauge_add(match &amount {
            Arg::Missing => 1.0,
            Arg::Given(a) => amount::to_f64(a)?,
        });
        Ok(())
    }

    #[pyo3(name = "_dec", signature = (amount = Arg::Missing))]
    fn dec(&self, amount: Arg<'_>) -> PyResult<()> {
        let child = self.child_for_inc("dec")?;
        child.gauge_add(match &amount {
            Arg::Missing => -1.0,
            Arg::Given(a) => match amount::fast(a) {
                Some(Amount::Int(n)) => -(n as f64),
                Some(Amount::Float(f)) => -f,
                None => amount::added_to_zero(&amount::negated(a)?)?,
            },
        });
        Ok(())
    }

    /// In a `mostrecent` mode the time of the update is kept too (multiprocess mode merges by it).
    #[pyo3(name = "_set")]
    fn set(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let child = self.core.child()?;
        let value = amount::float_of(value)?;
        if self.core.set_records_time(child) {
            child.set_at(value, python::coarse_time_now(py)?);
        } else {
            child.set(value);
        }
        Ok(())
    }
}

/// `time()` and `observe_many()` of the classes that observe (Summary and Histogram);
/// `count_failed`: a bad value is still counted, as `Summary.observe` does.
macro_rules! observing_methods {
    ($class:ident, $count_failed:expr) => {
        #[pymethods]
        impl $class {
            /// Time a block of code or function (context manager or decorator) and observe the seconds.
            fn time(slf: &Bound<'_, Self>) -> Timer {
                Timer::for_metric(
                    slf.clone().into_any().unbind(),
                    intern!(slf.py(), "observe").clone().unbind(),
                )
            }

            /// Observe every value (numpy array, list or any iterable), as `observe` one by one would.
            fn observe_many(&self, values: &Bound<'_, PyAny>) -> PyResult<()> {
                match &self.core.child()?.value {
                    ChildValue::Histogram(h) | ChildValue::Summary(h) => {
                        observe_batch(h, values, $count_failed)
                    }
                    _ => Ok(()),
                }
            }
        }
    };
}

/// A Summary tracks the size and number of events.
#[pyclass(frozen, subclass, weakref, module = "fastprom.metrics")]
pub struct Summary {
    core: MetricCore,
}

metric_methods!(Summary, Kind::Summary);

observing_methods!(Summary, true);

#[pymethods]
impl Summary {
    #[pyo3(name = "_observe")]
    fn observe(&self, amount: &Bound<'_, PyAny>) -> PyResult<()> {
        let child = self.core.child()?;
        let ChildValue::Summary(h) = &child.value else {
            return Ok(());
        };
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

/// A Histogram tracks the size and number of events in buckets.
#[pyclass(frozen, subclass, weakref, module = "fastprom.metrics")]
pub struct Histogram {
    core: MetricCore,
}

metric_methods!(Histogram, Kind::Histogram);

observing_methods!(Histogram, false);

/// The first bucket whose bound is `>=` amount by Python's comparison, as the reference picks
/// it: numpy's float32 compares in float32, so `np.float32(0.1)` lands in `le="0.1"`.
fn python_bucket(amount: &Bound<'_, PyAny>, bounds: &[f64]) -> PyResult<Option<usize>> {
    for (i, bound) in bounds.iter().enumerate() {
        if amount.le(*bound)? {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

#[pymethods]
impl Histogram {
    #[pyo3(name = "_observe", signature = (amount, exemplar = None))]
    fn observe(
        &self,
        py: Python<'_>,
        amount: &Bound<'_, PyAny>,
        exemplar: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let child = self.core.child()?;
        let ChildValue::Histogram(h) = &child.value else {
            return Ok(());
        };
        let (v, bucket) = match amount::fast(amount) {
            Some(Amount::Float(v)) => (v, h.bucket_index(v)),
            Some(Amount::Int(i)) => (i as f64, h.bucket_index(i as f64)),
            None => (
                amount::added_to_zero(amount)?,
                python_bucket(amount, h.bounds())?,
            ),
        };
        h.observe_in(bucket, v);
        let Some(labels) = exemplar.filter(|e| e.is_truthy().unwrap_or(false)) else {
            return Ok(());
        };
        // The classic bucket keeps it; native buckets keep exemplars of their own, each with
        // its time (a NaN lands in no classic bucket).
        if bucket.is_none() && h.native().is_none() {
            return Ok(());
        }
        let now = python::time_now(py)?;
        let built = exemplar_from_python(py, labels, v, now)?;
        if let Some(native) = h.native() {
            native.offer_exemplar(v, built.labels.clone(), now);
        }
        if let Some(bucket) = bucket {
            self.core
                .store_exemplar(py, bucket, built, amount.clone().unbind())?;
        }
        Ok(())
    }
}
