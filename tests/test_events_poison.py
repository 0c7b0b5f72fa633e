"""A message on the events queue that is no event we can read is malformed: counted, deleted, never a crash.

Anyone allowed to send to the queue (or a rule with an input transformer) can put any body of up to 256 KiB
on it (Amazon SQS Developer Guide, "Amazon SQS message quotas"): JSON nested deeper than Python's parser
recurses, or an event whose fields have other types than the documented samples. Such a body must not
stop the consumer: that would leave it on the queue, and every receive of it would fall back to polling.
"""

from __future__ import annotations

import json

import pytest

from controller.aws.session import Aws
from controller.core.desired import Desired
from controller.core.events import Malformed, parse
from controller.daemon.events import Inbox
from controller.daemon.metrics import Metrics
from test_events import MemoryQueue, parameter_changed, stacks  # noqa: F401  (the fixture)
from controller.core.validate import load

POISON = [
    "[" * 100_000,                                                    # deeper than json's recursion
    json.dumps({"Type": "Notification", "Message": "[" * 100_000}),
    json.dumps({"source": "aws.secretsmanager", "detail-type": "Secret Label Updated", "detail": {}, "resources": 5}),
    json.dumps({"source": "aws.ecs", "detail-type": "AWS API Call via CloudTrail", "detail": {
        "eventSource": "ecs.amazonaws.com", "eventName": "DeleteTaskDefinitions",
        "requestParameters": {"taskDefinitions": 7}}}),
]


@pytest.mark.parametrize("body", POISON, ids=range(len(POISON)))
def test_a_body_of_unexpected_shape_is_malformed_or_irrelevant_never_an_error(body: str) -> None:
    try:
        assert parse(body) == []
    except Malformed:
        pass


def test_a_poison_message_is_deleted_and_the_others_of_its_receive_are_reconciled(aws_env, stacks) -> None:  # noqa: F811
    aws, metrics = Aws(region="us-east-1", endpoint_url=aws_env), Metrics()
    inbox = Inbox(aws, "http://127.0.0.1/123456789012/events", metrics, wait=0)
    desired: Desired = load(str(stacks), "us-east-1")
    inbox.follow(desired)
    memory = MemoryQueue([*POISON, parameter_changed("/b/level")])
    inbox.poll_client = inbox.client = memory
    batch = inbox.next()
    assert inbox.mode == "events"
    assert batch is not None and "Parameter/b-level" in batch.refs and len(batch.handles) == 1
    assert memory.deleted == len(POISON) and inbox.counts["malformed"] + inbox.counts["irrelevant"] == len(POISON)
