"""Replies to reads that decrypt are never shown as they came.

GetParameter(s), GetParametersByPath and GetParameterHistory (with decryption), GetSecretValue and
KMS Decrypt answer with plaintext. When such a reply is an error whose body botocore could not parse
(a cut-off reply behind a proxy, a load balancer's page), botocore makes the whole body the error
message (``BaseJSONParser._parse_body_as_json``), and the message is what every log line and /status
shows. The values in it were never parsed, so never registered with the redactor: nothing could scrub
them. This guard, on botocore's ``after-call`` event, keeps the error code and status and replaces
any message that is not a well-formed AWS error's.
"""

from __future__ import annotations

import json
from typing import Any

DECRYPTING = frozenset({
    ("ssm", "GetParameter"), ("ssm", "GetParameters"), ("ssm", "GetParametersByPath"),
    ("ssm", "GetParameterHistory"), ("secretsmanager", "GetSecretValue"),
    ("secretsmanager", "BatchGetSecretValue"), ("kms", "Decrypt"),
})
NOT_SHOWN = ("the reply was not a well-formed AWS error and is not shown: a reply to a read that "
             "decrypts may hold values")
_ERROR_KEYS = frozenset({"__type", "message", "Message", "code"})


class UnreadableReply(Exception):
    """A success status whose body is not what the operation returns; its body is not shown."""


def guard(http_response: Any, parsed: dict, model: Any, **_: Any) -> None:
    if (model.service_model.service_name, model.name) not in DECRYPTING:
        return
    body = _json(http_response.content)
    if http_response.status_code >= 300:
        if not _well_formed_error(body):
            error = parsed.setdefault("Error", {})
            error["Message"] = NOT_SHOWN
            parsed.pop("message", None)
            parsed.pop("Message", None)
    elif not isinstance(body, dict):   # botocore put the unparsed body in parsed["message"]
        parsed.clear()
        raise UnreadableReply(f"the reply to {model.service_model.service_name}:{model.name} could not be "
                              f"read (HTTP {http_response.status_code}, not JSON); it is not shown: it may "
                              "hold values")


def _json(content: bytes) -> Any:
    try:
        return json.loads(content.decode("utf-8")) if content else {}
    except ValueError:
        return None


def _well_formed_error(body: Any) -> bool:
    """A JSON error as AWS sends one: a type and a message, nothing else (no Parameters, no values)."""
    return (isinstance(body, dict) and "__type" in body and set(body) <= _ERROR_KEYS
            and all(isinstance(v, str) for v in body.values()))
