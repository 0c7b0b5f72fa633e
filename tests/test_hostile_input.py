"""Hostile and broken input: every bad manifest is refused with exit 1, a message that names the file,
the object and the field (where there is one), and zero writes to AWS — counted at a proxy in front
of moto. Refusals that need no AWS (``validate``) make no request at all, in ``reconcile`` too.

Each case says at which stage it is refused:
- ``manifest``: by loading and checking the manifests; ``validate`` refuses it, and ``reconcile``
  refuses it before its first request;
- ``values``: the manifests are valid but a value is not (unset, unreadable, too big); ``reconcile``
  refuses it before its first request;
- ``aws``: only AWS can tell (another account, a role that does not exist); ``reconcile`` reads,
  then refuses before its first write.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

pytest.register_assert_rewrite("faultkit")
from faultkit import cli, direct, fast_aws  # noqa: E402,F401 - fast_aws is a fixture
from faultproxy import FaultProxy  # noqa: E402

PARAM = """apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: db}
spec:
  name: /hostile/db
  value: {fromEnv: HOSTILE_DB}
"""
ROLE = """apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: exec}
spec: {roleName: hostile-exec}
"""
TASK = """apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: web}
spec:
  family: hostile-web
  executionRole: exec
  containerDefinitions:
    - name: web
      image: nginx
      memory: 128
      secrets:
        - {name: DB, valueFrom: /hostile/db}
"""
VALID = "---\n".join([PARAM, ROLE, TASK])


def swap(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def param(name: str = "db", ssm: str = "/hostile/other", extra: str = "  value: {generate: {}}\n") -> str:
    return f"---\napiVersion: ecs-secrets/v1\nkind: Parameter\nmetadata: {{name: {name}}}\nspec:\n  name: {ssm}\n{extra}"


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def big_policy() -> str:
    """120 parameters with long names read by one task: the derived inline policy passes 10,240 characters."""
    names = [f"/hostile/{'x' * 60}/p{i:03d}" for i in range(120)]
    params = "".join(param(f"p{i:03d}", n) for i, n in enumerate(names))
    secrets = "".join(f"        - {{name: S{i}, valueFrom: {n}}}\n" for i, n in enumerate(names))
    return PARAM + "---\n" + ROLE + "---\n" + swap(TASK, "        - {name: DB, valueFrom: /hostile/db}\n", secrets) + params


@dataclass
class Case:
    files: dict[str, str | bytes] | Callable[[Path], None]
    expect: tuple[str, ...]                 # substrings of stderr: the object, the field, the reason
    stage: str = "manifest"                 # manifest | values | aws
    env: dict[str, str] = field(default_factory=lambda: {"HOSTILE_DB": "hostile-db-value"})


def symlink_outside(folder: Path) -> None:
    outside = folder.parent / "elsewhere.yaml"
    outside.write_text(VALID)
    (folder / "a.yaml").symlink_to(outside)


def symlink_loop(folder: Path) -> None:
    (folder / "a.yaml").symlink_to(folder / "b.yaml")
    (folder / "b.yaml").symlink_to(folder / "a.yaml")


def symlinked_folder(folder: Path) -> None:
    other = folder.parent / "other"
    other.mkdir()
    (other / "x.yaml").write_text(VALID)
    (folder / "all.yaml").write_text(VALID)
    (folder / "more.yaml").symlink_to(other, target_is_directory=True)


def folder_named_yaml(folder: Path) -> None:
    (folder / "sub.yaml").mkdir()
    (folder / "sub.yaml" / "x.yaml").write_text(VALID)
    (folder / "all.yaml").write_text(VALID)


CASES: dict[str, Case] = {
    # YAML itself
    "does-not-parse": Case({"m.yaml": "apiVersion: ecs-secrets/v1\nkind: [Parameter\n"}, ("m.yaml:", "YAML does not parse")),
    "duplicate-key": Case({"m.yaml": swap(PARAM, "  name: /hostile/db\n", "  name: /hostile/db\n  name: /hostile/db2\n")},
                          ("m.yaml:6", "duplicate key 'name'")),
    "deep-nesting-flow": Case({"m.yaml": "a: " + "[" * 10000 + "]" * 10000 + "\n"}, ("m.yaml:1", "nested deeper than 50")),
    "deep-nesting-block": Case({"m.yaml": "a:\n" + "".join("  " * i + "- \n" for i in range(1, 200))},
                               ("m.yaml:", "nested deeper than 50")),
    "billion-laughs": Case({"m.yaml": billion_laughs()}, ("m.yaml:", "more than 200,000 values")),
    "python-tag": Case({"m.yaml": "apiVersion: ecs-secrets/v1\nkind: !!python/object/apply:os.system ['true']\n"},
                       ("m.yaml:", "kind")),
    "non-utf8-bytes": Case({"m.yaml": PARAM.encode().replace(b"/hostile/db", b"/hostile/d\xe9b")},
                           ("m.yaml:5", "not valid UTF-8", "0xe9")),
    "nul-byte": Case({"m.yaml": PARAM.replace("name: db}", "name: d\x00b}")}, ("m.yaml:", "control characters")),
    "two-megabytes": Case({"m.yaml": VALID + "#" * 2_000_000 + "\n"}, ("m.yaml:1", "limited to 1,048,576 bytes")),
    "empty-file": Case({"m.yaml": "", "ok.yaml": VALID}, ("m.yaml:1", "holds no documents")),
    "only-comments": Case({"m.yaml": "# a comment\n# another\n", "ok.yaml": VALID}, ("m.yaml:1", "holds no documents")),
    "only-separators": Case({"m.yaml": "---\n---\n...\n", "ok.yaml": VALID}, ("m.yaml:1", "holds no documents")),
    "not-a-mapping": Case({"m.yaml": "- apiVersion: ecs-secrets/v1\n"}, ("m.yaml:1", "must be a mapping")),
    # the document's shape
    "wrong-api-version": Case({"m.yaml": swap(PARAM, "ecs-secrets/v1", "ecs-secrets/v2")},
                              ("Parameter/db", "apiVersion", "must be 'ecs-secrets/v1'")),
    "lookalike-kind": Case({"m.yaml": swap(PARAM, "kind: Parameter", "kind: P\u0430rameter")},
                           ("m.yaml:2", "kind", "unknown kind")),
    "lookalike-field": Case({"m.yaml": swap(PARAM, "spec:", "\u0455pec:")}, ("Parameter/db", "\u0455pec", "unknown field")),
    "unknown-field": Case({"m.yaml": swap(PARAM, "  name: /hostile/db", "  nmae: /hostile/db")},
                          ("Parameter/db", "spec.nmae", "unknown field")),
    "unknown-ecs-field": Case({"m.yaml": swap(VALID, "      memory: 128", "      memroy: 128")},
                              ("TaskDefinition/web", "containerDefinitions[0].memroy")),
    "name-not-a-string": Case({"m.yaml": swap(PARAM, "  name: /hostile/db", "  name: 12")},
                              ("Parameter/db", "spec.name", "string")),
    "two-value-sources": Case({"m.yaml": swap(PARAM, "{fromEnv: HOSTILE_DB}", "{fromEnv: HOSTILE_DB, literal: x}")},
                              ("Parameter/db", "spec.value", "exactly one of")),
    "generate-too-short": Case({"m.yaml": swap(PARAM, "{fromEnv: HOSTILE_DB}", "{generate: {length: 3}}")},
                               ("Parameter/db", "spec.value.generate.length")),
    "keep-revisions-zero": Case({"m.yaml": swap(VALID, "  family: hostile-web\n", "  family: hostile-web\n  keepRevisions: 0\n")},
                                ("TaskDefinition/web", "spec.keepRevisions")),
    # names
    "uppercase-metadata-name": Case({"m.yaml": swap(PARAM, "name: db}", "name: DB}")}, ("Parameter/DB", "metadata.name")),
    "lookalike-parameter-name": Case({"m.yaml": swap(VALID, "  name: /hostile/db", "  name: /hostile/d\u043eb")},
                                     ("Parameter/db", "spec.name", "U+043E")),
    "parameter-path-without-slash": Case({"m.yaml": swap(PARAM, "/hostile/db", "hostile/db")},
                                         ("Parameter/db", "spec.name", "must start with '/'")),
    "parameter-16-levels": Case({"m.yaml": swap(PARAM, "/hostile/db", "/a" * 16)}, ("Parameter/db", "spec.name", "15 levels")),
    "parameter-aws-prefix": Case({"m.yaml": swap(PARAM, "/hostile/db", "/aws/db")}, ("Parameter/db", "spec.name", "'aws' or 'ssm'")),
    "parameter-ssm-prefix": Case({"m.yaml": swap(PARAM, "/hostile/db", "SSM-db")}, ("Parameter/db", "spec.name", "'aws' or 'ssm'")),
    "parameter-name-too-long": Case({"m.yaml": swap(PARAM, "/hostile/db", "/" + "x" * 1100)},
                                    ("Parameter/db", "spec.name", "over SSM's 1011")),
    "lookalike-family": Case({"m.yaml": swap(VALID, "family: hostile-web", "family: hostile\u2010web")},
                             ("TaskDefinition/web", "spec.family", "U+2010")),
    "bad-container-name": Case({"m.yaml": swap(VALID, "    - name: web", "    - name: web server")},
                               ("TaskDefinition/web", "containerDefinitions[0].name")),
    "lookalike-role-name": Case({"m.yaml": swap(VALID, "roleName: hostile-exec", "roleName: hostile-\u0435xec")},
                                ("ExecutionRole/exec", "spec.roleName", "U+0435")),
    "duplicate-objects": Case({"m.yaml": VALID + param("db")}, ("Parameter/db", "metadata.name", "duplicate")),
    "duplicate-ssm-names": Case({"m.yaml": VALID + param("db2", "/hostile/db")}, ("Parameter/db2", "spec.name", "duplicate")),
    "reserved-tag-key": Case({"m.yaml": swap(PARAM, "spec:\n", "spec:\n  tags: {'aws:owner': me}\n")},
                             ("Parameter/db", "spec.tags.aws:owner", "reserved")),
    # values and keys
    "securestring-literal": Case({"m.yaml": swap(PARAM, "{fromEnv: HOSTILE_DB}", "{literal: hunter2}")},
                                 ("Parameter/db", "spec.value.literal", "never sits in a manifest")),
    "literal-over-4kb-standard": Case({"m.yaml": swap(PARAM, "  value: {fromEnv: HOSTILE_DB}",
                                                      "  type: String\n  value: {literal: '" + "v" * 4097 + "'}")},
                                      ("Parameter/db", "spec.value.literal", "4097 bytes", "Standard")),
    "kms-key-on-string": Case({"m.yaml": swap(PARAM, "spec:\n", "spec:\n  type: String\n  kmsKeyId: alias/k\n")},
                              ("Parameter/db", "spec.kmsKeyId", "only to SecureString")),
    "alias-without-prefix": Case({"m.yaml": swap(PARAM, "spec:\n", "spec:\n  kmsKeyId: MyKey\n")},
                                 ("Parameter/db", "spec.kmsKeyId", "alias/MyKey")),
    "value-for-secretsmanager-name": Case({"m.yaml": swap(PARAM, "/hostile/db", "/aws/reference/secretsmanager/db")},
                                          ("Parameter/db", "spec.value", "Secrets Manager")),
    # references
    "secrets-without-role": Case({"m.yaml": swap(VALID, "  executionRole: exec\n", "")},
                                 ("TaskDefinition/web", "spec.containerDefinitions", "execution role")),
    "bad-role-reference": Case({"m.yaml": swap(VALID, "executionRole: exec", "executionRole: 'no such role!'")},
                               ("TaskDefinition/web", "spec.executionRole")),
    "name-for-other-region": Case({"m.yaml": swap(VALID, "  value: {fromEnv: HOSTILE_DB}", "  region: eu-west-1\n  value: {fromEnv: HOSTILE_DB}")},
                                  ("TaskDefinition/web", "valueFrom", "eu-west-1", "full ARN")),
    "two-accounts": Case({"m.yaml": swap(VALID, "valueFrom: /hostile/db}",
                                         "valueFrom: 'arn:aws:ssm:us-east-1:111111111111:parameter/a'}\n"
                                         "        - {name: B, valueFrom: 'arn:aws:ssm:us-east-1:222222222222:parameter/b'}")},
                         ("TaskDefinition/web", "valueFrom", "2 accounts")),
    "not-an-arn": Case({"m.yaml": swap(VALID, "valueFrom: /hostile/db", "valueFrom: 'arn:aws:s3:::bucket/key'")},
                       ("TaskDefinition/web", "valueFrom", "neither an SSM parameter ARN")),
    "inline-policy-over-10240": Case({"m.yaml": big_policy()}, ("ExecutionRole/exec", "spec.inlinePolicyName", "10,240")),
    # the folder
    "symlink-outside-folder": Case(symlink_outside, ("a.yaml", "outside the manifest folder")),
    "symlink-loop": Case(symlink_loop, ("a.yaml", "looping symlink")),
    "symlinked-folder": Case(symlinked_folder, ("more.yaml", "outside the manifest folder")),
    "folder-named-like-a-manifest": Case(folder_named_yaml, ("sub.yaml", "folders are not read")),
    # values, known only when reconcile runs
    "env-unset": Case({"m.yaml": VALID}, ("Parameter/db", "spec.value.fromEnv", "HOSTILE_DB is not set"), "values", {}),
    "file-missing": Case({"m.yaml": swap(VALID, "{fromEnv: HOSTILE_DB}", "{fromFile: /nonexistent/db}")},
                         ("Parameter/db", "spec.value.fromFile", "cannot read"), "values"),
    # values that validate can read already (a set variable, a readable file): sized there, never said how long
    "value-over-4kb-standard": Case({"m.yaml": VALID}, ("Parameter/db", "spec.value", "over the Standard tier"),
                                    env={"HOSTILE_DB": "s" * 4097}),
    "empty-value": Case({"m.yaml": VALID}, ("Parameter/db", "spec.value", "empty"), env={"HOSTILE_DB": ""}),
    # only AWS can tell
    "arn-of-another-account": Case({"m.yaml": swap(VALID, "valueFrom: /hostile/db", "valueFrom: 'arn:aws:ssm:us-east-1:111111111111:parameter/hostile/db'")},
                                   ("TaskDefinition/web", "account 111111111111"), "aws"),
    "role-that-does-not-exist": Case({"m.yaml": swap(VALID, "executionRole: exec", "executionRole: hostile-missing-role")},
                                     ("TaskDefinition/web", "hostile-missing-role does not exist"), "aws"),
}


@pytest.fixture
def counted(fast_aws: str, monkeypatch: pytest.MonkeyPatch):
    """A proxy with no faults in front of moto, counting every request the CLI makes."""
    with FaultProxy(fast_aws) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        yield proxy


def materialise(case: Case, folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    folder.mkdir()
    if callable(case.files):
        case.files(folder)
    else:
        for name, content in case.files.items():
            (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.delenv("HOSTILE_DB", raising=False)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    return str(folder)


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_refused_with_no_write(name: str, counted: FaultProxy, tmp_path: Path, monkeypatch, capfd) -> None:
    case = CASES[name]
    path = materialise(case, tmp_path / "manifests", monkeypatch)

    checked = cli(capfd, "validate", "-f", path)
    assert checked.code == (1 if case.stage == "manifest" else 0), checked.text
    assert sum(counted.calls.values()) == 0   # validate never calls AWS
    run = cli(capfd, "reconcile", "-f", path, "--owner", f"hostile-{name}")

    assert run.code == 1, run.text[-2000:]
    assert counted.writes() == 0, counted.calls
    if case.stage != "aws":
        assert sum(counted.calls.values()) == 0, counted.calls
    message = checked.err if case.stage == "manifest" else run.err
    for part in case.expect:
        assert part in message, message[-2000:]
    assert "Traceback" not in run.err
    assert len(run.err) < 20_000   # a 2 MB file or a bomb is not echoed back


def test_pure_python_yaml_refuses_deep_nesting_too(monkeypatch, tmp_path: Path, capfd) -> None:
    """Without libyaml, PyYAML's composer recurses; the refusal is the same."""
    from controller.manifests import yamlload
    monkeypatch.setattr(yamlload, "_Loader", yaml.SafeLoader)
    (tmp_path / "m.yaml").write_text("a: " + "[" * 20000 + "]" * 20000 + "\n")
    run = cli(capfd, "validate", "-f", str(tmp_path / "m.yaml"))
    assert run.code == 1 and "nested deeper than 50" in run.err


# --- valid, however odd ------------------------------------------------------------------------

def test_json_key_suffix_is_kept_byte_for_byte(counted: FaultProxy, tmp_path: Path, monkeypatch, capfd) -> None:
    """A Secrets Manager ARN with :json-key:version-stage:version-id reaches the task definition as written."""
    arn = direct("secretsmanager", counted.upstream_url).create_secret(
        Name=f"hostile/json-{os.getpid()}-{tmp_path.name[-6:]}", SecretString=json.dumps({"password": "x"}))["ARN"]
    value_from = f"{arn}:password:AWSCURRENT:"
    family = f"hostile-json-{tmp_path.name[-6:].replace('_', '')}"
    text = swap(swap(VALID, "valueFrom: /hostile/db}", f"valueFrom: '{value_from}'}}"), "hostile-web", family)
    text = swap(text, "roleName: hostile-exec", f"roleName: {family}-exec")
    path = materialise(Case({"m.yaml": text}, ()), tmp_path / "manifests", monkeypatch)

    assert cli(capfd, "validate", "-f", path).code == 0
    run = cli(capfd, "reconcile", "-f", path, "--owner", family)

    assert run.code == 0, run.text[-2000:]
    body = direct("ecs", counted.upstream_url).describe_task_definition(taskDefinition=family)["taskDefinition"]
    assert body["containerDefinitions"][0]["secrets"] == [{"name": "DB", "valueFrom": value_from}]
    role = direct("iam", counted.upstream_url).get_role_policy(RoleName=f"{family}-exec", PolicyName="ecs-secrets")
    granted = json.dumps(role["PolicyDocument"])
    assert arn in granted and value_from not in granted   # the policy names the secret, not the key


def test_configmap_symlinks_inside_the_folder_are_read(tmp_path: Path, capfd) -> None:
    """Kubernetes mounts a ConfigMap as file → ..data/file → ..2024_01_01/file: all inside the folder."""
    folder = tmp_path / "mount"
    (folder / "..2024_01_01").mkdir(parents=True)
    (folder / "..2024_01_01" / "all.yaml").write_text(VALID)
    (folder / "..data").symlink_to("..2024_01_01", target_is_directory=True)
    (folder / "all.yaml").symlink_to("..data/all.yaml")
    run = cli(capfd, "validate", "-f", str(folder))
    assert run.code == 0, run.text
    assert "3 objects valid" in run.out
