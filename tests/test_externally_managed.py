"""spec.externallyManaged: a field another writer owns (a CI pipeline's image) is taken from the family's
latest ACTIVE revision, is never a diff, and survives in every revision we register.

The "CI deploy" here does what aws-actions/amazon-ecs-deploy-task-definition does (index.js): it registers
the task-definition file it is given (typically the output of describe-task-definition with a new image
rendered in, response-only fields removed) and tags the new revision only with its own `tags` input, so
the revision carries none of ours.
"""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
import yaml

from controller.cli import main
from controller.core.desired import OWNER_TAG, Context, desire
from controller.core.external import merged
from controller.core.state import ActualTaskDefinition
from controller.core.taskdef import RESPONSE_ONLY
from controller.core.taskdef_diff import task_definition_change
from controller.manifests import loader
from controller.manifests.external import FieldPath, parse
from controller.manifests.schema import schema
from controller.vocab.problems import ManifestError
from faultproxy import FaultProxy

REPO = Path(__file__).resolve().parents[1]
CTX = Context(account="123456789012", region="us-east-1")
MANIFEST_IMAGE = "public.ecr.aws/nginx/nginx:1.27"

TASK = """\
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: web}
spec:
  family: web
  externallyManaged: [%s]
  cpu: "256"
  memory: "512"
  containerDefinitions:
    - name: web
      image: nginx:manifest
      environment: [{name: MODE, value: a}]
    - name: sidecar
      image: envoy:manifest
"""


# --- the merge, pure ------------------------------------------------------------------------------

def body(web: str = "nginx:manifest", sidecar: str = "envoy:manifest", **task: Any) -> dict[str, Any]:
    return {"family": "web", "cpu": "256", "memory": "512", **task, "containerDefinitions": [
        {"name": "web", "image": web, "environment": [{"name": "MODE", "value": "a"}]},
        {"name": "sidecar", "image": sidecar}]}


@pytest.mark.parametrize("paths, expect", [
    ([FieldPath("web", "image")], ("ci:7", "envoy:manifest")),
    ([FieldPath("*", "image")], ("ci:7", "envoy:ci")),
    ([FieldPath("sidecar", "image")], ("nginx:manifest", "envoy:ci")),
    ([], ("nginx:manifest", "envoy:manifest")),
])
def test_the_named_fields_come_from_the_current_revision(paths, expect) -> None:
    want, current = body(), body("ci:7", "envoy:ci")
    out = merged(want, current, tuple(paths))
    assert tuple(c["image"] for c in out["containerDefinitions"]) == expect
    assert want == body() and current == body("ci:7", "envoy:ci")     # neither input is modified


def test_absent_in_the_current_revision_is_absent_and_a_new_container_keeps_the_manifests_value() -> None:
    current = body("ci:7")
    del current["containerDefinitions"][0]["environment"]
    current["containerDefinitions"].pop()                               # the sidecar is new in the manifest
    out = merged(body(), current, (FieldPath("*", "environment"), FieldPath("*", "image")))
    web, sidecar = out["containerDefinitions"]
    assert "environment" not in web and web["image"] == "ci:7" and sidecar["image"] == "envoy:manifest"


def test_a_task_level_field() -> None:
    out = merged(body(), body(cpu="1024"), (FieldPath(None, "cpu"),))
    assert out["cpu"] == "1024" and out["memory"] == "512"


def described(image: str, revision: int, tags: dict[str, str], **task: Any) -> ActualTaskDefinition:
    b = {**body(image, "envoy:manifest", **task), "revision": revision, "status": "ACTIVE",
         "taskDefinitionArn": f"arn:aws:ecs:us-east-1:123456789012:task-definition/web:{revision}"}
    return ActualTaskDefinition("web", b["taskDefinitionArn"], revision, b, tags, owned=True)


def desired_of(tmp_path: Path, paths: str, text: str = TASK):
    f = tmp_path / "td.yaml"
    f.write_text(text % paths)
    (td,) = desire(loader.load(f)).resolve(CTX).task_definitions
    return td


def test_a_ci_revision_on_top_of_ours_is_no_diff_and_not_retagged(tmp_path) -> None:
    td = desired_of(tmp_path, '"containerDefinitions[web].image"')
    ci = described("ci:7", 2, {})                                 # ours was web:1; CI's carries no tag of ours
    assert task_definition_change(td, ci, CTX) is None
    ours = described("ci:7", 3, dict(td.tags))
    assert task_definition_change(td, ours, CTX) is None


def test_without_the_field_named_a_ci_image_is_drift(tmp_path) -> None:
    td = desired_of(tmp_path, "")
    change = task_definition_change(td, described("ci:7", 2, {}), CTX)
    assert change is not None and change.op.body["containerDefinitions"][0]["image"] == "nginx:manifest"
    assert [f.path for f in change.fields] == ["containerDefinitions[web].image"]


def test_a_change_of_ours_registers_with_the_ci_image(tmp_path) -> None:
    td = desired_of(tmp_path, '"containerDefinitions[web].image"', TASK.replace("value: a", "value: b"))
    change = task_definition_change(td, described("ci:7", 2, {}), CTX)
    assert change is not None and change.op.register
    assert [c["image"] for c in change.op.body["containerDefinitions"]] == ["ci:7", "envoy:manifest"]
    assert [f.path for f in change.fields] == ["containerDefinitions[web].environment[MODE].value"]
    assert change.op.tags[OWNER_TAG] == "ecs-secrets"             # our tags go on the revision we register
    assert change.note == "registers web:3, with the externally managed fields of web:2"


def test_the_first_revision_has_the_manifests_value(tmp_path) -> None:
    td = desired_of(tmp_path, '"containerDefinitions[*].image", cpu')
    change = task_definition_change(td, None, CTX)
    assert change is not None and change.action == "create"
    assert change.op.body["containerDefinitions"][0]["image"] == "nginx:manifest"


def test_an_adopted_family_is_still_tagged(tmp_path) -> None:
    """Not ours at all yet (adopt: true): tagging it is the adoption, externally managed fields or not."""
    td = desired_of(tmp_path, '"containerDefinitions[web].image"')
    foreign = described("ci:7", 2, {})
    foreign.owned = False
    change = task_definition_change(td, foreign, CTX)
    assert change is not None and not change.op.register and change.op.tag_arn == foreign.arn


# --- validation, schema ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, container, field", [
    ("containerDefinitions[web].image", "web", "image"),
    ("containerDefinitions[*].image", "*", "image"),
    ("memory", None, "memory"),
])
def test_paths_parse(text, container, field) -> None:
    assert parse(text) == FieldPath(container, field) and str(parse(text)) == text


@pytest.mark.parametrize("path, line, needle", [
    ("containerDefinitions[api].image", 6, "no container 'api' in this task definition (containers: web, sidecar)"),
    ("containerDefinitions[web].imgae", 6, "'imgae' is not a field of a container in ECS; did you mean 'image'?"),
    ("cpuu", 6, "'cpuu' is not a field of the task in ECS; did you mean 'cpu'?"),
    ("containerDefinitions[web].secrets", 6, "cannot be managed elsewhere: the task execution role reads from it"),
    ("containerDefinitions[web].name", 6, "cannot be managed elsewhere"),
    ("executionRoleArn", 6, "cannot be managed elsewhere"),
    ("containerDefinitions", 6, "name the container fields instead"),
    ("containerDefinitions[web].environment[MODE].value", 6, "is not a field path"),
    ("containerDefinitions[].image", 6, "is not a field path"),
])
def test_a_bad_path_is_refused_with_file_line_and_field(tmp_path, path, line, needle) -> None:
    f = tmp_path / "td.yaml"
    f.write_text(TASK % f'"containerDefinitions[web].image", "{path}"')
    with pytest.raises(ManifestError) as exc:
        loader.load(f)
    (problem,) = exc.value.problems
    assert str(problem).startswith(f"{f}:{line}: TaskDefinition/web: spec.externallyManaged[1]: "), str(problem)
    assert needle in str(problem)


def test_the_schema_has_it() -> None:
    full = schema()
    prop = full["$defs"]["TaskDefinitionSpec"]["properties"]["externallyManaged"]
    assert prop["type"] == "array" and "latest ACTIVE" in prop["description"]
    validator = jsonschema.Draft202012Validator(full)
    doc = yaml.safe_load(TASK % '"containerDefinitions[*].image", memory')
    assert not [e.message for e in validator.iter_errors(doc)]
    doc["spec"]["externallyManaged"] = ["containerDefinitions[web]"]   # an editor marks what validate refuses
    assert list(validator.iter_errors(doc))


# --- through the command line, against moto's server --------------------------------------------

@pytest.fixture
def canaries() -> tuple[str, str]:
    return f"canary-{secrets.token_hex(12)}", f"canary-{secrets.token_hex(12)}"


@pytest.fixture
def folder(aws_env, canaries, monkeypatch, tmp_path) -> Path:
    """The documentation scenario, with the web container's image left to CI."""
    monkeypatch.setenv("DB_PASSWORD", canaries[0])
    monkeypatch.setenv("DB_PASSWORD_V2", canaries[1])
    kms = client("kms", aws_env)
    kms.create_alias(AliasName="alias/MyAliasName", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    client("secretsmanager", aws_env).create_secret(Name="payments/stripe-token", SecretString="not-read")
    out = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", out)
    web = out / "web.yaml"
    text = web.read_text()
    assert "  keepRevisions: 5\n" in text and MANIFEST_IMAGE in text
    web.write_text(text.replace("  keepRevisions: 5\n",
                                "  keepRevisions: 5\n  externallyManaged: [\"containerDefinitions[web].image\"]\n"))
    return out


def client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def ci_deploy(url: str, image: str) -> int:
    """Render the latest revision with a new image and register it, as the deploy action does."""
    ecs = client("ecs", url)
    td = ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]
    td["containerDefinitions"][0]["image"] = image
    fields = {k: v for k, v in td.items() if k not in RESPONSE_ONLY}
    return ecs.register_task_definition(**fields)["taskDefinition"]["revision"]


def latest(url: str) -> dict[str, Any]:
    return client("ecs", url).describe_task_definition(taskDefinition="web")["taskDefinition"]


def test_a_ci_image_survives_the_daemon_and_a_secret_change(aws_env, folder, canaries, capsys, monkeypatch) -> None:
    said = []
    code, out = cli(capsys, "reconcile", "-f", str(folder))
    said.append(out)
    assert code == 0, out
    assert latest(aws_env)["containerDefinitions"][0]["image"] == MANIFEST_IMAGE    # the first one: the manifest's
    assert ci_deploy(aws_env, "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:sha-ab12") == 2

    code, out = cli(capsys, "reconcile", "-f", str(folder), "--dry-run", "--detailed-exitcode")
    said.append(out)
    assert code == 0 and "No changes" in out, out
    with FaultProxy(aws_env) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, out = cli(capsys, "run", "-f", str(folder), "--once")
        said.append(out)
        assert code == 0 and proxy.writes() == 0, proxy.calls
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    assert latest(aws_env)["revision"] == 2

    # A secret reference changes: the revision we register has the CI's image, not the manifest's.
    params = folder / "parameters.yaml"
    params.write_text(params.read_text() + "---\n" + json.dumps({
        "apiVersion": "ecs-secrets/v1", "kind": "Parameter", "metadata": {"name": "db-password-v2"},
        "spec": {"name": "/test/database_password_v2", "value": {"fromEnv": "DB_PASSWORD_V2"}}}) + "\n")
    web = folder / "web.yaml"
    web.write_text(web.read_text().replace("valueFrom: /test/database_password\n",
                                           "valueFrom: /test/database_password_v2\n"))
    plan = folder.parent / "plan.json"                   # a saved plan, reviewed, then applied exactly
    code, out = cli(capsys, "reconcile", "-f", str(folder), "--dry-run", "--out", str(plan))
    said += [out, plan.read_text()]
    assert code == 0 and "registers web:3, with the externally managed fields of web:2" in out, out
    assert "sha-ab12" not in out and MANIFEST_IMAGE not in out      # the image is no change of the plan
    code, out = cli(capsys, "reconcile", "-f", str(folder), "--plan", str(plan))
    said.append(out)
    assert code == 0, out
    new = latest(aws_env)
    assert new["revision"] == 3
    assert new["containerDefinitions"][0]["image"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:sha-ab12"
    secrets_ = {s["name"]: s["valueFrom"] for s in new["containerDefinitions"][0]["secrets"]}
    assert secrets_["DATABASE_PASSWORD"] == "/test/database_password_v2"
    tags = client("ecs", aws_env).list_tags_for_resource(resourceArn=new["taskDefinitionArn"])["tags"]
    assert {"key": OWNER_TAG, "value": "ecs-secrets"} in tags
    code, out = cli(capsys, "reconcile", "-f", str(folder), "--dry-run", "--detailed-exitcode")
    said.append(out)
    assert code == 0, out
    assert not any(c in text for c in canaries for text in said)


@pytest.mark.slow  # CI time: 12 deploys and two reconciles; covered again by `-m slow` (README, Testing)
def test_a_rolled_back_ci_revision_is_not_taken_and_many_deploys_keep_the_family_ours(aws_env, folder, capsys) -> None:
    assert cli(capsys, "reconcile", "-f", str(folder))[0] == 0
    for n in range(12):                                   # more deploys than the look-back without the field
        ci_deploy(aws_env, f"web:ci-{n}")
    client("ecs", aws_env).deregister_task_definition(taskDefinition="web:13")   # CI rolls its last deploy back
    code, out = cli(capsys, "reconcile", "-f", str(folder), "--dry-run", "--detailed-exitcode")
    assert code == 0 and "No changes" in out, out
    web = folder / "web.yaml"
    web.write_text(web.read_text().replace("{name: LOG_FORMAT, value: json}", "{name: LOG_FORMAT, value: text}"))
    code, out = cli(capsys, "reconcile", "-f", str(folder))
    assert code == 0, out
    new = latest(aws_env)
    assert new["revision"] == 14 and new["containerDefinitions"][0]["image"] == "web:ci-10"


def test_keep_revisions_never_deregisters_the_ci_revision(aws_env, tmp_path) -> None:
    """keepRevisions deregisters owned revisions only; the CI's, on top of ours, carries no tag of ours."""
    from controller.aws.observe_ecs import read_task_definitions
    from controller.aws.session import Aws

    ecs = client("ecs", aws_env)
    fields = body()
    ecs.register_task_definition(**fields, tags=[{"key": OWNER_TAG, "value": "ecs-secrets"}])
    ecs.register_task_definition(**body("ci:7"))
    text = TASK.replace("  family: web\n", "  family: web\n  keepRevisions: 1\n").replace("value: a", "value: b")
    f = tmp_path / "td.yaml"
    f.write_text(text % '"containerDefinitions[web].image"')
    desired = desire(loader.load(f))
    current = read_task_definitions(Aws(region="us-east-1", endpoint_url=aws_env), desired)["web"]
    assert (current.revision, current.owned, current.owned_revisions) == (2, True, {1})
    change = task_definition_change(desired.resolve(CTX).task_definitions[0], current, CTX, prune=True)
    assert change is not None and change.op.register and change.op.deregister == (1,)
    assert change.op.body["containerDefinitions"][0]["image"] == "ci:7"


class _Family:
    """A stand-in ECS client for one family: revision 1 is ours, ``deploys`` CI revisions sit on top of it."""

    def __init__(self, deploys: int, ours: int | None = 1) -> None:
        self.revisions, self.described, self.ours = list(range(deploys + 1, 0, -1)), [], ours

    def describe_task_definition(self, taskDefinition: str, include: list[str]) -> dict[str, Any]:
        self.described.append(taskDefinition)
        rev = int(taskDefinition.split(":")[1]) if ":" in taskDefinition else self.revisions[0]
        b = {**body(f"ci:{rev}"), "revision": rev,
             "taskDefinitionArn": f"arn:aws:ecs:us-east-1:123456789012:task-definition/web:{rev}"}
        return {"taskDefinition": b, "tags": [{"key": OWNER_TAG, "value": "ecs-secrets"}] if rev == self.ours else []}

    def get_paginator(self, name: str) -> Any:
        arns = [f"arn:aws:ecs:us-east-1:123456789012:task-definition/web:{r}" for r in self.revisions]
        return type("P", (), {"paginate": lambda _self, **kw: [{"taskDefinitionArns": arns}]})()


def test_any_number_of_ci_deploys_keeps_the_family_ours_and_a_daemon_walks_them_once(tmp_path) -> None:
    """A pipeline that deploys ten times a day passes any fixed look-back within days; the family must stay
    ours (else it is blocked as another's), and the walk must not be paid again every pass."""
    from controller.aws.observe_ecs import read_task_definitions

    desired = desire(loader.load(_write(tmp_path, '"containerDefinitions[web].image"')))
    ecs = _Family(deploys=150)
    aws = type("A", (), {"client": lambda _self, service: ecs, "owned_revision": {}})()
    td = read_task_definitions(aws, desired, in_use=object(), revisions=False)["web"]
    assert td.revision == 151 and td.owned
    ecs.described.clear()
    again = read_task_definitions(aws, desired, in_use=object(), revisions=False)["web"]
    assert again.owned and ecs.described == ["web", "web:1"]   # the latest, then the one found ours


def _write(tmp_path: Path, paths: str) -> Path:
    f = tmp_path / "td.yaml"
    f.write_text(TASK % paths)
    return f


def test_a_family_that_is_another_writers_is_walked_once_per_latest_revision(tmp_path) -> None:
    from controller.aws.observe_ecs import read_task_definitions

    desired = desire(loader.load(_write(tmp_path, '"containerDefinitions[web].image"')))
    ecs = _Family(deploys=150, ours=None)
    aws = type("A", (), {"client": lambda _self, service: ecs, "owned_revision": {}})()
    assert not read_task_definitions(aws, desired, in_use=object(), revisions=False)["web"].owned
    assert len(ecs.described) == 151
    ecs.described.clear()
    assert not read_task_definitions(aws, desired, in_use=object(), revisions=False)["web"].owned
    assert ecs.described == ["web"]
    ecs.revisions.insert(0, 152)                          # a new revision: it may be ours, so read again
    ecs.ours, ecs.described = 152, []
    assert read_task_definitions(aws, desired, in_use=object(), revisions=False)["web"].owned
