"""Writes that must not be re-sent blindly, and how to tell whether one has already taken effect.

After an ambiguous failure (the connection dropped after the request went out, a read timed out, a
5xx) AWS may or may not have acted. A write whose repetition would act twice — RegisterTaskDefinition
adds a revision, an overwriting PutParameter adds a version — goes through ``write_once``: it is sent
on a client without botocore's retries, and before it is sent again the state is read; when the state
already shows our write, we are done. The read waits until the failed request can no longer be in
flight: AWS may act on a request after the client gave up on its reply, so the state is read only
once the client's connect plus read timeout has passed since the failure (``in_flight``).

A create (PutParameter without Overwrite, CreateRole) that botocore re-sent after a lost reply fails
with "already exists"; ``*_is_ours`` reads the resource back and accepts it when it carries our owner
tag and equals what we asked for. Values are compared in memory and never printed.
"""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

from botocore.exceptions import ClientError

from controller.aws import retry
from controller.aws.session import error_code
from controller.core import ops
from controller.core.desired import OWNER_TAG
from controller.core.taskdef import normalize
from controller.manifests.models import DEFAULT_KMS_KEY
from controller.vocab import policy
from controller.vocab.sensitive import Sensitive

T = TypeVar("T")


def in_flight(client: Any) -> float:
    """How long after a failed attempt of ``client`` its request may still be acted on: connect plus
    read timeout of its botocore Config (a request AWS takes longer over is not waited for)."""
    config = client.meta.config
    return float(config.connect_timeout or 0) + float(config.read_timeout or 0)


def write_once(send: Callable[[], T], landed: Callable[[], bool], client: Any = None) -> T | None:
    """Send; after an ambiguous failure, send again only when ``landed()`` says the write is not there.

    ``client`` is the one ``send`` uses: ``landed()`` is asked only once ``in_flight(client)`` seconds
    have passed since the last ambiguous failure. Definite refusals that waiting heals (throttling,
    conflicts) are re-sent as they are.
    """
    settle = in_flight(client) if client is not None else 0.0
    unsure, failed_at = False, 0.0

    def settled() -> bool:
        retry.sleep(max(0.0, failed_at + settle - time.monotonic()))   # a request still in flight lands after a read made sooner
        return landed()

    def attempt() -> T | None:
        nonlocal unsure, failed_at
        if unsure and settled():
            return None
        try:
            return send()
        except Exception as exc:
            if retry.is_ambiguous(exc):
                unsure, failed_at = True, time.monotonic()
            raise

    try:
        return retry.retrying(lambda e: retry.is_retryable(e) or retry.is_ambiguous(e))(attempt)
    except Exception:
        if unsure and settled():
            return None
        raise


def _absent(exc: ClientError, *codes: str) -> bool:
    return error_code(exc) in codes


# --- task definitions ------------------------------------------------------------------------

def task_definition_landed(ecs: Any, op: ops.PutTaskDefinition) -> bool:
    """The family's latest revision is ours: tagged with our owner and, normalised, equal to our body."""
    try:
        r = ecs.describe_task_definition(taskDefinition=op.family, include=["TAGS"])
    except ClientError as exc:
        if _absent(exc, "ClientException", "InvalidParameterException"):
            return False  # "Unable to describe task definition": the family has no revision yet
        raise
    tags = {t["key"]: t["value"] for t in r.get("tags") or []}
    return tags.get(OWNER_TAG) == op.tags.get(OWNER_TAG) and normalize(r["taskDefinition"]) == normalize(op.body)


# --- parameters ------------------------------------------------------------------------------

def parameter_landed(aws: Any, op: ops.PutParameter, value: Sensitive) -> bool:
    """The parameter holds our value, type, description, tier and key."""
    ssm = aws.client("ssm", op.region)
    try:
        got = ssm.get_parameter(Name=op.name, WithDecryption=True)["Parameter"]
    except ClientError as exc:
        if _absent(exc, "ParameterNotFound"):
            return False
        raise
    if got["Type"] != op.type or got["Value"] != value.reveal():
        return False
    pages = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [op.name]}])
    meta = next(iter(pages["Parameters"]), None)
    if meta is None:
        return False
    if op.description is not None and (meta.get("Description") or "") != op.description:
        return False
    if op.tier != "Intelligent-Tiering" and meta.get("Tier", "Standard") != op.tier:
        return False
    return op.type != "SecureString" or _same_key(aws, op, meta.get("KeyId"))


def _same_key(aws: Any, op: ops.PutParameter, current: str | None) -> bool:
    wanted = op.key_id or DEFAULT_KMS_KEY
    if current is None or current == wanted:
        return current == wanted
    kms = aws.client("kms", op.region)
    return kms.describe_key(KeyId=wanted)["KeyMetadata"]["Arn"] == kms.describe_key(KeyId=current)["KeyMetadata"]["Arn"]


def parameter_is_ours(aws: Any, op: ops.PutParameter, value: Sensitive) -> bool:
    """After ParameterAlreadyExists on our create: accept it when it is ours and equal."""
    ssm = aws.client("ssm", op.region)
    try:
        tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=op.name)["TagList"]
    except ClientError as exc:
        if _absent(exc, "InvalidResourceId", "ParameterNotFound"):
            return False  # gone again (deleted meanwhile): the create's own error stands
        raise
    owner = {t["Key"]: t["Value"] for t in tags}.get(OWNER_TAG)
    return owner == op.tags.get(OWNER_TAG) and parameter_landed(aws, op, value)


# --- roles -----------------------------------------------------------------------------------

def role_is_ours(iam: Any, op: ops.PutRole) -> bool:
    """After EntityAlreadyExists on our CreateRole: accept it when it carries our tag, path and trust."""
    try:
        role = iam.get_role(RoleName=op.name)["Role"]
    except ClientError as exc:
        if _absent(exc, "NoSuchEntity"):
            return False
        raise
    tags = {t["Key"]: t["Value"] for t in role.get("Tags") or []}
    return (tags.get(OWNER_TAG) == op.tags.get(OWNER_TAG) and role.get("Path", "/") == op.path
            and policy.same(op.trust, role.get("AssumeRolePolicyDocument")))
