"""verify's verdicts: can the execution role read each secret? Decided as IAM and KMS would.

From a ``Target`` and the observed ``Facts`` it derives what the ECS agent will ask for at task start
(``Need``: action, exact resource, the request context the call carries) and decides each with
``iam_eval`` and the key's policy (``keypolicy``). Pure: nothing here reads AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from controller.verify.conditions import Truth, Unknown, all3, any3
from controller.verify.facts import (_WORST_FIRST, ALLOWED, DECRYPT, DENIED, MISSING, UNKNOWN, Facts, KeyFact, Location,
                                     Need, RoleFact, Row, Target, Unread, customer_key, decrypt_need, locate,
                                     parameter_need, secret_need)
from controller.verify.facts import log_group_need, object_needs
from controller.verify.iam_eval import Decision, Request, Verdict, evaluate
from controller.verify.keypolicy import split_key_policy
from controller.vocab.arns import BadReference
from controller.vocab.taskreads import LOG_GROUP, OBJECT, REFERENCE

# --- one row ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    verdict: str
    reason: str


@dataclass
class Assessment:
    findings: list[Finding] = field(default_factory=list)
    needs: list[Need] = field(default_factory=list)

    def add(self, verdict: str, reason: str) -> None:
        self.findings.append(Finding(verdict, reason))


def _fact(store: Mapping, key: Any, what: str, where: str, out: Assessment) -> Any:
    """The fact, or None after recording why it cannot be used."""
    fact = store.get(key)
    if isinstance(fact, Unread):
        out.add(UNKNOWN, f"cannot read {what}: {fact.reason}")
        return None
    if fact is None:
        out.add(MISSING, f"{what} does not exist in {where}")
    return fact


def _key(key_id: str, service: str, loc: Location, resource_arn: str, facts: Facts, out: Assessment) -> None:
    fact = _fact(facts.keys, (loc.region, key_id), f"KMS key {key_id}", loc.region, out)
    if fact is None or fact.manager == "AWS":
        return
    if fact.state != "Enabled":
        fix = "cancel the key deletion and enable it" if fact.state == "PendingDeletion" else "enable it"
        out.add(DENIED, f"KMS key {fact.arn} is {fact.state}; {fix}")
    out.needs.append(decrypt_need((loc.region, key_id), fact.arn, service, loc, resource_arn))


def _parameter(loc: Location, facts: Facts, out: Assessment) -> None:
    out.needs.append(parameter_need(loc))
    if loc.parameter is None:
        return
    what = f"SSM parameter {loc.parameter}"
    fact = _fact(facts.parameters, (loc.region, loc.parameter), what, loc.region, out)
    if fact is not None and fact.type == "SecureString" and customer_key(fact.key_id):
        _key(fact.key_id, "ssm", loc, loc.parameter_arn or "", facts, out)


def _secret(loc: Location, facts: Facts, out: Assessment) -> None:
    what = f"Secrets Manager secret {loc.secret}"
    fact = _fact(facts.secrets, (loc.region, loc.secret), what, loc.region, out)
    if fact is not None and fact.deleted:
        out.add(MISSING, f"{what} is scheduled for deletion; restore it")
    # Without DescribeSecret's answer a partial ARN (no random suffix) names the secret well enough.
    guess = f"arn:{facts.partition}:secretsmanager:{loc.region}:{loc.account}:secret:{loc.secret}"
    arn = fact.arn if fact is not None else loc.ref.name if loc.ref.service == "secretsmanager" else guess
    out.needs.append(secret_need(loc, arn))
    if fact is not None and customer_key(fact.key_id):
        _key(fact.key_id, "secretsmanager", loc, arn, facts, out)


def _object(target: Target, facts: Facts, out: Assessment) -> None:
    needs = object_needs(target.source)
    if not needs:
        out.add(MISSING, f"{target.source} is not an S3 object ARN (arn:aws:s3:::BUCKET/KEY)")
        return
    _fact(facts.objects, needs[0].resource, f"S3 object {target.source}", "S3", out)
    out.needs.extend(needs)


def _resources(target: Target, facts: Facts, out: Assessment) -> None:
    if target.read == OBJECT:
        return _object(target, facts, out)
    if target.read == LOG_GROUP:
        out.needs.append(log_group_need(facts, target.region or facts.region, target.source))
        return None
    try:
        loc = locate(target.source, facts, target.variable if target.read == REFERENCE else None)
    except BadReference as exc:
        out.add(MISSING, str(exc))
        return
    if loc.foreign:
        out.add(UNKNOWN, f"{target.source} is in account {loc.account}: its existence, key and resource "
                "policy cannot be read from account " + facts.account)
        out.needs.append(parameter_need(loc) if loc.parameter_arn else secret_need(loc, loc.ref.name))
        return
    if loc.parameter_arn:
        _parameter(loc, facts, out)
    if loc.secret:
        _secret(loc, facts, out)


def _role(target: Target, facts: Facts, out: Assessment) -> RoleFact | None:
    if not target.role_arn:
        out.add(DENIED, "the task definition has no execution role; ECS reads secrets with the task "
                "execution role: set executionRoleArn")
        return None
    name = target.role_arn.rsplit("/", 1)[-1]
    return _fact(facts.roles, target.role_arn, f"execution role {name}", f"account {facts.account}", out)


def assess(target: Target, facts: Facts) -> Assessment:
    out = Assessment()
    _resources(target, facts, out)
    role = _role(target, facts, out)
    if role is not None:
        for need in out.needs:
            finding = decide(need, role, facts)
            if finding is not None:
                out.findings.append(finding)
    return out


# --- the decision for one need ----------------------------------------------------------------


def _truth(verdict: Verdict) -> Truth:
    if verdict.decision == Decision.ALLOW:
        return True
    return Unknown(verdict.reason) if verdict.decision == Decision.UNKNOWN else False


def _finding(need: Need, verdict: Verdict) -> Finding | None:
    target = f"{need.action} on {need.resource}"
    if verdict.decision == Decision.ALLOW:
        return None
    if verdict.decision == Decision.EXPLICIT_DENY:
        return Finding(DENIED, f"{target}: {verdict.reason}")
    if verdict.decision == Decision.UNKNOWN:
        return Finding(UNKNOWN, f"{target}: {verdict.reason}")
    return Finding(DENIED, verdict.reason)  # an implicit deny names the action and resource itself


def decide(need: Need, role: RoleFact, facts: Facts) -> Finding | None:
    request = need.request(role.arn, facts.account)
    identity = evaluate(role.identity, request, role.boundary)
    if role.unread and identity.decision != Decision.EXPLICIT_DENY:
        # What we could not read may allow or deny: no verdict but an explicit deny is safe.
        return Finding(UNKNOWN, f"{need.action} on {need.resource}: cannot read policy {role.unread[0]}")
    key = facts.keys.get(need.key) if need.key else None
    if not isinstance(key, KeyFact) or identity.decision == Decision.EXPLICIT_DENY:
        return _finding(need, identity)
    if isinstance(key.policy, Unread):
        return Finding(UNKNOWN, f"cannot read the key policy of {key.arn}: {key.policy.reason}")
    return _decide_key(need, request, role, key, identity, facts)


def _decide_key(need: Need, request: Request, role: RoleFact, key: KeyFact, identity: Verdict,
                facts: Facts) -> Finding | None:
    """KMS grants through the key policy itself (naming the role) or by letting IAM policies grant."""
    direct, delegating = split_key_policy(key, role.arn, facts.account, facts.partition)
    by_key = evaluate([direct], request)
    by_account = evaluate([delegating], request)
    for verdict in (by_key, by_account):
        if verdict.decision == Decision.EXPLICIT_DENY:
            return _finding(need, verdict)
    # A key policy grant to the role ARN is still capped by the role's permissions boundary.
    bound = evaluate(role.boundary, request) if role.boundary is not None else Verdict(Decision.ALLOW)
    truth = any3([all3([_truth(by_account), _truth(identity)]), all3([_truth(by_key), _truth(bound)])])
    if truth is True:
        return None
    if isinstance(truth, Unknown):
        return Finding(UNKNOWN, f"{need.action} on {need.resource}: {truth.reason}")
    if _truth(by_account) is False and _truth(by_key) is False:
        return Finding(DENIED, f"the key policy of {key.arn} neither allows {DECRYPT} to the role nor lets "
                       f"IAM policies of account {facts.account} grant it (add arn:{facts.partition}:iam::"
                       f"{facts.account}:root as a principal, or the role)")
    return _finding(need, identity if _truth(by_account) is not False else bound)


def check(target: Target, facts: Facts) -> Row:
    found = assess(target, facts)
    for verdict in _WORST_FIRST:
        reasons = [f.reason for f in found.findings if f.verdict == verdict]
        if reasons:
            return Row(target, verdict, "; ".join(dict.fromkeys(reasons)), tuple(found.needs))
    return Row(target, ALLOWED, "", tuple(found.needs))
