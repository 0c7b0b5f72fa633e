"""`init`'s reads: the running task definitions, their execution roles and the metadata of the parameters
they read. Read-only, and never a value: DescribeParameters, not GetParameters."""

from __future__ import annotations

from typing import Any

from controller.aws.session import Aws
from controller.core.adopt import Found, ParameterFacts, RoleFacts, role_name, ssm_reads
from controller.vocab.problems import ControllerError


def read(aws: Aws, families: list[str], services: list[str]) -> list[Found]:
    ecs = aws.client("ecs")
    arns = [family if ":" in family else _latest_active(ecs, family) for family in families]
    for ref in services:
        cluster, _, name = ref.partition("/")
        if not cluster or not name:
            raise ControllerError(f"--service {ref!r}: write CLUSTER/SERVICE")
        answer = ecs.describe_services(cluster=cluster, services=[name])
        running = [s for s in answer["services"] if s.get("status") != "INACTIVE"]
        if not running:
            raise ControllerError(f"service {ref} not found")
        arns.append(running[0]["taskDefinition"])   # the revision the service runs now
    return [_found(aws, ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]) for arn in arns]


def _latest_active(ecs: Any, family: str) -> str:
    """The family's latest ACTIVE revision. DescribeTaskDefinition with a bare family means the same ("If a
    revision isn't specified, the latest ACTIVE revision is used": its API reference); we ask for it by
    name, because a test AWS may not skip inactive revisions. familyPrefix is a prefix: the exact family wins."""
    pages = ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE", sort="DESC")
    for page in pages:
        for arn in page["taskDefinitionArns"]:
            if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family:
                return arn
    raise ControllerError(f"task-definition family {family}: no ACTIVE revision")


def _found(aws: Aws, described: dict[str, Any]) -> Found:
    name = role_name(described.get("executionRoleArn"))
    return Found(described=described, role=_role(aws, name) if name else None,
                 parameters=tuple(_parameters(aws, ssm_reads(described, aws.region))))


def _role(aws: Aws, name: str) -> RoleFacts | None:
    iam = aws.client("iam")
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        return None   # the task definition names a role that is gone: left as the ARN it is
    managed = [p["PolicyArn"] for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name)
               for p in page["AttachedPolicies"]]
    return RoleFacts(name=role["RoleName"], path=role.get("Path", "/"), description=role.get("Description") or None,
                     managed=tuple(sorted(managed)))


def _parameters(aws: Aws, reads: list[tuple[str, str]]) -> list[ParameterFacts]:
    out = []
    for region, name in reads:
        ssm = aws.client("ssm", region)
        found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Option": "Equals",
                                                           "Values": [name]}])["Parameters"]
        for p in found:   # a parameter that does not exist is left out: the plan's check reports it
            out.append(ParameterFacts(name=p["Name"], region=region, type=p.get("Type", "SecureString"),
                                      key_id=p.get("KeyId"), tier=p.get("Tier", "Standard"),
                                      description=p.get("Description") or None))
    return out
