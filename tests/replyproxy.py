"""A proxy in front of moto's server that answers chosen operations with a reply of the test's own:
an endless listing, a reply missing the key the operation always returns, an empty or cut-off body.

    with ReplyProxy(moto_url, {"ssm:DescribeParameters": endless_pages("Parameters")}) as proxy:
        ...   # point AWS_ENDPOINT_URL at proxy.url

Every other request is forwarded as ``faultproxy.FaultProxy`` forwards it (and counted alike).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable

import faultproxy
from awsops import AwsOp, identify, matches

Reply = tuple[int, str, bytes]                       # (status, Content-Type, body)
Answer = Callable[[AwsOp, bytes], Reply | None]      # None: forward the request to moto


class ReplyProxy(faultproxy.FaultProxy):
    def __init__(self, upstream_url: str, answers: dict[str, Answer]) -> None:
        super().__init__(upstream_url)
        self.answers = answers
        self.answered: Counter[str] = Counter()
        self._answer_lock = threading.Lock()
        self._server.RequestHandlerClass = _Handler

    def answer(self, op: AwsOp, body: bytes) -> Reply | None:
        for glob, answer in self.answers.items():
            if matches(glob, op):
                got = answer(op, body)
                if got is not None:
                    with self._answer_lock:
                        self.answered[op.key] += 1
                    return got
        return None


class _Handler(faultproxy._Handler):
    def do_request(self) -> None:
        body = self._read_body()
        path, _, query = self.path.partition("?")
        op = identify(self.command, path, self.headers, body, query)
        got = self.server.proxy.answer(op, body)
        if got is None:
            self.server.proxy.decide(op)   # counted as the plain proxy counts
            status, headers, reply = self._forward(body)
            return self._send(status, headers, reply)
        status, content_type, reply = got
        self._send(status, [("Content-Type", content_type), ("x-amzn-RequestId", str(uuid.uuid4()))], reply)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_request


JSON = "application/x-amz-json-1.1"
XML = "text/xml"


def endless_pages(result_key: str, token: str = "NextToken", stop_after: int = 500) -> Answer:
    """A JSON-protocol listing whose every page is empty and has a new next token. After
    ``stop_after`` pages it ends, so that a regression that pages on fails instead of hanging."""
    served = Counter()

    def answer(op: AwsOp, body: bytes) -> Reply:
        served[op.key] += 1
        page: dict = {result_key: []}
        if served[op.key] <= stop_after:
            page[token] = uuid.uuid4().hex
        return 200, JSON, json.dumps(page).encode()
    return answer


def fixed(status: int, content_type: str, body: bytes) -> Answer:
    return lambda op, request: (status, content_type, body)
