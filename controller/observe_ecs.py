"""Read task definitions: the latest ACTIVE revision of each family, with its tags."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from controller import desired as d
from controller.aws import Aws, error_code
from controller.manifest import Manifest
from controller.state import ActualTaskDefinition


def read_task_definitions(aws: Aws, manifest: Manifest, owner: str) -> dict[str, ActualTaskDefinition]:
    ecs = aws.client("ecs")
    out = {}
    for obj in manifest.of("TaskDefinition"):
        td = latest(ecs, obj.spec.family, owner)
        if td is None:
            continue
        if not td.owned:
            td.owned = _owned_earlier(ecs, td, owner)
        if obj.spec.keepRevisions:
            _revisions(ecs, td, obj.spec.keepRevisions, owner)
        out[td.family] = td
    return out


def latest(ecs: Any, family_or_arn: str, owner: str) -> ActualTaskDefinition | None:
    try:
        r = ecs.describe_task_definition(taskDefinition=family_or_arn, include=["TAGS"])
    except ClientError as exc:
        if error_code(exc) in ("ClientException", "InvalidParameterException"):
            return None  # ECS says "Unable to describe task definition" for an unknown family
        raise
    body, tags = r["taskDefinition"], {t["key"]: t["value"] for t in r.get("tags", [])}
    return ActualTaskDefinition(family=body["family"], arn=body["taskDefinitionArn"], revision=body["revision"],
                                body=body, tags=tags, owned=tags.get(d.OWNER_TAG) == owner)


def _owned_earlier(ecs: Any, td: ActualTaskDefinition, owner: str, look_back: int = 10) -> bool:
    """An out-of-band revision on top of ours does not make the family someone else's.

    Read only when the latest revision lacks our tag, and at most ``look_back`` revisions deep.
    """
    for rev in active_revisions(ecs, td.family)[1:look_back + 1]:
        earlier = latest(ecs, f"{td.family}:{rev}", owner)
        if earlier is not None and earlier.owned:
            return True
    return False


def active_revisions(ecs: Any, family: str) -> list[int]:
    """ACTIVE revisions of exactly ``family`` (familyPrefix also matches longer names), newest first."""
    revisions = []
    pages = ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE", sort="DESC")
    for page in pages:
        for arn in page["taskDefinitionArns"]:
            fam, rev = arn.rsplit("/", 1)[1].rsplit(":", 1)
            if fam == family:
                revisions.append(int(rev))
    return sorted(revisions, reverse=True)


def _revisions(ecs: Any, td: ActualTaskDefinition, keep: int, owner: str) -> None:
    """Ownership is read only for the revisions that keepRevisions could deregister."""
    td.active = active_revisions(ecs, td.family)
    if td.owned:
        td.owned_revisions.add(td.revision)
    for rev in td.active[max(keep - 1, 0):]:
        if rev == td.revision:
            continue
        other = latest(ecs, f"{td.family}:{rev}", owner)
        if other is not None and other.owned:
            td.owned_revisions.add(rev)
