"""A KMS key policy, split by whom it speaks to: the role itself, or the account's IAM policies. Pure."""

from __future__ import annotations

from controller.verify.conditions import as_strings
from controller.verify.facts import KeyFact
from controller.verify.iam_eval import NamedPolicy, statements


def _principals(value: object) -> set[str]:
    if value == "*":
        return {"*"}
    if isinstance(value, dict) and value.get("AWS") is not None:
        return set(as_strings(value["AWS"]))
    return set()


def _scope(stmt: dict, role_arn: str, account: str, partition: str) -> str | None:
    """Whom a key-policy statement speaks to: "role" (directly), "account" (its IAM policies), None."""
    ours = {f"arn:{partition}:iam::{account}:root", account}
    if "NotPrincipal" in stmt:
        excluded = _principals(stmt["NotPrincipal"])
        return None if excluded & (ours | {role_arn}) else "role"
    named = _principals(stmt.get("Principal"))
    if "*" in named or role_arn in named:
        return "role"
    return "account" if named & ours else None


def split_key_policy(key: KeyFact, role_arn: str, account: str, partition: str) -> tuple[NamedPolicy, NamedPolicy]:
    """(statements that grant to the role itself, statements that delegate to the account's IAM);
    a Deny that reaches the role is in both."""
    name = f"key policy of {key.arn}"
    direct, delegating = [], []
    for stmt in statements(key.policy if isinstance(key.policy, dict) else {}):
        scope = _scope(stmt, role_arn, account, partition) if isinstance(stmt, dict) else None
        deny = isinstance(stmt, dict) and stmt.get("Effect") == "Deny"
        if scope == "role" or (deny and scope):
            direct.append(stmt)
        if scope == "account" or (deny and scope):
            delegating.append(stmt)
    version = key.policy.get("Version") if isinstance(key.policy, dict) else None
    return (NamedPolicy(name, {"Version": version, "Statement": direct}),
            NamedPolicy(name, {"Version": version, "Statement": delegating}))
