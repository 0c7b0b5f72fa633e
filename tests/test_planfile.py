"""The saved plan's pure part: what the file holds, and when a plan is stale. No AWS."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.core import planfile
from controller.core.desired import Context, desire
from controller.core.diff import make_plan
from controller.core.state import Actual, ActualParameter, ActualTaskDefinition
from controller.manifests import loader
from controller.vocab.sensitive import Sensitive

DOCS = """\
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: level}
spec: {name: /app/level, type: String, description: the log level, value: {literal: LITERAL}}
---
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: pw}
spec: {name: /app/pw, value: {fromEnv: PW}}
"""
REORDERED = """\
# the same objects, other order and layout
apiVersion: ecs-secrets/v1
kind: Parameter
metadata:
  name: pw
spec:
  value:
    fromEnv: PW
  name: /app/pw
---
kind: Parameter
apiVersion: ecs-secrets/v1
metadata: {name: level}
spec:
  value: {literal: LITERAL}
  description: the log level
  type: String
  name: /app/level
"""


def desired(tmp_path, text: str, name: str = "m.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return desire(loader.load(str(path), region="us-east-1"))


def saved(tmp_path, version: int = 4) -> planfile.SavedPlan:
    want = desired(tmp_path, DOCS.replace("LITERAL", "info"))
    actual = Actual(ctx=Context(account="123456789012", region="us-east-1"))
    actual.parameters[("us-east-1", "/app/pw")] = ActualParameter("/app/pw", "us-east-1", "SecureString",
                                                                  "alias/aws/ssm", "Standard", None, version,
                                                                  owned=True, value=Sensitive("old-pw-canary"))
    resolved = want.resolve(actual.ctx)
    plan = make_plan(resolved, actual, {"pw": Sensitive("new-pw-canary"), "level": Sensitive("info", False)})
    return planfile.save(plan, actual, resolved, planfile.Options("ecs-secrets", False, 10))


def test_the_manifests_digest_is_of_their_meaning_without_literal_values(tmp_path):
    one = planfile.manifests_digest(desired(tmp_path, DOCS.replace("LITERAL", "info"), "a.yaml"))
    assert one == planfile.manifests_digest(desired(tmp_path, REORDERED.replace("LITERAL", "info"), "b.yaml"))
    # a literal value is no input of the digest (the plan, compared too, shows it)
    assert one == planfile.manifests_digest(desired(tmp_path, DOCS.replace("LITERAL", "debug"), "c.yaml"))
    assert one != planfile.manifests_digest(desired(tmp_path, DOCS.replace("LITERAL", "info").replace(
        "the log level", "the level"), "d.yaml"))
    assert one != planfile.manifests_digest(desired(tmp_path, DOCS.replace("LITERAL", "info").replace(
        "fromEnv: PW", "fromEnv: PASSWORD"), "e.yaml"))


def test_a_saved_plan_reads_back_as_written_and_holds_no_value(tmp_path):
    plan = saved(tmp_path)
    text = planfile.to_json(plan)
    assert "canary" not in text
    assert planfile.from_json(text, "p.json") == plan
    assert plan.observed == {"Parameter/pw": {"version": 4}}
    assert planfile.stale(plan, planfile.from_json(text, "p.json")) == []


@pytest.mark.parametrize("text", ["", "[]", "{}", '{"format": "ecs-secrets-plan/0"}',
                                  '{"format": "ecs-secrets-plan/1", "plan": {}}'])
def test_anything_else_is_no_saved_plan(text):
    with pytest.raises(planfile.PlanFileError, match="saved plan"):
        planfile.from_json(text, "p.json")


@pytest.mark.parametrize("edit, reason", [
    (lambda s: replace(s, manifests="sha256:other"), "the manifests differ"),
    (lambda s: replace(s, account="210987654321"), "made for account 123456789012 in us-east-1, not 210987654321"),
    (lambda s: replace(s, observed={"Parameter/pw": {"version": 5}}),
     "Parameter/pw changed in AWS since the plan was made (version 4 then, version 5 now)"),
    (lambda s: replace(s, observed={**s.observed, "TaskDefinition/web": {"latestRevision": "arn:…:web:2"}}),
     "TaskDefinition/web changed in AWS since the plan was made (absent then, latestRevision arn:…:web:2 now)"),
    (lambda s: replace(s, plan={**s.plan, "changes": s.plan["changes"][:1]}),
     "Parameter/pw: the plan had it (update); now there is nothing to do"),
    (lambda s: replace(s, plan={**s.plan, "changes": [{**c, "action": "create"} for c in s.plan["changes"]]}),
     "Parameter/pw: the change differs now (update then, create now)"),
])
def test_what_makes_a_plan_stale(tmp_path, edit, reason):
    """``edit``: what the plan made again at apply time finds instead."""
    plan = saved(tmp_path)
    assert reason in "\n".join(planfile.stale(plan, edit(plan)))


def test_other_options_are_named():
    made = planfile.Options("ecs-secrets", True, 3, ("prod",))
    assert planfile.options_differ(made, made) == []
    assert planfile.options_differ(made, planfile.Options("team-a", False, 3, ())) == [
        "--owner: the plan was made with ecs-secrets, this command gives team-a",
        "--prune: the plan was made with true, this command gives false",
        "--cluster: the plan was made with prod, this command gives none"]


def test_only_the_changed_parameters_versions_are_kept(tmp_path):
    """The version of a parameter is kept only where the text plan shows it: beside its change."""
    want = desired(tmp_path, DOCS.replace("LITERAL", "info"))
    actual = Actual(ctx=Context(account="123456789012", region="us-east-1"))
    actual.parameters[("us-east-1", "/app/pw")] = ActualParameter("/app/pw", "us-east-1", "SecureString",
                                                                  "alias/aws/ssm", "Standard", None, 7, owned=True,
                                                                  value=Sensitive("same-pw-canary"))
    actual.task_definitions["x"] = ActualTaskDefinition("x", "arn", 1, {}, {})
    resolved = want.resolve(actual.ctx)
    plan = make_plan(resolved, actual, {"pw": Sensitive("same-pw-canary"), "level": Sensitive("info", False)})
    assert [c.ref for c in plan.changes] == ["Parameter/level"]
    assert planfile.observed(plan, actual, resolved) == {}


def test_the_apply_report_names_each_result_and_what_aws_assigned():
    """Rendered from outcomes alone (pure); the CLI tests cover the same against moto's server."""
    from types import SimpleNamespace as Outcome

    from controller.core import render
    from controller.core.plan import Change, Plan
    p, td = Change("Parameter", "pw", "update", ()), Change("TaskDefinition", "web", "create", ())
    role = Change("ExecutionRole", "web-exec", "update", ())
    plan = Plan((p, role, td))
    outcomes = [Outcome(change=p, result="applied", error=None, assigned={"version": 3}),
                Outcome(change=role, result="failed", error="AccessDenied: not allowed", assigned={}),
                Outcome(change=td, result="blocked", error="depends on ExecutionRole/web-exec", assigned={})]
    assert render.applied_text(outcomes).splitlines() == [
        "  ~ Parameter/pw: updated, version 3",
        "  ! ExecutionRole/web-exec: update failed: AccessDenied: not allowed",
        "  ! TaskDefinition/web: create blocked: depends on ExecutionRole/web-exec",
        "Apply complete: 1 applied, 1 failed, 1 blocked."]
    doc = render.applied_dict(plan, outcomes)
    assert [(c["result"], c["assigned"], c.get("error")) for c in doc["changes"]] == [
        ("applied", {"version": 3}, None), ("failed", {}, "AccessDenied: not allowed"),
        ("blocked", {}, "depends on ExecutionRole/web-exec")]
    assert doc["applied"] == {"applied": 1, "failed": 1, "blocked": 1, "skipped": 0}
