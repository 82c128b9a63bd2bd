import os

from django.http import HttpResponse
from django.views import View

import fastprom
from fastprom.exposition import _bake_output


class PrometheusDjangoView(View):
    multiprocess_mode: bool = "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ
    registry: fastprom.CollectorRegistry = None

    def get(self, request, *args, **kwargs):
        if self.registry is None:
            if self.multiprocess_mode:
                # Imported here so the view works without multiprocess support.
                from fastprom import multiprocess
                self.registry = fastprom.CollectorRegistry()
                multiprocess.MultiProcessCollector(self.registry)
            else:
                self.registry = fastprom.REGISTRY
        status, headers, output = _bake_output(
            registry=self.registry,
            accept_header=request.headers.get("Accept"),
            accept_encoding_header=request.headers.get("Accept-Encoding"),
            params=request.GET,
            disable_compression=False,
        )
        return HttpResponse(
            output,
            status=int(status.split(" ")[0]),
            headers=headers,
        )

    def options(self, request, *args, **kwargs):
        return HttpResponse(
            status=200,
            headers={"Allow": "OPTIONS,GET"},
        )
