"""verify: what the ECS agent needs, the verdict per container secret, and the command against moto.

moto's own IAM enforcement ignores resources, so it is never the judge here: it only holds the
state (roles, policies, parameters, secrets, keys) that verify reads and decides on.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections import Counter
import sys
from importlib import resources
from pathlib import Path
from typing import Iterator

import boto3
import jsonschema
import pytest

from awsserver import TEST_ENV, UNSET_ENV, MotoHandle
from controller import cli, reconcile
from controller.aws.session import Aws
from controller.verify import decide
from controller.verify import facts as v
from controller.verify import report as vr
from controller.verify.command import command
from controller.verify.iam_eval import Decision, NamedPolicy
from controller.verify.keypolicy import aws_managed_key_policy
from controller.vocab.problems import ControllerError

ACC = "111122223333"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACC}:role/exec"
KEY = f"arn:aws:kms:{REGION}:{ACC}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACC}:secret:pay/stripe-AbCdEf"
ROOT = f"arn:aws:iam::{ACC}:root"
SSM_KEY = f"arn:aws:kms:{REGION}:{ACC}:key/0000aaaa-11bb-22cc-33dd-444455556666"  # what alias/aws/ssm names
SM_KEY = f"arn:aws:kms:{REGION}:{ACC}:key/9999ffff-88ee-77dd-66cc-555544443333"  # alias/aws/secretsmanager
DEFAULT_KEY_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*",
     "Resource": "*"}]}


def param(name: str, region: str = REGION) -> str:
    return f"arn:aws:ssm:{region}:{ACC}:parameter/{name.lstrip('/')}"


def allow(action: object, resource: object = "*", **extra: object) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def doc(*stmts: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(stmts)}


def facts(**changes: object) -> v.Facts:
    """A world in which everything exists and the role may read all of it."""
    f = v.Facts(account=ACC, region=REGION)
    f.parameters.update({
        (REGION, "/app/db"): v.ParameterFact("/app/db", "SecureString", "alias/aws/ssm"),
        (REGION, "/app/api"): v.ParameterFact("/app/api", "SecureString", "alias/custom"),
        (REGION, "/app/level"): v.ParameterFact("/app/level", "String", None),
        (REGION, "plain"): v.ParameterFact("plain", "SecureString", "alias/aws/ssm"),
        ("eu-west-1", "/app/db"): v.ParameterFact("/app/db", "SecureString", KEY),
    })
    f.secrets.update({(REGION, "pay/stripe"): v.SecretFact(SECRET, None),
                      (REGION, SECRET): v.SecretFact(SECRET, None)})
    f.keys.update({(REGION, "alias/custom"): v.KeyFact(KEY, "Enabled", "CUSTOMER", DEFAULT_KEY_POLICY),
                   ("eu-west-1", KEY): v.KeyFact(KEY, "Enabled", "CUSTOMER", DEFAULT_KEY_POLICY),
                   (REGION, "alias/aws/ssm"): v.KeyFact(SSM_KEY, "Enabled", "AWS", aws_managed_key_policy(
                       "ssm", REGION, ACC, "aws")),
                   (REGION, "alias/aws/secretsmanager"): v.KeyFact(SM_KEY, "Enabled", "AWS", aws_managed_key_policy(
                       "secretsmanager", REGION, ACC, "aws"))})
    f.roles[ROLE] = v.RoleFact(ROLE, (NamedPolicy("ecs-secrets", doc(allow("*"))),))
    for name, value in changes.items():
        getattr(f, name).update(value)
    return f


def target(source: str, role: str | None = ROLE) -> v.Target:
    return v.Target("web", "web", "VAR", source, role)


# --- what the ECS agent needs ------------------------------------------------------------------

SM_PATH = "/aws/reference/secretsmanager/pay/stripe"
SM_READ = [("secretsmanager:GetSecretValue", SECRET), ("kms:Decrypt", SM_KEY)]
NEEDS = [  # an AWS managed key is decided too: an identity policy or boundary may deny it
    ("/app/db", [("ssm:GetParameters", param("/app/db")), ("kms:Decrypt", SSM_KEY)]),
    ("plain", [("ssm:GetParameters", param("plain")), ("kms:Decrypt", SSM_KEY)]),
    ("/app/level", [("ssm:GetParameters", param("/app/level"))]),
    ("/app/api", [("ssm:GetParameters", param("/app/api")), ("kms:Decrypt", KEY)]),
    (param("/app/db", "eu-west-1"), [("ssm:GetParameters", param("/app/db", "eu-west-1")), ("kms:Decrypt", KEY)]),
    (SM_PATH, [("ssm:GetParameters", param(SM_PATH))] + SM_READ),
    (SECRET, SM_READ),
    (SECRET + ":token::", SM_READ),
    (SECRET + ":token:AWSCURRENT:", SM_READ),
]


@pytest.mark.parametrize("source,expected", NEEDS)
def test_needs_are_exact_actions_on_exact_resources(source: str, expected: list) -> None:
    row = decide.check(target(source), facts())
    assert [(n.action, n.resource) for n in row.needs] == expected
    assert row.verdict == v.ALLOWED, row.reason


def test_decrypt_carries_the_context_of_the_service_that_calls_kms() -> None:
    ssm_key = decide.check(target("/app/api"), facts()).needs[1].context
    assert ssm_key["kms:ViaService"] == "ssm.us-east-1.amazonaws.com"
    assert ssm_key["kms:EncryptionContext:PARAMETER_ARN"] == param("/app/api")
    assert ssm_key["aws:RequestedRegion"] == "us-east-1"
    other = facts(secrets={(REGION, "pay/stripe"): v.SecretFact(SECRET, "alias/custom")})
    sm_key = decide.check(target(SM_PATH), other).needs[2].context
    assert sm_key["kms:ViaService"] == "secretsmanager.us-east-1.amazonaws.com"
    assert sm_key["kms:EncryptionContext:SecretARN"] == SECRET


@pytest.mark.parametrize("key_id,custom", [
    (None, False), ("alias/aws/ssm", False), (f"arn:aws:kms:{REGION}:{ACC}:alias/aws/ssm", False),
    ("alias/custom", True), (KEY, True), ("1234abcd-12ab-34cd-56ef-1234567890ab", True)])
def test_aws_managed_keys_need_no_decrypt_grant(key_id: str | None, custom: bool) -> None:
    assert v.customer_key(key_id) is custom


# --- the verdict ---------------------------------------------------------------------------------


def role(*policies: NamedPolicy, boundary: tuple | None = None, unread: tuple = ()) -> dict:
    return {"roles": {ROLE: v.RoleFact(ROLE, policies, boundary, unread)}}


EXACT = NamedPolicy("ecs-secrets", doc(
    allow("ssm:GetParameters", [param("/app/db"), param("/app/api"), param(SM_PATH)], Sid="ReadParameters"),
    allow("secretsmanager:GetSecretValue", SECRET, Sid="ReadSecrets"),
    allow("kms:Decrypt", KEY, Sid="Decrypt")))
DENY_DB = NamedPolicy("guard", doc({"Sid": "NoDb", "Effect": "Deny", "Action": "ssm:GetParameters",
                                    "Resource": param("/app/db")}))
ONLY_VIA_SM = {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}
KEY_POLICY_ROLE_ONLY = doc({"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:Decrypt", "Resource": "*"})
KEY_POLICY_OTHERS = doc({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999988887777:root"},
                         "Action": "kms:*", "Resource": "*"})
KEY_POLICY_DENY = doc(DEFAULT_KEY_POLICY["Statement"][0], {"Sid": "NoDecrypt", "Effect": "Deny",
                      "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"})


def key(state: str = "Enabled", policy: object = DEFAULT_KEY_POLICY) -> dict:
    return {"keys": {(REGION, "alias/custom"): v.KeyFact(KEY, state, "CUSTOMER", policy)}}


VERDICTS = [
    # (id, source, changes, verdict, words in the reason)
    ("exact grants", "/app/api", role(EXACT), "allowed", []),
    ("no grant", "/app/db", role(NamedPolicy("p", doc(allow("ecr:*")))), "denied",
     ["no statement allows ssm:GetParameters on " + param("/app/db")]),
    ("grant removed: only kms missing", "/app/api", role(NamedPolicy("p", doc(allow("ssm:*")))), "denied",
     ["kms:Decrypt on " + KEY]),
    ("explicit deny names policy and Sid", "/app/db", role(EXACT, DENY_DB), "denied", ["guard", "NoDb"]),
    ("deny elsewhere leaves others alone", "/app/api", role(EXACT, DENY_DB), "allowed", []),
    ("boundary without the action", "/app/db", role(EXACT, boundary=(NamedPolicy("b", doc(allow("kms:*"))),)),
     "denied", ["permissions boundary b"]),
    ("boundary with a deny", "/app/db", role(EXACT, boundary=(NamedPolicy("b", doc(allow("*"), DENY_DB.document[
        "Statement"][0])),)), "denied", ["NoDb"]),
    ("NotResource spares ours", "/app/db", role(NamedPolicy("p", doc(
        {"Effect": "Allow", "Action": "ssm:GetParameters", "NotResource": param("/other")}))), "allowed", []),
    ("NotResource excludes ours", "/app/db", role(NamedPolicy("p", doc(
        {"Effect": "Allow", "Action": "ssm:GetParameters", "NotResource": param("/app/*")}))), "denied", []),
    ("Deny NotAction leaves ssm, hits kms", "/app/api", role(NamedPolicy("p", doc(allow("*"), {
        "Sid": "OnlySsm", "Effect": "Deny", "NotAction": "ssm:*", "Resource": "*"}))), "denied", ["OnlySsm", "kms:Decrypt"]),
    ("condition it cannot judge", "/app/db", role(NamedPolicy("p", doc(allow("ssm:GetParameters", Condition={
        "StringEquals": {"aws:PrincipalTag/team": "payments"}})))), "unknown", ["aws:PrincipalTag/team"]),
    ("kms:ViaService of another service", "/app/api", role(EXACT, NamedPolicy("k", doc(
        {"Sid": "ViaSm", "Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringNotEquals": {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}}}))), "allowed", []),
    ("kms:ViaService allow for SM only", "/app/api", role(NamedPolicy("p", doc(
        allow("ssm:*"), allow("kms:Decrypt", KEY, Condition=ONLY_VIA_SM)))), "denied", ["kms:Decrypt"]),
    ("encryption context names the parameter", "/app/api", role(NamedPolicy("p", doc(allow("ssm:*"), allow(
        "kms:Decrypt", KEY, Condition={"StringLike": {"kms:EncryptionContext:PARAMETER_ARN": param("/app/*")}})))),
     "allowed", []),
    ("key policy grants the role directly", "/app/api", {**role(NamedPolicy("p", doc(allow("ssm:*")))),
                                                         **key(policy=KEY_POLICY_ROLE_ONLY)}, "allowed", []),
    ("key policy for another account", "/app/api", key(policy=KEY_POLICY_OTHERS), "denied",
     ["neither allows kms:Decrypt to the role"]),
    ("key policy denies", "/app/api", key(policy=KEY_POLICY_DENY), "denied", ["NoDecrypt"]),
    ("key policy unreadable", "/app/api", key(policy=v.Unread("kms:GetKeyPolicy failed with AccessDeniedException")),
     "unknown", ["AccessDeniedException"]),
    ("key disabled", "/app/api", key("Disabled"), "denied", [KEY + " is Disabled; enable it"]),
    ("key pending deletion", "/app/api", key("PendingDeletion"), "denied", ["cancel the key deletion"]),
    ("key does not exist", "/app/api", {"keys": {(REGION, "alias/custom"): None}}, "missing", ["alias/custom"]),
    ("parameter does not exist", "/app/db", {"parameters": {(REGION, "/app/db"): None}}, "missing",
     ["SSM parameter /app/db does not exist in us-east-1"]),
    ("secret does not exist", SM_PATH, {"secrets": {(REGION, "pay/stripe"): None}}, "missing",
     ["Secrets Manager secret pay/stripe does not exist"]),
    ("secret scheduled for deletion", SM_PATH, {"secrets": {(REGION, "pay/stripe"): v.SecretFact(SECRET, None, True)}},
     "missing", ["scheduled for deletion"]),
    ("parameter unreadable", "/app/db", {"parameters": {(REGION, "/app/db"): v.Unread("AccessDenied")}}, "unknown", []),
    ("role does not exist", "/app/db", {"roles": {ROLE: None}}, "missing", ["execution role exec does not exist"]),
    ("a managed policy unreadable", "/app/db", role(EXACT, unread=("arn:aws:iam::aws:policy/x (NoSuchEntity)",)),
     "unknown", ["cannot read policy arn:aws:iam::aws:policy/x"]),
    ("unreadable but explicitly denied", "/app/db", role(EXACT, DENY_DB, unread=("x (e)",)), "denied", ["NoDb"]),
    ("another account", f"arn:aws:ssm:{REGION}:999988887777:parameter/x", {}, "unknown", ["account 999988887777"]),
    ("not a reference", "arn:aws:s3:::bucket/key", {}, "missing", ["neither an SSM parameter ARN"]),
]


@pytest.mark.parametrize("source,changes,verdict,words", [c[1:] for c in VERDICTS], ids=[c[0] for c in VERDICTS])
def test_verdict(source: str, changes: dict, verdict: str, words: list[str]) -> None:
    row = decide.check(target(source), facts(**changes))
    assert (row.verdict, all(w in row.reason for w in words)) == (verdict, True), row.reason
    assert (row.reason == "") == (verdict == v.ALLOWED)


def test_no_execution_role_is_denied() -> None:
    row = decide.check(target("/app/db", role=None), facts())
    assert row.verdict == v.DENIED and "executionRoleArn" in row.reason


def test_missing_wins_over_denied_in_one_row() -> None:
    changes = {**role(NamedPolicy("p", doc(allow("ecr:*")))), "parameters": {(REGION, "/app/db"): None}}
    assert decide.check(target("/app/db"), facts(**changes)).verdict == v.MISSING


# --- pinned Secrets Manager versions ----------------------------------------------------------------
# Sources: the ECS Developer Guide ("Pass Secrets Manager secrets through Amazon ECS environment
# variables": valueFrom arn:...:secret:NAME:json-key:version-stage:version-id); the Secrets Manager API
# reference: DescribeSecret's VersionIdsToStages lists the versions that have staging labels (those
# without are deprecated, ListSecretVersionIds with IncludeDeprecated lists them), and GetSecretValue
# with both VersionId and VersionStage needs the two to name the same version.

V1, V2, OLD = "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1", "EXAMPLE2-90ab-cdef-fedc-ba987SECRET2", "EXAMPLE3-old"
VERSIONS = {V1: ("AWSCURRENT",), V2: ("AWSPREVIOUS", "blue"), OLD: ()}


def versioned(**fields: object) -> dict:
    fact = v.SecretFact(SECRET, None, versions=VERSIONS, **fields)  # type: ignore[arg-type]
    return {"secrets": {(REGION, SECRET): fact}}


PINNED = [
    ("stage exists", SECRET + "::AWSPREVIOUS:", versioned(), "allowed", []),
    ("custom stage exists", SECRET + ":password:blue:", versioned(), "allowed", []),
    ("stage missing", SECRET + "::AWSPENDING:", versioned(), "missing",
     ["no version of Secrets Manager secret " + SECRET + " has the staging label AWSPENDING", "AWSCURRENT, AWSPREVIOUS, blue"]),
    ("id exists", SECRET + ":::" + V1, versioned(), "allowed", []),
    ("unlabelled id exists", SECRET + ":::" + OLD, versioned(), "allowed", []),
    ("id missing", SECRET + ":password::nope-1234", versioned(), "missing", ["version id nope-1234 of Secrets Manager secret " + SECRET + " does not exist"]),
    ("id and stage agree", SECRET + "::AWSCURRENT:" + V1, versioned(), "allowed", []),
    ("id and stage disagree", SECRET + "::AWSCURRENT:" + V2, versioned(), "missing",
     [f"version {V2} of Secrets Manager secret {SECRET} does not have the staging label AWSCURRENT", "same version"]),
    ("id not listed, list failed", SECRET + ":::nope", versioned(versions_unread="x failed with AccessDenied"),
     "unknown", ["cannot tell whether version nope", "AccessDenied"]),
    ("nothing pinned", SECRET + ":password::", versioned(), "allowed", []),
]


@pytest.mark.parametrize("source,changes,verdict,words", [c[1:] for c in PINNED], ids=[c[0] for c in PINNED])
def test_pinned_secret_version_must_exist(source: str, changes: dict, verdict: str, words: list[str]) -> None:
    row = decide.check(target(source), facts(**changes))
    assert (row.verdict, all(w in row.reason for w in words)) == (verdict, True), row.reason


# --- AWS managed keys -----------------------------------------------------------------------------
# The key policy of an AWS managed key lets every principal of the account use it through its service
# (kms:CallerAccount, kms:ViaService: AWS KMS Developer Guide, "AWS managed keys", "kms:ViaService"), so
# no IAM policy has to allow kms:Decrypt (ECS Developer Guide, "Required IAM permissions for Amazon ECS
# secrets": kms:Decrypt only for a customer managed key); an explicit deny in an identity policy or the
# boundary still denies (IAM User Guide, "Policy evaluation logic": an explicit deny in any policy wins).

NO_KMS = NamedPolicy("ecs-secrets", doc(allow(["ssm:GetParameters", "secretsmanager:GetSecretValue"])))
DENY_KMS = {"Sid": "NoKms", "Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}
AWS_KEYS = [
    ("no kms grant needed for aws/ssm", "/app/db", role(NO_KMS), "allowed", []),
    ("no kms grant needed for aws/secretsmanager", SECRET, role(NO_KMS), "allowed", []),
    ("identity deny on aws/ssm", "/app/db", role(NO_KMS, NamedPolicy("guard", doc(DENY_KMS))), "denied",
     ["kms:Decrypt on " + SSM_KEY, "explicit deny in policy guard statement NoKms"]),
    ("identity deny on aws/secretsmanager", SM_PATH, role(NO_KMS, NamedPolicy("guard", doc(DENY_KMS))), "denied",
     ["kms:Decrypt on " + SM_KEY, "NoKms"]),
    ("boundary deny on aws/ssm", "/app/db", role(NO_KMS, boundary=(NamedPolicy("b", doc(allow("*"), DENY_KMS)),)),
     "denied", ["explicit deny in policy b statement NoKms"]),
    ("boundary without kms allows via the key policy", "/app/db",
     role(NO_KMS, boundary=(NamedPolicy("b", doc(allow("ssm:*")),),)), "allowed", []),
    ("deny scoped to another service", "/app/db", role(NO_KMS, NamedPolicy("guard", doc({**DENY_KMS, "Condition": {
        "StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}}))), "allowed", []),
    ("deny that may apply", "/app/db", role(NO_KMS, NamedPolicy("guard", doc({**DENY_KMS, "Condition": {
        "StringEquals": {"aws:PrincipalTag/team": "x"}}}))), "unknown", ["aws:PrincipalTag/team"]),
    ("aws managed key unreadable", "/app/db", {"keys": {(REGION, "alias/aws/ssm"): v.Unread("kms:DescribeKey failed")}},
     "unknown", ["kms:DescribeKey failed"]),
]


@pytest.mark.parametrize("source,changes,verdict,words", [c[1:] for c in AWS_KEYS], ids=[c[0] for c in AWS_KEYS])
def test_aws_managed_key_is_decided(source: str, changes: dict, verdict: str, words: list[str]) -> None:
    row = decide.check(target(source), facts(**changes))
    assert (row.verdict, all(w in row.reason for w in words)) == (verdict, True), row.reason


# --- Secrets Manager resource policies ------------------------------------------------------------
# Secrets Manager User Guide, "Determine who has permissions to your secrets": an explicit deny in any
# policy wins; in the same account the identity policies or the secret's resource policy may allow;
# across accounts both must (verify reports a secret of another account as unknown). A grant to the
# role's ARN is capped by its permissions boundary (IAM User Guide, "Permissions boundaries": resource-
# based policies naming a role ARN are limited by an implicit deny in the boundary).


def with_policy(*stmts: dict) -> dict:
    fact = v.SecretFact(SECRET, None, policy=doc(*stmts))
    return {"secrets": {(REGION, "pay/stripe"): fact, (REGION, SECRET): fact}}


def sm_stmt(effect: str, principal: object, **extra: object) -> dict:
    return {"Effect": effect, "Principal": principal, "Action": "secretsmanager:GetSecretValue", "Resource": "*",
            **extra}


ONLY_SSM_AND_KMS = role(NamedPolicy("p", doc(allow(["ssm:GetParameters", "kms:Decrypt"]))))
RESOURCE_POLICIES = [
    ("deny to the role", SM_PATH, with_policy(sm_stmt("Deny", {"AWS": ROLE}, Sid="NoExec")), "denied",
     ["explicit deny in policy resource policy of " + SECRET + " statement NoExec"]),
    ("deny to everyone", SECRET, with_policy(sm_stmt("Deny", "*", Sid="Nobody")), "denied", ["Nobody"]),
    ("deny to the account", SECRET, with_policy(sm_stmt("Deny", {"AWS": ROOT}, Sid="NoAccount")), "denied",
     ["NoAccount"]),
    ("deny to someone else", SECRET, with_policy(sm_stmt("Deny", {"AWS": f"arn:aws:iam::{ACC}:role/other"})),
     "allowed", []),
    ("deny unless from the role", SECRET, with_policy(sm_stmt("Deny", "*", Condition={
        "ArnNotEquals": {"aws:PrincipalArn": ROLE}})), "allowed", []),
    ("resource policy alone grants the role", SECRET, {**ONLY_SSM_AND_KMS, **with_policy(sm_stmt(
        "Allow", {"AWS": ROLE}))}, "allowed", []),
    ("resource policy grant capped by the boundary", SECRET, {**role(NamedPolicy("p", doc(allow("kms:*"))), boundary=(
        NamedPolicy("b", doc(allow(["ssm:*", "kms:*"]))),)), **with_policy(sm_stmt("Allow", {"AWS": ROLE}))},
     "denied", ["secretsmanager:GetSecretValue"]),
    ("account statement does not grant alone", SECRET, {**ONLY_SSM_AND_KMS, **with_policy(sm_stmt(
        "Allow", {"AWS": ROOT}))}, "denied", ["no statement allows secretsmanager:GetSecretValue"]),
    ("unreadable resource policy", SECRET, {"secrets": {(REGION, SECRET): v.SecretFact(SECRET, None, policy=v.Unread(
        "secretsmanager:GetResourcePolicy failed with AccessDeniedException"))}}, "unknown",
     ["cannot read the resource policy of " + SECRET, "AccessDeniedException"]),
    ("deny that may apply", SECRET, with_policy(sm_stmt("Deny", "*", Condition={
        "StringEquals": {"aws:PrincipalTag/team": "x"}})), "unknown", ["aws:PrincipalTag/team"]),
    ("NotPrincipal deny sparing the role", SECRET, with_policy({"Effect": "Deny", "NotPrincipal": {"AWS": ROLE},
                                                                "Action": "secretsmanager:*", "Resource": "*"}),
     "allowed", []),
    # IAM User Guide, "Permissions boundaries": a Deny with NotPrincipal always denies a principal with a boundary
    ("NotPrincipal deny and a boundary", SECRET, {**role(EXACT, boundary=(NamedPolicy("b", doc(allow("*"))),)),
     **with_policy({"Sid": "OnlyExec", "Effect": "Deny", "NotPrincipal": {"AWS": ROLE},
                    "Action": "secretsmanager:GetSecretValue", "Resource": "*"})}, "denied", ["OnlyExec"]),
]


@pytest.mark.parametrize("source,changes,verdict,words", [c[1:] for c in RESOURCE_POLICIES],
                         ids=[c[0] for c in RESOURCE_POLICIES])
def test_secret_resource_policy_is_evaluated(source: str, changes: dict, verdict: str, words: list[str]) -> None:
    row = decide.check(target(source), facts(**changes))
    assert (row.verdict, all(w in row.reason for w in words)) == (verdict, True), row.reason


# --- report, exit code, rendering ----------------------------------------------------------------


def rows_of(*verdicts: str) -> list[v.Row]:
    return [v.Row(v.Target("web:3", "app", f"V{i}", "/p", ROLE), verdict, "" if verdict == v.ALLOWED else "why")
            for i, verdict in enumerate(verdicts)]


@pytest.mark.parametrize("verdicts,code", [
    ((), 0), (("allowed",), 0), (("allowed", "unknown"), 3), (("unknown", "denied"), 1),
    (("missing", "allowed"), 1), (("unknown", "unknown"), 3)])
def test_exit_code(verdicts: tuple, code: int) -> None:
    assert v.exit_code(rows_of(*verdicts)) == code


def test_text_is_an_aligned_table_with_a_summary() -> None:
    text = vr.render_text(rows_of("allowed", "denied")).splitlines()
    assert text[0].split() == ["TASK", "DEFINITION", "CONTAINER", "VARIABLE", "SOURCE", "VERDICT", "REASON"]
    column = text[0].index("VERDICT")
    assert [text[1][column:].split()[0], text[2][column:].split()[0]] == ["allowed", "denied"]
    assert text[-1] == "Verified 2 secrets: 1 allowed, 1 denied, 0 missing, 0 unknown."
    assert text[-2] == ("Not evaluated (any of them may still deny): service control policies (SCPs), resource "
                        "control policies (RCPs), VPC endpoint policies, session policies.")
    assert vr.render_text([]) == "No container secrets to verify.\n"


def schema() -> dict:
    return json.loads(resources.files("controller.verify").joinpath("verify.schema.json").read_text())


def test_json_report_validates() -> None:
    rows = rows_of("allowed", "unknown")
    rows[0].aws_simulation = "agrees"
    report = json.loads(vr.render_json(rows))
    jsonschema.validate(report, schema())
    assert report["summary"] == {"allowed": 1, "denied": 0, "missing": 0, "unknown": 1}
    assert report["not_evaluated"] == ["service control policies (SCPs)", "resource control policies (RCPs)",
                                       "VPC endpoint policies", "session policies"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**report, "rows": [{**report["rows"][0], "verdict": "maybe"}]}, schema())


def test_simulation_note() -> None:
    need = v.Need("ssm:GetParameters", param("/a"), {})
    assert vr.simulation_note([(need, Decision.ALLOW, "allowed")]) == "agrees"
    assert vr.simulation_note([(need, Decision.IMPLICIT_DENY, "allowed")]) == \
        f"differs: ssm:GetParameters on {param('/a')}: ours implicitDeny, AWS allowed"
    assert vr.simulation_note([(need, Decision.ALLOW, None)], "x failed") == "not available: x failed"


def test_the_pure_part_imports_no_aws_client() -> None:
    code = "import sys, controller.verify.decide; print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- against moto's server -----------------------------------------------------------------------
# One world for the module, converged by the real `reconcile -f manifests/`; each test changes it out
# of band and `World.restore` puts the converged state back (a moto reset per test costs seconds).

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
CANARY = "canary-Zq8uVd1Kx0-must-never-print"
ROLE_NAME = "ecsTaskExecutionRole-web"
MOTO_ACC = "123456789012"


def aws_param(name: str) -> str:
    return f"arn:aws:ssm:us-east-1:{MOTO_ACC}:parameter{name}"


class World:
    """What the manifests expect to exist already, then `reconcile`; `restore` undoes a test's changes."""

    def __init__(self) -> None:
        self.iam, self.ssm, self.kms = boto3.client("iam"), boto3.client("ssm"), boto3.client("kms")
        self.sm = boto3.client("secretsmanager")
        self.key = self.kms.create_key()["KeyMetadata"]
        self.kms.create_alias(AliasName="alias/MyAliasName", TargetKeyId=self.key["KeyId"])
        self.secret = self.sm.create_secret(Name="payments/stripe-token", SecretString=CANARY + "3")["ARN"]
        assert cli.main(["reconcile", "-f", str(MANIFESTS)]) == 0
        self.grants = self.iam.get_role_policy(RoleName=ROLE_NAME, PolicyName="ecs-secrets")["PolicyDocument"]
        self.attached = self._attached()
        self.key_policy = self.kms.get_key_policy(KeyId=self.key["KeyId"], PolicyName="default")["Policy"]
        self.aws = Aws()  # one session for the module: each new boto3 session loads its models again

    def put(self, name: str, document: dict) -> None:
        self.iam.put_role_policy(RoleName=ROLE_NAME, PolicyName=name, PolicyDocument=json.dumps(document))

    def without(self, action: str) -> dict:
        return doc(*[s for s in self.grants["Statement"] if s["Action"] != action])

    def _attached(self) -> set[str]:
        return {p["PolicyArn"] for p in self.iam.list_attached_role_policies(RoleName=ROLE_NAME)["AttachedPolicies"]}

    def restore(self) -> None:
        for name in self.iam.list_role_policies(RoleName=ROLE_NAME)["PolicyNames"]:
            self.iam.delete_role_policy(RoleName=ROLE_NAME, PolicyName=name)
        for arn in self._attached() - self.attached:
            self.iam.detach_role_policy(RoleName=ROLE_NAME, PolicyArn=arn)
        if "PermissionsBoundary" in self.iam.get_role(RoleName=ROLE_NAME)["Role"]:
            self.iam.delete_role_permissions_boundary(RoleName=ROLE_NAME)
        self.ssm.put_parameter(Name="/test/database_password", Value=CANARY, Type="SecureString", Overwrite=True)
        self.kms.enable_key(KeyId=self.key["KeyId"])
        self.kms.put_key_policy(KeyId=self.key["KeyId"], PolicyName="default", Policy=self.key_policy)
        try:
            self.sm.describe_secret(SecretId="payments/stripe-token")
        except self.sm.exceptions.ResourceNotFoundException:
            old, self.secret = self.secret, self.sm.create_secret(Name="payments/stripe-token",
                                                                  SecretString=CANARY + "3")["ARN"]
            self.grants = json.loads(json.dumps(self.grants).replace(old, self.secret))
        self.put("ecs-secrets", self.grants)
        self.sm.delete_resource_policy(SecretId="payments/stripe-token")


@pytest.fixture(scope="module")
def converged(moto_server: MotoHandle) -> Iterator[World]:
    moto_server.reset()
    with pytest.MonkeyPatch.context() as env:  # what the aws_env fixture sets, for the whole module
        for name in UNSET_ENV:
            env.delenv(name, raising=False)
        for name, value in {**TEST_ENV, "AWS_ENDPOINT_URL": moto_server.url, "DB_PASSWORD": CANARY,
                            "ECS_SECRETS_RATE_LIMITS": "off"}.items():
            env.setenv(name, value)
        yield World()


@pytest.fixture
def world(converged: World) -> Iterator[World]:
    yield converged
    converged.restore()


def run(world: World, **kwargs: object) -> tuple[int, str, Counter]:
    out, before = io.StringIO(), Counter(world.aws.calls)
    manifests = kwargs.pop("manifest", MANIFESTS)
    kwargs["desired"] = reconcile.load(str(manifests), world.aws) if manifests is not None else None
    code = command(world.aws, out=out, **kwargs)  # type: ignore[arg-type]
    return code, out.getvalue(), world.aws.calls - before


def verdicts(world: World, **kwargs: object) -> tuple[int, dict[str, tuple[str, str]]]:
    code, text, _ = run(world, output="json", **kwargs)
    return code, {r["variable"]: (r["verdict"], r["reason"]) for r in json.loads(text)["rows"]}


ALL_ALLOWED = {var: ("allowed", "") for var in ("DATABASE_PASSWORD", "API_KEY", "LOG_LEVEL", "STRIPE_TOKEN")}


def failing(result: dict) -> dict:
    return {var: verdict for var, verdict in result.items() if verdict[0] != "allowed"}


def test_converged_state_verifies(world: World) -> None:
    code, text, calls = run(world)
    assert code == 0, text
    assert text.splitlines()[-1] == "Verified 4 secrets: 4 allowed, 0 denied, 0 missing, 0 unknown."
    assert verdicts(world) == (0, ALL_ALLOWED)
    assert not {op for _, op, _ in calls} & {"GetParameters", "GetParameter", "GetSecretValue", "Decrypt"}


def test_each_thing_is_read_once(world: World) -> None:
    _, _, calls = run(world)
    # one DescribeKey per key: the customer managed key and the two AWS managed keys (aws/ssm for the
    # SecureStrings, aws/secretsmanager for the secret)
    assert calls.pop(("kms", "DescribeKey", "success")) == 3, calls
    assert max(calls.values()) == 1, calls


def test_removing_one_grant_fails_exactly_that_variable(world: World) -> None:
    world.put("ecs-secrets", world.without("secretsmanager:GetSecretValue"))
    code, result = verdicts(world)
    assert code == 1
    assert failing(result) == {"STRIPE_TOKEN": (
        "denied", f"no statement allows secretsmanager:GetSecretValue on {world.secret}")}


def test_explicit_deny_in_another_inline_policy(world: World) -> None:
    world.put("guard", doc({"Sid": "NoApiKey", "Effect": "Deny", "Action": "ssm:GetParameter*",
                            "Resource": aws_param("/test/api_key")}))
    code, result = verdicts(world)
    assert code == 1 and list(failing(result)) == ["API_KEY"]
    assert "explicit deny in policy guard statement NoApiKey" in result["API_KEY"][1]


def test_deny_in_a_permissions_boundary(world: World) -> None:
    boundary = world.iam.create_policy(PolicyName="boundary", PolicyDocument=json.dumps(doc(
        allow("*"), {"Sid": "NoDb", "Effect": "Deny", "Action": "ssm:*", "Resource": aws_param("/test/database_password")}
    )))["Policy"]["Arn"]
    world.iam.put_role_permissions_boundary(RoleName=ROLE_NAME, PermissionsBoundary=boundary)
    code, result = verdicts(world)
    assert code == 1 and list(failing(result)) == ["DATABASE_PASSWORD"]
    assert f"explicit deny in policy {boundary} statement NoDb" in result["DATABASE_PASSWORD"][1]


def test_attached_managed_policy_counts(world: World) -> None:
    world.iam.delete_role_policy(RoleName=ROLE_NAME, PolicyName="ecs-secrets")
    assert set(failing(verdicts(world)[1])) == set(ALL_ALLOWED)
    managed = world.iam.create_policy(PolicyName="read", PolicyDocument=json.dumps(world.grants))["Policy"]["Arn"]
    world.iam.attach_role_policy(RoleName=ROLE_NAME, PolicyArn=managed)
    assert verdicts(world) == (0, ALL_ALLOWED)


def test_deleted_parameter_disabled_key_missing_secret(world: World) -> None:
    world.ssm.delete_parameter(Name="/test/database_password")
    world.kms.disable_key(KeyId=world.key["KeyId"])
    world.sm.delete_secret(SecretId="payments/stripe-token", ForceDeleteWithoutRecovery=True)
    code, result = verdicts(world)
    assert code == 1
    assert failing(result) == {
        "DATABASE_PASSWORD": ("missing", "SSM parameter /test/database_password does not exist in us-east-1"),
        "API_KEY": ("denied", f"KMS key {world.key['Arn']} is Disabled; enable it"),
        "STRIPE_TOKEN": ("missing", "Secrets Manager secret payments/stripe-token does not exist in us-east-1"),
    }


def test_a_key_policy_that_lets_no_iam_policy_grant(world: World) -> None:
    world.kms.put_key_policy(KeyId=world.key["KeyId"], PolicyName="default", Policy=json.dumps(doc(
        {"Sid": "AdminsOnly", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{MOTO_ACC}:role/admin"},
         "Action": "kms:*", "Resource": "*"})))
    code, result = verdicts(world)
    assert code == 1 and list(failing(result)) == ["API_KEY"]
    assert f"the key policy of {world.key['Arn']} neither allows kms:Decrypt to the role" in result["API_KEY"][1]


def test_a_condition_it_cannot_judge_is_unknown(world: World) -> None:
    grants = json.loads(json.dumps(world.grants))
    grants["Statement"][0]["Condition"] = {"StringEquals": {"aws:PrincipalTag/team": "payments"}}
    world.put("ecs-secrets", grants)
    code, result = verdicts(world)
    assert code == 3
    assert {var for var, (verdict, _) in result.items() if verdict == "unknown"} == {
        "DATABASE_PASSWORD", "API_KEY", "LOG_LEVEL", "STRIPE_TOKEN"}
    assert "aws:PrincipalTag/team" in result["LOG_LEVEL"][1]


def test_not_action_and_not_resource(world: World) -> None:
    world.put("ecs-secrets", doc(
        {"Effect": "Allow", "NotAction": ["iam:*", "sts:*"], "Resource": "*"},
        {"Sid": "OnlyTest", "Effect": "Deny", "Action": "ssm:GetParameters",
         "NotResource": aws_param("/test/*")}))
    code, result = verdicts(world)
    assert failing(result) == {"STRIPE_TOKEN": ("denied", "ssm:GetParameters on " + aws_param(
        "/aws/reference/secretsmanager/payments/stripe-token") + ": explicit deny in policy ecs-secrets statement OnlyTest")}


@pytest.mark.parametrize("family", ["web", "web:1", f"arn:aws:ecs:us-east-1:{MOTO_ACC}:task-definition/web:1"])
def test_registered_family(world: World, family: str) -> None:
    world.put("ecs-secrets", world.without("secretsmanager:GetSecretValue"))
    code, text, _ = run(world, manifest=None, family=family, output="json")
    report = json.loads(text)
    assert code == 1
    assert {(r["task_definition"], r["variable"], r["verdict"]) for r in report["rows"]} == {
        ("web:1", "DATABASE_PASSWORD", "allowed"), ("web:1", "API_KEY", "allowed"),
        ("web:1", "LOG_LEVEL", "allowed"), ("web:1", "STRIPE_TOKEN", "denied")}


def test_unknown_family_is_one_clear_error(world: World) -> None:
    with pytest.raises(ControllerError, match="task definition nope is not registered"):
        run(world, manifest=None, family="nope")


def test_json_output_validates_and_no_secret_value_is_printed(world: World) -> None:
    world.put("guard", doc({"Sid": "X", "Effect": "Deny", "Action": "kms:*", "Resource": "*"}))
    outputs = [run(world, output=fmt, against_aws=against)[1] for fmt in ("json", "text") for against in (False, True)]
    for text in outputs:
        assert CANARY not in text
    jsonschema.validate(json.loads(outputs[0]), schema())
    report = json.loads(outputs[1])
    jsonschema.validate(report, schema())
    assert {r["aws_simulation"].split(":")[0] for r in report["rows"]} == {"not available"}  # moto lacks it


# What moto stores here is only the state; the AWS behaviour each test pins is named above its unit
# table (pinned versions, AWS managed keys, resource policies).

def test_a_pinned_version_that_does_not_exist_is_missing(world: World) -> None:
    first = next(iter(world.sm.describe_secret(SecretId="payments/stripe-token")["VersionIdsToStages"]))
    for n in (1, 2):  # two new versions: the first loses its last label (AWSPREVIOUS) but still exists
        world.sm.put_secret_value(SecretId="payments/stripe-token", SecretString=f"{CANARY}{n}")
    stages = world.sm.describe_secret(SecretId="payments/stripe-token")["VersionIdsToStages"]
    current = next(vid for vid, labels in stages.items() if "AWSCURRENT" in labels)
    # AWS's DescribeSecret leaves an unlabelled version out (moto lists it with no labels); either way
    # the version still exists and ListSecretVersionIds with IncludeDeprecated finds it.
    pins = {"CURRENT": f"{world.secret}:token:AWSCURRENT:{current}", "PENDING": f"{world.secret}:token:AWSPENDING:",
            "GONE": f"{world.secret}:token::0000-not-a-version", "UNLABELLED": f"{world.secret}:token::{first}"}
    boto3.client("ecs").register_task_definition(
        family="pinned", executionRoleArn=f"arn:aws:iam::{MOTO_ACC}:role/{ROLE_NAME}", containerDefinitions=[{
            "name": "app", "image": "nginx", "memory": 128,
            "secrets": [{"name": name, "valueFrom": ref} for name, ref in pins.items()]}])
    code, text, _ = run(world, manifest=None, family="pinned", output="json")
    result = {r["variable"]: (r["verdict"], r["reason"]) for r in json.loads(text)["rows"]}
    assert code == 1
    assert result["CURRENT"] == result["UNLABELLED"] == ("allowed", "")
    assert result["PENDING"][0] == "missing" and "staging label AWSPENDING" in result["PENDING"][1]
    assert result["GONE"][0] == "missing" and "version id 0000-not-a-version" in result["GONE"][1]


def test_a_deny_in_the_secret_resource_policy(world: World) -> None:
    role_arn = f"arn:aws:iam::{MOTO_ACC}:role/{ROLE_NAME}"
    world.sm.put_resource_policy(SecretId="payments/stripe-token", ResourcePolicy=json.dumps(doc(
        {"Sid": "NotForTasks", "Effect": "Deny", "Principal": {"AWS": role_arn},
         "Action": "secretsmanager:GetSecretValue", "Resource": "*"})))
    code, result = verdicts(world)
    assert code == 1 and list(failing(result)) == ["STRIPE_TOKEN"]
    assert f"resource policy of {world.secret} statement NotForTasks" in result["STRIPE_TOKEN"][1]


def test_a_deny_on_the_aws_managed_key(world: World) -> None:
    ssm_key = world.kms.describe_key(KeyId="alias/aws/ssm")["KeyMetadata"]["Arn"]
    world.put("guard", doc({"Sid": "NoSsmKey", "Effect": "Deny", "Action": "kms:Decrypt", "Resource": ssm_key}))
    code, result = verdicts(world)
    assert code == 1 and list(failing(result)) == ["DATABASE_PASSWORD"]
    assert f"kms:Decrypt on {ssm_key}: explicit deny in policy guard statement NoSsmKey" in result["DATABASE_PASSWORD"][1]
