//! `start_http_server`'s native server: scrapes are answered on Rust threads, and fastprom's
//! own metrics are rendered without the GIL.
//!
//! The GIL is taken only to learn what to render: once per registry change (the registry's
//! `Generation` tells), and on every scrape while the registry holds collectors that only
//! Python can collect (custom collectors, `set_function` gauges, the process/platform/GC
//! collectors). Negotiation is the core's (`core::negotiate`), as for the apps.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use super::errors::{runtime_error, value_error, Error};
use super::render::{gather, write_items, Format, Item};
use super::scrape::{bake_for_server, gzip, render_format};
use crate::core::fork;
use crate::core::http::{Handler, Limits, Request, Response, Server};
use crate::core::model::Escaping;
use crate::core::negotiate;

/// Bumped on every change that alters what a registry renders (register, unregister, target
/// info) so a cached render plan knows it is stale.
#[pyclass(frozen, module = "fastprom._native")]
pub struct Generation(Arc<AtomicU64>);

#[pymethods]
impl Generation {
    #[new]
    fn new() -> Generation {
        Generation(Arc::new(AtomicU64::new(0)))
    }

    fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// Bumped when `enable_created_metrics`/`disable_created_metrics` run.
static SETTINGS: AtomicU64 = AtomicU64::new(0);

#[pyfunction]
pub fn settings_changed() {
    SETTINGS.fetch_add(1, Ordering::AcqRel);
}

#[pyclass(frozen, module = "fastprom._native")]
pub struct MetricsServer {
    server: Arc<Server>,
    handler: Arc<ScrapeHandler>,
    /// The process that made the server. A forked child inherits the object but not the
    /// runtime's threads: there it serves nothing, and stopping or dropping it touches nothing
    /// those threads may have left locked.
    owner: u32,
}

impl MetricsServer {
    fn inherited(&self) -> bool {
        self.owner != std::process::id()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if self.inherited() {
            std::mem::forget(self.server.clone());
        }
    }
}

#[pymethods]
impl MetricsServer {
    /// Takes ownership of `fd`, a listening TCP socket.
    #[new]
    fn new(fd: i64, registry: &Bound<'_, PyAny>) -> PyResult<MetricsServer> {
        let listener = listener_from(fd)?;
        let server = Server::new(listener, Limits::default())
            .map_err(|e| runtime_error(format!("cannot serve on the socket: {e}")))?;
        let generation = registry
            .getattr("_generation")
            .ok()
            .and_then(|g| g.cast::<Generation>().ok().map(|g| g.get().0.clone()));
        let handler = ScrapeHandler {
            registry: registry.clone().unbind(),
            generation,
            plan: Mutex::new(None),
        };
        Ok(MetricsServer {
            server: Arc::new(server),
            handler: Arc::new(handler),
            owner: std::process::id(),
        })
    }

    /// Serves until `shutdown`, without the GIL.
    fn serve_forever(&self, py: Python<'_>) {
        if self.inherited() {
            return;
        }
        let handler: Arc<dyn Handler> = self.handler.clone();
        py.detach(|| self.server.serve(handler));
    }

    /// Serves one connection (in the background); `False` if none came within `timeout`.
    #[pyo3(signature = (timeout=None))]
    fn handle_request(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = match timeout {
            Some(t) if !(t.is_finite() && t >= 0.0) => {
                return Err(value_error("timeout must be >= 0"))
            }
            t => t.map(std::time::Duration::from_secs_f64),
        };
        if self.inherited() {
            return Ok(false);
        }
        let handler: Arc<dyn Handler> = self.handler.clone();
        Ok(py.detach(|| self.server.serve_one(handler, timeout)))
    }

    fn shutdown(&self) {
        if !self.inherited() {
            self.server.shutdown();
        }
    }

    /// Stops serving and closes the listening socket.
    fn close(&self, py: Python<'_>) {
        if !self.inherited() {
            py.detach(|| self.server.close());
        }
    }

    fn fileno(&self) -> i64 {
        self.server.fileno()
    }
}

/// The listening socket the caller hands over and no longer uses (`socket.detach()`).
#[cfg(unix)]
fn listener_from(fd: i64) -> PyResult<TcpListener> {
    use std::os::fd::FromRawFd;
    let fd = i32::try_from(fd).map_err(|_| value_error("not a file descriptor"))?;
    // SAFETY: the descriptor is a listening socket that nothing else owns any more.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}

#[cfg(windows)]
fn listener_from(fd: i64) -> PyResult<TcpListener> {
    use std::os::windows::io::FromRawSocket;
    let socket = u64::try_from(fd).map_err(|_| value_error("not a socket handle"))?;
    // SAFETY: the handle is a listening socket that nothing else owns any more.
    Ok(unsafe { TcpListener::from_raw_socket(socket as _) })
}

#[cfg(not(any(unix, windows)))]
fn listener_from(_fd: i64) -> PyResult<TcpListener> {
    Err(runtime_error(
        "the native server needs a Unix or Windows socket",
    ))
}

/// What an `Accept` header asks for.
enum Negotiated {
    Native {
        format: Format,
        escaping: Escaping,
        content_type: String,
    },
    /// Something only Python handles (a version Python cannot compare).
    Python,
}

/// What a registry renders when it is native families only, valid while its generation and
/// the settings are those it was made at.
struct Plan {
    generation: u64,
    settings: u64,
    items: Vec<Item>,
}

struct ScrapeHandler {
    registry: Py<PyAny>,
    generation: Option<Arc<AtomicU64>>,
    plan: Mutex<Option<Plan>>,
}

const SERVER_ERROR: &str = "A server error occurred.  Please contact the administrator.";

impl Handler for ScrapeHandler {
    fn handle(&self, request: &Request) -> Response {
        let allow = || vec![("Allow".to_string(), "OPTIONS,GET".to_string())];
        match request.method.as_str() {
            "OPTIONS" => return Response::new("200 OK", allow(), Vec::new()),
            "GET" => {}
            method => {
                let status = "405 Method Not Allowed";
                let body = format!("# HTTP {status}: {method}; use OPTIONS or GET\n");
                return Response::new(status, allow(), body.into_bytes());
            }
        }
        if request.path == "/favicon.ico" {
            return Response::new("200 OK", Vec::new(), Vec::new());
        }
        self.metrics(request)
            .unwrap_or_else(|| Response::text("500 Internal Server Error", SERVER_ERROR))
    }

    /// What `metrics` reads of a request (the query only when it filters by name).
    fn sharing_key(&self, request: &Request) -> Option<String> {
        if request.method != "GET" || request.path == "/favicon.ico" {
            return None;
        }
        let filter = if request.query.contains("name") {
            request.query.as_str()
        } else {
            ""
        };
        let accept = request.header("accept");
        Some(format!(
            "{:?}",
            (filter, accept, request.header("accept-encoding"))
        ))
    }
}

impl ScrapeHandler {
    /// The metrics page; `None` after an error (printed to stderr, as WSGI servers do).
    fn metrics(&self, request: &Request) -> Option<Response> {
        // `name[]` filtering goes through Python's restricted registry.
        if request.query.contains("name") {
            return self.python_response(request);
        }
        let accept = request.header("accept");
        let (format, escaping, content_type) = match negotiated(accept.unwrap_or("")) {
            Negotiated::Native {
                format,
                escaping,
                content_type,
            } => (format, escaping, content_type),
            Negotiated::Python => return self.python_response(request),
        };
        let mut body = self.render(format, escaping)?;
        let mut headers = vec![("Content-Type".to_string(), content_type)];
        if negotiate::gzip_accepted(request.header("accept-encoding").unwrap_or("")) {
            body = gzip(&body);
            headers.push(("Content-Encoding".to_string(), "gzip".to_string()));
        }
        Some(Response::new("200 OK", headers, body))
    }

    fn render(&self, format: Format, escaping: Escaping) -> Option<Vec<u8>> {
        let items = match self.cached_items() {
            Some(items) => items,
            None => with_python(|py| self.gather_and_plan(py, format))?,
        };
        match write_items(items, escaping, format) {
            Ok(out) => Some(out),
            Err(e) => {
                let _: Option<()> = with_python(|_| Err(PyErr::from(Error::from(e))));
                None
            }
        }
    }

    /// The items of a still-valid plan whose families need no Python.
    fn cached_items(&self) -> Option<Vec<Item>> {
        let generation = self.generation.as_ref()?.load(Ordering::Acquire);
        let settings = SETTINGS.load(Ordering::Acquire);
        let _fork_guard = fork::guard();
        let plan = lock(&self.plan);
        let plan = plan.as_ref()?;
        let valid = plan.generation == generation && plan.settings == settings;
        let needs_python = |item: &Item| match item {
            Item::Native(family, _) => family.needs_python(),
            Item::Owned(_) | Item::Merged(_) => true,
        };
        if !valid || plan.items.iter().any(needs_python) {
            return None;
        }
        Some(plan.items.clone())
    }

    /// Gathers under the GIL and remembers the plan when it is all native.
    fn gather_and_plan(&self, py: Python<'_>, format: Format) -> PyResult<Vec<Item>> {
        let generation = self.generation.as_ref().map(|g| g.load(Ordering::Acquire));
        let settings = SETTINGS.load(Ordering::Acquire);
        let items = gather(py, self.registry.bind(py), format)?;
        let native_only = items.iter().all(|item| matches!(item, Item::Native(..)));
        if let (Some(generation), true) = (generation, native_only) {
            *lock(&self.plan) = Some(Plan {
                generation,
                settings,
                items: items.clone(),
            });
        }
        Ok(items)
    }

    /// The response the apps give (`scrape::bake_output`), for what needs Python.
    fn python_response(&self, request: &Request) -> Option<Response> {
        with_python(|py| {
            let (status, headers, body) = bake_for_server(
                py,
                self.registry.bind(py),
                request.header("accept"),
                request.header("accept-encoding"),
                &request.query,
            )?;
            Ok(Response {
                status,
                headers,
                body,
            })
        })
    }
}

/// What an `Accept` header asks the native path for.
fn negotiated(accept: &str) -> Negotiated {
    let Ok(chosen) = negotiate::negotiate(accept) else {
        return Negotiated::Python;
    };
    match render_format(&chosen) {
        Some(format) => Negotiated::Native {
            format,
            escaping: Escaping::parse(chosen.escaping),
            content_type: chosen.content_type,
        },
        None => Negotiated::Python,
    }
}

/// Set at interpreter exit: from then on server threads stay away from Python.
static CLOSING: AtomicBool = AtomicBool::new(false);
/// Server threads attached to Python (or about to be).
static ATTACHED: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` with the GIL; an exception is printed to stderr and gives `None`, as does an
/// interpreter that is shutting down.
fn with_python<T>(f: impl FnOnce(Python<'_>) -> PyResult<T>) -> Option<T> {
    // Counted before CLOSING is checked: `drain_at_exit` either sees this thread or this
    // thread sees CLOSING.
    ATTACHED.fetch_add(1, Ordering::SeqCst);
    let result = if CLOSING.load(Ordering::SeqCst) {
        None
    } else {
        Python::try_attach(|py| f(py).or_print(py)).flatten()
    };
    ATTACHED.fetch_sub(1, Ordering::SeqCst);
    result
}

/// In a forked child: the parent's server threads, counted in `ATTACHED`, do not exist.
pub fn after_fork_in_child() {
    ATTACHED.store(0, Ordering::SeqCst);
}

/// At interpreter exit (atexit): server threads no longer enter Python, and those inside it are
/// waited for (up to `timeout` seconds), so none is caught in Python while it finalizes.
#[pyfunction]
pub fn drain_at_exit(py: Python<'_>, timeout: f64) {
    CLOSING.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(timeout);
    py.detach(|| {
        while ATTACHED.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
}

trait OrPrint<T> {
    fn or_print(self, py: Python<'_>) -> Option<T>;
}

impl<T> OrPrint<T> for PyResult<T> {
    fn or_print(self, py: Python<'_>) -> Option<T> {
        self.inspect_err(|e| e.display(py)).ok()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
