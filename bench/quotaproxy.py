"""A loopback HTTP proxy that throttles like AWS: the published token buckets of ``bench/quotas.py``.

    with CountingServer() as moto, QuotaProxy(moto.url) as proxy:
        ... clients with endpoint_url=proxy.url ...
        proxy.throttled()     # {("ecs", "RegisterTaskDefinition"): 12, ...}

Every request is named (``awsops.identify``, as the counting server does) and charged to its bucket,
one bucket per (quota, account, Region): the Region from the SigV4 credential scope, the account from
the access key, mapped the way moto maps it (``moto.iam.models.get_account_id_from``: the account
whose IAM or STS issued the key, else moto's default account). A request that finds its bucket
empty never reaches moto: it is answered with the throttling error of its service's wire format,
the one AWS sends and botocore's retry handler treats as a throttle (``_retry.json``: ``Throttling``
and ``ThrottlingException``, HTTP 400)::

    JSON protocol (SSM, ECS, KMS, Secrets Manager)
        400  {"__type": "ThrottlingException", "message": "Rate exceeded"}
    query protocol (IAM, STS)
        400  <ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>
             <Message>Rate exceeded</Message></Error><RequestId>..</RequestId></ErrorResponse>

Buckets do not block: a request takes a token or is refused at once, as AWS does. 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from bench import countingserver  # also puts <repo>/tests on sys.path for awsops
from bench.quotas import QUOTAS, Quota, quota_for

from awsops import identify  # noqa: E402

GLOBAL = "global"
QUERY_NAMESPACES = {"iam": "https://iam.amazonaws.com/doc/2010-05-08/",
                    "sts": "https://sts.amazonaws.com/doc/2011-06-15/"}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


class TokenBucket:
    """Holds up to ``burst`` tokens, refilled at ``rate`` a second; ``take()`` spends one or says no."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._last = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


def credential_scope(authorization: str) -> tuple[str, str, str] | None:
    """(access key, Region, service) of ``Credential=AKID/DATE/REGION/SERVICE/aws4_request``."""
    marker = "Credential="
    start = authorization.find(marker)
    if start < 0:
        return None
    parts = authorization[start + len(marker):].split(",", 1)[0].strip().split("/")
    return (parts[0], parts[2], parts[3]) if len(parts) == 5 else None


def moto_account(access_key: str) -> str:
    """The account moto charges a request with this access key to (moto's own mapping)."""
    from moto.iam.models import get_account_id_from
    return get_account_id_from(access_key)


class Buckets:
    """The token buckets of every (quota, account, Region), made full on first use."""

    def __init__(self, quotas: tuple[Quota, ...] = QUOTAS, clock: Callable[[], float] = time.monotonic) -> None:
        self.quotas, self._clock = quotas, clock
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}
        self._lock = threading.Lock()

    def allow(self, service: str, operation: str, account: str, region: str) -> bool:
        quota = quota_for(service, operation, self.quotas)
        if quota is None or quota.rate is None:
            return True
        key = (quota.name, account, GLOBAL if quota.global_service else region)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(quota.rate, quota.burst, self._clock)
        return bucket.take()

    def reset(self) -> None:
        """Every bucket full again (as after a long idle)."""
        with self._lock:
            self._buckets.clear()


def throttle_reply(service: str, protocol: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of AWS's throttling error in the service's wire format."""
    request_id = str(uuid.uuid4())
    if protocol == "query" or service in QUERY_NAMESPACES:
        ns = QUERY_NAMESPACES.get(service, "")
        body = (f'<ErrorResponse xmlns="{ns}"><Error><Type>Sender</Type><Code>Throttling</Code>'
                f"<Message>Rate exceeded</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>")
        return 400, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body.encode()
    body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
    return 400, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": request_id}, body.encode()


class QuotaProxy(countingserver.Served):
    """The proxy on ``http://127.0.0.1:PORT`` in front of ``upstream`` (also on 127.0.0.1)."""

    def __init__(self, upstream: str, quotas: tuple[Quota, ...] = QUOTAS, port: int = 0,
                 account_of: Callable[[str], str] = moto_account) -> None:
        target = urlsplit(upstream)
        if target.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the quota proxy forwards to loopback only, not {upstream}")
        self.upstream = (target.hostname, target.port or 80)
        self.buckets = Buckets(quotas)
        self.account_of = account_of
        self._port = port
        self._throttled: Counter[tuple[str, str]] = Counter()
        self._passed: Counter[tuple[str, str]] = Counter()
        self._spans: dict[tuple[str, str], list[float]] = {}   # first and last pass of each action
        self.upstream_errors = 0   # requests whose upstream connection failed (none expected)
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def _make(self) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", self._port), type("Handler", (_Handler,), {"proxy": self}))
        server.daemon_threads = True
        return server

    def decide(self, method: str, path: str, headers: object, body: bytes, query: str) -> tuple | None:
        """None: forward it; else the throttling reply (status, headers, body)."""
        op = identify(method, path, headers, body, query)
        if op.service == "moto-api":
            return None
        scope = credential_scope(headers.get("Authorization") or "")  # type: ignore[attr-defined]
        key, region = (scope[0], scope[1]) if scope else ("", "us-east-1")
        account = self.account_of(key)
        if self.buckets.allow(op.service, op.operation, account, region):
            now = time.monotonic() - self._started
            with self._lock:
                self._passed[(op.service, op.operation)] += 1
                self._spans.setdefault((op.service, op.operation), [now, now])[1] = now
            return None
        with self._lock:
            self._throttled[(op.service, op.operation)] += 1
        return throttle_reply(op.service, op.protocol)

    def throttled(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._throttled)

    def spans(self) -> dict[tuple[str, str], tuple[float, float]]:
        """(seconds since the last reset) of the first and the last request of each action let through."""
        with self._lock:
            return {k: (round(a, 2), round(b, 2)) for k, (a, b) in self._spans.items()}

    def reset(self) -> None:
        """Counts to zero and every bucket full."""
        with self._lock:
            self._throttled.clear()
            self._passed.clear()
            self._spans.clear()
            self._started = time.monotonic()
        self.buckets.reset()


class _Handler(BaseHTTPRequestHandler):
    proxy: QuotaProxy
    protocol_version = "HTTP/1.1"   # keep-alive, as SDKs expect

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):   # a client dropped a kept-alive connection
            pass

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        path, _, query = self.path.partition("?")
        refused = self.proxy.decide(self.command, path, self.headers, body, query)
        if refused is None:
            status, headers, reply = self._forward(body)
        else:
            status, headers, reply = refused
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any

    def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """One upstream connection per client connection, never a request re-sent: a write that moto
        may have applied is the client's to retry (as against AWS), not the proxy's."""
        conn = getattr(self, "_upstream", None)
        if conn is None:
            conn = self._upstream = http.client.HTTPConnection(*self.proxy.upstream, timeout=600)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            conn.request(self.command, self.path, body=body or None, headers=headers)
            r = conn.getresponse()
            data = r.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            self._upstream = None
            self.proxy.upstream_errors += 1
            self.close_connection = True   # the client sees a dropped connection, as after a lost reply
            raise
        out = {k: v for k, v in r.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}}
        return r.status, out, data
