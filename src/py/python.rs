//! Python objects the native code calls back into, looked up at call time so that tests can
//! patch them (`time.time`, `fastprom.metrics._use_created`).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule, PyString};

use crate::core::model::Exemplar;
use crate::core::multiprocess::sketch::wall_clock;

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

/// The builtin `time.time` and where it is looked up, so that a replacement is noticed.
struct TimeBuiltin {
    function: Py<PyAny>,
    namespace: Py<PyDict>,
    name: Py<PyString>,
}

static TIME_BUILTIN: PyOnceLock<TimeBuiltin> = PyOnceLock::new();

/// Remembers the builtin `time.time` (called at module import, before tests patch it; anything
/// but a C function is not remembered).
pub fn remember_time_builtin(py: Python<'_>) -> PyResult<()> {
    let module = py.import("time")?;
    let function = module.getattr("time")?;
    if function.is_instance_of::<pyo3::types::PyCFunction>() {
        let builtin = TimeBuiltin {
            function: function.unbind(),
            namespace: module.dict().unbind(),
            name: PyString::intern(py, "time").unbind(),
        };
        let _ = TIME_BUILTIN.set(py, builtin);
    }
    Ok(())
}

/// `time.time()`. The builtin reads CLOCK_REALTIME, as `SystemTime` does, so it is only called
/// when something replaced it (tests patch `time.time`).
pub fn time_now(py: Python<'_>) -> PyResult<f64> {
    if time_is_builtin(py)? {
        if let Ok(since_epoch) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)
        {
            return Ok(since_epoch.as_secs_f64());
        }
    }
    call_time(py)
}

/// The time a `mostrecent` gauge's `set` records: the wall clock at the kernel's tick
/// resolution (a few ns against ~30 for the precise clock on this VM), or the replaced
/// `time.time()`. The multiprocess merge keeps the value with the latest time, so a set one tick
/// later always wins; see the README's multiprocess section for sets within one tick.
pub fn coarse_time_now(py: Python<'_>) -> PyResult<f64> {
    if time_is_builtin(py)? {
        return Ok(wall_clock());
    }
    call_time(py)
}

fn call_time(py: Python<'_>) -> PyResult<f64> {
    py.import("time")?
        .getattr(intern!(py, "time"))?
        .call0()?
        .extract()
}

/// Whether `time.time` is still the builtin remembered at import. Hot paths (`set` of a
/// `mostrecent` gauge, new children) come here, so the `time` module's dict is read directly,
/// with a borrowed reference.
fn time_is_builtin(py: Python<'_>) -> PyResult<bool> {
    let Some(builtin) = TIME_BUILTIN.get(py) else {
        return Ok(false);
    };
    // SAFETY: attached to the interpreter, the dict and key are live objects; the result is a
    // borrowed reference (or null), only compared.
    let found = unsafe {
        pyo3::ffi::PyDict_GetItemWithError(builtin.namespace.as_ptr(), builtin.name.as_ptr())
    };
    if found.is_null() {
        return PyErr::take(py).map_or(Ok(false), Err);
    }
    Ok(found == builtin.function.as_ptr())
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
