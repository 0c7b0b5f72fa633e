"""The fault proxy and the counting server, driven by real boto3 clients against moto's server."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from botocore.retries import standard

from awsops import AwsOp, identify, is_write
from faultproxy import FaultProxy, FaultRule

REPO = Path(__file__).resolve().parent.parent

# In a Config, retries "max_attempts" counts retries (1 means two tries); "total_max_attempts" counts tries.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
ONE_RETRY = Config(retries={"total_max_attempts": 2, "mode": "standard"})
RETRIES = Config(retries={"total_max_attempts": 10, "mode": "standard"})

TRUST = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
})

# One read per protocol family: (service, call, expected throttling code).
READS = {
    "ssm": (lambda c: c.get_parameters(Names=["/x"]), "ThrottlingException"),
    "ecs": (lambda c: c.list_clusters(), "ThrottlingException"),
    "kms": (lambda c: c.list_keys(), "ThrottlingException"),
    "secretsmanager": (lambda c: c.list_secrets(), "ThrottlingException"),
    "dynamodb": (lambda c: c.list_tables(), "ThrottlingException"),
    "iam": (lambda c: c.list_roles(), "Throttling"),
    "sts": (lambda c: c.get_caller_identity(), "Throttling"),
}


@pytest.fixture
def proxy(aws_env: str):
    with FaultProxy(aws_env, seed=0) as running:
        yield running


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without botocore's jittered sleeps (up to 1 s, 2 s, 4 s...), to keep the suite fast."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


def client(service: str, url: str, config: Config = NO_RETRIES):
    return boto3.client(
        service, endpoint_url=url, region_name="us-east-1", config=config,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def parameter_names(moto_url: str) -> list[str]:
    """What moto itself holds, asked directly rather than through the proxy."""
    pages = client("ssm", moto_url).get_paginator("describe_parameters").paginate()
    return [p["Name"] for page in pages for p in page["Parameters"]]


def test_passthrough_counts_every_call(proxy: FaultProxy) -> None:
    ssm = client("ssm", proxy.url)
    ssm.put_parameter(Name="/app/db", Value="s3cret", Type="SecureString")
    got = ssm.get_parameters(Names=["/app/db"], WithDecryption=True)["Parameters"]
    iam = client("iam", proxy.url)
    arn = iam.create_role(RoleName="exec", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    ecs = client("ecs", proxy.url)
    ecs.register_task_definition(
        family="web", executionRoleArn=arn,
        containerDefinitions=[{"name": "web", "image": "nginx", "memory": 256,
                               "secrets": [{"name": "DB", "valueFrom": "/app/db"}]}],
    )
    account = client("sts", proxy.url).get_caller_identity()["Account"]

    assert [(p["Name"], p["Value"]) for p in got] == [("/app/db", "s3cret")]
    assert iam.get_role(RoleName="exec")["Role"]["Arn"] == arn
    assert ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]["revision"] == 1
    assert account == "123456789012"
    assert proxy.calls == Counter({
        ("ssm", "PutParameter"): 1, ("ssm", "GetParameters"): 1, ("iam", "CreateRole"): 1,
        ("iam", "GetRole"): 1, ("ecs", "RegisterTaskDefinition"): 1,
        ("ecs", "DescribeTaskDefinition"): 1, ("sts", "GetCallerIdentity"): 1,
    })
    assert proxy.forwarded == proxy.calls
    assert proxy.writes() == 3
    assert proxy.injected == []
    proxy.reset_counts()
    assert proxy.calls == Counter() and proxy.writes() == 0


@pytest.mark.parametrize("service", sorted(READS))
def test_throttle_is_throttling_to_botocore(proxy: FaultProxy, no_backoff: None, service: str) -> None:
    call, code = READS[service]
    proxy.set_rules([FaultRule("throttle")])

    with pytest.raises(ClientError) as once:
        call(client(service, proxy.url, NO_RETRIES))
    with pytest.raises(ClientError) as twice:
        call(client(service, proxy.url, ONE_RETRY))

    assert once.value.response["Error"]["Code"] == code
    assert once.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert twice.value.response["ResponseMetadata"]["RetryAttempts"] == 1  # retried: seen as throttling
    assert sum(proxy.forwarded.values()) == 0
    assert len(proxy.injected) == 3


def test_half_throttled_writes_converge(proxy: FaultProxy, no_backoff: None) -> None:
    proxy.set_rules([FaultRule("throttle", probability=0.5, match="ssm:*")])
    ssm = client("ssm", proxy.url, RETRIES)

    retries = [
        ssm.put_parameter(Name=f"/p/{i}", Value="v", Type="String")["ResponseMetadata"]["RetryAttempts"]
        for i in range(10)
    ]

    assert sorted(parameter_names(proxy.upstream_url)) == sorted(f"/p/{i}" for i in range(10))
    assert sum(retries) == len(proxy.injected) > 0
    assert proxy.calls[("ssm", "PutParameter")] == 10 + sum(retries)
    assert proxy.forwarded[("ssm", "PutParameter")] == 10


@pytest.mark.parametrize(
    ("kind", "service", "status", "code"),
    [
        ("http500", "ssm", 500, "InternalFailure"),
        ("http500", "iam", 500, "InternalFailure"),
        ("http503", "ecs", 503, "ServiceUnavailable"),
        ("http503", "sts", 503, "ServiceUnavailable"),
        ("html502", "ssm", 502, "502"),
        ("html502", "iam", 502, "502"),
    ],
)
def test_server_errors(proxy: FaultProxy, kind: str, service: str, status: int, code: str) -> None:
    proxy.set_rules([FaultRule(kind)])

    with pytest.raises(ClientError) as caught:
        READS[service][0](client(service, proxy.url))

    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert caught.value.response["Error"]["Code"] == code


def test_lost_reply_applies_the_write(proxy: FaultProxy) -> None:
    proxy.set_rules([FaultRule("lost_reply", match="ssm:PutParameter")])

    with pytest.raises(ConnectionClosedError):
        client("ssm", proxy.url).put_parameter(Name="/lost", Value="v", Type="String")

    assert parameter_names(proxy.upstream_url) == ["/lost"]
    assert proxy.injected == [("ssm", "PutParameter", "lost_reply")]


def test_retried_lost_reply_turns_a_create_into_a_conflict(proxy: FaultProxy, no_backoff: None) -> None:
    proxy.set_rules([FaultRule("lost_reply", match="ssm:PutParameter", limit=1)])
    ssm = client("ssm", proxy.url, RETRIES)

    with pytest.raises(ClientError) as caught:
        ssm.put_parameter(Name="/once", Value="v", Type="String")

    assert caught.value.response["Error"]["Code"] == "ParameterAlreadyExists"
    assert parameter_names(proxy.upstream_url) == ["/once"]


def test_reset_before_does_not_forward(proxy: FaultProxy) -> None:
    proxy.set_rules([FaultRule("reset_before", writes_only=True)])
    ssm = client("ssm", proxy.url)

    with pytest.raises(ConnectionClosedError):
        ssm.put_parameter(Name="/never", Value="v", Type="String")
    ssm.describe_parameters()  # a read on a fresh connection passes

    assert parameter_names(proxy.upstream_url) == []
    assert proxy.forwarded == Counter({("ssm", "DescribeParameters"): 1})


def test_reset_before_is_retried(proxy: FaultProxy, no_backoff: None) -> None:
    proxy.set_rules([FaultRule("reset_before", limit=1)])

    reply = client("ssm", proxy.url, RETRIES).put_parameter(Name="/later", Value="v", Type="String")

    assert (reply["Version"], reply["ResponseMetadata"]["RetryAttempts"]) == (1, 1)


def test_slow_reply_times_out_after_the_write(proxy: FaultProxy) -> None:
    proxy.set_rules([FaultRule("slow", delay=0.5)])
    impatient = Config(read_timeout=0.1, retries={"total_max_attempts": 1, "mode": "standard"})

    with pytest.raises(ReadTimeoutError):
        client("ssm", proxy.url, impatient).put_parameter(Name="/slow", Value="v", Type="String")

    assert parameter_names(proxy.upstream_url) == ["/slow"]


def test_glob_and_writes_only_select_operations(proxy: FaultProxy) -> None:
    proxy.set_rules([FaultRule("throttle", match="ssm:*", writes_only=True)])
    ssm = client("ssm", proxy.url)

    ssm.get_parameters(Names=["/x"])
    client("iam", proxy.url).create_role(RoleName="r", AssumeRolePolicyDocument=TRUST)
    with pytest.raises(ClientError):
        ssm.put_parameter(Name="/x", Value="v", Type="String")

    assert proxy.injected == [("ssm", "PutParameter", "throttle")]


def test_same_seed_same_faults(aws_env: str) -> None:
    def run(seed: int) -> list[tuple[str, str, str]]:
        rules = [FaultRule("throttle", probability=0.5), FaultRule("http503", probability=0.5)]
        with FaultProxy(aws_env, seed=seed, rules=rules) as proxy:
            ssm = client("ssm", proxy.url)
            for _ in range(12):
                try:
                    ssm.get_parameters(Names=["/x"])
                except ClientError:
                    pass
            return list(proxy.injected)

    first = run(42)

    assert first == run(42)
    assert 0 < len(first) < 12
    assert {kind for _, _, kind in first} == {"throttle", "http503"}


def test_rule_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultRule("teapot")


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"X-Amz-Target": "AmazonSSM.PutParameter",
          "Authorization": "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/ssm/aws4_request, "
                           "SignedHeaders=host, Signature=0"}, b"{}", ("ssm", "PutParameter", "json")),
        ({"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition"}, b"{}",
         ("ecs", "RegisterTaskDefinition", "json")),
        ({"X-Amz-Target": "TrentService.DescribeKey"}, b"{}", ("kms", "DescribeKey", "json")),
        ({"X-Amz-Target": "DynamoDB_20120810.PutItem"}, b"{}", ("dynamodb", "PutItem", "json")),
        ({"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
          "Authorization": "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/iam/aws4_request, "
                           "SignedHeaders=host, Signature=0"},
         b"Action=CreateRole&Version=2010-05-08&RoleName=r", ("iam", "CreateRole", "query")),
    ],
)
def test_identify(headers: dict[str, str], body: bytes, expected: tuple[str, str, str]) -> None:
    assert identify("POST", "/", headers, body) == AwsOp(*expected)


def test_write_names() -> None:
    assert [is_write(op) for op in ("PutParameter", "DescribeParameters", "LabelParameterVersion",
                                     "DeregisterTaskDefinition", "GetRole", "UntagResource")] == [
        True, False, True, True, False, True]


def test_counting_server_counts_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))
    from bench.countingserver import CountingServer

    with CountingServer() as server:
        ssm = client("ssm", server.url)
        for _ in range(3):
            ssm.get_parameters(Names=["/counted"])
        server.reset_state()  # moto-api calls are not counted

        assert server.counts() == {("ssm", "GetParameters"): 3}
        assert server.writes() == 0
        server.reset_counts()
        assert server.counts() == {}


def test_aws_env_sends_plain_clients_to_moto(aws_env: str) -> None:
    ssm = boto3.client("ssm")  # region, credentials and endpoint all from the environment

    ssm.put_parameter(Name="/env", Value="v", Type="String")

    assert parameter_names(aws_env) == ["/env"]
    assert boto3.client("sts").get_caller_identity()["Account"] == "123456789012"
