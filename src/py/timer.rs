//! `Timer`, what `Histogram.time()`, `Summary.time()` and `Gauge.time()` return.
//!
//! `with hist.time():` runs `__enter__` and `__exit__` here, without Python frames. The clock is
//! `fastprom.context_managers.default_timer`, looked up at each call as the reference's module
//! global is (tests patch it). Used as a decorator it gives a native `DecoratedFunction`
//! (`decorators.rs`) that times each call with the same clock.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use pyo3::intern;

use super::metric::record_duration;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule, PyString, PyTuple};

pub(super) fn context_managers(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
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
pub(super) enum Mark {
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

pub(super) fn mark(py: Python<'_>) -> PyResult<Mark> {
    let module = context_managers(py)?;
    // The module's dict first: a plain lookup, cheaper than attribute access on the module.
    let clock = match module.dict().get_item(intern!(py, "default_timer"))? {
        Some(clock) => clock,
        None => module.getattr(intern!(py, "default_timer"))?,
    };
    if clock.is(perf_counter(py)?) {
        return Ok(Mark::Monotonic(Instant::now()));
    }
    Ok(Mark::Value(clock.call0()?.extract()?))
}

/// Seconds since `start`, read with the clock in place now.
pub(super) fn elapsed(py: Python<'_>, start: Mark) -> PyResult<f64> {
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

/// A `Mark` in two atomics (a timer is entered and exited on every timed call, so no lock).
#[derive(Default)]
struct MarkCell {
    /// 0: none yet; 1: `Monotonic` (payload: nanoseconds since `anchor()`); 2: `Value` (f64 bits).
    kind: AtomicU8,
    payload: AtomicU64,
}

fn anchor() -> Instant {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    *ANCHOR.get_or_init(Instant::now)
}

impl MarkCell {
    fn store(&self, mark: Mark) {
        let (kind, payload) = match mark {
            Mark::Monotonic(at) => (1, at.saturating_duration_since(anchor()).as_nanos() as u64),
            Mark::Value(v) => (2, v.to_bits()),
        };
        self.payload.store(payload, Ordering::Relaxed);
        self.kind.store(kind, Ordering::Release);
    }

    fn load(&self) -> Option<Mark> {
        let payload = || self.payload.load(Ordering::Relaxed);
        match self.kind.load(Ordering::Acquire) {
            1 => Some(Mark::Monotonic(anchor() + Duration::from_nanos(payload()))),
            2 => Some(Mark::Value(f64::from_bits(payload()))),
            _ => None,
        }
    }
}

/// "No duration yet": durations are never NaN (`max(0.0)` drops it).
const NO_DURATION: u64 = u64::MAX;

#[pyclass(frozen, subclass, module = "fastprom.context_managers")]
pub struct Timer {
    metric: Mutex<Py<PyAny>>,
    callback_name: Py<PyString>,
    start: MarkCell,
    duration: AtomicU64,
}

impl Timer {
    pub fn for_metric(metric: Py<PyAny>, callback_name: Py<PyString>) -> Timer {
        anchor();
        Timer {
            metric: Mutex::new(metric),
            callback_name,
            start: MarkCell::default(),
            duration: AtomicU64::new(NO_DURATION),
        }
    }

    fn metric(&self, py: Python<'_>) -> Py<PyAny> {
        self.metric
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone_ref(py)
    }

    /// Hands `seconds` to the metric's callback (natively when the metric is a native class).
    pub(super) fn record(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        let metric = self.metric(py).into_bound(py);
        if record_duration(&metric, self.callback_name.bind(py), seconds) {
            return Ok(());
        }
        metric.call_method1(self.callback_name.bind(py), (seconds,))?;
        Ok(())
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
        let bits = self.duration.load(Ordering::Relaxed);
        (bits != NO_DURATION).then(|| f64::from_bits(bits))
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
        slf.get().start.store(mark(slf.py())?);
        Ok(slf.clone().unbind())
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _type: &Bound<'_, PyAny>,
        _value: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let start = self.start.load().unwrap_or(Mark::Value(0.0));
        // Time can go backwards.
        let duration = elapsed(py, start)?.max(0.0);
        self.duration.store(duration.to_bits(), Ordering::Relaxed);
        self.record(py, duration)
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
        // The old metric is freed after the lock is released (a finalizer may run Python).
        let old = std::mem::replace(
            &mut *self.metric.lock().unwrap_or_else(|e| e.into_inner()),
            child,
        );
        drop(old);
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

    /// As a decorator: time every call of `f` (a native wrapper for a plain function, see
    /// `decorators.rs`; a coroutine function gets an `async def` that times the awaited call).
    fn __call__<'py>(slf: &Bound<'py, Self>, f: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let new_timer = slf.getattr(intern!(py, "_new_timer"))?;
        context_managers(py)?
            .getattr(intern!(py, "_decorate_native"))?
            .call1((f, slf, new_timer))
    }
}
