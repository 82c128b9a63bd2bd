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
from threading import Lock
from typing import (
    Any, Callable, Dict, Iterable, Literal, Optional, Sequence, Tuple, Type, TypeVar, Union,
)
import warnings

from . import _native
from .context_managers import ExceptionCounter, InprogressTracker, Timer
from .metrics_core import Metric
from .registry import Collector, CollectorRegistry, REGISTRY
from .samples import Sample
from .utils import INF
from .validation import _validate_labelnames, _validate_metric_name

T = TypeVar('T', bound='MetricWrapperBase')
F = TypeVar("F", bound=Callable[..., Any])


def _build_full_name(metric_type, name, namespace, subsystem, unit):
    if not name:
        raise ValueError('Metric name should not be empty')
    full_name = ''
    if namespace:
        full_name += namespace + '_'
    if subsystem:
        full_name += subsystem + '_'
    full_name += name
    if metric_type == 'counter' and full_name.endswith('_total'):
        full_name = full_name[:-6]  # OpenMetrics names counters without _total.
    if unit and not full_name.endswith("_" + unit):
        full_name += "_" + unit
    if unit and metric_type in ('info', 'stateset'):
        raise ValueError('Metric name is of a type that cannot have a unit: ' + full_name)
    return full_name


def _get_use_created() -> bool:
    return os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", 'False').lower() not in ('true', '1', 't')


# Read at every collection, so tests may patch it.
_use_created = _get_use_created()


def disable_created_metrics():
    """Disable exporting _created metrics on counters, histograms, and summaries."""
    global _use_created
    _use_created = False
    _native.settings_changed()


def enable_created_metrics():
    """Enable exporting _created metrics on counters, histograms, and summaries."""
    global _use_created
    _use_created = True
    _native.settings_changed()


def _multiprocess_dir() -> Optional[str]:
    """The multiprocess directory when multiprocess mode is on, read when a metric is created
    (the reference decides at import, so setting the variable after importing does nothing
    there)."""
    if 'prometheus_multiproc_dir' in os.environ and 'PROMETHEUS_MULTIPROC_DIR' not in os.environ:
        os.environ['PROMETHEUS_MULTIPROC_DIR'] = os.environ['prometheus_multiproc_dir']
        warnings.warn("prometheus_multiproc_dir variable has been deprecated in favor of the upper case naming "
                      "PROMETHEUS_MULTIPROC_DIR", DeprecationWarning)
    return os.environ.get('PROMETHEUS_MULTIPROC_DIR')


# A forked child writes its own multiprocess files, from zero, as the reference's children do.
os.register_at_fork(after_in_child=_native.multiprocess_after_fork)


class MetricWrapperBase(Collector):
    _type: Optional[str] = None
    _reserved_labelnames: Sequence[str] = ()

    def _is_observable(self):
        # A metric without label names, or the child of a labelled metric.
        return not self._labelnames or (self._labelnames and self._labelvalues)

    def _raise_if_not_observable(self):
        if not self._is_observable():
            raise ValueError('%s metric is missing label values' % str(self._type))

    def _is_parent(self):
        return self._labelnames and not self._labelvalues

    def _get_metric(self):
        return Metric(self._name, self._documentation, self._type, self._unit)

    def describe(self) -> Iterable[Metric]:
        return [self._get_metric()]

    def collect(self) -> Iterable[Metric]:
        metric = self._get_metric()
        for suffix, labels, value, timestamp, exemplar, native_histogram in self._samples():
            metric.add_sample(self._name + suffix, labels, value, timestamp, exemplar, native_histogram)
        return [metric]

    def __str__(self) -> str:
        return f"{self._type}:{self._name}"

    def __repr__(self) -> str:
        metric_type = type(self)
        return f"{metric_type.__module__}.{metric_type.__name__}({self._name})"

    def __init__(self: T,
                 name: str,
                 documentation: str,
                 labelnames: Iterable[str] = (),
                 namespace: str = '',
                 subsystem: str = '',
                 unit: str = '',
                 registry: Optional[CollectorRegistry] = REGISTRY,
                 _labelvalues: Optional[Sequence[str]] = None,
                 ) -> None:
        self._original_name = name
        self._namespace = namespace
        self._subsystem = subsystem
        self._name = _build_full_name(self._type, name, namespace, subsystem, unit)
        self._labelnames = _validate_labelnames(self, labelnames)
        self._labelvalues = tuple(_labelvalues or ())
        self._kwargs: Dict[str, Any] = {}
        self._documentation = documentation
        self._unit = unit

        _validate_metric_name(self._name)

        if self._is_parent():
            # _lock serialises adding and removing children; lookups read _metrics without it.
            self._lock = Lock()
            self._metrics = self._init_parent()

        if self._is_observable():
            self._metric_init()

        if not self._labelvalues:
            # Register the labelled parent, or the unlabelled metric itself.
            if registry:
                registry.register(self)

    def _init_parent(self) -> Dict[Tuple[str, ...], Any]:
        """Return the dict of children. Native metrics keep the same dict in Rust."""
        return {}

    def _link_child(self, labelvalues, child) -> None:
        """A child was added. Native metrics add it to what they export."""

    def _unlink_children(self, keys) -> None:
        """Children were removed (all of them when keys is None)."""

    def _new_child(self: T, labelvalues: Tuple[str, ...]) -> T:
        # Built with the reference's call shape: subclasses rely on it.
        original_name = getattr(self, '_original_name', self._name)
        namespace = getattr(self, '_namespace', '')
        subsystem = getattr(self, '_subsystem', '')
        unit = getattr(self, '_unit', '')
        child_kwargs = dict(self._kwargs) if self._kwargs else {}
        for k in ('namespace', 'subsystem', 'unit'):
            child_kwargs.pop(k, None)
        return self.__class__(
            original_name,
            documentation=self._documentation,
            labelnames=self._labelnames,
            namespace=namespace,
            subsystem=subsystem,
            unit=unit,
            _labelvalues=labelvalues,
            **child_kwargs
        )

    def labels(self: T, *labelvalues: object, **labelkwargs: object) -> T:
        """Return the child for the given labelset.

        Native metrics answer from Rust when the child exists and come here otherwise.
        """
        if not self._labelnames:
            raise ValueError('No label names were set when constructing %s' % self)

        if self._labelvalues:
            raise ValueError('{} already has labels set ({}); can not chain calls to .labels()'.format(
                self,
                dict(zip(self._labelnames, self._labelvalues))
            ))

        if labelvalues and labelkwargs:
            raise ValueError("Can't pass both *args and **kwargs")

        if labelkwargs:
            if sorted(labelkwargs) != sorted(self._labelnames):
                raise ValueError('Incorrect label names')
            key = tuple(str(labelkwargs[name]) for name in self._labelnames)
        else:
            if len(labelvalues) != len(self._labelnames):
                raise ValueError('Incorrect label count')
            key = tuple(str(value) for value in labelvalues)
        with self._lock:
            child = self._metrics.get(key)
            if child is None:
                child = self._new_child(key)
                self._metrics[key] = child
                self._link_child(key, child)
            return child

    _labels_slow = labels

    def remove(self, *labelvalues: Any) -> None:
        if not self._labelnames:
            raise ValueError('No label names were set when constructing %s' % self)

        if len(labelvalues) != len(self._labelnames):
            raise ValueError('Incorrect label count (expected %d, got %s)' % (len(self._labelnames), labelvalues))
        key = tuple(str(value) for value in labelvalues)
        with self._lock:
            self._drop_children([key])

    def remove_by_labels(self, labels: dict[str, str]) -> None:
        """Remove all series whose labelset partially matches the given labels."""
        if not self._labelnames:
            raise ValueError('No label names were set when constructing %s' % self)

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
            # Cleared in place: native metrics hold this very dict.
            self._metrics.clear()
            self._unlink_children(None)

    def _drop_children(self, keys) -> None:
        # Caller holds self._lock.
        for key in keys:
            if self._metrics.pop(key, None) is not None:
                self._unlink_children([key])

    def _samples(self) -> Iterable[Sample]:
        if self._is_parent():
            return self._multi_samples()
        else:
            return self._child_samples()

    def _multi_samples(self) -> Iterable[Sample]:
        with self._lock:
            metrics = self._metrics.copy()
        for labels, metric in metrics.items():
            series_labels = list(zip(self._labelnames, labels))
            for suffix, sample_labels, value, timestamp, exemplar, native_histogram in metric._samples():
                yield Sample(suffix, dict(series_labels + list(sample_labels.items())), value, timestamp, exemplar,
                             native_histogram)

    def _child_samples(self) -> Iterable[Sample]:  # pragma: no cover
        raise NotImplementedError('_child_samples() must be implemented by %r' % self)

    def _metric_init(self):  # pragma: no cover
        """Initialize the metric object as a child, i.e. when its labels (if any) are set."""
        raise NotImplementedError('_metric_init() must be implemented by %r' % self)


class _CounterMethods:
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


class _GaugeMethods:
    """Gauge metric, to report instantaneous values.

        g = Gauge('my_inprogress_requests', 'Description of gauge')
        g.inc()      # Increment by 1
        g.dec(10)    # Decrement by given value
        g.set(4.2)   # Set to a given value

    `inc`, `dec` and `set` are native.
    """
    _type = 'gauge'
    _MULTIPROC_MODES = frozenset(('all', 'liveall', 'min', 'livemin', 'max', 'livemax', 'sum', 'livesum',
                                  'mostrecent', 'livemostrecent'))
    _MOST_RECENT_MODES = frozenset(('mostrecent', 'livemostrecent'))

    def __init__(self,
                 name: str,
                 documentation: str,
                 labelnames: Iterable[str] = (),
                 namespace: str = '',
                 subsystem: str = '',
                 unit: str = '',
                 registry: Optional[CollectorRegistry] = REGISTRY,
                 _labelvalues: Optional[Sequence[str]] = None,
                 multiprocess_mode: Literal['all', 'liveall', 'min', 'livemin', 'max', 'livemax', 'sum', 'livesum',
                                            'mostrecent', 'livemostrecent'] = 'all',
                 ):
        self._multiprocess_mode = multiprocess_mode
        if multiprocess_mode not in self._MULTIPROC_MODES:
            raise ValueError('Invalid multiprocess mode: ' + multiprocess_mode)
        MetricWrapperBase.__init__(
            self,
            name=name,
            documentation=documentation,
            labelnames=labelnames,
            namespace=namespace,
            subsystem=subsystem,
            unit=unit,
            registry=registry,
            _labelvalues=_labelvalues,
        )
        self._kwargs['multiprocess_mode'] = self._multiprocess_mode
        self._is_most_recent = self._multiprocess_mode in self._MOST_RECENT_MODES

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


class _SummaryMethods:
    """A Summary tracks the size and number of events.

        s = Summary('request_size_bytes', 'Request size (bytes)')
        s.observe(512)

    `observe` is native.
    """
    _type = 'summary'
    _reserved_labelnames = ['quantile']

    def _metric_init(self) -> None:
        self._init_child(time.time())

    def time(self) -> Timer:
        """Time a block of code or function, and observe the duration in seconds."""
        return Timer(self, 'observe')


class _HistogramMethods:
    """A Histogram tracks the size and number of events in buckets.

        h = Histogram('request_size_bytes', 'Request size (bytes)')
        h.observe(512)

    `observe(amount, exemplar=None)` is native; buckets are found by binary search once there
    are many.
    """
    _type = 'histogram'
    _reserved_labelnames = ['le']
    DEFAULT_BUCKETS = (.005, .01, .025, .05, .075, .1, .25, .5, .75, 1.0, 2.5, 5.0, 7.5, 10.0, INF)

    def __init__(self,
                 name: str,
                 documentation: str,
                 labelnames: Iterable[str] = (),
                 namespace: str = '',
                 subsystem: str = '',
                 unit: str = '',
                 registry: Optional[CollectorRegistry] = REGISTRY,
                 _labelvalues: Optional[Sequence[str]] = None,
                 buckets: Sequence[Union[float, str]] = DEFAULT_BUCKETS,
                 ):
        self._prepare_buckets(buckets)
        MetricWrapperBase.__init__(
            self,
            name=name,
            documentation=documentation,
            labelnames=labelnames,
            namespace=namespace,
            subsystem=subsystem,
            unit=unit,
            registry=registry,
            _labelvalues=_labelvalues,
        )
        self._kwargs['buckets'] = buckets

    def _prepare_buckets(self, source_buckets: Sequence[Union[float, str]]) -> None:
        buckets = [float(b) for b in source_buckets]
        if buckets != sorted(buckets):
            # Probably a mistake by the caller, so raise rather than sort.
            raise ValueError('Buckets not in sorted order')
        if buckets and buckets[-1] != INF:
            buckets.append(INF)
        if len(buckets) < 2:
            raise ValueError('Must have at least two buckets')
        self._upper_bounds = buckets

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


Counter = _graft(_native.Counter, _CounterMethods)
Gauge = _graft(_native.Gauge, _GaugeMethods)
Summary = _graft(_native.Summary, _SummaryMethods)
Histogram = _graft(_native.Histogram, _HistogramMethods)



class Info(MetricWrapperBase):
    """Info metric, key-value pairs.

        i = Info('my_build', 'Description of info')
        i.info({'version': '1.2.3', 'buildhost': 'foo@bar'})

    Info metrics do not work in multiprocess mode.
    """
    _type = 'info'

    def _metric_init(self):
        self._labelname_set = set(self._labelnames)
        self._lock = Lock()
        self._value = {}

    def info(self, val: Dict[str, str]) -> None:
        """Set info metric."""
        if self._labelname_set.intersection(val.keys()):
            raise ValueError('Overlapping labels for Info metric, metric: {} child: {}'.format(
                self._labelnames, val))
        if any(i is None for i in val.values()):
            raise ValueError('Label value cannot be None')
        with self._lock:
            self._value = dict(val)

    def _child_samples(self) -> Iterable[Sample]:
        with self._lock:
            return (Sample('_info', self._value, 1.0, None, None),)


class Enum(MetricWrapperBase):
    """Enum metric, which of a set of states is true.

        e = Enum('task_state', 'Description of enum', states=['starting', 'running', 'stopped'])
        e.state('running')

    The first listed state is the default. Enum metrics do not work in multiprocess mode.
    """
    _type = 'stateset'

    def __init__(self,
                 name: str,
                 documentation: str,
                 labelnames: Sequence[str] = (),
                 namespace: str = '',
                 subsystem: str = '',
                 unit: str = '',
                 registry: Optional[CollectorRegistry] = REGISTRY,
                 _labelvalues: Optional[Sequence[str]] = None,
                 states: Optional[Sequence[str]] = None,
                 ):
        if name in labelnames:
            raise ValueError(f'Overlapping labels for Enum metric: {name}')
        if not states:
            raise ValueError(f'No states provided for Enum metric: {name}')
        MetricWrapperBase.__init__(
            self,
            name=name,
            documentation=documentation,
            labelnames=labelnames,
            namespace=namespace,
            subsystem=subsystem,
            unit=unit,
            registry=registry,
            _labelvalues=_labelvalues,
        )
        self._kwargs['states'] = self._states = states

    def _metric_init(self) -> None:
        self._value = 0
        self._lock = Lock()

    def state(self, state: str) -> None:
        """Set enum metric state."""
        self._raise_if_not_observable()
        with self._lock:
            self._value = self._states.index(state)

    def _child_samples(self) -> Iterable[Sample]:
        with self._lock:
            return [
                Sample('', {self._name: s}, 1 if i == self._value else 0, None, None)
                for i, s
                in enumerate(self._states)
            ]
