//! A labelled metric's children as Python sees them: `metric._metrics`, a mapping from
//! label-value tuples to child objects.
//!
//! The family in the core is the only store of children. A child object ("handle") is made
//! when Python asks for one and lives while referenced: the child's handle word holds its
//! address, so the same object comes back while it is alive, and the handle clears the word
//! when it is freed. The handles `labels()` returned last are kept alive in a small ring, so
//! `labels(...).inc()` on the same few children allocates nothing, while 200k children keep
//! no Python object at all. Some handles are pinned (held here until their child is removed):
//! children built by a Python constructor (subclasses), and handles that hold something only
//! the object keeps (an attribute set on it, an exemplar's amount).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::ffi;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use pyo3::PyTraverseError;

use super::errors::multiprocess_file_error;
use super::metric::{is_native_class, metric_core, MetricCore};
use crate::core::family::{Child, Family};
use crate::core::multiprocess::mapped;

/// How many of the handles `labels()` returned last are kept alive.
const RECENT_HANDLES: usize = 32;

/// The last handles `labels()` made, oldest replaced first.
struct Recent {
    handles: Vec<Option<Py<PyAny>>>,
    next: usize,
}

#[pyclass(frozen, module = "fastprom.metrics", name = "Children")]
pub struct Children {
    family: Arc<Family>,
    /// The labelled metric these children belong to (its attributes are the handles'); taken
    /// by the garbage collector to break the cycle through its `_metrics`.
    parent: Mutex<Option<Py<PyAny>>>,
    /// Pinned handles by their child's address.
    pinned: Mutex<HashMap<usize, Py<PyAny>>>,
    recent: Mutex<Recent>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child's address, the key of its pin.
fn address(child: &Arc<Child>) -> usize {
    Arc::as_ptr(child) as usize
}

/// What a lookup under the family's lock finds: a live handle's address, or the child.
fn live_handle(child: &Arc<Child>) -> Result<usize, Arc<Child>> {
    match child.handle() {
        0 => Err(child.clone()),
        handle => Ok(handle),
    }
}

impl Children {
    pub fn new(family: Arc<Family>, parent: Py<PyAny>) -> Children {
        Children {
            family,
            parent: Mutex::new(Some(parent)),
            pinned: Mutex::new(HashMap::new()),
            recent: Mutex::new(Recent {
                handles: (0..RECENT_HANDLES).map(|_| None).collect(),
                next: 0,
            }),
        }
    }

    /// `labels(*values)` on the parent `parent`: the child's handle, the child made if missing
    /// (None when the parent's class is a subclass: it builds its children in Python).
    #[inline]
    pub fn labels<'py>(
        slf: &Bound<'py, Children>,
        parent: &Bound<'py, PyAny>,
        values: &[&str],
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let this = slf.get();
        let py = slf.py();
        match this.family.with_child(values, live_handle) {
            // SAFETY: a live handle clears the word before it is freed, and nothing ran
            // Python since the word was read under the family's lock.
            Some(Ok(handle)) => return Ok(Some(unsafe { borrowed_handle(py, handle) })),
            Some(Err(child)) => return Self::new_handle(slf, parent, child, true).map(Some),
            None if !is_native_class(parent) => return Ok(None),
            None => {}
        }
        let core = parent_core(parent)?;
        let created = core.creation_time(py)?;
        let (found, _) = this
            .family
            .get_or_insert_with(values, || core.new_cells(values, created), live_handle)
            .map_err(multiprocess_file_error)?;
        match found {
            // SAFETY: as above (another thread made it meanwhile).
            Ok(handle) => Ok(Some(unsafe { borrowed_handle(py, handle) })),
            Err(child) => Self::new_handle(slf, parent, child, true).map(Some),
        }
    }

    /// A handle for `child`, registered in its handle word; `recent`: kept in the ring.
    fn new_handle<'py>(
        slf: &Bound<'py, Children>,
        parent: &Bound<'py, PyAny>,
        child: Arc<Child>,
        recent: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let handle = parent_core(parent)?.new_handle(parent, slf, child)?;
        let handle = match metric_core(&handle).and_then(|core| core.register_handle(&handle)) {
            Some(existing) => {
                // Another handle was registered while this one was made (a finalizer ran
                // Python during the allocation): that one stays the child's.
                // SAFETY: the word held it, and no Python ran since.
                unsafe { borrowed_handle(py, existing) }
            }
            None => handle,
        };
        if recent {
            slf.get().keep_recent(py, handle.clone().unbind());
        }
        Ok(handle)
    }

    fn keep_recent(&self, py: Python<'_>, handle: Py<PyAny>) {
        let replaced = {
            let mut recent = lock(&self.recent);
            let slot = recent.next;
            recent.next = (slot + 1) % RECENT_HANDLES;
            recent.handles[slot].replace(handle)
        };
        // Released after unlocking: freeing a handle may run Python.
        release(py, replaced);
    }

    /// Keeps `handle` (the object of `child`) alive until its child is removed.
    pub fn pin(&self, py: Python<'_>, child: &Arc<Child>, handle: Py<PyAny>) {
        let replaced = lock(&self.pinned).insert(address(child), handle);
        release(py, replaced);
    }

    fn unpin(&self, py: Python<'_>, removed: &[Arc<Child>]) {
        let unpinned: Vec<_> = {
            let mut pinned = lock(&self.pinned);
            removed
                .iter()
                .filter_map(|c| pinned.remove(&address(c)))
                .collect()
        };
        release(py, unpinned);
    }

    fn parent<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        lock(&self.parent)
            .as_ref()
            .map(|p| p.bind(py).clone())
            .ok_or_else(|| PyTypeError::new_err("the metric of these children is gone"))
    }

    /// The handle of `child`: the live one, else a new one.
    fn handle_of<'py>(
        slf: &Bound<'py, Children>,
        child: Arc<Child>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        match child.handle() {
            0 => {
                let parent = slf.get().parent(py)?;
                Self::new_handle(slf, &parent, child, false)
            }
            // SAFETY: a live handle clears the word before it is freed; no Python ran since.
            handle => Ok(unsafe { borrowed_handle(py, handle) }),
        }
    }

    /// Children leave the family: pins released, multiprocess series out of the files.
    fn forget(&self, py: Python<'_>, removed: Vec<Arc<Child>>) -> PyResult<()> {
        self.unpin(py, &removed);
        let slots: Vec<_> = removed.iter().flat_map(|c| c.slots_to_remove()).collect();
        if !slots.is_empty() {
            mapped::remove(&slots).map_err(multiprocess_file_error)?;
        }
        Ok(())
    }

    fn key_tuple<'py>(py: Python<'py>, child: &Child) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            child
                .label_values()
                .iter()
                .map(|v| PyString::new(py, v))
                .collect::<Vec<_>>(),
        )
    }
}

/// The label values of a key: a tuple of `str` (anything else names no child); an
/// unhashable key raises TypeError, as a dict's lookup does.
fn key_values(key: &Bound<'_, PyAny>) -> PyResult<Option<Vec<String>>> {
    let values = key.cast::<PyTuple>().ok().and_then(|tuple| {
        tuple
            .iter()
            .map(|v| Some(v.cast::<PyString>().ok()?.to_str().ok()?.to_owned()))
            .collect()
    });
    if values.is_none() {
        key.hash()?;
    }
    Ok(values)
}

fn parent_core<'a>(parent: &'a Bound<'_, PyAny>) -> PyResult<&'a MetricCore> {
    metric_core(parent).ok_or_else(|| PyTypeError::new_err("not a fastprom metric"))
}

/// Drops references now. A `Py` dropped on its own waits for PyO3's next entry when the
/// thread came in through a raw fast path (`fastcall.rs`), which PyO3 does not count as
/// attached: handles would pile up until then.
fn release(py: Python<'_>, objects: impl IntoIterator<Item = Py<PyAny>>) {
    for object in objects {
        drop(object.into_bound(py));
    }
}

/// A new reference to the handle at `address`.
///
/// # Safety
/// `address` is a live object's (read from a handle word with no Python run since).
unsafe fn borrowed_handle(py: Python<'_>, address: usize) -> Bound<'_, PyAny> {
    Bound::from_borrowed_ptr(py, address as *mut ffi::PyObject)
}

#[pymethods]
impl Children {
    fn __len__(&self) -> usize {
        self.family.len()
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(key_values(key)?.is_some_and(|v| self.family.get(&v).is_some()))
    }

    fn __getitem__<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match Self::get(slf, key, None)? {
            Some(child) => Ok(child),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    #[pyo3(signature = (key, default = None))]
    fn get<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let found = key_values(key)?.and_then(|v| slf.get().family.get(&v));
        match found {
            Some(child) => Self::handle_of(slf, child).map(Some),
            None => Ok(default),
        }
    }

    /// Adds `child` (an object of this metric's kind with its own cells) under its label
    /// values; the object is kept as is.
    fn __setitem__(&self, key: &Bound<'_, PyAny>, child: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = child.py();
        let _ = key; // the family keys children by their own label values
        let Some(cells) = metric_core(child).and_then(MetricCore::cells) else {
            return Err(PyTypeError::new_err(
                "a child must be a labelled child of a fastprom metric",
            ));
        };
        let cells = cells.clone();
        let replaced = self.family.replace_child(cells.clone());
        self.unpin(py, &replaced.into_iter().collect::<Vec<_>>());
        if let Some(core) = metric_core(child) {
            core.register_handle(child);
        }
        self.pin(py, &cells, child.clone().unbind());
        Ok(())
    }

    fn __delitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let removed = key_values(key)?.and_then(|v| self.family.remove(&v));
        match removed {
            Some(child) => self.forget(key.py(), vec![child]),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// Removes the child under `key` and returns it (or `default`, or KeyError).
    #[pyo3(signature = (key, *default))]
    fn pop<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        default: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let values = key_values(key)?;
        let child = values.as_ref().and_then(|v| this.family.get(v));
        let Some(child) = child else {
            return match default.len() {
                0 => Err(PyKeyError::new_err(key.clone().unbind())),
                _ => default.get_item(0),
            };
        };
        let handle = Self::handle_of(slf, child)?;
        if let Some(removed) = values.and_then(|v| this.family.remove(&v)) {
            this.forget(slf.py(), vec![removed])?;
        }
        Ok(handle)
    }

    /// Removes the children under `key`s that exist (no handle is made).
    fn _discard(&self, py: Python<'_>, keys: Vec<Bound<'_, PyAny>>) -> PyResult<()> {
        let mut removed = Vec::new();
        for key in &keys {
            if let Some(values) = key_values(key)? {
                removed.extend(self.family.remove(&values));
            }
        }
        self.forget(py, removed)
    }

    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.forget(py, self.family.clear())
    }

    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let keys = self
            .family
            .children()
            .iter()
            .map(|c| Self::key_tuple(py, c))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, keys)
    }

    fn values<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyList>> {
        let handles = slf
            .get()
            .family
            .children()
            .into_iter()
            .map(|c| Self::handle_of(slf, c))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(slf.py(), handles)
    }

    fn items<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyList>> {
        let py = slf.py();
        let pairs = slf
            .get()
            .family
            .children()
            .into_iter()
            .map(|c| Ok((Self::key_tuple(py, &c)?, Self::handle_of(slf, c)?)))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, pairs)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.keys(py)?.try_iter()?.into_any())
    }

    /// A plain dict of the children now.
    fn copy<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(slf.py());
        for pair in Self::items(slf)?.iter() {
            let (key, child): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract()?;
            dict.set_item(key, child)?;
        }
        Ok(dict)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Ok(Self::copy(slf)?.repr()?.to_string())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // The collector never runs while this thread holds one of the locks (no Python runs
        // under them); another thread holding one is skipped rather than waited for.
        if let Ok(parent) = self.parent.try_lock() {
            if let Some(parent) = parent.as_ref() {
                visit.call(parent)?;
            }
        }
        if let Ok(pinned) = self.pinned.try_lock() {
            for handle in pinned.values() {
                visit.call(handle)?;
            }
        }
        if let Ok(recent) = self.recent.try_lock() {
            for handle in recent.handles.iter().flatten() {
                visit.call(handle)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let parent = lock(&self.parent).take();
        let pinned: Vec<_> = lock(&self.pinned).drain().collect();
        let recent: Vec<_> = lock(&self.recent)
            .handles
            .iter_mut()
            .map(Option::take)
            .collect();
        drop((parent, pinned, recent));
    }
}
