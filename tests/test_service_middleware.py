"""fastprom.asgi.ServiceMetricsMiddleware: BentoML 1.4's default service metrics for any ASGI app.

* in-process ASGI calls (no network), private registries: names, types, labels in declared
  order, HELP texts and multiprocess modes against BentoML's table; counts, timing rules,
  zero-initialised routes, skip paths, websockets, bounded endpoint labels, configuration
  errors, sharing a namespace, the adaptive batch-size histogram, multiprocess files;
* against BentoML itself (skipped when ``bentoml`` is not installed), in a subprocess with
  ``PROMETHEUS_MULTIPROC_DIR`` set before prometheus_client is imported: the same scenario
  through BentoML's ``RunnerTrafficMetricsMiddleware`` and ours, expositions compared;
* real uvicorn, single process and ``--workers 2`` in multiprocess mode.

The apps and the in-process driver are in ``tests/service_apps.py``.
"""

import asyncio
import collections
import contextlib
import http.client
import importlib.util
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

from prometheus_client.parser import text_string_to_metric_families

import fastprom
from fastprom import asgi as fasgi
from fastprom import service_metrics
from fastprom.asgi import ServiceMetricsMiddleware, adaptive_batch_size_histogram, resolve_duration_buckets
from fastprom.buckets import DEFAULT_DURATION_BUCKETS
from fastprom.multiprocess import MultiProcessCollector

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TESTS_DIR)
import service_apps  # noqa: E402
from service_apps import (  # noqa: E402
    SERVICE, build_app, call_http, call_websocket, run_lifespan, run_scenario,
)

INF = math.inf
NS = "bentoml_service"
ENDPOINT_LABELS = ["endpoint", "service_name", "service_version", "runner_name"]
RESPONSE_LABELS = ["endpoint", "service_name", "service_version", "http_response_code", "runner_name"]
SERVICE_LABELS = ["service_name", "service_version", "runner_name"]
LABELS = {"service_name": "svc", "service_version": "1.2.3", "runner_name": "Svc"}

# BentoML 1.4's default metrics (reference notes, section 3.1): attribute of our metrics
# holder -> (name without namespace, type, HELP, label names in declared order, gauge mode).
BENTOML_TABLE = {
    "request_duration": ("request_duration_seconds", "histogram", "runner RPC duration in seconds",
                         RESPONSE_LABELS, None),
    "request_total": ("request_total", "counter", "Total number of runner RPC", RESPONSE_LABELS, None),
    "request_in_progress": ("request_in_progress", "gauge", "Total number of runner RPC in progress now",
                            ENDPOINT_LABELS, "livesum"),
    "websocket_connections": ("websocket_connections", "gauge", "Total number of websocket connections",
                              ENDPOINT_LABELS, "livesum"),
    "websocket_data_received": ("websocket_data_received", "summary",
                                "Total number of bytes received from websocket", ENDPOINT_LABELS, None),
    "websocket_data_sent": ("websocket_data_sent", "summary", "Total number of bytes sent to websocket",
                            ENDPOINT_LABELS, None),
    "last_request_timestamp": ("last_request_timestamp_seconds", "gauge", "Timestamp of the last received request",
                               SERVICE_LABELS, "all"),
}
HAVE_BENTOML = importlib.util.find_spec("bentoml") is not None
needs_bentoml = pytest.mark.skipif(not HAVE_BENTOML, reason="bentoml is not installed")


@pytest.fixture(autouse=True)
def single_process_mode(monkeypatch):
    """Unit tests run in single-process mode unless they set the variable themselves."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)


@pytest.fixture
def registry():
    return fastprom.CollectorRegistry()


def middleware(registry, app=None, **kwargs):
    kwargs = {**SERVICE, **kwargs}
    return ServiceMetricsMiddleware(app if app is not None else build_app(), registry=registry, **kwargs)


def value(registry, name, **labels):
    """A sample's value, our service's label values filled in; None if absent."""
    return registry.get_sample_value(name, {**{k: LABELS[k] for k in LABELS if k not in labels}, **labels})


def series(registry, sample_name):
    """{labels (frozenset) : value} of one sample name."""
    return {frozenset(s.labels.items()): s.value
            for family in registry.collect() for s in family.samples if s.name == sample_name}


def endpoints_of(registry, sample_name):
    return collections.Counter(dict(labels)["endpoint"] for labels in series(registry, sample_name))


# ---------------------------------------------------------------------------
# Names, types, labels, HELP, modes
# ---------------------------------------------------------------------------

def test_metrics_are_bentomls(registry):
    mw = middleware(registry)
    asyncio.run(run_scenario(mw))
    families = {f.name: f for f in registry.collect()}
    for attr, (name, kind, doc, labelnames, mode) in BENTOML_TABLE.items():
        metric = getattr(mw.metrics, attr)
        family_name = f"{NS}_request" if kind == "counter" else f"{NS}_{name}"
        family = families[family_name]
        assert (family.type, family.documentation) == (kind, doc), attr
        assert list(metric._labelnames) == labelnames, attr
        if kind == "gauge":
            assert metric._multiprocess_mode == mode, attr
        for sample in family.samples:
            assert set(sample.labels) - {"le", "quantile"} == set(labelnames), sample
    assert set(families) == {f"{NS}_request" if v[1] == "counter" else f"{NS}_{v[0]}" for v in BENTOML_TABLE.values()}
    assert mw.metrics.request_duration._upper_bounds == list(DEFAULT_DURATION_BUCKETS)
    # the label values
    assert series(registry, f"{NS}_last_request_timestamp_seconds").keys() == {frozenset(LABELS.items())}


def test_namespace_and_default_label_values(registry):
    mw = ServiceMetricsMiddleware(build_app(), namespace="starlette", registry=registry)
    asyncio.run(call_http(mw, "GET", "/hello"))
    labels = {"endpoint": "/hello", "http_response_code": "200", "service_name": "",
              "service_version": "not available", "runner_name": ""}
    assert registry.get_sample_value("starlette_request_total", labels) == 1
    named = ServiceMetricsMiddleware(build_app(), service_name="iris", namespace="other", registry=registry)
    assert (named.service_name, named.runner_name, named.service_version) == ("iris", "iris", "not available")


# ---------------------------------------------------------------------------
# What is recorded, and when
# ---------------------------------------------------------------------------

def test_scenario_counts(registry):
    mw = middleware(registry)
    statuses = asyncio.run(run_scenario(mw))
    assert ("/error", 500) in statuses and ("/nope/1", 404) in statuses
    expected = {
        ("/hello", "200"): 3, ("/echo", "200"): 2, ("/echo", "405"): 1, ("/items/{id}", "200"): 2,
        ("/stream", "200"): 1, ("/fail", "500"): 1, ("/error", "500"): 1, ("/healthz", "200"): 1,
        ("/sub/ping", "200"): 1,
        # /items/x, /healthz/deep, /nope/1, /nope/2, /x/metrics
        ("__unknown__", "404"): 5,
    }
    for (endpoint, code), count in expected.items():
        labels = dict(endpoint=endpoint, http_response_code=code)
        assert value(registry, f"{NS}_request_total", **labels) == count, labels
        assert value(registry, f"{NS}_request_duration_seconds_count", **labels) == count, labels
    counted = {(dict(k)["endpoint"], dict(k)["http_response_code"]): v
               for k, v in series(registry, f"{NS}_request_total").items() if v}
    assert counted == expected
    # /metrics passed through: no series at all
    assert "/metrics" not in endpoints_of(registry, f"{NS}_request_in_progress")
    assert "/metrics" not in endpoints_of(registry, f"{NS}_request_total")
    assert all(v == 0 for v in series(registry, f"{NS}_request_in_progress").values())


def test_zero_initialised_routes_at_startup(registry):
    mw = middleware(registry, app=build_app(metrics_app=service_apps._PlainMetrics()))
    assert asyncio.run(run_lifespan(mw)) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    routes = ["/hello", "/echo", "/items/{id}", "/stream", "/fail", "/error", "/healthz", "/sub/ping"]
    assert mw.known_routes() == routes  # not /ws (websocket), not /metrics
    zero = series(registry, f"{NS}_request_total")
    assert zero == {frozenset({**LABELS, "endpoint": r, "http_response_code": c}.items()): 0.0
                    for r in routes for c in ("200", "500")}
    assert series(registry, f"{NS}_request_duration_seconds_count") == {}
    assert series(registry, f"{NS}_request_in_progress") == {}


def test_explicit_routes(registry):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    mw = middleware(registry, app=app, routes=["/predict", "/models/{name}"], unknown_endpoint="other")
    mw.setup()
    assert endpoints_of(registry, f"{NS}_request_total") == {"/predict": 2, "/models/{name}": 2}
    for path in ("/predict", "/models/iris", "/models/iris/extra", "/elsewhere"):
        asyncio.run(call_http(mw, "GET", path))
    assert endpoints_of(registry, f"{NS}_request_duration_seconds_count") == {
        "/predict": 1, "/models/{name}": 1, "other": 1}
    assert value(registry, f"{NS}_request_total", endpoint="other", http_response_code="200") == 2


def test_no_routes_no_zero_series(registry):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    mw = middleware(registry, app=app)
    asyncio.run(call_http(mw, "GET", "/anything"))
    assert series(registry, f"{NS}_request_total") == {
        frozenset({**LABELS, "endpoint": "__unknown__", "http_response_code": "204"}.items()): 1.0}


def test_last_request_timestamp_skip_paths(registry):
    mw = middleware(registry)
    name = f"{NS}_last_request_timestamp_seconds"
    for path in ("/healthz", "/healthz/deep", "/livez", "/readyz", "/health", "/metrics"):
        asyncio.run(call_http(mw, "GET", path))
        assert value(registry, name) == 0.0, path
    assert value(registry, f"{NS}_request_total", endpoint="/healthz", http_response_code="200") == 1
    before = time.time()
    asyncio.run(call_http(mw, "GET", "/nope"))
    assert before <= value(registry, name) <= time.time()

    custom = middleware(fastprom.CollectorRegistry(), skip_paths=["/hel"])
    asyncio.run(call_http(custom, "GET", "/hello"))
    assert custom.metrics.last_request_timestamp.labels(*LABELS.values())._value.get() == 0.0


def test_in_progress_spans_the_app_call(registry):
    async def scenario():
        hold = asyncio.Event()
        mw = middleware(registry, app=build_app(hold=hold))
        tasks = [asyncio.create_task(call_http(mw, "GET", "/hold")) for _ in range(3)]
        for _ in range(20):
            await asyncio.sleep(0)
        in_progress = value(registry, f"{NS}_request_in_progress", endpoint="/hold")
        total = value(registry, f"{NS}_request_total", endpoint="/hold", http_response_code="200")
        hold.set()
        await asyncio.gather(*tasks)
        return in_progress, total

    in_progress, total = asyncio.run(scenario())
    assert (in_progress, total) == (3, 0)
    assert value(registry, f"{NS}_request_in_progress", endpoint="/hold") == 0
    assert value(registry, f"{NS}_request_total", endpoint="/hold", http_response_code="200") == 3


def test_duration_covers_the_whole_stream(registry):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
            await asyncio.sleep(0.02)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    mw = middleware(registry, app=app, routes=["/s"])
    asyncio.run(call_http(mw, "GET", "/s"))
    labels = dict(endpoint="/s", http_response_code="200")
    assert value(registry, f"{NS}_request_total", **labels) == 1  # once, on the final body
    assert value(registry, f"{NS}_request_duration_seconds_count", **labels) == 1
    assert value(registry, f"{NS}_request_duration_seconds_sum", **labels) >= 0.06


def test_response_never_finished_is_not_counted(registry):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise ConnectionResetError("client went away")

    mw = middleware(registry, app=app, routes=["/r"])
    with pytest.raises(ConnectionResetError):
        asyncio.run(call_http(mw, "GET", "/r"))
    assert value(registry, f"{NS}_request_total", endpoint="/r", http_response_code="200") == 0  # zero series
    assert value(registry, f"{NS}_request_duration_seconds_count", endpoint="/r", http_response_code="200") is None
    assert value(registry, f"{NS}_request_in_progress", endpoint="/r") == 0


def test_websocket_metrics(registry):
    mw = middleware(registry)
    sent = asyncio.run(call_websocket(mw, "/ws", ["hello", b"abcd", "\u00e9t\u00e9"]))
    assert [m["type"] for m in sent] == ["websocket.accept"] + ["websocket.send"] * 3
    for summary in ("received", "sent"):
        assert value(registry, f"{NS}_websocket_data_{summary}_count", endpoint="/ws") == 3
        assert value(registry, f"{NS}_websocket_data_{summary}_sum", endpoint="/ws") == 5 + 4 + 3  # bytes or chars
    assert value(registry, f"{NS}_websocket_connections", endpoint="/ws") == 0  # accepted, then disconnected
    assert value(registry, f"{NS}_request_in_progress", endpoint="/ws") == 0
    assert series(registry, f"{NS}_request_total") == {
        k: 0.0 for k in series(registry, f"{NS}_request_total")}  # a websocket is no HTTP response
    assert value(registry, f"{NS}_last_request_timestamp_seconds") > 0


def test_websocket_connection_gauge_while_open(registry):
    async def scenario():
        mw = middleware(registry)
        queue = asyncio.Queue()
        await queue.put({"type": "websocket.connect"})
        scope = dict(service_apps._http_scope("GET", "/ws"), type="websocket", scheme="ws", subprotocols=[])

        async def send(message):
            pass

        task = asyncio.create_task(mw(scope, queue.get, send))
        for _ in range(20):
            await asyncio.sleep(0)
        open_now = value(registry, f"{NS}_websocket_connections", endpoint="/ws")
        await queue.put({"type": "websocket.disconnect", "code": 1000})
        await task
        return open_now

    assert asyncio.run(scenario()) == 1
    assert value(registry, f"{NS}_websocket_connections", endpoint="/ws") == 0


def test_other_scopes_pass_through(registry):
    seen = []

    async def app(scope, receive, send):
        seen.append((scope["type"], receive, send))

    mw = middleware(registry, app=app)

    async def receive():
        return {}

    async def send(message):
        pass

    asyncio.run(mw({"type": "lifespan"}, receive, send))
    asyncio.run(mw(service_apps._http_scope("GET", "/metrics"), receive, send))
    assert seen == [("lifespan", receive, send), ("http", receive, send)]
    assert value(registry, f"{NS}_last_request_timestamp_seconds") == 0.0


def test_disabled_is_a_pass_through(registry):
    seen = []

    async def app(scope, receive, send):
        seen.append((receive, send))

    mw = middleware(registry, app=app, enabled=False)

    async def receive():
        return {}

    async def send(message):
        pass

    asyncio.run(mw(service_apps._http_scope("GET", "/hello"), receive, send))
    assert seen == [(receive, send)]
    assert list(registry.collect()) == []


# ---------------------------------------------------------------------------
# Bounded endpoint labels
# ---------------------------------------------------------------------------

def test_1000_random_404_paths_share_one_series(registry):
    mw = middleware(registry)
    rng = random.Random(7)
    paths = {"/" + "/".join(f"{rng.getrandbits(40):x}" for _ in range(rng.randint(1, 4))) for _ in range(1000)}

    async def scan():
        for path in paths:
            assert (await call_http(mw, "GET", path))[0] == 404

    asyncio.run(scan())
    total = series(registry, f"{NS}_request_total")
    unknown = {k: v for k, v in total.items() if dict(k)["endpoint"] == "__unknown__"}
    assert list(unknown.values()) == [len(paths)]
    assert len(total) == 2 * len(mw.known_routes()) + 1
    assert endpoints_of(registry, f"{NS}_request_in_progress") == {"__unknown__": 1}
    assert set(endpoints_of(registry, f"{NS}_request_duration_seconds_count")) == {"__unknown__"}


def test_path_cache_is_bounded(registry, monkeypatch):
    monkeypatch.setattr(service_metrics, "_MAX_CACHED_PATHS", 50)
    mw = middleware(registry)
    for i in range(200):
        assert mw.endpoint_label(f"/nope/{i}") == "__unknown__"
    assert mw.endpoint_label("/items/12") == "/items/{id}"
    assert len(mw._endpoints.cache) == 50


def test_route_discovery():
    from starlette.applications import Starlette
    from starlette.middleware.cors import CORSMiddleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route, WebSocketRoute

    async def ok(request):
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/a", ok), Route("/users/{user_id}/posts/{post:int}", ok)])
    app = Starlette(routes=[
        Route("/", ok),
        Mount("/v1", app=inner),
        Mount("/v2", app=CORSMiddleware(inner, allow_origins=["*"])),
        Mount("/static", app=fastprom.make_asgi_app()),  # opaque: one label below it
        Mount("/nested", routes=[Mount("/deeper", routes=[Route("/leaf", ok)])]),
        WebSocketRoute("/ws/{room}", ok),
    ])
    mw = ServiceMetricsMiddleware(CORSMiddleware(app, allow_origins=["*"]), registry=None)
    expected = {
        "/": "/", "/v1/a": "/v1/a", "/v2/a": "/v2/a", "/v1/users/5/posts/6": "/v1/users/{user_id}/posts/{post}",
        "/v1/users/5/posts/x": "__unknown__", "/static/css/site.css": "/static/{path}",
        "/nested/deeper/leaf": "/nested/deeper/leaf", "/ws/lobby": "/ws/{room}", "/v1/zzz": "__unknown__",
        "/a": "__unknown__",
    }
    assert {path: mw.endpoint_label(path) for path in expected} == expected
    assert mw.known_routes() == ["/", "/v1/a", "/v1/users/{user_id}/posts/{post}", "/v2/a",
                                 "/v2/users/{user_id}/posts/{post}", "/nested/deeper/leaf"]
    # behind a proxy: uvicorn --root-path /api puts the prefix in scope["path"]
    assert mw.endpoint_label("/api/v1/a", root_path="/api") == "/v1/a"


def test_routes_added_after_wrapping_are_seen(registry):
    from starlette.responses import PlainTextResponse
    app = build_app()
    mw = middleware(registry, app=app)

    async def late(request):
        return PlainTextResponse("late")

    app.add_route("/late", late)
    asyncio.run(call_http(mw, "GET", "/late"))
    assert value(registry, f"{NS}_request_total", endpoint="/late", http_response_code="200") == 1


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("duration, expected", [
    (None, DEFAULT_DURATION_BUCKETS),
    ({}, DEFAULT_DURATION_BUCKETS),
    ({"buckets": None, "min": None, "max": None, "factor": None}, DEFAULT_DURATION_BUCKETS),
    ({"buckets": []}, DEFAULT_DURATION_BUCKETS),
    ({"buckets": [0.1, 0.2, 0.5, 1, 2, 5, 10]}, (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, INF)),  # ints accepted
    ({"buckets": (0.5, 1.0, INF)}, (0.5, 1.0, INF)),  # a given +Inf is not doubled
    ({"min": 0.1, "max": 10, "factor": 1.2}, fastprom.exponential_buckets(0.1, 1.2, 10.0)),
    ({"min": 1, "max": 100, "factor": 2}, (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 100.0, INF)),
    ({"min": 0.005, "max": 180.0, "factor": 2.0, "buckets": None}, fastprom.exponential_buckets(0.005, 2.0, 180.0)),
])
def test_duration_config(duration, expected):
    assert resolve_duration_buckets(duration) == tuple(expected)
    mw = ServiceMetricsMiddleware(build_app(), duration=duration, registry=fastprom.CollectorRegistry())
    assert mw.metrics.request_duration._upper_bounds == list(expected)


def test_documented_exponential_example():
    # BentoML's docs: {"min": 0.1, "max": 10, "factor": 1.2} -> 26 bounds, then 10 and +Inf
    buckets = resolve_duration_buckets({"min": 0.1, "max": 10, "factor": 1.2})
    assert len(buckets) == 28 and buckets[0] == 0.1 and buckets[-2:] == (10.0, INF)


@pytest.mark.parametrize("kwargs, message", [
    ({"duration": {"buckets": [1.0], "min": 0.1}}, "mutually exclusive"),
    ({"duration": {"buckets": [1.0], "min": 0.1, "max": 1.0, "factor": 2.0}}, "mutually exclusive"),
    ({"duration": {"buckets": [], "factor": 2.0}}, "mutually exclusive"),
    ({"duration": {"min": 0.1, "max": 10.0}}, "missing factor"),
    ({"duration": {"factor": 2.0}}, "missing min, max"),
    ({"duration": {"min": 0.1, "max": 10.0, "factor": 1.0}}, "factor must be > 1"),
    ({"duration": {"min": 0.1, "max": 10.0, "factor": 0.5}}, "factor must be > 1"),
    ({"duration": {"min": 10.0, "max": 10.0, "factor": 2.0}}, "min must be < max"),
    ({"duration": {"min": 5.0, "max": 1.0, "factor": 2.0}}, "min must be < max"),
    ({"duration": {"min": 0.0, "max": 1.0, "factor": 2.0}}, "min must be > 0"),
    ({"duration": {"min": -1, "max": 1.0, "factor": 2.0}}, "min must be > 0"),
    ({"duration": {"min": "0.1", "max": 1.0, "factor": 2.0}}, "min must be a number"),
    ({"duration": {"min": 0.1, "max": INF, "factor": 2.0}}, "max must be finite"),
    ({"duration": {"min": True, "max": 2.0, "factor": 2.0}}, "min must be a number"),
    ({"duration": {"buckets": [0.5, 0.1]}}, "strictly increasing"),
    ({"duration": {"buckets": [0.1, 0.1]}}, "strictly increasing"),
    ({"duration": {"buckets": [0.0, 1.0]}}, "must be > 0"),
    ({"duration": {"buckets": [-1, 1.0]}}, "must be > 0"),
    ({"duration": {"buckets": [0.1, math.nan]}}, "must be finite"),
    ({"duration": {"buckets": [0.1, "1"]}}, "must be a number"),
    ({"duration": {"buckets": "0.1,1"}}, "must be a list"),
    ({"duration": {"bucket": [1.0]}}, "unknown keys ['bucket']"),
    ({"duration": [1.0, 2.0]}, "duration must be a dict"),
    ({"enabled": "yes"}, "enabled must be True or False"),
    ({"namespace": "bad-name"}, "namespace must be"),
    ({"namespace": 3}, "namespace must be"),
    ({"skip_paths": "/healthz"}, "skip_paths must be a list"),
    ({"skip_paths": ["healthz"]}, "starting with '/'"),
    ({"routes": ["/ok", "nope"]}, "starting with '/'"),
    ({"routes": ["/items/{id:nope}"]}, "not a valid Starlette path template"),
])
def test_bad_configuration_fails_at_construction(kwargs, message):
    with pytest.raises(ValueError) as info:
        ServiceMetricsMiddleware(build_app(), registry=None, **kwargs)
    assert message in str(info.value)


def test_bentoml_config_dict_is_accepted(registry):
    config = {"enabled": True, "namespace": "svc_metrics", "duration": {"min": 0.01, "max": 1.0, "factor": 10.0}}
    mw = ServiceMetricsMiddleware(build_app(), registry=registry, **config)
    assert mw.metrics.request_duration._upper_bounds == [0.01, 0.1, 1.0, INF]


@needs_bentoml
def test_duration_resolution_matches_bentoml():
    """For every config BentoML accepts and resolves without silently ignoring a part."""
    configs = [
        {"buckets": None, "min": None, "max": None, "factor": None},
        {"buckets": [], "min": None, "max": None, "factor": None},
        {"buckets": [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0], "min": None, "max": None, "factor": None},
        {"buckets": None, "min": 0.1, "max": 10.0, "factor": 1.2},
        {"buckets": None, "min": 0.005, "max": 10.0, "factor": 2.0},
        {"buckets": None, "min": 1.0, "max": 100000.0, "factor": 1.1},  # capped at 100 bounds
    ]
    out = subprocess.run([sys.executable, os.path.join(TESTS_DIR, "service_apps.py"), "bentoml-buckets"],
                         input=json.dumps(configs), capture_output=True, text=True, timeout=120, check=True)
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    assert [list(resolve_duration_buckets(c)) for c in configs] == theirs


# ---------------------------------------------------------------------------
# Sharing a namespace, clashes
# ---------------------------------------------------------------------------

def test_two_middlewares_share_a_namespace(registry):
    first = middleware(registry)
    second = middleware(registry, service_name="other", runner_name="Other")
    asyncio.run(call_http(first, "GET", "/hello"))
    asyncio.run(call_http(second, "GET", "/hello"))
    assert first.metrics is second.metrics
    for service in ("svc", "other"):
        hello = [v for k, v in series(registry, f"{NS}_request_total").items()
                 if dict(k)["service_name"] == service and dict(k)["endpoint"] == "/hello"
                 and dict(k)["http_response_code"] == "200"]
        assert hello == [1.0], service
    middleware(registry, namespace="elsewhere").setup()  # another namespace: its own metrics
    assert "elsewhere_request" in {f.name for f in registry.collect()}


def test_same_namespace_with_other_buckets_is_a_clear_error(registry):
    first = middleware(registry)
    early = middleware(registry, duration={"buckets": [1.0, 2.0]})  # nothing exists yet
    first.setup()
    with pytest.raises(ValueError, match="already has duration buckets"):
        middleware(registry, duration={"buckets": [1.0, 2.0]})  # at construction
    with pytest.raises(ValueError, match="already has duration buckets"):
        asyncio.run(call_http(early, "GET", "/hello"))  # at its first call, the same error
    assert middleware(registry, duration={}).metrics is first.metrics  # same buckets: shared


def test_clash_with_another_collector_is_a_clear_error(registry):
    fastprom.Gauge(f"{NS}_request_in_progress", "someone else's", registry=registry)
    mw = middleware(registry)
    with pytest.raises(ValueError, match="already registered in registry .* by another collector") as info:
        mw.setup()
    assert f"{NS}_request_in_progress" in str(info.value)
    # nothing left half-registered: another namespace works, and so does this one after cleanup
    assert [f.name for f in registry.collect()] == [f"{NS}_request_in_progress"]
    middleware(registry, namespace="free").setup()


# ---------------------------------------------------------------------------
# adaptive_batch_size
# ---------------------------------------------------------------------------

def test_adaptive_batch_size(registry):
    mw = middleware(registry, namespace="ignored_here")
    hist = mw.adaptive_batch_size(100)
    assert hist is adaptive_batch_size_histogram(100, registry=registry)
    assert hist._upper_bounds == [1, 2, 4, 8, 16, 32, 64, 100, INF]
    assert list(hist._labelnames) == ["runner_name", "worker_index", "method_name", "service_version",
                                      "service_name"]
    hist.labels(runner_name="Svc", worker_index=1, method_name="predict", service_version="not available",
                service_name="svc").observe(3)
    family = next(f for f in registry.collect() if f.name == "bentoml_service_adaptive_batch_size")
    assert (family.type, family.documentation) == ("histogram", "Service adaptive batch size")
    labels = {"runner_name": "Svc", "worker_index": "1", "method_name": "predict",
              "service_version": "not available", "service_name": "svc"}
    assert registry.get_sample_value("bentoml_service_adaptive_batch_size_bucket", {**labels, "le": "2.0"}) == 0
    assert registry.get_sample_value("bentoml_service_adaptive_batch_size_bucket", {**labels, "le": "4.0"}) == 1
    small = adaptive_batch_size_histogram(16, registry=fastprom.CollectorRegistry())
    assert small._upper_bounds == [1, 2, 4, 8, 16, INF]
    with pytest.raises(ValueError, match="already exists"):
        mw.adaptive_batch_size(16)
    for bad in (1, 0, 2.5, True, "8"):
        with pytest.raises(ValueError, match="max_batch_size must be an integer > 1"):
            adaptive_batch_size_histogram(bad, registry=None)


# ---------------------------------------------------------------------------
# Multiprocess mode, in process
# ---------------------------------------------------------------------------

def test_multiprocess_files_and_collector(tmp_path, monkeypatch):
    registry = fastprom.CollectorRegistry()
    mw = middleware(registry)  # built before the variable is set: metrics are made at the first call
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    asyncio.run(run_scenario(mw))
    mw.adaptive_batch_size(8).labels("Svc", 1, "predict", "1.2.3", "svc").observe(2)
    pid = os.getpid()
    assert {f"counter_{pid}.db", f"histogram_{pid}.db", f"gauge_livesum_{pid}.db", f"gauge_all_{pid}.db",
            f"summary_{pid}.db"} <= set(os.listdir(tmp_path))
    merged = fastprom.CollectorRegistry()
    MultiProcessCollector(merged, path=str(tmp_path))
    text = fastprom.generate_latest(merged).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == {f"{NS}_request", f"{NS}_request_duration_seconds", f"{NS}_request_in_progress",
                             f"{NS}_last_request_timestamp_seconds", f"{NS}_websocket_connections",
                             f"{NS}_websocket_data_received", f"{NS}_websocket_data_sent",
                             "bentoml_service_adaptive_batch_size"}
    assert merged.get_sample_value(f"{NS}_request_total", {**LABELS, "endpoint": "/hello",
                                                          "http_response_code": "200"}) == 3
    assert merged.get_sample_value(f"{NS}_request_total", {**LABELS, "endpoint": "/hello",
                                                          "http_response_code": "500"}) == 0
    stamp = [s for s in families[f"{NS}_last_request_timestamp_seconds"].samples]
    assert [s.labels["pid"] for s in stamp] == [str(pid)]  # mode "all"
    assert all(s.value == 0 for s in families[f"{NS}_request_in_progress"].samples)  # livesum
    assert not any(s.name.endswith("_created") for f in families.values() for s in f.samples)


def test_changed_multiprocess_dir_is_a_clear_error(registry, tmp_path, monkeypatch):
    middleware(registry).setup()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="was created with PROMETHEUS_MULTIPROC_DIR=None"):
        middleware(registry)


# ---------------------------------------------------------------------------
# Against BentoML's own middleware
# ---------------------------------------------------------------------------

def _comparable(text, endpoint_label):
    """{(family, type, help)} and {(sample name, labels) : value} with endpoint labels mapped
    (summed when several raw paths map to one label); timestamps and duration sums dropped."""
    families, values = set(), collections.Counter()
    for family in text_string_to_metric_families(text):
        families.add((family.name, family.type, family.documentation))
        for s in family.samples:
            labels = dict(s.labels)
            if "endpoint" in labels:
                labels["endpoint"] = endpoint_label[labels["endpoint"]]
            value = s.value
            if s.name.endswith("_last_request_timestamp_seconds"):
                value = 1.0 if s.value > 1e9 else s.value
            if s.name.endswith("_request_duration_seconds_sum"):
                value = 0.0
            values[(s.name, frozenset(labels.items()))] += value
    return families, values


@needs_bentoml
def test_same_exposition_as_bentoml(tmp_path):
    ref_dir, fast_dir = tmp_path / "bentoml", tmp_path / "fastprom"
    ref_dir.mkdir()
    fast_dir.mkdir()
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(ref_dir))
    out = subprocess.run([sys.executable, os.path.join(TESTS_DIR, "service_apps.py"), "bentoml-diff", str(fast_dir)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ref_statuses"] == result["fast_statuses"]
    labels = result["labels"]
    assert labels["/items/1"] == "/items/{id}" and labels["/nope/1"] == "__unknown__"
    identity = {label: label for label in labels.values()}
    ref_families, ref_values = _comparable(result["ref"], {**identity, **labels})
    fast_families, fast_values = _comparable(result["fast"], identity)
    assert fast_families == ref_families
    assert fast_values == ref_values
    # the raw texts: same families in the same order (multiprocess merge order)
    names = [line for line in result["ref"].splitlines() if line.startswith("# ")]
    assert [line for line in result["fast"].splitlines() if line.startswith("# ")] == names


# ---------------------------------------------------------------------------
# Real uvicorn
# ---------------------------------------------------------------------------

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 20.0


def free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rfind(b")") + 2:].split()[1]) == pid:
                out.append(int(entry))
    return out


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def get(port, path, method="GET", body=None):
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@contextlib.contextmanager
def uvicorn_server(tmp_path, workers=None, multiproc_dir=None):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    if multiproc_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", TESTS_DIR, "service_apps:app",
            "--host", LOOPBACK, "--port", str(port), "--log-level", "warning"]
    if workers:
        argv += ["--workers", str(workers)]
    log_path = tmp_path / "uvicorn.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"uvicorn exited: {log_path.read_text()[-3000:]}")
            try:
                return get(port, "/metrics")[0] == 200
            except OSError:
                return False
        wait_until(ready, START_TIMEOUT, "uvicorn to answer /metrics")
        yield port, proc
    finally:
        stop(proc)


def stop(proc):
    """SIGTERM the server, then SIGKILL it and its workers (by pid) if it lingers."""
    workers = children_of(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def scrape(port):
    status, body = get(port, "/metrics")
    assert status == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(body.decode()) for s in f.samples}


def sample(samples, name, **labels):
    wanted = {**LABELS, **labels}
    matches = [v for (n, ls), v in samples.items() if n == name and dict(ls) == {**dict(ls), **wanted}
               and set(dict(ls)) - {"pid"} == set(wanted)]
    assert len(matches) <= 1, (name, labels, matches)
    return matches[0] if matches else None


def send_load(port, hello=30, items=20, missing=10):
    for _ in range(hello):
        assert get(port, "/hello")[0] == 200
    for i in range(items):
        assert get(port, f"/items/{i}")[0] == 200
    for i in range(missing):
        assert get(port, f"/missing/{i}")[0] == 404
    return {("/hello", "200"): hello, ("/items/{id}", "200"): items, ("__unknown__", "404"): missing}


def check_counts(port, expected):
    def in_progress_settled():
        samples = scrape(port)
        gauges = [v for (n, _), v in samples.items() if n == f"{NS}_request_in_progress"]
        return samples if gauges and all(v == 0 for v in gauges) else None

    samples = wait_until(in_progress_settled, 10, "request_in_progress back to 0")
    for (endpoint, code), count in expected.items():
        labels = dict(endpoint=endpoint, http_response_code=code)
        assert sample(samples, f"{NS}_request_total", **labels) == count, labels
        assert sample(samples, f"{NS}_request_duration_seconds_count", **labels) == count, labels
    for route in ("/fail", "/stream", "/sub/ping"):  # zero-initialised, never requested
        for code in ("200", "500"):
            assert sample(samples, f"{NS}_request_total", endpoint=route, http_response_code=code) == 0
    assert not any(dict(ls).get("endpoint", "").startswith("/missing") for _, ls in samples)
    assert not any(dict(ls).get("endpoint") == "/metrics" for _, ls in samples)
    return samples


def test_uvicorn_single_process(tmp_path):
    with uvicorn_server(tmp_path) as (port, _):
        expected = send_load(port)
        samples = check_counts(port, expected)
        stamps = [v for (n, _), v in samples.items() if n == f"{NS}_last_request_timestamp_seconds"]
        assert len(stamps) == 1 and abs(stamps[0] - time.time()) < 60


def test_uvicorn_two_workers_multiprocess(tmp_path):
    directory = tmp_path / "multiproc"
    directory.mkdir()
    with uvicorn_server(tmp_path, workers=2, multiproc_dir=directory) as (port, proc):
        # Each worker creates the metrics at its lifespan startup (zero-initialised routes).
        def counter_files():
            pids = {int(name[len("counter_"):-3]) for name in os.listdir(directory) if name.startswith("counter_")}
            return pids if len(pids) >= 2 else None
        writer_pids = wait_until(counter_files, START_TIMEOUT, "both workers' counter files")
        assert writer_pids <= set(children_of(proc.pid)), (writer_pids, children_of(proc.pid))

        expected = send_load(port)
        samples = check_counts(port, expected)
        stamps = {dict(ls)["pid"] for (n, ls), _ in samples.items() if n == f"{NS}_last_request_timestamp_seconds"}
        assert stamps and {int(pid) for pid in stamps} <= writer_pids
        assert {f for f in os.listdir(directory) if f.startswith("gauge_livesum_")}
        assert not any(n.endswith("_created") for n, _ in samples)
