"""What observe found in AWS: plain data, the input of the pure plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.core.desired import Context
from controller.vocab.sensitive import Sensitive


@dataclass
class ActualParameter:
    name: str
    region: str
    type: str
    key_id: str | None
    tier: str
    description: str | None
    version: int
    owned: bool = False
    value: Sensitive | None = None            # read only where the manifest gives a value to compare
    tags_in_sync: bool = True                 # every desired tag pair found by the tag-filtered listing


@dataclass
class ActualRole:
    name: str
    arn: str
    path: str
    trust: dict | None
    description: str | None
    tags: dict[str, str]
    inline: dict[str, dict] = field(default_factory=dict)   # policy name → document (only ours is read)
    managed: set[str] = field(default_factory=set)
    owned: bool = False


@dataclass
class ActualTaskDefinition:
    family: str
    arn: str
    revision: int
    body: dict[str, Any]
    tags: dict[str, str]
    owned: bool = False
    active: list[int] = field(default_factory=list)          # ACTIVE revisions, newest first (with keepRevisions)
    owned_revisions: set[int] = field(default_factory=set)   # of ``active``, those carrying our owner tag


@dataclass
class PruneCandidates:
    parameters: list[ActualParameter] = field(default_factory=list)
    roles: list[ActualRole] = field(default_factory=list)
    task_definitions: dict[str, list[int]] = field(default_factory=dict)   # family → owned ACTIVE revisions
    referenced: set[tuple[str, str]] = field(default_factory=set)          # (region, name) an ACTIVE revision reads
    roles_in_use: set[str] = field(default_factory=set)   # lower-cased names an ACTIVE revision runs as (execution, task)


@dataclass(frozen=True)
class ActualService:
    """One ECS service a rollout targets, as DescribeServices showed it, and what its running revision reads."""
    cluster: str                              # the cluster's name
    name: str
    status: str                               # ACTIVE | DRAINING | INACTIVE | MISSING (DescribeServices' failure)
    controller: str = "ECS"                   # deploymentController.type
    task_definition: str | None = None        # the revision it runs (service.taskDefinition)
    primary: str | None = None                # the PRIMARY deployment's id
    primary_created: float | None = None      # and its createdAt, in seconds since the epoch
    reads: tuple[tuple[str, str, str], ...] = ()   # sources (``rollout.source``) its running revision reads
    primary_state: str | None = None          # the PRIMARY deployment's rolloutState
    primary_reason: str | None = None         # and rolloutStateReason

    @property
    def ref(self) -> str:
        return f"Service/{self.cluster}/{self.name}"


@dataclass
class ActualRollout:
    """What one TaskDefinition's spec.rollout found: its services and when each secret they read last changed."""
    services: list[ActualService] = field(default_factory=list)
    changed: dict[tuple[str, str, str], float] = field(default_factory=dict)   # source → last change (epoch seconds)
    shown: dict[tuple[str, str, str], str] = field(default_factory=dict)       # source → that moment, as ISO 8601 UTC
    problems: dict[str, str] = field(default_factory=dict)                        # "Service/…" → why unreadable


@dataclass
class Actual:
    ctx: Context
    parameters: dict[tuple[str, str], ActualParameter] = field(default_factory=dict)
    roles: dict[str, ActualRole] = field(default_factory=dict)
    task_definitions: dict[str, ActualTaskDefinition] = field(default_factory=dict)
    missing: dict[tuple, str] = field(default_factory=dict)   # ("kms"|"ssm"|"secret", region, id), ("role", name) or ("policy", arn) → why
    rollouts: dict[str, ActualRollout] = field(default_factory=dict)   # TaskDefinition ref → its services
    prune: PruneCandidates | None = None   # None: a run without --prune, which deletes nothing (keepRevisions too)
