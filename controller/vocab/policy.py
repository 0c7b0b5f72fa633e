"""IAM policy documents: derive the least privilege, measure it, compare two by meaning. Pure."""

from __future__ import annotations

import json
from typing import Any, Iterable

VERSION = "2012-10-17"
MAX_INLINE_ROLE_POLICY_CHARS = 10_240  # IAM counts the document without white space
ECS_TASKS = "ecs-tasks.amazonaws.com"

_GRANTS = (  # (Sid, action) in the order the statements are written
    ("ReadParameters", "ssm:GetParameters"),
    ("ReadSecrets", "secretsmanager:GetSecretValue"),
    ("DecryptWithCustomKeys", "kms:Decrypt"),
    ("ReadS3Files", "s3:GetObject"),                  # environmentFiles, FireLens config, credential specs
    ("LocateS3FileBuckets", "s3:GetBucketLocation"),  # their buckets
    ("CreateLogGroups", "logs:CreateLogGroup"),       # awslogs-create-group: "true"
)


def derive(parameters: Iterable[str], secrets: Iterable[str], keys: Iterable[str], objects: Iterable[str] = (),
           buckets: Iterable[str] = (), log_groups: Iterable[str] = ()) -> dict | None:
    """The inline policy an execution role needs: exact, sorted ARNs; None when nothing is read."""
    statements = []
    for (sid, action), arns in zip(_GRANTS, (parameters, secrets, keys, objects, buckets, log_groups)):
        resources = sorted(set(arns))
        if resources:
            statements.append({"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resources})
    return {"Version": VERSION, "Statement": statements} if statements else None


def trust_policy(account: str) -> dict:
    return {"Version": VERSION, "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": ECS_TASKS},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account}},
    }]}


def size(document: dict) -> int:
    return len(json.dumps(document, separators=(",", ":")))


def canonical(document: dict | str | None) -> Any:
    """A form in which two documents are equal exactly when IAM would treat them alike."""
    if document is None:
        return None
    if isinstance(document, str):
        document = json.loads(document)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    canon = sorted((_statement(s) for s in statements), key=lambda s: json.dumps(s, sort_keys=True))
    return {"Version": document.get("Version", "2008-10-17"), "Statement": canon}


def as_written(document: dict | str) -> dict:
    """For showing a person: as written, but each Action/Resource a sorted list and each Statement a list."""
    if isinstance(document, str):
        document = json.loads(document)
    statements = document.get("Statement", [])
    out = []
    for statement in statements if isinstance(statements, list) else [statements]:
        shown = dict(statement)
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in shown:
                shown[key] = sorted(set(_as_list(shown[key])), key=str.lower)
        out.append(shown)
    return {**document, "Statement": out}


def same(a: dict | str | None, b: dict | str | None) -> bool:
    return canonical(a) == canonical(b)


def _statement(statement: dict) -> dict:
    out: dict[str, Any] = {}
    for key, value in statement.items():
        if key == "Sid":
            continue  # a label; it grants nothing
        if key in ("Action", "NotAction"):
            out[key] = sorted({a.lower() for a in _as_list(value)})
        elif key in ("Resource", "NotResource"):
            out[key] = sorted(set(_as_list(value)))
        elif key in ("Principal", "NotPrincipal", "Condition"):
            out[key] = _nested(value)
        else:
            out[key] = value
    return out


def _nested(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nested(v) for k, v in sorted(value.items())}
    if value == "*":
        return "*"
    # Values keep their JSON type: str() would make true and "True", or 1 and "1", one value,
    # and hide a changed condition. IAM stores the document as written, so a desired document
    # never differs from what IAM returns for it by type alone.
    unique = {json.dumps(v, sort_keys=True): v for v in _as_list(value)}
    return [unique[key] for key in sorted(unique)]


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]
