"""`validate` through the command line: every problem in one run, each on its own line with its file and
line, nulls said as nulls, values sized when they can be read now — and no secret value, nor its
length, in anything printed."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from controller import cli
from controller.vocab.sensitive import SENSITIVE, Sensitive

HEAD = "apiVersion: ecs-secrets/v1\n"


def param(name: str, ssm: str, value: str = "{fromEnv: VALIDATE_UNSET}", extra: str = "") -> str:
    return f"{HEAD}kind: Parameter\nmetadata: {{name: {name}}}\nspec:\n  name: {ssm}\n  value: {value}\n{extra}"


def validate(capsys: pytest.CaptureFixture, path: Path) -> tuple[int, str]:
    code = cli.main(["validate", "-f", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def problem_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.startswith("  ")]


# --- 16: a "did you mean 'value'?" hint keeps the next problem's file and line ---------------------------

TYPOS = f"""{HEAD}kind: TaskDefinition
metadata: {{name: web}}
spec:
  family: web
  containerDefinitions:
    - name: a
      image: nginx
      memory: 128
      environment:
        - name: X
          valeu: "1"
    - name: b
      imgae: nginx
      memory: 128
"""


def test_a_did_you_mean_value_hint_keeps_the_next_problem(tmp_path: Path, capsys, monkeypatch) -> None:
    canary = "cnry" + secrets.token_hex(16)            # registered as a secret: read from fromEnv below
    monkeypatch.setenv("VALIDATE_CANARY", canary)
    pasted = TYPOS.replace("      memory: 128\n      environment", f"      memory: 128\n      {canary}: 1\n"
                           "      environment", 1)      # the secret pasted into the manifest by mistake
    (tmp_path / "m.yaml").write_text(pasted + "---\n" + param("db", "/app/db", "{fromEnv: VALIDATE_CANARY}"))

    code, text = validate(capsys, tmp_path / "m.yaml")

    assert code == 1
    lines = problem_lines(text)
    where = str(tmp_path / "m.yaml")
    assert len(lines) == 4 and all(line.startswith(f"{where}:") for line in lines), text
    assert any(line.endswith("valeu: unknown ECS field 'valeu'; did you mean 'value'?") for line in lines), text
    assert any(line.endswith("imgae: unknown ECS field 'imgae'; did you mean 'image'?") for line in lines), text
    assert any("required field 'image' is missing" in line for line in lines), text
    assert canary not in text and SENSITIVE in text    # the registered value is still scrubbed


def test_our_messages_lose_only_the_registered_values_exactly() -> None:
    from controller.vocab.sensitive import scrub_values
    canary = "cnry" + secrets.token_hex(16)
    Sensitive(canary)
    text = f"a: did you mean 'value'?\n  f.yaml:3: Value 'x' at 'y' {canary}, {canary[:-1]}"
    assert scrub_values(text) == text.replace(canary, SENSITIVE, 1)


# --- 17: every problem, of every stage, in one run ---------------------------------------------------------

def test_five_problems_of_five_stages_in_five_files_in_one_run(tmp_path: Path, capsys, monkeypatch) -> None:
    canary = secrets.token_urlsafe(3100)                 # 4,134 characters: over Standard's 4 KB
    monkeypatch.setenv("VALIDATE_BIG", canary)
    monkeypatch.delenv("VALIDATE_UNSET", raising=False)
    files = {
        "a-yaml.yaml": param("a", "/app/a").replace("  value:", "  value: {fromEnv: X}\n  broken: [", 1),
        "b-schema.yaml": param("b", "/app/b", extra="  colour: blue\n"),
        "c-rule.yaml": param("c", "/aws/c"),
        "d-duplicate.yaml": param("c", "/app/d"),
        "e-size.yaml": param("e", "/app/e", "{fromEnv: VALIDATE_BIG}"),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)

    code, text = validate(capsys, tmp_path)

    assert code == 1
    lines = problem_lines(text)
    assert "5 problems" in text and len(lines) == 5, text
    expected = [("a-yaml.yaml", "YAML does not parse"), ("b-schema.yaml", "unknown field 'colour'"),
                ("c-rule.yaml", "'aws' or 'ssm'"), ("d-duplicate.yaml", "duplicate: Parameter/c"),
                ("e-size.yaml", "over the Standard tier's limit of 4096 bytes")]
    for line, (file, says) in zip(lines, expected):
        assert line.startswith(str(tmp_path / file) + ":") and says in line, text
    assert canary not in text and str(len(canary.encode())) not in text


def test_reconcile_refuses_with_every_problem_too_before_any_aws_call(tmp_path: Path, capsys) -> None:
    (tmp_path / "a.yaml").write_text("a: [\n")
    (tmp_path / "b.yaml").write_text(param("b", "/aws/b"))
    code = cli.main(["reconcile", "-f", str(tmp_path), "--region", "us-east-1",
                     "--endpoint-url", "http://127.0.0.1:9"])   # nothing listens: a call would fail otherwise
    text = capsys.readouterr().err
    assert code == 1 and "2 problems" in text and "YAML does not parse" in text and "'aws' or 'ssm'" in text, text


def test_a_broken_document_hides_nothing_in_the_others_of_its_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "m.yaml").write_text(param("a", "/app/a", extra="  tier: Gold\n") + "---\n" + param("b", "/ssm/b"))
    code, text = validate(capsys, tmp_path / "m.yaml")
    assert code == 1 and "Parameter/a: spec.tier" in text and "Parameter/b: spec.name" in text, text


# --- 18: a null says it is null, in one line -----------------------------------------------------------

TASK = f"""{HEAD}kind: TaskDefinition
metadata: {{name: web}}
spec:
  family: web
  containerDefinitions:
    - name: web
      image: nginx
      memory: 128
"""


@pytest.mark.parametrize("text, field, fix", [
    (f"{HEAD}kind: Parameter\nmetadata: {{name: p}}\nspec: null\n", "spec", "give a mapping"),
    (f"{HEAD}kind: Parameter\nmetadata: {{name: p}}\nspec:\n", "spec", "give a mapping"),
    (TASK.replace("image: nginx", "image: null"), "spec.containerDefinitions[0].image", "give a string"),
    (TASK.replace("image: nginx", "image:"), "spec.containerDefinitions[0].image", "give a string"),
    (TASK + "      secrets: null\n", "spec.containerDefinitions[0].secrets", "give a list, or remove it"),
    (TASK.split("  containerDefinitions:")[0] + "  containerDefinitions: ~\n", "spec.containerDefinitions",
     "give a list"),
    (f"{HEAD}kind: ExecutionRole\nmetadata: {{name: r}}\nspec: {{roleName: r, managedPolicyArns: null}}\n",
     "spec.managedPolicyArns", "give a list, or remove the line to use the default"),
    (f"{HEAD}kind: ExecutionRole\nmetadata: {{name: r}}\nspec: {{roleName: null}}\n", "spec.roleName",
     "give a string"),
    (param("p", "/app/p", extra="  tier: null\n"), "spec.tier", "Standard"),
    (param("p", "/app/p", "{fromEnv: null}"), "spec.value", "fromEnv is null"),
])
def test_a_null_is_said_to_be_null_in_one_line(tmp_path: Path, capsys, text: str, field: str, fix: str) -> None:
    (tmp_path / "m.yaml").write_text(text)
    code, out = validate(capsys, tmp_path / "m.yaml")
    lines = problem_lines(out)
    assert code == 1 and len(lines) == 1, out
    assert f": {field}: " in lines[0] and "null" in lines[0] and fix in lines[0], out
    assert "wrong type" not in out and "Input should be" not in out


# --- 20: the values validate can read now, sized against their tier -----------------------------------------
# SSM PutParameter API reference, Value: "Standard parameters have a value limit of 4 KB. Advanced parameters
# have a value limit of 8 KB." (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html)

@pytest.mark.parametrize("tier, size, ok", [("Standard", 4096, True), ("Standard", 4097, False),
                                            ("Advanced", 8192, True), ("Advanced", 8193, False),
                                            ("Intelligent-Tiering", 8193, False)])
@pytest.mark.parametrize("source", ["fromEnv", "fromFile"])
def test_a_value_that_can_be_read_is_sized_against_its_tier(tmp_path: Path, capsys, monkeypatch, tier: str,
                                                            size: int, ok: bool, source: str) -> None:
    canary = ("cnry" + secrets.token_hex(size))[:size]
    monkeypatch.setenv("VALIDATE_VALUE", canary)
    (tmp_path / "value").write_text(canary + "\n")      # one trailing newline is not part of the value
    value = "{fromEnv: VALIDATE_VALUE}" if source == "fromEnv" else f"{{fromFile: {tmp_path / 'value'}}}"
    (tmp_path / "m.yaml").write_text(param("db", "/app/db", value, f"  tier: {tier}\n"))

    code, text = validate(capsys, tmp_path / "m.yaml")

    assert code == (0 if ok else 1), text
    if not ok:
        assert f"Parameter/db: spec.value.{source}: the value is over the {tier} tier's limit" in text, text
    assert canary not in text and str(size) not in text and canary[:32] not in text


def test_a_source_that_cannot_be_read_here_is_no_problem_for_validate(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("VALIDATE_UNSET", raising=False)
    (tmp_path / "m.yaml").write_text(param("a", "/app/a") + "---\n" +
                                     param("b", "/app/b", f"{{fromFile: {tmp_path / 'absent'}}}"))
    code, text = validate(capsys, tmp_path / "m.yaml")
    assert code == 0 and "2 objects valid" in text, text


def test_an_empty_value_that_can_be_read_is_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("VALIDATE_EMPTY", "")
    (tmp_path / "m.yaml").write_text(param("a", "/app/a", "{fromEnv: VALIDATE_EMPTY}"))
    code, text = validate(capsys, tmp_path / "m.yaml")
    assert code == 1 and re.search(r"Parameter/a: spec.value.fromEnv: the value is empty", text), text


def test_a_json_file_of_a_folder_is_read_and_its_null_said_in_one_line(tmp_path: Path, capsys) -> None:
    """SPEC: -f FOLDER reads every *.yaml, *.yml and *.json in it."""
    (tmp_path / "p.json").write_text('{"apiVersion": "ecs-secrets/v1", "kind": "Parameter", '
                                     '"metadata": {"name": "p"}, "spec": null}\n')
    (tmp_path / "q.yaml").write_text(param("q", "/app/q", "{generate: {}}"))
    code, text = validate(capsys, tmp_path)
    lines = problem_lines(text)
    assert code == 1 and len(lines) == 1, text
    assert lines[0].startswith(str(tmp_path / "p.json") + ":1: Parameter/p: spec: is null"), text
