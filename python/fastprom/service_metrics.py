"""BentoML's default service metrics for any ASGI app: `ServiceMetricsMiddleware`, its
configuration helpers and `adaptive_batch_size_histogram`.

fastprom's own addition, not part of prometheus_client. `fastprom.asgi` re-exports these names.
"""

import re
import threading
from time import time
from timeit import default_timer
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .buckets import check_number, DEFAULT_DURATION_BUCKETS, exponential_buckets, INF
from .metrics import _multiprocess_dir, Counter, Gauge, Histogram, Summary
from .registry import DuplicateTimeseries, REGISTRY


# ---------------------------------------------------------------------------
# ServiceMetricsMiddleware: BentoML's default service metrics for any ASGI app
# ---------------------------------------------------------------------------
#
# The metrics, labels, HELP texts, multiprocess modes and timing rules are those of BentoML
# 1.4's RunnerTrafficMetricsMiddleware (bentoml/_internal/server/http/instruments.py), as
# installed for a `@bentoml.service`. The differences are in configuration (checked when the
# middleware is built) and in the `endpoint` label, which is bounded: a route of the app, or
# one shared value for every other path.

DEFAULT_NAMESPACE = "bentoml_service"
# BentoML's `logging.access.skip_paths` plus the service's default livez endpoint.
DEFAULT_SKIP_PATHS = ("/metrics", "/healthz", "/livez", "/readyz", "/health")
DEFAULT_SERVICE_VERSION = "not available"
# Label value of every path that is not a route; it cannot be a real path (no leading "/").
UNKNOWN_ENDPOINT = "__unknown__"
# Served through unmeasured, like BentoML (exact match, HTTP only).
METRICS_PATH = "/metrics"
DEFAULT_MAX_BATCH_SIZE = 100

_ENDPOINT_LABELS = ("endpoint", "service_name", "service_version", "runner_name")
_RESPONSE_LABELS = ("endpoint", "service_name", "service_version", "http_response_code", "runner_name")
_SERVICE_LABELS = ("service_name", "service_version", "runner_name")
_BATCH_LABELS = ("runner_name", "worker_index", "method_name", "service_version", "service_name")
_NAMESPACE_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
# Resolved paths remembered per middleware; beyond this, unknown paths are matched each time.
_MAX_CACHED_PATHS = 10_000


# --- configuration ---------------------------------------------------------

def _config_number(name: str, value) -> float:
    return float(check_number(f"duration: {name}", value))


def _exponential_duration(duration: Mapping) -> Tuple[float, ...]:
    missing = [key for key in ("min", "max", "factor") if duration.get(key) is None]
    if missing:
        raise ValueError("duration: 'min', 'max' and 'factor' must be set together; "
                         f"missing {', '.join(missing)}")
    low = _config_number("min", duration["min"])
    high = _config_number("max", duration["max"])
    factor = _config_number("factor", duration["factor"])
    if low <= 0:
        raise ValueError(f"duration: min must be > 0, got {duration['min']!r}")
    if factor <= 1:
        raise ValueError(f"duration: factor must be > 1, got {duration['factor']!r}")
    if low >= high:
        raise ValueError(f"duration: min must be < max, got min={duration['min']!r}, max={duration['max']!r}")
    return exponential_buckets(low, factor, high)


def _explicit_duration(buckets) -> Tuple[float, ...]:
    if isinstance(buckets, (str, bytes)) or not isinstance(buckets, Iterable):
        raise ValueError(f"duration: buckets must be a list of numbers, got {buckets!r}")
    values = list(buckets)
    if values and values[-1] == INF:
        values.pop()  # +Inf is appended below; a given one is not doubled
    bounds = [_config_number(f"buckets[{i}]", value) for i, value in enumerate(values)]
    if any(bound <= 0 for bound in bounds):
        raise ValueError(f"duration: buckets must be > 0, got {list(buckets)!r}")
    if any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise ValueError(f"duration: buckets must be strictly increasing, got {list(buckets)!r}")
    return (*bounds, INF)


def resolve_duration_buckets(duration: Optional[Mapping] = None) -> Tuple[float, ...]:
    """The `request_duration_seconds` buckets for a BentoML `metrics.duration` setting.

    `{"buckets": [...]}` gives the list plus +Inf; `{"min", "max", "factor"}` gives
    `exponential_buckets(min, factor, max)`; nothing (None, {} or empty buckets) gives
    `DEFAULT_DURATION_BUCKETS`. Integers are accepted. Unlike BentoML, which silently prefers
    one or falls back to the default, a mix of both forms or a partial min/max/factor raises
    ValueError, as do non-positive, unsorted or non-finite values.
    """
    if duration is None:
        return DEFAULT_DURATION_BUCKETS
    if not isinstance(duration, Mapping):
        raise ValueError(f"duration must be a dict with 'buckets' or 'min', 'max' and 'factor', got {duration!r}")
    unknown = sorted(set(duration) - {"buckets", "min", "max", "factor"})
    if unknown:
        raise ValueError(f"duration: unknown keys {unknown}; expected 'buckets' or 'min', 'max' and 'factor'")
    buckets = duration.get("buckets")
    exponential = [key for key in ("min", "max", "factor") if duration.get(key) is not None]
    if buckets is not None and exponential:
        raise ValueError("duration: 'buckets' and 'min'/'max'/'factor' are mutually exclusive; "
                         f"got buckets and {', '.join(exponential)}")
    if exponential:
        return _exponential_duration(duration)
    if buckets is None or (isinstance(buckets, (list, tuple)) and not buckets):
        return DEFAULT_DURATION_BUCKETS
    return _explicit_duration(buckets)


def _check_namespace(namespace) -> str:
    if not isinstance(namespace, str) or (namespace and not _NAMESPACE_RE.match(namespace)):
        raise ValueError(f"namespace must be a metric name prefix matching {_NAMESPACE_RE.pattern}, "
                         f"got {namespace!r}")
    return namespace


def _check_paths(name: str, paths) -> Tuple[str, ...]:
    if isinstance(paths, (str, bytes)) or not isinstance(paths, Iterable):
        raise ValueError(f"{name} must be a list of paths, got {paths!r}")
    paths = tuple(paths)
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"{name}: every path must be a string starting with '/', got {path!r}")
    return paths


# --- endpoint labels -------------------------------------------------------

class _Endpoints:
    """Maps a request path to its `endpoint` label: a route of the app, or `unknown`.

    Literal routes are looked up in a dict; templated ones (`/items/{id}`, mounts) are
    matched with Starlette's regexes, in declaration order, and labelled by their template.
    """

    def __init__(self, literal: Dict[str, str], patterns: List[Tuple["re.Pattern", str]],
                 zero_routes: List[str], unknown: str):
        self.literal = literal
        self.patterns = patterns
        self.zero_routes = zero_routes  # the routes whose request_total starts at 0
        self.unknown = unknown
        self.cache: Dict[str, str] = dict(literal)  # path -> label, bounded

    def label(self, path: str, root_path: str) -> str:
        # Keyed by path alone: root_path is the same for every request of a server.
        label = self.cache.get(path)
        if label is None:
            label = self._match(path, root_path)
            if len(self.cache) < _MAX_CACHED_PATHS:
                self.cache[path] = label
        return label

    def _match(self, path: str, root_path: str) -> str:
        # Starlette matches routes on the path below root_path (uvicorn --root-path).
        if root_path and path.startswith(root_path):
            path = path[len(root_path):]
            if path in self.literal:
                return self.literal[path]
        for regex, label in self.patterns:
            if regex.match(path):
                return label
        return self.unknown


def _compile_template(path: str) -> Tuple["re.Pattern", str]:
    try:
        from starlette.routing import compile_path
    except ImportError as exc:  # pragma: no cover - starlette is there whenever app.routes is
        raise ValueError(f"route {path!r} has parameters, which need starlette installed") from exc
    try:
        regex, path_format, _ = compile_path(path)
    except (AssertionError, ValueError) as exc:  # e.g. an unknown convertor
        raise ValueError(f"route {path!r} is not a valid Starlette path template: {exc}") from exc
    return regex, path_format


def _add_route(path: str, endpoints: Tuple[dict, list], zero_routes: Optional[list]) -> None:
    literal, patterns = endpoints
    if "{" in path:
        regex, label = _compile_template(path)
        patterns.append((regex, label))
    else:
        label = path
        literal.setdefault(path, path)
    if zero_routes is not None and label != METRICS_PATH and label not in zero_routes:
        zero_routes.append(label)


def _routes_of(app, depth: int = 8):
    """`app.routes`, looking through wrapping middlewares (`.app`), or None."""
    for _ in range(depth):
        routes = getattr(app, "routes", None)
        if routes is not None:
            return routes
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def _walk_routes(routes, prefix: str, endpoints, zero_routes: list) -> None:
    for route in routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            continue  # Host routes, custom routes without a path
        if hasattr(route, "endpoint"):  # Route (HTTP, has methods) or WebSocketRoute
            is_http = hasattr(route, "methods")
            _add_route(prefix + path, endpoints, zero_routes if is_http else None)
            continue
        sub_routes = _routes_of(getattr(route, "app", None))
        if sub_routes:  # a Mount of an app or router with routes
            _walk_routes(sub_routes, prefix + path, endpoints, zero_routes)
        else:  # a Mount of an opaque app (static files, a metrics app): one label for all
            _add_route(prefix + path + "/{path:path}", endpoints, None)


def _build_endpoints(app, routes, unknown: str) -> _Endpoints:
    literal: Dict[str, str] = {}
    patterns: List[Tuple["re.Pattern", str]] = []
    zero_routes: List[str] = []
    if routes is not None:
        for path in routes:
            _add_route(path, (literal, patterns), zero_routes)
    else:
        discovered = _routes_of(app)
        if discovered is not None:
            _walk_routes(discovered, "", (literal, patterns), zero_routes)
    return _Endpoints(literal, patterns, zero_routes, unknown)


# --- metric objects --------------------------------------------------------

class _ServiceMetrics:
    """The metric objects of one namespace in one registry (shared by its middlewares)."""

    def __init__(self, namespace: str, buckets: Tuple[float, ...], registry):
        self.namespace = namespace
        self.buckets = buckets
        self.registry = registry
        self._created: list = []
        try:
            self._create(buckets)
        except BaseException:
            if registry is not None:
                for metric in self._created:  # leave the registry as it was
                    registry.unregister(metric)
            raise
        del self._created

    def _new(self, cls, **kwargs):
        metric = cls(namespace=self.namespace, registry=self.registry, **kwargs)
        self._created.append(metric)
        return metric

    def _create(self, buckets: Tuple[float, ...]) -> None:
        # Same order, names, HELP texts and modes as BentoML's _setup().
        self.request_duration = self._new(
            Histogram, name="request_duration_seconds", documentation="runner RPC duration in seconds",
            labelnames=_RESPONSE_LABELS, buckets=buckets)
        self.request_total = self._new(
            Counter, name="request_total", documentation="Total number of runner RPC",
            labelnames=_RESPONSE_LABELS)
        self.request_in_progress = self._new(
            Gauge, name="request_in_progress", documentation="Total number of runner RPC in progress now",
            labelnames=_ENDPOINT_LABELS, multiprocess_mode="livesum")
        self.websocket_connections = self._new(
            Gauge, name="websocket_connections", documentation="Total number of websocket connections",
            labelnames=_ENDPOINT_LABELS, multiprocess_mode="livesum")
        self.websocket_data_received = self._new(
            Summary, name="websocket_data_received",
            documentation="Total number of bytes received from websocket", labelnames=_ENDPOINT_LABELS)
        self.websocket_data_sent = self._new(
            Summary, name="websocket_data_sent", documentation="Total number of bytes sent to websocket",
            labelnames=_ENDPOINT_LABELS)
        self.last_request_timestamp = self._new(
            Gauge, name="last_request_timestamp_seconds", documentation="Timestamp of the last received request",
            labelnames=_SERVICE_LABELS)
        # Each metric read the variable as it was created; these just were.
        self.multiprocess_dir = _multiprocess_dir()


_shared_lock = threading.Lock()
_shared_service_metrics: Dict[Tuple[int, str], _ServiceMetrics] = {}
_shared_batch_histograms: Dict[int, Tuple[object, Tuple[float, ...], Histogram]] = {}


def _describe_registry(registry) -> str:
    return "the default REGISTRY" if registry is REGISTRY else f"registry {registry!r}"


def _service_metrics(namespace: str, buckets: Tuple[float, ...], registry) -> _ServiceMetrics:
    """The metrics of `namespace` in `registry`: created once, then reused when compatible."""
    key = (id(registry), namespace)
    with _shared_lock:
        metrics = _shared_service_metrics.get(key)
        if metrics is not None and metrics.registry is registry:
            _check_reusable(metrics, buckets)
            return metrics
        try:
            metrics = _ServiceMetrics(namespace, buckets, registry)
        except DuplicateTimeseries as exc:
            raise ValueError(
                f"ServiceMetricsMiddleware: {sorted(exc.duplicates)} already registered in "
                f"{_describe_registry(registry)} by another collector; pass another namespace= or registry="
            ) from exc
        _shared_service_metrics[key] = metrics
        return metrics


def _check_shared(namespace: str, buckets: Tuple[float, ...], registry) -> None:
    """Raise now, rather than at the first request, if the namespace's metrics already exist
    in the registry and cannot be shared."""
    with _shared_lock:
        metrics = _shared_service_metrics.get((id(registry), namespace))
        if metrics is not None and metrics.registry is registry:
            _check_reusable(metrics, buckets)


def _check_reusable(metrics: _ServiceMetrics, buckets: Tuple[float, ...]) -> None:
    where = f"namespace {metrics.namespace!r} in {_describe_registry(metrics.registry)}"
    if metrics.buckets != buckets:
        raise ValueError(f"ServiceMetricsMiddleware: {where} already has duration buckets {metrics.buckets}, "
                         f"not {buckets}; use the same duration config or another namespace/registry")
    if metrics.multiprocess_dir != _multiprocess_dir():
        raise ValueError(f"ServiceMetricsMiddleware: {where} was created with PROMETHEUS_MULTIPROC_DIR="
                         f"{metrics.multiprocess_dir!r}, now it is {_multiprocess_dir()!r}; use another registry")


def adaptive_batch_size_histogram(max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                                  registry=REGISTRY) -> Histogram:
    """BentoML's `bentoml_service_adaptive_batch_size` histogram.

    Labels `runner_name, worker_index, method_name, service_version, service_name`; buckets
    `exponential_buckets(1, 2, max_batch_size)` (BentoML passes the largest max_batch_size of
    the service's batchable methods); the namespace is always `bentoml_service`, as in BentoML.
    Observe the number of requests merged into one dispatch:

        hist.labels(runner_name="Svc", worker_index=1, method_name="predict",
                    service_version="not available", service_name="Svc").observe(len(batch))

    Asking again for the same registry returns the same histogram (a different
    max_batch_size raises ValueError).
    """
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 2:
        raise ValueError(f"max_batch_size must be an integer > 1, got {max_batch_size!r}")
    buckets = exponential_buckets(1, 2, max_batch_size)
    with _shared_lock:
        shared = _shared_batch_histograms.get(id(registry))
        if shared is not None and shared[0] is registry:
            _, shared_buckets, hist = shared
            if shared_buckets != buckets:
                raise ValueError(f"bentoml_service_adaptive_batch_size already exists in "
                                 f"{_describe_registry(registry)} with buckets {shared_buckets}; "
                                 f"max_batch_size={max_batch_size} would need {buckets}")
            return hist
        try:
            hist = Histogram(namespace="bentoml_service", name="adaptive_batch_size",
                             documentation="Service adaptive batch size", labelnames=_BATCH_LABELS,
                             buckets=buckets, registry=registry)
        except DuplicateTimeseries as exc:
            raise ValueError(f"bentoml_service_adaptive_batch_size is already registered in "
                             f"{_describe_registry(registry)} by another collector") from exc
        _shared_batch_histograms[id(registry)] = (registry, buckets, hist)
        return hist


# --- the middleware ----------------------------------------------------------

class _Recorder:
    """One middleware's label values and its children, cached: labels() runs once per series."""

    def __init__(self, metrics: _ServiceMetrics, service: Tuple[str, str], runner_name: str):
        self.metrics = metrics
        self.service = service  # (service_name, service_version)
        self.runner_name = runner_name
        self.last_request = metrics.last_request_timestamp.labels(*service, runner_name)
        self.in_progress: Dict[str, Gauge] = {}
        self.responses: Dict[Tuple[str, int], Tuple[Counter, Histogram]] = {}
        self._websockets: Dict[str, Tuple[Gauge, Summary, Summary]] = {}

    def _endpoint_labels(self, endpoint: str) -> tuple:
        return (endpoint, *self.service, self.runner_name)

    def new_in_progress(self, endpoint: str) -> Gauge:
        child = self.metrics.request_in_progress.labels(*self._endpoint_labels(endpoint))
        self.in_progress[endpoint] = child
        return child

    def new_responses(self, endpoint: str, status: int) -> Tuple[Counter, Histogram]:
        values = (endpoint, *self.service, status, self.runner_name)
        children = (self.metrics.request_total.labels(*values), self.metrics.request_duration.labels(*values))
        self.responses[(endpoint, status)] = children
        return children

    def zero_initialise(self, routes: Iterable[str]) -> None:
        # BentoML exports request_total 0 for 200 and 500 of every route from startup,
        # so that rate() sees the first request.
        for route in routes:
            for status in (200, 500):
                self.metrics.request_total.labels(route, *self.service, status, self.runner_name)

    def websocket(self, endpoint: str) -> Tuple[Gauge, Summary, Summary]:
        children = self._websockets.get(endpoint)
        if children is None:
            values = self._endpoint_labels(endpoint)
            children = (self.metrics.websocket_connections.labels(*values),
                        self.metrics.websocket_data_received.labels(*values),
                        self.metrics.websocket_data_sent.labels(*values))
            self._websockets[endpoint] = children
        return children


def _message_size(message) -> int:
    data = message.get("bytes")
    return len(data) if data is not None else len(message["text"])


class ServiceMetricsMiddleware:
    """BentoML 1.4's default service metrics for any ASGI app.

        app = ServiceMetricsMiddleware(starlette_app, service_name="iris", runner_name="IrisClassifier")

    Records, with BentoML's names, types, labels, HELP texts and multiprocess modes
    (`N` = `namespace`, default `bentoml_service`):

    - `N_request_in_progress` (Gauge, livesum): raised around the inner app call;
    - `N_request_total` (Counter) and `N_request_duration_seconds` (Histogram): on the final
      `http.response.body`, labelled with the response status; `request_total` starts at 0 for
      codes 200 and 500 of every route;
    - `N_last_request_timestamp_seconds` (Gauge, mode all): set at each request whose path
      does not start with one of `skip_paths`;
    - `N_websocket_connections` (Gauge, livesum), `N_websocket_data_received` and
      `N_websocket_data_sent` (Summaries of message sizes).

    The exact path `/metrics` is passed through unmeasured. Lifespan and other scopes pass.

    Arguments (`enabled`, `namespace` and `duration` are BentoML's `metrics` config keys, so
    `ServiceMetricsMiddleware(app, **metrics_config)` works):

    - `enabled`: False makes the middleware a pass-through.
    - `duration`: `{"buckets": [...]}` or `{"min": .., "max": .., "factor": ..}`, see
      `resolve_duration_buckets`; bad values raise ValueError here, not at the first request.
    - `service_name`, `service_version`, `runner_name`: label values (BentoML takes them from
      its server context); `runner_name` defaults to `service_name`.
    - `routes`: the paths used as `endpoint` labels (templates such as `/items/{id}` allowed).
      By default they come from `app.routes` (Starlette/FastAPI, through Mounts and wrapping
      middlewares), read at the first call. A request to any other path is labelled
      `unknown_endpoint` (default `"__unknown__"`), so 404 scans add no series. Templated
      routes are labelled by their template.
    - `skip_paths`: path prefixes that do not update `last_request_timestamp_seconds`.
    - `registry`: where the metrics are registered (default REGISTRY, as BentoML). Middlewares
      with the same namespace and registry share the metric objects (their durations must
      agree); a clash with another collector raises ValueError.

    The metric objects are created at the first ASGI call (lifespan startup under uvicorn), as
    BentoML does, so that `PROMETHEUS_MULTIPROC_DIR` set for the worker processes is
    honoured; call `setup()` to create them earlier.
    """

    def __init__(self, app, *, enabled: bool = True, namespace: str = DEFAULT_NAMESPACE,
                 duration: Optional[Mapping] = None, service_name: str = "",
                 service_version: str = DEFAULT_SERVICE_VERSION, runner_name: Optional[str] = None,
                 routes: Optional[Sequence[str]] = None, unknown_endpoint: str = UNKNOWN_ENDPOINT,
                 skip_paths: Sequence[str] = DEFAULT_SKIP_PATHS, registry=REGISTRY):
        if not isinstance(enabled, bool):
            raise ValueError(f"enabled must be True or False, got {enabled!r}")
        self.app = app
        self.enabled = enabled
        self.namespace = _check_namespace(namespace)
        self.duration_buckets = resolve_duration_buckets(duration)
        self.service_name = str(service_name)
        self.service_version = str(service_version)
        self.runner_name = self.service_name if runner_name is None else str(runner_name)
        self.routes = None if routes is None else _check_paths("routes", routes)
        self.unknown_endpoint = str(unknown_endpoint)
        # Explicit routes are compiled now, so that a bad template fails here; discovered
        # ones are read from the app at the first call.
        self._endpoints: Optional[_Endpoints] = (
            None if routes is None else _build_endpoints(app, self.routes, self.unknown_endpoint))
        self.skip_paths = _check_paths("skip_paths", skip_paths)
        self.registry = registry
        _check_shared(namespace, self.duration_buckets, registry)
        self._setup_lock = threading.Lock()
        self._recorder: Optional[_Recorder] = None

    def setup(self) -> None:
        """Create the metrics and zero-initialise the routes (idempotent)."""
        endpoints = self._get_endpoints()
        with self._setup_lock:
            if self._recorder is not None:
                return
            metrics = _service_metrics(self.namespace, self.duration_buckets, self.registry)
            recorder = _Recorder(metrics, (self.service_name, self.service_version), self.runner_name)
            recorder.zero_initialise(endpoints.zero_routes)
            self._recorder = recorder

    @property
    def metrics(self) -> _ServiceMetrics:
        """The metric objects (`request_total`, `request_duration`, `request_in_progress`,
        `last_request_timestamp`, `websocket_connections`, `websocket_data_received`,
        `websocket_data_sent`), created if needed."""
        if self._recorder is None:
            self.setup()
        return self._recorder.metrics

    def _get_endpoints(self) -> _Endpoints:
        # Read from the app at first use, so routes added after wrapping are seen.
        with self._setup_lock:
            if self._endpoints is None:
                self._endpoints = _build_endpoints(self.app, self.routes, self.unknown_endpoint)
            return self._endpoints

    def known_routes(self) -> List[str]:
        """The HTTP route labels whose `request_total` starts at 0 for codes 200 and 500."""
        return list(self._get_endpoints().zero_routes)

    def endpoint_label(self, path: str, root_path: str = "") -> str:
        """The `endpoint` label of a request path."""
        return self._get_endpoints().label(path, root_path)

    def adaptive_batch_size(self, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> Histogram:
        """`bentoml_service_adaptive_batch_size` in this middleware's registry; see
        `adaptive_batch_size_histogram`."""
        return adaptive_batch_size_histogram(max_batch_size, self.registry)

    async def __call__(self, scope, receive, send) -> None:
        recorder = self._recorder
        if recorder is None:
            if not self.enabled:
                return await self.app(scope, receive, send)
            self.setup()
            recorder = self._recorder
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                return await self._websocket(scope, receive, send)
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == METRICS_PATH:
            return await self.app(scope, receive, send)

        # The HTTP path, written out in one function: it runs for every request.
        if not path.startswith(self.skip_paths):
            recorder.last_request.set(time())
        endpoint = self._endpoints.cache.get(path) or self._endpoints.label(path, scope.get("root_path", ""))
        start = default_timer()
        status = 0

        async def send_measured(message) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body" and not message.get("more_body"):
                children = recorder.responses.get((endpoint, status)) or recorder.new_responses(endpoint, status)
                total, duration = children
                total.inc()
                duration.observe(max(default_timer() - start, 0))
            await send(message)

        await self._in_progress(endpoint, scope, receive, send_measured)

    async def _in_progress(self, endpoint, scope, receive, send) -> None:
        """Runs the app with `request_in_progress` raised: what BentoML's
        `with ....track_inprogress():` does, without the tracker object."""
        recorder = self._recorder
        in_progress = recorder.in_progress.get(endpoint) or recorder.new_in_progress(endpoint)
        in_progress.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            in_progress.dec()

    def _start_websocket(self, scope) -> str:
        """The session's endpoint label; updates last_request_timestamp_seconds."""
        path = scope["path"]
        if not path.startswith(self.skip_paths):
            self._recorder.last_request.set(time())
        return self._endpoints.label(path, scope.get("root_path", ""))

    async def _websocket(self, scope, receive, send) -> None:
        recorder = self._recorder
        endpoint = self._start_websocket(scope)
        connections, received, sent = recorder.websocket(endpoint)

        async def receive_measured():
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                connections.dec()
            elif kind == "websocket.receive":
                received.observe(_message_size(message))
            return message

        async def send_measured(message) -> None:
            kind = message["type"]
            if kind == "websocket.send":
                sent.observe(_message_size(message))
            elif kind == "websocket.accept":
                connections.inc()
            elif kind == "websocket.close":
                connections.dec()
            await send(message)

        await self._in_progress(endpoint, scope, receive_measured, send_measured)
