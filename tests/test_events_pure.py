"""The events' pure half: EventBridge's shapes (the AWS documentation's samples, tests/fixtures/events/) to the
objects they concern, the queue's URL, and the subset of the desired state a partial reconcile plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.core import events
from controller.core.desired import Desired
from controller.core.events import FAMILY, PARAMETER, ROLE, SECRET, SERVICE, Index, Malformed, Touch, parse
from controller.core.validate import load

FIXTURES = Path(__file__).parent / "fixtures" / "events"
TWO_STACKS = """\
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: a-db}
spec: {name: /a/db, type: SecureString, value: {generate: {length: 20}}}
---
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: a-level}
spec: {name: /a/level, type: String, value: {literal: info}}
---
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: a-exec}
spec: {roleName: a-exec-role}
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: a}
spec:
  family: a-family
  executionRole: a-exec
  containerDefinitions:
    - name: app
      image: public.ecr.aws/nginx/nginx:1.27
      memory: 128
      secrets:
        - {name: DB, valueFrom: /a/db}
        - {name: LEVEL, valueFrom: /a/level}
        - {name: TOKEN, valueFrom: /aws/reference/secretsmanager/payments/token}
        - {name: OTHER, valueFrom: "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-AbC123"}
        - {name: SHARED, valueFrom: /shared/undeclared}
---
apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {name: b-db}
spec: {name: /b/db, type: SecureString, value: {generate: {length: 20}}}
---
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: b-exec}
spec: {roleName: b-exec-role}
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {name: b}
spec:
  family: b-family
  executionRole: b-exec
  containerDefinitions:
    - name: app
      image: public.ecr.aws/nginx/nginx:1.27
      memory: 128
      secrets:
        - {name: DB, valueFrom: /b/db}
"""
A_STACK = {"Parameter/a-db", "Parameter/a-level", "ExecutionRole/a-exec", "TaskDefinition/a"}


@pytest.fixture
def desired(tmp_path: Path) -> Desired:
    (tmp_path / "m.yaml").write_text(TWO_STACKS)
    return load(str(tmp_path), "us-east-1", "ecs-secrets")


def fixture(name: str, **renames: str) -> str:
    """A documentation sample with its object renamed to one of ours (every other field kept)."""
    event = json.loads((FIXTURES / name).read_text())
    detail = event["detail"]
    for path, value in renames.items():
        node = event
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    assert event["detail"] is detail
    return json.dumps(event)


def test_every_fixture_is_named_in_sources():
    sources = (FIXTURES / "SOURCES.md").read_text()
    files = sorted(p.name for p in FIXTURES.glob("*.json"))
    named = [f for f in files if f in sources or f"-{f.rsplit('-', 1)[-1]}" in sources
             or f"{f.split('-cloudtrail-')[0]}-cloudtrail-*.json" in sources]
    assert files and named == files
    for f in files:
        json.loads((FIXTURES / f).read_text())   # each is one JSON event


# --- parse: the documentation's samples --------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("ssm-parameter-store-change-create.json", [Touch(PARAMETER, "foo", "us-east-1", "123456789012")]),
    ("ssm-parameter-store-change-update.json", [Touch(PARAMETER, "MyExampleParameter", "us-east-1", "123456789012")]),
    ("ssm-parameter-store-change-delete.json", [Touch(PARAMETER, "MyExampleParameter", "us-east-1", "123456789012")]),
    ("ssm-parameter-store-change-label.json", [Touch(PARAMETER, "MyExampleParameter", "us-east-1", "123456789012")]),
    ("ssm-parameter-store-change-failed-create.json", []),   # "exception": nothing was created
    ("secretsmanager-secret-label-updated.json", [
        Touch(SECRET, "mySecret", "us-west-2", "012345678901"),
        Touch(SECRET, "arn:aws:secretsmanager:us-west-2:012345678901:secret:mySecret-a1b2c3", "us-west-2",
              "012345678901")]),
    ("iam-cloudtrail-putrolepolicy.json", [Touch(ROLE, "ecsTaskExecutionRole-example", "", "123456789012")]),
    ("iam-cloudtrail-attachrolepolicy.json", [Touch(ROLE, "ecsTaskExecutionRole-example", "", "123456789012")]),
    ("iam-cloudtrail-updateassumerolepolicy.json", [Touch(ROLE, "ecsTaskExecutionRole-example", "", "123456789012")]),
    ("iam-cloudtrail-deleterole.json", [Touch(ROLE, "ecsTaskExecutionRole-example", "", "123456789012")]),
    ("iam-cloudtrail-tagrole.json", [Touch(ROLE, "ecsTaskExecutionRole-example", "", "123456789012")]),
    ("iam-cloudtrail-putrolepolicy-denied.json", []),        # errorCode: the call changed nothing
    ("ecs-cloudtrail-registertaskdefinition.json", [Touch(FAMILY, "hello_world", "us-east-1", "123456789012")]),
    ("ecs-cloudtrail-deregistertaskdefinition.json", [Touch(FAMILY, "hello_world", "us-east-1", "123456789012")]),
    ("ecs-cloudtrail-deletetaskdefinitions.json", [Touch(FAMILY, "hello_world", "us-east-1", "123456789012")]),
    ("ecs-cloudtrail-tagresource.json", [Touch(FAMILY, "hello_world", "us-east-1", "123456789012")]),
    ("ecs-cloudtrail-updateservice.json", [Touch(FAMILY, "hello_world", "us-east-1", "123456789012"),
                                           Touch(SERVICE, "default/hello-world-service", "us-east-1", "123456789012")]),
    ("ecs-cloudtrail-tagresource-cluster.json", []),         # a cluster's tags are none of ours
])
def test_the_documented_events_say_what_changed(name, expected):
    assert parse((FIXTURES / name).read_text()) == expected


@pytest.mark.parametrize("name", ["secretsmanager-cloudtrail-putsecretvalue.json",
                                  "secretsmanager-cloudtrail-rotatesecret.json",
                                  "secretsmanager-cloudtrail-updatesecretversionstage.json",
                                  "secretsmanager-service-event-rotationsucceeded.json"])
def test_secret_value_changes_name_the_secret(name):
    touches = parse((FIXTURES / name).read_text())
    assert touches and {t.kind for t in touches} == {SECRET}
    assert "MyTestDatabaseSecret" in {n for t in touches for n in events.secret_keys(t.name)}


def test_an_sns_wrapped_event_is_read_through():
    inner = (FIXTURES / "ssm-parameter-store-change-update.json").read_text()
    assert parse(json.dumps({"Type": "Notification", "Message": inner}))[0].name == "MyExampleParameter"


@pytest.mark.parametrize("body", ["", "not json at all {", "[1, 2]", "42", json.dumps({"hello": "world"}),
                                  json.dumps({"source": "aws.ssm", "detail-type": "Parameter Store Change"}),
                                  json.dumps({"source": 1, "detail-type": "x", "detail": {}}),
                                  json.dumps({"source": "aws.ssm", "detail-type": "x", "detail": "nope"})])
def test_what_is_not_an_eventbridge_event_is_malformed_and_the_reason_never_quotes_it(body):
    with pytest.raises(Malformed) as info:
        parse(body)
    if len(body) > 8:
        assert body not in str(info.value)


@pytest.mark.parametrize("change", [
    {"detail": {"eventName": "PutRolePolicy", "requestParameters": None}},           # no parameters at all
    {"detail": {"eventName": "PutRolePolicy", "requestParameters": {"roleName": 5}}},
    {"detail": {"eventName": "DescribeRole", "requestParameters": {"roleName": "x"}}},
    {"source": "aws.kms"},
])
def test_an_event_of_no_kind_we_read_is_no_touch_and_no_crash(change):
    event = json.loads((FIXTURES / "iam-cloudtrail-putrolepolicy.json").read_text())
    detail = {**event["detail"], **change.get("detail", {})}
    assert parse(json.dumps({**event, **change, "detail": detail})) == []


@pytest.mark.parametrize("text, family", [("arn:aws:ecs:us-east-1:123456789012:task-definition/web:3", "web"),
                                          ("web:3", "web"), ("web", "web"), ("", "")])
def test_family_of(text, family):
    assert events.family_of(text) == family


# --- which objects ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, renames, refs", [
    ("ssm-parameter-store-change-update.json", {"detail.name": "/a/db"},
     {"Parameter/a-db", "TaskDefinition/a", "ExecutionRole/a-exec"}),
    ("ssm-parameter-store-change-delete.json", {"detail.name": "/shared/undeclared"},
     {"TaskDefinition/a", "ExecutionRole/a-exec"}),          # undeclared: its readers (the key is in the policy)
    ("ssm-parameter-store-change-update.json", {"detail.name": "/b/db"},
     {"Parameter/b-db", "TaskDefinition/b", "ExecutionRole/b-exec"}),
    ("ssm-parameter-store-change-update.json", {"detail.name": "/a/db", "region": "eu-west-1"}, set()),
    ("ssm-parameter-store-change-update.json", {"detail.name": "/nobody/reads/this"}, set()),
    ("secretsmanager-secret-label-updated.json", {"detail.name": "payments/token", "region": "us-east-1",
                                                  "resources": []}, {"TaskDefinition/a", "ExecutionRole/a-exec"}),
    ("secretsmanager-cloudtrail-putsecretvalue.json", {"detail.requestParameters.secretId": "other",
                                                       "detail.responseElements.arn":
                                                       "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-AbC123"},
     {"TaskDefinition/a", "ExecutionRole/a-exec"}),
    ("iam-cloudtrail-putrolepolicy.json", {"detail.requestParameters.roleName": "b-exec-role"}, {"ExecutionRole/b-exec"}),
    ("iam-cloudtrail-deleterole.json", {"detail.requestParameters.roleName": "a-exec-role",
                                        "region": "eu-west-1"}, {"ExecutionRole/a-exec"}),   # IAM is global
    ("iam-cloudtrail-tagrole.json", {"detail.requestParameters.roleName": "someone-elses"}, set()),
    ("ecs-cloudtrail-registertaskdefinition.json", {"detail.requestParameters.family": "a-family"}, {"TaskDefinition/a"}),
    ("ecs-cloudtrail-deregistertaskdefinition.json", {"detail.requestParameters.taskDefinition": "b-family:4"},
     {"TaskDefinition/b"}),
    ("ecs-cloudtrail-tagresource.json", {"detail.requestParameters.resourceArn":
                                         "arn:aws:ecs:us-east-1:123456789012:task-definition/b-family:2"},
     {"TaskDefinition/b"}),
    ("ecs-cloudtrail-updateservice.json", {"detail.requestParameters.taskDefinition": "a-family"}, {"TaskDefinition/a"}),
    ("ecs-cloudtrail-registertaskdefinition.json", {"detail.requestParameters.family": "a-family",
                                                    "detail.awsRegion": "eu-west-1"}, set()),   # not our Region's
])
def test_each_event_concerns_exactly_its_objects(desired, name, renames, refs):
    index = Index(desired)
    found = set().union(*(index.refs(t) for t in parse(fixture(name, **renames))))
    assert found == refs


def test_another_accounts_event_concerns_none_of_ours(desired):
    touches = parse(fixture("ssm-parameter-store-change-update.json", **{"detail.name": "/a/db"}))
    assert Index(desired).refs(touches[0], account="123456789012")
    assert Index(desired).refs(touches[0], account="999999999999") == set()


# --- the subset a partial reconcile plans ----------------------------------------------------------

def test_a_subset_keeps_what_its_plan_needs_and_reads_only_that(desired):
    part = desired.subset({"TaskDefinition/a"})
    assert {o.ref for o in part.objects} == A_STACK    # its role and declared parameters: applied before it
    assert [o.ref for o in part.objects] == [o.ref for o in desired.objects if o.ref in A_STACK]   # plan order
    reads = part.reads["us-east-1"]
    assert set(reads.declared) == {"/a/db", "/a/level"} and reads.undeclared == {"/shared/undeclared"}
    assert reads.secrets == {"payments/token", "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-AbC123"}
    assert {r.ref for r in part.roles} == {"ExecutionRole/a-exec"}


def test_a_role_alone_reads_what_its_task_definitions_read(desired):
    part = desired.subset({"ExecutionRole/a-exec"})
    assert {o.ref for o in part.objects} == {"ExecutionRole/a-exec", "Parameter/a-db", "Parameter/a-level"}
    assert part.reads["us-east-1"].undeclared == {"/shared/undeclared"}   # its policy grants them
    assert part.reads["us-east-1"].secrets == desired.reads["us-east-1"].secrets


def test_a_parameter_alone_is_alone_and_unknown_refs_are_ignored(desired):
    part = desired.subset({"Parameter/b-db", "Parameter/gone"})
    assert [o.ref for o in part.objects] == ["Parameter/b-db"]
    assert set(part.reads["us-east-1"].declared) == {"/b/db"} and not part.task_definitions


def test_the_whole_set_as_a_subset_is_the_desired_state(desired):
    part = desired.subset({o.ref for o in desired.objects})
    assert part.objects == desired.objects and part.reads == desired.reads
    assert part.external_roles == desired.external_roles
    assert part.partial and not desired.partial


def test_a_subset_is_never_pruned(desired):
    from controller import reconcile
    with pytest.raises(ValueError, match="subset"):   # refused before any AWS call: no client is needed
        reconcile.make(None, desired.subset({"Parameter/b-db"}), reconcile.Settings(prune=True))


# --- the queue's address ---------------------------------------------------------------------------

@pytest.mark.parametrize("url, region, arn", [
    ("https://sqs.eu-west-1.amazonaws.com/123456789012/ecs-secrets-events", "eu-west-1",
     "arn:aws:sqs:eu-west-1:123456789012:ecs-secrets-events"),
    ("https://eu-west-1.queue.amazonaws.com/123456789012/q.fifo", "eu-west-1", "arn:aws:sqs:eu-west-1:123456789012:q.fifo"),
    ("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q", "cn-north-1", "arn:aws:sqs:cn-north-1:123456789012:q"),
    ("http://127.0.0.1:5000/123456789012/q", None, "arn:aws:sqs:us-east-1:123456789012:q"),
])
def test_queue_urls(url, region, arn):
    q = events.queue_url(url)
    assert q.region == region and q.arn("aws", "us-east-1") == arn


@pytest.mark.parametrize("url", ["sqs.eu-west-1.amazonaws.com/123456789012/q", "https://sqs.amazonaws.com/q",
                                 "https://sqs.eu-west-1.amazonaws.com/12345/q", "arn:aws:sqs:eu-west-1:123456789012:q"])
def test_what_is_not_a_queue_url(url):
    with pytest.raises(ValueError):
        events.queue_url(url)


def test_a_rollout_s_service_moved_to_another_family_concerns_its_task_definition(tmp_path):
    """UpdateService names the service (and its cluster, ``default`` when left out: ECS API reference,
    UpdateService) beside the task definition it now runs; one of ours moved out of band to a task
    definition of another family is drift of the TaskDefinition whose rollout it is."""
    (tmp_path / "m.yaml").write_text(TWO_STACKS.replace(
        "  family: b-family\n", "  family: b-family\n  rollout: {services: [prod/b-web], updateService: true}\n"))
    index = Index(load(str(tmp_path), "us-east-1", "ecs-secrets"))
    moved = fixture("ecs-cloudtrail-updateservice.json", **{
        "detail.requestParameters.taskDefinition": "someone-elses:1",
        "detail.requestParameters.cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
        "detail.requestParameters.service": "arn:aws:ecs:us-east-1:123456789012:service/prod/b-web"})
    assert set().union(*(index.refs(t) for t in parse(moved))) == {"TaskDefinition/b"}
    elsewhere = fixture("ecs-cloudtrail-updateservice.json", **{
        "detail.requestParameters.taskDefinition": "someone-elses:1", "detail.requestParameters.service": "b-web"})
    assert set().union(*(index.refs(t) for t in parse(elsewhere))) == set()   # default/b-web is not ours
