"""fastprom's bucket helpers give BentoML's results; bad arguments get a ValueError where
BentoML fails a bare assert."""
import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastprom

try:
    import bentoml._internal.utils.metrics as bentoml_metrics
except ImportError:
    if os.environ.get('FASTPROM_CI') == '1':
        raise
    pytest.skip('bentoml is not installed (pip install ".[test]")', allow_module_level=True)


@settings(max_examples=300, deadline=None)
@given(start=st.floats(1e-6, 1e3), factor=st.floats(1.01, 10), span=st.floats(1.0001, 1e7))
def test_exponential_buckets_match_bentoml(start, factor, span):
    end = start * span
    assert fastprom.exponential_buckets(start, factor, end) == bentoml_metrics.exponential_buckets(start, factor, end)


@settings(max_examples=300, deadline=None)
@given(start=st.floats(1e-6, 1e3), step=st.floats(1e-2, 1e3), span=st.floats(1e-3, 1e4))
def test_linear_buckets_match_bentoml(start, step, span):
    end = start + span
    if not end > start:
        return
    assert fastprom.linear_buckets(start, step, end) == bentoml_metrics.linear_buckets(start, step, end)


@pytest.mark.parametrize('args', [(1, 2, 100), (0.001, 1.5, 10.0), (0.005, 2.0, 180.0), (1, 1.1, 100000.0)])
def test_documented_examples(args):
    ours = fastprom.exponential_buckets(*args)
    assert ours == bentoml_metrics.exponential_buckets(*args)
    assert [type(b) for b in ours] == [type(b) for b in bentoml_metrics.exponential_buckets(*args)]


@pytest.mark.parametrize('helper, args, message', [
    ('exponential_buckets', (0, 2, 10), 'start must be > 0, got 0'),
    ('exponential_buckets', (1, 1, 10), 'factor must be > 1, got 1'),
    ('exponential_buckets', (5, 2, 1), 'start must be < end, got start=5, end=1'),
    ('linear_buckets', (0, 1, 10), 'start must be > 0, got 0'),
    ('linear_buckets', (-5.0, 1, 10), 'start must be > 0, got -5.0'),
    ('linear_buckets', (1, 0, 10), 'step must be > 0, got 0'),
    ('linear_buckets', (10, 1, 10), 'start must be < end, got start=10, end=10'),
])
def test_arguments_bentoml_asserts_on_are_value_errors(helper, args, message):
    with pytest.raises(AssertionError):
        getattr(bentoml_metrics, helper)(*args)
    with pytest.raises(ValueError) as err:
        getattr(fastprom, helper)(*args)
    assert str(err.value) == message


@pytest.mark.parametrize('helper, args, message', [
    # BentoML: TypeError from its assert's comparison.
    ('exponential_buckets', ('1', 2, 10), "start must be a number, got '1'"),
    # BentoML: loops forever (an int bound never reaches an infinite end).
    ('exponential_buckets', (1, 2, math.inf), 'end must be finite, got inf'),
    ('linear_buckets', (1, math.nan, 10), 'step must be finite, got nan'),
])
def test_arguments_bentoml_mishandles_are_value_errors(helper, args, message):
    with pytest.raises(ValueError) as err:
        getattr(fastprom, helper)(*args)
    assert str(err.value) == message


def test_parser_at_top_level():
    import fastprom.parser
    assert fastprom.text_string_to_metric_families is fastprom.parser.text_string_to_metric_families
