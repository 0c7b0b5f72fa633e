"""verify's verdicts: can the execution role read each secret? Decided as IAM and KMS would.

From a ``Target`` and the observed ``Facts`` it derives what the ECS agent will ask for at task start
(``Need``: action, exact resource, the request context the call carries) and decides each with
``iam_eval`` and the key's policy (``keypolicy``). Pure: nothing here reads AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from controller.verify.conditions import Truth, Unknown, all3, any3
from controller.verify.facts import (_WORST_FIRST, ALLOWED, DECRYPT, DENIED, MISSING, SM_DEFAULT_KEY, SSM_DEFAULT_KEY,
                                     UNKNOWN, Facts, KeyFact, Location, Need, RoleFact, Row, SecretFact, Target, Unread,
                                     decrypt_need, locate, parameter_need, secret_need)
from controller.verify.facts import log_group_need, object_needs
from controller.verify.iam_eval import Decision, Request, Verdict, denial, evaluate
from controller.verify.keypolicy import Split, split_policy
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
    if fact is None:
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
    if fact is not None and fact.type == "SecureString":  # an AWS managed key is decided too
        _key(fact.key_id or SSM_DEFAULT_KEY, "ssm", loc, loc.parameter_arn or "", facts, out)


def _secret(loc: Location, facts: Facts, out: Assessment) -> None:
    what = f"Secrets Manager secret {loc.secret}"
    fact = _fact(facts.secrets, (loc.region, loc.secret), what, loc.region, out)
    if fact is not None and fact.deleted:
        out.add(MISSING, f"{what} is scheduled for deletion; restore it")
    # Without DescribeSecret's answer a partial ARN (no random suffix) names the secret well enough.
    guess = f"arn:{facts.partition}:secretsmanager:{loc.region}:{loc.account}:secret:{loc.secret}"
    arn = fact.arn if fact is not None else loc.ref.name if loc.ref.service == "secretsmanager" else guess
    out.needs.append(secret_need(loc, arn))
    if fact is not None:
        _versions(loc, fact, out)
        _key(fact.key_id or SM_DEFAULT_KEY, "secretsmanager", loc, arn, facts, out)


def _versions(loc: Location, fact: SecretFact, out: Assessment) -> None:
    """A pinned version stage or id must exist, and name one version when both are given (the ECS
    agent passes them to GetSecretValue, which refuses otherwise: GetSecretValue API reference)."""
    stage, version = loc.ref.version_stage, loc.ref.version_id
    if not (stage or version) or fact.versions is None:
        return
    what = f"Secrets Manager secret {fact.arn}"
    if version and version not in fact.versions:
        if fact.versions_unread:
            out.add(UNKNOWN, f"cannot tell whether version {version} of {what} exists: {fact.versions_unread}")
        else:
            out.add(MISSING, f"version id {version} of {what} does not exist; pin an existing version id or "
                    "leave it empty")
        return
    labelled = {label for labels in fact.versions.values() for label in labels}
    if stage and stage not in labelled:
        out.add(MISSING, f"no version of {what} has the staging label {stage}; existing labels: "
                + (", ".join(sorted(labelled)) or "none"))
    elif stage and version and stage not in fact.versions[version]:
        out.add(MISSING, f"version {version} of {what} does not have the staging label {stage}; "
                "GetSecretValue needs the stage and the id to name the same version")


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
    if identity.decision == Decision.EXPLICIT_DENY:
        return _finding(need, identity)
    key = facts.keys.get(need.key) if need.key else None
    if isinstance(key, KeyFact):
        if isinstance(key.policy, Unread):
            return Finding(UNKNOWN, f"cannot read the key policy of {key.arn}: {key.policy.reason}")
        split = split_policy(key.policy, f"key policy of {key.arn}", role.arn, facts.account, facts.partition,
                             role.boundary is not None)
        return _with_resource_policy(need, request, role, split, identity, key=key, facts=facts)
    secret = facts.secrets.get(need.secret) if need.secret else None
    if isinstance(secret, SecretFact) and secret.policy is not None:
        if isinstance(secret.policy, Unread):
            return Finding(UNKNOWN, f"cannot read the resource policy of {secret.arn}: {secret.policy.reason}")
        split = split_policy(secret.policy, f"resource policy of {secret.arn}", role.arn, facts.account,
                             facts.partition, role.boundary is not None)
        return _with_resource_policy(need, request, role, split, identity, key=None, facts=facts)
    return _finding(need, identity)


def _with_resource_policy(need: Need, request: Request, role: RoleFact, split: Split, identity: Verdict,
                          key: KeyFact | None, facts: Facts) -> Finding | None:
    """A resource policy grants to the role by ARN (still capped by its permissions boundary) or to every
    principal; a KMS key policy must also name the account before IAM policies can grant at all, while a
    same-account secret is readable when the identity policies or the secret's policy allow (Secrets
    Manager User Guide, "Determine who has permissions to your secrets"). Any explicit deny wins."""
    by_role, by_anyone, by_account = (evaluate([part], request) for part in split)
    for verdict in (by_role, by_anyone, by_account):
        if verdict.decision == Decision.EXPLICIT_DENY:
            return _finding(need, verdict)
    bound = evaluate(role.boundary, request) if role.boundary is not None else Verdict(Decision.ALLOW)
    through_iam = all3([_truth(by_account), _truth(identity)]) if key is not None else _truth(identity)
    truth = any3([through_iam, all3([_truth(by_role), _truth(bound)]), _truth(by_anyone)])
    if truth is True:
        # Whichever policy grants, a deny that may apply anywhere (role, boundary, resource) leaves doubt.
        doubt = denial(list(role.identity) + list(role.boundary or ()) + list(split), request)
        return None if doubt is None else _finding(need, doubt)
    if isinstance(truth, Unknown):
        return Finding(UNKNOWN, f"{need.action} on {need.resource}: {truth.reason}")
    if key is not None and all(_truth(v) is False for v in (by_account, by_role, by_anyone)):
        return Finding(DENIED, f"the key policy of {key.arn} neither allows {DECRYPT} to the role nor lets "
                       f"IAM policies of account {facts.account} grant it (add arn:{facts.partition}:iam::"
                       f"{facts.account}:root as a principal, or the role)")
    iam_possible = key is None or _truth(by_account) is not False
    return _finding(need, identity if iam_possible or _truth(by_role) is not True else bound)


def check(target: Target, facts: Facts) -> Row:
    found = assess(target, facts)
    for verdict in _WORST_FIRST:
        reasons = [f.reason for f in found.findings if f.verdict == verdict]
        if reasons:
            return Row(target, verdict, "; ".join(dict.fromkeys(reasons)), tuple(found.needs))
    return Row(target, ALLOWED, "", tuple(found.needs))
