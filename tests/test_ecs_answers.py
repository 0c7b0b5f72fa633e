"""What real ECS answers must compare equal to what the user wrote, and what it refuses must be refused first.

The first tests are pure; the last runs the CLI against the test AWS (controller/sandbox/faithful.py),
which answers as ECS does.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest

from controller.cli import main
from controller.core.desired import Context, desire
from controller.core.taskdef import normalize
from controller.core.taskdef_diff import comparable
from controller.manifests import loader as manifest
from controller.vocab.problems import ManifestError

REPO = Path(__file__).parent.parent
CTX = Context(account="123456789012", region="us-east-1")


def td(**fields: Any) -> dict[str, Any]:
    body = {"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx:1.27", "memory": 256}]}
    body.update(fields)
    return body


# --- 1. ECS's defaults compare equal to an absent field ---------------------------------------------

def test_enable_fault_injection_false_is_no_diff() -> None:
    # RegisterTaskDefinition API reference, enableFaultInjection: "The default value is false"; ECS returns
    # the field in every DescribeTaskDefinition answer since 2025 (public describe outputs).
    assert normalize(td(enableFaultInjection=False)) == normalize(td())
    assert normalize(td(enableFaultInjection=True)) != normalize(td())


# --- 2. a bare role name and the ARN ECS stores -----------------------------------------------------

@pytest.mark.parametrize("field", ["executionRoleArn", "taskRoleArn"])
def test_a_role_name_and_its_arn_compare_equal(field) -> None:
    # taskRoleArn: "The short name or full Amazon Resource Name (ARN) of the IAM role" (API reference);
    # ECS stores the ARN. A role name is unique in its account whatever its path.
    name = comparable(td(**{field: "app"}), CTX)
    assert name == comparable(td(**{field: "arn:aws:iam::123456789012:role/app"}), CTX)
    assert name == comparable(td(**{field: "arn:aws:iam::123456789012:role/team/app"}), CTX)
    assert name != comparable(td(**{field: "arn:aws:iam::210987654321:role/app"}), CTX)
    assert name != comparable(td(**{field: "arn:aws:iam::123456789012:role/other"}), CTX)
    china = Context(account="123456789012", region="cn-north-1", partition="aws-cn")
    assert comparable(td(**{field: "app"}), china) == comparable(
        td(**{field: "arn:aws-cn:iam::123456789012:role/app"}), china)


# --- 3. unit strings without a leading digit ----------------------------------------------------

@pytest.mark.parametrize("written, stored", [(".25 vCPU", "256"), (".5 vcpu", "512"), ("0.25  VCPU", "256"),
                                             ("2 vCPU", "2048")])
def test_vcpu_strings_normalise_to_cpu_units(written, stored) -> None:
    # RegisterTaskDefinition API reference, cpu: strings in vCPU are converted to CPU units at registration;
    # its task-size table writes "256 (.25 vCPU)"; ECS accepts any spacing and case (cfn-lint#3514).
    assert normalize(td(cpu=written)) == normalize(td(cpu=stored))


@pytest.mark.parametrize("written, stored", [(".5 GB", "512"), ("1GB", "1024"), ("0.5 gb", "512")])
def test_gb_strings_normalise_to_mib(written, stored) -> None:
    assert normalize(td(memory=written)) == normalize(td(memory=stored))


# --- 3 and 4: refused at validate, located -----------------------------------------------------

TASK = """\
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: web}
spec:
  family: web
  cpu: "CPU"
  containerDefinitions:
    - name: web
      image: IMAGE
      memory: 256
"""


def refused(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "m.yaml"
    f.write_text(text)
    with pytest.raises(ManifestError) as exc:
        desire(manifest.load(f))
    return [str(p) for p in exc.value.problems]


@pytest.mark.parametrize("image", ['""', "'  '"])
def test_an_empty_image_is_refused_at_validate(tmp_path, image) -> None:
    # ECS refuses it at RegisterTaskDefinition: "Container.image should not be null or empty." (convox/praxis#121)
    problems = refused(tmp_path, TASK.replace('"CPU"', "256").replace("IMAGE", image))
    assert any("m.yaml:9" in p and "TaskDefinition/web" in p and "spec.containerDefinitions[0].image" in p
               and "image is empty" in p for p in problems), problems


@pytest.mark.parametrize("cpu", ["0.3 vCPU", "a quarter", "1/4 vCPU"])
def test_a_cpu_ecs_cannot_read_is_refused_at_validate(tmp_path, cpu) -> None:
    problems = refused(tmp_path, TASK.replace("CPU", cpu).replace("IMAGE", "nginx"))
    assert any("TaskDefinition/web" in p and "spec.cpu" in p and ".25 vCPU" in p for p in problems), problems


def test_validate_command_refuses_an_empty_image(tmp_path, capsys) -> None:
    (tmp_path / "m.yaml").write_text(TASK.replace('"CPU"', "256").replace("IMAGE", '""'))
    assert main(["validate", "-f", str(tmp_path), "--region", "us-east-1"]) == 1
    out, err = capsys.readouterr()
    assert "spec.containerDefinitions[0].image" in out + err


# --- through the test AWS: converged means in sync -------------------------------------------------

def test_reconciled_is_in_sync_against_ecs_answers(aws_env, tmp_path, monkeypatch, capsys) -> None:
    """Bare role names, '.25 vCPU' and ECS's enableFaultInjection: reconcile, then the dry run says in sync
    and the daemon registers no second revision."""
    canary = f"canary-{secrets.token_hex(12)}"
    monkeypatch.setenv("DB_PASSWORD", canary)
    kms = boto3.client("kms", endpoint_url=aws_env, region_name="us-east-1")
    kms.create_alias(AliasName="alias/MyAliasName", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    boto3.client("secretsmanager", endpoint_url=aws_env, region_name="us-east-1").create_secret(
        Name="payments/stripe-token", SecretString="not-read")
    folder = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", folder)
    web = folder / "web.yaml"
    text = web.read_text().replace('cpu: "0.25 vCPU"', 'cpu: ".25 vCPU"')
    web.write_text(text.replace("  networkMode: awsvpc\n", "  networkMode: awsvpc\n  taskRoleArn: web-app\n"))
    assert ".25 vCPU" in web.read_text() and "taskRoleArn: web-app" in web.read_text()

    assert main(["reconcile", "-f", str(folder)]) == 0, capsys.readouterr()
    ecs = boto3.client("ecs", endpoint_url=aws_env, region_name="us-east-1")
    stored = ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]
    assert stored["enableFaultInjection"] is False and stored["cpu"] == "256"
    assert stored["taskRoleArn"] == "arn:aws:iam::123456789012:role/web-app"
    capsys.readouterr()

    code = main(["reconcile", "-f", str(folder), "--dry-run", "--detailed-exitcode"])
    out, err = capsys.readouterr()
    assert code == 0 and "No changes" in out, out + err
    assert main(["run", "-f", str(folder), "--once"]) == 0
    assert len(ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"]) == 1
    out, err = capsys.readouterr()
    assert canary not in out + err
