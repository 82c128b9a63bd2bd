//! What `count_exceptions()`, `track_inprogress()` and `time()` decorate a function into.
//!
//! `ExceptionCounter` and `InprogressTracker` are the context managers the first two return
//! (`Timer`, in `timer.rs`, is the third). Used as decorators on a plain function, all three
//! give a `DecoratedFunction`: a native callable CPython calls through vectorcall, which runs
//! the measurement around a direct call of the function, with no Python frame of its own and
//! no context-manager object per call. It carries the function's metadata (`__name__`,
//! `__qualname__`, `__doc__`, `__module__`, `__defaults__`, `__kwdefaults__`,
//! `__annotations__`, `__wrapped__`, a copy of its `__dict__`), so `inspect.signature`
//! reports the function's signature, and it binds as a method when it is a class attribute.
//! A coroutine function's call returns a `DecoratedCoroutine` (`awaitable.rs`), which measures
//! the awaited call (the reference measures only the coroutine's creation).
//!
//! The reference's wrapper checks the arguments before it enters the context manager, so a
//! call with arguments that do not fit the signature is neither counted nor timed. Here the
//! function itself checks them: such a `TypeError` is the one with no traceback (any
//! exception raised once the function's frame runs has that frame in its traceback), and it
//! is passed on unmeasured too.

use std::sync::{Mutex, Once};

use pyo3::exceptions::{PySystemError, PyTypeError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use pyo3::{Borrowed, PyTraverseError, PyVisit};

use super::awaitable::DecoratedCoroutine;
use super::metric::{Counter, Gauge, HasCore};
use super::timer::{context_managers, elapsed, mark, Mark, Timer};

/// `counter.inc()`: the cells directly for a `Counter` itself, else the method.
fn count_one(counter: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Ok(c) = counter.cast_exact::<Counter>() {
        if let Some(child) = c.get().core().observable_child() {
            child.counter_inc_int(1);
            return Ok(());
        }
    }
    counter.call_method0(intern!(counter.py(), "inc"))?;
    Ok(())
}

/// `gauge.inc()` (`up`) or `gauge.dec()`: the cells directly for a `Gauge` itself that is not
/// in a `mostrecent` mode (which refuses both, in the method), else the method.
fn gauge_step(gauge: &Bound<'_, PyAny>, up: bool) -> PyResult<()> {
    if let Ok(g) = gauge.cast_exact::<Gauge>() {
        if let Some(child) = g.get().core().plain_gauge_child() {
            child.gauge_add(if up { 1.0 } else { -1.0 });
            return Ok(());
        }
    }
    let py = gauge.py();
    let method = if up {
        intern!(py, "inc")
    } else {
        intern!(py, "dec")
    };
    gauge.call_method0(method)?;
    Ok(())
}

/// Whether `exception` is a class whose metaclass is `type`, or a (nested) tuple of such: then
/// `isinstance(None, exception)` has no side effects and can be decided once.
fn is_plain_classes(exception: &Bound<'_, PyAny>) -> bool {
    if let Ok(tuple) = exception.cast::<PyTuple>() {
        return tuple.iter().all(|item| is_plain_classes(&item));
    }
    exception.get_type().is_exact_instance_of::<PyType>()
}

/// What `ExceptionCounter.__exit__` does after a block that raised nothing.
pub(super) enum OnSuccess {
    Nothing,
    Count,
    /// `exception` may do anything in its `__instancecheck__`: ask it every time.
    Ask,
}

/// Counts an exception leaving a block or function when it is an instance of `exception`
/// (a class or a tuple of classes). The exception is never swallowed.
#[pyclass(frozen, subclass, module = "fastprom.context_managers")]
pub struct ExceptionCounter {
    counter: Py<PyAny>,
    exception: Py<PyAny>,
}

impl ExceptionCounter {
    /// What the block's outcome (`None`, or the exception raised) means for the counter.
    fn settle(&self, py: Python<'_>, raised: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let none = py.None().into_bound(py);
        if raised
            .unwrap_or(&none)
            .is_instance(self.exception.bind(py))?
        {
            count_one(self.counter.bind(py))?;
        }
        Ok(())
    }
}

#[pymethods]
impl ExceptionCounter {
    #[new]
    fn new(counter: Py<PyAny>, exception: Py<PyAny>) -> Self {
        ExceptionCounter { counter, exception }
    }

    #[getter]
    fn _counter(&self, py: Python<'_>) -> Py<PyAny> {
        self.counter.clone_ref(py)
    }

    #[getter]
    fn _exception(&self, py: Python<'_>) -> Py<PyAny> {
        self.exception.clone_ref(py)
    }

    fn __enter__(&self) {}

    fn __exit__(
        &self,
        py: Python<'_>,
        _typ: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.settle(py, (!value.is_none()).then_some(value))?;
        Ok(false)
    }

    /// As a decorator: count the exceptions leaving every call of `f`.
    fn __call__<'py>(slf: &Bound<'py, Self>, f: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        decorate(slf.as_any(), f, None)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.counter)?;
        visit.call(&self.exception)
    }
}

/// Increments a gauge while a block or function runs.
#[pyclass(frozen, subclass, module = "fastprom.context_managers")]
pub struct InprogressTracker {
    gauge: Py<PyAny>,
}

#[pymethods]
impl InprogressTracker {
    #[new]
    fn new(gauge: Py<PyAny>) -> Self {
        InprogressTracker { gauge }
    }

    #[getter]
    fn _gauge(&self, py: Python<'_>) -> Py<PyAny> {
        self.gauge.clone_ref(py)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<()> {
        gauge_step(self.gauge.bind(py), true)
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _typ: &Bound<'_, PyAny>,
        _value: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        gauge_step(self.gauge.bind(py), false)
    }

    /// As a decorator: increment the gauge during every call of `f`.
    fn __call__<'py>(slf: &Bound<'py, Self>, f: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        decorate(slf.as_any(), f, None)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.gauge)
    }
}

/// `fastprom.context_managers._decorate_native(f, manager, new_context)`, which checks `f`
/// as the reference does, takes the Python path for coroutine functions and subclasses, and
/// otherwise builds the `DecoratedFunction`.
fn decorate<'py>(
    manager: &Bound<'py, PyAny>,
    f: &Bound<'py, PyAny>,
    new_context: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = manager.py();
    context_managers(py)?
        .getattr(intern!(py, "_decorate_native"))?
        .call1((f, manager, new_context))
}

/// What a decorated call does around the function.
pub(super) enum Action {
    Count {
        counter: Py<PyAny>,
        exception: Py<PyAny>,
        on_success: OnSuccess,
    },
    Track {
        gauge: Py<PyAny>,
    },
    /// The timer's metric is read at each call, as the reference's per-call timer does.
    Time {
        timer: Py<Timer>,
    },
}

/// What `Action::begin` noted for `Action::end`.
#[derive(Clone, Copy)]
pub(super) enum Begun {
    Nothing,
    /// When the timed call began.
    At(Mark),
}

/// The metadata a function carries, settable as a function's is.
struct Meta {
    name: Py<PyAny>,
    qualname: Py<PyAny>,
    doc: Py<PyAny>,
    module: Py<PyAny>,
    defaults: Py<PyAny>,
    kwdefaults: Py<PyAny>,
    annotations: Py<PyAny>,
}

/// A function decorated by `count_exceptions()`, `track_inprogress()` or `time()`.
#[pyclass(frozen, dict, weakref, module = "fastprom.context_managers")]
pub struct DecoratedFunction {
    /// Where CPython finds how to call an instance (`tp_vectorcall_offset` points here).
    vectorcall: ffi::vectorcallfunc,
    func: Py<PyAny>,
    pub(super) action: Action,
    /// `inspect.iscoroutinefunction(func)`: its calls are measured while awaited.
    is_coroutine_function: bool,
    meta: Mutex<Meta>,
}

extern "C" {
    /// `PyMethod_New` (stable C API; not declared by pyo3-ffi).
    fn PyMethod_New(
        function: *mut ffi::PyObject,
        instance: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
}

/// Runs a call under a panic guard: a panic must never unwind into CPython.
fn guard(body: impl FnOnce() -> *mut ffi::PyObject) -> *mut ffi::PyObject {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(_) => {
            // SAFETY: the interpreter called us, so this thread is attached.
            let py = unsafe { Python::assume_attached() };
            pyo3::panic::PanicException::new_err("fastprom: internal error in a decorated call")
                .restore(py);
            std::ptr::null_mut()
        }
    }
}

/// The entry point CPython calls for `decorated(...)`.
unsafe extern "C" fn call_decorated(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: libc_size_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guard(|| {
        let py = Python::assume_attached();
        // SAFETY: CPython calls this only for instances of the class (the type's offset).
        let this = Borrowed::from_ptr(py, callable).cast_unchecked::<DecoratedFunction>();
        let func = this.get().func.as_ptr();
        DecoratedFunction::run(this, || vectorcall(func, args, nargsf, kwnames))
    })
}

/// `func(*args)` through its own vectorcall entry when it has one (a function has), without
/// `PyObject_Vectorcall`'s thread-state and result checks, else through `PyObject_Vectorcall`.
///
/// # Safety
/// The thread is attached; the arguments are as CPython passes them to a vectorcall.
unsafe fn vectorcall(
    func: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: libc_size_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let tp = ffi::Py_TYPE(func);
    if (*tp).tp_flags & ffi::Py_TPFLAGS_HAVE_VECTORCALL != 0 {
        let entry = func
            .cast::<u8>()
            .offset((*tp).tp_vectorcall_offset)
            .cast::<Option<ffi::vectorcallfunc>>();
        if let Some(call) = *entry {
            return call(func, args, nargsf, kwnames);
        }
    }
    ffi::PyObject_Vectorcall(func, args, nargsf, kwnames)
}

#[allow(non_camel_case_types)]
type libc_size_t = usize;

/// A `TypeError` from binding the arguments, raised before the function's frame ran.
fn is_binding_error(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PyTypeError>(py) && err.traceback(py).is_none()
}

/// The `__context__` of an exception raised while `original` was being handled.
pub(super) fn chain(py: Python<'_>, raised: PyErr, original: PyErr) -> PyErr {
    // SAFETY: both are normalized exception objects; SetContext steals the reference.
    unsafe {
        ffi::PyException_SetContext(
            raised.value(py).as_ptr(),
            original.into_value(py).into_ptr(),
        );
    }
    raised
}

/// The result of a call after `after` ran on its outcome (`None`, or the exception raised).
/// `after` runs for an argument-binding error only when `also_binding_errors`.
///
/// # Safety
/// `result` is a new reference or NULL with an exception set.
unsafe fn finish(
    py: Python<'_>,
    result: *mut ffi::PyObject,
    also_binding_errors: bool,
    after: impl FnOnce(Option<&Bound<'_, PyAny>>) -> PyResult<()>,
) -> *mut ffi::PyObject {
    if !result.is_null() {
        return match after(None) {
            Ok(()) => result,
            Err(e) => {
                ffi::Py_DECREF(result);
                e.restore(py);
                std::ptr::null_mut()
            }
        };
    }
    let err = PyErr::take(py)
        .unwrap_or_else(|| PySystemError::new_err("error return without exception set"));
    if !also_binding_errors && is_binding_error(py, &err) {
        err.restore(py);
        return std::ptr::null_mut();
    }
    match after(Some(err.value(py).as_any())) {
        Ok(()) => err.restore(py),
        Err(e) => chain(py, e, err).restore(py),
    }
    std::ptr::null_mut()
}

impl Action {
    /// The start of a measured call, just before the function runs.
    pub(super) fn begin(&self, py: Python<'_>) -> PyResult<Begun> {
        match self {
            Action::Count { .. } => Ok(Begun::Nothing),
            Action::Track { gauge } => gauge_step(gauge.bind(py), true).map(|()| Begun::Nothing),
            Action::Time { .. } => mark(py).map(Begun::At),
        }
    }

    /// The end of a measured call, given its outcome (`None`, or the exception raised).
    pub(super) fn end(
        &self,
        py: Python<'_>,
        begun: Begun,
        raised: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        match self {
            Action::Count {
                counter,
                exception,
                on_success,
            } => {
                let counted = match (raised, on_success) {
                    (Some(e), _) => e.is_instance(exception.bind(py))?,
                    (None, OnSuccess::Nothing) => false,
                    (None, OnSuccess::Count) => true,
                    (None, OnSuccess::Ask) => py.None().bind(py).is_instance(exception.bind(py))?,
                };
                if counted {
                    count_one(counter.bind(py))?;
                }
                Ok(())
            }
            Action::Track { gauge } => gauge_step(gauge.bind(py), false),
            Action::Time { timer } => {
                let Begun::At(start) = begun else {
                    return Ok(());
                };
                // Time can go backwards.
                let seconds = elapsed(py, start)?.max(0.0);
                timer.get().record(py, seconds)
            }
        }
    }
}

impl DecoratedFunction {
    /// One decorated call; `call` calls the function (a new reference, or NULL and an error).
    /// A coroutine function's call gives a `DecoratedCoroutine`, measured while it is awaited.
    ///
    /// # Safety
    /// As for [`finish`], for what `call` returns.
    unsafe fn run(
        slf: Borrowed<'_, '_, Self>,
        call: impl FnOnce() -> *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        let py = slf.py();
        let this = slf.get();
        if this.is_coroutine_function {
            return DecoratedCoroutine::wrap(slf, call());
        }
        let begun = match this.action.begin(py) {
            Ok(begun) => begun,
            Err(e) => {
                e.restore(py);
                return std::ptr::null_mut();
            }
        };
        // The gauge went up before the call, so it comes down even when the arguments do not
        // bind; the other actions leave such a call unmeasured.
        let also_binding_errors = matches!(this.action, Action::Track { .. });
        finish(py, call(), also_binding_errors, |raised| {
            this.action.end(py, begun, raised)
        })
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, Meta> {
        self.meta.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Getters and setters of the metadata; a setter drops the old value outside the lock (its
/// finalizer may run Python code).
macro_rules! meta_attributes {
    ($($field:ident: $get:ident, $set:ident, $attr:literal, $check:expr;)*) => {
        #[pymethods]
        impl DecoratedFunction {
            $(
                #[getter($attr)]
                fn $get(&self, py: Python<'_>) -> Py<PyAny> {
                    self.meta().$field.clone_ref(py)
                }

                #[setter($attr)]
                fn $set(&self, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
                    let Some(value) = value else {
                        return Err(PyTypeError::new_err(concat!("cannot delete ", $attr)));
                    };
                    let check: fn(&Bound<'_, PyAny>) -> PyResult<()> = $check;
                    check(&value)?;
                    let old = std::mem::replace(&mut self.meta().$field, value.unbind());
                    drop(old);
                    Ok(())
                }
            )*
        }
    };
}

fn any(_: &Bound<'_, PyAny>) -> PyResult<()> {
    Ok(())
}

fn a_str(value: &Bound<'_, PyAny>) -> PyResult<()> {
    if value.is_instance_of::<PyString>() {
        return Ok(());
    }
    Err(PyTypeError::new_err("must be set to a string object"))
}

fn tuple_or_none(value: &Bound<'_, PyAny>) -> PyResult<()> {
    if value.is_none() || value.is_instance_of::<PyTuple>() {
        return Ok(());
    }
    Err(PyTypeError::new_err(
        "__defaults__ must be set to a tuple object",
    ))
}

fn dict_or_none(value: &Bound<'_, PyAny>) -> PyResult<()> {
    if value.is_none() || value.is_instance_of::<PyDict>() {
        return Ok(());
    }
    Err(PyTypeError::new_err("must be set to a dict object"))
}

meta_attributes! {
    name: get_name, set_name, "__name__", a_str;
    qualname: get_qualname, set_qualname, "__qualname__", a_str;
    doc: get_doc, set_doc, "_fastprom_doc", any;
    module: get_module, set_module, "_fastprom_module", any;
    defaults: get_defaults, set_defaults, "__defaults__", tuple_or_none;
    kwdefaults: get_kwdefaults, set_kwdefaults, "__kwdefaults__", dict_or_none;
    annotations: get_annotations, set_annotations, "__annotations__", dict_or_none;
}

#[pymethods]
impl DecoratedFunction {
    /// `DecoratedFunction(func, manager)`: `manager` is an `ExceptionCounter`,
    /// `InprogressTracker` or `Timer` (of exactly those classes).
    #[new]
    fn new(func: &Bound<'_, PyAny>, manager: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = func.py();
        let action = if let Ok(m) = manager.cast_exact::<ExceptionCounter>() {
            let m = m.get();
            let exception = m.exception.bind(py);
            let on_success = if !is_plain_classes(exception) {
                OnSuccess::Ask
            } else if py.None().bind(py).is_instance(exception)? {
                OnSuccess::Count
            } else {
                OnSuccess::Nothing
            };
            Action::Count {
                counter: m.counter.clone_ref(py),
                exception: exception.clone().unbind(),
                on_success,
            }
        } else if let Ok(m) = manager.cast_exact::<InprogressTracker>() {
            Action::Track {
                gauge: m.get().gauge.clone_ref(py),
            }
        } else if let Ok(timer) = manager.cast_exact::<Timer>() {
            Action::Time {
                timer: timer.clone().unbind(),
            }
        } else {
            return Err(PyTypeError::new_err(
                "DecoratedFunction needs an ExceptionCounter, InprogressTracker or Timer",
            ));
        };
        let attr = |name: &Bound<'_, PyString>| -> PyResult<Py<PyAny>> {
            Ok(func.getattr(name)?.unbind())
        };
        let meta = Meta {
            name: attr(intern!(py, "__name__"))?,
            qualname: attr(intern!(py, "__qualname__"))?,
            doc: attr(intern!(py, "__doc__"))?,
            module: attr(intern!(py, "__module__"))?,
            defaults: attr(intern!(py, "__defaults__"))?,
            kwdefaults: attr(intern!(py, "__kwdefaults__"))?,
            annotations: attr(intern!(py, "__annotations__"))?,
        };
        let is_coroutine_function = py
            .import(intern!(py, "inspect"))?
            .call_method1(intern!(py, "iscoroutinefunction"), (func,))?
            .is_truthy()?;
        Ok(DecoratedFunction {
            vectorcall: call_decorated,
            func: func.clone().unbind(),
            action,
            is_coroutine_function,
            meta: Mutex::new(meta),
        })
    }

    /// Called without vectorcall (`PyObject_Call` with a tuple and a dict).
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let func = slf.get().func.as_ptr();
        let kwargs = kwargs.map_or(std::ptr::null_mut(), |k| k.as_ptr());
        // SAFETY: valid objects; the result is a new reference or NULL with an error set.
        unsafe {
            let call = || ffi::PyObject_Call(func, args.as_ptr(), kwargs);
            let result = DecoratedFunction::run(slf.as_borrowed(), call);
            Bound::from_owned_ptr_or_err(py, result).map(Bound::unbind)
        }
    }

    /// A class attribute binds as a method, as a function does.
    fn __get__(
        slf: &Bound<'_, Self>,
        instance: Option<&Bound<'_, PyAny>>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        match instance.filter(|i| !i.is_none()) {
            None => Ok(slf.clone().into_any().unbind()),
            // SAFETY: valid objects; PyMethod_New returns a new reference or NULL.
            Some(i) => unsafe {
                Bound::from_owned_ptr_or_err(slf.py(), PyMethod_New(slf.as_ptr(), i.as_ptr()))
                    .map(Bound::unbind)
            },
        }
    }

    /// The wrapped function's code, globals and closure (`inspect` reads the signature from
    /// the code and the defaults above, as for a function).
    #[getter]
    fn __code__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.func.bind(py).getattr(intern!(py, "__code__"))
    }

    #[getter]
    fn __globals__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.func.bind(py).getattr(intern!(py, "__globals__"))
    }

    #[getter]
    fn __closure__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.func.bind(py).getattr(intern!(py, "__closure__"))
    }

    #[getter]
    fn __builtins__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.func.bind(py).getattr(intern!(py, "__builtins__"))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let qualname = slf.get().get_qualname(slf.py());
        Ok(format!(
            "<function {} at {:#x}>",
            qualname.bind(slf.py()).str()?,
            slf.as_ptr() as usize
        ))
    }

    /// Pickled by reference, as a function is (`module.qualname`).
    fn __reduce__(&self, py: Python<'_>) -> Py<PyAny> {
        self.get_qualname(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.func)?;
        match &self.action {
            Action::Count {
                counter, exception, ..
            } => {
                visit.call(counter)?;
                visit.call(exception)?;
            }
            Action::Track { gauge } => visit.call(gauge)?,
            Action::Time { timer } => visit.call(timer)?,
        }
        // A setter holds the lock only around a swap, which never runs Python code.
        if let Ok(meta) = self.meta.try_lock() {
            for field in [
                &meta.name,
                &meta.qualname,
                &meta.doc,
                &meta.module,
                &meta.defaults,
                &meta.kwdefaults,
                &meta.annotations,
            ] {
                visit.call(field)?;
            }
        }
        Ok(())
    }
}

/// Adds the classes to the module and makes `DecoratedFunction` callable through vectorcall.
pub fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ExceptionCounter>()?;
    m.add_class::<InprogressTracker>()?;
    m.add_class::<DecoratedFunction>()?;
    super::awaitable::install(m)?;
    let py = m.py();
    static PATCHED: Once = Once::new();
    let mut result = Ok(());
    PATCHED.call_once(|| result = enable_vectorcall(py));
    result
}

/// Points the type's `tp_vectorcall_offset` at the `vectorcall` field, found in an instance.
fn enable_vectorcall(py: Python<'_>) -> PyResult<()> {
    let none = py.None();
    let sample = Bound::new(
        py,
        DecoratedFunction {
            vectorcall: call_decorated,
            func: none.clone_ref(py),
            action: Action::Track {
                gauge: none.clone_ref(py),
            },
            is_coroutine_function: false,
            meta: Mutex::new(Meta {
                name: none.clone_ref(py),
                qualname: none.clone_ref(py),
                doc: none.clone_ref(py),
                module: none.clone_ref(py),
                defaults: none.clone_ref(py),
                kwdefaults: none.clone_ref(py),
                annotations: none.clone_ref(py),
            }),
        },
    )?;
    let field = &sample.get().vectorcall as *const ffi::vectorcallfunc as usize;
    let offset = field - sample.as_ptr() as usize;
    let class = py.get_type::<DecoratedFunction>();
    let tp = class.as_type_ptr();
    // SAFETY: the offset is that of the field in every instance (one layout per class); the
    // flag and offset are read at each call, and no instance was called before.
    unsafe {
        if offset + std::mem::size_of::<ffi::vectorcallfunc>() > (*tp).tp_basicsize as usize {
            return Err(PySystemError::new_err(
                "DecoratedFunction: unexpected layout",
            ));
        }
        (*tp).tp_vectorcall_offset = offset as ffi::Py_ssize_t;
        (*tp).tp_flags |= ffi::Py_TPFLAGS_HAVE_VECTORCALL;
        ffi::PyType_Modified(tp);
    }
    // `__doc__` and `__module__` of an instance are its own, as a function's are.
    for (attr, descriptor) in [
        ("__doc__", "_fastprom_doc"),
        ("__module__", "_fastprom_module"),
    ] {
        let getset = class.getattr("__dict__")?.get_item(descriptor)?;
        class.setattr(attr, getset)?;
        class.delattr(descriptor)?;
    }
    Ok(())
}
