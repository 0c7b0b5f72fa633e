"""`init`: manifests for what already runs, from what AWS describes (pure; the reads are in aws/adopt_read).

A described task definition becomes a TaskDefinition manifest as a user would write it: the fields
only DescribeTaskDefinition returns are dropped (``taskdef.RESPONSE_ONLY``), and so are ECS's defaults
(``taskdef.TASK_DEFAULTS``, ``CONTAINER_DEFAULTS``, the health-check and port-mapping defaults) and empty
values, so the manifest is short and ``normalize`` gives both the same shape: reconciling it registers no
new revision. Its execution role becomes an ExecutionRole, the SSM parameters it reads become Parameters
without a ``value`` (managed elsewhere: only their existence is checked), all with ``adopt: true``.
No value is ever read: the parameters' metadata comes from DescribeParameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.core.taskdef import CONTAINER_DEFAULTS, RESPONSE_ONLY, TASK_DEFAULTS
from controller.manifests.models import API_VERSION, DEFAULT_INLINE_POLICY, DEFAULT_KMS_KEY
from controller.vocab.arns import parse_arn

_HEALTH_CHECK_DEFAULTS = {"interval": 30, "timeout": 5, "retries": 3}
_SECRETS_MANAGER_PATH = "/aws/reference/secretsmanager/"


@dataclass(frozen=True)
class RoleFacts:
    name: str
    path: str = "/"
    description: str | None = None
    managed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParameterFacts:
    """DescribeParameters' metadata of one parameter (never its value)."""
    name: str
    region: str
    type: str = "SecureString"
    key_id: str | None = None
    tier: str = "Standard"
    description: str | None = None


@dataclass(frozen=True)
class Found:
    """What ``init`` read for one task definition."""
    described: Mapping[str, Any]
    role: RoleFacts | None = None
    parameters: tuple[ParameterFacts, ...] = field(default_factory=tuple)


def object_name(text: str) -> str:
    """A metadata.name (lowercase letters, digits, '-') for an AWS name."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-") or "imported"


def role_name(arn: str | None) -> str | None:
    """The role name of an execution-role ARN (or a bare name)."""
    if not arn:
        return None
    parsed = parse_arn(arn)
    return parsed.resource.rsplit("/", 1)[-1] if parsed else arn


def ssm_reads(described: Mapping[str, Any], region: str) -> list[tuple[str, str]]:
    """(region, SSM name) of every parameter the containers read (secrets, log secretOptions)."""
    out = []
    for container in described.get("containerDefinitions") or []:
        uses = list(container.get("secrets") or [])
        uses += list((container.get("logConfiguration") or {}).get("secretOptions") or [])
        for use in uses:
            ref = str(use.get("valueFrom", ""))
            parsed = parse_arn(ref) if ref.startswith("arn:") else None
            if parsed is not None:
                if parsed.service == "ssm" and parsed.resource.startswith("parameter"):
                    name = parsed.resource[len("parameter"):]
                    out.append((parsed.region, name if name.startswith("/") and name.count("/") > 1
                                else name.lstrip("/")))
            elif ref and not ref.startswith(_SECRETS_MANAGER_PATH):
                out.append((region, ref))
    return list(dict.fromkeys(out))


def task_definition_spec(described: Mapping[str, Any]) -> dict[str, Any]:
    """The RegisterTaskDefinition input a user would write for ``described`` (defaults left out)."""
    described = _prune(described)   # console answers carry nulls and empty lists
    spec = {k: v for k, v in described.items() if k not in RESPONSE_ONLY and k != "tags"
            and not (k in TASK_DEFAULTS and v == TASK_DEFAULTS[k]) and not (k == "taskRoleArn" and v == "")}
    network_mode = spec.get("networkMode")
    spec["containerDefinitions"] = [_container(c, network_mode) for c in spec.get("containerDefinitions") or []]
    return _prune(spec)


def _container(container: Mapping[str, Any], network_mode: str | None) -> dict[str, Any]:
    out = {k: v for k, v in container.items() if not (k in CONTAINER_DEFAULTS and v == CONTAINER_DEFAULTS[k])}
    if "healthCheck" in out:
        out["healthCheck"] = {k: v for k, v in out["healthCheck"].items() if _HEALTH_CHECK_DEFAULTS.get(k) != v}
    if "portMappings" in out:
        out["portMappings"] = [_port(p, network_mode) for p in out["portMappings"]]
    return out


def _port(mapping: Mapping[str, Any], network_mode: str | None) -> dict[str, Any]:
    out = {k: v for k, v in mapping.items() if not (k == "protocol" and v == "tcp")}
    if network_mode in ("awsvpc", "host") and out.get("hostPort") == out.get("containerPort"):
        out.pop("hostPort", None)
    return out


def _prune(value: Any) -> Any:
    if isinstance(value, Mapping):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != [] and v != {}}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def documents(found: list[Found], region: str) -> list[dict[str, Any]]:
    """Manifest documents for these task definitions: roles and parameters once each, then the families."""
    roles: dict[str, dict] = {}
    parameters: dict[tuple[str, str], dict] = {}
    tasks: list[dict] = []
    used: dict[str, set[str]] = {"Parameter": set(), "ExecutionRole": set(), "TaskDefinition": set()}
    for item in found:
        spec = task_definition_spec(item.described)
        if item.role is not None:
            if item.role.name not in roles:
                roles[item.role.name] = _doc("ExecutionRole", _unique(used, "ExecutionRole", item.role.name),
                                             _role_spec(item.role))
            spec.pop("executionRoleArn", None)
            spec = {"family": spec["family"], "executionRole": roles[item.role.name]["metadata"]["name"],
                    **{k: v for k, v in spec.items() if k != "family"}}
        for p in item.parameters:
            if (p.region, p.name) not in parameters:
                parameters[(p.region, p.name)] = _doc("Parameter", _unique(used, "Parameter", p.name),
                                                      _parameter_spec(p, region))
        tasks.append(_doc("TaskDefinition", _unique(used, "TaskDefinition", spec["family"]), spec))
    return [*parameters.values(), *roles.values(), *tasks]


def _unique(used: dict[str, set[str]], kind: str, text: str) -> str:
    base = name = object_name(text)
    n = 2
    while name in used[kind]:
        name, n = f"{base}-{n}", n + 1
    used[kind].add(name)
    return name


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, "adopt": True}, "spec": spec}


def _role_spec(role: RoleFacts) -> dict[str, Any]:
    spec: dict[str, Any] = {"roleName": role.name}
    if role.path != "/":
        spec["path"] = role.path
    if role.description:
        spec["description"] = role.description
    spec["managedPolicyArns"] = list(role.managed)   # as attached now: adopting must not detach any
    spec["inlinePolicyName"] = DEFAULT_INLINE_POLICY
    return spec


def _parameter_spec(p: ParameterFacts, region: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": p.name}
    if p.type != "SecureString":
        spec["type"] = p.type
    if p.type == "SecureString" and p.key_id and p.key_id != DEFAULT_KMS_KEY:
        spec["kmsKeyId"] = p.key_id
    if p.tier != "Standard":
        spec["tier"] = p.tier
    if p.description:
        spec["description"] = p.description
    if p.region != region:
        spec["region"] = p.region
    return spec   # no value: the parameter is managed elsewhere, and its value is never read


def by_family(found: list[Found], region: str) -> dict[str, list[dict[str, Any]]]:
    """``documents`` split into one file per family; a role or parameter that several share goes, once,
    with the first family that reads it (several ``-f`` files add up to one desired state)."""
    docs = documents(found, region)
    tasks = [d for d in docs if d["kind"] == "TaskDefinition"]
    placed: set[int] = set()
    out: dict[str, list[dict[str, Any]]] = {}
    for item, task in zip(found, tasks):
        mine = {(p.region, p.name) for p in item.parameters}
        group = [d for d in docs if id(d) not in placed and (
            (d["kind"] == "ExecutionRole" and item.role is not None and d["spec"]["roleName"] == item.role.name)
            or (d["kind"] == "Parameter" and (d["spec"].get("region", region), d["spec"]["name"]) in mine))]
        placed.update(id(d) for d in group)
        out[task["metadata"]["name"]] = [*group, task]
    return out
