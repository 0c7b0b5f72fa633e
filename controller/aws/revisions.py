"""Every ACTIVE task-definition revision of a Region, read once per observe, each body described once per process.

ECS cannot list revisions by role or by what they read: ``ListTaskDefinitions(status=ACTIVE)`` (100 ARNs
a page) names them all, and ``DescribeTaskDefinition`` (no batch form; 20 a second) reads each. Two
readers share the scan: the derived inline policies (every revision running as a declared role keeps its
grants) and prune's in-use guard (``observe_prune``).

Revisions are immutable, so what a described ARN runs as and reads (``core.revisions.Revision``, never the
body) is remembered in memory for the life of the ``Aws`` session: the daemon describes only the revisions
registered since its last pass. Bodies observe already read (the latest revision of each declared family)
are not described again. After each listing the remembered ARNs that are no longer ACTIVE are forgotten,
so memory stays one summary per ACTIVE revision.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Mapping

from botocore.exceptions import ClientError

from controller.aws.session import Aws, error_code
from controller.core.revisions import Revision, revision_of

READ_WORKERS = 4   # describes in flight; the rate limiter keeps us under ECS's 20 a second
_MEMORY: weakref.WeakKeyDictionary[Aws, dict[str, Revision]] = weakref.WeakKeyDictionary()
_MEMORY_LOCK = threading.Lock()


class ActiveRevisions:
    """The scan of one observe: each Region listed at most once, lazily, by whichever reader asks first."""

    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self._lock = threading.Lock()
        self._found: dict[str, list[Revision]] = {}
        self._seeds: dict[str, dict[str, Any]] = {}

    def seed(self, region: str, bodies: Iterable[Mapping[str, Any]]) -> None:
        """Bodies already described (with tags) by observe: no second DescribeTaskDefinition for them."""
        with self._lock:
            self._seeds.setdefault(region, {}).update({b["taskDefinitionArn"]: dict(b) for b in bodies})

    def of(self, region: str) -> list[Revision]:
        with self._lock:
            if region not in self._found:
                self._found[region] = _scan(self.aws, region, self._seeds.get(region, {}))
            return list(self._found[region])


def _scan(aws: Aws, region: str, seeds: Mapping[str, dict]) -> list[Revision]:
    ecs = aws.client("ecs", region)
    listed = [arn for page in ecs.get_paginator("list_task_definitions").paginate(status="ACTIVE")
              for arn in page["taskDefinitionArns"]]
    with _MEMORY_LOCK:
        memory = _MEMORY.setdefault(aws, {})
        known = {arn: memory[arn] for arn in listed if arn in memory}
    known.update({arn: revision_of(seeds[arn], region) for arn in listed if arn in seeds and arn not in known})
    unknown = [arn for arn in listed if arn not in known]
    with ThreadPoolExecutor(READ_WORKERS) as pool:
        for arn, rev in zip(unknown, pool.map(lambda a: _describe(ecs, a, region), unknown)):
            if rev is not None:
                known[arn] = rev
    with _MEMORY_LOCK:
        prefix = f":ecs:{region}:"
        for arn in [a for a in memory if prefix in a and a not in known]:
            del memory[arn]       # deregistered (or deleted) since: forgotten
        memory.update(known)
    return [known[arn] for arn in listed if arn in known]


def _describe(ecs: Any, arn: str, region: str) -> Revision | None:
    try:
        body = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    except ClientError as exc:
        if error_code(exc) in ("ClientException", "InvalidParameterException"):
            return None   # deregistered and deleted between the listing and now
        raise
    return revision_of(body, region)
