"""The six metric types.

Counter, Gauge, Summary and Histogram are native classes: `inc`, `set`, `observe` and `labels`
are methods of the instance's own type, so CPython calls them on its fastest path and they run
without a Python frame. This module writes what runs once per metric (name building,
validation, child construction) and what has to call back into Python, as the classes below,
and grafts those methods onto the native classes. `MetricWrapperBase` is registered as their
virtual base, so `isinstance(counter, MetricWrapperBase)` holds.
"""

import os
import time
import types
from collections.abc import MutableMapping
from threading import Lock
import warnings
from typing import (
    TYPE_CHECKING, Any, Callable, Dict, Iterable, Literal, Optional, Sequence, Tuple, Type, TypeVar,
    Union,
)

from . import _native, values
from .context_managers import ExceptionCounter, InprogressTracker, Timer
from .metrics_core import Metric
from .registry import Collector, CollectorRegistry, REGISTRY
from .samples import Exemplar, Sample  # noqa: F401  (Exemplar: importable from here, as in the reference)
from .utils import floatToGoString, INF  # noqa: F401  (importable from here, as in the reference)
from .validation import _validate_exemplar, _validate_labelnames, _validate_metric_name  # noqa: F401

T = TypeVar('T', bound='MetricWrapperBase')
F = TypeVar('F', bound=Callable[..., Any])

_UNITLESS_TYPES = ('info', 'stateset')


def _build_full_name(metric_type, name, namespace, subsystem, unit):
    """namespace_subsystem_name_unit, the empty parts left out; a counter's `_total` is the
    writers' to add, so it is taken off here."""
    if not name:
        raise ValueError('Metric name should not be empty')
    full_name = '_'.join(part for part in (namespace, subsystem) if part)
    full_name = f'{full_name}_{name}' if full_name else name
    if metric_type == 'counter':
        full_name = full_name[:-len('_total')] if full_name.endswith('_total') else full_name
    if not unit:
        return full_name
    if not full_name.endswith('_' + unit):
        full_name = f'{full_name}_{unit}'
    if metric_type in _UNITLESS_TYPES:
        raise ValueError('Metric name is of a type that cannot have a unit: ' + full_name)
    return full_name


def _created_series_wanted() -> bool:
    setting = os.environ.get('PROMETHEUS_DISABLE_CREATED_SERIES', 'False')
    return setting.lower() not in {'true', '1', 't'}


_get_use_created = _created_series_wanted

# Read at every collection, so tests may patch it.
_use_created = _created_series_wanted()


def _set_created_series(wanted: bool) -> None:
    global _use_created
    _use_created = wanted
    _native.settings_changed()


def disable_created_metrics():
    """Stop exporting the `_created` series of counters, histograms and summaries."""
    _set_created_series(False)


def enable_created_metrics():
    """Export the `_created` series of counters, histograms and summaries again."""
    _set_created_series(True)


def _multiprocess_dir() -> Optional[str]:
    """The multiprocess directory when multiprocess mode is on, read when a metric is created
    (the reference decides at import, so setting the variable after importing does nothing
    there). The legacy lowercase variable is read, never copied."""
    return os.environ.get('PROMETHEUS_MULTIPROC_DIR') or os.environ.get('prometheus_multiproc_dir')


_identifiers_in_use: Dict[str, Callable[[], Any]] = {}


def _follow_identifiers_after_fork():
    for key, identify in list(_identifiers_in_use.items()):
        try:
            _native.multiprocess_identity(key, str(identify()))
        except Exception as error:  # a child must not die of it; its files stay where they were
            warnings.warn(f'multiprocess identifier not followed after fork: {error!r}', UserWarning)


os.register_at_fork(after_in_child=_follow_identifiers_after_fork)


def _multiprocess_storage():
    """(directory, process part of the file names or None for the pid) for a metric created
    now in multiprocess mode, or None for process memory; honours a swapped
    `values.ValueClass`."""
    value_class = values.ValueClass
    if getattr(value_class, '_process_identifier', None) is not None:
        if _multiprocess_dir() is None:
            return None
        values._adopt_legacy_directory()
        identify = value_class._process_identifier
        if identify is os.getpid:
            return os.environ['PROMETHEUS_MULTIPROC_DIR'], None
        # Files named by a class's identifier follow it when it changes (checked here and in
        # a forked child), as the reference's values follow it when they next see it.
        key = value_class._identity_key
        _native.multiprocess_identity(key, str(identify()))
        _identifiers_in_use[key] = identify
        return os.environ['PROMETHEUS_MULTIPROC_DIR'], key
    if value_class is not values._import_value_class and value_class is values.MutexValue:
        return None
    directory = _multiprocess_dir()
    return (directory, None) if directory else None


class MetricWrapperBase(Collector):
    _type: Optional[str] = None
    _reserved_labelnames: Sequence[str] = ()

    def _is_parent(self):
        """A metric with label names whose children hold the values."""
        return self._labelnames and not self._labelvalues

    def _is_observable(self):
        """Unlabelled, or a labelled metric's child: something that holds values."""
        return not self._is_parent()

    def _raise_if_not_observable(self):
        if self._is_parent():
            raise ValueError(f'{self._type} metric is missing label values')

    def _get_metric(self):
        return Metric(self._name, self._documentation, self._type, self._unit)

    def describe(self) -> Iterable[Metric]:
        return [self._get_metric()]

    def collect(self) -> Iterable[Metric]:
        family = self._get_metric()
        for suffix, *rest in self._samples():
            family.add_sample(self._name + suffix, *rest)
        return [family]

    def __str__(self) -> str:
        return f'{self._type}:{self._name}'

    def __repr__(self) -> str:
        cls = type(self)
        return f'{cls.__module__}.{cls.__name__}({self._name})'

    def __init__(self: T, name: str, documentation: str, labelnames: Iterable[str] = (),
                 namespace: str = '', subsystem: str = '', unit: str = '',
                 registry: Optional[CollectorRegistry] = REGISTRY,
                 _labelvalues: Optional[Sequence[str]] = None) -> None:
        foreign_values.adopt(self)
        self._original_name, self._namespace, self._subsystem = name, namespace, subsystem
        self._name = _build_full_name(self._type, name, namespace, subsystem, unit)
        self._labelnames = _validate_labelnames(self, labelnames)
        self._labelvalues = tuple(_labelvalues or ())
        self._kwargs: Dict[str, Any] = {}
        self._documentation, self._unit = documentation, unit
        _validate_metric_name(self._name)
        if self._is_parent():
            # _lock serialises adding and removing children; lookups read _metrics without it.
            self._lock = Lock()
            self._metrics = self._init_parent()
        else:
            self._metric_init()
        # Children are not registered: their parent collects them.
        if registry and not self._labelvalues:
            registry.register(self)

    def _init_parent(self) -> MutableMapping:
        """Return the mapping of children (label-value tuple to child). Native metrics return
        a native mapping over the children they keep in Rust."""
        return {}

    def _link_child(self, labelvalues, child) -> None:
        """A child was added. Native metrics add it to what they export."""

    def _unlink_children(self, keys) -> None:
        """Children were removed (all of them when keys is None)."""

    def _new_child(self: T, labelvalues: Tuple[str, ...]) -> T:
        # Called as the reference builds children (keyword arguments, the extra constructor
        # arguments from _kwargs): subclasses rely on that call.
        extra = {k: v for k, v in (self._kwargs or {}).items()
                 if k not in ('namespace', 'subsystem', 'unit')}
        return type(self)(
            getattr(self, '_original_name', self._name), documentation=self._documentation,
            labelnames=self._labelnames, namespace=getattr(self, '_namespace', ''),
            subsystem=getattr(self, '_subsystem', ''), unit=getattr(self, '_unit', ''),
            _labelvalues=labelvalues, **extra)

    def labels(self: T, *labelvalues: object, **labelkwargs: object) -> T:
        """Return the child for the given labelset.

        Native metrics answer from Rust when the child exists and come here otherwise.
        """
        key = self._child_key(labelvalues, labelkwargs)
        with self._lock:
            child = self._metrics.get(key)
            if child is None:
                child = self._new_child(key)
                self._metrics[key] = child
                self._link_child(key, child)
            return child

    _labels_slow = labels

    def _require_label_names(self) -> None:
        if not self._labelnames:
            raise ValueError(f'No label names were set when constructing {self}')

    def _child_key(self, positional: tuple, named: dict) -> Tuple[str, ...]:
        """The children dict's key for a `labels()` call, or the reference's error."""
        self._require_label_names()
        if self._labelvalues:
            given = dict(zip(self._labelnames, self._labelvalues))
            raise ValueError(f'{self} already has labels set ({given}); can not chain calls to .labels()')
        if positional and named:
            raise ValueError("Can't pass both *args and **kwargs")
        if not named:
            if len(positional) != len(self._labelnames):
                raise ValueError('Incorrect label count')
            return tuple(map(str, positional))
        if sorted(named) != sorted(self._labelnames):
            raise ValueError('Incorrect label names')
        return tuple(str(named[label]) for label in self._labelnames)

    def remove(self, *labelvalues: Any) -> None:
        self._require_label_names()
        if len(labelvalues) != len(self._labelnames):
            raise ValueError('Incorrect label count (expected %d, got %s)' % (len(self._labelnames), labelvalues))
        key = tuple(str(value) for value in labelvalues)
        with self._lock:
            self._drop_children([key])

    def remove_by_labels(self, labels: dict[str, str]) -> None:
        """Remove all series whose labelset partially matches the given labels."""
        self._require_label_names()

        if not isinstance(labels, dict):
            raise TypeError("labels must be a dict of {label_name: label_value}")

        if not labels:
            return

        invalid = [k for k in labels.keys() if k not in self._labelnames]
        if invalid:
            raise ValueError(
                'Unknown label names: %s; expected %s' % (invalid, self._labelnames)
            )

        wanted = {self._labelnames.index(k): str(v) for k, v in labels.items()}
        with self._lock:
            keys = [key for key in self._metrics
                    if all(key[pos] == value for pos, value in wanted.items())]
            self._drop_children(keys)

    def clear(self) -> None:
        """Remove all labelsets from the metric"""
        if not self._labelnames:
            return
        with self._lock:
            # Cleared in place: native metrics hold this very mapping.
            self._metrics.clear()
            self._unlink_children(None)

    def _drop_children(self, keys) -> None:
        # Caller holds self._lock.
        for key in keys:
            if self._metrics.pop(key, None) is not None:
                self._unlink_children([key])

    def _samples(self) -> Iterable[Sample]:
        return self._multi_samples() if self._is_parent() else self._child_samples()

    def _multi_samples(self) -> Iterable[Sample]:
        with self._lock:
            children = list(self._metrics.items())
        for key, child in children:
            child_labels = dict(zip(self._labelnames, key))
            for suffix, labels, *rest in child._samples():
                # The child's own labels (le, quantile) come after the metric's.
                yield Sample(suffix, {**child_labels, **labels}, *rest)

    def _child_samples(self) -> Iterable[Sample]:  # pragma: no cover
        raise NotImplementedError('_child_samples() must be implemented by %r' % self)

    def _metric_init(self):  # pragma: no cover
        """Initialize the metric object as a child, i.e. when its labels (if any) are set."""
        raise NotImplementedError('_metric_init() must be implemented by %r' % self)


if TYPE_CHECKING:
    # Type checkers read each mixin as what it is grafted into: a MetricWrapperBase and a
    # native metric.
    class _MethodsBase(MetricWrapperBase, _native._Metric):
        pass
else:
    _MethodsBase = object


class _CounterMethods(_MethodsBase):
    """A Counter tracks counts of events or running totals.

        c = Counter('my_failures_total', 'Description of counter')
        c.inc()     # Increment by 1
        c.inc(1.6)  # Increment by given value

        @c.count_exceptions()
        def f():
            pass

    `inc(amount=1, exemplar=None)` and `reset()` are native.
    """
    _type = 'counter'

    def _metric_init(self) -> None:
        self._init_child(time.time())

    def count_exceptions(self, exception: Union[Type[BaseException], Tuple[Type[BaseException], ...]] = Exception) -> ExceptionCounter:
        """Count exceptions in a block of code or function (decorator or context manager)."""
        self._raise_if_not_observable()
        return ExceptionCounter(self, exception)


_GaugeMode = Literal['all', 'liveall', 'min', 'livemin', 'max', 'livemax', 'sum', 'livesum',
                     'mostrecent', 'livemostrecent']


class _GaugeMethods(_MethodsBase):
    """Gauge metric, to report instantaneous values.

        g = Gauge('my_inprogress_requests', 'Description of gauge')
        g.inc()      # Increment by 1
        g.dec(10)    # Decrement by given value
        g.set(4.2)   # Set to a given value

    `inc`, `dec` and `set` are native.
    """
    _type = 'gauge'
    _MULTIPROC_MODES = frozenset(_GaugeMode.__args__)  # type: ignore[attr-defined]
    _MOST_RECENT_MODES = frozenset(('mostrecent', 'livemostrecent'))

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (),
                 namespace: str = '', subsystem: str = '', unit: str = '',
                 registry: Optional[CollectorRegistry] = REGISTRY,
                 _labelvalues: Optional[Sequence[str]] = None,
                 multiprocess_mode: _GaugeMode = 'all'):
        if multiprocess_mode not in self._MULTIPROC_MODES:
            raise ValueError('Invalid multiprocess mode: ' + multiprocess_mode)
        self._multiprocess_mode = multiprocess_mode
        MetricWrapperBase.__init__(self, name, documentation, labelnames, namespace, subsystem,
                                   unit, registry, _labelvalues)
        self._kwargs['multiprocess_mode'] = multiprocess_mode
        self._is_most_recent = multiprocess_mode in self._MOST_RECENT_MODES

    def _metric_init(self) -> None:
        self._init_child(0.0)

    def set_to_current_time(self) -> None:
        """Set gauge to the current unixtime."""
        self.set(time.time())

    def track_inprogress(self) -> InprogressTracker:
        """Increment the gauge while a block of code or function runs."""
        self._raise_if_not_observable()
        return InprogressTracker(self)

    def time(self) -> Timer:
        """Time a block of code or function, and set the duration in seconds."""
        return Timer(self, 'set')

    def set_function(self, f: Callable[[], float]) -> None:
        """Call the provided function to return the Gauge value.

        The function must return a float, and may be called from multiple threads.
        All other methods of the Gauge become NOOPs.
        """
        self._raise_if_not_observable()

        def samples(_: 'Gauge') -> Iterable[Sample]:
            return (Sample('', {}, float(f()), None, None),)

        self._child_samples = types.MethodType(samples, self)  # type: ignore
        self._mark_python_samples()


Objectives = Union[Dict[float, float], Iterable[Tuple[float, float]]]


def _quantile_objectives(objectives: Optional[Objectives], invariants: Optional[Objectives]):
    """The (quantile, error) pairs asked for by client_golang's `objectives` ({q: e}) or the
    prometheus-summary package's `invariants` (((q, e), ...)), sorted; () for none."""
    if objectives is not None and invariants is not None:
        raise ValueError('Pass objectives or invariants, not both')
    given = objectives if objectives is not None else invariants
    if not given:
        return ()
    pairs = given.items() if isinstance(given, dict) else given
    checked = []
    for quantile, error in pairs:
        quantile, error = float(quantile), float(error)
        if not 0 < quantile < 1:
            raise ValueError(f'Quantile {quantile} is not between 0 and 1 (exclusive)')
        if not 0 < error < 1:
            raise ValueError(f'Error {error} of quantile {quantile} is not between 0 and 1 (exclusive)')
        checked.append((quantile, error))
    if len({q for q, _ in checked}) != len(checked):
        raise ValueError('A quantile is given twice')
    return tuple(sorted(checked))


class _SummaryMethods(_MethodsBase):
    """A Summary tracks the size and number of events.

        s = Summary('request_size_bytes', 'Request size (bytes)')
        s.observe(512)

    With `objectives={0.5: 0.05, 0.9: 0.01, 0.99: 0.001}` it also reports those quantiles of
    the observations of the last `max_age` seconds, the window sliding in `age_buckets` steps,
    as client_golang's summaries do: the value for quantile q with error e is the phi-quantile
    for some phi in [q - e, q + e]; NaN while the window is empty. In multiprocess mode each
    process keeps a mergeable sketch (windows aligned on wall-clock time) and the collector
    reports the quantiles of all processes' observations within 1% of the value (an error in
    value, not in rank). The prometheus-summary package's `invariants=((q, e), ...)` and
    `max_age_seconds=` are accepted too.

    `observe` is native.
    """
    _type = 'summary'
    _reserved_labelnames = ['quantile']

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (),
                 namespace: str = '', subsystem: str = '', unit: str = '',
                 registry: Optional[CollectorRegistry] = REGISTRY,
                 _labelvalues: Optional[Sequence[str]] = None, *,
                 objectives: Optional[Objectives] = None, max_age: Optional[float] = None,
                 age_buckets: int = 5, invariants: Optional[Objectives] = None,
                 max_age_seconds: Optional[float] = None):
        self._objectives = _quantile_objectives(objectives, invariants)
        if max_age is not None and max_age_seconds is not None:
            raise ValueError('Pass max_age or max_age_seconds, not both')
        window = max_age if max_age is not None else max_age_seconds
        self._max_age = 600.0 if window is None else float(window)
        if not self._max_age > 0:
            raise ValueError(f'max_age must be positive, not {window!r}')
        if isinstance(age_buckets, bool) or not isinstance(age_buckets, int) or age_buckets < 1:
            raise ValueError(f'age_buckets must be a positive integer, not {age_buckets!r}')
        self._age_buckets = age_buckets
        MetricWrapperBase.__init__(self, name, documentation, labelnames, namespace, subsystem,
                                   unit, registry, _labelvalues)
        if self._objectives:
            self._kwargs.update(objectives=self._objectives, max_age=self._max_age,
                                age_buckets=self._age_buckets)

    def _metric_init(self) -> None:
        self._init_child(time.time())

    def time(self) -> Timer:
        """Time a block of code or function, and observe the duration in seconds."""
        return Timer(self, 'observe')


def _native_histogram_settings(native_histogram_bucket_factor, native_histogram_initial_schema,
                               native_histogram_zero_threshold, native_histogram_max_buckets,
                               native_histogram_min_reset_duration,
                               native_histogram_max_zero_threshold):
    """(schema, zero threshold, max buckets, min reset seconds, max zero threshold) of a
    histogram with native buckets, or None. client_golang's knobs: the bucket factor picks the
    finest schema whose buckets grow by at most that factor (1.1: schema 3); a zero threshold of
    None is 2^-128; max buckets 0 is no limit; past the limit the histogram resets if the
    minimum reset duration has passed, else widens its zero bucket up to the maximum zero
    threshold, else halves its resolution."""
    factor, schema = native_histogram_bucket_factor, native_histogram_initial_schema
    if factor is None and schema is None:
        return None
    if factor is not None and schema is not None:
        raise ValueError('Pass native_histogram_bucket_factor or native_histogram_initial_schema, not both')
    if factor is not None:
        schema = _native.native_histogram_schema(float(factor))
        if schema is None:
            raise ValueError(f'native_histogram_bucket_factor must be greater than 1, not {factor!r}')
    elif isinstance(schema, bool) or not isinstance(schema, int) or not -4 <= schema <= 8:
        raise ValueError(f'native_histogram_initial_schema must be an integer from -4 to 8, not {schema!r}')
    zero_threshold = 2.0 ** -128 if native_histogram_zero_threshold is None else float(native_histogram_zero_threshold)
    limits = (('native_histogram_zero_threshold', zero_threshold),
              ('native_histogram_max_buckets', native_histogram_max_buckets),
              ('native_histogram_min_reset_duration', native_histogram_min_reset_duration),
              ('native_histogram_max_zero_threshold', native_histogram_max_zero_threshold))
    for name, value in limits:
        if not value >= 0:
            raise ValueError(f'{name} must not be negative, not {value!r}')
    if isinstance(native_histogram_max_buckets, bool) or not isinstance(native_histogram_max_buckets, int):
        raise ValueError(f'native_histogram_max_buckets must be an integer, not {native_histogram_max_buckets!r}')
    return (schema, zero_threshold, native_histogram_max_buckets,
            float(native_histogram_min_reset_duration), float(native_histogram_max_zero_threshold))


class _HistogramMethods(_MethodsBase):
    """A Histogram tracks the size and number of events in buckets.

        h = Histogram('request_size_bytes', 'Request size (bytes)')
        h.observe(512)

    `observe(amount, exemplar=None)` is native; buckets are found by binary search once there
    are many.
    """
    _type = 'histogram'
    _reserved_labelnames = ['le']
    DEFAULT_BUCKETS = (.005, .01, .025, .05, .075, .1, .25, .5, .75, 1.0, 2.5, 5.0, 7.5, 10.0, INF)

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (),
                 namespace: str = '', subsystem: str = '', unit: str = '',
                 registry: Optional[CollectorRegistry] = REGISTRY,
                 _labelvalues: Optional[Sequence[str]] = None,
                 buckets: Sequence[Union[float, str]] = DEFAULT_BUCKETS, *,
                 native_histogram_bucket_factor: Optional[float] = None,
                 native_histogram_initial_schema: Optional[int] = None,
                 native_histogram_zero_threshold: Optional[float] = None,
                 native_histogram_max_buckets: int = 160,
                 native_histogram_min_reset_duration: float = 0.0,
                 native_histogram_max_zero_threshold: float = 0.0):
        self._prepare_buckets(buckets)
        native = dict(native_histogram_bucket_factor=native_histogram_bucket_factor,
                      native_histogram_initial_schema=native_histogram_initial_schema,
                      native_histogram_zero_threshold=native_histogram_zero_threshold,
                      native_histogram_max_buckets=native_histogram_max_buckets,
                      native_histogram_min_reset_duration=native_histogram_min_reset_duration,
                      native_histogram_max_zero_threshold=native_histogram_max_zero_threshold)
        self._native_histogram = _native_histogram_settings(**native)
        MetricWrapperBase.__init__(self, name, documentation, labelnames, namespace, subsystem,
                                   unit, registry, _labelvalues)
        self._kwargs['buckets'] = buckets
        if self._native_histogram:
            self._kwargs.update(native)

    def _prepare_buckets(self, source_buckets: Sequence[Union[float, str]]) -> None:
        bounds = list(map(float, source_buckets))
        # Unsorted bounds are a mistake of the caller's: refused, not sorted.
        if any(low > high for low, high in zip(bounds, bounds[1:])):
            raise ValueError('Buckets not in sorted order')
        if bounds and bounds[-1] != INF:
            bounds.append(INF)
        if len(bounds) < 2:
            raise ValueError('Must have at least two buckets')
        self._upper_bounds = bounds

    def _metric_init(self) -> None:
        self._init_child(time.time())

    def time(self) -> Timer:
        """Time a block of code or function, and observe the duration in seconds."""
        return Timer(self, 'observe')


# Dunder methods grafted; other dunders (class machinery) stay the native class's own.
_GRAFTED_DUNDERS = frozenset(('__init__', '__str__', '__repr__'))


def _graft(native: type, methods: type) -> type:
    """Give a native metric class the Python methods of MetricWrapperBase and `methods`.

    A name the native class defines itself (its hot methods) is never replaced.
    """
    native_names = set(vars(native))
    for source in (MetricWrapperBase, methods):
        for name, value in vars(source).items():
            is_dunder = name.startswith('__') and name.endswith('__')
            if name in native_names or (is_dunder and name not in _GRAFTED_DUNDERS):
                continue
            setattr(native, name, value)
    MetricWrapperBase.register(native)
    return native


if TYPE_CHECKING:
    # What _graft builds, spelt so type checkers follow it: the Python methods (the mixin's,
    # then MetricWrapperBase's) before the native ones (typed in _native.pyi).
    class Counter(_CounterMethods, _native.Counter):
        pass

    class Gauge(_GaugeMethods, _native.Gauge):
        pass

    class Summary(_SummaryMethods, _native.Summary):
        pass

    class Histogram(_HistogramMethods, _native.Histogram):
        pass
else:
    Counter = _graft(_native.Counter, _CounterMethods)
    Gauge = _graft(_native.Gauge, _GaugeMethods)
    Summary = _graft(_native.Summary, _SummaryMethods)
    Histogram = _graft(_native.Histogram, _HistogramMethods)



class Info(MetricWrapperBase):
    """Key-value pairs about the process, exposed as one `_info` series:
    `Info('my_build', 'Build facts').info({'version': '1.2.3'})`. Not in multiprocess mode."""
    _type = 'info'

    def _metric_init(self):
        self._lock = Lock()
        self._value = {}
        self._labelname_set = set(self._labelnames)

    def info(self, val: Dict[str, str]) -> None:
        """Replace the key-value pairs."""
        if not self._labelname_set.isdisjoint(val.keys()):
            raise ValueError(f'Overlapping labels for Info metric, metric: {self._labelnames} child: {val}')
        if any(value is None for value in val.values()):
            raise ValueError('Label value cannot be None')
        pairs = dict(val)
        with self._lock:
            self._value = pairs

    def _child_samples(self) -> Iterable[Sample]:
        with self._lock:
            pairs = self._value
        return (Sample('_info', pairs, 1.0, None, None),)


class Enum(MetricWrapperBase):
    """Which one of a set of states holds, exposed as a stateset: `Enum('task_state', 'State',
    states=['starting', 'running']).state('running')`. The first state holds at first. Not in
    multiprocess mode."""
    _type = 'stateset'

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                 namespace: str = '', subsystem: str = '', unit: str = '',
                 registry: Optional[CollectorRegistry] = REGISTRY,
                 _labelvalues: Optional[Sequence[str]] = None,
                 states: Optional[Sequence[str]] = None):
        if name in labelnames:
            raise ValueError(f'Overlapping labels for Enum metric: {name}')
        if not states:
            raise ValueError(f'No states provided for Enum metric: {name}')
        MetricWrapperBase.__init__(self, name, documentation, labelnames, namespace, subsystem,
                                   unit, registry, _labelvalues)
        self._states = states
        self._kwargs['states'] = states

    def _metric_init(self) -> None:
        self._lock = Lock()
        self._value = 0  # the index of the state that holds

    def state(self, state: str) -> None:
        """Make `state` the one that holds."""
        self._raise_if_not_observable()
        index = self._states.index(state)
        with self._lock:
            self._value = index

    def _child_samples(self) -> Iterable[Sample]:
        with self._lock:
            current = self._value
        return [Sample('', {self._name: state}, int(index == current), None, None)
                for index, state in enumerate(self._states)]


# `_metrics` of the native metrics: a mapping from label-value tuples to children.
MutableMapping.register(_native.Children)

# Last: it builds on the classes above.
from . import foreign_values  # noqa: E402
