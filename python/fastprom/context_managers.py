"""Context managers / decorators behind count_exceptions(), track_inprogress() and time().

Used as decorators they keep the decorated function's signature. Decorating an
``async def`` gives a coroutine function whose measurement spans the awaited call.
"""

from inspect import iscoroutinefunction
from timeit import default_timer
from types import TracebackType
from typing import (
    Any, Callable, Literal, Optional, Tuple, Type, TYPE_CHECKING, TypeVar,
    Union,
)

from .decorator import decorate

if TYPE_CHECKING:
    from . import Counter
    F = TypeVar("F", bound=Callable[..., Any])


def _decorate_with(f, new_context):
    """Wrap f so every call runs inside the context manager returned by new_context()."""
    if iscoroutinefunction(f):
        async def caller(func, *args, **kwargs):
            with new_context():
                return await func(*args, **kwargs)
    else:
        def caller(func, *args, **kwargs):
            with new_context():
                return func(*args, **kwargs)
    return decorate(f, caller)


class ExceptionCounter:
    """Increment a counter when an exception of the given type leaves the block (never swallowed)."""

    def __init__(self, counter: "Counter",
                 exception: Union[Type[BaseException], Tuple[Type[BaseException], ...]]) -> None:
        self._counter = counter
        self._exception = exception

    def __enter__(self) -> None:
        pass

    def __exit__(self, typ: Optional[Type[BaseException]], value: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> Literal[False]:
        if isinstance(value, self._exception):
            self._counter.inc()
        return False

    def __call__(self, f: "F") -> "F":
        return _decorate_with(f, lambda: self)


class InprogressTracker:
    """Increment a gauge on entry and decrement it on exit."""

    def __init__(self, gauge):
        self._gauge = gauge

    def __enter__(self):
        self._gauge.inc()

    def __exit__(self, typ, value, traceback):
        self._gauge.dec()

    def __call__(self, f: "F") -> "F":
        return _decorate_with(f, lambda: self)


class Timer:
    """Measure a block and pass the duration in seconds to getattr(metric, callback_name)."""

    def __init__(self, metric, callback_name):
        self._metric = metric
        self._callback_name = callback_name
        self.duration = None

    def _new_timer(self):
        return self.__class__(self._metric, self._callback_name)

    def __enter__(self):
        self._start = default_timer()
        return self

    def __exit__(self, typ, value, traceback):
        # Time can go backwards.
        self.duration = max(default_timer() - self._start, 0)
        callback = getattr(self._metric, self._callback_name)
        callback(self.duration)

    def labels(self, *args, **kw):
        """Observe into metric.labels(*args, **kw) instead (for `with m.time() as t: t.labels(...)`)."""
        self._metric = self._metric.labels(*args, **kw)

    def __call__(self, f: "F") -> "F":
        # A fresh timer per call keeps the decorator thread-safe and reentrant.
        return _decorate_with(f, self._new_timer)
