//! `generate_latest` for both formats.
//!
//! Under the GIL, the registry's collectors are turned into render items: native metrics as
//! views of their families, everything else (custom collectors, `set_function` gauges, Info,
//! Enum) converted from the `Metric` objects their `collect()` returns. The GIL is then
//! released while the writer streams all items into one buffer.

use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

use super::amount;
use super::errors::{value_error, Error};
use super::metric::metric_core;
use super::multiprocess::MergedFamilies;
use super::python;
use crate::core::multiprocess::merge::MergedFamily;
use std::cell::Cell;
use std::sync::Arc;

use crate::core::family::{Family, FamilyView};
use crate::core::model::{
    Escaping, Exemplar, FamilySource, MetricType, NativeHistogram, OwnedFamily, OwnedSample,
    RenderError, Sample, SampleTimestamp,
};
use crate::core::{fork, openmetrics, protobuf, text};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Text,
    /// OpenMetrics; `true` when the version emits native histograms (>= 2.0.0).
    OpenMetrics(bool),
    /// Prometheus' delimited protobuf, native histograms included.
    Protobuf,
}

/// A family to render: a native metric's (its children are read later, without the GIL), or
/// one converted from Python.
#[derive(Clone)]
pub(super) enum Item {
    Native(Arc<Family>, bool),
    Owned(OwnedFamily),
    Merged(MergedFamily),
}

enum Source {
    View(FamilyView),
    Owned(OwnedFamily),
    Merged(MergedFamily),
}

impl Source {
    fn of(item: Item) -> Source {
        match item {
            Item::Native(family, use_created) => Source::View(FamilyView::new(family, use_created)),
            Item::Owned(family) => Source::Owned(family),
            Item::Merged(family) => Source::Merged(family),
        }
    }

    fn family(&self) -> &dyn FamilySource {
        match self {
            Source::View(view) => view,
            Source::Owned(family) => family,
            Source::Merged(family) => family,
        }
    }
}

/// Prometheus text format (0.0.4 / 1.0.0) of any object with `collect()`.
#[pyfunction]
pub fn generate_text<'py>(
    py: Python<'py>,
    registry: &Bound<'py, PyAny>,
    escaping: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    render(py, registry, Escaping::parse(escaping), Format::Text)
}

/// OpenMetrics text of any object with `collect()`.
#[pyfunction]
pub fn generate_openmetrics<'py>(
    py: Python<'py>,
    registry: &Bound<'py, PyAny>,
    escaping: &str,
    native_histograms: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    render(
        py,
        registry,
        Escaping::parse(escaping),
        Format::OpenMetrics(native_histograms),
    )
}

/// Prometheus' delimited protobuf (`io.prometheus.client.MetricFamily`) of any object with
/// `collect()`, native histograms included.
#[pyfunction]
pub fn generate_protobuf<'py>(
    py: Python<'py>,
    registry: &Bound<'py, PyAny>,
    escaping: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    render(py, registry, Escaping::parse(escaping), Format::Protobuf)
}

pub(super) fn render<'py>(
    py: Python<'py>,
    registry: &Bound<'py, PyAny>,
    escaping: Escaping,
    format: Format,
) -> PyResult<Bound<'py, PyBytes>> {
    let items = gather(py, registry, format)?;
    // `try_with`: a thread's locals are gone while it exits; it renders in a fresh buffer then.
    let mut out = RENDER_BUFFER.try_with(Cell::take).unwrap_or_default();
    out.clear();
    let written = py.detach(|| write_items_into(&mut out, items, escaping, format));
    let bytes = written.map(|()| PyBytes::new(py, &out));
    if out.capacity() <= KEPT_BUFFER_LIMIT {
        let _ = RENDER_BUFFER.try_with(|kept| kept.set(out));
    }
    bytes.map_err(|e| PyErr::from(Error::from(e)))
}

/// The largest render buffer a thread keeps between renders.
const KEPT_BUFFER_LIMIT: usize = 256 << 20;

thread_local! {
    /// The buffer of this thread's last render, reused by its next one (the bytes are copied
    /// out). A buffer grown afresh for every scrape costs more than its lines: once it passes
    /// glibc's largest mmap threshold (32 MiB) every scrape maps it anew and faults each page
    /// in, and it is copied at every doubling.
    static RENDER_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Writes the items into one buffer; runs without the GIL.
pub(super) fn write_items(
    items: Vec<Item>,
    escaping: Escaping,
    format: Format,
) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::with_capacity(4096);
    write_items_into(&mut out, items, escaping, format)?;
    Ok(out)
}

fn write_items_into(
    out: &mut Vec<u8>,
    items: Vec<Item>,
    escaping: Escaping,
    format: Format,
) -> Result<(), RenderError> {
    // Snapshots of children, exemplars and histograms take their locks.
    let _fork_guard = fork::guard();
    let sources: Vec<Source> = items.into_iter().map(Source::of).collect();
    let sources: Vec<&dyn FamilySource> = sources.iter().map(Source::family).collect();
    match format {
        Format::Text => text::write_text(out, &sources, escaping),
        Format::OpenMetrics(nh) => openmetrics::write_openmetrics(out, &sources, escaping, nh),
        Format::Protobuf => {
            protobuf::write_protobuf(out, &sources, escaping);
            Ok(())
        }
    }
}

/// Render items in collection order. Our registry offers `_render_plan()`: its native metrics
/// as they are and the metrics of every other collector already collected.
pub(super) fn gather(
    py: Python<'_>,
    registry: &Bound<'_, PyAny>,
    format: Format,
) -> PyResult<Vec<Item>> {
    let use_created = python::use_created(py)?;
    let plan = if registry.hasattr("_render_plan")? {
        registry.call_method0("_render_plan")?
    } else {
        registry.call_method0("collect")?
    };
    let mut items = Vec::new();
    for entry in plan.try_iter()? {
        let entry = entry?;
        if let Some(core) = metric_core(&entry) {
            if let Some(family) = core.native_family(py) {
                items.push(Item::Native(family.clone(), use_created));
                continue;
            }
            for metric in entry.call_method0("collect")?.try_iter()? {
                items.push(Item::Owned(convert(&metric?, format)?));
            }
            continue;
        }
        if let Ok(merged) = entry.cast::<MergedFamilies>() {
            items.extend(merged.get().take().into_iter().map(Item::Merged));
            continue;
        }
        items.push(Item::Owned(convert(&entry, format)?));
    }
    Ok(items)
}

/// Converts a Python `Metric`; an error gets the metric appended to its args, as the
/// reference's writers do.
fn convert(metric: &Bound<'_, PyAny>, format: Format) -> PyResult<OwnedFamily> {
    convert_metric(metric, format).inspect_err(|err| {
        let py = metric.py();
        let value = err.value(py);
        let appended = value.getattr(intern!(value.py(), "args")).and_then(|args| {
            let args = args.cast_into::<PyTuple>()?;
            let base = if args.is_empty() {
                PyTuple::new(py, [""])?
            } else {
                args
            };
            base.add(PyTuple::new(py, [metric])?)
        });
        if let Ok(args) = appended {
            let _ = value.setattr("args", args);
        }
    })
}

fn convert_metric(metric: &Bound<'_, PyAny>, format: Format) -> PyResult<OwnedFamily> {
    let name: String = metric.getattr(intern!(metric.py(), "name"))?.extract()?;
    let documentation = str_for_replace(&metric.getattr(intern!(metric.py(), "documentation"))?)?;
    let type_name: String = metric.getattr(intern!(metric.py(), "type"))?.extract()?;
    let metric_type = MetricType::parse(&type_name)
        .ok_or_else(|| value_error(format!("Invalid metric type: {type_name}")))?;
    let unit = metric.getattr(intern!(metric.py(), "unit"))?;
    let unit = if unit.is_truthy()? {
        unit.str()?.to_string()
    } else {
        String::new()
    };
    let mut family = OwnedFamily {
        name,
        documentation,
        metric_type,
        unit,
        samples: Vec::new(),
    };
    for sample in metric
        .getattr(intern!(metric.py(), "samples"))?
        .try_iter()?
    {
        if let Some(s) = convert_sample(&family, &sample?, format)? {
            family.samples.push(s);
        }
    }
    Ok(family)
}

/// One sample, checked in the order the reference's writers touch its fields; `None` when the
/// format skips it (a native histogram before OpenMetrics 2.0.0).
fn convert_sample(
    family: &OwnedFamily,
    s: &Bound<'_, PyAny>,
    format: Format,
) -> PyResult<Option<OwnedSample>> {
    let name: String = s.getattr(intern!(s.py(), "name"))?.extract()?;
    let labels = label_pairs(&s.getattr(intern!(s.py(), "labels"))?)?;
    let mut sample = OwnedSample {
        name,
        labels,
        value: None,
        timestamp: None,
        exemplar: None,
        native_histogram: None,
    };
    let timestamp = s.getattr(intern!(s.py(), "timestamp"))?;
    let native_histogram = s.getattr(intern!(s.py(), "native_histogram"))?;
    match format {
        Format::Text => {
            if !timestamp.is_none() {
                sample.timestamp = Some(SampleTimestamp {
                    millis: millis(&timestamp)?,
                    openmetrics: String::new(),
                });
            }
            sample.value = Some(amount::float_of(&s.getattr(intern!(s.py(), "value"))?)?);
        }
        Format::OpenMetrics(_) | Format::Protobuf => {
            let emit_native_histograms =
                matches!(format, Format::OpenMetrics(true) | Format::Protobuf);
            let exemplar = s.getattr(intern!(s.py(), "exemplar"))?;
            if exemplar.is_truthy()? {
                check_exemplar_allowed(family, &sample)?;
                sample.exemplar = Some(convert_exemplar(&exemplar)?);
            }
            if !timestamp.is_none() {
                let millis = match format {
                    Format::Protobuf => millis(&timestamp)?,
                    _ => String::new(),
                };
                sample.timestamp = Some(SampleTimestamp {
                    millis,
                    openmetrics: timestamp.str()?.to_string(),
                });
            }
            if native_histogram.is_truthy()? {
                if !emit_native_histograms {
                    return Ok(None);
                }
                sample.native_histogram = Some(convert_native_histogram(
                    family,
                    &sample,
                    &native_histogram,
                )?);
            } else {
                let value = s.getattr(intern!(s.py(), "value"))?;
                if !value.is_none() {
                    sample.value = Some(amount::float_of(&value)?);
                }
            }
        }
    }
    Ok(Some(sample))
}

fn check_exemplar_allowed(family: &OwnedFamily, sample: &OwnedSample) -> PyResult<()> {
    let view = Sample {
        name: &sample.name,
        suffix: "",
        labels: &[],
        value: None,
        timestamp: None,
        exemplar: None,
        native_histogram: None,
    };
    if openmetrics::exemplar_allowed(family.metric_type, &family.name, &view) {
        Ok(())
    } else {
        Err(value_error(format!(
            "Metric {} has exemplars, but is not a histogram bucket or counter",
            family.name
        )))
    }
}

/// A label dict as sorted pairs; keys must have a length and values `.replace`, as in the
/// reference.
fn label_pairs(labels: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    if labels.is_none() || !labels.is_truthy()? {
        return Ok(Vec::new());
    }
    let dict = labels.cast::<PyDict>()?;
    let all_str = dict
        .iter()
        .all(|(k, v)| k.is_instance_of::<PyString>() && v.is_instance_of::<PyString>());
    if all_str {
        let mut pairs: Vec<(String, String)> = dict
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        pairs.sort();
        return Ok(pairs);
    }
    // Sorted by Python first, then checked pair by pair: the first bad pair in sorted order raises.
    let items = labels.call_method0("items")?;
    let sorted = labels
        .py()
        .import("builtins")?
        .getattr("sorted")?
        .call1((items,))?;
    let mut pairs = Vec::new();
    for item in sorted.try_iter()? {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        let key = k.cast::<PyString>().map_err(|_| {
            let type_name = type_name(&k);
            PyTypeError::new_err(format!("object of type '{type_name}' has no len()"))
        })?;
        pairs.push((key.to_string(), str_for_replace(&v)?));
    }
    Ok(pairs)
}

/// A `str`, or the AttributeError the reference gets when it calls `.replace` on anything else.
fn str_for_replace(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    match obj.cast::<PyString>() {
        Ok(s) => Ok(s.to_string()),
        Err(_) => Err(PyAttributeError::new_err(format!(
            "'{}' object has no attribute 'replace'",
            type_name(obj)
        ))),
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// `int(float(ts) * 1000)` in decimal.
fn millis(timestamp: &Bound<'_, PyAny>) -> PyResult<String> {
    let ms = amount::float_of(timestamp)? * 1000.0;
    if ms.is_finite() && ms.abs() < 9.0e18 {
        return Ok((ms.trunc() as i64).to_string());
    }
    // Python's int() gives the exact digits of huge floats and the errors for inf and NaN.
    let py = timestamp.py();
    Ok(py
        .get_type::<pyo3::types::PyInt>()
        .call1((ms,))?
        .str()?
        .to_string())
}

fn convert_exemplar(exemplar: &Bound<'_, PyAny>) -> PyResult<Exemplar> {
    let labels = label_pairs(&exemplar.getattr(intern!(exemplar.py(), "labels"))?)?;
    let value = amount::float_of(&exemplar.getattr(intern!(exemplar.py(), "value"))?)?;
    let timestamp = exemplar.getattr(intern!(exemplar.py(), "timestamp"))?;
    let timestamp = if timestamp.is_none() {
        None
    } else {
        Some(timestamp.str()?.to_string())
    };
    Ok(Exemplar {
        labels,
        value,
        timestamp,
    })
}

/// The `{count:..,sum:..,...}` value, numbers printed with Python's `str()`.
fn convert_native_histogram(
    family: &OwnedFamily,
    sample: &OwnedSample,
    nh: &Bound<'_, PyAny>,
) -> PyResult<NativeHistogram> {
    let field = |name: &str| -> PyResult<String> { Ok(nh.getattr(name)?.str()?.to_string()) };
    let mut body = format!(
        "{{count:{},sum:{},schema:{},zero_threshold:{},zero_count:{}",
        field("count_value")?,
        field("sum_value")?,
        field("schema")?,
        field("zero_threshold")?,
        field("zero_count")?
    );
    for (sign, spans, deltas) in [
        ("negative", "neg_spans", "neg_deltas"),
        ("positive", "pos_spans", "pos_deltas"),
    ] {
        let spans = nh.getattr(spans)?;
        if !spans.is_truthy()? {
            continue;
        }
        let spans = spans
            .try_iter()?
            .map(|span| {
                let span = span?;
                Ok(format!(
                    "{}:{}",
                    span.get_item(0)?.str()?,
                    span.get_item(1)?.str()?
                ))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let deltas = nh
            .getattr(deltas)?
            .try_iter()?
            .map(|d| Ok(d?.str()?.to_string()))
            .collect::<PyResult<Vec<_>>>()?;
        body.push_str(&format!(
            ",{sign}_spans:[{}],{sign}_deltas:[{}]",
            spans.join(","),
            deltas.join(",")
        ));
    }
    body.push('}');
    let mut exemplars = Vec::new();
    let nh_exemplars = nh.getattr(intern!(nh.py(), "nh_exemplars"))?;
    if nh_exemplars.is_truthy()? {
        for e in nh_exemplars.try_iter()? {
            check_exemplar_allowed(family, sample)?;
            exemplars.push(convert_exemplar(&e?)?);
        }
    }
    Ok(NativeHistogram { body, exemplars })
}
