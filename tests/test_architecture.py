"""The pipeline's shape, pinned: ``Desired`` is built once per load and resolved once per reconcile, and
every stage is handed it, never the manifest. The import contracts themselves run as ``lint-imports``
(README "Architecture")."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from awsserver import TEST_ENV, UNSET_ENV  # noqa: E402
from bench.workload import Workload  # noqa: E402
from controller import reconcile  # noqa: E402
from controller.aws import ratelimit  # noqa: E402
from controller.aws.session import Aws  # noqa: E402
from controller.core.desired import Desired  # noqa: E402
from controller.daemon.loop import Daemon  # noqa: E402
from controller.daemon.metrics import Metrics  # noqa: E402
from controller.manifests.documents import Manifest  # noqa: E402


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**TEST_ENV, ratelimit.ENV: "off"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield Aws(region="us-east-1")


def spy(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, calls: list, label: str = "") -> None:
    real: Callable = getattr(owner, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append((label or name, args + tuple(kwargs.values())))
        return real(*args, **kwargs)
    monkeypatch.setattr(owner, name, recorded)


def test_every_stage_is_handed_one_desired_value_never_the_manifest(aws: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    desired = reconcile.load(str(Workload(12, tmp_path).write().manifests), aws)
    calls: list = []
    for stage in ("observe", "plan_prune", "make_plan"):
        spy(monkeypatch, reconcile, stage, calls)
    spy(monkeypatch, reconcile.values_, "resolve", calls, "values")
    spy(monkeypatch, Desired, "resolve", calls, "Desired.resolve")

    result = reconcile.make(aws, desired, reconcile.Settings(prune=True))

    stages = {name: args for name, args in calls}
    assert [name for name, _ in calls] == ["values", "observe", "Desired.resolve", "plan_prune", "make_plan"]
    assert stages["observe"][1] is desired                     # observe reads Desired.reads
    (resolved,) = {id(stages["plan_prune"][0]), id(stages["make_plan"][0])}
    assert resolved == id(result.desired) and result.desired.ctx is result.actual.ctx   # resolved once
    assert not any(isinstance(a, Manifest) for _, args in calls for a in args)


def test_the_daemon_builds_desired_once_per_load_not_per_reconcile(aws: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    follower = SimpleNamespace(is_leader=lambda: False)   # reads and plans, writes nothing
    daemon = Daemon(aws, str(Workload(6, tmp_path).write().manifests), reconcile.Settings(isolate=True),
                    interval=60, metrics=Metrics(), lease=follower)
    daemon.load()
    loaded = daemon.desired
    loads: list = []
    handed: list = []
    spy(monkeypatch, reconcile, "load", loads)
    spy(monkeypatch, reconcile, "make", handed)
    daemon.tick()
    daemon.tick()
    assert loads == [] and [args[1] for _, args in handed] == [loaded, loaded]
    assert all(a is loaded for a in (args[1] for _, args in handed))
