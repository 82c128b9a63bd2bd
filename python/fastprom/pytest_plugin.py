"""fastprom's pytest plugin, registered through the `pytest11` entry point.

Fixtures:

- `metrics`: a `fastprom.testing.MetricsSnapshot` of the default registry taken as the test
  starts: `metrics.value(name, **labels)`, `metrics.delta(name, **labels)`.
- `fresh_registry`: a new empty default registry for the test (restored afterwards), so an
  application built in every test registers its metrics again without a duplicate error.
"""

from typing import Iterator

import pytest

from .registry import CollectorRegistry
from .testing import MetricsSnapshot, swap_default_registry


@pytest.fixture
def fresh_registry() -> Iterator[CollectorRegistry]:
    """The process's default registry is a new empty one during the test."""
    with swap_default_registry() as registry:
        yield registry


@pytest.fixture
def metrics(request: pytest.FixtureRequest) -> MetricsSnapshot:
    """Values of the default registry, and their change since the test started."""
    if 'fresh_registry' in request.fixturenames:
        request.getfixturevalue('fresh_registry')  # snapshot the registry the test will use
    return MetricsSnapshot()
