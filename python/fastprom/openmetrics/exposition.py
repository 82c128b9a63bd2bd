"""OpenMetrics text exposition.

The rendering itself is done by the native writer (``fastprom._native``);
this module keeps the public constants and the name-escaping helpers of
``prometheus_client.openmetrics.exposition`` as plain Python functions.
"""

from sys import maxunicode
from typing import Callable

from .. import _native
from ..utils import floatToGoString, parse_version
from ..validation import _is_valid_legacy_labelname, _is_valid_legacy_metric_name  # noqa: F401

# Name escaping schemes, as in the Accept header's `escaping=` parameter.
ALLOWUTF8, UNDERSCORES, DOTS, VALUES = 'allow-utf-8', 'underscores', 'dots', 'values'
ESCAPING_HEADER_TAG = 'escaping'

_MEDIA_TYPE = 'application/openmetrics-text'
CONTENT_TYPE_LATEST = f'{_MEDIA_TYPE}; version=1.0.0; charset=utf-8'
"""The OpenMetrics 1.0.0 media type, what an Accept header without a version gets"""
CONTENT_TYPE_LATEST_2_0 = f'{_MEDIA_TYPE}; version=2.0.0; charset=utf-8'
"""The OpenMetrics 2.0.0 media type (native histograms)"""


def _is_valid_exemplar_metric(metric, sample):
    """Whether ``sample`` of ``metric`` may carry an exemplar."""
    if metric.type == 'counter' and sample.name.endswith('_total'):
        return True
    if metric.type == 'gaugehistogram' and sample.name.endswith('_bucket'):
        return True
    if metric.type == 'histogram':
        return sample.name.endswith('_bucket') or sample.name == metric.name
    return False


def _compose_exemplar_string(metric, sample, exemplar):
    """Constructs an exemplar string."""
    if not _is_valid_exemplar_metric(metric, sample):
        raise ValueError(f"Metric {metric.name} has exemplars, but is not a histogram bucket or counter")
    pairs = ','.join(
        '{}="{}"'.format(k, v.replace('\\', r'\\').replace('\n', r'\n').replace('"', r'\"'))
        for k, v in sorted(exemplar.labels.items())
    )
    labels = '{' + pairs + '}'
    value = floatToGoString(exemplar.value)
    if exemplar.timestamp is None:
        return ' # {} {}'.format(labels, value)
    return ' # {} {} {}'.format(labels, value, exemplar.timestamp)


class _CollectedMetrics:
    """A collector that replays metrics which were already collected."""

    def __init__(self, metrics):
        self._metrics = metrics

    def collect(self):
        return iter(self._metrics)


def _generate_with_unusable_version(registry, escaping, version):
    """Slow path for a ``version`` that cannot be compared with (2, 0, 0).

    The reference only looks at the version when it meets a native histogram
    sample, so such a version is harmless unless one is present; in that case
    the comparison error is raised, annotated with the metric like any other
    rendering error.
    """
    metrics = list(registry.collect())
    for index, metric in enumerate(metrics):
        if any(s.native_histogram for s in metric.samples):
            # Surface any error an earlier metric would have raised first.
            _native.generate_openmetrics(_CollectedMetrics(metrics[:index]), escaping, False)
            try:
                parse_version(version) < (2, 0, 0)
            except Exception as exception:
                exception.args = (exception.args or ('',)) + (metric,)
                raise
    return _native.generate_openmetrics(_CollectedMetrics(metrics), escaping, False)


def generate_latest(registry, escaping=UNDERSCORES, version="1.0.0"):
    '''Returns the metrics from the registry in latest text format as a string.'''
    try:
        native_histograms = parse_version(version) >= (2, 0, 0)
    except Exception:
        return _generate_with_unusable_version(registry, escaping, version)
    return _native.generate_openmetrics(registry, escaping, native_histograms)


def _escape_name(s, escaping, is_legacy, valid_rune_fn):
    if len(s) == 0:
        return s
    if escaping == ALLOWUTF8:
        escaped = _escape(s, escaping, valid_rune_fn)
        return escaped if is_legacy(s) else f'"{escaped}"'
    if escaping in (UNDERSCORES, VALUES):
        return s if is_legacy(s) else _escape(s, escaping, valid_rune_fn)
    if escaping == DOTS:
        return _escape(s, escaping, valid_rune_fn)
    return s


def escape_metric_name(s: str, escaping: str = UNDERSCORES) -> str:
    """Escapes the metric name and puts it in quotes iff the name does not
    conform to the legacy Prometheus character set.
    """
    return _escape_name(s, escaping, _is_valid_legacy_metric_name, _is_legacy_metric_rune)


def escape_label_name(s: str, escaping: str = UNDERSCORES) -> str:
    """Escapes the label name and puts it in quotes iff the name does not
    conform to the legacy Prometheus character set.
    """
    return _escape_name(s, escaping, _is_valid_legacy_labelname, _is_legacy_labelname_rune)


def _escape(s: str, escaping: str, valid_rune_fn: Callable[[str, int], bool]) -> str:
    """Performs backslash escaping on backslash, newline, and double-quote characters.

    valid_rune_fn takes the input character and its index in the containing string."""
    if escaping == ALLOWUTF8:
        return s.replace('\\', r'\\').replace('\n', r'\n').replace('"', r'\"')
    if escaping == UNDERSCORES:
        return ''.join(c if valid_rune_fn(c, i) else '_' for i, c in enumerate(s))
    if escaping == DOTS:
        out = []
        for i, c in enumerate(s):
            if c == '_':
                out.append('__')
            elif c == '.':
                out.append('_dot_')
            elif valid_rune_fn(c, i):
                out.append(c)
            else:
                out.append('__')
        return ''.join(out)
    if escaping == VALUES:
        out = ['U__']
        for i, c in enumerate(s):
            if c == '_':
                out.append('__')
            elif valid_rune_fn(c, i):
                out.append(c)
            elif not _is_valid_utf8(c):
                out.append('_FFFD_')
            else:
                out.append(f'_{ord(c):x}_')
        return ''.join(out)
    return s


def _is_legacy_metric_rune(b: str, i: int) -> bool:
    """Whether character ``b`` may stand at index ``i`` of a legacy metric name (labels' plus ':')."""
    return b == ':' or _is_legacy_labelname_rune(b, i)


def _is_legacy_labelname_rune(b: str, i: int) -> bool:
    """Whether character ``b`` may stand at index ``i`` of a legacy label name: ASCII letters and
    '_' anywhere, digits after the first place."""
    if len(b) != 1:
        raise ValueError("Input 'b' must be a single character.")
    if b.isascii() and (b.isalpha() or b == '_'):
        return True
    return i > 0 and b.isascii() and b.isdigit()


_SURROGATE_MIN = 0xD800
_SURROGATE_MAX = 0xDFFF


def _is_valid_utf8(s: str) -> bool:
    code = ord(s)
    return 0 <= code < _SURROGATE_MIN or _SURROGATE_MAX < code <= maxunicode
