"""`events-setup --apply`: make the calls of ``core.eventrules.plan``, in order, each idempotent.

A call whose resource exists (CreateQueue with other attributes: QueueAlreadyExists; CreateRole:
EntityAlreadyExists) is followed by its update. A queue or role that exists without our owner tag is
refused, as for every other object (README "Ownership"). The trail check reads CloudTrail only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from botocore.exceptions import ClientError

from controller.aws.session import Aws, error_code
from controller.core.eventrules import Call, SetupPlan
from controller.vocab.problems import ControllerError

OWNER_TAG = "ecs-secrets:owner"


@dataclass
class Done:
    call: Call
    result: str          # created | updated


def apply(aws: Aws, plan: SetupPlan, owner: str, on_done: Callable[[Done], None] = lambda d: None) -> str:
    """Make every call; returns the queue URL."""
    queue_url = ""
    for call in plan.calls:
        client = aws.client(call.service, call.region)
        result = "created"
        try:
            reply = getattr(client, call.operation)(**call.params)
        except ClientError as exc:
            if error_code(exc) not in call.exists_ok:
                raise
            _check_owner(aws, call, owner)
            reply = {}
            for then in call.then:
                params = {k: (queue_url or _queue_url(aws, call) if v == "{queue_url}" else v)
                          for k, v in then.params.items()}
                getattr(aws.client(then.service, then.region), then.operation)(**params)
            result = "updated"
        if call.operation == "create_queue":
            queue_url = reply.get("QueueUrl") or _queue_url(aws, call)
            _check_owner(aws, call, owner, queue_url)
        on_done(Done(call, result))
    return queue_url


def _queue_url(aws: Aws, call: Call) -> str:
    return aws.client("sqs", call.region).get_queue_url(QueueName=call.params["QueueName"])["QueueUrl"]


def _check_owner(aws: Aws, call: Call, owner: str, queue_url: str | None = None) -> None:
    if call.operation == "create_queue":
        url = queue_url or _queue_url(aws, call)
        tags = aws.client("sqs", call.region).list_queue_tags(QueueUrl=url).get("Tags") or {}
        found, what = tags.get(OWNER_TAG), f"SQS queue {call.params['QueueName']}"
    elif call.operation == "create_role":
        role = aws.client("iam", call.region).get_role(RoleName=call.params["RoleName"])["Role"]
        found = {t["Key"]: t["Value"] for t in role.get("Tags") or []}.get(OWNER_TAG)
        what = f"IAM role {call.params['RoleName']}"
    else:
        return
    if found != owner:
        raise ControllerError(f"{what} exists and is not ours (tag {OWNER_TAG}={found or '(none)'}, not {owner}); "
                              "nothing of it was changed. Pass another --queue-name, or tag it if it is meant for us")


def trail_notes(aws: Aws, regions: list[str]) -> list[str]:
    """API-call events reach EventBridge only where a trail logs them (EventBridge User Guide, "Events
    from AWS services"): say so where no trail of the Region is logging. Read-only."""
    notes = []
    for region in regions:
        try:
            trail = aws.client("cloudtrail", region)
            trails = trail.describe_trails(includeShadowTrails=True).get("trailList") or []
            logging = [t for t in trails if trail.get_trail_status(Name=t["TrailARN"]).get("IsLogging")]
        except ClientError as exc:
            notes.append(f"cannot read CloudTrail in {region} ({error_code(exc)}): check that a trail logs "
                         "management write events there")
            continue
        if not logging:
            notes.append(f"no CloudTrail trail is logging in {region}: its IAM/ECS/Secrets Manager API-call "
                         "events will not arrive (Parameter Store changes will); create a trail, or rely on "
                         "the resync")
    return notes
