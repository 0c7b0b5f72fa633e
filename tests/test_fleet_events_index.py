"""What an EventBridge event concerns, in a fleet: the objects of the target whose account and Region it came
from, and only those.

An event names its account and Region (EventBridge event structure: ``account``, ``region``; the CloudTrail
API-call events carry the caller's ``recipientAccountId``/``awsRegion`` too), so a target's task definition in
eu-west-1 is concerned by an event of eu-west-1 in the target's account, and a parameter of one account by no
event of another account's parameter of the same name.
"""

from __future__ import annotations

import json

from controller.core import events, fleet as fleet_

A, B, OWN = "111111111111", "222222222222", "123456789012"


def _doc(kind: str, name: str, spec: dict, targets: list[str] | None = None) -> str:
    metadata: dict = {"name": name}
    if targets is not None:
        metadata["targets"] = targets
    return json.dumps({"apiVersion": "ecs-secrets/v1", "kind": kind, "metadata": metadata, "spec": spec})


def _target(name: str, account: str, region: str) -> str:
    return _doc("Target", name, {"account": account, "region": region, "roleArn": f"arn:aws:iam::{account}:role/r"})


def _fleet(tmp_path):
    docs = [_target("a-eu", A, "eu-west-1"), _target("b-eu", B, "eu-west-1"),
            _doc("Parameter", "db", {"name": "/app/db", "type": "String", "value": {"literal": "x"}}, ["a-eu", "b-eu"]),
            _doc("ExecutionRole", "web-exec", {"roleName": "web-exec", "managedPolicyArns": []}, ["a-eu", "b-eu"]),
            _doc("TaskDefinition", "web", {"family": "web", "executionRole": "web-exec", "containerDefinitions": [
                {"name": "web", "image": "nginx:1.27", "memory": 128,
                 "secrets": [{"name": "DB", "valueFrom": "/app/db"}]}]}, ["a-eu", "b-eu"])]
    path = tmp_path / "f.yaml"
    path.write_text("\n---\n".join(docs))
    return fleet_.load(str(path), "us-east-1")


def test_an_event_concerns_only_the_objects_of_the_target_it_came_from(tmp_path):
    index = fleet_.EventIndex(_fleet(tmp_path), OWN)
    family = events.Touch(events.FAMILY, "web", "eu-west-1", A)
    assert index.refs(family) == {"TaskDefinition/web@a-eu"}
    parameter = events.Touch(events.PARAMETER, "/app/db", "eu-west-1", B)
    assert index.refs(parameter) == {"Parameter/db@b-eu", "ExecutionRole/web-exec@b-eu", "TaskDefinition/web@b-eu"}
    assert index.refs(events.Touch(events.FAMILY, "web", "us-east-1", A)) == set()   # not its Region
    assert index.refs(events.Touch(events.PARAMETER, "/app/db", "eu-west-1", OWN)) == set()   # not its account


def test_the_fleet_daemon_s_events_inbox_reads_events_by_target(aws_env, tmp_path):
    from controller import reconcile
    from controller.aws.session import Aws
    from controller.daemon.events import Inbox
    from controller.daemon.fleetloop import FleetDaemon
    from controller.daemon.metrics import Metrics
    _fleet(tmp_path)   # writes f.yaml
    aws, metrics = Aws(region="us-east-1"), Metrics()
    inbox = Inbox(aws, "http://127.0.0.1:5000/123456789012/events", metrics, wait=0)
    d = FleetDaemon(aws, str(tmp_path / "f.yaml"), reconcile.Settings(isolate=True), 60.0, metrics, inbox=inbox)
    d.load()
    assert d.inbox is not None and d.inbox.index is not None
    assert d.inbox.index.refs(events.Touch(events.FAMILY, "web", "eu-west-1", A)) == {"TaskDefinition/web@a-eu"}
