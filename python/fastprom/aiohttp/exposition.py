from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from ..exposition import _bake_output
from ..registry import Collector, REGISTRY


def _query_lists(query) -> dict:
    # Every query parameter with all its values, as the WSGI/ASGI apps see them.
    return {name: query.getall(name) for name in query.keys()}


def _respond(registry: Collector, request: web.Request, compress: bool) -> web.Response:
    accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
    # aiohttp compresses itself (enable_compression), so the body is baked uncompressed.
    status, headers, body = _bake_output(registry, accept, "", _query_lists(request.query), disable_compression=True)
    code = int(status.partition(" ")[0])
    response = web.Response(body=body, headers=headers, status=code)
    if compress:
        response.enable_compression()
    return response


def make_aiohttp_handler(registry: Collector = REGISTRY, disable_compression: bool = False) -> Handler:
    """Create a aiohttp handler which serves the metrics from a registry."""
    compress = not disable_compression

    async def prometheus_handler(request: web.Request) -> web.Response:
        return _respond(registry, request, compress)

    return prometheus_handler
