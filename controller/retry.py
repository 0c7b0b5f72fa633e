"""Retries botocore does not do: conflicts and IAM's eventual consistency. Terminal errors never retry."""

from __future__ import annotations

from botocore.exceptions import ClientError
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from controller.aws import error_code

RETRYABLE_CODES = frozenset({"TooManyUpdates", "ConcurrentModification", "ConcurrentModificationException",
                             "ServiceUnavailable", "InternalFailure", "InternalError"})


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, ClientError):
        return False
    code = error_code(exc)
    if code in RETRYABLE_CODES:
        return True
    message = str(exc.response.get("Error", {}).get("Message", ""))
    # ECS rejects an execution role that IAM created a moment ago and has not propagated yet
    return code in ("ClientException", "InvalidParameterException") and "role" in message.lower() \
        and "assume" in message.lower()


write_retry = retry(retry=retry_if_exception(is_retryable), stop=stop_after_attempt(6),
                    wait=wait_exponential_jitter(initial=0.5, max=10), reraise=True)
