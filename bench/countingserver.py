"""moto's HTTP server on 127.0.0.1, counting the AWS calls it serves, for benchmarks.

A WSGI middleware around the app that ``moto.server.ThreadedMotoServer`` builds
(``DomainDispatcherApplication(create_backend_app)``) names each request with the fault proxy's
``awsops.identify`` and counts it; werkzeug's threaded server runs it in a thread::

    server = CountingServer().start()
    ... boto3 clients with endpoint_url=server.url ...
    server.counts()        # {("ssm", "GetParameters"): 3, ...}
    server.stop()

``awsops`` lives in ``<repo>/tests``; this module puts that folder on ``sys.path`` to import it.
moto keeps its state in process-wide globals: every moto server (and ``mock_aws``) in one process
shares it, so ``reset_state()`` empties them all.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.datastructures import EnvironHeaders
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

from awsops import count_writes, identify  # noqa: E402 - needs the sys.path entry above
from awsserver import reset_moto  # noqa: E402

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class CountingMiddleware:
    """Count each request by (service, operation), then hand it on unchanged.

    moto's backends are not thread-safe (a listing that runs while another request adds a role or a
    parameter fails with "dictionary changed size during iteration", a 500 that clients retry), so
    requests are answered one at a time; moto holds the GIL while it works anyway. ``seconds`` is then
    moto's own busy time per action.
    """

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self._serve = threading.Lock()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.seconds: Counter[tuple[str, str]] = Counter()   # time moto spent answering, by action
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = _take_body(environ)
        op = identify(
            environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""),
            EnvironHeaders(environ), body, environ.get("QUERY_STRING", ""),
        )
        if op.service == "moto-api":  # resets and moto's dashboard are ours, not the product's
            return self.app(environ, start_response)
        with self._serve:
            start = time.perf_counter()
            reply = list(self.app(environ, start_response))  # moto answers whole bodies: nothing streams
            busy = time.perf_counter() - start
        with self._lock:
            self.calls[(op.service, op.operation)] += 1
            self.seconds[(op.service, op.operation)] += busy
        return reply

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.calls)

    def time_snapshot(self) -> dict[tuple[str, str], float]:
        with self._lock:
            return dict(self.seconds)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self.seconds.clear()


class Served:
    """A server on 127.0.0.1 run on a thread of its own: ``start`` (``_make`` builds it), ``stop``, ``with``."""

    _server: Any = None
    _thread: threading.Thread | None = None
    _poll = 0.05

    def _make(self) -> Any:
        raise NotImplementedError

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Any:
        if self._server is None:
            self._server = self._make()
            self._thread = threading.Thread(target=self._server.serve_forever, args=(self._poll,),
                                            name=type(self).__name__.lower(), daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class CountingServer(Served):
    """moto on ``http://127.0.0.1:PORT`` (a free port unless ``port`` is given), counting calls."""

    _poll = 0.02

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self.middleware = CountingMiddleware(DomainDispatcherApplication(create_backend_app))

    def _make(self) -> BaseWSGIServer:
        return make_server("127.0.0.1", self._port, self.middleware, threaded=True, request_handler=_QuietHandler)

    def counts(self) -> dict[tuple[str, str], int]:
        """Calls served since the last ``reset_counts()``, by (service, operation)."""
        return self.middleware.snapshot()

    def server_seconds(self) -> dict[tuple[str, str], float]:
        """Wall seconds moto spent answering each action since the last ``reset_counts()``."""
        return self.middleware.time_snapshot()

    def writes(self) -> int:
        return count_writes(self.counts().items())

    def reset_counts(self) -> None:
        self.middleware.clear()

    def reset_state(self) -> None:
        """Empty moto (every backend, process-wide); the counts stay."""
        reset_moto(self.url)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _take_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back, so moto still finds it."""
    stream = environ["wsgi.input"]
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        body = stream.read(length)
    elif environ.get("wsgi.input_terminated"):  # chunked: werkzeug already de-chunks to EOF
        body = stream.read()
    else:
        return b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


if __name__ == "__main__":
    with CountingServer(int(sys.argv[1]) if len(sys.argv) > 1 else 0) as running:
        print(running.url, flush=True)  # noqa: T201 - a manual tool
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
