//! Python objects the native code calls back into, looked up at call time so that tests can
//! patch them (`time.time`, `fastprom.metrics._use_created`).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};

use crate::core::model::Exemplar;

fn module<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyModule>>,
    name: &str,
) -> PyResult<Bound<'py, PyModule>> {
    Ok(cell
        .get_or_try_init(py, || py.import(name).map(Bound::unbind))?
        .bind(py)
        .clone())
}

fn samples_module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    static CELL: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    module(py, &CELL, "fastprom.samples")
}

static TIME_BUILTIN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Remembers the builtin `time.time` (called at module import, before tests patch it; anything
/// but a C function is not remembered).
pub fn remember_time_builtin(py: Python<'_>) -> PyResult<()> {
    let function = py.import("time")?.getattr("time")?;
    if function.is_instance_of::<pyo3::types::PyCFunction>() {
        let _ = TIME_BUILTIN.set(py, function.unbind());
    }
    Ok(())
}

/// `time.time()`. The builtin reads CLOCK_REALTIME, as `SystemTime` does, so it is only called
/// when something replaced it (tests patch `time.time`). The check reads the `time` module's
/// dict directly: hot paths (`set` of a `mostrecent` gauge, new children) come here.
pub fn time_now(py: Python<'_>) -> PyResult<f64> {
    static TIME_DICT: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    let namespace = TIME_DICT
        .get_or_try_init(py, || -> PyResult<_> {
            Ok(py.import("time")?.dict().unbind())
        })?
        .bind(py);
    let function = match namespace.get_item(intern!(py, "time"))? {
        Some(function) => function,
        None => {
            return py
                .import("time")?
                .getattr(intern!(py, "time"))?
                .call0()?
                .extract()
        }
    };
    if TIME_BUILTIN
        .get(py)
        .is_some_and(|builtin| function.is(builtin.bind(py)))
    {
        if let Ok(since_epoch) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)
        {
            return Ok(since_epoch.as_secs_f64());
        }
    }
    function.call0()?.extract()
}

/// `fastprom.metrics._use_created`.
pub fn use_created(py: Python<'_>) -> PyResult<bool> {
    static CELL: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    module(py, &CELL, "fastprom.metrics")?
        .getattr(intern!(py, "_use_created"))?
        .is_truthy()
}

/// `fastprom.metrics._multiprocess_storage()`: where a metric created now writes its files
/// (directory, and the process part of the file names when `values.ValueClass` fixes it), or
/// `None` for process memory.
pub fn multiprocess_storage(
    py: Python<'_>,
) -> PyResult<Option<(std::path::PathBuf, Option<String>)>> {
    static CELL: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    module(py, &CELL, "fastprom.metrics")?
        .getattr(intern!(py, "_multiprocess_storage"))?
        .call0()?
        .extract()
}

/// `fastprom.validation._validate_exemplar(labels)`.
pub fn validate_exemplar(py: Python<'_>, labels: &Bound<'_, PyAny>) -> PyResult<()> {
    static CELL: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    module(py, &CELL, "fastprom.validation")?
        .getattr(intern!(py, "_validate_exemplar"))?
        .call1((labels,))?;
    Ok(())
}

/// `Exemplar(labels, value, timestamp)` from the core's exemplar; `amount` is the value as it
/// was passed, when known.
pub fn exemplar<'py>(
    py: Python<'py>,
    e: &Exemplar,
    amount: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let labels = PyDict::new(py);
    for (k, v) in &e.labels {
        labels.set_item(k, v)?;
    }
    let timestamp = e.timestamp.as_ref().and_then(|t| t.parse::<f64>().ok());
    let value = match amount {
        Some(a) => a.into_bound(py),
        None => e.value.into_pyobject(py)?.into_any(),
    };
    samples_module(py)?
        .getattr(intern!(py, "Exemplar"))?
        .call1((labels, value, timestamp))
}

/// `Sample(name, labels, value, None, exemplar)`.
pub fn sample<'py>(
    py: Python<'py>,
    name: &str,
    labels: Bound<'py, PyDict>,
    value: f64,
    exemplar: Option<(&Exemplar, Option<Py<PyAny>>)>,
) -> PyResult<Bound<'py, PyAny>> {
    let exemplar = exemplar
        .map(|(e, amount)| self::exemplar(py, e, amount))
        .transpose()?;
    samples_module(py)?.getattr(intern!(py, "Sample"))?.call1((
        name,
        labels,
        value,
        py.None(),
        exemplar,
    ))
}
