"""The manifests' JSON Schema, from the pydantic models (the ECS part points at the ECS API)."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from controller.manifests.models import ExecutionRoleDoc, ParameterDoc, TaskDefinitionDoc


def schema() -> dict[str, Any]:
    adapter = TypeAdapter(ParameterDoc | ExecutionRoleDoc | TaskDefinitionDoc)
    out = adapter.json_schema(mode="validation")
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "ecs-secrets manifest (apiVersion ecs-secrets/v1)"
    out["description"] = ("One document of a manifest. A TaskDefinition's spec also takes every field of the "
                          "ECS RegisterTaskDefinition API (camelCase), checked against botocore's service model.")
    return out
