"""Helpers for asserting metrics in tests.

- `MetricsSnapshot`: read sample values and their change since a point in time, with errors
  that say which names and label sets exist (the `metrics` pytest fixture is one).
- `swap_default_registry`: make a new empty registry the process's default for a while (the
  `fresh_registry` fixture).
- `collect_and_compare`, `to_float`, `lint`: client_golang's testutil counterparts.

The pytest fixtures live in `fastprom.pytest_plugin`, registered through the `pytest11` entry
point, so installing fastprom is enough to use them.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import re
import sys
import tempfile
import types
from typing import (
    TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Iterable, Iterator, List, NamedTuple, Optional,
    Set, Tuple, Union,
)

if TYPE_CHECKING:
    from .registry import CollectorRegistry

__all__ = [
    'MetricsSnapshot', 'Problem', 'TextFormatError', 'collect_and_compare', 'lint',
    'swap_default_registry',
    'to_float',
]

_LabelKey = FrozenSet[Tuple[str, str]]


# --------------------------------------------------------------------------------------------
# The default registry, swapped.

def _fastprom_modules() -> List[types.ModuleType]:
    return [m for n, m in list(sys.modules.items())
            if isinstance(m, types.ModuleType) and (n == 'fastprom' or n.startswith('fastprom.'))]


def _is_fastprom_class(value: Any) -> bool:
    # A class may shadow `__module__` with a per-instance descriptor (DecoratedFunction).
    module = getattr(value, '__module__', None) if isinstance(value, type) else None
    return isinstance(module, str) and module.startswith('fastprom')


def _functions_of(module: types.ModuleType) -> Iterator[types.FunctionType]:
    """The functions and methods defined in a fastprom module (grafted native classes too)."""
    for value in list(vars(module).values()):
        if isinstance(value, types.FunctionType):
            yield value
        elif _is_fastprom_class(value):
            for attr in list(vars(value).values()):
                if isinstance(attr, (staticmethod, classmethod)):
                    attr = attr.__func__
                if isinstance(attr, types.FunctionType):
                    yield attr


class _Swap:
    """Every reference to one registry object that code reads as "the default", replaced by
    another, and put back by `undo`."""

    def __init__(self, old: Any, new: Any):
        self._undo: List[Tuple[Any, str, Any]] = []
        seen = set()
        # Module globals anywhere (`from prometheus_client import REGISTRY` in application code
        # included): a global holding the default registry means the default registry.
        for module in list(sys.modules.values()):
            try:
                namespace = vars(module)
                hits = [k for k, v in list(namespace.items()) if v is old]
            except Exception:  # exotic module objects
                continue
            for key in hits:
                self._set(module, key, new, setattr)
        # Default arguments (`registry=REGISTRY`, bound when fastprom's functions were defined)
        # and class attributes (`MetricsHandler.registry`) of fastprom's own modules.
        for module in _fastprom_modules():
            for value in list(vars(module).values()):
                if _is_fastprom_class(value):
                    for key, attr in list(vars(value).items()):
                        if attr is old:
                            self._set(value, key, new, setattr)
            for func in _functions_of(module):
                if id(func) in seen:
                    continue
                seen.add(id(func))
                if func.__defaults__ and any(d is old for d in func.__defaults__):
                    replaced = tuple(new if d is old else d for d in func.__defaults__)
                    self._set(func, '__defaults__', replaced, setattr)
                if func.__kwdefaults__ and any(d is old for d in func.__kwdefaults__.values()):
                    replaced_kw = {k: (new if d is old else d) for k, d in func.__kwdefaults__.items()}
                    self._set(func, '__kwdefaults__', replaced_kw, setattr)

    def _set(self, obj: Any, key: str, value: Any, setter: Callable[[Any, str, Any], None]) -> None:
        previous = obj.__dict__[key] if key in getattr(obj, '__dict__', {}) else getattr(obj, key)
        setter(obj, key, value)
        self._undo.append((obj, key, previous))

    def undo(self) -> None:
        for obj, key, previous in reversed(self._undo):
            setattr(obj, key, previous)
        self._undo.clear()


_MULTIPROC_ENV = 'PROMETHEUS_MULTIPROC_DIR'


def _multiprocess_dir() -> Optional[str]:
    return os.environ.get(_MULTIPROC_ENV) or os.environ.get('prometheus_multiproc_dir') or None


@contextlib.contextmanager
def swap_default_registry(registry: Optional[CollectorRegistry] = None,
                          multiprocess_dir: Optional[str] = None) -> Iterator[CollectorRegistry]:
    """Within the block, `registry` (a new empty `CollectorRegistry` by default) is the
    process's default registry: `fastprom.REGISTRY`, `prometheus_client.REGISTRY` after
    `fastprom.install()`, module globals elsewhere that held the default registry, and the
    `registry=` default of every fastprom constructor and function. The previous default is
    restored on exit.

    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set), metrics created in the block write to
    a new empty directory (`multiprocess_dir`, or a temporary one removed afterwards), so values
    of earlier tests do not leak in. Yields the registry.
    """
    from . import registry as registry_module
    from .registry import CollectorRegistry

    new = CollectorRegistry(auto_describe=True) if registry is None else registry
    old = registry_module.REGISTRY
    swap = _Swap(old, new)
    env = {k: os.environ[k] for k in (_MULTIPROC_ENV, 'prometheus_multiproc_dir') if k in os.environ}
    tmp = None
    try:
        if env:
            if multiprocess_dir is None:
                tmp = tempfile.TemporaryDirectory(prefix='fastprom-test-')
                multiprocess_dir = tmp.name
            os.environ.pop('prometheus_multiproc_dir', None)
            os.environ[_MULTIPROC_ENV] = os.fspath(multiprocess_dir)
        yield new
    finally:
        swap.undo()
        # Modules first imported inside the block bound the new registry as their default:
        # they get the previous one back too.
        _Swap(new, old)
        if env:
            os.environ.pop(_MULTIPROC_ENV, None)
            os.environ.update(env)
        if tmp is not None:
            tmp.cleanup()


# --------------------------------------------------------------------------------------------
# Reading sample values.

def _label_value(name: str, value: Any) -> str:
    """Label values as the exposition writes them; bucket bounds and quantiles by number."""
    if name in ('le', 'quantile'):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)
        if math.isinf(number):
            return '+Inf' if number > 0 else '-Inf'
        return repr(number)
    return str(value)


def _key(labels: Dict[str, Any]) -> _LabelKey:
    return frozenset((k, _label_value(k, v)) for k, v in labels.items())


def _show_labels(key: _LabelKey) -> str:
    return '{' + ', '.join(f'{k}={v!r}' for k, v in sorted(key)) + '}'


class _Reading:
    """All samples of one collection: name -> {label key -> value}, and each family's type."""

    def __init__(self, families: Iterable[Any]):
        self.samples: Dict[str, Dict[_LabelKey, float]] = {}
        self.family_of: Dict[str, str] = {}
        for family in families:
            for s in family.samples:
                self.samples.setdefault(s.name, {})[_key(s.labels)] = s.value
                self.family_of.setdefault(s.name, family.name)

    def get(self, name: str, key: _LabelKey) -> Optional[float]:
        return self.samples.get(name, {}).get(key)


class MetricsSnapshot:
    """Sample values of a collector (the default registry when none is given) as they were when
    the snapshot was taken, and as they are now.

    >>> snap = MetricsSnapshot()
    >>> ...  # exercise the code
    >>> assert snap.delta('requests_total', path='/') == 1

    Names are sample names (`requests_total`, `latency_seconds_bucket`), labels are keyword
    arguments or a dict (for label names that are not identifiers). Label values are compared as
    strings, `le` and `quantile` as numbers. With the default source in multiprocess mode, values
    are those of all processes, merged from ``PROMETHEUS_MULTIPROC_DIR`` as a scrape sees them.
    """

    def __init__(self, source: Any = None):
        self._source = source
        self._before = self._read()

    def _collect(self) -> Iterable[Any]:
        if self._source is not None:
            return self._source.collect()
        directory = _multiprocess_dir()
        if directory and os.path.isdir(directory):
            from .multiprocess import MultiProcessCollector
            return MultiProcessCollector(None, path=directory).collect()
        from . import registry as registry_module
        return registry_module.REGISTRY.collect()

    def _read(self) -> _Reading:
        return _Reading(self._collect())

    def _where(self) -> str:
        if self._source is not None:
            return repr(self._source)
        return 'the multiprocess directory' if _multiprocess_dir() else 'the default registry'

    def _missing(self, reading: _Reading, name: str, key: _LabelKey) -> AssertionError:
        series = reading.samples.get(name)
        if series is None:
            candidates = set(reading.samples) | set(reading.family_of.values())
            close = difflib.get_close_matches(name, sorted(candidates), n=5, cutoff=0.5)
            if close:
                hint = 'closest names: ' + ', '.join(close)
            elif candidates:
                hint = 'names there: ' + ', '.join(sorted(candidates)[:20])
            else:
                hint = 'it has no samples at all'
            return AssertionError(f'no sample named {name!r} in {self._where()}; {hint}')
        sets = sorted(_show_labels(k) for k in series)
        shown = ', '.join(sets[:20]) + (f' and {len(sets) - 20} more' if len(sets) > 20 else '')
        names = sorted({k for labels in series for k, _ in labels})
        wanted = sorted(k for k, _ in key)
        extra = ''
        if wanted != names and not any(sorted(k for k, _ in labels) == wanted for labels in series):
            extra = f' (its label names are {names}, given {wanted})'
        return AssertionError(
            f'{name!r} has no sample with labels {_show_labels(key)}{extra}; its label sets: {shown}')

    @staticmethod
    def _labels(labels: Optional[Dict[str, Any]], kwlabels: Dict[str, Any]) -> _LabelKey:
        merged = dict(labels or {})
        merged.update(kwlabels)
        return _key(merged)

    def value(self, name: str, labels: Optional[Dict[str, Any]] = None, /, **kwlabels: Any) -> float:
        """The current value of the sample `name` with exactly these labels."""
        key = self._labels(labels, kwlabels)
        reading = self._read()
        found = reading.get(name, key)
        if found is None:
            raise self._missing(reading, name, key)
        return found

    def before(self, name: str, labels: Optional[Dict[str, Any]] = None, /, **kwlabels: Any) -> Optional[float]:
        """The sample's value when the snapshot was taken (None if it did not exist)."""
        return self._before.get(name, self._labels(labels, kwlabels))

    def delta(self, name: str, labels: Optional[Dict[str, Any]] = None, /, **kwlabels: Any) -> float:
        """How much the sample changed since the snapshot (one that did not exist counts from 0)."""
        key = self._labels(labels, kwlabels)
        now = self.value(name, dict(key))
        return now - (self._before.get(name, key) or 0.0)

    def label_sets(self, name: str) -> List[Dict[str, str]]:
        """The label sets the sample `name` currently has."""
        reading = self._read()
        if name not in reading.samples:
            raise self._missing(reading, name, frozenset())
        return [dict(k) for k in reading.samples[name]]


# --------------------------------------------------------------------------------------------
# to_float

def to_float(metric: Any) -> float:
    """The single value of a counter or gauge (or of one labelled child of it).

    Raises ValueError when the metric has no series or several (pick one with `.labels(...)`),
    TypeError for other metric types."""
    families = list(metric.collect())
    values = []
    for family in families:
        if family.type not in ('counter', 'gauge', 'untyped', 'unknown'):
            raise TypeError(f'to_float needs a counter or gauge, {family.name!r} is a {family.type}')
        for s in family.samples:
            if family.type == 'counter' and s.name.endswith('_created'):
                continue
            values.append((s.labels, s.value))
    if len(values) != 1:
        sets = ', '.join(_show_labels(_key(labels)) for labels, _ in values)
        what = f'{len(values)} series ({sets}); pick one with .labels(...)' if values else 'no series'
        raise ValueError(f'to_float: {metric!r} has {what}')
    return values[0][1]


# --------------------------------------------------------------------------------------------
# The text format as promtool reads it.

_METRIC_NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*')
_LABEL_NAME = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*')
_TYPES = ('counter', 'gauge', 'histogram', 'summary', 'untyped')


class TextFormatError(ValueError):
    """The input is not valid Prometheus text format (promtool exits with 1 on it)."""


class _Series(NamedTuple):
    labels: Tuple[Tuple[str, str], ...]  # without the le of buckets and quantile of summaries
    samples: List[Tuple[str, Tuple[Tuple[str, str], ...], float, Optional[int]]]


class _Family:
    def __init__(self, name: str):
        self.name = name
        self.type: Optional[str] = None
        self.help: Optional[str] = None
        self.series: List[_Series] = []
        self._grouped: Dict[Tuple[Tuple[str, str], ...], _Series] = {}

    @property
    def kind(self) -> str:
        return self.type or 'untyped'


def _unescape(text: str, line_no: int, quotes: bool) -> str:
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '\\' and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == 'n':
                out.append('\n')
            elif nxt == '\\':
                out.append('\\')
            elif nxt == '"' and quotes:
                out.append('"')
            elif quotes:
                raise TextFormatError(f'text format parsing error in line {line_no}: invalid escape sequence \'\\{nxt}\'')
            else:
                out.append('\\' + nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return ''.join(out)


def _parse_float(token: str) -> float:
    cleaned = token.lower().lstrip('+-')
    if cleaned in ('nan', 'inf', 'infinity') or re.fullmatch(r'(\d+\.?\d*|\.\d+)(e[+-]?\d+)?', cleaned):
        return float(token)
    raise ValueError(token)


class _TextParser:
    """Groups the text format into families the way Prometheus' Go parser does: a sample joins the
    family of its exact name, else the summary or histogram its _sum/_count/_bucket suffix names,
    else a new untyped family; families without samples are dropped."""

    def __init__(self, text: str):
        self.families: Dict[str, _Family] = {}
        for number, line in enumerate(text.split('\n'), 1):
            self._line(line.lstrip(' \t'), number)
        self.families = {k: f for k, f in self.families.items() if f.series}

    def _error(self, number: int, message: str) -> TextFormatError:
        return TextFormatError(f'text format parsing error in line {number}: {message}')

    def _family(self, name: str) -> Tuple[_Family, str]:
        """The family a name belongs to, and the sample's role in it ('' | sum | count | bucket)."""
        fam = self.families.get(name)
        if fam is not None:
            return fam, ''
        for suffix, kinds in (('_sum', ('summary', 'histogram')), ('_count', ('summary', 'histogram')),
                              ('_bucket', ('histogram',))):
            if name.endswith(suffix):
                base = self.families.get(name[:-len(suffix)])
                if base is not None and base.type in kinds:
                    return base, suffix[1:]
        fam = self.families[name] = _Family(name)
        return fam, ''

    def _line(self, line: str, number: int) -> None:
        if not line.strip(' \t'):
            return
        if line.startswith('#'):
            self._comment(line[1:].lstrip(' \t'), number)
        else:
            self._sample(line, number)

    def _comment(self, rest: str, number: int) -> None:
        parts = re.split(r'[ \t]+', rest, maxsplit=1)
        keyword = parts[0]
        if keyword not in ('HELP', 'TYPE') or len(parts) < 2:
            return  # an ordinary comment
        after = parts[1]
        m = _METRIC_NAME.match(after)
        if not m or (len(after) > m.end() and after[m.end()] not in ' \t'):
            raise self._error(number, 'invalid metric name in comment')
        name = m.group(0)
        tail = after[m.end():].lstrip(' \t')
        fam, _ = self._family(name)
        if keyword == 'HELP':
            if fam.help is not None:
                raise self._error(number, f'second HELP line for metric name "{fam.name}"')
            if tail:
                fam.help = _unescape(tail, number, quotes=False)
        else:
            if fam.type is not None or fam.series:
                raise self._error(number, f'second TYPE line for metric name "{fam.name}", '
                                          'or TYPE reported after samples')
            kind = tail.rstrip(' \t')
            if kind not in _TYPES:
                raise self._error(number, f'unknown metric type "{kind}"')
            fam.type = kind

    def _sample(self, line: str, number: int) -> None:
        m = _METRIC_NAME.match(line)
        if not m:
            raise self._error(number, 'invalid metric name')
        name = m.group(0)
        fam, role = self._family(name)
        pos = m.end()
        while pos < len(line) and line[pos] in ' \t':
            pos += 1
        labels: List[Tuple[str, str]] = []
        if pos < len(line) and line[pos] == '{':
            labels, pos = self._labels(line, pos + 1, name, number)
        rest = line[pos:].strip(' \t').split()
        if not rest:
            raise self._error(number, f'expected value after metric "{name}"')
        try:
            value = _parse_float(rest[0])
        except ValueError:
            raise self._error(number, f'expected float as value, got "{rest[0]}"') from None
        timestamp = None
        if len(rest) > 1:
            try:
                timestamp = int(rest[1])
            except ValueError:
                raise self._error(number, f'expected integer as timestamp, got "{rest[1]}"') from None
        if len(rest) > 2:
            raise self._error(number, f'spurious string after timestamp: "{rest[2]}"')
        consumed = None
        if fam.type == 'summary' and role == '':
            consumed = 'quantile'
        elif fam.type == 'histogram' and role == 'bucket':
            consumed = 'le'
        own = []
        for k, v in labels:
            if k == consumed:
                try:
                    _parse_float(v)
                except ValueError:
                    raise self._error(number, f'expected float as value for \'{k}\' label, got "{v}"') from None
            else:
                own.append((k, v))
        key = tuple(sorted(own))
        sample = (name, tuple(labels), value, timestamp)
        if fam.type in ('summary', 'histogram'):
            series = fam._grouped.get(key)
            if series is None:
                series = fam._grouped[key] = _Series(key, [])
                fam.series.append(series)
            series.samples.append(sample)
        else:
            fam.series.append(_Series(key, [sample]))

    def _labels(self, line: str, pos: int, name: str, number: int) -> Tuple[List[Tuple[str, str]], int]:
        labels: List[Tuple[str, str]] = []
        seen = set()
        while True:
            while pos < len(line) and line[pos] in ' \t':
                pos += 1
            if pos < len(line) and line[pos] == '}':
                return labels, pos + 1
            m = _LABEL_NAME.match(line, pos)
            if not m:
                raise self._error(number, f'invalid label name for metric "{name}"')
            label = m.group(0)
            if label == '__name__':
                raise self._error(number, 'label name "__name__" is reserved')
            if label in seen:
                raise self._error(number, f'duplicate label names for metric "{name}"')
            seen.add(label)
            pos = m.end()
            while pos < len(line) and line[pos] in ' \t':
                pos += 1
            if line[pos:pos + 2] != '="':
                raise self._error(number, f'expected \'=\' and \'"\' after label name "{label}"')
            pos += 2
            end = pos
            while end < len(line) and line[end] != '"':
                end += 2 if line[end] == '\\' else 1
            if end >= len(line):
                raise self._error(number, f'unterminated label value for label "{label}"')
            labels.append((label, _unescape(line[pos:end], number, quotes=True)))
            pos = end + 1
            while pos < len(line) and line[pos] in ' \t':
                pos += 1
            if pos < len(line) and line[pos] == ',':
                pos += 1
            elif pos < len(line) and line[pos] == '}':
                return labels, pos + 1
            else:
                raise self._error(number, f'unexpected end of label value for label "{label}"')


def _text_of(source: Union[str, bytes, Any]) -> str:
    if isinstance(source, bytes):
        return source.decode('utf-8')
    if isinstance(source, str):
        return source
    from .exposition import generate_latest
    return generate_latest(source).decode('utf-8')


# --------------------------------------------------------------------------------------------
# lint

class Problem(NamedTuple):
    """One finding of `lint`: the metric family it is about and what is wrong."""
    metric: str
    text: str

    def __str__(self) -> str:
        return f'{self.metric} {self.text}'


# A unit word in a name and the base unit Prometheus wants instead.
_BASE_UNITS = {
    'amperes': 'amperes', 'bytes': 'bytes', 'celsius': 'celsius', 'grams': 'grams',
    'joules': 'joules', 'kelvin': 'kelvin', 'meters': 'meters', 'metres': 'metres',
    'seconds': 'seconds', 'volts': 'volts',
    'minutes': 'seconds', 'hours': 'seconds', 'days': 'seconds', 'weeks': 'seconds',
    'kelvins': 'kelvin', 'fahrenheit': 'celsius', 'rankine': 'celsius',
    'inches': 'meters', 'yards': 'meters', 'miles': 'meters',
    'bits': 'bytes', 'calories': 'joules', 'pounds': 'grams', 'ounces': 'grams',
}
_SI_PREFIXES = ('pico', 'nano', 'micro', 'milli', 'centi', 'deci', 'deca', 'hecto', 'kilo',
                'kibi', 'mega', 'mibi', 'giga', 'gibi', 'tera', 'tebi', 'peta', 'pebi')
_ABBREVIATIONS = ('s', 'ms', 'us', 'ns', 'sec', 'b', 'kb', 'mb', 'gb', 'tb', 'pb', 'm', 'h', 'd')
# The metric types of Prometheus' data model, as names may spell them.
_TYPE_WORDS = ('counter', 'gauge', 'summary', 'histogram', 'gauge_histogram')
_CAMEL = re.compile(r'[a-z][A-Z]')


def _unit_word(name: str) -> Optional[Tuple[str, str]]:
    """The first word of the name that is a known unit, possibly SI-prefixed, with its base."""
    for word in name.split('_'):
        if word in _BASE_UNITS:
            return word, _BASE_UNITS[word]
        for prefix in _SI_PREFIXES:
            if word.startswith(prefix) and word[len(prefix):] in _BASE_UNITS:
                return word, _BASE_UNITS[word[len(prefix):]]
    return None


def _has_word(name: str, word: str) -> bool:
    return f'_{word}_' in name or name.endswith('_' + word)


def _lint_family(fam: _Family) -> Iterator[str]:
    name, kind = fam.name, fam.kind
    if fam.help is None:
        yield 'no help text'
    unit = _unit_word(name)
    if unit and unit[0] != unit[1]:
        yield f'use base unit "{unit[1]}" instead of "{unit[0]}"'
    total = name.endswith('_total')
    if kind == 'counter' and not total:
        yield 'counter metrics should have "_total" suffix'
    elif kind not in ('counter', 'untyped') and total:
        yield 'non-counter metrics should not have "_total" suffix'
    if kind != 'untyped':
        if kind != 'histogram' and name.endswith('_bucket'):
            yield 'non-histogram metrics should not have "_bucket" suffix'
        if kind not in ('histogram', 'summary'):
            for suffix in ('_count', '_sum'):
                if name.endswith(suffix):
                    yield f'non-histogram and non-summary metrics should not have "{suffix}" suffix'
        for series in fam.series:
            for label, _ in series.labels:
                if label == 'le' and kind != 'histogram':
                    yield 'non-histogram metrics should not have "le" label'
                if label == 'quantile' and kind != 'summary':
                    yield 'non-summary metrics should not have "quantile" label'
    lowered = name.lower()
    for word in _TYPE_WORDS:
        if _has_word(lowered, word):
            yield f"metric name should not include type '{word}'"
    if ':' in name:
        yield "metric names should not contain ':'"
    if _CAMEL.search(name):
        yield "metric names should be written in 'snake_case' not 'camelCase'"
    for series in fam.series:
        for label, _ in series.labels:
            if _CAMEL.search(label):
                yield "label names should be written in 'snake_case' not 'camelCase'"
    for abbreviation in _ABBREVIATIONS:
        if _has_word(lowered, abbreviation):
            yield 'metric names should not contain abbreviated units'


def lint(source: Union[str, bytes, Any]) -> List[Problem]:
    """The problems `promtool check metrics` (promlint) finds in an exposition: text in the
    Prometheus text format, or a registry or collector (rendered with `generate_latest`).

    Sorted by metric and text, one per finding as promtool prints them (a label rule reports each
    series). An empty list is promtool's exit status 0. Input promtool cannot parse raises
    `TextFormatError` (a ValueError), its exit status 1.

    One known difference: for a name with several unit words (``x_seconds_hours``) promtool picks
    one at random on each run; `lint` always judges the first."""
    families = _TextParser(_text_of(source)).families
    problems = [Problem(fam.name, text) for fam in families.values() for text in _lint_family(fam)]
    problems.sort()
    return problems


# --------------------------------------------------------------------------------------------
# collect_and_compare

def _format_value(value: float) -> str:
    if math.isnan(value):
        return 'NaN'
    if math.isinf(value):
        return '+Inf' if value > 0 else '-Inf'
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace('\\', r'\\').replace('\n', r'\n').replace('"', r'\"')


def _canonical(families: Dict[str, _Family], keep: Optional[Set[str]], keep_created: Set[str]) -> List[str]:
    lines = []
    for name in sorted(families):
        fam = families[name]
        if keep is not None and not (name in keep or any(s[0] in keep for series in fam.series for s in series.samples)):
            continue
        samples = []
        for series in fam.series:
            for sample_name, labels, value, timestamp in series.samples:
                if sample_name.endswith('_created') and sample_name not in keep_created:
                    continue
                shown = ','.join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels))
                line = sample_name + ('{' + shown + '}' if shown else '') + ' ' + _format_value(value)
                if timestamp is not None:
                    line += f' {timestamp}'
                samples.append(line)
        if not samples:
            continue
        if fam.help is not None:
            lines.append(f'# HELP {name} {fam.help}')
        lines.append(f'# TYPE {name} {fam.kind}')
        lines.extend(sorted(samples))
    return lines


def collect_and_compare(collector: Any, expected: str, *metric_names: str) -> None:
    """Assert that what `collector` (a registry, a metric, any object with `collect()`) exposes
    matches `expected`, a Prometheus text exposition.

    Only the families named in `metric_names` are compared (all when none is named; a counter may
    be named with or without `_total`). Samples ending in `_created` are ignored unless `expected`
    has them. Sample order, label order and number spelling do not matter. Raises AssertionError
    with a unified diff (expected -> got)."""
    expected_families = _TextParser(expected).families
    got_families = _TextParser(_text_of(collector)).families
    keep = None
    if metric_names:
        keep = set(metric_names) | {n + '_total' for n in metric_names}
    expected_created = {s[0] for fam in expected_families.values() for series in fam.series
                        for s in series.samples if s[0].endswith('_created')}
    want = _canonical(expected_families, keep, expected_created)
    got = _canonical(got_families, keep, expected_created)
    if want != got:
        diff = '\n'.join(difflib.unified_diff(want, got, 'expected', 'got', lineterm=''))
        raise AssertionError('collected metrics differ from the expected exposition:\n' + diff)
