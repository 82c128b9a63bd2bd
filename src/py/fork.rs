//! The fork handlers, registered with `os.register_at_fork` when the module loads: before a
//! fork, the sections that run without the GIL finish and no new one starts (`core::fork`);
//! after it, they start again in the parent, and the child resets what its missing threads
//! left behind.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::multiprocess_file_error;
use super::server;
use crate::core::fork;
use crate::core::multiprocess::mapped;

/// Waits with the GIL held: a guarded section never takes it, and a thread let in by
/// detaching could take the GIL and then wait for this fork to end.
#[pyfunction]
fn before_fork() {
    fork::before_fork();
}

#[pyfunction]
fn after_fork_in_parent() {
    fork::after_fork_in_parent();
}

/// The child: no guarded section and no server thread is running; its multiprocess metrics
/// move to files of its own pid, from zero, as the reference's children do.
#[pyfunction]
fn after_fork_in_child() -> PyResult<()> {
    fork::after_fork_in_child();
    server::after_fork_in_child();
    mapped::after_fork_in_child().map_err(multiprocess_file_error)
}

pub fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let handlers = PyDict::new(py);
    handlers.set_item("before", wrap_pyfunction!(before_fork, m)?)?;
    handlers.set_item(
        "after_in_parent",
        wrap_pyfunction!(after_fork_in_parent, m)?,
    )?;
    handlers.set_item("after_in_child", wrap_pyfunction!(after_fork_in_child, m)?)?;
    py.import("os")?
        .getattr("register_at_fork")?
        .call((), Some(&handlers))?;
    Ok(())
}
