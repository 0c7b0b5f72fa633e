"""verify: can every container read every one of its secrets? Decided as IAM and KMS would.

The pure middle of ``ecs-secrets verify``. From a task definition it derives what the ECS agent
will ask for at task start (``Need``: action, exact resource, the request context the call
carries); from observed ``Facts`` (the role's policies, the parameters, secrets and KMS keys) it
decides each row with ``iam_eval``. Nothing here reads AWS, decrypts or sees a secret value:
``command`` hands the reads to ``verify_observe`` (imported there, so this module stays pure).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, TextIO, Union

from controller.vocab.arns import SM_REFERENCE_PREFIX, BadReference, Reference, parameter_arn, parse_value_from
from controller.verify.conditions import Truth, Unknown, all3, any3
from controller.verify.iam_eval import Decision, NamedPolicy, Request, Verdict, evaluate
from controller.verify.keypolicy import split_key_policy
from controller.vocab.secretrefs import secret_uses

ALLOWED, DENIED, MISSING, UNKNOWN = "allowed", "denied", "missing", "unknown"
VERDICTS = (ALLOWED, DENIED, MISSING, UNKNOWN)
_WORST_FIRST = (MISSING, DENIED, UNKNOWN)
EXIT_OK, EXIT_FAILED, EXIT_UNKNOWN = 0, 1, 3
DECRYPT = "kms:Decrypt"


# --- what was observed ------------------------------------------------------------------------


@dataclass(frozen=True)
class Unread:
    """A fact that could not be read (access denied, throttled for good, …): never a pass."""

    reason: str


@dataclass(frozen=True)
class ParameterFact:
    name: str
    type: str
    key_id: str | None  # as DescribeParameters says it: alias/aws/ssm, alias/NAME, key id or ARN


@dataclass(frozen=True)
class SecretFact:
    arn: str
    key_id: str | None  # None: the AWS managed key aws/secretsmanager
    deleted: bool = False  # scheduled for deletion: GetSecretValue fails


@dataclass(frozen=True)
class KeyFact:
    arn: str
    state: str  # Enabled, Disabled, PendingDeletion, …
    manager: str  # AWS or CUSTOMER
    policy: Union[dict, Unread]


@dataclass(frozen=True)
class RoleFact:
    arn: str
    identity: tuple[NamedPolicy, ...]  # inline and attached managed (default versions)
    boundary: tuple[NamedPolicy, ...] | None = None
    unread: tuple[str, ...] = ()  # "policy: why" for each attached policy whose document could not be read


@dataclass
class Facts:
    """Each store maps to the fact, None when it does not exist, or Unread."""

    account: str
    region: str
    partition: str = "aws"
    parameters: dict[tuple[str, str], Any] = field(default_factory=dict)  # (region, name) → ParameterFact
    secrets: dict[tuple[str, str], Any] = field(default_factory=dict)  # (region, secret id) → SecretFact
    keys: dict[tuple[str, str], Any] = field(default_factory=dict)  # (region, key id as written) → KeyFact
    roles: dict[str, Any] = field(default_factory=dict)  # role ARN → RoleFact


def customer_key(key_id: str | None) -> bool:
    """A key id that may be customer managed; ``alias/aws/*`` names the AWS managed keys."""
    return bool(key_id) and not (key_id.startswith("alias/aws/") or ":alias/aws/" in key_id)


# --- where a valueFrom points ---------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One container secret: a row of the report."""

    task_definition: str  # family (manifests) or family:revision (registered)
    container: str
    variable: str
    source: str  # the valueFrom as written
    role_arn: str | None


def targets(label: str, body: Mapping[str, Any]) -> list[Target]:
    role = body.get("executionRoleArn") or None
    return [Target(label, u.container, u.variable, u.value_from, role) for u in secret_uses(dict(body))]


@dataclass(frozen=True)
class Location:
    ref: Reference
    region: str
    account: str
    foreign: bool  # in another account: its existence and key cannot be read from ours
    parameter_arn: str | None  # what ssm:GetParameters is asked for; None for a secret ARN
    parameter: str | None  # the SSM parameter to look up; None for secrets
    secret: str | None  # the Secrets Manager secret id to look up


def locate(source: str, facts: Facts) -> Location:
    """Raises BadReference for a valueFrom that names nothing ECS can read."""
    ref = parse_value_from(source)
    region, account = ref.region or facts.region, ref.account or facts.account
    p_arn = parameter_arn(facts.partition, region, account, ref.name) if ref.service == "ssm" else None
    by_reference = ref.service == "ssm" and ref.name.startswith(SM_REFERENCE_PREFIX)
    parameter = ref.name if ref.service == "ssm" and not by_reference else None
    return Location(ref, region, account, account != facts.account, p_arn, parameter, ref.secret_id)


# --- what the ECS agent needs -----------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    context: Mapping[str, Any]
    key: tuple[str, str] | None = None  # kms:Decrypt: the (region, key id) whose policy also decides

    def request(self, role_arn: str, account: str) -> Request:
        principal = {"aws:PrincipalArn": role_arn, "aws:PrincipalAccount": account, "aws:SecureTransport": "true"}
        return Request(self.action, self.resource, {**principal, **self.context})


def parameter_need(loc: Location) -> Need:
    return Need("ssm:GetParameters", loc.parameter_arn or "", {"aws:RequestedRegion": loc.region})


def secret_need(loc: Location, secret_arn: str) -> Need:
    context = {"aws:RequestedRegion": loc.region, "secretsmanager:SecretId": secret_arn}
    return Need("secretsmanager:GetSecretValue", secret_arn, context)


def decrypt_need(key: tuple[str, str], key_arn: str, service: str, loc: Location, resource_arn: str) -> Need:
    """kms:Decrypt as SSM or Secrets Manager calls it for the agent, with that service's context."""
    label = "PARAMETER_ARN" if service == "ssm" else "SecretARN"
    context = {
        "aws:RequestedRegion": loc.region,
        "aws:ViaAWSService": "true",
        "kms:ViaService": f"{service}.{loc.region}.amazonaws.com",
        "kms:CallerAccount": loc.account,
        "kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        f"kms:EncryptionContext:{label}": resource_arn,
        "kms:EncryptionContextKeys": [label] if service == "ssm" else [label, "SecretVersionId"],
    }
    return Need(DECRYPT, key_arn, context, key)


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


def _resources(target: Target, facts: Facts, out: Assessment) -> None:
    try:
        loc = locate(target.source, facts)
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


# --- rows, the report, rendering --------------------------------------------------------------


@dataclass
class Row:
    target: Target
    verdict: str
    reason: str
    needs: tuple[Need, ...] = ()
    aws_simulation: str | None = None

    def as_dict(self) -> dict[str, Any]:
        t = self.target
        out = {"task_definition": t.task_definition, "container": t.container, "variable": t.variable,
               "source": t.source, "verdict": self.verdict, "reason": self.reason}
        if self.aws_simulation is not None:
            out["aws_simulation"] = self.aws_simulation
        return out


def check(target: Target, facts: Facts) -> Row:
    found = assess(target, facts)
    for verdict in _WORST_FIRST:
        reasons = [f.reason for f in found.findings if f.verdict == verdict]
        if reasons:
            return Row(target, verdict, "; ".join(dict.fromkeys(reasons)), tuple(found.needs))
    return Row(target, ALLOWED, "", tuple(found.needs))


def summary(rows: Sequence[Row]) -> dict[str, int]:
    return {v: sum(r.verdict == v for r in rows) for v in VERDICTS}


def exit_code(rows: Sequence[Row]) -> int:
    counts = summary(rows)
    if counts[DENIED] or counts[MISSING]:
        return EXIT_FAILED
    return EXIT_UNKNOWN if counts[UNKNOWN] else EXIT_OK


def command(aws: Any, *, manifest: Any = None, family: str | None = None, output: str = "text",
            against_aws: bool = False, out: TextIO = sys.stdout) -> int:
    """``ecs-secrets verify``: ``manifest`` (a loaded Manifest or a path) and/or ``family``
    (``NAME``, ``NAME:REV`` or an ARN of a registered task definition). Returns the exit code."""
    # Imported here: the reads need boto3, and this module stays importable without it.
    from controller.verify import observe as verify_observe
    from controller.verify.report import render_json, render_text

    rows = verify_observe.rows(aws, manifest=manifest, family=family, against_aws=against_aws)
    out.write(render_json(rows) if output == "json" else render_text(rows, against_aws))
    return exit_code(rows)
