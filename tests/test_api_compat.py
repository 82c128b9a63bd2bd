"""Targeted API-compatibility tests: what user test suites and libraries rely on.

Every test in the ``lib``-parametrized part runs against both the reference
(prometheus_client 0.26.0) and fastprom, with expectations taken from the
reference's behaviour; a failure only on the fastprom parameter is a
compatibility bug.
"""
import asyncio
import collections.abc
import importlib
import inspect
import os
import subprocess
import sys
import textwrap
import time
import unittest.mock

import pytest

from libs import IMPL_NAME, REF_NAME, Lib

LIB_NAMES = [REF_NAME, IMPL_NAME]


_LIBS = {}


def get_lib(name):
    if name not in _LIBS:
        pytest.importorskip(name)
        _LIBS[name] = Lib(name)
    return _LIBS[name]


@pytest.fixture(params=LIB_NAMES)
def lib(request):
    return get_lib(request.param)


@pytest.fixture
def ref():
    return get_lib(REF_NAME)


@pytest.fixture
def impl():
    return get_lib(IMPL_NAME)


@pytest.fixture
def reg(lib):
    return lib.CollectorRegistry()


@pytest.fixture
def fixed_time():
    with unittest.mock.patch('time.time', return_value=123.456):
        yield


def mod_fix(lib, s):
    return s.replace(lib.name + '.', REF_NAME + '.')


# --------------------------------------------------------------------------
# str / repr
# --------------------------------------------------------------------------

@pytest.mark.parametrize('cls,kw,expected_str', [
    ('Counter', {}, 'counter:uc'),
    ('Gauge', {}, 'gauge:uc'),
    ('Summary', {}, 'summary:uc'),
    ('Histogram', {}, 'histogram:uc'),
    ('Info', {}, 'info:uc'),
    ('Enum', {'states': ['a']}, 'stateset:uc'),
])
def test_str_repr(lib, reg, cls, kw, expected_str):
    m = getattr(lib, cls)('uc', 'doc', registry=reg, **kw)
    assert str(m) == expected_str
    assert mod_fix(lib, repr(m)) == f'{REF_NAME}.metrics.{cls}(uc)'
    # labelled parent and child
    m2 = getattr(lib, cls)('ucl', 'doc', ['l'], registry=reg, **kw)
    assert str(m2) == expected_str.replace('uc', 'ucl')
    child = m2.labels('x')
    assert str(child) == expected_str.replace('uc', 'ucl')
    assert mod_fix(lib, repr(child)) == f'{REF_NAME}.metrics.{cls}(ucl)'


def test_str_repr_full_name(lib, reg):
    c = lib.Counter('requests_total', 'doc', namespace='ns', subsystem='sub', unit='seconds',
                    registry=reg)
    assert str(c) == 'counter:ns_sub_requests_seconds'
    assert mod_fix(lib, repr(c)) == f'{REF_NAME}.metrics.Counter(ns_sub_requests_seconds)'


def test_repr_of_subclass_uses_subclass_module(lib, reg):
    class MyGauge(lib.Gauge):
        pass

    g = MyGauge('mg', 'doc', registry=reg)
    assert repr(g) == f'{__name__}.MyGauge(mg)'
    assert str(g) == 'gauge:mg'


def test_error_messages_mention_str(lib, reg):
    c = lib.Counter('c', 'doc', registry=reg)
    with pytest.raises(ValueError) as e:
        c.labels('x')
    assert str(e.value) == 'No label names were set when constructing counter:c'
    c2 = lib.Counter('c2', 'doc', ['a', 'b'], registry=reg)
    with pytest.raises(ValueError) as e:
        c2.labels('x', 'y').labels('x', 'y')
    assert str(e.value) == ("counter:c2 already has labels set ({'a': 'x', 'b': 'y'}); "
                            "can not chain calls to .labels()")
    with pytest.raises(ValueError) as e:
        c2.inc()
    assert str(e.value) == 'counter metric is missing label values'


# --------------------------------------------------------------------------
# Private-but-relied-upon accessors: _value.get(), _sum.get() ...
# --------------------------------------------------------------------------

def test_value_accessors(lib, reg):
    c = lib.Counter('c', 'doc', registry=reg)
    c.inc()
    c.inc(2.5)
    assert c._value.get() == 3.5
    assert isinstance(c._value.get(), float)

    g = lib.Gauge('g', 'doc', registry=reg)
    g.set(7)
    g.dec(2)
    assert g._value.get() == 5.0

    cl = lib.Counter('cl', 'doc', ['l'], registry=reg)
    cl.labels('a').inc(4)
    assert cl.labels('a')._value.get() == 4.0
    assert cl.labels(l='a')._value.get() == 4.0

    h = lib.Histogram('h', 'doc', buckets=[1, 2], registry=reg)
    h.observe(0.5)
    h.observe(1.5)
    h.observe(10)
    assert h._sum.get() == 12.0
    assert [b.get() for b in h._buckets] == [1.0, 1.0, 1.0]
    assert h._upper_bounds == [1.0, 2.0, float('inf')]

    hl = lib.Histogram('hl', 'doc', ['l'], registry=reg)
    hl.labels('x').observe(3)
    assert hl.labels('x')._sum.get() == 3.0

    s = lib.Summary('s', 'doc', registry=reg)
    s.observe(2)
    s.observe(3)
    assert s._count.get() == 2.0
    assert s._sum.get() == 5.0


def test_created_attribute(lib, reg, fixed_time):
    c = lib.Counter('c', 'doc', registry=reg)
    assert c._created == 123.456
    h = lib.Histogram('h', 'doc', registry=reg)
    assert h._created == 123.456


def test_metric_private_names(lib, reg):
    c = lib.Counter('req_total', 'doc', ['a', 'b'], namespace='ns', registry=reg)
    assert c._name == 'ns_req'
    assert c._labelnames == ('a', 'b')
    assert c._documentation == 'doc'
    assert c._type == 'counter'
    child = c.labels('x', 'y')
    assert child._labelvalues == ('x', 'y')


def test_children_dict_is_live(lib, reg):
    """`metric._metrics` is the parent's live child dict in the reference; code in the
    wild clears it to reset metrics between tests (e.g. `c._metrics.clear()`). fastprom's is
    a live mapping over the children it keeps in Rust (issue 12), not a dict."""
    c = lib.Counter('c', 'doc', ['a'], registry=reg)
    x = c.labels('x')
    x.inc()
    c.labels('y').inc()
    assert isinstance(c._metrics, collections.abc.MutableMapping)
    assert list(c._metrics) == [('x',), ('y',)]
    assert c._metrics[('x',)] is x
    del c._metrics[('x',)]
    assert reg.get_sample_value('c_total', {'a': 'x'}) is None
    assert b'a="x"' not in lib.exposition.generate_latest(reg)
    c._metrics.clear()
    assert [s for m in reg.collect() for s in m.samples] == []
    assert lib.exposition.generate_latest(reg) == b'# HELP c_total doc\n# TYPE c_total counter\n'
    assert c.labels('x') is not x
    assert c.labels('x')._value.get() == 0.0


def test_registry_private_maps(lib, reg):
    """`_names_to_collectors` is widely used to look up / avoid duplicate metrics."""
    c = lib.Counter('c', 'doc', ['a'], registry=reg)
    h = lib.Histogram('h', 'doc', registry=reg)
    assert reg._names_to_collectors == {
        'c': c, 'c_total': c, 'c_created': c,
        'h': h, 'h_bucket': h, 'h_sum': h, 'h_count': h, 'h_created': h}
    assert reg._collector_to_names == {c: ['c', 'c_total', 'c_created'],
                                       h: ['h', 'h_bucket', 'h_sum', 'h_count', 'h_created']}
    for coll in list(reg._collector_to_names):
        reg.unregister(coll)
    assert reg._names_to_collectors == {}
    assert list(reg.collect()) == []


# --------------------------------------------------------------------------
# get_sample_value, default REGISTRY
# --------------------------------------------------------------------------

def test_get_sample_value(lib, reg, fixed_time):
    c = lib.Counter('c', 'doc', ['l'], registry=reg)
    c.labels('a').inc(3)
    assert reg.get_sample_value('c_total', {'l': 'a'}) == 3.0
    assert reg.get_sample_value('c_created', {'l': 'a'}) == 123.456
    assert reg.get_sample_value('c_total', {'l': 'b'}) is None
    assert reg.get_sample_value('c_total') is None
    g = lib.Gauge('g', 'doc', registry=reg)
    g.set(2)
    assert reg.get_sample_value('g') == 2.0
    assert reg.get_sample_value('g', {}) == 2.0
    h = lib.Histogram('h', 'doc', buckets=[1], registry=reg)
    h.observe(0.5)
    assert reg.get_sample_value('h_bucket', {'le': '1.0'}) == 1.0
    assert reg.get_sample_value('h_bucket', {'le': '+Inf'}) == 1.0
    assert reg.get_sample_value('h_count') == 1.0
    assert reg.get_sample_value('h_sum') == 0.5
    e = lib.Enum('e', 'doc', states=['a', 'b'], registry=reg)
    e.state('b')
    assert reg.get_sample_value('e', {'e': 'b'}) == 1
    assert reg.get_sample_value('e', {'e': 'a'}) == 0
    i = lib.Info('i', 'doc', registry=reg)
    i.info({'v': '1'})
    assert reg.get_sample_value('i_info', {'v': '1'}) == 1.0


def test_default_registry_get_sample_value(lib):
    c = lib.Counter('fastprom_compat_test_default_total', 'doc', ['l'])
    try:
        c.labels('x').inc(2)
        assert lib.REGISTRY.get_sample_value('fastprom_compat_test_default_total',
                                             {'l': 'x'}) == 2.0
        assert lib.registry.REGISTRY is lib.REGISTRY
        assert lib.core.REGISTRY is lib.REGISTRY
    finally:
        lib.REGISTRY.unregister(c)
    assert lib.REGISTRY.get_sample_value('fastprom_compat_test_default_total',
                                         {'l': 'x'}) is None


def _default_collectors_shape(lib):
    out = []
    for m in lib.REGISTRY.collect():
        if not (m.name.startswith('python_') or m.name.startswith('process_')):
            continue
        samples = []
        for s in m.samples:
            labels = dict(s.labels)
            if m.name != 'python_info':
                labels = {k: (v if k == 'generation' else '*') for k, v in labels.items()}
            samples.append((s.name, tuple(sorted(labels.items()))))
        out.append((m.name, m.documentation, m.type, m.unit, samples))
    return out


def test_default_registry_collectors(ref, impl):
    assert _default_collectors_shape(impl) == _default_collectors_shape(ref)


def test_default_registry_text_shape(ref, impl):
    def shape(lib):
        lines = []
        for line in lib.exposition.generate_latest(lib.REGISTRY).decode().splitlines():
            if not line.startswith(('python_', 'process_', '# HELP python', '# TYPE python',
                                    '# HELP process', '# TYPE process')):
                continue
            if line.startswith('#') or line.startswith('python_info'):
                lines.append(line)
            else:
                lines.append(line.rsplit(' ', 1)[0])
        return lines

    assert shape(impl) == shape(ref)


def test_default_collector_objects(lib):
    for n in ('PROCESS_COLLECTOR', 'PLATFORM_COLLECTOR', 'GC_COLLECTOR', 'ProcessCollector',
              'PlatformCollector', 'GCCollector'):
        assert hasattr(lib.root, n), n
    r = lib.CollectorRegistry()
    lib.ProcessCollector(namespace='ns', registry=r)
    names = {m.name for m in r.collect()}
    if names:  # /proc available
        assert 'ns_process_cpu_seconds' in names


# --------------------------------------------------------------------------
# labels()
# --------------------------------------------------------------------------

def test_labels_returns_same_child(lib, reg):
    for cls, kw in (('Counter', {}), ('Gauge', {}), ('Histogram', {}), ('Summary', {}),
                    ('Info', {}), ('Enum', {'states': ['a']})):
        m = getattr(lib, cls)(cls.lower() + '_same', 'doc', ['a', 'b'], registry=reg, **kw)
        c1 = m.labels('x', 'y')
        assert m.labels('x', 'y') is c1
        assert m.labels(a='x', b='y') is c1
        assert m.labels(b='y', a='x') is c1
        assert m.labels('x', 'z') is not c1
        assert type(c1) is type(m)
    c = lib.Counter('coerce', 'doc', ['a'], registry=reg)
    assert c.labels(1) is c.labels('1')
    assert c.labels(None) is c.labels('None')
    assert c.labels(a=2.5) is c.labels('2.5')


def test_labels_after_remove_creates_new_child(lib, reg):
    c = lib.Counter('c', 'doc', ['a'], registry=reg)
    c1 = c.labels('x')
    c1.inc()
    c.remove('x')
    c2 = c.labels('x')
    assert c2 is not c1
    assert c2._value.get() == 0.0
    c.clear()
    assert c.labels('x') is not c2


# --------------------------------------------------------------------------
# Subclasses with custom __init__
# --------------------------------------------------------------------------

def _expected_child_call(cls_name):
    kw = {'documentation': 'doc', 'labelnames': ('a',), 'namespace': 'ns',
          'subsystem': '', 'unit': '', '_labelvalues': ('x',)}
    if cls_name == 'Gauge':
        kw['multiprocess_mode'] = 'max'
    if cls_name == 'Histogram':
        kw['buckets'] = [1, 2]
    if cls_name == 'Enum':
        kw['states'] = ['s1', 's2']
    return (('m',), kw)


@pytest.mark.parametrize('cls_name', ['Counter', 'Gauge', 'Histogram', 'Summary', 'Info', 'Enum'])
def test_subclass_kwargs_passthrough(lib, reg, cls_name):
    base = getattr(lib, cls_name)
    calls = []

    class Sub(base):
        def __init__(self, *args, extra='default', **kwargs):
            calls.append((args, {k: v for k, v in kwargs.items() if k != 'registry'}))
            self.extra = extra
            super().__init__(*args, **kwargs)

    kw = {}
    if cls_name == 'Gauge':
        kw['multiprocess_mode'] = 'max'
    if cls_name == 'Histogram':
        kw['buckets'] = [1, 2]
    if cls_name == 'Enum':
        kw['states'] = ['s1', 's2']
    parent = Sub('m', 'doc', ['a'], namespace='ns', registry=reg, extra='parent', **kw)
    assert parent.extra == 'parent'
    child = parent.labels('x')
    assert type(child) is Sub
    assert child.extra == 'default'
    assert len(calls) == 2
    assert calls[1] == _expected_child_call(cls_name)
    assert parent.labels('x') is child
    assert len(calls) == 2


def test_subclass_custom_signature(lib, reg):
    """A subclass with its own explicit signature (library pattern)."""

    class TimedCounter(lib.Counter):
        def __init__(self, name, documentation, labelnames=(), namespace='', subsystem='',
                     unit='', registry=lib.REGISTRY, _labelvalues=None, prefix='app'):
            self.prefix = prefix
            super().__init__(name, documentation, labelnames=labelnames, namespace=namespace,
                             subsystem=subsystem, unit=unit, registry=registry,
                             _labelvalues=_labelvalues)

        def hit(self, n=1):
            self.inc(n)

    c = TimedCounter('hits', 'doc', ['route'], registry=reg, prefix='x')
    c.labels('/a').hit(3)
    c.labels(route='/a').hit()
    assert reg.get_sample_value('hits_total', {'route': '/a'}) == 4.0
    assert c.labels('/a').prefix == 'app'
    assert isinstance(c.labels('/a'), TimedCounter)

    class Hist(lib.Histogram):
        def __init__(self, name, documentation, labelnames=(), **kwargs):
            kwargs.setdefault('buckets', (0.1, 1.0))
            super().__init__(name, documentation, labelnames, **kwargs)

    h = Hist('lat', 'doc', ['m'], registry=reg)
    h.labels('get').observe(0.5)
    assert reg.get_sample_value('lat_bucket', {'m': 'get', 'le': '1.0'}) == 1.0
    assert reg.get_sample_value('lat_bucket', {'m': 'get', 'le': '0.1'}) == 0.0


def test_subclass_overriding_method(lib, reg):
    class CountingGauge(lib.Gauge):
        def set(self, value):
            super().set(value * 2)

    g = CountingGauge('cg', 'doc', ['l'], registry=reg)
    g.labels('a').set(2)
    assert reg.get_sample_value('cg', {'l': 'a'}) == 4.0
    g2 = CountingGauge('cg2', 'doc', registry=reg)
    g2.set_to_current_time()
    assert reg.get_sample_value('cg2') > 2 * (time.time() - 100)


# --------------------------------------------------------------------------
# time() / count_exceptions() / track_inprogress()
# --------------------------------------------------------------------------

SLEEP = 0.03


@pytest.mark.parametrize('cls', ['Histogram', 'Summary'])
def test_time_decorator_and_cm(lib, reg, cls):
    m = getattr(lib, cls)('t', 'doc', registry=reg)

    @m.time()
    def f(x, y=2):
        time.sleep(SLEEP)
        return x + y

    assert f(1) == 3
    assert f(1, y=3) == 4
    assert reg.get_sample_value('t_count') == 2.0
    assert reg.get_sample_value('t_sum') >= 2 * SLEEP * 0.9
    with m.time() as t:
        assert t.duration is None
        time.sleep(SLEEP)
    assert reg.get_sample_value('t_count') == 3.0
    assert t.duration >= SLEEP * 0.9
    assert reg.get_sample_value('t_sum') >= 3 * SLEEP * 0.9


def test_gauge_time(lib, reg):
    g = lib.Gauge('g', 'doc', registry=reg)
    with g.time() as t:
        time.sleep(SLEEP)
    assert reg.get_sample_value('g') == t.duration
    assert t.duration >= SLEEP * 0.9

    @g.time()
    def f():
        time.sleep(SLEEP / 3)

    f()
    assert reg.get_sample_value('g') < t.duration


@pytest.mark.parametrize('cls', ['Histogram', 'Summary', 'Gauge'])
def test_timer_uses_patchable_default_timer(lib, reg, cls):
    """User tests patch context_managers.default_timer for deterministic durations."""
    m = getattr(lib, cls)('t', 'doc', registry=reg)
    value = (lambda: reg.get_sample_value('t')) if cls == 'Gauge' else (
        lambda: reg.get_sample_value('t_sum'))
    with unittest.mock.patch.object(lib.context_managers, 'default_timer',
                                    side_effect=[10.0, 12.5, 20.0, 20.25, 30.0, 29.0]):
        with m.time() as t:
            pass
        assert t.duration == 2.5
        assert value() == 2.5

        @m.time()
        def f():
            return 1

        f()
        assert value() == (2.75 if cls != 'Gauge' else 0.25)
        with m.time() as t:  # time going backwards is clamped to 0
            pass
        assert t.duration == 0
    assert value() == (2.75 if cls != 'Gauge' else 0.0)


def test_timer_labels(lib, reg):
    h = lib.Histogram('h', 'doc', ['l'], registry=reg)
    with h.time() as t:
        t.labels('a')
    assert reg.get_sample_value('h_count', {'l': 'a'}) == 1.0
    with pytest.raises(ValueError):
        with h.time():
            pass


def test_timer_class_exported(lib, reg):
    assert hasattr(lib.context_managers, 'Timer')
    assert hasattr(lib.context_managers, 'ExceptionCounter')
    assert hasattr(lib.context_managers, 'InprogressTracker')
    h = lib.Histogram('h', 'doc', registry=reg)
    t = h.time()
    assert isinstance(t, lib.context_managers.Timer)
    assert t.duration is None


def test_timer_decorator_reentrant(lib, reg):
    h = lib.Histogram('h', 'doc', registry=reg)

    @h.time()
    def rec(n):
        if n:
            rec(n - 1)
        return n

    rec(3)
    assert reg.get_sample_value('h_count') == 4.0


def test_count_exceptions(lib, reg):
    c = lib.Counter('c', 'doc', registry=reg)

    @c.count_exceptions()
    def f(fail):
        if fail:
            raise KeyError('x')
        return 'ok'

    assert f(False) == 'ok'
    with pytest.raises(KeyError):
        f(True)
    assert reg.get_sample_value('c_total') == 1.0

    with pytest.raises(ValueError):
        with c.count_exceptions(ValueError):
            raise ValueError('boom')
    with pytest.raises(KeyError):
        with c.count_exceptions(ValueError):
            raise KeyError('boom')
    with pytest.raises(TypeError):
        with c.count_exceptions((ValueError, TypeError)):
            raise TypeError('boom')
    with c.count_exceptions():
        pass
    assert reg.get_sample_value('c_total') == 3.0

    cl = lib.Counter('cl', 'doc', ['l'], registry=reg)
    with pytest.raises(ValueError) as e:
        cl.count_exceptions()
    assert str(e.value) == 'counter metric is missing label values'
    with pytest.raises(ZeroDivisionError):
        with cl.labels('a').count_exceptions():
            1 / 0
    assert reg.get_sample_value('cl_total', {'l': 'a'}) == 1.0


def test_track_inprogress(lib, reg):
    g = lib.Gauge('g', 'doc', registry=reg)
    seen = []

    @g.track_inprogress()
    def f():
        seen.append(reg.get_sample_value('g'))

    f()
    with g.track_inprogress():
        seen.append(reg.get_sample_value('g'))
        with g.track_inprogress():
            seen.append(reg.get_sample_value('g'))
    with pytest.raises(RuntimeError):
        with g.track_inprogress():
            raise RuntimeError()
    assert seen == [1.0, 1.0, 2.0]
    assert reg.get_sample_value('g') == 0.0


def _sig_target(a, b=2, *args, c, d=4, **kwargs):
    """docstring"""
    return (a, b, args, c, d, kwargs)


@pytest.mark.parametrize('which', ['time_h', 'time_s', 'time_g', 'count_exceptions',
                                   'track_inprogress'])
def test_decorators_keep_signature(lib, reg, which):
    if which == 'time_h':
        deco = lib.Histogram('x', 'doc', registry=reg).time()
    elif which == 'time_s':
        deco = lib.Summary('x', 'doc', registry=reg).time()
    elif which == 'time_g':
        deco = lib.Gauge('x', 'doc', registry=reg).time()
    elif which == 'count_exceptions':
        deco = lib.Counter('x', 'doc', registry=reg).count_exceptions()
    else:
        deco = lib.Gauge('x', 'doc', registry=reg).track_inprogress()
    f = deco(_sig_target)
    assert inspect.signature(f) == inspect.signature(_sig_target)
    assert str(inspect.signature(f)) == '(a, b=2, *args, c, d=4, **kwargs)'
    assert f.__name__ == '_sig_target'
    assert f.__doc__ == 'docstring'
    assert f.__module__ == __name__
    assert f.__wrapped__ is _sig_target
    assert f.__qualname__ == _sig_target.__qualname__
    assert inspect.getfullargspec(f) == inspect.getfullargspec(_sig_target)
    assert not inspect.iscoroutinefunction(f)
    assert f(1, c=3) == (1, 2, (), 3, 4, {})
    assert f(1, 5, 6, c=3, z=1) == (1, 5, (6,), 3, 4, {'z': 1})
    with pytest.raises(TypeError):
        f()  # missing required argument


def test_decorated_method(lib, reg):
    h = lib.Histogram('h', 'doc', registry=reg)

    class A:
        @h.time()
        def m(self, x):
            return x * 2

    assert A().m(3) == 6
    assert reg.get_sample_value('h_count') == 1.0


# Async: the reference does not await coroutines (it only times coroutine
# creation); fastprom is expected to await and measure the awaited time.

def test_async_time(lib, reg):
    h = lib.Histogram('h', 'doc', registry=reg)

    @h.time()
    async def f(x):
        await asyncio.sleep(0.05)
        return x

    assert asyncio.run(f(7)) == 7
    assert reg.get_sample_value('h_count') == 1.0
    if lib.name == IMPL_NAME:
        assert inspect.iscoroutinefunction(f)
        assert reg.get_sample_value('h_sum') >= 0.045
    else:
        assert reg.get_sample_value('h_sum') < 0.045


def test_async_time_summary_and_gauge(impl):
    reg = impl.CollectorRegistry()
    s = impl.Summary('s', 'doc', registry=reg)
    g = impl.Gauge('g', 'doc', registry=reg)

    @s.time()
    @g.time()
    async def f():
        await asyncio.sleep(0.04)

    asyncio.run(f())
    assert reg.get_sample_value('s_count') == 1.0
    assert reg.get_sample_value('s_sum') >= 0.035
    assert reg.get_sample_value('g') >= 0.035


def test_async_count_exceptions_and_inprogress(impl):
    reg = impl.CollectorRegistry()
    c = impl.Counter('c', 'doc', registry=reg)
    g = impl.Gauge('g', 'doc', registry=reg)
    seen = []

    @c.count_exceptions(ValueError)
    @g.track_inprogress()
    async def f(fail):
        await asyncio.sleep(0)
        seen.append(reg.get_sample_value('g'))
        if fail:
            raise ValueError('x')
        return 'ok'

    assert asyncio.run(f(False)) == 'ok'
    with pytest.raises(ValueError):
        asyncio.run(f(True))
    assert seen == [1.0, 1.0]
    assert reg.get_sample_value('g') == 0.0
    assert reg.get_sample_value('c_total') == 1.0
    assert inspect.signature(f).parameters.keys() == {'fail'}


def test_async_signature_kept(impl):
    reg = impl.CollectorRegistry()
    h = impl.Histogram('h', 'doc', registry=reg)

    async def target(a, b=2, *, c):
        return a

    f = h.time()(target)
    assert inspect.signature(f) == inspect.signature(target)
    assert f.__name__ == 'target'


# --------------------------------------------------------------------------
# Registry behaviour
# --------------------------------------------------------------------------

def test_duplicate_timeseries(lib):
    reg = lib.CollectorRegistry(auto_describe=True)
    lib.Counter('c', 'doc', registry=reg)
    with pytest.raises(ValueError) as e:
        lib.Counter('c_total', 'doc', registry=reg)
    assert isinstance(e.value, lib.registry.DuplicateTimeseries)
    assert isinstance(e.value, lib.core.DuplicateTimeseries)
    assert e.value.duplicates == {'c', 'c_total', 'c_created'}
    assert str(e.value).startswith('Duplicated timeseries in CollectorRegistry: {')
    with pytest.raises(lib.registry.DuplicateTimeseries) as e:
        lib.Gauge('c_created', 'doc', registry=reg)
    assert e.value.duplicates == {'c_created'}
    lib.Histogram('h', 'doc', registry=reg)
    for name in ('h_bucket', 'h_count', 'h_sum', 'h_created'):
        with pytest.raises(ValueError):
            lib.Gauge(name, 'doc', registry=reg)
    lib.Summary('s', 'doc', registry=reg)
    with pytest.raises(ValueError):
        lib.Gauge('s_count', 'doc', registry=reg)
    lib.Info('i', 'doc', registry=reg)
    with pytest.raises(ValueError):
        lib.Gauge('i_info', 'doc', registry=reg)
    # gauges and enums only reserve their own name
    lib.Gauge('g', 'doc', registry=reg)
    lib.Gauge('g_total', 'doc', registry=reg)
    lib.Enum('e', 'doc', states=['a'], registry=reg)
    with pytest.raises(ValueError):
        lib.Enum('e', 'doc', states=['a'], registry=reg)


def test_duplicate_with_custom_collector(lib):
    class C:
        def collect(self):
            yield lib.core.GaugeMetricFamily('custom', 'doc', value=1)

    reg = lib.CollectorRegistry(auto_describe=True)
    reg.register(C())
    with pytest.raises(lib.core.DuplicateTimeseries):
        reg.register(C())
    with pytest.raises(ValueError):
        lib.Gauge('custom', 'doc', registry=reg)
    # without auto_describe, collectors without describe() are not checked
    reg2 = lib.CollectorRegistry()
    reg2.register(C())
    reg2.register(C())
    assert reg2.get_sample_value('custom') == 1.0

    class D:
        def describe(self):
            return []

        def collect(self):
            yield lib.core.GaugeMetricFamily('custom', 'doc', value=2)

    reg.register(D())  # describe() returning [] -> never checked
    text = lib.exposition.generate_latest(reg).decode()
    assert text.count('custom 1.0') == 1 and text.count('custom 2.0') == 1


def test_unregister(lib, reg):
    c = lib.Counter('c', 'doc', registry=reg)
    g = lib.Gauge('g', 'doc', registry=reg)
    reg.unregister(c)
    assert reg.get_sample_value('c_total') is None
    assert reg.get_sample_value('g') == 0.0
    reg.register(c)
    assert reg.get_sample_value('c_total') == 0.0
    reg.unregister(c)
    with pytest.raises(KeyError):
        reg.unregister(c)
    # collection order follows registration order
    reg.register(c)
    assert [m.name for m in reg.collect()] == ['g', 'c']
    reg.unregister(g)
    lib.Gauge('g', 'doc', registry=reg)  # name free again


def test_registry_none(lib):
    c = lib.Counter('unregistered_metric', 'doc', registry=None)
    c.inc()
    assert c._value.get() == 1.0
    assert lib.REGISTRY.get_sample_value('unregistered_metric_total') is None


def test_restricted_registry(lib, reg, fixed_time):
    c = lib.Counter('c', 'doc', ['l'], registry=reg)
    c.labels('a').inc()
    h = lib.Histogram('h', 'doc', buckets=[1], registry=reg)
    h.observe(0.5)
    g = lib.Gauge('g', 'doc', registry=reg)
    g.set(3)
    r = reg.restricted_registry(['c_total', 'h_sum', 'h_bucket'])
    text = lib.exposition.generate_latest(r).decode()
    assert 'c_total{l="a"} 1.0' in text
    assert 'c_created' not in text
    assert 'h_sum 0.5' in text
    assert 'h_bucket{le="1.0"} 1.0' in text
    assert 'h_count' not in text
    assert '\ng ' not in text
    metrics = sorted(r.collect(), key=lambda m: m.name)
    assert [(m.name, [s.name for s in m.samples]) for m in metrics] == [
        ('c', ['c_total']), ('h', ['h_bucket', 'h_bucket', 'h_sum'])]
    assert list(reg.restricted_registry(['nope']).collect()) == []
    om = lib.om.generate_latest(reg.restricted_registry(['g'])).decode()
    assert om == '# HELP g doc\n# TYPE g gauge\ng 3.0\n# EOF\n'


def test_target_info(lib, fixed_time):
    reg = lib.CollectorRegistry(target_info={'env': 'prod'})
    assert reg.get_target_info() == {'env': 'prod'}
    assert reg.get_sample_value('target_info', {'env': 'prod'}) == 1
    text = lib.exposition.generate_latest(reg).decode()
    assert text == ('# HELP target_info Target metadata\n# TYPE target_info gauge\n'
                    'target_info{env="prod"} 1.0\n')
    reg.set_target_info({'a': 'b', 'c': 'd'})
    assert reg.get_target_info() == {'a': 'b', 'c': 'd'}
    om = lib.om.generate_latest(reg).decode()
    assert om == ('# HELP target Target metadata\n# TYPE target info\n'
                  'target_info{a="b",c="d"} 1.0\n# EOF\n')
    with pytest.raises(ValueError):
        lib.Info('target', 'doc', registry=reg)
    r = reg.restricted_registry(['target_info'])
    assert [m.name for m in r.collect()] == ['target']
    reg.set_target_info(None)
    assert reg.get_target_info() is None
    assert lib.exposition.generate_latest(reg) == b''
    lib.Info('target', 'doc', registry=reg)
    with pytest.raises(ValueError) as e:
        reg.set_target_info({'a': 'b'})
    assert str(e.value) == 'CollectorRegistry already contains a target_info metric'


def test_registry_collect_is_generator_of_metrics(lib, reg):
    lib.Counter('c', 'doc', registry=reg)
    got = reg.collect()
    assert inspect.isgenerator(got) or hasattr(got, '__next__')
    metrics = list(got)
    assert len(metrics) == 1
    m = metrics[0]
    assert isinstance(m, lib.core.Metric)
    assert isinstance(m.samples[0], lib.samples.Sample)
    assert m.samples[0].name == 'c_total'
    assert m.samples[0][0] == 'c_total'
    assert m.samples[0]._fields == ('name', 'labels', 'value', 'timestamp', 'exemplar',
                                    'native_histogram')


# --------------------------------------------------------------------------
# Buckets, created toggles, env vars
# --------------------------------------------------------------------------

def test_default_buckets(lib, ref, reg):
    assert lib.Histogram.DEFAULT_BUCKETS == ref.Histogram.DEFAULT_BUCKETS
    assert lib.metrics.Histogram.DEFAULT_BUCKETS == (
        .005, .01, .025, .05, .075, .1, .25, .5, .75, 1.0, 2.5, 5.0, 7.5, 10.0, float('inf'))
    h = lib.Histogram('h', 'doc', registry=reg)
    les = [s.labels['le'] for m in reg.collect() for s in m.samples if s.name == 'h_bucket']
    assert les == ['0.005', '0.01', '0.025', '0.05', '0.075', '0.1', '0.25', '0.5', '0.75',
                   '1.0', '2.5', '5.0', '7.5', '10.0', '+Inf']
    h.observe(0.3)
    assert reg.get_sample_value('h_bucket', {'le': '0.25'}) == 0.0
    assert reg.get_sample_value('h_bucket', {'le': '0.5'}) == 1.0


def test_created_toggle(lib, reg, fixed_time):
    c = lib.Counter('c', 'doc', registry=reg)
    s = lib.Summary('s', 'doc', registry=reg)
    h = lib.Histogram('h', 'doc', buckets=[1], registry=reg)
    g = lib.Gauge('g', 'doc', registry=reg)
    del c, s, h, g
    try:
        lib.disable_created_metrics()
        names = [s.name for m in reg.collect() for s in m.samples]
        assert not [n for n in names if n.endswith('_created')]
        assert b'_created' not in lib.exposition.generate_latest(reg)
        assert b'_created' not in lib.om.generate_latest(reg)
        lib.enable_created_metrics()
        names = [s.name for m in reg.collect() for s in m.samples]
        assert [n for n in names if n.endswith('_created')] == ['c_created', 's_created',
                                                                 'h_created']
    finally:
        lib.enable_created_metrics()
    assert lib.metrics.disable_created_metrics is lib.disable_created_metrics
    assert lib.metrics.enable_created_metrics is lib.enable_created_metrics


def test_created_module_global_monkeypatch(lib, reg, monkeypatch):
    """prometheus_client's own test-suite patches metrics._use_created."""
    lib.Counter('c', 'doc', registry=reg)
    monkeypatch.setattr(lib.metrics, '_use_created', False)
    assert reg.get_sample_value('c_created') is None
    monkeypatch.setattr(lib.metrics, '_use_created', True)
    assert reg.get_sample_value('c_created') is not None


def _run(code, env_extra=None, check=True):
    env = dict(os.environ)
    env.pop('PROMETHEUS_DISABLE_CREATED_SERIES', None)
    env.pop('PROMETHEUS_MULTIPROC_DIR', None)
    env.pop('prometheus_multiproc_dir', None)
    env.update(env_extra or {})
    p = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], env=env,
                       capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


@pytest.mark.parametrize('value,created', [('True', False), ('true', False), ('1', False),
                                           ('t', False), ('False', True), ('yes', True)])
def test_env_disable_created(lib, value, created):
    p = _run(f'''
        from {lib.name} import CollectorRegistry, Counter, Histogram, generate_latest
        reg = CollectorRegistry()
        Counter('c', 'doc', registry=reg).inc()
        Histogram('h', 'doc', buckets=[1], registry=reg)
        print(generate_latest(reg).decode())
    ''', {'PROMETHEUS_DISABLE_CREATED_SERIES': value})
    assert ('c_created' in p.stdout) == created
    assert ('h_created' in p.stdout) == created
    assert 'c_total 1.0' in p.stdout


# --------------------------------------------------------------------------
# Misc public helpers compared directly against the reference
# --------------------------------------------------------------------------

FLOATS = [0, 1, -0.0, 1e-07, 1e-05, 100000.0, 123456.7, 1e6, 1234567.0, 1234567.8,
          123456789.0, 1e7, 1.5e10, 1e15, 1e16, 2 ** 60, True, -1234567.0, -1e20,
          0.1 + 0.2, 1795455629.6996083, float('inf'), float('-inf'), float('nan'), '2.5',
          1e300, 5e-324, 999999.9999999999, 10 ** 22, 1e22, 12345678901234567890]


def test_float_to_go_string(ref, impl):
    for f in FLOATS:
        assert impl.utils.floatToGoString(f) == ref.utils.floatToGoString(f), f


def test_utils_constants(lib):
    assert lib.utils.INF == float('inf')
    assert lib.utils.MINUS_INF == float('-inf')
    assert lib.utils.NaN != lib.utils.NaN
    assert lib.utils.parse_version('1.0.0') == (1, 0, 0)
    assert lib.utils.parse_version('2.0.x') == (2, 0, 'x')


def test_timestamp(lib):
    T = lib.samples.Timestamp
    t = T(12, 345000000)
    assert str(t) == '12.345000000'
    assert repr(t) == 'Timestamp(12, 345000000)'
    assert float(t) == 12.345
    assert t == T(12, 345000000)
    assert t != T(12, 1)
    assert T(1, 2) < T(1, 3) < T(2, 0)
    assert T(2, 0) > T(1, 999)
    with pytest.raises(ValueError) as e:
        T(1, 1e9)
    assert str(e.value) == 'Invalid value for nanoseconds in Timestamp: 1000000000.0'
    assert str(T(-1, 5)) == '-1.-00000005'


def test_samples_namedtuples(lib):
    S, E = lib.samples.Sample, lib.samples.Exemplar
    s = S('a', {'l': 'v'}, 1.0)
    assert s == ('a', {'l': 'v'}, 1.0, None, None, None)
    assert s.timestamp is None and s.exemplar is None and s.native_histogram is None
    assert repr(s) == "Sample(name='a', labels={'l': 'v'}, value=1.0, timestamp=None, " \
                      "exemplar=None, native_histogram=None)"
    e = E({'a': 'b'}, 1.5)
    assert e == ({'a': 'b'}, 1.5, None)
    assert lib.samples.BucketSpan(1, 2) == (1, 2)
    assert lib.core.Sample is S


def test_metric_family_eq_and_repr(lib):
    a = lib.core.CounterMetricFamily('c_total', 'help', value=1)
    b = lib.core.CounterMetricFamily('c', 'help', value=1)
    assert a == b
    assert a.name == 'c'
    assert a.samples == [('c_total', {}, 1, None, None, None)]
    assert repr(a) == ("Metric(c, help, counter, , [Sample(name='c_total', labels={}, value=1, "
                       "timestamp=None, exemplar=None, native_histogram=None)])")
    assert lib.core.UntypedMetricFamily is lib.core.UnknownMetricFamily
    m = lib.core.Metric('x', 'd', 'untyped')
    assert m.type == 'unknown'
    with pytest.raises(ValueError) as e:
        lib.core.Metric('x', 'd', 'bogus')
    assert str(e.value) == 'Invalid metric type: bogus'


def test_family_value_errors_carry_metric(lib):
    class C:
        def __init__(self, fam):
            self.fam = fam

        def collect(self):
            return [self.fam]

    def gauge_none():
        f = lib.core.GaugeMetricFamily('g', 'd', labels=['l'])
        f.add_metric(['a'], None)
        return f

    for fam_src, exc_type in ((gauge_none, TypeError),
                              (lambda: lib.core.GaugeMetricFamily('g', 'd', value='x'),
                               ValueError),
                              (lambda: lib.core.CounterMetricFamily('g', 'd', value=[]),
                               TypeError)):
        reg = lib.CollectorRegistry()
        fam = fam_src()
        reg.register(C(fam))
        for gen in (lib.exposition.generate_latest, lib.om.generate_latest):
            if gen is lib.om.generate_latest and fam_src is gauge_none:
                # OpenMetrics prints an empty value for None instead of raising
                assert gen(reg) == b'# HELP g d\n# TYPE g gauge\ng{l="a"} \n# EOF\n'
                continue
            with pytest.raises(exc_type) as e:
                gen(reg)
            assert e.value.args[-1] is fam


def test_write_to_textfile(lib, ref, tmp_path, fixed_time):
    def build(l):
        reg = l.CollectorRegistry()
        c = l.Counter('my.counter', 'doc', ['lbl'], registry=reg)
        c.labels('a"b').inc(2)
        l.Gauge('g', 'doc', registry=reg).set(1e6)
        return reg

    path = tmp_path / f'{lib.name}.prom'
    lib.exposition.write_to_textfile(str(path), build(lib))
    assert path.read_bytes() == ref.exposition.generate_latest(build(ref), 'allow-utf-8')
    assert os.listdir(tmp_path) == [path.name]
    path2 = tmp_path / 'other.prom'
    lib.root.write_to_textfile(str(path2), build(lib), escaping='underscores')
    assert path2.read_bytes() == ref.exposition.generate_latest(build(ref))


WSGI_REQUESTS = [
    dict(REQUEST_METHOD='GET', PATH_INFO='/metrics'),
    dict(REQUEST_METHOD='GET', PATH_INFO='/', HTTP_ACCEPT='application/openmetrics-text'),
    dict(REQUEST_METHOD='GET', PATH_INFO='/metrics',
         HTTP_ACCEPT='text/plain; version=1.0.0; escaping=allow-utf-8'),
    dict(REQUEST_METHOD='GET', PATH_INFO='/metrics', HTTP_ACCEPT_ENCODING='gzip'),
    dict(REQUEST_METHOD='GET', PATH_INFO='/metrics', QUERY_STRING='name[]=c_total&name[]=g'),
    dict(REQUEST_METHOD='GET', PATH_INFO='/favicon.ico'),
    dict(REQUEST_METHOD='OPTIONS', PATH_INFO='/metrics'),
    dict(REQUEST_METHOD='POST', PATH_INFO='/metrics'),
    dict(REQUEST_METHOD='HEAD', PATH_INFO='/metrics'),
]


def _demo_registry(l):
    reg = l.CollectorRegistry()
    c = l.Counter('c', 'doc', ['l'], registry=reg)
    c.labels('a"b').inc(2)
    l.Gauge('g', 'doc', registry=reg).set(1234567.0)
    l.Histogram('my.h', 'doc', buckets=[1], registry=reg).observe(0.5)
    return reg


def _gunzip_if_needed(headers, body):
    import gzip
    if ('Content-Encoding', 'gzip') in headers:
        return gzip.decompress(body)
    return body


@pytest.mark.parametrize('environ', WSGI_REQUESTS)
def test_wsgi_app(ref, impl, environ, fixed_time):
    def run(l):
        app = l.exposition.make_wsgi_app(_demo_registry(l))
        got = {}

        def start_response(status, headers):
            got['status'] = status
            got['headers'] = list(headers)

        body = b''.join(app(dict(environ), start_response))
        body = _gunzip_if_needed(got['headers'], body)
        if 'name[]' in environ.get('QUERY_STRING', ''):
            # the reference's RestrictedRegistry iterates a set: family order is arbitrary
            body = sorted(body.split(b'# HELP'))
        return got['status'], got['headers'], body

    assert run(impl) == run(ref)


@pytest.mark.parametrize('headers', [
    [], [(b'accept', b'application/openmetrics-text; version=1.0.0')],
    [(b'accept-encoding', b'gzip')], [(b'Accept', b'text/plain; version=1.0.0; escaping=dots')],
])
@pytest.mark.parametrize('query', [b'', b'name[]=g'])
def test_asgi_app(ref, impl, headers, query, fixed_time):
    def run(l):
        app = l.root.make_asgi_app(_demo_registry(l))
        sent = []

        async def receive():
            return {'type': 'http.request', 'body': b'', 'more_body': False}

        async def send(msg):
            sent.append(msg)

        scope = {'type': 'http', 'method': 'GET', 'path': '/metrics', 'headers': headers,
                 'query_string': query}
        asyncio.run(app(scope, receive, send))
        start, body = sent
        hdrs = [(k.decode(), v.decode()) for k, v in start['headers']]
        return start['status'], hdrs, _gunzip_if_needed(hdrs, body['body'])

    assert run(impl) == run(ref)


ACCEPT_HEADERS = [
    None, '', '*/*', 'text/plain', 'text/plain; version=0.0.4',
    'text/plain; version=1.0.0', 'text/plain; version=1.0.0; escaping=dots',
    'application/openmetrics-text', 'application/openmetrics-text; version=1.0.0',
    'application/openmetrics-text; version=2.0.0; escaping=allow-utf-8',
    'application/openmetrics-text; version=0.0.1, text/plain; version=1.0.0; escaping=values',
    'application/openmetrics-text; version=1.0.0; escaping=bogus',
]


@pytest.mark.parametrize('accept', ACCEPT_HEADERS)
def test_choose_encoder(ref, impl, accept, fixed_time):
    def run(l):
        reg = l.CollectorRegistry()
        l.Counter('my.c', 'doc', registry=reg).inc()
        enc, ctype = l.exposition.choose_encoder(accept)
        return enc(reg), ctype

    assert run(impl) == run(ref)


def test_content_type_constants(ref, impl):
    for n in ('CONTENT_TYPE_LATEST', 'CONTENT_TYPE_PLAIN_0_0_4', 'CONTENT_TYPE_PLAIN_1_0_0'):
        assert getattr(impl.exposition, n) == getattr(ref.exposition, n)
        assert getattr(impl.root, n) == getattr(ref.root, n)
    for n in ('CONTENT_TYPE_LATEST', 'CONTENT_TYPE_LATEST_2_0', 'ALLOWUTF8', 'UNDERSCORES',
              'DOTS', 'VALUES', 'ESCAPING_HEADER_TAG'):
        assert getattr(impl.om, n) == getattr(ref.om, n)


@pytest.mark.parametrize('name', ['my.counter_total', 'ünï', 'a:b', '1abc', 'ok_name', 'a"b\\c',
                                  'x\ny', 'a_b.c'])
@pytest.mark.parametrize('esc', ['allow-utf-8', 'underscores', 'dots', 'values', 'bogus'])
def test_escape_functions(ref, impl, name, esc):
    assert impl.om.escape_metric_name(name, esc) == ref.om.escape_metric_name(name, esc)
    assert impl.om.escape_label_name(name, esc) == ref.om.escape_label_name(name, esc)


def test_public_names(ref, impl):
    missing = [n for n in ref.root.__all__ if not hasattr(impl.root, n)]
    assert not missing
    assert set(ref.root.__all__) <= set(impl.root.__all__)
    core_names = [n for n in dir(ref.core) if not n.startswith('_')]
    assert [n for n in core_names if not hasattr(impl.core, n)] == []
    for n in ('Counter', 'Gauge', 'Histogram', 'Summary', 'Info', 'Enum'):
        assert getattr(impl.core, n) is getattr(impl.root, n)
        assert getattr(impl.metrics, n) is getattr(impl.root, n)
    for n in ('enable_legacy_validation', 'disable_legacy_validation', 'get_legacy_validation'):
        assert hasattr(impl.validation, n)
    for sub in ('exposition', 'metrics', 'metrics_core', 'registry'):
        assert getattr(impl.root, sub) is importlib.import_module(f'{IMPL_NAME}.{sub}')


def test_legacy_validation_toggle(lib, reg):
    try:
        lib.validation.enable_legacy_validation()
        assert lib.validation.get_legacy_validation() is True
        with pytest.raises(ValueError) as e:
            lib.Counter('a.b', 'doc', registry=reg)
        assert str(e.value) == 'invalid metric name a.b'
        with pytest.raises(ValueError) as e:
            lib.Counter('ab', 'doc', ['a.b'], registry=reg)
        assert str(e.value) == 'Invalid label metric name: a.b'
    finally:
        lib.validation.disable_legacy_validation()
    assert lib.validation.get_legacy_validation() is False
    lib.Counter('a.b', 'doc', ['ü'], registry=reg)


# --------------------------------------------------------------------------
# fastprom.install()
# --------------------------------------------------------------------------

def test_install_aliases_prometheus_client(impl):
    p = _run('''
        import sys, warnings
        assert 'prometheus_client' not in sys.modules
        import fastprom
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            fastprom.install()
            fastprom.install()          # idempotent, no warning either
        import prometheus_client
        from prometheus_client import Counter, REGISTRY, CollectorRegistry, generate_latest
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
        import prometheus_client.exposition
        import prometheus_client.openmetrics.exposition
        import prometheus_client.registry, prometheus_client.metrics
        import fastprom.core, fastprom.exposition, fastprom.openmetrics.exposition
        assert Counter is fastprom.Counter, Counter
        assert REGISTRY is fastprom.REGISTRY
        assert CollectorRegistry is fastprom.CollectorRegistry
        assert generate_latest is fastprom.generate_latest
        assert CounterMetricFamily is fastprom.core.CounterMetricFamily
        assert GaugeMetricFamily is fastprom.core.GaugeMetricFamily
        assert Metric is fastprom.core.Metric
        assert prometheus_client.exposition.generate_latest is fastprom.exposition.generate_latest
        assert (prometheus_client.openmetrics.exposition.generate_latest
                is fastprom.openmetrics.exposition.generate_latest)
        assert prometheus_client.registry.REGISTRY is fastprom.REGISTRY
        assert prometheus_client.metrics.Counter is fastprom.Counter
        reg = CollectorRegistry()
        Counter('x', 'doc', registry=reg).inc()
        assert reg.get_sample_value('x_total') == 1.0
        print('OK')
    ''')
    assert p.stdout.strip().endswith('OK')


def test_install_after_import_warns(impl):
    p = _run('''
        import warnings
        import prometheus_client
        import fastprom
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            fastprom.install()
        assert w, 'expected a warning when prometheus_client was already imported'
        print('WARNED', w[0].category.__name__, w[0].message)
    ''')
    assert 'WARNED' in p.stdout


def test_install_then_parser_import(impl):
    """After install(), user code importing the parsers should still work."""
    p = _run('''
        import fastprom
        fastprom.install()
        from prometheus_client.parser import text_string_to_metric_families
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
        fams = list(text_string_to_metric_families('a 1\\n'))
        assert fams[0].samples[0].value == 1
        print('OK')
    ''')
    assert p.stdout.strip().endswith('OK')
