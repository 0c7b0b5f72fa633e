"""A reply AWS should never send, said in one line that names the service and the operation.

Without this, a reply missing the key an operation always returns surfaced as a bare ``KeyError:
'Parameters'``, a body botocore could not parse as ``ResponseParserError: ... b''`` (its raw bytes
printed), and an error with an empty body as ``An error occurred (400) when calling the X
operation: `` with nothing after it. ``add_reply_checks`` (botocore's ``creating-client-class``
event) gives every client of the session a ``_make_api_call`` that:

- hands back the reply as ``Reply`` dicts (nested ones too), whose missing keys raise
  ``MalformedReply`` instead of a bare ``KeyError``; ``get`` and ``in`` behave as on any dict;
- turns an unparsable body into ``MalformedReply``, without the body (it may hold a value);
- gives an error with an empty body a message that says so.

``MalformedReply`` is a ``BotoCoreError`` (handled wherever botocore's errors are, never retried by
us) and a ``KeyError`` (code that expects a key to be missing still catches it).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError


class MalformedReply(BotoCoreError, KeyError):
    fmt = "{service} {operation}: {what}; is the endpoint an AWS API?"

    def __str__(self) -> str:  # KeyError would show it quoted
        return str(self.args[0])


class Reply(dict):
    """A parsed reply; ``reply[key]`` of a key it lacks says which operation's reply lacked it."""

    service: str
    operation: str

    def __missing__(self, key: Any) -> Any:
        raise MalformedReply(service=self.service, operation=self.operation, what=f"the reply has no {key!r}")


def add_reply_checks(base_classes: list, **_: Any) -> None:
    """``creating-client-class`` handler: every client built afterwards checks its replies."""
    base_classes.insert(0, _CheckedReplies)


class _CheckedReplies:
    def _make_api_call(self, operation_name: str, api_params: dict) -> Any:
        service = self.meta.service_model.service_name  # type: ignore[attr-defined]
        try:
            parsed = super()._make_api_call(operation_name, api_params)  # type: ignore[misc]
        except ResponseParserError:
            raise MalformedReply(service=service, operation=operation_name,
                                 what="the reply could not be parsed") from None  # its text may hold a value
        except ClientError as exc:
            error = exc.response.get("Error") or {}
            if error.get("Message") or (error.get("Code") and not str(error["Code"]).isdigit()):
                raise
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            response = {**exc.response, "Error": {**error, "Message": f"{service} answered HTTP {status} "
                                                  "with an empty error body"}}
            raise ClientError(response, operation_name) from None
        return checked(parsed, service, operation_name)


def checked(value: Any, service: str, operation: str) -> Any:
    """``value`` with every dict in it a ``Reply`` of ``service`` ``operation``."""
    if isinstance(value, dict):
        reply = Reply((k, checked(v, service, operation)) for k, v in value.items())
        reply.service, reply.operation = service, operation
        return reply
    if isinstance(value, list):
        return [checked(v, service, operation) for v in value]
    return value
