"""Task-definition normalisation: equal when ECS would make them equal, different otherwise."""

from __future__ import annotations

import ast
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import yaml
from moto import mock_aws

from controller.vocab.secretrefs import secret_uses
from controller.core.taskdef import RESPONSE_ONLY, normalize

FIXTURES = Path(__file__).parent / "fixtures"
CONTROLLER = Path(__file__).parent.parent / "controller"


def _spec() -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / "taskdef_spec.yaml").read_text())["spec"]


def _described() -> dict[str, Any]:
    return json.loads((FIXTURES / "taskdef_described.json").read_text())["taskDefinition"]


def _td(**overrides: Any) -> dict[str, Any]:
    """A small EC2 task definition; keyword arguments replace top-level fields."""
    td: dict[str, Any] = {
        "family": "web",
        "requiresCompatibilities": ["EC2"],
        "containerDefinitions": [{"name": "web", "image": "nginx:1.27", "memory": 256}],
    }
    td.update(overrides)
    return td


def _container(**fields: Any) -> dict[str, Any]:
    return {"name": "web", "image": "nginx:1.27", "memory": 256, **fields}


# --- the fixture pair and moto ---------------------------------------------------------------


def test_spec_and_described_fixture_normalise_equal() -> None:
    assert normalize(_spec()) == normalize(_described())


def test_normalize_is_idempotent() -> None:
    once = normalize(_described())
    assert normalize(once) == once


def test_normalize_does_not_mutate_its_input() -> None:
    spec, described = _spec(), _described()
    spec_copy, described_copy = copy.deepcopy(spec), copy.deepcopy(described)
    normalize(spec)
    normalize(described)
    assert spec == spec_copy and described == described_copy


def test_normalize_returns_no_shared_containers() -> None:
    spec = _spec()
    out = normalize(spec)
    out["containerDefinitions"][0]["secrets"].append({"name": "X", "valueFrom": "/x"})
    out["containerDefinitions"][0]["logConfiguration"]["options"]["x"] = "y"
    assert spec == _spec()


@pytest.fixture
def ecs_client(monkeypatch: pytest.MonkeyPatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield boto3.client("ecs", region_name="eu-west-1")


def _register_and_describe(ecs, spec: dict[str, Any]) -> dict[str, Any]:
    arn = ecs.register_task_definition(**spec)["taskDefinition"]["taskDefinitionArn"]
    return ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]


def test_moto_round_trip_normalises_equal(ecs_client) -> None:
    spec = _spec()
    described = _register_and_describe(ecs_client, spec)
    assert "revision" in described and "registeredAt" not in normalize(described)
    assert normalize(spec) == normalize(described)


def test_moto_round_trip_bridge_mode_without_network_mode(ecs_client) -> None:
    spec = _td(
        containerDefinitions=[
            _container(portMappings=[{"containerPort": 80}], environment=[]),
            _container(name="sidecar", image="busybox:1.36", essential=False),
        ]
    )
    described = _register_and_describe(ecs_client, spec)
    assert normalize(spec) == normalize(described)


def test_moto_round_trip_still_sees_a_real_change(ecs_client) -> None:
    spec = _spec()
    described = _register_and_describe(ecs_client, spec)
    spec["containerDefinitions"][0]["image"] = "nginx:1.28"
    assert normalize(spec) != normalize(described)


# --- one rule at a time ------------------------------------------------------------------------

EQUAL_PAIRS = [
    pytest.param(
        _td(),
        _td(taskDefinitionArn="arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7",
            revision=7, status="ACTIVE", compatibilities=["EC2"],
            requiresAttributes=[{"name": "ecs.capability.secrets.ssm.environment-variables"}],
            registeredAt="2025-01-01T00:00:00Z", registeredBy="arn:aws:sts::1:assumed-role/r/s",
            deregisteredAt="2025-02-01T00:00:00Z", deleteRequestedAt="2025-03-01T00:00:00Z"),
        id="response-only fields",
    ),
    pytest.param(_td(), _td(tags=[{"key": "team", "value": "payments"}]), id="tags"),
    pytest.param(
        _td(),
        _td(volumes=[], placementConstraints=[], taskRoleArn=None, proxyConfiguration={}),
        id="empty task fields",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(logConfiguration={"logDriver": "awslogs"})]),
        _td(containerDefinitions=[_container(portMappings=[], environment=[], mountPoints=[],
                                             volumesFrom=[], secrets=[], systemControls=[],
                                             linuxParameters={"capabilities": {}},
                                             logConfiguration={"logDriver": "awslogs",
                                                               "secretOptions": []})]),
        id="empty container fields, nested",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(logConfiguration={"logDriver": "awslogs"})]),
        _td(containerDefinitions=[_container(logConfiguration={"logDriver": "awslogs"})]),
        id="nested non-empty kept",
    ),
    pytest.param(
        _td(containerDefinitions=[_container()]),
        _td(containerDefinitions=[_container(essential=True, cpu=0)]),
        id="essential and cpu defaults",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(portMappings=[{"containerPort": 80}])]),
        _td(containerDefinitions=[_container(portMappings=[{"containerPort": 80,
                                                            "protocol": "tcp"}])]),
        id="protocol tcp",
    ),
    pytest.param(
        _td(networkMode="awsvpc",
            containerDefinitions=[_container(portMappings=[{"containerPort": 8080}])]),
        _td(networkMode="awsvpc",
            containerDefinitions=[_container(portMappings=[{"containerPort": 8080,
                                                            "hostPort": 8080}])]),
        id="awsvpc hostPort",
    ),
    pytest.param(
        _td(networkMode="host",
            containerDefinitions=[_container(portMappings=[{"containerPort": 8080}])]),
        _td(networkMode="host",
            containerDefinitions=[_container(portMappings=[{"containerPort": 8080,
                                                            "hostPort": 8080}])]),
        id="host hostPort",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(portMappings=[{"containerPort": 80}])]),
        _td(containerDefinitions=[_container(portMappings=[{"containerPort": 80,
                                                            "hostPort": 0}])]),
        id="bridge hostPort 0 is dynamic",
    ),
    pytest.param(_td(), _td(networkMode="bridge"), id="networkMode bridge default (EC2)"),
    pytest.param(
        {k: v for k, v in _td().items() if k != "requiresCompatibilities"},
        _td(networkMode="bridge", requiresCompatibilities=None),
        id="networkMode bridge default (no compatibilities)",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(environment=[{"name": "B", "value": "2"},
                                                          {"name": "A", "value": "1"}])]),
        _td(containerDefinitions=[_container(environment=[{"name": "A", "value": "1"},
                                                          {"name": "B", "value": "2"}])]),
        id="environment sorted",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(secrets=[{"name": "B", "valueFrom": "/b"},
                                                      {"name": "A", "valueFrom": "/a"}])]),
        _td(containerDefinitions=[_container(secrets=[{"name": "A", "valueFrom": "/a"},
                                                      {"name": "B", "valueFrom": "/b"}])]),
        id="secrets sorted",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(ulimits=[
            {"name": "nofile", "softLimit": 1024, "hardLimit": 4096},
            {"name": "core", "softLimit": 0, "hardLimit": 0}])]),
        _td(containerDefinitions=[_container(ulimits=[
            {"name": "core", "softLimit": 0, "hardLimit": 0},
            {"name": "nofile", "softLimit": 1024, "hardLimit": 4096}])]),
        id="ulimits sorted",
    ),
    pytest.param(
        _td(requiresCompatibilities=["FARGATE", "EC2"], networkMode="awsvpc"),
        _td(requiresCompatibilities=["EC2", "FARGATE"], networkMode="awsvpc"),
        id="requiresCompatibilities sorted",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(name="b"), _container(name="a")]),
        _td(containerDefinitions=[_container(name="a"), _container(name="b")]),
        id="containers sorted by name",
    ),
    pytest.param(_td(cpu="0.25 vCPU"), _td(cpu="256"), id="cpu 0.25 vCPU"),
    pytest.param(_td(cpu="1 vcpu"), _td(cpu="1024"), id="cpu 1 vcpu"),
    pytest.param(_td(cpu="2vCPU"), _td(cpu="2048"), id="cpu 2vCPU"),
    pytest.param(_td(cpu=256), _td(cpu="256"), id="cpu int"),
    pytest.param(_td(memory="0.5 GB"), _td(memory="512"), id="memory 0.5 GB"),
    pytest.param(_td(memory="1GB"), _td(memory="1024"), id="memory 1GB"),
    pytest.param(_td(memory="2 gb"), _td(memory="2048"), id="memory 2 gb"),
    pytest.param(_td(memory=3072), _td(memory=" 3072 "), id="memory int and padded string"),
    pytest.param(
        _td(containerDefinitions=[_container(memory="512", memoryReservation="256", cpu="128")]),
        _td(containerDefinitions=[_container(memory=512, memoryReservation=256, cpu=128)]),
        id="container sizes as ints",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(healthCheck={"command": ["CMD", "true"]})]),
        _td(containerDefinitions=[_container(healthCheck={"command": ["CMD", "true"],
                                                          "interval": 30, "timeout": 5,
                                                          "retries": 3})]),
        id="healthCheck defaults",
    ),
]


@pytest.mark.parametrize(("desired", "actual"), EQUAL_PAIRS)
def test_normalises_equal(desired: dict[str, Any], actual: dict[str, Any]) -> None:
    assert normalize(desired) == normalize(actual)


HOST_A = {"hostname": "a", "ipAddress": "10.0.0.1"}
HOST_B = {"hostname": "b", "ipAddress": "10.0.0.2"}
DIFFERENT_PAIRS = [
    pytest.param(
        _td(containerDefinitions=[_container(image="nginx:1.27")]),
        _td(containerDefinitions=[_container(image="nginx:1.28")]),
        id="image tag",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(secrets=[{"name": "A", "valueFrom": "/a"}])]),
        _td(containerDefinitions=[_container(secrets=[{"name": "A", "valueFrom": "/b"}])]),
        id="secret valueFrom",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(secrets=[{"name": "A", "valueFrom": "/a"}])]),
        _td(containerDefinitions=[_container(secrets=[
            {"name": "A", "valueFrom": "arn:aws:ssm:eu-west-1:123456789012:parameter/a"}])]),
        id="valueFrom name vs ARN left to the caller",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(secrets=[{"name": "A", "valueFrom": "/a"}])]),
        _td(containerDefinitions=[_container(secrets=[{"name": "B", "valueFrom": "/a"}])]),
        id="secret variable renamed",
    ),
    pytest.param(_td(memory="512"), _td(memory="1024"), id="task memory 512 to 1024"),
    pytest.param(_td(memory="0.5 GB"), _td(memory="1 GB"), id="task memory in GB"),
    pytest.param(_td(cpu="0.25 vCPU"), _td(cpu="0.5 vCPU"), id="task cpu"),
    pytest.param(
        _td(containerDefinitions=[_container(memory=512)]),
        _td(containerDefinitions=[_container(memory=1024)]),
        id="container memory 512 to 1024",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(essential=False)]),
        _td(containerDefinitions=[_container()]),
        id="essential false",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(portMappings=[{"containerPort": 53,
                                                            "protocol": "udp"}])]),
        _td(containerDefinitions=[_container(portMappings=[{"containerPort": 53}])]),
        id="protocol udp",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(portMappings=[{"containerPort": 80,
                                                            "hostPort": 8080}])]),
        _td(containerDefinitions=[_container(portMappings=[{"containerPort": 80}])]),
        id="bridge fixed hostPort",
    ),
    pytest.param(_td(), _td(networkMode="host"), id="networkMode host vs default bridge"),
    pytest.param(
        _td(containerDefinitions=[_container(extraHosts=[HOST_A, HOST_B])]),
        _td(containerDefinitions=[_container(extraHosts=[HOST_B, HOST_A])]),
        id="extraHosts keep their order",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(command=["a", "b"])]),
        _td(containerDefinitions=[_container(command=["b", "a"])]),
        id="command order matters",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(environment=[{"name": "A", "value": "1"}])]),
        _td(containerDefinitions=[_container(environment=[{"name": "A", "value": "2"}])]),
        id="environment value",
    ),
    pytest.param(
        _td(containerDefinitions=[_container(healthCheck={"command": ["CMD", "true"],
                                                          "interval": 10})]),
        _td(containerDefinitions=[_container(healthCheck={"command": ["CMD", "true"]})]),
        id="healthCheck interval",
    ),
]


@pytest.mark.parametrize(("desired", "actual"), DIFFERENT_PAIRS)
def test_real_changes_still_differ(desired: dict[str, Any], actual: dict[str, Any]) -> None:
    assert normalize(desired) != normalize(actual)


def test_fixture_pair_differs_after_a_real_change() -> None:
    spec = _spec()
    spec["containerDefinitions"][0]["secrets"][0]["valueFrom"] = "/test/other_password"
    assert normalize(spec) != normalize(_described())


def test_fargate_only_network_mode_is_not_invented() -> None:
    td = _td(requiresCompatibilities=["FARGATE"])
    assert "networkMode" not in normalize(td)
    assert normalize(_td())["networkMode"] == "bridge"


@pytest.mark.parametrize("value", ["0.3 vCPU", "lots", "1.5 TB"])
def test_unconvertible_units_are_left_for_ecs_to_refuse(value: str) -> None:
    assert normalize(_td(cpu=value))["cpu"] == value


def test_normal_form_keeps_false_zero_and_camel_case() -> None:
    container = _container(essential=False, readonlyRootFilesystem=False, cpu=0)
    out = normalize(_td(containerDefinitions=[container]))
    container = out["containerDefinitions"][0]
    assert container["essential"] is False
    assert container["readonlyRootFilesystem"] is False
    assert container["cpu"] == 0


def test_response_only_covers_the_ecs_model() -> None:
    """Every field DescribeTaskDefinition adds to what RegisterTaskDefinition takes is dropped."""
    model = botocore.session.get_session().get_service_model("ecs")
    described = set(model.shape_for("TaskDefinition").members)
    registered = set(model.operation_model("RegisterTaskDefinition").input_shape.members)
    assert described - registered <= RESPONSE_ONLY
    assert not RESPONSE_ONLY & registered


# --- secret_refs -------------------------------------------------------------------------------


def secret_refs(td: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Container secrets only (log secretOptions are covered by secret_uses too)."""
    return [(u.container, u.variable, u.value_from) for u in secret_uses(td) if u.path[2] == "secrets"]


def test_secret_refs_in_container_order() -> None:
    assert secret_refs(_spec()) == [
        ("web", "DATABASE_PASSWORD", "/test/database_password"),
        ("web", "API_KEY", "arn:aws:ssm:eu-west-1:123456789012:parameter/test/api_key"),
        ("worker", "DB_CREDENTIALS", "/aws/reference/secretsmanager/prod/db-creds"),
    ]


def test_secret_refs_of_a_described_definition() -> None:
    refs = secret_refs(_described())
    assert [name for _, name, _ in refs] == ["API_KEY", "DATABASE_PASSWORD", "DB_CREDENTIALS"]


@pytest.mark.parametrize(
    "td",
    [
        {},
        {"containerDefinitions": []},
        {"containerDefinitions": [{"name": "web", "secrets": []}]},
        {"containerDefinitions": [{"name": "web", "secrets": None}]},
    ],
)
def test_secret_refs_empty(td: dict[str, Any]) -> None:
    assert secret_refs(td) == []


# --- purity ------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["manifests/rules", "core/taskdef"])
def test_module_imports_no_aws_sdk(module: str) -> None:
    tree = ast.parse((CONTROLLER / f"{module}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"boto3", "botocore", "moto", "os", "time", "datetime"}
    code = (
        f"import sys, controller.{module.replace('/', '.')}; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=CONTROLLER.parent,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
