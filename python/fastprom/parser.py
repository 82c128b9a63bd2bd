"""Prometheus text format parser (``prometheus_client.parser``), parsing in Rust.

``text_string_to_metric_families`` and ``text_fd_to_metric_families`` are generators that
yield the same ``Metric`` objects as prometheus_client and raise the same exceptions at the
same point of the iteration: the native parser returns the families yielded before an error
together with that error, which is raised once they have been yielded.
"""

import io as StringIO
import re
import string
from typing import Dict, Iterable, List, Match, Optional, TextIO, Tuple

from . import _native
from .metrics_core import Metric
from .samples import Sample  # noqa: F401  (importable from here, as in the reference)
from .validation import (  # noqa: F401
    _is_valid_legacy_metric_name, _validate_labelname, _validate_metric_name,
)

__all__ = ['text_string_to_metric_families', 'text_fd_to_metric_families', 'parse_labels']

# Lines handed to the native parser at a time by text_fd_to_metric_families.
_CHUNK_LINES = 4096


def text_string_to_metric_families(text: str) -> Iterable[Metric]:
    """Parse Prometheus text format from a unicode string.

    See text_fd_to_metric_families.
    """
    if text.__class__ is not str:
        # Same acceptance (and TypeError) as io.StringIO(text).
        text = StringIO.StringIO(text).getvalue()
    families, error = _native.parse_text(text)
    yield from families
    if error is not None:
        raise error


def _read_lines(it, n):
    """Up to n lines of it: (lines, exhausted, exception raised by the iterator)."""
    lines: List[str] = []
    append = lines.append
    try:
        for line in it:
            append(line)
            if len(lines) >= n:
                return lines, False, None
    except BaseException as e:  # raised after the lines read before it are parsed
        return lines, True, e
    return lines, True, None


def _feed_fd(fd, openmetrics, bad_line):
    parser = _native.LineParser(openmetrics)
    it = iter(fd)
    while True:
        lines, exhausted, exc = _read_lines(it, _CHUNK_LINES)
        families, error, stop = parser.feed(lines)
        yield from families
        if error is not None:
            raise error
        if stop is not None:
            bad_line(parser, stop)
        if exc is not None:
            raise exc
        if exhausted:
            break
    families, error = parser.finish()
    yield from families
    if error is not None:
        raise error


def _bad_text_line(parser, line):
    # What the reference does first with a line that is not a str.
    line = line.strip()
    line.startswith('#')
    raise TypeError(f"lines must be str, not {type(line).__name__}")


def text_fd_to_metric_families(fd: TextIO) -> Iterable[Metric]:
    """Parse Prometheus text format from a file descriptor (any iterable of lines); yields Metric's.

    Like the reference, this parser is laxer than Prometheus' own (Go) parser: text it
    accepts does not necessarily meet the specification.
    """
    yield from _feed_fd(fd, False, _bad_text_line)


# Helpers of the reference module, kept for code that imports them.

# The escapes of label values: a backslash before one of these characters stands for its value.
# HELP text knows only the first two.
ESCAPE_SEQUENCES = {'\\' + escaped: meant for escaped, meant in (('\\', '\\'), ('n', '\n'), ('"', '"'))}
ESCAPING_RE = re.compile(r'\\[\\n"]')
HELP_ESCAPING_RE = re.compile(r'\\[\\n]')


def replace_escape_sequence(match: Match[str]) -> str:
    """The character an escape sequence (a match of ESCAPING_RE) stands for."""
    return ESCAPE_SEQUENCES[match.group(0)]


def _replace_escaping(s: str) -> str:
    """s with the escapes of a label value undone."""
    return ESCAPING_RE.sub(replace_escape_sequence, s)


def _replace_help_escaping(s: str) -> str:
    """s with the escapes of HELP text undone."""
    return HELP_ESCAPING_RE.sub(replace_escape_sequence, s)


def _is_character_escaped(s: str, charpos: int) -> bool:
    """Whether an odd number of backslashes precede s[charpos]."""
    n = 0
    while charpos > n and s[charpos - 1 - n] == '\\':
        n += 1
    return n % 2 == 1


def parse_labels(labels_string: str, openmetrics: bool = False) -> Dict[str, str]:
    """Parse the text between the braces of a sample into a dict (native)."""
    return _native.parse_labels(labels_string, openmetrics)


def _next_unquoted_char(text: str, chs: Optional[str], startidx: int = 0) -> int:
    """Position of the next character of chs outside double quotes, or -1."""
    if chs is None:
        chs = string.whitespace
    in_quotes = False
    for i in range(startidx, len(text)):
        c = text[i]
        if c == '"' and not _is_character_escaped(text, i):
            in_quotes = not in_quotes
        if not in_quotes and c in chs:
            return i
    return -1


def _last_unquoted_char(text: str, chs: Optional[str]) -> int:
    """Position of the last character of chs outside double quotes (index 0 excluded), or -1."""
    if chs is None:
        chs = string.whitespace
    in_quotes = False
    for i in range(len(text) - 1, 0, -1):
        c = text[i]
        if c == '"' and not _is_character_escaped(text, i):
            in_quotes = not in_quotes
        if not in_quotes and c in chs:
            return i
    return -1


def _split_quoted(text, separator, maxsplit=0):
    """str.split on separator characters outside quotes, skipping repeated separators."""
    tokens = ['']
    x = 0
    while x < len(text):
        pos = _next_unquoted_char(text, separator, x)
        if pos == -1:
            tokens[-1] = text[x:]
            break
        if pos == x:
            x += 1
            continue
        if maxsplit > 0 and len(tokens) > maxsplit:
            tokens[-1] = text[x:]
            break
        tokens[-1] = text[x:pos]
        x = pos + 1
        tokens.append('')
    return tokens


def _unquote_unescape(text):
    """(text stripped, unquoted and unescaped, whether it was in double quotes)."""
    if not text:
        return text, False
    text = text.strip()
    quoted = text[0] == '"'
    if quoted:
        if len(text) < 2 or text[-1] != '"':
            raise ValueError("missing close quote")
        text = text[1:-1]
    return (_replace_escaping(text) if "\\" in text else text), quoted


def _parse_value(value):
    """An int if the text is one, else a float; surrounding blanks and underscores are refused."""
    text = ''.join(value)
    if '_' in text or text.strip() != text:
        raise ValueError(f"Invalid value: {text!r}")
    try:
        return int(text)
    except ValueError:
        return float(text)


def _parse_value_and_timestamp(s: str) -> Tuple[float, Optional[float]]:
    s = s.lstrip()
    separator = " " if " " in s else "\t"
    values = [v.strip() for v in s.split(separator) if v.strip()]
    if not values:
        return float(s), None
    value = _parse_value(values[0])
    timestamp = (_parse_value(values[-1]) / 1000) if len(values) > 1 else None
    return value, timestamp
