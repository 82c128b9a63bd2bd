//! The Python attributes of metric objects, kept without an instance `__dict__`.
//!
//! CPython 3.12 and 3.13 specialise a method call on an instance only when the instance has no
//! materialised `__dict__` (`LOAD_ATTR_METHOD_NO_DICT`, or `..._LAZY_DICT` while the dict is
//! still unmade); 3.11 also handled instances with a dict. So the four metric classes have no
//! `__dict__` slot: every attribute the Python code sets (`_name`, `_lock`, ...) lives in an
//! [`Attributes`] store held by the object's core, and the class gets an [`InstanceAttribute`]
//! descriptor for each name the first time an instance sets it. Reads and writes go through the
//! descriptor; the hot methods, found on the class, never look at the store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use pyo3::exceptions::PyAttributeError;
use pyo3::ffi;
use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use pyo3::PyTraverseError;

/// One object's attributes: a dict, made at the first attribute, or shared with its siblings
/// (children made natively start with their parent's template) until one of them is set.
#[derive(Default)]
pub struct Attributes {
    dict: Mutex<Option<Py<PyDict>>>,
    shared: AtomicBool,
}

impl Attributes {
    /// The current dict (a new reference, taken under the lock and used after it).
    fn current(&self, py: Python<'_>) -> Option<Py<PyDict>> {
        let dict = self.dict.lock().unwrap_or_else(|e| e.into_inner());
        dict.as_ref().map(|d| d.clone_ref(py))
    }

    fn replace(&self, dict: Option<Py<PyDict>>) -> Option<Py<PyDict>> {
        let mut current = self.dict.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *current, dict)
    }

    pub fn get<'py>(&self, name: &Bound<'py, PyString>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.current(name.py()) {
            Some(dict) => dict.bind(name.py()).get_item(name),
            None => Ok(None),
        }
    }

    /// The dict this object may change: made if missing, copied first if shared.
    pub fn own<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if self.shared.swap(false, Ordering::AcqRel) {
            if let Some(template) = self.current(py) {
                let copy = template.bind(py).copy()?;
                self.replace(Some(copy.clone().unbind()));
                return Ok(copy);
            }
        }
        if let Some(dict) = self.current(py) {
            return Ok(dict.into_bound(py));
        }
        let dict = PyDict::new(py);
        self.replace(Some(dict.clone().unbind()));
        Ok(dict)
    }

    pub fn set(&self, name: &Bound<'_, PyString>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.own(name.py())?.set_item(name, value)
    }

    /// Whether the name was there to delete.
    pub fn delete(&self, name: &Bound<'_, PyString>) -> PyResult<bool> {
        if self.get(name)?.is_none() {
            return Ok(false);
        }
        self.own(name.py())?.del_item(name)?;
        Ok(true)
    }

    /// Starts from `template`, shared until the first change.
    pub fn share(&self, template: &Bound<'_, PyDict>) {
        self.replace(Some(template.clone().unbind()));
        self.shared.store(true, Ordering::Release);
    }

    /// A copy of the attributes without `left_out` (for the template of children).
    pub fn copy_without(
        &self,
        py: Python<'_>,
        left_out: &[&Bound<'_, PyString>],
    ) -> PyResult<Py<PyDict>> {
        let copy = match self.current(py) {
            Some(dict) => dict.bind(py).copy()?,
            None => PyDict::new(py),
        };
        for name in left_out {
            if copy.contains(name)? {
                copy.del_item(name)?;
            }
        }
        Ok(copy.unbind())
    }

    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        // The garbage collector never runs while the lock is held by this thread (no Python
        // code runs under it); another thread holding it is skipped rather than waited for.
        if let Ok(dict) = self.dict.try_lock() {
            if let Some(dict) = dict.as_ref() {
                visit.call(dict)?;
            }
        }
        Ok(())
    }

    pub fn clear(&self) {
        drop(self.replace(None));
    }
}

/// A class attribute standing for an instance attribute of the four metric classes.
#[pyclass(frozen, module = "fastprom.metrics")]
pub struct InstanceAttribute {
    name: Py<PyString>,
    /// What the class had under this name before (a method, a constant): what class access and
    /// instances without a value of their own see.
    shadowed: Option<Py<PyAny>>,
}

#[pymethods]
impl InstanceAttribute {
    fn __get__(
        &self,
        py: Python<'_>,
        obj: Option<&Bound<'_, PyAny>>,
        owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let name = self.name.bind(py);
        let Some(obj) = obj.filter(|o| !o.is_none()) else {
            return match &self.shadowed {
                Some(shadowed) => bind_descriptor(shadowed.bind(py), None, owner),
                None => Err(PyAttributeError::new_err(name.to_string())),
            };
        };
        let value = match storage(obj)? {
            Storage::Native(store) => store.get(name)?,
            Storage::Dict(dict) => dict.get_item(name)?,
        };
        if let Some(value) = value {
            return Ok(value.unbind());
        }
        match &self.shadowed {
            Some(shadowed) => bind_descriptor(shadowed.bind(py), Some(obj), owner),
            None => Err(no_attribute(obj, name)),
        }
    }

    fn __set__(&self, obj: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = self.name.bind(obj.py());
        match storage(obj)? {
            Storage::Native(store) => store.set(name, value),
            Storage::Dict(dict) => dict.set_item(name, value),
        }
    }

    fn __delete__(&self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = self.name.bind(obj.py());
        let deleted = match storage(obj)? {
            Storage::Native(store) => store.delete(name)?,
            Storage::Dict(dict) => dict.del_item(name).is_ok(),
        };
        if deleted {
            Ok(())
        } else {
            Err(nothing_to_delete(obj, name))
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("<instance attribute '{}'>", self.name.bind(py))
    }
}

/// `descriptor.__get__(obj, owner)` when it is a descriptor, else the value itself.
fn bind_descriptor(
    value: &Bound<'_, PyAny>,
    obj: Option<&Bound<'_, PyAny>>,
    owner: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let py = value.py();
    // SAFETY: reading the type slot of a live object.
    let has_get = unsafe { (*ffi::Py_TYPE(value.as_ptr())).tp_descr_get.is_some() };
    if !has_get {
        return Ok(value.clone().unbind());
    }
    let obj = obj.map_or_else(|| py.None(), |o| o.clone().unbind());
    let owner = owner.map_or_else(|| py.None(), |o| o.clone().unbind());
    Ok(value
        .call_method1(intern!(py, "__get__"), (obj, owner))?
        .unbind())
}

fn no_attribute(obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> PyErr {
    let type_name = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    PyAttributeError::new_err(format!("'{type_name}' object has no attribute '{name}'"))
}

/// What `del obj.name` raises when there is no such attribute: CPython 3.10 names only the
/// attribute.
fn nothing_to_delete(obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> PyErr {
    if obj.py().version_info() < (3, 11) {
        return PyAttributeError::new_err(name.to_string());
    }
    no_attribute(obj, name)
}

/// The instance's own `__dict__` (Python subclasses of the metric classes have one).
fn real_dict<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyDict>> {
    // SAFETY: `obj` is live; PyObject_GenericGetDict raises when the type has no dict slot.
    let dict = unsafe { ffi::PyObject_GenericGetDict(obj.as_ptr(), std::ptr::null_mut()) };
    if dict.is_null() {
        // The failed call set an AttributeError: it only means "no dict".
        drop(PyErr::take(obj.py()));
        return None;
    }
    // SAFETY: a new reference.
    let dict = unsafe { Bound::from_owned_ptr(obj.py(), dict) };
    dict.cast_into::<PyDict>().ok()
}

/// Where an object's attributes live: the store of an instance of the four classes
/// themselves, the `__dict__` of a subclass instance (so `vars()` shows them all).
enum Storage<'a, 'py> {
    Native(&'a Attributes),
    Dict(Bound<'py, PyDict>),
}

fn storage<'a, 'py>(obj: &'a Bound<'py, PyAny>) -> PyResult<Storage<'a, 'py>> {
    let Some(store) = super::metric::attributes_of(obj) else {
        return Err(PyAttributeError::new_err("not a fastprom metric"));
    };
    if super::metric::is_native_class(obj) {
        return Ok(Storage::Native(store));
    }
    Ok(match real_dict(obj) {
        Some(dict) => Storage::Dict(dict),
        None => Storage::Native(store),
    })
}

/// The attribute `name` of `class` as the instance lookup finds it (along the MRO), without
/// binding it.
fn class_lookup<'py>(
    class: &Bound<'py, PyType>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = class.py();
    let mro = class
        .getattr(intern!(py, "__mro__"))?
        .cast_into::<PyTuple>()?;
    for base in mro.iter() {
        let namespace = base.getattr(intern!(py, "__dict__"))?;
        if namespace.contains(name)? {
            return Ok(Some(namespace.get_item(name)?));
        }
    }
    Ok(None)
}

fn is_data_descriptor(value: &Bound<'_, PyAny>) -> bool {
    // SAFETY: reading the type slot of a live object.
    unsafe { (*ffi::Py_TYPE(value.as_ptr())).tp_descr_set.is_some() }
}

/// `setattr(obj, name, value)` (`delattr` when `value` is None) for an instance of one of the
/// four classes themselves: data descriptors of the class (`_labelvalues`, `_created`) as
/// usual, any other name in the store, with a descriptor installed on the class at its first
/// use. Subclass instances with a `__dict__` go the usual way (their descriptors lead to the
/// store too); those of a subclass without one (`__slots__ = ()`) use the store.
pub fn set_attribute(
    obj: &Bound<'_, PyAny>,
    store: &Attributes,
    exact_class: bool,
    name: &Bound<'_, PyAny>,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    if !exact_class && real_dict(obj).is_some() {
        return generic_setattr(obj, name, value);
    }
    let Ok(name) = name.cast::<PyString>() else {
        return generic_setattr(obj, name, value);
    };
    let class = obj.get_type();
    let found = class_lookup(&class, name)?;
    match &found {
        Some(attr) if attr.is_instance_of::<InstanceAttribute>() => {}
        Some(attr) if is_data_descriptor(attr) => return generic_setattr(obj, name, value),
        _ if value.is_some() => {
            let descriptor = InstanceAttribute {
                name: name.clone().unbind(),
                shadowed: found.map(Bound::unbind),
            };
            class.setattr(name, Bound::new(obj.py(), descriptor)?)?;
        }
        _ => {}
    }
    match value {
        Some(value) => store.set(name, value),
        None if store.delete(name)? => Ok(()),
        None => Err(nothing_to_delete(obj, name)),
    }
}

/// `object.__setattr__` (or `__delattr__` when `value` is None).
pub fn generic_setattr(
    obj: &Bound<'_, PyAny>,
    name: &Bound<'_, PyAny>,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let value = value.map_or(std::ptr::null_mut(), |v| v.as_ptr());
    // SAFETY: valid objects; a NULL value means deletion.
    let result = unsafe { ffi::PyObject_GenericSetAttr(obj.as_ptr(), name.as_ptr(), value) };
    if result == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(obj.py()))
    }
}
