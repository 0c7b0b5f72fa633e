"""What AWS documents as refused, checked before any request (moto accepts all of it). Pure.

``problems(manifest)`` is called once, from ``checks.check``; ``check_owner`` by the command line.
Each rule names its source:
- Tags. IAM ``Tag`` (API reference) and the botocore models of SSM (``TagKey``/``TagValue``), IAM
  (``tagKeyType``/``tagValueType``) and ECS (``TagKey``/``TagValue``): a key is 1-128 and a value
  0-256 characters of ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]`` (letters, separators, digits and ``_.:/=+-@``).
  ECS ``Tag`` and ``TagResource``: at most 50 tags, each key once, and ``aws:`` in any case is
  reserved "as a prefix for either keys or values".
- ECS service quotas ("Containers per task definition": 10, not adjustable); RegisterTaskDefinition
  refuses an empty container list.
- ECS ``ContainerDefinition.memory`` / ``memoryReservation``: "don't specify less than 6 MiB"; the
  API's ``Integer`` is 32 bits (botocore checks only the type, so ``10**30`` would be sent).
- ECS RegisterTaskDefinition errors: "Duplicate secret names found: X. Each secret name must be
  unique." and "The secret name must be unique and not shared with any new or existing environment
  variables set on the container" (quoted in CircleCI-Public/aws-ecs-orb#190 and dagster-io/dagster#11622),
  and "Environment variable name cannot be null or blank".
- SSM PutParameter ``Name``: 1011 characters counting the ARN before the name (``rules.check_parameter_arn_length``).
- IAM role ARNs: ``arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`` with CreateRole's name and path rules.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Iterator

from controller.manifests import ecsmodel, rules
from controller.manifests.documents import Manifest, Obj
from controller.vocab.arns import BadReference, parse_arn, parse_value_from
from controller.vocab.problems import Problem
from controller.vocab.secretrefs import secret_uses

MAX_TAG_KEY, MAX_TAG_VALUE = 128, 256
MAX_OWN_TAGS = 40               # AWS allows 50; ecs-secrets writes its own (owner, deletion policy)
RESERVED_TAG_PREFIXES = ("aws:", "ecs-secrets:")
MAX_CONTAINERS = 10
MIN_CONTAINER_MEMORY = 6        # MiB
INT32 = (-(2 ** 31), 2 ** 31 - 1)
_TAG_PUNCTUATION = frozenset("_.:/=+-@")


def _describe(ch: str) -> str:
    return f"{ch!r} (U+{ord(ch):04X} {unicodedata.name(ch, 'control character')})"


def _bad_tag_char(text: str) -> str | None:
    """The first character outside ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``, described, with its position."""
    for pos, ch in enumerate(text, start=1):
        if unicodedata.category(ch)[0] not in "LZN" and ch not in _TAG_PUNCTUATION:
            return f"{_describe(ch)} at position {pos}"
    return None


def _bad_space(text: str) -> str | None:
    """The first whitespace or control character: never part of a name, an ARN or a reference."""
    for pos, ch in enumerate(text, start=1):
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Zs"):
            return f"{_describe(ch)} at position {pos}"
    return None


def check_tag_value(value: str, what: str = "a tag value") -> str | None:
    if len(value) > MAX_TAG_VALUE:
        return f"{what} is {len(value)} characters, over AWS's {MAX_TAG_VALUE}; shorten it"
    bad = _bad_tag_char(value)
    if bad:
        return (f"{what} has {bad}; AWS tags allow only letters, digits, spaces and _ . : / = + - @")
    return None


def check_owner(owner: str) -> str | None:
    """``--owner`` is the value of the ecs-secrets:owner tag on SSM parameters, IAM roles and ECS task
    definitions: the tag value rules of all three, and not empty (it is how we recognise what we own)."""
    if not owner:
        return "--owner is empty; give an owner id such as ecs-secrets or team-a"
    msg = check_tag_value(owner, "--owner")
    if msg:
        return msg
    if owner.lower().startswith("aws:"):
        return "--owner must not start with 'aws:' (any case), which ECS reserves in tag values; rename it"
    return None


def problems(manifest: Manifest) -> Iterator[Problem]:
    for obj in manifest.objects:
        if obj.kind == "Parameter":
            yield from _tag_chars(obj, obj.spec.tags)
            yield from _parameter_arn(obj, obj.spec.name, obj.spec.region or manifest.region, ("spec", "name"))
        elif obj.kind == "ExecutionRole":
            yield from _tag_chars(obj, obj.spec.tags)
            yield from _no_spaces(obj, [(("spec", "managedPolicyArns", i), a)
                                        for i, a in enumerate(obj.spec.managedPolicyArns)])
        else:
            yield from _task_definition(obj, manifest.region)


def _tag_chars(obj: Obj, tags: dict[str, str]) -> Iterator[Problem]:
    """Characters only: ``checks`` already refuses reserved keys, lengths and counts of these tags."""
    for key, value in tags.items():
        bad = _bad_tag_char(key)
        if bad:
            yield obj.problem(("spec", "tags", key), f"the tag key has {bad}; AWS tags allow only letters, "
                              "digits, spaces and _ . : / = + - @")
        elif len(value) <= MAX_TAG_VALUE:
            msg = check_tag_value(value, "the tag value")
            if msg:
                yield obj.problem(("spec", "tags", key), msg)


def _parameter_arn(obj: Obj, name: str, region: str, at: tuple, partition: str | None = None) -> Iterator[Problem]:
    if rules.check_parameter_name(name) or rules.is_secretsmanager_reference(name):
        return   # a bad name is reported by checks; a Secrets Manager reference has its own limit
    msg = rules.check_parameter_arn_length(name, region, partition)
    if msg:
        yield obj.problem(at, msg)


def _no_spaces(obj: Obj, fields: list[tuple[tuple, Any]]) -> Iterator[Problem]:
    for at, text in fields:
        if isinstance(text, str):
            bad = _bad_space(text)
            if bad:
                yield obj.problem(at, f"has {bad}; names, ARNs and references never contain whitespace or "
                                  "control characters — remove it")


# --- task definitions ------------------------------------------------------------------------------

def _task_definition(obj: Obj, region: str) -> Iterator[Problem]:
    fields = obj.spec.ecs_fields()
    yield from _td_tags(obj, fields.get("tags"))
    yield from _containers(obj, fields.get("containerDefinitions"))
    yield from _numbers(obj, fields)
    yield from _role_arns(obj, fields)
    for use in secret_uses(fields):
        at = ("spec",) + use.path + ("valueFrom",)
        try:   # whitespace and control characters are refused by parse_value_from, reported by checks
            ref = parse_value_from(use.value_from)
        except BadReference:
            continue    # reported by checks
        if ref.service == "ssm":
            yield from _parameter_arn(obj, ref.name, ref.region or region, at, ref.partition)


def _td_tags(obj: Obj, tags: Any) -> Iterator[Problem]:
    """ECS task-definition tags, a list of {key, value}: botocore's model leaves both optional."""
    if not isinstance(tags, list):
        return   # a wrong type is reported by the botocore model check
    seen: set[str] = set()
    for i, tag in enumerate(tags):
        if not isinstance(tag, dict):
            continue
        at = ("spec", "tags", i)
        key, value = tag.get("key"), tag.get("value")
        if not isinstance(key, str) or not isinstance(value, str):
            missing = "key" if "key" not in tag else "value" if "value" not in tag else None
            if missing:
                yield obj.problem(at, f"the tag has no {missing}; give key and value (value: '' for an empty one)")
            continue    # a wrong type is reported by the botocore model check
        msg = _td_tag_key_problem(key, seen)
        if msg:
            yield obj.problem(at + ("key",), msg)
        elif value.lower().startswith("aws:"):
            yield obj.problem(at + ("value",), "a tag value must not start with 'aws:' (any case), which ECS "
                              "reserves; change it")
        else:
            msg = check_tag_value(value, f"the value of tag {key!r}")
            if msg:
                yield obj.problem(at + ("value",), msg)
        seen.add(key)
    if len(tags) > MAX_OWN_TAGS:
        yield obj.problem(("spec", "tags"), f"{len(tags)} tags; at most {MAX_OWN_TAGS} (ECS allows 50, "
                          "ecs-secrets writes its own); remove some")


def _td_tag_key_problem(key: str, seen: set[str]) -> str | None:
    if key in seen:
        return f"duplicate tag key {key!r}; ECS keeps one value per key — keep one"
    if key.lower().startswith(RESERVED_TAG_PREFIXES):
        return f"tag keys starting with {' or '.join(RESERVED_TAG_PREFIXES)} are reserved; rename it"
    if not 1 <= len(key) <= MAX_TAG_KEY:
        return f"a tag key is 1–{MAX_TAG_KEY} characters, this one {len(key)}; shorten it"
    bad = _bad_tag_char(key)
    if bad:
        return f"the tag key has {bad}; AWS tags allow only letters, digits, spaces and _ . : / = + - @"
    return None


def _containers(obj: Obj, containers: Any) -> Iterator[Problem]:
    if not isinstance(containers, list):
        return
    at = ("spec", "containerDefinitions")
    if not containers:
        yield obj.problem(at, "no containers; a task definition needs at least one container definition")
    elif len(containers) > MAX_CONTAINERS:
        yield obj.problem(at, f"{len(containers)} containers; ECS allows at most {MAX_CONTAINERS} per task "
                          "definition (a quota that cannot be raised) — split the task")
    for i, container in enumerate(containers):
        if isinstance(container, dict):
            yield from _container(obj, at + (i,), container)


def _container(obj: Obj, at: tuple, container: dict) -> Iterator[Problem]:
    for key in ("memory", "memoryReservation"):
        value = container.get(key)
        if _is_int(value) and value < MIN_CONTAINER_MEMORY:
            yield obj.problem(at + (key,), f"{value} MiB; ECS containers need at least {MIN_CONTAINER_MEMORY} "
                              "MiB (the Docker daemon reserves that much) — raise it")
    environment = {}
    for j, item in enumerate(container.get("environment") or []):
        if isinstance(item, dict):
            name = item.get("name")
            yield from _variable_name(obj, at + ("environment", j, "name"), name)
            if isinstance(name, str):
                environment.setdefault(name, j)
    secrets: dict[str, int] = {}
    for j, item in enumerate(container.get("secrets") or []):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        name, where = item["name"], at + ("secrets", j, "name")
        yield from _variable_name(obj, where, name)
        if name in secrets:
            yield obj.problem(where, f"duplicate secret name {name!r} (also secrets[{secrets[name]}]); ECS "
                              "refuses two secrets with one name — keep one")
        elif name in environment:
            yield obj.problem(where, f"{name!r} is also environment[{environment[name]}]; ECS refuses a secret "
                              "that shares its name with an environment variable — remove one")
        secrets.setdefault(name, j)


def _variable_name(obj: Obj, at: tuple, name: Any) -> Iterator[Problem]:
    if name is None or name == "":
        yield obj.problem(at, "the variable name is empty; ECS needs a name such as DB_PASSWORD")
    elif isinstance(name, str):
        bad = "'=' at position " + str(name.index("=") + 1) if "=" in name else _bad_space(name)
        if bad:
            yield obj.problem(at, f"the variable name {name[:60]!r} has {bad}; an environment variable "
                              "name has no '=', whitespace or control characters — rename it")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numbers(obj: Obj, fields: dict) -> Iterator[Problem]:
    """Every ECS integer: a whole number (not true/false) that fits the API's 32 bits."""
    for path, value in ecsmodel.integers(fields):
        at = ("spec",) + path
        if isinstance(value, bool):
            yield obj.problem(at, f"{str(value).lower()} where ECS wants a number; write a number")
        elif _is_int(value) and not INT32[0] <= value <= INT32[1]:
            yield obj.problem(at, f"{value} does not fit ECS's 32-bit integer; use a number up to {INT32[1]:,}")
    for key in ("cpu", "memory"):   # task level: strings in the API, numbers in YAML (``models.ecs_input``)
        value = fields.get(key)
        if _is_int(value) and not 0 < value <= INT32[1]:
            yield obj.problem(("spec", key), f"{value} is not a size ECS accepts; give a positive number "
                              f"(of {'CPU units' if key == 'cpu' else 'MiB'})")


def _role_arns(obj: Obj, fields: dict) -> Iterator[Problem]:
    given = [(("spec", k), fields.get(k)) for k in ("executionRoleArn", "taskRoleArn")]
    if isinstance(obj.spec.executionRole, str) and obj.spec.executionRole.startswith("arn:"):
        given.append((("spec", "executionRole"), obj.spec.executionRole))
    for at, text in given:
        if not isinstance(text, str) or not text:
            continue   # "" is how a described task definition says "no role" (tests/corpus/03-*)
        msg = check_role_arn(text)
        if msg:
            yield obj.problem(at, msg)


def check_role_arn(text: str) -> str | None:
    """No whitespace or control characters; an ARN that parses names an IAM role, with IAM's name and
    path rules. A bare role name (ECS accepts one and stores its ARN) or a placeholder is left to ECS."""
    bad = _bad_space(text)
    if bad:
        return f"has {bad}; a role ARN never contains whitespace or control characters — remove it"
    arn = parse_arn(text)
    if arn is None:
        return None
    if arn.service != "iam" or arn.region or not arn.resource.startswith("role/"):
        return "not a role ARN; write arn:PARTITION:iam::ACCOUNT:role/NAME (or role/PATH/NAME)"
    path, _, name = arn.resource[len("role"):].rpartition("/")
    return rules.check_role_name(name) or rules.check_role_path(path + "/")
