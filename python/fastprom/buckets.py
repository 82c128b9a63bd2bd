"""Bucket helpers with BentoML's results (`bentoml._internal.utils.metrics`), but a clear
ValueError for bad arguments instead of a bare assert."""
from typing import Callable, Tuple

INF = float("inf")
MAX_BUCKET_COUNT = 100

# BentoML's default `request_duration_seconds` buckets (5 ms to 180 s).
DEFAULT_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                            120.0, 180.0, INF)


def exponential_buckets(start: float, factor: float, end: float) -> Tuple[float, ...]:
    """`start, start*factor, ...` below `end` (at most 100 of them), then `end` and +Inf.

        exponential_buckets(1, 2, 100) == (1, 2, 4, 8, 16, 32, 64, 100, inf)
    """
    _check_numbers(start=start, factor=factor, end=end)
    if start <= 0:
        raise ValueError(f'start must be > 0, got {start!r}')
    if factor <= 1:
        raise ValueError(f'factor must be > 1, got {factor!r}')
    return _buckets(start, end, lambda bound: bound * factor)


def linear_buckets(start: float, step: float, end: float) -> Tuple[float, ...]:
    """`start, start+step, ...` below `end` (at most 100 of them), then `end` and +Inf.

        linear_buckets(1.0, 1.0, 10.0) == (1.0, 2.0, ..., 9.0, 10.0, inf)
    """
    _check_numbers(start=start, step=step, end=end)
    if start <= 0:
        raise ValueError(f'start must be > 0, got {start!r}')
    if step <= 0:
        raise ValueError(f'step must be > 0, got {step!r}')
    return _buckets(start, end, lambda bound: bound + step)


def _check_numbers(**values) -> None:
    for name, value in values.items():
        check_number(name, value)


def check_number(name: str, value):
    """`value` itself if it is a finite int or float (not a bool); else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'{name} must be a number, got {value!r}')
    if value != value or value in (INF, -INF):
        raise ValueError(f'{name} must be finite, got {value!r}')
    return value


def _buckets(start: float, end: float, next_bound: Callable[[float], float]) -> Tuple[float, ...]:
    if start >= end:
        raise ValueError(f'start must be < end, got start={start!r}, end={end!r}')
    bounds = []
    bound = start
    while bound < end and len(bounds) < MAX_BUCKET_COUNT:
        bounds.append(bound)
        bound = next_bound(bound)
    return tuple(bounds) + (end, INF)
