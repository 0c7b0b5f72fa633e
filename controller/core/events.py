"""EventBridge events, as they arrive on the daemon's queue, turned into the manifest objects they concern. Pure.

``parse`` reads one SQS message body (an EventBridge event; or one wrapped in an SNS notification) into
``Touch``es: what the event says changed — a parameter, a secret, a role or a task-definition family —
with its Region. ``Malformed`` means the body is not an EventBridge event at all; an event of no kind we
read gives no touch (irrelevant). ``Index(desired).refs(touch)`` names the objects to reconcile: a
parameter's own object and every task definition and role that reads it; a secret's readers; a role's
ExecutionRole; a family's TaskDefinition. A failed API call (CloudTrail's ``errorCode``) changed nothing.
The shapes are those of the AWS documentation's samples (tests/fixtures/events/SOURCES.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from controller.core.desired import Desired
from controller.vocab import eventpatterns as ep
from controller.vocab.arns import SM_REFERENCE_PREFIX, parse_arn, parameter_name_from_arn

PARAMETER, SECRET, ROLE, FAMILY, SERVICE = "parameter", "secret", "role", "family", "service"
CLOUDTRAIL, SERVICE_EVENT = ep.API_CALL, ep.SERVICE_EVENT

# CloudTrail API calls that change what a reconcile compares, by event source (the table events-setup's
# rules deliver); each names its object in requestParameters (and Secrets Manager's, for some calls, in
# responseElements.arn)
ROLE_CALLS = frozenset(ep.IAM)
SECRET_CALLS = frozenset(ep.SECRETS_MANAGER)
SECRET_SERVICE_EVENTS = frozenset(ep.SECRETS_MANAGER_SERVICE)
ECS_CALLS = frozenset(ep.ECS)
SSM_TAG_CALLS = frozenset(ep.SSM_TAGS)
_SECRET_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")   # the six random characters Secrets Manager appends


class Malformed(ValueError):
    """Not an EventBridge event. The message says what is wrong, never what the body held."""


@dataclass(frozen=True)
class Touch:
    kind: str            # PARAMETER, SECRET, ROLE, FAMILY or SERVICE (CLUSTER/SERVICE)
    name: str            # SSM name, secret name or ARN, role name, family
    region: str = ""     # "" for IAM, which is global
    account: str = ""


def parse(body: str) -> list[Touch]:
    try:
        event = json.loads(body)
    except (ValueError, TypeError, RecursionError):   # deeper than the parser recurses is no event either
        raise Malformed("not JSON") from None
    if isinstance(event, dict) and event.get("Type") == "Notification" and isinstance(event.get("Message"), str):
        return parse(event["Message"])   # through SNS without raw message delivery
    if not isinstance(event, dict):
        raise Malformed("not a JSON object")
    for key in ("source", "detail-type"):
        if not isinstance(event.get(key), str):
            raise Malformed(f"no {key!r}: not an EventBridge event")
    if not isinstance(event.get("detail"), dict):
        raise Malformed("no 'detail' object: not an EventBridge event")
    region, account = _text(event.get("region")), _text(event.get("account"))
    try:
        return [Touch(kind, name, r, account) for kind, name, r in _touches(event, region) if name]
    except (TypeError, AttributeError, ValueError) as exc:   # a field of another type than AWS sends
        raise Malformed(f"an event of unexpected shape ({type(exc).__name__})") from None


def _touches(event: dict, region: str) -> Iterable[tuple[str, str, str]]:
    source, kind, detail = event["source"], event["detail-type"], event["detail"]
    if kind in (CLOUDTRAIL, SERVICE_EVENT):
        if detail.get("errorCode"):
            return []  # the call failed: nothing changed
        return _cloudtrail(source, detail, _text(detail.get("awsRegion")) or region)
    if source == "aws.ssm" and kind == ep.PARAMETER_CHANGE:
        if detail.get("exception"):
            return []  # the create or update failed (its "exception" says why): nothing changed
        return [(PARAMETER, _text(detail.get("name")), region)]
    if source == "aws.secretsmanager" and kind == ep.SECRET_LABEL_UPDATED:
        names = [_text(detail.get("name"))] + [_text(r) for r in event.get("resources") or [] if isinstance(r, str)]
        return [(SECRET, n, region) for n in names]
    return []


def _cloudtrail(source: str, detail: dict, region: str) -> list[tuple[str, str, str]]:
    name, req = _text(detail.get("eventName")), detail.get("requestParameters")
    req = req if isinstance(req, dict) else {}
    if source == "aws.iam" and name in ROLE_CALLS:
        return [(ROLE, _text(req.get("roleName")), "")]
    if source == "aws.ecs" and name in ECS_CALLS:
        out = [(FAMILY, f, region) for f in _families(name, req)]
        if name in ("CreateService", "UpdateService"):   # our rollout's service, moved to any task definition
            out.append((SERVICE, service_key(_text(req.get("cluster")), _text(req.get("service"))
                                             or _text(req.get("serviceName"))), region))
        return out
    if source == "aws.secretsmanager" and (name in SECRET_CALLS or name in SECRET_SERVICE_EVENTS):
        return [(SECRET, s, region) for s in _secret_ids(name, req, detail)]
    if source == "aws.ssm" and name in SSM_TAG_CALLS and req.get("resourceType") == "Parameter":
        return [(PARAMETER, _text(req.get("resourceId")), region)]
    return []


def _families(call: str, req: dict) -> list[str]:
    if call == "RegisterTaskDefinition":
        return [_text(req.get("family"))]
    if call == "DeleteTaskDefinitions":
        return [family_of(t) for t in req.get("taskDefinitions") or [] if isinstance(t, str)]
    if call in ("TagResource", "UntagResource"):
        arn = _text(req.get("resourceArn"))
        return [family_of(arn)] if ":task-definition/" in arn else []
    return [family_of(_text(req.get("taskDefinition")))]   # DeregisterTaskDefinition, UpdateService


def service_key(cluster: str, service: str) -> str:
    """CLUSTER/SERVICE, as a rollout names it, from a cluster and a service each given by name or ARN (a
    cluster left out is ``default``: ECS API reference, UpdateService, request parameter ``cluster``)."""
    if not service:
        return ""
    return f"{cluster.rsplit('/', 1)[-1] or 'default'}/{service.rsplit('/', 1)[-1]}"


def family_of(task_definition: str) -> str:
    """``arn:…:task-definition/web:3``, ``web:3`` and ``web`` are all family ``web``."""
    return task_definition.rsplit("/", 1)[-1].split(":", 1)[0] if task_definition else ""


def _secret_ids(call: str, req: dict, detail: dict) -> list[str]:
    extra = detail.get("additionalEventData")
    extra = extra if isinstance(extra, dict) else {}
    resp = detail.get("responseElements")
    resp = resp if isinstance(resp, dict) else {}
    found = [req.get("secretId"), req.get("name") if call == "CreateSecret" else None, extra.get("SecretId"),
             resp.get("arn"), resp.get("aRN")]   # "aRN": how some calls spelled it before February 2024
    return [_text(s) for s in found if isinstance(s, str) and s]


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ""


def secret_keys(secret: str) -> set[str]:
    """What a secret may be called by: as written; an ARN's name; that name without the random suffix."""
    out = {secret}
    arn = parse_arn(secret)
    if arn is not None and arn.resource.startswith("secret:"):
        name = arn.resource[len("secret:"):]
        out |= {name, _SECRET_SUFFIX.sub("", name)}
    return out


# --- which objects ---------------------------------------------------------------------------------

class Index:
    """From what an event touched to the refs of the objects to reconcile; built once per load."""

    def __init__(self, desired: Desired) -> None:
        home = desired.region
        self.home = home
        self.by: dict[tuple[str, str, str], set[str]] = {}
        for p in desired.parameters.values():
            self._add(PARAMETER, p.region, p.name, p.ref)
        for role in desired.roles:
            self._add(ROLE, "", role.name, role.ref)
        for td in desired.task_definitions:
            self._add(FAMILY, home, td.family, td.ref)
            for service in getattr(td.rollout, "services", None) or ():
                self._add(SERVICE, home, service, td.ref)
        readers = [(o.ref, o.references) for o in (*desired.task_definitions, *desired.roles)]
        for ref, references in readers:
            for r in references:
                region = r.region or home
                if r.secret_id is not None:
                    for key in secret_keys(r.secret_id):
                        self._add(SECRET, region, key, ref)
                if r.service == "ssm":   # a /aws/reference/secretsmanager/ path is read through SSM too
                    self._add(PARAMETER, region, r.name, ref)

    def _add(self, kind: str, region: str, name: str, ref: str) -> None:
        self.by.setdefault((kind, region, name), set()).add(ref)

    def refs(self, touch: Touch, account: str | None = None) -> set[str]:
        """``account``: the controller's, when known; another account's event concerns none of ours."""
        if account and touch.account and touch.account != account:
            return set()
        region = "" if touch.kind == ROLE else touch.region or self.home
        names = secret_keys(touch.name) if touch.kind == SECRET else {_parameter_name(touch.name)} \
            if touch.kind == PARAMETER else {touch.name}
        out: set[str] = set()
        for name in names:
            out |= self.by.get((touch.kind, region, name), set())
        if touch.kind == PARAMETER and touch.name.startswith(SM_REFERENCE_PREFIX):
            out |= self.refs(Touch(SECRET, touch.name[len(SM_REFERENCE_PREFIX):], touch.region, touch.account))
        return out


    def parameter(self, touch: Touch) -> tuple[str, str]:
        """(Region, name) of the parameter a PARAMETER touch names."""
        return touch.region or self.home, _parameter_name(touch.name)


def _parameter_name(name: str) -> str:
    """A tag call names the parameter as written; an ARN is the same parameter as its name."""
    arn = parse_arn(name)
    return parameter_name_from_arn(arn.resource) if arn is not None and arn.service == "ssm" else name


# --- the queue's address ---------------------------------------------------------------------------

_QUEUE_URL = re.compile(r"^https?://(?P<host>[^/]+)/(?P<account>\d{12})/(?P<name>[A-Za-z0-9_-]{1,80}(\.fifo)?)/?$")
_SQS_HOST = re.compile(r"^(?:sqs\.)?(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)\.(?:queue\.)?amazonaws\.com(?:\.cn)?$")


@dataclass(frozen=True)
class QueueUrl:
    url: str
    account: str
    name: str
    region: str | None    # None: a host that does not say (a local endpoint)

    def arn(self, partition: str, region: str) -> str:
        return f"arn:{partition}:sqs:{self.region or region}:{self.account}:{self.name}"


def queue_url(url: str) -> QueueUrl:
    """``https://sqs.eu-west-1.amazonaws.com/123456789012/name`` (also the legacy ``eu-west-1.queue.…`` host)."""
    m = _QUEUE_URL.match(url)
    if m is None:
        raise ValueError(f"{url!r} is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)")
    host = _SQS_HOST.match(m["host"].split(":")[0])
    return QueueUrl(url, m["account"], m["name"], host["region"] if host else None)
