"""Content negotiation in Rust (src/core/negotiate.rs) against prometheus_client's, on generated
Accept and Accept-Encoding headers, and the apps' answers built from it."""

import gzip

from hypothesis import example, given, settings, strategies as st
import prometheus_client
from prometheus_client import exposition as ref_exposition

import fastprom
from fastprom import exposition as fp_exposition

SPACE = st.sampled_from(['', ' ', '  ', '\t', '\x1c', '\x1f', '\xa0', '\u2003', '\x0b'])
MEDIA = st.sampled_from(['text/plain', 'application/openmetrics-text', '*/*', 'text/html',
                         'APPLICATION/openmetrics-text', 'text/plain+x', ''])
VERSION = st.one_of(
    st.sampled_from(['0.0.4', '1.0.0', '1.0', '1', '2', '2.0.0', '0.0.1', '10.0.0', '1.0.0.0',
                     '+1', '-1', '1_0', '1__0', '_1', '1.x', 'x', '1..0', '', ' 1', '01.0.0',
                     '1.0.0-rc1', '2.x', '99999999999999999999999999999999999999999']),
    st.lists(st.integers(0, 3).map(str), min_size=1, max_size=4).map('.'.join),
)
ESCAPING = st.sampled_from(['allow-utf-8', 'underscores', 'dots', 'values', 'bogus', '', 'DOTS'])


@st.composite
def entries(draw):
    parts = [draw(SPACE) + draw(MEDIA) + draw(SPACE)]
    for _ in range(draw(st.integers(0, 3))):
        name, value = draw(st.sampled_from([('version', VERSION), ('escaping', ESCAPING),
                                            ('q', st.just('0.5')), ('charset', st.just('utf-8'))]))
        parts.append(f'{draw(SPACE)}{name}={draw(value)}{draw(SPACE)}')
    return ';'.join(parts)


ACCEPT = st.one_of(st.none(), st.lists(entries(), max_size=4).map(','.join), st.text(max_size=40))


def outcome(call, *args):
    try:
        return 'ok', call(*args)
    except Exception as error:
        return 'raise', type(error).__name__, str(error)


@settings(max_examples=800, deadline=None)
@given(ACCEPT)
@example('text/plain; version=1.0.0\x1c')
@example('application/openmetrics-text; version=2.x, text/plain; version=1.0.0')
def test_content_type_and_errors_are_the_references(accept):
    ours = outcome(lambda: fp_exposition.choose_encoder(accept)[1])
    reference = outcome(lambda: ref_exposition.choose_encoder(accept)[1])
    assert ours == reference


CODINGS = st.lists(st.tuples(SPACE, st.sampled_from(['gzip', 'GZIP', 'x-gzip', 'br', 'identity', '*',
                                                       'deflate', 'gzip ']),
                             st.sampled_from(['', ';q=0', ';q=1.0'])).map(''.join), max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), CODINGS.map(','.join)))
def test_gzip_choice_is_the_references(accept_encoding):
    assert fp_exposition.gzip_accepted(accept_encoding) == ref_exposition.gzip_accepted(accept_encoding)


def _registries():
    registries = {}
    for name, lib in (('fastprom', fastprom), ('reference', prometheus_client)):
        registry = lib.CollectorRegistry()
        lib.Counter('served', 'Requests served.', ['path'], registry=registry).labels('/a').inc(3)
        lib.Gauge('depth', 'Queue depth.', registry=registry).set(2)
        registries[name] = registry
    return registries


REGISTRIES = _registries()


def _readable(answer):
    status, headers, body = answer
    if ('Content-Encoding', 'gzip') in headers:
        body = gzip.decompress(body)
    # _created lines carry creation times, which differ between the libraries.
    lines = [line for line in body.split(b'\n') if b'_created' not in line]
    return status, headers, lines


@settings(max_examples=200, deadline=None)
@given(ACCEPT, st.one_of(st.none(), CODINGS.map(','.join)), st.sampled_from([{}, {'name[]': ['depth']}]),
       st.booleans())
def test_apps_answer_as_the_reference(accept, accept_encoding, params, disable_compression):
    answers = {}
    for name, module in (('fastprom', fp_exposition), ('reference', ref_exposition)):
        answers[name] = outcome(lambda: _readable(module._bake_output(
            REGISTRIES[name], accept, accept_encoding, params, disable_compression)))
    assert answers['fastprom'] == answers['reference']
