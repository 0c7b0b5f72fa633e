"""The events benchmark: what an idle daemon costs per hour, polling against `run --events`, and how fast
an event's out-of-band change is repaired, against the counting moto server on 127.0.0.1.

    python -m bench.events --n 1000 10000 --burst-n 1000        # the table of docs/benchmarks.md, "Events"

For every N: the workload of ``bench.workload`` created cold (``reconcile``, rate limits lifted: setup
only), an SQS queue, then

1. **polling pass**: ``run --once`` — one pass of the polling daemon; its calls by action;
2. **events daemon**: ``run --events QUEUE_URL`` (the default 20 s long poll, default rate limits unless
   ``--rate-limits lifted``), its peak RSS (VmHWM) at the end; the calls of its first full pass (what every
   ``--resync-interval`` costs), then of an idle window (``--idle`` seconds: only SQS long polls expected);
3. **burst** (only at ``--burst-n``): ``--changes`` out-of-band PutParameter on ``--objects`` declared
   parameters (round-robin), then one EventBridge "Parameter Store Change" event per change on the queue
   (SendMessageBatch, 10 a call); per event, the time from its enqueue to the daemon's first PutParameter
   of that parameter that moto finished answering after it (the server timestamps every PutParameter).

Per hour: polling = ``3600 / --interval`` passes (60 at the default 60 s); events = ``3600 /
--resync-interval`` full passes (1 at the default) plus the idle window's non-SQS calls scaled to an hour;
SQS long polls are counted apart. One JSON line per N in ``--out``. Values are random and never printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue as queue_
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # before moto builds its IAM backend

import boto3  # noqa: E402
from moto.core.utils import unix_time  # noqa: E402
from moto.sqs import models as sqs_models  # noqa: E402

from bench import measure  # noqa: E402
from bench.countingserver import CountingMiddleware, CountingServer, _take_body, identify  # noqa: E402
from bench.run import REPO, base_env  # noqa: E402
from bench.workload import Workload, param_name  # noqa: E402
from werkzeug.datastructures import EnvironHeaders  # noqa: E402

ACCOUNT = "123456789012"   # moto's default account
REGION = "us-east-1"
SQS = "sqs"
LONG_POLLS = frozenset({("sqs", "ReceiveMessage")})


# --- pure helpers (tests/test_bench_events.py) ---------------------------------------------------

def parameter_event(name: str, region: str = REGION, account: str = ACCOUNT, when: float | None = None) -> str:
    """An SSM "Parameter Store Change" (Update) in EventBridge's shape, as the documentation's sample is
    (tests/fixtures/events/ssm-parameter-store-change-update.json), for parameter ``name``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when if when is not None else time.time()))
    return json.dumps({
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Parameter Store Change", "source": "aws.ssm",
        "account": account, "time": stamp, "region": region,
        "resources": [f"arn:aws:ssm:{region}:{account}:parameter{name}"],
        "detail": {"operation": "Update", "name": name, "type": "SecureString", "description": ""},
    })


def latencies(enqueued: Iterable[tuple[str, float]], landed: dict[str, list[float]]) -> list[float | None]:
    """Per event (name, enqueue time): seconds to the first repair of that name that landed at or after it;
    None where none landed."""
    out: list[float | None] = []
    for name, at in enqueued:
        after = [t for t in landed.get(name, ()) if t >= at]
        out.append(min(after) - at if after else None)
    return out


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def split_long_polls(calls: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(calls other than SQS long polls, the long polls), of ``"service:Operation"`` counts."""
    polls = {k: v for k, v in calls.items() if tuple(k.split(":", 1)) in LONG_POLLS}
    return {k: v for k, v in calls.items() if k not in polls}, polls


def per_hour(polling_pass: int, resync_pass: int, idle_other: int, idle_polls: int, idle_seconds: float,
             interval: float = 60.0, resync: float = 3600.0) -> dict[str, float]:
    """API calls per hour of an idle daemon: polling (a pass every ``interval``) against events (a full
    pass every ``resync`` plus what the idle window made, scaled to an hour); long polls apart."""
    polling = polling_pass * 3600 / interval
    events = resync_pass * 3600 / resync + idle_other * 3600 / idle_seconds
    return {"polling_per_hour": round(polling, 1), "events_per_hour": round(events, 1),
            "long_polls_per_hour": round(idle_polls * 3600 / idle_seconds, 1),
            "ratio": round(events / polling, 5) if polling else float("nan")}


def summary(values: list[float | None]) -> dict[str, Any]:
    got = [v for v in values if v is not None]
    if not got:
        return {"events": len(values), "repaired": 0}
    return {"events": len(values), "repaired": len(got), "median_s": round(statistics.median(got), 3),
            "p99_s": round(percentile(got, 99), 3), "max_s": round(max(got), 3), "min_s": round(min(got), 3)}


# --- the server: counts, and when each PutParameter landed -------------------------------------

class TimingMiddleware(CountingMiddleware):
    """Counts like ``CountingMiddleware``; also the time moto finished each PutParameter, by name. SQS long
    polls are answered outside the one-at-a-time lock: a 20 s ReceiveMessage must not stop moto."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.landed: dict[str, list[float]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = _take_body(environ)
        op = identify(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""),
                      EnvironHeaders(environ), body, environ.get("QUERY_STRING", ""))
        if op.service == "moto-api":
            return self.app(environ, start_response)
        start = time.perf_counter()
        if (op.service, op.operation) in LONG_POLLS:
            reply = list(self.app(environ, start_response))
        else:
            with self._serve:
                reply = list(self.app(environ, start_response))
        done, busy = time.time(), time.perf_counter() - start
        with self._lock:
            self.calls[(op.service, op.operation)] += 1
            self.seconds[(op.service, op.operation)] += busy
            if (op.service, op.operation) == ("ssm", "PutParameter"):
                try:
                    name = json.loads(body).get("Name", "")
                except ValueError:
                    name = ""
                self.landed.setdefault(name, []).append(done)
        return reply


def _retention_ok(self: Any, queue_name: str, message: Any) -> bool:
    """moto's own check, without computing every attribute of the queue (each a scan of all its messages)
    for every message it delivers: with 1,000 messages waiting, that made each ReceiveMessage quadratic."""
    period = int(self.get_queue(queue_name).message_retention_period)
    return period + message.sent_timestamp / 1000 > unix_time()


def server() -> CountingServer:
    sqs_models.SQSBackend.is_message_valid_based_on_retention_period = _retention_ok
    # SendMessage reads one attribute through all of them, three of which scan every message: quadratic
    # in a burst. The daemon never asks for them (its probe asks for QueueArn); the benchmark's moto says 0.
    for name in ("approximate_number_of_messages_delayed", "approximate_number_of_messages_not_visible",
                 "approximate_number_of_messages"):
        setattr(sqs_models.Queue, name, property(lambda self: 0))
    s = CountingServer()
    s.middleware = TimingMiddleware(s.middleware.app)
    return s


def _client(service: str, url: str) -> Any:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name=REGION).client(service, endpoint_url=url)


def counted(s: CountingServer) -> dict[str, int]:
    return {f"{svc}:{op}": c for (svc, op), c in sorted(s.counts().items())}


# --- the daemon as a subprocess -------------------------------------------------------------

class Daemon:
    """``python -m controller run ...`` with JSON logs read line by line."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.lines: queue_.Queue[dict[str, Any]] = queue_.Queue()
        self.tail: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                rec = json.loads(line)
            except ValueError:
                rec = {"message": line.strip()}
            self.tail = (self.tail + [rec.get("message", "")])[-8:]
            self.lines.put(rec)

    def wait_for(self, prefix: str, timeout: float) -> dict[str, Any]:
        """The next log line whose message starts with ``prefix``."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"no {prefix!r} log line (rc {self.proc.poll()}): {self.tail}")
            try:
                rec = self.lines.get(timeout=min(left, 1.0))
            except queue_.Empty:
                continue
            if rec.get("message", "").startswith(prefix):
                return rec

    def stop(self) -> float:
        """Stops the daemon; its peak RSS: the kernel's high-water mark (VmHWM), read just before (no
        sampling thread in the process that runs moto)."""
        peak = measure._hwm_bytes(self.proc.pid) / 2**20
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return peak


# --- one N ------------------------------------------------------------------------------------

def one(n: int, args: argparse.Namespace) -> dict[str, Any]:
    row: dict[str, Any] = {"n": n, "rate_limits": args.rate_limits, "interval": args.interval,
                           "resync_interval": args.resync_interval, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with tempfile.TemporaryDirectory(prefix=f"bench-events-{n}-") as tmp, server() as s:
        s.reset_state()
        work = Workload(n, Path(tmp)).write()
        env = base_env(s.url)
        cli = [sys.executable, "-m", "controller"]
        setup = measure.run([*cli, "reconcile", "-f", str(work.manifests)], {**env, "ECS_SECRETS_RATE_LIMITS": "off"},
                            timeout=args.timeout)
        if setup.returncode != 0:
            raise RuntimeError(f"cold create failed: {setup.stderr[-1500:]}")
        row["setup_seconds"] = round(setup.seconds, 1)
        daemon_env = dict(env) if args.rate_limits == "default" else {**env, "ECS_SECRETS_RATE_LIMITS": "off"}
        client = _client("sqs", s.url)
        url = client.create_queue(QueueName="ecs-secrets-events")["QueueUrl"]
        common = ["-f", str(work.manifests), "--log-format", "json", "--interval", str(args.interval)]

        if not args.no_polling_pass:
            s.reset_counts()   # 1. one pass of the polling daemon
            once = measure.run([*cli, "run", *common, "--once"], daemon_env, timeout=args.timeout)
            row["polling_pass"] = {"rc": once.returncode, "seconds": round(once.seconds, 1),
                                   "peak_rss_mb": round(once.peak_rss_mb, 1), "calls": counted(s)}
            print(f"N={n} polling pass: {sum(counted(s).values())} calls in {once.seconds:.1f}s", flush=True)

        s.reset_counts()   # 2. the events daemon: its first full pass is what a resync costs
        d = Daemon([*cli, "run", *common, "--events", url, "--resync-interval", str(args.resync_interval),
                    "--metrics-port", "0"], daemon_env)
        try:
            started = time.monotonic()
            d.wait_for("reconcile ", args.timeout)
            row["resync_pass"] = {"seconds": round(time.monotonic() - started, 1), "calls": counted(s)}
            print(f"N={n} full pass (resync): {sum(counted(s).values())} calls", flush=True)
            s.reset_counts()
            time.sleep(args.idle)
            other, polls = split_long_polls(counted(s))
            row["idle"] = {"seconds": args.idle, "calls": counted(s)}
            print(f"N={n} idle {args.idle:.0f}s: {other or 'no calls'} besides {polls}", flush=True)
            if n == args.burst_n and args.changes:
                row["burst"] = burst(s, work, client, url, d, args)
        finally:
            row["daemon_peak_rss_mb"] = round(d.stop(), 1)
    if "polling_pass" not in row:
        return row
    polling_pass = sum(row["polling_pass"]["calls"].values())
    resync_pass = sum(row["resync_pass"]["calls"].values())
    other, polls = split_long_polls(row["idle"]["calls"])
    row["per_hour"] = per_hour(polling_pass, resync_pass, sum(other.values()), sum(polls.values()), args.idle,
                               args.interval, args.resync_interval)
    return row


def burst(s: CountingServer, work: Workload, client: Any, url: str, d: Daemon, args: argparse.Namespace) -> dict:
    ssm = _client("ssm", s.url)
    names = [param_name(i % min(args.objects, work.n)) for i in range(args.changes)]
    for name in names:   # out of band: another writer changes the value
        ssm.put_parameter(Name=name, Value=secrets.token_urlsafe(24), Type="SecureString", Overwrite=True)
    mw = s.middleware
    assert isinstance(mw, TimingMiddleware)
    with mw._lock:
        mw.landed.clear()
    s.reset_counts()
    enqueued: list[tuple[str, float]] = []
    for k in range(0, len(names), 10):
        chunk, at = names[k:k + 10], time.time()
        client.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(j), "MessageBody": parameter_event(name)} for j, name in enumerate(chunk)])
        enqueued += [(name, at) for name in chunk]
    sent = time.time()
    want = set(names)
    end = time.monotonic() + args.timeout
    while time.monotonic() < end:
        with mw._lock:
            done = set(mw.landed)
        if want <= done:
            break
        time.sleep(0.2)
    time.sleep(2 * 20 + 5)   # the deletes and the next long poll, so the calls of the burst are complete
    with mw._lock:
        landed = {k: list(v) for k, v in mw.landed.items()}
    lat = latencies(enqueued, landed)
    out = {"changes": args.changes, "objects": min(args.objects, work.n), "enqueue_seconds": round(sent - enqueued[0][1], 2),
           **summary(lat), "repairs": sum(len(v) for v in landed.values()), "calls": counted(s)}
    print(f"burst: {out}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--burst-n", type=int, default=1000, help="the N at which the burst is measured")
    p.add_argument("--changes", type=int, default=1000, help="out-of-band changes, one event each (0: no burst)")
    p.add_argument("--objects", type=int, default=1000, help="over how many parameters the changes go")
    p.add_argument("--idle", type=float, default=65.0, help="seconds of the idle window")
    p.add_argument("--interval", type=float, default=60.0)
    p.add_argument("--resync-interval", type=float, default=3600.0)
    p.add_argument("--rate-limits", choices=("default", "lifted"), default="default",
                   help="the daemons' client-side limits (the cold create always runs with them lifted)")
    p.add_argument("--no-polling-pass", action="store_true", help="skip the polling pass (a burst-only run)")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / f"events-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    args = p.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(f"results: {args.out}", flush=True)
    for n in args.n:
        row = one(n, args)
        with args.out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: row.get(k) for k in ("n", "per_hour", "daemon_peak_rss_mb")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
