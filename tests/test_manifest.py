"""Every refusal of SPEC's "What gets refused", each naming file, line, object and field."""

from __future__ import annotations

import pytest

from controller.core.desired import desire
from controller.manifests import loader as manifest
from controller.vocab.problems import ManifestError

PARAM = """\
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: db}
spec:
  name: /test/db
  value: {fromEnv: DB}
"""
ROLE = """\
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: exec}
spec:
  roleName: exec-role
"""
TASK = """\
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: web}
spec:
  family: web
  executionRole: exec
  containerDefinitions:
    - name: web
      image: nginx
      memory: 256
      secrets:
        - {name: DB, valueFrom: /test/db}
"""


def docs(*parts: str) -> str:
    return "---\n".join(parts)


def refused(tmp_path, text: str) -> list[str]:
    f = tmp_path / "m.yaml"
    f.write_text(text)
    with pytest.raises(ManifestError) as exc:
        desire(manifest.load(f))   # the derived policies' sizes are checked as Desired is built
    return [str(p) for p in exc.value.problems]


@pytest.mark.parametrize("text, where, needle", [
    ("a: [1,\n", "m.yaml:", "YAML does not parse"),
    (docs(PARAM.replace("  value:", "  valeu: 1\n  value:")), "Parameter/db: spec.valeu", "unknown field 'valeu'"),
    (docs(PARAM, PARAM), "Parameter/db: metadata.name", "duplicate"),
    (docs(PARAM, PARAM.replace("name: db}", "name: db2}")), "Parameter/db2: spec.name", "duplicate"),
    (PARAM.replace("/test/db", "test/db"), "Parameter/db: spec.name",
     "a name with a path must start with '/': /test/db"),
    (PARAM.replace("/test/db", "/" + "/".join("abcdefghijklmnop")), "spec.name", "15"),
    (PARAM.replace("/test/db", "/aws/db"), "spec.name", "aws"),
    (PARAM.replace("/test/db", "ssm-db"), "spec.name", "ssm"),
    (PARAM.replace("/test/db", "/test/d b"), "spec.name", ""),
    (PARAM.replace("/test/db", "/test/" + "x" * 1100), "spec.name", "1011"),
    (PARAM.replace("{fromEnv: DB}", "{literal: secret}"), "spec.value.literal", "SecureString"),
    (PARAM.replace("  value:", "  type: String\n  value:").replace("{fromEnv: DB}", "{literal: " + "x" * 4097 + "}"),
     "spec.value.literal", "4096"),
    (PARAM.replace("  value:", "  type: String\n  kmsKeyId: alias/k\n  value:"), "spec.kmsKeyId", "SecureString"),
    (PARAM.replace("  value:", "  kmsKeyId: MyAliasName\n  value:"), "spec.kmsKeyId", "alias/MyAliasName"),
    (PARAM.replace("/test/db", "/aws/reference/secretsmanager/db"), "spec.value", "Secrets Manager"),
    (PARAM.replace("{fromEnv: DB}", "{fromEnv: DB, generate: {length: 12}}"), "spec.value", "exactly one"),
    (PARAM.replace("  value:", "  tier: Huge\n  value:"), "spec.tier", ""),
    (PARAM.replace("name: db}", "name: Db_1}"), "metadata.name", ""),
    (docs(ROLE.replace("exec-role", "bad role!")), "ExecutionRole/exec: spec.roleName", ""),
    (docs(ROLE.replace("exec-role", "r" * 65)), "spec.roleName", "64"),
    (docs(ROLE + "  path: nope\n"), "spec.path", ""),
    (docs(PARAM, ROLE, TASK.replace("family: web", "family: web.app")), "TaskDefinition/web: spec.family", ""),
    (docs(PARAM, ROLE, TASK.replace("- name: web", "- name: web app")), "containerDefinitions[0].name", ""),
    (docs(PARAM, ROLE, TASK.replace("image: nginx", "imgae: nginx")), "containerDefinitions[0].imgae", "image"),
    (docs(PARAM, ROLE, TASK.replace("memory: 256", "memory: lots")), "containerDefinitions[0].memory", "int"),
    (docs(PARAM, TASK.replace("  executionRole: exec\n", "")), "TaskDefinition/web: spec.containerDefinitions",
     "execution role"),
    (docs(PARAM.replace("  value:", "  region: eu-west-1\n  value:"), ROLE, TASK), "valueFrom", "full ARN"),
    (docs(PARAM, ROLE, TASK.replace("/test/db", "arn:aws:ssm:us-east-1:111111111111:parameter/x") + "        - {name: B, "
          "valueFrom: 'arn:aws:ssm:us-east-1:222222222222:parameter/y'}\n"), "valueFrom", "accounts"),
    (docs(PARAM, ROLE, TASK.replace("executionRole: exec", "executionRole: 'no such role!'")), "spec.executionRole",
     "neither"),
    (docs(PARAM, ROLE, TASK.replace("/test/db", "arn:aws:s3:::bucket/key")), "valueFrom", "neither"),
    ("apiVersion: v1\nkind: Parameter\nmetadata: {name: a}\nspec: {}\n", "apiVersion", "ecs-secrets/v1"),
    ("apiVersion: ecs-secrets/v1\nkind: Secret\nmetadata: {name: a}\nspec: {}\n", "kind", "unknown kind"),
    ("", "m.yaml:1", "no documents"),
    ("# only a comment\n", "m.yaml:1", "no documents"),
    ("a: 1\na: 2\n", "m.yaml:2", "duplicate key"),
])
def test_refusals(tmp_path, text, where, needle):
    problems = refused(tmp_path, text)
    assert any(where in p and needle in p for p in problems), problems


def test_error_names_the_line_of_the_field(tmp_path):
    text = docs(PARAM, ROLE, TASK.replace("image: nginx", "imgae: nginx"))
    problem = next(p for p in refused(tmp_path, text) if "imgae" in p)
    line = text.splitlines().index("      imgae: nginx") + 1
    assert problem.startswith(f"{tmp_path / 'm.yaml'}:{line}: TaskDefinition/web: ")


def test_inline_policy_over_iam_limit_is_refused(tmp_path):
    secrets = "".join(f"        - {{name: S{i}, valueFrom: /app/some-rather-long-parameter-name-{i:04}}}\n"
                      for i in range(150))
    text = docs(ROLE, TASK.replace("        - {name: DB, valueFrom: /test/db}\n", secrets))
    problems = refused(tmp_path, text)
    assert any("ExecutionRole/exec" in p and "10,240" in p for p in problems), problems


def test_valid_documentation_scenario_loads():
    m = manifest.load("manifests")
    assert [o.ref for o in m.objects] == ["Parameter/db-password", "Parameter/api-key", "Parameter/log-level",
                                           "ExecutionRole/web-exec", "TaskDefinition/web"]


def test_folder_reads_yaml_files_sorted_and_skips_hidden(tmp_path):
    (tmp_path / "b.yaml").write_text(ROLE)
    (tmp_path / "a.yml").write_text(PARAM)
    (tmp_path / ".hidden.yaml").write_text("not: [valid")
    (tmp_path / "notes.txt").write_text("ignored")
    assert [o.ref for o in manifest.load(tmp_path).objects] == ["Parameter/db", "ExecutionRole/exec"]


def test_secrets_manager_json_key_suffix_is_accepted(tmp_path):
    ref = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf:password::"
    f = tmp_path / "m.yaml"
    f.write_text(docs(ROLE, TASK.replace("/test/db", f"'{ref}'")))
    td = manifest.load(f).get("TaskDefinition", "web")
    assert td.spec.ecs_fields()["containerDefinitions"][0]["secrets"][0]["valueFrom"] == ref


def test_multiple_problems_are_all_reported(tmp_path):
    text = PARAM.replace("/test/db", "test/db").replace("  value:", "  tier: Huge\n  value:")
    assert len(refused(tmp_path, text)) >= 1
    text2 = docs(PARAM.replace("/test/db", "test/db"), ROLE.replace("exec-role", "bad role!"))
    assert len(refused(tmp_path, text2)) == 2

