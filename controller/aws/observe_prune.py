"""Read what --prune may delete: owned resources tagged deletionPolicy Delete that left the manifests.

Only run with --prune. The in-use guard reads every ACTIVE task definition (ours or not) in every
Region the manifests and the candidates touch, and only when a parameter or role deletion is on the
table: a revision there may read a parameter (by name in its own Region, by ARN in any other) or name
a role as its execution or task role.
"""

from __future__ import annotations

from typing import Any

from controller.aws.inuse import InUse
from controller.aws.observe_ecs import active_revisions
from controller.aws.observe_ssm import actual_parameter, describe_parameters, tag_filter
from controller.aws.revisions import ActiveRevisions
from controller.aws.session import Aws
from controller.core.desired import DELETION_TAG, OWNER_TAG, Desired
from controller.core.state import ActualRole, PruneCandidates
from controller.vocab.arns import role_name_from_arn


def read_prune_candidates(aws: Aws, desired: Desired, in_use: InUse | None = None,
                          scan: ActiveRevisions | None = None) -> PruneCandidates:
    """``scan``: observe's, so that a Region it listed already is not listed again."""
    out, owner, declared = PruneCandidates(), desired.owner, desired.parameters
    filters = [tag_filter(OWNER_TAG, owner), tag_filter(DELETION_TAG, "Delete")]
    regions = {aws.region} | set(desired.reads) | {r for r, _ in declared}
    for region in sorted(regions):
        for meta in describe_parameters(aws.client("ssm", region), filters):
            if (region, meta["Name"]) not in declared:
                out.parameters.append(actual_parameter(meta, region, True, None))
    out.roles = _roles(aws.client("iam"), {r.name for r in desired.roles}, owner)
    out.task_definitions = _families(aws, {td.family for td in desired.task_definitions}, owner,
                                     in_use or InUse(aws))
    if out.parameters or out.roles:
        regions |= {p.region for p in out.parameters}
        scan = scan or ActiveRevisions(aws)
        for region in sorted(regions):
            _referenced(scan.of(region), out)
    return out


def _roles(iam: Any, declared: set[str], owner: str) -> list[ActualRole]:
    out = []
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            if role["RoleName"] in declared:
                continue
            tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role["RoleName"])["Tags"]}
            if tags.get(OWNER_TAG) == owner and tags.get(DELETION_TAG) == "Delete":
                out.append(_role(iam, role, tags))
    return out


def _role(iam: Any, role: dict, tags: dict) -> ActualRole:
    name = role["RoleName"]
    actual = ActualRole(name=name, arn=role["Arn"], path=role["Path"], trust=None, description=None,
                        tags=tags, owned=True)
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
        actual.inline.update({p: {} for p in page["PolicyNames"]})
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
        actual.managed.update(p["PolicyArn"] for p in page["AttachedPolicies"])
    return actual


def _families(aws: Aws, declared: set[str], owner: str, in_use: InUse) -> dict[str, list[int]]:
    """Owned ACTIVE revisions of families that left the manifests, except those an ECS service uses."""
    tagging = aws.client("resourcegroupstaggingapi")
    tagged: dict[str, set[int]] = {}
    pages = tagging.get_paginator("get_resources").paginate(
        ResourceTypeFilters=["ecs:task-definition"],
        TagFilters=[{"Key": OWNER_TAG, "Values": [owner]}, {"Key": DELETION_TAG, "Values": ["Delete"]}])
    for page in pages:
        for item in page["ResourceTagMappingList"]:
            family, rev = item["ResourceARN"].rsplit("/", 1)[1].rsplit(":", 1)
            if family not in declared:
                tagged.setdefault(family, set()).add(int(rev))
    ecs = aws.client("ecs")
    out = {}
    for family, revisions in sorted(tagged.items()):
        active = set(active_revisions(ecs, family)) & revisions
        active = sorted(active - in_use.revisions(family)) if active else []
        if active:
            out[family] = active
    return out


def _referenced(revisions: list, out: PruneCandidates) -> None:
    """What the ACTIVE revisions of one Region read and run as: parameters (container secrets, an FSx
    credentials parameter, a credential spec in SSM), execution and task roles."""
    for rev in revisions:
        for ref in rev.references:
            if ref.service == "ssm":
                out.referenced.add((ref.region or rev.region, ref.name))
        for role in (rev.execution_role, rev.task_role):
            if role:   # an ARN (any path) or a bare name; IAM role names ignore case
                out.roles_in_use.add(role_name_from_arn(role).lower())
