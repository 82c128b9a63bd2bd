//! The answer to a metrics request, shared by the native server and the WSGI, ASGI, aiohttp,
//! Django and Twisted apps (`fastprom.exposition._bake_output`): negotiation and the gzip
//! choice in the core, rendering by `render`, compression here.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use super::render::{render, Format};
use crate::core::model::Escaping;
use crate::core::negotiate as core;
use crate::core::negotiate::{Incomparable, Kind, Negotiated};

/// `(status, headers, body)` of a metrics page.
pub type Baked = (String, Vec<(String, String)>, Vec<u8>);
type BakedForPython<'py> = (String, Vec<(String, String)>, Bound<'py, PyBytes>);

/// The format an `Accept` header asks for: `(kind, escaping, OpenMetrics version or None,
/// Content-Type)`. A version Python cannot compare raises Python's own `TypeError`.
#[pyfunction]
#[pyo3(signature = (accept = None))]
pub fn negotiate(
    py: Python<'_>,
    accept: Option<&str>,
) -> PyResult<(&'static str, &'static str, Option<String>, String)> {
    let chosen = chosen(py, accept)?;
    let kind = match chosen.kind {
        Kind::Text => "text",
        Kind::OpenMetrics => "openmetrics",
        Kind::Protobuf => "protobuf",
    };
    Ok((kind, chosen.escaping, chosen.version, chosen.content_type))
}

/// Whether an `Accept-Encoding` header lists gzip.
#[pyfunction]
#[pyo3(signature = (accept_encoding = None))]
pub fn gzip_accepted(accept_encoding: Option<&str>) -> bool {
    core::gzip_accepted(accept_encoding.unwrap_or(""))
}

/// `fastprom.exposition._bake_output`: the metrics page for these request headers.
#[pyfunction]
#[pyo3(signature = (registry, accept, accept_encoding, names, disable_compression))]
pub fn bake_output<'py>(
    py: Python<'py>,
    registry: &Bound<'py, PyAny>,
    accept: Option<&str>,
    accept_encoding: Option<&str>,
    names: Option<&Bound<'py, PyAny>>,
    disable_compression: bool,
) -> PyResult<BakedForPython<'py>> {
    let restricted;
    let registry = match names {
        Some(names) => {
            restricted = registry.call_method1("restricted_registry", (names,))?;
            &restricted
        }
        None => registry,
    };
    let chosen = chosen(py, accept)?;
    let body = render_chosen(py, registry, &chosen)?;
    let mut headers = vec![("Content-Type".to_string(), chosen.content_type)];
    if disable_compression || !core::gzip_accepted(accept_encoding.unwrap_or("")) {
        return Ok(("200 OK".to_string(), headers, body));
    }
    headers.push(("Content-Encoding".to_string(), "gzip".to_string()));
    let plain = body.as_bytes();
    let compressed = py.detach(|| gzip(plain));
    Ok(("200 OK".to_string(), headers, PyBytes::new(py, &compressed)))
}

fn chosen(py: Python<'_>, accept: Option<&str>) -> PyResult<Negotiated> {
    core::negotiate(accept.unwrap_or("")).map_err(|e| comparison_error(py, e, 1))
}

/// The format of a negotiated answer, `None` for an OpenMetrics version that cannot be
/// compared with 2.0.0 (only Python's writer knows what to do with it).
pub fn render_format(chosen: &Negotiated) -> Option<Format> {
    match (chosen.kind, &chosen.version) {
        (Kind::OpenMetrics, Some(version)) => core::version_at_least(version, &[2, 0, 0])
            .ok()
            .map(Format::OpenMetrics),
        (Kind::Protobuf, _) => Some(Format::Protobuf),
        _ => Some(Format::Text),
    }
}

fn render_chosen<'py>(
    py: Python<'py>,
    registry: &Bound<'py, PyAny>,
    chosen: &Negotiated,
) -> PyResult<Bound<'py, PyBytes>> {
    let escaping = Escaping::parse(chosen.escaping);
    match render_format(chosen) {
        Some(format) => render(py, registry, escaping, format),
        None => py
            .import("fastprom.openmetrics.exposition")?
            .call_method1(
                "generate_latest",
                (registry, chosen.escaping, chosen.version.as_deref()),
            )?
            .cast_into::<PyBytes>()
            .map_err(PyErr::from),
    }
}

/// The `TypeError` Python raises comparing `parse_version(version)` with `(major, 0, 0)`.
fn comparison_error(py: Python<'_>, incomparable: Incomparable, major: i64) -> PyErr {
    let compared = py
        .import("fastprom.utils")
        .and_then(|utils| utils.call_method1("parse_version", (incomparable.0,)))
        .and_then(|parsed| parsed.ge(PyTuple::new(py, [major, 0, 0])?));
    match compared {
        Err(error) => error,
        Ok(_) => pyo3::exceptions::PyTypeError::new_err("version does not compare"),
    }
}

pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// What the native server answers a request for metrics with, as the apps answer it.
pub fn bake_for_server(
    py: Python<'_>,
    registry: &Bound<'_, PyAny>,
    accept: Option<&str>,
    accept_encoding: Option<&str>,
    query: &str,
) -> PyResult<Baked> {
    let params = py
        .import("urllib.parse")?
        .call_method1("parse_qs", (query,))?;
    let names = params.get_item("name[]").ok();
    let (status, headers, body) =
        bake_output(py, registry, accept, accept_encoding, names.as_ref(), false)?;
    Ok((status, headers, body.as_bytes().to_vec()))
}
