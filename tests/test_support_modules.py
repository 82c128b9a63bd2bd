"""Differential tests: fastprom's pure-Python support modules against prometheus_client 0.26.0.

Covers samples, validation, utils, metrics_core, decorator, context_managers and the
gc/platform/process collectors.
"""

import asyncio
import inspect
import math
import os
import time

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import fastprom.context_managers as fp_cm
import fastprom.decorator as fp_dec
import fastprom.gc_collector as fp_gc
import fastprom.metrics_core as fp_core
import fastprom.platform_collector as fp_platform
import fastprom.process_collector as fp_process
import fastprom.registry as fp_registry
import fastprom.samples as fp_samples
import fastprom.utils as fp_utils
import fastprom.validation as fp_val
import prometheus_client.context_managers as ref_cm
import prometheus_client.decorator as ref_dec
import prometheus_client.gc_collector as ref_gc
import prometheus_client.metrics_core as ref_core
import prometheus_client.platform_collector as ref_platform
import prometheus_client.process_collector as ref_process
import prometheus_client.samples as ref_samples
import prometheus_client.utils as ref_utils
import prometheus_client.validation as ref_val


def outcome(fn, *args, **kwargs):
    """('ok', repr(result)) or ('raise', exception type, message)."""
    try:
        result = fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001
        return ('raise', type(e), str(e))
    return ('ok', repr(result))


def same(fp_fn, ref_fn, *args, **kwargs):
    got = outcome(fp_fn, *args, **kwargs)
    want = outcome(ref_fn, *args, **kwargs)
    assert got == want
    return got


# Any code point, lone surrogates included.
any_text = st.text(st.characters(exclude_categories=()), max_size=30)
name_text = st.one_of(
    any_text,
    st.from_regex(r'\A[a-zA-Z_:][a-zA-Z0-9_:]{0,10}\Z'),
    st.from_regex(r'\A__?[a-zA-Z0-9_]{0,6}\Z'),
    st.sampled_from(['', 'a', '_', ':', 'a:b', '1a', 'a-b', 'a b', 'ünï', '__x', '__', 'le', 'quantile',
                     '"quoted"', '"', '"a b"', '"__x"', '\ud800', 'a\ud800', '_total', 'x_total']),
)


# The `legacy` fixture only sets a mode that every generated input shares.
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=[False, True], ids=['utf8', 'legacy'])
def legacy(request):
    """Run under both validation schemes, in both implementations."""
    saved = (fp_val._legacy_validation, ref_val._legacy_validation)
    if request.param:
        fp_val.enable_legacy_validation()
        ref_val.enable_legacy_validation()
    else:
        fp_val.disable_legacy_validation()
        ref_val.disable_legacy_validation()
    yield request.param
    fp_val._legacy_validation, ref_val._legacy_validation = saved


# --------------------------------------------------------------------------- samples


@pytest.mark.parametrize('name', ['BucketSpan', 'Exemplar', 'NativeHistogram', 'Sample'])
def test_namedtuple_shapes(name):
    fp_cls, ref_cls = getattr(fp_samples, name), getattr(ref_samples, name)
    assert issubclass(fp_cls, tuple)
    assert fp_cls._fields == ref_cls._fields
    assert fp_cls._field_defaults == ref_cls._field_defaults
    assert fp_cls.__doc__ == ref_cls.__doc__
    assert fp_cls.__annotations__.keys() == ref_cls.__annotations__.keys()


def test_namedtuple_values_and_repr():
    for mod in (fp_samples, ref_samples):
        mod._built = [
            mod.Sample('n', {'a': 'b'}, 1.5),
            mod.Sample('n', {}, 2, mod.Timestamp(1, 2), mod.Exemplar({'t': 'x'}, 3.0, 4.5)),
            mod.NativeHistogram(1, 2.0, 3, 0.5, 4, [mod.BucketSpan(0, 2)], None, [1, 0]),
            mod.Exemplar({}, 1),
            mod.BucketSpan(offset=-1, length=3),
        ]
    try:
        for fp_obj, ref_obj in zip(fp_samples._built, ref_samples._built):
            assert repr(fp_obj) == repr(ref_obj)
    finally:
        del fp_samples._built, ref_samples._built
    assert fp_samples.Sample('x', {}, 1) == ('x', {}, 1, None, None, None)
    assert fp_samples.Sample('x', {}, 1) == fp_samples.Sample('x', {}, 1.0)


@pytest.mark.parametrize('sec,nsec', [
    (0, 0), (1, 0), (1, 999_999_999), (-1, 5), (-1.7, 3.9), (1.9, 0.5), (123, 456), (0, 1e9 - 1),
    (0, -1), (0, 1e9), (0, -0.5), (5, 2e9), (0, float('nan')), (10 ** 12, 1),
])
def test_timestamp_construction(sec, nsec):
    got = outcome(fp_samples.Timestamp, sec, nsec)
    want = outcome(ref_samples.Timestamp, sec, nsec)
    assert got == want
    if got[0] == 'ok':
        fp_ts, ref_ts = fp_samples.Timestamp(sec, nsec), ref_samples.Timestamp(sec, nsec)
        assert (str(fp_ts), float(fp_ts), fp_ts.sec, fp_ts.nsec) == (
            str(ref_ts), float(ref_ts), ref_ts.sec, ref_ts.nsec)
        assert type(fp_ts.sec) is int and type(fp_ts.nsec) is int


timestamps = st.tuples(st.integers(-5, 5), st.integers(0, 999_999_999))


@given(timestamps, timestamps)
def test_timestamp_comparisons(a, b):
    fa, fb = fp_samples.Timestamp(*a), fp_samples.Timestamp(*b)
    ra, rb = ref_samples.Timestamp(*a), ref_samples.Timestamp(*b)
    assert (fa == fb, fa != fb, fa < fb, fa > fb) == (ra == rb, ra != rb, ra < rb, ra > rb)
    assert (fa == fb) is (ra == rb)


def test_timestamp_misc_semantics():
    ts = fp_samples.Timestamp(1, 2)
    with pytest.raises(TypeError):
        hash(ts)
    assert fp_samples.Timestamp.__hash__ is None
    assert repr(ts) == 'Timestamp(1, 2)' and str(ts) == '1.000000002'
    assert ts != 1.000000002 and not (ts == 1.000000002)
    # A Timestamp from the other implementation is not equal (isinstance check).
    assert (ts == ref_samples.Timestamp(1, 2)) is False
    for op in ('__lt__', '__gt__'):
        assert outcome(getattr(ts, op), 1.0)[:2] == outcome(getattr(ref_samples.Timestamp(1, 2), op), 1.0)[:2]
    for expr in (lambda x: x <= x, lambda x: x >= x):
        assert outcome(expr, ts)[:2] == outcome(expr, ref_samples.Timestamp(1, 2))[:2]
    assert sorted([fp_samples.Timestamp(2, 0), fp_samples.Timestamp(1, 5), fp_samples.Timestamp(1, 1)]) == [
        fp_samples.Timestamp(1, 1), fp_samples.Timestamp(1, 5), fp_samples.Timestamp(2, 0)]


# --------------------------------------------------------------------------- validation


def test_validation_module_surface():
    for name in ('METRIC_NAME_RE', 'METRIC_LABEL_NAME_RE', 'RESERVED_METRIC_LABEL_NAME_RE'):
        assert getattr(fp_val, name).pattern == getattr(ref_val, name).pattern
    public = {n for n in vars(ref_val) if not n.startswith('__') and n not in ('os', 're')}
    assert public <= set(vars(fp_val))


@pytest.mark.parametrize('value', [None, '', 'true', 'True', 'TRUE', '1', 't', 'T', 'yes', '0', 'false', 'f'])
def test_legacy_flag_from_env(monkeypatch, value):
    if value is None:
        monkeypatch.delenv('PROMETHEUS_LEGACY_NAME_VALIDATION', raising=False)
    else:
        monkeypatch.setenv('PROMETHEUS_LEGACY_NAME_VALIDATION', value)
    assert fp_val._init_legacy_validation() is ref_val._init_legacy_validation()


def test_enable_disable_legacy(legacy):
    assert fp_val.get_legacy_validation() is legacy
    fp_val.enable_legacy_validation()
    assert fp_val.get_legacy_validation() is True and fp_val._legacy_validation is True
    fp_val.disable_legacy_validation()
    assert fp_val.get_legacy_validation() is False and fp_val._legacy_validation is False


class _Reserved:
    _reserved_labelnames = ('le', 'quantile')


class _NoReserved:
    pass


@settings(fixture_ok, max_examples=300)
@given(name=name_text)
@example(name=None)
@example(name=5)
def test_name_validation_matches_reference(legacy, name):
    same(fp_val._validate_metric_name, ref_val._validate_metric_name, name)
    same(fp_val._validate_labelname, ref_val._validate_labelname, name)
    same(fp_val._is_valid_legacy_metric_name, ref_val._is_valid_legacy_metric_name, name)
    same(fp_val._is_valid_legacy_labelname, ref_val._is_valid_legacy_labelname, name)
    same(fp_val._validate_metric_label_name_token, ref_val._validate_metric_label_name_token, name)


@settings(fixture_ok, max_examples=200)
@given(names=st.lists(name_text, max_size=4))
def test_labelnames_validation_matches_reference(legacy, names):
    same(fp_val._validate_labelnames, ref_val._validate_labelnames, _Reserved, names)
    got = outcome(fp_val._validate_labelnames, _Reserved, iter(names))
    assert got == outcome(ref_val._validate_labelnames, _Reserved, iter(names))
    same(fp_val._validate_labelnames, ref_val._validate_labelnames, _NoReserved, names)


def test_labelnames_specific_messages(legacy):
    with pytest.raises(ValueError, match='^Reserved label methe fric name: le$'):
        fp_val._validate_labelnames(_Reserved, ['a', 'le'])
    with pytest.raises(ValueError, match='^Reserved label metric name: __a$'):
        fp_val._validate_labelnames(_Reserved, ['__a'])
    assert fp_val._validate_labelnames(_Reserved, 'ab') == ('a', 'b')
    assert fp_val._validate_labelnames(_NoReserved, []) == ()
    if legacy:
        with pytest.raises(ValueError, match='^Invalid label metric name: a-b$'):
            fp_val._validate_labelname('a-b')
        with pytest.raises(ValueError, match='^invalid metric name a-b$'):
            fp_val._validate_metric_name('a-b')
    else:
        fp_val._validate_labelname('a-b')
        fp_val._validate_metric_name('a-b')
    with pytest.raises(ValueError, match='^metric name cannot be empty$'):
        fp_val._validate_metric_name('')


@settings(fixture_ok, max_examples=200)
@given(labels=st.dictionaries(name_text, any_text, max_size=5))
@example(labels={'a' * 64: 'b' * 64})
@example(labels={'a' * 64: 'b' * 65})
@example(labels={'ü' * 65: 'x' * 64})
@example(labels={'__x': 'v'})
@example(labels={'k': 5})
def test_exemplar_validation_matches_reference(legacy, labels):
    same(fp_val._validate_exemplar, ref_val._validate_exemplar, labels)


# --------------------------------------------------------------------------- utils


def test_utils_constants_and_parse_version():
    assert fp_utils.INF == ref_utils.INF and fp_utils.MINUS_INF == ref_utils.MINUS_INF
    assert math.isnan(fp_utils.NaN)
    for v in ['0.26.0', '1.2.3rc1', '1', '', 'a.b', '1..2', '3.11.7+', ' 1.2', '1_0.2', '-1.0']:
        assert fp_utils.parse_version(v) == ref_utils.parse_version(v)
    assert outcome(fp_utils.parse_version, None)[:2] == outcome(ref_utils.parse_version, None)[:2]


@settings(max_examples=500)
@given(st.one_of(st.floats(), st.integers(-10 ** 20, 10 ** 20)))
@example(1e6)
@example(1234567.8)
@example(-1234567.0)
@example(1e16)
@example(2 ** 60)
@example(True)
@example(-0.0)
def test_float_to_go_string(value):
    assert fp_utils.floatToGoString(value) == ref_utils.floatToGoString(value)


@pytest.mark.parametrize('value', ['1.5', '+Inf', 'nan', 'x', None, [1]])
def test_float_to_go_string_coercion(value):
    got, want = outcome(fp_utils.floatToGoString, value), outcome(ref_utils.floatToGoString, value)
    assert got[:2] == want[:2]


# --------------------------------------------------------------------------- metrics_core


def test_metric_types():
    assert fp_core.METRIC_TYPES == ref_core.METRIC_TYPES


def _exemplar(mod):
    return mod.Exemplar({'trace': 'abc'}, 1.0, 12.5)


# Each case builds a family from a module namespace `m` (fastprom or reference).
FAMILY_CASES = {
    'metric_basic': lambda m: m.Metric('m', 'help', 'gauge'),
    'metric_untyped': lambda m: m.Metric('m', 'help', 'untyped'),
    'metric_bad_type': lambda m: m.Metric('m', 'help', 'bogus'),
    'metric_unit': lambda m: m.Metric('m', 'help', 'gauge', 'seconds'),
    'metric_unit_present': lambda m: m.Metric('m_seconds', 'help', 'gauge', 'seconds'),
    'metric_empty_name': lambda m: m.Metric('', 'help', 'gauge'),
    'metric_empty_after_unit': lambda m: m.Metric('', 'help', 'gauge', 'u'),
    'metric_utf8_name': lambda m: m.Metric('a.b-ü', 'help', 'counter'),
    'metric_bad_name_and_type': lambda m: m.Metric('', 'help', 'bogus'),
    'metric_none_name': lambda m: m.Metric(None, 'help', 'gauge'),
    'metric_none_type': lambda m: m.Metric('x', 'help', None),
    'unknown_value': lambda m: m.UnknownMetricFamily('u', 'help', value=1, unit='b'),
    'untyped_labels': lambda m: m.UntypedMetricFamily('u', 'help', labels=['a']),
    'unknown_both': lambda m: m.UnknownMetricFamily('u', 'help', value=1, labels=['a']),
    'counter_value': lambda m: m.CounterMetricFamily('c_total', 'help', value=2),
    'counter_created': lambda m: m.CounterMetricFamily('c', 'help', value=2, created=123.0),
    'counter_unit': lambda m: m.CounterMetricFamily('c_total', 'help', value=2, unit='seconds'),
    'counter_exemplar': lambda m: m.CounterMetricFamily('c', 'help', value=2, exemplar=_exemplar(m)),
    'counter_both': lambda m: m.CounterMetricFamily('c', 'help', value=2, labels=['a']),
    'counter_only_total': lambda m: m.CounterMetricFamily('_total', 'help'),
    'counter_nonstr': lambda m: m.CounterMetricFamily(5, 'help'),
    'gauge_value': lambda m: m.GaugeMetricFamily('g', 'help', 3.5),
    'gauge_labels_str': lambda m: m.GaugeMetricFamily('g', 'help', labels='ab'),
    'gauge_both': lambda m: m.GaugeMetricFamily('g', 'help', value=1, labels=[]),
    'gauge_bad_values_kept': lambda m: m.GaugeMetricFamily('g', 'help', value='x'),
    'summary_values': lambda m: m.SummaryMetricFamily('s', 'help', count_value=1, sum_value=2),
    'summary_only_count': lambda m: m.SummaryMetricFamily('s', 'help', count_value=1),
    'summary_only_sum': lambda m: m.SummaryMetricFamily('s', 'help', sum_value=1),
    'summary_both': lambda m: m.SummaryMetricFamily('s', 'help', count_value=1, sum_value=2, labels=['a']),
    'summary_only_sum_and_labels': lambda m: m.SummaryMetricFamily('s', 'help', sum_value=2, labels=['a']),
    'histogram_buckets': lambda m: m.HistogramMetricFamily(
        'h', 'help', buckets=[('0', 1), ('1.0', 2), ('+Inf', 3)], sum_value=4),
    'histogram_no_sum': lambda m: m.HistogramMetricFamily('h', 'help', buckets=[('0', 1), ('+Inf', 3)]),
    'histogram_negative': lambda m: m.HistogramMetricFamily(
        'h', 'help', buckets=[('-1', 1), ('+Inf', 3)], sum_value=4),
    'histogram_exemplar': lambda m: m.HistogramMetricFamily(
        'h', 'help', buckets=[('1', 1, _exemplar(m)), ('+Inf', 3)], sum_value=4),
    'histogram_sum_only': lambda m: m.HistogramMetricFamily('h', 'help', sum_value=4),
    'histogram_sum_only_labels': lambda m: m.HistogramMetricFamily('h', 'help', sum_value=4, labels=['a']),
    'histogram_both': lambda m: m.HistogramMetricFamily('h', 'help', buckets=[('+Inf', 1)], labels=['a']),
    'histogram_empty_buckets': lambda m: m.HistogramMetricFamily('h', 'help', buckets=[]),
    'histogram_unit': lambda m: m.HistogramMetricFamily('h', 'help', unit='bytes'),
    'histogram_dict_buckets': lambda m: m.HistogramMetricFamily('h', 'help', buckets={}),
    'histogram_dict_buckets_sum': lambda m: m.HistogramMetricFamily('h', 'help', buckets={}, sum_value=1),
    'histogram_dict_buckets_labels': lambda m: m.HistogramMetricFamily('h', 'help', buckets={}, labels=['a']),
    'unknown_iter_labels': lambda m: m.UnknownMetricFamily('u', 'help', labels=iter(['a'])),
    'counter_iter_labels': lambda m: m.CounterMetricFamily('c_total', 'help', labels=iter(['a'])),
    'gaugehistogram': lambda m: m.GaugeHistogramMetricFamily(
        'gh', 'help', buckets=[('1', 1), ('+Inf', 2)], gsum_value=3),
    'gaugehistogram_none_sum': lambda m: m.GaugeHistogramMetricFamily('gh', 'help', buckets=[('+Inf', 2)]),
    'gaugehistogram_both': lambda m: m.GaugeHistogramMetricFamily('gh', 'help', buckets=[], labels=['a']),
    'gaugehistogram_empty': lambda m: m.GaugeHistogramMetricFamily('gh', 'help', buckets=[]),
    'info_value': lambda m: m.InfoMetricFamily('i', 'help', value={'a': 'b'}),
    'info_both': lambda m: m.InfoMetricFamily('i', 'help', value={}, labels=['x']),
    'info_bad_keys': lambda m: m.InfoMetricFamily('i', 'help', value={1: 'b'}),
    'stateset_value': lambda m: m.StateSetMetricFamily('s', 'help', value={'b': True, 'a': False}),
    'stateset_both': lambda m: m.StateSetMetricFamily('s', 'help', value={}, labels=['x']),
}


@pytest.mark.parametrize('case', sorted(FAMILY_CASES))
def test_family_construction_matches_reference(legacy, case):
    build = FAMILY_CASES[case]
    got, want = outcome(build, fp_core_ns), outcome(build, ref_core_ns)
    assert got == want
    if got[0] == 'ok':
        fp_m, ref_m = build(fp_core_ns), build(ref_core_ns)
        assert type(fp_m).__name__ == type(ref_m).__name__
        assert (fp_m.name, fp_m.documentation, fp_m.type, fp_m.unit) == (
            ref_m.name, ref_m.documentation, ref_m.type, ref_m.unit)
        assert fp_m.samples == ref_m.samples
        assert getattr(fp_m, '_labelnames', None) == getattr(ref_m, '_labelnames', None)


class _NS:
    def __init__(self, core, samples):
        self.__dict__.update({k: getattr(core, k) for k in dir(core) if not k.startswith('__')})
        self.Exemplar = samples.Exemplar


fp_core_ns = _NS(fp_core, fp_samples)
ref_core_ns = _NS(ref_core, ref_samples)


def _add_metric_cases(m):
    """(family factory, add_metric args) pairs exercising add_metric paths."""
    ts = 12.5
    return [
        (lambda: m.UnknownMetricFamily('u', 'h', labels=['a', 'b']), (['x', 'y'], 1, ts)),
        (lambda: m.UnknownMetricFamily('u', 'h', labels=['a', 'b']), (['x'], 1)),
        (lambda: m.CounterMetricFamily('c', 'h', labels=['a']), (['x'], 1, 5.0, ts, _exemplar(m))),
        (lambda: m.CounterMetricFamily('c', 'h', labels=['a']), (iter(['x']), 1, 5.0)),
        (lambda: m.GaugeMetricFamily('g', 'h', labels=['a']), (('x', 'extra'), -1)),
        (lambda: m.SummaryMetricFamily('s', 'h', labels=['a']), (['x'], 3, 4.5, ts)),
        (lambda: m.SummaryMetricFamily('s', 'h', labels=['a']), (iter(['x']), 3, 4.5)),
        (lambda: m.HistogramMetricFamily('h', 'h', labels=['a']),
         (['x'], [('0.5', 1), ('+Inf', 2, _exemplar(m))], 3.0, ts)),
        (lambda: m.HistogramMetricFamily('h', 'h', labels=['a']), (iter(['x']), [('1', 1), ('+Inf', 2)], 3.0)),
        (lambda: m.HistogramMetricFamily('h', 'h', labels=['a']), (['x'], [('bad', 1)], 1.0)),
        (lambda: m.HistogramMetricFamily('h', 'h', labels=['a']), (['x'], [('-5', 1), ('+Inf', 2)], 1.0)),
        (lambda: m.HistogramMetricFamily('h', 'h'), ([], [('1', 1, None, 'x')], None)),
        (lambda: m.GaugeHistogramMetricFamily('g', 'h', labels=['a']), (['x'], [('1', 1), ('+Inf', 2)], 3, ts)),
        (lambda: m.GaugeHistogramMetricFamily('g', 'h', labels=['a']), (iter(['x']), [('+Inf', 2)], None)),
        (lambda: m.GaugeHistogramMetricFamily('g', 'h'), ([], [('1', 1, 2)], 0)),
        (lambda: m.InfoMetricFamily('i', 'h', labels=['a']), (['x'], {'b': 'c'}, ts)),
        (lambda: m.InfoMetricFamily('i', 'h', labels=['a']), (['x'], {'a': 'dup'})),
        (lambda: m.StateSetMetricFamily('s', 'h', labels=['a']), (['x'], {'on': 1, 'off': 0, 'mid': None}, ts)),
        (lambda: m.StateSetMetricFamily('s', 'h', labels=['a']), (['x'], {})),
        (lambda: m.StateSetMetricFamily('s', 'h', labels=['a']), (['x'], {'a': True, 1: False})),
    ]


@pytest.mark.parametrize('index', range(len(_add_metric_cases(ref_core_ns))))
def test_add_metric_matches_reference(index):
    fp_factory, fp_args = _add_metric_cases(fp_core_ns)[index]
    ref_factory, ref_args = _add_metric_cases(ref_core_ns)[index]
    fp_m, ref_m = fp_factory(), ref_factory()
    got, want = outcome(fp_m.add_metric, *fp_args), outcome(ref_m.add_metric, *ref_args)
    assert got == want
    assert fp_m.samples == ref_m.samples
    assert repr(fp_m) == repr(ref_m)


def test_metric_eq_repr_add_sample_and_restrict():
    for m in (fp_core, ref_core):
        metric = m.Metric('x', 'doc', 'histogram', 'seconds')
        metric.add_sample('x_seconds_bucket', {'le': '+Inf'}, 1, 5.0)
        metric.add_sample('x_seconds_sum', {}, 2.0, None, None, None)
        m._tmp = metric
    try:
        fp_m, ref_m = fp_core._tmp, ref_core._tmp
        assert repr(fp_m) == repr(ref_m)
        for names in ([], ['x_seconds_sum'], {'x_seconds_bucket', 'x_seconds_sum'}, ['nope']):
            assert repr(fp_m._restricted_metric(names)) == repr(ref_m._restricted_metric(names))
        restricted = fp_m._restricted_metric(['x_seconds_sum'])
        assert type(restricted) is fp_core.Metric and restricted.unit == ''
    finally:
        del fp_core._tmp, ref_core._tmp

    a = fp_core.GaugeMetricFamily('g', 'doc', value=1)
    b = fp_core.Metric('g', 'doc', 'gauge')
    b.add_sample('g', {}, 1)
    assert a == b and not (a != b)
    b.add_sample('g', {}, 2)
    assert a != b
    assert (a == 'g') is False
    assert fp_core.Metric('g', 'doc', 'gauge') != fp_core.Metric('g', 'doc', 'gauge', 'u')
    with pytest.raises(TypeError):
        hash(a)
    assert fp_core.UntypedMetricFamily is fp_core.UnknownMetricFamily


@pytest.mark.parametrize('name', [
    'Metric', 'UnknownMetricFamily', 'CounterMetricFamily', 'GaugeMetricFamily', 'SummaryMetricFamily',
    'HistogramMetricFamily', 'GaugeHistogramMetricFamily', 'InfoMetricFamily', 'StateSetMetricFamily'])
def test_family_signatures(name):
    def params(fn):
        # Annotations name each package's own types, so compare everything else.
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    fp_cls, ref_cls = getattr(fp_core, name), getattr(ref_core, name)
    assert params(fp_cls) == params(ref_cls)
    method = 'add_sample' if name == 'Metric' else 'add_metric'
    assert params(getattr(fp_cls, method)) == params(getattr(ref_cls, method))
    assert [c.__name__ for c in fp_cls.__mro__] == [c.__name__ for c in ref_cls.__mro__]


# --------------------------------------------------------------------------- decorator


def _shapes():
    def f0():
        """doc f0"""
        return 'f0'

    def f1(a, b=2, *args, c, d=4, **kw) -> int:
        return (a, b, args, c, d, kw)

    def f2(a, /, b, *, c=3):
        return (a, b, c)

    def f3(*args, **kwargs):
        return (args, kwargs)

    def f4(self, x: 'int' = 1, y: list = None):
        return (self, x, y)

    def f5(_func_, _call_):
        return (_func_, _call_)

    def _call_(x):
        return x

    f6 = lambda x, y=1: (x, y)  # noqa: E731

    def f7(a, /, b=1, *, c):
        return (a, b, c)

    f0.custom_attr = 'kept'
    return [f0, f1, f2, f3, f4, f5, _call_, f6, f7]


SHAPE_CALLS = {
    'f0': [((), {}), ((1,), {})],
    'f1': [((1,), {'c': 3}), ((1, 2, 3, 4), {'c': 5, 'z': 6}), ((1,), {}), ((), {'a': 1, 'c': 2})],
    'f2': [((1, 2), {}), ((1,), {'b': 2, 'c': 4}), ((), {'a': 1, 'b': 2})],
    'f3': [((), {}), ((1, 2), {'k': 3})],
    'f4': [(('s',), {}), (('s', 2, [3]), {}), ((), {})],
    'f5': [((1, 2), {}), ((1,), {'_call_': 2})],
    '_call_': [((1,), {})],
    '<lambda>': [((1,), {}), ((1, 2, 3), {})],
    'f7': [((1,), {'c': 2}), ((1, 2), {}), ((), {'a': 1, 'c': 2})],
}


def _recording_caller(log):
    def caller(func, *args, **kwargs):
        log.append((args, kwargs))
        return func(*args, **kwargs)
    return caller


@pytest.mark.parametrize('index', range(len(_shapes())))
def test_decorate_preserves_signature_and_metadata(index):
    f = _shapes()[index]
    wrapped = fp_dec.decorate(f, _recording_caller([]))
    assert inspect.signature(wrapped) == inspect.signature(f)
    assert inspect.signature(wrapped, follow_wrapped=False) == inspect.signature(f)
    assert wrapped.__wrapped__ is f
    for attr in ('__name__', '__doc__', '__module__', '__qualname__', '__annotations__', '__defaults__',
                 '__kwdefaults__'):
        assert getattr(wrapped, attr) == getattr(f, attr), attr
    for key, value in vars(f).items():
        assert vars(wrapped)[key] == value
    assert inspect.getfullargspec(wrapped) == inspect.getfullargspec(f)
    assert fp_dec.getargspec(wrapped) == fp_dec.getargspec(f) == ref_dec.getargspec(f)
    assert not inspect.iscoroutinefunction(wrapped)

    try:
        ref_wrapped = ref_dec.decorate(f, _recording_caller([]))
    except NameError:
        return  # the reference refuses parameters named _func_/_call_
    assert fp_dec.getargspec(wrapped) == ref_dec.getargspec(ref_wrapped)
    assert inspect.getfullargspec(wrapped) == inspect.getfullargspec(ref_wrapped)


@pytest.mark.parametrize('index', range(len(_shapes())))
def test_decorate_calls_match_undecorated(index):
    f = _shapes()[index]
    log = []
    wrapped = fp_dec.decorate(f, _recording_caller(log))
    for args, kwargs in SHAPE_CALLS[f.__name__]:
        direct = outcome(f, *args, **kwargs)
        before = len(log)
        assert outcome(wrapped, *args, **kwargs) == direct
        # Argument errors are raised by the wrapper itself, before the caller runs.
        assert len(log) == before + (direct[0] == 'ok')
    # (The reference turns positional-only parameters into ordinary ones; f2/f7 are not compared.)
    if f.__name__ in ('f1', 'f4', 'f0', 'f3', '<lambda>'):
        ref_wrapped = ref_dec.decorate(f, _recording_caller([]))
        for args, kwargs in SHAPE_CALLS[f.__name__]:
            assert outcome(wrapped, *args, **kwargs) == outcome(ref_wrapped, *args, **kwargs)


class _CallableObj:
    def __call__(self):
        pass


@pytest.mark.parametrize('obj', [len, _CallableObj(), _CallableObj, str.upper, object().__str__])
def test_decorate_non_function_matches_reference(obj):
    caller = _recording_caller([])
    got, want = outcome(fp_dec.decorate, obj, caller), outcome(ref_dec.decorate, obj, caller)
    assert got[:2] == want[:2]
    if want[1] is TypeError:
        assert got == want


def test_decorator_factory():
    log = []

    def trace(func, *args, **kwargs):
        """trace doc"""
        log.append(func.__name__)
        return func(*args, **kwargs)

    deco = fp_dec.decorator(trace)
    ref_deco = ref_dec.decorator(trace)
    assert (deco.__name__, deco.__doc__, deco.__module__) == (ref_deco.__name__, ref_deco.__doc__,
                                                              ref_deco.__module__)
    assert deco.__wrapped__ is trace

    @deco
    def g(x, y=2):
        return x + y

    assert g(1) == 3 and log == ['g']
    assert fp_dec.getargspec(g) == (['x', 'y'], None, None, (2,))
    assert fp_dec.decorator(trace, g)(2) == 4


def test_async_caller_makes_coroutine_function():
    async def caller(func, *args, **kwargs):
        await asyncio.sleep(0)
        return ('wrapped', await func(*args, **kwargs))

    async def job(a, *, b=2):
        return a + b

    wrapped = fp_dec.decorate(job, caller)
    assert inspect.iscoroutinefunction(wrapped)
    assert inspect.signature(wrapped) == inspect.signature(job)
    assert asyncio.run(wrapped(1, b=5)) == ('wrapped', 6)
    with pytest.raises(TypeError):
        wrapped(1, 2)


# --------------------------------------------------------------------------- context managers


class FakeMetric:
    """Records calls the context managers make (inc/dec/observe/set/labels)."""

    def __init__(self, labels=()):
        self.calls = []
        self.value = 0
        self.label_values = labels
        self.children = []

    def inc(self, amount=1):
        self.value += amount
        self.calls.append(('inc', amount))

    def dec(self, amount=1):
        self.value -= amount
        self.calls.append(('dec', amount))

    def observe(self, amount):
        self.calls.append(('observe', amount))

    def set(self, value):
        self.calls.append(('set', value))

    def labels(self, *args, **kwargs):
        child = FakeMetric((args, kwargs))
        self.children.append(child)
        return child


@pytest.mark.parametrize('mod', [fp_cm, ref_cm], ids=['fastprom', 'reference'])
def test_sync_context_managers(mod):
    counter = FakeMetric()
    with pytest.raises(KeyError):
        with mod.ExceptionCounter(counter, (KeyError, TypeError)) as entered:
            assert entered is None
            raise KeyError('x')
    with mod.ExceptionCounter(counter, KeyError):
        pass
    with pytest.raises(ValueError):
        with mod.ExceptionCounter(counter, KeyError):
            raise ValueError
    assert counter.calls == [('inc', 1)]
    assert mod.ExceptionCounter(counter, Exception).__exit__(ValueError, ValueError(), None) is False

    gauge = FakeMetric()
    with mod.InprogressTracker(gauge) as entered:
        assert entered is None and gauge.value == 1
    assert gauge.value == 0

    metric = FakeMetric()
    timer = mod.Timer(metric, 'observe')
    assert timer.duration is None
    with timer as t:
        assert t is timer
        time.sleep(0.01)
    assert timer.duration >= 0.009 and metric.calls == [('observe', timer.duration)]

    parent = FakeMetric()
    with mod.Timer(parent, 'set') as t:
        assert t.labels('a', b='c') is None
    assert parent.calls == [] and parent.children[0].label_values == (('a',), {'b': 'c'})
    assert parent.children[0].calls[0][0] == 'set'


def test_timer_uses_module_default_timer(monkeypatch):
    ticks = iter([10.0, 12.5, 20.0, 19.0])
    monkeypatch.setattr(fp_cm, 'default_timer', lambda: next(ticks))
    metric = FakeMetric()
    with fp_cm.Timer(metric, 'observe') as t:
        pass
    assert t.duration == 2.5
    with fp_cm.Timer(metric, 'observe') as t:
        pass
    assert t.duration == 0  # time going backwards is clamped
    assert metric.calls == [('observe', 2.5), ('observe', 0)]


def _decorated_pairs(make):
    """Same function decorated by fastprom's and the reference's context manager."""
    def f(x, y=1, *, z=2):
        """f doc"""
        return x + y + z
    return make(fp_cm)(f), make(ref_cm)(f), f


@pytest.mark.parametrize('make', [
    lambda mod: mod.Timer(FakeMetric(), 'observe'),
    lambda mod: mod.InprogressTracker(FakeMetric()),
    lambda mod: mod.ExceptionCounter(FakeMetric(), ValueError),
], ids=['timer', 'inprogress', 'exceptions'])
def test_sync_decorators_match_reference(make):
    fp_f, ref_f, f = _decorated_pairs(make)
    assert ref_dec.getargspec(fp_f) == ref_dec.getargspec(ref_f) == ref_dec.getargspec(f)
    assert inspect.signature(fp_f) == inspect.signature(f)
    for attr in ('__name__', '__doc__', '__module__', '__qualname__'):
        assert getattr(fp_f, attr) == getattr(ref_f, attr) == getattr(f, attr)
    assert fp_f.__wrapped__ is f and ref_f.__wrapped__ is f
    assert fp_f(1) == ref_f(1) == 4
    assert outcome(fp_f, 1, 2, 3) == outcome(ref_f, 1, 2, 3)


def test_sync_decorator_counts():
    metric = FakeMetric()

    @fp_cm.Timer(metric, 'observe')
    def timed(n):
        time.sleep(n)
        return n

    assert timed(0.01) == 0.01
    assert len(metric.calls) == 1 and metric.calls[0][1] >= 0.009
    assert ref_dec.getargspec(timed) == (['n'], None, None, None)

    counter = FakeMetric()

    @fp_cm.ExceptionCounter(counter, ValueError)
    def boom(kind):
        raise kind()

    for kind in (ValueError, TypeError, ValueError):
        with pytest.raises(kind):
            boom(kind)
    assert counter.value == 2
    with pytest.raises(TypeError):
        boom()  # argument error: raised before the body, not counted even for Exception
    assert counter.value == 2

    gauge = FakeMetric()
    seen = []

    @fp_cm.InprogressTracker(gauge)
    def busy():
        seen.append(gauge.value)

    busy()
    assert seen == [1] and gauge.value == 0


def test_timer_decorator_fresh_timer_and_reentrancy():
    metric = FakeMetric()
    timer = fp_cm.Timer(metric, 'observe')

    @timer
    def rec(depth):
        time.sleep(0.005)
        if depth:
            rec(depth - 1)

    rec(2)
    durations = [v for _, v in metric.calls]
    assert len(durations) == 3 and durations == sorted(durations)
    assert timer.duration is None  # each call used its own Timer


def test_async_timer_measures_awaited_duration():
    metric = FakeMetric()

    @fp_cm.Timer(metric, 'observe')
    async def work(x, *, delay=0.05):
        """async doc"""
        await asyncio.sleep(delay)
        return x * 2

    assert inspect.iscoroutinefunction(work)
    assert work.__name__ == 'work' and work.__doc__ == 'async doc'
    assert inspect.signature(work) == inspect.signature(work.__wrapped__)
    assert ref_dec.getargspec(work) == (['x'], None, None, None)
    coro = work(3)
    assert metric.calls == []  # nothing measured until awaited
    assert asyncio.run(coro) == 6
    assert len(metric.calls) == 1 and metric.calls[0][1] >= 0.045


def test_async_timer_concurrent_calls_use_separate_timers():
    metric = FakeMetric()

    @fp_cm.Timer(metric, 'observe')
    async def work(delay):
        await asyncio.sleep(delay)

    async def main():
        await asyncio.gather(work(0.02), work(0.06))

    asyncio.run(main())
    durations = sorted(v for _, v in metric.calls)
    assert len(durations) == 2
    assert 0.015 <= durations[0] < 0.055 and durations[1] >= 0.055


def test_async_exception_counter():
    counter = FakeMetric()

    @fp_cm.ExceptionCounter(counter, (ValueError, KeyError))
    async def fails(kind):
        await asyncio.sleep(0)
        if kind is not None:
            raise kind('x')
        return 'fine'

    assert inspect.iscoroutinefunction(fails)
    assert asyncio.run(fails(None)) == 'fine'
    for kind in (ValueError, KeyError, TypeError):
        with pytest.raises(kind):
            asyncio.run(fails(kind))
    assert counter.value == 2


def test_async_inprogress_tracker():
    gauge = FakeMetric()
    seen = []

    @fp_cm.InprogressTracker(gauge)
    async def busy(delay):
        await asyncio.sleep(delay)
        seen.append(gauge.value)

    async def main():
        task = asyncio.ensure_future(asyncio.gather(busy(0.01), busy(0.03)))
        await asyncio.sleep(0.005)
        peak = gauge.value
        await task
        return peak

    assert inspect.iscoroutinefunction(busy)
    assert asyncio.run(main()) == 2
    assert seen == [2, 1] and gauge.value == 0


def test_async_generator_and_generator_are_not_awaited():
    metric = FakeMetric()

    @fp_cm.Timer(metric, 'observe')
    def gen():
        yield 1

    @fp_cm.Timer(metric, 'observe')
    async def agen():
        yield 1

    assert not inspect.iscoroutinefunction(gen) and not inspect.iscoroutinefunction(agen)
    assert list(gen()) == [1]
    agen()
    assert len(metric.calls) == 2  # like the reference: only creation is timed


# --------------------------------------------------------------------------- collectors


class _RecordingRegistry:
    def __init__(self):
        self.registered = []

    def register(self, collector):
        self.registered.append(collector)


def _shape(metrics):
    return [(m.name, m.documentation, m.type, m.unit, [(s.name, s.labels) for s in m.samples]) for m in metrics]


def test_gc_collector_matches_reference():
    fp_reg, ref_reg = _RecordingRegistry(), _RecordingRegistry()
    fp_c, ref_c = fp_gc.GCCollector(registry=fp_reg), ref_gc.GCCollector(registry=ref_reg)
    assert fp_reg.registered == [fp_c] and ref_reg.registered == [ref_c]
    got, want = fp_c.collect(), ref_c.collect()
    assert isinstance(got, list)
    assert _shape(got) == _shape(want)
    for metric in got:
        assert all(isinstance(s.value, int) for s in metric.samples)
    assert isinstance(fp_gc.GC_COLLECTOR, fp_gc.GCCollector)
    assert fp_registry.Collector in fp_gc.GCCollector.__mro__


def test_gc_collector_skips_registration_off_cpython(monkeypatch):
    monkeypatch.setattr(fp_gc.platform, 'python_implementation', lambda: 'PyPy')
    reg = _RecordingRegistry()
    fp_gc.GCCollector(registry=reg)
    assert reg.registered == []


class _MockPlatform:
    def __init__(self, system='Linux'):
        self._system = system

    def python_version_tuple(self):
        return 'pvt_major', 'pvt_minor', 'pvt_patchlevel'

    def python_version(self):
        return 'python_version'

    def python_implementation(self):
        return 'python_implementation'

    def system(self):
        return self._system

    def java_ver(self):
        return ('jv_release', 'jv_vendor', ('vm_name', 'vm_release', 'vm_vendor'), ('os', 'ver', 'arch'))


@pytest.mark.parametrize('platform', [None, _MockPlatform(), _MockPlatform('Java')], ids=['real', 'mock', 'java'])
def test_platform_collector_matches_reference(platform):
    fp_reg, ref_reg = _RecordingRegistry(), _RecordingRegistry()
    fp_c = fp_platform.PlatformCollector(registry=fp_reg, platform=platform)
    ref_c = ref_platform.PlatformCollector(registry=ref_reg, platform=platform)
    assert fp_reg.registered == [fp_c]
    assert repr(fp_c.collect()) == repr(ref_c.collect())
    assert fp_c.collect() is fp_c.collect()
    assert fp_platform.PlatformCollector(registry=None, platform=platform).collect() == fp_c.collect()


def test_default_collectors_module_globals():
    assert isinstance(fp_platform.PLATFORM_COLLECTOR, fp_platform.PlatformCollector)
    assert isinstance(fp_process.PROCESS_COLLECTOR, fp_process.ProcessCollector)
    names = {m.name for m in fp_registry.REGISTRY.collect()}
    assert 'python_info' in names
    if os.path.exists('/proc/self/stat'):
        assert 'process_cpu_seconds' in names
    assert 'python_gc_objects_collected' in names


def _write_proc(root, pid='26231', stat=True, limits='default', fds=5, btime='1418183276'):
    root.mkdir(exist_ok=True)
    if btime is not None:
        (root / 'stat').write_text(f'cpu  1 2 3\nbtime {btime}\nprocesses 1\n')
    else:
        (root / 'stat').write_text('cpu  1 2 3\n')
    piddir = root / pid
    piddir.mkdir()
    if stat:
        fields = ['S'] + [str(i) for i in range(1, 40)]
        fields[11], fields[12] = '1707', '14'          # utime, stime
        fields[19], fields[20], fields[21] = '82375', '56274944', '1981'  # start, vsize, rss
        (piddir / 'stat').write_text(f'{pid} (python (weird) name) ' + ' '.join(fields) + '\n')
    if limits == 'default':
        limits = ('Limit                     Soft Limit           Hard Limit           Units\n'
                  'Max cpu time              unlimited            unlimited            seconds\n'
                  'Max open files            2048                 4096                 files\n')
    if limits is not None:
        (piddir / 'limits').write_text(limits)
    if fds is not None:
        (piddir / 'fd').mkdir()
        for i in range(fds):
            (piddir / 'fd' / str(i)).write_text('')
    return root


@pytest.mark.parametrize('variant', ['full', 'namespace', 'no_limits', 'no_stat', 'no_fd', 'missing_pid',
                                     'no_btime', 'no_max_open_line', 'str_pid'])
def test_process_collector_matches_reference(tmp_path, variant):
    kwargs = {}
    pid = lambda: 26231  # noqa: E731
    proc_kwargs = {}
    if variant == 'namespace':
        kwargs['namespace'] = 'n'
    elif variant == 'no_limits':
        proc_kwargs['limits'] = None
    elif variant == 'no_stat':
        proc_kwargs['stat'] = False
    elif variant == 'no_fd':
        proc_kwargs['fds'] = None
    elif variant == 'missing_pid':
        pid = lambda: 123  # noqa: E731
    elif variant == 'no_btime':
        proc_kwargs['btime'] = None
    elif variant == 'no_max_open_line':
        proc_kwargs['limits'] = 'Limit Soft Hard Units\n'
    elif variant == 'str_pid':
        pid = lambda: ' 26231\n'  # noqa: E731
    proc = _write_proc(tmp_path / 'proc', **proc_kwargs)

    results = []
    for mod in (fp_process, ref_process):
        reg = _RecordingRegistry()
        c = mod.ProcessCollector(proc=str(proc), pid=pid, registry=reg, **kwargs)
        assert reg.registered == [c]
        c._ticks = 100
        results.append(outcome(c.collect))
        results.append((c._prefix, c._btime, c._pagesize, c._namespace))
    assert results[0] == results[2]
    assert results[1] == results[3]
    if variant == 'full':
        fams = {m.name: m.samples[0].value for m in eval_collect(fp_process, proc, pid)}
        assert fams == {
            'process_virtual_memory_bytes': 56274944.0,
            'process_resident_memory_bytes': 1981.0 * fp_process._PAGESIZE,
            'process_start_time_seconds': 1418183276 + 823.75,
            'process_cpu_seconds': 17.21,
            'process_open_fds': 5,
            'process_max_fds': 2048.0,
        }


def eval_collect(mod, proc, pid):
    c = mod.ProcessCollector(proc=str(proc), pid=pid, registry=None)
    c._ticks = 100
    c._pagesize = mod._PAGESIZE
    return c.collect()


def test_process_collector_unreadable_proc(tmp_path):
    for mod in (fp_process, ref_process):
        c = mod.ProcessCollector(proc=str(tmp_path / 'absent'), registry=None)
        assert c._btime == 0 and c.collect() == []


@pytest.mark.skipif(not os.path.exists('/proc/self/stat'), reason='needs /proc')
def test_process_collector_real_proc():
    fp_c = fp_process.ProcessCollector(registry=None)
    ref_c = ref_process.ProcessCollector(registry=None)
    assert (fp_c._ticks, fp_c._pagesize, fp_c._btime, fp_c._prefix) == (
        ref_c._ticks, ref_c._pagesize, ref_c._btime, ref_c._prefix)
    assert fp_process._PAGESIZE == ref_process._PAGESIZE
    assert _shape(fp_c.collect()) == _shape(ref_c.collect())
    assert [type(m).__name__ for m in fp_c.collect()] == [type(m).__name__ for m in ref_c.collect()]
