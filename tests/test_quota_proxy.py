"""The benchmark's quota proxy (bench/quotaproxy.py): AWS's token buckets, and AWS's throttling replies.

What AWS does, and where it says so:
- ECS throttles per account and Region with token buckets, a capacity (burst) and a refill rate per
  group of actions, and answers ThrottlingException "Rate exceeded" with HTTP 400:
  https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html
- Parameter Store's throughput quota is per account and Region:
  https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-throughput.html
- IAM and STS answer "Throttling: Rate exceeded, status code: 400" (query protocol, Code ``Throttling``):
  https://repost.aws/knowledge-center/iam-sts-throttling-error
- botocore retries ``Throttling`` and ``ThrottlingException`` with HTTP 400 as throttles:
  botocore/data/_retry.json ("throttling", "throttling_exception").
"""

from __future__ import annotations

import json
import os
from collections import Counter

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import ServiceModel
from botocore.loaders import Loader
from botocore.parsers import create_parser

from bench import quotas
from bench.quotaproxy import Buckets, QuotaProxy, TokenBucket, credential_scope, throttle_reply
from bench.quotas import Quota, QUOTAS, bound, quota_for


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refuses_past_its_burst_and_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1, burst=20, clock=clock)
    assert [bucket.take() for _ in range(20)] == [True] * 20
    assert not bucket.take()
    clock.now += 0.5
    assert not bucket.take()
    clock.now += 0.5
    assert bucket.take() and not bucket.take()
    clock.now += 1000   # refills up to its capacity, not past it
    assert sum(bucket.take() for _ in range(25)) == 20


def test_buckets_are_per_account_and_region_and_iam_per_account_only() -> None:
    clock = Clock()
    qs = (Quota("reg", "ecs", frozenset({"RegisterTaskDefinition"}), 1, 2, "src"),
          Quota("iam", "iam", frozenset(), 1, 1, "src", global_service=True))
    b = Buckets(qs, clock)
    take = lambda acct, region: b.allow("ecs", "RegisterTaskDefinition", acct, region)  # noqa: E731
    assert take("111111111111", "us-east-1") and take("111111111111", "us-east-1")
    assert not take("111111111111", "us-east-1")
    assert take("111111111111", "eu-west-1")        # another Region: its own bucket
    assert take("222222222222", "us-east-1")        # another account: its own bucket
    assert b.allow("ecs", "DescribeClusters", "111111111111", "us-east-1")   # no row: never throttled
    assert b.allow("iam", "CreateRole", "111111111111", "us-east-1")
    assert not b.allow("iam", "GetRole", "111111111111", "eu-west-1")        # IAM is global: one bucket
    assert b.allow("iam", "GetRole", "222222222222", "us-east-1")


def test_the_table_names_the_published_quotas_with_their_sources() -> None:
    reg = quota_for("ecs", "RegisterTaskDefinition")
    assert (reg.rate, reg.burst) == (1, 20) and reg.source == quotas.ECS_THROTTLING
    read = quota_for("ecs", "DescribeTaskDefinition")
    assert (read.rate, read.burst) == (20, 50)
    for op in ("GetParameters", "GetParameter", "PutParameter", "GetParametersByPath"):
        assert quota_for("ssm", op).name == "ssm-throughput"
    assert quota_for("ssm", "GetParameters").rate == 40
    assert quota_for("ssm", "DescribeParameters").rate is None      # no published number: not enforced
    assert quota_for("iam", "CreateRole").rate is None
    assert all(q.source.startswith("https://") for q in QUOTAS)


def test_the_quota_bound_is_the_slowest_bucket_not_their_sum() -> None:
    calls = Counter({("ecs", "RegisterTaskDefinition"): 100, ("ssm", "PutParameter"): 1000,
                     ("ssm", "DescribeParameters"): 500, ("iam", "CreateRole"): 100})
    assert bound(calls) == (80.0, "ecs-taskdef-modify")      # (100 - 20) / 1; SSM: (1000 - 40) / 40 = 24
    assert bound(Counter({("ecs", "DescribeTaskDefinition"): 100, ("ssm", "GetParameters"): 100})) == \
        (2.5, "ecs-taskdef-read")
    assert bound(Counter({("ssm", "GetParameters"): 10})) == (0.0, "")


def test_credential_scope_gives_key_region_and_service() -> None:
    auth = ("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20250101/eu-west-1/ssm/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=abc")
    assert credential_scope(auth) == ("AKIAEXAMPLE", "eu-west-1", "ssm")
    assert credential_scope("") is None


def _parse_error(service: str, status: int, headers: dict, body: bytes) -> dict:
    model = ServiceModel(Loader().load_service_model(service, "service-2"), service)
    parser = create_parser(model.metadata["protocol"])
    op = model.operation_model(model.operation_names[0])
    return parser.parse({"status_code": status, "headers": headers, "body": body}, op.output_shape)["Error"]


@pytest.mark.parametrize("service, code", [("ssm", "ThrottlingException"), ("ecs", "ThrottlingException"),
                                           ("kms", "ThrottlingException"),
                                           ("secretsmanager", "ThrottlingException"),
                                           ("iam", "Throttling"), ("sts", "Throttling")])
def test_each_service_is_answered_in_its_wire_format(service: str, code: str) -> None:
    protocol = "query" if service in ("iam", "sts") else "json"
    status, headers, body = throttle_reply(service, protocol)
    assert status == 400
    if protocol == "json":
        assert json.loads(body) == {"__type": "ThrottlingException", "message": "Rate exceeded"}
    else:
        assert b"<Type>Sender</Type><Code>Throttling</Code>" in body
    # botocore's own parser for the service's protocol reads the code the retry handler matches on
    assert _parse_error(service, status, headers, body)["Code"] == code


@pytest.mark.slow
def test_boto3_through_the_proxy_is_throttled_and_retried_by_botocore(aws_env: str) -> None:
    qs = (Quota("slow", "ecs", frozenset({"DescribeClusters"}), 0.001, 1, "src"),
          Quota("reg", "ecs", frozenset({"ListClusters"}), 1, 1, "src"),
          Quota("iam", "iam", frozenset(), 1, 1, "src", global_service=True))
    with QuotaProxy(aws_env, qs) as proxy:
        once = Config(retries={"mode": "standard", "total_max_attempts": 1})
        ecs = boto3.client("ecs", endpoint_url=proxy.url, config=once)
        ecs.describe_clusters()
        with pytest.raises(ClientError) as refused:
            ecs.describe_clusters()
        assert refused.value.response["Error"]["Code"] == "ThrottlingException"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

        retrying = Config(retries={"mode": "standard", "max_attempts": 10})
        ecs = boto3.client("ecs", endpoint_url=proxy.url, config=retrying)
        iam = boto3.client("iam", endpoint_url=proxy.url, config=retrying)
        answers = [ecs.list_clusters() for _ in range(3)] + [iam.list_roles() for _ in range(3)]
        assert sum(a["ResponseMetadata"]["RetryAttempts"] for a in answers) >= 2   # retried as throttles
        throttled = proxy.throttled()
        assert throttled[("ecs", "ListClusters")] >= 2 and throttled[("iam", "ListRoles")] >= 1


def test_the_proxy_forwards_to_loopback_only() -> None:
    with pytest.raises(ValueError):
        QuotaProxy("http://10.0.0.1:5000")
    assert os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1").startswith(("http://127.0.0.1", "http://local"))


def test_the_idle_daemon_model_polling_against_one_resync_an_hour() -> None:
    from bench import model
    d = quotas.daemon_per_hour(10_000)
    per_pass = model.total(model.noop(10_000, model.AWS))   # the no-op pass of bench/model.py, AWS paging
    assert d["pass"] == per_pass
    assert d["polling"] == per_pass * 60 and d["events"] == per_pass
    assert d["events_no_decrypt"] == per_pass - 1000   # the resync pass without its 1,000 GetParameters
