"""`ecs-secrets schema`: a JSON Schema that helps in an editor as much as `validate` does on the command line.

Its TaskDefinition part is generated from botocore's RegisterTaskDefinition model (the same model
`validate` checks against), so an ECS field completes, carries its documentation, and a typo shows.
"""

from __future__ import annotations

import copy
import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import jsonschema
import pytest
import yaml

from controller.cli import main

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "manifests").glob("*.yaml"))
CORPUS_SPECS = sorted((ROOT / "tests" / "corpus").glob("*.spec.yaml"))


@pytest.fixture(scope="module")
def schema() -> dict:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["schema"]) == 0
    return json.loads(out.getvalue())


def documents(paths: list[Path]) -> list[dict]:
    return [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]


def errors(schema: dict, doc: dict) -> list[jsonschema.ValidationError]:
    validator = jsonschema.Draft202012Validator(schema)
    return list(validator.iter_errors(doc))


def web(schema: dict) -> dict:
    (td,) = [d for d in documents(MANIFESTS) if d["kind"] == "TaskDefinition" and d["metadata"]["name"] == "web"]
    return copy.deepcopy(td)


def test_the_schema_is_valid_json_schema(schema: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("doc", documents(MANIFESTS) + documents(CORPUS_SPECS),
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_that_validate_accepts_is_valid_against_the_schema(schema: dict, doc: dict) -> None:
    assert not errors(schema, doc), [e.message for e in errors(schema, doc)]


def test_a_typo_in_a_container_field_fails_and_names_the_field(schema: dict) -> None:
    doc = web(schema)
    container = doc["spec"]["containerDefinitions"][0]
    container["imgae"] = container.pop("image")
    found = errors(schema, doc)
    assert found
    messages = " ".join(e.message for d in found for e in [d, *d.context])
    assert "imgae" in messages and "'image' is a required property" in messages


@pytest.mark.parametrize("field, value", [("networkMod", "awsvpc"), ("networkMode", "awsvpcc"),
                                          ("requiresCompatibilities", ["FARGAT"]), ("cpu", ["256"])])
def test_ecs_typos_and_bad_enums_fail(schema: dict, field: str, value: object) -> None:
    doc = web(schema)
    doc["spec"][field] = value
    assert errors(schema, doc)


def test_our_own_fields_stand_next_to_the_ecs_ones(schema: dict) -> None:
    spec = schema["$defs"]["TaskDefinitionSpec"]
    assert {"executionRole", "keepRevisions", "deletionPolicy", "family"} <= set(spec["properties"])
    assert {"containerDefinitions", "networkMode", "ephemeralStorage"} <= set(spec["properties"])
    assert spec["additionalProperties"] is False
    assert set(spec["required"]) == {"family", "containerDefinitions"}
    assert spec["properties"]["networkMode"]["enum"] == ["bridge", "host", "awsvpc", "none"]
    doc = web(schema)
    doc["spec"]["cpu"] = 256                    # YAML users write a number; the API takes a string
    assert not errors(schema, doc)


def test_every_field_has_a_title_and_a_description(schema: dict) -> None:
    missing = []
    for name, model in schema["$defs"].items():
        for field, prop in model.get("properties", {}).items():
            if not prop.get("title") or (not prop.get("description") and not name.startswith("ecs.")):
                missing.append(f"{name}.{field}")
    assert not missing
    kms = schema["$defs"]["ParameterSpec"]["properties"]["kmsKeyId"]
    assert kms["title"] == "kmsKeyId" and "alias" in kms["description"]


def test_ecs_descriptions_come_from_botocore_without_html(schema: dict) -> None:
    import botocore.session
    shape = botocore.session.get_session().get_service_model("ecs").shape_for("Secret")
    value_from = schema["$defs"]["ecs.Secret"]["properties"]["valueFrom"]["description"]
    assert "<" not in value_from and "The secret to expose to the container" in value_from
    assert "<p>" in shape.members["valueFrom"].documentation   # what we stripped
    image = schema["$defs"]["ecs.ContainerDefinition"]["properties"]["image"]
    assert image["type"] == "string" and image["description"]
    described = sum(1 for m in schema["$defs"].values() if m.get("title") and m.get("description"))
    assert described > 20
