"""verify's data: what was observed (``Facts``), where each ``valueFrom`` points, what the ECS agent needs, rows.

Pure: nothing here reads AWS, decrypts or sees a secret value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

from controller.verify.iam_eval import NamedPolicy, Request
from controller.vocab.arns import SM_REFERENCE_PREFIX, BadReference, Reference, parameter_arn, parse_value_from
from controller.vocab.secretrefs import secret_uses
from controller.vocab.taskreads import REFERENCE, TaskRead, log_group_request_arn, reference, s3_object, task_reads

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
    # version id → its staging labels (DescribeSecret's VersionIdsToStages, plus any unlabelled
    # version a reference pins, from ListSecretVersionIds); None when not read
    versions: Mapping[str, tuple[str, ...]] | None = None
    versions_unread: str | None = None  # why a pinned, unlabelled version id could not be looked up
    policy: Any = None  # the secret's resource policy: a dict, None (it has none) or Unread


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
    objects: dict[str, Any] = field(default_factory=dict)  # S3 object ARN → True (it exists), None or Unread


SSM_DEFAULT_KEY, SM_DEFAULT_KEY = "alias/aws/ssm", "alias/aws/secretsmanager"  # the AWS managed keys


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
    read: str = "secret"  # or what else the agent reads at task start: a kind of ``taskreads``
    region: str | None = None  # LOG_GROUP: awslogs-region


def targets(label: str, body: Mapping[str, Any]) -> list[Target]:
    """A row per container secret, then per other read the execution role makes at task start."""
    role = body.get("executionRoleArn") or None
    out = [Target(label, u.container, u.variable, u.value_from, role) for u in secret_uses(dict(body))]
    return out + [Target(label, r.container, r.label, r.source, role, r.kind, r.region) for r in task_reads(dict(body))]


@dataclass(frozen=True)
class Location:
    ref: Reference
    region: str
    account: str
    foreign: bool  # in another account: its existence and key cannot be read from ours
    parameter_arn: str | None  # what ssm:GetParameters is asked for; None for a secret ARN
    parameter: str | None  # the SSM parameter to look up; None for secrets
    secret: str | None  # the Secrets Manager secret id to look up


def locate(source: str, facts: Facts, label: str | None = None) -> Location:
    """Raises BadReference for a valueFrom that names nothing ECS can read. ``label``: a REFERENCE
    ``taskreads`` row (registry credentials, FSx credentials, credential spec), resolved as ECS does."""
    ref = reference(TaskRead((), "", label, REFERENCE, source)) if label else parse_value_from(source)
    if ref.partition and ref.partition != facts.partition:
        raise BadReference(f"{source!r} is in partition {ref.partition!r}, the account in {facts.partition!r}; "
                           "ECS reads secrets from the task's own account and partition only")
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
    secret: tuple[str, str] | None = None  # GetSecretValue: the (region, secret id) whose policy also decides

    def request(self, role_arn: str, account: str) -> Request:
        principal = {"aws:PrincipalArn": role_arn, "aws:PrincipalAccount": account, "aws:SecureTransport": "true"}
        return Request(self.action, self.resource, {**principal, **self.context})


def parameter_need(loc: Location) -> Need:
    return Need("ssm:GetParameters", loc.parameter_arn or "", {"aws:RequestedRegion": loc.region})


def secret_need(loc: Location, secret_arn: str) -> Need:
    context = {"aws:RequestedRegion": loc.region, "secretsmanager:SecretId": secret_arn}
    secret = (loc.region, loc.secret) if loc.secret else None
    return Need("secretsmanager:GetSecretValue", secret_arn, context, secret=secret)


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


def object_needs(arn: str) -> tuple[Need, ...]:
    """An S3 file the agent downloads: s3:GetObject on it, s3:GetBucketLocation on its bucket."""
    obj = s3_object(arn)
    if obj is None:
        return ()
    return Need("s3:GetObject", obj.arn, {}), Need("s3:GetBucketLocation", obj.bucket_arn, {})


def log_group_need(facts: Facts, region: str, name: str) -> Need:
    """awslogs-create-group: the driver's CreateLogGroup, authorized on ``log-group:NAME:log-stream:``."""
    arn = log_group_request_arn(facts.partition, region, facts.account, name)
    return Need("logs:CreateLogGroup", arn, {"aws:RequestedRegion": region})


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


def summary(rows: Sequence[Row]) -> dict[str, int]:
    return {v: sum(r.verdict == v for r in rows) for v in VERDICTS}


def exit_code(rows: Sequence[Row]) -> int:
    counts = summary(rows)
    if counts[DENIED] or counts[MISSING]:
        return EXIT_FAILED
    return EXIT_UNKNOWN if counts[UNKNOWN] else EXIT_OK
