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


# Timer is native: `with hist.time():` runs __enter__/__exit__ without Python frames. It reads
# this module's `default_timer` at each call and uses `_decorate_with` as a decorator.
from ._native import Timer  # noqa: E402
