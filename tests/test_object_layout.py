"""Metric objects without an instance `__dict__` (issue 12): CPython 3.12+ specialises their
method calls, and every attribute behaves as on prometheus_client's objects."""

import dis
import gc
import sys
import weakref

import prometheus_client
import pytest

import fastprom

LIBS = [prometheus_client, fastprom]
CLASSES = ['Counter', 'Gauge', 'Summary', 'Histogram']


def _metric(lib, cls, labelnames=('a',)):
    return getattr(lib, cls)('m', 'help', list(labelnames), registry=None)


@pytest.mark.skipif(sys.version_info < (3, 12), reason='the specialisation that needs no __dict__ is 3.12+')
@pytest.mark.parametrize('cls,method', [('Counter', 'inc'), ('Gauge', 'set'), ('Histogram', 'observe')])
def test_hot_method_lookups_are_specialised(cls, method):
    metric = _metric(fastprom, cls, ())
    child = _metric(fastprom, cls).labels('x')
    source = f'def call(m):\n    m.{method}(1)\n'
    for target in (metric, child):
        namespace = {}
        exec(source, namespace)
        call = namespace['call']
        for _ in range(100):
            call(target)
        loads = [i.opname for i in dis.get_instructions(call, adaptive=True) if i.argval == method]
        assert loads and loads[0].startswith('LOAD_ATTR_METHOD'), loads


@pytest.mark.parametrize('cls', CLASSES)
def test_instances_have_no_dict_slot(cls):
    assert getattr(fastprom, cls).__dictoffset__ == 0


def _attribute_story(lib, cls):
    """What reading, setting and deleting attributes does on a parent and its children."""
    parent = _metric(lib, cls, ('a',))
    first, second = parent.labels('1'), parent.labels('2')
    story = [parent._name, first._name, first._labelnames, first._labelvalues, first._documentation]
    first._name = 'renamed'
    first.custom = [1]
    story += [first._name, second._name, parent._name, first.custom, hasattr(second, 'custom')]
    story += [sorted(k for k in vars(first) if k in ('_name', 'custom', '_documentation'))]
    del first.custom
    story.append(hasattr(first, 'custom'))
    with pytest.raises(AttributeError) as missing:
        del first.custom
    story.append(str(missing.value))
    with pytest.raises(AttributeError) as missing:
        second.never_set
    # CPython writes this message; for a native class it names the type with its module.
    story.append(str(missing.value).endswith("object has no attribute 'never_set'"))
    return story


@pytest.mark.parametrize('cls', CLASSES)
def test_attributes_read_set_and_delete_as_the_reference(cls):
    assert _attribute_story(fastprom, cls) == _attribute_story(prometheus_client, cls)


@pytest.mark.parametrize('lib', LIBS, ids=lambda lib: lib.__name__)
def test_set_function_on_one_child_leaves_its_siblings(lib):
    gauge = _metric(lib, 'Gauge', ('a',))
    gauge.labels('1').set_function(lambda: 7.0)
    gauge.labels('2').set(3)
    values = {s.labels['a']: s.value for s in gauge.collect()[0].samples}
    assert values == {'1': 7.0, '2': 3.0}


@pytest.mark.parametrize('lib', LIBS, ids=lambda lib: lib.__name__)
def test_subclass_attributes_live_in_its_dict(lib):
    class Tagged(lib.Counter):
        def __init__(self, *args, **kwargs):
            self.tag = 'mine'
            super().__init__(*args, **kwargs)

        def describe_tag(self):
            return f'{self.tag}:{self._name}'

    metric = Tagged('t', 'help', ['a'], registry=None)
    child = metric.labels('x')
    child.inc(2)
    assert child.describe_tag() == 'mine:t'
    assert {'tag', '_name', '_labelnames'} <= set(vars(child))
    assert child._value.get() == 2.0


def test_class_attributes_shadowed_by_an_instance_stay_on_the_class():
    gauge = fastprom.Gauge('g', 'help', registry=None)
    gauge.set_function(lambda: 1.0)
    other = fastprom.Gauge('h', 'help', registry=None)
    other.set(4)
    assert callable(fastprom.Gauge._child_samples)
    assert [s.value for s in other.collect()[0].samples] == [4.0]


def test_a_cycle_through_attributes_is_collected():
    metric = fastprom.Counter('c', 'help', ['a'], registry=None)
    child = metric.labels('x')
    child.me = child
    metric.parent = metric
    refs = [weakref.ref(metric), weakref.ref(child)]
    del metric, child
    gc.collect()
    assert [r() for r in refs] == [None, None]
