"""Table-driven tests of the naming and size rules in controller.manifests.rules."""

from __future__ import annotations

import re

import botocore.session
import pytest

from controller.manifests import rules
from controller.manifests.rules import (
    check_container_name,
    check_family,
    check_kms_key_id,
    check_metadata_name,
    check_parameter_arn_length,
    check_parameter_name,
    check_role_name,
    check_role_path,
    check_value_size,
    is_secretsmanager_reference,
)


def _levels(count: int) -> str:
    return "".join(f"/l{i}" for i in range(count))


GOOD_PARAMETER_NAMES = [
    "/test/database_password",
    "a",
    "MyParameter1",
    "/MyParameter2",
    "/Dev/Production/East/Project-ABC/MyParameter",
    "/app/v1.2/db_user-name",
    _levels(15),
    "/app/awsfoo",  # the reserved prefix applies to the first level only
    "/" + "x" * 1010,
    "/aws/reference/secretsmanager/foo",
    "/aws/reference/secretsmanager/prod/db-creds",
]


@pytest.mark.parametrize("name", GOOD_PARAMETER_NAMES)
def test_parameter_name_ok(name: str) -> None:
    assert check_parameter_name(name) is None


BAD_PARAMETER_NAMES = [
    # (name, substrings the message must contain)
    ("test/database_password", ["start with '/'", "/test/database_password"]),
    ("/a//b", ["'//'", "/a/b"]),
    ("/a/b/", ["end with '/'", "/a/b"]),
    ("/", ["no name"]),
    ("", ["empty"]),
    (_levels(16), ["15 levels", "16"]),
    ("awsfoo", ["'aws' or 'ssm'"]),
    ("/aws/x", ["'aws' or 'ssm'"]),
    ("SSM-x", ["'aws' or 'ssm'"]),
    ("/ssm/x", ["'aws' or 'ssm'"]),
    ("AWSTestParameter", ["'aws' or 'ssm'"]),
    ("/aws/reference/secretsmanager", ["'aws' or 'ssm'"]),
    ("/aws/reference/secretsmanager/", ["end with '/'"]),
    ("/aws/reference/secretsmanager/bad name", ["Secrets Manager"]),
    ("/te\u0430st", ["U+0430", "CYRILLIC SMALL LETTER A", "position 4"]),
    ("/app\u2010name", ["U+2010", "HYPHEN", "position 5"]),
    ("/db pass", ["spaces", "position 4"]),
    ("/db\tpass", ["U+0009"]),
    ("/db:pass", ["U+003A"]),
    ("/" + "x" * 1011, ["1012 characters", "1011"]),
]


@pytest.mark.parametrize(("name", "expected"), BAD_PARAMETER_NAMES)
def test_parameter_name_bad(name: str, expected: list[str]) -> None:
    message = check_parameter_name(name)
    assert message is not None
    assert "\n" not in message
    for part in expected:
        assert part in message


def test_parameter_name_path_hint_is_exact() -> None:
    assert (
        check_parameter_name("test/database_password")
        == "a name with a path must start with '/': /test/database_password"
    )


def test_parameter_name_is_case_sensitive_not_folded() -> None:
    assert check_parameter_name("/App/DB") is None
    assert check_parameter_name("/app/db") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/aws/reference/secretsmanager/foo", True),
        ("/aws/reference/secretsmanager/a/b", True),
        ("/aws/reference/secretsmanager/", False),
        ("/aws/reference/secretsmanager", False),
        ("/AWS/reference/secretsmanager/foo", False),
        ("/aws/reference/other/foo", False),
        ("/test/database_password", False),
    ],
)
def test_is_secretsmanager_reference(name: str, expected: bool) -> None:
    assert is_secretsmanager_reference(name) is expected


@pytest.mark.parametrize(
    ("name", "region", "ok"),
    [
        ("/" + "x" * 966, "us-east-2", True),  # 45-character prefix + 966 = 1011
        ("/" + "x" * 967, "us-east-2", False),
        ("x" * 966, "us-east-2", True),  # no leading '/': same ARN
        ("/short", "ap-southeast-2", True),
    ],
)
def test_parameter_arn_length(name: str, region: str, ok: bool) -> None:
    message = check_parameter_arn_length(name, region)
    assert (message is None) is ok
    if not ok:
        assert "shorten" in message


@pytest.mark.parametrize(
    ("value", "tier", "ok"),
    [
        ("x" * 4096, "Standard", True),
        ("x" * 4097, "Standard", False),
        ("x" * 5000, "Advanced", True),
        ("x" * 8192, "Advanced", True),
        ("x" * 8193, "Advanced", False),
        ("x" * 8192, "Intelligent-Tiering", True),
        ("x" * 8193, "Intelligent-Tiering", False),
        ("\u00e9" * 2048, "Standard", True),  # 2 bytes each: 4096 bytes
        ("\u00e9" * 2049, "Standard", False),  # 2049 characters but 4098 bytes
        ("\U0001f511" * 1025, "Standard", False),  # 4 bytes each: 4100 bytes
        ("", "Standard", True),
    ],
)
def test_value_size(value: str, tier: str, ok: bool) -> None:
    assert (check_value_size(value, tier) is None) is ok


def test_value_size_message_names_size_limit_and_fix() -> None:
    message = check_value_size("\u00e9" * 2049, "Standard", secret=False)
    assert message is not None
    assert "4098 bytes" in message and "4096" in message and "tier: Advanced" in message


def test_value_size_message_never_says_the_size_of_a_secret() -> None:
    message = check_value_size("\u00e9" * 2049, "Standard")
    assert message is not None and "4098" not in message and "2049" not in message
    assert "4096" in message and "tier: Advanced" in message


def test_value_size_unknown_tier() -> None:
    message = check_value_size("x", "Premium")
    assert message is not None and "Standard, Advanced or Intelligent-Tiering" in message


@pytest.mark.parametrize("tier", ["Standard", "Advanced", "Intelligent-Tiering"])
def test_value_size_message_never_contains_the_value(tier: str) -> None:
    canary = "CANARY-s3cr3t-\u00e9-"
    value = canary * (9000 // len(canary) + 1)
    message = check_value_size(value, tier)
    assert message is not None
    assert "CANARY" not in message and "s3cr3t" not in message


GOOD_KEYS = [
    "1234abcd-12ab-34cd-56ef-1234567890ab",
    "mrk-1234abcd12ab34cd56ef1234567890ab",
    "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws:kms:us-east-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
    "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws-cn:kms:cn-north-1:111122223333:alias/ExampleAlias",
    "alias/MyAliasName",
    "alias/team/payments_db-key",
    "alias/aws/ssm",
    "arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias",
    "arn:aws:kms:us-east-2:111122223333:alias/aws/ssm",
]


@pytest.mark.parametrize("key_id", GOOD_KEYS)
def test_kms_key_id_ok(key_id: str) -> None:
    assert check_kms_key_id(key_id) is None


BAD_KEYS = [
    ("MyAliasName", ["alias/MyAliasName"]),
    ("aws/ssm", ["alias/aws/ssm"]),
    ("alias/aws/s3", ["reserved", "alias/aws/ssm"]),
    ("arn:aws:kms:us-east-2:111122223333:alias/aws/lambda", ["reserved"]),
    ("alias/", ["not valid"]),
    ("alias/bad name", ["not valid"]),
    ("1234abcd-12ab", ["UUID"]),
    ("arn:aws:kms:us-east-2:111122223333:key/not-a-key", ["not a key id"]),
    ("arn:aws:kms:us-east-2:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab", ["not a KMS ARN"]),
    ("arn:aws:s3:::bucket", ["not a KMS ARN"]),
    ("my key", ["not a KMS key identifier"]),
]


@pytest.mark.parametrize(("key_id", "expected"), BAD_KEYS)
def test_kms_key_id_bad(key_id: str, expected: list[str]) -> None:
    message = check_kms_key_id(key_id)
    assert message is not None
    for part in expected:
        assert part in message


def test_kms_bare_alias_hint_is_exact() -> None:
    assert check_kms_key_id("MyAliasName") == (
        "an alias needs the 'alias/' prefix: alias/MyAliasName"
    )


ECS_NAME_CASES = [
    ("web", True),
    ("Web_App-2", True),
    ("x" * 255, True),
    ("x" * 256, False),
    ("", False),
    ("web.app", False),
    ("web app", False),
    ("web/app", False),
    ("w\u0435b", False),  # Cyrillic ie
]


@pytest.mark.parametrize(("name", "ok"), ECS_NAME_CASES)
@pytest.mark.parametrize("check", [check_family, check_container_name])
def test_ecs_names(check, name: str, ok: bool) -> None:
    assert (check(name) is None) is ok


def test_ecs_name_message_names_the_character() -> None:
    message = check_container_name("web.app")
    assert message is not None and "U+002E" in message and "position 4" in message


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("ecsTaskExecutionRole", True),
        ("role+=,.@-_1", True),
        ("r" * 64, True),
        ("r" * 65, False),
        ("", False),
        ("my role", False),
        ("my/role", False),
        ("r\u00f4le", False),
    ],
)
def test_role_name(name: str, ok: bool) -> None:
    assert (check_role_name(name) is None) is ok


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/", True),
        ("/service-role/", True),
        ("/a/b/c/", True),
        ("/" + "p" * 510 + "/", True),
        ("/" + "p" * 511 + "/", False),
        ("", False),
        ("service-role/", False),
        ("/service-role", False),
        ("//", False),
        ("/a b/", False),
        ("/caf\u00e9/", False),
        ("/del\u007f/", False),
    ],
)
def test_role_path(path: str, ok: bool) -> None:
    assert (check_role_path(path) is None) is ok


def test_role_path_hint() -> None:
    assert check_role_path("service-role") == (
        "an IAM path must start and end with '/': /service-role/"
    )


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("db-password", True),
        ("web", True),
        ("a", True),
        ("0web1", True),
        ("a" * 253, True),
        ("a" * 254, False),
        ("", False),
        ("DB-password", False),
        ("db_password", False),
        ("db.password", False),
        ("-db", False),
        ("db-", False),
    ],
)
def test_metadata_name(name: str, ok: bool) -> None:
    assert (check_metadata_name(name) is None) is ok


def test_metadata_name_suggests_a_fix() -> None:
    message = check_metadata_name("DB_Password")
    assert message is not None and message.endswith(": db-password")


def test_every_message_is_one_line() -> None:
    checks = [
        check_parameter_name("/a b"),
        check_kms_key_id("nope nope"),
        check_family("a.b"),
        check_role_name(""),
        check_role_path("x"),
        check_metadata_name("X"),
        check_value_size("x" * 5000, "Standard"),
    ]
    assert all(m and "\n" not in m for m in checks)


def test_limits_match_the_documentation() -> None:
    assert rules.MAX_PARAMETER_NAME == 1011
    assert rules.MAX_PARAMETER_LEVELS == 15
    assert rules.VALUE_LIMITS == {"Standard": 4096, "Advanced": 8192, "Intelligent-Tiering": 8192}


ROLE_NAMES = ["ecsTaskExecutionRole", "role+=,.@-_1", "r" * 64, "r" * 65, "", "my role", "r\u00f4le"]
ROLE_PATHS = ["/", "/service-role/", "//", "/a b/", "/del\u007f/", "/" + "p" * 511 + "/", "x/"]


def _model_accepts(shape_name: str, text: str) -> bool:
    """What the IAM API model's length and pattern (Java-style \\uXXXX escapes) accept."""
    shape = botocore.session.get_session().get_service_model("iam").shape_for(shape_name)
    meta = shape.metadata
    pattern = re.sub(r"\\u([0-9A-Fa-f]{4})", lambda m: re.escape(chr(int(m[1], 16))), meta["pattern"])
    fits = meta["min"] <= len(text) <= meta["max"]
    return fits and re.fullmatch(pattern, text, re.ASCII) is not None


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_role_name_agrees_with_the_iam_model(name: str) -> None:
    assert (check_role_name(name) is None) is _model_accepts("roleNameType", name)


@pytest.mark.parametrize("path", ROLE_PATHS)
def test_role_path_agrees_with_the_iam_model(path: str) -> None:
    assert (check_role_path(path) is None) is _model_accepts("pathType", path)
