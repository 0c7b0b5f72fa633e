"""The writes: one small function per kind and action. Each gets the op the plan made for it."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any, Callable

from controller import ops
from controller.aws import Aws
from controller.retry import write_retry
from controller.sensitive import Sensitive

_ALPHABET = string.ascii_letters + string.digits + "-_"


def _tags(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in sorted(tags.items())]


def generate(length: int) -> Sensitive:
    return Sensitive("".join(secrets.choice(_ALPHABET) for _ in range(length)))


@write_retry
def put_parameter(aws: Aws, op: ops.PutParameter) -> None:
    ssm = aws.client("ssm", op.region)
    if op.write_value:
        args: dict[str, Any] = {"Name": op.name, "Type": op.type, "Tier": op.tier, "Value": _value(ssm, op).reveal()}
        if op.key_id and op.key_id != "alias/aws/ssm":
            args["KeyId"] = op.key_id
        if op.description is not None:
            args["Description"] = op.description
        if op.create:
            ssm.put_parameter(**args, Tags=_tags(op.tags), Overwrite=False)
        else:
            ssm.put_parameter(**args, Overwrite=True)
    if op.add_tags and not op.create:
        ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=op.name, Tags=_tags(op.add_tags))


def _value(ssm: Any, op: ops.PutParameter) -> Sensitive:
    if op.value is not None:
        return op.value
    if op.create:
        return generate(op.generate_length or 32)
    # a generated value whose other fields change: rewrite the value it already has
    return Sensitive(ssm.get_parameter(Name=op.name, WithDecryption=True)["Parameter"]["Value"])


@write_retry
def put_role(aws: Aws, op: ops.PutRole) -> None:
    iam = aws.client("iam")
    if op.create:
        args = {"RoleName": op.name, "Path": op.path, "AssumeRolePolicyDocument": json.dumps(op.trust),
                "Tags": _tags(op.tags)}
        iam.create_role(**args, **({"Description": op.description} if op.description else {}))
    elif op.update_trust:
        iam.update_assume_role_policy(RoleName=op.name, PolicyDocument=json.dumps(op.trust))
    if op.update_description:
        iam.update_role(RoleName=op.name, Description=op.description)
    for arn in op.attach:
        iam.attach_role_policy(RoleName=op.name, PolicyArn=arn)
    for arn in op.detach:
        iam.detach_role_policy(RoleName=op.name, PolicyArn=arn)
    if op.create or op.update_inline:
        _put_inline(iam, op)
    if op.add_tags and not op.create:
        iam.tag_role(RoleName=op.name, Tags=_tags(op.add_tags))


def _put_inline(iam: Any, op: ops.PutRole) -> None:
    if op.inline is not None:
        iam.put_role_policy(RoleName=op.name, PolicyName=op.inline_name, PolicyDocument=json.dumps(op.inline))
    elif not op.create:
        iam.delete_role_policy(RoleName=op.name, PolicyName=op.inline_name)


@write_retry
def put_task_definition(aws: Aws, op: ops.PutTaskDefinition) -> None:
    ecs = aws.client("ecs")
    if op.register:
        ecs.register_task_definition(**op.body, tags=_tags(op.tags, "key", "value"))
    elif op.tag_arn:
        ecs.tag_resource(resourceArn=op.tag_arn, tags=_tags(op.tags, "key", "value"))
    for revision in op.deregister:
        ecs.deregister_task_definition(taskDefinition=f"{op.family}:{revision}")


@write_retry
def delete_parameter(aws: Aws, op: ops.DeleteParameter) -> None:
    aws.client("ssm", op.region).delete_parameter(Name=op.name)


@write_retry
def delete_role(aws: Aws, op: ops.DeleteRole) -> None:
    iam = aws.client("iam")
    for name in op.inline_names:
        iam.delete_role_policy(RoleName=op.name, PolicyName=name)
    for arn in op.managed:
        iam.detach_role_policy(RoleName=op.name, PolicyArn=arn)
    iam.delete_role(RoleName=op.name)


@write_retry
def deregister_family(aws: Aws, op: ops.DeregisterFamily) -> None:
    ecs = aws.client("ecs")
    for revision in op.revisions:
        ecs.deregister_task_definition(taskDefinition=f"{op.family}:{revision}")


WRITERS: dict[type, Callable[[Aws, Any], None]] = {
    ops.PutParameter: put_parameter, ops.PutRole: put_role, ops.PutTaskDefinition: put_task_definition,
    ops.DeleteParameter: delete_parameter, ops.DeleteRole: delete_role, ops.DeregisterFamily: deregister_family,
}
