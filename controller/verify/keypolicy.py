"""Resource policies (KMS key policies, Secrets Manager secret policies), split by whom each statement
speaks to: the role by its ARN, every principal ("*"), or the account's IAM policies. Pure."""

from __future__ import annotations

from typing import NamedTuple

from controller.verify.conditions import as_strings
from controller.verify.iam_eval import NamedPolicy, statements


class Split(NamedTuple):
    role: NamedPolicy  # statements naming the role's ARN (capped by its permissions boundary)
    anyone: NamedPolicy  # statements for every principal ("*"), narrowed by their conditions only
    account: NamedPolicy  # statements naming the account: they let its IAM policies grant


def _principals(value: object) -> set[str]:
    if value == "*":
        return {"*"}
    if isinstance(value, dict) and value.get("AWS") is not None:
        return set(as_strings(value["AWS"]))
    return set()


def _scope(stmt: dict, role_arn: str, account: str, partition: str, bounded: bool) -> str | None:
    """Whom a statement speaks to: "role", "anyone", "account", or None (someone else)."""
    ours = {f"arn:{partition}:iam::{account}:root", account}
    if "NotPrincipal" in stmt:
        # A Deny with NotPrincipal denies every principal that has a permissions boundary, whatever
        # it excludes (IAM User Guide, "Permissions boundaries for IAM entities").
        if bounded and stmt.get("Effect") == "Deny":
            return "role"
        excluded = _principals(stmt["NotPrincipal"])
        return None if excluded & (ours | {role_arn}) else "role"
    named = _principals(stmt.get("Principal"))
    if "*" in named:
        return "anyone"
    if role_arn in named:
        return "role"
    return "account" if named & ours else None


def split_policy(policy: dict, name: str, role_arn: str, account: str, partition: str,
                 bounded: bool = False) -> Split:
    """A Deny that reaches the role (by any of the three) is in all three parts. ``bounded``: the role
    has a permissions boundary."""
    parts: dict[str, list] = {"role": [], "anyone": [], "account": []}
    for stmt in statements(policy if isinstance(policy, dict) else {}):
        scope = _scope(stmt, role_arn, account, partition, bounded) if isinstance(stmt, dict) else None
        if scope is None:
            continue
        deny = stmt.get("Effect") == "Deny"
        for part, held in parts.items():
            if part == scope or deny:
                held.append(stmt)
    version = policy.get("Version") if isinstance(policy, dict) else None
    return Split(*(NamedPolicy(name, {"Version": version, "Statement": parts[p]}) for p in ("role", "anyone", "account")))


def aws_managed_key_policy(service: str, region: str, account: str, partition: str) -> dict:
    """The key policy AWS sets on its managed keys (aws/ssm, aws/secretsmanager): every principal of
    the account may use the key through the service that owns it (kms:CallerAccount and
    kms:ViaService, AWS KMS Developer Guide "AWS managed keys" and "kms:ViaService"); an IAM policy
    need not allow kms:Decrypt (Amazon ECS Developer Guide, "Required IAM permissions for Amazon ECS
    secrets": kms:Decrypt only for a customer managed key)."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": f"Allow access through {service} for all principals in the account that are authorized to use it",
         "Effect": "Allow", "Principal": {"AWS": "*"},
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant",
                    "kms:DescribeKey"],
         "Resource": "*",
         "Condition": {"StringEquals": {"kms:CallerAccount": account,
                                        "kms:ViaService": f"{service}.{region}.amazonaws.com"}}},
        {"Sid": "Allow direct access to key metadata to the account", "Effect": "Allow",
         "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
         "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"], "Resource": "*"}]}
