"""An event's reconcile and the daemon's version memory: a parameter an event says changed is read again,
whatever the memory says of its version.

Why the memory can be wrong about it: after our own PutParameter the memory has the version the reply
named and the reply's HTTP Date (cut to the second), and vouches for a listed parameter of that version
modified before Date + 1 s (controller/aws/known.py). A parameter deleted and created again within that
second starts at version 1 again (SSM User Guide, "Working with parameter versions") with a date inside
the window. Its "Parameter Store Change" events (Delete, then Create: the EventBridge events reference for
Systems Manager, fixtures/events/SOURCES.md) say it changed; the reconcile they start must compare it.
"""

from __future__ import annotations

import secrets

import pytest

from controller import reconcile
from controller.aws.session import Aws
from controller.daemon.events import Inbox
from controller.daemon.loop import Daemon
from controller.daemon.metrics import Metrics
from test_daemon import client, value
from test_events import MemoryQueue, parameter_changed, stacks  # noqa: F401  (the fixture)


def test_an_events_parameter_is_compared_even_when_the_memory_vouches_for_its_version(
        aws_env, stacks, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    canary = f"canary-{secrets.token_hex(12)}"
    monkeypatch.setenv("DB_PASSWORD", canary)
    aws, metrics = Aws(region="us-east-1", endpoint_url=aws_env), Metrics()
    inbox = Inbox(aws, "http://127.0.0.1/123456789012/events", metrics, wait=0)
    daemon = Daemon(aws, str(stacks), reconcile.Settings(isolate=True), 300, metrics, inbox=inbox, resync=300)
    daemon.load()
    assert daemon.tick() == "success" and value(aws_env, "/a/db") == canary   # created: version 1
    key = ("us-east-1", "/a/db")
    assert key in aws.known._seen and aws.known._seen[key].written_by is not None

    ssm = client("ssm", aws_env)
    drift = f"drift-{secrets.token_hex(8)}"
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId="/a/db")["TagList"]
    ssm.delete_parameter(Name="/a/db")
    ssm.put_parameter(Name="/a/db", Value=drift, Type="SecureString", Tags=tags)   # version 1 again
    meta = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": ["/a/db"]}])["Parameters"][0]
    assert meta["Version"] == 1
    # within the second of our write's reply, as the memory cannot tell apart
    aws.known._seen[key] = aws.known._seen[key]._replace(written_by=meta["LastModifiedDate"])

    memory = MemoryQueue([parameter_changed("/a/db")])
    inbox.poll_client = inbox.client = memory
    batch = inbox.next()
    assert batch is not None and "Parameter/a-db" in batch.refs
    daemon._reconcile_events(batch)
    assert value(aws_env, "/a/db") == canary, "the event's change was skipped: the memory vouched for it"
    assert not memory.messages


def test_a_work_item_s_parameter_is_compared_even_when_the_memory_vouches_for_its_version(
        aws_env, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --work-queue, an event becomes an object item that a replica reconciles (workqueue.move_events):
    the item names objects, not what changed, so its reconcile must not trust the memory either."""
    from controller.daemon.workqueue import WorkDaemon
    canary = f"canary-{secrets.token_hex(12)}"
    monkeypatch.setenv("DB_PASSWORD", canary)
    path = tmp_path / "m.yaml"
    path.write_text("apiVersion: ecs-secrets/v1\nkind: Parameter\nmetadata: {name: a-db}\n"
                    "spec: {name: /a/db, type: SecureString, value: {fromEnv: DB_PASSWORD}}\n")
    aws = Aws(region="us-east-1", endpoint_url=aws_env)
    daemon = WorkDaemon(aws, str(path), reconcile.Settings(isolate=True), 60.0, Metrics())
    url = client("sqs", aws_env).create_queue(QueueName="work.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    daemon.setup(url, 30, lambda base: base)
    daemon.may_write = lambda: True     # as while it holds the item (its heartbeat healthy)
    daemon.load()
    assert daemon.reconcile_objects(None, {"Parameter/a-db"}) is None and value(aws_env, "/a/db") == canary
    key = ("us-east-1", "/a/db")
    assert aws.known._seen[key].written_by is not None
    ssm = client("ssm", aws_env)
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId="/a/db")["TagList"]
    ssm.delete_parameter(Name="/a/db")
    ssm.put_parameter(Name="/a/db", Value=f"drift-{secrets.token_hex(8)}", Type="SecureString", Tags=tags)
    meta = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": ["/a/db"]}])["Parameters"][0]
    aws.known._seen[key] = aws.known._seen[key]._replace(written_by=meta["LastModifiedDate"])
    assert daemon.reconcile_objects(None, {"Parameter/a-db"}) is None
    assert value(aws_env, "/a/db") == canary, "the item's reconcile trusted the memory"
