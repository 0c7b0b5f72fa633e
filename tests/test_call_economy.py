"""Call economy: a reconcile makes no more calls than the model allows, never the same read twice, and no
read after a write; apply overlaps independent writes and keeps dependent ones in order; every HTTP
attempt takes a token from its API's bucket. The benchmark itself runs from ``python -m bench.run``."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import pytest
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # as awsserver.start_moto: attachable, as in AWS

from awsops import is_write  # noqa: E402
from awsserver import TEST_ENV, UNSET_ENV  # noqa: E402
from bench import model  # noqa: E402
from recording import Call, RecordingAws  # noqa: E402
from bench.countingserver import CountingServer  # noqa: E402
from bench.workload import Workload  # noqa: E402
from controller.aws import apply as apply_, ratelimit  # noqa: E402
from controller import reconcile  # noqa: E402
from controller.aws.session import Aws  # noqa: E402
from controller.core.plan import Blocker, Change, Plan  # noqa: E402

N = 50   # R = 5 roles: enough for the account-wide role listing


@pytest.fixture(scope="module")
def server() -> Iterator[CountingServer]:
    with CountingServer() as s:   # answers one request at a time: moto's backends are not thread-safe
        yield s


@pytest.fixture
def aws_vars(server: CountingServer, monkeypatch: pytest.MonkeyPatch) -> CountingServer:
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**TEST_ENV, "AWS_ENDPOINT_URL": server.url, ratelimit.ENV: "off"}.items():
        monkeypatch.setenv(name, value)
    return server


@pytest.fixture
def env(aws_vars: CountingServer) -> CountingServer:
    """An empty moto (process-wide: every moto server of the session shares it) and fresh counts."""
    aws_vars.reset_state()
    aws_vars.reset_counts()
    return aws_vars


def by_action(calls: list[Call]) -> Counter:
    return Counter((c.service, c.operation) for c in calls)


def converge(aws: RecordingAws, path: Path) -> tuple[reconcile.Result, list[Call], list[Call]]:
    """Observe and plan, then apply: (result, the calls of observe, the calls of apply)."""
    result = reconcile.make(aws, reconcile.load(str(path), aws), reconcile.Settings())
    reconcile.check(result.plan)
    observed = list(aws.recorded)
    reconcile.execute(aws, result)
    assert result.report is not None and result.report.ok, result.report
    return result, observed, aws.recorded[len(observed):]


def test_each_phase_within_the_model_no_read_twice_no_read_after_a_write(env, tmp_path, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG, logger="ecs_secrets")
    work = Workload(N, tmp_path).write()

    cold, observed, applied = converge(RecordingAws(), work.manifests)
    assert cold.plan.summary() == {"create": N + 10, "update": 0, "delete": 0}
    assert all(is_write(c.operation) for c in applied) and not any(is_write(c.operation) for c in observed)
    _within(by_action(observed + applied), model.cold(N, model.MOTO))
    _in_dependency_order(applied)

    noop = RecordingAws()
    result = reconcile.make(noop, reconcile.load(str(work.manifests), noop), reconcile.Settings())
    assert result.plan.changes == () and not result.plan.blockers
    _within(by_action(noop.recorded), model.noop(N, model.MOTO))
    assert [c for c, k in Counter(c.key() for c in noop.recorded).items() if k > 1] == []  # each read once
    assert sum(noop.calls.values()) == len(noop.recorded) == sum(env.counts().values()) - _before(env, cold)

    work.update()
    update, observed, applied = converge(RecordingAws(), work.manifests)
    assert sorted(c.ref for c in update.plan.changes) == ["Parameter/app0-db-password", "TaskDefinition/bench-app0"]
    assert [(c.service, c.operation) for c in sorted(applied, key=Call.key)] == [("ecs", "RegisterTaskDefinition"),
                                                                   ("ssm", "PutParameter")]
    _within(by_action(observed + applied), model.update(N, model.MOTO))

    printed = caplog.text + "".join(capsys.readouterr())
    assert not [p.name for p in work.values.iterdir() if p.read_text() in printed]


def _within(measured: Counter, modelled: Counter) -> None:
    """No action beyond the model; moto's paging (10 a page, an empty last page) is in model.MOTO."""
    over = {k: (v, modelled.get(k, 0)) for k, v in measured.items() if v > modelled.get(k, 0)}
    assert over == {}, f"more calls than the model: {over}"


def _before(server: CountingServer, _: Any) -> int:
    """Calls the server saw before the no-op: the cold phase's (the counter is not reset between phases)."""
    return sum(model.cold(N, model.MOTO).values())


def _in_dependency_order(applied: list[Call]) -> None:
    """Each RegisterTaskDefinition comes after its role's writes and its 10 parameters."""
    seen: set[str] = set()
    for call in applied:
        params = call.params
        if call.operation == "PutParameter":
            seen.add(params["Name"])
        elif call.service == "iam":
            seen.add(f"{call.operation}:{params['RoleName']}")
        elif call.operation == "RegisterTaskDefinition":
            j = int(params["family"].removeprefix("bench-app"))
            role = f"bench-app{j}-exec"
            assert {f"CreateRole:{role}", f"PutRolePolicy:{role}", f"AttachRolePolicy:{role}"} <= seen
            assert {f"/bench/app{i}/db_password" for i in range(10 * j, min(10 * j + 10, N))} <= seen


# --- apply: overlap, order, blocked-on-failure, without AWS ------------------------------------------

class Op(NamedTuple):
    ref: str


def _change(kind: str, name: str, *deps: str, action: str = "create") -> Change:
    return Change(kind, name, action, (), Op(f"{kind}/{name}"), tuple(deps))


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Every op goes to ``state["write"](ref)``; ``state["log"]`` has (event, ref) in order."""
    state: dict = {"log": [], "lock": threading.Lock(), "write": lambda ref: None}

    def writer(aws: Any, op: Op) -> None:
        with state["lock"]:
            state["log"].append(("start", op.ref))
        state["write"](op.ref)
        with state["lock"]:
            state["log"].append(("end", op.ref))
    monkeypatch.setattr(apply_, "WRITERS", {Op: writer})
    return state


def test_independent_writes_overlap(writes: dict) -> None:
    both = threading.Barrier(2, timeout=10)  # passes only if the two parameters are written at once
    writes["write"] = lambda ref: both.wait() if ref.startswith("Parameter/") else None
    plan = Plan((_change("Parameter", "a"), _change("Parameter", "b"), _change("ExecutionRole", "r")))
    report = apply_.apply(None, plan)
    assert [o.result for o in report.outcomes] == ["applied"] * 3


def test_dependent_writes_wait_and_failures_block_their_dependents(writes: dict) -> None:
    def write(ref: str) -> None:
        if ref == "Parameter/bad":
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "no"}}, "PutParameter")
    writes["write"] = write
    plan = Plan((_change("Parameter", "a"), _change("Parameter", "bad"), _change("ExecutionRole", "r"),
                 _change("TaskDefinition", "ok", "Parameter/a", "ExecutionRole/r"),
                 _change("TaskDefinition", "t", "Parameter/a", "Parameter/bad", "ExecutionRole/r"),
                 _change("TaskDefinition", "gone", "ExecutionRole/blocked")),
                (Blocker("ExecutionRole/blocked", "not ours"),))
    seen: list[str] = []
    report = apply_.apply(None, plan, on_outcome=lambda o: seen.append(o.change.ref))
    results = {o.change.ref: o.result for o in report.outcomes}
    assert results == {"Parameter/a": "applied", "Parameter/bad": "failed", "ExecutionRole/r": "applied",
                       "TaskDefinition/ok": "applied", "TaskDefinition/t": "blocked", "TaskDefinition/gone": "blocked"}
    assert [o.change.ref for o in report.outcomes] == [c.ref for c in plan.ordered()]  # plan order
    assert sorted(seen) == sorted(results)  # each outcome reported once, as it finished
    log = writes["log"]
    assert log.index(("start", "TaskDefinition/ok")) > max(log.index(("end", "Parameter/a")),
                                                           log.index(("end", "ExecutionRole/r")))
    assert ("start", "TaskDefinition/t") not in log and ("start", "TaskDefinition/gone") not in log


def test_deletes_after_writes_kind_by_kind_and_may_write_is_asked_each_time(writes: dict) -> None:
    plan = Plan((_change("Parameter", "old", action="delete"), _change("TaskDefinition", "old", action="delete"),
                 _change("Parameter", "new"), _change("ExecutionRole", "r", action="delete")))
    allowed = iter([True, True, True, False])
    report = apply_.apply(None, plan, may_write=lambda: next(allowed))
    starts = [ref for event, ref in writes["log"] if event == "start"]
    assert starts == ["Parameter/new", "TaskDefinition/old", "ExecutionRole/r"]
    assert [o.result for o in report.outcomes] == ["applied", "applied", "applied", "skipped"]


def test_a_registration_starts_as_soon_as_its_own_role_and_parameters_exist(writes: dict) -> None:
    """Parameters nothing waits for do not go before the one a task definition needs, and a write
    waiting for its quota (ECS registrations: 1 a second) holds up no write of another kind."""
    registered, unrelated_done = threading.Event(), threading.Event()

    def write(ref: str) -> None:
        if ref in ("Parameter/a", "Parameter/b"):
            registered.wait(5)          # written after the registration, not before it
        if ref == "Parameter/b":
            unrelated_done.set()
        if ref == "TaskDefinition/t":
            registered.set()
            unrelated_done.wait(5)      # a slow registration: parameters go on meanwhile
    writes["write"] = write
    plan = Plan((_change("Parameter", "a"), _change("Parameter", "b"), _change("Parameter", "x"),
                 _change("ExecutionRole", "r"), _change("TaskDefinition", "t", "Parameter/x", "ExecutionRole/r")))
    started = time.monotonic()
    report = apply_.apply(None, plan, workers=1)
    assert report.ok
    log = writes["log"]
    assert log.index(("start", "TaskDefinition/t")) < log.index(("end", "Parameter/a"))
    assert log.index(("end", "Parameter/b")) < log.index(("end", "TaskDefinition/t"))
    assert time.monotonic() - started < 4   # no wait ran into its timeout


# --- rate limits --------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, name, tps, burst", [
    (None, "ssm", 40, 40), (None, "ecs-write", 1, 20), (None, "ecs-read", 20, 50),
    ("ssm=100", "ssm", 100, 40), ("ssm=100/200", "ssm", 100, 200), ("ecs=off", "ecs-write", None, 20),
    ("off", "iam", None, 20), ("off,iam=5", "iam", 5, 20), ("ecs-write=2;ssm=off", "ecs-write", 2, 20),
])
def test_rate_limit_settings(spec: str | None, name: str, tps: float | None, burst: float) -> None:
    limit = next(lim for lim in ratelimit.parse(spec) if lim.name == name)
    assert (limit.tps, limit.burst) == (tps, burst)


@pytest.mark.parametrize("spec", ["ssm", "nosuch=3", "ssm=fast", "ssm=-1", "ssm=3/0"])
def test_bad_rate_limits_are_refused(spec: str) -> None:
    with pytest.raises(ratelimit.BadRateLimit, match="rate limit"):
        ratelimit.parse(spec)


def test_bucket_reserves_tokens_and_refills() -> None:
    now, slept = [0.0], []
    bucket = ratelimit.Bucket(2, 3, clock=lambda: now[0], sleep=slept.append)
    assert [bucket.take() for _ in range(5)] == [0, 0, 0, 0.5, 1.0]   # burst 3, then 2 a second
    now[0] = 10.0   # long idle: full again, never more than the burst
    assert [bucket.take() for _ in range(4)] == [0, 0, 0, 0.5]
    assert slept == [0.5, 1.0, 0.5]


@pytest.mark.parametrize("service, operation, bucket", [
    ("ssm", "GetParameters", "ssm"), ("ssm", "PutParameter", "ssm"), ("ecs", "DescribeTaskDefinition", "ecs-read"),
    ("ecs", "RegisterTaskDefinition", "ecs-write"), ("ecs", "ListClusters", "ecs"), ("dynamodb", "GetItem", None),
])
def test_each_api_has_its_bucket(service: str, operation: str, bucket: str | None) -> None:
    limiter = ratelimit.RateLimiter(ratelimit.DEFAULTS)
    names = {id(b): n for n, b in limiter._buckets.items()}
    assert names.get(id(limiter.bucket(service, operation))) == bucket


def test_every_call_waits_for_its_token(aws_vars: CountingServer) -> None:
    aws, slept = Aws(rate_limits="sts=1/1"), []
    assert next(lim for lim in aws.limiter.limits if lim.name == "sts").tps == 1
    aws.limiter = ratelimit.RateLimiter(ratelimit.parse("sts=1/1"), clock=lambda: 0.0, sleep=slept.append)
    sts = aws.client("sts")
    for _ in range(3):
        sts.get_caller_identity()
    aws.client("ecs").list_clusters()   # another bucket, still full
    assert slept == [1.0, 2.0] and aws.limiter.waited == 3.0


# --- roles: one account-wide listing, per-role reads where it is denied --------------------------------

class _Pages:
    def __init__(self, pages: list[dict] | Exception) -> None:
        self.pages = pages

    def paginate(self, **_: Any) -> list[dict]:
        if isinstance(self.pages, Exception):
            raise self.pages
        return self.pages


class _FakeIam:
    def __init__(self, listing: list[dict] | Exception) -> None:
        self.listing, self.calls = listing, Counter()

    def get_paginator(self, name: str) -> _Pages:
        self.calls[name] += 1
        if name == "get_account_authorization_details":
            return _Pages(self.listing)
        return _Pages([{"AttachedPolicies": [{"PolicyArn": "arn:aws:iam::aws:policy/x"}]}])

    def get_role(self, RoleName: str) -> dict:
        self.calls["get_role"] += 1
        return {"Role": {"RoleName": RoleName, "Arn": f"arn:aws:iam::123456789012:role/bench/{RoleName}",
                         "Path": "/bench/", "Tags": [{"Key": "ecs-secrets:owner", "Value": "ecs-secrets"}]}}

    def get_role_policy(self, RoleName: str, PolicyName: str) -> dict:
        self.calls["get_role_policy"] += 1
        return {"PolicyDocument": {"Version": "2012-10-17", "Statement": []}}

    def get_policy(self, PolicyArn: str) -> dict:
        self.calls["get_policy"] += 1
        return {"Policy": {"Arn": PolicyArn}}


class _FakeAws:
    def __init__(self, iam: _FakeIam) -> None:
        self.iam = iam

    def client(self, service: str, region: str | None = None) -> _FakeIam:
        return self.iam


def _detail(name: str) -> dict:
    return {"RoleName": name, "Arn": f"arn:aws:iam::123456789012:role/bench/{name}", "Path": "/bench/",
            "AssumeRolePolicyDocument": {}, "Tags": [{"Key": "ecs-secrets:owner", "Value": "ecs-secrets"}],
            "RolePolicyList": [{"PolicyName": "ecs-secrets", "PolicyDocument": {"Statement": []}},
                               {"PolicyName": "someone-elses", "PolicyDocument": {}}],
            "AttachedManagedPolicies": [{"PolicyArn": "arn:aws:iam::aws:policy/x"}]}


@pytest.mark.parametrize("listing, listed", [
    ([{"RoleDetailList": [_detail(f"bench-app{j}-exec") for j in range(4)] + [_detail("unrelated")]}], True),
    (ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetAccountAuthorizationDetails"), False),
])
def test_roles_from_one_listing_or_per_role_reads(tmp_path: Path, listing: Any, listed: bool) -> None:
    from controller.aws.observe_iam import read_roles
    from controller.core.desired import desire
    from controller.manifests import loader as manifest
    m = desire(manifest.load(Workload(40, tmp_path).write().manifests))
    iam = _FakeIam(listing)
    roles, external, missing = read_roles(_FakeAws(iam), m)
    assert sorted(roles) == [f"bench-app{j}-exec" for j in range(4)] and not external and not missing
    assert all(r.owned and r.managed == {"arn:aws:iam::aws:policy/x"} and list(r.inline) == ["ecs-secrets"]
               for r in roles.values())
    assert iam.calls["get_role"] == (0 if listed else 4) and iam.calls["get_account_authorization_details"] == 1
    assert iam.calls["get_policy"] == 1   # the default managed policy, attached nowhere yet: once for all roles
