"""Labelled children live in Rust; `labels()` hands out a Python object for one on demand
(issue 12). Each test runs the same code against prometheus_client, whose children are plain
objects kept forever, and fastprom, whose child objects come and go: what users can observe
must be the same. The last tests check fastprom's own promise (no object per child)."""
import gc
import time

import pytest

from libs import IMPL_NAME, REF_NAME, Lib

_LIBS = {}


@pytest.fixture(params=[REF_NAME, IMPL_NAME])
def lib(request):
    if request.param not in _LIBS:
        pytest.importorskip(request.param)
        _LIBS[request.param] = Lib(request.param)
    return _LIBS[request.param]


@pytest.fixture
def reg(lib):
    return lib.CollectorRegistry()


def churn(metric, n=200):
    """Makes and drops enough other children to push any cached child object out."""
    for i in range(n):
        metric.labels(*[f'churn{i}'] * len(metric._labelnames))
    gc.collect()


def samples(reg):
    return [(s.name, s.labels, s.value, s.exemplar) for m in reg.collect() for s in m.samples
            if not s.name.endswith('_created')]


def test_same_object_while_referenced(lib, reg):
    c = lib.Counter('c', 'doc', ['a', 'b'], registry=reg)
    child = c.labels('x', 'y')
    churn(c)
    assert c.labels('x', 'y') is child
    assert c.labels(a='x', b='y') is child
    assert c.labels(b='y', a='x') is child
    assert c._metrics[('x', 'y')] is child
    assert c._metrics.get(('x', 'y')) is child


def test_values_outlive_the_child_object(lib, reg):
    c = lib.Counter('c', 'doc', ['a'], registry=reg)
    h = lib.Histogram('h', 'doc', ['a'], registry=reg, buckets=(1, 2))
    c.labels('x').inc(3)
    h.labels('x').observe(1.5)
    churn(c)
    churn(h)
    assert c.labels('x')._value.get() == 3
    assert h.labels('x')._sum.get() == 1.5
    assert reg.get_sample_value('h_bucket', {'a': 'x', 'le': '2.0'}) == 1


def test_created_is_kept_in_the_child(lib, reg):
    before = time.time()
    c = lib.Counter('c', 'doc', ['a'], registry=reg)
    created = c.labels('x')._created
    after = time.time()
    churn(c)
    assert before <= created <= after
    assert c.labels('x')._created == created
    assert reg.get_sample_value('c_created', {'a': 'x'}) == created


def test_attribute_set_on_a_child_is_kept(lib, reg):
    g = lib.Gauge('g', 'doc', ['a'], registry=reg)
    g.labels('x').note = 'kept'
    vars(g.labels('y'))['other'] = 'kept too'
    churn(g)
    assert g.labels('x').note == 'kept'
    assert vars(g.labels('y'))['other'] == 'kept too'


def test_set_function_on_a_child_is_kept(lib, reg):
    g = lib.Gauge('g', 'doc', ['a'], registry=reg)
    g.labels('x').set_function(lambda: 7.5)
    churn(g)
    assert reg.get_sample_value('g', {'a': 'x'}) == 7.5
    assert ('g', {'a': 'x'}, 7.5, None) in samples(reg)


def test_exemplar_amount_is_kept(lib, reg):
    c = lib.Counter('c', 'doc', ['a'], registry=reg)
    h = lib.Histogram('h', 'doc', ['a'], registry=reg, buckets=(1, 2))
    c.labels('x').inc(2, exemplar={'trace': 't1'})
    h.labels('x').observe(1, exemplar={'trace': 't2'})
    churn(c)
    churn(h)
    found = [(name, e.labels, e.value) for name, _, _, e in samples(reg) if e is not None]
    assert found == [('c_total', {'trace': 't1'}, 2), ('h_bucket', {'trace': 't2'}, 1)]
    assert [type(value) for *_, value in found] == [int, int]


def test_removed_child_object_keeps_working_unexported(lib, reg):
    c = lib.Counter('c', 'doc', ['a'], registry=reg)
    old = c.labels('x')
    old.inc()
    c.remove('x')
    old.inc()
    assert old._value.get() == 2
    assert reg.get_sample_value('c_total', {'a': 'x'}) is None
    fresh = c.labels('x')
    assert fresh is not old
    assert fresh._value.get() == 0
    assert reg.get_sample_value('c_total', {'a': 'x'}) == 0


def test_children_mapping_reads_like_the_reference_dict(lib, reg):
    c = lib.Counter('c', 'doc', ['a', 'b'], registry=reg)
    for key in [('x', '1'), ('y', '2'), ('z', '3')]:
        c.labels(*key)
    m = c._metrics
    assert len(m) == 3
    assert list(m) == [('x', '1'), ('y', '2'), ('z', '3')]
    assert list(m.keys()) == list(m)
    assert [child._labelvalues for child in m.values()] == list(m)
    assert [(k, v._labelvalues) for k, v in m.items()] == [(k, k) for k in m]
    assert ('x', '1') in m and ('x', 1) not in m and 'x' not in m and ('x',) not in m
    assert m.get(('q', '1')) is None and m.get(('q', '1'), 5) == 5 and m.get(('x',)) is None
    for unhashable in (['x', '1'], ('x', ['1'])):
        with pytest.raises(TypeError):
            unhashable in m
        with pytest.raises(TypeError):
            m.get(unhashable)
    with pytest.raises(KeyError):
        m[('q', '1')]
    copied = m.copy()
    assert type(copied) is dict and list(copied) == list(m)
    assert m.pop(('q', '1'), None) is None
    with pytest.raises(KeyError):
        m.pop(('q', '1'))
    popped = m.pop(('y', '2'))
    assert popped._labelvalues == ('y', '2')
    assert list(m) == [('x', '1'), ('z', '3')]
    assert reg.get_sample_value('c_total', {'a': 'y', 'b': '2'}) is None
    with pytest.raises(KeyError):
        del m[('y', '2')]


def test_subclass_children_are_the_constructed_objects(lib, reg):
    class Tagged(lib.Counter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.tag = ('child' if self._labelvalues else 'parent', len(self._labelvalues))

    c = Tagged('c', 'doc', ['a'], registry=reg)
    child = c.labels('x')
    assert type(child) is Tagged and child.tag == ('child', 1)
    child_id = id(child)
    del child
    churn(c)
    again = c.labels('x')
    assert id(again) == child_id and again.tag == ('child', 1)
    again.inc(4)
    assert reg.get_sample_value('c_total', {'a': 'x'}) == 4


def test_children_keep_no_python_object_each():
    """fastprom only: children need no Python object; only the last few `labels()` results
    stay alive, so 5,000 children leave a bounded number of objects behind."""
    import fastprom
    c = fastprom.Counter('c', 'doc', ['a'], registry=None)
    gc.collect()
    before = sum(type(o) is fastprom.Counter for o in gc.get_objects())
    for i in range(5_000):
        c.labels(str(i)).inc()
    values = list(c._metrics.values())
    assert len(values) == 5_000
    del values
    gc.collect()
    after = sum(type(o) is fastprom.Counter for o in gc.get_objects())
    assert after - before <= 64
    assert len(c._metrics) == 5_000
    assert c.labels('4999')._value.get() == 1


def test_child_objects_are_freed_by_labels_alone():
    """fastprom only: a child object pushed out by later `labels()` calls is freed then, not at
    some later call into the extension (nothing but `labels` runs between the two checks)."""
    import weakref
    import fastprom
    c = fastprom.Counter('c', 'doc', ['a', 'b'], registry=None)
    first = weakref.ref(c.labels('first', 'x'))
    assert first() is not None
    for i in range(200):
        c.labels(f'v{i}', 'x')
    assert first() is None
