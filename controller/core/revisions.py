"""ACTIVE task-definition revisions as the derived policies and prune's in-use guard see them. Pure.

A revision is immutable: what it runs as and reads at task start is read from its body once
(``revision_of``) and may be remembered by its ARN. Of the body only this summary is kept, never its
environment or anything else.

A running service, its rollback target, and a revision another tool (CI) registered all start tasks
with the execution role they name: the derived inline policy of a declared role covers every ACTIVE
revision that names it (``running_as``), not only the task definitions of the manifests at hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from controller.vocab.arns import BadReference, Reference, parse_arn, parse_value_from, role_name_from_arn
from controller.vocab.secretrefs import secret_uses
from controller.vocab.taskreads import LOG_GROUP, OBJECT, REFERENCE, TaskRead, reference, task_reads


@dataclass(frozen=True)
class Revision:
    arn: str                              # arn:…:task-definition/FAMILY:REVISION
    region: str
    execution_role: str | None            # as registered: an ARN (real ECS stores one) or a name
    task_role: str | None
    references: tuple[Reference, ...]     # what it reads from SSM and Secrets Manager
    files: tuple[TaskRead, ...]           # S3 files and log groups to create (``desired.files``)

    @property
    def label(self) -> str:
        """``family:revision``, as a person names it."""
        return self.arn.rsplit("/", 1)[-1]


def revision_of(body: dict[str, Any], region: str) -> Revision:
    """The summary of one DescribeTaskDefinition answer. A reference ECS could not resolve is left out:
    no task of that revision starts, so there is nothing to keep for it."""
    refs = []
    for use in secret_uses(body):
        try:
            refs.append(parse_value_from(use.value_from))
        except BadReference:
            continue
    for read in task_reads(body):
        if read.kind == REFERENCE:
            try:
                refs.append(reference(read))
            except BadReference:
                continue
    files = tuple(r for r in task_reads(body) if r.kind in (OBJECT, LOG_GROUP))
    return Revision(body["taskDefinitionArn"], region, body.get("executionRoleArn") or None,
                    body.get("taskRoleArn") or None, tuple(refs), files)


def role_key(name_or_arn: str, account: str) -> tuple[str, str] | None:
    """A role as IAM identifies it: its account and its name, which IAM keeps unique per account without
    regard to case (or path). A bare name is a role of ``account``; None: not a role ARN."""
    if not name_or_arn.startswith("arn:"):
        return account, name_or_arn.lower()
    arn = parse_arn(name_or_arn)
    if arn is None or arn.service != "iam" or not arn.resource.startswith("role/"):
        return None
    return arn.account, role_name_from_arn(arn.resource).lower()


def running_as(revisions: Iterable[Revision], role_arn: str, account: str) -> list[Revision]:
    """The revisions whose tasks start with the execution role ``role_arn``, by ARN or by name."""
    want = role_key(role_arn, account)
    return [r for r in revisions if r.execution_role and role_key(r.execution_role, account) == want]
