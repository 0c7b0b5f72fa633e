"""`run --work-queue` uses what the final loop and fleet code pass to a reconcile: the work-queue branch was built
on earlier versions of both, so these pin the arguments a replica's reconcile hands on."""

from __future__ import annotations

import boto3

from controller import reconcile
from controller.aws.session import Aws
from controller.daemon.metrics import Metrics
from controller.daemon.workqueue import WorkDaemon
from tests.test_workqueue import manifests, param


class _Covered:
    def covered(self) -> float:
        return 60.0

    def healthy(self) -> bool:
        return True


def _replica(tmp_path, settings: reconcile.Settings) -> WorkDaemon:
    url = boto3.client("sqs", region_name="us-east-1").create_queue(
        QueueName="work.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    d = WorkDaemon(Aws(region="us-east-1"), manifests(tmp_path, [param("a")]), settings, 60.0, Metrics())
    d.only = ()
    d.setup(url, 30, lambda base: Aws(region=base.region, rate_limits="off"))
    d.load()
    d.current = _Covered()   # the batch's heartbeat: writes are covered
    return d


def test_a_replica_follows_rollouts_for_the_rollout_timeout_it_was_given(aws_env, tmp_path, monkeypatch):
    """--rollout-timeout bounds how long a reconcile follows a service's deployment; a replica's reconcile must
    pass it on, as the polling daemon and the fleet daemon do."""
    seen: list[float] = []
    real = reconcile.execute

    def execute(*args, **kwargs):
        seen.append(kwargs.get("rollout_timeout", 900.0))
        return real(*args, **kwargs)

    monkeypatch.setattr(reconcile, "execute", execute)
    d = _replica(tmp_path, reconcile.Settings(isolate=True, rollout_timeout=42.0))
    assert d.reconcile_objects(None, {"Parameter/a"}) is None
    assert seen == [42.0]
    assert "/w/a" in {p["Name"] for p in boto3.client("ssm", region_name="us-east-1").describe_parameters()["Parameters"]}


def test_a_replica_shows_a_service_s_failed_deployment_on_its_task_definition(aws_env, tmp_path, monkeypatch):
    """A service whose PRIMARY deployment FAILED (ECS API reference, Deployment ``rolloutState``) blocks as the
    service; the table shows it on the TaskDefinition whose rollout it is, as the polling daemon does."""
    from controller.core.desired import Context
    from controller.core.plan import Blocker, Plan
    from controller.core.state import Actual, ActualRollout, ActualService
    url = boto3.client("sqs", region_name="us-east-1").create_queue(
        QueueName="work.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    td = {"apiVersion": "ecs-secrets/v1", "kind": "TaskDefinition", "metadata": {"name": "web"},
          "spec": {"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx:1.27", "memory": 128}]}}
    d = WorkDaemon(Aws(region="us-east-1"), manifests(tmp_path, [td]), reconcile.Settings(isolate=True), 60.0,
                   Metrics())
    d.only = ()
    d.setup(url, 30, lambda base: Aws(region=base.region, rate_limits="off"))
    d.load()
    d.current = _Covered()
    failed = Blocker("Service/main/web", "ECS service main/web: its deployment ecs-svc/1 FAILED", terminal=False)
    actual = Actual(Context("123456789012", "us-east-1"),
                    rollouts={"TaskDefinition/web": ActualRollout([ActualService("main", "web", "ACTIVE")])})
    monkeypatch.setattr(reconcile, "make", lambda aws, desired, settings: reconcile.Result(
        Plan((), (failed,), ("TaskDefinition/web",), ()), actual, desired))
    d.reconcile_objects(None, {"TaskDefinition/web"})
    state = d.table.snapshot(d.backoff, 0.0)["TaskDefinition/web"]
    assert state["state"] == "error" and "FAILED" in state["last_error"]


def test_a_resync_sends_a_service_s_roll_as_an_item_of_its_task_definition(aws_env, tmp_path, monkeypatch):
    """A service to roll (its running revision reads a secret that changed after its deployment started: ECS
    tasks read secrets at start, "Pass sensitive data to an Amazon ECS container", so only a new deployment
    picks the change up) is a change of the service, not of a manifest object. The resync must send it as an
    item of the TaskDefinition whose rollout it is: an item naming the service reconciles nothing (no manifest
    object has that ref) and the roll is lost."""
    from controller.core import ops
    from controller.core.desired import Context
    from controller.core.plan import Change, FieldChange, Plan
    from controller.core.state import Actual
    url = boto3.client("sqs", region_name="us-east-1").create_queue(
        QueueName="work.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    td = {"apiVersion": "ecs-secrets/v1", "kind": "TaskDefinition", "metadata": {"name": "web"},
          "spec": {"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx:1.27", "memory": 128}]}}
    d = WorkDaemon(Aws(region="us-east-1"), manifests(tmp_path, [td]), reconcile.Settings(isolate=True), 60.0,
                   Metrics())
    d.only = ()
    d.setup(url, 30, lambda base: Aws(region=base.region, rate_limits="off"))
    d.load()
    roll = Change("Service", "main/web", "update", (FieldChange("deployment", "ecs-svc/1", "(new deployment)"),),
                  ops.RollService("main", "web", "TaskDefinition/web", None, "ecs-svc/1", 1))
    monkeypatch.setattr(reconcile, "make", lambda aws, desired, settings: reconcile.Result(
        Plan((roll,), (), ("TaskDefinition/web",), ()), Actual(Context("123456789012", "us-east-1")), desired))
    sent: list = []
    monkeypatch.setattr(d.queue, "send", lambda items, units: sent.extend(items) or len(items))
    assert d.resync_target(None, "m-1")
    assert [it.refs for it in sent] == [("TaskDefinition/web",)]


def test_an_item_of_a_target_this_replica_does_not_serve_goes_back_to_the_queue(aws_env, tmp_path, monkeypatch):
    """Replicas on one queue may read different manifests for a while (a rolling deploy that adds a Target) or
    be limited with --target: an item of a target this replica does not know is another replica's work. It is
    given back to the queue (ChangeMessageVisibility, SQS Developer Guide "Amazon SQS visibility timeout"),
    never deleted: a delete would lose it until that target's next resync."""
    from controller.core.workitems import OBJECT, Item
    from controller.daemon.workqueue import Received
    url = boto3.client("sqs", region_name="us-east-1").create_queue(
        QueueName="work.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    d = WorkDaemon(Aws(region="us-east-1"), manifests(tmp_path, [param("a")]), reconcile.Settings(isolate=True),
                   60.0, Metrics())
    d.only = ()
    d.setup(url, 30, lambda base: Aws(region=base.region, rate_limits="off"))
    d.load()
    deleted: list = []
    released: list = []
    monkeypatch.setattr(d.queue, "delete", lambda handles: deleted.extend(handles))
    monkeypatch.setattr(d.queue, "release", lambda handles, after: released.append((tuple(handles), after)))
    monkeypatch.setattr(d.queue, "extend", lambda handles, seconds: [])
    import time
    d.process([Received("h-new", "m-1", Item(OBJECT, "b-new", ("Parameter/x@b-new",)))], time.monotonic())
    assert deleted == [] and [h for h, _ in released] == [("h-new",)]
    assert all(after > 0 for _, after in released)   # not straight back to this replica


def test_a_failed_roll_keeps_its_item_for_the_service_s_backoff(aws_env, tmp_path, monkeypatch):
    """A roll that failed (UpdateService refused, say ThrottlingException; ECS API reference, UpdateService
    Errors) backs off under the service's ref; the item of its TaskDefinition comes back after that backoff,
    not deleted (which would leave the service on its old secret until the next resync)."""
    from controller.aws.apply import Outcome, Report
    from controller.core import ops
    from controller.core.desired import Context
    from controller.core.plan import Change, FieldChange, Plan
    from controller.core.state import Actual, ActualRollout, ActualService
    url = boto3.client("sqs", region_name="us-east-1").create_queue(
        QueueName="work.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    td = {"apiVersion": "ecs-secrets/v1", "kind": "TaskDefinition", "metadata": {"name": "web"},
          "spec": {"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx:1.27", "memory": 128}]}}
    d = WorkDaemon(Aws(region="us-east-1"), manifests(tmp_path, [td]), reconcile.Settings(isolate=True), 60.0,
                   Metrics())
    d.only = ()
    d.setup(url, 30, lambda base: Aws(region=base.region, rate_limits="off"))
    d.load()
    d.current = _Covered()
    roll = Change("Service", "main/web", "update", (FieldChange("deployment", "ecs-svc/1", "(new deployment)"),),
                  ops.RollService("main", "web", "TaskDefinition/web", None, "ecs-svc/1", 1))
    actual = Actual(Context("123456789012", "us-east-1"),
                    rollouts={"TaskDefinition/web": ActualRollout([ActualService("main", "web", "ACTIVE")])})
    monkeypatch.setattr(reconcile, "make", lambda aws, desired, settings: reconcile.Result(
        Plan((roll,), (), ("TaskDefinition/web",), ()), actual, desired))
    monkeypatch.setattr(reconcile, "execute", lambda aws, result, *a, **k: Report(
        [Outcome(roll, "failed", "ThrottlingException: Rate exceeded", "ThrottlingException")]))
    retry = d.reconcile_objects(None, {"TaskDefinition/web"})
    assert retry is not None and retry >= 1.0
