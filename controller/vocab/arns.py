"""ARNs and secret references, built and parsed as AWS spells them. Pure."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

SM_REFERENCE_PREFIX = "/aws/reference/secretsmanager/"

# The partition each Region belongs to, as botocore's partitions data (botocore/data/partitions.json,
# "regionRegex") says; every Region these patterns do not match is in "aws". Pure packages may not
# import botocore, so the table lives here; tests/test_partitions.py holds it equal to botocore's data.
PARTITIONS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((p, re.compile(rx)) for p, rx in (
    ("aws-cn", r"cn-\w+-\d+"),
    ("aws-us-gov", r"us-gov-\w+-\d+"),
    ("aws-iso", r"us-iso-\w+-\d+"),
    ("aws-iso-b", r"us-isob-\w+-\d+"),
    ("aws-iso-e", r"eu-isoe-\w+-\d+"),
    ("aws-iso-f", r"us-isof-\w+-\d+"),
    ("aws-eusc", r"eusc-de-\w+-\d+"),
))
ECS_TASK_EXECUTION_POLICY = "service-role/AmazonECSTaskExecutionRolePolicy"
_ARN = re.compile(r"^arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):"
                  r"(?P<account>\d{12}|aws|):(?P<resource>.+)$")


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str

    def __str__(self) -> str:
        return f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:{self.resource}"


def partition_of(region: str) -> str:
    """``cn-north-1`` → ``aws-cn``, ``us-gov-west-1`` → ``aws-us-gov``, ``eu-west-1`` → ``aws``."""
    return next((p for p, rx in PARTITIONS if rx.fullmatch(region)), "aws")


def aws_managed_policy_arn(partition: str, name: str) -> str:
    """An AWS managed policy in ``partition``: ``arn:aws-cn:iam::aws:policy/service-role/...`` in China."""
    return f"arn:{partition}:iam::aws:policy/{name}"


def parse_arn(text: str) -> Arn | None:
    m = _ARN.fullmatch(text)   # not match(): its "$" also matches before a trailing newline
    return Arn(**m.groupdict()) if m else None


def parameter_arn(partition: str, region: str, account: str, name: str) -> str:
    """``/a/b`` and ``a`` give ``parameter/a/b`` and ``parameter/a``: never ``parameter//a``."""
    return f"arn:{partition}:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


def parameter_name_from_arn(resource: str) -> str:
    """``parameter/a/b`` → ``/a/b``; ``parameter/a`` → ``a`` (a name with a path starts with '/')."""
    rest = resource.split("/", 1)[1] if "/" in resource else ""
    return "/" + rest if "/" in rest else rest


def role_arn(partition: str, account: str, path: str, name: str) -> str:
    return f"arn:{partition}:iam::{account}:role{path}{name}"


def role_name_from_arn(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Reference:
    """One ``valueFrom`` as ECS will resolve it.

    ``service`` is ``ssm`` (a parameter, including ``/aws/reference/secretsmanager/`` paths) or
    ``secretsmanager`` (a secret ARN). ``region``/``account`` are None when the reference is a bare
    name, which ECS resolves in the task's own Region and account.
    """

    raw: str
    service: str
    name: str                     # SSM name, or the secret ARN without JSON-key/version suffixes
    region: str | None = None
    account: str | None = None
    json_key: str | None = None
    version_stage: str | None = None
    version_id: str | None = None
    partition: str | None = None  # of an ARN; None for a bare name (the task's own partition)

    @property
    def secret_id(self) -> str | None:
        """The Secrets Manager secret this reference reads, if any."""
        if self.service == "secretsmanager":
            return self.name
        if self.name.startswith(SM_REFERENCE_PREFIX):
            return self.name[len(SM_REFERENCE_PREFIX):]
        return None

    def key(self, region: str) -> tuple[str, str, str]:
        """Identity for comparison: a same-Region name and its ARN are the same reference."""
        return (self.service, self.region or region, self.name)


class BadReference(ValueError):
    pass


def parse_value_from(raw: str) -> Reference:
    for pos, ch in enumerate(raw, start=1):
        if ch.isspace() or not ch.isprintable():   # ECS passes valueFrom as written: "/a\n" is not "/a"
            described = f"{ch!r} (U+{ord(ch):04X} {unicodedata.name(ch, 'control character')})"
            raise BadReference(f"{raw!r} has whitespace or a control character, {described}, at position {pos}; "
                               "a parameter name or ARN has none — remove it")
    if not raw.startswith("arn:"):
        return Reference(raw=raw, service="ssm", name=raw)
    arn = parse_arn(raw)
    if arn is None:
        raise BadReference(f"{raw!r} is not a valid ARN; use a parameter name or a full ARN")
    if arn.region and partition_of(arn.region) != arn.partition:
        fixed = str(Arn(partition_of(arn.region), arn.service, arn.region, arn.account, arn.resource))
        raise BadReference(f"{raw!r} is in partition {arn.partition!r}, but Region {arn.region} is in "
                           f"{partition_of(arn.region)!r}; write {fixed}")
    if arn.service == "ssm" and arn.resource.startswith("parameter/"):
        return Reference(raw, "ssm", parameter_name_from_arn(arn.resource), arn.region, arn.account,
                         partition=arn.partition)
    if arn.service == "secretsmanager" and arn.resource.startswith("secret:"):
        return _secret_reference(raw, arn)
    raise BadReference(f"{raw!r} is neither an SSM parameter ARN nor a Secrets Manager secret ARN")


def _secret_reference(raw: str, arn: Arn) -> Reference:
    # secret:NAME alone, or secret:NAME:json-key:version-stage:version-id with all three fields
    # present (each may be empty). The ECS agent splits the resource at ':' and refuses any other
    # count (amazon-ecs-agent, agent/taskresource/asmsecret/asmsecret.go, getASMParametersFromInput).
    parts = arn.resource.split(":")
    if not parts[1]:
        raise BadReference(f"{raw!r} names no secret; a secret reference is "
                           "arn:...:secret:NAME[:json-key:version-stage:version-id]")
    if len(parts) not in (2, 5):
        given = len(parts) - 2
        hint = (f"; write {raw + ':' * (5 - len(parts))}" if len(parts) < 5 else
                "; a JSON key, version stage or version id cannot contain ':'")
        raise BadReference(f"{raw!r} has {given} of the 3 fields after the secret name; ECS reads either the "
                           "secret ARN alone or all three, json-key:version-stage:version-id (each may be empty, "
                           f"the colons may not be left out){hint}")
    extra = (parts[2:] + ["", "", ""])[:3]
    base = Arn(arn.partition, arn.service, arn.region, arn.account, f"secret:{parts[1]}")
    return Reference(raw, "secretsmanager", str(base), arn.region, arn.account,
                     extra[0] or None, extra[1] or None, extra[2] or None, arn.partition)
