"""Crash safety: kill -9 a reconcile of 50 objects anywhere, then a clean run converges.

The reconcile runs as a subprocess (``python -m controller reconcile``) behind the fault proxy. The
proxy kills it (SIGKILL) the moment the k-th chosen request arrives, and then, by the kill's mode:

- ``any``       lets that request through (a read or a write): the process died between calls;
- ``acted``     forwards the write and drops the reply: AWS acted, the process never knew;
- ``unsent``    resets the connection without forwarding: the write never happened.

A kill at a request boundary reaches every state AWS can be left in; where the process was in its
own code between two requests does not change that state. ``FAULT_SEED`` picks k and the modes.

After each kill: a clean run exits 0, a dry-run with ``--detailed-exitcode`` exits 0, exactly one
revision per family and version 1 of every parameter exist, everything carries the owner tag, and a
prune of the whole fleet leaves nothing behind (no orphan that prune cannot find).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.register_assert_rewrite("faultkit")
from faultkit import (Fleet, assert_one_of_each, cli, converges, doc, fast_aws, fault_seed,  # noqa: E402,F401
                      holdings)
from awsops import AwsOp, is_write, matches  # noqa: E402
from faultproxy import FaultProxy, FaultRule  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
KIND = {"any": "slow", "acted": "lost_reply", "unsent": "reset_before"}   # slow with delay 0: forwarded


@dataclass(frozen=True)
class Kill:
    mode: str       # any | acted | unsent
    glob: str       # which requests count
    k: int          # the k-th of them kills

    def __str__(self) -> str:
        return f"{self.mode}@{self.glob}#{self.k}"


class Trigger:
    """A proxy match predicate that sends SIGKILL to ``pid`` when the k-th matching request arrives."""

    def __init__(self, kill: Kill) -> None:
        self.kill, self.seen, self.pid, self.fired = kill, 0, 0, False

    def __call__(self, op: AwsOp) -> bool:
        if self.fired or not matches(self.kill.glob, op) or (self.kill.mode != "any" and not is_write(op.operation)):
            return False
        self.seen += 1
        if self.seen < self.kill.k:
            return False
        os.kill(self.pid, signal.SIGKILL)
        self.fired = True
        return True


def schedule(seed: int, count: int) -> list[Kill]:
    """``count`` kills; the first always leaves a role without its inline policy (PutRolePolicy unsent)."""
    rng = random.Random(seed)
    kills = [Kill("unsent", "iam:PutRolePolicy", 1)]
    while len(kills) < count:
        mode = rng.choice(["any", "acted", "unsent", "acted"])
        glob = rng.choice(["*", "*", "ssm:PutParameter", "iam:*", "ecs:RegisterTaskDefinition"])
        limit = {"*": 86 if mode == "any" else 70, "ssm:PutParameter": 30, "iam:*": 30,
                 "ecs:RegisterTaskDefinition": 10}[glob]
        kills.append(Kill(mode, glob, rng.randint(1, limit)))
    return kills


def killed_run(moto_url: str, fleet: Fleet, folder: Path, kill: Kill) -> tuple[int, bool]:
    trigger = Trigger(kill)
    rule = FaultRule(KIND[kill.mode], match=trigger, delay=0.0)
    with FaultProxy(moto_url, seed=0, rules=[rule]) as proxy:
        env = {**os.environ, **fleet.env, "AWS_ENDPOINT_URL": proxy.url, "ECS_SECRETS_RATE_LIMITS": "off"}
        child = subprocess.Popen([sys.executable, "-m", "controller", "reconcile", "-f", str(folder),
                                  "--owner", fleet.owner], cwd=REPO, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        trigger.pid = child.pid
        _, err = child.communicate(timeout=120)
    assert child.returncode in (0, -signal.SIGKILL), err.decode()[-2000:]
    return child.returncode, trigger.fired


def fleet_of_50(tmp_path: Path) -> tuple[Fleet, Path]:
    fleet = Fleet(params=30, roles=10, families=10, deletion="Delete")
    return fleet, fleet.write(tmp_path / fleet.tag)


def prune_everything(capfd, fleet: Fleet, folder: Path) -> None:
    """Everything the killed and the clean run created is found and deleted by --prune: no orphans."""
    anchor = doc("Parameter", "anchor", {"name": f"/fleet-{fleet.tag}/anchor", "type": "String",
                                         "value": {"literal": "stays"}})
    for old in folder.glob("*.yaml"):
        old.unlink()
    (folder / "anchor.yaml").write_text(json.dumps(anchor) + "\n")
    for _ in range(2):  # parameters go once no ACTIVE revision reads them: the second pass
        run = cli(capfd, "reconcile", "-f", str(folder), "--owner", fleet.owner, "--prune", "--max-deletions", "100")
        assert run.code == 0, run.text[-3000:]


def crash_and_recover(moto_url: str, tmp_path: Path, capfd, monkeypatch, kill: Kill) -> str:
    fleet, folder = fleet_of_50(tmp_path)
    code, fired = killed_run(moto_url, fleet, folder, kill)
    for name, value in fleet.env.items():
        monkeypatch.setenv(name, value)
    first, again = converges(capfd, fleet, folder)
    assert first.code == 0, f"{kill}: {first.text[-3000:]}"
    assert again.code == 0, f"{kill}: {again.text[-3000:]}"
    assert_one_of_each(fleet, moto_url)
    prune_everything(capfd, fleet, folder)
    held = holdings(moto_url, fleet)
    assert held.versions == {f"/fleet-{fleet.tag}/anchor": 1}, kill
    assert held.roles == {} and held.untagged == [], kill
    assert all(status == "INACTIVE" for revs in held.revisions.values() for _, status in revs), kill
    return f"{kill}: {'killed' if code else 'finished first'}"


@pytest.mark.slow  # CI time: covered again by `-m slow` (README, Testing)
def test_a_role_left_without_its_policy_converges(fast_aws: str, tmp_path: Path, capfd, monkeypatch) -> None:
    """The CI subset: killed right before the first PutRolePolicy — a created role, no inline policy."""
    kill = schedule(fault_seed(), 1)[0]
    assert crash_and_recover(fast_aws, tmp_path, capfd, monkeypatch, kill).endswith("killed")


@pytest.mark.faults
def test_ten_kills_each_followed_by_a_clean_run(fast_aws: str, tmp_path: Path, capfd, monkeypatch) -> None:
    results = [crash_and_recover(fast_aws, tmp_path, capfd, monkeypatch, kill) for kill in schedule(fault_seed(), 10)]
    with capfd.disabled():   # shown with -s: where each kill landed
        print("\nCRASH " + "\nCRASH ".join(results))
    assert all(r.endswith("killed") for r in results), results
