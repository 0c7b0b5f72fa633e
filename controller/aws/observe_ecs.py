"""Read task definitions: the latest ACTIVE revision of each family, with its tags."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from controller.aws.inuse import InUse
from controller.aws.session import Aws, error_code
from controller.core.desired import OWNER_TAG, Desired, DesiredTaskDefinition
from controller.core.state import ActualTaskDefinition

READ_WORKERS = 4  # reads in flight per kind; the rate limiter, not this, keeps us under AWS's quota
LOOK_BACK = 10           # revisions read for our owner tag under an out-of-band latest one
# With externallyManaged, a CI pipeline registers a revision per deploy and we one per change, so ours may lie
# any number of deploys deep: every ACTIVE revision is looked through (no cap: after N deploys without a change
# of ours the family would become "not ours" and stop reconciling). What each process found ours is read first
# on its next pass (``Aws.owned_revision``; still read, never trusted), so a daemon pays the walk once.
LOOK_BACK_EXTERNAL = None


def read_task_definitions(aws: Aws, desired: Desired, in_use: InUse | None = None,
                          revisions: bool = True) -> dict[str, ActualTaskDefinition]:
    """One DescribeTaskDefinition per family (ECS has no batch form), a few at a time.

    ``revisions``: read what keepRevisions could deregister; only with --prune, which alone deletes."""
    ecs, owner = aws.client("ecs"), desired.owner
    in_use = in_use or InUse(aws)
    seen = getattr(aws, "owned_revision", None)
    with ThreadPoolExecutor(READ_WORKERS) as pool:
        found = pool.map(lambda want: _read_family(ecs, want, owner, in_use, revisions, seen),
                         desired.task_definitions)
        return {td.family: td for td in found if td is not None}


def _read_family(ecs: Any, want: DesiredTaskDefinition, owner: str, in_use: InUse,
                 revisions: bool, seen: dict[str, int] | None = None) -> ActualTaskDefinition | None:
    td = latest(ecs, want.family, owner)
    if td is None:
        return None
    if not td.owned:
        td.owned = _owned_earlier(ecs, td, owner, LOOK_BACK_EXTERNAL if want.external else LOOK_BACK, seen)
    if want.keep_revisions and revisions:
        _revisions(ecs, td, want.keep_revisions, owner, in_use)
    return td


def latest(ecs: Any, family_or_arn: str, owner: str) -> ActualTaskDefinition | None:
    try:
        r = ecs.describe_task_definition(taskDefinition=family_or_arn, include=["TAGS"])
    except ClientError as exc:
        if error_code(exc) in ("ClientException", "InvalidParameterException"):
            return None  # ECS says "Unable to describe task definition" for an unknown family
        raise
    body, tags = r["taskDefinition"], {t["key"]: t["value"] for t in r.get("tags", [])}
    return ActualTaskDefinition(family=body["family"], arn=body["taskDefinitionArn"], revision=body["revision"],
                                body=body, tags=tags, owned=tags.get(OWNER_TAG) == owner)


def _owned_earlier(ecs: Any, td: ActualTaskDefinition, owner: str, look_back: int | None = LOOK_BACK,
                   seen: dict[str, int] | None = None) -> bool:
    """An out-of-band revision on top of ours does not make the family someone else's.

    Read only when the latest revision lacks our tag, and at most ``look_back`` revisions deep (None: all).
    ``seen``: family → the revision found ours last time, read first (its tags are read again); or minus the
    latest revision under which a walk of all found none ours (the family is another's until a new one comes).
    """
    td.active = active_revisions(ecs, td.family)  # kept: keepRevisions needs the same list
    older = td.active[1:] if look_back is None else td.active[1:look_back + 1]
    hint = seen.get(td.family) if seen is not None else None
    if hint == -td.revision:
        return False   # walked under this same latest revision and none was ours: nothing new to read
    if hint in older:
        older = [hint] + [rev for rev in older if rev != hint]
    for rev in older:
        earlier = latest(ecs, f"{td.family}:{rev}", owner)
        if earlier is not None and earlier.owned:
            if seen is not None:
                seen[td.family] = rev
            return True
    if seen is not None and look_back is None:   # another's family: not the whole walk again every pass
        seen[td.family] = -td.revision
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


def _revisions(ecs: Any, td: ActualTaskDefinition, keep: int, owner: str, in_use: InUse) -> None:
    """Ownership is read only for the revisions that keepRevisions could deregister; a revision that
    an ECS service uses is never one of them (``owned_revisions`` leaves it out)."""
    td.active = td.active or active_revisions(ecs, td.family)
    if td.tags.get(OWNER_TAG) == owner:   # not ``td.owned``: that says the family is ours, maybe by an earlier one
        td.owned_revisions.add(td.revision)
    for rev in td.active[max(keep - 1, 0):]:
        if rev == td.revision:
            continue
        other = latest(ecs, f"{td.family}:{rev}", owner)
        if other is not None and other.owned:
            td.owned_revisions.add(rev)
    if td.owned_revisions & set(td.active[max(keep - 1, 0):]):  # the newest too: a new revision pushes it out
        td.owned_revisions -= in_use.revisions(td.family)
