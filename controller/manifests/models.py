"""The manifest kinds as pydantic models: the shape of what a user writes, and nothing more.

Rules that need more than one field or more than one object live in ``checks``; the ECS part of
a TaskDefinition is checked against botocore's service model (``ecsmodel``), not modelled here by hand.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

API_VERSION = "ecs-secrets/v1"
DEFAULT_KMS_KEY = "alias/aws/ssm"
# The default of managedPolicyArns, as written in the commercial partition; ``desire`` puts it in the
# partition of the manifests' Region (arn:aws-cn:... in China, arn:aws-us-gov:... in GovCloud).
DEFAULT_MANAGED_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
DEFAULT_INLINE_POLICY = "ecs-secrets"

DeletionPolicy = Literal["Retain", "Delete"]
_FIELD_PATH = r"^(containerDefinitions\[[^\]]+\]\.)?[A-Za-z]+$"
_DELETION = "what --prune does once the object left the manifests: Retain (the default) keeps it, Delete deletes it"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metadata(Strict):
    name: str = Field(description="unique per kind; lowercase letters, digits and '-'")
    adopt: bool = Field(False, description="take over an existing resource of the same name that lacks the owner tag")
    labels: dict[str, str] = Field(default_factory=dict, description="free-form labels; not sent to AWS")
    targets: list[str] | None = Field(None, description="the Targets (metadata.name) this object goes to; none: the "
                                      "controller's own account and Region")


class Generate(Strict):
    length: int = Field(32, ge=8, le=4096, strict=True, description="characters of a random URL-safe value")


class ValueSource(Strict):
    fromEnv: str | None = Field(None, description="an environment variable of the controller")
    fromFile: str | None = Field(None, description="a file; one trailing newline is stripped")
    generate: Generate | None = Field(None, description="random, created once, never overwritten")
    literal: str | None = Field(None, description="String/StringList only")

    @model_validator(mode="after")
    def exactly_one(self) -> "ValueSource":
        given = [k for k in ("fromEnv", "fromFile", "generate", "literal") if getattr(self, k) is not None]
        nulls = sorted(k for k in self.model_fields_set if getattr(self, k) is None)
        if not given and nulls:
            raise ValueError(f"{nulls[0]} is null (YAML reads an empty value, ~ or null so); give it a value")
        if len(given) != 1:
            raise ValueError("give exactly one of fromEnv, fromFile, generate, literal"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self


class ParameterSpec(Strict):
    name: str = Field(description="the SSM parameter name; a name with a path starts with '/'")
    type: Literal["SecureString", "String", "StringList"] = Field(
        "SecureString", description="the SSM parameter type; SecureString (the default) is encrypted with KMS")
    kmsKeyId: str | None = Field(None, description="key id, key ARN, alias/NAME or alias ARN (SecureString only)")
    description: str | None = Field(None, max_length=1024, description="the SSM parameter's description")
    tier: Literal["Standard", "Advanced", "Intelligent-Tiering"] = Field(
        "Standard", description="the SSM tier: Standard values up to 4 KB, Advanced up to 8 KB")
    tags: dict[str, str] = Field(default_factory=dict, description="tags of the parameter, besides ecs-secrets:owner")
    value: ValueSource | None = Field(None, description="absent: managed elsewhere, must exist")
    region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
                               description="create it in this Region instead of the controller's")
    deletionPolicy: DeletionPolicy = Field("Retain", description=_DELETION)


class ExecutionRoleSpec(Strict):
    roleName: str = Field(description="the IAM role name")
    path: str = Field("/", description="the IAM path of the role")
    description: str | None = Field(None, max_length=1000, description="the IAM role's description")
    managedPolicyArns: list[str] = Field(default_factory=lambda: [DEFAULT_MANAGED_POLICY],
                                         description="managed policies attached to the role (default: "
                                         "AmazonECSTaskExecutionRolePolicy)")
    inlinePolicyName: str = Field(DEFAULT_INLINE_POLICY, description="the name of the derived inline policy: the "
                                  "least privilege every TaskDefinition using this role needs")
    tags: dict[str, str] = Field(default_factory=dict, description="tags of the role, besides ecs-secrets:owner")
    deletionPolicy: DeletionPolicy = Field("Retain", description=_DELETION)


_SERVICE = re.compile(r"[A-Za-z0-9_-]{1,255}/[A-Za-z0-9_-]{1,255}")   # CLUSTER/SERVICE: ECS's name rules for both


def _service_name(value: str) -> str:
    if not _SERVICE.fullmatch(value):
        raise ValueError(f"{value!r} is not CLUSTER/SERVICE (each up to 255 letters, digits, '-' and '_'); write it "
                         "like prod/web")
    return value


class Rollout(Strict):
    """Which ECS services run this task definition, and when to start new tasks in them."""
    services: list[Annotated[str, AfterValidator(_service_name)]] | None = Field(
        None, min_length=1, description="the services, as CLUSTER/SERVICE")
    discover: bool = Field(False, strict=True, description="every service whose task definition, deployments or "
                           "task sets run a revision of this family (in the --cluster clusters, or all)")
    onSecretChange: bool = Field(True, strict=True, description="a secret the service's revision reads changed "
                                 "since its deployment started (by us or out of band): force a new deployment")
    updateService: bool = Field(False, strict=True, description="the service does not run the family's latest "
                                "revision (we registered one): move it there")
    maxConcurrent: int = Field(1, ge=1, le=100, strict=True, description="services of this rollout deploying at once")

    @model_validator(mode="after")
    def which_services(self) -> "Rollout":
        if (self.services is None) == (not self.discover):
            raise ValueError("give services: [CLUSTER/SERVICE, ...] or discover: true (one of them)")
        return self


class TaskDefinitionSpec(BaseModel):
    """Our own fields; every other key is RegisterTaskDefinition input, checked against botocore."""

    model_config = ConfigDict(extra="allow", frozen=True)

    family: str = Field(description="the task-definition family; a change registers a new revision")
    executionRole: str | None = Field(None, description="an ExecutionRole's metadata.name, a role name or a role ARN")
    keepRevisions: int | None = Field(None, ge=1, strict=True,   # strict: `true` is not 1, nor "3" or 2.0
                                      description="deregister owned revisions older than the newest N")
    deletionPolicy: DeletionPolicy = Field("Retain", description=_DELETION)
    externallyManaged: list[str] = Field(
        default_factory=list, json_schema_extra={"items": {"type": "string", "pattern": _FIELD_PATH}},
        description="fields another writer owns, e.g. the image a CI pipeline deploys: "
        "containerDefinitions[NAME].FIELD (NAME a container's name, or * for all) or a field of the task. Taken "
        "from the family's latest ACTIVE revision (the manifest's value only for the first one), never a diff, "
        "kept in every revision ecs-secrets registers")
    rollout: Rollout | None = Field(None, description="roll the ECS services that run this task definition when "
                                    "a secret they read changes, or when it gets a new revision")

    def ecs_fields(self) -> dict[str, Any]:
        return {"family": self.family, **(self.model_extra or {})}


class _Document(Strict):
    apiVersion: Literal["ecs-secrets/v1"] = Field(description="always ecs-secrets/v1")
    metadata: Metadata = Field(description="the object's name (unique per kind) and whether to adopt")


class ParameterDoc(_Document):
    """An SSM parameter: its name, type, KMS key and where its value comes from."""
    kind: Literal["Parameter"] = Field(description="an SSM Parameter Store parameter")
    spec: ParameterSpec = Field(description="the parameter")


class ExecutionRoleDoc(_Document):
    """A task execution role, with the inline policy derived from the task definitions that use it."""
    kind: Literal["ExecutionRole"] = Field(description="an ECS task execution role")
    spec: ExecutionRoleSpec = Field(description="the role")


class TaskDefinitionDoc(_Document):
    """An ECS task definition family: a change registers a new revision."""
    kind: Literal["TaskDefinition"] = Field(description="an ECS task definition")
    spec: TaskDefinitionSpec = Field(description="the RegisterTaskDefinition input, camelCase, with our fields")


class TargetSpec(Strict):
    account: str = Field(pattern=r"^\d{12}$", description="the 12-digit AWS account id")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$", description="the Region of the account to reconcile")
    roleArn: str = Field(description="the IAM role the controller assumes there (in this account)")
    # STS AssumeRole API reference, ExternalId: 2-1224 characters of [\w+=,.@:/-]; its \w is ASCII
    # (letters, digits, _), while pydantic's regex engine reads \w as Unicode: spelt out here
    externalId: str | None = Field(None, min_length=2, max_length=1224, pattern=r"^[A-Za-z0-9_+=,.@:/-]+$",
                                   description="the external id the role's trust policy requires")
    # RoleSessionName: 2-64 characters of [\w+=,.@-]
    sessionName: str | None = Field(None, min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_+=,.@-]+$",
                                    description="the role session name (default: from --owner), as CloudTrail shows it")


class TargetDoc(_Document):
    """An account and Region, and the role to assume there: objects name it in metadata.targets."""
    kind: Literal["Target"] = Field(description="an account and Region of a fleet")
    spec: TargetSpec = Field(description="the account, Region and role")


KINDS: dict[str, type[_Document]] = {
    "Parameter": ParameterDoc,
    "ExecutionRole": ExecutionRoleDoc,
    "TaskDefinition": TaskDefinitionDoc,
    "Target": TargetDoc,
}
Doc = ParameterDoc | ExecutionRoleDoc | TaskDefinitionDoc | TargetDoc


def ecs_input(fields: dict[str, Any]) -> dict[str, Any]:
    """Task-level cpu and memory are strings in the API; YAML users write ``cpu: 256``."""
    out = dict(fields)
    for key in ("cpu", "memory"):
        if isinstance(out.get(key), int) and not isinstance(out.get(key), bool):
            out[key] = str(out[key])
    return out
