"""``fromFile`` values: only a regular file is read, and never more than the tier allows.

A FIFO blocks whoever opens it until a writer comes, ``/dev/zero`` never ends, and a mount can hang:
each would stop the one-shot and the daemon's loop (``/healthz`` then fails and nothing else
converges) or fill memory. The reader refuses what is not a regular file before opening it, stops
reading one byte past the tier's limit (SSM PutParameter API reference, ``Value``: "Standard
parameters have a value limit of 4 KB. Advanced parameters have a value limit of 8 KB."), and gives
up on a read that takes longer than ``manifests.valuefile.READ_TIMEOUT``.

Every run that could hang or eat memory on a regression runs with a timeout (a subprocess timeout or
a thread join) and under an address-space limit, so a regression fails instead of stalling the suite.
"""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest

from controller import reconcile
from controller.aws.session import Aws
from controller.core.desired import desire
from controller.daemon.loop import Daemon
from controller.daemon.metrics import Metrics
from controller.manifests import loader, valuefile
from controller.vocab.problems import ManifestError

REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


def parameter(name: str, source: str, tier: str = "Standard", ssm: str | None = None) -> str:
    return (f"---\napiVersion: ecs-secrets/v1\nkind: Parameter\nmetadata: {{name: {name}}}\nspec:\n"
            f"  name: {ssm or '/values/' + name}\n  tier: {tier}\n  value: {source}\n")


def canary() -> str:
    return "canary" + secrets.token_hex(12)


def resolve(folder: Path, text: str, environ: dict[str, str] | None = None):
    (folder / "m.yaml").write_text(text)
    desired = desire(loader.load(str(folder / "m.yaml"), region="us-east-1"), "values-test")
    return reconcile.resolve_values(desired, reconcile.Settings(environ=environ or {}))


def problems_of(folder: Path, text: str) -> str:
    with pytest.raises(ManifestError) as refused:
        resolve(folder, text)
    return str(refused.value)


@contextmanager
def address_space(headroom: int) -> Iterator[None]:
    """At most ``headroom`` more bytes of address space: a reader that slurps fails fast (MemoryError)
    instead of taking the machine's memory."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        in_use = int(statm.read().split()[0]) * resource.getpagesize()
    cap = in_use + headroom if hard == resource.RLIM_INFINITY else min(hard, in_use + headroom)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def unblocked(fifo: Path, work: Callable[[], object], seconds: float = 60) -> object:
    """``work()`` in a thread; should it block on ``fifo`` (a regression), a writer comes and goes so that
    the blocked open returns, and the test fails instead of hanging."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
        pytest.fail(f"blocked on the FIFO {fifo}")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1024 * MiB, resource.getrlimit(resource.RLIMIT_AS)[1]))


# --- the one-shot ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_the_one_shot_refuses_a_fifo_or_a_device_at_once(kind: str, tmp_path: Path) -> None:
    if kind == "fifo":
        source = tmp_path / "value.fifo"
        os.mkfifo(source)
        expect = "a FIFO (named pipe), not a regular file"
    else:
        source = Path("/dev/zero")
        expect = "a character device, not a regular file"
    (tmp_path / "m.yaml").write_text(parameter("db", f"{{fromFile: {source}}}"))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_CONFIG_FILE": os.devnull,
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull}   # refused before any request: nothing listens there
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "controller", "reconcile", "-f", str(tmp_path / "m.yaml"),
                               "--region", "us-east-1"], capture_output=True, text=True, timeout=60, cwd=REPO,
                              env=env, preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"reconcile hung on a fromFile that is {expect.split(',')[0]}")
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 60
    line = next(line for line in done.stderr.splitlines() if "fromFile" in line)
    assert "m.yaml:8: Parameter/db: spec.value.fromFile: cannot read" in line and expect in line, done.stderr
    assert "Traceback" not in done.stderr


def test_a_symlink_to_a_fifo_is_refused_too(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "value").symlink_to(tmp_path / "pipe")
    message = unblocked(tmp_path / "pipe", lambda: problems_of(tmp_path, parameter("db", f"{{fromFile: {tmp_path / 'value'}}}")))
    assert "Parameter/db: spec.value.fromFile" in message and "a FIFO" in message


def test_a_read_that_never_returns_is_given_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mount that stopped answering (a hung NFS server) is the one case a stat cannot tell apart."""
    release = threading.Event()

    def stuck(path: str, limit: int) -> str:
        release.wait(30)
        return "too late"
    monkeypatch.setattr(valuefile, "READ_TIMEOUT", 0.2)
    monkeypatch.setattr(valuefile, "_read_regular", stuck)
    (tmp_path / "value").write_text(canary())
    started = time.monotonic()
    try:
        message = problems_of(tmp_path, parameter("db", f"{{fromFile: {tmp_path / 'value'}}}"))
    finally:
        release.set()
    assert time.monotonic() - started < 5
    assert "Parameter/db: spec.value.fromFile: cannot read" in message and "no answer within 0.2 s" in message


# --- the tier's limit, checked before anything is held -----------------------------------------

@pytest.mark.parametrize(("tier", "limit"), [("Standard", 4096), ("Advanced", 8192)])
def test_the_limit_is_the_tiers_with_one_trailing_newline(tier: str, limit: int, tmp_path: Path) -> None:
    fits, over = tmp_path / "fits", tmp_path / "over"
    fits.write_bytes(b"f" * limit + b"\n")       # the newline is stripped: exactly the limit
    over.write_bytes(b"o" * (limit + 1))
    values, problems = resolve(tmp_path, parameter("fits", f"{{fromFile: {fits}}}", tier))
    assert problems == [] and values["fits"].reveal() == "f" * limit
    message = problems_of(tmp_path, parameter("over", f"{{fromFile: {over}}}", tier))
    assert f"Parameter/over: spec.value.fromFile: the value is over the {tier} tier's limit of {limit} bytes" \
        in message
    assert str(limit + 1) not in message   # the limit may be said; the value's length may not


def test_a_20_mb_file_is_refused_without_being_read(tmp_path: Path) -> None:
    value = canary()
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.write(value.encode())
        f.truncate(20 * MiB)   # sparse: no disk for the rest
    text = parameter("big", f"{{fromFile: {big}}}")
    tracemalloc.start()
    try:
        with address_space(512 * MiB):
            message = problems_of(tmp_path, text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * MiB, f"resolving a 20 MB value file peaked at {peak / MiB:.0f} MiB"
    assert "Parameter/big: spec.value.fromFile" in message and "over the Standard tier's limit of 4096 bytes" in message
    assert value not in message and str(20 * MiB) not in message


def test_an_oversized_value_from_the_environment_says_no_length(tmp_path: Path) -> None:
    value = canary() * 200
    (tmp_path / "m.yaml").write_text(parameter("db", "{fromEnv: VALUES_DB}"))
    desired = desire(loader.load(str(tmp_path / "m.yaml"), region="us-east-1"), "values-test")
    with pytest.raises(ManifestError) as refused:
        reconcile.resolve_values(desired, reconcile.Settings(environ={"VALUES_DB": value}))
    message = str(refused.value)
    assert "spec.value: the value is over the Standard tier's limit of 4096 bytes; set tier: Advanced" in message
    assert str(len(value)) not in message and value[:20] not in message


# --- the daemon ------------------------------------------------------------------------------

def test_the_daemon_keeps_ticking_and_converges_the_rest(aws_env: str, tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", folder)
    kms = boto3.client("kms", endpoint_url=aws_env, region_name="us-east-1")
    kms.create_alias(AliasName="alias/MyAliasName", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    boto3.client("secretsmanager", endpoint_url=aws_env, region_name="us-east-1").create_secret(
        Name="payments/stripe-token", SecretString="not-read")
    fifo = tmp_path / "db.fifo"
    os.mkfifo(fifo)
    params = folder / "parameters.yaml"
    params.write_text(params.read_text().replace("fromEnv: DB_PASSWORD", f"fromFile: {fifo}"))
    d = Daemon(Aws(), str(folder), reconcile.Settings(environ={}, isolate=True), interval=60, metrics=Metrics())
    d.load()

    assert unblocked(fifo, d.tick) == "partial"
    states = {ref: s.state for ref, s in d.table.objects.items()}
    assert states == {"Parameter/db-password": "error", "Parameter/api-key": "in_sync",
                      "Parameter/log-level": "in_sync", "ExecutionRole/web-exec": "in_sync",
                      "TaskDefinition/web": "blocked"}
    assert "a FIFO (named pipe), not a regular file" in d.table.objects["Parameter/db-password"].last_error
    assert d.healthy()[0]


def test_a_fifo_given_to_f_is_refused_not_read(tmp_path):
    """A FIFO named by -f would block the manifest read forever, as it did fromFile's."""
    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)
    run = subprocess.run([sys.executable, "-m", "controller", "validate", "-f", str(fifo)], capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 1 and "not a regular file" in run.stderr, run.stderr
