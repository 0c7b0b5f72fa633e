"""The reads of ``spec.rollout``: its services, the revision each runs, and when what that revision reads changed.

Only task definitions with a rollout cost anything. Named services: DescribeServices, 10 a call per
cluster; ``discover``: the in-use scan's services (``inuse``, one scan for every family). The revision a
service runs (its PRIMARY deployment's, else the service's) is read once (DescribeTaskDefinition), and
its references (``desired.references``) say which secrets its tasks read at start — declared or not.

When each secret last changed, for every source any such revision reads, read once per reconcile:
- SSM: DescribeParameters by name, 50 a call: ``LastModifiedDate`` (SSM API reference, ParameterMetadata:
  "Date the parameter was last changed or updated").
- Secrets Manager: the date the version labelled AWSCURRENT was created (ListSecretVersionIds,
  SecretVersionsListEntry.CreatedDate), or the end of the last successful rotation when later
  (DescribeSecret, LastRotatedDate: "the most recent date and time that the Secrets Manager rotation
  process was successfully completed"): a rotation creates its version before it moves AWSCURRENT to it.
"""

from __future__ import annotations

import logging
from datetime import timezone
from typing import Any, Iterable

from botocore.exceptions import ClientError

from controller.aws import paging
from controller.aws.inuse import DESCRIBE_BATCH, InUse
from controller.aws.observe_ssm import chunks, describe_parameters
from controller.aws.session import Aws, error_code
from controller.core.desired import Desired, DesiredTaskDefinition, references
from controller.core.rollout import Source, source
from controller.core.state import ActualRollout, ActualService
from controller.vocab.arns import BadReference

CURRENT = "AWSCURRENT"
log = logging.getLogger("ecs_secrets.observe")


def read_rollouts(aws: Aws, desired: Desired, in_use: InUse) -> dict[str, ActualRollout]:
    tds = [td for td in desired.task_definitions if td.rollout is not None]
    if not tds:
        return {}
    reader = _Reader(aws)
    out = {td.ref: reader.rollout(td, in_use) for td in tds}
    sources = {src for r in out.values() for s in r.services for src in s.reads}
    changed, failed = reader.changes(sources)
    for r in out.values():
        r.changed = {src: _epoch(when) for src, when in changed.items() if any(src in s.reads for s in r.services)}
        r.shown = {src: _iso(changed[src]) for src in r.changed}
        for s in r.services:
            reasons = [failed[src] for src in s.reads if src in failed]
            if reasons:
                r.problems.setdefault(s.ref, f"cannot tell whether a secret of ECS service {s.cluster}/{s.name} "
                                      f"changed: {reasons[0]}")
    return out


def services(aws: Aws, cluster: str, names: list[str]) -> list[dict]:
    """DescribeServices of ``names`` in ``cluster``; a service that does not exist comes back with status MISSING."""
    ecs, out = aws.client("ecs"), []
    for batch in chunks(names, DESCRIBE_BATCH):
        try:
            reply = ecs.describe_services(cluster=cluster, services=batch)
        except ClientError as exc:
            if error_code(exc) != "ClusterNotFoundException":
                raise
            reply = {"services": [], "failures": [{"arn": n, "reason": "MISSING"} for n in batch]}
        out += reply["services"]
        out += [{"serviceName": f["arn"].rsplit("/", 1)[-1], "clusterArn": cluster, "status": f.get("reason", "MISSING")}
                for f in reply.get("failures") or []]
    return out


def primary(service: dict) -> dict | None:
    return next((d for d in service.get("deployments") or [] if d.get("status") == "PRIMARY"), None)


class _Reader:
    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self.bodies: dict[str, tuple[Source, ...]] = {}

    def rollout(self, td: DesiredTaskDefinition, in_use: InUse) -> ActualRollout:
        found = ActualRollout()
        if td.rollout.discover:
            raw = [s for s in in_use.services(td.family) if s.get("status") == "ACTIVE"]
        else:
            by_cluster: dict[str, list[str]] = {}
            for name in td.rollout.services:
                cluster, _, service = name.partition("/")
                by_cluster.setdefault(cluster, []).append(service)
            raw = [s for cluster, names in sorted(by_cluster.items()) for s in services(self.aws, cluster, names)]
        for service in raw:
            found.services.append(self._service(service, found))
            if found.services[-1].status in ("MISSING", "INACTIVE"):
                log.warning("ECS service %s/%s of %s's spec.rollout does not exist (%s): nothing to roll there",
                            found.services[-1].cluster, service["serviceName"], td.ref, service["status"],
                            extra={"object": td.ref, "action": "observe"})
        return found

    def _service(self, s: dict, found: ActualRollout) -> ActualService:
        first = primary(s) or {}
        cluster = str(s.get("clusterArn", "")).rsplit("/", 1)[-1]
        running = first.get("taskDefinition") or s.get("taskDefinition")
        out = ActualService(cluster, s["serviceName"], s.get("status", "ACTIVE"),
                            (s.get("deploymentController") or {}).get("type", "ECS"), s.get("taskDefinition"),
                            first.get("id"), _epoch(first.get("createdAt")), primary_state=first.get("rolloutState"),
                            primary_reason=first.get("rolloutStateReason"))
        if out.status not in ("ACTIVE", "DRAINING") or not running:
            return out
        try:
            reads = self._reads(running)
        except ClientError as exc:
            found.problems[out.ref] = f"cannot read the revision {running} that {cluster}/{out.name} runs: " \
                f"{error_code(exc)}"
            reads = ()
        return ActualService(**{**out.__dict__, "reads": reads})

    def _reads(self, revision: str) -> tuple[Source, ...]:
        if revision not in self.bodies:
            body = self.aws.client("ecs").describe_task_definition(taskDefinition=revision)["taskDefinition"]
            region = revision.split(":")[3] if revision.startswith("arn:") else self.aws.region
            try:
                refs = references(body)
            except BadReference:   # a revision someone else registered may hold a reference we cannot parse
                refs = ()
            # a secret pinned to a version id reads that version for ever: no rotation changes what it reads
            self.bodies[revision] = tuple(sorted({source(r, region) for r in refs if not r.version_id}))
        return self.bodies[revision]

    def changes(self, sources: Iterable[Source]) -> tuple[dict[Source, Any], dict[Source, str]]:
        changed: dict[Source, Any] = {}
        failed: dict[Source, str] = {}
        by_region: dict[str, list[str]] = {}
        for kind, region, name in sorted(sources):
            if kind == "ssm":
                by_region.setdefault(region, []).append(name)
            else:
                self._secret(region, name, changed, failed)
        for region, names in by_region.items():
            ssm = self.aws.client("ssm", region)
            for batch in chunks(names, 50):
                for p in describe_parameters(ssm, [{"Key": "Name", "Option": "Equals", "Values": batch}]):
                    if p.get("LastModifiedDate"):
                        changed[("ssm", region, p["Name"])] = p["LastModifiedDate"]
        return changed, failed

    def _secret(self, region: str, secret_id: str, changed: dict, failed: dict) -> None:
        sm = self.aws.client("secretsmanager", region)
        try:
            versions = _versions(sm, secret_id)
            rotated = sm.describe_secret(SecretId=secret_id).get("LastRotatedDate")
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":   # a missing one is the plan's own blocker
                failed[("secret", region, secret_id)] = f"Secrets Manager {secret_id}: {error_code(exc)}"
            return
        dates = [v["CreatedDate"] for v in versions if CURRENT in (v.get("VersionStages") or []) and v.get("CreatedDate")]
        dates += [rotated] if rotated else []
        if dates:
            changed[("secret", region, secret_id)] = max(dates)


def _versions(sm: Any, secret_id: str) -> list[dict]:
    """ListSecretVersionIds, every page (botocore has no paginator for it: ``paging.pages`` caps it);
    deprecated versions left out."""
    return [v for page in paging.pages(sm.list_secret_version_ids, "secretsmanager", "ListSecretVersionIds",
                                       SecretId=secret_id) for v in page.get("Versions") or []]


def _epoch(when: Any) -> float | None:
    """botocore parses timestamps to aware datetimes; the pure core compares seconds since the epoch."""
    return None if when is None else when.timestamp()


def _iso(when: Any) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")
