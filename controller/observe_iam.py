"""Read execution roles: the role (trust policy, tags), our inline policy, the attached policies."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from controller import desired as d
from controller.aws import Aws, error_code
from controller.manifest import Manifest
from controller.state import ActualRole


def read_roles(aws: Aws, manifest: Manifest, owner: str) -> tuple[dict[str, ActualRole], dict[str, str], dict[tuple, str]]:
    """(declared roles that exist by roleName, external role name → ARN, what is missing)."""
    iam = aws.client("iam")
    roles = {}
    for obj in manifest.of("ExecutionRole"):
        role = _read_role(iam, obj.spec.roleName, obj.spec.inlinePolicyName, owner)
        if role is not None:
            roles[role.name] = role
    external, missing = {}, {}
    for name in sorted(_external_role_names(manifest)):
        try:
            external[name] = iam.get_role(RoleName=name)["Role"]["Arn"]
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            missing[("role", name)] = f"IAM role {name} does not exist; create it or declare it as an ExecutionRole"
    return roles, external, missing


def _external_role_names(manifest: Manifest) -> set[str]:
    names = set()
    for td in manifest.of("TaskDefinition"):
        wanted = td.spec.executionRole
        if wanted and not wanted.startswith("arn:") and d.execution_role(manifest, td) is None:
            names.add(wanted)
    return names


def _read_role(iam: Any, name: str, inline_name: str, owner: str) -> ActualRole | None:
    try:
        raw = iam.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return None
        raise
    tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
    role = ActualRole(name=name, arn=raw["Arn"], path=raw.get("Path", "/"),
                      trust=raw.get("AssumeRolePolicyDocument"), description=raw.get("Description"),
                      tags=tags, owned=tags.get(d.OWNER_TAG) == owner)
    try:
        role.inline[inline_name] = iam.get_role_policy(RoleName=name, PolicyName=inline_name)["PolicyDocument"]
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
        role.managed.update(p["PolicyArn"] for p in page["AttachedPolicies"])
    return role
