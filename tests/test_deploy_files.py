"""deploy/: every file parses, the Kubernetes objects hold what an operator relies on, the ECS files are
valid API input (botocore's own models), the image is multi-stage and non-root, and nothing generated
(the ConfigMap, the controller policy) has gone stale. No cluster, no Docker, no AWS."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator

from controller.cli import parser

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
MANIFESTS_PATH = "/etc/ecs-secrets/manifests"
DATA_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))


def k8s_objects() -> list[dict]:
    return [doc for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


COMPONENT = K8S / "components" / "servicemonitor"


def component_objects() -> list[dict]:
    return [doc for path in sorted(COMPONENT.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def one(kind: str, objects: list[dict] | None = None) -> dict:
    found = [o for o in (k8s_objects() if objects is None else objects) if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects in deploy/kubernetes"
    return found[0]


def container() -> dict:
    (c,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def flag(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_file_parses(path: Path) -> None:
    text = path.read_text()
    docs = [json.loads(text)] if path.suffix == ".json" else [d for d in yaml.safe_load_all(text) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


# --- Kubernetes -----------------------------------------------------------------------------------

def test_deployment_runs_two_replicas_with_the_lease() -> None:
    dep = one("Deployment")
    assert dep["spec"]["replicas"] == 2
    args = container()["args"]
    assert args[0] == "run" and flag(args, "-f") == MANIFESTS_PATH
    assert flag(args, "--lease-table") == "ecs-secrets-lease"
    assert flag(args, "--metrics-port") == str(container()["ports"][0]["containerPort"]) == "9100"


def test_deployment_probes_health_and_readiness_on_the_metrics_port() -> None:
    c = container()
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ports = {p["name"] for p in c["ports"]}
    assert {c[probe]["httpGet"]["port"] for probe in ("livenessProbe", "readinessProbe")} <= ports


def test_deployment_is_locked_down() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    c = container()
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True and pod["securityContext"]["runAsNonRoot"] is True
    assert sc["runAsUser"] != 0 and pod["securityContext"]["runAsUser"] != 0
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert sc["seccompProfile"]["type"] == pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}
    writable = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert {m["mountPath"] for m in c["volumeMounts"] if m["name"] in writable} == {"/tmp"}


def test_secret_values_come_from_a_secret_never_from_the_configmap() -> None:
    env = {e["name"]: e for e in container()["env"]}
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "ecs-secrets-values"
    assert all("value" not in e for e in env.values() if re.search(r"PASSWORD|SECRET|TOKEN|KEY", e["name"]))
    assert not [o for o in k8s_objects() if o["kind"] == "Secret"], "no Secret (and no value) in git"


def test_configmap_carries_manifests_unchanged_and_is_mounted_where_run_reads() -> None:
    cm = one("ConfigMap")
    assert cm["data"] == {p.name: p.read_text() for p in sorted((ROOT / "manifests").glob("*.yaml"))}, (
        "deploy/kubernetes/configmap.yaml is stale; regenerate it (the command is in its header)")
    pod = one("Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v.get("configMap", {}).get("name") == cm["metadata"]["name"]]
    (mount,) = [m for m in container()["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == MANIFESTS_PATH and mount["readOnly"] and "subPath" not in mount


def test_service_account_is_annotated_for_irsa_and_matches_the_trust_policy() -> None:
    sa = one("ServiceAccount")
    assert one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    role = sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", role)
    trust = json.loads((DEPLOY / "iam" / "irsa-trust-policy.json").read_text())["Statement"][0]
    namespace = yaml.safe_load((K8S / "kustomization.yaml").read_text())["namespace"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    subjects = [v for k, v in trust["Condition"]["StringEquals"].items() if k.endswith(":sub")]
    assert subjects == [f"system:serviceaccount:{namespace}:{sa['metadata']['name']}"]


def test_service_and_service_monitor_reach_the_metrics_port() -> None:
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    service, monitor = one("Service"), one("ServiceMonitor", component_objects())
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert service["spec"]["selector"].items() <= labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "metrics" and [e["port"] for e in monitor["spec"]["endpoints"]] == [port["name"]]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert service["spec"]["publishNotReadyAddresses"] is True   # the follower is scraped too


def test_kustomization_lists_every_object_file() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert [i["name"] for i in kustomization["images"]] == [container()["image"].split(":")[0]]


# Kinds every cluster serves without a CRD (the Kubernetes API reference's built-in groups).
BUILT_IN_API_VERSIONS = {"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1"}


def test_the_base_needs_no_crd_and_the_service_monitor_is_an_optional_component() -> None:
    """`kubectl apply -k deploy/kubernetes` on a cluster without the Prometheus Operator must not fail with
    "no matches for kind ServiceMonitor": the base holds built-in kinds only, and the ServiceMonitor is a
    kustomize Component (kustomize's "components" feature: apiVersion kustomize.config.k8s.io/v1alpha1,
    kind Component) that a cluster with the operator turns on."""
    assert {o["apiVersion"] for o in k8s_objects()} <= BUILT_IN_API_VERSIONS
    assert not yaml.safe_load((K8S / "kustomization.yaml").read_text()).get("components")
    component = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert component["apiVersion"] == "kustomize.config.k8s.io/v1alpha1" and component["kind"] == "Component"
    assert set(component["resources"]) == {p.name for p in COMPONENT.glob("*.yaml")} - {"kustomization.yaml"}
    assert [o["kind"] for o in component_objects()] == ["ServiceMonitor"]
    assert "components/servicemonitor" in (K8S / "kustomization.yaml").read_text()   # said how to turn it on


# --- ECS --------------------------------------------------------------------------------------------

ECS_MODEL = botocore.session.get_session().get_service_model("ecs")


def ecs_file(name: str) -> dict:
    return json.loads((DEPLOY / "ecs" / name).read_text())


@pytest.mark.parametrize("name, operation", [("task-definition.json", "RegisterTaskDefinition"),
                                             ("service.json", "CreateService")])
def test_ecs_files_are_valid_api_input(name: str, operation: str) -> None:
    report = ParamValidator().validate(ecs_file(name), ECS_MODEL.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def test_task_definition_runs_the_controller_on_fargate_locked_down() -> None:
    td = ecs_file("task-definition.json")
    assert td["requiresCompatibilities"] == ["FARGATE"] and td["networkMode"] == "awsvpc"
    (c,) = td["containerDefinitions"]
    assert c["command"][0] == "run" and flag(c["command"], "--lease-table") == "ecs-secrets-lease"
    assert flag(c["command"], "-f") == MANIFESTS_PATH
    assert c["readonlyRootFilesystem"] is True and c["user"].split(":")[0] not in ("0", "root")
    assert c["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
    assert "/healthz" in " ".join(c["healthCheck"]["command"])
    assert c["logConfiguration"]["logDriver"] == "awslogs"
    assert [s["name"] for s in c["secrets"]] == ["DB_PASSWORD"]
    assert c["secrets"][0]["valueFrom"].startswith("arn:aws:ssm:")
    assert not [e for e in c.get("environment", []) if re.search(r"PASSWORD|SECRET|TOKEN", e["name"])]
    assert td["taskRoleArn"] != td["executionRoleArn"]


def test_service_runs_two_tasks_with_the_circuit_breaker() -> None:
    service, td = ecs_file("service.json"), ecs_file("task-definition.json")
    assert service["desiredCount"] == 2 and service["taskDefinition"] == td["family"]
    assert service["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service["deploymentConfiguration"]["minimumHealthyPercent"] <= 50   # replaced one at a time
    assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"


def test_ecs_roles_trust_ecs_tasks_and_the_execution_role_reads_the_controllers_secret() -> None:
    trust = json.loads((DEPLOY / "iam" / "ecs-task-trust-policy.json").read_text())["Statement"][0]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    execution = json.loads((DEPLOY / "iam" / "ecs-execution-role-policy.json").read_text())
    reads = [s for s in execution["Statement"] if s["Action"] == "ssm:GetParameters"]
    (c,) = ecs_file("task-definition.json")["containerDefinitions"]
    assert [s["Resource"] for s in reads] == [c["secrets"][0]["valueFrom"]]


# --- the commands in the deploy files are ones the CLI accepts -------------------------------------

def dockerfile_cmd(text: str) -> list[str]:
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))
    return entry + json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))


@pytest.mark.parametrize("source", ["kubernetes", "ecs", "dockerfile"])
def test_deployed_commands_parse_with_the_real_cli(source: str) -> None:
    argv = {"kubernetes": lambda: container()["args"],
            "ecs": lambda: ecs_file("task-definition.json")["containerDefinitions"][0]["command"],
            "dockerfile": lambda: dockerfile_cmd((DEPLOY / "Dockerfile").read_text())[1:]}[source]()
    args = parser().parse_args(argv)
    assert args.command == "run" and args.filename == [MANIFESTS_PATH] and args.metrics_port == 9100


# --- the image ----------------------------------------------------------------------------------

def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [(m.group(1).upper(), m.group(2).strip()) for line in text.splitlines()
            if (m := re.match(r"^\s*([A-Za-z]+)\s+(.*)$", line)) and not line.lstrip().startswith("#")]


def test_dockerfile_is_multi_stage_non_root_and_runs_the_daemon() -> None:
    steps = instructions(DEPLOY / "Dockerfile")
    froms = [a for i, a in steps if i == "FROM"]
    assert len(froms) >= 2 and "python:3.12-slim" in dict(steps).get("ARG", "")
    assert any("from=build" in a for i, a in steps if i in ("COPY", "RUN")), "the runtime installs the built wheels"
    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root") and users[-1].split(":")[0] == "10001"
    assert dockerfile_cmd((DEPLOY / "Dockerfile").read_text()) == [
        "ecs-secrets", "run", "-f", MANIFESTS_PATH, "--metrics-port", "9100"]


@pytest.mark.parametrize("name", ["Dockerfile", "ecs/manifests.Dockerfile"])
def test_no_secret_is_baked_into_an_image(name: str) -> None:
    for instruction, argument in instructions(DEPLOY / name):
        if instruction in ("ENV", "ARG"):   # the names it sets: no credential, no secret value
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", argument) or argument.split()[:1]
            assert not [n for n in names if re.search(r"PASSWORD|SECRET|TOKEN|AWS_ACCESS_KEY|AWS_SESSION", n)], names
        if instruction in ("COPY", "ADD"):
            sources = [w for w in shlex.split(argument) if not w.startswith("--")][:-1]
            assert all(s.rstrip("/") in ("pyproject.toml", "README.md", "controller", "manifests",
                                         "deploy/constraints.txt") for s in sources)


def test_ecs_image_bakes_the_manifests_where_run_reads_them() -> None:
    steps = instructions(DEPLOY / "ecs" / "manifests.Dockerfile")
    assert ("COPY", f"manifests/ {MANIFESTS_PATH}/") in steps
    assert [a for i, a in steps if i == "USER"][-1].startswith("10001")


def test_dockerignore_keeps_the_build_context_small() -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "*" and {"!controller/", "!manifests/", "!pyproject.toml", "!README.md",
                                "!deploy/constraints.txt"} <= set(lines)


def test_tmp_belongs_to_the_image_user_and_is_a_volume_on_fargate() -> None:
    """ECS on Fargate: a bind-mount volume is owned by root, mode 0755, unless the image declares the path as
    a VOLUME, whose directory (owner and mode included) ECS copies into the volume (ECS Developer Guide,
    "Use bind mounts with Amazon ECS"). With readonlyRootFilesystem the controller (uid 10001) can write
    only there."""
    steps = instructions(DEPLOY / "Dockerfile")
    runtime = steps[max(i for i, (ins, _) in enumerate(steps) if ins == "FROM"):]
    runs = " && ".join(a for i, a in runtime if i == "RUN")
    assert re.search(r"chown 10001:10001 (\S+ )*/tmp\b", runs), "the runtime stage gives /tmp to uid 10001"
    assert ("VOLUME", '["/tmp"]') in runtime
    td = ecs_file("task-definition.json")
    (c,) = td["containerDefinitions"]
    assert c["readonlyRootFilesystem"] is True
    (mount,) = [m for m in c["mountPoints"] if m["containerPath"] == "/tmp"]
    assert mount["readOnly"] is False
    (volume,) = [v for v in td["volumes"] if v["name"] == mount["sourceVolume"]]
    assert volume == {"name": mount["sourceVolume"]}   # a bind mount: no host path (Fargate takes none)


CONSTRAINTS = DEPLOY / "constraints.txt"


def pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name
    lines = [ln.strip() for ln in CONSTRAINTS.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", ln) for ln in lines), "only exact pins"
    return {canonicalize_name(ln.split("==")[0]): ln.split("==")[1] for ln in lines}


def test_the_image_installs_pinned_versions_of_every_dependency() -> None:
    import importlib.metadata
    import tomllib

    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    pinned = pins()
    steps = instructions(DEPLOY / "Dockerfile")
    assert any(i == "RUN" and "pip wheel --constraint deploy/constraints.txt" in a for i, a in steps)
    assert ("COPY", "deploy/constraints.txt ./deploy/constraints.txt") in steps
    env = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.0", "extra": ""}
    wanted = [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    for req in wanted:   # the pins satisfy pyproject.toml's ranges
        assert req.specifier.contains(pinned[canonicalize_name(req.name)], prereleases=True), req
    seen, todo = set(), [canonicalize_name(r.name) for r in wanted]
    while todo:          # closed: what each pinned package requires (on the image's Python) is pinned too
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        assert name in pinned, f"{name} is installed in the image but not pinned"
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [canonicalize_name(r.name) for r in map(Requirement, requires)
                 if r.marker is None or r.marker.evaluate(env)]
    assert seen == set(pinned), f"pinned but not needed: {set(pinned) - seen}"


def test_controller_policy_is_committed_and_well_formed() -> None:
    policy: dict[str, Any] = json.loads((DEPLOY / "iam" / "controller-policy.json").read_text())
    assert policy["Version"] == "2012-10-17" and policy["Statement"]
    assert all(s["Effect"] == "Allow" and s["Sid"] for s in policy["Statement"])


# --- many replicas: the work queue ------------------------------------------------------------------

WORKQUEUE = K8S / "components" / "workqueue"


def test_the_work_queue_component_scales_the_deployment_on_the_queue_with_keda() -> None:
    """KEDA's aws-sqs-queue scaler (keda.sh/docs/latest/scalers/aws-sqs): metadata queueURL, queueLength (messages
    per replica, visible plus in flight), awsRegion; authentication through a TriggerAuthentication with the AWS
    pod identity (podIdentity.provider aws, identityOwner workload: the workload's own IRSA role). Optional like
    the ServiceMonitor: KEDA's CRDs must exist, so the base does not include it."""
    component = yaml.safe_load((WORKQUEUE / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    objects = [d for p in sorted(WORKQUEUE.glob("*.yaml")) if p.name != "kustomization.yaml"
               for d in yaml.safe_load_all(p.read_text()) if d]
    assert set(component["resources"]) == {p.name for p in WORKQUEUE.glob("*.yaml")} - {"kustomization.yaml"}
    scaled, auth = one("ScaledObject", objects), one("TriggerAuthentication", objects)
    assert scaled["apiVersion"] == auth["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == one("Deployment")["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 2            # a lease holder and one more
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue" and trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    url = trigger["metadata"]["queueURL"]
    assert url.endswith(".fifo") and f"sqs.{trigger['metadata']['awsRegion']}.amazonaws.com" in url
    assert int(trigger["metadata"]["queueLength"]) > 0
    assert auth["spec"]["podIdentity"] == {"provider": "aws", "identityOwner": "workload"}
    # the patch adds --work-queue with the same URL to the controller's command, which the CLI accepts
    (patch,) = component["patches"]
    assert patch["target"] == {"kind": "Deployment", "name": one("Deployment")["metadata"]["name"]}
    added = [op["value"] for op in yaml.safe_load(patch["patch"])
             if op["op"] == "add" and op["path"] == "/spec/template/spec/containers/0/args/-"]
    assert added == ["--work-queue", url]
    args = parser().parse_args(container()["args"] + added)
    assert args.work_queue == url and args.lease_table
    assert "components/workqueue" in (K8S / "kustomization.yaml").read_text()   # said how to turn it on


def test_the_ecs_service_scales_on_the_work_queue_s_backlog_per_task() -> None:
    """Application Auto Scaling target tracking on metric math: the queue's ApproximateNumberOfMessagesVisible
    (AWS/SQS) divided by the service's RunningTaskCount (ECS/ContainerInsights) — the "backlog per task" of the
    Application Auto Scaling User Guide's SQS pattern; valid RegisterScalableTarget / PutScalingPolicy input."""
    doc = ecs_file("autoscaling.json")
    model = botocore.session.get_session().get_service_model("application-autoscaling")
    for key, operation in (("scalableTarget", "RegisterScalableTarget"), ("scalingPolicy", "PutScalingPolicy")):
        report = ParamValidator().validate(doc[key], model.operation_model(operation).input_shape)
        assert not report.has_errors(), report.generate_report()
    service = ecs_file("service.json")
    resource = f"service/{service['cluster']}/{service['serviceName']}"
    assert doc["scalableTarget"]["ResourceId"] == doc["scalingPolicy"]["ResourceId"] == resource
    assert doc["scalableTarget"]["MinCapacity"] >= 2
    metrics = doc["scalingPolicy"]["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]["Metrics"]
    by_id = {m["Id"]: m for m in metrics}
    queue = by_id["visible"]["MetricStat"]["Metric"]
    assert queue["Namespace"] == "AWS/SQS" and queue["MetricName"] == "ApproximateNumberOfMessagesVisible"
    k8s_url = yaml.safe_load((WORKQUEUE / "scaledobject.yaml").read_text())["spec"]["triggers"][0]["metadata"]["queueURL"]
    assert queue["Dimensions"] == [{"Name": "QueueName", "Value": k8s_url.rsplit("/", 1)[1]}]
    assert [m["Expression"] for m in metrics if m.get("ReturnData")] == ["visible / tasks"]
