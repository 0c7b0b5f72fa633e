"""The daemon's bookkeeping of rollouts: backoff entries of services, and the fleet daemon's /status.

ECS behaviour relied on is the faithful test AWS's, sourced in tests/test_rollout_e2e.py (Deployment API
reference, rolloutState: a deployment the circuit breaker gave up on is FAILED, with rolloutStateReason).
"""

from __future__ import annotations

import time

from controller import reconcile
from controller.aws.session import Aws
from controller.daemon import fleetloop
from controller.daemon.loop import Daemon
from controller.daemon.metrics import Metrics
from controller.sandbox import faithful
from faultkit import fast_aws  # noqa: F401 - a fixture: the session's moto without a reset
from test_rollout_e2e import running, world  # noqa: F401 - fixtures


def failed_rollout(running, kind=Daemon) -> tuple[Daemon, str]:  # noqa: F811
    """api moves to a revision whose tasks cannot start: its deployment ends FAILED and stays PRIMARY."""
    running.api_image = f"registry/{faithful.FAIL_IMAGE_MARKER}:1"
    running.write()
    settings = reconcile.Settings(environ={"ROLL_DB": running.value}, isolate=True, clusters=(running.cluster,))
    daemon = kind(Aws(), str(running.folder), settings, interval=60, metrics=Metrics(), owner=f"roll-{running.id}")
    daemon.load()
    assert daemon.tick() == "partial"
    service = f"Service/{running.cluster}/api"
    assert service in daemon.backoff.entries and running.deployments == {"api": 1}
    return daemon, service


def test_a_failed_roll_with_nothing_left_to_send_does_not_make_the_daemon_poll_every_second(running):  # noqa: F811
    daemon, service = failed_rollout(running)
    daemon.tick()   # nothing to roll any more: the FAILED deployment is newer than every change
    for entry in daemon.backoff.entries.values():
        entry.retry_at = time.monotonic() - 1   # its backoff is over
    daemon.tick()
    assert running.deployments == {"api": 1}
    assert daemon.status()["objects"]["TaskDefinition/api"]["state"] == "error"   # still shown
    assert daemon.next_time("partial") - time.monotonic() > 30   # the interval, not a retry of nothing


def test_an_events_daemon_retries_a_failed_roll_through_its_task_definition(running):  # noqa: F811
    """--events: a backoff that is over is retried by a reconcile of only its objects; a service is no
    object of the manifests, so its TaskDefinition's rollout is what plans it again."""
    daemon, service = failed_rollout(running)
    daemon.backoff.entries[service].retry_at = time.monotonic() - 1
    due = daemon._due()
    assert "TaskDefinition/api" in due
    daemon.tick(due)
    assert daemon._due() == set()   # not the same retry again at once, for ever
    assert daemon.status()["objects"]["TaskDefinition/api"]["state"] == "error"
    assert running.deployments == {"api": 1}


def test_the_fleet_daemon_shows_a_failed_rollout_on_its_task_definition(running):  # noqa: F811
    """`run` over manifests with Targets is the fleet daemon: a rollout's errors show as the single one's do."""
    daemon, service = failed_rollout(running, fleetloop.factory())
    status = daemon.status()["objects"]["TaskDefinition/api"]
    assert status["state"] == "error" and "FAILED: ECS deployment circuit breaker" in status["last_error"]
    daemon.tick()   # no roll left to send: the FAILED deployment is still shown, from the rollout
    status = daemon.status()["objects"]["TaskDefinition/api"]
    assert status["state"] == "error" and "FAILED: ECS deployment circuit breaker" in status["last_error"]
    assert service not in daemon.backoff.entries


def test_the_fleet_daemon_names_a_targets_services_as_its_plan_does():
    """A target's plan names its services ``Service/CLUSTER/NAME@target`` (``relabel_plan``): the owners too."""
    from types import SimpleNamespace

    from controller.core import ops
    from controller.core.fleet import relabel_plan
    from controller.core.plan import Change, Plan
    from controller.core.state import ActualRollout, ActualService

    op = ops.RollService("prod", "web", "TaskDefinition/web@a-eu", None, "d-1")
    plan = relabel_plan(Plan((Change("Service", "prod/web", "update", (), op),)), "a-eu")
    actual = SimpleNamespace(rollouts={"TaskDefinition/web@a-eu": ActualRollout(
        [ActualService("prod", "web", "ACTIVE"), ActualService("prod", "api", "ACTIVE")])})
    result = SimpleNamespace(results={"a-eu": SimpleNamespace(plan=plan, actual=actual)})
    assert fleetloop._rollout_owners(result) == {"Service/prod/web@a-eu": "TaskDefinition/web@a-eu",
                                                 "Service/prod/api@a-eu": "TaskDefinition/web@a-eu"}


def test_a_follower_shows_a_pending_roll_on_its_task_definition():
    """A replica that does not write (report None) shows what the plan would do: a roll as drift of its rollout."""
    from types import SimpleNamespace

    from controller.core import ops
    from controller.core.plan import Change, FieldChange, Plan
    from controller.daemon.backoff import Backoff
    from controller.daemon.status import Pass, Table

    web = SimpleNamespace(ref="TaskDefinition/web", obj=SimpleNamespace(kind="TaskDefinition", name="web"))
    op = ops.RollService("prod", "web", "TaskDefinition/web", None, "d-1")
    roll = Change("Service", "prod/web", "update", (FieldChange("deployment", "d-1", "(new deployment)"),), op)
    table = Table()
    table.follow(SimpleNamespace(objects=[web]))
    plan = Plan((roll,), in_sync=("TaskDefinition/web",))
    table.record(Pass(plan, None, owners={roll.ref: "TaskDefinition/web"}), Backoff(), 0.0, 0.0)
    assert table.states()["TaskDefinition/web"] == ("TaskDefinition", "drifted")


def test_a_secret_pinned_to_a_version_id_is_no_reason_to_roll():
    """valueFrom ``arn:…:secret:NAME:json-key:version-stage:version-id``: the ECS agent asks GetSecretValue for
    the version id given (amazon-ecs-agent, agent/taskresource/asmsecret/asmsecret.go), and GetSecretValue's
    VersionId selects that one version (Secrets Manager API reference, GetSecretValue; AWSCURRENT only when
    neither VersionId nor VersionStage is given). A pinned version never changes: no reason to roll."""
    from types import SimpleNamespace

    from controller.aws.observe_services import _Reader

    arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/token-AbCdEf"
    body = {"taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/web:1", "containerDefinitions": [
        {"name": "app", "image": "nginx", "secrets": [
            {"name": "PINNED", "valueFrom": f"{arn}:::0f8b6a2e-5c3d-4e1f-9a7b-2c4d6e8f0a1b"},
            {"name": "CURRENT", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf"},
            {"name": "STAGED", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/key-AbCdEf"
                                            ":password:AWSCURRENT:"}]}]}
    ecs = SimpleNamespace(describe_task_definition=lambda taskDefinition: {"taskDefinition": body})
    reader = _Reader(SimpleNamespace(region="us-east-1", client=lambda service, region=None: ecs))
    assert [name for _, _, name in reader._reads(body["taskDefinitionArn"])] == [
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf",
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/key-AbCdEf"]


def test_a_work_queue_resync_enqueues_a_roll_as_its_task_definition(running):  # noqa: F811
    """`run --work-queue`: the resync enqueues an item per object not in sync, and a replica reconciles the
    item's objects (a subset). A roll is no object: it goes as its TaskDefinition, whose rollout plans it."""
    import secrets

    from controller.daemon.workqueue import WorkDaemon

    running.ssm.put_parameter(Name=running.ext, Value=secrets.token_urlsafe(8), Type="SecureString", Overwrite=True)
    settings = reconcile.Settings(environ={"ROLL_DB": running.value}, isolate=True, clusters=(running.cluster,))
    daemon = WorkDaemon(Aws(), str(running.folder), settings, 60.0, Metrics(), owner=f"roll-{running.id}")
    daemon.only, daemon.recorder = (), None
    sent: list = []
    daemon.queue = type("Queue", (), {"send": lambda self, items, units: sent.extend(items)})()
    daemon.load()
    assert daemon.resync_target(None, "test")
    assert [ref for item in sent for ref in item.refs] == ["TaskDefinition/api"]
    assert running.deployments == {}   # a resync writes nothing
    daemon.may_write = lambda: True   # the replica that takes the item holds it
    assert daemon.reconcile_objects(None, set(sent[0].refs)) is None
    assert running.deployments == {"api": 1}
