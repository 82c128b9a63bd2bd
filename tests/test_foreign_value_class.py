"""A user's own `values.ValueClass` is used for the values, as prometheus_client uses it (issue 13).

Both libraries get the same recording value class; the same operations must make the same
value objects, call them the same way, raise the same errors and expose the same bytes."""

import math
import re

import prometheus_client
import pytest
from hypothesis import given, settings, strategies as st
from prometheus_client import values as ref_values
from prometheus_client.openmetrics import exposition as ref_openmetrics

import fastprom
from fastprom import values as fp_values
from fastprom.openmetrics import exposition as fp_openmetrics

LIBS = {
    'reference': (prometheus_client, ref_values, ref_openmetrics),
    'fastprom': (fastprom, fp_values, fp_openmetrics),
}


def recording_value_class(log):
    """A value class that keeps its value in the object and logs every call."""

    class RecordingValue:
        def __init__(self, typ, metric_name, name, labelnames, labelvalues, help_text, **kwargs):
            self._name, self._value, self._exemplar = name, 0.0, None
            log.append(('new', typ, metric_name, name, tuple(labelnames), tuple(labelvalues),
                        help_text, sorted(kwargs.items())))

        def inc(self, amount):
            log.append(('inc', self._name, amount))
            self._value += amount

        def set(self, value, timestamp=None):
            log.append(('set', self._name, value, timestamp is None))
            self._value = value

        def get(self):
            return self._value

        def set_exemplar(self, exemplar):
            log.append(('exemplar', self._name, exemplar.labels, exemplar.value))
            self._exemplar = exemplar

        def get_exemplar(self):
            return self._exemplar

    return RecordingValue


_CREATED = re.compile(r'^(\S+_created(?:\{[^}]*\})?) \S+$', re.M)
_EXEMPLAR_TIME = re.compile(r'(# \{[^}]*\} \S+) \S+$', re.M)


def stable(text: bytes) -> str:
    """The exposition with creation times and exemplar timestamps masked."""
    text = _CREATED.sub(r'\1 <created>', text.decode())
    return _EXEMPLAR_TIME.sub(r'\1 <time>', text)


class Swapped:
    """Runs `body(lib)` with `values.ValueClass` set to a recording class, then restores it."""

    def __init__(self, name):
        self.lib, self.values, self.openmetrics = LIBS[name]
        self.log = []

    def __enter__(self):
        self.saved = self.values.ValueClass
        self.values.ValueClass = recording_value_class(self.log)
        return self

    def __exit__(self, *exc):
        self.values.ValueClass = self.saved


def outcome(call):
    try:
        call()
        return None
    except Exception as error:  # the type and message are compared
        return type(error).__name__, str(error)


def build(lib, registry):
    return {
        'counter': lib.Counter('jobs', 'Jobs run.', ['queue'], registry=registry),
        'plain': lib.Counter('plain', 'Unlabelled.', registry=registry),
        'gauge': lib.Gauge('depth', 'Queue depth.', ['queue'], registry=registry,
                           multiprocess_mode='livesum'),
        'recent': lib.Gauge('seen', 'Last seen.', registry=registry, multiprocess_mode='mostrecent'),
        'summary': lib.Summary('size_bytes', 'Sizes.', registry=registry),
        'histogram': lib.Histogram('latency_seconds', 'Latency.', ['route'], registry=registry,
                                   buckets=(0.1, 1, 5)),
    }


QUEUES = st.sampled_from(['a', 'b', 'c'])
AMOUNTS = st.one_of(st.integers(-2, 5), st.floats(-3, 10, allow_nan=False),
                    st.just(float('nan')), st.just(float('inf')))
OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just('inc'), QUEUES, AMOUNTS),
    st.tuples(st.just('inc_exemplar'), QUEUES, st.integers(0, 3)),
    st.tuples(st.just('plain_inc'), AMOUNTS),
    st.tuples(st.just('reset'), st.just(None)),
    st.tuples(st.just('gauge_set'), QUEUES, AMOUNTS),
    st.tuples(st.just('gauge_inc'), QUEUES, AMOUNTS),
    st.tuples(st.just('gauge_dec'), QUEUES, AMOUNTS),
    st.tuples(st.just('recent_set'), AMOUNTS),
    st.tuples(st.just('recent_inc'), st.just(None)),
    st.tuples(st.just('observe'), AMOUNTS),
    st.tuples(st.just('hist_observe'), QUEUES, AMOUNTS),
    st.tuples(st.just('hist_exemplar'), QUEUES, AMOUNTS),
    st.tuples(st.just('remove'), QUEUES),
    st.tuples(st.just('clear'), st.just(None)),
    st.tuples(st.just('parent_inc'), st.just(None)),
), max_size=25)


def apply(metrics, operation):
    name, *args = operation
    m = metrics
    actions = {
        'inc': lambda q, a: m['counter'].labels(q).inc(a),
        'inc_exemplar': lambda q, a: m['counter'].labels(queue=q).inc(a, exemplar={'trace': q}),
        'plain_inc': lambda a: m['plain'].inc(a),
        'reset': lambda _: m['plain'].reset(),
        'gauge_set': lambda q, a: m['gauge'].labels(q).set(a),
        'gauge_inc': lambda q, a: m['gauge'].labels(q).inc(a),
        'gauge_dec': lambda q, a: m['gauge'].labels(q).dec(a),
        'recent_set': lambda a: m['recent'].set(a),
        'recent_inc': lambda _: m['recent'].inc(),
        'observe': lambda a: m['summary'].observe(a),
        'hist_observe': lambda q, a: m['histogram'].labels(q).observe(a),
        'hist_exemplar': lambda q, a: m['histogram'].labels(q).observe(a, {'trace': 'x'}),
        'remove': lambda q: m['counter'].remove(q),
        'clear': lambda _: m['histogram'].clear(),
        'parent_inc': lambda _: m['counter'].inc(),
    }
    return outcome(lambda: actions[name](*args))


def run(name, operations):
    with Swapped(name) as swapped:
        lib = swapped.lib
        registry = lib.CollectorRegistry()
        metrics = build(lib, registry)
        errors = [apply(metrics, operation) for operation in operations]
        samples = [registry.get_sample_value('jobs_total', {'queue': q}) for q in 'abc']
        samples.append(registry.get_sample_value('latency_seconds_count', {'route': 'a'}))
        return {
            'log': swapped.log,
            'errors': errors,
            'text': stable(lib.generate_latest(registry)),
            'openmetrics': stable(swapped.openmetrics.generate_latest(registry)),
            'samples': samples,
            'classes': [type(metric).__name__ for metric in metrics.values()],
        }


def same(a, b):
    """Equality where NaN equals NaN (logs and samples carry the amounts)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b)


@settings(max_examples=150, deadline=None)
@given(OPERATIONS)
def test_value_class_objects_are_made_and_called_as_the_reference_does(operations):
    ours, reference = run('fastprom', operations), run('reference', operations)
    for part in reference:
        assert same(ours[part], reference[part]), (part, ours[part], reference[part])


def test_a_fixed_sequence_is_seen_by_the_value_objects():
    """A guard on the generated test: the recording class really is used."""
    operations = [('inc', 'a', 2), ('hist_observe', 'b', 0.5), ('gauge_set', 'c', 3)]
    ours = run('fastprom', operations)
    assert ('inc', 'jobs_total', 2) in ours['log']
    assert ('inc', 'latency_seconds_bucket', 1) in ours['log']
    assert ('set', 'depth', 3.0, True) in ours['log']
    assert ours['classes'] == ['Counter', 'Counter', 'Gauge', 'Gauge', 'Summary', 'Histogram']


def in_both(body):
    """{library: body(swapped, lib, registry)}, each run under the recording value class."""
    results = {}
    for name in LIBS:
        with Swapped(name) as swapped:
            results[name] = body(swapped, swapped.lib, swapped.lib.CollectorRegistry())
    return results


def test_decorators_and_timers_use_the_value_objects():
    def body(swapped, lib, registry):
        failures = lib.Counter('failures', 'f', registry=registry)
        busy = lib.Gauge('busy', 'b', registry=registry)
        duration = lib.Histogram('work_seconds', 'w', registry=registry)

        @failures.count_exceptions(KeyError)
        @busy.track_inprogress()
        @duration.time()
        def work(fail):
            if fail:
                raise KeyError(fail)
            return 'done'

        answers = [work(False), outcome(lambda: work('x'))]
        with duration.time():
            pass
        calls = [entry[:2] for entry in swapped.log if entry[0] != 'new']
        return (answers, calls, registry.get_sample_value('failures_total'),
                registry.get_sample_value('work_seconds_count'), registry.get_sample_value('busy'))

    results = in_both(body)
    assert results['fastprom'] == results['reference']
    assert results['fastprom'][2:] == (1.0, 3.0, 0.0)


def test_swapping_back_returns_to_native_values():
    def body(swapped, lib, registry):
        recorded = lib.Counter('recorded', 'r', registry=registry)
        swapped.values.ValueClass = swapped.values.MutexValue
        native = lib.Counter('native', 'n', registry=registry)
        recorded.inc(3)
        native.inc(4)
        return (len([e for e in swapped.log if e[0] == 'inc']),
                registry.get_sample_value('recorded_total'), registry.get_sample_value('native_total'),
                native._value.get(), recorded._value.get())

    results = in_both(body)
    assert results['fastprom'] == results['reference'] == (1, 3.0, 4.0, 4.0, 3.0)


class Doubling(fastprom.Counter):
    """A user subclass stays itself under a foreign value class."""

    def inc(self, amount=1, exemplar=None):
        super().inc(amount * 2, exemplar)


def test_user_subclasses_keep_their_methods():
    with Swapped('fastprom') as swapped:
        registry = fastprom.CollectorRegistry()
        doubled = Doubling('doubled', 'd', ['k'], registry=registry)
        doubled.labels('x').inc(2)
        assert isinstance(doubled, Doubling) and type(doubled).__name__ == 'Doubling'
        assert isinstance(doubled.labels('x'), Doubling)
        assert registry.get_sample_value('doubled_total', {'k': 'x'}) == 4.0
        assert ('inc', 'doubled_total', 4) in swapped.log


def test_set_function_on_a_foreign_valued_gauge():
    def body(swapped, lib, registry):
        lib.Gauge('answer', 'a', registry=registry).set_function(lambda: 42)
        return lib.generate_latest(registry)

    texts = in_both(body)
    assert texts['fastprom'] == texts['reference']
    assert b'answer 42.0' in texts['fastprom']


@pytest.mark.parametrize('name', list(LIBS))
def test_internal_attributes_are_the_value_objects(name):
    with Swapped(name) as swapped:
        lib = swapped.lib
        registry = lib.CollectorRegistry()
        histogram = lib.Histogram('h', 'h', registry=registry, buckets=(1,))
        summary = lib.Summary('s', 's', registry=registry)
        value_class = swapped.values.ValueClass
        assert isinstance(histogram._sum, value_class)
        assert [type(b) for b in histogram._buckets] == [value_class, value_class]
        assert isinstance(summary._count, value_class)
        assert isinstance(histogram._created, float)
