"""Read the actual state, batched, each thing once; reads of different kinds overlap.

What to read is derived from the manifests (``Needs``); how many calls it costs is what the
APIs allow: GetParameters 10 names a call, DescribeParameters 50 a page (its tag filter says what
we own, so tags are never read per parameter), and one or three calls per role and family.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from botocore.exceptions import ClientError

from controller import desired as d
from controller.aws import Aws, error_code
from controller.manifest import Manifest
from controller.observe_iam import read_roles
from controller.observe_ecs import read_task_definitions
from controller.sensitive import Sensitive
from controller.state import Actual, ActualParameter

WORKERS = 8


def chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@dataclass
class RegionNeeds:
    declared: dict[str, Any] = field(default_factory=dict)      # name → Obj
    undeclared: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)


def needs(manifest: Manifest, region: str) -> dict[str, RegionNeeds]:
    out: dict[str, RegionNeeds] = {}
    declared = d.declared_parameters(manifest, region)
    for (r, name), obj in declared.items():
        n = out.setdefault(r, RegionNeeds())
        n.declared[name] = obj
        if obj.spec.kmsKeyId and not d.is_aws_managed_key(obj.spec.kmsKeyId):
            n.keys.add(obj.spec.kmsKeyId)
    for td in manifest.of("TaskDefinition"):
        for ref in d.references(td):
            r = ref.region or region
            n = out.setdefault(r, RegionNeeds())
            if ref.secret_id:
                n.secrets.add(ref.secret_id)
            elif ref.service == "ssm" and (r, ref.name) not in declared:
                n.undeclared.add(ref.name)
    return out


def observe(aws: Aws, manifest: Manifest, owner: str, prune: bool = False) -> Actual:
    wants = needs(manifest, aws.region)
    with ThreadPoolExecutor(WORKERS) as pool:
        account = pool.submit(_account, aws)
        params = {r: pool.submit(_read_parameters, aws, r, n, owner) for r, n in wants.items()}
        secrets = {r: pool.submit(_read_secrets, aws, r, n.secrets) for r, n in wants.items()}
        roles = pool.submit(read_roles, aws, manifest, owner)
        tds = pool.submit(read_task_definitions, aws, manifest, owner)
        partition, account_id = account.result()
        actual = Actual(ctx=d.Context(account=account_id, region=aws.region, partition=partition))
        _merge(actual, params, secrets, roles.result(), tds.result())
        keys = {(r, k) for r, n in wants.items() for k in n.keys}
        keys |= {(r, k) for (r, _), k in actual.ctx.param_keys.items() if not d.is_aws_managed_key(k)}
        keys |= {(arn.split(":")[3], k) for arn, k in actual.ctx.secret_keys.items() if k}
        key_arns = dict(pool.map(lambda rk: (rk, _key_arn(aws, *rk, actual.missing)), sorted(keys)))
    actual.ctx = replace(actual.ctx, key_arns=key_arns)
    if prune:
        from controller.observe_prune import read_prune_candidates
        actual.prune = read_prune_candidates(aws, manifest, actual, owner)
    return actual


def _account(aws: Aws) -> tuple[str, str]:
    arn = aws.client("sts").get_caller_identity()["Arn"]
    return arn.split(":")[1], arn.split(":")[4]


def _merge(actual: Actual, params: dict, secrets: dict, roles: tuple, tds: tuple) -> None:
    param_keys, secret_arns, secret_keys = {}, {}, {}
    for region, future in params.items():
        found, missing = future.result()
        actual.parameters.update({(region, p.name): p for p in found})
        actual.missing.update(missing)
        param_keys.update({(region, p.name): p.key_id for p in found if p.key_id})
    for region, future in secrets.items():
        arns, keys, missing = future.result()
        secret_arns.update({(region, s): a for s, a in arns.items()})
        secret_keys.update(keys)
        actual.missing.update(missing)
    actual.roles, role_arns, role_missing = roles
    actual.task_definitions = tds
    actual.missing.update(role_missing)
    actual.ctx = replace(actual.ctx, param_keys=param_keys, secret_arns=secret_arns,
                         secret_keys=secret_keys, role_arns=role_arns)


def _read_parameters(aws: Aws, region: str, n: RegionNeeds, owner: str) -> tuple[list, list]:
    ssm = aws.client("ssm", region)
    owned = {p["Name"]: p for p in _describe(ssm, [_tag_filter(d.OWNER_TAG, owner)])}
    others = sorted((set(n.declared) - set(owned)) | n.undeclared)
    existing = {p["Name"]: p for batch in chunks(others, 50)
                for p in _describe(ssm, [{"Key": "Name", "Option": "Equals", "Values": batch}])}
    compared = [name for name, o in n.declared.items() if _compares_value(o)]
    values = _values(ssm, compared, {name for name in compared if n.declared[name].spec.value.literal is not None})
    found = [_parameter(m, region, name in owned, values.get(name))
             for name, m in {**existing, **owned}.items() if name in n.declared or name in n.undeclared]
    _check_tags(ssm, n, owner, found)
    missing = {("ssm", region, name): f"SSM parameter {name} does not exist in {region}; create it or "
               "declare it as a Parameter with a value" for name in sorted(set(n.undeclared) | _unvalued(n))
               if name not in existing and name not in owned}
    return found, missing


def _unvalued(n: RegionNeeds) -> set[str]:
    return {name for name, o in n.declared.items() if o.spec.value is None}


def _compares_value(obj: Any) -> bool:
    v = obj.spec.value
    return v is not None and v.generate is None


def _tag_filter(key: str, value: str) -> dict:
    return {"Key": f"tag:{key}", "Values": [value]}


def _describe(ssm: Any, filters: list[dict]) -> Iterable[dict]:
    for page in ssm.get_paginator("describe_parameters").paginate(ParameterFilters=filters,
                                                                   PaginationConfig={"PageSize": 50}):
        yield from page["Parameters"]


def _values(ssm: Any, names: list[str], literal: set[str]) -> dict[str, Sensitive]:
    out = {}
    for batch in chunks(sorted(names), 10):
        for p in ssm.get_parameters(Names=batch, WithDecryption=True)["Parameters"]:
            out[p["Name"]] = Sensitive(p["Value"], secret=p["Name"] not in literal)
    return out


def _parameter(meta: dict, region: str, owned: bool, value: Sensitive | None) -> ActualParameter:
    return ActualParameter(name=meta["Name"], region=region, type=meta["Type"],
                           key_id=meta.get("KeyId") if meta["Type"] == "SecureString" else None,
                           tier=meta.get("Tier", "Standard"), description=meta.get("Description"),
                           version=meta.get("Version", 0), owned=owned, value=value)


def _check_tags(ssm: Any, n: RegionNeeds, owner: str, found: list[ActualParameter]) -> None:
    """One tag-filtered listing per distinct desired tag pair says who carries it: no per-parameter reads."""
    tags = {name: d.checked_tags(o) for name, o in n.declared.items()}
    wanted = {pair for t in tags.values() for pair in t.items()}
    carriers = {}
    for k, v in sorted(wanted):
        carriers[(k, v)] = {p["Name"] for p in _describe(ssm, [_tag_filter(d.OWNER_TAG, owner), _tag_filter(k, v)])}
    for p in found:
        obj = n.declared.get(p.name)
        if obj is not None and p.owned:
            p.tags_in_sync = all(p.name in carriers[pair] for pair in tags[p.name].items())


def _read_secrets(aws: Aws, region: str, secret_ids: set[str]) -> tuple[dict, dict, list]:
    arns, keys, missing = {}, {}, {}
    sm = aws.client("secretsmanager", region) if secret_ids else None
    for sid in sorted(secret_ids):
        try:
            r = sm.describe_secret(SecretId=sid)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            missing[("secret", region, sid)] = f"Secrets Manager secret {sid} does not exist in {region}; create it first"
            continue
        arns[sid] = r["ARN"]
        keys[r["ARN"]] = r.get("KmsKeyId")
    return arns, keys, missing


def _key_arn(aws: Aws, region: str, key_id: str, missing: dict) -> str | None:
    try:
        meta = aws.client("kms", region).describe_key(KeyId=key_id)["KeyMetadata"]
    except ClientError as exc:
        if error_code(exc) != "NotFoundException":
            raise
        missing[("kms", region, key_id)] = f"KMS key {key_id} does not exist in {region}; create it (or its alias) first"
        return None
    if meta.get("KeyState") not in (None, "Enabled"):
        missing[("kms", region, key_id)] = f"KMS key {key_id} in {region} is {meta['KeyState']}; enable it"
    return None if meta.get("KeyManager") == "AWS" else meta["Arn"]

