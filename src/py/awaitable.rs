//! `DecoratedCoroutine`: what a decorated coroutine function's call returns.
//!
//! Calling a `DecoratedFunction` made from an `async def` calls the function, which only
//! creates its coroutine, and returns this object around that coroutine. Awaiting it steps the
//! coroutine directly: `__await__` returns the object itself, and its `send`, `throw`, `close`,
//! `__next__` (what `await` uses on 3.12 and later) and `am_send` slot (what `await` uses on
//! 3.10 and 3.11, and asyncio's tasks on all) pass each step on as an `await` would. The measurement begins at the first step and ends when the coroutine returns,
//! raises (a cancelled task's `CancelledError` too) or is closed: what
//! `async def g(...): with manager: return await f(...)` measures, with no Python frame.
//!
//! It is a `collections.abc.Coroutine` (`asyncio.run`, `create_task` and `gather` take it),
//! not a `types.CoroutineType`.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU8, Ordering};

use pyo3::exceptions::{
    PyGeneratorExit, PyRuntimeError, PyStopIteration, PyTypeError, PyValueError,
};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyTraceback, PyTuple, PyType};
use pyo3::{Borrowed, PyTraverseError, PyVisit};

use super::decorators::{chain, Begun, DecoratedFunction};

// Where the coroutine is. The stage is also the lock of what it holds: a step claims the
// coroutine by moving it to RUNNING, and gives it back by storing the next stage.
/// Not stepped yet: nothing measured.
const CREATED: u8 = 0;
/// Stepped and waiting: the measurement runs.
const SUSPENDED: u8 = 1;
/// A step is running (a nested step is refused, as a coroutine refuses it).
const RUNNING: u8 = 2;
/// Returned, raised or closed: later steps fail as a finished coroutine's do.
const FINISHED: u8 = 3;

/// What the coroutine holds between steps.
struct Held {
    /// What the awaited steps go to: the function's coroutine (or its `__await__()` iterator).
    /// `None` once finished (or cleared by the garbage collector).
    inner: Option<Py<PyAny>>,
    /// When the measurement began (SUSPENDED).
    begun: Begun,
}

impl Held {
    const NOTHING: Held = Held {
        inner: None,
        begun: Begun::Nothing,
    };
}

/// A decorated coroutine function's coroutine, measured while it is awaited.
#[pyclass(frozen, weakref, module = "fastprom.context_managers")]
pub struct DecoratedCoroutine {
    /// The decorated function, whose action measures.
    decorated: Py<DecoratedFunction>,
    stage: AtomicU8,
    /// Read and written only by the step that claimed the coroutine (`claim`), and by the
    /// garbage collector when no step runs.
    held: UnsafeCell<Held>,
}

// SAFETY: `held` is only touched under the claim on `stage` (see `claim` and `__traverse__`).
unsafe impl Sync for DecoratedCoroutine {}

/// How the awaiting code steps the coroutine.
enum Step<'a, 'py> {
    Send(Borrowed<'a, 'py, PyAny>),
    /// `throw(typ[, val[, tb]])`'s arguments.
    Throw(&'a Bound<'py, PyTuple>),
    Close,
}

/// What a step gave back.
enum Outcome {
    Yielded(Py<PyAny>),
    Returned(Py<PyAny>),
}

impl DecoratedCoroutine {
    /// The call's result: `result` (a new reference, or NULL with an error set, passed on
    /// unmeasured as the reference's binding errors are) wrapped for `decorated`.
    ///
    /// # Safety
    /// The thread is attached; `result` is a new reference or NULL with an error set.
    pub(super) unsafe fn wrap(
        decorated: Borrowed<'_, '_, DecoratedFunction>,
        result: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        let py = decorated.py();
        let made = Bound::from_owned_ptr_or_err(py, result).and_then(|awaitable| {
            let inner = if ffi::PyCoro_CheckExact(result) != 0 {
                awaitable
            } else {
                awaitable.call_method0(intern!(py, "__await__"))?
            };
            let held = Held {
                inner: Some(inner.unbind()),
                begun: Begun::Nothing,
            };
            Bound::new(
                py,
                DecoratedCoroutine {
                    decorated: decorated.to_owned().unbind(),
                    stage: AtomicU8::new(CREATED),
                    held: UnsafeCell::new(held),
                },
            )
        });
        match made {
            Ok(coroutine) => coroutine.into_ptr(),
            Err(e) => {
                e.restore(py);
                std::ptr::null_mut()
            }
        }
    }

    /// Claims the coroutine for one step: its stage, and what it held (taken out); `None`
    /// while another step runs.
    fn claim(&self) -> Option<(u8, Held)> {
        let mut stage = self.stage.load(Ordering::Relaxed);
        loop {
            if stage == RUNNING {
                return None;
            }
            match self.stage.compare_exchange_weak(
                stage,
                RUNNING,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => stage = now,
            }
        }
        // SAFETY: the claim is ours until `release`.
        let held = unsafe { std::mem::replace(&mut *self.held.get(), Held::NOTHING) };
        Some((stage, held))
    }

    /// Ends the claim: the coroutine is at `stage`, holding `held`.
    fn release(&self, stage: u8, held: Held) {
        // SAFETY: the claim is ours (`claim` emptied the cell, so nothing is dropped here).
        unsafe { *self.held.get() = held };
        self.stage.store(stage, Ordering::Release);
    }

    /// Ends the claim at `stage` (CREATED or SUSPENDED), the inner coroutine held again.
    fn wait(&self, stage: u8, inner: &Bound<'_, PyAny>, begun: Begun) {
        let inner = Some(inner.clone().unbind());
        self.release(stage, Held { inner, begun });
    }

    /// Ends the claim for good: the inner coroutine is let go by the caller.
    fn set_finished(&self) {
        self.release(FINISHED, Held::NOTHING);
    }

    /// One step: the coroutine is RUNNING while the inner one runs.
    fn step(&self, py: Python<'_>, how: Step<'_, '_>) -> PyResult<Outcome> {
        let Some((stage, held)) = self.claim() else {
            return Err(PyValueError::new_err("coroutine already executing"));
        };
        let Some(inner) = held.inner else {
            self.set_finished();
            return finished(py, how);
        };
        let inner = inner.into_bound(py);
        if stage == CREATED {
            self.start(py, &inner, how)
        } else {
            self.resume(py, &inner, held.begun, how)
        }
    }

    /// The first step: the measurement begins when the coroutine starts running.
    fn start(
        &self,
        py: Python<'_>,
        inner: &Bound<'_, PyAny>,
        how: Step<'_, '_>,
    ) -> PyResult<Outcome> {
        match how {
            Step::Send(value) if !value.is_none() => {
                self.wait(CREATED, inner, Begun::Nothing);
                Err(PyTypeError::new_err(
                    "can't send non-None value to a just-started coroutine",
                ))
            }
            Step::Send(value) => match self.decorated.get().action.begin(py) {
                Ok(begun) => self.resume(py, inner, begun, Step::Send(value)),
                Err(e) => {
                    // As a `with` whose `__enter__` raised: the function never runs.
                    self.set_finished();
                    close(inner)?;
                    Err(e)
                }
            },
            // Raised where the coroutine starts, before any measurement.
            Step::Throw(args) => {
                let thrown = match thrown(args) {
                    Ok(thrown) => thrown,
                    Err(invalid) => {
                        self.wait(CREATED, inner, Begun::Nothing);
                        return Err(invalid);
                    }
                };
                self.set_finished();
                close(inner)?;
                Err(thrown)
            }
            Step::Close => {
                self.set_finished();
                close(inner)?;
                Ok(Outcome::Returned(py.None()))
            }
        }
    }

    /// A step of a started coroutine, ending the measurement when the coroutine finishes.
    fn resume(
        &self,
        py: Python<'_>,
        inner: &Bound<'_, PyAny>,
        begun: Begun,
        how: Step<'_, '_>,
    ) -> PyResult<Outcome> {
        let action = &self.decorated.get().action;
        let is_close = matches!(how, Step::Close);
        let outcome = match how {
            Step::Send(value) => send(inner, value),
            // As an `await` does: the inner coroutine is closed, then the exception is raised
            // where the coroutine waits.
            Step::Throw(args) if is_generator_exit(args) => {
                close(inner).and_then(|()| Err(thrown(args).unwrap_or_else(|invalid| invalid)))
            }
            Step::Throw(args) => throw(inner, args),
            Step::Close => close(inner).and_then(|()| Err(PyGeneratorExit::new_err(()))),
        };
        let raised = match outcome {
            Ok(Outcome::Yielded(value)) => {
                self.wait(SUSPENDED, inner, begun);
                return Ok(Outcome::Yielded(value));
            }
            Ok(returned) => {
                self.set_finished();
                action.end(py, begun, None)?;
                return Ok(returned);
            }
            Err(raised) => raised,
        };
        self.set_finished();
        let raised = match action.end(py, begun, Some(raised.value(py).as_any())) {
            Ok(()) => raised,
            Err(e) => chain(py, e, raised),
        };
        // `close()` returns once the coroutine has exited on GeneratorExit.
        let quietly_closed = raised.is_instance_of::<PyGeneratorExit>(py)
            || raised.is_instance_of::<PyStopIteration>(py);
        if is_close && quietly_closed {
            return Ok(Outcome::Returned(py.None()));
        }
        Err(raised)
    }

    /// A step's outcome as `send`, `throw` and `__next__` give it: a yielded value, or
    /// `StopIteration(returned)`.
    fn iterate(&self, py: Python<'_>, how: Step<'_, '_>) -> PyResult<Py<PyAny>> {
        match self.step(py, how)? {
            Outcome::Yielded(value) => Ok(value),
            Outcome::Returned(value) => Err(PyStopIteration::new_err((value,))),
        }
    }
}

/// A step of a finished coroutine: `close()` does nothing, the others fail.
fn finished(py: Python<'_>, how: Step<'_, '_>) -> PyResult<Outcome> {
    match how {
        Step::Close => Ok(Outcome::Returned(py.None())),
        Step::Throw(args) => {
            thrown(args)?;
            Err(reused())
        }
        Step::Send(_) => Err(reused()),
    }
}

fn reused() -> PyErr {
    PyRuntimeError::new_err("cannot reuse already awaited coroutine")
}

/// `inner.send(value)` (through `am_send` when it has one: no `StopIteration` object).
fn send(inner: &Bound<'_, PyAny>, value: Borrowed<'_, '_, PyAny>) -> PyResult<Outcome> {
    let py = inner.py();
    let mut result = std::ptr::null_mut();
    // SAFETY: valid objects; `result` is a new reference unless the call failed.
    let status = unsafe { ffi::PyIter_Send(inner.as_ptr(), value.as_ptr(), &mut result) };
    if status == ffi::PySendResult::PYGEN_ERROR {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: a new reference, as the call did not fail.
    let value = unsafe { Bound::from_owned_ptr(py, result) }.unbind();
    Ok(match status {
        ffi::PySendResult::PYGEN_NEXT => Outcome::Yielded(value),
        _ => Outcome::Returned(value),
    })
}

/// `inner.throw(*args)`; an iterator without `throw` has the exception raised at it.
fn throw(inner: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<Outcome> {
    let py = inner.py();
    let Some(method) = inner.getattr_opt(intern!(py, "throw"))? else {
        return Err(thrown(args)?);
    };
    match method.call1(args) {
        Ok(value) => Ok(Outcome::Yielded(value.unbind())),
        Err(e) if e.is_instance_of::<PyStopIteration>(py) => {
            let value = e.value(py).getattr(intern!(py, "value"))?;
            Ok(Outcome::Returned(value.unbind()))
        }
        Err(e) => Err(e),
    }
}

/// `inner.close()`, when it has one.
fn close(inner: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Some(method) = inner.getattr_opt(intern!(inner.py(), "close"))? {
        method.call0()?;
    }
    Ok(())
}

fn is_generator_exit(args: &Bound<'_, PyTuple>) -> bool {
    let Ok(first) = args.get_item(0) else {
        return false;
    };
    // SAFETY: valid objects; the check accepts a class or an instance.
    unsafe { ffi::PyErr_GivenExceptionMatches(first.as_ptr(), ffi::PyExc_GeneratorExit) != 0 }
}

/// The exception `throw(typ[, val[, tb]])` raises (`Ok`), or the `TypeError` a coroutine's
/// `throw` gives for such arguments (`Err`).
fn thrown(args: &Bound<'_, PyTuple>) -> PyResult<PyErr> {
    let py = args.py();
    let given = |i: usize| args.get_item(i).ok().filter(|v| !v.is_none());
    let (typ, value, traceback) = match args.len() {
        1..=3 => (args.get_item(0)?, given(1), given(2)),
        n => {
            return Err(PyTypeError::new_err(format!(
                "throw expected at least 1 argument, got {n}"
            )))
        }
    };
    if traceback
        .as_ref()
        .is_some_and(|tb| !tb.is_instance_of::<PyTraceback>())
    {
        return Err(PyTypeError::new_err(
            "throw() third argument must be a traceback object",
        ));
    }
    let is_class = typ.cast::<PyType>().is_ok_and(|t| {
        t.is_subclass_of::<pyo3::exceptions::PyBaseException>()
            .unwrap_or(false)
    });
    if !is_class {
        if !typ.is_instance_of::<pyo3::exceptions::PyBaseException>() {
            return Err(PyTypeError::new_err(format!(
                "exceptions must be classes or instances deriving from BaseException, not {}",
                typ.get_type().name()?
            )));
        }
        if value.is_some() {
            return Err(PyTypeError::new_err(
                "instance exception may not have a separate value",
            ));
        }
        let thrown = PyErr::from_value(typ);
        if let Some(tb) = traceback {
            thrown.set_traceback(py, Some(tb.cast_into::<PyTraceback>()?));
        }
        return Ok(thrown);
    }
    let into_ptr = |v: Option<Bound<'_, PyAny>>| v.map_or(std::ptr::null_mut(), Bound::into_ptr);
    // SAFETY: Restore steals the three references; CPython normalizes the pair as `raise` does.
    unsafe { ffi::PyErr_Restore(typ.into_ptr(), into_ptr(value), into_ptr(traceback)) };
    Ok(PyErr::fetch(py))
}

#[pymethods]
impl DecoratedCoroutine {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.iterate(py, Step::Send(py.None().bind_borrowed(py)))
    }

    #[pyo3(signature = (value, /))]
    fn send(&self, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.iterate(value.py(), Step::Send(value.as_borrowed()))
    }

    /// `throw(typ[, val[, tb]])`, as a coroutine's.
    #[pyo3(signature = (*args))]
    fn throw(&self, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        self.iterate(args.py(), Step::Throw(args))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        match self.step(py, Step::Close)? {
            Outcome::Returned(_) => Ok(()),
            Outcome::Yielded(_) => Err(PyRuntimeError::new_err("coroutine ignored GeneratorExit")),
        }
    }

    /// The inner coroutine's name, as asyncio's task repr reads it.
    #[getter]
    fn __name__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.decorated
            .bind(py)
            .getattr(intern!(py, "__name__"))
            .map(Bound::unbind)
    }

    #[getter]
    fn __qualname__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.decorated
            .bind(py)
            .getattr(intern!(py, "__qualname__"))
            .map(Bound::unbind)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let qualname = slf.get().__qualname__(slf.py())?;
        Ok(format!(
            "<measured coroutine object {} at {:#x}>",
            qualname.bind(slf.py()).str()?,
            slf.as_ptr() as usize
        ))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.decorated)?;
        // The collector runs with no step running elsewhere (it holds the GIL, or has stopped
        // the other threads); a step running here holds the inner coroutine itself.
        if self.stage.load(Ordering::Acquire) != RUNNING {
            // SAFETY: no step runs, so nothing writes the cell.
            if let Some(inner) = unsafe { &(*self.held.get()).inner } {
                visit.call(inner)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        if let Some((_, held)) = self.claim() {
            self.set_finished();
            drop(held);
        }
    }
}

/// `am_send`: `await` (3.10, 3.11) and asyncio's tasks step the coroutine here without a
/// `StopIteration` per return.
unsafe extern "C" fn am_send(
    receiver: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
    result: *mut *mut ffi::PyObject,
) -> ffi::PySendResult {
    let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let py = Python::assume_attached();
        // SAFETY: CPython calls this slot only for instances of the class.
        let this = Borrowed::from_ptr(py, receiver).cast_unchecked::<DecoratedCoroutine>();
        let value = Borrowed::from_ptr(py, value);
        this.get().step(py, Step::Send(value))
    }));
    let py = Python::assume_attached();
    let step = step.unwrap_or_else(|_| {
        Err(pyo3::panic::PanicException::new_err(
            "fastprom: internal error in a decorated coroutine",
        ))
    });
    match step {
        Ok(Outcome::Yielded(value)) => {
            *result = value.into_ptr();
            ffi::PySendResult::PYGEN_NEXT
        }
        Ok(Outcome::Returned(value)) => {
            *result = value.into_ptr();
            ffi::PySendResult::PYGEN_RETURN
        }
        Err(e) => {
            e.restore(py);
            *result = std::ptr::null_mut();
            ffi::PySendResult::PYGEN_ERROR
        }
    }
}

/// `tp_iternext`: how `await` steps the coroutine on 3.12 and later. A return ends the
/// iteration as a generator's does: no exception for `None`, else `StopIteration(value)`.
unsafe extern "C" fn iter_next(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let mut result = std::ptr::null_mut();
    match am_send(slf, ffi::Py_None(), &mut result) {
        ffi::PySendResult::PYGEN_NEXT => result,
        ffi::PySendResult::PYGEN_ERROR => std::ptr::null_mut(),
        ffi::PySendResult::PYGEN_RETURN => {
            if result != ffi::Py_None() {
                set_stop_iteration(result);
            }
            ffi::Py_DECREF(result);
            std::ptr::null_mut()
        }
    }
}

/// Raises `StopIteration(value)` (a tuple or an exception given as the one argument, not as
/// the arguments or the exception to raise).
unsafe fn set_stop_iteration(value: *mut ffi::PyObject) {
    if ffi::PyTuple_Check(value) == 0 && ffi::PyExceptionInstance_Check(value) == 0 {
        ffi::PyErr_SetObject(ffi::PyExc_StopIteration, value);
        return;
    }
    let stop = ffi::PyObject_CallOneArg(ffi::PyExc_StopIteration, value);
    if !stop.is_null() {
        ffi::PyErr_SetObject(ffi::PyExc_StopIteration, stop);
        ffi::Py_DECREF(stop);
    }
}

/// `am_await`: the object itself (as `__await__`, without a method call's set-up).
unsafe extern "C" fn await_self(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    ffi::Py_NewRef(slf)
}

/// Adds the class, fills its `am_send` slot (PyO3 has no method for it), and its `am_await`
/// and `tp_iternext` with functions that skip a method call's set-up.
pub fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DecoratedCoroutine>()?;
    let class = m.py().get_type::<DecoratedCoroutine>();
    let tp = class.as_type_ptr();
    // SAFETY: a heap type's async methods live in the type object (PyO3 sets them for
    // `__await__`); the slot is read at each send, and no instance exists yet.
    unsafe {
        let methods = (*tp).tp_as_async;
        if methods.is_null() {
            return Err(PyRuntimeError::new_err(
                "DecoratedCoroutine: no async methods",
            ));
        }
        (*methods).am_send = Some(am_send);
        (*methods).am_await = Some(await_self);
        (*tp).tp_iternext = Some(iter_next);
        ffi::PyType_Modified(tp);
    }
    Ok(())
}
