"""Naming and size rules of SSM, KMS, ECS and IAM, as pure checks.

Every check returns ``None`` when the input is fine, or one line that says what is wrong and how to
fix it. The caller prefixes the line with ``file:line Kind/name field``. A message may quote a name
(names are not secret) but never a parameter value.

Sources (AWS documentation, confirmed while writing these rules):
- SSM User Guide, "Requirements and constraints for parameter names", and the PutParameter API
  reference, ``Name``: characters ``a-zA-Z0-9_.-`` plus ``/`` between levels; case-sensitive; no
  spaces; a name in a hierarchy starts with ``/``; at most fifteen levels; no ``aws``/``ssm`` prefix,
  case-insensitive (``awsTestParameter``, ``SSM-testparameter``, ``/aws/testparam1`` all fail).
- PutParameter ``Value``: "Standard parameters have a value limit of 4 KB. Advanced parameters have
  a value limit of 8 KB."
- KMS key identifiers (DescribeKey ``KeyId``): key ID, key ARN, ``alias/NAME``, alias ARN. Alias
  names: 1-256 characters of ``[a-zA-Z0-9/_-]``; ``alias/aws/`` is reserved for AWS managed keys.
- ECS RegisterTaskDefinition ``family`` and ContainerDefinition ``name``: "Up to 255 letters
  (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
- ECS RegisterTaskDefinition ``cpu``/``memory``: "an integer using CPU units (for example, 1024) or ... a
  string using vCPUs (for example, 1 vCPU or 1 vcpu) ... String values are converted to an integer";
  memory likewise in GB. The API reference's own task-size table writes ".25 vCPU"; cfn-lint's
  maintainers found ECS takes any spacing and case and the leading-dot form (cfn-lint#3514).
- ECS refuses an empty image: "Container.image should not be null or empty." (ClientException, as
  quoted in convox/praxis#121).
- IAM CreateRole (botocore model): ``roleNameType`` 1-64 of ``[\\w+=,.@-]``; ``pathType`` 1-512,
  ``/`` or ``/[\\u0021-\\u007E]+/``. The prose says "through the DEL character (\\u007F)"; we
  follow the model's pattern, which the service enforces, and refuse DEL.
"""

from __future__ import annotations

import re
import unicodedata

from controller.vocab.arns import partition_of

SECRETSMANAGER_PREFIX = "/aws/reference/secretsmanager/"

# PutParameter, Name: "The maximum length for a parameter name that you specify is 1011 characters.
# This count of 1011 characters includes the characters in the ARN that precede the name you
# specify" (e.g. the 45 characters of arn:aws:ssm:us-east-2:111122223333:parameter/). The API
# model's 2048 includes 1037 characters reserved by Systems Manager. Without a Region we can only hold the
# name to 1011; check_parameter_arn_length applies the exact, Region-dependent bound.
MAX_PARAMETER_NAME = 1011
MAX_PARAMETER_LEVELS = 15
VALUE_LIMITS = {"Standard": 4096, "Advanced": 8192, "Intelligent-Tiering": 8192}

_SSM_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/")
# Secrets Manager CreateSecret, Name: "ASCII letters, numbers, and the following characters: /_+=.@-",
# at most 512 characters.
_SECRET_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_+=.@-")
MAX_SECRET_NAME = 512
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_KEY_ID = re.compile(rf"(?:{_UUID}|mrk-[0-9a-fA-F]{{32}})")
_ALIAS = re.compile(r"alias/[a-zA-Z0-9/_-]{1,250}")
_KMS_ARN = re.compile(
    r"arn:aws[-a-z]*:kms:[a-z]{2}(?:-[a-z]+)+-\d+:\d{12}:(?P<kind>key|alias)/(?P<rest>.+)"
)
_ECS_ALLOWED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_ECS_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_ROLE_PATH = re.compile(r"/(?:[\u0021-\u007E]+/)?")
_METADATA_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,251}[a-z0-9])?")


_UNIT_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_UNIT_PATTERNS = {
    "vCPU": re.compile(_UNIT_NUMBER + r"\s*vcpu", re.IGNORECASE),
    "GB": re.compile(_UNIT_NUMBER + r"\s*gb", re.IGNORECASE),
}


def unit_amount(text: str, unit: str) -> int | None:
    """``"0.25 vCPU"``/``".25 vcpu"`` -> 256, ``"1 GB"`` -> 1024 (``unit`` is ``vCPU`` or ``GB``); a bare
    integer is returned as it is; ``None`` when ECS would not read it as a whole number of units."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    match = _UNIT_PATTERNS[unit].fullmatch(text)
    if match is None:
        return None
    whole, _, fraction = match.group(1).partition(".")
    # exact arithmetic: amount * 1024 must be an integer
    numerator = int(whole or 0) * 10 ** len(fraction) + int(fraction or 0)
    units, rest = divmod(numerator * 1024, 10 ** len(fraction))
    return None if rest else units


def check_task_size(value: object, field: str) -> str | None:
    """Task-level ``cpu`` (CPU units or vCPU) and ``memory`` (MiB or GB) as ECS reads them."""
    if not isinstance(value, str):
        return None  # the ECS model check reports a wrong type
    unit = "vCPU" if field == "cpu" else "GB"
    if unit_amount(value, unit) is not None:
        return None
    example = "256, '0.25 vCPU' or '.25 vCPU'" if field == "cpu" else "512, '0.5 GB' or '1 GB'"
    return (f"ECS cannot read {value!r} as task {field} (a whole number of "
            f"{'CPU units' if field == 'cpu' else 'MiB'} or a number of {unit}); write e.g. {example}")


def check_image(image: object) -> str | None:
    if isinstance(image, str) and not image.strip():
        return ("the image is empty, and ECS refuses a task definition without one; give an image such "
                "as nginx:1.27 or ACCOUNT.dkr.ecr.REGION.amazonaws.com/app:TAG")
    return None


def _describe_char(ch: str) -> str:
    name = unicodedata.name(ch, "unnamed character")
    return f"{ch!r} (U+{ord(ch):04X} {name})"


def _first_bad_char(text: str, allowed: frozenset[str]) -> str | None:
    for pos, ch in enumerate(text, start=1):
        if ch not in allowed:
            return f"has {_describe_char(ch)} at position {pos}"
    return None


def is_secretsmanager_reference(name: str) -> bool:
    """True for ``/aws/reference/secretsmanager/ID``: an SSM path to a Secrets Manager secret."""
    return name.startswith(SECRETSMANAGER_PREFIX) and len(name) > len(SECRETSMANAGER_PREFIX)


def _check_reference(name: str) -> str | None:
    """What may follow /aws/reference/secretsmanager/: a Secrets Manager secret name.

    SSM passes the rest of the name to Secrets Manager as the secret id (SSM User Guide, "Referencing
    AWS Secrets Manager secrets from Parameter Store parameters"), so the secret's own name rule
    applies. A ':' never reaches Secrets Manager: SSM reads what follows it as a version or label
    selector (GetParameter, Name), which such references cannot use. JSON keys and version
    selectors go in a secret ARN instead (arn:...:secret:NAME:json-key:version-stage:version-id).
    """
    secret_id = name[len(SECRETSMANAGER_PREFIX) :]
    if ":" in secret_id:
        return (
            f"{name!r} has ':' after {SECRETSMANAGER_PREFIX}, where SSM reads it as a version "
            "selector; to pick a JSON key or version, use the secret's ARN as valueFrom "
            "(arn:...:secret:NAME:json-key:version-stage:version-id)"
        )
    bad = _first_bad_char(secret_id, _SECRET_NAME_CHARS)
    if bad:
        return (
            f"the secret name after {SECRETSMANAGER_PREFIX} {bad}; a Secrets Manager secret name "
            "uses only ASCII letters, digits and / _ + = . @ -"
        )
    if len(secret_id) > MAX_SECRET_NAME:
        return f"the secret name is {len(secret_id)} characters, over Secrets Manager's {MAX_SECRET_NAME}; shorten it"
    return None


def _check_path_shape(name: str) -> str | None:
    if "/" in name and not name.startswith("/"):
        return f"a name with a path must start with '/': /{name}"
    if not name.strip("/"):
        return "the parameter name has no name after the '/'; give one such as /app/db_password"
    if name.endswith("/"):
        return f"a parameter name must not end with '/': {name.rstrip('/') or '/name'}"
    if "//" in name:
        return f"a parameter name must not contain an empty level ('//'): {re.sub('/+', '/', name)}"
    levels = len(name.strip("/").split("/"))
    if levels > MAX_PARAMETER_LEVELS:
        return (
            f"a parameter name may have at most {MAX_PARAMETER_LEVELS} levels, this one has "
            f"{levels}; flatten the hierarchy"
        )
    return None


def _check_reserved_prefix(name: str) -> str | None:
    first = name.lstrip("/")[:3].lower()
    if first in ("aws", "ssm"):
        joiner = "/" if name.startswith("/") else "-"
        return (
            "a parameter name must not begin with 'aws' or 'ssm' (any case), which SSM "
            f"reserves; rename it, e.g. /app{joiner}{name.lstrip('/')}"
        )
    return None


def check_parameter_name(name: str) -> str | None:
    """SSM parameter-name rules; ``/aws/reference/secretsmanager/`` names are references."""
    if not name:
        return "the parameter name is empty; give a name such as /app/db_password"
    if is_secretsmanager_reference(name):
        return _check_reference(name)
    if " " in name:
        pos = name.index(" ") + 1
        return f"a parameter name must not contain spaces (position {pos}); use '-' or '_' instead"
    bad = _first_bad_char(name, _SSM_NAME_CHARS)
    if bad:
        return f"the parameter name {bad}; use only a-z, A-Z, 0-9 and _ . - /"
    if len(name) > MAX_PARAMETER_NAME:
        return (
            f"the parameter name is {len(name)} characters, over SSM's {MAX_PARAMETER_NAME}; "
            "shorten it"
        )
    return _check_path_shape(name) or _check_reserved_prefix(name)


def check_parameter_arn_length(name: str, region: str, partition: str | None = None) -> str | None:
    """The exact length bound: 1011 characters counting the ARN prefix (Region- and partition-dependent)."""
    prefix = f"arn:{partition or partition_of(region)}:ssm:{region}:123456789012:parameter/"
    total = len(prefix) + len(name.lstrip("/"))
    if total > MAX_PARAMETER_NAME:
        room = MAX_PARAMETER_NAME - len(prefix) + (1 if name.startswith("/") else 0)
        return (
            f"the parameter name is {len(name)} characters; in {region} SSM allows {room} "
            f"(1011 including the {len(prefix)}-character ARN prefix); shorten it"
        )
    return None


def check_value_size(value: str, tier: str, secret: bool = True) -> str | None:
    """Size of a parameter value in UTF-8 bytes against its tier's limit; never echoes the value, and
    says the size only of a value that is no secret (a String ``literal``): a length is a leak too."""
    limit = VALUE_LIMITS.get(tier)
    if limit is None:
        return f"unknown tier {tier!r}; use Standard, Advanced or Intelligent-Tiering"
    size = len(value.encode("utf-8"))
    if size <= limit:
        return None
    return too_large(tier, None if secret else size)


def too_large(tier: str, size: int | None = None) -> str:
    """A value over ``tier``'s limit, with the fix; its ``size`` only when it may be said (not a secret's)."""
    hint = (
        "set tier: Advanced (8192 bytes)"
        if tier == "Standard"
        else "keep it in Secrets Manager and reference /aws/reference/secretsmanager/NAME"
    )
    what = "the value is over" if size is None else f"the value is {size} bytes, over"
    return f"{what} the {tier} tier's limit of {VALUE_LIMITS[tier]} bytes; {hint}"


def _check_alias(alias: str) -> str | None:
    if not _ALIAS.fullmatch(alias):
        return (
            f"the alias {alias!r} is not valid: after 'alias/' use 1-250 of a-z, A-Z, 0-9, / _ -"
        )
    if alias.startswith("alias/aws/") and alias != "alias/aws/ssm":
        return (
            f"{alias!r} is reserved for AWS managed keys; use alias/aws/ssm (the default) "
            "or an alias of your own key"
        )
    return None


def _check_kms_arn(match: re.Match[str]) -> str | None:
    rest = match["rest"]
    if match["kind"] == "alias":
        return _check_alias(f"alias/{rest}")
    if not _KEY_ID.fullmatch(rest):
        return (
            f"the key ARN ends in {rest!r}, which is not a key id; expected a UUID such as "
            "1234abcd-12ab-34cd-56ef-1234567890ab or mrk- and 32 hex digits"
        )
    return None


def check_kms_key_id(key_id: str) -> str | None:
    """A key id, key ARN, ``alias/NAME`` or alias ARN; a bare alias name gets the prefix hint."""
    if _KEY_ID.fullmatch(key_id):
        return None
    if key_id.startswith("alias/"):
        return _check_alias(key_id)
    if key_id.startswith("arn:"):
        match = _KMS_ARN.fullmatch(key_id)
        if match is None:
            return (
                "not a KMS ARN; expected arn:PARTITION:kms:REGION:ACCOUNT:key/KEY_ID "
                "or arn:PARTITION:kms:REGION:ACCOUNT:alias/NAME"
            )
        return _check_kms_arn(match)
    if re.fullmatch(r"[0-9a-fA-F]+(?:-[0-9a-fA-F]+)+", key_id):
        return (
            f"{key_id!r} is not a valid key id; expected a UUID such as "
            "1234abcd-12ab-34cd-56ef-1234567890ab"
        )
    if re.fullmatch(r"[a-zA-Z0-9/_-]+", key_id):
        return f"an alias needs the 'alias/' prefix: alias/{key_id}"
    return (
        "not a KMS key identifier; use a key id, a key ARN, alias/NAME or an alias ARN"
    )


def _check_ecs_name(name: str, what: str) -> str | None:
    if _ECS_NAME.fullmatch(name):
        return None
    if not name:
        return f"the {what} is empty; give up to 255 letters, digits, '-' or '_'"
    if len(name) > 255:
        return f"the {what} is {len(name)} characters, over ECS's 255; shorten it"
    bad = _first_bad_char(name, frozenset(_ECS_ALLOWED))
    return f"the {what} {bad}; ECS allows only letters, digits, '-' and '_'"



def check_family(name: str) -> str | None:
    """ECS task-definition family: up to 255 letters, digits, hyphens and underscores."""
    return _check_ecs_name(name, "family")


def check_container_name(name: str) -> str | None:
    """ECS container name: up to 255 letters, digits, hyphens and underscores."""
    return _check_ecs_name(name, "container name")


_ROLE_ALLOWED = frozenset(_ECS_ALLOWED + "+=,.@")


def check_role_name(name: str) -> str | None:
    """IAM role name: 1-64 of letters, digits and ``_+=,.@-``."""
    if _ROLE_NAME.fullmatch(name):
        return None
    if not name:
        return "the role name is empty; give 1-64 letters, digits or _+=,.@-"
    if len(name) > 64:
        return f"the role name is {len(name)} characters, over IAM's 64; shorten it"
    bad = _first_bad_char(name, _ROLE_ALLOWED)
    return f"the role name {bad}; IAM allows only letters, digits and _+=,.@-"


def check_role_path(path: str) -> str | None:
    """IAM path: ``/`` or ``/a/b/``, 1-512 printable ASCII characters, no spaces."""
    if not path.startswith("/") or not path.endswith("/"):
        inner = path.strip("/")
        return f"an IAM path must start and end with '/': {f'/{inner}/' if inner else '/'}"
    if len(path) > 512:
        return f"the IAM path is {len(path)} characters, over IAM's 512; shorten it"
    if not _ROLE_PATH.fullmatch(path):
        bad = _first_bad_char(path, frozenset(map(chr, range(0x21, 0x7F))))
        if bad is None:
            return "an IAM path must be '/' or '/NAME/' with something between the slashes: /"
        return f"the IAM path {bad}; use printable ASCII without spaces"
    return None


def check_metadata_name(name: str) -> str | None:
    """metadata.name: 1-253 lowercase letters, digits and '-', alphanumeric at both ends."""
    if _METADATA_NAME.fullmatch(name):
        return None
    if not name:
        return "metadata.name is empty; give a name such as db-password"
    if len(name) > 253:
        return f"metadata.name is {len(name)} characters, over 253; shorten it"
    suggestion = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "name"
    return (
        "metadata.name may use only lowercase letters, digits and '-', and must start and end "
        f"with a letter or digit: {suggestion[:253]}"
    )
