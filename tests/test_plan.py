"""The pure plan: desired against a hand-made actual state; rendering against golden files."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from controller.core import desired as d, render

from controller.manifests import loader as manifest

from controller.vocab import policy
from controller.core.diff import make_plan
from controller.vocab.sensitive import Sensitive
from controller.core.state import Actual, ActualParameter, ActualRole, ActualTaskDefinition, PruneCandidates

GOLDEN = Path(__file__).parent / "golden"
ACCOUNT, REGION = "123456789012", "us-east-1"
KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:payments/stripe-token-AbCdEf"
OWNER = "ecs-secrets"


@pytest.fixture(scope="module")
def scenario():
    return d.desire(manifest.load("manifests", region=REGION), OWNER)


def ctx() -> d.Context:
    return d.Context(account=ACCOUNT, region=REGION, key_arns={(REGION, "alias/MyAliasName"): KEY},
                     secret_arns={(REGION, "payments/stripe-token"): SECRET})


def values() -> dict[str, Sensitive]:
    return {"db-password": Sensitive("pw-canary-7f3a9"), "log-level": Sensitive("info", secret=False)}


def empty() -> Actual:
    return Actual(ctx=ctx())


def described(body: dict) -> dict:
    """What DescribeTaskDefinition returns for ``body``: defaults filled, units converted, extras added."""
    out = copy.deepcopy(body)
    out.update(cpu="256", memory="512", revision=1, status="ACTIVE", compatibilities=["EC2", "FARGATE"],
               taskDefinitionArn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:1", volumes=[],
               placementConstraints=[], requiresAttributes=[{"name": "ecs.capability.secrets.ssm.environment-variables"}],
               registeredAt="2026-11-29T00:00:00Z", registeredBy=f"arn:aws:iam::{ACCOUNT}:root")
    for c in out["containerDefinitions"]:
        c.update(cpu=0, essential=True, mountPoints=[], volumesFrom=[])
        c["secrets"] = list(reversed(c["secrets"]))
        c["portMappings"] = [{**p, "hostPort": p["containerPort"], "protocol": "tcp"} for p in c["portMappings"]]
    return out


def in_sync(desired) -> Actual:
    actual = empty()
    m = desired.resolve(actual.ctx)
    for obj in (p.obj for p in m.of("Parameter")):
        tags_key = obj.spec.kmsKeyId or ("alias/aws/ssm" if obj.spec.type == "SecureString" else None)
        actual.parameters[(REGION, obj.spec.name)] = ActualParameter(
            obj.spec.name, REGION, obj.spec.type, tags_key, "Standard", obj.spec.description, 1, owned=True,
            value=values().get(obj.name))
    want = m.get("ExecutionRole/web-exec")
    role = want.obj
    actual.roles[role.spec.roleName] = ActualRole(
        role.spec.roleName, f"arn:aws:iam::{ACCOUNT}:role/{role.spec.roleName}", "/", policy.trust_policy(ACCOUNT),
        role.spec.description, d.tags_of(role, OWNER),
        inline={"ecs-secrets": want.inline}, managed=set(role.spec.managedPolicyArns),
        owned=True)
    td = m.get("TaskDefinition/web")
    body = dict(td.body)
    actual.task_definitions["web"] = ActualTaskDefinition("web", "arn:...:web:1", 1, described(body),
                                                          d.tags_of(td.obj, OWNER), owned=True, active=[1],
                                                          owned_revisions={1})
    return actual


def plan_for(desired, actual):
    return make_plan(desired.resolve(actual.ctx), actual, values())


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_empty_account_creates_everything_golden_text(scenario):
    plan = plan_for(scenario, empty())
    assert plan.summary() == {"create": 5, "update": 0, "delete": 0}
    check_golden("create.txt", render.text(plan) + "\n")


def test_empty_account_creates_everything_golden_json(scenario):
    check_golden("create.json", render.as_json(plan_for(scenario, empty())) + "\n")


def test_no_secret_in_rendered_plan(scenario):
    plan = plan_for(scenario, empty())
    assert "pw-canary-7f3a9" not in render.text(plan) + render.as_json(plan)


def test_apply_order_is_parameters_roles_task_definitions(scenario):
    kinds = [c.kind for c in plan_for(scenario, empty()).ordered()]
    assert kinds == ["Parameter"] * 3 + ["ExecutionRole", "TaskDefinition"]
    td = next(c for c in plan_for(scenario, empty()).changes if c.kind == "TaskDefinition")
    assert set(td.depends_on) == {"ExecutionRole/web-exec", "Parameter/db-password", "Parameter/api-key",
                                  "Parameter/log-level"}


def test_in_sync_state_plans_nothing(scenario):
    plan = plan_for(scenario, in_sync(scenario))
    assert plan.changes == () and plan.blockers == ()
    assert render.text(plan) == "No changes. Everything is in sync."


def test_value_drift_is_a_sensitive_update(scenario):
    actual = in_sync(scenario)
    actual.parameters[(REGION, "/test/database_password")].value = Sensitive("someone-else-wrote-this")
    (change,) = plan_for(scenario, actual).changes
    assert (change.ref, change.action) == ("Parameter/db-password", "update")
    assert [(f.path, f.sensitive) for f in change.fields] == [("value", True)]
    assert "someone-else-wrote-this" not in render.as_json(plan_for(scenario, actual))
    out = json.loads(render.as_json(plan_for(scenario, actual)))
    assert out["changes"][0]["fields"] == [{"path": "value", "before": "(sensitive value)", "after": "(sensitive value)"}]


def test_generated_value_is_never_compared(scenario):
    actual = in_sync(scenario)
    assert actual.parameters[(REGION, "/test/api_key")].value is None
    assert plan_for(scenario, actual).changes == ()


def test_inline_policy_drift_is_planned_by_meaning(scenario):
    actual = in_sync(scenario)
    doc = actual.roles["ecsTaskExecutionRole-web"].inline["ecs-secrets"]
    doc["Statement"] = list(reversed(doc["Statement"]))  # same meaning
    assert plan_for(scenario, actual).changes == ()
    doc["Statement"][0]["Resource"] = ["*"]
    (change,) = plan_for(scenario, actual).changes
    assert change.ref == "ExecutionRole/web-exec" and change.op.update_inline


def test_out_of_band_revision_is_planned(scenario):
    actual = in_sync(scenario)
    actual.task_definitions["web"].body["containerDefinitions"][0]["image"] = "evil:latest"
    (change,) = plan_for(scenario, actual).changes
    assert change.ref == "TaskDefinition/web" and change.op.register
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("containerDefinitions[web].image", "evil:latest", "public.ecr.aws/nginx/nginx:1.27")]


def test_same_region_arn_and_name_are_no_diff(scenario):
    actual = in_sync(scenario)
    secrets = actual.task_definitions["web"].body["containerDefinitions"][0]["secrets"]
    for s in secrets:
        if s["valueFrom"] == "/test/database_password":
            s["valueFrom"] = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/test/database_password"
    assert plan_for(scenario, actual).changes == ()


def test_not_owned_blocks_the_object_and_its_dependents(scenario):
    actual = in_sync(scenario)
    actual.parameters[(REGION, "/test/database_password")].owned = False
    actual.task_definitions["web"].body["containerDefinitions"][0]["image"] = "other"
    plan = plan_for(scenario, actual)
    refs = {b.ref: b for b in plan.blockers}
    assert "adopt: true" in refs["Parameter/db-password"].reason and refs["Parameter/db-password"].terminal
    assert "TaskDefinition/web" in refs and plan.changes == ()


def test_missing_kms_key_blocks_the_parameter(scenario):
    actual = empty()
    actual.missing[("kms", REGION, "alias/MyAliasName")] = "KMS key alias/MyAliasName does not exist"
    plan = plan_for(scenario, actual)
    # the role too: derived without the key, its policy would drop the grant running tasks need
    assert {b.ref for b in plan.blockers} == {"Parameter/api-key", "ExecutionRole/web-exec", "TaskDefinition/web"}
    assert {c.ref for c in plan.changes} == {"Parameter/db-password", "Parameter/log-level"}


def test_keep_revisions_deregisters_only_owned_old_revisions(scenario):
    actual = in_sync(scenario)
    td = actual.task_definitions["web"]
    td.active, td.owned_revisions = [9, 8, 7, 6, 5, 4, 3], {9, 8, 7, 6, 5, 3}
    assert plan_for(scenario, actual).changes == ()   # without --prune nothing is deregistered
    actual.prune = PruneCandidates()                  # a run with --prune
    (change,) = plan_for(scenario, actual).changes
    assert change.op.deregister == (3,) and not change.op.register


def test_blocking_a_change_keeps_what_else_the_plan_says():
    """The daemon holds back changes with ``reconcile.block``; a plan made with --skip-values must still
    say which values it did not compare afterwards."""
    from controller import reconcile
    from controller.core.plan import Change, Plan
    a = Change("Parameter", "a", "update", ())
    b = Change("TaskDefinition", "b", "update", (), depends_on=("Parameter/a",))
    plan = Plan((a, b), not_compared=("Parameter/a",))
    held = reconcile.block(plan, {"Parameter/a": "waiting"})
    assert held.not_compared == ("Parameter/a",)
    assert {x.ref for x in held.blockers} == {"Parameter/a", "TaskDefinition/b"} and not held.changes
