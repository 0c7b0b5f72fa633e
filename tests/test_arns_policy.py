"""ARN building and policy derivation/comparison: pure, table-driven."""

from __future__ import annotations

import json

import pytest

from controller.vocab import arns, policy


@pytest.mark.parametrize("name, arn", [
    ("/a/b", "arn:aws:ssm:us-east-1:123456789012:parameter/a/b"),
    ("a", "arn:aws:ssm:us-east-1:123456789012:parameter/a"),
    ("/test/database_password", "arn:aws:ssm:us-east-1:123456789012:parameter/test/database_password"),
    ("/aws/reference/secretsmanager/x", "arn:aws:ssm:us-east-1:123456789012:parameter/aws/reference/secretsmanager/x"),
])
def test_parameter_arn_never_doubles_the_slash(name, arn):
    built = arns.parameter_arn("aws", "us-east-1", "123456789012", name)
    assert built == arn and "parameter//" not in built


@pytest.mark.parametrize("resource, name", [("parameter/a/b", "/a/b"), ("parameter/a", "a"), ("parameter/x/y/z", "/x/y/z")])
def test_parameter_name_from_arn(resource, name):
    assert arns.parameter_name_from_arn(resource) == name


@pytest.mark.parametrize("raw, service, name, region, json_key", [
    ("/test/db", "ssm", "/test/db", None, None),
    ("db", "ssm", "db", None, None),
    ("arn:aws:ssm:eu-west-1:123456789012:parameter/a/b", "ssm", "/a/b", "eu-west-1", None),
    ("/aws/reference/secretsmanager/pay/token", "ssm", "/aws/reference/secretsmanager/pay/token", None, None),
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf", "secretsmanager",
     "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf", "us-east-1", None),
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf:password::", "secretsmanager",
     "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf", "us-east-1", "password"),
])
def test_parse_value_from(raw, service, name, region, json_key):
    ref = arns.parse_value_from(raw)
    assert (ref.service, ref.name, ref.region, ref.json_key) == (service, name, region, json_key)


def test_same_region_name_and_arn_are_the_same_reference():
    by_name = arns.parse_value_from("/a/b")
    by_arn = arns.parse_value_from("arn:aws:ssm:us-east-1:123456789012:parameter/a/b")
    assert by_name.key("us-east-1") == by_arn.key("us-east-1")
    assert by_name.key("eu-west-1") != by_arn.key("eu-west-1")


@pytest.mark.parametrize("raw", ["arn:aws:s3:::bucket", "arn:nope", "arn:aws:secretsmanager:us-east-1:123456789012:secret:"])
def test_bad_references(raw):
    with pytest.raises(arns.BadReference):
        arns.parse_value_from(raw)


def test_derive_sorts_exact_arns_and_skips_empty_statements():
    doc = policy.derive(["arn:b", "arn:a", "arn:a"], [], ["arn:k"])
    assert doc == {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadParameters", "Effect": "Allow", "Action": "ssm:GetParameters", "Resource": ["arn:a", "arn:b"]},
        {"Sid": "DecryptWithCustomKeys", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": ["arn:k"]},
    ]}
    assert "*" not in json.dumps(doc)
    assert policy.derive([], [], []) is None


@pytest.mark.parametrize("a, b, same", [
    ({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:x"}]},
     {"Statement": {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:x"]}}, True),
    ({"Statement": [{"Effect": "Allow", "Action": ["a:B", "a:C"], "Resource": "*"}, {"Effect": "Deny", "Action": "x:Y", "Resource": "*"}]},
     {"Statement": [{"Effect": "Deny", "Action": "x:y", "Resource": "*"}, {"Effect": "Allow", "Action": ["a:c", "a:b"], "Resource": "*"}]}, True),
    ('{"Statement": [ {"Effect":"Allow", "Action":"a:b", "Resource":"r"} ] }',
     {"Statement": [{"Sid": "Label", "Effect": "Allow", "Action": "a:b", "Resource": "r"}]}, True),
    ({"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "r1"}]},
     {"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "r2"}]}, False),
    ({"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "r"}]},
     {"Statement": [{"Effect": "Deny", "Action": "a:b", "Resource": "r"}]}, False),
    ({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
     {"Statement": [{"Effect": "Allow", "Principal": {"Service": ["ecs-tasks.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}]}, True),
    ({"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "r", "Condition": {"StringEquals": {"k": "1"}}}]},
     {"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "r", "Condition": {"StringEquals": {"k": "2"}}}]}, False),
    (None, None, True),
    (None, {"Statement": []}, False),
])
def test_policies_compare_by_meaning(a, b, same):
    assert policy.same(a, b) is same


def test_size_ignores_whitespace():
    doc = policy.derive(["arn:a"], [], [])
    assert policy.size(doc) == len(json.dumps(doc, separators=(",", ":")))
