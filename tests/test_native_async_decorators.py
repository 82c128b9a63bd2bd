"""Native decorators on coroutine functions (DecoratedCoroutine).

prometheus_client's decorators do not await a coroutine function's call (they measure only the
coroutine's creation); fastprom's measure the awaited call. The reference's behaviour for that
is its context manager around the await, `async def g(...): with manager: return await f(...)`:
each test runs that against fastprom's decorated `f`, step by step, and compares results,
exceptions and samples.
"""
import asyncio
import gc
import inspect
import weakref

import prometheus_client
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastprom
from fastprom.context_managers import DecoratedCoroutine, DecoratedFunction


class Clock:
    """A `default_timer` the test moves: durations count the driver's steps."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


# The clock fixture is shared by a test's examples: `trace` sets it back to 0 for each.
CLOCK_IS_RESET = HealthCheck.function_scoped_fixture


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    for lib in (prometheus_client, fastprom):
        monkeypatch.setattr(lib.context_managers, 'default_timer', clock)
    return clock


class Pause:
    """Suspends once, yielding `tag`; the value sent back is the await's result."""

    def __init__(self, tag):
        self.tag = tag

    def __await__(self):
        return (yield self.tag)


async def scripted(reactions, ending):
    """Awaits once per reaction; `reactions[i]` says what to do with an exception thrown in at
    the i-th await; `ending` how to finish."""
    got = []
    for i, reaction in enumerate(reactions):
        try:
            got.append(await Pause(i))
        except BaseException as e:
            if reaction == 'reraise':
                raise
            if reaction == 'return':
                return ('caught', type(e).__name__)
            if reaction == 'raise_other':
                raise KeyError('other') from None
            if isinstance(e, GeneratorExit):
                raise  # (ignoring it is test_a_coroutine_ignoring_generator_exit)
            got.append(type(e).__name__)  # 'continue': go on awaiting
    if ending == 'value_error':
        raise ValueError('end', tuple(got))
    if ending == 'key_error':
        raise KeyError('end')
    return tuple(got)


MANAGERS = {
    'count': lambda lib, reg: lib.Counter('c', 'doc', registry=reg).count_exceptions(),
    'count_value_error': lambda lib, reg: lib.Counter('c', 'doc', registry=reg).count_exceptions(ValueError),
    'count_base': lambda lib, reg: lib.Counter('c', 'doc', registry=reg).count_exceptions(BaseException),
    'track': lambda lib, reg: lib.Gauge('g', 'doc', registry=reg).track_inprogress(),
    'time_h': lambda lib, reg: lib.Histogram('h', 'doc', registry=reg).time(),
    'time_s': lambda lib, reg: lib.Summary('s', 'doc', registry=reg).time(),
    'time_g': lambda lib, reg: lib.Gauge('tg', 'doc', registry=reg).time(),
    'time_child': lambda lib, reg: lib.Histogram('hl', 'doc', ['l'], registry=reg).labels('x').time(),
    'count_child': lambda lib, reg: lib.Counter('cl', 'doc', ['l'], registry=reg).labels('x').count_exceptions(),
    'track_child': lambda lib, reg: lib.Gauge('gl', 'doc', ['l'], registry=reg).labels('x').track_inprogress(),
}


def reference_decorated(manager, f):
    """The reference's context manager around the awaited call (a new Timer per call, as its
    decorator takes)."""
    new_context = manager._new_timer if isinstance(manager, prometheus_client.context_managers.Timer) \
        else (lambda: manager)

    async def decorated(*args, **kwargs):
        with new_context():
            return await f(*args, **kwargs)
    return decorated


def samples(reg):
    return sorted((s.name, tuple(sorted(s.labels.items())), s.value)
                  for m in reg.collect() for s in m.samples if not s.name.endswith('_created'))


def outcome(call):
    """What one step gave: a yielded value, a returned one, or the exception raised."""
    try:
        return ('yield', call())
    except StopIteration as e:
        return ('return', e.value)
    except BaseException as e:  # noqa: B902 (GeneratorExit and CancelledError are outcomes too)
        return ('raise', type(e).__name__, str(e))


def apply(coro, op):
    if op[0] == 'send':
        return outcome(lambda: coro.send(op[1]))
    if op[0] == 'next':
        return outcome(lambda: next(coro.__await__()))
    if op[0] == 'throw':
        return outcome(lambda: coro.throw(*op[1:]))
    return outcome(coro.close)


def trace(lib, which, reactions, ending, ops):
    """Each op's outcome and the samples after it, for `lib`'s decorated coroutine."""
    reg = lib.CollectorRegistry()
    manager = MANAGERS[which](lib, reg)
    if lib is fastprom:
        decorated = manager(scripted)
    else:
        decorated = reference_decorated(manager, scripted)
    clock = lib.context_managers.default_timer
    clock.now = 0.0
    coro = decorated(reactions, ending)
    steps = []
    for op in ops:
        clock.now += 1.0
        steps.append((apply(coro, op), samples(reg)))
    steps.append((apply(coro, ('close',)), samples(reg)))
    return steps


OPS = st.lists(st.one_of(
    st.just(('send', None)), st.just(('send', None)), st.just(('send', 'v')), st.just(('next',)),
    st.just(('throw', ValueError('thrown'))), st.just(('throw', KeyError)),
    st.just(('throw', GeneratorExit)), st.just(('throw', asyncio.CancelledError())),
    st.just(('throw', 1)), st.just(('throw', ValueError(), 'x')), st.just(('close',))),
    max_size=8)
REACTIONS = st.lists(st.sampled_from(['reraise', 'return', 'raise_other', 'continue']), max_size=4)
ENDINGS = st.sampled_from(['return', 'value_error', 'key_error'])


@settings(max_examples=300, deadline=None, suppress_health_check=[CLOCK_IS_RESET])
@given(which=st.sampled_from(sorted(MANAGERS)), reactions=REACTIONS, ending=ENDINGS, ops=OPS)
def test_steps_match_the_reference_manager_around_the_await(clock, which, reactions, ending, ops):
    ops = [('send', None)] + ops  # mostly started; `ops` alone covers the unstarted coroutine
    assert trace(fastprom, which, reactions, ending, ops) == \
        trace(prometheus_client, which, reactions, ending, ops)


@settings(max_examples=100, deadline=None, suppress_health_check=[CLOCK_IS_RESET])
@given(which=st.sampled_from(sorted(MANAGERS)), ops=OPS)
def test_unstarted_steps_match(clock, which, ops):
    assert trace(fastprom, which, ['continue'], 'return', ops) == \
        trace(prometheus_client, which, ['continue'], 'return', ops)


@pytest.mark.parametrize('which', sorted(MANAGERS))
def test_calls_are_native(which):
    async def f():
        return 1

    w = MANAGERS[which](fastprom, fastprom.CollectorRegistry())(f)
    assert type(w) is DecoratedFunction
    coro = w()
    assert type(coro) is DecoratedCoroutine
    assert asyncio.run(coro) == 1


def _target(a, b=2, *args, c, d=4, **kw):
    """doc"""


async def _async_target(a, b=2, *args, c, d=4, **kw):
    """doc"""
    return (a, b, args, c, d, kw)


_async_target.extra = 1


@pytest.mark.parametrize('which', sorted(MANAGERS))
def test_metadata_as_the_reference(which):
    def meta(lib):
        w = MANAGERS[which](lib, lib.CollectorRegistry())(_async_target)
        return (w.__name__, w.__qualname__, w.__doc__, w.__module__, w.__wrapped__ is _async_target,
                str(inspect.signature(w)), str(inspect.signature(w, follow_wrapped=False)),
                inspect.getfullargspec(w), w.__defaults__, w.__kwdefaults__, w.__annotations__,
                sorted(w.__dict__))
    assert meta(fastprom) == meta(prometheus_client)


def test_a_coroutine_function_as_the_awaited_call_makes_it():
    """The reference's decorated `async def` is a plain function returning the coroutine;
    fastprom's awaits it, and says so as an `async def` wrapper would."""
    w = fastprom.Counter('c', 'doc', registry=fastprom.CollectorRegistry()).count_exceptions()(_async_target)
    assert inspect.iscoroutinefunction(w) and asyncio.iscoroutinefunction(w)
    r = prometheus_client.Counter('c', 'doc', registry=prometheus_client.CollectorRegistry()).count_exceptions()
    assert not inspect.iscoroutinefunction(r(_async_target))
    s = fastprom.Counter('s', 'doc', registry=fastprom.CollectorRegistry()).count_exceptions()(_target)
    assert not inspect.iscoroutinefunction(s) and not asyncio.iscoroutinefunction(s)


def test_binding_errors_are_raised_by_the_call_unmeasured():
    for lib in (fastprom, prometheus_client):
        reg = lib.CollectorRegistry()
        c = lib.Counter('c', 'doc', registry=reg)
        g = lib.Gauge('g', 'doc', registry=reg)
        w = c.count_exceptions()(g.track_inprogress()(_async_target))
        with pytest.raises(TypeError):
            w()
        assert asyncio.run(w(1, c=3)) == (1, 2, (), 3, 4, {})
        assert (reg.get_sample_value('c_total'), reg.get_sample_value('g')) == (0.0, 0.0)


def test_awaitable_protocol():
    reg = fastprom.CollectorRegistry()
    w = fastprom.Gauge('g', 'doc', registry=reg).track_inprogress()(_async_target)
    coro = w(1, c=2)
    assert inspect.isawaitable(coro) and asyncio.iscoroutine(coro)
    assert coro.__await__() is coro
    assert coro.__name__ == '_async_target' and coro.__qualname__ == '_async_target'
    assert '_async_target' in repr(coro)
    with pytest.raises(TypeError):
        iter(coro)
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    assert stop.value.value == (1, 2, (), 2, 4, {})
    with pytest.raises(RuntimeError, match='cannot reuse already awaited coroutine'):
        coro.send(None)
    assert coro.close() is None


def test_tuple_results_are_returned_whole():
    async def pair():
        return (1, 2)

    w = fastprom.Counter('c', 'doc', registry=fastprom.CollectorRegistry()).count_exceptions()(pair)
    with pytest.raises(StopIteration) as stop:
        w().send(None)
    assert stop.value.value == (1, 2)
    assert asyncio.run(w()) == (1, 2)


@pytest.mark.parametrize('value', [None, 0, (1, 2), (), ValueError('as a value')])
def test_next_ends_with_the_returned_value(value):
    """`next()` (how `await` steps it on 3.12+) and `send` end with StopIteration(value)."""
    async def give():
        return value

    w = fastprom.Counter('c', 'doc', registry=fastprom.CollectorRegistry()).count_exceptions()(give)
    for step in (next, lambda c: c.send(None), lambda c: c.__next__()):
        with pytest.raises(StopIteration) as stop:
            step(w())
        assert stop.value.value is value


def test_a_nested_step_is_refused():
    reg = fastprom.CollectorRegistry()
    h = fastprom.Histogram('h', 'doc', registry=reg)
    holder = []

    @h.time()
    async def reenter():
        holder[0].send(None)

    coro = reenter()
    holder.append(coro)
    with pytest.raises(ValueError, match='coroutine already executing'):
        coro.send(None)
    assert reg.get_sample_value('h_count') == 1.0


def test_stacked_and_as_methods(clock):
    def run(lib):
        reg = lib.CollectorRegistry()
        c = lib.Counter('c', 'doc', registry=reg)
        g = lib.Gauge('g', 'doc', registry=reg)
        h = lib.Histogram('h', 'doc', registry=reg)
        seen = []

        def deco(manager, f):
            return manager(f) if lib is fastprom else reference_decorated(manager, f)

        class Service:
            async def handle(self, fail):
                clock.now += 2.0
                await asyncio.sleep(0)
                seen.append(reg.get_sample_value('g'))
                if fail:
                    raise ValueError('x')
                return 'ok'
        Service.handle = deco(c.count_exceptions(ValueError), deco(g.track_inprogress(), deco(h.time(), Service.handle)))

        results = [asyncio.run(Service().handle(False))]
        with pytest.raises(ValueError):
            asyncio.run(Service().handle(True))
        return results, seen, samples(reg)
    assert run(fastprom) == run(prometheus_client)


@pytest.mark.parametrize('which', sorted(MANAGERS))
def test_cancellation(clock, which):
    def run(lib):
        reg = lib.CollectorRegistry()
        manager = MANAGERS[which](lib, reg)

        async def slow():
            clock.now += 1.0
            await asyncio.sleep(10)

        decorated = manager(slow) if lib is fastprom else reference_decorated(manager, slow)

        async def main():
            task = asyncio.create_task(decorated())
            await asyncio.sleep(0)
            during = samples(reg)
            clock.now += 5.0
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return during, samples(reg)

        return asyncio.run(main())
    assert run(fastprom) == run(prometheus_client)


def test_asyncio_entry_points_take_it():
    reg = fastprom.CollectorRegistry()
    g = fastprom.Gauge('g', 'doc', registry=reg)
    peaks = []

    @g.track_inprogress()
    async def work(x):
        await asyncio.sleep(0.001)
        peaks.append(reg.get_sample_value('g'))
        return x

    async def main():
        first = await asyncio.gather(work(1), work(2), work(3))
        task = asyncio.create_task(work(4))
        waited = await asyncio.wait_for(work(5), timeout=5)
        return first, await task, waited

    assert asyncio.run(main()) == ([1, 2, 3], 4, 5)
    assert asyncio.run(work(6)) == 6
    assert max(peaks) == 3.0 and reg.get_sample_value('g') == 0.0


def test_the_awaited_time_is_observed():
    reg = fastprom.CollectorRegistry()
    h = fastprom.Histogram('h', 'doc', registry=reg)

    @h.time()
    async def nap():
        await asyncio.sleep(0.05)

    coro = nap()
    asyncio.run(asyncio.sleep(0.05))  # time before the first step is not the call's
    asyncio.run(coro)
    assert 0.045 <= reg.get_sample_value('h_sum') < 0.095


def test_cycles_are_collected():
    w = fastprom.Counter('c', 'doc', registry=fastprom.CollectorRegistry()).count_exceptions()

    @w
    async def keeps(box):
        await Pause(0)

    box = []
    coro = keeps(box)
    box.append(coro)  # coroutine -> its frame -> box -> coroutine
    coro.send(None)
    alive = weakref.ref(coro)
    del coro, box
    gc.collect()
    assert alive() is None


def test_a_manager_subclass_still_goes_through_its_own_exit():
    exits = []

    class Tracking(fastprom.context_managers.InprogressTracker):
        def __exit__(self, *exc):
            exits.append(exc[0])
            return super().__exit__(*exc)

    gauge = fastprom.Gauge('g', 'doc', registry=fastprom.CollectorRegistry())
    w = Tracking(gauge)(_async_target)
    assert type(w) is not DecoratedFunction
    asyncio.run(w(1, c=2))
    assert exits == [None]


async def _stubborn():
    try:
        await Pause(0)
    except GeneratorExit:
        await Pause(1)  # ignores the first GeneratorExit
    return 'done'


@pytest.mark.parametrize('which', ['count', 'count_base', 'track', 'time_h'])
def test_a_coroutine_ignoring_generator_exit(clock, which):
    def run(lib):
        reg = lib.CollectorRegistry()
        manager = MANAGERS[which](lib, reg)
        decorated = manager(_stubborn) if lib is fastprom else reference_decorated(manager, _stubborn)
        clock.now = 0.0
        coro = decorated()
        steps = [apply(coro, ('send', None))]
        clock.now = 3.0
        steps += [apply(coro, ('close',)), samples(reg), apply(coro, ('send', None))]
        return steps
    result = run(fastprom)
    assert result[1] == ('raise', 'RuntimeError', 'coroutine ignored GeneratorExit')
    assert result == run(prometheus_client)
