"""One HTTP server on the metrics port: /metrics, /healthz, /readyz and /status. Stdlib only.

It serves from its own threads and only reads what the loop publishes; a slow scrape can never
hold up a reconcile. Nothing it returns carries a secret value (and /status is scrubbed anyway).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST

from controller.vocab.sensitive import scrub

log = logging.getLogger("ecs_secrets.http")
_CTX = {"object": "-", "action": "http", "reconcile_id": "-"}


@dataclass
class Endpoints:
    metrics: Callable[[], bytes]
    healthy: Callable[[], tuple[bool, str]]
    ready: Callable[[], tuple[bool, str]]
    status: Callable[[], dict[str, Any]]


class Server:
    def __init__(self, address: str, port: int, endpoints: Endpoints) -> None:
        handler = type("Handler", (_Handler,), {"endpoints": endpoints})
        self.httpd = ThreadingHTTPServer((address, port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    def start(self) -> "Server":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    endpoints: Endpoints
    server_version = "ecs-secrets"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                self._reply(200, self.endpoints.metrics(), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, why = (self.endpoints.healthy if path == "/healthz" else self.endpoints.ready)()
                self._reply(200 if ok else 503, f"{why}\n".encode(), "text/plain; charset=utf-8")
            elif path == "/status":
                body = scrub(json.dumps(self.endpoints.status(), indent=2, default=str)) + "\n"
                self._reply(200, body.encode(), "application/json")
            else:
                self._reply(404, b"not found: try /metrics, /healthz, /readyz or /status\n", "text/plain")
        except Exception as exc:  # a broken page must not take the server down
            log.error("%s failed: %s", path, type(exc).__name__, extra=_CTX)
            self._reply(500, b"internal error\n", "text/plain")

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.address_string(), format % args, extra=_CTX)
