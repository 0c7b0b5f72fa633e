"""A write AWS acts on after the client gave up on its reply is not sent a second time.

AWS keeps processing a request whose client timed out: the read timeout is the client's own limit,
not a cancellation (botocore docs, Config ``read_timeout``: "the time in seconds till a timeout
exception is thrown when attempting to read from a connection"; AWS SDKs and Tools Reference Guide,
"Retry behavior": a timed-out request "may have succeeded" on the service side). The fault proxy holds
the request (``late``) longer than the client's read timeout, then forwards it: moto acts on it after
the client has failed. ``write_once`` must wait out connect + read timeout before it reads back, and
then find the write instead of sending it again.

Timeouts are shrunk (connect 4 s, read 2 s) so that this runs in seconds: the request reaches moto
at 4.5 s; the read-back without the wait came at 2.5–3.5 s (tenacity's first backoff), with it at 8 s.
Each test then waits until the proxy has forwarded every request it received, the late one included.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest
from botocore.config import Config

pytest.register_assert_rewrite("faultkit")
from faultkit import OWNER_TAG, cli, direct, doc, fast_aws  # noqa: E402,F401 - fast_aws is a fixture
from faultproxy import FaultProxy, FaultRule  # noqa: E402

from controller.aws.session import Aws  # noqa: E402

CONNECT, READ, LATE = 4, 2, 4.5


@pytest.fixture
def late(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Every client of the CLI has short timeouts and talks to moto through the proxy."""
    moto_url = request.getfixturevalue("fast_aws")
    real = Aws.__init__

    def quick(self, *args, **kwargs) -> None:
        real(self, *args, **kwargs)
        self.config = self.config.merge(Config(connect_timeout=CONNECT, read_timeout=READ))
    monkeypatch.setattr(Aws, "__init__", quick)
    with FaultProxy(moto_url) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        yield proxy


def _all_forwarded(proxy: FaultProxy, seconds: float = 2 * LATE) -> None:
    deadline = time.monotonic() + seconds
    while sum(proxy.forwarded.values()) < sum(proxy.calls.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proxy.forwarded == proxy.calls


def _write(folder: Path, *docs: dict) -> str:
    folder.mkdir(exist_ok=True)
    (folder / "all.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs) + "\n")
    return str(folder)


def test_a_registration_acted_on_after_the_read_timeout_makes_one_revision(late: FaultProxy, tmp_path: Path, capfd) -> None:
    tag = secrets.token_hex(3)
    family = f"late-{tag}"
    td = doc("TaskDefinition", "web", {"family": family, "containerDefinitions": [
        {"name": "app", "image": "nginx", "memory": 64}]})
    late.set_rules([FaultRule("late", match="ecs:RegisterTaskDefinition", delay=LATE, limit=1)])

    run = cli(capfd, "reconcile", "-f", _write(tmp_path / "m", td), "--owner", f"owner-{tag}")

    assert run.code == 0, run.text
    _all_forwarded(late)
    assert late.injected == [("ecs", "RegisterTaskDefinition", "late")]
    ecs = direct("ecs", late.upstream_url)
    arns = ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
    assert [a.rsplit("/", 1)[1] for a in arns] == [f"{family}:1"]
    tags = ecs.list_tags_for_resource(resourceArn=arns[0])["tags"]
    assert {t["key"]: t["value"] for t in tags}[OWNER_TAG] == f"owner-{tag}"


@pytest.mark.slow
def test_an_overwrite_acted_on_after_the_read_timeout_makes_one_version(late: FaultProxy, tmp_path: Path, capfd,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    tag = secrets.token_hex(3)
    name, variable = f"/late-{tag}/token", f"LATE_{tag.upper()}"
    param = doc("Parameter", "token", {"name": name, "value": {"fromEnv": variable}})
    folder = _write(tmp_path / "m", param)
    first, second = "canary" + secrets.token_hex(12), "canary" + secrets.token_hex(12)
    monkeypatch.setenv(variable, first)
    assert cli(capfd, "reconcile", "-f", folder, "--owner", f"owner-{tag}").code == 0
    monkeypatch.setenv(variable, second)
    late.set_rules([FaultRule("late", match="ssm:PutParameter", delay=LATE, limit=1)])

    run = cli(capfd, "reconcile", "-f", folder, "--owner", f"owner-{tag}")

    assert run.code == 0, run.text
    _all_forwarded(late)
    assert late.injected == [("ssm", "PutParameter", "late")]
    got = direct("ssm", late.upstream_url).get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert got["Version"] == 2 and got["Value"] == second
    assert first not in run.text and second not in run.text
