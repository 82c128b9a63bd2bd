"""OpenMetrics text format parser (``prometheus_client.openmetrics.parser``), parsing in Rust.

The generators yield the same ``Metric`` objects as prometheus_client and raise the same
exceptions (type and message) at the same point of the iteration.
"""

import io as StringIO
import math

from .. import _native
from ..parser import (  # noqa: F401  (helpers the reference module imports)
    _feed_fd, _last_unquoted_char, _next_unquoted_char, _parse_value,
    _replace_escaping, _split_quoted, _unquote_unescape, ESCAPE_SEQUENCES as ESCAPE_SEQUENCES,
    ESCAPING_RE, parse_labels,
)
from ..metrics_core import Metric  # noqa: F401  (importable from here, as in the reference)
from ..samples import BucketSpan, Exemplar, NativeHistogram, Sample, Timestamp  # noqa: F401
from ..validation import _is_valid_legacy_metric_name, _validate_metric_name  # noqa: F401
from ..utils import floatToGoString

__all__ = ['text_string_to_metric_families', 'text_fd_to_metric_families']


def text_string_to_metric_families(text):
    """Parse Openmetrics text format from a unicode string.

    See text_fd_to_metric_families.
    """
    if text.__class__ is not str:
        # Same acceptance (and TypeError) as io.StringIO(text).
        text = StringIO.StringIO(text).getvalue()
    families, error = _native.parse_openmetrics(text)
    yield from families
    if error is not None:
        raise error


def _bad_om_line(parser, line):
    # What the reference does first with a line that is not a str.
    if line[-1] == '\n':
        line = line[:-1]
    if parser.eof:
        raise ValueError("Received line after # EOF: " + line)
    if not line:
        raise ValueError("Received blank line")
    if line == '# EOF':
        raise TypeError(f"lines must be str, not {type(line).__name__}")
    line.startswith('#')
    raise TypeError(f"lines must be str, not {type(line).__name__}")


def text_fd_to_metric_families(fd):
    """Parse Prometheus text format from a file descriptor.

    Yields Metric's. The parser is laxer than the Go one: text it accepts
    is not necessarily valid by the specification.
    """
    yield from _feed_fd(fd, True, _bad_om_line)


# Helpers of the reference module, kept for code that imports them.

_CANONICAL_NUMBERS = {float("inf")}


def _isUncanonicalNumber(s):
    # Only the numbers in _CANONICAL_NUMBERS have a single required spelling.
    value = float(s)
    return value in _CANONICAL_NUMBERS and floatToGoString(value) != s


def _replace_escape_sequence(match):
    return ESCAPE_SEQUENCES[match.group(0)]


def _unescape_help(text):
    """Unescape \\\\, \\" and \\n; other backslashes are kept."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '\\':
            if i + 1 == n:
                out.append('\\')
                break
            nxt = text[i + 1]
            out.append({'\\': '\\', '"': '"', 'n': '\n'}.get(nxt, '\\' + nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return ''.join(out)


def _is_character_escaped(s, charpos):
    n = 0
    while charpos > n and s[charpos - 1 - n] == '\\':
        n += 1
    return n % 2 == 1


def _parse_timestamp(timestamp):
    text = ''.join(timestamp)
    if not text:
        return None
    invalid = ValueError(f"Invalid timestamp: {text!r}")
    if '_' in text or text.strip() != text:
        raise invalid
    # Integer seconds, then seconds.fraction (nanoseconds kept exactly), then any float.
    for build in (_ts_whole, _ts_fraction):
        try:
            return build(text)
        except ValueError:
            pass
    seconds = float(text)
    if math.isinf(seconds) or math.isnan(seconds):
        raise invalid
    return seconds


def _ts_whole(text):
    return Timestamp(int(text), 0)


def _ts_fraction(text):
    whole, _, digits = text.partition('.')
    if not _:
        raise ValueError(text)
    return Timestamp(int(whole), int(digits[:9].ljust(9, "0")))
