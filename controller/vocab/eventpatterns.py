"""The AWS events the daemon's `--events` queue listens to: one table, read by `events-setup` (the rules
it creates) and by the consumer (what it understands).

Sources (the EventBridge events reference, docs.aws.amazon.com/eventbridge/latest/ref/):
- events-ref-ssm.html: Parameter Store sends ``"Parameter Store Change"`` directly (source ``aws.ssm``),
  with ``detail.name`` and ``detail.operation`` (Create, Update, Delete, LabelParameterVersion).
- events-ref-secretsmanager.html, events-ref-iam.html, events-ref-ecs.html: the writes of Secrets Manager,
  IAM and ECS arrive as ``"AWS API Call via CloudTrail"`` (``detail.eventSource``/``detail.eventName``);
  Secrets Manager's own rotation outcome as ``"AWS Service Event via CloudTrail"`` (RotationSucceeded).
- Secrets Manager User Guide, event-detail-secret-label-updated-secretsmanager.html: a staging label that
  moves (AWSCURRENT too) is ``"Secret Label Updated"``, sent by Secrets Manager itself, with no eventName.
- Parameter Store Change names no tag change: tag writes come as the CloudTrail calls of ``aws.ssm``.
- userguide/event-types.html: API-call events need a CloudTrail trail with logging on, in the Region of
  the rule; repost.aws knowledge-center/eventbridge-rule-triggers-iam-single-region: IAM, a global
  service, delivers its events only to us-east-1 (``IAM_EVENT_REGION`` by partition).
"""

from __future__ import annotations

API_CALL = "AWS API Call via CloudTrail"
SERVICE_EVENT = "AWS Service Event via CloudTrail"
PARAMETER_CHANGE = "Parameter Store Change"
SECRET_LABEL_UPDATED = "Secret Label Updated"   # Secrets Manager itself: a staging label moved

# eventName per CloudTrail event source: the writes that can make us drift. The consumer (core/events.py)
# reads these same names and the rules deliver exactly these, so nothing delivered is dropped unread and
# nothing understood is left undelivered.
SECRETS_MANAGER = ("CreateSecret", "PutSecretValue", "UpdateSecret", "RotateSecret", "UpdateSecretVersionStage",
                   "DeleteSecret", "RestoreSecret", "CancelRotateSecret", "ReplicateSecretToRegions",
                   "RemoveRegionsFromReplication")
SECRETS_MANAGER_SERVICE = ("RotationSucceeded",)   # the new version is AWSCURRENT now (a failure changed none)
IAM = ("CreateRole", "DeleteRole", "UpdateRole", "UpdateRoleDescription", "UpdateAssumeRolePolicy",
       "PutRolePolicy", "DeleteRolePolicy", "AttachRolePolicy", "DetachRolePolicy", "TagRole", "UntagRole",
       "PutRolePermissionsBoundary", "DeleteRolePermissionsBoundary")
ECS = ("RegisterTaskDefinition", "DeregisterTaskDefinition", "DeleteTaskDefinitions", "TagResource",
       "UntagResource", "CreateService", "UpdateService")
SSM_TAGS = ("AddTagsToResource", "RemoveTagsFromResource")   # "Parameter Store Change" says nothing of tags

# CloudTrail delivers a global service's events in one Region of each partition
IAM_EVENT_REGION = {"aws": "us-east-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}
# EventBridge routes between Regions in the commercial partition only (AWS Compute Blog, "Expanding
# cross-Region event routing with Amazon EventBridge": every Region except GovCloud (US) and China)
CROSS_REGION_PARTITIONS = ("aws",)


def patterns() -> dict[str, dict]:
    """Rule name suffix → EventBridge event pattern."""
    return {
        "ssm": {"source": ["aws.ssm"], "detail-type": [PARAMETER_CHANGE]},
        "secretsmanager": {"source": ["aws.secretsmanager"], "detail-type": [API_CALL, SERVICE_EVENT],
                           "detail": {"eventSource": ["secretsmanager.amazonaws.com"],
                                      "eventName": list(SECRETS_MANAGER + SECRETS_MANAGER_SERVICE)}},
        "secretsmanager-labels": {"source": ["aws.secretsmanager"], "detail-type": [SECRET_LABEL_UPDATED]},
        "ecs": {"source": ["aws.ecs"], "detail-type": [API_CALL],
                "detail": {"eventSource": ["ecs.amazonaws.com"], "eventName": list(ECS)}},
        "ssm-tags": {"source": ["aws.ssm"], "detail-type": [API_CALL],
                     "detail": {"eventSource": ["ssm.amazonaws.com"], "eventName": list(SSM_TAGS)}},
        "iam": iam_pattern(),
    }


def iam_pattern() -> dict:
    return {"source": ["aws.iam"], "detail-type": [API_CALL],
            "detail": {"eventSource": ["iam.amazonaws.com"], "eventName": list(IAM)}}
