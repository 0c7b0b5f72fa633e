"""Every refusal that needs no AWS call: per field, per object and across objects. Pure."""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterator

from controller.manifests import ecsmodel, external, limits, rules
from controller.manifests.documents import Manifest, Obj
from controller.vocab.arns import BadReference, parse_arn, parse_value_from, partition_of
from controller.vocab.problems import Problem
from controller.vocab.secretrefs import secret_uses
from controller.vocab.taskreads import refusals, task_reads

RESERVED_TAG_PREFIXES = ("aws:", "ecs-secrets:")
_POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)


def check(manifest: Manifest) -> list[Problem]:
    """What the manifests alone can tell; the size of a derived policy is checked with ``Desired``."""
    problems: list[Problem] = []
    for obj in manifest.objects:
        problems.extend(_metadata(obj))
        problems.extend(_BY_KIND[obj.kind](obj))
    problems.extend(_duplicates(manifest))
    problems.extend(_references(manifest))
    problems.extend(_rollout_services(manifest))
    problems.extend(_partitions(manifest))
    problems.extend(limits.problems(manifest))
    return problems


def _metadata(obj: Obj) -> Iterator[Problem]:
    msg = rules.check_metadata_name(obj.name)
    if msg:
        yield obj.problem(("metadata", "name"), msg)


def _parameter(obj: Obj) -> Iterator[Problem]:
    spec, at = obj.spec, ("spec",)
    is_reference = rules.is_secretsmanager_reference(spec.name)
    msg = rules.check_parameter_name(spec.name)
    if msg:
        yield obj.problem(at + ("name",), msg)
    if is_reference and spec.value is not None:
        yield obj.problem(at + ("value",), "a /aws/reference/secretsmanager/ name reads a Secrets Manager "
                          "secret; it cannot be given a value here — remove `value` and set the secret in Secrets Manager")
    if spec.kmsKeyId is not None:
        msg = (f"kmsKeyId applies only to SecureString, not {spec.type}; remove it or set type: SecureString"
               if spec.type != "SecureString" else rules.check_kms_key_id(spec.kmsKeyId))
        if msg:
            yield obj.problem(at + ("kmsKeyId",), msg)
    yield from _value(obj)
    yield from _tags(obj, spec.tags)


def _value(obj: Obj) -> Iterator[Problem]:
    value, at = obj.spec.value, ("spec", "value")
    if value is None or value.literal is None:
        return
    if obj.spec.type == "SecureString":
        yield obj.problem(at + ("literal",), "a SecureString value never sits in a manifest; use fromEnv, "
                          "fromFile or generate")
        return
    msg = rules.check_value_size(value.literal, obj.spec.tier, secret=False)
    if msg:
        yield obj.problem(at + ("literal",), msg)


def _tags(obj: Obj, tags: dict[str, str]) -> Iterator[Problem]:
    for key, value in tags.items():
        at = ("spec", "tags", key)
        if key.lower().startswith(RESERVED_TAG_PREFIXES):
            yield obj.problem(at, f"tag keys starting with {' or '.join(RESERVED_TAG_PREFIXES)} are reserved; rename it")
        elif not 1 <= len(key) <= 128 or len(value) > 256:
            yield obj.problem(at, "a tag key is 1–128 characters and its value at most 256; shorten it")
    if len(tags) > 40:
        yield obj.problem(("spec", "tags"), "at most 40 tags (AWS allows 50, ecs-secrets keeps some); remove some")


def _role(obj: Obj) -> Iterator[Problem]:
    spec, at = obj.spec, ("spec",)
    for field, msg in (("roleName", rules.check_role_name(spec.roleName)), ("path", rules.check_role_path(spec.path))):
        if msg:
            yield obj.problem(at + (field,), msg)
    if not _POLICY_NAME.fullmatch(spec.inlinePolicyName):
        yield obj.problem(at + ("inlinePolicyName",), "1–128 of letters, digits and +=,.@_-; rename it")
    for i, arn in enumerate(spec.managedPolicyArns):
        parsed = parse_arn(arn)
        if parsed is None or parsed.service != "iam" or not parsed.resource.startswith("policy/"):
            yield obj.problem(at + ("managedPolicyArns", i), "not a managed policy ARN "
                              "(arn:PARTITION:iam::aws:policy/... or arn:PARTITION:iam::ACCOUNT:policy/...)")
    yield from _tags(obj, spec.tags)


def _task_definition(obj: Obj) -> Iterator[Problem]:
    spec, fields = obj.spec, obj.spec.ecs_fields()
    msg = rules.check_family(spec.family)
    if msg:
        yield obj.problem(("spec", "family"), msg)
    for path, msg in ecsmodel.problems(fields):
        yield obj.problem(("spec",) + path, msg)
    for i, container in enumerate(fields.get("containerDefinitions") or []):
        if not isinstance(container, dict):
            continue
        for required in ("name", "image"):
            if required not in container:
                yield obj.problem(("spec", "containerDefinitions", i), f"required field {required!r} is missing; add it")
        msg = rules.check_container_name(str(container["name"])) if "name" in container else None
        if msg:
            yield obj.problem(("spec", "containerDefinitions", i, "name"), msg)
        msg = rules.check_image(container["image"]) if "image" in container else None
        if msg:
            yield obj.problem(("spec", "containerDefinitions", i, "image"), msg)
    for field in ("cpu", "memory"):
        msg = rules.check_task_size(fields[field], field) if field in fields else None
        if msg:
            yield obj.problem(("spec", field), msg)
    if spec.executionRole and fields.get("executionRoleArn"):
        yield obj.problem(("spec", "executionRole"), "give executionRole or executionRoleArn, not both")
    if any(True for _ in secret_uses(fields)) and not (spec.executionRole or fields.get("executionRoleArn")):
        yield obj.problem(("spec", "containerDefinitions"), "containers read secrets, so the task needs an "
                          "execution role; add spec.executionRole (an ExecutionRole's metadata.name)")
    elif any(True for _ in task_reads(fields)) and not (spec.executionRole or fields.get("executionRoleArn")):
        first = next(task_reads(fields))
        yield obj.problem(("spec",) + first.path, f"ECS reads {first.label} with the task execution role; add "
                          "spec.executionRole (an ExecutionRole's metadata.name)")
    yield from _value_froms(obj)
    for i, msg in external.problems(spec.externallyManaged, fields):
        yield obj.problem(("spec", "externallyManaged", i), msg)
    for path, msg in refusals(fields):
        yield obj.problem(("spec",) + path, msg)


def _value_froms(obj: Obj) -> Iterator[Problem]:
    for use in secret_uses(obj.spec.ecs_fields()):
        at = ("spec",) + use.path + ("valueFrom",)
        try:
            ref = parse_value_from(use.value_from)
        except BadReference as exc:
            yield obj.problem(at, str(exc))
            continue
        if ref.service == "ssm":
            msg = rules.check_parameter_name(ref.name)
            if msg:
                yield obj.problem(at, msg)


_BY_KIND = {"Parameter": _parameter, "ExecutionRole": _role, "TaskDefinition": _task_definition}


def _duplicates(manifest: Manifest) -> Iterator[Problem]:
    region = manifest.region
    keys = {
        "metadata.name": lambda o: (o.kind, o.name),
        "spec.name": lambda o: (o.spec.region or region, o.spec.name) if o.kind == "Parameter" else None,
        "spec.roleName": lambda o: o.spec.roleName if o.kind == "ExecutionRole" else None,
        "spec.family": lambda o: o.spec.family if o.kind == "TaskDefinition" else None,
    }
    for field, key in keys.items():
        seen: dict = {}
        for obj in manifest.objects:
            k = key(obj)
            if k is None:
                continue
            if k in seen:
                first = seen[k]
                yield obj.problem(tuple(field.split(".")), f"duplicate: {first.ref} in {first.file}:"
                                  f"{first.doc.line} has the same {field}; keep one")
            else:
                seen[k] = obj


def _rollout_services(manifest: Manifest) -> Iterator[Problem]:
    """A service runs one task definition: two rollouts of it would fight over which revision it runs."""
    seen: dict[str, Obj] = {}
    for obj in manifest.of("TaskDefinition"):
        rollout = obj.spec.rollout
        for i, service in enumerate((rollout.services or []) if rollout else []):
            first = seen.setdefault(service, obj)
            if first is not obj:
                yield obj.problem(("spec", "rollout", "services", i), f"{service} is in the rollout of {first.ref} "
                                  f"({first.file}:{first.doc.line}) too; a service runs one task definition: keep one")


def _references(manifest: Manifest) -> Iterator[Problem]:
    region, declared = manifest.region, manifest.declared_parameters
    by_name = Counter(o.spec.name for o in manifest.of("Parameter"))
    accounts = _accounts(manifest)
    for td in manifest.of("TaskDefinition"):
        role = td.spec.executionRole
        if role and manifest.execution_role(td) is None and not role.startswith("arn:"):
            msg = rules.check_role_name(role)
            if msg:
                yield td.problem(("spec", "executionRole"), f"{role!r} is neither an ExecutionRole's "
                                 f"metadata.name nor a valid role name: {msg}")
        for use in secret_uses(td.spec.ecs_fields()):
            at = ("spec",) + use.path + ("valueFrom",)
            try:
                ref = parse_value_from(use.value_from)
            except BadReference:
                continue
            if ref.account and len(accounts) > 1:
                yield td.problem(at, f"ARNs in the manifests name {len(accounts)} accounts ({', '.join(sorted(accounts))}); "
                                 "ECS reads secrets from the task's own account only")
            if ref.region is None and (region, ref.name) not in declared and by_name[ref.name]:
                other = next(o for o in manifest.of("Parameter") if o.spec.name == ref.name)
                yield td.problem(at, f"{ref.name} is declared in Region {other.spec.region} ({other.ref}), not "
                                 f"{region}; reference it by full ARN: "
                                 f"arn:{partition_of(other.spec.region)}:ssm:{other.spec.region}:ACCOUNT:parameter/"
                                 f"{ref.name.lstrip('/')}")


def _partitions(manifest: Manifest) -> Iterator[Problem]:
    """Every ARN written in the manifests is in the partition of the controller's Region: one account,
    one partition (ECS reads secrets from the task's own account only). Refused, never rewritten."""
    want = partition_of(manifest.region)
    for obj in manifest.objects:
        region = obj.spec.region if obj.kind == "Parameter" else None
        if region and partition_of(region) != want:
            yield obj.problem(("spec", "region"), f"{region} is in partition {partition_of(region)!r}, outside "
                              f"partition {want!r} of {manifest.region}; the controller's account cannot write there")
        for at, text in _written_arns(obj):
            arn = parse_arn(text)
            if arn is None or arn.partition == want:
                continue
            if arn.region and partition_of(arn.region) != want:
                yield obj.problem(at, f"{text!r} is in Region {arn.region}, outside partition {want!r} of "
                                  f"{manifest.region}; the task's account cannot read it there")
            else:
                yield obj.problem(at, f"{text!r} is in partition {arn.partition!r}, but Region {manifest.region} "
                                  f"is in {want!r}; write arn:{want}:{text.split(':', 2)[2]}")


def _written_arns(obj: Obj) -> Iterator[tuple[tuple, str]]:
    spec = obj.spec
    if obj.kind == "Parameter" and spec.kmsKeyId:
        yield ("spec", "kmsKeyId"), spec.kmsKeyId
    elif obj.kind == "ExecutionRole" and "managedPolicyArns" in spec.model_fields_set:  # the default follows the Region
        for i, arn in enumerate(spec.managedPolicyArns):
            yield ("spec", "managedPolicyArns", i), arn
    elif obj.kind == "TaskDefinition":
        fields = spec.ecs_fields()
        if spec.executionRole:
            yield ("spec", "executionRole"), spec.executionRole
        for key in ("executionRoleArn", "taskRoleArn"):
            if isinstance(fields.get(key), str):
                yield ("spec", key), fields[key]
        for use in secret_uses(fields):
            try:
                parse_value_from(use.value_from)   # a malformed one is reported by _value_froms
            except BadReference:
                continue
            yield ("spec",) + use.path + ("valueFrom",), use.value_from


def _accounts(manifest: Manifest) -> set[str]:
    found = set()
    for td in manifest.of("TaskDefinition"):
        for use in secret_uses(td.spec.ecs_fields()):
            arn = parse_arn(use.value_from)
            if arn and arn.account:
                found.add(arn.account)
    return found
