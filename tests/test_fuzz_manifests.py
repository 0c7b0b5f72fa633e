"""Property: whatever the manifests hold, ``validate`` exits 0 or 1, and on 1 every line of its message
names the file and the line — never a traceback, never a bare Python exception (``KeyError: 'value'``).
When validate accepts, the pure core (desired state resolved, values, plan against an empty account,
both renderings, the controller's own policy) runs without raising.

Inputs: the documents of a valid manifest, mutated (values replaced by random ones of every YAML type,
keys dropped or added, random tags, YAML tags such as ``!!float abc`` or ``!!python/dict``, anchors
and merges), dumped as YAML and then mutated as text line by line. CI runs a modest number of examples
(well under 20 s); ``pytest -m slow tests/test_fuzz_manifests.py`` runs 6,000.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.cli import main

BASE: list[dict[str, Any]] = [
    {"apiVersion": "ecs-secrets/v1", "kind": "Parameter", "metadata": {"name": "db", "adopt": False},
     "spec": {"name": "/fuzz/db", "type": "SecureString", "tier": "Standard", "tags": {"team": "a"},
              "value": {"fromEnv": "FUZZ_DB"}, "deletionPolicy": "Retain"}},
    {"apiVersion": "ecs-secrets/v1", "kind": "Parameter", "metadata": {"name": "flag"},
     "spec": {"name": "/fuzz/flag", "type": "String", "value": {"literal": "on"}, "region": "us-east-1"}},
    {"apiVersion": "ecs-secrets/v1", "kind": "Parameter", "metadata": {"name": "gen"},
     "spec": {"name": "gen", "value": {"generate": {"length": 32}}, "kmsKeyId": "alias/fuzz"}},
    {"apiVersion": "ecs-secrets/v1", "kind": "ExecutionRole", "metadata": {"name": "exec"},
     "spec": {"roleName": "fuzz-exec", "path": "/", "tags": {"team": "a"},
              "managedPolicyArns": ["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]}},
    {"apiVersion": "ecs-secrets/v1", "kind": "TaskDefinition", "metadata": {"name": "web"},
     "spec": {"family": "fuzz-web", "executionRole": "exec", "keepRevisions": 2, "cpu": 256, "memory": "512",
              "networkMode": "awsvpc", "tags": [{"key": "team", "value": "a"}],
              "containerDefinitions": [
                  {"name": "web", "image": "nginx", "memory": 128, "essential": True,
                   "portMappings": [{"containerPort": 80}],
                   "environment": [{"name": "MODE", "value": "x"}],
                   "secrets": [{"name": "DB", "valueFrom": "/fuzz/db"},
                               {"name": "FLAG", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/fuzz/flag"},
                               {"name": "TOKEN", "valueFrom":
                                "arn:aws:secretsmanager:us-east-1:123456789012:secret:fuzz/token:key::"}],
                   "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g"},
                                        "secretOptions": [{"name": "k", "valueFrom": "/fuzz/gen"}]}}]}},
]
MERGES = """apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: merged}
spec:
  family: fuzz-merged
  containerDefinitions:
    - &app
      name: a
      image: nginx
      memory: 128
    - <<: *app
      name: b
    - <<: [*app, {cpu: 10}]
      name: c
"""

KEYS = ["name", "value", "key", "valueFrom", "tags", "spec", "kind", "metadata", "containerDefinitions",
        "secrets", "environment", "memory", "executionRole", "executionRoleArn", "taskRoleArn", "family",
        "keepRevisions", "generate", "length", "literal", "fromEnv", "fromFile", "region", "type", "<<", "aws:x"]
WORDS = ["", " ", "\n", "\t", "=", "~", "null", "true", "0", "-5", "1e400", "aws:x", "ecs-secrets:owner",
         "arn:", "arn:aws:ssm:us-east-1:123456789012:parameter/fuzz/db\n", "arn:aws:iam::123456789012:role/x",
         "arn:aws:secretsmanager:us-east-1:123456789012:secret:x:a:b", "arn:aws-cn:ssm:us-east-1:1:parameter/x",
         "/aws/reference/secretsmanager/x", "/fuzz/db", "fuzz/db", "/" + "x" * 1010, "a,b", "a*b", "\x00",
         "\u2028", "é", "Parameter", "TaskDefinition", "ExecutionRole", "SecureString", "Advanced", "exec"]
LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.sampled_from([0, -1, 2 ** 31, 10 ** 30]),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(WORDS))
YAML_TAGS = ["str", "int", "float", "bool", "null", "timestamp", "binary", "set", "omap", "pairs", "map", "seq",
             "value", "merge", "python/dict", "python/object/apply:os.system", "python/name:os.system"]


class Tagged:
    """A value dumped with an explicit tag: ``!!float abc``, ``!local x``, ``!!python/dict {...}``."""

    def __init__(self, tag: str, value: Any) -> None:
        self.tag, self.value = tag, value


def _represent_tagged(dumper: yaml.SafeDumper, data: Tagged) -> yaml.Node:
    while isinstance(data.value, Tagged):   # one tag per node: the innermost value, the outermost tag
        data = Tagged(data.tag, data.value.value)
    if isinstance(data.value, dict):
        return dumper.represent_mapping(data.tag, data.value)
    if isinstance(data.value, list):
        return dumper.represent_sequence(data.tag, data.value)
    return dumper.represent_scalar(data.tag, "" if data.value is None else str(data.value))


class Dumper(yaml.SafeDumper):
    pass


Dumper.add_representer(Tagged, _represent_tagged)


def values() -> st.SearchStrategy[Any]:
    return st.recursive(LEAF, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=3)), max_leaves=6)


def tags() -> st.SearchStrategy[Any]:
    tag = st.dictionaries(st.sampled_from(["key", "value", "Key"]), st.one_of(LEAF, st.sampled_from(WORDS)), max_size=3)
    return st.one_of(st.lists(tag, max_size=4), st.dictionaries(st.sampled_from(WORDS), st.sampled_from(WORDS), max_size=3))


def tagged(draw: Any, value: Any) -> Tagged:
    tag = draw(st.one_of(st.sampled_from(YAML_TAGS).map(lambda t: "tag:yaml.org,2002:" + t), st.just("!local")))
    return Tagged(tag, value)


def paths(node: Any, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, at + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, at + (i,))
    return out


def _set(root: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = root
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return root


def _delete(root: Any, path: tuple) -> None:
    parent = root
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]


def mutate(draw: Any, doc: Any) -> Any:
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.sampled_from(paths(doc)))
        op = draw(st.sampled_from(["replace", "delete", "add", "tag", "tags", "same-object"]))
        target = doc
        for part in where:
            target = target[part]
        if op == "replace":
            doc = _set(doc, where, draw(values()))
        elif op == "delete" and where:
            _delete(doc, where)
        elif op == "add" and isinstance(target, dict):
            target[draw(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)))] = draw(values())
        elif op == "add" and isinstance(target, list):
            target.append(draw(values()))
        elif op == "tag":
            doc = _set(doc, where, tagged(draw, target))
        elif op == "tags":
            spec = doc.get("spec") if isinstance(doc, dict) else None
            if isinstance(spec, dict):
                spec["tags"] = draw(tags())
        elif op == "same-object" and where:   # the dumper writes an anchor and an alias
            other = draw(st.sampled_from(paths(doc)))
            if where[:len(other)] == other:
                continue   # an ancestor of itself: a cycle (covered by test_recursive_anchors_are_refused)
            try:
                doc = _set(doc, where, _get(doc, other))
            except (KeyError, IndexError, TypeError):
                pass
    return doc


def _get(root: Any, path: tuple) -> Any:
    for part in path:
        root = root[part]
    return root


LINE_EDITS = ["!!float abc", "!!int x", "!!bool maybe", "!!timestamp soon", "!!binary ###", "!!set {a}",
              "!!python/dict {a: 1}", "!!python/name:os.system", "!x y", "*nowhere", "&a", "=", "[", "{a: 1, a: 2}",
              "!!str {a: 1}", "!!map x", "<<: 5", "'unterminated", "\"\\x\"", "- a", "~", "| \n  x", "? [a]"]


@st.composite
def manifest_texts(draw: Any) -> str:
    docs = [mutate(draw, copy.deepcopy(d)) for d in draw(st.lists(st.sampled_from(BASE), min_size=1, max_size=4))]
    text = yaml.dump_all(docs, Dumper=Dumper, sort_keys=False, allow_unicode=draw(st.booleans()))
    if draw(st.booleans()):
        text += "---\n" + MERGES
    lines = text.splitlines()
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        head = lines[i].split(": ", 1)[0] if ": " in lines[i] else lines[i]
        lines[i] = f"{head}: {draw(st.sampled_from(LINE_EDITS + WORDS))}"
    return "\n".join(lines) + "\n"


# --- the property ----------------------------------------------------------------------------------

_EXCEPTION_NAME = re.compile(r"\b(?:[A-Z][a-z]+)+(?:Error|Exception)\b|Traceback")
_FOLDER = Path(tempfile.mkdtemp(prefix="fuzz-manifests-"))


def validate(text: str) -> tuple[int, str]:
    path = _FOLDER / "m.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["validate", "-f", str(path), "--owner", "fuzz", "--region", "us-east-1"])
    return code, err.getvalue()


def run_core(path: Path) -> None:
    """Everything pure after validate: it must not raise on anything validate accepted."""
    from controller.core import permissions, render
    from controller.core.desired import desire, placeholder_context
    from controller.core.diff import make_plan
    from controller.core.state import Actual
    from controller.core.values import resolve
    from controller.manifests import loader

    desired = desire(loader.load(path), "fuzz")
    ctx = placeholder_context(desired)
    resolved = desired.resolve(ctx)
    found, _problems = resolve(desired, {"FUZZ_DB": "fuzz-value"}, lambda name: "fuzz-file")
    plan = make_plan(resolved, Actual(ctx=ctx), found)
    render.text(plan)
    render.as_json(plan)
    permissions.policy_for(desired, permissions.Target(account="123456789012", region="us-east-1", partition="aws",
                                                       owner="fuzz", lease_table="lease", prune=True, clusters=()))


def check(text: str) -> None:
    code, err = validate(text)
    assert code in (0, 1), (code, err)
    assert not _EXCEPTION_NAME.search(err), err
    if code == 1:
        lines = err.rstrip("\n").split("\n")
        assert re.fullmatch(r"error: \d+ problems? in the manifests:", lines[0]), err
        for line in lines[1:]:
            assert line.startswith(f"  {_FOLDER / 'm.yaml'}:") and re.match(r"  \S+:\d+: \S", line), err
    else:
        run_core(_FOLDER / "m.yaml")


FAST = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(manifest_texts())
def test_any_manifest_is_accepted_or_refused_with_a_located_message(text: str) -> None:
    check(text)


@pytest.mark.slow
@settings(FAST, max_examples=6000, derandomize=False)
@given(manifest_texts())
def test_any_manifest_is_accepted_or_refused_with_a_located_message_6000(text: str) -> None:
    check(text)


@pytest.mark.parametrize("text", [
    yaml.dump_all(BASE, Dumper=Dumper, sort_keys=False),
    yaml.dump_all(BASE, Dumper=Dumper, sort_keys=False) + "---\n" + MERGES,
], ids=["bases", "bases-and-merges"])
def test_the_unmutated_inputs_are_valid(text: str) -> None:
    """The property would be weak if every input were refused at once: the bases pass validate."""
    code, err = validate(text)
    assert code == 0, err
    run_core(_FOLDER / "m.yaml")


TD = "apiVersion: ecs-secrets/v1\nkind: TaskDefinition\nmetadata: {name: w}\nspec:\n  family: w\n"


@pytest.mark.parametrize("text", [
    # crashes of main: each printed a bare Python exception (no file, no line) or two-line messages
    "apiVersion: ecs-secrets/v1\nkind: !!float abc\n",                 # ValueError
    "apiVersion: ecs-secrets/v1\nkind: !!bool maybe\n",                # KeyError: 'maybe'
    "apiVersion: ecs-secrets/v1\nkind: !!timestamp soon\n",            # AttributeError / TypeError
    "apiVersion: ecs-secrets/v1\nkind: !!int x\n",                     # ValueError
    "apiVersion: ecs-secrets/v1\nkind: =\n",                           # ConstructorError for the "value" tag
    "apiVersion: ecs-secrets/v1\nkind: a\x00b\n",                     # a message over two lines
    TD + "  containerDefinitions: [{name: a, image: b, memory: 128}]\n  tags: [{key: team}]\n",   # KeyError: 'value'
    TD + "  containerDefinitions: [{name: a, image: b, memory: 128}]\n  tags: [{value: x}]\n",    # KeyError: 'key'
    TD + "  containerDefinitions: [{name: a, image: b, memory: 128}]\n  tags: {\"a\\nb\": x}\n",
    "apiVersion: ecs-secrets/v2\nkind: |\n  x\nmetadata: {name: gen}\n",               # a problem over two lines
    "!!int ''\n",                                                        # IndexError (found later by the fuzzer)
], ids=["float", "bool", "timestamp", "int", "equals", "nul", "tag-without-value", "tag-without-key", "tags-mapping",
        "kind-with-newline", "empty-int"])
def test_found_crashes_stay_fixed(text: str) -> None:
    check(text)


def test_recursive_anchors_are_refused() -> None:
    check("apiVersion: ecs-secrets/v1\nkind: Parameter\nmetadata: &m {name: db, labels: *m}\nspec: &s {name: x, <<: *s}\n")
