"""The benchmark's yardstick and workload, as tables: the minimum calls per phase, AWS's and moto's paging."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import model, terraform, workload  # noqa: E402


@pytest.mark.parametrize("items, aws, moto", [
    (0, 1, 1), (1, 1, 1), (9, 1, 1), (10, 1, 2), (50, 1, 6), (51, 2, 6), (100, 2, 11), (1000, 20, 101),
])
def test_describe_pages(items: int, aws: int, moto: int) -> None:
    assert model.AWS.describe(items) == aws
    assert model.MOTO.describe(items) == moto


@pytest.mark.parametrize("n, pages, expected", [
    # 1 sts + ceil(N/10) GetParameters + DescribeParameters pages + IAM + R DescribeTaskDefinition
    # + the ACTIVE revisions listed, 100 a page (the R latest ones; no older revision to describe)
    (100, model.AWS, {("sts", "GetCallerIdentity"): 1, ("ssm", "GetParameters"): 10,
                      ("ssm", "DescribeParameters"): 2, ("iam", "GetAccountAuthorizationDetails"): 1,
                      ("ecs", "DescribeTaskDefinition"): 10, ("ecs", "ListTaskDefinitions"): 1}),
    (1000, model.AWS, {("sts", "GetCallerIdentity"): 1, ("ssm", "GetParameters"): 100,
                       ("ssm", "DescribeParameters"): 20, ("iam", "GetAccountAuthorizationDetails"): 1,
                       ("ecs", "DescribeTaskDefinition"): 100, ("ecs", "ListTaskDefinitions"): 1}),
    (1000, model.MOTO, {("sts", "GetCallerIdentity"): 1, ("ssm", "GetParameters"): 100,
                        ("ssm", "DescribeParameters"): 101, ("iam", "GetAccountAuthorizationDetails"): 1,
                        ("ecs", "DescribeTaskDefinition"): 100, ("ecs", "ListTaskDefinitions"): 1}),
    (10000, model.AWS, {("sts", "GetCallerIdentity"): 1, ("ssm", "GetParameters"): 1000,
                        ("ssm", "DescribeParameters"): 200, ("iam", "GetAccountAuthorizationDetails"): 1,
                        ("ecs", "DescribeTaskDefinition"): 1000, ("ecs", "ListTaskDefinitions"): 10}),
    (5, model.AWS, {("sts", "GetCallerIdentity"): 1, ("ssm", "GetParameters"): 1, ("ssm", "DescribeParameters"): 1,
                    ("iam", "GetAccountAuthorizationDetails"): 1, ("ecs", "DescribeTaskDefinition"): 1, ("ecs", "ListTaskDefinitions"): 1}),
])
def test_noop_model(n: int, pages: model.Pages, expected: dict) -> None:
    assert dict(model.noop(n, pages)) == expected


@pytest.mark.parametrize("n, total", [(100, 53 - 30 + 1 + 1), (1000, 222 + 1), (10000, 2202 + 10)])
def test_noop_totals_on_aws(n: int, total: int) -> None:
    """The issue's formula, with the account-wide role listing standing in for 3 reads per role, plus the
    listing of the ACTIVE revisions (R of them, 100 a page) that keeps a shared role's grants."""
    assert model.total(model.noop(n)) == total


@pytest.mark.parametrize("account_roles, r, iam", [
    (None, 10, {("iam", "GetAccountAuthorizationDetails"): 1}),
    (2500, 100, {("iam", "GetAccountAuthorizationDetails"): 3}),
    (5000, 1, {("iam", "GetRole"): 1, ("iam", "GetRolePolicy"): 1, ("iam", "ListAttachedRolePolicies"): 1}),
    (0, 0, {}),
])
def test_iam_reads_take_the_cheaper_form(account_roles: int | None, r: int, iam: dict) -> None:
    assert dict(model.iam_reads(r, model.AWS, account_roles)) == iam


@pytest.mark.parametrize("n, pages, describes, total", [
    # reads: sts + tag listing (one empty page) + ceil(N/50) name-filtered + GAAD + R + 1 GetPolicy
    # + 1 ListTaskDefinitions (an empty page: no ACTIVE revision yet); writes N + 3R + R
    (100, model.AWS, 3, 1 + 3 + 1 + 10 + 1 + 1 + 100 + 30 + 10),
    (1000, model.AWS, 21, 1 + 21 + 1 + 100 + 1 + 1 + 1000 + 300 + 100),
    (1000, model.MOTO, 21, 1524 + 1),
    (10000, model.MOTO, 201, 1 + 201 + 1 + 1000 + 1 + 1 + 10000 + 3000 + 1000),
])
def test_cold_model(n: int, pages: model.Pages, describes: int, total: int) -> None:
    calls = model.cold(n, pages)
    assert calls[("ssm", "DescribeParameters")] == describes
    assert calls[("ssm", "GetParameters")] == 0  # nothing exists: no value to compare
    assert calls[("ssm", "PutParameter")] == n
    assert model.total(calls) == total


def test_update_is_the_noop_plus_two_writes() -> None:
    diff = model.update(1000, model.MOTO) - model.noop(1000, model.MOTO)
    assert dict(diff) == {("ssm", "PutParameter"): 1, ("ecs", "RegisterTaskDefinition"): 1}
    # the check after the update also describes the revision the update left ACTIVE (a one-shot remembers
    # none), and its 101 ACTIVE revisions take a second page
    assert model.phase("noop2", 1000) == model.noop(1000) + model.Calls({("ecs", "DescribeTaskDefinition"): 1,
                                                                         ("ecs", "ListTaskDefinitions"): 1})


@pytest.mark.parametrize("n, r, files", [(1, 1, 3), (10, 1, 3), (11, 2, 3), (1000, 100, 4), (10000, 1000, 24)])
def test_workload_shape(tmp_path: Path, n: int, r: int, files: int) -> None:
    if n > 1000:
        assert workload.roles_for(n) == r
        return  # writing 10,000 value files is the benchmark's job, not a unit test's
    w = workload.Workload(n, tmp_path).write()
    assert w.r == r
    assert len(list(w.manifests.glob("*.yaml"))) == files
    assert len(list(w.values.iterdir())) == n
    assert all(p.stat().st_mode & 0o077 == 0 for p in w.values.iterdir())  # values: owner-only
    text = "".join(p.read_text() for p in w.manifests.glob("taskdefs-*.yaml"))
    assert text.count("valueFrom") == n
    assert all(len(p.read_bytes()) < 1024 * 1024 for p in w.manifests.iterdir())


def test_update_changes_one_value_and_one_image(tmp_path: Path) -> None:
    w = workload.Workload(20, tmp_path).write()
    before = {p.name: p.read_text() for p in w.values.iterdir()}
    w.update()
    after = {p.name: p.read_text() for p in w.values.iterdir()}
    assert [k for k in before if before[k] != after[k]] == ["p0"]
    tds = (w.manifests / "taskdefs-000.yaml").read_text()
    assert tds.count(workload.UPDATED_IMAGE) == 1 and tds.count(workload.IMAGE) == 1


def test_workload_validates(tmp_path: Path) -> None:
    from controller.core.desired import desire
    from controller.manifests import loader as manifest
    m = desire(manifest.load(workload.Workload(25, tmp_path).write().manifests))
    assert len(m.of("Parameter")) == 25 and len(m.of("ExecutionRole")) == 3 and len(m.of("TaskDefinition")) == 3


@pytest.mark.parametrize("env, why", [
    ({"TERRAFORM": "", "PATH": "/nonexistent"}, "no terraform binary"),
    ({"TERRAFORM": "/bin/true", "TF_PLUGIN_MIRROR": "/nonexistent"}, "TF_PLUGIN_MIRROR=/nonexistent holds no"),
])
def test_terraform_peer_is_skipped_with_a_reason(env: dict, why: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terraform.shutil, "which", lambda name: None)
    found, message = terraform.find(env)
    assert found is None and why in message and "skipped" in message


def test_terraform_mirror_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / terraform.PROVIDER / "5.1.0" / "linux_amd64").mkdir(parents=True)
    (tmp_path / terraform.PROVIDER / "5.10.0").mkdir(parents=True)
    found, _ = terraform.find({"TERRAFORM": "/bin/true", "TF_PLUGIN_MIRROR": str(tmp_path)})
    assert found is not None and found.mirror == tmp_path and found.provider_version in ("5.1.0", "5.10.0")


def test_terraform_hcl_covers_the_workload(tmp_path: Path) -> None:
    w = workload.Workload(25, tmp_path).write()
    tf = terraform.Terraform("/bin/true", tmp_path, "5.100.0")
    hcl = terraform.hcl(w, tf, "http://127.0.0.1:1")
    for resource, count in (("aws_ssm_parameter", 25), ("aws_iam_role", 3), ("aws_iam_role_policy", 3),
                            ("aws_iam_role_policy_attachment", 3), ("aws_ecs_task_definition", 3)):
        block = hcl.split(f'resource "{resource}" ')[1].split("\n}\n")[0]
        assert re.search(rf"count\s+= {count}\n", block), resource
    assert "skip_credentials_validation = true" in hcl and 'version = "= 5.100.0"' in hcl
    assert all(v.read_text() not in hcl for v in w.values.iterdir())  # values stay in their files


@pytest.mark.parametrize("n", [5, 1000, 10000])
def test_a_daemon_no_op_is_the_no_op_without_a_decrypting_read(n: int) -> None:
    """The daemon knows each version it read or wrote (tests/test_version_memory.py counts it)."""
    daemon, once = model.daemon_noop(n), model.noop(n)
    assert ("ssm", "GetParameters") not in daemon
    assert model.total(once) - model.total(daemon) == -(-n // 10)
@pytest.mark.parametrize("older, pages, listings", [(0, model.AWS, 1), (1, model.AWS, 1), (950, model.AWS, 10),
                                                    (950, model.MOTO, 1)])
def test_older_active_revisions_are_listed_and_described_once_each(older: int, pages: model.Pages,
                                                                   listings: int) -> None:
    """N = 500: R = 50 latest revisions, read anyway; each older ACTIVE revision costs one describe."""
    calls = model.noop(500, pages, older=older)
    assert calls[("ecs", "ListTaskDefinitions")] == listings
    assert calls[("ecs", "DescribeTaskDefinition")] == 50 + older
