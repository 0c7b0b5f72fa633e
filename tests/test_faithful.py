"""The test AWS answers as real ECS does where it matters to us; each test names its source.

conftest.py installs the layer for every test; these pin what it models (controller/sandbox/faithful.py).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from awsserver import TEST_ENV, UNSET_ENV
from controller.sandbox import faithful


@pytest.fixture
def ecs(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in UNSET_ENV + ("AWS_ENDPOINT_URL",):
        monkeypatch.delenv(name, raising=False)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")  # not needed here, and slow per partition
    with mock_aws():
        yield boto3.client("ecs", region_name="us-east-1")


def register(ecs: Any, **fields: Any) -> dict[str, Any]:
    body = {"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx:1.27", "memory": 256}]}
    body.update(fields)
    arn = ecs.register_task_definition(**body)["taskDefinition"]["taskDefinitionArn"]
    return ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]


def refused(ecs: Any, **fields: Any) -> str:
    with pytest.raises(ClientError) as exc:
        register(ecs, **fields)
    assert exc.value.response["Error"]["Code"] == "ClientException"
    return exc.value.response["Error"]["Message"]


def test_install_is_idempotent(ecs) -> None:
    faithful.install()
    faithful.install()
    assert register(ecs)["enableFaultInjection"] is False


def test_enable_fault_injection_false_in_every_answer(ecs) -> None:
    # Real DescribeTaskDefinition output carries "enableFaultInjection": false for definitions that never
    # set it (public describe-task-definition outputs; aws-actions/amazon-ecs-deploy-task-definition#704).
    assert register(ecs)["enableFaultInjection"] is False
    assert register(ecs, networkMode="awsvpc", enableFaultInjection=True)["enableFaultInjection"] is True


def test_the_threaded_server_answers_the_same(aws_env) -> None:
    ecs = boto3.client("ecs", endpoint_url=aws_env, region_name="us-east-1")
    described = register(ecs, executionRoleArn="exec-role")
    assert described["enableFaultInjection"] is False
    assert described["executionRoleArn"] == "arn:aws:iam::123456789012:role/exec-role"


@pytest.mark.parametrize("region, partition", [("us-east-1", "aws"), ("cn-north-1", "aws-cn"),
                                               ("us-gov-west-1", "aws-us-gov")])
def test_a_bare_role_name_is_stored_as_the_role_arn(ecs, region, partition) -> None:
    # RegisterTaskDefinition API reference, taskRoleArn: "The short name or full Amazon Resource Name (ARN)".
    ecs = boto3.client("ecs", region_name=region)
    described = register(ecs, executionRoleArn="exec-role", taskRoleArn="app")
    assert described["executionRoleArn"] == f"arn:{partition}:iam::123456789012:role/exec-role"
    assert described["taskRoleArn"] == f"arn:{partition}:iam::123456789012:role/app"
    given = "arn:aws:iam::123456789012:role/team/app"
    assert register(ecs, taskRoleArn=given)["taskRoleArn"] == given


def test_container_and_task_defaults_as_ecs_fills_them(ecs) -> None:
    # ContainerDefinition/PortMapping API reference and the AWS CLI describe-task-definition examples:
    # cpu 0, essential true, empty lists, protocol tcp; under awsvpc hostPort is containerPort.
    described = register(ecs, networkMode="awsvpc", cpu="256", memory="512", containerDefinitions=[
        {"name": "web", "image": "nginx:1.27", "portMappings": [{"containerPort": 80}]}])
    c = described["containerDefinitions"][0]
    assert c["cpu"] == 0 and c["essential"] is True
    for field in ("environment", "mountPoints", "volumesFrom", "systemControls"):
        assert c[field] == []
    assert c["portMappings"] == [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}]
    assert described["volumes"] == [] and described["placementConstraints"] == []
    # awsvpc with task-level cpu and memory can run on Fargate (TaskDefinition API reference, compatibilities)
    assert described["compatibilities"] == ["EC2", "FARGATE"]
    assert "registeredAt" in described and described["registeredBy"].startswith("arn:aws:iam::123456789012:")


def test_bridge_mode_keeps_a_dynamic_host_port_and_ec2_only(ecs) -> None:
    described = register(ecs, containerDefinitions=[
        {"name": "web", "image": "nginx:1.27", "memory": 256, "portMappings": [{"containerPort": 80}]}])
    assert described["containerDefinitions"][0]["portMappings"] == [{"containerPort": 80, "protocol": "tcp"}]
    assert described["compatibilities"] == ["EC2"]


def test_requires_attributes_follow_the_definition(ecs) -> None:
    # ECS Developer Guide, container instance attributes; a public real describe output lists these names.
    described = register(ecs, networkMode="awsvpc", executionRoleArn="exec", taskRoleArn="app",
                         containerDefinitions=[{
                             "name": "web", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1",
                             "memory": 256, "secrets": [{"name": "A", "valueFrom": "/app/a"}],
                             "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g"}}}])
    names = {a["name"] for a in described["requiresAttributes"]}
    assert {"com.amazonaws.ecs.capability.ecr-auth", "ecs.capability.execution-role-ecr-pull",
            "ecs.capability.secrets.ssm.environment-variables", "ecs.capability.execution-role-awslogs",
            "com.amazonaws.ecs.capability.logging-driver.awslogs", "com.amazonaws.ecs.capability.task-iam-role",
            "ecs.capability.task-eni"} <= names
    assert any(n.startswith("com.amazonaws.ecs.capability.docker-remote-api.1.") for n in names)


@pytest.mark.parametrize("cpu, memory, stored", [(".25 vCPU", "0.5 GB", ("256", "512")),
                                                  ("1 vcpu", "2GB", ("1024", "2048")),
                                                  ("512", "1024", ("512", "1024"))])
def test_unit_strings_are_stored_as_integers(ecs, cpu, memory, stored) -> None:
    # RegisterTaskDefinition API reference, cpu: "String values are converted to an integer indicating the
    # CPU units when the task definition is registered"; ".25 vCPU": the same page's table, cfn-lint#3514.
    described = register(ecs, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu=cpu, memory=memory)
    assert (described["cpu"], described["memory"]) == stored


def test_a_cpu_ecs_cannot_read_is_refused(ecs) -> None:
    # ECS Developer Guide, "Troubleshoot Amazon ECS task definition invalid CPU or memory errors"
    assert refused(ecs, cpu="a quarter") == "Invalid 'cpu' setting for task."


@pytest.mark.parametrize("fields, message", [
    # convox/praxis#121 quotes ECS: "ClientException: Container.image should not be null or empty."
    ({"containerDefinitions": [{"name": "web", "image": "", "memory": 256}]},
     "Container.image should not be null or empty."),
    # aws/amazon-ecs-cli#37 and #542: "ClientException: Family contains invalid characters."
    ({"family": "web.app"}, "Family contains invalid characters."),
    ({"family": "x" * 256}, "Family contains invalid characters."),
    # hashicorp/terraform-provider-aws#5950, ansible/ansible#22860: "Container.name contains invalid characters."
    ({"containerDefinitions": [{"name": "web app", "image": "nginx", "memory": 256}]},
     "Container.name contains invalid characters."),
])
def test_what_ecs_refuses_at_registration(ecs, fields, message) -> None:
    assert refused(ecs, **fields) == message
    assert ecs.list_task_definitions()["taskDefinitionArns"] == []


def test_a_family_names_its_latest_active_revision(ecs) -> None:
    # DescribeTaskDefinition API reference (and botocore's ECS model), taskDefinition: "The family for the
    # latest ACTIVE revision"; CreateService/UpdateService: "If a revision isn't specified, the latest
    # ACTIVE revision is used". moto answered with the newest revision even when it was INACTIVE.
    for image in ("nginx:1", "nginx:2", "nginx:3"):
        register(ecs, containerDefinitions=[{"name": "web", "image": image, "memory": 256}])
    ecs.deregister_task_definition(taskDefinition="web:3")
    latest = ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]
    assert (latest["revision"], latest["status"], latest["containerDefinitions"][0]["image"]) == (2, "ACTIVE", "nginx:2")
    assert ecs.describe_task_definition(taskDefinition="web:3")["taskDefinition"]["status"] == "INACTIVE"
    ecs.create_cluster(clusterName="c")
    service = ecs.create_service(cluster="c", serviceName="svc", taskDefinition="web", desiredCount=1)["service"]
    assert service["taskDefinition"].endswith("task-definition/web:2")
    # A family with no ACTIVE revision left has nothing to describe: the answer for an unknown family.
    for revision in (1, 2):
        ecs.deregister_task_definition(taskDefinition=f"web:{revision}")
    with pytest.raises(ClientError) as exc:
        ecs.describe_task_definition(taskDefinition="web")
    assert exc.value.response["Error"]["Message"] == "Unable to describe task definition."


def states(ecs: Any) -> list[tuple[str, str, int]]:
    service = ecs.describe_services(cluster="c", services=["svc"])["services"][0]
    return [(d["status"], d["rolloutState"], d["runningCount"]) for d in service["deployments"]]


def test_a_deployment_completes(ecs) -> None:
    # Deployment API reference, rolloutState: starts IN_PROGRESS, COMPLETED at steady state.
    register(ecs)
    ecs.create_cluster(clusterName="c")
    ecs.create_service(cluster="c", serviceName="svc", taskDefinition="web", desiredCount=2)
    assert states(ecs) == [("PRIMARY", "IN_PROGRESS", 0)]
    assert states(ecs) == [("PRIMARY", "COMPLETED", 2)]
    register(ecs, containerDefinitions=[{"name": "web", "image": "nginx:1.28", "memory": 256}])
    ecs.update_service(cluster="c", service="svc", taskDefinition="web:2")
    assert states(ecs) == [("PRIMARY", "IN_PROGRESS", 0), ("ACTIVE", "COMPLETED", 2)]
    assert states(ecs) == [("PRIMARY", "COMPLETED", 2)]
    deployment = ecs.describe_services(cluster="c", services=["svc"])["services"][0]["deployments"][0]
    assert deployment["taskDefinition"] == "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2"


def test_a_task_that_cannot_start_fails_its_deployment(ecs) -> None:
    # Deployment API reference: "If the service fails to reach a steady state and circuit breaker is turned
    # on, the deployment transitions to a FAILED state." The marker in the image is our stand-in.
    faithful.configure(settle_after_describes=1)
    register(ecs)
    ecs.create_cluster(clusterName="c")
    ecs.create_service(cluster="c", serviceName="svc", taskDefinition="web", desiredCount=1)
    assert states(ecs) == [("PRIMARY", "COMPLETED", 1)]
    register(ecs, containerDefinitions=[{"name": "web", "image": f"app-{faithful.FAIL_IMAGE_MARKER}:1", "memory": 9}])
    ecs.update_service(cluster="c", service="svc", taskDefinition="web:2")
    assert states(ecs) == [("PRIMARY", "FAILED", 0), ("ACTIVE", "COMPLETED", 1)]
    service = ecs.describe_services(cluster="c", services=["svc"])["services"][0]
    assert service["deployments"][0]["failedTasks"] == 1 and service["runningCount"] == 1


def test_deployments_settle_after_a_simulated_time(ecs) -> None:
    faithful.configure(settle_after_describes=100, settle_after_seconds=0)
    register(ecs)
    ecs.create_cluster(clusterName="c")
    ecs.create_service(cluster="c", serviceName="svc", taskDefinition="web", desiredCount=1)
    assert states(ecs) == [("PRIMARY", "COMPLETED", 1)]


def test_secret_versions_keep_the_date_they_were_made(monkeypatch) -> None:
    """SecretVersionsListEntry API reference, CreatedDate: "The date and time this version of the secret was
    created" — not the time of the ListSecretVersionIds call, which moto answered; to the fraction of a second,
    as the API's timestamps are (rollouts compare it with a deployment's createdAt)."""
    import time
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        sm.create_secret(Name="app/token", SecretString="first-value")
        sm.put_secret_value(SecretId="app/token", SecretString="second-value")
        first = {tuple(v["VersionStages"]): v["CreatedDate"] for v in sm.list_secret_version_ids(SecretId="app/token")["Versions"]}
        time.sleep(0.05)
        again = {tuple(v["VersionStages"]): v["CreatedDate"] for v in sm.list_secret_version_ids(SecretId="app/token")["Versions"]}
    assert first == again and first[("AWSPREVIOUS",)] < first[("AWSCURRENT",)]
    assert any(d.microsecond for d in first.values())


def test_every_aws_managed_policy_exists_though_built_only_when_looked_at(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every AWS managed policy moto publishes is there in each account, attachable and listed (IAM API
    reference, ListPolicies Scope=AWS), though built only on the first look at an account's policies."""
    from moto.iam import models as iam_models
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    import json
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    published = len(json.loads(aws_managed_policies_data))
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        iam.list_roles()
        backends = iam_models.iam_backends["123456789012"]
        assert all(b.__dict__["_faithful_aws"] is faithful._UNBUILT for b in backends.values())   # none built yet
        iam.create_role(RoleName="exec", AssumeRolePolicyDocument="{}")
        arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
        iam.attach_role_policy(RoleName="exec", PolicyArn=arn)
        assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName="exec")["AttachedPolicies"]] == [arn]
        listed = [p for page in iam.get_paginator("list_policies").paginate(Scope="AWS") for p in page["Policies"]]
        assert len(listed) == published
        assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")
    with mock_aws():   # as moto without the variable: no AWS managed policy at all
        iam = boto3.client("iam", region_name="us-east-1")
        assert iam.list_policies(Scope="AWS")["Policies"] == []
