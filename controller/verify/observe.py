"""The reads behind ``verify``: the execution role's policies, the parameters, secrets and KMS keys.

Read-only and with no decryption at all: DescribeParameters (never GetParameters), DescribeSecret
(never GetSecretValue), DescribeKey and GetKeyPolicy. Each thing is read once: ``Facts`` doubles as
the cache, and a managed policy attached to several roles (or used as a boundary) is fetched once.
What cannot be read becomes ``Unread``, which the verdict turns into "unknown", never a pass.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Iterable

from botocore.exceptions import BotoCoreError, ClientError

from controller.aws import paging
from controller.aws.session import Aws, error_code
from controller.core.desired import Context, Desired
from controller.verify.decide import check
from controller.verify.facts import (SM_DEFAULT_KEY, SSM_DEFAULT_KEY, Facts, KeyFact, Location, ParameterFact, RoleFact,
                                     Row, SecretFact, Target, Unread, customer_key, locate, targets)
from controller.verify.iam_eval import NamedPolicy, evaluate
from controller.verify.keypolicy import aws_managed_key_policy
from controller.verify.report import simulation_note
from controller.vocab import arns
from controller.vocab.problems import ControllerError
from controller.vocab.taskreads import LOG_GROUP, OBJECT, REFERENCE, s3_object

NOT_FOUND = frozenset({"NoSuchEntity", "ParameterNotFound", "ResourceNotFoundException", "NotFoundException"})
DESCRIBE_PARAMETERS_NAMES = 50  # names per Name-Equals filter, and the page size


def rows(aws: Aws, *, desired: Desired | None = None, family: str | None = None, against_aws: bool = False) -> list[Row]:
    """Every container secret of the desired TaskDefinitions and/or the registered ``family``, decided."""
    if desired is None and not family:
        raise ControllerError("verify needs manifests (-f PATH) or a registered family (--family NAME[:REV])")
    facts = _facts(aws)
    bodies = _desired_bodies(desired, facts) if desired is not None else []
    if family:
        bodies.append(_registered(aws, family, facts))
    wanted = [t for label, body in bodies for t in targets(label, body)]
    Reader(aws, facts).read(wanted)
    result = [check(t, facts) for t in wanted]
    if against_aws:
        Simulator(aws, facts).annotate(result)
    return result


def _facts(aws: Aws) -> Facts:
    arn = aws.client("sts").get_caller_identity()["Arn"]
    return Facts(account=arn.split(":")[4], region=aws.region, partition=arn.split(":")[1])


def _desired_bodies(desired: Desired, facts: Facts) -> list[tuple[str, dict]]:
    resolved = desired.resolve(Context(account=facts.account, region=facts.region, partition=facts.partition))
    return [(td.family, dict(td.body or {})) for td in resolved.task_definitions]


def _registered(aws: Aws, family: str, facts: Facts) -> tuple[str, dict]:
    try:
        body = aws.client("ecs").describe_task_definition(taskDefinition=family)["taskDefinition"]
    except ClientError as exc:
        if error_code(exc) in ("ClientException", "InvalidParameterException"):
            raise ControllerError(f"task definition {family} is not registered in {aws.region}; "
                                  "check the family, the revision and --region") from None
        raise
    role = body.get("executionRoleArn")
    if role and not role.startswith("arn:"):  # ECS also takes a bare role name
        body["executionRoleArn"] = arns.role_arn(facts.partition, facts.account, "/", role)
    return f"{body['family']}:{body['revision']}", body


def _unread(operation: str, exc: Exception) -> Unread:
    return Unread(f"{operation} failed with {error_code(exc)}")


def _document(raw: Any) -> Any:
    """botocore URL-decodes IAM documents into dicts; a string (some emulators) is parsed here."""
    return json.loads(raw) if isinstance(raw, str) else raw


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class Reader:
    """Fills ``facts`` with what the targets need; skips anything already read."""

    def __init__(self, aws: Aws, facts: Facts) -> None:
        self.aws, self.facts = aws, facts
        self._policies: dict[str, Any] = {}  # managed policy ARN → default version document or Unread

    def read(self, wanted: list[Target]) -> None:
        places = [loc for loc in (self._locate(t) for t in wanted) if loc is not None and not loc.foreign]
        by_region: dict[str, set[str]] = defaultdict(set)
        for loc in places:
            if loc.parameter:
                by_region[loc.region].add(loc.parameter)
        for region, names in sorted(by_region.items()):
            self._parameters(region, sorted(names))
        pinned: dict[tuple[str, str], set[str]] = defaultdict(set)
        for loc in places:
            if loc.secret and loc.ref.version_id:
                pinned[(loc.region, loc.secret)].add(loc.ref.version_id)
        for loc in places:
            if loc.secret:
                self._secret(loc.region, loc.secret, pinned[(loc.region, loc.secret)])
        for target in wanted:
            if target.read == OBJECT:
                self._object(target.source)
        self._keys()
        for role in sorted({t.role_arn for t in wanted if t.role_arn}):
            self._role(role)

    def _locate(self, target: Target) -> Location | None:
        if target.read in (OBJECT, LOG_GROUP):
            return None
        try:
            return locate(target.source, self.facts, target.variable if target.read == REFERENCE else None)
        except arns.BadReference:
            return None  # the verdict says why

    def _object(self, arn: str) -> None:
        """HeadObject: whether the file exists, from its metadata; its content is never read."""
        obj = s3_object(arn)
        if obj is None or obj.arn in self.facts.objects:
            return
        try:
            self.aws.client("s3").head_object(Bucket=obj.bucket, Key=obj.key)
            fact: Any = True
        except (ClientError, BotoCoreError) as exc:
            gone = error_code(exc) in NOT_FOUND | {"404", "NoSuchKey", "NoSuchBucket"}
            fact = None if gone else _unread("s3:HeadObject", exc)
        self.facts.objects[obj.arn] = fact

    def _parameters(self, region: str, names: list[str]) -> None:
        todo = [n for n in names if (region, n) not in self.facts.parameters]
        ssm = self.aws.client("ssm", region)
        for batch in _chunks(todo, DESCRIBE_PARAMETERS_NAMES):
            found: dict[str, Any] = {name: None for name in batch}
            try:
                pages = ssm.get_paginator("describe_parameters").paginate(
                    ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": batch}],
                    PaginationConfig={"PageSize": DESCRIBE_PARAMETERS_NAMES})
                for meta in (m for page in pages for m in page["Parameters"]):
                    found[meta["Name"]] = ParameterFact(meta["Name"], meta["Type"], meta.get("KeyId"))
            except (ClientError, BotoCoreError) as exc:
                found = {name: _unread("ssm:DescribeParameters", exc) for name in batch}
            self.facts.parameters.update({(region, name): fact for name, fact in found.items()})

    def _secret(self, region: str, secret_id: str, pinned: set[str]) -> None:
        if (region, secret_id) in self.facts.secrets:
            return
        sm = self.aws.client("secretsmanager", region)
        try:
            meta = sm.describe_secret(SecretId=secret_id)
        except (ClientError, BotoCoreError) as exc:
            fact = None if error_code(exc) in NOT_FOUND else _unread("secretsmanager:DescribeSecret", exc)
            self.facts.secrets[(region, secret_id)] = fact
            return
        versions = {vid: tuple(stages) for vid, stages in (meta.get("VersionIdsToStages") or {}).items()}
        unread = self._unlabelled(sm, meta["ARN"], pinned - set(versions), versions)
        self.facts.secrets[(region, secret_id)] = SecretFact(
            meta["ARN"], meta.get("KmsKeyId"), "DeletedDate" in meta, versions, unread, self._secret_policy(sm, meta["ARN"]))

    @staticmethod
    def _unlabelled(sm: Any, arn: str, wanted: set[str], versions: dict) -> str | None:
        """DescribeSecret lists only versions with a staging label; a pinned id without one may still
        exist (ListSecretVersionIds with IncludeDeprecated lists those too)."""
        if not wanted:
            return None
        try:  # botocore has no paginator for ListSecretVersionIds
            for page in paging.pages(sm.list_secret_version_ids, "secretsmanager", "ListSecretVersionIds",
                                     SecretId=arn, IncludeDeprecated=True):
                versions.update({v["VersionId"]: tuple(v.get("VersionStages") or ()) for v in page["Versions"]
                                 if v["VersionId"] in wanted})
        except (ClientError, BotoCoreError) as exc:
            return _unread("secretsmanager:ListSecretVersionIds", exc).reason
        return None

    @staticmethod
    def _secret_policy(sm: Any, arn: str) -> Any:
        """The secret's resource policy: a dict, None when it has none, or Unread."""
        try:
            raw = sm.get_resource_policy(SecretId=arn).get("ResourcePolicy")
        except (ClientError, BotoCoreError) as exc:
            return _unread("secretsmanager:GetResourcePolicy", exc)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return Unread("secretsmanager:GetResourcePolicy returned a policy that is not JSON")

    def _keys(self) -> None:
        wanted = {(region, p.key_id or SSM_DEFAULT_KEY, "ssm") for (region, _), p in self.facts.parameters.items()
                  if isinstance(p, ParameterFact) and p.type == "SecureString"}
        wanted |= {(region, s.key_id or SM_DEFAULT_KEY, "secretsmanager") for (region, _), s in self.facts.secrets.items()
                   if isinstance(s, SecretFact)}
        for region, key_id, service in sorted(wanted):
            if (region, key_id) not in self.facts.keys:
                self.facts.keys[(region, key_id)] = self._key(region, key_id, service)

    def _key(self, region: str, key_id: str, service: str) -> Any:
        arn = arns.parse_arn(key_id)
        kms = self.aws.client("kms", arn.region if arn and arn.region else region)
        try:
            meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        except (ClientError, BotoCoreError) as exc:
            return None if error_code(exc) in NOT_FOUND else _unread("kms:DescribeKey", exc)
        if meta.get("KeyManager") == "AWS" or not customer_key(key_id):
            # AWS sets the policy of its managed keys; it is documented, so not read (and not every
            # emulator models it).
            key = arns.parse_arn(meta["Arn"])
            policy = aws_managed_key_policy(service, key.region if key else region,
                                            key.account if key else self.facts.account, self.facts.partition)
            return KeyFact(meta["Arn"], meta.get("KeyState", "Enabled"), "AWS", policy)
        try:
            policy: Any = json.loads(kms.get_key_policy(KeyId=meta["Arn"], PolicyName="default")["Policy"])
        except (ClientError, BotoCoreError) as exc:
            policy = _unread("kms:GetKeyPolicy", exc)
        return KeyFact(meta["Arn"], meta.get("KeyState", "Enabled"), "CUSTOMER", policy)

    def _role(self, role_arn: str) -> None:
        if role_arn in self.facts.roles:
            return
        parsed = arns.parse_arn(role_arn)
        if parsed is None or parsed.account != self.facts.account:
            self.facts.roles[role_arn] = Unread(f"it is not a role of account {self.facts.account}")
            return
        try:
            self.facts.roles[role_arn] = self._read_role(arns.role_name_from_arn(role_arn))
        except (ClientError, BotoCoreError) as exc:
            self.facts.roles[role_arn] = None if error_code(exc) in NOT_FOUND else _unread("iam:GetRole", exc)

    def _read_role(self, name: str) -> RoleFact:
        iam = self.aws.client("iam")
        role = iam.get_role(RoleName=name)["Role"]
        identity: list[NamedPolicy] = []
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
            for policy in page["PolicyNames"]:
                doc = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
                identity.append(NamedPolicy(policy, _document(doc)))
        attached = [p["PolicyArn"] for page in iam.get_paginator("list_attached_role_policies").paginate(
            RoleName=name) for p in page["AttachedPolicies"]]
        boundary_arn = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        docs = {arn: self._managed(arn) for arn in attached + ([boundary_arn] if boundary_arn else [])}
        identity += [NamedPolicy(arn, docs[arn]) for arn in attached if not isinstance(docs[arn], Unread)]
        boundary = None
        if boundary_arn and not isinstance(docs[boundary_arn], Unread):
            boundary = (NamedPolicy(boundary_arn, docs[boundary_arn]),)
        unread = tuple(f"{arn} ({doc.reason})" for arn, doc in docs.items() if isinstance(doc, Unread))
        return RoleFact(role["Arn"], tuple(identity), boundary, unread)

    def _managed(self, arn: str) -> Any:
        """The default version's document, read once per policy."""
        if arn not in self._policies:
            iam = self.aws.client("iam")
            try:
                version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
                doc = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
                self._policies[arn] = _document(doc)
            except (ClientError, BotoCoreError) as exc:
                self._policies[arn] = _unread("iam:GetPolicyVersion", exc)
        return self._policies[arn]


def _context_entries(context: dict) -> list[dict]:
    entries = []
    for key, value in sorted(context.items()):
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        kind = "boolean" if values in (["true"], ["false"]) else "stringList" if len(values) > 1 else "string"
        entries.append({"ContextKeyName": key, "ContextKeyValues": values, "ContextKeyType": kind})
    return entries


class Simulator:
    """``--against aws``: ask iam:SimulatePrincipalPolicy the same questions the IAM part answered."""

    def __init__(self, aws: Aws, facts: Facts) -> None:
        self.aws, self.facts = aws, facts
        self._answers: dict[tuple, str] = {}
        self._unavailable: str | None = None  # once AWS refuses, no more calls

    def annotate(self, result: list[Row]) -> None:
        for row in result:
            role = self.facts.roles.get(row.target.role_arn or "")
            if not isinstance(role, RoleFact):
                row.aws_simulation = "not available: no readable execution role"
                continue
            pairs = []
            for need in row.needs:
                ours = evaluate(role.identity, need.request(role.arn, self.facts.account), role.boundary)
                pairs.append((need, ours.decision, self._ask(role.arn, need)))
            row.aws_simulation = simulation_note(pairs, self._unavailable)

    def _ask(self, role_arn: str, need: Any) -> str | None:
        request = need.request(role_arn, self.facts.account)
        key = (role_arn, need.action, need.resource, json.dumps(dict(request.context), sort_keys=True))
        if key not in self._answers and self._unavailable is None:
            try:
                reply = self.aws.client("iam").simulate_principal_policy(
                    PolicySourceArn=role_arn, ActionNames=[need.action], ResourceArns=[need.resource],
                    ContextEntries=_context_entries(dict(request.context)))
                self._answers[key] = reply["EvaluationResults"][0]["EvalDecision"]
            except Exception as exc:  # advisory only: whatever stops it makes it "not available"
                self._unavailable = f"iam:SimulatePrincipalPolicy failed with {error_code(exc)}"
        return self._answers.get(key)

