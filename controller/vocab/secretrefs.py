"""Where a task definition reads secrets: container ``secrets`` and log-driver ``secretOptions``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator


@dataclass(frozen=True)
class SecretUse:
    path: tuple              # from the task definition's root, e.g. ("containerDefinitions", 0, "secrets", 1)
    container: str
    variable: str
    value_from: str


def secret_uses(td: dict[str, Any]) -> Iterator[SecretUse]:
    for i, container in enumerate(td.get("containerDefinitions") or []):
        if not isinstance(container, dict):
            continue
        cname = str(container.get("name", f"#{i}"))
        places = [(("containerDefinitions", i, "secrets"), container.get("secrets"))]
        log = container.get("logConfiguration")
        if isinstance(log, dict):
            places.append((("containerDefinitions", i, "logConfiguration", "secretOptions"),
                           log.get("secretOptions")))
        for base, items in places:
            for j, item in enumerate(items or []):
                if isinstance(item, dict) and isinstance(item.get("valueFrom"), str):
                    yield SecretUse(base + (j,), cname, str(item.get("name", "")), item["valueFrom"])
