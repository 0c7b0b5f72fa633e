"""The rules events-setup creates and the events the consumer reads are one table: every event kind the
consumer understands is delivered by a rule, and every event a rule delivers is one the consumer reads.
The rules are matched as EventBridge matches them (moto's implementation of event patterns; the
EventBridge User Guide, "Amazon EventBridge event patterns": every field of the pattern must match, a
list matches any of its values). The events are the AWS documentation's samples (fixtures/events/SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from moto.events.models import EventPattern

from controller.core import events
from controller.core.eventrules import Setup, plan
from controller.vocab import eventpatterns as ep

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "events").glob("*.json"))


def rules() -> dict[str, EventPattern]:
    """The patterns put_rule is given, as events-setup sends them."""
    calls = plan(Setup(account="123456789012", region="eu-west-1")).calls
    return {c.params["Name"]: EventPattern.load(c.params["EventPattern"]) for c in calls
            if c.operation == "put_rule"}


def delivered(event: dict) -> list[str]:
    return [name for name, pattern in rules().items() if pattern.matches_event(event)]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_sample_the_consumer_understands_is_delivered(path: Path) -> None:
    event = json.loads(path.read_text())
    if events.parse(path.read_text()):
        assert delivered(event), f"{path.name}: understood, but no rule of events-setup delivers it"


def _cloudtrail(source: str, event_source: str, name: str, detail_type: str) -> dict:
    arn = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:3"
    return {"version": "0", "id": "1", "detail-type": detail_type, "source": source, "account": "123456789012",
            "time": "2026-01-01T00:00:00Z", "region": "eu-west-1", "resources": [],
            "detail": {"eventSource": event_source, "eventName": name, "awsRegion": "eu-west-1",
                       "requestParameters": {"roleName": "app", "family": "web", "taskDefinition": "web:3",
                                             "taskDefinitions": [arn], "resourceArn": arn, "secretId": "db",
                                             "name": "db", "resourceType": "Parameter", "resourceId": "/app/db"},
                       "additionalEventData": {"SecretId": "db"}}}


def _named_in_rules() -> list[tuple[str, str, str, str, str]]:
    out = []
    for suffix, pattern in ep.patterns().items():
        for name in pattern.get("detail", {}).get("eventName", []):
            for kind in pattern["detail-type"]:
                out.append((suffix, pattern["source"][0], pattern["detail"]["eventSource"][0], name, kind))
    return out


@pytest.mark.parametrize("suffix,source,event_source,name,kind", _named_in_rules())
def test_every_call_a_rule_delivers_is_understood(suffix, source, event_source, name, kind) -> None:
    event = _cloudtrail(source, event_source, name, kind)
    assert delivered(event), f"{name}: the rule {suffix} does not match its own event"
    assert events.parse(json.dumps(event)), f"{name}: delivered by rule {suffix}, but dropped as irrelevant"


def test_the_consumers_calls_are_the_rules_calls() -> None:
    assert events.ROLE_CALLS == set(ep.IAM)
    assert events.SECRET_CALLS == set(ep.SECRETS_MANAGER)
    assert events.SECRET_SERVICE_EVENTS == set(ep.SECRETS_MANAGER_SERVICE)
    assert events.ECS_CALLS == set(ep.ECS)
    assert events.SSM_TAG_CALLS == set(ep.SSM_TAGS)


def test_a_parameters_tags_changed_out_of_band_is_delivered() -> None:
    """Parameter Store Change names no tag change (Systems Manager User Guide, "Setting up notifications or
    trigger actions based on Parameter Store events": Create, Update, Delete, LabelParameterVersion): the
    tag calls come as CloudTrail API calls (the CloudTrail record of AddTagsToResource, requestParameters
    resourceType/resourceId, in "Logging AWS Systems Manager API calls with AWS CloudTrail")."""
    event = _cloudtrail("aws.ssm", "ssm.amazonaws.com", "AddTagsToResource", ep.API_CALL)
    assert delivered(event)
    assert events.parse(json.dumps(event)) == [events.Touch(events.PARAMETER, "/app/db", "eu-west-1", "123456789012")]
