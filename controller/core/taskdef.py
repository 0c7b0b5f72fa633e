"""Task-definition normalisation: a diff that ECS itself would undo is no diff.

``normalize`` takes either what a user writes (the RegisterTaskDefinition input, camelCase) or what
DescribeTaskDefinition returns, and gives both the same canonical shape: response-only fields and
tags dropped, empty values dropped, ECS's defaults filled in, order-insensitive lists sorted and
unit strings converted. ecspresso's diff.go does the same before it compares; this is our version.

``valueFrom`` is left exactly as written: whether a name and an ARN mean the same parameter is a
question for the code that knows the Region and account.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.manifests.rules import unit_amount

# Fields of DescribeTaskDefinition's taskDefinition that RegisterTaskDefinition does not take.
RESPONSE_ONLY: frozenset[str] = frozenset(
    {
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
        "deleteRequestedAt",
    }
)
# Tags are compared on their own (ListTagsForResource), not as part of the definition.
_NOT_COMPARED = RESPONSE_ONLY | {"tags"}

# ECS's defaults: a field equal to its default means the same as the field left out. ECS answers
# with them filled in, whether or not they were sent; one table per level of the definition.
# - Task level: dropped when equal to the default, so a plan never shows a field nobody wrote.
#   enableFaultInjection: "The default value is false" (RegisterTaskDefinition API reference); since
#   2025 DescribeTaskDefinition returns it for every task definition.
TASK_DEFAULTS: dict[str, Any] = {"enableFaultInjection": False}
# - Container level: filled in (the plan of a new task definition shows them, as ECS will store them).
#   essential: "If the essential parameter of a container is marked as true ... All tasks must have at
#   least one essential container" and it defaults to true; cpu: ECS stores 0 when none is given
#   (ContainerDefinition API reference; the AWS CLI's register-task-definition example output).
CONTAINER_DEFAULTS: dict[str, Any] = {"essential": True, "cpu": 0}
# HealthCheck: "interval ... The default value is 30 seconds", "timeout ... default 5",
# "retries ... default 3" (ECS API reference). ECS returns them filled in.
_HEALTH_CHECK_DEFAULTS = {"interval": 30, "timeout": 5, "retries": 3}
# In these modes a missing hostPort means "the same as containerPort", and ECS fills it in.
_HOST_PORT_IS_CONTAINER_PORT = frozenset({"awsvpc", "host"})
_CONTAINER_INTS = ("cpu", "memory", "memoryReservation")
# Task-level strings where "" asks for nothing: botocore's own RegisterTaskDefinition example sends
# taskRoleArn "" and ECS answers without a taskRoleArn (tests/corpus/03-sleep360-empty-task-role).
_EMPTY_STRING_IS_UNSET = ("taskRoleArn",)
_SORTED_BY_NAME = ("environment", "secrets", "ulimits")


def _is_default(key: str, value: Any) -> bool:
    default = TASK_DEFAULTS.get(key, _NO_DEFAULT)
    return type(value) is type(default) and value == default


_NO_DEFAULT = object()


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, (list, dict)) and not value)


def _prune(value: Any) -> Any:
    """A deep copy without None, empty lists and empty dicts (ECS returns ``mountPoints: []``)."""
    if isinstance(value, Mapping):
        pruned = {key: _prune(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if not _is_empty(item)}
    if isinstance(value, (list, tuple)):
        pruned_items = [_prune(item) for item in value]
        return [item for item in pruned_items if not _is_empty(item)]
    return value


def _units(value: Any, unit: str) -> Any:
    """``"0.25 vCPU"``/``".25 vCPU"`` -> ``"256"``, ``"1 GB"`` -> ``"1024"``, ``256`` -> ``"256"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        return value
    amount = unit_amount(value, unit)
    # what ECS cannot read is left as written (validate refuses it)
    return value if amount is None else str(amount)


def _int_if_digits(value: Any) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _network_mode(td: Mapping[str, Any]) -> str | None:
    """ECS's default is bridge; a FARGATE-only task must say awsvpc, so we do not invent it."""
    mode = td.get("networkMode")
    if mode:
        return mode
    if set(td.get("requiresCompatibilities", ())) == {"FARGATE"}:
        return None
    return "bridge"


def _port_mapping(mapping: Mapping[str, Any], network_mode: str | None) -> dict[str, Any]:
    out = dict(mapping)
    out.setdefault("protocol", "tcp")
    if network_mode in _HOST_PORT_IS_CONTAINER_PORT and "containerPort" in out:
        out.setdefault("hostPort", out["containerPort"])
    if network_mode == "bridge" and out.get("hostPort") == 0:
        del out["hostPort"]  # 0 and absent both ask for a dynamic host port
    return out


def _by_name(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda item: str(item.get("name", "")))


def _container(container: Mapping[str, Any], network_mode: str | None) -> dict[str, Any]:
    out = {**CONTAINER_DEFAULTS, **container}
    for key in _CONTAINER_INTS:
        if key in out:
            out[key] = _int_if_digits(out[key])
    for key in _SORTED_BY_NAME:
        if key in out:
            out[key] = _by_name(out[key])
    if "portMappings" in out:
        out["portMappings"] = [_port_mapping(pm, network_mode) for pm in out["portMappings"]]
    if "healthCheck" in out:
        out["healthCheck"] = {**_HEALTH_CHECK_DEFAULTS, **out["healthCheck"]}
    return out


def normalize(td: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical form of a task definition, for comparison only; ``td`` is not modified."""
    out = _prune({key: value for key, value in td.items()
                  if key not in _NOT_COMPARED and not _is_default(key, value)
                  and not (key in _EMPTY_STRING_IS_UNSET and value == "")})
    network_mode = _network_mode(out)
    if network_mode is not None:
        out["networkMode"] = network_mode
    if "cpu" in out:
        out["cpu"] = _units(out["cpu"], "vCPU")
    if "memory" in out:
        out["memory"] = _units(out["memory"], "GB")
    if "requiresCompatibilities" in out:
        out["requiresCompatibilities"] = sorted(out["requiresCompatibilities"])
    if "containerDefinitions" in out:
        containers = [_container(c, network_mode) for c in out["containerDefinitions"]]
        out["containerDefinitions"] = _by_name(containers)
    return out
