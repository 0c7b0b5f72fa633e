"""The faithful test AWS for STS AssumeRole: moto assumes any role, even one that does not exist, and ignores
the trust policy and the external id (moto/sts/models.py, ``assume_role``: "the role does not need to
exist"). Real STS refuses, and the way it refuses is what a fleet's controller must handle:

- the role must exist in its account, and its trust policy (AssumeRolePolicyDocument) must allow the
  caller sts:AssumeRole: the caller's account (``"ACCOUNT"`` or ``arn:PARTITION:iam::ACCOUNT:root``), the
  caller's own ARN, or ``"*"``;
- a statement with a condition on ``sts:ExternalId`` (StringEquals) allows only a request that passes that
  external id (IAM User Guide, "Access to AWS accounts owned by third parties": the external id in the
  trust policy's Condition must match the ExternalId of the AssumeRole call);
- anything else is ``AccessDenied`` (HTTP 403) "User: CALLER is not authorized to perform: sts:AssumeRole
  on resource: ROLE_ARN" — the same answer for a missing role, an untrusted caller and a wrong external id
  (STS AssumeRole API reference, Errors; the message as AWS CLI users quote it);
- DurationSeconds outside 900 to the role's MaxSessionDuration (default 3600) is a ValidationError
  (AssumeRole API reference, DurationSeconds: "can range from 900 seconds (15 minutes) up to the maximum
  session duration set for the role").

``install()`` patches moto's STS response class once (so both ``mock_aws`` and the threaded server).
"""

from __future__ import annotations

import json
from typing import Any

from moto.iam.models import iam_backends
from moto.sts import responses as sts_responses
from moto.sts.exceptions import STSClientError, STSValidationError
from moto.sts.models import sts_backends
from moto.utilities.utils import get_partition

_installed = False


def AccessDenied(caller: str, role_arn: str) -> STSClientError:
    return STSClientError("AccessDenied", f"User: {caller} is not authorized to perform: sts:AssumeRole on "
                          f"resource: {role_arn}")


ValidationError = STSValidationError


def install() -> None:
    global _installed
    if _installed:
        return
    original = sts_responses.TokenResponse.assume_role

    def assume_role(self: Any) -> Any:
        _check(self, self._get_param("RoleArn"), self._get_param("ExternalId"),
               self._get_int_param("DurationSeconds", 3600))
        return original(self)

    sts_responses.TokenResponse.assume_role = assume_role
    _installed = True


def _check(response: Any, role_arn: str, external_id: str | None, duration: int) -> None:
    account = response.get_current_account()
    partition = get_partition(response.region)
    caller = _caller(response, account, partition)
    parts = (role_arn or "").split(":")
    if len(parts) != 6 or not parts[5].startswith("role/"):
        raise ValidationError(f"{role_arn!r} is not a valid role ARN")
    role = next((r for r in iam_backends[parts[4]][parts[1]].roles.values() if r.arn == role_arn), None)
    if role is None or not _trusts(role.assume_role_policy_document, account, caller, external_id):
        raise AccessDenied(caller, role_arn)
    longest = int(getattr(role, "max_session_duration", None) or 3600)
    if not 900 <= duration <= longest:
        raise ValidationError("The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                              if duration > longest else "1 validation error detected: Value at 'durationSeconds' "
                              "failed to satisfy constraint: Member must have value greater than or equal to 900")


def _caller(response: Any, account: str, partition: str) -> str:
    assumed = sts_backends[account][partition].get_assumed_role_from_access_key(response.get_access_key())
    return assumed.arn if assumed is not None else f"arn:{partition}:iam::{account}:root"


def _trusts(document: Any, account: str, caller: str, external_id: str | None) -> bool:
    policy = json.loads(document) if isinstance(document, str) else (document or {})
    statements = policy.get("Statement", [])
    for s in statements if isinstance(statements, list) else [statements]:
        if s.get("Effect") != "Allow" or "sts:AssumeRole" not in _list(s.get("Action")):
            continue
        principals = _list((s.get("Principal") or {}).get("AWS") if isinstance(s.get("Principal"), dict)
                           else s.get("Principal"))
        root = f"arn:{caller.split(':')[1]}:iam::{account}:root"
        if not {"*", account, root, caller} & set(principals):
            continue
        wanted = _list(((s.get("Condition") or {}).get("StringEquals") or {}).get("sts:ExternalId"))
        if wanted and external_id not in wanted:
            continue
        return True
    return False


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]
