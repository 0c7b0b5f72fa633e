"""A pure evaluator of IAM identity policies plus a permissions boundary, for one request.

It follows AWS's documented evaluation logic within a single account (no SCPs, resource or session
policies): an explicit deny anywhere wins; otherwise the identity policies must allow, and so must
the boundary when there is one. Where the request context does not say enough to decide, the answer
is UNKNOWN with the reason, never a silent allow. No AWS client, no clock, no environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping, Sequence

from controller.verify.conditions import (
    Env,
    Truth,
    Unknown,
    all3,
    any3,
    as_strings,
    condition_truth,
    glob_match,
    make_env,
    not3,
    resolve,
    wildcard,
)

__all__ = ["Decision", "NamedPolicy", "Request", "Verdict", "denial", "evaluate", "statements"]

_VARIABLES_VERSION = "2012-10-17"  # older documents treat "${...}" as literal text
_EFFECTS = ("Allow", "Deny")


class Decision(str, Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit_deny"
    IMPLICIT_DENY = "implicit_deny"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class NamedPolicy:
    name: str  # an inline policy name or a managed policy ARN
    document: dict  # decoded policy JSON; Statement may be a dict or a list


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: Mapping[str, str | list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    policy: str | None = None
    sid: str | None = None
    reason: str = ""


def statements(doc: dict) -> list[dict]:
    """The Statement element as a list (IAM accepts a single object too)."""
    raw = doc.get("Statement") if isinstance(doc, dict) else None
    if raw is None:
        return []
    return list(raw) if isinstance(raw, list) else [raw]


# --- one statement ----------------------------------------------------------------------------


def _malformed(stmt: object) -> str | None:
    if not isinstance(stmt, dict):
        return "statement is not a JSON object"
    if stmt.get("Effect") not in _EFFECTS:
        return f"statement has Effect {stmt.get('Effect')!r}, not Allow or Deny"
    if ("Action" in stmt) == ("NotAction" in stmt):
        return "statement needs exactly one of Action and NotAction"
    if ("Resource" in stmt) == ("NotResource" in stmt):
        return "statement needs exactly one of Resource and NotResource"
    return None


def _action_truth(stmt: dict, action: str) -> bool:
    # Action names are case-insensitive, service prefix and operation alike.
    element = "Action" if "Action" in stmt else "NotAction"
    hit = any(glob_match(wildcard(p), action, ignore_case=True) for p in as_strings(stmt[element]))
    return hit if element == "Action" else not hit


def _resource_match(pattern: str, resource: str, env: Env) -> Truth:
    # Case-sensitive; a wildcard stays within its colon-delimited ARN segment unless it is a `*`
    # that ends the segment, which expands beyond the colons ("arn:aws:logs:*" covers every log
    # ARN, "arn:aws:ssm:eu-west-1:*parameter/x" covers none: IAM User Guide, Resource element).
    pieces = resolve(pattern, env)
    return pieces if isinstance(pieces, Unknown) else glob_match(pieces, resource, arn=True)


def _resource_truth(stmt: dict, resource: str, env: Env) -> Truth:
    element = "Resource" if "Resource" in stmt else "NotResource"
    hit = any3(_resource_match(p, resource, env) for p in as_strings(stmt[element]))
    return hit if element == "Resource" else not3(hit)


def _statement_truth(stmt: object, request: Request, env: Env) -> Truth:
    """Does this statement apply to the request? Principal/NotPrincipal are ignored."""
    problem = _malformed(stmt)
    if problem:
        return Unknown(problem)
    assert isinstance(stmt, dict)
    return all3(
        (
            _action_truth(stmt, request.action),
            _resource_truth(stmt, request.resource, env),
            condition_truth(stmt.get("Condition"), env),
        )
    )


# --- all statements ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hit:
    """A statement that applies (truth True) or may apply (truth Unknown)."""

    policy: str
    sid: str | None
    label: str
    effect: str
    truth: Truth


def _hit(policy: NamedPolicy, index: int, stmt: object, truth: Truth) -> _Hit:
    fields = stmt if isinstance(stmt, dict) else {}
    raw_sid = fields.get("Sid")
    sid = raw_sid if isinstance(raw_sid, str) and raw_sid else None
    # A statement whose effect we cannot read is treated as a possible deny: never an allow.
    effect = fields.get("Effect") if fields.get("Effect") in _EFFECTS else "Deny"
    return _Hit(policy.name, sid, sid or f"#{index}", effect, truth)


def _hits(policies: Sequence[NamedPolicy], request: Request, env: Env) -> list[_Hit]:
    found: list[_Hit] = []
    for policy in policies:
        doc = policy.document
        if not isinstance(doc, dict):
            found.append(_hit(policy, 0, None, Unknown("policy document is not a JSON object")))
            continue
        policy_env = env.with_variables(doc.get("Version") == _VARIABLES_VERSION)
        for index, stmt in enumerate(statements(doc), start=1):
            truth = _statement_truth(stmt, request, policy_env)
            if truth is not False:
                found.append(_hit(policy, index, stmt, truth))
    return found


# --- the decision -----------------------------------------------------------------------------


def _allows(hits: list[_Hit]) -> list[_Hit]:
    return [h for h in hits if h.effect == "Allow"]


def _definite(hits: list[_Hit]) -> _Hit | None:
    return next((h for h in hits if h.truth is True), None)


def _explicit_deny(denies: list[_Hit]) -> Verdict | None:
    hit = _definite(denies)
    if hit is None:
        return None
    reason = f"explicit deny in policy {hit.policy} statement {hit.label}"
    return Verdict(Decision.EXPLICIT_DENY, hit.policy, hit.sid, reason)


def _missing_allow(
    ident: list[_Hit], bound: list[_Hit], boundary: Sequence[NamedPolicy] | None, request: Request
) -> Verdict | None:
    # Checked before unknown denies: with no allow possible the request is denied either way.
    target = f"{request.action} on {request.resource}"
    if not _allows(ident):
        return Verdict(Decision.IMPLICIT_DENY, reason=f"no statement allows {target}")
    if boundary is not None and not _allows(bound):
        names = ", ".join(p.name for p in boundary) or "(empty)"
        reason = f"permissions boundary {names} does not allow {target}"
        return Verdict(Decision.IMPLICIT_DENY, names, None, reason)
    return None


def _unknown_verdict(hit: _Hit) -> Verdict:
    assert isinstance(hit.truth, Unknown)
    where = f"{hit.effect.lower()} statement {hit.label} in policy {hit.policy}"
    return Verdict(Decision.UNKNOWN, hit.policy, hit.sid, f"{hit.truth.reason}, in {where}")


def _unknown(denies: list[_Hit], groups: list[list[_Hit]]) -> Verdict | None:
    if denies:  # definite denies were handled already: these may or may not apply
        return _unknown_verdict(denies[0])
    for hits in groups:
        allows = _allows(hits)
        if _definite(allows) is None:
            return _unknown_verdict(allows[0])
    return None


def _allow(groups: list[list[_Hit]], names: tuple[str, ...]) -> Verdict:
    deciders = [_definite(_allows(hits)) for hits in groups]
    first = deciders[0]
    assert first is not None
    parts = [f"{name} {h.policy} statement {h.label}" for name, h in zip(names, deciders) if h]
    return Verdict(Decision.ALLOW, first.policy, first.sid, "allowed by " + " and ".join(parts))


def evaluate(
    identity: Sequence[NamedPolicy],
    request: Request,
    boundary: Sequence[NamedPolicy] | None = None,
) -> Verdict:
    """Decide one request: explicit deny, then a missing allow, then what cannot be judged."""
    env = make_env(request.context)
    ident = _hits(identity, request, env)
    bound = _hits(boundary or (), request, env)
    denies = [h for h in ident + bound if h.effect == "Deny"]
    groups = [ident] if boundary is None else [ident, bound]
    return (
        _explicit_deny(denies)
        or _missing_allow(ident, bound, boundary, request)
        or _unknown(denies, groups)
        or _allow(groups, ("policy", "permissions boundary"))
    )


def denial(policies: Sequence[NamedPolicy], request: Request) -> Verdict | None:
    """Only the Deny statements of ``policies``: an explicit deny, UNKNOWN for a deny that may apply, or
    None. For grants that come from elsewhere (a resource policy) the caller's own denies still count."""
    env = make_env(request.context)
    denies = [h for h in _hits(policies, request, env) if h.effect == "Deny"]
    return _explicit_deny(denies) or (_unknown_verdict(denies[0]) if denies else None)
