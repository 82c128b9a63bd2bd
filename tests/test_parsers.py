"""Differential tests of fastprom's parsers against prometheus_client 0.26.0's.

Every input is parsed by the reference and by fastprom (`text_string_to_metric_families` and
`text_fd_to_metric_families`, Prometheus text and OpenMetrics); the *outcomes* must be equal:
the families yielded (name, documentation, type, unit and the exact repr of the samples, so
int/float, -0.0, NaN and dict order count) and the exception that ends the iteration (type and
args), at the same step.

Inputs: exposition texts written by both libraries' writers from random registries (hypothesis),
every escaping scheme and OpenMetrics version; seeded random mutations of those texts and of
hand-written seeds; hand-written edge cases, including each error of the reference parsers.
A bounded atheris run (tests/fuzz_parsers.py) checks arbitrary input.
"""
import io
import os
import random
import subprocess
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

try:  # keep hypothesis' storage out of the repo
    from hypothesis.configuration import set_hypothesis_home_dir
    if not os.environ.get('HYPOTHESIS_STORAGE_DIRECTORY'):
        set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), 'fastprom-hypothesis'))
except ImportError:  # pragma: no cover
    pass

import prometheus_client
import prometheus_client.metrics_core as ref_mc
import prometheus_client.openmetrics.exposition as ref_om_expo
import prometheus_client.openmetrics.parser as ref_om
import prometheus_client.parser as ref_text
import prometheus_client.samples as ref_samples
import prometheus_client.validation as ref_validation

import fastprom
import fastprom.metrics_core as fast_mc
import fastprom.openmetrics.exposition as fast_om_expo
import fastprom.openmetrics.parser as fast_om
import fastprom.parser as fast_text
import fastprom.samples as fast_samples
import fastprom.validation as fast_validation

HERE = os.path.dirname(os.path.abspath(__file__))
ESCAPINGS = ('underscores', 'allow-utf-8', 'dots', 'values')


# --------------------------------------------------------------------------------------------
# Outcomes


def outcome(gen):
    """The families a parser generator yields, then the exception that ends it (or 'end')."""
    events = []
    try:
        for m in gen:
            assert type(m).__name__ == 'Metric'
            events.append(('metric', m.name, m.documentation, m.type, m.unit, repr(m.samples)))
    except Exception as e:  # noqa: BLE001 - every exception is part of the outcome
        events.append(('error', type(e).__name__, repr(e.args)))
    else:
        events.append(('end',))
    return events


def ref_outcomes(text):
    return (outcome(ref_text.text_string_to_metric_families(text)),
            outcome(ref_om.text_string_to_metric_families(text)))


def check(text, fd=True):
    """Both parsers of both libraries agree on text (string and file variants)."""
    want_text, want_om = ref_outcomes(text)
    got = outcome(fast_text.text_string_to_metric_families(text))
    assert got == want_text, ('text', text)
    got = outcome(fast_om.text_string_to_metric_families(text))
    assert got == want_om, ('openmetrics', text)
    if fd:
        got = outcome(fast_text.text_fd_to_metric_families(io.StringIO(text)))
        assert got == want_text, ('text fd', text)
        got = outcome(fast_om.text_fd_to_metric_families(io.StringIO(text)))
        assert got == want_om, ('openmetrics fd', text)
    return want_text, want_om


# --------------------------------------------------------------------------------------------
# Hand-written inputs

VALID = [
    '',
    '\n\n',
    '# HELP a_total doc\n# TYPE a_total counter\na_total{x="1"} 2\nb 3 4000\n',
    '# TYPE a counter\na 1\n',
    'a 1\n# EOF\n',
    '# EOF\n',
    '# EOF',
    'a_total 1\n# TYPE a counter\n',
    '# HELP a doc\\nwith \\\\ \\" newline\n# TYPE a gauge\na{b="c\\nd\\"e\\\\f"} 1.5e3\n',
    '# TYPE a histogram\na_bucket{le="1.0"} 0\na_bucket{le="+Inf"} 3 # {t="x"} 1 2\n'
    'a_count 3\na_sum 2\na_created 1.5e9\n# EOF\n',
    '# HELP s A summary\n# TYPE s summary\ns{quantile="0.5"} 1.5\ns{quantile="1"} 2\ns_count 3\n'
    's_sum 4.5\ns_created 1.7e9\n# EOF\n',
    '# TYPE g gauge\n# UNIT g_seconds seconds\ng_seconds{a="\\n\\"\\\\"} 1.5 123.456\n# EOF\n',
    '# TYPE g_seconds gauge\n# UNIT g_seconds seconds\n# HELP g_seconds x\ng_seconds 1 1\n# EOF\n',
    '# TYPE e stateset\ne{e="a"} 1\ne{e="b"} 0\n# TYPE i info\ni_info{v="1"} 1\n# EOF\n',
    '# TYPE gh gaugehistogram\ngh_bucket{le="-1"} 1\ngh_bucket{le="+Inf"} 2\ngh_gcount 2\n'
    'gh_gsum -3\n# EOF\n',
    '# TYPE nh histogram\nnh {count:24,sum:100,schema:0,zero_threshold:0.001,zero_count:4,'
    'positive_spans:[0:2,1:2],negative_spans:[0:2,1:2],positive_deltas:[2,1,-3,3],'
    'negative_deltas:[2,1,-2,3]}\n# EOF\n',
    '# TYPE nh histogram\nnh{a="b"} {count:2,sum:1,schema:1,zero_threshold:0,zero_count:0}\n'
    '{"nh",x="y"} {count:2,sum:1,schema:1,zero_threshold:0,zero_count:0}\n'
    '{"nh"} {count:2,sum:1.5,schema:-1,zero_threshold:1e-3,zero_count:0}\n# EOF\n',
    '# TYPE nh histogram\nnh {count : 2 ,sum: 1 ,schema:1,zero_threshold:0,zero_count:0,'
    'positive_spans:[0:1],positive_spans:[1:1],positive_deltas:[-1]}\n# EOF\n',
    '{"my.metric",a="b"} 1\n# HELP "my.metric" doc\n{"my.metric","x y"="z"} 2 3\n',
    '# TYPE "my.metric" counter\n{"my.metric"} 1\n{"my.metric", "é"="ü"} 2\n',
    '# TYPE c counter\nc_total 1 # {a="b"} 1 1.5\nc_created 123.0\n# EOF\n',
    '# TYPE c counter\nc_total 1 # {a="b"} 1 1520879607.789\nc_total{x="y"} 2 # {} 3\n# EOF\n',
    'a 1 10\na 2 15\n# EOF\n',
    'a 1 1.5\na 1 1.5\na 2 2.5\n# EOF\n',
    '# TYPE u unknown\nu{a="1"} 1 1\nu{a="1"} 1 1\nu{a="2"} 2\n# EOF\n',
    'metric_without_timestamp_and_labels 12.47\n'
    'something_weird{problem="division by zero"} +Inf -3982045\n# comment\n\n',
    'a{b="c",} 1\na{,b="c"} 1\n',
    'a\t1\t2\na  1   2  \n',
    'a 1 2 3 4\n',
    'a{b="c"}1\n',
    'a{b="}"} 1\na{b="{"} 2\n',
    '  # HELP x y\n  x 1  \n',
    '# HELP\n# TYPE\n',
    '# HELP\nfoo 1\n',
    '#\n# \n#x\n# foo bar baz qux\n',
    'a 12345678901234567890123\na 1e400\na -0\na -0.0\na 0x10\n',
    'a 1 12345678901234567890123\n',
    'a NaN\na nan\na +inf\na -Infinity\n',
    'a ١٢\n',
    'a\u00a01\n',
    'a 1\u3000\n',
    '# TYPE a info\na_info{x="y"} 1 1\na_info{x="y"} 1 0\n# EOF\n',
    '# TYPE a counter\na_total 1 1.5\na_total 2 1.5\n# EOF\n',
    '# TYPE a counter\na_total 1 1\na_total 2 1.0\n# EOF\n',
    '# TYPE a counter\na_total 1 -1.5\n# EOF\n',
    '# TYPE a counter\na_total 1 1.1234567891234\n# EOF\n',
    '# TYPE a counter\na_total 1 .5\n# EOF\n',
    '# TYPE a counter\na_total 1 +1.+5\n# EOF\n',
    '# TYPE a histogram\na_bucket{le="0x1p-2"} 0\n# EOF\n',
    '# TYPE a gauge\na{b="c", d="e"} 1\n# EOF\n',
    '# HELP a doc\\q\\\n# EOF\n',
    'a{"b"="c"} 1\n',
    'a{b\\n="c"} 1\n',
    '{"__name__"} 1\n',
]

INVALID = [
    # The reference's openmetrics invalid_input table, and more.
    '\n', 'a\n', '\n\n', '\n# EOF\n', 'a 1\n\n# EOF\n', 'a 1\n# EOF\n\n', '# EOF\na 1\n',
    '# EOF\n# EOF\n', 'a 1\n# EOF\n ', '# EOF \n', 'a 1\n#\n# EOF\n', '# TYPE\n# EOF\n',
    '# TYPE a\n# EOF\n', '# HELP\n# EOF\n', '# HELP a\n# EOF\n', '# UNIT\n# EOF\n',
    '# UNIT a\n# EOF\n', '# FOO a b\n# EOF\n', '# HELP a b\n# HELP a c\n# EOF\n',
    '# TYPE a gauge\n# TYPE a gauge\n# EOF\n', '# UNIT a_s s\n# UNIT a_s s\n# EOF\n',
    '# TYPE a untyped\n# EOF\n', '# TYPE a foo\n# EOF\n', '# UNIT a_s s\n# TYPE a_s info\n# EOF\n',
    '# UNIT a_s s\n# TYPE a_s stateset\n# EOF\n', '# UNIT a b\n# EOF\n',
    'a 1\n# HELP a doc\n# EOF\n', 'a_total 1\n# TYPE a_total counter\n# EOF\n',
    '# TYPE a counter\n# TYPE a_total gauge\n# EOF\n', '# TYPE a histogram\n# TYPE a_bucket gauge\n# EOF\n',
    '# TYPE a gauge\n# TYPE a gauge\n# EOF\n', 'a 1\na 2\nb 3\na 4\n# EOF\n',
    '# TYPE a histogram\n# TYPE b gauge\n# TYPE a histogram\n# EOF\n',
    '# TYPE a summary\n# TYPE b gauge\n# TYPE a summary\n# EOF\n',
    '# TYPE a counter\n# TYPE b gauge\n# TYPE a counter\n# EOF\n',
    'a 1\nb 2\na 3\n# EOF\n', 'a{x="1"} 1\na{x="2"} 1\na{x="1"} 1\n# EOF\n',
    '# TYPE a histogram\na_bucket{x="1",le="+Inf"} 1\na_bucket{x="2",le="+Inf"} 1\n'
    'a_count{x="1"} 1\n# EOF\n', '# TYPE a counter\na_total NaN\n# EOF\n',
    '# TYPE a counter\na_total -1\n# EOF\n', '# TYPE a histogram\na_sum -1\n# EOF\n',
    '# TYPE a histogram\na_count -1\n# EOF\n', '# TYPE a histogram\na_bucket{le="-1.0"} -1\n# EOF\n',
    '# TYPE a gaugehistogram\na_gsum NaN\n# EOF\n', '# TYPE a gaugehistogram\na_gcount 1.5\n# EOF\n',
    '# TYPE a histogram\na_count 1.5\n# EOF\n', '# TYPE a histogram\na_bucket{le="+Inf"} 1.5\n# EOF\n',
    '# TYPE a histogram\na_bucket{le="1"} 1\n# EOF\n', '# TYPE a histogram\na_bucket 1\n# EOF\n',
    '# TYPE a histogram\na_bucket{le="NaN"} 1\n# EOF\n', '# TYPE a histogram\na_bucket{le="inf"} 1\n# EOF\n',
    '# TYPE a histogram\na_bucket{le="+INF"} 1\n# EOF\n', '# TYPE a histogram\na_bucket{le="x"} 1\n# EOF\n',
    '# TYPE a histogram\na_bucket{le="2"} 0\na_bucket{le="1"} 0\na_bucket{le="+Inf"} 0\n# EOF\n',
    '# TYPE a histogram\na_bucket{le="1"} 2\na_bucket{le="+Inf"} 1\n# EOF\n',
    '# TYPE a histogram\na_bucket{le="+Inf"} 2\na_count 1\na_sum 1\n# EOF\n',
    '# TYPE a histogram\na_bucket{le="+Inf"} 2\na_sum 1\n# EOF\n',
    '# TYPE a histogram\na_bucket{le="+Inf"} 2\na_count 2\n# EOF\n',
    '# TYPE a gaugehistogram\na_bucket{le="+Inf"} 2\na_gsum 1\n# EOF\n',
    '# TYPE a histogram\na_bucket{le="-1"} 0\na_bucket{le="+Inf"} 2\na_count 2\na_sum 1\n# EOF\n',
    '# TYPE a gaugehistogram\na_bucket{le="1"} 0\na_bucket{le="+Inf"} 2\na_gcount 2\na_gsum -1\n# EOF\n',
    '# TYPE a histogram\na_bucket{le="+Inf"} 1 # {} 1\na_bucket{le="+Inf"} 1\n# EOF\n',
    '# TYPE a histogram\na_bucket{le="1"} 1 0\na_bucket{le="+Inf"} 1 1\n# EOF\n',
    '# TYPE a summary\na{quantile="1.5"} 1\n# EOF\n', '# TYPE a summary\na{quantile="x"} 1\n# EOF\n',
    '# TYPE a summary\na 1\n# EOF\n', '# TYPE a summary\na{quantile="0.5"} -1\n# EOF\n',
    '# TYPE a summary\na{quantile="NaN"} 1\n# EOF\n',
    '# TYPE a stateset\na 1\n# EOF\n', '# TYPE a stateset\na{a="b"} 2\n# EOF\n',
    '# TYPE a info\na_info 2\n# EOF\n', '# TYPE a gauge\na 1 # {a="b"} 1\n# EOF\n',
    '# TYPE a counter\na_total 1 # {a="' + 'x' * 130 + '"} 1\n# EOF\n',
    '# TYPE a counter\na_total 1 #\n# EOF\n', '# TYPE a counter\na_total 1 # \n# EOF\n',
    '# TYPE a counter\na_total 1 # {\n# EOF\n', '# TYPE a counter\na_total 1 # {}\n# EOF\n',
    '# TYPE a counter\na_total 1 # {} \n# EOF\n', '# TYPE a counter\na_total 1 # {}  1\n# EOF\n',
    '# TYPE a counter\na_total 1 # {} 1 \n# EOF\n', '# TYPE a counter\na_total 1 # {} x\n# EOF\n',
    '# TYPE a counter\na_total 1 # {} 1 x\n# EOF\n', '# TYPE a counter\na_total 1 # {a} 1\n# EOF\n',
    '# TYPE a counter\na_total 1 # {a="b"}1\n# EOF\n', '# TYPE a counter\na_total 1 #{} 1\n# EOF\n',
    '# TYPE a counter\na_total 1 1 #x\n# EOF\n', '# TYPE a counter\na_total 1 1 # {} 1 NaN\n# EOF\n',
    'a 1 \n# EOF\n', 'a  1\n# EOF\n', 'a 1  1\n# EOF\n', 'a 1_0\n# EOF\n', 'a 1 1_0\n# EOF\n',
    'a 1 NaN\n# EOF\n', 'a 1 Inf\n# EOF\n', 'a 1 x\n# EOF\n', 'a x\n# EOF\n', 'a\t1\n# EOF\n',
    'a{b="c" } 1\n# EOF\n', 'a{ b="c"} 1\n# EOF\n', 'a{b="c",} 1\n# EOF\n', 'a{,b="c"} 1\n# EOF\n',
    'a{b="c",,d="e"} 1\n# EOF\n', 'a{b=c} 1\n# EOF\n', 'a{b="c} 1\n# EOF\n', 'a{b="c"d} 1\n# EOF\n',
    'a{b="c",b="d"} 1\n# EOF\n', 'a{__b="c"} 1\n# EOF\n', 'a{b-c="d"} 1\n# EOF\n',
    'a{b="c"\n# EOF\n', 'a{b="c"}\n# EOF\n', '{"a"} 1\n# EOF\n', '{} 1\n# EOF\n',
    'a{__name__="b"} 1\n# EOF\n', 'a-b 1\n# EOF\n', '"a b" 1\n# EOF\n', '# HELP a-b x\n# EOF\n',
    '# HELP "a x\n# EOF\n', '# HELP \u00a0 x\n# EOF\n', 'a{\u00a0="b"} 1\n# EOF\n',
    '# TYPE a histogram\na {count:1}\n# EOF\n', '# TYPE a histogram\na {count:x,sum:1,schema:1,'
    'zero_threshold:0,zero_count:0}\n# EOF\n', '# TYPE a histogram\na {count:1,sum:x,schema:1,'
    'zero_threshold:0,zero_count:0}\n# EOF\n', '# TYPE a histogram\na_count {count:1}\n# EOF\n',
    '# TYPE a histogram\na_sum{x="y"} {count:1}\n# EOF\n', '# TYPE a histogram\na {count:1\n# EOF\n',
    '# TYPE a histogram\na{x="y" {count:1}\n# EOF\n', '# TYPE a histogram\n{x="y"} {count:1}\n# EOF\n',
    '# TYPE a histogram\n{"a_sum"} {count:1,sum:1,schema:1,zero_threshold:0,zero_count:0}\n# EOF\n',
    '# TYPE a histogram\n{"a_bucket",le="1"} {count:1,sum:1,schema:1,zero_threshold:0,'
    'zero_count:0}\n# EOF\n',
    '# TYPE a histogram\n{"a_bucket"} {count:1,sum:1,schema:1,zero_threshold:0,zero_count:0}\n# EOF\n',
    '# TYPE a histogram\n{"a_count",x="y"} {count:1,sum:1,schema:1,zero_threshold:0,'
    'zero_count:0}\n# EOF\n',
    '# TYPE a histogram\n{"b_total",x="y"} {count:1,sum:1,schema:1,zero_threshold:0,'
    'zero_count:0}\n# EOF\n',
    '# TYPE a counter\na_total 99999999999999999999' + '9' * 300 + '\n# EOF\n',
    'a 1 ' + '1' * 400 + '\n',
    'a ' + '1' * 5000 + '\n',
    '# TYPE a gauge\na 1 1\na 1 1.5\n# EOF\n', '# TYPE a gauge\na 1 1.5\na 1 1\n# EOF\n',
    '# TYPE a gauge\na 1 2\na 1 1\n# EOF\n', '# TYPE a gauge\na 1\na 1 1\n# EOF\n',
    '# TYPE a info\na_info 1 2\na_info 1 1\n# EOF\n',
    'a{b="c"} 1\n# TYPE a gauge\n# EOF\n', 'a 1\na 1\n# EOF\n',
    '# TYPE a counter\n# HELP a x\n# UNIT a x\n# EOF\n',
    'a 1\n', 'a{b="\ud800"} 1\n# EOF\n', '{"\ud800"} 1\n# EOF\n', 'a{"\ud800"="b"} 1\n',
    'a{b="c"} 1 # {"\ud800"="x"} 1\n',
]


@pytest.mark.parametrize('text', VALID + INVALID)
def test_hand_written(text):
    check(text)


def test_every_openmetrics_error_message_is_covered():
    import re as _re
    src = open(ref_om.__file__).read()
    messages = set(_re.findall(r'raise ValueError\("([^"]*?)"', src))
    seen = set()
    for text in VALID + INVALID:
        for ev in ref_outcomes(text)[1]:
            if ev[0] == 'error':
                for m in messages:
                    if m and m in ev[2]:
                        seen.add(m)
    # Missing messages are those only reachable with another message's prefix.
    assert messages - seen <= {'Invalid line: '}, messages - seen


# --------------------------------------------------------------------------------------------
# Writers of both libraries over random registries


LEGACY = st.from_regex(r'[a-zA-Z_][a-zA-Z0-9_]{0,8}', fullmatch=True)
UTF8_NAME = st.text(alphabet='ab.-_ é€"\\\n{}=,#', min_size=1, max_size=8)
NAME = st.one_of(LEGACY, LEGACY, UTF8_NAME).filter(lambda n: not n.startswith('__'))
LABEL_VALUE = st.text(alphabet=st.sampled_from('ab "\\\n{},=#é\u00a0\u3000\u2028'), max_size=8)
FLOAT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10**6, 10**6).map(float),
    st.sampled_from([0.0, -0.0, 1.0, 1e6, 1234567.0, 1e-7, 0.1 + 0.2, 1e22]),
)
POS = st.one_of(st.floats(0, 1e12), st.integers(0, 10**6))
TS = st.one_of(st.none(), st.floats(0, 2e9), st.builds(lambda s, n: ('ts', s, n),
                                                       st.integers(-10**10, 10**10),
                                                       st.integers(0, 10**9 - 1)))
EXEMPLAR = st.one_of(st.none(), st.tuples(
    st.dictionaries(LEGACY.filter(lambda n: not n.startswith('__')), LABEL_VALUE, max_size=2),
    POS, TS))

LABELNAMES = st.lists(st.one_of(LEGACY, UTF8_NAME).filter(
    lambda n: not n.startswith('__') and n not in ('le', 'quantile')), max_size=2, unique=True)


def _ts(lib, t):
    if isinstance(t, tuple):
        return lib.samples.Timestamp(t[1], t[2])
    return t


class _Lib:
    def __init__(self, root, mc, samples, om_expo):
        self.root, self.mc, self.samples, self.om_expo = root, mc, samples, om_expo


REF = _Lib(prometheus_client, ref_mc, ref_samples, ref_om_expo)
FAST = _Lib(fastprom, fast_mc, fast_samples, fast_om_expo)


def _exemplar(lib, ex):
    if ex is None:
        return None
    labels, value, ts = ex
    return lib.samples.Exemplar(labels, value, _ts(lib, ts))


def build(lib, spec):
    """A registry of lib with the metrics of spec (a metric that fails to build is skipped)."""
    r = lib.root.CollectorRegistry()
    customs = []
    for i, (kind, name, labelnames, data) in enumerate(spec):
        name = f'{name}{i}'
        try:
            if kind == 'counter':
                m = lib.root.Counter(name, 'doc "q" \\ \n', labelnames, registry=r)
                for k, (v, ex) in enumerate(data):
                    child = m.labels(*[f'v{k}'] * len(labelnames)) if labelnames else m
                    child.inc(v, exemplar=ex and {k2: v2 for k2, v2 in ex[0].items()})
            elif kind == 'gauge':
                m = lib.root.Gauge(name, 'gauge', labelnames, registry=r, unit='seconds')
                for k, v in enumerate(data):
                    (m.labels(*[f'{k}'] * len(labelnames)) if labelnames else m).set(v)
            elif kind == 'histogram':
                m = lib.root.Histogram(name, 'h', labelnames, registry=r, buckets=(-1, 0, 1.5, 10))
                for k, (v, ex) in enumerate(data):
                    child = m.labels(*['x'] * len(labelnames)) if labelnames else m
                    child.observe(v, exemplar=ex and ex[0])
            elif kind == 'summary':
                m = lib.root.Summary(name, 's', labelnames, registry=r)
                for v in data:
                    (m.labels(*['y'] * len(labelnames)) if labelnames else m).observe(v)
            elif kind == 'info':
                m = lib.root.Info(name, 'i', labelnames, registry=r)
                (m.labels(*['z'] * len(labelnames)) if labelnames else m).info(data)
            elif kind == 'enum':
                m = lib.root.Enum(name, 'e', labelnames, registry=r, states=data)
                (m.labels(*['w'] * len(labelnames)) if labelnames else m).state(data[-1])
            else:
                customs.append((name, labelnames, data))
        except (ValueError, TypeError):
            pass
    if customs:
        class Custom:
            def collect(self):
                out = []
                for name, labelnames, data in customs:
                    for k, (typ, values, v, ts, ex) in enumerate(data):
                        n = f'{name}_{k}'
                        lv = (values * 2)[:len(labelnames)]
                        lns = labelnames[:len(lv)]
                        try:
                            if typ == 'counter':
                                f = lib.mc.CounterMetricFamily(n, 'c', labels=lns, created=ts and 1.5)
                                f.add_metric(lv, v, timestamp=_ts(lib, ts), exemplar=_exemplar(lib, ex))
                            elif typ == 'gauge':
                                f = lib.mc.GaugeMetricFamily(n, 'g', labels=lns, unit='bytes')
                                f.add_metric(lv, v, timestamp=_ts(lib, ts))
                            elif typ == 'unknown':
                                f = lib.mc.UnknownMetricFamily(n, 'u', labels=lns)
                                f.add_metric(lv, v, timestamp=_ts(lib, ts))
                            elif typ == 'summary':
                                f = lib.mc.SummaryMetricFamily(n, 's', labels=lns)
                                f.add_metric(lv, 3, v, timestamp=_ts(lib, ts))
                            elif typ == 'histogram':
                                f = lib.mc.HistogramMetricFamily(n, 'h', labels=lns)
                                f.add_metric(lv, [('1.0', 1), ('+Inf', 2, _exemplar(lib, ex))], v,
                                             timestamp=_ts(lib, ts))
                            elif typ == 'gaugehistogram':
                                f = lib.mc.GaugeHistogramMetricFamily(n, 'gh', labels=lns)
                                f.add_metric(lv, [('-1', 1), ('+Inf', 2)], -v)
                            elif typ == 'info':
                                f = lib.mc.InfoMetricFamily(n, 'i', labels=lns)
                                f.add_metric(lv, {'k': str(v)})
                            elif typ == 'stateset':
                                f = lib.mc.StateSetMetricFamily(n, 'ss', labels=lns)
                                f.add_metric(lv, {'a': True, 'b': False})
                            else:
                                f = lib.mc.Metric(n, 'nh', 'histogram')
                                f.add_sample(n, dict(zip(lns, lv)), None, None, None,
                                             lib.samples.NativeHistogram(
                                                 24, 100, 0, 0.001, 4,
                                                 (lib.samples.BucketSpan(0, 2),),
                                                 (lib.samples.BucketSpan(0, 2),
                                                  lib.samples.BucketSpan(1, 2)),
                                                 (2, 1), (2, 1, -2, 3)))
                            out.append(f)
                        except (ValueError, TypeError):
                            pass
                return out
        r.register(Custom())
    return r


def expositions(lib, r):
    """Every text the writers of lib produce for r (writer errors are skipped)."""
    out = []
    for esc in ESCAPINGS:
        for fn in (lambda: lib.root.generate_latest(r, escaping=esc),
                   lambda: lib.om_expo.generate_latest(r, escaping=esc),
                   lambda: lib.om_expo.generate_latest(r, escaping=esc, version='2.0.0')):
            try:
                out.append(fn().decode('utf-8'))
            except Exception:  # noqa: BLE001 - writers reject some registries
                pass
    return out


_DATA = {
    'counter': st.lists(st.tuples(POS, EXEMPLAR), max_size=3),
    'gauge': st.lists(FLOAT, max_size=3),
    'histogram': st.lists(st.tuples(st.floats(-10, 100), EXEMPLAR), max_size=4),
    'summary': st.lists(st.floats(-10, 100), max_size=3),
    'info': st.dictionaries(LEGACY.filter(lambda n: n != 'le' and not n.startswith('__')),
                            LABEL_VALUE, max_size=2),
    'enum': st.lists(LEGACY, min_size=1, max_size=3, unique=True),
    'custom': st.lists(st.tuples(
        st.sampled_from(['counter', 'gauge', 'unknown', 'summary', 'histogram',
                         'gaugehistogram', 'info', 'stateset', 'nh']),
        st.lists(LABEL_VALUE, min_size=1, max_size=2), POS, TS, EXEMPLAR), max_size=3),
}



@st.composite
def specs(draw):
    out = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(sorted(_DATA)))
        out.append((kind, draw(NAME), draw(LABELNAMES), draw(_DATA[kind])))
    return out


CORPUS = []  # texts seen by the writer tests, reused by the mutation test


@settings(max_examples=int(150 * float(os.environ.get('FASTPROM_PARSER_EXAMPLES', '1'))),
          deadline=None, suppress_health_check=list(HealthCheck))
@given(specs())
def test_writers_round_trip(spec):
    """parse(generate_latest(r)) with fastprom equals the reference's parse of the same text."""
    for lib in (REF, FAST):
        for text in expositions(lib, build(lib, spec)):
            if len(CORPUS) < 400:
                CORPUS.append(text)
            check(text, fd=False)


def test_round_trip_known_registry():
    """A fixed registry through both writers: parses are equal and carry the values."""
    spec = [('counter', 'requests', ['method'], [(1, ({'trace': 'abc'}, 1, None)), (2.5, None)]),
            ('gauge', 'temp.é', ['a b'], [1.5, float('nan'), -0.0]),
            ('histogram', 'lat', [], [(0.5, ({'t': 'x'}, 0.5, 1.5)), (11, None)]),
            ('summary', 'sz', ['q'], [3, 4]),
            ('info', 'build', [], {'version': '1.0 "x"\n'}),
            ('enum', 'state', [], ['a', 'b']),
            ('custom', 'cust', ['l'], [('nh', ['v'], 1, None, None),
                                       ('counter', ['v'], 2, ('ts', 5, 6), ({'e': 'f'}, 1, 2.0)),
                                       ('gaugehistogram', ['w'], 3, None, None)])]
    for lib in (REF, FAST):
        texts = expositions(lib, build(lib, spec))
        assert len(texts) == 8  # the text writer rejects native histograms
        for text in texts:
            want_text, want_om = check(text)
            # Both parsers get through the first families (the OpenMetrics parser rejects the
            # histogram with a negative bucket, the text parser native histograms).
            assert len(want_text) > 3 and want_om[0][0] == 'metric', text


# --------------------------------------------------------------------------------------------
# Mutations

SEED_TEXTS = VALID[2:] + INVALID[::3]
ALPHABET = list('{}",=# \\\n\t.+-_:eE0123456789abcHELPTYPEUNITnaNInf') + [
    'é', '\u00a0', '\u3000', '١', ' # ', '_total', '_bucket', '_count', '_sum', '_created', 'le',
    'quantile', '# EOF\n', '\n# TYPE a ', 'histogram', 'counter', '{count:1,sum:1,schema:1,'
    'zero_threshold:0,zero_count:0}', 'positive_spans:[0:1]', '"', '\\"', '\\n', '\ud800']


def mutate(s, rnd):
    s = list(s)
    for _ in range(rnd.randint(1, 5)):
        op = rnd.random()
        i = rnd.randint(0, len(s))
        if op < 0.3 and s:
            del s[min(i, len(s) - 1)]
        elif op < 0.7:
            s.insert(i, rnd.choice(ALPHABET))
        elif op < 0.85 and s:
            j = rnd.randint(0, len(s))
            s[i:i] = s[j:j + rnd.randint(1, 12)]
        elif op < 0.95 and s:
            j = rnd.randint(0, len(s) - 1)
            s[min(i, len(s) - 1)], s[j] = s[j], s[min(i, len(s) - 1)]
        else:
            s = s[:i]
    return ''.join(s)


@pytest.mark.parametrize('seed', range(8))
def test_mutations(seed):
    rnd = random.Random(seed)
    pool = SEED_TEXTS + CORPUS
    n = int(600 * float(os.environ.get('FASTPROM_PARSER_EXAMPLES', '1')))
    for _ in range(n):
        text = mutate(rnd.choice(pool), rnd)
        if rnd.random() < 0.3:
            text = mutate(text, rnd)
        check(text, fd=rnd.random() < 0.2)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(ALPHABET + ['\r', '\x0b', '\x1c', '\x85', 'x', '\n']),
                max_size=60).map(''.join))
def test_random_text(text):
    check(text)


# --------------------------------------------------------------------------------------------
# Modes and file semantics


@pytest.fixture
def legacy_validation():
    ref_validation.enable_legacy_validation()
    fast_validation.enable_legacy_validation()
    yield
    ref_validation.disable_legacy_validation()
    fast_validation.disable_legacy_validation()


@pytest.mark.parametrize('text', VALID + INVALID[::2])
def test_legacy_validation(legacy_validation, text):
    check(text)


def test_int_max_str_digits():
    old = sys.get_int_max_str_digits()
    try:
        for limit in (0, 640, 1000):
            sys.set_int_max_str_digits(limit)
            for n in (639, 640, 641, 999, 1000, 1001, 5000):
                check(f'a {"7" * n}\n# EOF\n', fd=False)
                check(f'a 1 {"7" * n}\n', fd=False)
    finally:
        sys.set_int_max_str_digits(old)


def test_non_str_input():
    for bad in (None, b'a 1\n', 1):
        check_gen = [outcome(f(bad)) for f in (ref_text.text_string_to_metric_families,
                                               fast_text.text_string_to_metric_families,
                                               ref_om.text_string_to_metric_families,
                                               fast_om.text_string_to_metric_families)]
        assert check_gen[0] == check_gen[1] and check_gen[2] == check_gen[3], bad


class _Boom(Exception):
    pass


def _lines_then_raise(lines):
    yield from lines
    raise _Boom('read failed')


@pytest.mark.parametrize('lines', [
    ['# TYPE a gauge\n', 'a 1\n', 'b 2\n', 'c 3\n'],
    ['a 1', 'b 2', '# EOF'],
    ['a 1\n', '', 'b 2\n'],
    ['a 1\n', '# EOF\n', ''],
    ['a 1\n', b'b 2\n', '# EOF\n'],
    ['a 1\n', '# EOF\n', b'x'],
    ['a 1\n', 7, '# EOF\n'],
    ['a 1\nb 2\n', '# EOF\n'],
    ['a{b="c\nd"} 1\n', '# EOF\n'],
])
def test_fd_lines(lines):
    """Any iterable of lines, including odd ones, as the reference's `for line in fd`."""
    for ref, fast in ((ref_text, fast_text), (ref_om, fast_om)):
        want = outcome(ref.text_fd_to_metric_families(iter(lines)))
        got = outcome(fast.text_fd_to_metric_families(iter(lines)))
        assert got[:-1] == want[:-1]
        assert got[-1][:2] == want[-1][:2]
        want = outcome(ref.text_fd_to_metric_families(_lines_then_raise(lines)))
        got = outcome(fast.text_fd_to_metric_families(_lines_then_raise(lines)))
        assert got[:-1] == want[:-1]
        assert got[-1][:2] == want[-1][:2]


def test_fd_is_read_lazily_and_in_chunks(tmp_path):
    n = fast_text._CHUNK_LINES * 2 + 10
    text = ''.join(f'm{i} {i}\n' for i in range(n))
    p = tmp_path / 'metrics.prom'
    p.write_text(text)
    with open(p) as f:
        got = outcome(fast_text.text_fd_to_metric_families(f))
    with open(p) as f:
        want = outcome(ref_text.text_fd_to_metric_families(f))
    assert got == want and len(got) == n + 1
    gen = fast_text.text_fd_to_metric_families(io.StringIO(text))
    assert next(gen).name == 'm0'


def test_fd_chunk_boundaries(monkeypatch):
    """Families spanning chunks of lines: grouping, duplicates and histogram checks still hold."""
    lines = ['# TYPE h histogram']
    for c in range(30):
        lines += [f'h_bucket{{c="{c}",le="{le}"}} {c}' for le in ('1', '2', '+Inf')]
        lines += [f'h_count{{c="{c}"}} {c}', f'h_sum{{c="{c}"}} {c}']
    lines += ['a 1 1', 'a 1 1', 'a 2 1', '# TYPE g gauge', 'g{x="1"} 1', 'g{x="2"} 1']
    base = '\n'.join(lines)
    texts = [base + '\n# EOF\n', base + '\ng{x="1"} 3\n# EOF\n',
             base.replace('h_sum{c="20"} 20', 'h_sum{c="3"} 3') + '\n# EOF\n',
             '# TYPE i info\n' + ''.join(f'i_info{{a="{k % 5}"}} 1\n' for k in range(40)) + '# EOF\n']
    for n in (1, 3, 7, 64):
        monkeypatch.setattr(fast_text, '_CHUNK_LINES', n)
        for text in texts:
            for ref, fast in ((ref_om, fast_om), (ref_text, fast_text)):
                want = outcome(ref.text_fd_to_metric_families(io.StringIO(text)))
                assert outcome(fast.text_fd_to_metric_families(io.StringIO(text))) == want


def test_errors_surface_at_the_same_step():
    text = '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\nb{x="y" 2\n# EOF\n'
    for ref, fast in ((ref_text, fast_text), (ref_om, fast_om)):
        r = ref.text_string_to_metric_families(text)
        f = fast.text_string_to_metric_families(text)
        assert repr(next(r)) == repr(next(f))
        with pytest.raises(ValueError) as er:
            next(r)
        with pytest.raises(ValueError) as ef:
            next(f)
        assert er.value.args == ef.value.args


def test_helpers():
    assert fast_text.parse_labels('a="b",c="d\\n"') == ref_text.parse_labels('a="b",c="d\\n"')
    for s, om in (('a="b",a="c"', False), (',a="b"', True), ('a="b"', True)):
        try:
            want = ref_text.parse_labels(s, om)
        except ValueError as e:
            with pytest.raises(ValueError) as ei:
                fast_text.parse_labels(s, om)
            assert ei.value.args == e.args
        else:
            assert fast_text.parse_labels(s, om) == want
    for s in ('a', '"a b"', ' "x\\ny" ', ''):
        assert fast_text._unquote_unescape(s) == ref_text._unquote_unescape(s)
    for s in ('# HELP "a b" c d', 'a  b\tc', '"x y" z'):
        for sep in (None, ' '):
            assert fast_text._split_quoted(s, sep, 3) == ref_text._split_quoted(s, sep, 3)
    for s in ('a\\\\b\\q\\', 'x\\"y\\n'):
        assert fast_om._unescape_help(s) == ref_om._unescape_help(s)
    for s in ('1', '1.5', '-1.5', '1e3', ''):
        try:
            want = ref_om._parse_timestamp(s)
        except ValueError:
            with pytest.raises(ValueError):
                fast_om._parse_timestamp(s)
        else:
            assert repr(fast_om._parse_timestamp(s)) == repr(want)


def test_results_are_fastprom_objects():
    text = ('# TYPE a counter\na_total{x="y"} 1 1 # {t="u"} 2 3.5\n# TYPE nh histogram\n'
            'nh {count:1,sum:1,schema:1,zero_threshold:0,zero_count:0,positive_spans:[0:1]}\n# EOF\n')
    fams = list(fast_om.text_string_to_metric_families(text))
    assert isinstance(fams[0], fast_mc.Metric)
    s = fams[0].samples[0]
    assert type(s) is fast_samples.Sample
    assert type(s.timestamp) is fast_samples.Timestamp and s.timestamp == fast_samples.Timestamp(1, 0)
    assert type(s.exemplar) is fast_samples.Exemplar
    nh = fams[1].samples[0].native_histogram
    assert type(nh) is fast_samples.NativeHistogram
    assert type(nh.pos_spans[0]) is fast_samples.BucketSpan
    assert fams == list(fast_om.text_string_to_metric_families(text))


# --------------------------------------------------------------------------------------------
# Fuzzing


def test_fuzz_atheris(capsys):
    """A bounded atheris run: any input gives the reference's outcome, no crash or hang."""
    pytest.importorskip('atheris')
    seconds = os.environ.get('FASTPROM_FUZZ_SECONDS', '20')
    with tempfile.TemporaryDirectory() as corpus:
        proc = subprocess.run(
            [sys.executable, os.path.join(HERE, 'fuzz_parsers.py'), corpus,
             f'-max_total_time={seconds}', '-max_len=2048', '-timeout=20', '-rss_limit_mb=4096',
             '-print_final_stats=1'],
            capture_output=True, text=True, timeout=int(seconds) + 120)
    out = proc.stdout + proc.stderr
    execs = [line for line in out.splitlines() if 'stat::number_of_executed_units' in line]
    with capsys.disabled():
        print(f"\natheris, {seconds} s: {execs[-1] if execs else out[-2000:]}")
    assert proc.returncode == 0, out[-5000:]
    assert execs and int(execs[-1].split(':')[-1]) > 0
