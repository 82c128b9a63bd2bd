"""Metric families: the objects collectors return and exposition renders."""

from typing import Dict, List, Optional, Sequence, Tuple, Union

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
        if unit and not name.endswith("_" + unit):
            name += "_" + unit
        _validate_metric_name(name)
        self.name: str = name
        self.documentation: str = documentation
        self.unit: str = unit
        if typ == 'untyped':
            typ = 'unknown'
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


class UnknownMetricFamily(Metric):
    """An unknown-typed metric and its samples, for custom collectors."""

    def __init__(self,
                 name: str,
                 documentation: str,
                 value: Optional[float] = None,
                 labels: Optional[Sequence[str]] = None,
                 unit: str = '',
                 ):
        Metric.__init__(self, name, documentation, 'unknown', unit)
        self._labelnames = _family_labelnames(labels, value)
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: float, timestamp: _TimestampArg = None) -> None:
        """Add a sample for the given label values."""
        self.samples.append(Sample(self.name, dict(zip(self._labelnames, labels)), value, timestamp))


# For backward compatibility.
UntypedMetricFamily = UnknownMetricFamily


class CounterMetricFamily(Metric):
    """A counter and its samples, for custom collectors. A trailing _total is stripped from name."""

    def __init__(self,
                 name: str,
                 documentation: str,
                 value: Optional[float] = None,
                 labels: Optional[Sequence[str]] = None,
                 created: Optional[float] = None,
                 unit: str = '',
                 exemplar: Optional[Exemplar] = None,
                 ):
        if name.endswith('_total'):
            name = name[:-len('_total')]
        Metric.__init__(self, name, documentation, 'counter', unit)
        self._labelnames = _family_labelnames(labels, value)
        if value is not None:
            self.add_metric([], value, created, exemplar=exemplar)

    def add_metric(self,
                   labels: Sequence[str],
                   value: float,
                   created: Optional[float] = None,
                   timestamp: _TimestampArg = None,
                   exemplar: Optional[Exemplar] = None,
                   ) -> None:
        """Add name_total (and name_created if created is given) for the given label values."""
        # Each sample zips `labels` afresh, exactly like the reference (matters for iterators).
        self.samples.append(
            Sample(self.name + '_total', dict(zip(self._labelnames, labels)), value, timestamp, exemplar))
        if created is not None:
            self.samples.append(
                Sample(self.name + '_created', dict(zip(self._labelnames, labels)), created, timestamp))


class GaugeMetricFamily(Metric):
    """A gauge and its samples, for custom collectors."""

    def __init__(self,
                 name: str,
                 documentation: str,
                 value: Optional[float] = None,
                 labels: Optional[Sequence[str]] = None,
                 unit: str = '',
                 ):
        Metric.__init__(self, name, documentation, 'gauge', unit)
        self._labelnames = _family_labelnames(labels, value)
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: float, timestamp: _TimestampArg = None) -> None:
        """Add a sample for the given label values."""
        self.samples.append(Sample(self.name, dict(zip(self._labelnames, labels)), value, timestamp))


class SummaryMetricFamily(Metric):
    """A summary (count and sum) and its samples, for custom collectors."""

    def __init__(self,
                 name: str,
                 documentation: str,
                 count_value: Optional[int] = None,
                 sum_value: Optional[float] = None,
                 labels: Optional[Sequence[str]] = None,
                 unit: str = '',
                 ):
        Metric.__init__(self, name, documentation, 'summary', unit)
        if (sum_value is None) != (count_value is None):
            raise ValueError('count_value and sum_value must be provided together.')
        self._labelnames = _family_labelnames(labels, count_value)
        if count_value is not None and sum_value is not None:
            self.add_metric([], count_value, sum_value)

    def add_metric(self,
                   labels: Sequence[str],
                   count_value: int,
                   sum_value: float,
                   timestamp: Optional[Union[float, Timestamp]] = None,
                   ) -> None:
        """Add name_count and name_sum for the given label values."""
        self.samples.append(
            Sample(self.name + '_count', dict(zip(self._labelnames, labels)), count_value, timestamp))
        self.samples.append(
            Sample(self.name + '_sum', dict(zip(self._labelnames, labels)), sum_value, timestamp))


class HistogramMetricFamily(Metric):
    """A histogram and its samples, for custom collectors."""

    def __init__(self,
                 name: str,
                 documentation: str,
                 buckets: Optional[Sequence[_Bucket]] = None,
                 sum_value: Optional[float] = None,
                 labels: Optional[Sequence[str]] = None,
                 unit: str = '',
                 ):
        Metric.__init__(self, name, documentation, 'histogram', unit)
        if sum_value is not None and buckets is None:
            raise ValueError('sum value cannot be provided without buckets.')
        self._labelnames = _family_labelnames(labels, buckets, 'buckets')
        if buckets is not None:
            self.add_metric([], buckets, sum_value)

    def add_metric(self,
                   labels: Sequence[str],
                   buckets: Sequence[_Bucket],
                   sum_value: Optional[float],
                   timestamp: _TimestampArg = None) -> None:
        """Add name_bucket samples, then name_count/name_sum if sum_value is given and no bucket is negative.

        buckets: sorted (le, value) pairs or (le, value, exemplar) triples, +Inf last.
        """
        for b in buckets:
            bucket, value = b[:2]
            exemplar = b[2] if len(b) == 3 else None  # type: ignore
            self.samples.append(Sample(
                self.name + '_bucket',
                dict(list(zip(self._labelnames, labels)) + [('le', bucket)]),
                value,
                timestamp,
                exemplar,
            ))
        if float(buckets[0][0]) >= 0 and sum_value is not None:
            # The +Inf bucket provides the count.
            self.samples.append(
                Sample(self.name + '_count', dict(zip(self._labelnames, labels)), buckets[-1][1], timestamp))
            self.samples.append(
                Sample(self.name + '_sum', dict(zip(self._labelnames, labels)), sum_value, timestamp))


class GaugeHistogramMetricFamily(Metric):
    """A gauge histogram and its samples, for custom collectors."""

    def __init__(self,
                 name: str,
                 documentation: str,
                 buckets: Optional[Sequence[Tuple[str, float]]] = None,
                 gsum_value: Optional[float] = None,
                 labels: Optional[Sequence[str]] = None,
                 unit: str = '',
                 ):
        Metric.__init__(self, name, documentation, 'gaugehistogram', unit)
        self._labelnames = _family_labelnames(labels, buckets, 'buckets')
        if buckets is not None:
            self.add_metric([], buckets, gsum_value)

    def add_metric(self,
                   labels: Sequence[str],
                   buckets: Sequence[Tuple[str, float]],
                   gsum_value: Optional[float],
                   timestamp: Optional[Union[float, Timestamp]] = None,
                   ) -> None:
        """Add name_bucket samples (sorted pairs, +Inf last), name_gcount and name_gsum (None accepted)."""
        for bucket, value in buckets:
            self.samples.append(Sample(
                self.name + '_bucket',
                dict(list(zip(self._labelnames, labels)) + [('le', bucket)]),
                value, timestamp))
        gcount = Sample(self.name + '_gcount', dict(zip(self._labelnames, labels)), buckets[-1][1], timestamp)
        gsum = Sample(self.name + '_gsum', dict(zip(self._labelnames, labels)), gsum_value, timestamp)
        self.samples.extend([gcount, gsum])


class InfoMetricFamily(Metric):
    """An info metric and its samples, for custom collectors."""

    def __init__(self,
                 name: str,
                 documentation: str,
                 value: Optional[Dict[str, str]] = None,
                 labels: Optional[Sequence[str]] = None,
                 ):
        Metric.__init__(self, name, documentation, 'info')
        self._labelnames = _family_labelnames(labels, value)
        if value is not None:
            self.add_metric([], value)

    def add_metric(self,
                   labels: Sequence[str],
                   value: Dict[str, str],
                   timestamp: _TimestampArg = None,
                   ) -> None:
        """Add name_info with value 1, labelled by the label values plus the value dict."""
        self.samples.append(Sample(
            self.name + '_info',
            dict(dict(zip(self._labelnames, labels)), **value),
            1,
            timestamp,
        ))


class StateSetMetricFamily(Metric):
    """A state set and its samples, for custom collectors."""

    def __init__(self,
                 name: str,
                 documentation: str,
                 value: Optional[Dict[str, bool]] = None,
                 labels: Optional[Sequence[str]] = None,
                 ):
        Metric.__init__(self, name, documentation, 'stateset')
        self._labelnames = _family_labelnames(labels, value)
        if value is not None:
            self.add_metric([], value)

    def add_metric(self,
                   labels: Sequence[str],
                   value: Dict[str, bool],
                   timestamp: _TimestampArg = None,
                   ) -> None:
        """Add one sample per state (sorted), labelled name=state, valued 1 or 0."""
        labels = tuple(labels)
        for state, enabled in sorted(value.items()):
            self.samples.append(Sample(
                self.name,
                dict(zip(self._labelnames + (self.name,), labels + (state,))),
                1 if enabled else 0,
                timestamp,
            ))
