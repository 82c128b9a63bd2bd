"""Sample value types shared by collectors, exposition and parsers."""

from typing import Dict, NamedTuple, Optional, Sequence, Union


class Timestamp:
    """A nanosecond-resolution timestamp (unhashable, ordered by < and >)."""

    def __init__(self, sec: float, nsec: float) -> None:
        # A negative second count carries its sign into the nanoseconds.
        if nsec < 0 or nsec >= 1e9:
            raise ValueError(f"Invalid value for nanoseconds in Timestamp: {nsec}")
        signed = -nsec if sec < 0 else nsec
        self.sec, self.nsec = int(sec), int(signed)

    def _key(self):
        return self.sec, self.nsec

    def __str__(self) -> str:
        return "{}.{:09d}".format(*self._key())

    def __repr__(self) -> str:
        return "Timestamp({}, {})".format(*self._key())

    def __float__(self) -> float:
        whole, frac = self._key()
        return float(whole) + float(frac) / 1e9

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timestamp) and self._key() == other._key()

    def __ne__(self, other: object) -> bool:
        return not self == other

    # Only < and > exist; comparing with a non-Timestamp fails on attribute access.
    def __lt__(self, other: "Timestamp") -> bool:
        return self._key() < (other.sec, other.nsec)

    def __gt__(self, other: "Timestamp") -> bool:
        return self._key() > (other.sec, other.nsec)


# Field types, named once (the NamedTuples below are the public API: names, order, defaults).
_Labels = Dict[str, str]
_When = Optional[Union[float, Timestamp]]


# NamedTuples keep their generated __doc__ (no docstrings), like the reference.
# BucketSpan and NativeHistogram are experimental.
class BucketSpan(NamedTuple):
    offset: int
    length: int


_Spans = Optional[Sequence[BucketSpan]]
_Deltas = Optional[Sequence[int]]


# timestamp: unixtime float, Timestamp, or None.
class Exemplar(NamedTuple):
    labels: _Labels
    value: float
    timestamp: _When = None


class NativeHistogram(NamedTuple):
    count_value: float
    sum_value: float
    schema: int
    zero_threshold: float
    zero_count: float
    pos_spans: _Spans = None
    neg_spans: _Spans = None
    pos_deltas: _Deltas = None
    neg_deltas: _Deltas = None
    nh_exemplars: Optional[Sequence[Exemplar]] = None


class Sample(NamedTuple):
    name: str
    labels: _Labels
    value: float
    timestamp: _When = None
    exemplar: Optional[Exemplar] = None
    native_histogram: Optional[NativeHistogram] = None
