"""Read the actual state, batched, each thing once; reads of different kinds overlap.

What to read is ``Desired.reads``; how many calls it costs is what the APIs allow: GetParameters
10 names a call, DescribeParameters 50 a page (its tag filter says what we own, so tags are never
read per parameter; ``observe_ssm``), one call per family (``observe_ecs``), and three per role or one
account-wide listing for many roles (``observe_iam``). With a declared ExecutionRole, every ACTIVE revision
of the Region (``revisions``: one listing, a describe per revision not yet known), and then what those
that run as a declared role read and no one else asked for: their parameters' and secrets' keys.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Mapping

from botocore.exceptions import ClientError

from controller.aws.inuse import InUse
from controller.aws.observe_ecs import read_task_definitions
from controller.aws.observe_iam import read_roles
from controller.aws.observe_prune import read_prune_candidates
from controller.aws.observe_services import read_rollouts
from controller.aws.observe_ssm import read_parameters
from controller.aws.revisions import ActiveRevisions
from controller.aws.session import Aws, error_code
from controller.core.desired import Context, Desired, RegionReads, is_aws_managed_key
from controller.core.revisions import Revision, running_as
from controller.core.state import Actual
from controller.vocab import arns
from controller.vocab.sensitive import Sensitive
from controller.vocab.taskreads import s3_object

WORKERS = 8


def observe(aws: Aws, desired: Desired, prune: bool = False, clusters: tuple[str, ...] = (),
            values: Mapping[str, Sensitive] | None = None) -> Actual:
    """``clusters``: where ECS services may use our revisions (``inuse``); empty: every cluster.
    ``values``: metadata.name → the value to write, so that ``aws.known`` (the daemon's) can spare the
    decrypting read of a parameter whose version it knows holds it."""
    wants, owner = desired.reads, desired.owner
    in_use = InUse(aws, clusters)
    known = getattr(aws, "known", None)
    if known is not None:   # a parameter that left the manifests is forgotten
        known.keep_only((r, name) for r, n in wants.items() for name, p in n.declared.items() if p.compares_value)
    with ThreadPoolExecutor(WORKERS) as pool:
        account = pool.submit(_account, aws)
        params = {r: pool.submit(read_parameters, aws, r, n, owner, values) for r, n in wants.items()}
        secrets = {r: pool.submit(_read_secrets, aws, r, n.secrets) for r, n in wants.items()}
        objects = [pool.submit(_read_objects, aws, r, n.objects) for r, n in wants.items() if n.objects]
        roles = pool.submit(read_roles, aws, desired)
        tds = pool.submit(read_task_definitions, aws, desired, in_use, prune)
        rollouts = pool.submit(read_rollouts, aws, desired, in_use)
        partition, account_id = account.result()
        actual = Actual(ctx=Context(account=account_id, region=aws.region, partition=partition))
        _merge(actual, params, secrets, roles.result(), tds.result())
        actual.rollouts = rollouts.result()
        scan = ActiveRevisions(aws)
        scan.seed(aws.region, (td.body for td in actual.task_definitions.values()))
        running = pool.submit(_running, scan, desired, actual.ctx) if desired.roles else None
        for future in objects:
            actual.missing.update(future.result())
        keys = {(r, k) for r, n in wants.items() for k in n.keys}
        keys |= {(r, k) for (r, _), k in actual.ctx.param_keys.items() if not is_aws_managed_key(k)}
        keys |= {(arn.split(":")[3], k) for arn, k in actual.ctx.secret_keys.items() if k}
        key_arns = dict(pool.map(lambda rk: (rk, _key_arn(aws, *rk, actual.missing)), sorted(keys)))
    actual.ctx = replace(actual.ctx, key_arns=key_arns)
    if running is not None:
        _revision_needs(aws, desired, actual, running.result())
    if prune:
        actual.prune = read_prune_candidates(aws, desired, in_use, scan)
    return actual


def _running(scan: ActiveRevisions, desired: Desired, ctx: Context) -> list[Revision]:
    """The ACTIVE revisions of the controller's Region (where its task definitions are registered) whose
    execution role is a declared one."""
    revisions = scan.of(ctx.region)
    role_arns = [arns.role_arn(ctx.partition, ctx.account, r.path, r.name) for r in desired.roles]
    return sorted({rev for arn in role_arns for rev in running_as(revisions, arn, ctx.account)}, key=lambda r: r.arn)


def _revision_needs(aws: Aws, desired: Desired, actual: Actual, revisions: list[Revision]) -> None:
    """Keys of the parameters and secrets only those revisions read. One that does not exist is not
    looked for again (none of their tasks can read it: nothing to grant); a failed read blocks the role."""
    ctx = actual.ctx
    undeclared: dict[str, set[str]] = {}
    secret_ids: dict[str, set[str]] = {}
    for rev in revisions:
        for ref in rev.references:
            region = ref.region or rev.region
            known_missing = {("ssm", region, ref.name), ("secret", region, ref.secret_id)} & actual.missing.keys()
            if (ref.account or ctx.account) != ctx.account or known_missing:
                continue
            if ref.secret_id and (region, ref.secret_id) not in ctx.secret_arns:
                secret_ids.setdefault(region, set()).add(ref.secret_id)
            elif not ref.secret_id and ref.service == "ssm" and (region, ref.name) not in desired.parameters \
                    and (region, ref.name) not in actual.parameters:
                undeclared.setdefault(region, set()).add(ref.name)
    param_keys, secret_arns, secret_keys = dict(ctx.param_keys), dict(ctx.secret_arns), dict(ctx.secret_keys)
    failed: dict = {}
    for region, names in sorted(undeclared.items()):
        found, _ = read_parameters(aws, region, RegionReads(undeclared=names), desired.owner)  # absent: nothing
        param_keys.update({(region, p.name): p.key_id for p in found if p.key_id})
    for region, ids in sorted(secret_ids.items()):
        found_arns, keys, missing = _read_secrets(aws, region, ids)
        secret_arns.update({(region, s): a for s, a in found_arns.items()})
        secret_keys.update(keys)
        failed.update(missing)
    keys = {(r, k) for (r, _), k in param_keys.items() if not is_aws_managed_key(k)}
    keys |= {(a.split(":")[3], k) for a, k in secret_keys.items() if k}
    key_arns = dict(ctx.key_arns)
    for region, key in sorted(keys - set(key_arns)):
        key_arns[(region, key)] = _key_arn(aws, region, key, failed)
    # "cannot read": the grant may be needed and is unknown, so the role waits; "does not exist": not needed
    actual.missing.update({k: why for k, why in failed.items() if why.startswith("cannot ")})
    actual.ctx = replace(ctx, param_keys=param_keys, secret_arns=secret_arns, secret_keys=secret_keys,
                         key_arns=key_arns, revisions=tuple(revisions))


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


def _read_objects(aws: Aws, region: str, object_arns: set[str]) -> dict:
    """Each S3 file a task reads at start (environmentFiles, FireLens config, credential spec) must exist:
    HeadObject reads its metadata, never its content. 404 (or NoSuchKey/NoSuchBucket): it does not exist."""
    missing = {}
    s3 = aws.client("s3", region)
    for arn in sorted(object_arns):
        obj = s3_object(arn)
        assert obj is not None
        try:
            s3.head_object(Bucket=obj.bucket, Key=obj.key)
        except ClientError as exc:
            code = error_code(exc)
            gone = code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound")
            missing[("s3", arn)] = f"S3 object s3://{obj.bucket}/{obj.key} does not exist; upload it first" \
                if gone else f"cannot read S3 object s3://{obj.bucket}/{obj.key}: {code}"
    return missing


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

