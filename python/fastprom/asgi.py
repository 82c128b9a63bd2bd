"""ASGI application serving metrics: the counterpart of ``prometheus_client.asgi``.

The BentoML service middleware lives in ``fastprom.service_metrics``; its names are
re-exported here so that ``from fastprom.asgi import ServiceMetricsMiddleware`` keeps working.
"""

from typing import Callable
from urllib.parse import parse_qs

from .exposition import _bake_output
from .registry import Collector, REGISTRY
from .service_metrics import (  # noqa: F401  (re-exported)
    adaptive_batch_size_histogram, DEFAULT_MAX_BATCH_SIZE, DEFAULT_NAMESPACE,
    DEFAULT_SERVICE_VERSION, DEFAULT_SKIP_PATHS, METRICS_PATH, resolve_duration_buckets,
    ServiceMetricsMiddleware, UNKNOWN_ENDPOINT,
)

def _joined_header(headers, wanted: str) -> str:
    """All values of header ``wanted`` (lowercase), comma-joined."""
    return ",".join(
        value.decode("utf8") for name, value in headers
        if name.decode("utf8").lower() == wanted
    )


def make_asgi_app(registry: Collector = REGISTRY, disable_compression: bool = False) -> Callable:
    """Create a ASGI app which serves the metrics from a registry."""

    async def prometheus_app(scope, receive, send):
        assert scope.get("type") == "http"
        params = parse_qs(scope.get('query_string', b'').decode("utf8"))
        accept_header = _joined_header(scope.get('headers'), 'accept')
        accept_encoding_header = _joined_header(scope.get('headers'), 'accept-encoding')
        status, headers, output = _bake_output(registry, accept_header, accept_encoding_header, params, disable_compression)
        formatted_headers = [tuple(x.encode('utf8') for x in header) for header in headers]
        # Only answer once the request has been received.
        payload = await receive()
        if payload.get("type") == "http.request":
            await send({
                "type": "http.response.start",
                "status": int(status.split(' ')[0]),
                "headers": formatted_headers,
            })
            await send({"type": "http.response.body", "body": output})

    return prometheus_app
