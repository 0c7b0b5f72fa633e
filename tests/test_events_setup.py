"""`ecs-secrets events-setup`: the queue and rules that feed `run --events`, printed or created.

What AWS does that these tests lean on, and where it is written:
- EventBridge delivers to an SQS queue under the queue's own policy, allowing ``events.amazonaws.com``
  ``sqs:SendMessage`` with ``aws:SourceArn`` = the rule (EventBridge User Guide, "Using resource-based
  policies for Amazon EventBridge", Amazon SQS permissions);
- IAM, a global service, delivers its CloudTrail events only to us-east-1 (AWS re:Post knowledge
  center, "eventbridge-rule-triggers-iam-single-region"), and a rule there can target the default bus of
  another Region with a role allowed events:PutEvents (EventBridge User Guide, "Sending and receiving
  events between AWS accounts and Regions"); moto's EventBridge forwards such events, as AWS does;
- SQS CreateQueue answers QueueAlreadyExists for a name that exists with other attributes (SQS API
  reference, CreateQueue).
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from controller.cli import main
from controller.core import eventrules

ACCOUNT = "123456789012"


def run(capfd: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    capfd.readouterr()
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def test_print_makes_no_aws_call_and_names_every_resource(capfd, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")   # any call would fail
    code, out, err = run(capfd, "events-setup", "--account", ACCOUNT, "--region", "eu-west-1", "--output", "json")
    assert code == 0, err
    doc = json.loads(out)
    ops = [(c["service"], c["operation"], c["region"]) for c in doc["calls"]]
    assert ops[0] == ("sqs", "create_queue", "eu-west-1")
    rules = {c["parameters"]["Name"]: json.loads(c["parameters"]["EventPattern"]) for c in doc["calls"]
             if c["operation"] == "put_rule"}
    assert rules["ecs-secrets-ssm"] == {"source": ["aws.ssm"], "detail-type": ["Parameter Store Change"]}
    assert "PutRolePolicy" in rules["ecs-secrets-iam"]["detail"]["eventName"]
    # IAM's events arrive in us-east-1 only: a rule there forwards them to the controller's Region
    assert ("events", "put_rule", "us-east-1") in ops and rules["ecs-secrets-iam-to-eu-west-1"]
    queue = doc["calls"][0]["parameters"]
    policy = json.loads(queue["Attributes"]["Policy"])["Statement"][0]
    assert policy["Principal"] == {"Service": "events.amazonaws.com"} and policy["Action"] == "sqs:SendMessage"
    assert policy["Resource"] == f"arn:aws:sqs:eu-west-1:{ACCOUNT}:ecs-secrets-events"
    assert sorted(policy["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(
        f"arn:aws:events:eu-west-1:{ACCOUNT}:rule/{n}" for n in rules if not n.endswith("-to-eu-west-1"))
    code, text, err = run(capfd, "events-setup", "--account", ACCOUNT, "--region", "eu-west-1")
    assert code == 0 and "would create" in text and "ecs-secrets-iam-to-eu-west-1" in text


def test_in_us_east_1_nothing_is_forwarded() -> None:
    plan = eventrules.plan(eventrules.Setup(account=ACCOUNT, region="us-east-1"))
    assert {c.region for c in plan.calls} == {"us-east-1"}
    assert not [c for c in plan.calls if c.service == "iam"]


def test_china_and_govcloud_say_iam_events_cannot_be_forwarded() -> None:
    plan = eventrules.plan(eventrules.Setup(account=ACCOUNT, region="cn-northwest-1", partition="aws-cn"))
    assert not [c for c in plan.calls if c.service == "iam"]
    assert any("does not route between Regions in aws-cn" in n for n in plan.notes)
    assert plan.queue_arn.startswith("arn:aws-cn:sqs:cn-northwest-1:")


def test_apply_creates_what_delivers_events_to_the_queue_and_runs_again(aws_env: str, capfd) -> None:
    code, out, err = run(capfd, "events-setup", "--apply", "--region", "eu-west-1")
    assert code == 0, err
    assert "Ready: ecs-secrets run -f PATH --events http" in out
    assert "no CloudTrail trail is logging in eu-west-1" in err   # moto's account has no trail
    code, out, err = run(capfd, "events-setup", "--apply", "--region", "eu-west-1", "--output", "json")
    assert code == 0, err   # idempotent
    url = json.loads(out)["queueUrl"]
    sqs = boto3.client("sqs", region_name="eu-west-1")
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"ecs-secrets:owner": "ecs-secrets"}
    # a Parameter Store change in the Region, and an IAM write (which arrives in us-east-1), reach the queue
    boto3.client("events", region_name="eu-west-1").put_events(Entries=[{
        "Source": "aws.ssm", "DetailType": "Parameter Store Change",
        "Detail": json.dumps({"name": "/app/db", "type": "SecureString", "operation": "Update"})}])
    boto3.client("events", region_name="us-east-1").put_events(Entries=[{
        "Source": "aws.iam", "DetailType": "AWS API Call via CloudTrail",
        "Detail": json.dumps({"eventSource": "iam.amazonaws.com", "eventName": "PutRolePolicy",
                              "requestParameters": {"roleName": "web-exec"}})}])
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                                 WaitTimeSeconds=2).get("Messages", [])]
    bodies += [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                                  WaitTimeSeconds=1).get("Messages", [])]
    assert sorted(b["source"] for b in bodies) == ["aws.iam", "aws.ssm"]
    # an event the rules do not ask for stays out
    boto3.client("events", region_name="eu-west-1").put_events(Entries=[{
        "Source": "aws.ecs", "DetailType": "ECS Task State Change", "Detail": "{}"}])
    assert not sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages")


def test_a_queue_that_is_not_ours_is_refused(aws_env: str, capfd) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    sqs.create_queue(QueueName="ecs-secrets-events", Attributes={"VisibilityTimeout": "30"})
    code, out, err = run(capfd, "events-setup", "--apply")
    assert code == 1 and "SQS queue ecs-secrets-events exists and is not ours" in err, err
    assert not boto3.client("events", region_name="us-east-1").list_rules()["Rules"]


@pytest.mark.parametrize("argv, needle", [
    (["--queue-name", "bad name"], "an SQS queue name"),
    (["--queue-name", "q.fifo"], "an SQS queue name"),
    (["--sandbox"], "drop --sandbox"),
])
def test_refusals(argv: list[str], needle: str, capfd, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capfd, "events-setup", "--account", ACCOUNT, *argv)
    assert code == 1 and needle in err, err
