"""The events benchmark's arithmetic (bench/events.py): pure, no server."""

import json
from pathlib import Path

from bench.events import latencies, parameter_event, per_hour, percentile, split_long_polls, summary
from controller.core import events

FIXTURES = Path(__file__).parent / "fixtures" / "events"


def test_the_benchmark_event_has_the_documented_shape_and_is_read_as_its_parameter():
    # the shape of the Systems Manager User Guide's "Parameter Store Change" Update sample
    # (tests/fixtures/events/SOURCES.md): same keys, at the top and in detail
    sample = json.loads((FIXTURES / "ssm-parameter-store-change-update.json").read_text())
    body = parameter_event("/bench/app7/db_password")
    mine = json.loads(body)
    assert mine.keys() == sample.keys() and mine["detail"].keys() == sample["detail"].keys()
    assert mine["resources"] == ["arn:aws:ssm:us-east-1:123456789012:parameter/bench/app7/db_password"]
    assert events.parse(body) == [events.Touch("parameter", "/bench/app7/db_password", "us-east-1", "123456789012")]


def test_latency_is_to_the_first_repair_at_or_after_the_enqueue():
    landed = {"a": [0.5, 3.0, 9.0], "b": [4.0]}
    assert latencies([("a", 1.0), ("a", 3.0), ("b", 1.0), ("c", 1.0)], landed) == [2.0, 0.0, 3.0, None]


def test_nearest_rank_percentile_and_summary():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    s = summary([1.0, 2.0, None, 3.0])
    assert (s["events"], s["repaired"], s["median_s"], s["max_s"]) == (4, 3, 2.0, 3.0)
    assert summary([None]) == {"events": 1, "repaired": 0}


def test_long_polls_are_counted_apart():
    other, polls = split_long_polls({"sqs:ReceiveMessage": 4, "sqs:DeleteMessageBatch": 1, "ssm:GetParameters": 2})
    assert polls == {"sqs:ReceiveMessage": 4}
    assert other == {"sqs:DeleteMessageBatch": 1, "ssm:GetParameters": 2}


def test_per_hour_polling_against_one_resync_an_hour():
    got = per_hour(polling_pass=3003, resync_pass=3003, idle_other=0, idle_polls=3, idle_seconds=60)
    assert got["polling_per_hour"] == 60 * 3003 and got["events_per_hour"] == 3003
    assert got["long_polls_per_hour"] == 180 and got["ratio"] == round(1 / 60, 5)
    # calls besides the long polls in the idle window count, scaled to the hour
    assert per_hour(100, 100, idle_other=1, idle_polls=0, idle_seconds=60)["events_per_hour"] == 160
