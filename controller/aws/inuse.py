"""Which task-definition revisions ECS services use: keepRevisions and prune never deregister them.

A service names its revision in ``taskDefinition``; while it deploys, each of its ``deployments`` and
``taskSets`` (CodeDeploy, external controllers) names one too, and a rollback needs the old one. The
clusters to look in are the ``--cluster`` options; without any, every cluster of the Region
(``ListClusters``): the safe default, because a forgotten option must not cost a service its
rollback target. ``--cluster`` narrows the scan for accounts with many clusters, and is the
operator's word that services elsewhere do not use these families.

Read lazily and once per observe (``ListServices`` per cluster, ``DescribeServices`` per 10
services), and only when a deregistration is on the table. Tasks started by ``RunTask`` (scheduled
tasks, one-off jobs) are not services and are not looked for: deregistering a revision does not stop
tasks that run it.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable

from controller.aws.session import Aws

DESCRIBE_BATCH = 10   # DescribeServices takes at most 10 services a call


class InUse:
    def __init__(self, aws: Aws, clusters: Iterable[str] | None = None) -> None:
        self.aws = aws
        self.clusters = tuple(clusters or ())
        self._lock = threading.Lock()
        self._found: dict[str, set[int]] | None = None
        self._services: list[dict] | None = None

    def revisions(self, family: str) -> set[int]:
        """The revisions of ``family`` that some service in the clusters uses."""
        with self._lock:  # families are read in parallel; the services are listed once
            if self._found is None:
                self._found = _by_family(a for s in self._all_services() for a in _task_definitions(s))
            return set(self._found.get(family, ()))

    def services(self, family: str) -> list[dict]:
        """The services (DescribeServices answers) that run a revision of ``family``: ``rollout.discover``."""
        with self._lock:
            return [s for s in self._all_services() if family in _by_family(_task_definitions(s))]

    def _all_services(self) -> list[dict]:
        if self._services is None:
            self._services = list(self._scan())
        return self._services

    def _scan(self) -> Iterable[dict]:
        ecs = self.aws.client("ecs")
        for cluster in self.clusters or _all_clusters(ecs):
            arns = [a for page in ecs.get_paginator("list_services").paginate(cluster=cluster)
                    for a in page["serviceArns"]]
            for i in range(0, len(arns), DESCRIBE_BATCH):
                yield from ecs.describe_services(cluster=cluster, services=arns[i:i + DESCRIBE_BATCH])["services"]


def _all_clusters(ecs: Any) -> list[str]:
    return [a for page in ecs.get_paginator("list_clusters").paginate() for a in page["clusterArns"]]


def _task_definitions(service: dict) -> Iterable[str]:
    if service.get("taskDefinition"):
        yield service["taskDefinition"]
    for item in (service.get("deployments") or []) + (service.get("taskSets") or []):
        if item.get("taskDefinition"):
            yield item["taskDefinition"]


def _by_family(arns: Iterable[str]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for arn in arns:
        family, _, revision = arn.rsplit("/", 1)[-1].rpartition(":")
        if family and revision.isdigit():
            out.setdefault(family, set()).add(int(revision))
    return out
