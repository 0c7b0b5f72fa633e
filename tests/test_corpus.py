"""Real DescribeTaskDefinition answers against the manifests a user would write for them.

Each entry of ``tests/corpus`` is a pair: ``NN-name.described.json``, what ECS returned (taken from
a public source named in ``tests/corpus/SOURCES.md``: AWS's own examples, or output that users
published), and ``NN-name.spec.yaml``, the manifest that asks for it. For every pair the spec goes
through the path reconcile takes (loader → desire → resolve) and the described body through
``comparable``, the function the plan uses to decide whether a task definition changed; no field
may differ, and the plan for the pair must be "in sync". An entry that fails means the normaliser
misses something real ECS does, which against a real account is a new revision on every run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from controller.core.desired import DELETION_TAG, OWNER_TAG, Context, desire
from controller.core.plan import diff_values
from controller.core.state import ActualTaskDefinition
from controller.core.taskdef import normalize
from controller.core.taskdef_diff import comparable, task_definition_change
from controller.manifests.loader import load

CORPUS = Path(__file__).parent / "corpus"
SOURCES = CORPUS / "SOURCES.md"
MIN_ENTRIES = 20
_FALLBACK_ACCOUNT, _FALLBACK_REGION = "123456789012", "us-east-1"
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")

# Entries that hold one of the two answers moto never gives, so the table keeps covering issue 10's
# items 1 and 2 (``test_entries_for_items_1_and_2_still_hold_them`` checks that they still do):
# Item 1: ECS answers "enableFaultInjection": false for every task definition registered since
# 2025, also for those that never set it.
# Item 2: a bare role name in executionRoleArn is stored by ECS as the role's full ARN.
_ITEM_1 = "issue 10 item 1: enableFaultInjection false in the answer"
_ITEM_2 = "issue 10 item 2: a bare role name, stored as its ARN"
ECS_ONLY: dict[str, str] = {
    "07-env-files-ephemeral-storage": _ITEM_1,
    "11-env-files-ec2-awsvpc": _ITEM_1,
    "12-efs-volume-fargate": _ITEM_1,
    "13-ssm-arn-secrets-health-check": _ITEM_1,
    "14-fargate-minimal-2026": _ITEM_1,
    "18-secretsmanager-json-keys-efs": _ITEM_1,
    "20-register-with-tags": _ITEM_2,
    "21-split-pdf-env-overrides": _ITEM_1,
}


def _names() -> list[str]:
    return sorted(p.name.removesuffix(".described.json") for p in CORPUS.glob("*.described.json"))


def _params() -> list[Any]:
    return _names()


def _where(arn: str) -> tuple[str, str]:
    """Region and account of the published ARN; published examples often blank the account out."""
    parts = arn.split(":")
    region = parts[3] if len(parts) > 4 and _REGION.match(parts[3]) else _FALLBACK_REGION
    account = parts[4] if len(parts) > 4 and re.fullmatch(r"\d{12}", parts[4]) else _FALLBACK_ACCOUNT
    return region, account


def _pair(name: str) -> tuple[dict[str, Any], dict[str, str], Any, Context]:
    published = json.loads((CORPUS / f"{name}.described.json").read_text())
    described = published["taskDefinition"]
    tags = {t["key"]: t["value"] for t in published.get("tags") or described.get("tags") or []}
    region, account = _where(described["taskDefinitionArn"])
    ctx = Context(account=account, region=region)
    desired = desire(load(CORPUS / f"{name}.spec.yaml", region)).resolve(ctx)
    (td,) = desired.task_definitions
    return described, tags, td, ctx


@pytest.mark.parametrize("name", _params())
def test_described_equals_desired(name: str) -> None:
    described, _, td, ctx = _pair(name)
    assert td.family == described["family"]
    assert diff_values(comparable(described, ctx), comparable(dict(td.body), ctx)) == []


@pytest.mark.parametrize("name", _params())
def test_plan_is_in_sync(name: str) -> None:
    """With the tags it carries (the user's plus ours), the published revision needs no change."""
    described, tags, td, ctx = _pair(name)
    own = {k: v for k, v in td.tags.items() if k not in (OWNER_TAG, DELETION_TAG)}
    assert own == {k: v for k, v in tags.items() if not k.startswith("ecs:")}
    current = ActualTaskDefinition(family=described["family"], arn=described["taskDefinitionArn"],
                                   revision=described.get("revision", 1), body=described,
                                   tags={**tags, **td.tags}, owned=True)
    assert task_definition_change(td, current, ctx) is None


def test_corpus_is_large_enough_and_every_entry_has_a_source() -> None:
    names = _names()
    assert len(names) >= MIN_ENTRIES
    sources = SOURCES.read_text()
    for name in names:
        assert (CORPUS / f"{name}.spec.yaml").is_file(), name
        line = next((ln for ln in sources.splitlines() if ln.startswith(f"| {name} |")), None)
        assert line is not None, f"{name} has no line in SOURCES.md"
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 3 and all(cells), f"{name}: SOURCES.md needs | entry | source | what it exercises |"
    assert set(ECS_ONLY) <= set(names)


def test_corpus_still_sees_a_real_change() -> None:
    """The table is not vacuous: a changed image in any entry is a diff."""
    described, _, td, ctx = _pair("01-hello-world-ec2-links")
    body = json.loads(json.dumps(dict(td.body)))
    body["containerDefinitions"][0]["image"] = "wordpress:6"
    assert diff_values(comparable(described, ctx), comparable(body, ctx)) != []


@pytest.mark.parametrize("name", sorted(ECS_ONLY))
def test_entries_for_items_1_and_2_still_hold_them(name: str) -> None:
    """These entries are in sync only because of the rules for items 1 and 2: they still hold what
    the rule is for, so the table above fails if either rule goes."""
    described, _, td, _ctx = _pair(name)
    if ECS_ONLY[name] == _ITEM_1:
        assert described["enableFaultInjection"] is False and "enableFaultInjection" not in td.body
    else:
        assert not td.body["executionRoleArn"].startswith("arn:") and described["executionRoleArn"].startswith("arn:")


def test_an_empty_task_role_is_no_task_role_but_a_role_is_one() -> None:
    """The rule entry 03 needs, on its own: "" asks for no task role; a named role still counts."""
    base = {"family": "sleep360", "containerDefinitions": [{"name": "sleep", "image": "busybox", "memory": 10}]}
    assert normalize({**base, "taskRoleArn": ""}) == normalize(base)
    assert normalize({**base, "taskRoleArn": "arn:aws:iam::123456789012:role/app"}) != normalize(base)
    assert normalize({**base, "executionRoleArn": ""}) != normalize(base)   # not shown by any source yet
