"""What apply must do for one change: plain data made by the plan, read by apply."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.vocab.sensitive import Sensitive


@dataclass(frozen=True)
class PutParameter:
    name: str
    region: str
    type: str
    key_id: str | None
    tier: str
    description: str | None
    tags: dict[str, str]
    value: Sensitive | None          # None with generate_length: make one; None otherwise: keep the current one
    generate_length: int | None = None
    literal: bool = False            # a plain String value from the manifest: no secret, may be shown
    create: bool = True
    write_value: bool = True         # False: only tags change
    add_tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PutRole:
    name: str
    path: str
    description: str | None
    trust: dict
    tags: dict[str, str]
    inline_name: str
    inline: dict | None
    attach: tuple[str, ...] = ()
    detach: tuple[str, ...] = ()
    create: bool = True
    update_trust: bool = False
    update_inline: bool = False
    update_description: bool = False
    add_tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PutTaskDefinition:
    family: str
    body: dict
    tags: dict[str, str]
    register: bool = True
    tag_arn: str | None = None       # tags only: tag this existing revision
    deregister: tuple[int, ...] = ()


@dataclass(frozen=True)
class DeleteParameter:
    name: str
    region: str


@dataclass(frozen=True)
class DeleteRole:
    name: str
    inline_names: tuple[str, ...]
    managed: tuple[str, ...]


@dataclass(frozen=True)
class DeregisterFamily:
    family: str
    revisions: tuple[int, ...]


@dataclass(frozen=True)
class RollService:
    """UpdateService on one service of a rollout: a new deployment, or a move to the family's latest revision."""
    cluster: str
    service: str
    rollout: str                     # the TaskDefinition ref whose spec.rollout this is
    family: str | None               # move to this family's latest ACTIVE revision; None: forceNewDeployment
    primary: str | None              # the PRIMARY deployment the plan saw
    max_concurrent: int = 1          # of the rollout's services deploying at once
