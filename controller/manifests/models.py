"""The manifest kinds as pydantic models: the shape of what a user writes, and nothing more.

Rules that need more than one field or more than one object live in ``checks``; the ECS part of
a TaskDefinition is checked against botocore's service model (``ecsmodel``), not modelled here by hand.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

API_VERSION = "ecs-secrets/v1"
DEFAULT_KMS_KEY = "alias/aws/ssm"
# The default of managedPolicyArns, as written in the commercial partition; ``desire`` puts it in the
# partition of the manifests' Region (arn:aws-cn:... in China, arn:aws-us-gov:... in GovCloud).
DEFAULT_MANAGED_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
DEFAULT_INLINE_POLICY = "ecs-secrets"

DeletionPolicy = Literal["Retain", "Delete"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metadata(Strict):
    name: str = Field(description="unique per kind; lowercase letters, digits and '-'")
    adopt: bool = Field(False, description="take over an existing resource of the same name that lacks the owner tag")
    labels: dict[str, str] = Field(default_factory=dict)


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
    type: Literal["SecureString", "String", "StringList"] = "SecureString"
    kmsKeyId: str | None = Field(None, description="key id, key ARN, alias/NAME or alias ARN (SecureString only)")
    description: str | None = Field(None, max_length=1024)
    tier: Literal["Standard", "Advanced", "Intelligent-Tiering"] = "Standard"
    tags: dict[str, str] = Field(default_factory=dict)
    value: ValueSource | None = Field(None, description="absent: managed elsewhere, must exist")
    region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    deletionPolicy: DeletionPolicy = "Retain"


class ExecutionRoleSpec(Strict):
    roleName: str
    path: str = "/"
    description: str | None = Field(None, max_length=1000)
    managedPolicyArns: list[str] = Field(default_factory=lambda: [DEFAULT_MANAGED_POLICY])
    inlinePolicyName: str = DEFAULT_INLINE_POLICY
    tags: dict[str, str] = Field(default_factory=dict)
    deletionPolicy: DeletionPolicy = "Retain"


class TaskDefinitionSpec(BaseModel):
    """Our own fields; every other key is RegisterTaskDefinition input, checked against botocore."""

    model_config = ConfigDict(extra="allow", frozen=True)

    family: str
    executionRole: str | None = Field(None, description="an ExecutionRole's metadata.name, a role name or a role ARN")
    keepRevisions: int | None = Field(None, ge=1, strict=True,   # strict: `true` is not 1, nor "3" or 2.0
                                      description="deregister owned revisions older than the newest N")
    deletionPolicy: DeletionPolicy = "Retain"

    def ecs_fields(self) -> dict[str, Any]:
        return {"family": self.family, **(self.model_extra or {})}


class _Document(Strict):
    apiVersion: Literal["ecs-secrets/v1"]
    metadata: Metadata


class ParameterDoc(_Document):
    kind: Literal["Parameter"]
    spec: ParameterSpec


class ExecutionRoleDoc(_Document):
    kind: Literal["ExecutionRole"]
    spec: ExecutionRoleSpec


class TaskDefinitionDoc(_Document):
    kind: Literal["TaskDefinition"]
    spec: TaskDefinitionSpec


KINDS: dict[str, type[_Document]] = {
    "Parameter": ParameterDoc,
    "ExecutionRole": ExecutionRoleDoc,
    "TaskDefinition": TaskDefinitionDoc,
}
Doc = ParameterDoc | ExecutionRoleDoc | TaskDefinitionDoc


def ecs_input(fields: dict[str, Any]) -> dict[str, Any]:
    """Task-level cpu and memory are strings in the API; YAML users write ``cpu: 256``."""
    out = dict(fields)
    for key in ("cpu", "memory"):
        if isinstance(out.get(key), int) and not isinstance(out.get(key), bool):
            out[key] = str(out[key])
    return out
