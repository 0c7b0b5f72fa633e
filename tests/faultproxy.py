"""A fault-injecting reverse HTTP proxy on 127.0.0.1, in front of moto's server.

Point a boto3 client at ``proxy.url``; every request is named (``awsops.identify``), counted, and
either forwarded untouched (headers as received, so the SigV4 ``Host`` stays the proxy's — moto does
not check signatures) or answered with a fault picked by a seeded schedule::

    rules = [FaultRule("throttle", probability=0.5, match="ssm:*"),
             FaultRule("lost_reply", match="ssm:PutParameter", limit=1)]
    with FaultProxy(moto_url, seed=7, rules=rules) as proxy:
        client = boto3.client("ssm", endpoint_url=proxy.url, ...)

The first matching rule whose draw hits wins. Draws come from one ``random.Random(seed)`` under a
lock, so a given seed and request order give the same faults. With no rules it is a counting proxy.

Fault kinds:
  ``throttle``     AWS-shaped throttling error (JSON or query protocol), not forwarded
  ``http500``      AWS-shaped InternalFailure, not forwarded
  ``http503``      AWS-shaped ServiceUnavailable, not forwarded
  ``html502``      a load balancer's HTML 502 page, not forwarded
  ``reset_before`` TCP reset (RST) after reading the request, not forwarded
  ``slow``         forwarded; the reply is held back ``delay`` seconds
  ``lost_reply``   forwarded (the action takes effect), then RST instead of the reply
  ``late``         held ``delay`` seconds, then forwarded and answered: AWS acts on it late, after a
                   client with a shorter read timeout has given up on it

Stdlib only.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import struct
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from awsops import AwsOp, count_writes, identify, is_write, matches

KINDS = ("throttle", "http500", "http503", "html502", "reset_before", "slow", "lost_reply", "late")

# Headers that belong to one connection, not to the request or reply.
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})

# (status, JSON __type, query Code, query Type, message) of each AWS-shaped error.
_AWS_ERRORS = {
    "throttle": (400, "ThrottlingException", "Throttling", "Sender", "Rate exceeded"),
    "http500": (500, "InternalFailure", "InternalFailure", "Receiver",
                "The request processing has failed because of an unknown error, exception or failure."),
    "http503": (503, "ServiceUnavailable", "ServiceUnavailable", "Receiver",
                "The request has failed due to a temporary failure of the server."),
}
_DYNAMODB_ERROR_NAMESPACE = "com.amazonaws.dynamodb.v20120810#"

# The body an Application Load Balancer sends; botocore treats a 5xx body starting "<html>" as generic.
_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)

# How long stop() may wait for the serving loop to notice (the stdlib default is 0.5 s).
_POLL_SECONDS = 0.02

OpMatcher = str | Callable[[AwsOp], bool]


@dataclass(frozen=True)
class FaultRule:
    """Inject ``kind`` into a matching request with ``probability``, at most ``limit`` times.

    ``match`` is a glob on "service:Operation" (``"ssm:Put*"``) or a predicate on an ``AwsOp``.
    ``delay`` is the hold-back of ``slow`` and ``late``, in seconds.
    """

    kind: str
    probability: float = 1.0
    match: OpMatcher = "*"
    writes_only: bool = False
    delay: float = 1.0
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(KINDS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability {self.probability} is not within [0, 1]")

    def applies_to(self, op: AwsOp) -> bool:
        if self.writes_only and not is_write(op.operation):
            return False
        if callable(self.match):
            return bool(self.match(op))
        return matches(self.match, op)


class FaultProxy:
    """A reverse proxy from ``url`` (127.0.0.1, a free port) to ``upstream_url``."""

    def __init__(
        self, upstream_url: str, seed: int = 0, rules: list[FaultRule] | tuple[FaultRule, ...] = (),
        port: int = 0,
    ) -> None:
        upstream = urlsplit(upstream_url)
        if upstream.scheme != "http" or not upstream.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream_url!r}")
        self.upstream_url = upstream_url.rstrip("/")
        self.upstream = (upstream.hostname, upstream.port or 80)
        self.rules = list(rules)
        self.calls: Counter[tuple[str, str]] = Counter()
        self.forwarded: Counter[tuple[str, str]] = Counter()
        self.injected: list[tuple[str, str, str]] = []
        self._random = random.Random(seed)
        self._hits: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.proxy = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(_POLL_SECONDS,), name="faultproxy", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def writes(self) -> int:
        """How many received calls (faulted or not) were writes."""
        with self._lock:
            return count_writes(self.calls.items())

    def reset_counts(self) -> None:
        """Zero ``calls``, ``forwarded`` and ``injected``; the random schedule and limits go on."""
        with self._lock:
            self.calls.clear()
            self.forwarded.clear()
            self.injected.clear()

    def set_rules(self, rules: list[FaultRule], seed: int | None = None) -> None:
        """Replace the rules (and their limits' counts), reseeding if ``seed`` is given."""
        with self._lock:
            self.rules = list(rules)
            self._hits.clear()
            if seed is not None:
                self._random.seed(seed)

    def decide(self, op: AwsOp) -> FaultRule | None:
        """Count one received request and pick its fault, if any."""
        with self._lock:
            self.calls[(op.service, op.operation)] += 1
            for index, rule in enumerate(self.rules):
                if not rule.applies_to(op):
                    continue
                if rule.limit is not None and self._hits[index] >= rule.limit:
                    continue
                if self._random.random() < rule.probability:
                    self._hits[index] += 1
                    self.injected.append((op.service, op.operation, rule.kind))
                    return rule
            return None

    def count_forwarded(self, op: AwsOp) -> None:
        with self._lock:
            self.forwarded[(op.service, op.operation)] += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (read timeout) while a reply was held back is not an error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def do_request(self) -> None:
        body = self._read_body()
        path, _, query = self.path.partition("?")
        op = identify(self.command, path, self.headers, body, query)
        proxy = self.server.proxy
        rule = proxy.decide(op)
        kind = rule.kind if rule else None
        if kind == "reset_before":
            return self._reset()
        if kind in _AWS_ERRORS:
            return self._send(*aws_error(kind, op, self.headers.get("Content-Type")))
        if kind == "html502":
            return self._send(502, [("Content-Type", "text/html")], _HTML_502)
        if kind == "late":
            time.sleep(rule.delay)
        status, headers, reply = self._forward(body)
        proxy.count_forwarded(op)
        if kind == "lost_reply":
            return self._reset()
        if kind == "slow":
            time.sleep(rule.delay)
        self._send(status, headers, reply)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_request

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self.rfile.readline().strip():  # trailers, up to the blank line
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        host, port = self.server.proxy.upstream
        upstream = http.client.HTTPConnection(host, port, timeout=120)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                # The body is already read: the length is re-stated, and an Expect is answered.
                if name.lower() not in _HOP_BY_HOP | {"content-length", "expect"}:
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            reply = upstream.getresponse()
            data = reply.read()
            headers = [(k, v) for k, v in reply.getheaders() if k.lower() not in _HOP_BY_HOP]
            return reply.status, headers, data
        finally:
            upstream.close()

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "date", "server"):
                self.send_header(name, value)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        # Linger 0 turns close() into an RST. The kernel socket closes once rfile lets go of it in
        # finish(), before the server's shutdown(SHUT_WR) could send a polite FIN.
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


def aws_error(kind: str, op: AwsOp, content_type: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
    """The status, headers and body AWS sends for ``kind`` in ``op``'s protocol."""
    status, json_type, code, side, message = _AWS_ERRORS[kind]
    request_id = str(uuid.uuid4())
    if op.protocol == "json":
        if op.service == "dynamodb":
            json_type = _DYNAMODB_ERROR_NAMESPACE + json_type
        if not (content_type or "").startswith("application/x-amz-json-"):
            content_type = "application/x-amz-json-1.1"
        body = json.dumps({"__type": json_type, "message": message}, separators=(",", ":"))
        return status, [("Content-Type", content_type), ("x-amzn-RequestId", request_id)], body.encode()
    body = (
        f"<ErrorResponse><Error><Type>{side}</Type><Code>{code}</Code><Message>{message}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body.encode()
