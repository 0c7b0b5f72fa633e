"""`run --work-queue`: replicas share the work through an SQS FIFO queue, against moto's server over HTTP.

What SQS does that this depends on (SQS Developer Guide):
- "Using the message group ID with Amazon SQS FIFO queues" and "FIFO queue delivery logic": messages of one
  message group are processed one at a time, in order; while a message of a group is in flight (received, not
  deleted, visibility not over) no later message of that group is returned, to any consumer; messages of other
  groups are. moto 5 models this (``pending_message_groups`` in moto/sqs/models.py); the first test pins it.
- "Amazon SQS visibility timeout": a received message is hidden from other consumers for the visibility timeout,
  then returned again unless deleted; ChangeMessageVisibility extends it (up to 12 hours in all).
- "Exactly-once processing" / MessageDeduplicationId: a message with the id of one sent in the last 5 minutes
  is accepted and not delivered.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import boto3
import pytest

from controller import reconcile
from controller.aws.guard import Guard, LeaseLost
from controller.aws.session import Aws
from controller.cli import main
from controller.core import workitems
from controller.core.workitems import Item
from controller.daemon import workqueue
from controller.daemon.events import Inbox
from controller.daemon.lease import Lease, lease_aws, lease_name
from controller.daemon.metrics import Metrics
from controller.daemon.workqueue import Heartbeat, WorkDaemon, WorkMetrics

TABLE = "lease"


def sqs():
    return boto3.client("sqs", region_name="us-east-1")


@pytest.fixture
def queue(aws_env, monkeypatch) -> str:
    # short polls: moto's long poll spins while a message is in flight (moto/sqs/models.py receive_message waits
    # only on an empty queue), which in this process starves the heartbeat and lease threads of the GIL
    monkeypatch.setenv(workqueue.WAIT_ENV, "0")
    return sqs().create_queue(QueueName="work.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]


def param(name: str, literal: str = "v") -> dict:
    return {"apiVersion": "ecs-secrets/v1", "kind": "Parameter", "metadata": {"name": name},
            "spec": {"name": f"/w/{name}", "type": "String", "value": {"literal": literal}}}


def manifests(tmp_path: Path, docs: list[dict]) -> str:
    path = tmp_path / "m.yaml"
    path.write_text("\n---\n".join(json.dumps(d) for d in docs))
    return str(path)


class Replica:
    """One replica as `run --work-queue` makes it, in a thread (signals belong to the main thread)."""

    def __init__(self, name: str, path: str, url: str, log: list, visibility: int = 4, resync: float = 3600.0,
                 resyncs: bool = True, events: str | None = None):
        self.name = name
        aws = Aws(region="us-east-1")
        self.metrics = Metrics()
        inbox = Inbox(aws, events, self.metrics, wait=0) if events else None
        d = self.daemon = WorkDaemon(aws, path, reconcile.Settings(isolate=True), 60.0, self.metrics, resync=resync,
                                     inbox=inbox)
        d.only = ()
        d.setup(url, visibility, lambda base: Aws(region=base.region, rate_limits="off"))
        d.lease = Lease(lease_aws(aws, None), TABLE, lease_name("ecs-secrets"), duration=6.0, renew_deadline=4.0,
                        retry_period=1.0, on_change=d.on_leadership)
        d.recorder = lambda kind, target, refs, start, end: log.append((self.name, kind, refs, start, end))
        if not resyncs:   # a test of the items it sends itself
            d.enqueue_resyncs = lambda: None
        self.thread = threading.Thread(target=d.main, name=name, daemon=True)

    def start(self) -> Replica:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.daemon.stop("test")
        self.thread.join(timeout=30)

    def count(self, metric: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(f"ecs_secrets_{metric}", labels) or 0.0


def wait_for(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def ssm_names() -> set[str]:
    return {p["Name"] for p in boto3.client("ssm", region_name="us-east-1").describe_parameters()["Parameters"]}


def send(url: str, item: Item, units: dict | None = None) -> None:
    u = units or {}
    sqs().send_message(QueueUrl=url, MessageBody=item.body(), MessageGroupId=workitems.group(item, u),
                       MessageDeduplicationId=workitems.dedup_id(item, u))


# --- what SQS does, as moto models it --------------------------------------------------------------

def test_a_fifo_group_gives_no_message_while_one_is_in_flight_and_returns_it_after_the_visibility_timeout(queue):
    """SQS Developer Guide, "FIFO queue delivery logic": a group's messages in flight hold back the rest of the
    group; other groups are served. "Amazon SQS visibility timeout": an undeleted message comes back after it."""
    c = sqs()
    for i, g in enumerate(["g", "g", "h"]):
        c.send_message(QueueUrl=queue, MessageBody=f"{g}{i}", MessageGroupId=g, MessageDeduplicationId=str(i))
    first = c.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, VisibilityTimeout=2)["Messages"]
    assert [m["Body"] for m in first] == ["g0"]
    others = c.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=2).get("Messages", [])
    assert [m["Body"] for m in others] == ["h2"]          # g1 waits behind g0, h is served
    time.sleep(2.2)
    again = c.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, VisibilityTimeout=2)["Messages"]
    assert [m["Body"] for m in again] == ["g0"]           # first in its group again, not g1
    c.send_message(QueueUrl=queue, MessageBody="g0", MessageGroupId="g", MessageDeduplicationId="0")
    attrs = c.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages",
                                                                    "ApproximateNumberOfMessagesNotVisible"])
    counts = attrs["Attributes"]
    assert int(counts["ApproximateNumberOfMessages"]) + int(counts["ApproximateNumberOfMessagesNotVisible"]) == 3


# --- the pure part ---------------------------------------------------------------------------------

def test_units_join_what_one_reconcile_may_write(tmp_path):
    role = {"apiVersion": "ecs-secrets/v1", "kind": "ExecutionRole", "metadata": {"name": "r"}, "spec": {"roleName": "r"}}
    docs = [param("a"), param("b"), param("c"), role, {**role, "metadata": {"name": "r2"}, "spec": {"roleName": "r2"}}]
    for family, reads, runs_as in (("web", "/w/a", "r"), ("api", "/w/a", "r"), ("job", "/w/b", "r2")):
        docs.append({"apiVersion": "ecs-secrets/v1", "kind": "TaskDefinition", "metadata": {"name": family},
                     "spec": {"family": family, "executionRole": runs_as,
                              "containerDefinitions": [{"name": "c", "image": "nginx", "memory": 64,
                                                        "secrets": [{"name": "X", "valueFrom": reads}]}]}})
    from controller.core import validate
    d = validate.load(manifests(tmp_path, docs), "us-east-1", "ecs-secrets")
    u = workitems.units(d)
    # web and api share /w/a and the role: one unit; job reads /w/b: another; /w/c stands alone
    assert u["TaskDefinition/web"] == u["TaskDefinition/api"] == u["Parameter/a"] == u["ExecutionRole/r"]
    assert u["TaskDefinition/job"] == u["Parameter/b"] == u["ExecutionRole/r2"] != u["Parameter/a"]
    assert u["Parameter/c"] == "Parameter/c"
    # every object a reconcile of one object takes along (Desired.subset) is in that object's unit
    for o in d.objects:
        assert {u[x.ref] for x in d.subset({o.ref}).objects} == {u[o.ref]}
    items = workitems.object_items(None, ["TaskDefinition/web", "Parameter/a", "Parameter/c"], u, "x")
    assert sorted(workitems.group(i, u) for i in items) == ["_/ExecutionRole/r", "_/Parameter/c"]
    assert workitems.group(workitems.resync_item("prod-eu", 1), u) == "prod-eu/*"


def test_ids_are_bounded_and_bodies_round_trip():
    long = "Parameter/" + "x" * 300 + "@t"
    item = Item(workitems.OBJECT, "t", (long,), "cause")
    assert len(workitems.group(item, {})) <= 128 and len(workitems.dedup_id(item, {})) <= 128
    assert workitems.parse(item.body()) == Item(workitems.OBJECT, "t", (long,))
    assert workitems.dedup_id(item, {}) != workitems.dedup_id(Item(workitems.OBJECT, "t", (long,), "other"), {})
    for bad in ("nope", "[]", '{"v":1,"kind":"object","target":null,"refs":[]}', '{"v":2,"kind":"resync"}'):
        with pytest.raises(workitems.BadItem):
            workitems.parse(bad)


class _Queue:
    visibility = 4

    def __init__(self, refuse: bool = False) -> None:
        self.refuse, self.calls = refuse, []

    def extend(self, handles, seconds):
        self.calls.append((list(handles), seconds))
        return list(handles) if self.refuse else []


def test_a_heartbeat_extends_from_before_its_request_and_a_lapse_is_final_and_stops_writes():
    now = [100.0]
    metrics = WorkMetrics(Metrics())
    hb = Heartbeat(_Queue(), ["h"], received_at=100.0, metrics=metrics, clock=lambda: now[0])
    guard = Guard(hb.covered, attempt_budget=2, margin=0.2)
    now[0] = 103.0
    hb.beat()                                   # extended to 103 + 4
    assert hb.covered() == pytest.approx(4.0)
    guard.check("PutParameter")
    now[0] = 105.5                              # 1.5 s left: no attempt of 2 s + margin may start
    with pytest.raises(LeaseLost):
        guard.check("PutParameter")
    now[0] = 107.5
    assert hb.covered() == 0 and hb.lapsed      # lapsed ...
    hb.beat()
    now[0] = 107.6
    assert hb.covered() == 0                    # ... for good: the items may be another replica's now
    refused = Heartbeat(_Queue(refuse=True), ["h"], received_at=0.0, metrics=metrics, clock=lambda: 1.0)
    refused.beat()
    assert refused.covered() == 0 and metrics.heartbeat_failures._value.get() == 1


def test_a_replica_keeps_one_resync_of_a_receive_and_gives_the_others_back_at_once():
    """A receive returns up to 10 messages of several groups (SQS Developer Guide, "FIFO queue delivery logic");
    a resync is a whole target's observe, so the other resyncs go back (visibility 0) for the other replicas."""
    released = []

    class Q:
        def release(self, handles, after):
            released.append((handles, after))

    daemon = object.__new__(WorkDaemon)
    daemon.queue = Q()
    got = [workqueue.Received(f"h{i}", f"m{i}", workitems.resync_item(f"t{i}", 1)) for i in range(3)]
    got.append(workqueue.Received("o", "mo", Item(workitems.OBJECT, "t0", ("Parameter/a@t0",))))
    kept = daemon.spread(got)
    assert [m.handle for m in kept] == ["h0", "o"] and released == [(["h1", "h2"], 0)]


# --- replicas against moto's server ------------------------------------------------------------------

@pytest.fixture
def slow_reconciles(monkeypatch):
    """Every reconcile of a replica takes at least ``delay[0]`` seconds: long enough to see an overlap."""
    delay = [0.3]
    original = reconcile.make

    def make(aws, desired, settings):
        time.sleep(delay[0])
        return original(aws, desired, settings)
    monkeypatch.setattr(workqueue.reconcile, "make", make)
    return delay


def overlaps(log: list) -> list:
    found = []
    objects = [e for e in log if e[1] == "object"]
    for i, a in enumerate(objects):
        for b in objects[i + 1:]:
            if a[0] != b[0] and set(a[2]) & set(b[2]) and a[3] < b[4] and b[3] < a[4]:
                found.append((a, b))
    return found


@pytest.mark.slow
def test_two_replicas_never_reconcile_one_object_at_the_same_time(queue, tmp_path, slow_reconciles):
    names = [f"p{i}" for i in range(8)]
    path = manifests(tmp_path, [param(n) for n in names])
    log: list = []
    replicas = [Replica(n, path, queue, log).start() for n in ("r1", "r2")]
    try:
        wait_for(lambda: ssm_names() == {f"/w/{n}" for n in names})
        # and a burst: every object asked for five times over (five causes), both replicas polling
        for k in range(5):
            for n in names:
                send(queue, Item(workitems.OBJECT, None, (f"Parameter/{n}",), f"burst-{k}"))
        wait_for(lambda: sum(r.count("work_items_total", kind="object", result="done") for r in replicas) >= 48,
                 timeout=60)
    finally:
        for r in replicas:
            r.stop()
    objects = [e for e in log if e[1] == "object"]
    assert {e[0] for e in objects} == {"r1", "r2"}, "both replicas took work"
    assert not overlaps(log), overlaps(log)[:3]


@pytest.mark.slow
def test_two_replicas_serve_a_fleet_each_object_once_at_a_time_and_only_in_its_target(queue, tmp_path,
                                                                                     slow_reconciles):
    """Three accounts (the own and two through sts:AssumeRole, as tests/test_fleet.py reaches them) in two
    Regions: every object lands in its targets only, each reconcile of an object by one replica at a time."""
    from test_fleet import A, B, EU, US, client, make_role, target
    url = boto3.client("sqs", region_name="us-east-1").meta.endpoint_url
    make_role(url, A)
    make_role(url, B)
    spots = {"a-eu": (A, EU), "a-us": (A, US), "b-eu": (B, EU)}
    docs = [json.loads(target(name, *spot)) for name, spot in spots.items()]
    for i in range(3):
        docs.append({**param(f"f{i}"), "metadata": {"name": f"f{i}", "targets": list(spots)}})
    docs.append(param("own"))
    path = manifests(tmp_path, docs)
    log: list = []
    replicas = [Replica(n, path, queue, log).start() for n in ("r1", "r2")]

    def names(account, region):
        return {p["Name"] for p in client("ssm", url, account, region).describe_parameters()["Parameters"]}
    want = {f"/w/f{i}" for i in range(3)}
    try:
        wait_for(lambda: all(names(*spot) == want for spot in spots.values()) and "/w/own" in ssm_names(),
                 timeout=90)
    finally:
        for r in replicas:
            r.stop()
    assert names(A, "us-east-1") == set() and ssm_names() == {"/w/own"}
    resynced = {e[0] for e in log if e[1] == "resync"}
    assert resynced == {"r1", "r2"}, "the targets' resyncs spread over both replicas"
    assert not overlaps(log), overlaps(log)[:3]


@pytest.mark.slow
def test_a_killed_replicas_item_is_finished_by_another_after_the_visibility_timeout(queue, tmp_path):
    path = manifests(tmp_path, [param("lost")])
    send(queue, Item(workitems.OBJECT, None, ("Parameter/lost",), "c"))
    # a replica takes the item the way WorkQueue.receive does, then dies: no heartbeat, no delete
    taken_at = time.monotonic()
    got = sqs().receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=3)["Messages"]
    assert len(got) == 1
    log: list = []
    survivor = Replica("r2", path, queue, log, resyncs=False).start()   # only the orphaned item: no resync
    try:
        wait_for(lambda: "/w/lost" in ssm_names(), timeout=30)
    finally:
        survivor.stop()
    (entry,) = [e for e in log if e[1] == "object"]
    assert entry[2] == ("Parameter/lost",) and entry[3] - taken_at >= 2.5   # only once the visibility ran out
    assert not sqs().receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages")   # deleted


@pytest.mark.slow
def test_only_the_lease_holder_enqueues_resyncs(queue, tmp_path):
    path = manifests(tmp_path, [param("a")])
    log: list = []
    replicas = [Replica(n, path, queue, log, resync=1.5).start() for n in ("r1", "r2")]
    try:
        wait_for(lambda: sum(r.count("work_items_enqueued_total", kind="resync") for r in replicas) >= 3)
        item = boto3.client("dynamodb", region_name="us-east-1").get_item(
            TableName=TABLE, Key={"name": {"S": lease_name("ecs-secrets")}}, ConsistentRead=True)["Item"]
        (holder,) = [r for r in replicas if r.daemon.lease.holder == item["holder"]["S"]]
    finally:
        for r in replicas:
            r.stop()
    counts = {r.name: r.count("work_items_enqueued_total", kind="resync") for r in replicas}
    assert counts[holder.name] >= 3 and sum(counts.values()) == counts[holder.name], counts
    resyncs = [e for e in log if e[1] == "resync"]
    assert len(resyncs) >= 2    # run by whichever replica took them
    assert "/w/a" in ssm_names()


@pytest.mark.slow
def test_the_heartbeat_keeps_a_long_reconcile_s_item(queue, tmp_path, slow_reconciles):
    path = manifests(tmp_path, [param("long")])
    slow_reconciles[0] = 9.0                     # more than the 4 s visibility timeout, twice over
    log: list = []
    send(queue, Item(workitems.OBJECT, None, ("Parameter/long",), "c"))
    replicas = [Replica(n, path, queue, log, visibility=4, resyncs=False).start() for n in ("r1", "r2")]
    try:
        wait_for(lambda: "/w/long" in ssm_names(), timeout=30)
        wait_for(lambda: sum(r.count("work_items_total", kind="object", result="done") for r in replicas) == 1)
        time.sleep(3)
    finally:
        for r in replicas:
            r.stop()
    objects = [e for e in log if e[1] == "object"]
    assert len(objects) == 1 and objects[0][4] - objects[0][3] >= 9   # one reconcile, longer than the timeout
    assert sum(r.count("work_heartbeat_failures_total") for r in replicas) == 0
    assert sum(r.count("work_items_total", kind="object", result="lapsed") for r in replicas) == 0


@pytest.mark.slow
def test_the_lease_holder_turns_events_into_work_items_that_any_replica_reconciles(queue, tmp_path):
    """--events with --work-queue: the holder reads the events queue (an EventBridge "Parameter Store Change",
    as in tests/fixtures/events), enqueues an object item for what it concerns, and deletes the event."""
    path = manifests(tmp_path, [param("a", "wanted")])
    ssm = boto3.client("ssm", region_name="us-east-1")
    events = sqs().create_queue(QueueName="events")["QueueUrl"]
    log: list = []
    replica = Replica("r1", path, queue, log, events=events).start()
    try:
        wait_for(lambda: "/w/a" in ssm_names())   # the start-up resync created it
        replica.daemon.enqueue_resyncs = lambda: None   # from now on only the event can repair it
        ssm.put_parameter(Name="/w/a", Value="drifted", Type="String", Overwrite=True)
        event = json.loads((Path(__file__).parent / "fixtures/events/ssm-parameter-store-change-update.json").read_text())
        event["detail"]["name"] = "/w/a"
        sqs().send_message(QueueUrl=events, MessageBody=json.dumps(event))
        wait_for(lambda: ssm.get_parameter(Name="/w/a")["Parameter"]["Value"] == "wanted")
        wait_for(lambda: not sqs().receive_message(QueueUrl=events, VisibilityTimeout=0).get("Messages"))
    finally:
        replica.stop()
    assert replica.count("work_items_enqueued_total", kind="object") >= 1
    assert any(e[1] == "object" and e[2] == ("Parameter/a",) for e in log)


@pytest.mark.slow
def test_a_replica_whose_heartbeat_fails_stops_writing_and_leaves_its_item(queue, tmp_path, slow_reconciles,
                                                                          monkeypatch):
    """Every ChangeMessageVisibility fails: after the 3 s visibility the item may be another replica's, so the
    write guard refuses the PutParameter and the item is neither deleted nor released."""
    from botocore.exceptions import ClientError

    def refuse(self, handles, seconds):
        raise ClientError({"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue", "Message": "gone"}},
                          "ChangeMessageVisibilityBatch")
    monkeypatch.setattr(workqueue.WorkQueue, "extend", refuse)
    slow_reconciles[0] = 4.0
    path = manifests(tmp_path, [param("late")])
    send(queue, Item(workitems.OBJECT, None, ("Parameter/late",), "c"))
    log: list = []
    replica = Replica("r1", path, queue, log, visibility=3, resyncs=False).start()
    try:
        wait_for(lambda: replica.count("work_items_total", kind="object", result="lapsed") >= 1)
    finally:
        replica.stop()
    assert "/w/late" not in ssm_names()
    assert replica.count("work_heartbeat_failures_total") >= 1
    assert replica.count("work_items_total", kind="object", result="done") == 0


# --- the command line ------------------------------------------------------------------------------

def test_run_refuses_a_work_queue_that_is_not_fifo_or_has_no_lease(capsys):
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/work"
    assert main(["run", "-f", "manifests", "--work-queue", url, "--lease-table", "t"]) == 1
    assert "is not a FIFO queue" in capsys.readouterr().err
    assert main(["run", "-f", "manifests", "--work-queue", url + ".fifo"]) == 1
    assert "--work-queue needs --lease-table" in capsys.readouterr().err


def test_controller_policy_allows_exactly_the_work_queue_s_calls(capsys, tmp_path):
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/work.fifo"
    path = manifests(tmp_path, [param("a")])
    assert main(["controller-policy", "-f", path, "--account", "123456789012", "--region", "us-east-1",
                 "--work-queue", url]) == 0
    doc = json.loads(capsys.readouterr().out)
    (st,) = [s for s in doc["Statement"] if s["Sid"] == "ShareTheWorkThroughTheWorkQueue"]
    assert st["Resource"] == ["arn:aws:sqs:eu-west-1:123456789012:work.fifo"]
    assert sorted(st["Action"]) == ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                    "sqs:ReceiveMessage", "sqs:SendMessage"]
