"""Table-driven tests for controller.verify.iam_eval (and controller.verify.conditions behind it).

Examples marked "docs" follow AWS's IAM User Guide pages: Policy evaluation logic, Policy evaluation
for requests within a single account, Permissions boundaries, NotAction, NotResource, Condition
operators, Conditions with multiple context keys or values, and Policy variables.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.verify.conditions import glob_match, wildcard
from controller.vocab import policy as vocab_policy
from controller.verify.iam_eval import Decision, NamedPolicy, Request, Verdict, evaluate, statements

ALLOW, XDENY, IDENY, UNKNOWN = (
    Decision.ALLOW,
    Decision.EXPLICIT_DENY,
    Decision.IMPLICIT_DENY,
    Decision.UNKNOWN,
)
ACCOUNT = "111122223333"
PARAM = f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/app/db/password"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
GET = "ssm:GetParameters"


def allow(action: object = "*", resource: object = "*", **extra: object) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: object = "*", resource: object = "*", **extra: object) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def pol(*stmts: dict, name: str = "p", version: str | None = "2012-10-17") -> NamedPolicy:
    doc: dict = {"Statement": list(stmts)}
    if version:
        doc["Version"] = version
    return NamedPolicy(name, doc)


def req(action: str = GET, resource: str = PARAM, **context: object) -> Request:
    return Request(action, resource, {k.replace("__", ":"): v for k, v in context.items()})


# --- evaluation logic, Action/NotAction, Resource/NotResource, boundaries -----------------------

CARLOS = pol(  # docs: "Policy evaluation for requests within a single account"
    allow(
        ["s3:GetBucketLocation", "s3:GetAccountPublicAccessBlock", "s3:ListAccessPoints", "s3:ListAllMyBuckets"],
        "arn:aws:s3:::*",
        Sid="AllowS3ListRead",
    ),
    allow(
        "s3:*",
        ["arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar/*", "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar"],
        Sid="AllowS3Self",
    ),
    deny("s3:*", "arn:aws:s3:::*log*", Sid="DenyS3Logs"),
    name="carlossalazar",
)
HR_PAYROLL = pol(  # docs: NotResource with Deny
    allow("s3:*", "*"),
    {
        "Effect": "Deny",
        "Action": "s3:*",
        "NotResource": ["arn:aws:s3:::HRBucket/Payroll", "arn:aws:s3:::HRBucket/Payroll/*"],
    },
)
DENY_WITHOUT_MFA = pol(  # docs: NotAction with Deny
    allow("*", "*"),
    {
        "Sid": "DenyAllUsersNotUsingMFA",
        "Effect": "Deny",
        "NotAction": "iam:*",
        "Resource": "*",
        "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
    },
)
SHIRLEY_BOUNDARY = [pol(allow(["s3:*", "cloudwatch:*", "ec2:*"], "*"), name="ShirleyBoundary")]  # docs

EVALUATION_CASES = [
    # basic evaluation logic
    pytest.param([], req(), None, IDENY, id="no-policies-implicit-deny"),
    pytest.param([pol(allow(GET, PARAM))], req(), None, ALLOW, id="exact-allow"),
    pytest.param([pol(allow("ssm:GetParameter", PARAM))], req(), None, IDENY, id="other-action-implicit-deny"),
    pytest.param([pol(allow(GET, PARAM)), pol(deny(GET, PARAM), name="d")], req(), None, XDENY, id="deny-other-policy-wins"),
    pytest.param([pol(deny(GET, PARAM), allow(GET, PARAM))], req(), None, XDENY, id="deny-same-policy-wins"),
    pytest.param([pol(allow(), deny("ssm:PutParameter"))], req(), None, ALLOW, id="deny-other-action-ignored"),
    pytest.param([pol(deny(GET, PARAM))], req(), None, XDENY, id="deny-alone"),
    pytest.param([NamedPolicy("single", {"Statement": allow(GET, PARAM)})], req(), None, ALLOW, id="statement-as-object"),
    pytest.param([NamedPolicy("empty", {"Version": "2012-10-17"})], req(), None, IDENY, id="no-statement-element"),
    pytest.param(
        [pol(allow(GET, PARAM, Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}))], req(), None, ALLOW,
        id="principal-ignored",
    ),
    pytest.param([pol(allow(GET, PARAM, NotPrincipal={"AWS": "x"}))], req(), None, ALLOW, id="notprincipal-ignored"),
    # docs: Carlos and the *log* deny
    pytest.param([CARLOS], req("s3:PutObject", "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar/f.txt"), None, ALLOW, id="docs-carlos-own-bucket"),
    pytest.param([CARLOS], req("s3:PutObject", "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar-logs/f.txt"), None, XDENY, id="docs-carlos-logs-denied"),
    pytest.param([CARLOS], req("s3:GetBucketLocation", "arn:aws:s3:::reports"), None, ALLOW, id="docs-carlos-list-read"),
    pytest.param([CARLOS], req("s3:GetBucketLocation", "arn:aws:s3:::catalog"), None, XDENY, id="docs-carlos-log-substring"),
    pytest.param([CARLOS], req("s3:PutObject", "arn:aws:s3:::reports/f.txt"), None, IDENY, id="docs-carlos-other-bucket"),
    # actions: case-insensitive, wildcards
    pytest.param([pol(allow("iam:*"))], req("IAM:GetUser", "*"), None, ALLOW, id="action-case-insensitive-prefix"),
    pytest.param([pol(allow("SSM:getparameters", PARAM))], req(), None, ALLOW, id="action-case-insensitive-name"),
    pytest.param([pol(allow("ssm:Get*", PARAM))], req(), None, ALLOW, id="action-star-suffix"),
    pytest.param([pol(allow("ssm:*Parameters", PARAM))], req(), None, ALLOW, id="action-star-prefix"),
    pytest.param([pol(allow("ssm:Get*", PARAM))], req("ssm:PutParameter"), None, IDENY, id="action-star-no-match"),
    pytest.param([pol(allow("ssm:GetParamete?s", PARAM))], req(), None, ALLOW, id="action-question-one-char"),
    pytest.param([pol(allow("ssm:GetParameter?", PARAM))], req("ssm:GetParameter"), None, IDENY, id="action-question-needs-a-char"),
    pytest.param([pol(allow("s3:*"))], req("s3x:GetObject", "*"), None, IDENY, id="action-service-prefix-exact"),
    pytest.param([pol(allow(["kms:Decrypt", GET], "*"))], req(), None, ALLOW, id="action-list"),
    pytest.param([pol(allow([], "*"))], req(), None, IDENY, id="action-empty-list"),
    # resources: case-sensitive glob over the whole ARN
    pytest.param([pol(allow(GET, "*"))], req(), None, ALLOW, id="resource-star"),
    pytest.param([pol(allow(GET, "arn:aws:ssm:*:*:parameter/app/*"))], req(), None, ALLOW, id="resource-star-spans-slash"),
    pytest.param([pol(allow(GET, "arn:aws:ssm:*:*:parameter/App/*"))], req(), None, IDENY, id="resource-case-sensitive"),
    pytest.param([pol(allow(GET, "arn:aws:ssm:*:*:parameter/app"))], req(), None, IDENY, id="resource-no-prefix-match"),
    pytest.param([pol(allow(GET, "arn:aws:ssm:*"))], req(), None, ALLOW, id="resource-star-spans-colons"),
    pytest.param([pol(allow(GET, "arn:aws:ssm:eu-west-?:*:parameter/app/db/password"))], req(), None, ALLOW, id="resource-question"),
    pytest.param([pol(allow(GET, "arn:aws:ssm:eu-west-?:*:parameter/app/db/password"))], req(resource=PARAM.replace("eu-west-1", "eu-west-10")), None, IDENY, id="resource-question-one-char"),
    pytest.param([pol(allow(GET, ["arn:aws:ssm:*:*:parameter/other", PARAM]))], req(), None, ALLOW, id="resource-list"),
    # docs: NotAction with Allow
    pytest.param([pol({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})], req("s3:GetObject", "*"), None, ALLOW, id="docs-notaction-allow-everything-else"),
    pytest.param([pol({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})], req("iam:CreateUser", "*"), None, IDENY, id="docs-notaction-allow-excluded"),
    pytest.param([pol({"Effect": "Allow", "NotAction": "s3:DeleteBucket", "Resource": "arn:aws:s3:::*"})], req("s3:GetObject", "arn:aws:s3:::b/k"), None, ALLOW, id="docs-notaction-s3-get"),
    pytest.param([pol({"Effect": "Allow", "NotAction": "s3:DeleteBucket", "Resource": "arn:aws:s3:::*"})], req("s3:DeleteBucket", "arn:aws:s3:::b"), None, IDENY, id="docs-notaction-s3-delete"),
    pytest.param([pol({"Effect": "Allow", "NotAction": "s3:DeleteBucket", "Resource": "arn:aws:s3:::*"})], req("ec2:StopInstances", f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/i-1"), None, IDENY, id="docs-notaction-other-service-resource"),
    # docs: NotAction with Deny (MFA)
    pytest.param([DENY_WITHOUT_MFA], req("s3:GetObject", "*", aws__MultiFactorAuthPresent="false"), None, XDENY, id="docs-notaction-deny-no-mfa"),
    pytest.param([DENY_WITHOUT_MFA], req("s3:GetObject", "*"), None, XDENY, id="docs-notaction-deny-mfa-key-absent"),
    pytest.param([DENY_WITHOUT_MFA], req("s3:GetObject", "*", aws__MultiFactorAuthPresent="true"), None, ALLOW, id="docs-notaction-deny-with-mfa"),
    pytest.param([DENY_WITHOUT_MFA], req("iam:ListUsers", "*", aws__MultiFactorAuthPresent="false"), None, ALLOW, id="docs-notaction-deny-iam-exempt"),
    # docs: NotResource with Deny
    pytest.param([HR_PAYROLL], req("s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/2024.csv"), None, ALLOW, id="docs-notresource-payroll"),
    pytest.param([HR_PAYROLL], req("s3:ListBucket", "arn:aws:s3:::HRBucket/Payroll"), None, ALLOW, id="docs-notresource-payroll-folder"),
    pytest.param([HR_PAYROLL], req("s3:GetObject", "arn:aws:s3:::HRBucket/Benefits/x"), None, XDENY, id="docs-notresource-other-folder"),
    pytest.param([HR_PAYROLL], req("s3:GetObject", "arn:aws:s3:::hrbucket/Payroll/x"), None, XDENY, id="docs-notresource-case-sensitive"),
    pytest.param([HR_PAYROLL], req("ec2:DescribeInstances", "*"), None, IDENY, id="docs-notresource-no-grant"),
    pytest.param([pol({"Effect": "Allow", "Action": "ssm:*", "NotResource": "arn:aws:ssm:*:*:parameter/admin/*"})], req(), None, ALLOW, id="notresource-allow"),
    pytest.param([pol({"Effect": "Allow", "Action": "ssm:*", "NotResource": "arn:aws:ssm:*:*:parameter/admin/*"})], req(resource=PARAM.replace("/app/", "/admin/")), None, IDENY, id="notresource-allow-excluded"),
    # permissions boundaries
    pytest.param([pol(allow("iam:ChangePassword", "*"))], req("iam:ChangePassword", "*"), SHIRLEY_BOUNDARY, IDENY, id="docs-boundary-does-not-allow"),
    pytest.param([pol(allow("s3:*", "*"))], req("s3:GetObject", "arn:aws:s3:::b/k"), SHIRLEY_BOUNDARY, ALLOW, id="docs-boundary-and-identity-allow"),
    pytest.param([], req("s3:GetObject", "arn:aws:s3:::b/k"), SHIRLEY_BOUNDARY, IDENY, id="docs-boundary-alone-grants-nothing"),
    pytest.param([pol(allow())], req(), [pol(allow(), deny("ssm:*"), name="b")], XDENY, id="boundary-explicit-deny"),
    pytest.param([pol(allow())], req(), [], IDENY, id="boundary-empty"),
    pytest.param([pol(allow())], req(), [pol(allow("kms:*"), name="b1"), pol(allow("ssm:Get*"), name="b2")], ALLOW, id="boundary-any-policy-allows"),
    pytest.param([pol(allow())], req(), [pol({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}, name="b")], ALLOW, id="boundary-notaction"),
    # policy variables in Resource
    pytest.param([pol(allow("s3:*", "arn:aws:s3:::home/${aws:username}/*"))], req("s3:GetObject", "arn:aws:s3:::home/carlos/a", aws__username="carlos"), None, ALLOW, id="variable-resolved"),
    pytest.param([pol(allow("s3:*", "arn:aws:s3:::home/${aws:username}/*"))], req("s3:GetObject", "arn:aws:s3:::home/maria/a", aws__username="carlos"), None, IDENY, id="variable-other-user"),
    pytest.param([pol(allow("s3:*", "arn:aws:s3:::home/${AWS:UserName}/*"))], req("s3:GetObject", "arn:aws:s3:::home/carlos/a", aws__username="carlos"), None, ALLOW, id="variable-key-case-insensitive"),
    pytest.param([pol(allow("s3:*", "arn:aws:s3:::home/${aws:username}/*"))], req("s3:GetObject", "arn:aws:s3:::home/carlos/a"), None, UNKNOWN, id="variable-unresolved-unknown"),
    pytest.param([pol(allow("s3:*", "arn:aws:s3:::home/${aws:username}/a"))], req("s3:GetObject", "arn:aws:s3:::home/cxrlos/a", aws__username="c?rlos"), None, IDENY, id="variable-value-is-literal"),
    pytest.param([pol(allow("s3:*", "arn:aws:s3:::home/${aws:PrincipalTag/team, 'shared'}/*"))], req("s3:GetObject", "arn:aws:s3:::home/shared/a"), None, ALLOW, id="variable-default-value"),
    pytest.param([pol(allow("s3:*", "arn:aws:s3:::home/${*}"))], req("s3:GetObject", "arn:aws:s3:::home/*"), None, ALLOW, id="variable-escaped-star-literal"),
    pytest.param([pol(allow("s3:*", "arn:aws:s3:::home/${*}"))], req("s3:GetObject", "arn:aws:s3:::home/a"), None, IDENY, id="variable-escaped-star-not-wildcard"),
    pytest.param([pol(allow("s3:*", "arn:aws:s3:::home/${aws:username}/*"))], req("s3:GetObject", "arn:aws:s3:::home/a/b", aws__username=["a", "b"]), None, UNKNOWN, id="variable-multivalued-unknown"),
    pytest.param([pol(allow("s3:*", "arn:aws:s3:::home/${aws:username}"), version=None)], req("s3:GetObject", "arn:aws:s3:::home/${aws:username}"), None, ALLOW, id="variable-literal-without-version"),
    pytest.param([pol(allow("s3:*", "arn:aws:s3:::home/${aws:username}"), version="2008-10-17")], req("s3:GetObject", "arn:aws:s3:::home/carlos", aws__username="carlos"), None, IDENY, id="variable-literal-in-2008-version"),
    pytest.param([pol({"Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::home/${aws:username}/*"}, allow())], req("s3:GetObject", "arn:aws:s3:::home/x/a"), None, UNKNOWN, id="variable-in-notresource-deny-unknown"),
]


@pytest.mark.parametrize("identity, request_, boundary, expected", EVALUATION_CASES)
def test_evaluate(identity: list[NamedPolicy], request_: Request, boundary: list | None, expected: Decision) -> None:
    assert evaluate(identity, request_, boundary).decision is expected


# --- condition operators: each case runs as an Allow condition and as a Deny condition ---------

TRUE, FALSE, UNK = True, False, None
KMS_CONTEXT = {"kms__ViaService": "ssm.eu-west-1.amazonaws.com", "kms__EncryptionContext:PARAMETER_ARN": PARAM}
CONDITION_CASES = [
    # String
    pytest.param({"StringEquals": {"aws:SourceAccount": ACCOUNT}}, {"aws__SourceAccount": ACCOUNT}, TRUE, id="StringEquals-match"),
    pytest.param({"StringEquals": {"aws:SourceAccount": ACCOUNT}}, {"aws__SourceAccount": "444455556666"}, FALSE, id="StringEquals-mismatch"),
    pytest.param({"StringEquals": {"aws:PrincipalTag/team": "Web"}}, {"aws__PrincipalTag/team": "web"}, FALSE, id="StringEquals-case-sensitive"),
    pytest.param({"StringEquals": {"aws:PrincipalTag/team": ["api", "web"]}}, {"aws__PrincipalTag/team": "web"}, TRUE, id="StringEquals-values-ored"),
    pytest.param({"StringEquals": {"aws:PrincipalTag/team": "web"}}, {}, UNK, id="StringEquals-missing-key-unknown"),
    pytest.param({"StringEquals": {"AWS:SOURCEACCOUNT": ACCOUNT}}, {"aws__sourceaccount": ACCOUNT}, TRUE, id="condition-key-case-insensitive"),
    pytest.param({"StringEquals": {"kms:EncryptionContext:PARAMETER_ARN": PARAM}}, KMS_CONTEXT, TRUE, id="StringEquals-encryption-context"),
    pytest.param({"StringNotEquals": {"aws:SourceAccount": ACCOUNT}}, {"aws__SourceAccount": "444455556666"}, TRUE, id="StringNotEquals-differs"),
    pytest.param({"StringNotEquals": {"aws:SourceAccount": ACCOUNT}}, {"aws__SourceAccount": ACCOUNT}, FALSE, id="StringNotEquals-equal"),
    pytest.param({"StringNotEquals": {"aws:PrincipalTag/role": ["audit", "security"]}}, {"aws__PrincipalTag/role": "audit"}, FALSE, id="StringNotEquals-values-nor"),
    pytest.param({"StringNotEquals": {"aws:PrincipalTag/role": ["audit", "security"]}}, {"aws__PrincipalTag/role": "dev"}, TRUE, id="StringNotEquals-none-equal"),
    pytest.param({"StringNotEquals": {"aws:SourceAccount": ACCOUNT}}, {}, UNK, id="StringNotEquals-missing-key-unknown"),
    pytest.param({"StringEqualsIgnoreCase": {"aws:PrincipalTag/env": "PROD"}}, {"aws__PrincipalTag/env": "prod"}, TRUE, id="StringEqualsIgnoreCase"),
    pytest.param({"StringNotEqualsIgnoreCase": {"aws:PrincipalTag/env": "PROD"}}, {"aws__PrincipalTag/env": "prod"}, FALSE, id="StringNotEqualsIgnoreCase-equal"),
    pytest.param({"StringNotEqualsIgnoreCase": {"aws:PrincipalTag/env": "PROD"}}, {"aws__PrincipalTag/env": "dev"}, TRUE, id="StringNotEqualsIgnoreCase-differs"),
    pytest.param({"StringLike": {"kms:ViaService": "ssm.*.amazonaws.com"}}, KMS_CONTEXT, TRUE, id="StringLike-star"),
    pytest.param({"StringLike": {"kms:ViaService": "ssm.eu-west-?.amazonaws.com"}}, KMS_CONTEXT, TRUE, id="StringLike-question"),
    pytest.param({"StringLike": {"kms:ViaService": "SSM.*"}}, KMS_CONTEXT, FALSE, id="StringLike-case-sensitive"),
    pytest.param({"StringLike": {"kms:ViaService": "ssm"}}, KMS_CONTEXT, FALSE, id="StringLike-needs-wildcard-for-partial"),
    pytest.param({"StringNotLike": {"kms:ViaService": "secretsmanager.*"}}, KMS_CONTEXT, TRUE, id="StringNotLike-differs"),
    pytest.param({"StringNotLike": {"kms:ViaService": ["secretsmanager.*", "ssm.*"]}}, KMS_CONTEXT, FALSE, id="StringNotLike-one-matches"),
    # ARN
    pytest.param({"ArnEquals": {"aws:SourceArn": PARAM}}, {"aws__SourceArn": PARAM}, TRUE, id="ArnEquals-match"),
    pytest.param({"ArnLike": {"aws:SourceArn": f"arn:aws:ssm:*:{ACCOUNT}:parameter/app/*"}}, {"aws__SourceArn": PARAM}, TRUE, id="ArnLike-per-segment"),
    pytest.param({"ArnLike": {"aws:SourceArn": "arn:aws:ssm:*:parameter/*"}}, {"aws__SourceArn": PARAM}, FALSE, id="ArnLike-star-stays-in-segment"),
    pytest.param({"ArnLike": {"aws:SourceArn": "arn:aws:ssm:*:*:*"}}, {"aws__SourceArn": PARAM}, TRUE, id="ArnLike-last-segment-spans"),
    pytest.param({"ArnLike": {"aws:SourceArn": "arn:aws:SSM:*:*:*"}}, {"aws__SourceArn": PARAM}, FALSE, id="ArnLike-case-sensitive"),
    pytest.param({"ArnNotEquals": {"aws:SourceArn": KEY}}, {"aws__SourceArn": PARAM}, TRUE, id="ArnNotEquals"),
    pytest.param({"ArnNotLike": {"aws:SourceArn": "arn:aws:ssm:*:*:parameter/app/*"}}, {"aws__SourceArn": PARAM}, FALSE, id="ArnNotLike-matches"),
    # Bool
    pytest.param({"Bool": {"aws:SecureTransport": "true"}}, {"aws__SecureTransport": "true"}, TRUE, id="Bool-true"),
    pytest.param({"Bool": {"aws:SecureTransport": True}}, {"aws__SecureTransport": "true"}, TRUE, id="Bool-json-boolean"),
    pytest.param({"Bool": {"aws:SecureTransport": "false"}}, {"aws__SecureTransport": "True"}, FALSE, id="Bool-false"),
    pytest.param({"Bool": {"aws:SecureTransport": "true"}}, {}, UNK, id="Bool-missing-unknown"),
    pytest.param({"BoolIfExists": {"aws:SecureTransport": "true"}}, {}, TRUE, id="BoolIfExists-missing"),
    # Null
    pytest.param({"Null": {"aws:TokenIssueTime": "true"}}, {}, TRUE, id="Null-true-absent"),
    pytest.param({"Null": {"aws:TokenIssueTime": "true"}}, {"aws__TokenIssueTime": "2024-01-01T00:00:00Z"}, FALSE, id="Null-true-present"),
    pytest.param({"Null": {"aws:TokenIssueTime": False}}, {"aws__TokenIssueTime": "2024-01-01T00:00:00Z"}, TRUE, id="Null-false-present"),
    pytest.param({"Null": {"aws:TokenIssueTime": "false"}}, {}, FALSE, id="Null-false-absent"),
    pytest.param({"Null": {"aws:TokenIssueTime": "maybe"}}, {}, UNK, id="Null-bad-value-unknown"),
    # Numeric
    pytest.param({"NumericEquals": {"s3:max-keys": "10"}}, {"s3__max-keys": "10"}, TRUE, id="NumericEquals"),
    pytest.param({"NumericNotEquals": {"s3:max-keys": 10}}, {"s3__max-keys": "10.0"}, FALSE, id="NumericNotEquals"),
    pytest.param({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3__max-keys": "5"}, TRUE, id="NumericLessThan"),
    pytest.param({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3__max-keys": "10"}, FALSE, id="NumericLessThan-equal"),
    pytest.param({"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3__max-keys": "10"}, TRUE, id="NumericLessThanEquals"),
    pytest.param({"NumericGreaterThan": {"s3:max-keys": "10"}}, {"s3__max-keys": "5"}, FALSE, id="NumericGreaterThan"),
    pytest.param({"NumericGreaterThanEquals": {"s3:max-keys": "10"}}, {"s3__max-keys": "11"}, TRUE, id="NumericGreaterThanEquals"),
    pytest.param({"NumericEquals": {"s3:max-keys": "10"}}, {"s3__max-keys": "ten"}, FALSE, id="Numeric-not-a-number"),
    # ...IfExists
    pytest.param({"StringEqualsIfExists": {"ec2:InstanceType": "t3.micro"}}, {}, TRUE, id="IfExists-missing"),
    pytest.param({"StringEqualsIfExists": {"ec2:InstanceType": "t3.micro"}}, {"ec2__InstanceType": "m5.large"}, FALSE, id="IfExists-present-mismatch"),
    pytest.param({"StringEqualsIfExists": {"ec2:InstanceType": "t3.micro"}}, {"ec2__InstanceType": "t3.micro"}, TRUE, id="IfExists-present-match"),
    pytest.param({"StringNotEqualsIfExists": {"aws:SourceAccount": ACCOUNT}}, {}, TRUE, id="NotEqualsIfExists-missing"),
    # set operators
    pytest.param({"ForAnyValue:StringEquals": {"aws:TagKeys": ["env", "team"]}}, {"aws__TagKeys": ["owner", "team"]}, TRUE, id="ForAnyValue-one-matches"),
    pytest.param({"ForAnyValue:StringEquals": {"aws:TagKeys": ["env"]}}, {"aws__TagKeys": ["owner"]}, FALSE, id="ForAnyValue-none-match"),
    pytest.param({"ForAnyValue:StringEquals": {"aws:TagKeys": ["env"]}}, {"aws__TagKeys": []}, FALSE, id="ForAnyValue-empty"),
    pytest.param({"ForAnyValue:StringEquals": {"aws:TagKeys": ["env"]}}, {}, UNK, id="ForAnyValue-missing-unknown"),
    pytest.param({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["env"]}}, {"aws__TagKeys": ["env", "owner"]}, TRUE, id="ForAnyValue-negated-per-value"),
    pytest.param({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["env"]}}, {"aws__TagKeys": ["env"]}, FALSE, id="ForAnyValue-negated-all-equal"),
    pytest.param({"ForAllValues:StringNotLike": {"aws:TagKeys": ["aws:*"]}}, {"aws__TagKeys": ["env", "team"]}, TRUE, id="ForAllValues-negated-none-match"),
    pytest.param({"ForAllValues:StringNotLike": {"aws:TagKeys": ["aws:*"]}}, {"aws__TagKeys": ["env", "aws:x"]}, FALSE, id="ForAllValues-negated-one-matches"),
    pytest.param({"ForAllValues:StringEquals": {"aws:TagKeys": ["env", "team", "owner"]}}, {"aws__TagKeys": ["env", "team"]}, TRUE, id="ForAllValues-subset"),
    pytest.param({"ForAllValues:StringEquals": {"aws:TagKeys": ["env", "team"]}}, {"aws__TagKeys": ["env", "cost"]}, FALSE, id="ForAllValues-not-subset"),
    pytest.param({"ForAllValues:StringEquals": {"aws:TagKeys": ["env"]}}, {}, TRUE, id="ForAllValues-missing-vacuous"),
    pytest.param({"ForAllValues:StringEquals": {"aws:TagKeys": ["env"]}}, {"aws__TagKeys": []}, TRUE, id="ForAllValues-empty-vacuous"),
    pytest.param({"ForAllValues:StringLike": {"aws:TagKeys": ["app-*"]}}, {"aws__TagKeys": ["app-a", "app-b"]}, TRUE, id="ForAllValues-StringLike"),
    # docs "Single-valued vs. multivalued context keys": a multivalued key requires a set operator
    pytest.param({"StringEquals": {"aws:TagKeys": "team"}}, {"aws__TagKeys": ["env", "team"]}, UNK, id="multivalued-without-set-operator"),
    # blocks: operators and keys AND'd, three-valued
    pytest.param({"StringEquals": {"aws:SourceAccount": ACCOUNT, "aws:PrincipalTag/team": "web"}}, {"aws__SourceAccount": ACCOUNT, "aws__PrincipalTag/team": "api"}, FALSE, id="keys-anded"),
    pytest.param({"StringEquals": {"aws:SourceAccount": ACCOUNT}, "StringLike": {"kms:ViaService": "ssm.*"}}, {"aws__SourceAccount": ACCOUNT, **KMS_CONTEXT}, TRUE, id="operators-anded"),
    pytest.param({"StringEquals": {"aws:SourceAccount": ACCOUNT}, "StringLike": {"kms:ViaService": "s3.*"}}, {"aws__SourceAccount": ACCOUNT, **KMS_CONTEXT}, FALSE, id="operators-anded-one-false"),
    pytest.param({"StringEquals": {"aws:PrincipalTag/team": "web", "aws:SourceAccount": "444455556666"}}, {"aws__SourceAccount": ACCOUNT}, FALSE, id="false-beats-unknown"),
    # what the evaluator cannot judge
    pytest.param({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}, {"aws__CurrentTime": "2024-01-01T00:00:00Z"}, UNK, id="unknown-operator-date"),
    pytest.param({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws__SourceIp": "10.1.2.3"}, UNK, id="unknown-operator-ip"),
    pytest.param({"ForSomeValues:StringEquals": {"aws:TagKeys": "a"}}, {"aws__TagKeys": ["a"]}, UNK, id="unknown-set-operator"),
    pytest.param({"NullIfExists": {"aws:TagKeys": "true"}}, {}, UNK, id="unknown-null-ifexists"),
    pytest.param({"StringEquals": "oops"}, {}, UNK, id="malformed-operator-body"),
    # policy variables in condition values
    pytest.param({"StringEquals": {"aws:PrincipalTag/owner": "${aws:username}"}}, {"aws__PrincipalTag/owner": "carlos", "aws__username": "carlos"}, TRUE, id="variable-in-condition"),
    pytest.param({"StringEquals": {"aws:PrincipalTag/owner": "${aws:username}"}}, {"aws__PrincipalTag/owner": "carlos"}, UNK, id="variable-in-condition-unresolved"),
    pytest.param({"StringLike": {"aws:SourceArn": "arn:aws:ssm:*:*:parameter/${aws:PrincipalTag/app}/*"}}, {"aws__SourceArn": PARAM, "aws__PrincipalTag/app": "app"}, TRUE, id="variable-in-StringLike"),
]


def _context(raw: dict) -> dict:
    return {k.replace("__", ":"): v for k, v in raw.items()}


@pytest.mark.parametrize("condition, context, expected", CONDITION_CASES)
def test_condition_as_allow(condition: dict, context: dict, expected: bool | None) -> None:
    verdict = evaluate([pol(allow(GET, PARAM, Condition=condition))], Request(GET, PARAM, _context(context)))
    assert verdict.decision is {TRUE: ALLOW, FALSE: IDENY, UNK: UNKNOWN}[expected]


@pytest.mark.parametrize("condition, context, expected", CONDITION_CASES)
def test_condition_as_deny(condition: dict, context: dict, expected: bool | None) -> None:
    policy = pol(allow(GET, PARAM), deny(GET, PARAM, Condition=condition))
    verdict = evaluate([policy], Request(GET, PARAM, _context(context)))
    assert verdict.decision is {TRUE: XDENY, FALSE: ALLOW, UNK: UNKNOWN}[expected]


# --- where a simple evaluator allows and IAM does not: each case names the IAM User Guide page ----
# Every case below allowed (or spared a deny) before; an independent IAM simulator does not.

SINGLE_VS_MULTI = "IAM User Guide, Single-valued vs. multivalued context keys"
OPERATORS = "IAM User Guide, IAM JSON policy elements: Condition operators"
SET_OPERATORS = "IAM User Guide, Set operators for multivalued context keys / ...IfExists condition operators"
RESOURCE = "IAM User Guide, IAM JSON policy elements: Resource (Using wildcards in resource ARNs)"
SSM_KEYS = ["PARAMETER_ARN"]  # the encryption context SSM sends with kms:Decrypt
SEMANTICS = [
    # (id, statement, context, expected decision, source)
    ("StringEquals-on-EncryptionContextKeys", allow(GET, PARAM, Condition={"StringEquals": {
        "kms:EncryptionContextKeys": "PARAMETER_ARN"}}), {"kms:EncryptionContextKeys": SSM_KEYS}, UNKNOWN, SINGLE_VS_MULTI),
    ("StringLike-on-TagKeys", allow(GET, PARAM, Condition={"StringLike": {"aws:TagKeys": "*"}}),
     {"aws:TagKeys": ["a", "b"]}, UNKNOWN, SINGLE_VS_MULTI),
    ("StringNotEquals-on-TagKeys-deny", deny(GET, PARAM, Condition={"StringNotEquals": {"aws:TagKeys": "x"}}),
     {"aws:TagKeys": ["a"]}, UNKNOWN, SINGLE_VS_MULTI),
    ("ForAnyValue-on-EncryptionContextKeys", allow(GET, PARAM, Condition={"ForAnyValue:StringEquals": {
        "kms:EncryptionContextKeys": "PARAMETER_ARN"}}), {"kms:EncryptionContextKeys": SSM_KEYS}, ALLOW, SINGLE_VS_MULTI),
    ("NumericNotEquals-on-text", allow(GET, PARAM, Condition={"NumericNotEquals": {"s3:max-keys": "10"}}),
     {"s3:max-keys": "ten"}, IDENY, OPERATORS + ": Numeric"),
    ("NumericLessThan-on-text", allow(GET, PARAM, Condition={"NumericLessThan": {"s3:max-keys": "10"}}),
     {"s3:max-keys": "nan"}, IDENY, OPERATORS + ": Numeric"),
    ("NumericNotEquals-on-text-deny", deny(GET, PARAM, Condition={"NumericNotEquals": {"s3:max-keys": "10"}}),
     {"s3:max-keys": "ten"}, ALLOW, OPERATORS + ": Numeric (a comparison with text is false, also negated)"),
    ("NumericEquals-decimal", allow(GET, PARAM, Condition={"NumericEquals": {"s3:max-keys": "10"}}),
     {"s3:max-keys": "10.0"}, ALLOW, OPERATORS + ": Numeric"),
    ("ArnNotLike-on-non-ARN", allow(GET, PARAM, Condition={"ArnNotLike": {"aws:SourceArn": "arn:aws:ssm:*:*:*"}}),
     {"aws:SourceArn": "not-an-arn"}, IDENY, OPERATORS + ": Amazon Resource Name (ARN)"),
    ("ArnNotEquals-on-non-ARN", allow(GET, PARAM, Condition={"ArnNotEquals": {"aws:SourceArn": KEY}}),
     {"aws:SourceArn": "111122223333"}, IDENY, OPERATORS + ": Amazon Resource Name (ARN)"),
    ("ArnLike-on-non-ARN", allow(GET, PARAM, Condition={"ArnLike": {"aws:SourceArn": "*"}}),
     {"aws:SourceArn": "111122223333"}, IDENY, OPERATORS + ": Amazon Resource Name (ARN)"),
    ("ArnLike-fewer-components", allow(GET, PARAM, Condition={"ArnLike": {"aws:SourceArn": "arn:aws:ssm:*"}}),
     {"aws:SourceArn": PARAM}, IDENY, OPERATORS + ": ARN, each of the six components checked separately"),
    ("ArnLike-star-inside-resource-part", allow(GET, PARAM, Condition={"ArnLike": {
        "aws:SourceArn": "arn:aws:secretsmanager:*:*:sec*db"}}),
     {"aws:SourceArn": f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:db"}, IDENY, RESOURCE),
    ("ArnLike-star-ending-segment", allow(GET, PARAM, Condition={"ArnLike": {
        "aws:SourceArn": "arn:aws:secretsmanager:*:*:secret:*"}}),
     {"aws:SourceArn": f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:db-AbCdEf"}, ALLOW, RESOURCE),
    ("ForAnyValue-IfExists-absent", allow(GET, PARAM, Condition={"ForAnyValue:StringEqualsIfExists": {
        "aws:TagKeys": "team"}}), {}, UNKNOWN, SET_OPERATORS),
    ("ForAnyValue-IfExists-absent-deny", deny(GET, PARAM, Condition={"ForAnyValue:StringEqualsIfExists": {
        "aws:TagKeys": "team"}}), {}, UNKNOWN, SET_OPERATORS),
    ("ForAllValues-IfExists-absent", allow(GET, PARAM, Condition={"ForAllValues:StringEqualsIfExists": {
        "aws:TagKeys": "team"}}), {}, ALLOW, SET_OPERATORS),
    ("resource-star-inside-segment-stops-at-colon", allow(GET, "arn:aws:ssm:eu-west-1:*parameter/app/db/password"),
     {}, IDENY, RESOURCE),
    ("resource-question-stops-at-colon", allow(GET, f"arn:aws:ssm:eu-west-1?{ACCOUNT}:parameter/app/db/password"),
     {}, IDENY, RESOURCE),
    ("resource-star-ending-segment-spans", allow(GET, "arn:aws:ssm:*"), {}, ALLOW, RESOURCE),
    ("resource-star-ending-last-segment", allow(GET, f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/app/*"), {}, ALLOW,
     RESOURCE),
    ("notresource-star-inside-segment", {"Effect": "Allow", "Action": GET,
                                         "NotResource": "arn:aws:ssm:eu-west-1:*parameter/app/*"}, {}, ALLOW, RESOURCE),
]
SEMANTICS_CASES = [
    pytest.param(stmt, context, expected, source, id=name) for name, stmt, context, expected, source in SEMANTICS]


@pytest.mark.parametrize("stmt, context, expected, source", SEMANTICS_CASES)
def test_evaluates_as_iam_does(stmt: dict, context: dict, expected: Decision, source: str) -> None:
    policies = [pol(stmt)] if stmt["Effect"] == "Allow" else [pol(allow(GET, PARAM), stmt)]
    assert evaluate(policies, Request(GET, PARAM, context)).decision is expected, source


def _cond(value: object) -> dict:
    return {"Statement": [allow(GET, PARAM, Condition={"Bool": {"aws:SecureTransport": value}})]}


@pytest.mark.parametrize("a, b, same", [
    pytest.param(True, "True", False, id="json-true-is-not-string-True"),
    pytest.param(True, "true", False, id="json-true-is-not-string-true"),
    pytest.param(1, "1", False, id="number-is-not-string"),
    pytest.param(["a", "b"], ["b", "a", "a"], True, id="values-are-a-set"),
    pytest.param(True, [True], True, id="scalar-or-list"),
])
def test_derived_policy_diff_keeps_json_types(a: object, b: object, same: bool) -> None:
    # The drift check of the derived inline policy (core/diff.py) compares through vocab.policy.same;
    # IAM returns a policy document as it was written (GetRolePolicy), types included, so a changed
    # type is a changed document that the next reconcile must write.
    assert vocab_policy.same(_cond(a), _cond(b)) is same


# --- which statement decides when some cannot be judged ----------------------------------------

MAYBE = {"StringEquals": {"aws:PrincipalTag/team": "web"}}  # key absent from every request below
PRECEDENCE_CASES = [
    pytest.param([pol(allow(GET, PARAM, Condition=MAYBE))], None, UNKNOWN, id="only-unknown-allow"),
    pytest.param([pol(allow(GET, PARAM, Condition=MAYBE), allow(GET, PARAM))], None, ALLOW, id="definite-allow-beats-unknown-allow"),
    pytest.param([pol(allow(GET, PARAM)), pol(deny(GET, PARAM, Condition=MAYBE), name="d")], None, UNKNOWN, id="unknown-deny-blocks-allow"),
    pytest.param([pol(deny(GET, PARAM, Condition=MAYBE), deny(GET, PARAM), allow())], None, XDENY, id="definite-deny-beats-unknown-deny"),
    pytest.param([pol(deny(GET, PARAM, Condition=MAYBE))], None, IDENY, id="unknown-deny-without-allow-is-denied"),
    pytest.param([pol(allow(GET, PARAM, Condition=MAYBE), deny(GET, PARAM))], None, XDENY, id="definite-deny-beats-unknown-allow"),
    pytest.param([pol(allow(), deny("ssm:PutParameter", Condition={"DateLessThan": {"aws:CurrentTime": "x"}}))], None, ALLOW, id="unknown-condition-on-inapplicable-statement"),
    pytest.param([pol(allow())], [pol(allow(GET, PARAM, Condition=MAYBE), name="b")], UNKNOWN, id="boundary-unknown-allow"),
    pytest.param([pol(allow(GET, PARAM, Condition=MAYBE))], [pol(allow("s3:*"), name="b")], IDENY, id="boundary-missing-beats-unknown-identity"),
    pytest.param([pol(allow())], [pol(allow(), deny(GET, PARAM, Condition=MAYBE), name="b")], UNKNOWN, id="boundary-unknown-deny"),
    pytest.param([pol({"Action": GET, "Resource": PARAM}), pol(allow())], None, UNKNOWN, id="malformed-no-effect-is-possible-deny"),
    pytest.param([pol({"Effect": "allow", "Action": GET, "Resource": PARAM})], None, IDENY, id="malformed-lowercase-effect-never-allows"),
    pytest.param([pol({"Effect": "Allow", "Action": GET, "NotAction": "s3:*", "Resource": "*"}), pol(allow())], None, ALLOW, id="malformed-allow-with-definite-allow"),
    pytest.param([pol({"Effect": "Allow", "Action": GET})], None, UNKNOWN, id="malformed-allow-without-resource"),
    pytest.param([NamedPolicy("raw", "not-a-dict"), pol(allow())], None, UNKNOWN, id="document-not-a-dict"),  # type: ignore[arg-type]
    pytest.param([pol("just a string", allow())], None, UNKNOWN, id="statement-not-an-object"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("identity, boundary, expected", PRECEDENCE_CASES)
def test_precedence(identity: list[NamedPolicy], boundary: list | None, expected: Decision) -> None:
    assert evaluate(identity, req(), boundary).decision is expected


# --- what a verdict says ------------------------------------------------------------------------

VERDICT_CASES = [
    pytest.param(
        [pol(allow(GET, PARAM, Sid="AllowRead"), name="ecs-secrets"), pol(deny("ssm:*", Sid="DenyAll"), name="lockdown")],
        None,
        Verdict(XDENY, "lockdown", "DenyAll", "explicit deny in policy lockdown statement DenyAll"),
        id="explicit-deny",
    ),
    pytest.param(
        [pol(allow("kms:Decrypt", KEY), name="ecs-secrets")],
        None,
        Verdict(IDENY, None, None, f"no statement allows {GET} on {PARAM}"),
        id="implicit-deny",
    ),
    pytest.param(
        [pol(allow(GET, PARAM), name="ecs-secrets")],
        [pol(allow("kms:*"), name="arn:aws:iam::111122223333:policy/Boundary")],
        Verdict(
            IDENY,
            "arn:aws:iam::111122223333:policy/Boundary",
            None,
            f"permissions boundary arn:aws:iam::111122223333:policy/Boundary does not allow {GET} on {PARAM}",
        ),
        id="boundary-implicit-deny",
    ),
    pytest.param(
        [pol(allow("kms:Decrypt", KEY), allow(GET, PARAM, Sid="AllowRead"), name="ecs-secrets")],
        None,
        Verdict(ALLOW, "ecs-secrets", "AllowRead", "allowed by policy ecs-secrets statement AllowRead"),
        id="allow-names-statement",
    ),
    pytest.param(
        [pol(allow("kms:Decrypt", KEY), allow(GET, PARAM), name="ecs-secrets")],
        [pol(allow("ssm:*", Sid="B"), name="boundary")],
        Verdict(ALLOW, "ecs-secrets", None, "allowed by policy ecs-secrets statement #2 and permissions boundary boundary statement B"),
        id="allow-without-sid-uses-index",
    ),
    pytest.param(
        [pol(allow(GET, PARAM, Sid="TeamOnly", Condition=MAYBE), name="ecs-secrets")],
        None,
        Verdict(
            UNKNOWN,
            "ecs-secrets",
            "TeamOnly",
            "condition key aws:PrincipalTag/team cannot be evaluated (not in the request context), "
            "in allow statement TeamOnly in policy ecs-secrets",
        ),
        id="unknown-key",
    ),
    pytest.param(
        [pol(allow(GET, PARAM)), pol(deny(GET, PARAM, Sid="Expiry", Condition={"DateGreaterThan": {"aws:CurrentTime": "2030"}}), name="d")],
        None,
        Verdict(UNKNOWN, "d", "Expiry", "condition operator DateGreaterThan is not supported, in deny statement Expiry in policy d"),
        id="unknown-operator",
    ),
    pytest.param(
        [pol(allow(GET, "arn:aws:ssm:*:*:parameter/${aws:username}/*"), name="home")],
        None,
        Verdict(
            UNKNOWN,
            "home",
            None,
            "policy variable ${aws:username} cannot be resolved from the request context, in allow statement #1 in policy home",
        ),
        id="unknown-variable",
    ),
]


@pytest.mark.parametrize("identity, boundary, expected", VERDICT_CASES)
def test_verdict_details(identity: list[NamedPolicy], boundary: list | None, expected: Verdict) -> None:
    assert evaluate(identity, req(), boundary) == expected


# --- statements() -----------------------------------------------------------------------------

ONE = {"Effect": "Allow", "Action": "*", "Resource": "*"}


@pytest.mark.parametrize(
    "doc, expected",
    [
        pytest.param({"Statement": ONE}, [ONE], id="object"),
        pytest.param({"Statement": [ONE, ONE]}, [ONE, ONE], id="list"),
        pytest.param({"Statement": []}, [], id="empty-list"),
        pytest.param({"Version": "2012-10-17"}, [], id="missing"),
    ],
)
def test_statements(doc: dict, expected: list[dict]) -> None:
    assert statements(doc) == expected


# --- properties -------------------------------------------------------------------------------

NAMES = st.text(alphabet="abcXYZ09-/:._", min_size=1, max_size=20)


@given(action=st.from_regex(r"[a-z0-9]{1,8}:[A-Za-z]{1,12}", fullmatch=True), resource=NAMES)
def test_deny_everything_always_wins(action: str, resource: str) -> None:
    identity = [pol(allow()), pol(deny(), name="d")]
    assert evaluate(identity, Request(action, resource), [pol(allow(), name="b")]).decision is XDENY


@given(value=NAMES, other=NAMES)
def test_pattern_without_wildcards_is_equality(value: str, other: str) -> None:
    assert glob_match(wildcard(value), other) is (value == other)


# --- purity -----------------------------------------------------------------------------------

MODULES = ["controller/verify/iam_eval.py", "controller/verify/conditions.py"]
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", MODULES)
def test_module_imports_no_aws_client(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    forbidden = {"boto3", "botocore", "os", "time", "datetime", "subprocess", "socket"}
    assert not {name.split(".")[0] for name in imported} & forbidden


def test_importing_loads_no_aws_client() -> None:
    code = "import sys, controller.verify.iam_eval; print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
