"""Fields another writer owns (``spec.externallyManaged``): their values come from the latest revision. Pure.

The body we compare and register is the manifest's, with each externally managed field as the family's
latest ACTIVE revision has it (absent there: absent here). So such a field is never a diff, and a
revision we register keeps it (a CI pipeline's image survives a secret change). A container that the
latest revision does not have, and a family without an ACTIVE revision, keep the manifest's value.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from controller.manifests.external import ALL, FieldPath


def merged(body: Mapping[str, Any], current: Mapping[str, Any], paths: tuple[FieldPath, ...]) -> dict[str, Any]:
    """``body`` with the fields ``paths`` name taken from ``current``; neither argument is modified."""
    out = dict(body)
    if not paths:
        return out
    containers = [dict(c) for c in out.get("containerDefinitions") or []]
    theirs = {c.get("name"): c for c in current.get("containerDefinitions") or [] if isinstance(c, Mapping)}
    for path in paths:
        if path.container is None:
            _take(out, current, path.field)
            continue
        for container in containers:
            name = container.get("name")
            if path.container in (ALL, name) and name in theirs:
                _take(container, theirs[name], path.field)
    if "containerDefinitions" in out:
        out["containerDefinitions"] = containers
    return out


def _take(into: dict[str, Any], source: Mapping[str, Any], field: str) -> None:
    if source.get(field) is None:
        into.pop(field, None)
    else:
        into[field] = copy.deepcopy(source[field])
