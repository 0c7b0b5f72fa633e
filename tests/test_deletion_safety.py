"""Deletion safety: --prune deletes only what is ours, marked Delete, unused, within --max-deletions;
keepRevisions and prune never deregister a revision that an ECS service uses.

Everything runs through the CLI (in process) against moto's server; each test has its own names and
its own --owner, so tests share one moto without resets.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import boto3
import pytest

pytest.register_assert_rewrite("faultkit")
from faultkit import OWNER_TAG, cli, direct, doc, fast_aws  # noqa: E402,F401 - fast_aws is a fixture


class Account:
    """One test's corner of moto: a name prefix, an owner id, and the manifests folder."""

    def __init__(self, moto_url: str, folder: Path) -> None:
        self.moto_url, self.folder = moto_url, folder
        self.tag = secrets.token_hex(3)
        self.owner = f"owner-{self.tag}"
        self.ssm, self.iam, self.ecs = (direct(s, moto_url) for s in ("ssm", "iam", "ecs"))

    def name(self, short: str) -> str:
        return f"/prune-{self.tag}/{short}"

    def family(self, short: str) -> str:
        return f"prune-{self.tag}-{short}"

    def parameter(self, short: str, deletion: str = "Delete") -> dict:
        return doc("Parameter", short, {"name": self.name(short), "type": "String", "deletionPolicy": deletion,
                                        "value": {"literal": f"value of {short}"}})

    def task_definition(self, short: str, *params: str, keep: int | None = None, env: str = "1",
                        deletion: str = "Retain") -> dict:
        container = {"name": "app", "image": "nginx", "memory": 64, "environment": [{"name": "V", "value": env}],
                     "secrets": [{"name": f"S{i}", "valueFrom": self.name(p)} for i, p in enumerate(params)]}
        spec = {"family": self.family(short), "containerDefinitions": [container], "deletionPolicy": deletion}
        if params:
            spec["executionRoleArn"] = "arn:aws:iam::123456789012:role/external-exec"
        if keep:
            spec["keepRevisions"] = keep
        return doc("TaskDefinition", short, spec)

    def write(self, *docs: dict) -> str:
        self.folder.mkdir(exist_ok=True)
        for old in self.folder.glob("*.yaml"):
            old.unlink()
        (self.folder / "all.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs) + "\n")
        return str(self.folder)

    def reconcile(self, capfd, *docs: dict, extra: tuple[str, ...] = ()):
        return cli(capfd, "reconcile", "-f", self.write(*docs), "--owner", self.owner, *extra)

    def parameters(self) -> set[str]:
        filters = [{"Key": "Name", "Option": "BeginsWith", "Values": [f"/prune-{self.tag}/"]}]
        return {p["Name"].rsplit("/", 1)[1] for p in self.ssm.describe_parameters(ParameterFilters=filters)["Parameters"]}

    def active(self, short: str) -> list[int]:
        arns = self.ecs.list_task_definitions(familyPrefix=self.family(short), status="ACTIVE")["taskDefinitionArns"]
        return sorted(int(a.rsplit(":", 1)[1]) for a in arns if a.rsplit("/", 1)[1].rsplit(":", 1)[0] == self.family(short))

    def foreign_parameter(self, short: str, tags: dict[str, str]) -> None:
        self.ssm.put_parameter(Name=self.name(short), Value="x", Type="String",
                               Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


@pytest.fixture
def account(fast_aws: str, tmp_path: Path) -> Account:
    return Account(fast_aws, tmp_path / "manifests")


PRUNE = ("--prune",)


def test_prunes_only_owned_parameters_marked_delete(account: Account, capfd) -> None:
    anchor = account.parameter("anchor", "Retain")
    assert account.reconcile(capfd, anchor, account.parameter("ours-delete"),
                             account.parameter("ours-retain", "Retain")).code == 0
    account.foreign_parameter("theirs-delete", {OWNER_TAG: "someone-else", "ecs-secrets:deletion-policy": "Delete"})
    account.foreign_parameter("untagged-delete", {"ecs-secrets:deletion-policy": "Delete"})

    run = account.reconcile(capfd, anchor, extra=PRUNE)

    assert run.code == 0, run.text
    assert "- Parameter/" in run.out and "Plan: 0 to create, 0 to update, 1 to delete." in run.out
    assert account.parameters() == {"anchor", "ours-retain", "theirs-delete", "untagged-delete"}


def test_prune_stops_at_max_deletions_and_deletes_nothing(account: Account, capfd) -> None:
    anchor = account.parameter("anchor", "Retain")
    doomed = [account.parameter(f"p{i}") for i in range(3)]
    assert account.reconcile(capfd, anchor, *doomed).code == 0

    run = account.reconcile(capfd, anchor, extra=PRUNE + ("--max-deletions", "2"))

    assert run.code == 1
    assert "more than --max-deletions 2" in run.err and "nothing was changed" in run.err
    assert account.parameters() == {"anchor", "p0", "p1", "p2"}
    assert account.reconcile(capfd, anchor, extra=PRUNE + ("--max-deletions", "3")).code == 0
    assert account.parameters() == {"anchor"}


def test_never_prunes_a_parameter_an_active_revision_of_any_family_reads(account: Account, capfd) -> None:
    anchor = account.parameter("anchor", "Retain")
    assert account.reconcile(capfd, anchor, account.parameter("read-by-theirs"),
                             account.parameter("read-by-ours"), account.parameter("unread")).code == 0
    theirs = account.ecs.register_task_definition(  # not ours: no owner tag
        family=account.family("theirs"), executionRoleArn="arn:aws:iam::123456789012:role/x",
        containerDefinitions=[{"name": "c", "image": "nginx", "memory": 64,
                               "secrets": [{"name": "S", "valueFrom": account.name("read-by-theirs")}]}])
    ours = account.task_definition("ours", "read-by-ours")

    run = account.reconcile(capfd, anchor, ours, extra=PRUNE)

    assert run.code == 0, run.text
    assert account.parameters() == {"anchor", "read-by-theirs", "read-by-ours"}
    account.ecs.deregister_task_definition(taskDefinition=theirs["taskDefinition"]["taskDefinitionArn"])
    assert account.reconcile(capfd, anchor, ours, extra=PRUNE).code == 0
    assert account.parameters() == {"anchor", "read-by-ours"}


def test_prunes_owned_roles_marked_delete_only(account: Account, capfd) -> None:
    anchor = account.parameter("anchor", "Retain")
    role = lambda short, deletion: doc("ExecutionRole", short, {  # noqa: E731
        "roleName": f"prune-{account.tag}-{short}", "deletionPolicy": deletion,
        "managedPolicyArns": []})
    assert account.reconcile(capfd, anchor, role("gone", "Delete"), role("kept", "Retain")).code == 0
    account.iam.create_role(RoleName=f"prune-{account.tag}-theirs", AssumeRolePolicyDocument="{}",
                            Tags=[{"Key": "ecs-secrets:deletion-policy", "Value": "Delete"}])

    assert account.reconcile(capfd, anchor, extra=PRUNE).code == 0

    names = {r["RoleName"] for r in account.iam.list_roles()["Roles"] if r["RoleName"].startswith(f"prune-{account.tag}")}
    assert names == {f"prune-{account.tag}-kept", f"prune-{account.tag}-theirs"}


def _service(account: Account, family_revision: str) -> str:
    cluster = f"prune-{account.tag}"
    account.ecs.create_cluster(clusterName=cluster)
    account.ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=family_revision, desiredCount=1)
    return cluster


@pytest.mark.parametrize("scope", ["all-clusters", "its-cluster"])
def test_keep_revisions_never_deregisters_a_revision_a_service_uses(scope: str, account: Account, capfd) -> None:
    assert account.reconcile(capfd, account.task_definition("web", keep=1)).code == 0
    cluster = _service(account, f"{account.family('web')}:1")
    extra = PRUNE + (("--cluster", cluster) if scope == "its-cluster" else ())

    for env in ("2", "3"):
        run = account.reconcile(capfd, account.task_definition("web", keep=1, env=env), extra=extra)
        assert run.code == 0, run.text

    assert account.active("web") == [1, 3]   # 2 went; 1 stays for the service, 3 is the newest


def test_keep_revisions_deregisters_when_the_service_is_in_another_cluster(account: Account, capfd) -> None:
    """--cluster narrows the scan: a service outside the named clusters is not looked for (documented)."""
    assert account.reconcile(capfd, account.task_definition("web", keep=1)).code == 0
    _service(account, f"{account.family('web')}:1")
    other = f"prune-{account.tag}-other"
    account.ecs.create_cluster(clusterName=other)

    run = account.reconcile(capfd, account.task_definition("web", keep=1, env="2"), extra=PRUNE + ("--cluster", other))

    assert run.code == 0, run.text
    assert account.active("web") == [2]


def test_prune_never_deregisters_a_revision_a_service_uses(account: Account, capfd) -> None:
    anchor = account.parameter("anchor", "Retain")
    assert account.reconcile(capfd, anchor, account.task_definition("old", deletion="Delete")).code == 0
    assert account.reconcile(capfd, anchor, account.task_definition("old", env="2", deletion="Delete")).code == 0
    _service(account, f"{account.family('old')}:2")

    run = account.reconcile(capfd, anchor, extra=PRUNE)

    assert run.code == 0, run.text
    assert account.active("old") == [2]
    again = cli(capfd, "reconcile", "-f", str(account.folder), "--owner", account.owner, "--prune", "--dry-run",
                "--detailed-exitcode")
    assert again.code == 0, again.text   # the used revision is not a pending deletion


def test_keep_revisions_deregisters_only_with_prune_and_within_max_deletions(account: Account, capfd) -> None:
    """SPEC, "Ownership and deletion": deletion happens only with --prune, and keepRevisions'
    deregistrations count against --max-deletions like every other deletion (one per revision)."""
    web = account.task_definition("web", keep=1)
    assert account.reconcile(capfd, web).code == 0
    described = account.ecs.describe_task_definition(taskDefinition=account.family("web"), include=["TAGS"])
    body, tags = described["taskDefinition"], described["tags"]
    for _ in range(19):   # 19 more owned revisions, equal to the manifest's
        account.ecs.register_task_definition(family=body["family"], containerDefinitions=body["containerDefinitions"],
                                             tags=tags)
    everything = list(range(1, 21))

    run = account.reconcile(capfd, web, extra=("--max-deletions", "1"))
    assert run.code == 0, run.text
    assert account.active("web") == everything          # without --prune nothing is deregistered
    dry = account.reconcile(capfd, web, extra=("--dry-run", "--detailed-exitcode"))
    assert dry.code == 0, dry.text                       # and nothing is pending either

    run = account.reconcile(capfd, web, extra=PRUNE + ("--max-deletions", "1"))
    assert run.code == 1
    assert "would delete 19 objects (19 task-definition revisions)" in run.err, run.err
    assert "more than --max-deletions 1" in run.err and "nothing was changed" in run.err
    assert account.active("web") == everything

    run = account.reconcile(capfd, web, extra=PRUNE + ("--max-deletions", "19"))
    assert run.code == 0, run.text
    assert account.active("web") == [20]


def test_max_deletions_counts_pruned_objects_and_kept_revisions_together(account: Account, capfd) -> None:
    anchor, web = account.parameter("anchor", "Retain"), account.task_definition("web", keep=1)
    assert account.reconcile(capfd, anchor, account.parameter("doomed"), web).code == 0
    assert account.reconcile(capfd, anchor, account.parameter("doomed"), account.task_definition("web", env="2")).code == 0
    assert account.active("web") == [1, 2]

    run = account.reconcile(capfd, anchor, web, extra=PRUNE + ("--max-deletions", "2"))   # revision 3; 1, 2 go

    assert run.code == 1 and "would delete 3 objects (1 parameters, 2 task-definition revisions)" in run.err, run.err
    assert account.parameters() == {"anchor", "doomed"} and account.active("web") == [1, 2]
    assert account.reconcile(capfd, anchor, web, extra=PRUNE + ("--max-deletions", "3")).code == 0
    assert account.parameters() == {"anchor"} and account.active("web") == [3]


# --- other Regions, and roles that revisions run as ------------------------------------------------

OTHER = "eu-west-1"


def _regional(moto_url: str, service: str, region: str):
    return boto3.client(service, endpoint_url=moto_url, region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _parameter_in(account: Account, short: str, region: str, deletion: str = "Delete") -> dict:
    return doc("Parameter", short, {"name": account.name(short), "type": "String", "region": region,
                                    "deletionPolicy": deletion, "value": {"literal": f"value of {short}"}})


def _names_in(account: Account, region: str) -> set[str]:
    ssm = _regional(account.moto_url, "ssm", region)
    filters = [{"Key": "Name", "Option": "BeginsWith", "Values": [f"/prune-{account.tag}/"]}]
    return {p["Name"].rsplit("/", 1)[1] for p in ssm.describe_parameters(ParameterFilters=filters)["Parameters"]}


def test_never_prunes_a_parameter_an_active_revision_in_another_region_reads(account: Account, capfd) -> None:
    """A revision reads a parameter of its own Region by name and one of any other Region by full ARN
    (ECS API reference, Secret.valueFrom: "If the parameter exists in a different Region, then the
    full ARN must be specified"). The in-use scan covers every Region the manifests touch."""
    anchors = (account.parameter("anchor", "Retain"), _parameter_in(account, "anchor-eu", OTHER, "Retain"))
    assert account.reconcile(capfd, *anchors, _parameter_in(account, "read-there", OTHER),
                             account.parameter("read-from-there"), _parameter_in(account, "unread-eu", OTHER)).code == 0
    ecs = _regional(account.moto_url, "ecs", OTHER)
    theirs = ecs.register_task_definition(   # not ours, in eu-west-1
        family=account.family("theirs-eu"), executionRoleArn="arn:aws:iam::123456789012:role/x",
        containerDefinitions=[{"name": "c", "image": "nginx", "memory": 64, "secrets": [
            {"name": "A", "valueFrom": account.name("read-there")},
            {"name": "B", "valueFrom": f"arn:aws:ssm:us-east-1:123456789012:parameter{account.name('read-from-there')}"}]}])

    run = account.reconcile(capfd, *anchors, extra=PRUNE)

    assert run.code == 0, run.text
    assert _names_in(account, OTHER) == {"anchor-eu", "read-there"}
    assert account.parameters() == {"anchor", "read-from-there"}
    ecs.deregister_task_definition(taskDefinition=theirs["taskDefinition"]["taskDefinitionArn"])
    assert account.reconcile(capfd, *anchors, extra=PRUNE).code == 0
    assert _names_in(account, OTHER) == {"anchor-eu"} and account.parameters() == {"anchor"}


@pytest.mark.parametrize("field,form,region", [("executionRoleArn", "arn", "us-east-1"),
                                               ("taskRoleArn", "name", OTHER),
                                               ("executionRoleArn", "upper-case arn with a path", OTHER)])
def test_never_prunes_a_role_an_active_revision_runs_as(field: str, form: str, region: str,
                                                        account: Account, capfd) -> None:
    """ECS API reference, RegisterTaskDefinition: taskRoleArn is "the short name or full ARN" of the
    role, executionRoleArn its ARN; IAM role names are unique regardless of case (IAM User Guide,
    "IAM identifiers"), so a name is matched case-insensitively."""
    anchors = (account.parameter("anchor", "Retain"), _parameter_in(account, "anchor-eu", OTHER, "Retain"))
    role = f"prune-{account.tag}-runs"
    declared = doc("ExecutionRole", "runs", {"roleName": role, "deletionPolicy": "Delete", "managedPolicyArns": []})
    assert account.reconcile(capfd, *anchors, declared).code == 0
    named = {"arn": f"arn:aws:iam::123456789012:role/{role}", "name": role,
             "upper-case arn with a path": f"arn:aws:iam::123456789012:role/team/{role.upper()}"}[form]
    ecs = _regional(account.moto_url, "ecs", region)
    theirs = ecs.register_task_definition(family=account.family("theirs-role"), **{field: named},
                                          containerDefinitions=[{"name": "c", "image": "nginx", "memory": 64}])

    run = account.reconcile(capfd, *anchors, extra=PRUNE)

    assert run.code == 0, run.text
    assert "ExecutionRole" not in run.out
    assert account.iam.get_role(RoleName=role)["Role"]["RoleName"] == role
    ecs.deregister_task_definition(taskDefinition=theirs["taskDefinition"]["taskDefinitionArn"])
    assert account.reconcile(capfd, *anchors, extra=PRUNE).code == 0
    assert role not in {r["RoleName"] for r in account.iam.list_roles()["Roles"]}
