"""Float constants, Go-style float formatting and version parsing."""

from typing import Tuple, Union

from ._native import floatToGoString  # noqa: F401  (float(d), then Go-style repr)

INF = float("inf")
MINUS_INF = float("-inf")
NaN = float("NaN")


def parse_version(version_str: str) -> Tuple[Union[int, str], ...]:
    """Split a dotted version into a tuple, ints where a part parses as int."""
    parts = []
    for part in version_str.split('.'):
        try:
            parts.append(int(part))
        except ValueError:
            parts.append(part)
    return tuple(parts)
