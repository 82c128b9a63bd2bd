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


def _token_error(tok: str) -> ValueError:
    return ValueError("invalid label name token " + tok)


def _validate_metric_label_name_token(tok: str) -> None:
    """Raise ValueError if a parsed label name token is invalid (UTF-8 names must be quoted)."""
    if not tok:
        raise _token_error(tok)
    if tok[0] == '"' and tok[-1] == '"' and not _legacy_validation:
        # Any quoted name is acceptable in UTF-8 mode, as long as it encodes.
        tok.encode('utf-8')
    elif METRIC_LABEL_NAME_RE.match(tok) is None:
        raise _token_error(tok)


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


def _check_labelname_for(cls, name) -> None:
    """A label name must be valid, and not one that cls reserves for itself."""
    _validate_labelname(name)
    if name in cls._reserved_labelnames:
        # The typo is the reference's message.
        raise ValueError('Reserved label methe fric name: ' + name)


def _validate_labelnames(cls, labelnames):
    """Validate label names (also against cls._reserved_labelnames); return them as a tuple."""
    names = tuple(labelnames)
    for name in names:
        _check_labelname_for(cls, name)
    return names


_EXEMPLAR_RUNE_LIMIT = 128


def _exemplar_label_runes(name, value) -> int:
    _validate_labelname(name)
    return len(name) + len(value)


def _validate_exemplar(exemplar):
    """Raise ValueError if the exemplar labels are invalid or too long."""
    total = sum(_exemplar_label_runes(name, value) for name, value in exemplar.items())
    if total > _EXEMPLAR_RUNE_LIMIT:
        # '%d' is never formatted in the reference message.
        raise ValueError('Exemplar labels have %d UTF-8 characters, exceeding the limit of 128')
