"""The work-queue benchmark: a no-op check of a fleet by 1 replica and by 3, against moto (calls counted by it).

    python -m bench.fleet --n 1000 --replicas 1 3                     # AWS's published quotas (the default)
    python -m bench.fleet --n 200 --replicas 1 3 --rate-limits off    # no client-side limit: CPU-bound here

The fleet: 3 accounts × 2 Regions = 6 Targets, the same N parameters in each. moto runs in this process (the
counting server); each replica is an `ecs-secrets run --work-queue` process of its own. After a warm-up
(the lease holder's start-up resync of every target, assuming each target's role once), the bench enqueues
one resync per target and times until the queue is empty: every target planned (no change), each by one
replica. The calls per target are the target services' calls (not SQS, DynamoDB or STS) in the timed round,
divided by 6, against a single-account `reconcile --dry-run` of the same N parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # before moto builds its IAM backend

import boto3  # noqa: E402

from bench.countingserver import CountingServer  # noqa: E402
from bench.run import AWS_ENV, base_env  # noqa: E402
from controller.core import workitems  # noqa: E402
from controller.sandbox import faithful  # noqa: E402

ACCOUNTS = ("111111111111", "222222222222", "333333333333")
REGIONS = ("eu-west-1", "us-east-2")
ROLE = "ecs-secrets-fleet"
OWN = "123456789012"
QUEUE_SERVICES = {"sqs", "dynamodb", "sts"}


def client(service: str, url: str, account: str = OWN, region: str = "us-east-1"):
    c = boto3.client(service, endpoint_url=url, region_name=region)
    if account != OWN:
        c.meta.events.register("before-sign.*.*", lambda request, **_: request.headers.__setitem__(
            "x-moto-account-id", account))
    return c


def targets() -> list[tuple[str, str, str]]:
    return [(f"t{i}-{r.split('-')[0]}{r[-1]}", a, r) for i, a in enumerate(ACCOUNTS) for r in REGIONS]


def write_manifests(folder: Path, n: int, fleet: bool) -> Path:
    docs = []
    names = [t[0] for t in targets()]
    if fleet:
        for name, account, region in targets():
            docs.append({"apiVersion": "ecs-secrets/v1", "kind": "Target", "metadata": {"name": name},
                         "spec": {"account": account, "region": region,
                                  "roleArn": f"arn:aws:iam::{account}:role/{ROLE}"}})
    for i in range(n):
        meta: dict = {"name": f"p{i:05d}"}
        if fleet:
            meta["targets"] = names
        docs.append({"apiVersion": "ecs-secrets/v1", "kind": "Parameter", "metadata": meta,
                     "spec": {"name": f"/bench/p{i:05d}", "type": "String", "value": {"literal": f"v{i}"}}})
    path = folder / ("fleet.yaml" if fleet else "single.yaml")
    path.write_text("\n---\n".join(json.dumps(d) for d in docs))
    return path


def target_calls(counts: dict[tuple[str, str], int]) -> int:
    return sum(v for (service, _), v in counts.items() if service not in QUEUE_SERVICES)


def queue_empty(sqs, url: str) -> bool:
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"]) == 0


def wait_empty(sqs, url: str, timeout: float, settle: float = 0.0) -> float:
    deadline, started = time.monotonic() + timeout, time.monotonic()
    while time.monotonic() < deadline:
        if queue_empty(sqs, url):
            if settle <= 0:
                return time.monotonic() - started
            time.sleep(settle)
            if queue_empty(sqs, url):
                return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError("the work queue did not drain")


def round_of(server: CountingServer, env: dict, manifests: Path, replicas: int, table: str, timeout: float) -> dict:
    sqs = client("sqs", server.url)
    url = sqs.create_queue(QueueName=f"work-{replicas}-{table}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    procs = []
    for i in range(replicas):
        cmd = [sys.executable, "-m", "controller", "run", "-f", str(manifests), "--work-queue", url,
               "--lease-table", table, "--metrics-port", "0", "--log-level", "warning"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    try:
        deadline = time.monotonic() + timeout
        while queue_empty(sqs, url) and time.monotonic() < deadline:   # the warm-up: the holder's start-up
            time.sleep(0.1)                                            # resync of every target, roles assumed
        wait_empty(sqs, url, timeout, settle=3.0)
        server.reset_counts()
        started = time.monotonic()
        for name, _, _ in targets():
            item = workitems.resync_item(name, f"bench-{time.time()}")
            sqs.send_message(QueueUrl=url, MessageBody=item.body(), MessageGroupId=workitems.group(item, {}),
                             MessageDeduplicationId=workitems.dedup_id(item, {}))
        while queue_empty(sqs, url):
            time.sleep(0.01)
        wait_empty(sqs, url, timeout)
        seconds = time.monotonic() - started
        counts = server.counts()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    return {"replicas": replicas, "seconds": round(seconds, 2), "target_calls": target_calls(counts),
            "calls_per_target": round(target_calls(counts) / len(targets()), 1)}


class Delayed:
    """The counting middleware, answering ``seconds`` later: the time a call spends on the network and in AWS,
    spent asleep (so that moto in this one process is not what limits many replicas)."""

    def __init__(self, inner, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    def __call__(self, environ, start_response):
        time.sleep(self.seconds)
        return self.inner(environ, start_response)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="parameters per target (default 1000)")
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--rate-limits", choices=("default", "off"), default="default")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="answer every call this much later (sleeping, "
                    "not computing): a model of the round trip to AWS, for a server that is not the bottleneck")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--out", type=Path, help="append the results as JSON lines")
    args = ap.parse_args(argv)
    os.environ.update(AWS_ENV)   # this process's own clients (the test's credentials, never a real account)
    faithful.install()   # STS as it answers: trust policies are checked
    server = CountingServer()
    if args.latency_ms:
        server.middleware = Delayed(server.middleware, args.latency_ms / 1000)
    with server, tempfile.TemporaryDirectory() as tmp:
        env = base_env(server.url)
        # short polls: moto's long poll spins while a message of the queue is in flight (moto/sqs/models.py
        # receive_message waits only on an empty queue), which would load the server (this process) for nothing
        env["ECS_SECRETS_WORK_WAIT"] = "0"
        if args.rate_limits == "off":
            env["ECS_SECRETS_RATE_LIMITS"] = "off"
        trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                                    "Principal": {"AWS": f"arn:aws:iam::{OWN}:root"}}]})
        for account in ACCOUNTS:
            client("iam", server.url, account).create_role(RoleName=ROLE, AssumeRolePolicyDocument=trust)
        folder = Path(tmp)
        fleet, single = write_manifests(folder, args.n, True), write_manifests(folder, args.n, False)
        seed_env = {**env, "ECS_SECRETS_RATE_LIMITS": "off"}
        t = time.monotonic()
        for path in (fleet, single):
            subprocess.run([sys.executable, "-m", "controller", "reconcile", "-f", str(path), "-q"], env=seed_env,
                           check=True, stdout=subprocess.DEVNULL)
        print(f"seeded {args.n} parameters in 6 targets and the own account in {time.monotonic() - t:.0f}s",
              file=sys.stderr)
        server.reset_counts()
        t = time.monotonic()
        subprocess.run([sys.executable, "-m", "controller", "reconcile", "-f", str(single), "--dry-run", "-q"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        single_seconds, single_calls = time.monotonic() - t, target_calls(server.counts())
        results = []
        for k, replicas in enumerate(args.replicas):
            r = round_of(server, env, fleet, replicas, f"lease{k}", args.timeout)
            r.update(n=args.n, rate_limits=args.rate_limits, latency_ms=args.latency_ms, single_account_calls=single_calls,
                     single_account_seconds=round(single_seconds, 2),
                     calls_ratio=round(r["calls_per_target"] / single_calls, 3))
            results.append(r)
            print(json.dumps(r), flush=True)
            if args.out:
                with args.out.open("a") as f:
                    f.write(json.dumps(r) + "\n")
        base = results[0]["seconds"]
        for r in results[1:]:
            print(f"{r['replicas']} replicas: {r['seconds']}s = {r['seconds'] / base:.2f} x the time of "
                  f"{results[0]['replicas']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
