"""Input AWS refuses, refused first: at ``validate`` (no request), in ``reconcile`` before any request,
with a message that names the file, the line, the object and the field, and exit 1. moto accepts
every one of these, so each rule names its AWS source here, next to the case that pins it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.register_assert_rewrite("faultkit")
from faultkit import cli, fast_aws  # noqa: E402,F401 - fast_aws is a fixture
from faultproxy import FaultProxy  # noqa: E402

PARAM = """apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: db}
spec:
  name: /limits/db
  value: {fromEnv: LIMITS_DB}
"""
ROLE = """apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: exec}
spec: {roleName: limits-exec}
"""
TASK = """apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: web}
spec:
  family: limits-web
  executionRole: exec
  containerDefinitions:
    - name: web
      image: nginx
      memory: 128
      secrets:
        - {name: DB, valueFrom: /limits/db}
"""
VALID = "---\n".join([PARAM, ROLE, TASK])
ARN = "arn:aws:ssm:us-east-1:123456789012:parameter"


def swap(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def spec_line(line: str) -> str:
    """``line`` added to the TaskDefinition's spec."""
    return swap(VALID, "  family: limits-web\n", f"  family: limits-web\n{line}")


def container_line(line: str) -> str:
    """``line`` added to the first container."""
    return swap(VALID, "      memory: 128\n", f"      memory: 128\n{line}")


def containers(n: int) -> str:
    body = "".join(f"\n    - {{name: c{i}, image: nginx, memory: 128}}" for i in range(n)) or " []"
    return swap(swap(VALID, "\n    - name: web\n      image: nginx\n      memory: 128\n      secrets:\n"
                     "        - {name: DB, valueFrom: /limits/db}", body), "  executionRole: exec\n", "")


@dataclass
class Case:
    text: str
    expect: tuple[str, ...]     # substrings of stderr: the line, the object, the field, the reason
    source: str                 # where AWS says so


CASES: dict[str, Case] = {
    # 13: a task-definition tag without value passed validate, then tags_of raised KeyError
    "td-tag-without-value": Case(spec_line("  tags: [{key: team}]\n"), ("TaskDefinition/web", "spec.tags[0]",
                                                                           "no value"),
                                 "botocore ecs model: Tag.value is optional, tags_of needs one"),
    # 13: YAML constructor errors printed a bare ValueError/KeyError/TypeError, no file or line
    "float-tag": Case(swap(PARAM, "kind: Parameter", "kind: !!float abc"), ("m.yaml:2", "kind", "!!float"),
                      "YAML 1.1 float type (yaml.org/type/float.html)"),
    "int-tag": Case(swap(PARAM, "  name: /limits/db", "  name: !!int twelve"), ("m.yaml:5", "spec.name", "!!int"),
                    "YAML 1.1 int type"),
    "bool-tag": Case(swap(PARAM, "metadata: {name: db}", "metadata: {name: db, adopt: !!bool maybe}"),
                     ("m.yaml:3", "metadata.adopt", "!!bool"), "YAML 1.1 bool type"),
    "timestamp-tag": Case(swap(PARAM, "  name: /limits/db", "  name: !!timestamp soon"),
                          ("m.yaml:5", "spec.name", "!!timestamp"), "YAML 1.1 timestamp type"),
    # 15: a valueFrom ARN with a trailing newline was parsed as the ARN without it
    "value-from-arn-newline": Case(swap(VALID, "valueFrom: /limits/db}", f'valueFrom: "{ARN}/limits/db\\n"}}'),
                                   ("m.yaml:", "TaskDefinition/web", "secrets[0].valueFrom", "position 55"),
                                   "ECS Secret.valueFrom is passed to SSM as written"),
    "value-from-secret-tab": Case(swap(VALID, "valueFrom: /limits/db}",
                                       'valueFrom: "arn:aws:secretsmanager:us-east-1:123456789012:secret:a\\tb"}'),
                                  ("TaskDefinition/web", "secrets[0].valueFrom", "whitespace"),
                                  "Secrets Manager CreateSecret Name: ASCII letters, digits and /_+=.@- only"),
    # 17: PutParameter Name counts the ARN before the name: 1,011 characters in all
    "parameter-arn-over-1011": Case(swap(VALID, "  name: /limits/db", "  name: /" + "x" * 999),
                                    ("m.yaml:5", "Parameter/db", "spec.name", "1011 including the 45-character"),
                                    "SSM PutParameter API reference, Name"),
    "referenced-arn-over-1011": Case(swap(VALID, "valueFrom: /limits/db}", "valueFrom: /" + "y" * 999 + "}"),
                                     ("TaskDefinition/web", "secrets[0].valueFrom", "1011 including"),
                                     "SSM PutParameter API reference, Name"),
    # 17: tag keys and values: [\p{L}\p{Z}\p{N}_.:/=+\-@] only
    "tag-key-newline": Case(swap(PARAM, "spec:\n", 'spec:\n  tags: {"a\\nb": x}\n'),
                            ("Parameter/db", "spec.tags", "U+000A"), "SSM Tag Key pattern (AddTagsToResource)"),
    "tag-key-star": Case(swap(ROLE, "spec: {roleName: limits-exec}", "spec: {roleName: limits-exec, tags: {'a*': x}}")
                         + "---\n" + PARAM + "---\n" + TASK, ("ExecutionRole/exec", "spec.tags.a*", "'*'"),
                         "IAM Tag Key pattern (API_Tag)"),
    "tag-key-comma": Case(swap(PARAM, "spec:\n", "spec:\n  tags: {'a,b': x}\n"), ("Parameter/db", "spec.tags.a,b", "','"),
                          "SSM Tag Key pattern"),
    "tag-value-comma": Case(swap(PARAM, "spec:\n", "spec:\n  tags: {a: 'x,y'}\n"), ("Parameter/db", "spec.tags.a", "','"),
                            "SSM Tag Value pattern"),
    "td-tag-aws-prefix": Case(spec_line("  tags: [{key: 'AWS:team', value: x}]\n"),
                              ("TaskDefinition/web", "spec.tags[0].key", "reserved"), "ECS Tag: aws: is reserved"),
    "td-tag-aws-value": Case(spec_line("  tags: [{key: team, value: 'aws:x'}]\n"),
                             ("TaskDefinition/web", "spec.tags[0].value", "aws:"), "ECS Tag: aws: prefix of values"),
    "td-tag-owner": Case(spec_line("  tags: [{key: 'ecs-secrets:owner', value: someone-else}]\n"),
                         ("TaskDefinition/web", "spec.tags[0].key", "reserved"), "our own owner tag"),
    "td-tag-newline": Case(spec_line('  tags: [{key: "a\\nb", value: x}]\n'),
                           ("TaskDefinition/web", "spec.tags[0].key", "U+000A"), "ECS Tag Key pattern"),
    "td-tag-duplicate": Case(spec_line("  tags: [{key: a, value: x}, {key: a, value: y}]\n"),
                             ("spec.tags[1].key", "duplicate tag key"), "ECS TagResource: each tag key must be unique"),
    "td-51-tags": Case(spec_line("  tags: [" + ", ".join(f"{{key: k{i}, value: v}}" for i in range(51)) + "]\n"),
                       ("TaskDefinition/web", "spec.tags", "51 tags"), "ECS Tag: at most 50 tags per resource"),
    # 17: ECS service quotas, "Containers per task definition": 10, not adjustable; and at least one
    "no-containers": Case(containers(0), ("TaskDefinition/web", "spec.containerDefinitions", "no containers"),
                          "RegisterTaskDefinition: containerDefinitions is required and not empty"),
    "eleven-containers": Case(containers(11), ("TaskDefinition/web", "spec.containerDefinitions", "at most 10"),
                              "ECS service quotas: Containers per task definition"),
    "memory-negative": Case(swap(VALID, "      memory: 128", "      memory: -5"),
                            ("m.yaml:", "containerDefinitions[0].memory", "at least 6 MiB"),
                            "ECS ContainerDefinition.memory: don't specify less than 6 MiB"),
    "memory-huge": Case(swap(VALID, "      memory: 128", "      memory: " + str(10 ** 30)),
                        ("containerDefinitions[0].memory", "32-bit"), "ECS API Integer (32 bits)"),
    "memory-true": Case(swap(VALID, "      memory: 128", "      memory: true"),
                        ("containerDefinitions[0].memory", "where ECS wants a number"), "ECS API Integer"),
    "task-memory-negative": Case(spec_line("  memory: -5\n"), ("spec.memory", "positive"),
                                 "RegisterTaskDefinition memory: MiB as an integer string"),
    # 17: RegisterTaskDefinition: "Duplicate secret names found" / "must be unique and not shared with
    # any new or existing environment variables" (CircleCI-Public/aws-ecs-orb#190, dagster-io/dagster#11622)
    "duplicate-secret-names": Case(swap(VALID, "        - {name: DB, valueFrom: /limits/db}\n",
                                        "        - {name: DB, valueFrom: /limits/db}\n"
                                        "        - {name: DB, valueFrom: /limits/other}\n"),
                                   ("containerDefinitions[0].secrets[1].name", "duplicate secret name 'DB'"),
                                   "ECS: Duplicate secret names found"),
    "secret-and-environment": Case(container_line("      environment: [{name: DB, value: x}]\n"),
                                   ("containerDefinitions[0].secrets[0].name", "also environment[0]"),
                                   "ECS: secret name not shared with environment variables"),
    "variable-name-equals": Case(container_line("      environment: [{name: 'A=B', value: x}]\n"),
                                 ("containerDefinitions[0].environment[0].name", "'='"),
                                 "POSIX environ: NAME=value, a name holds no '='"),
    "secret-name-newline": Case(swap(VALID, "{name: DB, valueFrom", '{name: "DB\\n", valueFrom'),
                                ("containerDefinitions[0].secrets[0].name", "U+000A"), "POSIX environ"),
    "variable-name-empty": Case(container_line("      environment: [{name: '', value: x}]\n"),
                                ("containerDefinitions[0].environment[0].name", "empty"),
                                "ECS: Environment variable name cannot be null or blank"),
    # 17: role ARNs: arn:PARTITION:iam::ACCOUNT:role/PATH/NAME (IAM identifiers)
    "execution-role-arn-newline": Case(swap(VALID, "executionRole: exec",
                                            'executionRole: "arn:aws:iam::123456789012:role/limits-exec\\n"'),
                                       ("TaskDefinition/web", "spec.executionRole", "U+000A"), "IAM ARNs"),
    "task-role-arn-newline": Case(spec_line('  taskRoleArn: "arn:aws:iam::123456789012:role/app\\n"\n'),
                                  ("TaskDefinition/web", "spec.taskRoleArn", "U+000A"), "IAM ARNs"),
    "task-role-not-a-role": Case(spec_line("  taskRoleArn: 'arn:aws:iam::123456789012:user/app'\n"),
                                 ("spec.taskRoleArn", "not a role ARN"), "IAM ARNs"),
    "managed-policy-arn-space": Case(swap(VALID, "spec: {roleName: limits-exec}", "spec: {roleName: limits-exec, "
                                          "managedPolicyArns: ['arn:aws:iam::aws:policy/a b']}"),
                                     ("ExecutionRole/exec", "spec.managedPolicyArns[0]", "' '"), "IAM ARNs"),
    # 18: !!python tags are refused, also on a mapping; true is not 1
    "python-dict-tag": Case(swap(PARAM, "metadata: {name: db}", "metadata: !!python/dict {name: db}"),
                            ("m.yaml:3", "metadata", "!!python/dict"), "README: !!python tags are refused"),
    "keep-revisions-true": Case(spec_line("  keepRevisions: true\n"), ("TaskDefinition/web", "spec.keepRevisions",
                                "integer"), "a count is an integer"),
    "generate-length-true": Case(swap(VALID, "{fromEnv: LIMITS_DB}", "{generate: {length: true}}"),
                                 ("Parameter/db", "spec.value.generate.length", "integer"), "a length is an integer"),
}


@pytest.fixture
def counted(fast_aws: str, monkeypatch: pytest.MonkeyPatch):  # noqa: F811 - the fixture, used
    """A proxy with no faults in front of moto, counting every request the CLI makes."""
    with FaultProxy(fast_aws) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("LIMITS_DB", "limits-db-value")
        yield proxy


def located(err: str, path: str) -> bool:
    """Every problem line starts with FILE:LINE:."""
    lines = err.strip().splitlines()
    return bool(re.fullmatch(r"error: \d+ problems? in the manifests:", lines[0])) and all(
        line.startswith(f"  {path}:") and re.match(r"  \S+:\d+: ", line) for line in lines[1:])


@pytest.mark.parametrize("name", sorted(CASES))
def test_refused_before_any_request(name: str, counted: FaultProxy, tmp_path: Path, capfd) -> None:
    case = CASES[name]
    path = tmp_path / "m.yaml"
    path.write_text(case.text)

    checked = cli(capfd, "validate", "-f", str(path))
    run = cli(capfd, "reconcile", "-f", str(path), "--owner", "limits")

    assert checked.code == 1, (case.source, checked.text)
    for part in case.expect:
        assert part in checked.err, (case.source, checked.err)
    assert located(checked.err, str(path)), checked.err
    assert run.code == 1 and run.err == checked.err, run.text
    assert sum(counted.calls.values()) == 0, counted.calls   # all-or-nothing: not one request, so no write


def test_the_valid_base_is_valid(tmp_path: Path, capfd) -> None:
    (tmp_path / "m.yaml").write_text(VALID)
    run = cli(capfd, "validate", "-f", str(tmp_path / "m.yaml"))
    assert run.code == 0, run.err


def test_ten_containers_and_names_at_the_limit_are_valid(tmp_path: Path, capfd) -> None:
    """The bounds themselves pass: 10 containers, a 966-character name in us-east-1 (45 + 966 = 1011)."""
    text = swap(containers(10), "  name: /limits/db", "  name: /" + "x" * 966)
    (tmp_path / "m.yaml").write_text(text)
    run = cli(capfd, "validate", "-f", str(tmp_path / "m.yaml"))
    assert run.code == 0, run.err


# --- 18: YAML merge keys ---------------------------------------------------------------------------

MERGED = swap(VALID, "    - name: web\n      image: nginx\n      memory: 128\n",
              "    - &app\n      name: web\n      image: nginx\n      memory: 128\n"
              "    - <<: *app\n      name: b\n      memory: 256\n")


def test_a_merge_with_an_override_is_valid_and_the_explicit_keys_win(tmp_path: Path) -> None:
    """yaml.org/type/merge.html: keys of the mapping itself override the merged ones."""
    from controller.manifests import loader
    (tmp_path / "m.yaml").write_text(MERGED)
    manifest = loader.load(tmp_path / "m.yaml")
    second = manifest.get("TaskDefinition", "web").spec.ecs_fields()["containerDefinitions"][1]
    assert second["name"] == "b" and second["memory"] == 256 and second["image"] == "nginx"
    assert second["secrets"] == [{"name": "DB", "valueFrom": "/limits/db"}]


def test_the_first_merged_mapping_wins_and_own_duplicates_are_still_refused(tmp_path: Path, capfd) -> None:
    from controller.manifests.yamlload import YamlProblem, load_documents
    doc = load_documents("a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nc: {<<: [*a, *b], y: 3}\n")[0].data
    assert doc["c"] == {"x": 1, "y": 3, "z": 2}
    with pytest.raises(YamlProblem, match="duplicate key 'x'") as exc:
        load_documents("a: &a {x: 1}\nc:\n  <<: *a\n  x: 2\n  x: 3\n")
    assert exc.value.line == 5


def test_a_merged_anchor_reused_elsewhere_is_not_a_duplicate(tmp_path: Path) -> None:
    from controller.manifests.yamlload import load_documents
    doc = load_documents("a: &a {x: 1}\nb: &b {<<: *a, x: 2}\nc: {<<: *b}\nd: *b\n")[0].data
    assert doc["b"] == doc["c"] == doc["d"] == {"x": 2}


def test_a_merge_of_a_scalar_is_located(tmp_path: Path, capfd) -> None:
    (tmp_path / "m.yaml").write_text(swap(PARAM, "spec:\n", "spec:\n  <<: 5\n"))
    run = cli(capfd, "validate", "-f", str(tmp_path / "m.yaml"))
    assert run.code == 1 and "m.yaml:5" in run.err and "<< merges a mapping" in run.err, run.err


def test_a_plain_equals_sign_is_a_string(tmp_path: Path) -> None:
    """PyYAML resolves a plain ``=`` to the YAML 1.1 value type and has no constructor for it."""
    from controller.manifests.yamlload import load_documents
    assert load_documents("a: =\n")[0].data == {"a": "="}


# --- 16: the owner id is a tag value on SSM, IAM and ECS -------------------------------------------

OWNERS = {
    "300-characters": ("o" * 300, "300 characters, over AWS's 256"),
    "comma": ("team,a", "','"),
    "newline": ("team\na", "U+000A"),
    "aws-prefix": ("AWS:team", "'aws:'"),
    "empty": ("", "empty"),
}


@pytest.mark.parametrize("name", sorted(OWNERS))
@pytest.mark.parametrize("command", ["validate", "reconcile", "run"])
def test_a_bad_owner_is_refused_before_any_request(name: str, command: str, counted: FaultProxy, tmp_path: Path,
                                                   capfd) -> None:
    """IAM Tag Value (API_Tag) and the SSM and ECS models' TagValue: 0-256 of [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@];
    ECS Tag: values starting with aws: are reserved. The owner lands on all three (``desired.OWNER_TAG``)."""
    owner, expect = OWNERS[name]
    (tmp_path / "m.yaml").write_text(VALID)
    extra = ["--once", "--metrics-port", "0"] if command == "run" else []
    run = cli(capfd, command, "-f", str(tmp_path / "m.yaml"), "--owner", owner, *extra)
    assert run.code == 1, run.text
    assert run.err.startswith("error: --owner") and expect in run.err, run.err
    assert sum(counted.calls.values()) == 0, counted.calls


def test_an_owner_of_256_tag_characters_is_valid(tmp_path: Path, capfd) -> None:
    (tmp_path / "m.yaml").write_text(VALID)
    owner = "Team é 1_.:/=+-@" + "x" * 240
    run = cli(capfd, "validate", "-f", str(tmp_path / "m.yaml"), "--owner", owner)
    assert run.code == 0, run.err


# --- 15: parse_arn and verify ----------------------------------------------------------------------

@pytest.mark.parametrize("text", [f"{ARN}/limits/db\n", f"{ARN}/limits/db\r\n", f"{ARN}/limits/ db",
                                  "/limits/db\n", "/limits/db\x00"])
def test_a_reference_with_whitespace_or_control_characters_is_refused(text: str) -> None:
    """ECS hands valueFrom to SSM as written; SSM parameter names hold only a-zA-Z0-9_.-/ (PutParameter Name)."""
    from controller.vocab.arns import BadReference, parse_value_from
    with pytest.raises(BadReference, match="whitespace or a control character"):
        parse_value_from(text)


def test_an_arn_with_a_trailing_newline_does_not_parse() -> None:
    """re's "$" matches before a final newline; an ARN parsed that way lost the newline ECS would keep."""
    from controller.vocab.arns import parse_arn
    assert parse_arn(f"{ARN}/limits/db\n") is None
    assert parse_arn(f"{ARN}/limits/db").resource == "parameter/limits/db"
