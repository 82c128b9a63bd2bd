"""atheris fuzz target: fastprom's parsers against prometheus_client's on arbitrary input.

Run: python tests/fuzz_parsers.py [corpus_dir] -max_total_time=20
Any input (decoded as str, lone surrogates included) must give fastprom the reference's outcome:
the same families, then the same exception type and args (or none); any other exception, a
crash or a hang is a finding. tests/test_parsers.py runs it for a bounded time.
"""
import io
import sys

import atheris

# Coverage of the reference's branches guides the search through the parsers' logic.
with atheris.instrument_imports():
    import fastprom.openmetrics.parser as fast_om
    import fastprom.parser as fast_text
    import prometheus_client.openmetrics.parser as ref_om
    import prometheus_client.parser as ref_text

SEEDS = [
    b'# HELP a_total doc\n# TYPE a_total counter\na_total{x="1"} 2 1\n# EOF\n',
    b'# TYPE a histogram\na_bucket{le="1.0"} 0\na_bucket{le="+Inf"} 3 # {t="x"} 1 2\na_count 3\na_sum 2\n# EOF\n',
    b'# TYPE s summary\ns{quantile="0.5"} 1.5\ns_count 3\ns_sum 4.5\n# EOF\n',
    b'# TYPE nh histogram\nnh {count:24,sum:100,schema:0,zero_threshold:0.001,zero_count:4,positive_spans:[0:2],positive_deltas:[2,1]}\n# EOF\n',
    b'{"my.metric",a="b\\n\\"\\\\"} 1 1.5\n# TYPE e stateset\ne{e="a"} 1\n# EOF\n',
]


def outcome(gen):
    events = []
    try:
        for m in gen:
            events.append((m.name, m.documentation, m.type, m.unit, repr(m.samples)))
    except Exception as e:  # noqa: BLE001
        events.append(('error', type(e).__name__, repr(e.args)))
    return events


def test_one_input(data):
    fdp = atheris.FuzzedDataProvider(data)
    text = fdp.ConsumeUnicode(len(data)) if data[:1] != b'\x00' else data[1:].decode('utf-8', 'replace')
    for ref, fast in ((ref_text, fast_text), (ref_om, fast_om)):
        want = outcome(ref.text_string_to_metric_families(text))
        got = outcome(fast.text_string_to_metric_families(text))
        if got != want:
            raise AssertionError(f'{fast.__name__} differs on {text!r}:\n{want}\n{got}')
    if len(data) % 7 == 0:
        for ref, fast in ((ref_text, fast_text), (ref_om, fast_om)):
            want = outcome(ref.text_fd_to_metric_families(io.StringIO(text)))
            got = outcome(fast.text_fd_to_metric_families(io.StringIO(text)))
            if got != want:
                raise AssertionError(f'{fast.__name__} (fd) differs on {text!r}')


def main():
    args = sys.argv
    corpus = [a for a in args[1:] if not a.startswith('-')]
    if corpus:
        import os
        for i, s in enumerate(SEEDS):
            path = os.path.join(corpus[0], f'seed{i}')
            if not os.path.exists(path):
                with open(path, 'wb') as f:
                    f.write(b'\x00' + s)
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


if __name__ == '__main__':
    main()
