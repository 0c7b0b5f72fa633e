"""How long a rollout takes: N services of one TaskDefinition, ``maxConcurrent`` at a time, against moto's server.

    python -m bench.rollout                                   # 20 services, maxConcurrent 5
    python -m bench.rollout --services 20 --max-concurrent 5 --deploy-seconds 2

One parameter is read by every service; the bench changes its value and times ``reconcile``: the plan
(observe, including each service's running revision and the parameter's LastModifiedDate), then the
write, then the rollout (UpdateService each, followed until COMPLETED). ``--deploy-seconds``: how long
the faithful test AWS keeps each deployment IN_PROGRESS (0: it completes on the second DescribeServices,
which measures our own overhead and the poll interval). It prints one JSON line; moto's server runs in
this process, on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import boto3
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from awsserver import TEST_ENV, UNSET_ENV, start_moto  # noqa: E402

from controller.cli import main  # noqa: E402
from controller.sandbox import faithful  # noqa: E402


def manifests(folder: Path, services: int, width: int) -> None:
    docs = [
        {"kind": "Parameter", "metadata": {"name": "db"}, "spec": {"name": "/bench/db", "value": {"fromEnv": "BENCH_DB"}}},
        {"kind": "ExecutionRole", "metadata": {"name": "exec"}, "spec": {"roleName": "bench-exec", "managedPolicyArns": []}},
        {"kind": "TaskDefinition", "metadata": {"name": "web"}, "spec": {
            "family": "web", "executionRole": "exec",
            "rollout": {"services": [f"bench/svc-{i}" for i in range(services)], "maxConcurrent": width},
            "containerDefinitions": [{"name": "app", "image": "nginx", "memory": 128,
                                      "secrets": [{"name": "DB", "valueFrom": "/bench/db"}]}]}},
    ]
    (folder / "m.yaml").write_text(yaml.safe_dump_all([{"apiVersion": "ecs-secrets/v1", **d} for d in docs]))


def reconcile(folder: Path) -> tuple[int, float]:
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["reconcile", "-f", str(folder), "--cluster", "bench", "-q"])
    return code, time.monotonic() - started


def bench(services: int, width: int, deploy_seconds: float) -> dict:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)   # moto's server logs every request
    for name in UNSET_ENV:
        os.environ.pop(name, None)
    os.environ.update(TEST_ENV, ECS_SECRETS_RATE_LIMITS="off", BENCH_DB=secrets.token_urlsafe(16))
    moto = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = moto.url
    deployments: Counter[str] = Counter()
    original = faithful._new_deployment

    def counting(service, backend):
        deployments[service.name] += 1
        return original(service, backend)

    faithful._new_deployment = counting
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            manifests(folder, services, width)
            ecs = boto3.client("ecs", endpoint_url=moto.url, region_name="us-east-1")
            ecs.create_cluster(clusterName="bench")
            assert reconcile(folder)[0] == 0
            for i in range(services):
                ecs.create_service(cluster="bench", serviceName=f"svc-{i}", taskDefinition="web", desiredCount=2)
                for _ in range(3):
                    ecs.describe_services(cluster="bench", services=[f"svc-{i}"])
            deployments.clear()
            if deploy_seconds:
                faithful.configure(settle_after_describes=10**9, settle_after_seconds=deploy_seconds)
            os.environ["BENCH_DB"] = secrets.token_urlsafe(16)
            code, took = reconcile(folder)
            noop_code, noop = reconcile(folder)
            return {"services": services, "maxConcurrent": width, "deploySeconds": deploy_seconds,
                    "exit": code, "seconds": round(took, 2), "deployments": sum(deployments.values()),
                    "servicesRolled": len(deployments), "rerunSeconds": round(noop, 2),
                    "rerunDeployments": sum(deployments.values()) - services, "rerunExit": noop_code}
    finally:
        faithful._new_deployment = original
        faithful.configure()
        moto.stop()


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=20)
    p.add_argument("--max-concurrent", type=int, default=5)
    p.add_argument("--deploy-seconds", type=float, default=0.0)
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse(sys.argv[1:])
    print(json.dumps(bench(args.services, args.max_concurrent, args.deploy_seconds)))
