"""What to do after a failed call: each error carries its retry policy.

botocore (standard mode, ``session.py``) already retries throttling, 5xx and connection errors on every
call. On top of it, tenacity retries what botocore does not:

- conflicts: SSM ``TooManyUpdates``, IAM ``ConcurrentModification``;
- IAM's eventual consistency: ``NoSuchEntity`` on a role this run has just created (not the one for a
  managed policy that does not exist), and ECS refusing an execution role it cannot see yet;
- throttling and 5xx that outlasted botocore's attempts (its retry quota is per client).

A write that is not idempotent is never re-sent after an answer that may have been lost: that is
``idempotency.write_once``. Under a write guard (the lease) no retry waits past the time the lease
still covers: it stops and raises the last error instead. Terminal errors (validation,
``AccessDenied*``, ownership, anything unknown) are raised at once, never retried.
"""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

from botocore.exceptions import (ClientError, ConnectionClosedError, ConnectTimeoutError,
                                 EndpointConnectionError, HTTPClientError, ReadTimeoutError)
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from controller.aws import guard
from controller.aws.session import THROTTLING, error_code

T = TypeVar("T")

CONFLICT_CODES = frozenset({"TooManyUpdates", "ConcurrentModification", "ConcurrentModificationException"})
SERVER_CODES = frozenset({"ServiceUnavailable", "InternalFailure", "InternalError", "InternalServerError",
                          "ServerException"})
ATTEMPTS = 8


def sleep(seconds: float) -> None:
    """Every wait of our retries; the fault tests replace it to run without waiting."""
    time.sleep(seconds)


def status_of(exc: BaseException) -> int:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def was_not_sent(exc: BaseException) -> bool:
    """The request never reached AWS: sending it again cannot act twice."""
    return isinstance(exc, (EndpointConnectionError, ConnectTimeoutError))


def is_ambiguous(exc: BaseException) -> bool:
    """AWS may have acted on the request although no answer said so (a lost reply, a 5xx)."""
    if isinstance(exc, ClientError):
        return status_of(exc) >= 500 or error_code(exc) in SERVER_CODES
    if was_not_sent(exc):
        return False
    return isinstance(exc, (ConnectionClosedError, ReadTimeoutError, HTTPClientError))


def is_throttled(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc) in THROTTLING


def is_role_not_visible(exc: BaseException) -> bool:
    """ECS refuses an execution role that IAM created a moment ago and has not propagated yet."""
    if not isinstance(exc, ClientError) or error_code(exc) not in ("ClientException", "InvalidParameterException"):
        return False
    message = str(exc.response.get("Error", {}).get("Message", "")).lower()
    return "role" in message and ("assume" in message or "not valid" in message or "invalid" in message)


def is_retryable(exc: BaseException) -> bool:
    """A definite refusal that waiting heals: sending the same request again is safe."""
    if isinstance(exc, ClientError):
        return error_code(exc) in CONFLICT_CODES or is_throttled(exc) or is_role_not_visible(exc)
    return was_not_sent(exc)


def is_terminal(exc: BaseException) -> bool:
    """Waiting will not heal it: validation, access, ownership, or an error we do not know."""
    return not (is_retryable(exc) or is_ambiguous(exc))


def outside_the_lease(state: RetryCallState) -> bool:
    """Stop rather than wait beyond what the write guard of this thread still covers."""
    left = guard.time_left()
    return left is not None and (state.upcoming_sleep or 0.0) >= left


def retrying(when: Callable[[BaseException], bool], attempts: int = ATTEMPTS) -> Retrying:
    return Retrying(retry=retry_if_exception(when), stop=stop_after_attempt(attempts) | outside_the_lease,
                    wait=wait_exponential_jitter(multiplier=0.5, max=10), sleep=lambda s: sleep(s), reraise=True)


def idempotent(when: Callable[[BaseException], bool] | None = None) -> Callable[[BaseException], bool]:
    """For a write whose repetition changes nothing: also retry what botocore gave up on."""
    return lambda exc: is_retryable(exc) or is_ambiguous(exc) or bool(when and when(exc))


def call(fn: Callable[..., T], *args: Any, also: Callable[[BaseException], bool] | None = None, **kwargs: Any) -> T:
    """Call an idempotent write (attach, put a policy, tag, delete) with our retries on top of botocore's."""
    return retrying(idempotent(also))(fn, *args, **kwargs)


def no_such_entity(exc: BaseException) -> bool:
    """IAM's eventual consistency: a role created a moment ago is not found yet. Not the NoSuchEntity of
    AttachRolePolicy for the policy itself ("Policy ARN does not exist or is not attachable."): no wait
    brings a policy that is not there."""
    return isinstance(exc, ClientError) and error_code(exc) == "NoSuchEntity" and not no_such_policy(exc)


def no_such_policy(exc: BaseException) -> bool:
    message = str(exc.response.get("Error", {}).get("Message", "")) if isinstance(exc, ClientError) else ""
    return message.startswith("Policy ") and ("does not exist" in message or "not found" in message)

