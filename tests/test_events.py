"""`run --events QUEUE_URL`: drift repaired by the events on an SQS queue (EventBridge's shapes, the AWS
documentation's samples in tests/fixtures/events/), the full resync as the safety net, an idle daemon that
calls nothing but SQS, bursts, malformed messages, delete-after-reconcile, and the fallback to polling.

SQS behaviour relied on (moto's SQS follows it): ReceiveMessage takes at most 10 messages and waits at most
20 s (WaitTimeSeconds; Amazon SQS API Reference, ReceiveMessage); a received message stays in the queue,
invisible for the visibility timeout, until DeleteMessage (Amazon SQS Developer Guide, "Amazon SQS
visibility timeout"); ChangeMessageVisibility sets when it shows again. A queue that is gone answers
AWS.SimpleQueueService.NonExistentQueue / QueueDoesNotExist (API Reference, ReceiveMessage, Errors).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from controller import reconcile
from controller.aws.session import Aws
from controller.core import permissions
from controller.core.validate import load
from controller.daemon import events as inbox_
from controller.daemon.events import POLLING, Inbox
from controller.daemon.loop import Daemon
from controller.daemon.metrics import Metrics
from test_daemon import Replica, client, value, wait_for
from test_events_pure import fixture

QUIET = ("ssm", "iam", "ecs", "sts", "kms", "secretsmanager", "s3")   # everything the reconcile reads
STACKS = """\
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: a-db}
spec: {name: /a/db, type: SecureString, value: {fromEnv: DB_PASSWORD}}
---
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: a-exec}
spec: {roleName: a-exec-role}
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: a}
spec:
  family: a-family
  executionRole: a-exec
  containerDefinitions:
    - name: app
      image: public.ecr.aws/nginx/nginx:1.27
      memory: 128
      secrets: [{name: DB, valueFrom: /a/db}]
---
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: b-level}
spec: {name: /b/level, type: String, value: {literal: info}}
---
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: b-exec}
spec: {roleName: b-exec-role}
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: b}
spec:
  family: b-family
  executionRole: b-exec
  containerDefinitions:
    - name: app
      image: public.ecr.aws/nginx/nginx:1.27
      memory: 128
      secrets: [{name: LEVEL, valueFrom: /b/level}]
"""


@pytest.fixture
def canary() -> str:
    return f"canary-{secrets.token_hex(12)}"


@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "stacks.yaml").write_text(STACKS)
    return folder


@pytest.fixture
def queue(aws_env: str) -> str:
    return client("sqs", aws_env).create_queue(QueueName=f"events-{secrets.token_hex(4)}",
                                               Attributes={"VisibilityTimeout": "30"})["QueueUrl"]


@pytest.fixture
def daemons(tmp_path: Path, canary: str, monkeypatch: pytest.MonkeyPatch):
    started: list[Replica] = []

    def start(manifests: Path, *extra: str, interval: float = 300, **kw: Any) -> Replica:
        r = Replica(tmp_path, manifests, *extra, env={"DB_PASSWORD": canary, inbox_.WAIT_ENV: "1"},
                    interval=interval, **kw)
        started.append(r)
        return r
    yield start
    for r in started:
        r.kill()


def send(url: str, queue_url: str, bodies: list[str]) -> None:
    sqs = client("sqs", url)
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": b}
                                                            for i, b in enumerate(bodies[start:start + 10])])


def in_queue(url: str, queue_url: str) -> int:
    """Messages still in the queue, visible or not (received, not deleted)."""
    attrs = client("sqs", url).get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def calls(d: Replica, *services: str) -> float:
    return sum(v for (n, ls), v in d.metrics().items()
               if n == "ecs_secrets_aws_api_calls_total" and dict(ls)["service"] in services)


def parameter_changed(name: str) -> str:
    return fixture("ssm-parameter-store-change-update.json", **{"detail.name": name})


def drift_value(url: str, name: str) -> str:
    drift = f"drift-{secrets.token_hex(8)}"
    client("ssm", url).put_parameter(Name=name, Value=drift, Type="SecureString", Overwrite=True)
    return drift


# --- through the command, as an operator runs it ----------------------------------------------------

def test_an_event_repairs_its_drift_without_waiting_for_the_resync(stacks, aws_env, queue, daemons, canary):
    d = daemons(stacks, "--events", queue, "--resync-interval", "300")
    wait_for(d.ready, 30, message="/readyz")
    assert value(aws_env, "/a/db") == canary
    drift = drift_value(aws_env, "/a/db")
    iam = client("iam", aws_env)
    iam.put_role_policy(RoleName="b-exec-role", PolicyName="ecs-secrets", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}]}))
    started = time.monotonic()
    send(aws_env, queue, [parameter_changed("/a/db"), fixture(
        "iam-cloudtrail-putrolepolicy.json", **{"detail.requestParameters.roleName": "b-exec-role"})])
    wait_for(lambda: value(aws_env, "/a/db") == canary, 15, every=0.05, message="value repaired by its event")
    wait_for(lambda: "ssm:*" not in json.dumps(iam.get_role_policy(RoleName="b-exec-role", PolicyName="ecs-secrets")),
             15, every=0.05, message="policy repaired by its event")
    print(f"two events repaired in {time.monotonic() - started:.1f}s (resync 300 s)")
    wait_for(lambda: in_queue(aws_env, queue) == 0, 10, message="both messages deleted after their reconcile")
    assert d.metric("ecs_secrets_events_total", result="relevant") == 2
    assert d.metric("ecs_secrets_event_reconciles_total") >= 1
    assert d.status()["events"]["mode"] == "events" and d.metric("ecs_secrets_events_mode", mode="events") == 1
    assert d.metric("ecs_secrets_last_success_timestamp_seconds") > 0
    for page in ("/status", "/metrics"):
        assert canary not in d.get(page)[1] and drift not in d.get(page)[1]
    assert d.stop() == 0
    assert canary not in d.output() and drift not in d.output()


def test_a_change_without_its_event_waits_for_the_resync(stacks, aws_env, queue, daemons, canary):
    resync = 5.0
    d = daemons(stacks, "--events", queue, "--resync-interval", str(resync))
    wait_for(d.ready, 30, message="/readyz")
    passes = d.metric("ecs_secrets_reconcile_total")
    drift = drift_value(aws_env, "/a/db")
    seen = time.monotonic()
    while time.monotonic() - seen < 0.9 * resync - 1.5:   # before the earliest resync: still drifted
        assert value(aws_env, "/a/db") == drift
        time.sleep(0.2)
    wait_for(lambda: value(aws_env, "/a/db") == canary, 2 * resync + 10, message="repaired by the resync")
    assert d.metric("ecs_secrets_reconcile_total") > passes
    assert d.metric("ecs_secrets_event_reconciles_total") == 0      # no event came: the full pass did it
    assert d.stop() == 0 and canary not in d.output() and drift not in d.output()


def test_an_idle_daemon_with_events_calls_nothing_but_sqs(stacks, aws_env, queue, daemons):
    d = daemons(stacks, "--events", queue, "--resync-interval", "300", interval=1)
    wait_for(d.ready, 30, message="/readyz")
    wait_for(lambda: d.metric("ecs_secrets_aws_api_calls_total", service="sqs", operation="ReceiveMessage") >= 1, 10)
    before, polls = calls(d, *QUIET), d.metric("ecs_secrets_aws_api_calls_total", operation="ReceiveMessage")
    wait_for(lambda: d.metric("ecs_secrets_aws_api_calls_total", operation="ReceiveMessage") >= polls + 4, 20,
             message="four more long polls")   # --interval 1: a polling daemon would have reconciled 4 times
    assert calls(d, *QUIET) == before
    assert d.metric("ecs_secrets_reconcile_total") == 1
    assert d.get("/healthz")[0] == 200
    assert d.stop() == 0


def test_a_burst_of_duplicates_is_one_reconcile_and_malformed_messages_are_counted_and_deleted(
        stacks, aws_env, queue, daemons, canary):
    hidden = f"payload-{secrets.token_hex(8)}"          # what a malformed body held never reaches a log
    malformed = [f"not json {hidden}", json.dumps({"hello": hidden}), json.dumps([hidden])]
    irrelevant = [parameter_changed("/someone/elses"), fixture("ecs-cloudtrail-tagresource-cluster.json")]
    # queued before the start, so that the first round finds them all (moto's ReceiveMessage slows with the
    # queue's length: the 1,000 of the issue are in the in-process test below)
    send(aws_env, queue, [parameter_changed("/b/level")] * 100 + malformed + irrelevant)
    d = daemons(stacks, "--events", queue, "--resync-interval", "300")
    wait_for(d.ready, 60, message="/readyz")
    wait_for(lambda: in_queue(aws_env, queue) == 0, 60, message="every message deleted")
    wait_for(lambda: d.metric("ecs_secrets_events_total", result="received") == 105, 10)
    assert d.metric("ecs_secrets_events_total", result="relevant") == 100
    assert d.metric("ecs_secrets_events_total", result="malformed") == 3
    assert d.metric("ecs_secrets_events_total", result="irrelevant") == 2
    assert d.metric("ecs_secrets_event_reconciles_total") == 1             # 100 events, one object: once
    assert d.status()["events"]["messages"]["malformed"] == 3
    assert d.proc.poll() is None and d.stop() == 0
    out = d.output()
    assert "malformed message" in out and hidden not in out and canary not in out


def test_the_queue_gone_falls_back_to_polling_and_back_to_events_when_it_returns(stacks, aws_env, queue, daemons,
                                                                                 canary):
    d = daemons(stacks, "--events", queue, "--resync-interval", "300", interval=1)
    wait_for(d.ready, 30, message="/readyz")
    sqs = client("sqs", aws_env)
    name = queue.rsplit("/", 1)[1]
    sqs.delete_queue(QueueUrl=queue)
    wait_for(lambda: d.status()["events"]["mode"] == POLLING, 20, message="fallback to polling")
    assert d.metric("ecs_secrets_events_mode", mode="polling") == 1 and d.metric("ecs_secrets_events_mode",
                                                                                 mode="events") == 0
    assert d.status()["events"]["reason"]
    drift = drift_value(aws_env, "/a/db")          # no event: polling at --interval repairs it
    wait_for(lambda: value(aws_env, "/a/db") == canary, 20, message="repaired by polling")
    assert sqs.create_queue(QueueName=name)["QueueUrl"] == queue
    wait_for(lambda: d.status()["events"]["mode"] == "events", 20, message="back to events")
    assert d.metric("ecs_secrets_events_mode", mode="events") == 1
    drift = drift_value(aws_env, "/a/db")
    send(aws_env, queue, [parameter_changed("/a/db")])
    wait_for(lambda: value(aws_env, "/a/db") == canary, 15, message="repaired by its event again")
    assert d.stop() == 0
    out = d.output()
    assert "polling every --interval" in out and "back to events" in out and drift not in out and canary not in out


def test_run_refuses_a_queue_url_that_is_not_one(stacks, capsys):
    from controller.cli import main
    assert main(["run", "-f", str(stacks), "--events", "arn:aws:sqs:us-east-1:123456789012:q"]) == 1
    assert "not an SQS queue URL" in capsys.readouterr().err


# --- in process: what a crash mid-reconcile leaves, and an access denial -------------------------------

def test_a_message_is_deleted_only_after_its_reconcile_finished(stacks, aws_env, queue, canary, monkeypatch):
    monkeypatch.setenv("DB_PASSWORD", canary)
    aws = Aws(region="us-east-1", endpoint_url=aws_env)
    settings = reconcile.Settings(isolate=True)
    metrics = Metrics()
    inbox = Inbox(aws, queue, metrics, wait=1)
    daemon = Daemon(aws, str(stacks), settings, 300, metrics, inbox=inbox, resync=300)
    real, crash = reconcile.make, threading.Event()
    crash.set()

    def make(aws_: Aws, desired: Any, settings_: Any) -> Any:
        if crash.is_set() and len(desired.objects) < len(daemon.desired.objects):   # the event's partial pass
            raise RuntimeError("crashed mid-reconcile")
        return real(aws_, desired, settings_)
    monkeypatch.setattr(reconcile, "make", make)
    monkeypatch.setattr(inbox_, "DRAIN", 10)
    thread = threading.Thread(target=daemon.main, daemon=True)
    thread.start()
    try:
        wait_for(lambda: daemon.ready, 30, message="first full pass")
        drift = drift_value(aws_env, "/a/db")
        send(aws_env, queue, [parameter_changed("/a/db")])
        wait_for(lambda: metrics.event_reconciles._value.get() >= 1, 15, message="the partial pass ran (and failed)")
        assert in_queue(aws_env, queue) == 1            # not deleted: it comes back
        assert value(aws_env, "/a/db") == drift
        crash.clear()                                   # the next delivery reconciles, then deletes it
        wait_for(lambda: value(aws_env, "/a/db") == canary, 30, message="repaired on redelivery")
        wait_for(lambda: in_queue(aws_env, queue) == 0, 10, message="deleted after its reconcile")
    finally:
        daemon.stop("test")
        thread.join(30)
    assert not thread.is_alive()


class MemoryQueue:
    """An SQS queue in memory, as the boto3 client answers: received messages stay, invisible, until deleted
    (moto's is too slow for a burst of 1,000). Only what the inbox calls."""

    def __init__(self, bodies: list[str]) -> None:
        self.messages = {f"m{i}": b for i, b in enumerate(bodies)}
        self.visible = list(self.messages)
        self.received = self.deleted = 0

    def receive_message(self, QueueUrl: str, MaxNumberOfMessages: int, WaitTimeSeconds: int) -> dict:
        taken, self.visible = self.visible[:MaxNumberOfMessages], self.visible[MaxNumberOfMessages:]
        self.received += 1
        if not taken and WaitTimeSeconds:
            time.sleep(min(WaitTimeSeconds, 0.2))
        return {"Messages": [{"MessageId": m, "ReceiptHandle": f"rh-{m}", "Body": self.messages[m]} for m in taken]}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        for e in Entries:
            self.messages.pop(e["ReceiptHandle"][3:], None)
            self.deleted += 1
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        self.visible += [e["ReceiptHandle"][3:] for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


def test_a_burst_of_1000_events_for_one_object_is_one_reconcile(aws_env, queue, stacks, canary, monkeypatch):
    monkeypatch.setenv("DB_PASSWORD", canary)
    aws, metrics = Aws(region="us-east-1", endpoint_url=aws_env), Metrics()
    inbox = Inbox(aws, queue, metrics, wait=1)
    daemon = Daemon(aws, str(stacks), reconcile.Settings(isolate=True), 300, metrics, inbox=inbox, resync=300)
    memory = MemoryQueue([parameter_changed("/b/level")] * 1000)
    inbox.poll_client = inbox.client = memory
    thread = threading.Thread(target=daemon.main, daemon=True)
    thread.start()
    try:
        wait_for(lambda: not memory.messages, 60, message="all 1,000 deleted")
        assert metrics.event_reconciles._value.get() == 1 and memory.deleted == 1000
        assert metrics.events_total.labels("relevant")._value.get() == 1000
        assert daemon.last["scope"] == ["ExecutionRole/b-exec", "Parameter/b-level", "TaskDefinition/b"]
    finally:
        daemon.stop("test")
        thread.join(30)


def test_access_denied_on_the_queue_falls_back_and_a_readable_queue_recovers(aws_env, queue, stacks):
    aws = Aws(region="us-east-1", endpoint_url=aws_env)
    metrics = Metrics()
    inbox = Inbox(aws, queue, metrics, wait=0)
    inbox.follow(load(str(stacks), "us-east-1"))
    with Stubber(inbox.poll_client) as stub:
        stub.add_client_error("receive_message", "AccessDenied", "not authorized to perform sqs:ReceiveMessage",
                              403)
        assert inbox.next() is None
    assert inbox.mode == POLLING and inbox.reason == "AccessDenied"
    assert metrics.events_mode.labels(POLLING)._value.get() == 1
    with Stubber(inbox.client) as stub:
        stub.add_client_error("get_queue_attributes", "AccessDenied", "still not", 403)
        assert inbox.probe() is False and inbox.mode == POLLING
    assert inbox.probe() is True and inbox.mode == "events"
    assert metrics.events_mode.labels("events")._value.get() == 1
    send(aws_env, queue, [parameter_changed("/b/level")])
    batch = wait_for(lambda: inbox.next() or None, 10)
    assert batch.refs == {"Parameter/b-level", "TaskDefinition/b", "ExecutionRole/b-exec"} and len(batch.handles) == 1


def test_a_partial_reconcile_reads_only_its_objects(aws_env, stacks, canary, monkeypatch):
    monkeypatch.setenv("DB_PASSWORD", canary)
    aws = Aws(region="us-east-1", endpoint_url=aws_env)
    desired = load(str(stacks), "us-east-1")
    reconcile.execute(aws, reconcile.make(aws, desired, reconcile.Settings()))
    aws.calls.clear()
    result = reconcile.make(aws, desired.subset({"Parameter/b-level"}), reconcile.Settings())
    assert {c.ref for c in result.plan.changes} == set() and result.plan.in_sync == ("Parameter/b-level",)
    assert not [k for k in aws.calls if k[0] in ("iam", "ecs")]      # no role, no family was read


def test_controller_policy_grants_the_queue_only_with_events(stacks):
    desired = load(str(stacks), "eu-west-1")
    target = permissions.Target(account="123456789012", region="eu-west-1")
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ecs-secrets-events"
    plain = {s["Sid"] for s in permissions.policy_for(desired, target)["Statement"]}
    with_events = {s["Sid"]: s for s in permissions.policy_for(
        desired, permissions.Target(account="123456789012", region="eu-west-1", events_queue=url))["Statement"]}
    assert set(with_events) - plain == {"ReadTheEventsQueue"}
    st = with_events["ReadTheEventsQueue"]
    assert sorted(st["Action"]) == ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                    "sqs:ReceiveMessage"]
    assert st["Resource"] in (["arn:aws:sqs:eu-west-1:123456789012:ecs-secrets-events"],
                              "arn:aws:sqs:eu-west-1:123456789012:ecs-secrets-events")
