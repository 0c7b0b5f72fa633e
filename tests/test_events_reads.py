"""What an event's reconcile reads: the parameters of its objects by name, never the listing of all we own.

Parameter Store behaviour relied on: DescribeParameters takes ParameterFilters ``tag:KEY`` (Equals) and
``Name`` (Equals, at most 50 values) together and returns what matches all of them, at most 50 a page
(AWS Systems Manager API Reference, DescribeParameters and ParameterStringFilter); moto does the same,
10 a page.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from bench.workload import Workload, param_name
from controller import reconcile
from controller.aws import ratelimit
from controller.aws.session import Aws
from controller.core.validate import load

N = 60   # 7 pages of moto's DescribeParameters (10 a page, and one more at the end) to list them all


def _ssm(aws: Aws) -> dict[str, int]:
    return {op: n for (svc, op, _), n in aws.calls.items() if svc == "ssm"}


@pytest.mark.slow
def test_an_event_for_one_parameter_reads_it_by_name_not_every_page_of_ours(aws_env, tmp_path: Path,
                                                                             monkeypatch):
    monkeypatch.setenv(ratelimit.ENV, "off")
    work = Workload(N, tmp_path).write()
    aws = Aws(region="us-east-1", endpoint_url=aws_env)
    desired = load(str(work.manifests), "us-east-1")
    reconcile.execute(aws, reconcile.make(aws, desired, reconcile.Settings()))
    aws.calls.clear()
    full = reconcile.make(aws, desired, reconcile.Settings())
    assert not full.plan.changes and _ssm(aws)["DescribeParameters"] == N // 10 + 1   # the whole listing
    aws.calls.clear()

    one = desired.subset({"Parameter/app7-db-password"})
    result = reconcile.make(aws, one, reconcile.Settings(prune=False))
    assert result.plan.in_sync == ("Parameter/app7-db-password",) and not result.plan.changes
    assert _ssm(aws) == {"DescribeParameters": 1, "GetParameters": 1}
    assert [p.name for p in result.actual.parameters.values()] == [param_name(7)]
    assert result.actual.parameters[("us-east-1", param_name(7))].owned


@pytest.mark.slow
def test_an_event_subset_still_sees_a_parameter_whose_tags_drifted(aws_env, tmp_path: Path, monkeypatch):
    """Not in sync by tags: not found by the tag-and-name call, so read by name, owned, and its tags planned."""
    monkeypatch.setenv(ratelimit.ENV, "off")
    work = Workload(20, tmp_path).write()
    aws = Aws(region="us-east-1", endpoint_url=aws_env)
    desired = load(str(work.manifests), "us-east-1")
    reconcile.execute(aws, reconcile.make(aws, desired, reconcile.Settings()))
    ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=aws_env)
    arn_id = param_name(3)
    tags = {t["Key"] for t in ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=arn_id)["TagList"]}
    deletion = next(k for k in tags if "deletion" in k.lower())
    ssm.remove_tags_from_resource(ResourceType="Parameter", ResourceId=arn_id, TagKeys=[deletion])
    result = reconcile.make(aws, desired.subset({"Parameter/app3-db-password"}), reconcile.Settings(prune=False))
    [change] = result.plan.changes
    assert change.ref == "Parameter/app3-db-password" and change.action == "update"
    assert any("tag" in f.path.lower() for f in change.fields)
