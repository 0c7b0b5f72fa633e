"""What `events-setup` creates, as data: the SQS queue `run --events` reads, the EventBridge rules that
feed it, and, where IAM's events arrive in another Region, the rule and role that forward them. Pure.

Every call is idempotent on its own (PutRule, PutTargets and PutRolePolicy replace; CreateQueue and
CreateRole are followed by an update when the resource exists), so `--apply` may run again after any
change or failure. Sources, beside each choice:
- the queue policy, not a role on the target: EventBridge delivers to SQS under the queue's
  resource-based policy, with ``aws:SourceArn`` naming the rule (EventBridge User Guide, "Using
  resource-based policies for Amazon EventBridge", Amazon SQS permissions; a RoleArn on an SQS target
  is advised against there);
- forwarding to the default bus of another Region needs a role that EventBridge assumes, allowed
  ``events:PutEvents`` on that bus (EventBridge User Guide, "Sending and receiving events between AWS
  accounts and Regions"; the same account needs no bus policy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from controller.vocab import eventpatterns as ep

RULE_PREFIX = "ecs-secrets"
TARGET_ID = "ecs-secrets-queue"
FORWARD_ID = "ecs-secrets-forward"
VISIBILITY_TIMEOUT = 900        # seconds: a reconcile (with a rollout's wait) finishes before redelivery
RETENTION = 4 * 24 * 3600       # SQS's default; an event older than the resync interval is no news anyway


@dataclass(frozen=True)
class Setup:
    account: str
    region: str
    partition: str = "aws"
    owner: str = "ecs-secrets"
    queue: str = "ecs-secrets-events"


@dataclass(frozen=True)
class Call:
    service: str
    region: str
    operation: str                  # botocore's Python name: create_queue, put_rule, ...
    params: dict[str, Any]
    says: str                       # one line for a person
    exists_ok: tuple[str, ...] = ()  # error codes meaning "already there"; ``then`` updates it
    then: tuple["Call", ...] = field(default=())


@dataclass(frozen=True)
class SetupPlan:
    calls: tuple[Call, ...]
    queue_arn: str
    notes: tuple[str, ...]


def queue_arn(s: Setup) -> str:
    return f"arn:{s.partition}:sqs:{s.region}:{s.account}:{s.queue}"


def rule_arn(s: Setup, region: str, name: str) -> str:
    return f"arn:{s.partition}:events:{region}:{s.account}:rule/{name}"


def forward_role(s: Setup) -> str:
    return f"{RULE_PREFIX}-events-forward-{s.region}"[:64]


def plan(s: Setup) -> SetupPlan:
    rules = {f"{RULE_PREFIX}-{suffix}": pattern for suffix, pattern in ep.patterns().items()}
    iam_region = ep.IAM_EVENT_REGION.get(s.partition, "us-east-1")
    notes = ["API-call events (IAM, ECS, Secrets Manager, SSM tags) arrive only where a CloudTrail trail logs "
             "management write events in the Region of the rule (and in " + iam_region + " for IAM); Parameter Store "
             "changes need no trail. Whatever does not arrive, the resync repairs (`--resync-interval`)."]
    forward: list[Call] = []
    if s.region != iam_region:
        if s.partition in ep.CROSS_REGION_PARTITIONS:
            forward = _forwarding(s, iam_region)
        else:
            notes.append(f"EventBridge does not route between Regions in {s.partition}: IAM's events stay in "
                         f"{iam_region}, and role drift is found by the resync only")
    arn = queue_arn(s)
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "EventBridgeRulesOfEcsSecrets", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": sorted(rule_arn(s, s.region, r) for r in rules)}}}]}
    attributes = {"VisibilityTimeout": str(VISIBILITY_TIMEOUT), "MessageRetentionPeriod": str(RETENTION),
                  "ReceiveMessageWaitTimeSeconds": "20", "SqsManagedSseEnabled": "true",
                  "Policy": _json(policy)}
    calls: list[Call] = [Call(
        "sqs", s.region, "create_queue",
        {"QueueName": s.queue, "Attributes": attributes, "tags": {"ecs-secrets:owner": s.owner}},
        f"SQS queue {s.queue} (encrypted, 20 s long polls, {VISIBILITY_TIMEOUT} s visibility), sent to only by "
        "the rules below", exists_ok=("QueueAlreadyExists", "QueueNameExists"),
        then=(Call("sqs", s.region, "set_queue_attributes", {"QueueUrl": "{queue_url}", "Attributes": attributes},
                   f"update the attributes of queue {s.queue}"),))]
    for name, pattern in rules.items():
        calls.append(Call("events", s.region, "put_rule",
                          {"Name": name, "EventPattern": _json(pattern), "State": "ENABLED",
                           "Description": "ecs-secrets: drift events for `run --events`",
                           "Tags": [{"Key": "ecs-secrets:owner", "Value": s.owner}]},
                          f"EventBridge rule {name} in {s.region}: {_what(pattern)}"))
        calls.append(Call("events", s.region, "put_targets",
                          {"Rule": name, "Targets": [{"Id": TARGET_ID, "Arn": arn}]},
                          f"rule {name} → queue {s.queue}"))
    return SetupPlan(tuple(calls + forward), arn, tuple(notes))


def _forwarding(s: Setup, iam_region: str) -> list[Call]:
    bus = f"arn:{s.partition}:events:{s.region}:{s.account}:event-bus/default"
    role = forward_role(s)
    role_arn = f"arn:{s.partition}:iam::{s.account}:role/{role}"
    name = f"{RULE_PREFIX}-iam-to-{s.region}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": s.account},
                      "ArnEquals": {"aws:SourceArn": rule_arn(s, iam_region, name)}}}]}
    allow = {"Version": "2012-10-17", "Statement": [{
        "Sid": "ForwardIamEventsToTheControllersRegion", "Effect": "Allow", "Action": "events:PutEvents",
        "Resource": bus}]}
    return [
        Call("iam", iam_region, "create_role",
             {"RoleName": role, "AssumeRolePolicyDocument": _json(trust),
              "Description": f"ecs-secrets: EventBridge forwards IAM events from {iam_region} to {s.region}",
              "Tags": [{"Key": "ecs-secrets:owner", "Value": s.owner}]},
             f"IAM role {role}, assumed by EventBridge for that forwarding rule only", exists_ok=("EntityAlreadyExists",),
             then=(Call("iam", iam_region, "update_assume_role_policy",
                        {"RoleName": role, "PolicyDocument": _json(trust)}, f"update the trust policy of {role}"),)),
        Call("iam", iam_region, "put_role_policy",
             {"RoleName": role, "PolicyName": "ecs-secrets-forward", "PolicyDocument": _json(allow)},
             f"role {role} may PutEvents on the default bus of {s.region} only"),
        Call("events", iam_region, "put_rule",
             {"Name": name, "EventPattern": _json(ep.iam_pattern()), "State": "ENABLED",
              "Description": f"ecs-secrets: IAM events, which arrive only in {iam_region}, to {s.region}",
              "Tags": [{"Key": "ecs-secrets:owner", "Value": s.owner}]},
             f"EventBridge rule {name} in {iam_region}: IAM role writes (IAM delivers its events only here)"),
        Call("events", iam_region, "put_targets",
             {"Rule": name, "Targets": [{"Id": FORWARD_ID, "Arn": bus, "RoleArn": role_arn}]},
             f"rule {name} → the default event bus of {s.region}, where rule {RULE_PREFIX}-iam takes them"),
    ]


def _what(pattern: dict) -> str:
    names = pattern.get("detail", {}).get("eventName")
    kinds = "/".join(pattern["detail-type"])
    return f"{pattern['source'][0]} {kinds}" + (f" ({', '.join(names)})" if names else "")


def _json(document: dict) -> str:
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def document(p: SetupPlan, queue_url: str | None = None) -> dict[str, Any]:
    """The plan as one JSON document (`--output json`)."""
    out: dict[str, Any] = {"queueArn": p.queue_arn, "notes": list(p.notes),
                           "calls": [{"service": c.service, "region": c.region, "operation": c.operation,
                                      "parameters": c.params, "says": c.says} for c in p.calls]}
    if queue_url:
        out["queueUrl"] = queue_url
    return out
