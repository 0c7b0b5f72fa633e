"""What the fault, crash, hostile-input and secret tests share: a fleet of manifests, the CLI run
in process, what moto holds, no backoff, and a proxy that can answer with scripted AWS errors.

Import it as ``from faultkit import ...`` (``tests/`` is on ``sys.path``, as for ``awsops``).
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from botocore.retries import standard

import faultproxy
from awsops import AwsOp, identify
from awsserver import TEST_ENV, UNSET_ENV, MotoHandle
from controller.aws import retry
from controller.cli import main

OWNER_TAG = "ecs-secrets:owner"
KMS_ALIAS = "alias/fleet-key"
SECRET_NAME = "fleet/api-token"
EXEC_POLICY = "arn:aws:iam::123456789012:policy/fleet-exec"


def fault_seed() -> int:
    """``FAULT_SEED`` picks the fault schedule (and the crash points); the default is fixed."""
    return int(os.environ.get("FAULT_SEED", "20240601"))


@pytest.fixture
def fast_aws(moto_server: MotoHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``aws_env`` without the reset: after a reset moto rebuilds its SSM and ECS backends (and loads
    AWS's managed IAM policies) on first use, seconds per test. The fleet isolates itself instead:
    its own names and its own ``--owner``.
    """
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**TEST_ENV, "AWS_ENDPOINT_URL": moto_server.url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ECS_SECRETS_RATE_LIMITS", "off")  # these tests are about faults, not pacing
    prepare_aws(moto_server.url)
    yield moto_server.url


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without waiting: botocore's jittered backoff and ours (tenacity) both return at once."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    monkeypatch.setattr(retry, "sleep", lambda seconds: None)


def canary() -> str:
    """A random value that must never be printed, logged or written anywhere but its parameter."""
    return "canary" + secrets.token_hex(12)


# --- the fleet: parameters, roles and task definitions -----------------------------------------

@dataclass
class Fleet:
    """``params`` SSM parameters, ``roles`` execution roles, ``families`` task definitions."""

    params: int = 12
    roles: int = 3
    families: int = 5
    deletion: str = "Retain"
    keep: int = 2                                                     # keepRevisions
    env: dict[str, str] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: secrets.token_hex(3))   # isolates fleets sharing one moto

    @property
    def owner(self) -> str:
        return f"fleet-{self.tag}"

    @property
    def objects(self) -> int:
        return self.params + self.roles + self.families

    def param_name(self, i: int) -> str:
        return f"/fleet-{self.tag}/param_{i:03d}"

    def family(self, i: int) -> str:
        return f"fleet-{self.tag}-app-{i:03d}"

    def role_name(self, i: int) -> str:
        return f"fleet-{self.tag}-exec-{i:03d}"

    def variable(self, i: int) -> str:
        return f"FLEET_{self.tag.upper()}_SECRET_{i}"

    def documents(self, revision: str = "1") -> list[dict]:
        docs = [self._parameter(i) for i in range(self.params)]
        docs += [self._role(i) for i in range(self.roles)]
        docs += [self._task_definition(i, revision) for i in range(self.families)]
        return docs

    def _parameter(self, i: int) -> dict:
        spec: dict = {"name": self.param_name(i), "description": f"fleet parameter {i}",
                      "tags": {"team": "fleet"}, "deletionPolicy": self.deletion}
        kind = i % 4
        if kind == 0:
            spec["value"] = {"fromEnv": self.variable(i)}
            self.env.setdefault(self.variable(i), canary())
        elif kind == 1:
            spec["value"] = {"generate": {"length": 24}}
        elif kind == 2:
            spec.update(type="String", value={"literal": f"plain-{i}"})
        else:
            spec.update(kmsKeyId=KMS_ALIAS, value={"fromEnv": self.variable(i)})
            self.env.setdefault(self.variable(i), canary())
        return doc("Parameter", f"param-{i:03d}", spec)

    def _role(self, i: int) -> dict:
        return doc("ExecutionRole", f"exec-{i:03d}", {"roleName": self.role_name(i), "description": f"fleet role {i}",
                                                       "managedPolicyArns": [EXEC_POLICY], "tags": {"team": "fleet"}, "deletionPolicy": self.deletion})

    def _task_definition(self, i: int, revision: str) -> dict:
        refs = [self.param_name(j) for j in range(self.params) if j % max(self.families, 1) == i]
        secrets_ = [{"name": f"S{k}", "valueFrom": name} for k, name in enumerate(refs)]
        secrets_.append({"name": "TOKEN", "valueFrom": f"/aws/reference/secretsmanager/{SECRET_NAME}"})
        container = {"name": "app", "image": "public.ecr.aws/nginx/nginx:1.27", "memory": 256,
                     "environment": [{"name": "REVISION", "value": revision}], "secrets": secrets_}
        spec = {"family": self.family(i), "executionRole": f"exec-{i % max(self.roles, 1):03d}",
                "requiresCompatibilities": ["EC2"], "containerDefinitions": [container],
                "keepRevisions": self.keep, "deletionPolicy": self.deletion}
        return doc("TaskDefinition", f"app-{i:03d}", spec)

    def write(self, folder: Path, revision: str = "1") -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.yaml"):
            old.unlink()
        docs = self.documents(revision)
        for kind in ("Parameter", "ExecutionRole", "TaskDefinition"):
            text = "\n---\n".join(json.dumps(d) for d in docs if d["kind"] == kind)  # JSON is YAML
            if text:
                (folder / f"{kind.lower()}s.yaml").write_text(text + "\n", encoding="utf-8")
        return folder


def doc(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "ecs-secrets/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def prepare_aws(moto_url: str) -> None:
    """What fleets expect to exist already: a KMS key alias, a Secrets Manager secret, a managed policy."""
    kms = direct("kms", moto_url)
    if not any(a["AliasName"] == KMS_ALIAS for a in kms.list_aliases()["Aliases"]):
        key = kms.create_key(Description="fleet key")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=KMS_ALIAS, TargetKeyId=key)
    sm = direct("secretsmanager", moto_url)
    if not sm.list_secrets(Filters=[{"Key": "name", "Values": [SECRET_NAME]}])["SecretList"]:
        sm.create_secret(Name=SECRET_NAME, SecretString=canary())
    iam = direct("iam", moto_url)
    if not any(p["Arn"] == EXEC_POLICY for p in iam.list_policies(Scope="Local")["Policies"]):
        document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents",
                                                            "Resource": "*"}]}
        iam.create_policy(PolicyName="fleet-exec", PolicyDocument=json.dumps(document))


def direct(service: str, moto_url: str):
    """A client straight to moto (not through the proxy), to inspect or prepare state."""
    return boto3.client(service, endpoint_url=moto_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


# --- running the CLI in process ----------------------------------------------------------------

@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli(capfd: pytest.CaptureFixture[str], *argv: str) -> Run:
    capfd.readouterr()
    code = main(list(argv))
    out, err = capfd.readouterr()
    return Run(code, out, err)


def converges(capfd: pytest.CaptureFixture[str], fleet: "Fleet", folder: Path, *extra: str) -> tuple[Run, Run]:
    """A reconcile, then a dry-run with --detailed-exitcode that must find nothing to do."""
    first = cli(capfd, "reconcile", "-f", str(folder), "--owner", fleet.owner, *extra)
    again = cli(capfd, "reconcile", "-f", str(folder), "--owner", fleet.owner, "--dry-run", "--detailed-exitcode", *extra)
    return first, again


# --- what moto holds ---------------------------------------------------------------------------

@dataclass
class Holdings:
    revisions: dict[str, list[tuple[int, str]]]     # family → [(revision, status)]
    versions: dict[str, int]                        # parameter name → version
    untagged: list[str]                             # the fleet's resources without its owner tag
    roles: dict[str, dict]                          # role name → {"inline": [...], "managed": [...]}


def holdings(moto_url: str, fleet: Fleet) -> Holdings:
    """The fleet's task definitions, parameters and roles in moto, read directly (not through the proxy)."""
    ecs, ssm, iam = direct("ecs", moto_url), direct("ssm", moto_url), direct("iam", moto_url)
    prefix, untagged = f"fleet-{fleet.tag}-", []
    revisions: dict[str, list[tuple[int, str]]] = {}
    for status in ("ACTIVE", "INACTIVE"):
        for page in ecs.get_paginator("list_task_definitions").paginate(status=status):
            for arn in page["taskDefinitionArns"]:
                family, rev = arn.rsplit("/", 1)[1].rsplit(":", 1)
                if not family.startswith(prefix):
                    continue
                revisions.setdefault(family, []).append((int(rev), status))
                if _tag(ecs.list_tags_for_resource(resourceArn=arn).get("tags"), "key", "value") != fleet.owner:
                    untagged.append(arn)
    versions = {}
    filters = [{"Key": "Name", "Option": "BeginsWith", "Values": [f"/fleet-{fleet.tag}/"]}]
    for page in ssm.get_paginator("describe_parameters").paginate(ParameterFilters=filters):
        for p in page["Parameters"]:
            versions[p["Name"]] = p["Version"]
            if _tag(ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=p["Name"])["TagList"]) != fleet.owner:
                untagged.append(p["Name"])
    roles = {}
    for page in iam.get_paginator("list_roles").paginate():
        for role in (r for r in page["Roles"] if r["RoleName"].startswith(prefix)):
            name = role["RoleName"]
            if _tag(iam.list_role_tags(RoleName=name)["Tags"]) != fleet.owner:
                untagged.append(name)
            attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
            roles[name] = {"inline": iam.list_role_policies(RoleName=name)["PolicyNames"],
                           "managed": [p["PolicyArn"] for p in attached]}
    return Holdings({f: sorted(r) for f, r in revisions.items()}, versions, untagged, roles)


def _tag(tags: list[dict] | None, key: str = "Key", value: str = "Value") -> str | None:
    return {t[key]: t[value] for t in tags or []}.get(OWNER_TAG)


def assert_one_of_each(fleet: Fleet, moto_url: str) -> Holdings:
    """Exactly one revision per family, version 1 of every parameter, everything owned and complete."""
    held = holdings(moto_url, fleet)
    assert held.revisions == {fleet.family(i): [(1, "ACTIVE")] for i in range(fleet.families)}
    assert held.versions == {fleet.param_name(i): 1 for i in range(fleet.params)}
    assert held.untagged == []
    assert held.roles == {fleet.role_name(i): {"inline": ["ecs-secrets"], "managed": [EXEC_POLICY]}
                          for i in range(fleet.roles)}
    return held


# --- a proxy that can also answer with scripted AWS errors, or with replies of the test's own ----------


@dataclass(frozen=True)
class Reply:
    """A reply sent as it is: an endless listing, a body missing the key the operation always returns,
    an empty or cut-off body."""

    status: int
    content_type: str
    body: bytes


# → (status, code, message) for an AWS error in the request's protocol, a ``Reply``, or None (let it through)
Answer = Callable[[AwsOp, bytes], "tuple[int, str, str] | Reply | None"]
JSON = "application/x-amz-json-1.1"
XML = "text/xml"


class ScriptedProxy(faultproxy.FaultProxy):
    """A FaultProxy that first asks ``script`` (in order) whether to answer a request itself.

    ``script`` entries are ``(glob, limit, answer)``; ``answer(op, body)`` returns ``(status, code,
    message)`` to send as an AWS error in the request's protocol, a ``Reply`` to send as it is, or None
    to let the request through. ``answered`` counts the requests answered, by ``service:Operation``.
    """

    def __init__(self, upstream_url: str, script: list[tuple[str, int | None, Answer]], **kwargs) -> None:
        super().__init__(upstream_url, **kwargs)
        self.script = [[glob, limit, answer] for glob, limit, answer in script]
        self.scripted: list[tuple[str, str, str]] = []
        self.answered: Counter[str] = Counter()
        self._server.RequestHandlerClass = _ScriptedHandler

    def answer(self, op: AwsOp, body: bytes) -> "tuple[int, str, str] | Reply | None":
        with self._lock:
            for entry in self.script:
                glob, limit, answer = entry
                if (limit is None or limit > 0) and faultproxy.matches(glob, op):
                    got = answer(op, body)
                    if got is not None:
                        entry[1] = None if limit is None else limit - 1
                        self.calls[(op.service, op.operation)] += 1
                        self.answered[op.key] += 1
                        self.scripted.append((op.service, op.operation,
                                              "reply" if isinstance(got, Reply) else got[1]))
                        return got
        return None


class _ScriptedHandler(faultproxy._Handler):
    def do_request(self) -> None:
        body = self._read_body()
        path, _, query = self.path.partition("?")
        op = identify(self.command, path, self.headers, body, query)
        got = self.server.proxy.answer(op, body)
        if got is None:
            original, self.rfile = self.rfile, _Replay(body, self.rfile)  # the ordinary handler reads it again
            try:
                return super().do_request()
            finally:
                self.rfile = original
        if isinstance(got, Reply):
            headers = [("Content-Type", got.content_type), ("x-amzn-RequestId", str(uuid.uuid4()))]
            return self._send(got.status, headers, got.body)
        status, code, message = got
        self._send(*_error(op, status, code, message))

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_request


class _Replay:
    """A file whose first reads give back a body already read, then the connection's own stream."""

    def __init__(self, body: bytes, rest) -> None:
        self._body, self._rest = body, rest

    def read(self, n: int = -1) -> bytes:
        if self._body:
            out, self._body = (self._body, b"") if n < 0 else (self._body[:n], self._body[n:])
            return out
        return self._rest.read(n)

    def readline(self, *args) -> bytes:
        return self._rest.readline(*args)

    def close(self) -> None:
        self._rest.close()


def _error(op: AwsOp, status: int, code: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    if op.protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        return status, [("Content-Type", "application/x-amz-json-1.1")], body
    body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{_xml(message)}</Message>"
            f"</Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>").encode()
    return status, [("Content-Type", "text/xml")], body


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def always(status: int, code: str, message: str) -> Answer:
    return lambda op, body: (status, code, message)


def fixed(status: int, content_type: str, body: bytes) -> Answer:
    return lambda op, request: Reply(status, content_type, body)


def endless_pages(result_key: str, token: str = "NextToken", stop_after: int = 500) -> Answer:
    """A JSON-protocol listing whose every page is empty and has a new next token. After
    ``stop_after`` pages it ends, so that a regression that pages on fails instead of hanging."""
    served: Counter[str] = Counter()

    def answer(op: AwsOp, body: bytes) -> Reply:
        served[op.key] += 1
        page: dict = {result_key: []}
        if served[op.key] <= stop_after:
            page[token] = uuid.uuid4().hex
        return Reply(200, JSON, json.dumps(page).encode())
    return answer
