"""Metric families: the objects collectors return and exposition renders."""

from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .samples import Exemplar, NativeHistogram, Sample, Timestamp
from .validation import _validate_metric_name

METRIC_TYPES = (
    'counter', 'gauge', 'summary', 'histogram',
    'gaugehistogram', 'unknown', 'info', 'stateset',
)

_TimestampArg = Optional[Union[Timestamp, float]]
_Bucket = Union[Tuple[str, float], Tuple[str, float, Exemplar]]


class Metric:
    """A metric family and its samples (custom collectors should use the *MetricFamily classes)."""

    def __init__(self, name: str, documentation: str, typ: str, unit: str = ''):
        # A unit the name does not end in yet is appended to it.
        full_name = name if not unit or name.endswith('_' + unit) else name + '_' + unit
        _validate_metric_name(full_name)
        self.name: str = full_name
        self.documentation: str = documentation
        self.unit: str = unit
        typ = 'unknown' if typ == 'untyped' else typ  # the old name of the type
        if typ not in METRIC_TYPES:
            raise ValueError('Invalid metric type: ' + typ)
        self.type: str = typ
        self.samples: List[Sample] = []

    def add_sample(self, name: str, labels: Dict[str, str], value: float, timestamp: _TimestampArg = None,
                   exemplar: Optional[Exemplar] = None,
                   native_histogram: Optional[NativeHistogram] = None) -> None:
        """Add a sample to the metric (internal use)."""
        self.samples.append(Sample(name, labels, value, timestamp, exemplar, native_histogram))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Metric):
            return False
        return (self.name == other.name
                and self.documentation == other.documentation
                and self.type == other.type
                and self.unit == other.unit
                and self.samples == other.samples)

    def __repr__(self) -> str:
        return f"Metric({self.name}, {self.documentation}, {self.type}, {self.unit}, {self.samples})"

    def _restricted_metric(self, names):
        """Copy of this metric keeping only samples whose name is in names, or None (unit is dropped)."""
        samples = [s for s in self.samples if s[0] in names]
        if not samples:
            return None
        restricted = Metric(self.name, self.documentation, self.type)
        restricted.samples = samples
        return restricted


def _family_labelnames(labels: Optional[Sequence[str]], value: object, what: str = 'value') -> Tuple[str, ...]:
    """Check that a family got an initial value or label names, not both; return the names."""
    if labels is not None and value is not None:
        raise ValueError(f'Can only specify at most one of {what} and labels.')
    if labels is None:
        return ()
    return tuple(labels)


# The *MetricFamily classes below share their helpers: _given() records the label names, and
# _append() adds the samples one add_metric() call describes as rows (name suffix, labels, value, exemplar).
# Rows may come from a generator: the samples before a failing row are kept, as in the reference.
# Each row zips the label values afresh, which matters when they are an iterator.

_Names = Optional[Sequence[str]]
_Row = Tuple[str, Dict[str, str], float, Optional[Exemplar]]


def _given(family, labels: _Names, initial: object, what: str = 'value') -> bool:
    """Record the family's label names; whether an initial value was given (then there are none)."""
    family._labelnames = _family_labelnames(labels, initial, what)
    return initial is not None


def _labels(family, values: Sequence[str], extra: Sequence[Tuple[str, str]] = ()) -> Dict[str, str]:
    pairs = dict(zip(family._labelnames, values))
    if extra:
        pairs.update(extra)
    return pairs


def _append(family: Metric, timestamp: _TimestampArg, rows: Iterable[_Row]) -> None:
    add, name = family.samples.append, family.name
    for suffix, labels, value, exemplar in rows:
        add(Sample(name + suffix, labels, value, timestamp, exemplar))


class UnknownMetricFamily(Metric):
    """An unknown-typed metric and its samples, for custom collectors."""

    def __init__(self, name: str, documentation: str, value: Optional[float] = None,
                 labels: _Names = None, unit: str = ''):
        Metric.__init__(self, name, documentation, 'unknown', unit)
        if _given(self, labels, value):
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: float, timestamp: _TimestampArg = None) -> None:
        """Add a sample for the given label values."""
        _append(self, timestamp, [('', _labels(self, labels), value, None)])


# For backward compatibility.
UntypedMetricFamily = UnknownMetricFamily


class CounterMetricFamily(Metric):
    """A counter and its samples, for custom collectors. A trailing _total is stripped from name."""

    def __init__(self, name: str, documentation: str, value: Optional[float] = None,
                 labels: _Names = None, created: Optional[float] = None, unit: str = '',
                 exemplar: Optional[Exemplar] = None):
        Metric.__init__(self, name[:-6] if name.endswith('_total') else name, documentation, 'counter', unit)
        if _given(self, labels, value):
            self.add_metric([], value, created, exemplar=exemplar)

    def add_metric(self, labels: Sequence[str], value: float, created: Optional[float] = None,
                   timestamp: _TimestampArg = None, exemplar: Optional[Exemplar] = None) -> None:
        """Add name_total (and name_created if created is given) for the given label values."""
        rows = [('_total', _labels(self, labels), value, exemplar)]
        if created is not None:
            rows.append(('_created', _labels(self, labels), created, None))
        _append(self, timestamp, rows)


class GaugeMetricFamily(Metric):
    """A gauge and its samples, for custom collectors."""

    def __init__(self, name: str, documentation: str, value: Optional[float] = None,
                 labels: _Names = None, unit: str = ''):
        Metric.__init__(self, name, documentation, 'gauge', unit)
        if _given(self, labels, value):
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: float, timestamp: _TimestampArg = None) -> None:
        """Add a sample for the given label values."""
        _append(self, timestamp, [('', _labels(self, labels), value, None)])


class SummaryMetricFamily(Metric):
    """A summary (count and sum) and its samples, for custom collectors."""

    def __init__(self, name: str, documentation: str, count_value: Optional[int] = None,
                 sum_value: Optional[float] = None, labels: _Names = None, unit: str = ''):
        Metric.__init__(self, name, documentation, 'summary', unit)
        if (count_value is None) is not (sum_value is None):
            raise ValueError('count_value and sum_value must be provided together.')
        if _given(self, labels, count_value):
            self.add_metric([], count_value, sum_value)

    def add_metric(self, labels: Sequence[str], count_value: int, sum_value: float,
                   timestamp: _TimestampArg = None) -> None:
        """Add name_count and name_sum for the given label values."""
        _append(self, timestamp, [('_count', _labels(self, labels), count_value, None),
                                  ('_sum', _labels(self, labels), sum_value, None)])


class HistogramMetricFamily(Metric):
    """A histogram and its samples, for custom collectors."""

    def __init__(self, name: str, documentation: str, buckets: Optional[Sequence[_Bucket]] = None,
                 sum_value: Optional[float] = None, labels: _Names = None, unit: str = ''):
        Metric.__init__(self, name, documentation, 'histogram', unit)
        if buckets is None and sum_value is not None:
            raise ValueError('sum value cannot be provided without buckets.')
        if _given(self, labels, buckets, 'buckets'):
            self.add_metric([], buckets, sum_value)

    def add_metric(self, labels: Sequence[str], buckets: Sequence[_Bucket], sum_value: Optional[float],
                   timestamp: _TimestampArg = None) -> None:
        """Add name_bucket samples, then name_count/name_sum if sum_value is given and no bucket is negative.

        buckets: sorted (le, value) pairs or (le, value, exemplar) triples, +Inf last.
        """
        _append(self, timestamp, self._rows(labels, buckets, sum_value))

    def _rows(self, labels, buckets, sum_value) -> Iterable[_Row]:
        for bucket in buckets:
            le, count = bucket[:2]
            yield '_bucket', _labels(self, labels, [('le', le)]), count, bucket[2] if len(bucket) == 3 else None
        # Negative buckets make the sum meaningless; the +Inf bucket provides the count.
        if float(buckets[0][0]) >= 0 and sum_value is not None:
            yield '_count', _labels(self, labels), buckets[-1][1], None
            yield '_sum', _labels(self, labels), sum_value, None


class GaugeHistogramMetricFamily(Metric):
    """A gauge histogram and its samples, for custom collectors."""

    def __init__(self, name: str, documentation: str, buckets: Optional[Sequence[Tuple[str, float]]] = None,
                 gsum_value: Optional[float] = None, labels: _Names = None, unit: str = ''):
        Metric.__init__(self, name, documentation, 'gaugehistogram', unit)
        if _given(self, labels, buckets, 'buckets'):
            self.add_metric([], buckets, gsum_value)

    def add_metric(self, labels: Sequence[str], buckets: Sequence[Tuple[str, float]],
                   gsum_value: Optional[float], timestamp: _TimestampArg = None) -> None:
        """Add name_bucket samples (sorted pairs, +Inf last), name_gcount and name_gsum (None accepted)."""
        _append(self, timestamp, self._rows(labels, buckets, gsum_value))

    def _rows(self, labels, buckets, gsum_value) -> Iterable[_Row]:
        for le, count in buckets:
            yield '_bucket', _labels(self, labels, [('le', le)]), count, None
        gcount = ('_gcount', _labels(self, labels), buckets[-1][1], None)
        gsum = ('_gsum', _labels(self, labels), gsum_value, None)
        yield from (gcount, gsum)


class InfoMetricFamily(Metric):
    """An info metric and its samples, for custom collectors."""

    def __init__(self, name: str, documentation: str, value: Optional[Dict[str, str]] = None,
                 labels: _Names = None):
        Metric.__init__(self, name, documentation, 'info')
        if _given(self, labels, value):
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: Dict[str, str], timestamp: _TimestampArg = None) -> None:
        """Add name_info with value 1, labelled by the label values plus the value dict."""
        # dict(..., **value): keys must be strings, and value wins over a label of the same name.
        _append(self, timestamp, [('_info', dict(_labels(self, labels), **value), 1, None)])


class StateSetMetricFamily(Metric):
    """A state set and its samples, for custom collectors."""

    def __init__(self, name: str, documentation: str, value: Optional[Dict[str, bool]] = None,
                 labels: _Names = None):
        Metric.__init__(self, name, documentation, 'stateset')
        if _given(self, labels, value):
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: Dict[str, bool], timestamp: _TimestampArg = None) -> None:
        """Add one sample per state (sorted), labelled name=state, valued 1 or 0."""
        _append(self, timestamp, self._rows(tuple(labels), value))

    def _rows(self, values: Tuple[str, ...], states: Dict[str, bool]) -> Iterable[_Row]:
        # The state label is zipped after the label values (so it pairs positionally, like the reference).
        names = self._labelnames + (self.name,)
        for state, enabled in sorted(states.items()):
            yield '', dict(zip(names, values + (state,))), 1 if enabled else 0, None
