//! The binding layer: `fastprom._native`. It only converts between Python and the core.

mod amount;
mod attributes;
mod awaitable;
mod children;
mod decorators;
mod errors;
mod fastcall;
mod fork;
mod metric;
mod multiprocess;
mod parse;
mod python;
mod render;
mod scrape;
mod server;
mod timer;
mod value;

use pyo3::prelude::*;

/// `floatToGoString(d)`: `float(d)` formatted as Go prints floats in the exposition formats.
#[pyfunction]
#[pyo3(name = "floatToGoString")]
fn float_to_go_string(d: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(crate::core::format::float_to_go_string(amount::float_of(
        d,
    )?))
}

/// The schema of client_golang's `NativeHistogramBucketFactor` (the finest whose bucket
/// growth factor stays within `factor`), `None` for a factor of 1 or less.
#[pyfunction]
fn native_histogram_schema(factor: f64) -> Option<i32> {
    crate::core::native_histogram::schema_for_factor(factor)
}

/// The families of a delimited protobuf stream that carry native histograms.
#[pyfunction]
fn native_histogram_families(stream: &[u8]) -> Vec<String> {
    crate::core::protobuf::native_histogram_families(stream)
}

/// An empty native method, the floor the benchmarks measure hot paths against.
#[pyclass(frozen, subclass, module = "fastprom._native")]
struct Floor;

#[pymethods]
impl Floor {
    #[new]
    fn new() -> Floor {
        Floor
    }

    fn noop(&self) {}

    #[pyo3(signature = (amount = None, exemplar = None))]
    fn noop_opt(&self, amount: Option<&Bound<'_, PyAny>>, exemplar: Option<&Bound<'_, PyAny>>) {
        let _ = (amount, exemplar);
    }

    fn noop_bound(slf: &Bound<'_, Self>) {
        let _ = slf.get();
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<metric::Counter>()?;
    m.add_class::<metric::Gauge>()?;
    m.add_class::<metric::Summary>()?;
    m.add_class::<metric::Histogram>()?;
    m.add_class::<children::Children>()?;
    fastcall::install_all(m.py())?;
    python::remember_time_builtin(m.py())?;
    m.add_class::<value::ValueView>()?;
    m.add_class::<timer::Timer>()?;
    decorators::install(m)?;
    m.add_class::<Floor>()?;
    m.add_function(wrap_pyfunction!(float_to_go_string, m)?)?;
    m.add_function(wrap_pyfunction!(native_histogram_schema, m)?)?;
    m.add_function(wrap_pyfunction!(native_histogram_families, m)?)?;
    m.add_function(wrap_pyfunction!(render::generate_text, m)?)?;
    m.add_function(wrap_pyfunction!(render::generate_openmetrics, m)?)?;
    m.add_function(wrap_pyfunction!(render::generate_protobuf, m)?)?;
    m.add_function(wrap_pyfunction!(scrape::negotiate, m)?)?;
    m.add_function(wrap_pyfunction!(scrape::gzip_accepted, m)?)?;
    m.add_function(wrap_pyfunction!(scrape::bake_output, m)?)?;
    m.add_function(wrap_pyfunction!(parse::parse_text, m)?)?;
    m.add_function(wrap_pyfunction!(parse::parse_openmetrics, m)?)?;
    m.add_function(wrap_pyfunction!(parse::parse_labels, m)?)?;
    m.add_class::<parse::LineParser>()?;
    m.add_class::<server::Generation>()?;
    m.add_class::<server::MetricsServer>()?;
    m.add_function(wrap_pyfunction!(server::settings_changed, m)?)?;
    m.add_function(wrap_pyfunction!(server::drain_at_exit, m)?)?;
    fork::install(m)?;
    m.add_function(wrap_pyfunction!(multiprocess::compact_directory, m)?)?;
    m.add_function(wrap_pyfunction!(multiprocess::multiprocess_identity, m)?)?;
    m.add_class::<multiprocess::SharedDirectoryLock>()?;
    m.add_class::<multiprocess::MultiProcessReader>()?;
    m.add_class::<multiprocess::MergedFamilies>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "build_profile",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    Ok(())
}
