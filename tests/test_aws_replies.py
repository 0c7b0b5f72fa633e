"""Replies AWS should never send: an endless listing, a reply missing its result, a body that does not
parse, an error with an empty body. Each ends the run with exit 1 and one line naming the service and
the operation, never a bare ``KeyError``, botocore's raw ``b''`` or a traceback.

Served by ``faultkit.ScriptedProxy`` in front of moto's server, or by botocore's ``Stubber``. What AWS
sends, for what the fakes below depart from: a listing page carries its next token in the member the
operation's paginator names (``NextToken`` for SSM DescribeParameters, ``Marker`` with ``IsTruncated``
for IAM, ``nextToken`` for ECS, ``PaginationToken`` for the tagging API — botocore's
``paginators-1.json`` of each service), and SSM DescribeParameters always answers with a
``Parameters`` list, IAM GetRole with a ``Role``, ECS DescribeTaskDefinition with a ``taskDefinition``
(their API references' "Response Syntax").
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

import botocore.session
import pytest
from botocore.stub import Stubber

pytest.register_assert_rewrite("faultkit")
from faultkit import cli, direct, fast_aws, no_backoff  # noqa: E402,F401 - fixtures, asked for by name
from faultkit import JSON, XML, ScriptedProxy, endless_pages, fixed  # noqa: E402

from controller.aws import paging  # noqa: E402
from controller.aws.session import Aws  # noqa: E402
from controller.verify.observe import Reader  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def manifests(folder: Path, tag: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.yaml").write_text(f"""apiVersion: ecs-secrets/v1
kind: Parameter
metadata: {{name: db}}
spec:
  name: /replies-{tag}/db
  value: {{fromEnv: REPLIES_DB}}
---
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {{name: exec}}
spec: {{roleName: replies-{tag}-exec}}
---
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {{name: web}}
spec:
  family: replies-{tag}-web
  executionRole: exec
  containerDefinitions:
    - name: web
      image: nginx
      memory: 128
      secrets:
        - {{name: DB, valueFrom: /replies-{tag}/db}}
""")
    return folder


@pytest.fixture
def moto_url(request: pytest.FixtureRequest) -> str:
    """``fast_aws``: moto's server (not reset), with the AWS_* variables pointing at it."""
    return request.getfixturevalue("fast_aws")


@pytest.fixture
def tag() -> str:
    return secrets.token_hex(3)


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "canary" + secrets.token_hex(12)
    monkeypatch.setenv("REPLIES_DB", value)
    return value


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


# --- 14: an endless listing --------------------------------------------------------------------

def test_an_endless_listing_stops_with_a_message_naming_it(moto_url: str, tag: str, canary: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    monkeypatch.setattr(paging, "MAX_PAGES", 20)
    folder = manifests(tmp_path / "m", tag)
    endless = endless_pages("Parameters", stop_after=300)
    with ScriptedProxy(moto_url, [("ssm:DescribeParameters", None, endless)]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        started = time.monotonic()
        run = cli(capfd, "reconcile", "-f", str(folder), "--owner", f"replies-{tag}")
        took = time.monotonic() - started
    assert run.code == 1, run.text[-2000:]
    line = error_line(run.err)
    assert "ssm DescribeParameters: the listing went past 20 pages, each with a new next token" in line
    assert proxy.answered["ssm:DescribeParameters"] == 20   # the 21st page is never asked for
    assert proxy.writes() == 0
    assert took < 60 and "Traceback" not in run.err and canary not in run.text


def paginated_operations() -> list[tuple[str, str]]:
    """Every (service, operation) the controller lists through a botocore paginator, from its source."""
    clients = {"ssm": "ssm", "iam": "iam", "ecs": "ecs", "tagging": "resourcegroupstaggingapi", "sm": "secretsmanager",
               "kms": "kms", "ec2": "ec2"}
    found = set()
    for path in (REPO / "controller").rglob("*.py"):
        for client, method in re.findall(r"(\w+)\.get_paginator\(\"(\w+)\"\)", path.read_text()):
            found.add((clients[client], method))
    return sorted(found)


def test_the_paginated_operations_are_the_known_ones() -> None:
    assert {op for _, op in paginated_operations()} >= {"describe_parameters", "list_task_definitions", "list_roles",
                                                        "get_account_authorization_details", "get_resources"}


@pytest.mark.parametrize(("service", "method"), paginated_operations())
def test_every_paginator_is_capped(service: str, method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setattr(paging, "MAX_PAGES", 3)
    client = Aws(region="us-east-1", rate_limits="off").client(service)
    operation = client.meta.method_to_api_mapping[method]
    config = botocore.session.get_session().get_paginator_model(service).get_paginator(operation)
    keys = config["result_key"] if isinstance(config["result_key"], list) else [config["result_key"]]
    with Stubber(client) as stub:
        for page in range(4):
            reply = {key: [] for key in keys} | {config["output_token"]: f"token-{page}"}
            if "more_results" in config:
                reply[config["more_results"]] = True
            stub.add_response(method, reply)
        with pytest.raises(paging.TooManyPages) as stopped:
            for _ in client.get_paginator(method).paginate(**_required(client, operation)):
                pass
    assert str(stopped.value).startswith(f"{service} {operation}: the listing went past 3 pages")


def _required(client, operation: str) -> dict:
    shape = client.meta.service_model.operation_model(operation).input_shape
    return {name: "x" for name in (shape.required_members if shape else [])}


def test_a_listing_without_a_paginator_is_capped_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """ListSecretVersionIds has no botocore paginator; verify pages it in its own loop."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(paging, "MAX_PAGES", 3)
    sm = Aws(region="us-east-1", rate_limits="off").client("secretsmanager")
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf"
    with Stubber(sm) as stub:
        for page in range(3):
            stub.add_response("list_secret_version_ids", {"Versions": [], "NextToken": f"token-{page}"})
        reason = Reader._unlabelled(sm, arn, {"v-pinned"}, {})
    assert reason == "secretsmanager:ListSecretVersionIds failed with TooManyPages"


def test_no_listing_is_paged_by_hand_outside_paging() -> None:
    """A loop over next tokens of its own would escape the cap: only ``aws/paging.py`` may hold one."""
    token = re.compile(r"[\"'](NextToken|nextToken|Marker|PaginationToken)[\"']")
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "controller").rglob("*.py")
                 if p.name != "paging.py" and token.search(p.read_text())]
    assert offenders == []


# --- 18b: replies that lack what the operation always returns, or do not parse ------------------

MALFORMED = {
    "describe-parameters-without-parameters": ("ssm:DescribeParameters", fixed(200, JSON, b"{}"),
                                               "ssm DescribeParameters: the reply has no 'Parameters'"),
    "describe-parameters-empty-body": ("ssm:DescribeParameters", fixed(200, JSON, b""),
                                       "ssm DescribeParameters: the reply has no 'Parameters'"),
    "describe-parameters-400-empty-body": ("ssm:DescribeParameters", fixed(400, JSON, b""),
                                           "DescribeParameters operation: ssm answered HTTP 400 with an empty error body"),
    "get-role-empty-body": ("iam:GetRole", fixed(200, XML, b""), "iam GetRole: the reply could not be parsed"),
    "get-role-cut-off": ("iam:GetRole", fixed(200, XML, b"<GetRoleResponse><GetRoleResult><Ro"),
                         "iam GetRole: the reply could not be parsed"),
    "get-role-without-role": ("iam:GetRole", fixed(200, XML, b"<GetRoleResponse><GetRoleResult></GetRoleResult>"
                                                             b"</GetRoleResponse>"), "iam GetRole: the reply has no 'Role'"),
    "describe-task-definition-without-it": ("ecs:DescribeTaskDefinition", fixed(200, JSON, b"{}"),
                                            "ecs DescribeTaskDefinition: the reply has no 'taskDefinition'"),
    "get-caller-identity-empty-body": ("sts:GetCallerIdentity", fixed(200, XML, b""),
                                       "sts GetCallerIdentity: the reply could not be parsed"),
}


@pytest.mark.usefixtures("no_backoff")
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_reply_is_one_line_naming_service_and_operation(case: str, moto_url: str, tag: str, canary: str,
                                                                    tmp_path: Path, monkeypatch, capfd) -> None:
    glob, answer, expect = MALFORMED[case]
    folder = manifests(tmp_path / "m", tag)
    with ScriptedProxy(moto_url, [(glob, None, answer)]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        run = cli(capfd, "reconcile", "-f", str(folder), "--owner", f"replies-{tag}")
    assert proxy.answered[glob], proxy.calls
    assert run.code == 1, run.text[-2000:]
    line = error_line(run.err)
    assert expect in line
    assert "KeyError" not in line and "b''" not in line and "Traceback" not in run.err
    assert proxy.writes() == 0 and canary not in run.text


@pytest.mark.usefixtures("no_backoff")
def test_a_cut_off_reply_of_a_decrypting_read_shows_none_of_it(moto_url: str, tag: str, canary: str, tmp_path: Path,
                                                               monkeypatch, capfd) -> None:
    """botocore takes a JSON body it cannot parse as ``{"message": body}``; the body is never printed."""
    folder = manifests(tmp_path / "m", tag)
    direct("ssm", moto_url).put_parameter(Name=f"/replies-{tag}/db", Type="SecureString", Value="old-" + canary)
    cut = ('{"Parameters": [{"Name": "/replies-%s/db", "Type": "SecureString", "Value": "%s' % (tag, canary)).encode()
    with ScriptedProxy(moto_url, [("ssm:GetParameters", None, fixed(200, JSON, cut))]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        run = cli(capfd, "reconcile", "-f", str(folder), "--owner", f"replies-{tag}", "--log-level", "debug")
    assert proxy.answered["ssm:GetParameters"]
    assert run.code == 1, run.text[-2000:]
    line = error_line(run.err)   # said by aws/decrypting.py for the reads that decrypt
    assert "ssm" in line and "GetParameters" in line and "KeyError" not in line
    assert canary not in run.text
