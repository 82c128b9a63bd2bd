"""Metric and label name validation (UTF-8 by default, legacy scheme optional)."""

import os
import re

METRIC_NAME_RE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*$')
METRIC_LABEL_NAME_RE = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*$')
RESERVED_METRIC_LABEL_NAME_RE = re.compile(r'^__.*$')

_TRUE_VALUES = ('true', '1', 't')


def _init_legacy_validation() -> bool:
    """Read the legacy validation setting from the environment."""
    value = os.environ.get("PROMETHEUS_LEGACY_NAME_VALIDATION", 'False')
    return value.lower() in _TRUE_VALUES


_legacy_validation = _init_legacy_validation()


def get_legacy_validation() -> bool:
    """Return whether legacy name validation is enabled."""
    return _legacy_validation


def disable_legacy_validation():
    """Allow all UTF-8 names (the default)."""
    global _legacy_validation
    _legacy_validation = False


def enable_legacy_validation():
    """Restrict names to the legacy [a-zA-Z_:][a-zA-Z0-9_:]* scheme."""
    global _legacy_validation
    _legacy_validation = True


# Note: str.encode('utf-8') only fails on lone surrogates and then raises
# UnicodeEncodeError (a ValueError), which propagates unchanged.

def _validate_metric_name(name: str) -> None:
    """Raise ValueError if name is not a valid metric name."""
    if not name:
        raise ValueError("metric name cannot be empty")
    if _legacy_validation and not METRIC_NAME_RE.match(name):
        raise ValueError("invalid metric name " + name)
    name.encode('utf-8')


def _is_valid_legacy_metric_name(name: str) -> bool:
    """Return True if name matches the legacy metric name scheme."""
    return len(name) != 0 and METRIC_NAME_RE.match(name) is not None


def _validate_metric_label_name_token(tok: str) -> None:
    """Raise ValueError if a parsed label name token is invalid (UTF-8 names must be quoted)."""
    if not tok:
        raise ValueError("invalid label name token " + tok)
    quoted = tok[0] == '"' and tok[-1] == '"'
    if not quoted or _legacy_validation:
        if not METRIC_LABEL_NAME_RE.match(tok):
            raise ValueError("invalid label name token " + tok)
        return
    tok.encode('utf-8')


def _validate_labelname(l):
    """Raise ValueError if l is not a valid label name."""
    if get_legacy_validation():
        if not METRIC_LABEL_NAME_RE.match(l):
            raise ValueError('Invalid label metric name: ' + l)
    else:
        l.encode('utf-8')
    if RESERVED_METRIC_LABEL_NAME_RE.match(l):
        raise ValueError('Reserved label metric name: ' + l)


def _is_valid_legacy_labelname(l: str) -> bool:
    """Return True if l matches the legacy label name scheme and is not reserved."""
    if len(l) == 0 or METRIC_LABEL_NAME_RE.match(l) is None:
        return False
    return RESERVED_METRIC_LABEL_NAME_RE.match(l) is None


def _validate_labelnames(cls, labelnames):
    """Validate label names (also against cls._reserved_labelnames); return them as a tuple."""
    labelnames = tuple(labelnames)
    for l in labelnames:
        _validate_labelname(l)
        if l in cls._reserved_labelnames:
            # The typo is the reference's message.
            raise ValueError('Reserved label methe fric name: ' + l)
    return labelnames


def _validate_exemplar(exemplar):
    """Raise ValueError if the exemplar labels are invalid or too long."""
    runes = 0
    for k, v in exemplar.items():
        _validate_labelname(k)
        runes += len(k)
        runes += len(v)
    if runes > 128:
        # '%d' is never formatted in the reference message.
        raise ValueError('Exemplar labels have %d UTF-8 characters, exceeding the limit of 128')
