"""Native decorators (DecoratedFunction) compared with prometheus_client's wrappers."""
import inspect
import pickle

import prometheus_client
import pytest

import fastprom


def _target(a, b=2, *args, c, d=4, **kw):
    """doc"""
    if a == 'boom':
        raise ValueError(a)
    if a == 'key':
        raise KeyError(a)
    return (a, b, args, c, d, kw)


_target.extra = 1


def _decos(lib, reg):
    return {
        'count': lib.Counter('c', 'doc', registry=reg).count_exceptions(ValueError),
        'count_tuple': lib.Counter('ct', 'doc', registry=reg).count_exceptions((KeyError, ValueError)),
        'track': lib.Gauge('g', 'doc', registry=reg).track_inprogress(),
        'time_h': lib.Histogram('h', 'doc', registry=reg).time(),
        'time_s': lib.Summary('s', 'doc', registry=reg).time(),
        'time_g': lib.Gauge('tg', 'doc', registry=reg).time(),
    }


def _run(lib):
    reg = lib.CollectorRegistry()
    out = {}
    for name, deco in _decos(lib, reg).items():
        w = deco(_target)
        out[name] = (w.__name__, w.__qualname__, w.__doc__, w.__module__, w.__wrapped__ is _target,
                     str(inspect.signature(w)), str(inspect.signature(w, follow_wrapped=False)),
                     inspect.getfullargspec(w), w.__defaults__, w.__kwdefaults__,
                     sorted(k for k in w.__dict__ if k != '__source__'), w(1, c=3))
        for bad in ('boom', 'key'):
            with pytest.raises((ValueError, KeyError)):
                w(bad, c=0)
        with pytest.raises(TypeError):
            w()  # binding error: neither counted nor timed
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for m in reg.collect() for s in m.samples
               if not s.name.endswith('_created') and not s.name.endswith('_sum') and s.name != 'tg'}
    return out, samples


def test_decorated_matches_reference():
    assert _run(fastprom) == _run(prometheus_client)


def test_decorated_is_native_and_binds_as_method():
    reg = fastprom.CollectorRegistry()
    h = fastprom.Histogram('h', 'doc', registry=reg)
    g = fastprom.Gauge('g', 'doc', registry=reg)

    class A:
        @h.time()
        @g.track_inprogress()
        def m(self, x):
            return (x, reg.get_sample_value('g'))

    assert isinstance(A.__dict__['m'], fastprom.context_managers.DecoratedFunction)
    assert A().m(3) == (3, 1.0)
    assert str(inspect.signature(A().m)) == '(x)'
    assert reg.get_sample_value('h_count') == 1.0
    assert reg.get_sample_value('g') == 0.0


def test_exception_semantics_and_reraise():
    for lib in (fastprom, prometheus_client):
        reg = lib.CollectorRegistry()
        c = lib.Counter('c', 'doc', registry=reg)

        @c.count_exceptions(KeyError)
        def f(e):
            raise e

        with pytest.raises(ValueError):
            f(ValueError('x'))
        err = KeyError('y')
        with pytest.raises(KeyError) as info:
            f(err)
        assert info.value is err
        assert reg.get_sample_value('c_total') == 1.0


def test_timer_decorator_uses_patched_default_timer(monkeypatch):
    reg = fastprom.CollectorRegistry()
    h = fastprom.Histogram('h', 'doc', registry=reg)
    ticks = iter([10.0, 12.5])
    monkeypatch.setattr(fastprom.context_managers, 'default_timer', lambda: next(ticks))
    h.time()(lambda: None)()
    assert reg.get_sample_value('h_sum') == 2.5


def test_pickle_by_reference():
    assert pickle.loads(pickle.dumps(_decorated_module_level)) is _decorated_module_level


_pk = fastprom.Counter('pk', 'doc', registry=fastprom.CollectorRegistry())


@_pk.count_exceptions()
def _decorated_module_level():
    return 1
