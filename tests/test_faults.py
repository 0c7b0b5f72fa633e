"""Converge through throttling, 5xx, resets and lost replies, duplicating nothing.

The CLI runs in process (``controller.cli.main``) against moto's server behind the fault proxy, with
no backoff waits. ``FAULT_SEED`` picks the schedule (default fixed). The unmarked tests are the fast
CI subset (a small fleet); ``python -m pytest -m faults`` runs the full suite (a bigger fleet, then an
update of every value and every task definition under the same faults).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

pytest.register_assert_rewrite("faultkit")
from faultkit import (Fleet, ScriptedProxy, always, assert_one_of_each, cli, converges,  # noqa: E402
                      fast_aws, fault_seed, holdings, no_backoff)  # noqa: F401 - fixtures
from faultproxy import FaultProxy, FaultRule


def exclusive(*rates: tuple[str, float], writes_only: bool = False) -> list[FaultRule]:
    """Rules whose overall rates are ``rates``: the proxy draws them in order, the first hit wins."""
    rules, left = [], 1.0
    for kind, rate in rates:
        rules.append(FaultRule(kind, probability=min(rate / left, 1.0), writes_only=writes_only))
        left -= rate
    return rules


SCENARIOS = {
    "throttling-30": exclusive(("throttle", 0.30)),
    "throttle-15-5xx-10-reset-5": exclusive(("throttle", 0.15), ("http500", 0.04), ("http503", 0.03),
                                            ("html502", 0.03), ("reset_before", 0.05)),
    "lost-replies-30": exclusive(("lost_reply", 0.30), writes_only=True),
}
# The full suite adds everything at once: lost replies on writes, then throttles, 5xx and resets on any call.
EVERYTHING = [FaultRule("lost_reply", probability=0.10, writes_only=True)] + exclusive(
    ("throttle", 0.10), ("http500", 0.03), ("http503", 0.03), ("html502", 0.02), ("reset_before", 0.05))


class Bench:
    """A fleet's manifests in a folder, its variables set, and the proxy that AWS_ENDPOINT_URL names."""

    def __init__(self, moto_url: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.moto_url, self.folder, self.monkeypatch = moto_url, folder, monkeypatch
        self.proxy: FaultProxy | None = None

    def write(self, fleet: Fleet, revision: str = "1") -> Path:
        fleet.write(self.folder, revision)
        for name, value in fleet.env.items():
            self.monkeypatch.setenv(name, value)
        return self.folder

    def faults(self, rules: list[FaultRule], proxy_class: type = FaultProxy, **kwargs) -> FaultProxy:
        if self.proxy is None:
            self.proxy = proxy_class(self.moto_url, seed=fault_seed(), rules=rules, **kwargs).start()
            self.monkeypatch.setenv("AWS_ENDPOINT_URL", self.proxy.url)
        else:
            self.proxy.set_rules(rules)
        return self.proxy


@pytest.fixture
def bench(fast_aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_backoff: None):
    made = Bench(fast_aws, tmp_path / "manifests", monkeypatch)
    yield made
    if made.proxy is not None:
        made.proxy.stop()


def _converge_under(bench: Bench, fleet: Fleet, rules: list[FaultRule], capfd) -> FaultProxy:
    folder = bench.write(fleet)
    proxy = bench.faults(rules)
    first, again = converges(capfd, fleet, folder)
    assert first.code == 0, first.text[-3000:]
    assert again.code == 0, again.text[-3000:]
    assert "No changes. Everything is in sync." in again.out
    assert proxy.injected, "the schedule injected no fault"
    kinds = Counter(kind for _, _, kind in proxy.injected)
    with capfd.disabled():   # shown with -s: what each seed injected
        print(f"\nFAULTS seed={fault_seed()} objects={fleet.objects} requests={sum(proxy.calls.values())} "
              f"injected={dict(sorted(kinds.items()))}")
    assert_one_of_each(fleet, bench.moto_url)
    return proxy


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_small_fleet_converges(scenario: str, bench: Bench, capfd) -> None:
    _converge_under(bench, Fleet(params=4, roles=1, families=2), SCENARIOS[scenario], capfd)


@pytest.mark.faults
@pytest.mark.parametrize("scenario", sorted(SCENARIOS) + ["everything"])
def test_fleet_converges_then_updates(scenario: str, bench: Bench, capfd) -> None:
    fleet = Fleet(params=32, roles=6, families=12)
    _converge_under(bench, fleet, SCENARIOS.get(scenario, EVERYTHING), capfd)
    changed = sorted(fleet.env)
    fleet.env.update({name: value + "-2" for name, value in fleet.env.items()})
    first, again = converges(capfd, fleet, bench.write(fleet, revision="2"))

    assert (first.code, again.code) == (0, 0), first.text[-3000:] + again.text[-3000:]
    held = holdings(bench.moto_url, fleet)
    assert held.revisions == {fleet.family(i): [(1, "ACTIVE"), (2, "ACTIVE")] for i in range(fleet.families)}
    env_params = {fleet.param_name(int(name.rsplit("_", 1)[1])) for name in changed}
    assert held.versions == {fleet.param_name(i): 2 if fleet.param_name(i) in env_params else 1
                             for i in range(fleet.params)}
    assert held.untagged == []


# --- one ambiguous failure on each kind of write, at the worst moment ----------------------------

CREATES = ("ssm:PutParameter", "iam:CreateRole", "iam:AttachRolePolicy", "iam:PutRolePolicy",
           "ecs:RegisterTaskDefinition")
UPDATES = ("ssm:PutParameter", "ecs:RegisterTaskDefinition", "ecs:DeregisterTaskDefinition")


@pytest.mark.parametrize("kind", ["lost_reply", pytest.param("http500", marks=pytest.mark.faults),
                                  pytest.param("reset_before", marks=pytest.mark.faults)])
def test_one_ambiguous_failure_on_each_write(kind: str, bench: Bench, capfd) -> None:
    """The write may or may not have happened: read, then decide — no duplicate revision or version."""
    fleet = Fleet(params=4, roles=1, families=2)
    proxy = bench.faults([FaultRule(kind, match=op, limit=1) for op in CREATES])
    first, again = converges(capfd, fleet, bench.write(fleet))
    assert (first.code, again.code) == (0, 0), first.text[-3000:]
    assert sorted(proxy.injected) == sorted(tuple(op.split(":")) + (kind,) for op in CREATES)
    assert_one_of_each(fleet, bench.moto_url)

    fleet.env.update({name: value + "-2" for name, value in fleet.env.items()})
    fleet.keep = 1
    proxy.set_rules([FaultRule(kind, match=op, limit=1) for op in UPDATES])
    proxy.reset_counts()
    first, again = converges(capfd, fleet, bench.write(fleet, revision="2"), "--prune")   # keepRevisions deletes

    assert (first.code, again.code) == (0, 0), first.text[-3000:]
    held = holdings(bench.moto_url, fleet)
    assert held.revisions == {fleet.family(i): [(1, "INACTIVE"), (2, "ACTIVE")] for i in range(fleet.families)}
    assert held.versions == {fleet.param_name(i): 2 if i % 4 in (0, 3) else 1 for i in range(fleet.params)}
    assert sorted(proxy.injected) == sorted(tuple(op.split(":")) + (kind,) for op in UPDATES)


# --- what botocore does not retry: conflicts, eventual consistency, terminal errors -------------

HEALED = {
    "ssm:PutParameter": (400, "TooManyUpdates", "There are concurrent updates for the resource that you are "
                         "trying to update. Please try again."),
    "iam:PutRolePolicy": (409, "ConcurrentModification", "Cannot perform the operation on the same entity "
                          "concurrently."),
    "iam:AttachRolePolicy": (404, "NoSuchEntity", "The role with name {role} cannot be found."),
    "ecs:RegisterTaskDefinition": (400, "ClientException", "ECS was unable to assume the role "
                                   "'arn:aws:iam::123456789012:role/x' that was provided for this task. Please "
                                   "verify that the role being passed has the proper trust relationship and "
                                   "permissions and that your IAM user has permissions to pass this role."),
}


def test_conflicts_and_eventual_consistency_are_retried(bench: Bench, capfd) -> None:
    fleet = Fleet(params=4, roles=1, families=2)
    script = [(op, 2, always(*answer)) for op, answer in HEALED.items()]
    proxy = bench.faults([], ScriptedProxy, script=script)
    first, again = converges(capfd, fleet, bench.write(fleet))

    assert (first.code, again.code) == (0, 0), first.text[-3000:]
    assert sorted({(s, o) for s, o, _ in proxy.scripted}) == sorted(tuple(op.split(":")) for op in HEALED)
    assert len(proxy.scripted) == 2 * len(HEALED)
    assert_one_of_each(fleet, bench.moto_url)


TERMINAL = {
    "AccessDeniedException": (400, "User: arn:aws:sts::123456789012:assumed-role/ci/x is not authorized to "
                                   "perform: ssm:PutParameter on resource: {name}"),
    "ValidationException": (400, "1 validation error detected: Value at 'tier' failed to satisfy constraint"),
    "ParameterAlreadyExists": (400, "The parameter already exists. To overwrite this value, set the overwrite "
                                    "option in the request to true."),
}


@pytest.mark.parametrize("code", sorted(TERMINAL))
def test_terminal_errors_are_not_retried(code: str, bench: Bench, capfd) -> None:
    fleet = Fleet(params=1, roles=0, families=0)
    status, message = TERMINAL[code]
    proxy = bench.faults([], ScriptedProxy, script=[("ssm:PutParameter", None, always(status, code, message))])
    run = cli(capfd, "reconcile", "-f", str(bench.write(fleet)), "--owner", fleet.owner)

    assert run.code == 1
    assert "Parameter/param-000: failed: " in run.err and code in run.err
    assert proxy.calls[("ssm", "PutParameter")] == 1   # no retry, by botocore or by us
    assert holdings(bench.moto_url, fleet).versions == {}


@pytest.mark.parametrize(("exc", "ambiguous", "retryable"), [
    ("ConnectionClosedError", True, False),
    ("ReadTimeoutError", True, False),
    ("EndpointConnectionError", False, True),
    ("ConnectTimeoutError", False, True),
])
def test_connection_errors_are_classified(exc: str, ambiguous: bool, retryable: bool) -> None:
    import botocore.exceptions as be
    from controller.aws import retry
    error = getattr(be, exc)(endpoint_url="http://127.0.0.1:1", error="x")
    assert (retry.is_ambiguous(error), retry.is_retryable(error), retry.is_terminal(error)) == (
        ambiguous, retryable, False)


@pytest.mark.parametrize(("status", "code", "ambiguous", "retryable"), [
    (500, "InternalFailure", True, False),
    (503, "ServiceUnavailable", True, False),
    (502, "502", True, False),
    (400, "ThrottlingException", False, True),
    (400, "Throttling", False, True),
    (400, "TooManyUpdates", False, True),
    (409, "ConcurrentModification", False, True),
    (400, "AccessDeniedException", False, False),
    (403, "AccessDenied", False, False),
    (400, "ValidationException", False, False),
    (400, "ParameterAlreadyExists", False, False),
])
def test_aws_errors_are_classified(status: int, code: str, ambiguous: bool, retryable: bool) -> None:
    from botocore.exceptions import ClientError
    from controller.aws import retry
    error = ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                        "PutParameter")
    assert (retry.is_ambiguous(error), retry.is_retryable(error)) == (ambiguous, retryable)
    assert retry.is_terminal(error) == (not ambiguous and not retryable)
