"""Read the actual state, batched, each thing once; reads of different kinds overlap.

What to read is derived from the manifests (``Needs``); how many calls it costs is what the
APIs allow: GetParameters 10 names a call, DescribeParameters 50 a page (its tag filter says what
we own, so tags are never read per parameter), one call per family, and three per role or one
account-wide listing for many roles (``observe_iam``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from botocore.exceptions import ClientError

from controller.core import desired as d
from controller.aws.session import Aws, error_code
from controller.aws.inuse import InUse
from controller.manifests.loader import Manifest
from controller.aws.observe_iam import read_roles
from controller.aws.observe_ecs import read_task_definitions
from controller.vocab.sensitive import Sensitive
from controller.core.state import Actual, ActualParameter

WORKERS = 8
READ_WORKERS = 4  # GetParameters batches in flight; the rate limiter keeps us under AWS's quota


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


def observe(aws: Aws, manifest: Manifest, owner: str, prune: bool = False,
            clusters: tuple[str, ...] = ()) -> Actual:
    """``clusters``: where ECS services may use our revisions (``inuse``); empty: every cluster."""
    wants = needs(manifest, aws.region)
    in_use = InUse(aws, clusters)
    with ThreadPoolExecutor(WORKERS) as pool:
        account = pool.submit(_account, aws)
        params = {r: pool.submit(_read_parameters, aws, r, n, owner) for r, n in wants.items()}
        secrets = {r: pool.submit(_read_secrets, aws, r, n.secrets) for r, n in wants.items()}
        roles = pool.submit(read_roles, aws, manifest, owner)
        tds = pool.submit(read_task_definitions, aws, manifest, owner, in_use)
        partition, account_id = account.result()
        actual = Actual(ctx=d.Context(account=account_id, region=aws.region, partition=partition))
        _merge(actual, params, secrets, roles.result(), tds.result())
        keys = {(r, k) for r, n in wants.items() for k in n.keys}
        keys |= {(r, k) for (r, _), k in actual.ctx.param_keys.items() if not d.is_aws_managed_key(k)}
        keys |= {(arn.split(":")[3], k) for arn, k in actual.ctx.secret_keys.items() if k}
        key_arns = dict(pool.map(lambda rk: (rk, _key_arn(aws, *rk, actual.missing)), sorted(keys)))
    actual.ctx = replace(actual.ctx, key_arns=key_arns)
    if prune:
        from controller.aws.observe_prune import read_prune_candidates
        actual.prune = read_prune_candidates(aws, manifest, actual, owner, in_use)
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
    """Owned and in sync: one tag-filtered listing per desired tag set. The rest (absent, not ours, tags
    drifted): DescribeParameters by name, 50 a call. Values (GetParameters, 10 a call) only of what exists."""
    ssm = aws.client("ssm", region)
    with _Values(ssm, n) as values:   # fetched while the listings stream on
        in_sync = _owned_in_sync(ssm, n, owner, values.want)
        rest = sorted((set(n.declared) | n.undeclared) - set(in_sync))
        existing = {p["Name"]: p for batch in chunks(rest, 50)
                    for p in describe_parameters(ssm, [{"Key": "Name", "Option": "Equals", "Values": batch}])}
        values.want(existing)
        declared_rest = sorted(name for name in existing if name in n.declared and n.declared[name].spec.value is not None)
        owned = set(in_sync) | {p["Name"] for batch in chunks(declared_rest, 50) for p in describe_parameters(
            ssm, [tag_filter(d.OWNER_TAG, owner), {"Key": "Name", "Option": "Equals", "Values": batch}])}
    metas = {**existing, **in_sync}
    found = [actual_parameter(m, region, name in owned, values.get(name), tags_in_sync=name in in_sync or name not in owned)
             for name, m in metas.items()]
    missing = {("ssm", region, name): f"SSM parameter {name} does not exist in {region}; create it or "
               "declare it as a Parameter with a value" for name in sorted(set(n.undeclared) | _unvalued(n))
               if name not in metas}
    return found, missing


def _owned_in_sync(ssm: Any, n: RegionNeeds, owner: str, seen: Callable[[Iterable[str]], None]) -> dict[str, dict]:
    """Declared parameters that carry our owner tag and every desired tag, streamed and kept by name."""
    groups: dict[tuple, set[str]] = {}
    for name, obj in n.declared.items():
        if obj.spec.value is None:
            continue  # managed elsewhere: it only has to exist
        pairs = tuple(sorted({**d.checked_tags(obj), d.OWNER_TAG: owner}.items()))
        groups.setdefault(pairs, set()).add(name)
    found = {}
    for pairs, names in sorted(groups.items()):
        for page in _pages(ssm, [tag_filter(k, v) for k, v in pairs]):
            mine = {p["Name"]: p for p in page if p["Name"] in names}
            found.update(mine)
            seen(mine)
    return found


def _unvalued(n: RegionNeeds) -> set[str]:
    return {name for name, o in n.declared.items() if o.spec.value is None}


def _compares_value(obj: Any) -> bool:
    v = obj.spec.value
    return v is not None and v.generate is None


def tag_filter(key: str, value: str) -> dict:
    return {"Key": f"tag:{key}", "Values": [value]}


def describe_parameters(ssm: Any, filters: list[dict]) -> Iterable[dict]:
    for page in _pages(ssm, filters):
        yield from page


def _pages(ssm: Any, filters: list[dict]) -> Iterable[list[dict]]:
    for page in ssm.get_paginator("describe_parameters").paginate(ParameterFilters=filters,
                                                                   PaginationConfig={"PageSize": 50}):
        yield page["Parameters"]


class _Values:
    """GetParameters (with decryption, 10 names a call) of the names ``want``ed, sent as batches fill."""

    def __init__(self, ssm: Any, n: RegionNeeds) -> None:
        self.ssm, self.n = ssm, n
        self._pool = ThreadPoolExecutor(READ_WORKERS)
        self._batch: list[str] = []
        self._futures: list = []
        self._asked: set[str] = set()
        self.found: dict[str, Sensitive] = {}

    def want(self, names: Iterable[str]) -> None:
        for name in names:
            obj = self.n.declared.get(name)
            if obj is None or not _compares_value(obj) or name in self._asked:
                continue
            self._asked.add(name)
            self._batch.append(name)
            if len(self._batch) == 10:
                self._send()

    def _send(self) -> None:
        if self._batch:
            self._futures.append(self._pool.submit(self._get, self._batch))
            self._batch = []

    def _get(self, names: list[str]) -> dict[str, Sensitive]:
        found = self.ssm.get_parameters(Names=names, WithDecryption=True)["Parameters"]
        return {p["Name"]: Sensitive(p["Value"], secret=self.n.declared[p["Name"]].spec.value.literal is None)
                for p in found}

    def get(self, name: str) -> Sensitive | None:
        return self.found.get(name)

    def __enter__(self) -> _Values:
        return self

    def __exit__(self, exc_type: type | None, *_: object) -> None:
        try:
            if exc_type is None:   # after a failed listing, its error is the one to report
                self._send()
                for future in self._futures:
                    self.found.update(future.result())
        finally:
            self._pool.shutdown(cancel_futures=True)


def actual_parameter(meta: dict, region: str, owned: bool, value: Sensitive | None,
               tags_in_sync: bool = True) -> ActualParameter:
    return ActualParameter(name=meta["Name"], region=region, type=meta["Type"],
                           key_id=meta.get("KeyId") if meta["Type"] == "SecureString" else None,
                           tier=meta.get("Tier", "Standard"), description=meta.get("Description"),
                           version=meta.get("Version", 0), owned=owned, value=value, tags_in_sync=tags_in_sync)


def _read_secrets(aws: Aws, region: str, secret_ids: set[str]) -> tuple[dict, dict, list]:
    arns, keys, missing = {}, {}, {}
    sm = aws.client("secretsmanager", region) if secret_ids else None
    for sid in sorted(secret_ids):
        try:
            r = sm.describe_secret(SecretId=sid)
        except ClientError as exc:
            gone = error_code(exc) == "ResourceNotFoundException"  # any other error blocks only its users too
            missing[("secret", region, sid)] = f"Secrets Manager secret {sid} does not exist in {region}; create " \
                "it first" if gone else f"cannot read Secrets Manager secret {sid} in {region}: {error_code(exc)}"
            continue
        arns[sid] = r["ARN"]
        keys[r["ARN"]] = r.get("KmsKeyId")
    return arns, keys, missing


def _key_arn(aws: Aws, region: str, key_id: str, missing: dict) -> str | None:
    try:
        meta = aws.client("kms", region).describe_key(KeyId=key_id)["KeyMetadata"]
    except ClientError as exc:
        gone = error_code(exc) == "NotFoundException"  # any other error (AccessDenied) blocks only its users too
        missing[("kms", region, key_id)] = f"KMS key {key_id} does not exist in {region}; create it (or its " \
            "alias) first" if gone else f"cannot describe KMS key {key_id} in {region}: {error_code(exc)}"
        return None
    if meta.get("KeyState") not in (None, "Enabled"):
        missing[("kms", region, key_id)] = f"KMS key {key_id} in {region} is {meta['KeyState']}; enable it"
    return None if meta.get("KeyManager") == "AWS" else meta["Arn"]

