"""Metrics whose values are objects of a user's own `values.ValueClass`.

fastprom keeps values in native cells, and honours the two value classes of
`fastprom.values` natively (`MutexValue`: process memory, `MultiProcessValue(...)`: the
multiprocess files). A metric created while `values.ValueClass` is any other class (a value
stored elsewhere, a class that logs, a subclass of MutexValue) keeps its values in objects of
that class, made and called as prometheus_client makes and calls them: one object per series
part (`_total`; the gauge; `_count` and `_sum`; `_sum` and one per bucket), `inc`, `set`,
`get`, `set_exemplar` and `get_exemplar`. Such metrics take this slower, Python path for every
call; they render through `collect()`.

The switch happens in `MetricWrapperBase.__init__`: the new object's class becomes a subclass
of its own class with the methods below first in line, so `isinstance`, the class name and
user subclasses stay as they were.
"""

import time
from typing import Dict, Iterable, Tuple

from . import _native, metrics as _metrics_module, values
from .samples import Exemplar, Sample
from .utils import floatToGoString
from .validation import _validate_exemplar


def wanted() -> bool:
    """Whether a metric created now keeps its values in `values.ValueClass` objects."""
    value_class = values.ValueClass
    if value_class is values._import_value_class or value_class is values.MutexValue:
        return False
    return getattr(value_class, '_process_identifier', None) is None


class _Stored:
    """An attribute the metric keeps itself, in front of the native class's own (`_value`,
    `_sum`, ... are native views on the cells, which these metrics do not use). Having no
    `__set__`, it lets a set store the value with the metric's other attributes."""

    def __set_name__(self, owner, name):
        self._name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        raise AttributeError(self._name)


def _new_value(metric, suffix: str, labelnames=None, labelvalues=None, **kwargs):
    return values.ValueClass(
        metric._type, metric._name, metric._name + suffix,
        metric._labelnames if labelnames is None else labelnames,
        metric._labelvalues if labelvalues is None else labelvalues,
        metric._documentation, **kwargs)


def _exemplar(labels: Dict[str, str], amount) -> Exemplar:
    _validate_exemplar(labels)
    return Exemplar(labels, amount, time.time())


def _created_sample(metric) -> Tuple[Sample, ...]:
    if not _metrics_module._use_created:
        return ()
    return (Sample('_created', {}, metric._created, None, None),)


class _PythonValues:
    """What every such metric does differently: children in a plain dict, samples in Python."""

    __slots__ = ()
    _created = _Stored()

    def _init_parent(self):
        self._observable = False
        return {}

    def _raise_if_not_observable(self):
        # A flag set with the children dict: `_labelvalues` is a native property, slower to reach.
        if not getattr(self, '_observable', True):
            _metrics_module.MetricWrapperBase._raise_if_not_observable(self)

    def _link_child(self, labelvalues, child):
        pass

    def _unlink_children(self, keys):
        pass

    def _mark_python_samples(self):
        pass

    def _sample_value(self, name, labels):
        return None, None

    labels = _metrics_module.MetricWrapperBase.labels


class _CounterValues(_PythonValues):
    __slots__ = ()
    _value = _Stored()

    def _metric_init(self) -> None:
        self._value = _new_value(self, '_total')
        self._created = time.time()

    def inc(self, amount: float = 1, exemplar: Dict[str, str] = None) -> None:
        self._raise_if_not_observable()
        if amount < 0:
            raise ValueError('Counters can only be incremented by non-negative amounts.')
        self._value.inc(amount)
        if exemplar:
            self._value.set_exemplar(_exemplar(exemplar, amount))

    def reset(self) -> None:
        self._value.set(0)
        self._created = time.time()

    def _child_samples(self) -> Iterable[Sample]:
        total = Sample('_total', {}, self._value.get(), None, self._value.get_exemplar())
        return (total,) + _created_sample(self)


class _GaugeValues(_PythonValues):
    __slots__ = ()
    _value = _Stored()

    def _metric_init(self) -> None:
        self._value = _new_value(self, '', multiprocess_mode=self._multiprocess_mode)

    def _refuse_in_most_recent_mode(self, method: str) -> None:
        if self._multiprocess_mode in self._MOST_RECENT_MODES:
            raise RuntimeError(f'{method} must not be used with the mostrecent mode')

    def inc(self, amount: float = 1) -> None:
        self._refuse_in_most_recent_mode('inc')
        self._raise_if_not_observable()
        self._value.inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._refuse_in_most_recent_mode('dec')
        self._raise_if_not_observable()
        self._value.inc(-amount)

    def set(self, value: float) -> None:
        self._raise_if_not_observable()
        if self._multiprocess_mode in self._MOST_RECENT_MODES:
            self._value.set(float(value), timestamp=time.time())
        else:
            self._value.set(float(value))

    def _child_samples(self) -> Iterable[Sample]:
        return (Sample('', {}, self._value.get(), None, None),)


class _SummaryValues(_PythonValues):
    __slots__ = ()
    _count = _Stored()
    _sum = _Stored()

    def _metric_init(self) -> None:
        self._count = _new_value(self, '_count')
        self._sum = _new_value(self, '_sum')
        self._created = time.time()

    def observe(self, amount: float) -> None:
        self._raise_if_not_observable()
        self._count.inc(1)
        self._sum.inc(amount)

    def observe_many(self, amounts) -> None:
        for amount in amounts:
            self.observe(amount)

    def _child_samples(self) -> Iterable[Sample]:
        parts = (Sample('_count', {}, self._count.get(), None, None),
                 Sample('_sum', {}, self._sum.get(), None, None))
        return parts + _created_sample(self)


class _HistogramValues(_PythonValues):
    __slots__ = ()
    _sum = _Stored()
    _buckets = _Stored()

    def _metric_init(self) -> None:
        self._created = time.time()
        self._sum = _new_value(self, '_sum')
        bucket_labelnames = self._labelnames + ('le',)
        self._buckets = [
            _new_value(self, '_bucket', bucket_labelnames,
                       self._labelvalues + (floatToGoString(bound),))
            for bound in self._upper_bounds]

    def observe(self, amount: float, exemplar: Dict[str, str] = None) -> None:
        self._raise_if_not_observable()
        self._sum.inc(amount)
        # The first bucket the amount fits in; NaN fits in none.
        for bound, bucket in zip(self._upper_bounds, self._buckets):
            if amount <= bound:
                bucket.inc(1)
                if exemplar:
                    bucket.set_exemplar(_exemplar(exemplar, amount))
                return

    def observe_many(self, amounts) -> None:
        for amount in amounts:
            self.observe(amount)

    def _child_samples(self) -> Iterable[Sample]:
        samples = []
        cumulative = 0.0
        for bound, bucket in zip(self._upper_bounds, self._buckets):
            cumulative += bucket.get()
            samples.append(Sample('_bucket', {'le': floatToGoString(bound)}, cumulative, None,
                                  bucket.get_exemplar()))
        samples.append(Sample('_count', {}, cumulative, None, None))
        # A histogram with negative buckets has no meaningful sum (OpenMetrics).
        if self._upper_bounds[0] >= 0:
            samples.append(Sample('_sum', {}, self._sum.get(), None, None))
        return tuple(samples) + _created_sample(self)


_BY_TYPE = {'counter': _CounterValues, 'gauge': _GaugeValues,
            'summary': _SummaryValues, 'histogram': _HistogramValues}
_variants: Dict[type, type] = {}


def _native_base(cls: type) -> type:
    natives = (_native.Counter, _native.Gauge, _native.Summary, _native.Histogram)
    return next(base for base in cls.__mro__ if base in natives)


def _subclass(name_from: type, bases: Tuple[type, ...]) -> type:
    return type(name_from.__name__, bases, {
        '__slots__': (), '__module__': name_from.__module__, '__qualname__': name_from.__qualname__})


def variant_of(cls: type) -> type:
    """`cls` whose values are kept in `values.ValueClass` objects: the methods above come
    before the native class's own, and after those of a user's subclass."""
    variant = _variants.get(cls)
    if variant is None:
        native = _native_base(cls)
        native_variant = _variants.get(native) or _subclass(native, (_BY_TYPE[cls._type], native))
        _variants[native] = native_variant
        variant = native_variant if cls is native else _subclass(cls, (cls, native_variant))
        _variants[cls] = variant
    return variant


def adopt(metric) -> None:
    """Called as a Counter, Gauge, Summary or Histogram is initialised: from now on it keeps its
    values in `values.ValueClass` objects when that class is a user's own."""
    cls = type(metric)
    if cls._type in _BY_TYPE and not issubclass(cls, _PythonValues) and wanted():
        metric.__class__ = variant_of(cls)
