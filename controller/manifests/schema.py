"""The manifests' JSON Schema: our kinds from the pydantic models, the ECS part from botocore's model.

A TaskDefinition's spec is the RegisterTaskDefinition input (``ecsschema``, generated from the same
model the command validates against) with our own fields (``TaskDefinitionSpec``) on top, so an editor
completes ECS fields and flags a typo as ``validate`` would. Every property has a title and a description.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from controller.manifests import ecsschema
from controller.manifests.models import ExecutionRoleDoc, ParameterDoc, TargetDoc, TaskDefinitionDoc


def schema() -> dict[str, Any]:
    adapter = TypeAdapter(ParameterDoc | ExecutionRoleDoc | TaskDefinitionDoc | TargetDoc)
    out = adapter.json_schema(mode="validation")
    defs = out["$defs"]
    for model in defs.values():
        _titles(model)
    ecs, ecs_defs = ecsschema.task_definition_schema()
    ours = defs["TaskDefinitionSpec"]
    defs["TaskDefinitionSpec"] = {
        **ecs, "title": "TaskDefinitionSpec",
        "description": ours["description"] + " " + ecs.get("description", ""),
        "properties": {**ecs["properties"], **ours["properties"]},
        "required": sorted(set(ecs.get("required", [])) | set(ours.get("required", []))),
        "additionalProperties": False,   # botocore's validator refuses an unknown ECS field, and so do we
    }
    defs.update(ecs_defs)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "ecs-secrets manifest (apiVersion ecs-secrets/v1)"
    out["description"] = ("One document of a manifest. A TaskDefinition's spec also takes every field of the "
                          "ECS RegisterTaskDefinition API (camelCase), checked against botocore's service model.")
    return out


def _titles(model: dict[str, Any]) -> None:
    """pydantic titles ``kmsKeyId`` "Kmskeyid"; an editor should show the field as it is written."""
    for name, prop in model.get("properties", {}).items():
        prop["title"] = name
