"""Saved plans, planning without values, and what an apply did: the CLI against moto's server over HTTP.

AWS behaviour these tests lean on (moto mirrors it):
- PutParameter answers ``{"Version": N, "Tier": …}``, N the new version, and every overwrite adds one
  (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html, Response Syntax);
- RegisterTaskDefinition answers the full ``taskDefinition``, with its ``taskDefinitionArn`` and ``revision``
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RegisterTaskDefinition.html, Response Elements);
- DescribeTaskDefinition of a bare family describes its latest ACTIVE revision
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeTaskDefinition.html).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from pathlib import Path

import boto3
import pytest

from controller.cli import main
from faultproxy import FaultProxy

MANIFESTS = """\
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: db-password}
spec:
  name: /app/db_password
  description: the database password
  value: {fromEnv: APP_DB_PASSWORD}
---
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: token}
spec:
  name: /app/token
  value: {fromFile: TOKEN_FILE}
---
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: app-exec}
spec: {roleName: app-exec}
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: app}
spec:
  family: app
  executionRole: app-exec
  requiresCompatibilities: [EC2]
  containerDefinitions:
    - name: app
      image: nginx:1.27
      memory: 256
      secrets:
        - {name: DB_PASSWORD, valueFrom: /app/db_password}
        - {name: TOKEN, valueFrom: /app/token}
"""


class App:
    """The manifests above in a folder, their two secret values (random canaries) in the environment and a file."""

    def __init__(self, tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.url, self.monkeypatch = url, monkeypatch
        self.folder = tmp_path / "m"
        self.folder.mkdir()
        self.token_file = tmp_path / "token"
        self.manifest = self.folder / "app.yaml"
        self.manifest.write_text(MANIFESTS.replace("TOKEN_FILE", str(self.token_file)))
        self.plan = tmp_path / "plan.json"
        # odd lengths, so that a length in the plan file cannot be mistaken for anything else
        self.password = "pw-" + secrets.token_urlsafe(28)
        self.token = "tok-" + secrets.token_urlsafe(25)
        monkeypatch.setenv("APP_DB_PASSWORD", self.password)
        self.token_file.write_text(self.token + "\n")

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1")

    def value(self, name: str) -> str:
        return self.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]

    def version(self, name: str) -> int:
        return self.client("ssm").get_parameter(Name=name)["Parameter"]["Version"]

    def overwrite(self, name: str, value: str) -> None:
        self.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)

    def latest(self) -> dict:
        return self.client("ecs").describe_task_definition(taskDefinition="app")["taskDefinition"]

    def canaries(self) -> list[str]:
        return [self.password, self.token]


@pytest.fixture
def app(aws_env, tmp_path, monkeypatch) -> App:
    return App(tmp_path, aws_env, monkeypatch)


@pytest.fixture
def proxy(aws_env, monkeypatch):
    """Every request of the CLI goes through a counting proxy, so that a test can prove nothing was written."""
    with FaultProxy(aws_env) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        yield p


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def encodings(value: str) -> set[str]:
    """Every form in which a value could leak: as it is, base64 (both alphabets, with and without padding), hashes."""
    raw = value.encode()
    forms = {value}
    for b64 in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        forms |= {b64.decode(), b64.decode().rstrip("=")}
    for name in ("md5", "sha1", "sha256", "sha512"):
        digest = hashlib.new(name, raw)
        forms |= {digest.hexdigest(), base64.b64encode(digest.digest()).decode()}
    return forms


def assert_no_leak(text: str, canaries: list[str]) -> None:
    for canary in canaries:
        leaked = [form for form in encodings(canary) if form in text]
        assert not leaked, "a secret value, or an encoding or hash of it, was printed or written"


def assert_holds_no_secret(text: str, canaries: list[str]) -> None:
    """A plan file: no value, no encoding or hash of one, and no length."""
    assert_no_leak(text, canaries)
    numbers, keys = [], []

    def walk(node):
        if isinstance(node, dict):
            keys.extend(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, int) and not isinstance(node, bool):
            numbers.append(node)
    walk(json.loads(text))
    assert not {len(c) for c in canaries} & set(numbers), "the length of a secret value is in the plan file"
    assert not [k for k in keys if any(w in k.lower() for w in ("length", "size", "hash"))], keys


# --- item 3: saved plans ---------------------------------------------------------------------------

def test_a_saved_plan_is_applied_exactly_and_holds_no_secret(app, proxy, capsys):
    code, out, err = run(capsys, "reconcile", "-f", str(app.folder), "--dry-run", "--detailed-exitcode",
                         "--out", str(app.plan))
    assert code == 2, err
    assert "Plan: 4 to create, 0 to update, 0 to delete." in out and proxy.writes() == 0
    saved = app.plan.read_text()
    assert_holds_no_secret(saved, app.canaries())
    doc = json.loads(saved)
    assert [(c["kind"], c["name"], c["action"]) for c in doc["plan"]["changes"]] == [
        ("Parameter", "db-password", "create"), ("Parameter", "token", "create"),
        ("ExecutionRole", "app-exec", "create"), ("TaskDefinition", "app", "create")]
    assert doc["observed"]["TaskDefinition/app"] == {"latestRevision": None}

    code, out, err = run(capsys, "reconcile", "-f", str(app.folder), "--plan", str(app.plan))
    assert code == 0, err
    assert app.value("/app/db_password") == app.password and app.value("/app/token") == app.token
    assert app.latest()["revision"] == 1
    assert run(capsys, "reconcile", "-f", str(app.folder), "--dry-run", "--detailed-exitcode")[0] == 0
    assert_no_leak(out + err, app.canaries())


def test_an_update_plan_shows_and_pins_the_version_it_was_made_against(app, capsys):
    assert run(capsys, "reconcile", "-f", str(app.folder))[0] == 0
    app.overwrite("/app/db_password", "changed-out-of-band")          # version 2
    code, out, err = run(capsys, "reconcile", "-f", str(app.folder), "--dry-run", "--out", str(app.plan))
    assert code == 0, err
    assert "~ Parameter/db-password will be updated (from version 2)" in out
    saved = app.plan.read_text()
    assert json.loads(saved)["observed"]["Parameter/db-password"] == {"version": 2}
    assert_holds_no_secret(saved, app.canaries() + ["changed-out-of-band"])
    code, out, err = run(capsys, "reconcile", "-f", str(app.folder), "--plan", str(app.plan))
    assert code == 0, err
    assert app.value("/app/db_password") == app.password and app.version("/app/db_password") == 3


def _drift_and_plan(app: App, capsys) -> None:
    """Converged, then one out-of-band change (so that the plan has something to do), planned to a file."""
    assert run(capsys, "reconcile", "-f", str(app.folder))[0] == 0
    app.overwrite("/app/db_password", "changed-out-of-band")
    code, _, err = run(capsys, "reconcile", "-f", str(app.folder), "--dry-run", "--out", str(app.plan))
    assert code == 0, err


def _same_change_again(app: App) -> None:
    """Another out-of-band write: the plan made now reads just as the saved one, only the version moved on."""
    app.overwrite("/app/db_password", "changed-out-of-band-again")


def _new_revision(app: App) -> None:
    body = app.latest()
    keep = ("family", "containerDefinitions", "executionRoleArn", "requiresCompatibilities")
    app.client("ecs").register_task_definition(**{k: body[k] for k in keep if k in body})


def _role_policy(app: App) -> None:
    app.client("iam").put_role_policy(RoleName="app-exec", PolicyName="ecs-secrets", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}]}))


def _token_file(app: App) -> None:
    app.token_file.write_text("tok-" + secrets.token_urlsafe(25))


def _manifest(app: App) -> None:
    app.manifest.write_text(app.manifest.read_text().replace("the database password", "the DB password"))


@pytest.mark.parametrize("change, reason", [
    (_same_change_again, "Parameter/db-password changed in AWS since the plan was made (version 2 then, version 3"),
    (_new_revision, "TaskDefinition/app changed in AWS since the plan was made (latestRevision "),
    (_role_policy, "ExecutionRole/app-exec changed in AWS since the plan was made (policies sha256:"),
    (_token_file, "Parameter/token: the plan now also has it (update)"),
    (_manifest, "the manifests differ from those the plan was made from"),
], ids=["parameter-version", "family-revision", "role-policy", "value-source", "manifests"])
def test_a_stale_plan_is_refused_and_writes_nothing(app, proxy, capsys, change, reason):
    _drift_and_plan(app, capsys)
    change(app)
    proxy.reset_counts()
    code, out, err = run(capsys, "reconcile", "-f", str(app.folder), "--plan", str(app.plan))
    assert code == 1 and "no longer applies; nothing was changed" in err and reason in err, err
    assert proxy.writes() == 0, proxy.calls
    assert "Traceback" not in err and out == ""
    assert_no_leak(err, app.canaries())


def test_other_manifests_or_options_are_refused_before_any_aws_call(app, proxy, capsys):
    _drift_and_plan(app, capsys)
    _manifest(app)
    proxy.reset_counts()
    code, _, err = run(capsys, "reconcile", "-f", str(app.folder), "--plan", str(app.plan))
    assert code == 1 and "the manifests differ" in err and sum(proxy.calls.values()) == 0
    app.manifest.write_text(app.manifest.read_text().replace("the DB password", "the database password"))
    code, _, err = run(capsys, "reconcile", "-f", str(app.folder), "--plan", str(app.plan), "--prune")
    assert code == 1 and "--prune: the plan was made with false, this command gives true" in err
    assert sum(proxy.calls.values()) == 0
    assert run(capsys, "reconcile", "-f", str(app.folder), "--plan", str(app.plan))[0] == 0


@pytest.mark.parametrize("argv, needle", [
    (["--out", "PLAN"], "--out saves the plan of a --dry-run"),
    (["--dry-run", "--plan", "PLAN"], "--plan FILE applies a saved plan: drop --dry-run"),
    (["--skip-values"], "--skip-values plans without reading the values, so it cannot apply"),
    (["--dry-run", "--skip-values", "--out", "PLAN"], "a plan made with --skip-values compares no value"),
    (["--plan", "NOT-A-PLAN"], "is not a saved plan"),
    (["--plan", "MISSING"], "cannot read the plan"),
])
def test_contradicting_plan_flags_are_refused(app, proxy, capsys, argv, needle):
    (app.plan.parent / "NOT-A-PLAN").write_text('{"format": "ecs-secrets-plan/1", "plan": []}')
    argv = [str(app.plan.parent / a) if a.isupper() else a for a in argv]
    code, _, err = run(capsys, "reconcile", "-f", str(app.folder), *argv)
    assert code == 1 and needle in err, err
    assert proxy.writes() == 0 and not app.plan.exists()


# --- item 4: planning without production values ----------------------------------------------------

def test_skip_values_plans_without_any_value_source(app, proxy, capsys):
    assert run(capsys, "reconcile", "-f", str(app.folder))[0] == 0
    app.monkeypatch.delenv("APP_DB_PASSWORD")
    app.token_file.unlink()
    app.overwrite("/app/db_password", "changed-out-of-band")   # not compared, so no change to plan
    proxy.reset_counts()
    code, out, err = run(capsys, "reconcile", "-f", str(app.folder), "--dry-run", "--skip-values",
                         "--detailed-exitcode")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == ("No changes, but values not compared (--skip-values): "
                                            "Parameter/db-password, Parameter/token.")
    # no value read from SSM either: only GetParameters decrypts, and nothing here compares a value
    assert proxy.calls[("ssm", "GetParameters")] == 0 and proxy.writes() == 0
    code, out, _ = run(capsys, "reconcile", "-f", str(app.folder), "--dry-run", "--skip-values", "--output", "json")
    doc = json.loads(out)
    assert code == 0 and doc["changes"] == [] and doc["summary"]["valuesNotCompared"] == 2
    assert doc["valuesNotCompared"] == [{"kind": "Parameter", "name": "db-password"},
                                        {"kind": "Parameter", "name": "token"}]
    # without --skip-values the same state is a refusal: the sources are needed to compare
    code, _, err = run(capsys, "reconcile", "-f", str(app.folder), "--dry-run")
    assert code == 1 and "APP_DB_PASSWORD" in err


def test_skip_values_on_an_empty_account_shows_values_as_not_compared(app, proxy, capsys):
    app.monkeypatch.delenv("APP_DB_PASSWORD")
    app.token_file.unlink()
    code, out, err = run(capsys, "reconcile", "-f", str(app.folder), "--dry-run", "--skip-values",
                         "--detailed-exitcode")
    assert code == 2, err
    assert "+ value = (not compared)" in out and "(sensitive value)" not in out
    assert out.strip().splitlines()[-1] == ("Plan: 4 to create, 0 to update, 0 to delete; values not compared "
                                            "(--skip-values): Parameter/db-password, Parameter/token.")
    assert proxy.writes() == 0


def test_skip_values_shows_a_parameter_update_without_its_value(app, capsys):
    assert run(capsys, "reconcile", "-f", str(app.folder))[0] == 0
    app.client("ssm").put_parameter(Name="/app/db_password", Value=app.password, Type="SecureString",
                                    Description="edited", Overwrite=True)
    code, out, err = run(capsys, "reconcile", "-f", str(app.folder), "--dry-run", "--skip-values")
    assert code == 0, err
    block = out.split("~ Parameter/db-password will be updated (from version 2)\n")[1].split("\n\n")[0]
    assert block.splitlines() == ['      ~ description: "edited" -> "the database password"',
                                  "      ? value (not compared)"]


# --- item 5: what an apply did ---------------------------------------------------------------------

def test_json_apply_is_one_document_with_each_result_and_what_aws_assigned(app, capsys):
    code, out, err = run(capsys, "reconcile", "-f", str(app.folder), "--output", "json")
    assert code == 0, err
    doc = json.loads(out)      # one document: the plan and the results
    by_ref = {f"{c['kind']}/{c['name']}": c for c in doc["changes"]}
    assert {ref: c["result"] for ref, c in by_ref.items()} == dict.fromkeys(
        ["Parameter/db-password", "Parameter/token", "ExecutionRole/app-exec", "TaskDefinition/app"], "applied")
    assert by_ref["Parameter/db-password"]["assigned"] == {"version": 1}
    latest = app.latest()
    assert by_ref["TaskDefinition/app"]["assigned"] == {"taskDefinitionArn": latest["taskDefinitionArn"],
                                                        "revision": 1}
    assert by_ref["ExecutionRole/app-exec"]["assigned"] == {}
    assert doc["summary"] == {"create": 4, "update": 0, "delete": 0}
    assert doc["applied"] == {"applied": 4, "failed": 0, "blocked": 0, "skipped": 0}
    assert_no_leak(out + err, app.canaries())

    app.overwrite("/app/db_password", "changed-out-of-band")
    app.manifest.write_text(app.manifest.read_text().replace("nginx:1.27", "nginx:1.28"))
    code, out, err = run(capsys, "reconcile", "-f", str(app.folder), "--output", "json")
    assert code == 0, err
    by_ref = {f"{c['kind']}/{c['name']}": c for c in json.loads(out)["changes"]}
    assert by_ref["Parameter/db-password"]["assigned"] == {"version": app.version("/app/db_password")} == \
        {"version": 3}
    assert by_ref["TaskDefinition/app"]["assigned"]["taskDefinitionArn"] == app.latest()["taskDefinitionArn"]
    assert app.latest()["revision"] == 2


def test_text_apply_lists_each_result_with_the_version_and_revision(app, capsys):
    code, out, err = run(capsys, "reconcile", "-f", str(app.folder))
    assert code == 0, err
    arn = app.latest()["taskDefinitionArn"]
    done = out.split("Plan: 4 to create, 0 to update, 0 to delete.\n")[1].splitlines()
    assert done == ["  + Parameter/db-password: created, version 1",
                    "  + Parameter/token: created, version 1",
                    "  + ExecutionRole/app-exec: created",
                    f"  + TaskDefinition/app: created, registered {arn}",
                    "Apply complete: 4 applied, 0 failed, 0 blocked."]
    assert arn.endswith(":task-definition/app:1")


def test_a_plan_file_that_cannot_be_written_leaves_one_json_document(app, capsys, tmp_path):
    """--output json promises one document on stdout: a refused --out is that document, not a second one."""
    code, out, err = run(capsys, "reconcile", "-f", str(app.folder), "--dry-run", "--output", "json",
                         "--out", str(tmp_path / "no-such-folder" / "plan.json"))
    assert code == 1
    document = json.loads(out)   # exactly one document: json.loads refuses a second
    assert list(document) == ["errors"] and "plan.json" in document["errors"][0]["message"]
    assert_no_leak(out + err, app.canaries())
