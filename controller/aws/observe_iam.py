"""Read execution roles: the role (trust policy, tags), our inline policy, the attached policies.

Three reads per role, or, from ``LIST_MIN_ROLES`` declared roles on, one account-wide listing:
``iam:GetAccountAuthorizationDetails(Filter=[Role])`` returns every role of the account with its trust
policy, tags, inline and attached policies, 1,000 roles a page. Pages are streamed and only the
declared (and referenced) roles are kept. The listing lacks role descriptions: a role that declares one
is read with GetRole too. Where the listing is denied, the per-role reads take over.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from controller.aws.session import Aws, error_code
from controller.core.desired import OWNER_TAG, Desired
from controller.core.state import ActualRole

LIST_MIN_ROLES = 4   # 3 x 4 per-role reads against one page of the listing for an account of < 1,000 roles
LIST_PAGE = 1000
log = logging.getLogger("ecs_secrets.observe")


def read_roles(aws: Aws, desired: Desired) -> tuple[dict[str, ActualRole], dict[str, str], dict[tuple, str]]:
    """(declared roles that exist by roleName, external role name → ARN, what is missing)."""
    roles, external, missing = _read_roles(aws, desired)
    missing.update(_missing_policies(aws.client("iam"), desired, roles))
    return roles, external, missing


def _missing_policies(iam: Any, desired: Desired, roles: dict[str, ActualRole]) -> dict[tuple, str]:
    """Managed policies to attach that do not exist: found before any write, not by AttachRolePolicy after
    the parameters and the role were written. One iam:GetPolicy per distinct ARN not attached anywhere
    already (an attached policy exists); a no-op pass makes none."""
    attached = {arn for role in roles.values() for arn in role.managed}
    missing = {}
    for arn in sorted({arn for role in desired.roles for arn in role.managed} - attached):
        try:
            iam.get_policy(PolicyArn=arn)
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                missing[("policy", arn)] = f"spec.managedPolicyArns: the managed policy {arn} does not exist; " \
                    "correct the ARN (its partition, account and path) or remove it"
            else:  # unreadable (an older controller policy without iam:GetPolicy): the attach will tell
                log.warning("cannot check managed policy %s: %s", arn, error_code(exc))
    return missing


def _read_roles(aws: Aws, desired: Desired) -> tuple[dict[str, ActualRole], dict[str, str], dict[tuple, str]]:
    iam, owner = aws.client("iam"), desired.owner
    if len(desired.roles) >= LIST_MIN_ROLES:
        try:
            return _list_roles(iam, desired)
        except ClientError as exc:
            log.warning("iam:GetAccountAuthorizationDetails failed (%s); reading each role instead", error_code(exc))
    roles, external, missing = {}, {}, {}
    for want in desired.roles:
        try:
            role = _read_role(iam, want.name, want.inline_name, owner)
        except ClientError as exc:  # one unreadable role blocks itself (and its dependents), not all
            missing[("read", want.ref)] = f"cannot read IAM role {want.name}: {error_code(exc)}"
            continue
        if role is not None:
            roles[role.name] = role
    for name in sorted(desired.external_roles):
        try:
            external[name] = iam.get_role(RoleName=name)["Role"]["Arn"]
        except ClientError as exc:
            gone = error_code(exc) == "NoSuchEntity"  # any other error blocks only the task definitions using it
            missing[("role", name)] = f"IAM role {name} does not exist; create it or declare it as an " \
                "ExecutionRole" if gone else f"cannot read IAM role {name}: {error_code(exc)}"
    return roles, external, missing


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
                      tags=tags, owned=tags.get(OWNER_TAG) == owner)
    try:
        role.inline[inline_name] = iam.get_role_policy(RoleName=name, PolicyName=inline_name)["PolicyDocument"]
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
        role.managed.update(p["PolicyArn"] for p in page["AttachedPolicies"])
    return role


def _list_roles(iam: Any, desired: Desired) -> tuple[dict[str, ActualRole], dict[str, str], dict]:
    owner, declared, wanted_external = desired.owner, {r.name: r for r in desired.roles}, desired.external_roles
    roles, external = {}, {}
    pages = iam.get_paginator("get_account_authorization_details").paginate(
        Filter=["Role"], PaginationConfig={"PageSize": LIST_PAGE})
    for page in pages:
        for detail in page["RoleDetailList"]:
            name = detail["RoleName"]
            if name in declared:
                roles[name] = _from_detail(detail, declared[name].inline_name, owner)
            elif name in wanted_external:
                external[name] = detail["Arn"]
    for name, role in roles.items():
        if declared[name].description is not None:  # the listing has no descriptions
            role.description = iam.get_role(RoleName=name)["Role"].get("Description")
    missing = {("role", name): f"IAM role {name} does not exist; create it or declare it as an ExecutionRole"
               for name in sorted(wanted_external - set(external))}
    return roles, external, missing


def _from_detail(detail: dict, inline_name: str, owner: str) -> ActualRole:
    tags = {t["Key"]: t["Value"] for t in detail.get("Tags", [])}
    role = ActualRole(name=detail["RoleName"], arn=detail["Arn"], path=detail.get("Path", "/"),
                      trust=detail.get("AssumeRolePolicyDocument"), description=None,
                      tags=tags, owned=tags.get(OWNER_TAG) == owner)
    role.inline.update({p["PolicyName"]: p["PolicyDocument"] for p in detail.get("RolePolicyList", [])
                        if p["PolicyName"] == inline_name})
    role.managed.update(p["PolicyArn"] for p in detail.get("AttachedManagedPolicies", []))
    return role
