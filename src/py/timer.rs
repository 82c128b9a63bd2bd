//! `Timer`, what `Histogram.time()`, `Summary.time()` and `Gauge.time()` return.
//!
//! `with hist.time():` runs `__enter__` and `__exit__` here, without Python frames. The clock is
//! `fastprom.context_managers.default_timer`, looked up at each call as the reference's module
//! global is (tests patch it). Used as a decorator it hands over to Python, which builds the
//! signature-preserving wrapper.

use std::sync::Mutex;
use std::time::Instant;

use pyo3::intern;

use super::metric::record_duration;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule, PyString, PyTuple};

fn context_managers(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    Ok(MODULE
        .get_or_try_init(py, || {
            py.import("fastprom.context_managers").map(Bound::unbind)
        })?
        .bind(py)
        .clone())
}

/// When the clock was read: `time.perf_counter` unpatched is CLOCK_MONOTONIC, which `Instant`
/// reads without a Python call; a patched `default_timer` is called.
#[derive(Clone, Copy)]
enum Mark {
    Monotonic(Instant),
    Value(f64),
}

fn perf_counter(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static FUNCTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    Ok(FUNCTION
        .get_or_try_init(py, || {
            py.import("time")?
                .getattr("perf_counter")
                .map(Bound::unbind)
        })?
        .bind(py))
}

fn mark(py: Python<'_>) -> PyResult<Mark> {
    let clock = context_managers(py)?.getattr(intern!(py, "default_timer"))?;
    if clock.is(perf_counter(py)?) {
        return Ok(Mark::Monotonic(Instant::now()));
    }
    Ok(Mark::Value(clock.call0()?.extract()?))
}

/// Seconds since `start`, read with the clock in place now.
fn elapsed(py: Python<'_>, start: Mark) -> PyResult<f64> {
    Ok(match (start, mark(py)?) {
        (Mark::Monotonic(a), Mark::Monotonic(b)) => b.saturating_duration_since(a).as_secs_f64(),
        // The clock was patched in between: compare the two readings as values.
        (start, end) => value(py, end)? - value(py, start)?,
    })
}

/// A reading as the float `time.perf_counter` would have returned.
fn value(py: Python<'_>, mark: Mark) -> PyResult<f64> {
    match mark {
        Mark::Value(v) => Ok(v),
        Mark::Monotonic(at) => {
            Ok(perf_counter(py)?.call0()?.extract::<f64>()? - at.elapsed().as_secs_f64())
        }
    }
}

#[pyclass(frozen, subclass, module = "fastprom.context_managers")]
pub struct Timer {
    metric: Mutex<Py<PyAny>>,
    callback_name: Py<PyString>,
    start: Mutex<Option<Mark>>,
    duration: Mutex<Option<f64>>,
}

impl Timer {
    pub fn for_metric(metric: Py<PyAny>, callback_name: Py<PyString>) -> Timer {
        Timer {
            metric: Mutex::new(metric),
            callback_name,
            start: Mutex::new(None),
            duration: Mutex::new(None),
        }
    }

    fn metric(&self, py: Python<'_>) -> Py<PyAny> {
        self.metric
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone_ref(py)
    }
}

#[pymethods]
impl Timer {
    #[new]
    fn new(metric: Py<PyAny>, callback_name: Py<PyString>) -> Timer {
        Timer::for_metric(metric, callback_name)
    }

    /// The last measured duration in seconds (None before the first exit).
    #[getter]
    fn duration(&self) -> Option<f64> {
        *self.duration.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[getter]
    fn _metric(&self, py: Python<'_>) -> Py<PyAny> {
        self.metric(py)
    }

    #[getter]
    fn _callback_name(&self, py: Python<'_>) -> Py<PyString> {
        self.callback_name.clone_ref(py)
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<Py<Self>> {
        let start = mark(slf.py())?;
        *slf.get().start.lock().unwrap_or_else(|e| e.into_inner()) = Some(start);
        Ok(slf.clone().unbind())
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _type: &Bound<'_, PyAny>,
        _value: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let start = self
            .start
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(Mark::Value(0.0));
        // Time can go backwards.
        let duration = elapsed(py, start)?.max(0.0);
        *self.duration.lock().unwrap_or_else(|e| e.into_inner()) = Some(duration);
        let metric = self.metric(py).into_bound(py);
        if record_duration(&metric, self.callback_name.bind(py), duration) {
            return Ok(());
        }
        metric.call_method1(self.callback_name.bind(py), (duration,))?;
        Ok(())
    }

    /// Observe into `metric.labels(...)` instead (`with m.time() as t: t.labels(...)`).
    #[pyo3(signature = (*args, **kwargs))]
    fn labels(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let child = self
            .metric(py)
            .call_method(py, intern!(py, "labels"), args.clone(), kwargs)?;
        *self.metric.lock().unwrap_or_else(|e| e.into_inner()) = child;
        Ok(())
    }

    /// A new timer for the same metric (a decorated function gets one per call).
    fn _new_timer<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        slf.get_type().call1((
            this.metric(slf.py()),
            this.callback_name.clone_ref(slf.py()),
        ))
    }

    /// As a decorator: time every call of `f`.
    fn __call__<'py>(slf: &Bound<'py, Self>, f: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let new_timer = slf.getattr(intern!(py, "_new_timer"))?;
        context_managers(py)?
            .getattr(intern!(py, "_decorate_with"))?
            .call1((f, new_timer))
    }
}
