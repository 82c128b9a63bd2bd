"""Context managers / decorators behind count_exceptions(), track_inprogress() and time().

All three are native (`ExceptionCounter`, `InprogressTracker`, `Timer`): `with` runs their
`__enter__`/`__exit__` without Python frames. Used as decorators on a plain function they give
a native `DecoratedFunction`, which measures each call around a direct call of the function
and keeps its signature and metadata (`__name__`, `__qualname__`, `__doc__`, `__module__`,
`__dict__`, `__wrapped__`). Decorating an ``async def`` gives a coroutine function whose calls
return a native `DecoratedCoroutine`, measured from its first step to its end (the awaited call;
the reference measures only the coroutine's creation).

`Timer` reads this module's `default_timer` at each call (tests patch it).
"""

from inspect import iscoroutinefunction
from timeit import default_timer  # noqa: F401  (read by the native Timer at each call)
from typing import Any, Callable, TypeVar

from ._native import DecoratedCoroutine, DecoratedFunction, ExceptionCounter, InprogressTracker, Timer
from .decorator import _wrapper_source, decorate

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ['DecoratedCoroutine', 'DecoratedFunction', 'ExceptionCounter', 'InprogressTracker', 'Timer']

# The managers whose decorated calls DecoratedFunction runs itself; a subclass may override
# __enter__/__exit__, so its calls go through `with`.
_NATIVE_MANAGERS = (ExceptionCounter, InprogressTracker, Timer)


def _decorate_with(f, new_context):
    """Wrap f so every call runs inside the context manager returned by new_context() (for a
    subclass of the managers, whose __enter__/__exit__ may be its own)."""
    if iscoroutinefunction(f):
        async def caller(func, *args, **kwargs):
            with new_context():
                return await func(*args, **kwargs)
    else:
        def caller(func, *args, **kwargs):
            with new_context():
                return func(*args, **kwargs)
    return decorate(f, caller)


def _decorate_native(f, manager, new_context=None):
    """What `manager(f)` returns: `new_context()` (default: the manager itself) is the
    context manager of each call when the call cannot be native."""
    if new_context is None:
        def new_context():
            return manager
    if type(manager) not in _NATIVE_MANAGERS:
        return _decorate_with(f, new_context)
    # The reference's checks (a plain function), and its wrapper's `__source__`.
    inner = f
    while type(inner) is DecoratedFunction:  # stacked decorators
        inner = inner.__wrapped__
    source = _wrapper_source(inner, False)[-1]
    wrapper = DecoratedFunction(f, manager)
    wrapper.__dict__.update(f.__dict__)
    wrapper.__wrapped__ = f
    wrapper.__source__ = source
    return wrapper
