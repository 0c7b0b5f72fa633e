"""The writes: one small function per kind and action. Each gets the op the plan made for it.

Every call has the retry policy that fits it (``retry``): idempotent writes (attach, put a policy,
tag, delete) are retried on top of botocore; creates accept "already exists" when what exists is
ours and equal (a lost reply made botocore send them twice); writes that would act twice when
repeated (RegisterTaskDefinition, an overwriting PutParameter) go through ``write_once``.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Callable

from botocore.exceptions import ClientError

from controller.aws import idempotency, retry
from controller.aws.session import Aws, error_code
from controller.core import ops
from controller.manifests.models import DEFAULT_KMS_KEY
from controller.vocab.sensitive import Sensitive

log = logging.getLogger("ecs_secrets.apply")
_ALPHABET = string.ascii_letters + string.digits + "-_"


def _tags(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in sorted(tags.items())]


def generate(length: int) -> Sensitive:
    return Sensitive("".join(secrets.choice(_ALPHABET) for _ in range(length)))


def _unless(codes: tuple[str, ...], fn: Callable[..., Any], **kwargs: Any) -> None:
    """An idempotent delete: "not found" is what we wanted (a lost reply may have done it already)."""
    try:
        retry.call(fn, **kwargs)
    except ClientError as exc:
        if error_code(exc) not in codes:
            raise


def put_parameter(aws: Aws, op: ops.PutParameter) -> dict[str, Any]:
    """Returns what SSM assigned: the ``version`` written (none when only tags change)."""
    ssm = aws.client("ssm", op.region)
    assigned: dict[str, Any] = {}
    if op.write_value:
        value = _value(ssm, op)  # once: every re-send carries the same value
        args: dict[str, Any] = {"Name": op.name, "Type": op.type, "Tier": op.tier, "Value": value.reveal()}
        if op.key_id and op.key_id != DEFAULT_KMS_KEY:
            args["KeyId"] = op.key_id
        if op.description is not None:
            args["Description"] = op.description
        if op.create:
            reply = _create_parameter(aws, op, args, value)
        else:
            once = aws.client("ssm", op.region, retries=False)
            reply = idempotency.write_once(lambda: once.put_parameter(**args, Overwrite=True),
                                           lambda: idempotency.parameter_landed(aws, op, value), once)
        # no reply: an earlier attempt landed (its answer was lost), so its version is the current one
        assigned["version"] = reply["Version"] if reply else _version(ssm, op.name)
        if reply and op.value is not None and getattr(aws, "known", None) is not None:
            # the version this very write made holds this value: the next pass need not decrypt it. Not
            # after a lost reply: the version read after it may already be someone else's write
            aws.known.wrote(op.region, op.name, reply["Version"], value, _replied(reply))
    if op.add_tags and not op.create:
        retry.call(ssm.add_tags_to_resource, ResourceType="Parameter", ResourceId=op.name, Tags=_tags(op.add_tags))
    return assigned


def _replied(reply: dict) -> datetime | None:
    """When AWS answered (its HTTP Date header), to the second; None when it did not say."""
    date = reply.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None


def _version(ssm: Any, name: str) -> int | None:
    found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}])
    return next((p.get("Version") for p in found["Parameters"]), None)


def _create_parameter(aws: Aws, op: ops.PutParameter, args: dict[str, Any], value: Sensitive) -> dict | None:
    """Created with its tags in the same call: a crash can never leave a parameter that prune cannot find."""
    try:
        return retry.call(aws.client("ssm", op.region).put_parameter, **args, Tags=_tags(op.tags), Overwrite=False)
    except ClientError as exc:
        if error_code(exc) != "ParameterAlreadyExists" or not idempotency.parameter_is_ours(aws, op, value):
            raise
    return None


def _value(ssm: Any, op: ops.PutParameter) -> Sensitive:
    if op.value is not None:
        return op.value
    if op.create:
        return generate(op.generate_length or 32)
    # a generated value whose other fields change: rewrite the value it already has
    return Sensitive(ssm.get_parameter(Name=op.name, WithDecryption=True)["Parameter"]["Value"])


def put_role(aws: Aws, op: ops.PutRole) -> None:
    iam = aws.client("iam")
    if op.create:
        _create_role(iam, op)
    elif op.update_trust:
        retry.call(iam.update_assume_role_policy, RoleName=op.name, PolicyDocument=json.dumps(op.trust))
    fresh = retry.no_such_entity if op.create else None  # IAM may not show a role it just created
    if op.update_description:
        retry.call(iam.update_role, RoleName=op.name, Description=op.description, also=fresh)
    for arn in op.attach:
        retry.call(iam.attach_role_policy, RoleName=op.name, PolicyArn=arn, also=fresh)
    for arn in op.detach:
        _unless(("NoSuchEntity",), iam.detach_role_policy, RoleName=op.name, PolicyArn=arn)
    if op.create or op.update_inline:
        _put_inline(iam, op, fresh)
    if op.add_tags and not op.create:
        retry.call(iam.tag_role, RoleName=op.name, Tags=_tags(op.add_tags))


def _create_role(iam: Any, op: ops.PutRole) -> None:
    """Created with its tags; a run killed before the policies are in place is finished by the next one."""
    args = {"RoleName": op.name, "Path": op.path, "AssumeRolePolicyDocument": json.dumps(op.trust),
            "Tags": _tags(op.tags), **({"Description": op.description} if op.description else {})}
    try:
        retry.call(iam.create_role, **args)
    except ClientError as exc:
        if error_code(exc) != "EntityAlreadyExists" or not idempotency.role_is_ours(iam, op):
            raise


def _put_inline(iam: Any, op: ops.PutRole, fresh: Callable[[BaseException], bool] | None) -> None:
    if op.inline is not None:
        retry.call(iam.put_role_policy, RoleName=op.name, PolicyName=op.inline_name,
                   PolicyDocument=json.dumps(op.inline), also=fresh)
    elif not op.create:
        _unless(("NoSuchEntity",), iam.delete_role_policy, RoleName=op.name, PolicyName=op.inline_name)


def put_task_definition(aws: Aws, op: ops.PutTaskDefinition) -> dict[str, Any]:
    """Returns what ECS assigned: the ``taskDefinitionArn`` and ``revision`` registered (none for tags only)."""
    ecs = aws.client("ecs")
    assigned: dict[str, Any] = {}
    if op.register:
        once = aws.client("ecs", retries=False)
        reply = idempotency.write_once(lambda: once.register_task_definition(**op.body, tags=_tags(op.tags, "key", "value")),
                                       lambda: idempotency.task_definition_landed(ecs, op), once)
        # no reply: an earlier attempt landed, and task_definition_landed saw it as the family's latest
        body = reply["taskDefinition"] if reply else ecs.describe_task_definition(taskDefinition=op.family)[
            "taskDefinition"]
        assigned = {"taskDefinitionArn": body["taskDefinitionArn"], "revision": body["revision"]}
        log.info("registered %s:%s", op.family, body["revision"],
                 extra={"object": f"task-definition/{op.family}", "action": "register"})
    elif op.tag_arn:
        retry.call(ecs.tag_resource, resourceArn=op.tag_arn, tags=_tags(op.tags, "key", "value"))
    deregister_family(aws, ops.DeregisterFamily(op.family, op.deregister))
    return assigned


def delete_parameter(aws: Aws, op: ops.DeleteParameter) -> None:
    _unless(("ParameterNotFound",), aws.client("ssm", op.region).delete_parameter, Name=op.name)


def delete_role(aws: Aws, op: ops.DeleteRole) -> None:
    iam = aws.client("iam")
    for name in op.inline_names:
        _unless(("NoSuchEntity",), iam.delete_role_policy, RoleName=op.name, PolicyName=name)
    for arn in op.managed:
        _unless(("NoSuchEntity",), iam.detach_role_policy, RoleName=op.name, PolicyArn=arn)
    _unless(("NoSuchEntity",), iam.delete_role, RoleName=op.name)


def deregister_family(aws: Aws, op: ops.DeregisterFamily) -> None:
    ecs = aws.client("ecs")
    for revision in op.revisions:
        retry.call(ecs.deregister_task_definition, taskDefinition=f"{op.family}:{revision}")


WRITERS: dict[type, Callable[[Aws, Any], dict[str, Any] | None]] = {
    ops.PutParameter: put_parameter, ops.PutRole: put_role, ops.PutTaskDefinition: put_task_definition,
    ops.DeleteParameter: delete_parameter, ops.DeleteRole: delete_role, ops.DeregisterFamily: deregister_family,
}
