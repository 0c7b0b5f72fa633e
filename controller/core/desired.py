"""Desired state: every object of the manifests resolved, built once, then completed with what only AWS knows.

Pure. ``desire`` turns a checked ``Manifest`` into ``Desired``: parameters with their Region, key,
tags and value source; roles with the references of every task definition that uses them; task
definitions with their RegisterTaskDefinition body, references and dependencies; and ``reads``,
what observe must read. ``Desired.resolve(ctx)`` adds the facts observe found (account, partition,
key and secret ARNs) once: role ARNs, derived inline policies, each body's execution role ARN. Every later stage
(observe, diff, prune, controller-policy, verify, the sandbox) receives a ``Desired``, never the
manifest. ``placeholder_context`` sizes the derived policies before any AWS call.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Mapping

from controller.manifests.documents import Manifest, Obj
from controller.manifests.external import FieldPath, paths as field_paths
from controller.manifests.models import DEFAULT_KMS_KEY, ValueSource, ecs_input
from controller.core.revisions import Revision, running_as
from controller.vocab import arns, policy
from controller.vocab.arns import Reference, parse_value_from
from controller.vocab.problems import ManifestError, Problem
from controller.vocab.secretrefs import secret_uses
from controller.vocab.taskreads import (LOG_GROUP, OBJECT, REFERENCE, TaskRead, log_group_arn, reference, s3_object,
                                        task_reads)

OWNER_TAG = "ecs-secrets:owner"
DEFAULT_OWNER = "ecs-secrets"             # --owner's default: the value of OWNER_TAG
DELETION_TAG = "ecs-secrets:deletion-policy"


@dataclass(frozen=True)
class Context:
    """What only AWS knows, as observe found it."""

    account: str
    region: str
    partition: str = "aws"
    key_arns: Mapping[tuple[str, str], str | None] = field(default_factory=dict)  # (region, key as written) → ARN; None: AWS-managed
    secret_arns: Mapping[tuple[str, str], str] = field(default_factory=dict)       # (region, secret id) → full ARN
    secret_keys: Mapping[str, str | None] = field(default_factory=dict)            # secret ARN → its KMS key id, if custom
    param_keys: Mapping[tuple[str, str], str] = field(default_factory=dict)        # (region, name) → KeyId of an undeclared parameter
    role_arns: Mapping[str, str] = field(default_factory=dict)                     # external role name → ARN
    revisions: tuple[Revision, ...] = ()   # ACTIVE revisions that run as a declared role (``core.revisions``)


def is_aws_managed_key(key_id: str | None) -> bool:
    return key_id is None or key_id.startswith("alias/aws/")


# --- the objects ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DesiredParameter:
    obj: Obj
    name: str
    region: str
    type: str
    key: str | None                 # the KMS key as written (default alias/aws/ssm); None unless SecureString
    tier: str
    description: str | None
    tags: Mapping[str, str]         # every tag we write: the object's own, the deletion policy, our owner
    source: ValueSource | None      # None: managed elsewhere, it only has to exist
    compare: bool = True            # False (--skip-values): its fromEnv/fromFile value is neither read nor compared

    @property
    def ref(self) -> str:
        return self.obj.ref

    @property
    def compares_value(self) -> bool:
        """Its value is read to compare: fromEnv, fromFile, literal (a generated value is never compared)."""
        return self.compare and self.source is not None and self.source.generate is None

    @property
    def from_source(self) -> bool:
        """Its value comes from outside the manifests: the controller's environment or a file."""
        return self.source is not None and (self.source.fromEnv is not None or self.source.fromFile is not None)

    @property
    def literal(self) -> bool:
        """A literal String value, which a plan may show; every other value is sensitive."""
        return self.source is not None and self.source.literal is not None and self.type != "SecureString"

    @property
    def custom_key(self) -> str | None:
        return None if is_aws_managed_key(self.key) else self.key


@dataclass(frozen=True)
class DesiredRole:
    obj: Obj
    name: str                                   # roleName
    path: str
    inline_name: str
    managed: tuple[str, ...]                    # managed policy ARNs, sorted
    description: str | None
    tags: Mapping[str, str]
    references: tuple[Reference, ...]           # of every task definition that uses the role, in manifest order
    files: tuple[TaskRead, ...] = ()            # their S3 files and log groups to create (``task_reads``)
    arn: str | None = None                      # after resolve
    grants: Grants | None = None                # after resolve: what its derived inline policy allows
    inline: dict | None = None                  # after resolve: that policy's document (None: it allows nothing)
    kept: tuple[str, ...] = ()                  # after resolve: ACTIVE revisions (family:rev) whose grants
                                                # the policy keeps beyond what the manifests need

    @property
    def ref(self) -> str:
        return self.obj.ref


@dataclass(frozen=True)
class DesiredTaskDefinition:
    obj: Obj
    family: str
    fields: Mapping[str, Any]                   # the RegisterTaskDefinition input as written, without tags
    tags: Mapping[str, str]
    references: tuple[Reference, ...]
    role: str | None                            # executionRole as written: a declared role, a role name or an ARN
    declared_role: str | None                   # the ref of the declared ExecutionRole it uses
    depends_on: tuple[str, ...]                 # refs applied before it: its role, a declared parameter per reference
    keep_revisions: int | None
    files: tuple[TaskRead, ...] = ()            # S3 files and log groups it reads or creates at task start
    body: Mapping[str, Any] | None = None       # after resolve: ``fields`` with the executionRoleArn
    external: tuple[FieldPath, ...] = ()        # spec.externallyManaged: taken from the latest revision
    rollout: Any = None                         # spec.rollout (``models.Rollout``): the services that run it

    @property
    def ref(self) -> str:
        return self.obj.ref


DesiredObject = DesiredParameter | DesiredRole | DesiredTaskDefinition


@dataclass
class RegionReads:
    """What observe reads in one Region."""

    declared: dict[str, DesiredParameter] = field(default_factory=dict)   # name → declared parameter
    undeclared: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    objects: set[str] = field(default_factory=set)    # S3 object ARNs that must exist (HeadObject)
    by_name: bool = field(default=False, compare=False)   # a subset's: how to ask (by name), not what


@dataclass(frozen=True)
class Desired:
    region: str                                                   # the controller's Region
    owner: str
    objects: tuple[DesiredObject, ...]                            # in manifest order: the plan's order
    parameters: Mapping[tuple[str, str], DesiredParameter]        # (region, SSM name) → declared parameter
    external_roles: frozenset[str]                                # role names task definitions use, not declared
    reads: Mapping[str, RegionReads]                              # Region → what observe reads there
    ctx: Context | None = None                                    # after resolve
    partial: bool = False                                         # a subset: some objects only, never pruned

    def of(self, kind: str) -> list[Any]:
        return list(self._by_kind.get(kind, ()))

    def get(self, ref: str) -> DesiredObject | None:
        return self._by_ref.get(ref)

    @cached_property
    def _by_kind(self) -> dict[str, list[DesiredObject]]:
        out: dict[str, list[DesiredObject]] = {}
        for o in self.objects:
            out.setdefault(o.obj.kind, []).append(o)
        return out

    @cached_property
    def _by_ref(self) -> dict[str, DesiredObject]:
        return {o.ref: o for o in self.objects}

    @property
    def roles(self) -> list[DesiredRole]:
        return self.of("ExecutionRole")

    @property
    def task_definitions(self) -> list[DesiredTaskDefinition]:
        return self.of("TaskDefinition")

    def without_values(self) -> Desired:
        """For a plan without production values (--skip-values): no fromEnv/fromFile value is read, neither
        from its source nor from SSM, and none is compared."""
        parameters = {k: replace(p, compare=False) if p.from_source else p for k, p in self.parameters.items()}
        by_ref = {p.ref: p for p in parameters.values()}
        objects = tuple(by_ref.get(o.ref, o) if isinstance(o, DesiredParameter) else o for o in self.objects)
        return replace(self, objects=objects, parameters=parameters,
                       reads=_reads(parameters, self.task_definitions, self.region))

    def subset(self, refs: Any) -> Desired:
        """Only these objects and what their plan needs, for a reconcile of some objects (an event's): a
        task definition's role and declared parameters; a role's declared parameters (their keys are in its
        policy). Observe reads only what the subset reads. Never prune with it: what is not in it is not gone."""
        keep = {r for r in refs if r in self._by_ref}
        for ref in list(keep):
            want = self._by_ref[ref]
            if isinstance(want, DesiredTaskDefinition):
                keep.update(want.depends_on)
        declared = {(p.region, p.name): p.ref for p in self.parameters.values()}
        for role in self.roles:
            if role.ref in keep:
                keep.update(declared[k] for k in ((r.region or self.region, r.name) for r in role.references)
                            if k in declared)
        objects = tuple(o for o in self.objects if o.ref in keep)
        parameters = {k: p for k, p in self.parameters.items() if p.ref in keep}
        tds = [o for o in objects if isinstance(o, DesiredTaskDefinition)]
        roles = [o for o in objects if isinstance(o, DesiredRole)]
        external = frozenset(r for r in self.external_roles if any(td.role == r for td in tds))
        reads = _reads(parameters, tds, self.region, roles)
        for n in reads.values():
            n.by_name = True
        return replace(self, objects=objects, parameters=parameters, external_roles=external, reads=reads,
                       partial=True)

    @property
    def not_compared(self) -> tuple[str, ...]:
        return tuple(o.ref for o in self.objects if isinstance(o, DesiredParameter) and not o.compare)

    def resolve(self, ctx: Context) -> Desired:
        """Complete with what observe found, once per reconcile: roles first, then the bodies that name them."""
        roles = {r.ref: _resolved_role(r, self.parameters, ctx) for r in self.roles}
        objects = tuple(roles.get(o.ref) or (_resolved_task_definition(o, roles, ctx)
                                             if isinstance(o, DesiredTaskDefinition) else o) for o in self.objects)
        return replace(self, objects=objects, ctx=ctx)


def tags_of(obj: Obj, owner: str) -> dict[str, str]:
    """Every tag we write: the object's own, who owns it, and what --prune may do with it later."""
    own = obj.spec.tags if obj.kind != "TaskDefinition" else {
        t["key"]: t["value"] for t in obj.spec.ecs_fields().get("tags") or []}
    return {**own, DELETION_TAG: obj.spec.deletionPolicy, OWNER_TAG: owner}


def references(fields: Mapping[str, Any]) -> tuple[Reference, ...]:
    """Container secrets, then what else ECS reads from SSM or Secrets Manager (registry credentials, …)."""
    out = [parse_value_from(u.value_from) for u in secret_uses(fields)]
    return tuple(out + [reference(r) for r in task_reads(dict(fields)) if r.kind == REFERENCE])


def files(fields: Mapping[str, Any]) -> tuple[TaskRead, ...]:
    return tuple(r for r in task_reads(dict(fields)) if r.kind in (OBJECT, LOG_GROUP))


# --- building ------------------------------------------------------------------------------------

def desire(manifest: Manifest, owner: str = DEFAULT_OWNER) -> Desired:
    """The manifests as desired state; a derived policy over IAM's limit is refused here."""
    desired = build(manifest, owner)
    problems = policy_problems(desired)
    if problems:
        raise ManifestError(problems)
    return desired


def build(manifest: Manifest, owner: str = DEFAULT_OWNER) -> Desired:
    """The manifests as desired state, unchecked: ``policy_problems`` says what IAM would refuse."""
    parameters = {key: _parameter(o, key[0], owner) for key, o in manifest.declared_parameters.items()}
    tds = {td.ref: _task_definition(td, manifest, owner) for td in manifest.of("TaskDefinition")}
    by_role: dict[str, list[Reference]] = {}
    files_by_role: dict[str, list[TaskRead]] = {}
    for td in tds.values():
        if td.declared_role:
            by_role.setdefault(td.declared_role, []).extend(td.references)
            files_by_role.setdefault(td.declared_role, []).extend(td.files)
    objects = tuple(parameters[(o.spec.region or manifest.region, o.spec.name)] if o.kind == "Parameter" else
                    _role(o, owner, by_role.get(o.ref, ()), manifest.region, files_by_role.get(o.ref, ()))
                    if o.kind == "ExecutionRole" else tds[o.ref]
                    for o in manifest.objects)
    external = frozenset(t.role for t in tds.values() if t.role and not t.declared_role and not t.role.startswith("arn:"))
    return Desired(manifest.region, owner, objects, parameters, external,
                   _reads(parameters, tds.values(), manifest.region))


def policy_problems(desired: Desired) -> list[Problem]:
    """Derived inline policies over IAM's limit, sized with stand-ins as long as the real ARNs."""
    stand_ins = placeholder_context(desired)
    return [p for r in desired.roles for p in role_policy_problems(
        r, grants_for(r.references, desired.parameters, stand_ins, r.files).document())]


def _parameter(obj: Obj, region: str, owner: str) -> DesiredParameter:
    spec = obj.spec
    key = (spec.kmsKeyId or DEFAULT_KMS_KEY) if spec.type == "SecureString" else None
    return DesiredParameter(obj, spec.name, region, spec.type, key, spec.tier, spec.description,
                            tags_of(obj, owner), spec.value)


def _role(obj: Obj, owner: str, refs: Any, region: str, reads: Any = ()) -> DesiredRole:
    spec = obj.spec
    managed = spec.managedPolicyArns if "managedPolicyArns" in spec.model_fields_set else [
        arns.aws_managed_policy_arn(arns.partition_of(region), arns.ECS_TASK_EXECUTION_POLICY)]
    return DesiredRole(obj, spec.roleName, spec.path, spec.inlinePolicyName, tuple(sorted(managed)),
                       spec.description, tags_of(obj, owner), tuple(refs), tuple(reads))


def _task_definition(td: Obj, manifest: Manifest, owner: str) -> DesiredTaskDefinition:
    fields = ecs_input(td.spec.ecs_fields())
    fields.pop("tags", None)
    refs = references(fields)
    role = manifest.execution_role(td)
    declared = manifest.declared_parameters
    needed = [role.ref] if role else []
    needed += [declared[(r.region or manifest.region, r.name)].ref for r in refs
               if (r.region or manifest.region, r.name) in declared]
    return DesiredTaskDefinition(td, td.spec.family, fields, tags_of(td, owner), refs, td.spec.executionRole,
                                 role.ref if role else None, tuple(needed), td.spec.keepRevisions, files(fields),
                                 external=field_paths(td.spec.externallyManaged), rollout=td.spec.rollout)


def _reads(parameters: Mapping[tuple[str, str], DesiredParameter], tds: Any, region: str,
           roles: Any = ()) -> dict[str, RegionReads]:
    """``roles``: for a subset, roles whose task definitions are not all in it (a role reads what they read)."""
    out: dict[str, RegionReads] = {}
    for (r, name), p in parameters.items():
        n = out.setdefault(r, RegionReads())
        n.declared[name] = p
        if p.custom_key:
            n.keys.add(p.custom_key)
    for td in (*tds, *roles):
        for ref in td.references:
            r = ref.region or region
            n = out.setdefault(r, RegionReads())
            if ref.secret_id:
                n.secrets.add(ref.secret_id)
            elif ref.service == "ssm" and (r, ref.name) not in parameters:
                n.undeclared.add(ref.name)
        for read in td.files:
            obj = s3_object(read.source) if read.kind == OBJECT else None
            if obj is not None:
                out.setdefault(region, RegionReads()).objects.add(obj.arn)
    return out


# --- resolving -----------------------------------------------------------------------------------

def _resolved_role(role: DesiredRole, declared: Mapping[tuple[str, str], DesiredParameter], ctx: Context) -> DesiredRole:
    """The manifests' needs, plus what every ACTIVE revision running as the role reads: running services
    and rollbacks keep their secrets until those revisions are deregistered."""
    grants = grants_for(role.references, declared, ctx, role.files)
    arn = arns.role_arn(ctx.partition, ctx.account, role.path, role.name)
    needed, kept = grants.copy(), []
    for rev in sorted(running_as(ctx.revisions, arn, ctx.account), key=lambda r: r.arn):
        own = [r for r in rev.references if (r.account or ctx.account) == ctx.account]  # ECS reads no other account's
        extra = grants_for(own, declared, replace(ctx, region=rev.region), rev.files, known_only=True)
        if not extra.within(needed):
            kept.append(rev.label)
        grants.merge(extra)
    return replace(role, arn=arn, grants=grants, inline=grants.document(), kept=tuple(kept))


def _resolved_task_definition(td: DesiredTaskDefinition, roles: Mapping[str, DesiredRole],
                              ctx: Context) -> DesiredTaskDefinition:
    body = dict(td.fields)
    role = _role_arn(td, roles, ctx)
    if role:
        body["executionRoleArn"] = role
    return replace(td, body=body)


def _role_arn(td: DesiredTaskDefinition, roles: Mapping[str, DesiredRole], ctx: Context) -> str | None:
    if td.fields.get("executionRoleArn"):
        return td.fields["executionRoleArn"]
    if td.role is None:
        return None
    if td.declared_role:
        return roles[td.declared_role].arn
    if td.role.startswith("arn:"):
        return td.role
    return ctx.role_arns.get(td.role) or arns.role_arn(ctx.partition, ctx.account, "/", td.role)


@dataclass
class Grants:
    parameters: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    objects: set[str] = field(default_factory=set)      # S3 object ARNs: s3:GetObject
    buckets: set[str] = field(default_factory=set)      # their buckets: s3:GetBucketLocation
    log_groups: set[str] = field(default_factory=set)   # awslogs-create-group: logs:CreateLogGroup
    lookups: set[tuple[str, ...]] = field(default_factory=set)   # ("kms"|"secret", region, id), ("s3", ARN) it relied on

    def document(self) -> dict | None:
        return policy.derive(self.parameters, self.secrets, self.keys, self.objects, self.buckets, self.log_groups)

    _ALLOWS = ("parameters", "secrets", "keys", "objects", "buckets", "log_groups")

    def within(self, other: Grants) -> bool:
        """Everything this allows, ``other`` allows too."""
        return all(getattr(self, name) <= getattr(other, name) for name in self._ALLOWS)

    def merge(self, other: Grants) -> None:
        for name in self._ALLOWS + ("lookups",):
            getattr(self, name).update(getattr(other, name))

    def copy(self) -> Grants:
        return Grants(**{name: set(getattr(self, name)) for name in self._ALLOWS + ("lookups",)})


def grants_for(refs: Any, declared: Mapping[tuple[str, str], DesiredParameter], ctx: Context,
               reads: Any = (), known_only: bool = False) -> Grants:
    """``refs``: what is read from SSM and Secrets Manager; ``reads``: the S3 files and log groups (``files``).

    ``known_only`` (an ACTIVE revision's reads): a secret or key observe did not find is left out (it does
    not exist: no task reads it) rather than granted as written; a failed read still blocks (``lookups``)."""
    grants = Grants()
    for ref in refs:
        _grant(grants, ref, declared, ctx, known_only)
    for read in reads:
        obj = s3_object(read.source) if read.kind == OBJECT else None
        if obj is not None:
            grants.objects.add(obj.arn)
            grants.buckets.add(obj.bucket_arn)
            grants.lookups.add(("s3", obj.arn))
        elif read.kind == LOG_GROUP and read.region:
            grants.log_groups.add(log_group_arn(ctx.partition, read.region, ctx.account, read.source))
    return grants


def _grant(grants: Grants, ref: Reference, declared: Mapping, ctx: Context, known_only: bool = False) -> None:
    region = ref.region or ctx.region
    secret = ref.secret_id
    if ref.service == "ssm":
        grants.parameters.add(arns.parameter_arn(ctx.partition, region, ref.account or ctx.account, ref.name))
        param = declared.get((region, ref.name))
        key = param.key if param else ctx.param_keys.get((region, ref.name))
        _grant_key(grants, region, key, ctx, known_only)
    if secret is not None:
        grants.lookups.add(("secret", region, secret))
        if known_only and (region, secret) not in ctx.secret_arns:
            return
        secret_arn = ctx.secret_arns.get((region, secret), secret)
        grants.secrets.add(secret_arn)
        _grant_key(grants, region, ctx.secret_keys.get(secret_arn), ctx, known_only)


def _grant_key(grants: Grants, region: str, key: str | None, ctx: Context, known_only: bool = False) -> None:
    if is_aws_managed_key(key):
        return
    grants.lookups.add(("kms", region, key))
    arn = ctx.key_arns.get((region, key), None if known_only else key)
    if arn:
        grants.keys.add(arn)


def role_policy_problems(role: DesiredRole, document: dict | None) -> list[Problem]:
    if document is None or policy.size(document) <= policy.MAX_INLINE_ROLE_POLICY_CHARS:
        return []
    fix = "split the task definitions across more execution roles"
    if role.kept:   # the grants kept for revisions outside the manifests may be what tips it over
        fix = (f"it keeps the grants of ACTIVE revisions outside the manifests ({', '.join(role.kept)}): "
               f"deregister those no longer needed, or {fix}")
    return [role.obj.problem(("spec", "inlinePolicyName"), f"the derived inline policy would be "
                             f"{policy.size(document):,} characters, over IAM's "
                             f"{policy.MAX_INLINE_ROLE_POLICY_CHARS:,}; {fix}")]


def placeholder_context(desired: Desired) -> Context:
    """Stand-ins as long as the real ARNs, to size policies before any AWS call."""
    account, region = "000000000000", desired.region
    partition = arns.partition_of(region)
    key_arns = {}
    for p in desired.parameters.values():
        key = p.custom_key
        if key:
            key_arns[(p.region, key)] = key if key.startswith("arn:") and ":key/" in key else \
                f"arn:{partition}:kms:{p.region}:{account}:key/00000000-0000-0000-0000-000000000000"
    secrets = {}
    for td in desired.task_definitions:
        for ref in td.references:
            if ref.secret_id and ref.service == "ssm":
                secrets[(region, ref.secret_id)] = \
                    f"arn:{partition}:secretsmanager:{region}:{account}:secret:{ref.secret_id}-XXXXXX"
    return Context(account=account, region=region, partition=partition, key_arns=key_arns, secret_arns=secrets)
