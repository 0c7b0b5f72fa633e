"""Name the AWS service and operation of a raw HTTP request.

Shared by the fault proxy (``tests/faultproxy.py``) and the counting server
(``bench/countingserver.py``), so both count calls the same way.

Where it lives and how to import it: ``tests/`` has no ``__init__.py`` and pytest
(rootdir-relative "prepend" import mode) puts ``tests/`` on ``sys.path``, so test code
writes ``from awsops import identify``. Code outside the tests (``bench/``) puts
``<repo>/tests`` on ``sys.path`` first and imports it the same way.

Stdlib only: no boto3, no moto.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import NamedTuple
from urllib.parse import parse_qs

# An operation whose name starts with one of these changes AWS state.
WRITE_PREFIXES = (
    "Put", "Create", "Delete", "Register", "Deregister", "Attach", "Detach",
    "Update", "Add", "Remove", "Tag", "Untag", "Label",
)

# For unsigned requests: the JSON protocol's target prefix names the service.
_TARGET_PREFIX_SERVICE = {
    "AmazonSSM": "ssm",
    "AmazonEC2ContainerServiceV20141113": "ecs",
    "TrentService": "kms",
    "secretsmanager": "secretsmanager",
    "DynamoDB_20120810": "dynamodb",
    "AWSEvents": "events",
    "Logs_20140328": "logs",
}

UNKNOWN = "?"


class AwsOp(NamedTuple):
    """What one request asks of AWS; ``protocol`` is "json", "query", "moto-api" or "rest"."""

    service: str
    operation: str
    protocol: str

    @property
    def key(self) -> str:
        """The "service:Operation" string that fault rules glob on."""
        return f"{self.service}:{self.operation}"


def identify(
    method: str, path: str, headers: Mapping[str, str], body: bytes = b"", query: str = ""
) -> AwsOp:
    """Name the service and operation of one request.

    ``headers`` must be case-insensitive (``email.message.Message``, werkzeug ``Headers``)
    or use canonical capitalisation. ``path`` excludes the query string, which comes in ``query``.
    """
    if path.startswith("/moto-api"):
        return AwsOp("moto-api", path[len("/moto-api"):].strip("/") or UNKNOWN, "moto-api")
    target = headers.get("X-Amz-Target") or ""
    service = signing_service(headers.get("Authorization") or "")
    if target:
        prefix, _, operation = target.rpartition(".")
        service = service or _TARGET_PREFIX_SERVICE.get(prefix, prefix.lower() or UNKNOWN)
        return AwsOp(service, operation or UNKNOWN, "json")
    action = query_action(headers.get("Content-Type") or "", body, query)
    if action:
        return AwsOp(service or UNKNOWN, action, "query")
    return AwsOp(service or UNKNOWN, method.upper(), "rest")


def signing_service(authorization: str) -> str | None:
    """The service of a SigV4 credential scope: ``Credential=AKID/DATE/REGION/SERVICE/aws4_request``."""
    marker = "Credential="
    start = authorization.find(marker)
    if start < 0:
        return None
    scope = authorization[start + len(marker):].split(",", 1)[0].strip()
    parts = scope.split("/")
    return parts[3] if len(parts) == 5 else None


def query_action(content_type: str, body: bytes, query: str = "") -> str | None:
    """The ``Action`` of a query-protocol request (form body, or the URL's query string)."""
    fields = parse_qs(query)
    if content_type.startswith("application/x-www-form-urlencoded") and body:
        fields.update(parse_qs(body.decode("utf-8", "replace")))
    actions = fields.get("Action")
    return actions[0] if actions else None


def is_write(operation: str) -> bool:
    return operation.startswith(WRITE_PREFIXES)


def count_writes(calls: Iterable[tuple[tuple[str, str], int]]) -> int:
    """Sum the counts of write operations in ``Counter.items()``-shaped pairs."""
    return sum(n for (_, operation), n in calls if is_write(operation))


def matches(pattern: str, op: AwsOp) -> bool:
    """Glob ``pattern`` against "service:Operation" (``ssm:Put*``, ``*:GetRole``, ``*``)."""
    return fnmatchcase(op.key, pattern)
