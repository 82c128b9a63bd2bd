"""The testing kit (fastprom.testing and the pytest plugin).

A sample application's own pytest suite runs in a subprocess (pytester), so the plugin is
loaded as users get it: through the installed package's pytest11 entry point, no conftest.
`lint` is compared with the real `promtool check metrics` on a corpus of expositions."""

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import fastprom
from fastprom import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary
from fastprom.testing import (
    MetricsSnapshot, Problem, TextFormatError, collect_and_compare, lint, swap_default_registry,
    to_float,
)

pytest_plugins = ["pytester"]

SUBPROCESS_ARGS = ("-p", "no:randomly", "-p", "no:cacheprovider", "-q")


# ---------------------------------------------------------------------------------------------
# A sample application and its test suite.

APP = '''
import asyncio
from prometheus_client import Counter, Gauge, Histogram, REGISTRY, generate_latest


class Shop:
    """Creates its metrics when built, as Flask/FastAPI apps built by a factory do."""

    def __init__(self):
        self.orders = Counter("shop_orders", "Orders placed.", ["item"])
        self.stock = Gauge("shop_stock", "Items in stock.", ["item"])
        self.latency = Histogram("shop_latency_seconds", "Order latency.", buckets=[0.1, 1])

    def order(self, item, seconds=0.05):
        self.orders.labels(item).inc()
        self.stock.labels(item).dec()
        self.latency.observe(seconds)

    def scrape(self):
        # The module-level name imported from prometheus_client, as applications write it.
        return generate_latest(REGISTRY).decode()


def build_asgi():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route
    from fastprom import make_asgi_app
    from fastprom.asgi import ServiceMetricsMiddleware

    shop = Shop()

    async def order(request):
        await asyncio.sleep(0)
        shop.order(request.path_params["item"])
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/order/{item}", order, methods=["POST"]),
                            Mount("/metrics", make_asgi_app())])
    return ServiceMetricsMiddleware(app, namespace="shop", service_name="shop")
'''

CONFTEST = '''
import fastprom
fastprom.install()  # the application imports prometheus_client
'''

SUITE = '''
import asyncio
import pytest
import prometheus_client
import fastprom
from fastprom.registry import DuplicateTimeseries

import app

BEFORE = prometheus_client.REGISTRY
KEEP = prometheus_client.Counter("kept_events", "Registered before the tests, in the original default.")


def test_build_once(fresh_registry, metrics):
    assert prometheus_client.REGISTRY is fresh_registry is fastprom.REGISTRY
    assert fastprom.registry.REGISTRY is fresh_registry and app.REGISTRY is fresh_registry
    shop = app.Shop()
    shop.order("apple")
    shop.order("apple")
    assert metrics.delta("shop_orders_total", item="apple") == 2
    assert metrics.value("shop_stock", item="apple") == -2
    assert metrics.value("shop_latency_seconds_bucket", le=0.1) == 2
    assert metrics.value("shop_latency_seconds_count") == 2
    assert 'shop_orders_total{item="apple"} 2.0' in shop.scrape()
    assert "kept_events" not in shop.scrape()


def test_build_again(fresh_registry, metrics):
    shop = app.Shop()  # the same names again: no duplicate error
    shop.order("pear")
    assert metrics.delta("shop_orders_total", item="pear") == 1
    with pytest.raises(AssertionError) as err:
        metrics.value("shop_orders_total", item="apple")
    assert "{item='pear'}" in str(err.value)


def test_restored_between_tests():
    assert prometheus_client.REGISTRY is BEFORE is fastprom.REGISTRY
    assert app.REGISTRY is BEFORE
    assert prometheus_client.Counter.__init__.__defaults__[4] is BEFORE
    assert BEFORE.get_sample_value("kept_events_total") == 0
    assert BEFORE.get_sample_value("shop_orders_total", {"item": "apple"}) is None


def test_without_the_fixture_twice_is_a_duplicate():
    app.Shop()
    with pytest.raises(DuplicateTimeseries):
        app.Shop()


def test_metrics_without_fresh_registry(metrics):
    KEEP.inc(3)
    assert metrics.delta("kept_events_total") == 3
    assert metrics.value("kept_events_total") == 3
    with pytest.raises(AssertionError) as err:
        metrics.value("kept_event_total")
    assert "closest names: kept_events_total" in str(err.value)


def test_asgi_app(fresh_registry, metrics):
    import httpx

    async def run():
        transport = httpx.ASGITransport(app=app.build_asgi())
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            for _ in range(3):
                assert (await client.post("/order/plum")).status_code == 200
            return (await client.get("/metrics/")).text

    scraped = asyncio.run(run())
    assert metrics.delta("shop_orders_total", item="plum") == 3
    assert metrics.delta("shop_request_total", endpoint="/order/{item}", service_name="shop",
                         runner_name="shop", service_version="not available",
                         http_response_code="200") == 3
    assert 'shop_orders_total{item="plum"} 3.0' in scraped


def test_asgi_app_again(fresh_registry, metrics):
    test_asgi_app(fresh_registry, metrics)


def test_wrong_labels_are_explained(fresh_registry, metrics):
    app.Shop().order("fig")
    with pytest.raises(AssertionError) as err:
        metrics.delta("shop_orders_total", fruit="fig")
    message = str(err.value)
    assert "its label names are ['item'], given ['fruit']" in message
    assert "{item='fig'}" in message
'''

MULTIPROCESS_SUITE = '''
import multiprocessing
import os

import fastprom
from fastprom import Counter, Gauge


def work(n):
    counter = Counter("jobs", "Jobs done.", ["kind"])
    counter.labels("batch").inc(n)


def test_workers(fresh_registry, metrics, tmp_path):
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert directory != os.environ["ORIGINAL_DIR"]
    assert [f for f in os.listdir(directory) if f.endswith(".db")] == []
    work(1)  # this process
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=work, args=(10,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert metrics.value("jobs_total", kind="batch") == 21
    assert metrics.delta("jobs_total", kind="batch") == 21


def test_workers_again(fresh_registry, metrics):
    # A fresh directory too: the earlier test's values are not there.
    work(2)
    assert metrics.value("jobs_total", kind="batch") == 2
    gauge = Gauge("temp", "T.", multiprocess_mode="liveall")
    gauge.set(5)
    assert metrics.value("temp", pid=str(os.getpid())) == 5


def test_directory_restored():
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == os.environ["ORIGINAL_DIR"]
'''


def _run(pytester, suite, *files, env=None):
    pytester.makepyfile(app=APP, test_suite=suite)
    for name, text in files:
        pytester.makepyfile(**{name: text})
    return pytester.runpytest_subprocess(*SUBPROCESS_ARGS)


def test_sample_app_suite(pytester):
    pytester.makeconftest(CONFTEST)
    result = _run(pytester, SUITE)
    result.assert_outcomes(passed=8)


def test_plugin_comes_from_the_entry_point(pytester):
    pytester.makepyfile(test_one="def test_fixtures(request):\n"
                                 "    request.getfixturevalue('metrics')\n"
                                 "    request.getfixturevalue('fresh_registry')\n")
    result = pytester.runpytest_subprocess(*SUBPROCESS_ARGS, "-p", "no:fastprom")
    result.assert_outcomes(failed=1)  # without the plugin: fixture not found
    result.stdout.fnmatch_lines(["*fixture 'metrics' not found*"])
    result = pytester.runpytest_subprocess(*SUBPROCESS_ARGS)
    result.assert_outcomes(passed=1)


def test_multiprocess_suite(pytester, tmp_path, monkeypatch):
    directory = tmp_path / "mp"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    monkeypatch.setenv("ORIGINAL_DIR", str(directory))
    pytester.makepyfile(test_mp=MULTIPROCESS_SUITE)
    result = pytester.runpytest_subprocess(*SUBPROCESS_ARGS)
    result.assert_outcomes(passed=3)
    # The tests wrote to their own directories.
    assert [f for f in os.listdir(directory) if f.endswith(".db")] == []


# ---------------------------------------------------------------------------------------------
# In-process: the snapshot, swap_default_registry, to_float, collect_and_compare.

def test_swap_default_registry_in_process():
    old = fastprom.REGISTRY
    with swap_default_registry() as fresh:
        assert fastprom.REGISTRY is fresh and fresh is not old
        c = Counter("kit_swapped", "h")
        assert fresh.get_sample_value("kit_swapped_total") == 0
        assert old.get_sample_value("kit_swapped_total") is None
        assert fastprom.generate_latest().decode().count("kit_swapped_total") == 3  # HELP, TYPE, sample
        assert fastprom.exposition.MetricsHandler.registry is fresh
    assert fastprom.REGISTRY is old and fastprom.exposition.MetricsHandler.registry is old
    assert fastprom.Counter.__init__.__defaults__[4] is old
    del c


def test_swap_reaches_modules_imported_inside(monkeypatch):
    import types
    old = fastprom.REGISTRY
    module = types.ModuleType("kit_late_module")
    monkeypatch.setitem(sys.modules, "kit_late_module", module)
    with swap_default_registry() as fresh:
        exec("import fastprom\nR = fastprom.REGISTRY\ndef f(registry=fastprom.REGISTRY): return registry",
             vars(module))
        assert module.R is fresh
    assert module.R is old  # a global that held the test's default holds the default again


def test_snapshot_of_a_registry():
    registry = CollectorRegistry()
    c = Counter("kit_calls", "h", ["path"], registry=registry)
    c.labels("/a").inc(2)
    snap = MetricsSnapshot(registry)
    c.labels("/a").inc()
    c.labels("/b").inc(5)
    assert snap.value("kit_calls_total", path="/a") == 3
    assert snap.delta("kit_calls_total", path="/a") == 1
    assert snap.delta("kit_calls_total", {"path": "/b"}) == 5
    assert snap.before("kit_calls_total", path="/b") is None
    assert sorted(d["path"] for d in snap.label_sets("kit_calls_total")) == ["/a", "/b"]
    with pytest.raises(AssertionError, match=r"closest names: kit_calls_total"):
        snap.value("kit_call_total", path="/a")
    with pytest.raises(AssertionError, match=r"\{path='/a'\}, \{path='/b'\}"):
        snap.value("kit_calls_total", path="/c")
    with pytest.raises(AssertionError, match="no samples at all"):
        MetricsSnapshot(CollectorRegistry()).value("anything")


def test_snapshot_buckets_by_number():
    registry = CollectorRegistry()
    h = Histogram("kit_h", "h", buckets=[1, 2.5], registry=registry)
    h.observe(2)
    snap = MetricsSnapshot(registry)
    assert snap.value("kit_h_bucket", le=1) == 0
    assert snap.value("kit_h_bucket", le="2.5") == 1
    assert snap.value("kit_h_bucket", le=float("inf")) == 1


def test_to_float():
    registry = CollectorRegistry()
    c = Counter("kit_c", "h", registry=registry)
    c.inc(4)
    assert to_float(c) == 4
    g = Gauge("kit_g", "h", ["a"], registry=registry)
    g.labels("x").set(2)
    assert to_float(g.labels("x")) == 2
    g.labels("y").set(3)
    with pytest.raises(ValueError, match="2 series"):
        to_float(g)
    with pytest.raises(ValueError, match="no series"):
        to_float(Gauge("kit_empty", "h", ["a"], registry=registry))
    with pytest.raises(TypeError, match="histogram"):
        to_float(Histogram("kit_hist", "h", registry=registry))


def _shop(lib):
    registry = lib.CollectorRegistry()
    c = lib.Counter("shop_orders", "Orders.", ["item"], registry=registry)
    c.labels("apple").inc(2)
    c.labels('say "hi"\n').inc()
    h = lib.Histogram("shop_latency_seconds", "Latency.", buckets=[0.5], registry=registry)
    h.observe(0.25)
    lib.Gauge("shop_open", "Open.", registry=registry).set(1)
    return registry


EXPECTED_ORDERS = '''
# HELP shop_orders_total Orders.
# TYPE shop_orders_total counter
shop_orders_total{item="say \\"hi\\"\\n"} 1
shop_orders_total{item="apple"} 2
'''


def test_collect_and_compare():
    registry = _shop(fastprom)
    collect_and_compare(registry, EXPECTED_ORDERS, "shop_orders")
    collect_and_compare(registry, EXPECTED_ORDERS, "shop_orders_total")
    with pytest.raises(AssertionError) as err:
        collect_and_compare(registry, EXPECTED_ORDERS.replace("} 2", "} 3"), "shop_orders")
    assert '-shop_orders_total{item="apple"} 3.0' in str(err.value)
    assert '+shop_orders_total{item="apple"} 2.0' in str(err.value)
    with pytest.raises(AssertionError, match=r"\+# TYPE shop_open gauge"):
        collect_and_compare(registry, EXPECTED_ORDERS)  # everything compared: more families
    with pytest.raises(AssertionError, match="shop_orders_created"):
        collect_and_compare(registry, EXPECTED_ORDERS + 'shop_orders_created{item="apple"} 1\n',
                            "shop_orders", "shop_orders_created")


def test_collect_and_compare_a_metric():
    registry = CollectorRegistry()
    g = Gauge("kit_temp_celsius", "T.", registry=registry)
    g.set(21.5)
    collect_and_compare(g, "# HELP kit_temp_celsius T.\n# TYPE kit_temp_celsius gauge\nkit_temp_celsius 21.5\n")
    with pytest.raises(AssertionError, match="# HELP kit_temp_celsius Other"):
        collect_and_compare(g, "# HELP kit_temp_celsius Other\n# TYPE kit_temp_celsius gauge\nkit_temp_celsius 21.5\n")


def test_collect_and_compare_against_prometheus_client():
    """The reference renders the same metrics: its exposition is what fastprom's compares equal."""
    prometheus_client = pytest.importorskip("prometheus_client")
    if prometheus_client is fastprom:
        pytest.skip("prometheus_client is aliased to fastprom")
    reference = prometheus_client.generate_latest(_shop(prometheus_client)).decode()
    collect_and_compare(_shop(fastprom), reference, "shop_orders", "shop_latency_seconds", "shop_open")
    with pytest.raises(AssertionError, match="shop_orders_created"):  # timestamps of creation differ
        collect_and_compare(_shop(fastprom), reference)


# ---------------------------------------------------------------------------------------------
# lint against promtool.

CORPUS = {
    # Counters and _total.
    "counter_good": "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
                    'http_requests_total{method="get"} 3\n',
    "counter_no_total": "# HELP http_requests Requests.\n# TYPE http_requests counter\nhttp_requests 3\n",
    "gauge_total": "# HELP temp_total T.\n# TYPE temp_total gauge\ntemp_total 3\n",
    "untyped_total": "# HELP temp_total T.\ntemp_total 3\n",
    # HELP.
    "no_help": "# TYPE queue_length gauge\nqueue_length 3\n",
    "empty_help": "# HELP queue_length \n# TYPE queue_length gauge\nqueue_length 3\n",
    "bare_help": "# HELP queue_length\n# TYPE queue_length gauge\nqueue_length 3\n",
    "help_after_samples": "# TYPE queue_length gauge\nqueue_length 3\n# HELP queue_length q\n",
    # Units.
    "non_base_units": "".join(
        f"# HELP {n} x\n{t}{n} 1\n" for n, t in [
            ("a_milliseconds", "# TYPE a_milliseconds gauge\n"), ("b_kilobytes", ""), ("c_hours", ""),
            ("d_bits_total", "# TYPE d_bits_total counter\n"), ("e_fahrenheit", ""), ("f_kelvins", ""),
            ("g_pounds", ""), ("h_mibibytes", ""), ("i_minutes", ""), ("j_weeks", ""), ("k_inches", ""),
            ("l_calories", ""), ("m_ounces", ""), ("n_rankine", ""), ("o_nanoseconds", ""), ("p_days", ""), ("q_kilometers", "")]),
    "base_units": "".join(
        f"# HELP {n} x\n{n} 1\n" for n in [
            "a_seconds", "b_meters", "c_thermometers", "d_celsius", "e_bytes", "f_amperes",
            "g_grams", "h_joules", "i_kelvin", "j_metres", "k_volts", "l_byte"]),
    # Histogram and summary reserved names and labels.
    "reserved_suffixes": "# HELP a_bucket a\n# TYPE a_bucket gauge\na_bucket 1\n"
                         "# HELP b_count b\n# TYPE b_count counter\nb_count 1\n"
                         "# HELP c_sum c\n# TYPE c_sum gauge\nc_sum 1\n# HELP d_count d\nd_count 1\n"
                         "# HELP e_bucket e\n# TYPE e_bucket summary\ne_bucket_sum 1\ne_bucket_count 1\n",
    "reserved_labels": '# HELP a a\n# TYPE a gauge\na{le="1"} 1\na{le="2"} 1\n'
                       '# HELP b b\n# TYPE b counter\nb_total{quantile="0.5"} 1\n'
                       '# HELP c c\nc{le="1",quantile="2"} 1\n',
    "histogram_good": "# HELP lat_seconds L\n# TYPE lat_seconds histogram\n"
                      'lat_seconds_bucket{le="0.1"} 1\nlat_seconds_bucket{le="+Inf"} 2\n'
                      "lat_seconds_sum 3\nlat_seconds_count 2\n",
    "histogram_quantile_label": "# HELP lat_seconds L\n# TYPE lat_seconds histogram\n"
                                'lat_seconds_bucket{le="+Inf",quantile="1",fooBar="x"} 2\n'
                                'lat_seconds_sum{quantile="1",fooBar="x"} 3\n'
                                'lat_seconds_count{quantile="1",fooBar="x"} 2\n'
                                'lat_seconds_bucket{le="+Inf",quantile="1",fooBar="y"} 2\n',
    "summary_good": "# HELP rpc_seconds R\n# TYPE rpc_seconds summary\n"
                    'rpc_seconds{quantile="0.5"} 1\nrpc_seconds{quantile="0.9"} 2\n'
                    "rpc_seconds_sum 3\nrpc_seconds_count 2\n",
    "summary_le_label": "# HELP rpc_seconds R\n# TYPE rpc_seconds summary\n"
                        'rpc_seconds{quantile="0.5",le="1"} 1\nrpc_seconds_sum{le="1"} 3\n'
                        'rpc_seconds_count{le="1"} 2\n',
    # Names.
    "type_in_name": "".join(f"# HELP {n} x\n{t}{n} 1\n" for n, t in [
        ("a_counter_total", "# TYPE a_counter_total counter\n"), ("b_gauge", "# TYPE b_gauge gauge\n"),
        ("c_histogram_x", ""), ("d_summary", ""), ("e_gauge_histogram", ""), ("F_GAUGE", ""),
        ("gauges", ""), ("counter_x", "")]),
    "colon": "# HELP job:rate5m a\njob:rate5m 1\n",
    "camel_case": '# HELP fooBar a\nfooBar{someLabel="x"} 1\nfooBar{someLabel="y"} 1\n'
                  '# HELP FOO a\nFOO{ABC="x",aB="y"} 1\n',
    "abbreviations": "".join(f"# HELP {n} x\n{n} 1\n" for n in [
        "a_ms", "b_sec_total", "c_mb_kb", "d_D", "e_msx", "ms_e", "f_s", "g_us_x", "h_ns", "i_b",
        "j_gb", "k_tb", "l_pb", "m_m", "n_h", "o_d", "p_ds"]),
    # Format details that change nothing or everything.
    "empty": "",
    "comments_blank_lines_timestamps": "# just a comment\n\n  # another\n# HELP x x\nx 1 1700000000000\n",
    "escapes_and_specials": "# HELP x a \\\\ b \\n c\n# TYPE x gauge\n"
                            'x{a="q\\"\\\\\\n"} NaN\nx{a="b",} +Inf\nx{a="c"} -1.5e-3\n',
    "families_without_samples": "# HELP only_help h\n# TYPE only_type_total counter\n",
    "error_duplicate_label": '# HELP x x\nx{a="1",a="2"} 1\n',
    "error_name_label": '# HELP x x\nx{__name__="1"} 1\n',
    "error_value": "x abc\n",
    "error_second_type": "# TYPE x gauge\n# TYPE x gauge\nx 1\n",
    "error_type_after_samples": "x 1\n# TYPE x gauge\n",
    "error_unknown_type": "# TYPE x foo\nx 1\n",
    "error_second_help": "# HELP x a\n# HELP x b\nx 1\n",
    "error_label_name": 'x{1a="b"} 1\n',
    "error_escape": 'x{a="\\q"} 1\n',
    "error_quantile": '# TYPE x summary\nx{quantile="a"} 1\n',
    "error_le": '# TYPE x histogram\nx_bucket{le="a"} 1\n',
    "error_timestamp": "x 1 abc\n",
    "error_no_value": "x\n",
}


GOOD = {"counter_good", "untyped_total", "help_after_samples",
        "base_units", "histogram_good", "summary_good", "empty", "comments_blank_lines_timestamps",
        "escapes_and_specials", "families_without_samples"}


def _fastprom_exposition(kind):
    registry = CollectorRegistry()
    if kind == "good":
        Counter("app_requests", "Requests.", ["path"], registry=registry).labels("/").inc()
        Gauge("app_temperature_celsius", "T.", registry=registry).set(3)
        Histogram("app_latency_seconds", "L.", ["path"], registry=registry).labels("/").observe(1)
        Summary("app_size_bytes", "S.", registry=registry).observe(3)
        Info("app_build", "B.", registry=registry).info({"version": "1"})
        Enum("app_state", "S.", states=["a", "b"], registry=registry)
    else:
        Counter("appRequests_ms", "Requests.", ["someLabel"], registry=registry).labels("/").inc()
        Gauge("app_sent_kilobytes_total", "T.", registry=registry).set(3)
        Gauge("app_gauge", "", ["le"], registry=registry).labels("1").set(3)
        Summary("app_latency_hours", "S.", registry=registry).observe(3)
    return registry


@pytest.fixture(scope="module")
def promtool():
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("FASTPROM_CI") == "1":
            pytest.fail("promtool is not installed (FASTPROM_CI=1)")
        pytest.skip("promtool is not installed")
    return path


def _promtool_verdict(promtool, text):
    proc = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True,
                          timeout=60)
    if proc.returncode == 1:
        assert b"error while linting" in proc.stderr, proc.stderr
        return "parse error"
    problems = [Problem(*line.split(" ", 1)) for line in proc.stderr.decode().splitlines() if line]
    assert proc.returncode == (3 if problems else 0), (proc.returncode, proc.stderr)
    return problems


def _lint_verdict(source):
    try:
        return lint(source)
    except TextFormatError:
        return "parse error"


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_lint_matches_promtool(promtool, case):
    text = CORPUS[case]
    want = _promtool_verdict(promtool, text)
    assert _lint_verdict(text) == want
    assert _lint_verdict(text.encode()) == want
    # The corpus means what its names say: good cases pass, the others fail.
    if case in GOOD:
        assert want == []
    else:
        assert want


@pytest.mark.parametrize("kind", ["good", "bad"])
def test_lint_a_registry_matches_promtool(promtool, kind):
    registry = _fastprom_exposition(kind)
    want = _promtool_verdict(promtool, fastprom.generate_latest(registry).decode())
    assert lint(registry) == want
    assert (want == []) == (kind == "good")


def test_every_rule_is_in_the_corpus(promtool):
    texts = {p.text.split('"')[0] for case in CORPUS.values() if _lint_verdict(case) != "parse error"
             for p in lint(case)}
    assert texts == {
        "no help text", "use base unit ", "counter metrics should have ",
        "non-counter metrics should not have ", "non-histogram metrics should not have ",
        "non-histogram and non-summary metrics should not have ",
        "non-summary metrics should not have ", "metric name should not include type 'counter'",
        "metric name should not include type 'gauge'", "metric name should not include type 'summary'",
        "metric name should not include type 'histogram'",
        "metric name should not include type 'gauge_histogram'",
        "metric names should not contain ':'",
        "metric names should be written in 'snake_case' not 'camelCase'",
        "label names should be written in 'snake_case' not 'camelCase'",
        "metric names should not contain abbreviated units",
    }


def test_lint_problem_shape():
    (problem,) = lint("# TYPE x_seconds gauge\nx_seconds 1\n")
    assert (problem.metric, problem.text) == ("x_seconds", "no help text")
    assert str(problem) == "x_seconds no help text"
    with pytest.raises(ValueError, match="line 2"):
        lint("# HELP x x\nx{a=1} 1\n")
