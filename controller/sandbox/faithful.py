"""A faithful AWS: moto, patched in-process to answer as the real services do where it matters to us.

moto is not AWS. Where the difference changes what ecs-secrets decides, this module makes moto's ECS
backend answer as ECS does. Every behaviour names its source; ``tests/test_faithful.py`` pins each one
with the same source. ``install()`` patches moto's classes, so it holds for ``moto.mock_aws`` and for
``moto.server.ThreadedMotoServer`` alike (both serve from the same classes in this process), and it
survives moto's reset (``POST /moto-api/reset``), which replaces backends, not classes.

RegisterTaskDefinition / DescribeTaskDefinition
- ``enableFaultInjection: false`` in every answer unless the caller set it. Real DescribeTaskDefinition
  output since 2025 carries it for task definitions that never set it (public ``describe-task-definition``
  outputs, e.g. the ones quoted in aws-actions/amazon-ecs-deploy-task-definition#704, which broke when the
  field came back from describe and was fed to register). moto drops the field.
- A bare role name as ``executionRoleArn``/``taskRoleArn`` is stored as ``arn:PARTITION:iam::ACCOUNT:role/NAME``
  (RegisterTaskDefinition API reference, taskRoleArn: "The short name or full Amazon Resource Name (ARN)
  of the IAM role"; DescribeTaskDefinition returns the ARN). moto stores the name as given.
- Container defaults in the answer: ``cpu: 0``, ``essential: true``, empty ``environment``/``mountPoints``/
  ``volumesFrom``/``portMappings`` (moto already does these), and ``systemControls: []``; a port mapping
  gets ``protocol: tcp`` and, under awsvpc, ``hostPort`` = ``containerPort`` (PortMapping API reference:
  "If you use containers in a task with the awsvpc ... network mode, the hostPort can either be left blank
  or set to the same value as the containerPort"; the AWS CLI's describe-task-definition example output
  shows ``"protocol": "tcp"``). Task-level ``volumes``/``placementConstraints`` ``[]`` (moto does these).
- ``requiresAttributes`` derived from the definition (ECS Developer Guide, "Amazon ECS container instance
  attributes" and the pages of each feature: secrets from SSM need ecs.capability.secrets.ssm.environment-
  variables, from Secrets Manager ecs.capability.secrets.asm.environment-variables, awslogs with an execution
  role ecs.capability.execution-role-awslogs, an ECR image com.amazonaws.ecs.capability.ecr-auth and with an
  execution role ecs.capability.execution-role-ecr-pull, a task role com.amazonaws.ecs.capability.task-iam-role,
  awsvpc ecs.capability.task-eni); the docker-remote-api versions follow public real outputs.
- ``compatibilities``: EC2, plus FARGATE when the definition can run on Fargate (awsvpc with task-level
  cpu and memory, or FARGATE required) (TaskDefinition API reference, compatibilities).
- ``registeredAt``/``registeredBy`` (TaskDefinition API reference). registeredBy is the account root ARN:
  moto does not tell the backend who called.
- ``cpu``/``memory`` unit strings converted as ECS converts them ("1 vCPU", ".25 vcpu" -> "1024", "256";
  "1 GB" -> "1024"): RegisterTaskDefinition API reference, cpu: "String values are converted to an integer
  indicating the CPU units when the task definition is registered"; the leading-dot form is in the same
  page's table ("256 (.25 vCPU)") and was confirmed against ECS by cfn-lint's maintainers
  (aws-cloudformation/cfn-lint#3514). Anything else: ClientException "Invalid 'cpu' setting for task."
  (ECS Developer Guide, "Troubleshoot Amazon ECS task definition invalid CPU or memory errors").
- A family without a revision (``web``, not ``web:3`` or an ARN) names its latest ACTIVE revision, and a
  family with none is "Unable to describe task definition." (DescribeTaskDefinition API reference,
  taskDefinition: "The family for the latest ACTIVE revision"; botocore's ECS model documents the same;
  CreateService/UpdateService/RunTask: "If a revision isn't specified, the latest ACTIVE revision is
  used"). moto answers with the newest revision, INACTIVE or not.

What ECS refuses at registration (ClientException, ECS's own words as public reports quote them)
- an empty or missing ``image``: "Container.image should not be null or empty." (convox/praxis#121);
- a family outside 1-255 letters, digits, ``-``, ``_``: "Family contains invalid characters."
  (aws/amazon-ecs-cli#37, #542), an empty one "Family can not be blank." (aws-actions/amazon-ecs-deploy-
  task-definition#630); the rule itself: RegisterTaskDefinition API reference, family;
- a container name outside the same rule: "Container.name contains invalid characters."
  (hashicorp/terraform-provider-aws#5950, ansible/ansible#22860).

ECS services: deployments that finish (moto leaves them IN_PROGRESS unless MOTO_ECS_SERVICE_RUNNING is set)
- CreateService starts a PRIMARY deployment ``IN_PROGRESS``; UpdateService with another task definition
  or ``forceNewDeployment`` starts a new PRIMARY one and the old becomes ACTIVE (Deployment API reference:
  status PRIMARY/ACTIVE/INACTIVE; rolloutState "When a service deployment is started, it begins in an
  IN_PROGRESS state. When the service reaches a steady state, the deployment transitions to a COMPLETED
  state. If the service fails to reach a steady state and circuit breaker is turned on, the deployment
  transitions to a FAILED state.").
- A deployment settles on the ``settle_after_describes``-th DescribeServices that shows it (default 2: the
  first look sees IN_PROGRESS), or once ``settle_after_seconds`` have passed, whichever comes first. It
  settles COMPLETED (runningCount = desiredCount, the ACTIVE deployments drained away), or FAILED when a
  container image of its task definition contains ``FAIL_IMAGE_MARKER`` — the deterministic stand-in for
  "a task that cannot start" (runningCount 0, failedTasks = desiredCount or 1, the old deployment kept).

Secrets Manager: when a version was made
- ListSecretVersionIds gives each version its own ``CreatedDate`` (SecretVersionsListEntry API reference:
  "The date and time this version of the secret was created"); moto answers the time of the call for every
  version, so a secret would look changed at every look. Its dates keep their fraction of a second, as
  the API's timestamps do (moto rounds them down to the second).

IAM: AWS managed policies, built when first looked at
- Not a change of behaviour: every AWS managed policy moto knows still exists in every account
  (``MOTO_IAM_LOAD_MANAGED_POLICIES``). moto builds all 1,485 of them, in each of its 6 partitions' IAM
  backends, as soon as any request names an account (it looks for the access key in every partition):
  about 5 s after every reset, the largest share of an end-to-end test's set-up. They are built per
  backend on the first look at its policies, and the published data is parsed once per process.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from moto.core.utils import utcnow
from moto.ecs import models as ecs_models
from moto.ecs import responses as ecs_responses
from moto.ecs.exceptions import EcsClientException, TaskDefinitionNotFoundException
from moto.secretsmanager import models as sm_models
from moto.utilities.utils import get_partition

from controller.sandbox import faithful_sts

FAIL_IMAGE_MARKER = "faithful-cannot-start"
"""An image whose name contains this never starts: its deployments end FAILED."""

_ECS_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
_CPU = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*vcpu", re.IGNORECASE)
_MEMORY = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*gb", re.IGNORECASE)
_ROLE_FIELDS = ("executionRoleArn", "taskRoleArn")

_lock = threading.Lock()
_installed = False
_request = threading.local()
_settings: dict[str, Any] = {}


def _defaults() -> dict[str, Any]:
    return {"settle_after_describes": 2, "settle_after_seconds": None}


def configure(settle_after_describes: int = 2, settle_after_seconds: float | None = None) -> None:
    """How soon deployments settle; called with no arguments, back to the defaults."""
    _settings.update(settle_after_describes=settle_after_describes, settle_after_seconds=settle_after_seconds)


def install() -> None:
    """Patch moto's ECS classes once; later calls do nothing."""
    global _installed
    with _lock:
        if _installed:
            return
        _settings.update(_defaults())
        _patch_register()
        _patch_latest_active()
        _patch_services()
        _patch_secret_versions()
        _patch_lazy_managed_policies()
        faithful_sts.install()   # AssumeRole as STS answers it: trust policies, external ids
        _installed = True


# --- task definitions ---------------------------------------------------------------------------

def _refuse(message: str) -> EcsClientException:
    return EcsClientException(message)


def _check_names(family: Any, containers: list[dict[str, Any]]) -> None:
    if not family:
        raise _refuse("Family can not be blank.")
    if not _ECS_NAME.fullmatch(str(family)):
        raise _refuse("Family contains invalid characters.")
    for container in containers:
        image = container.get("image")
        if not isinstance(image, str) or not image:
            raise _refuse("Container.image should not be null or empty.")
        name = container.get("name")
        if not isinstance(name, str) or not _ECS_NAME.fullmatch(name):
            raise _refuse("Container.name contains invalid characters.")


def _units(value: Any, pattern: re.Pattern[str], field: str) -> Any:
    if value is None:
        return None
    text = str(value).strip()
    if text.isdigit():
        return str(int(text))
    match = pattern.fullmatch(text)
    amount = float(match.group(1)) * 1024 if match else None
    if amount is None or amount != int(amount):
        raise _refuse(f"Invalid '{field}' setting for task.")
    return str(int(amount))


def _role_arn(value: Any, partition: str, account: str) -> Any:
    if isinstance(value, str) and value and not value.startswith("arn:"):
        return f"arn:{partition}:iam::{account}:role/{value}"
    return value


def _requires_attributes(td: Any) -> list[dict[str, str]]:
    names: list[str] = []

    def need(*attrs: str) -> None:
        names.extend(a for a in attrs if a not in names)

    execution_role = getattr(td, "execution_role_arn", None)
    for c in td.container_definitions:
        log = c.get("logConfiguration") or {}
        if log.get("logDriver") == "awslogs":
            need("com.amazonaws.ecs.capability.logging-driver.awslogs", "com.amazonaws.ecs.capability.docker-remote-api.1.19")
            if execution_role:
                need("ecs.capability.execution-role-awslogs")
        if ".dkr.ecr." in str(c.get("image", "")):
            need("com.amazonaws.ecs.capability.ecr-auth")
            if execution_role:
                need("ecs.capability.execution-role-ecr-pull")
        for item in list(c.get("secrets") or []) + list(log.get("secretOptions") or []):
            kind = "asm" if ":secretsmanager:" in str(item.get("valueFrom", "")) else "ssm"
            need(f"ecs.capability.secrets.{kind}.environment-variables")
    if getattr(td, "task_role_arn", None):
        need("com.amazonaws.ecs.capability.task-iam-role", "com.amazonaws.ecs.capability.docker-remote-api.1.19")
    if td.network_mode == "awsvpc":
        need("com.amazonaws.ecs.capability.docker-remote-api.1.18", "ecs.capability.task-eni")
    return [{"name": n} for n in names]


def _as_ecs_answers(td: Any, enable_fault_injection: Any, partition: str, account: str) -> None:
    """Give moto's stored task definition the fields and defaults ECS's answer has."""
    td.enable_fault_injection = bool(enable_fault_injection)
    for c in td.container_definitions:
        c.setdefault("systemControls", [])
        for pm in c.get("portMappings") or []:
            pm.setdefault("protocol", "tcp")
            if td.network_mode == "awsvpc" and "containerPort" in pm:
                pm.setdefault("hostPort", pm["containerPort"])
    fargate = "FARGATE" in (td.requires_compatibilities or []) or (
        td.network_mode == "awsvpc" and td.cpu is not None and td.memory is not None)
    td.compatibilities = ["EC2", "FARGATE"] if fargate else ["EC2"]
    td.requires_attributes = _requires_attributes(td)
    td.registered_at = utcnow()
    td.registered_by = f"arn:{partition}:iam::{account}:root"


def _patch_register() -> None:
    backend_cls = ecs_models.EC2ContainerServiceBackend
    response_cls = ecs_responses.EC2ContainerServiceResponse
    original_backend = backend_cls.register_task_definition
    original_response = response_cls.register_task_definition

    def register_response(self: Any) -> Any:
        # moto's handler does not pass enableFaultInjection on; carry it to the backend call
        _request.enable_fault_injection = self._get_param("enableFaultInjection")
        try:
            return original_response(self)
        finally:
            _request.enable_fault_injection = None

    def register_backend(self: Any, family: str, container_definitions: list[dict[str, Any]], **kwargs: Any) -> Any:
        partition = get_partition(self.region_name)
        _check_names(family, container_definitions or [])
        for field, key in (("executionRoleArn", "execution_role_arn"), ("taskRoleArn", "task_role_arn")):
            if kwargs.get(key) is not None:
                kwargs[key] = _role_arn(kwargs[key], partition, self.account_id)
        kwargs["cpu"] = _units(kwargs.get("cpu"), _CPU, "cpu")
        kwargs["memory"] = _units(kwargs.get("memory"), _MEMORY, "memory")
        td = original_backend(self, family, container_definitions, **kwargs)
        _as_ecs_answers(td, getattr(_request, "enable_fault_injection", None), partition, self.account_id)
        return td

    register_backend.__wrapped__ = original_backend  # type: ignore[attr-defined]
    backend_cls.register_task_definition = register_backend
    response_cls.register_task_definition = register_response


def _patch_latest_active() -> None:
    backend_cls = ecs_models.EC2ContainerServiceBackend
    original = backend_cls.describe_task_definition

    def describe_task_definition(self: Any, task_definition_str: str) -> Any:
        family = str(task_definition_str).split("/")[-1]
        if ":" in family:   # family:revision, or an ARN with its revision: exactly that one
            return original(self, task_definition_str)
        active = [rev for rev, td in (self.task_definitions.get(family) or {}).items() if td.status == "ACTIVE"]
        if not active:
            raise TaskDefinitionNotFoundException()
        return original(self, f"{family}:{max(active)}")

    describe_task_definition.__wrapped__ = original  # type: ignore[attr-defined]
    backend_cls.describe_task_definition = describe_task_definition


# --- services and their deployments -------------------------------------------------------------

def _new_deployment(service: Any, backend: Any) -> dict[str, Any]:
    now = utcnow()
    deployment_id = f"ecs-svc/{int(time.time() * 1e6) % 10**19:019d}"
    return {
        "id": deployment_id, "status": "PRIMARY", "taskDefinition": service.task_definition,
        "desiredCount": service.desired_count, "pendingCount": service.desired_count, "runningCount": 0,
        "failedTasks": 0, "createdAt": now, "updatedAt": now, "launchType": service.launch_type,
        "rolloutState": "IN_PROGRESS", "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
        "_started": time.monotonic(), "_seen": 0,
    }


def _cannot_start(backend: Any, task_definition: str | None) -> bool:
    if not task_definition:
        return False
    try:
        td = backend.describe_task_definition(task_definition)
    except Exception:  # a task definition that is gone cannot start either
        return True
    return any(FAIL_IMAGE_MARKER in str(c.get("image", "")) for c in td.container_definitions)


def _settle(service: Any, backend: Any) -> None:
    primary = next((d for d in service.deployments if d.get("status") == "PRIMARY"), None)
    if primary is None or primary.get("rolloutState") != "IN_PROGRESS":
        return
    primary["_seen"] = primary.get("_seen", 0) + 1
    seconds = _settings.get("settle_after_seconds")
    due = primary["_seen"] >= _settings.get("settle_after_describes", 2) or (
        seconds is not None and time.monotonic() - primary.get("_started", 0) >= seconds)
    if not due:
        return
    primary["updatedAt"] = utcnow()
    if _cannot_start(backend, primary.get("taskDefinition")):
        primary.update(rolloutState="FAILED", runningCount=0, pendingCount=0,
                       failedTasks=max(primary.get("desiredCount") or 0, 1),
                       rolloutStateReason="ECS deployment circuit breaker: tasks failed to start.")
        # the tasks of the older deployments keep running
        service.running_count = sum(d.get("runningCount") or 0 for d in service.deployments if d is not primary)
        service.pending_count = 0
        return
    primary.update(rolloutState="COMPLETED", runningCount=primary.get("desiredCount") or 0, pendingCount=0,
                   rolloutStateReason=f"ECS deployment {primary['id']} completed.")
    service.deployments = [primary]
    service.running_count, service.pending_count = service.desired_count, 0


def _patch_services() -> None:
    backend_cls = ecs_models.EC2ContainerServiceBackend
    original_create = backend_cls.create_service
    original_update = backend_cls.update_service
    original_describe = backend_cls.describe_services

    def create_service(self: Any, *args: Any, **kwargs: Any) -> Any:
        service = original_create(self, *args, **kwargs)
        if service.deployment_controller.get("type") == "ECS":
            service.deployments = [_new_deployment(service, self)]
            service.running_count, service.pending_count = 0, service.desired_count
        return service

    def update_service(self: Any, service_properties: dict[str, Any]) -> Any:
        wanted = service_properties.get("task_definition")
        force = bool(service_properties.get("force_new_deployment"))
        name = str(service_properties.get("service", "")).split("/")[-1]
        cluster = service_properties.get("cluster", "default")
        before = self._get_service(cluster, name).task_definition
        if wanted:  # ECS keeps the full ARN, whatever form the caller gave
            service_properties["task_definition"] = self.describe_task_definition(wanted).arn
        service = original_update(self, service_properties)
        if service.deployment_controller.get("type") == "ECS" and (service.task_definition != before or force):
            for d in service.deployments:
                if d.get("status") == "PRIMARY":
                    d["status"] = "ACTIVE"
            service.deployments = [_new_deployment(service, self)] + service.deployments
            service.running_count = sum(d.get("runningCount") or 0 for d in service.deployments)
        return service

    def describe_services(self: Any, cluster_str: str, service_names_or_arns: list[str]) -> Any:
        found, failures = original_describe(self, cluster_str, service_names_or_arns)
        for service in found:
            _settle(service, self)
        return found, failures

    backend_cls.create_service = create_service
    backend_cls.update_service = update_service
    backend_cls.describe_services = describe_services


# --- Secrets Manager versions -------------------------------------------------------------------

def _patch_secret_versions() -> None:
    backend_cls = sm_models.SecretsManagerBackend
    original_add, original_rotate = backend_cls._add_secret, backend_cls.rotate_secret

    def precise(secret: Any, started: float) -> None:
        for version in getattr(secret, "versions", {}).values():
            if isinstance(version.get("createdate"), int) and version["createdate"] == int(started):
                version["createdate"] = started   # made by this call: the call's own moment, to the microsecond

    def add_secret(self: Any, secret_id: str, *args: Any, **kwargs: Any) -> Any:
        started = time.time()
        found = original_add(self, secret_id, *args, **kwargs)
        precise(found[0], started)
        return found

    def rotate_secret(self: Any, secret_id: str, *args: Any, **kwargs: Any) -> Any:
        started = time.time()
        found = original_rotate(self, secret_id, *args, **kwargs)
        if secret_id in self.secrets:
            precise(self.secrets[secret_id], started)
        return found

    def list_secret_version_ids(self: Any, secret_id: str) -> str:
        secret = self.secrets[secret_id]
        versions = [{"CreatedDate": v.get("createdate"), "VersionId": vid, "VersionStages": v["version_stages"]}
                    for vid, v in secret.versions.items()]
        return json.dumps({"ARN": secret.arn, "Name": secret.name, "Versions": versions})   # one page: no token

    backend_cls._add_secret = add_secret
    backend_cls.rotate_secret = rotate_secret
    backend_cls.list_secret_version_ids = list_secret_version_ids


# --- IAM: AWS managed policies when first looked at -------------------------------------------------

_UNBUILT = object()


def _patch_lazy_managed_policies() -> None:
    from moto.iam import models as iam_models
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.settings import load_iam_aws_managed_policies

    parsed: list[dict] = []

    def data() -> dict:
        if not parsed:
            parsed.append(json.loads(aws_managed_policies_data))
        return parsed[0]

    def init_aws(self: Any) -> Any:
        self.__dict__["_faithful_load_aws"] = load_iam_aws_managed_policies()   # read when moto would read it
        return _UNBUILT

    def get_aws(self: Any) -> list:
        built = self.__dict__.get("_faithful_aws", _UNBUILT)
        if built is _UNBUILT:
            built = [iam_models.AWSManagedPolicy.from_data(name, self.account_id, self.region_name, d)
                     for name, d in data().items()] if self.__dict__.get("_faithful_load_aws") else []
            self.__dict__["_faithful_aws"] = built
        return built

    def set_aws(self: Any, value: Any) -> None:
        self.__dict__["_faithful_aws"] = value

    def get_managed(self: Any) -> dict:
        managed = self.__dict__.get("_faithful_managed", _UNBUILT)
        if managed is _UNBUILT:
            managed = {p.arn: p for p in self.aws_managed_policies}
            self.__dict__["_faithful_managed"] = managed
        return managed

    def set_managed(self: Any, value: Any) -> None:
        self.__dict__["_faithful_managed"] = value

    backend = iam_models.IAMBackend
    backend._init_aws_policies = init_aws
    backend._init_managed_policies = lambda self: _UNBUILT
    backend.aws_managed_policies = property(get_aws, set_aws)
    backend.managed_policies = property(get_managed, set_managed)
