"""spec.rollout, pure: the manifest field, which services roll and why, how the plan shows them, the
controller's policy for them and how the daemon counts them. No AWS: the decision is a function of data."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from controller.core import ops, planfile, render, rollout
from controller.core.desired import Context
from controller.core.permissions import Target, policy_for
from controller.core.plan import Blocker, Change, FieldChange, Plan
from controller.core.state import Actual, ActualRollout, ActualService, ActualTaskDefinition
from controller.core.validate import load as load_sources
from controller.daemon.metrics import Metrics, rollout_result
from controller.manifests.models import Rollout
from controller.vocab.problems import ManifestError

T0 = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=timezone.utc).timestamp()


def at(offset: float = 0.0, **delta) -> float:
    return T0 + offset + timedelta(**delta).total_seconds()


def observed(services, changed) -> ActualRollout:
    """As observe gives it: each change in epoch seconds, and as the plan shows it."""
    shown = {k: datetime.fromtimestamp(v, timezone.utc).isoformat(timespec="seconds") for k, v in changed.items()}
    return ActualRollout(list(services), dict(changed), shown=shown)
DB = ("ssm", "us-east-1", "/app/db")
TOKEN = ("secret", "us-east-1", "app/token")


def td(**rollout_fields):
    spec = {"services": ["prod/web"], **rollout_fields}
    return SimpleNamespace(ref="TaskDefinition/web", family="web", rollout=Rollout(**spec))


def service(primary_at=T0, reads=(DB, TOKEN), runs="arn:aws:ecs:us-east-1:1:task-definition/web:4", **kw):
    return ActualService("prod", kw.pop("name", "web"), kw.pop("status", "ACTIVE"), kw.pop("controller", "ECS"), runs,
                         "ecs-svc/1", primary_at, tuple(reads))


def param_change(name="/app/db", write=True) -> Change:
    op = ops.PutParameter(name, "us-east-1", "SecureString", None, "Standard", None, {}, None, write_value=write,
                          create=False)
    return Change("Parameter", "db", "update", (FieldChange("value", 1, 2, True),), op)


def decide(svc, changed=None, written=None, registering=None, latest="arn:aws:ecs:us-east-1:1:task-definition/web:4",
           **rollout_fields):
    return rollout.decide(td(**rollout_fields), svc, observed([svc], changed or {}), written or {}, registering,
                          latest, 4)


# --- the decision ------------------------------------------------------------------------------

@pytest.mark.parametrize(("changed", "rolls"), [
    ({}, False),                                                      # nothing it reads ever changed (known)
    ({DB: T0 - timedelta(minutes=5).total_seconds()}, False),                         # changed before the deployment started
    ({DB: at(0, seconds=1)}, True),                          # changed after: its tasks hold the old value
    ({DB: T0 - timedelta(days=1).total_seconds(), TOKEN: at(0, hours=1)}, True),
    ({("ssm", "us-east-1", "/other"): at(0, hours=1)}, False),   # a secret it does not read
])
def test_a_service_rolls_when_a_secret_it_reads_changed_after_its_primary_deployment(changed, rolls):
    change = decide(service(), changed)
    assert (change is not None) == rolls
    if change:
        assert change.kind == "Service" and change.name == "prod/web" and change.ref == "Service/prod/web"
        assert change.op.family is None and change.op.primary == "ecs-svc/1"   # forceNewDeployment


def test_several_secrets_changed_at_once_make_one_change_naming_the_latest():
    change = decide(service(), {DB: at(0, minutes=1), TOKEN: at(0, minutes=2)})
    assert change.note == "secret app/token and 1 more changed 2026-03-01T12:02:00+00:00"


def test_a_date_to_the_whole_second_is_taken_at_its_end_so_a_roll_is_never_lost():
    """Deployment at 12:00:00.250; a secret dated 12:00:00 (no fraction) may have changed at 12:00:00.900."""
    assert decide(service(), {TOKEN: float(int(T0))}) is not None
    assert decide(service(), {TOKEN: int(T0) + 0.000001}) is None


def test_our_own_write_in_this_plan_rolls_the_readers_after_it():
    change = decide(service(), written={DB: "Parameter/db"})
    assert change.depends_on == ("Parameter/db",) and "Parameter/db is written by this plan" in change.note
    assert decide(service(reads=(TOKEN,)), written={DB: "Parameter/db"}) is None


def test_on_secret_change_false_ignores_secrets():
    assert decide(service(), {DB: at(0, hours=1)}, onSecretChange=False) is None


def test_update_service_moves_to_the_revision_this_plan_registers_once_it_is_registered():
    registering = Change("TaskDefinition", "web", "update", (), ops.PutTaskDefinition("web", {}, {}))
    change = decide(service(), {DB: at(0, hours=1)}, registering=registering, updateService=True)
    assert change.op.family == "web" and change.depends_on == ("TaskDefinition/web",)
    assert change.fields == (FieldChange("taskDefinition", "web:4", "web:5"),)
    assert change.note.startswith("moves to web:5; secret ")   # one call: the move starts new tasks too


def test_update_service_moves_a_service_left_on_an_older_revision_by_a_crash():
    change = decide(service(runs="arn:aws:ecs:us-east-1:1:task-definition/web:3"), updateService=True)
    assert change.op.family == "web" and change.note == "moves to web:4" and change.depends_on == ()
    assert decide(service(runs="arn:aws:ecs:us-east-1:1:task-definition/web:3")) is None   # not asked to


def plan_with(actual_services, changes=(), blockers=()):
    desired = SimpleNamespace(task_definitions=[td(maxConcurrent=3)])
    actual = Actual(Context("1", "us-east-1"))
    actual.task_definitions["web"] = ActualTaskDefinition("web", "arn:aws:ecs:us-east-1:1:task-definition/web:4", 4,
                                                          {}, {})
    actual.rollouts["TaskDefinition/web"] = observed(actual_services, {DB: at(0, hours=1)})
    return rollout.add(Plan(tuple(changes), tuple(blockers)), desired, actual)


def test_add_plans_each_service_once_and_reports_the_rest():
    plan = plan_with([service(name="web"), service(name="gone", status="MISSING"),
                      service(name="cd", controller="CODE_DEPLOY"), service(name="new", primary_at=at(0, days=1))])
    assert [c.ref for c in plan.changes] == ["Service/prod/web"]
    assert plan.changes[0].op.max_concurrent == 3 and plan.changes[0].op.rollout == "TaskDefinition/web"
    assert [b.ref for b in plan.blockers] == ["Service/prod/cd"] and "CODE_DEPLOY" in plan.blockers[0].reason
    assert plan.in_sync == ("Service/prod/new",)   # a deleted service has nothing to roll, and is not in sync either


def test_a_roll_that_depends_on_a_parameter_blocked_later_is_blocked_with_it():
    """The daemon blocks an object whose value cannot be read (reconcile.block): its readers' rolls wait too."""
    from controller.reconcile import block
    plan = plan_with([service()], changes=[param_change()])
    assert plan.changes[-1].depends_on == ("Parameter/db",)
    held = block(plan, {"Parameter/db": "no value"})
    assert held.changes == () and any(b.ref == "Service/prod/web" and b.dependent for b in held.blockers)


def test_a_blocked_task_definition_holds_its_services_back():
    plan = plan_with([service()], blockers=[Blocker("TaskDefinition/web", "not ours")])
    assert plan.changes == ()


# --- the plan, as people and machines read it ----------------------------------------------------

def test_the_plan_shows_a_roll_and_counts_it_apart():
    plan = plan_with([service()], changes=[param_change()])
    text = render.text(plan)
    assert "  ~ Service prod/web will roll (secret /app/db changed 2026-03-01T13:00:00+00:00; Parameter/db is " \
           "written by this plan)" in text
    assert text.rstrip().endswith("Plan: 0 to create, 1 to update, 0 to delete, 1 service(s) to roll.")
    doc = render.as_dict(plan)
    assert [(c["kind"], c["name"], c["action"]) for c in doc["changes"]] == [
        ("Parameter", "db", "update"), ("Service", "prod/web", "update")]
    assert doc["summary"] == {"create": 0, "update": 1, "delete": 0, "roll": 1}
    assert render.as_dict(Plan(()))["summary"] == {"create": 0, "update": 0, "delete": 0}   # as before, without rolls


def test_a_saved_plan_goes_stale_when_a_service_deployed_since():
    def saved(primary: str):
        actual = Actual(Context("1", "us-east-1"))
        svc = ActualService("prod", "web", "ACTIVE", primary=primary, primary_created=T0)
        actual.rollouts["TaskDefinition/web"] = ActualRollout([svc])
        desired = SimpleNamespace(task_definitions=[], roles=[], objects=())
        return planfile.SavedPlan("1", "us-east-1", "sha256:x", planfile.Options("o", False, 10), {"changes": []},
                                  planfile.observed(Plan(()), actual, desired))
    reasons = planfile.stale(saved("ecs-svc/1"), saved("ecs-svc/2"))
    assert reasons == ["Service/prod/web changed in AWS since the plan was made (primaryDeployment ecs-svc/1 then, "
                       "primaryDeployment ecs-svc/2 now)"]
    assert planfile.stale(saved("ecs-svc/1"), saved("ecs-svc/1")) == []


# --- the manifest field ------------------------------------------------------------------------

MANIFEST = """apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {{name: {name}}}
spec:
  family: {name}
  containerDefinitions: [{{name: app, image: nginx, memory: 128}}]
  rollout: {rollout}
"""


@pytest.mark.parametrize(("rollout_yaml", "message"), [
    ("{services: [prod/web], discover: true}", "give services: [CLUSTER/SERVICE, ...] or discover: true"),
    ("{}", "give services: [CLUSTER/SERVICE, ...] or discover: true"),
    ("{services: [web]}", "'web' is not CLUSTER/SERVICE"),
    ("{services: [prod/web], maxConcurrent: 0}", "spec.rollout.maxConcurrent"),
    ("{services: [prod/web], onSecretChange: 'yes'}", "spec.rollout.onSecretChange"),
    ("{services: [prod/web], surge: 2}", "spec.rollout.surge"),
])
def test_a_bad_rollout_is_refused_with_file_line_and_field(tmp_path, rollout_yaml, message):
    path = tmp_path / "web.yaml"
    path.write_text(MANIFEST.format(name="web", rollout=rollout_yaml))
    with pytest.raises(ManifestError) as caught:
        load_sources(str(path), "us-east-1")
    text = "\n".join(str(p) for p in caught.value.problems)
    assert message in text and f"{path}:7" in text and "TaskDefinition/web" in text


def test_one_service_in_two_rollouts_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text(MANIFEST.format(name="a", rollout="{services: [prod/web]}") + "---\n"
                                     + MANIFEST.format(name="b", rollout="{services: [prod/api, prod/web]}"))
    with pytest.raises(ManifestError) as caught:
        load_sources(str(tmp_path), "us-east-1")
    assert "spec.rollout.services[1]: prod/web is in the rollout of TaskDefinition/a" in str(caught.value.problems[0])


def test_rollout_is_not_sent_to_ecs_and_its_defaults(tmp_path):
    (tmp_path / "a.yaml").write_text(MANIFEST.format(name="a", rollout="{discover: true}"))
    desired = load_sources(str(tmp_path), "us-east-1")
    (want,) = desired.task_definitions
    assert "rollout" not in want.fields
    assert (want.rollout.onSecretChange, want.rollout.updateService, want.rollout.maxConcurrent) == (True, False, 1)


def test_the_schema_has_rollout():
    from controller.manifests.schema import schema
    doc = schema()
    assert "rollout" in doc["$defs"]["TaskDefinitionSpec"]["properties"]
    assert set(doc["$defs"]["Rollout"]["properties"]) == {"services", "discover", "onSecretChange", "updateService",
                                                         "maxConcurrent"}


# --- the controller's own policy -----------------------------------------------------------------

def _statements(tmp_path, rollout_yaml, clusters=()):
    (tmp_path / "a.yaml").write_text(MANIFEST.format(name="a", rollout=rollout_yaml))
    desired = load_sources(str(tmp_path), "us-east-1")
    doc = policy_for(desired, Target("123456789012", "us-east-1", clusters=clusters))
    return {s["Sid"]: s for s in doc["Statement"]}


def test_controller_policy_grants_update_service_on_the_named_services_only(tmp_path):
    sids = _statements(tmp_path, "{services: [prod/web, prod/api]}")
    # both ARN formats (ECS Developer Guide, "Amazon Resource Names (ARNs) and IDs": the long one names the cluster)
    assert sids["RollTheNamedServices"]["Resource"] == sorted(
        f"arn:aws:ecs:us-east-1:123456789012:service/{r}" for r in ("prod/web", "web", "prod/api", "api"))
    assert sids["RollTheNamedServices"]["Action"] == ["ecs:DescribeServices", "ecs:UpdateService"]
    assert not any("ClusterWide" in sid for sid in sids)
    assert "ecs:ListServices" not in json.dumps(sids)


def test_controller_policy_goes_cluster_wide_only_for_discover_and_says_so(tmp_path):
    sids = _statements(tmp_path, "{discover: true}")
    wide = sids["RollDiscoveredServicesClusterWideForDiscover"]
    assert wide["Resource"] == ["arn:aws:ecs:us-east-1:123456789012:service/*"]
    assert {"ecs:ListClusters", "ecs:ListServices"} <= set(sids["ListClustersAndServicesSupportOnlyAllResources"]["Action"])
    narrowed = _statements(tmp_path, "{discover: true}", clusters=("prod",))
    assert narrowed["RollDiscoveredServicesClusterWideForDiscover"]["Resource"] == [
        "arn:aws:ecs:us-east-1:123456789012:service/prod/*"]
    assert "ecs:ListClusters" not in narrowed["ListClustersAndServicesSupportOnlyAllResources"]["Action"]


# --- metrics -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("result", "code", "assigned", "label"), [
    ("applied", None, {"rolloutState": "COMPLETED", "seconds": 3.0}, "completed"),
    ("applied", None, {"rolloutState": "IN_PROGRESS", "seconds": 1.0}, "not_followed"),
    ("failed", "RolloutFailed", {"rolloutState": "FAILED", "seconds": 9.0}, "failed"),
    ("failed", "RolloutTimeout", {"seconds": 900.0}, "timeout"),
    ("skipped", "ServiceGone", {}, "gone"),
    ("failed", "AccessDeniedException", {}, "error"),
    ("blocked", None, {}, "blocked"),
])
def test_rollouts_are_counted_by_how_they_ended_and_timed(result, code, assigned, label):
    outcome = SimpleNamespace(result=result, code=code, assigned=assigned)
    assert rollout_result(outcome) == label
    metrics = Metrics()
    metrics.rolled(outcome)
    page = metrics.exposition().decode()
    assert f'ecs_secrets_rollouts_total{{result="{label}"}} 1.0' in page
    assert ("ecs_secrets_rollout_duration_seconds_count 1.0" in page) == ("seconds" in assigned)


def test_a_discovered_service_that_moved_to_another_family_is_rolled_once_by_that_familys_rollout():
    """discover finds a service by any deployment of the family (inuse); one whose PRIMARY runs another family
    still drains an old deployment of ours. It belongs to the rollout of the family it runs: rolled once, by
    that rollout, and never moved back (UpdateService API reference: a taskDefinition starts a new deployment)."""
    web = SimpleNamespace(ref="TaskDefinition/web", family="web",
                          rollout=Rollout(discover=True, updateService=True))
    web2 = SimpleNamespace(ref="TaskDefinition/web2", family="web2", rollout=Rollout(discover=True))
    moved = service(name="moved", runs="arn:aws:ecs:us-east-1:1:task-definition/web2:1")
    actual = Actual(Context("1", "us-east-1"))
    for family in ("web", "web2"):
        actual.task_definitions[family] = ActualTaskDefinition(
            family, f"arn:aws:ecs:us-east-1:1:task-definition/{family}:4", 4, {}, {})
        actual.rollouts[f"TaskDefinition/{family}"] = observed([moved], {DB: at(0, hours=1)})
    plan = rollout.add(Plan(()), SimpleNamespace(task_definitions=[web, web2]), actual)
    assert [(c.ref, c.op.rollout, c.op.family) for c in plan.changes] == \
        [("Service/prod/moved", "TaskDefinition/web2", None)]
