"""The DynamoDB lease against moto's server, stepped by hand with a fake monotonic clock."""

from __future__ import annotations

import threading
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from awsserver import TEST_ENV, UNSET_ENV
from controller.aws.session import Aws
from controller.daemon.lease import Lease

TABLE = "ecs-secrets-leases"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def aws_env(moto_server, monkeypatch):
    """Like conftest's, without resetting moto (slow): every test has a lease item of its own instead."""
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**TEST_ENV, "AWS_ENDPOINT_URL": moto_server.url}.items():
        monkeypatch.setenv(name, value)
    return moto_server.url


@pytest.fixture
def key() -> str:
    return f"ecs-secrets/{uuid.uuid4().hex}"


@pytest.fixture
def make(aws_env, clock, key):
    aws = Aws()  # one client for all replicas of a test: they differ only in holder id

    def make(holder: str, **kw) -> Lease:
        return Lease(aws, TABLE, key, holder=holder, duration=15, renew_deadline=10, retry_period=2, clock=clock, **kw)
    return make


@pytest.fixture
def item(aws_env, key):
    def item() -> dict:
        raw = boto3.client("dynamodb", endpoint_url=aws_env).get_item(TableName=TABLE, Key={"name": {"S": key}},
                                                                      ConsistentRead=True)["Item"]
        return {k: next(iter(v.values())) for k, v in raw.items()}
    return item


def test_the_table_is_created_on_demand_and_exactly_one_replica_leads(make, item):
    changes = []
    a, b = make("a", on_change=changes.append), make("b")
    assert a.step() is True
    assert b.step() is False
    assert a.is_leader() and not b.is_leader()
    assert changes == [True]
    record = item()
    assert record["holder"] == "a" and record["fence"] == "1"


def test_a_renewing_leader_keeps_the_lease(make, clock):
    a, b = make("a"), make("b")
    a.step()
    for _ in range(20):
        clock.now += 2
        assert a.step() is True
        assert b.step() is False


def test_a_follower_takes_over_after_watching_an_unrenewed_lease_for_a_whole_duration(make, clock, item):
    a, b = make("a"), make("b")
    a.step()
    b.step()                      # b sees the record for the first time: the clock starts now
    clock.now += 14.9
    assert b.step() is False
    clock.now += 0.2
    assert b.step() is True
    assert item()["holder"] == "b" and b.fence == 2
    assert not a.is_leader()      # its renew deadline passed long ago
    assert a.step() is False      # and its renewal now fails on the condition: it follows


def test_release_lets_a_successor_lead_at_once(make, item):
    a, b = make("a"), make("b")
    a.step()
    b.step()
    a.release()
    assert not a.is_leader()
    assert b.step() is True and b.fence == 2
    assert item()["holder"] == "b"


def test_a_failed_renewal_stops_writes_at_once_and_a_later_one_resumes_them(make, clock, monkeypatch):
    a = make("a")
    a.step()
    real = a._dynamodb

    class Broken:
        def put_item(self, **_):
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "PutItem")

    monkeypatch.setattr(a, "_dynamodb", lambda: Broken())
    clock.now += 2
    with pytest.raises(ClientError):
        a.step()
    a._failed(RuntimeError())     # what the lease thread does with it
    assert not a.is_leader()
    monkeypatch.setattr(a, "_dynamodb", real)
    clock.now += 2
    assert a.step() is True


def test_the_leader_stops_at_the_renew_deadline_even_if_no_renewal_ran(make, clock):
    a = make("a")
    a.step()
    clock.now += 9.9
    assert a.is_leader()
    clock.now += 0.2
    assert not a.is_leader()
    assert a.step() is False      # too late to renew: it steps down


def test_concurrent_campaigns_elect_exactly_one(make):
    leases = [make(f"r{i}") for i in range(6)]
    barrier = threading.Barrier(len(leases))
    results = {}

    def campaign(lease: Lease) -> None:
        barrier.wait()
        results[lease.holder] = lease.step()

    threads = [threading.Thread(target=campaign, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sum(results.values()) == 1, results


def test_timings_must_nest():
    with pytest.raises(ValueError):
        Lease(None, TABLE, "x", duration=10, renew_deadline=10, retry_period=2)  # type: ignore[arg-type]


def test_a_renewal_whose_reply_was_lost_does_not_cost_the_lease(make, clock):
    a = make("a")
    a.step()
    a._version -= 1               # as if the last renewal landed but its reply never came back
    clock.now += 2
    a.step()                      # the condition fails; the record still names a: adopt its version
    assert a.is_leader()
    clock.now += 2
    assert a.step() is True
