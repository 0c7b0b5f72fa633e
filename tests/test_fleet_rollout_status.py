"""A fleet daemon shows a service's rollout error on its TaskDefinition, as the single-account daemon does.

A service whose PRIMARY deployment FAILED (DescribeServices, ``deployments[].rolloutState`` FAILED; the ECS API
reference, Deployment) is a blocker of the service (``core.rollout.add``); the daemon's table tracks manifest
objects, so the blocker must be mapped to the TaskDefinition whose rollout it is, in the target's labels, or
the TaskDefinition reads in_sync while its service cannot start.
"""

from __future__ import annotations

import json

from controller import fleet as run
from controller import reconcile
from controller.aws.session import Aws
from controller.core.desired import Context
from controller.core.plan import Blocker, Plan
from controller.core.state import Actual, ActualRollout, ActualService
from controller.daemon.fleetloop import FleetDaemon
from controller.daemon.metrics import Metrics

A = "111111111111"


def test_a_failed_deployment_of_a_target_s_service_is_an_error_of_its_task_definition(aws_env, tmp_path,
                                                                                       monkeypatch):
    docs = [{"apiVersion": "ecs-secrets/v1", "kind": "Target", "metadata": {"name": "a-eu"},
             "spec": {"account": A, "region": "eu-west-1", "roleArn": f"arn:aws:iam::{A}:role/r"}},
            {"apiVersion": "ecs-secrets/v1", "kind": "TaskDefinition", "metadata": {"name": "web", "targets": ["a-eu"]},
             "spec": {"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx:1.27", "memory": 128}]}}]
    path = tmp_path / "f.yaml"
    path.write_text("\n---\n".join(json.dumps(d) for d in docs))
    d = FleetDaemon(Aws(region="us-east-1"), str(path), reconcile.Settings(isolate=True), 60.0, Metrics())
    d.load()
    td = "TaskDefinition/web@a-eu"
    failed = Blocker("Service/main/web@a-eu", "ECS service main/web: its deployment ecs-svc/1 FAILED: cannot start",
                     terminal=False)
    actual = Actual(Context(A, "eu-west-1"), rollouts={td: ActualRollout([ActualService("main", "web", "ACTIVE")])})
    desired = d.fleet.groups["a-eu"]
    planned = reconcile.Result(Plan((), (failed,), (td,), ()), actual, desired)
    monkeypatch.setattr(run, "make", lambda *a, **k: run.FleetResult({"a-eu": planned}, {}))
    assert d.reconcile() == "partial"
    state = d.table.snapshot(d.backoff, 0.0)[td]
    assert state["state"] == "error" and "FAILED" in state["last_error"]
