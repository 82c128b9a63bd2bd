"""Apps, an in-process ASGI driver and scripts for the ServiceMetricsMiddleware tests.

Used in three ways:

* imported by ``tests/test_service_middleware.py`` for ``build_app()`` and the driver
  (``call_http``, ``call_websocket``, ``run_lifespan``, ``run_scenario``);
* ``uvicorn --app-dir tests service_apps:app`` - the Starlette app wrapped in
  ``fastprom.asgi.ServiceMetricsMiddleware``; ``/metrics`` is ``fastprom.make_asgi_app``
  on the default registry, or on a registry with a ``MultiProcessCollector`` when
  ``PROMETHEUS_MULTIPROC_DIR`` is set (uvicorn ``--workers 2``);
* ``python tests/service_apps.py bentoml-diff DIR`` - runs ``SCENARIO`` through BentoML's
  own ``RunnerTrafficMetricsMiddleware`` (prometheus_client multiprocess mode, the
  directory in ``PROMETHEUS_MULTIPROC_DIR``, set before this process starts) and through
  ours (multiprocess files in DIR), and prints both expositions as JSON;
  ``python tests/service_apps.py bentoml-buckets`` prints BentoML's resolution of the
  ``duration`` configs given as JSON on stdin.

Top-level imports: standard library only; the app is built lazily (module ``__getattr__``).
"""

import asyncio
import json
import os
import sys

SERVICE = dict(service_name="svc", service_version="1.2.3", runner_name="Svc")
# Large first bucket: in-process requests all land in it, whatever the machine's speed.
DIFF_DURATION = {"min": 0.5, "max": 60.0, "factor": 2.0}
STREAM_CHUNKS = (b"a", b"bb", b"ccc")


# ---------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------

class _ASGIEndpoint:
    """Lets a Route serve an ASGI callable (Starlette treats plain functions as handlers)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


def build_app(metrics_app=None, hold=None):
    """A Starlette app with literal and templated routes, streaming, errors, a websocket,
    a health route, a mounted sub-app and (optionally) ``/metrics``.

    ``hold``: an ``asyncio.Event`` that ``GET /hold`` waits for (to look at in-progress)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route, WebSocketRoute

    async def hello(request):
        return PlainTextResponse("hello")

    async def echo(request):
        return Response(await request.body())

    async def item(request):
        return JSONResponse({"id": request.path_params["id"]})

    async def stream(request):
        async def chunks():
            for chunk in STREAM_CHUNKS:
                yield chunk
        return StreamingResponse(chunks())

    async def fail(request):
        return PlainTextResponse("failed", status_code=500)

    async def error(request):
        raise RuntimeError("boom")

    async def health(request):
        return PlainTextResponse("ok")

    async def held(request):
        await hold.wait()
        return PlainTextResponse("released")

    async def ws_echo(websocket):
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await websocket.send_bytes(message["bytes"])
            else:
                await websocket.send_text(message["text"])

    async def sub_ping(request):
        return PlainTextResponse("pong")

    routes = [
        Route("/hello", hello),
        Route("/echo", echo, methods=["POST"]),
        Route("/items/{id:int}", item),
        Route("/stream", stream),
        Route("/fail", fail),
        Route("/error", error),
        Route("/healthz", health),
        WebSocketRoute("/ws", ws_echo),
        Mount("/sub", routes=[Route("/ping", sub_ping)]),
    ]
    if hold is not None:
        routes.append(Route("/hold", held))
    if metrics_app is not None:
        routes.append(Route("/metrics", _ASGIEndpoint(metrics_app)))
    return Starlette(routes=routes)


def _served_app():
    """The app uvicorn serves: build_app() in ServiceMetricsMiddleware, /metrics included."""
    import fastprom
    from fastprom.asgi import ServiceMetricsMiddleware
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from fastprom.multiprocess import MultiProcessCollector
        registry = fastprom.CollectorRegistry()
        MultiProcessCollector(registry)
        metrics_app = fastprom.make_asgi_app(registry)
    else:
        metrics_app = fastprom.make_asgi_app()
    return ServiceMetricsMiddleware(build_app(metrics_app), **SERVICE)


def __getattr__(name):
    if name != "app":
        raise AttributeError(name)
    app = globals()["app"] = _served_app()
    return app


# ---------------------------------------------------------------------------
# In-process ASGI driver
# ---------------------------------------------------------------------------

def _http_scope(method, path, root_path=""):
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": root_path,
        "query_string": b"", "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234), "server": ("testserver", 80),
    }


async def call_http(app, method, path, body=b"", root_path=""):
    """One HTTP request; returns (status, body). An exception from the app is re-raised
    after the response messages were collected."""
    sent = []
    request = {"type": "http.request", "body": body, "more_body": False}
    delivered = False

    async def receive():
        nonlocal delivered
        if not delivered:
            delivered = True
            return request
        await asyncio.sleep(3600)  # the client never disconnects

    async def send(message):
        sent.append(message)

    await app(_http_scope(method, path, root_path), receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def call_websocket(app, path, incoming):
    """A websocket session: connect, then the ``incoming`` messages (text str or bytes),
    then disconnect. Returns the messages the app sent."""
    queue = [{"type": "websocket.connect"}]
    for data in incoming:
        key = "bytes" if isinstance(data, bytes) else "text"
        queue.append({"type": "websocket.receive", key: data})
    queue.append({"type": "websocket.disconnect", "code": 1000})
    sent = []

    async def receive():
        return queue.pop(0)

    async def send(message):
        sent.append(message)

    scope = dict(_http_scope("GET", path), type="websocket", scheme="ws", subprotocols=[])
    await app(scope, receive, send)
    return sent


async def run_lifespan(app):
    """Startup and shutdown, as uvicorn does (the middleware sets up at the first call)."""
    queue = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []

    async def receive():
        return queue.pop(0)

    async def send(message):
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return [m["type"] for m in sent]


# Requests of the differential test: (kind, method or None, path, payload).
SCENARIO = [
    ("http", "GET", "/hello", b""),
    ("http", "GET", "/hello", b""),
    ("http", "GET", "/hello", b""),
    ("http", "POST", "/echo", b"payload"),
    ("http", "POST", "/echo", b"x" * 1000),
    ("http", "GET", "/echo", b""),             # 405
    ("http", "GET", "/items/1", b""),
    ("http", "GET", "/items/2", b""),
    ("http", "GET", "/items/x", b""),          # 404: the int convertor does not match
    ("http", "GET", "/stream", b""),
    ("http", "GET", "/fail", b""),
    ("http", "GET", "/error", b""),            # raises: Starlette answers 500, then re-raises
    ("http", "GET", "/healthz", b""),
    ("http", "GET", "/healthz/deep", b""),     # 404, and a skip path by prefix
    ("http", "GET", "/sub/ping", b""),
    ("http", "GET", "/nope/1", b""),
    ("http", "GET", "/nope/2", b""),
    ("http", "GET", "/metrics", b""),          # passed through unmeasured
    ("http", "GET", "/x/metrics", b""),        # measured (404)
    ("ws", None, "/ws", ["hello", b"abc", "\u00e9t\u00e9"]),
]


async def run_scenario(app, scenario=SCENARIO):
    """Lifespan, then every request of the scenario; returns the HTTP statuses."""
    await run_lifespan(app)
    statuses = []
    for kind, method, path, payload in scenario:
        if kind == "ws":
            await call_websocket(app, path, payload)
            continue
        try:
            status, _ = await call_http(app, method, path, payload)
        except RuntimeError:
            status = 500
        statuses.append((path, status))
    return statuses


# ---------------------------------------------------------------------------
# Scripts (BentoML side of the differential tests)
# ---------------------------------------------------------------------------

def _bentoml_container():
    from bentoml._internal.configuration.containers import BentoMLContainer
    return BentoMLContainer


def _bentoml_buckets(duration):
    import simple_di
    container = _bentoml_container()
    container.config.api_server.metrics.duration.set(duration)
    container.duration_buckets._cache = simple_di.providers.sentinel  # it memoises
    return container.duration_buckets.get()


def _bentoml_diff(fast_dir):
    """Exposition of BentoML's middleware (prometheus_client, PROMETHEUS_MULTIPROC_DIR) and
    of ours (fastprom, files in fast_dir) after the same scenario."""
    from bentoml._internal.context import server_context
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware
    import fastprom
    from fastprom.asgi import DEFAULT_SKIP_PATHS, ServiceMetricsMiddleware
    from fastprom.multiprocess import MultiProcessCollector

    ours = ServiceMetricsMiddleware(build_app(_PlainMetrics()), duration=DIFF_DURATION,
                                   registry=None, **SERVICE)
    # BentoML takes the label values and the zero-initialised routes from its server context.
    server_context.bento_name = SERVICE["service_name"]
    server_context.bento_version = SERVICE["service_version"]
    server_context.service_name = SERVICE["runner_name"]
    server_context.service_routes = ours.known_routes()
    _bentoml_buckets(dict(DIFF_DURATION, buckets=None))
    theirs = RunnerTrafficMetricsMiddleware(build_app(_PlainMetrics()), namespace="bentoml_service",
                                            skip_paths=list(DEFAULT_SKIP_PATHS))
    ref_statuses = asyncio.run(run_scenario(theirs))
    ref_text = theirs.metrics_client.generate_latest().decode()

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = fast_dir  # fastprom decides when metrics are made
    fast_statuses = asyncio.run(run_scenario(ours))
    registry = fastprom.CollectorRegistry()
    MultiProcessCollector(registry, path=fast_dir)
    fast_text = fastprom.generate_latest(registry).decode()
    paths = sorted({path for _, _, path, _ in SCENARIO})
    return {
        "ref": ref_text, "fast": fast_text, "ref_statuses": ref_statuses, "fast_statuses": fast_statuses,
        "labels": {path: ours.endpoint_label(path) for path in paths}, "pid": os.getpid(),
    }


class _PlainMetrics:
    """A stand-in /metrics endpoint (what the inner app serves does not matter here)."""

    async def __call__(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"metrics"})


def main(argv):
    if argv[:1] == ["bentoml-diff"]:
        print(json.dumps(_bentoml_diff(argv[1])))
    elif argv[:1] == ["bentoml-buckets"]:
        configs = json.load(sys.stdin)
        print(json.dumps([list(_bentoml_buckets(c)) for c in configs]))
    else:
        raise SystemExit(f"usage: {sys.argv[0]} bentoml-diff DIR | bentoml-buckets < configs.json")
    sys.stdout.flush()
    os._exit(0)  # skip teardown: BentoML's PrometheusClient.__del__ fails noisily there


if __name__ == "__main__":
    main(sys.argv[1:])
