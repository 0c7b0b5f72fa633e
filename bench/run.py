"""The benchmark: ecs-secrets and Terraform on the same workload against moto, calls counted by the server.

    python -m bench.run --n 100 1000 10000 --repeat 3            # both tools, rate limits lifted
    python -m bench.run --n 1000 --tools ours --rate-limits default
    python -m bench.run --n 1000 --repeat 1 --quota               # through AWS's published quotas
    python -m bench.report bench/results/*.jsonl                  # table + chart into docs/

For every N and repeat: a fresh workload (random values in private files), an empty moto, then the four
phases (cold create, no-op check, update, no-op check) of each tool, each phase a separate process
measured for wall time, peak RSS and the calls the server saw, by action. Every phase is one JSON line
in ``--out`` (appended as it finishes, so a long run that is stopped keeps what it measured).

``--quota``: both tools talk to moto through ``bench/quotaproxy.py``, which throttles as AWS's published
token buckets do (``bench/quotas.py``); ecs-secrets keeps its default client-side limits. Every bucket is
full when a phase starts (as after an idle minute), each row carries the quota-bound minimum of the phase
(``quotas.bound`` of the model's calls) and the requests the proxy refused; and one more row,
``daemon-pass``, counts the calls of one daemon pass with nothing to change (``run --once``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # before moto builds its IAM backend

from bench import measure, model, quotas, terraform as tf  # noqa: E402
from bench.countingserver import CountingServer  # noqa: E402
from bench.quotaproxy import QuotaProxy  # noqa: E402
from bench.workload import Workload  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
DROP_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "ECS_SECRETS_RATE_LIMITS")
EXPECTED_RC = {"cold": 0, "noop": 0, "update": 0, "noop2": 0, "daemon-pass": 0}
Emit = Callable[[dict[str, Any]], None]


def base_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    return {**env, **AWS_ENV, "AWS_ENDPOINT_URL": url}


def ours(server: CountingServer, work: Workload, limits: str, emit: Emit, timeout: float,
         proxy: QuotaProxy | None = None) -> None:
    env = base_env(proxy.url if proxy else server.url)
    if limits == "lifted":
        env["ECS_SECRETS_RATE_LIMITS"] = "off"
    cli = [sys.executable, "-m", "controller"]
    check = ["--dry-run", "--detailed-exitcode"]
    for phase, extra in (("cold", []), ("noop", check), ("update", []), ("noop2", check)):
        if phase == "update":
            work.update()
        _phase(server, "ecs-secrets", phase, work, [*cli, "reconcile", "-f", str(work.manifests), *extra],
               env, None, emit, timeout, limits, proxy)
    if proxy is not None:   # one pass of the polling daemon with nothing to change: its calls, its time
        _phase(server, "ecs-secrets", "daemon-pass", work, [*cli, "run", "--once", "-f", str(work.manifests),
               "--metrics-port", "0", "--metrics-address", "127.0.0.1"], env, None, emit, timeout, limits, proxy)
    for phase, argv in (("validate", ["validate", "-f", str(work.manifests)]), ("help", ["--help"])):
        run = measure.run([*cli, *argv], env)
        emit({"tool": "ecs-secrets", "n": work.n, "phase": phase, "seconds": round(run.seconds, 3),
              "rc": run.returncode, "cpu_seconds": round(run.cpu_seconds, 2), "load": round(os.getloadavg()[0], 2),
              "peak_rss_mb": round(run.peak_rss_mb, 1), "calls": {}, "limits": limits})


def peer(server: CountingServer, work: Workload, found: tf.Terraform, emit: Emit, timeout: float,
         proxy: QuotaProxy | None = None) -> None:
    folder = work.root / "terraform"
    folder.mkdir(exist_ok=True)
    url = proxy.url if proxy else server.url
    env = tf.env(found, base_env(url), folder)
    steps = tf.commands(found)
    (folder / "main.tf").write_text(tf.hcl(work, found, url), encoding="utf-8")
    init = measure.run(steps["init"], env, cwd=str(folder), timeout=600)
    if init.returncode != 0:
        raise RuntimeError(f"terraform init failed: {init.stderr[-2000:]}")
    for phase in ("cold", "noop", "update", "noop2"):
        if phase == "update":
            work.update()
            (folder / "main.tf").write_text(tf.hcl(work, found, url), encoding="utf-8")
        if not _phase(server, "terraform", phase, work, steps[phase], env, str(folder), emit, timeout, "none",
                      proxy):
            break


def _phase(server: CountingServer, tool: str, phase: str, work: Workload, argv: list[str], env: dict,
           cwd: str | None, emit: Emit, timeout: float, limits: str, proxy: QuotaProxy | None = None) -> bool:
    server.reset_counts()
    if proxy is not None:
        proxy.reset()
    run = measure.run(argv, env, cwd=cwd, timeout=timeout)
    calls, busy = server.counts(), server.server_seconds()
    model_phase = "noop" if phase == "daemon-pass" else phase
    want = model.phase(model_phase, work.n, model.MOTO)
    row = {"tool": tool, "n": work.n, "phase": phase, "seconds": round(run.seconds, 3), "rc": run.returncode,
           "cpu_seconds": round(run.cpu_seconds, 2), "load": round(os.getloadavg()[0], 2),
           "ok": run.returncode == EXPECTED_RC[phase], "peak_rss_mb": round(run.peak_rss_mb, 1),
           "calls": {f"{s}:{o}": c for (s, o), c in sorted(calls.items())}, "total": sum(calls.values()),
           "model": model.total(want), "model_aws": model.total(model.phase(model_phase, work.n, model.AWS)),
           "limits": limits, "server_seconds": round(sum(busy.values()), 2),
           "server_by_action": {f"{s}:{o}": round(t, 2) for (s, o), t in sorted(busy.items())}}
    row["ratio_model"] = round(row["total"] / row["model"], 3)
    if proxy is not None:
        least, bucket = quotas.bound(model.phase(model_phase, work.n, model.AWS))
        own, own_bucket = quotas.bound(calls)
        refused = proxy.throttled()
        row.update({"quota": True, "quota_bound": round(least, 2), "quota_bucket": bucket,
                    "quota_ratio": round(run.seconds / least, 3) if least else None,
                    "own_calls_bound": round(own, 2), "own_calls_bucket": own_bucket,
                    "throttled": {f"{s}:{o}": c for (s, o), c in sorted(refused.items())},
                    "throttled_total": sum(refused.values()), "proxy_upstream_errors": proxy.upstream_errors,
                    "spans": {f"{s}:{o}": v for (s, o), v in sorted(proxy.spans().items())}})
    if not row["ok"]:
        row["error"] = f"killed after {timeout:.0f} s (--timeout)" if run.returncode == -9 else _tail(run.stderr)
    emit(row)
    return row["ok"]


def _tail(text: str) -> str:
    """The last lines of a failure, with nothing that looks like a value: the values are in files, not here."""
    return "\n".join(text.strip().splitlines()[-6:])[-1500:]


def one(n: int, rep: int, tools: list[str], limits: str, emit: Emit, timeout: float, quota: bool = False) -> None:
    found, why = tf.find() if "terraform" in tools else (None, "")
    if "terraform" in tools and found is None:
        print(why, file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix=f"bench-{n}-") as tmp, CountingServer() as server:
        proxy = QuotaProxy(server.url).start() if quota else None
        try:
            if "ours" in tools:
                server.reset_state()
                ours(server, Workload(n, Path(tmp) / "ours").write(), limits, emit, timeout, proxy)
            if found is not None:
                server.reset_state()
                peer(server, Workload(n, Path(tmp) / "terraform").write(), found, emit, timeout, proxy)
            server.reset_state()
        finally:
            if proxy is not None:
                proxy.stop()


def printer(out: Path, rep: int) -> Emit:
    out.parent.mkdir(parents=True, exist_ok=True)

    def emit(row: dict[str, Any]) -> None:
        row = {**row, "repeat": rep, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        ratio = f" model {row['model']} ratio {row['ratio_model']:.2f}" if "model" in row else ""
        if row.get("quota"):
            ratio += (f" quota-bound {row['quota_bound']:.1f}s ({row['quota_bucket'] or 'none'})"
                      f" throttled {row['throttled_total']}")
        calls = f" calls {row['total']}" if "total" in row else ""
        flag = "" if row.get("ok", row.get("rc") == 0) else "  FAILED " + row.get("error", "")
        print(f"{row['tool']:11} N={row['n']:<6} {row['phase']:8} {row['seconds']:8.2f}s rss "
              f"{row['peak_rss_mb']:6.1f}MB{calls}{ratio}{flag}", flush=True)
    return emit


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--tools", nargs="+", choices=("ours", "terraform"), default=["ours", "terraform"])
    p.add_argument("--rate-limits", choices=("lifted", "default"), default="lifted",
                   help="ecs-secrets' client-side limits: lifted (moto and Terraform have none) or the defaults")
    p.add_argument("--quota", action="store_true", help="through the quota proxy: AWS's published token buckets "
                   "(bench/quotas.py); ecs-secrets with its default rate limits")
    p.add_argument("--timeout", type=float, default=3600, help="seconds a phase may run before it is killed")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    args = p.parse_args(argv)
    if args.quota:
        args.rate_limits = "default"   # against quotas, the product as shipped
    print(f"results: {args.out}", flush=True)
    for n in args.n:
        for rep in range(args.repeat):
            one(n, rep, args.tools, args.rate_limits, printer(args.out, rep), args.timeout, args.quota)
    from bench import report
    rows = report.load([args.out])
    print(report.quota_table(rows) if args.quota else report.table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
