"""--sandbox keeps its AWS between commands, holds no value on disk, and says what it invents.

Each command here is a separate `main()` call, as separate processes are: each starts a fresh moto and
restores it from the state file (.ecs-secrets/sandbox.jsonl in the working directory).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from controller.cli import main

MANIFESTS = """\
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: db-password}
spec:
  name: /app/db_password
  kmsKeyId: alias/app
  value: {fromEnv: SANDBOX_TEST_DB_PASSWORD}
---
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: api-key}
spec:
  name: /app/api_key
  value: {generate: {length: 40}}
---
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: log-level}
spec:
  name: /app/log_level
  type: String
  value: {literal: debug}
---
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: app-exec}
spec:
  roleName: app-execution
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: app}
spec:
  family: app
  executionRole: app-exec
  containerDefinitions:
    - name: app
      image: nginx:1.27
      memory: 256
      secrets:
        - {name: DB_PASSWORD, valueFrom: /app/db_password}
        - {name: API_KEY, valueFrom: /app/api_key}
        - {name: LOG_LEVEL, valueFrom: /app/log_level}
        - {name: SHARED, valueFrom: %(shared)s}
        - {name: TOKEN, valueFrom: /aws/reference/secretsmanager/app/token}
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SANDBOX_TEST_DB_PASSWORD", raising=False)
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "MOTO_IAM_LOAD_MANAGED_POLICIES"):
        monkeypatch.delenv(key, raising=False)   # the sandbox sets its own; leave no trace for other tests
    (tmp_path / "m").mkdir()
    write(tmp_path, "/shared/undeclared")
    return tmp_path


def write(root: Path, shared: str) -> None:
    (root / "m" / "app.yaml").write_text(MANIFESTS % {"shared": shared})


def run(capfd: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "-f", "m", "--sandbox", "--region", "us-east-1"])
    out, err = capfd.readouterr()
    return code, out, err


def test_reconcile_then_a_no_op_dry_run_as_on_an_account(workdir: Path, capfd, monkeypatch) -> None:
    canary = secrets.token_urlsafe(24)
    monkeypatch.setenv("SANDBOX_TEST_DB_PASSWORD", canary)
    code, out, err = run(capfd, "reconcile")
    assert code == 0, err
    assert "Apply complete" in out
    state = workdir / ".ecs-secrets" / "sandbox.jsonl"
    assert state.exists() and (workdir / ".ecs-secrets" / ".gitignore").read_text().splitlines()[-1] == "*"

    code, out, err = run(capfd, "reconcile", "--dry-run", "--detailed-exitcode")
    assert (code, out.strip().splitlines()[-1]) == (0, "No changes. Everything is in sync."), out + err
    assert "writes restored" in err

    journal = state.read_text()
    assert canary not in journal and canary not in out + err   # no value on disk, nor printed
    puts = [json.loads(line) for line in journal.splitlines()[1:]]
    db = [e for e in puts if e["operation"] == "PutParameter" and e["params"]["Name"] == "/app/db_password"]
    assert db and db[0]["params"]["Value"] == {"$source": {"fromEnv": "SANDBOX_TEST_DB_PASSWORD"}}
    log_level = [e for e in puts if e["operation"] == "PutParameter" and e["params"]["Name"] == "/app/log_level"]
    assert log_level[0]["params"]["Value"] == "debug"     # a String literal, in the manifest anyway
    secret = [e for e in puts if e["operation"] == "CreateSecret"]
    assert secret[0]["params"]["SecretString"] == {"$source": {"placeholder": True}}


@pytest.mark.slow
def test_verify_after_reconcile_and_reset(workdir: Path, capfd, monkeypatch) -> None:
    canary = secrets.token_urlsafe(24)
    monkeypatch.setenv("SANDBOX_TEST_DB_PASSWORD", canary)
    assert run(capfd, "reconcile")[0] == 0
    code, out, err = run(capfd, "verify")
    assert code == 0, out + err                  # verify sees what reconcile wrote: nothing missing
    assert "0 denied, 0 missing" in out and canary not in out + err

    # Restored values come from the sources as they are now: a rotated source is no diff across commands
    # (the state holds no value, digest or length to compare with). README "Try it" says so.
    monkeypatch.setenv("SANDBOX_TEST_DB_PASSWORD", canary + "-rotated")
    assert run(capfd, "reconcile", "--dry-run", "--detailed-exitcode")[0] == 0

    code, out, err = run(capfd, "reconcile", "--dry-run", "--detailed-exitcode", "--sandbox-reset")
    assert code == 2 and "Plan: 5 to create" in out, out + err      # an empty AWS again
    assert "empty" in err
    kept = (workdir / ".ecs-secrets" / "sandbox.jsonl").read_text()
    assert "RegisterTaskDefinition" not in kept and "/app/db_password" not in kept   # only new placeholders


@pytest.mark.slow
def test_random_stand_ins_are_the_same_for_the_restore_and_the_plan(workdir: Path, capfd) -> None:
    """An unset variable gets one random value per command, used both to restore and to plan: no diff."""
    assert run(capfd, "reconcile")[0] == 0
    code, out, err = run(capfd, "reconcile", "--dry-run", "--detailed-exitcode")
    assert code == 0, out + err
    (block,) = [b for b in err.split("sandbox: ") if b.startswith("invented")]
    lines = block.splitlines()[1:]
    assert any("SANDBOX_TEST_DB_PASSWORD: not set, a random value" in line for line in lines)
    assert any("/app/api_key" in line and "restored with a new random value" in line for line in lines)


@pytest.mark.slow  # CI time: covered again by `-m slow` (README, Testing)
def test_what_it_invents_is_one_block_and_strict_invents_nothing(workdir: Path, capfd, monkeypatch) -> None:
    write(workdir, "/app/db_pasword")   # a typo: no such parameter
    code, out, err = run(capfd, "reconcile", "--dry-run")
    assert code == 0, err                # hidden by a placeholder...
    assert err.count("sandbox: invented") == 1   # ...but said, in one block, not lines scattered through the output
    (block,) = [b for b in err.split("sandbox: ") if b.startswith("invented")]
    listed = "\n".join(block.splitlines()[1:])
    for thing in ("KMS key alias/app", "SSM parameter /app/db_pasword", "Secrets Manager secret app/token",
                  "environment variable SANDBOX_TEST_DB_PASSWORD"):
        assert thing in listed, listed

    monkeypatch.setenv("SANDBOX_TEST_DB_PASSWORD", secrets.token_urlsafe(24))
    code, out, err = run(capfd, "reconcile", "--dry-run", "--sandbox-strict")
    assert code == 1, out + err          # the pre-write check, as on an account; the placeholders the run
                                         # before made (and the state kept) are left out too
    assert "/app/db_pasword" in err and "sandbox: invented" not in err and "error:" in err


def test_sandbox_flags_need_the_sandbox(workdir: Path, capfd) -> None:
    assert main(["reconcile", "--dry-run", "-f", "m", "--sandbox-reset"]) == 1
    assert "need --sandbox" in capfd.readouterr().err


@pytest.mark.slow  # CI time: covered again by `-m slow` (README, Testing)
def test_another_state_file(workdir: Path, capfd) -> None:
    assert run(capfd, "reconcile", "--sandbox-state", "elsewhere/state.jsonl")[0] == 0
    assert (workdir / "elsewhere" / "state.jsonl").exists() and not (workdir / ".ecs-secrets").exists()
    code, out, _ = run(capfd, "reconcile", "--dry-run", "--detailed-exitcode", "--sandbox-state", "elsewhere/state.jsonl")
    assert code == 0, out


# --- the journal alone (no moto) ----------------------------------------------------------------------

def test_the_journal_holds_sources_not_values_and_maps_random_ids(tmp_path: Path) -> None:
    from controller.sandbox.journal import Journal, replay
    canary = secrets.token_urlsafe(24)
    sources = {("ssm", "us-east-1", "/a"): {"fromEnv": "A"}, ("ssm", "us-east-1", "/lit"): {"literal": True},
               ("ssm", "us-east-1", "/sec-lit"): {"literal": True}}
    journal = Journal(tmp_path / ".ecs-secrets" / "s.jsonl", lambda s, r, n: sources.get((s, r, n), {"placeholder": True}))
    journal.record("kms", "us-east-1", "CreateKey", {}, {"KeyMetadata": {"KeyId": "old-id", "Arn": "arn:k/old-id"}})
    journal.record("ssm", "us-east-1", "PutParameter", {"Name": "/a", "Type": "SecureString", "Value": canary,
                                                       "KeyId": "old-id"}, {})
    journal.record("ssm", "us-east-1", "PutParameter", {"Name": "/lit", "Type": "String", "Value": "shown"}, {})
    journal.record("ssm", "us-east-1", "PutParameter", {"Name": "/sec-lit", "Type": "SecureString", "Value": canary}, {})
    journal.record("secretsmanager", "us-east-1", "CreateSecret", {"Name": "s", "SecretString": canary}, {})
    journal.record("ssm", "us-east-1", "GetParameters", {"Names": ["/a"]}, {})          # a read: not kept
    text = journal.path.read_text()
    assert canary not in text and "GetParameters" not in text and '"shown"' in text
    assert (journal.path.parent / ".gitignore").exists()

    sent: list[tuple[str, dict]] = []

    def call(service: str, region: str, operation: str, params: dict) -> dict:
        sent.append((operation, params))
        return {"KeyMetadata": {"KeyId": "new-id", "Arn": "arn:k/new-id"}} if operation == "CreateKey" else {}
    given = []
    assert replay(journal.entries(), call, lambda source, s, r, n: given.append((n, dict(source))) or "now") == 5
    assert sent[1] == ("PutParameter", {"Name": "/a", "Type": "SecureString", "Value": "now", "KeyId": "new-id"})
    assert sent[2][1]["Value"] == "shown"
    assert given == [("/a", {"fromEnv": "A"}), ("/sec-lit", {"placeholder": True}), ("s", {"placeholder": True})]
