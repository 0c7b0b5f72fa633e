"""No secret anywhere: random canary values never appear in what any command prints (stdout, stderr,
every log level and format), in error paths (an AWS error that echoes the request's value), or in the
tags, descriptions, task definitions and policies written to AWS — not as they are, not in base64,
not hashed. /metrics and /status are checked by tests/test_daemon.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

pytest.register_assert_rewrite("faultkit")
from faultkit import (Fleet, ScriptedProxy, canary, cli, direct, fast_aws, holdings,  # noqa: E402,F401
                      no_backoff)

COMBOS = [(level, fmt) for level in ("debug", "info", "warning") for fmt in ("text", "json")]
CI_COMBOS = {("debug", "json")}   # the most verbose, structured; the other five run with -m slow


def forms(value: str) -> set[str]:
    """The value and what would betray it: base64 (both alphabets) and the common hex digests."""
    raw = value.encode()
    out = {value, base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    out |= {getattr(hashlib, name)(raw).hexdigest() for name in ("md5", "sha1", "sha256", "sha512")}
    return out


def assert_absent(values: set[str], text: str, where: str) -> None:
    for value in values:
        for form in forms(value):
            assert form not in text, f"a secret value (or its encoding) appears in {where}"


class Secrets:
    """A small fleet whose values come from the environment, a file and the generator."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fleet = Fleet(params=8, roles=2, families=2)
        self.folder, self.file, self.monkeypatch = tmp_path / "m", tmp_path / "secret.txt", monkeypatch
        self.seen: set[str] = set()
        self.refresh()

    def refresh(self) -> None:
        """New values for every variable and the file: the next reconcile overwrites them."""
        for name in list(self.fleet.env):
            self.fleet.env[name] = canary()
        self.fleet.write(self.folder)
        docs = (self.folder / "parameters.yaml").read_text().replace(
            json.dumps({"fromEnv": self.fleet.variable(3)}), json.dumps({"fromFile": str(self.file)}))
        (self.folder / "parameters.yaml").write_text(docs)
        self.file.write_text(canary() + "\n")
        for name, value in self.fleet.env.items():
            self.monkeypatch.setenv(name, value)
        self.seen |= set(self.fleet.env.values()) | {self.file.read_text().strip()}

    def stored(self, moto_url: str) -> set[str]:
        """Every parameter value in moto, generated ones included."""
        ssm = direct("ssm", moto_url)
        names = list(holdings(moto_url, self.fleet).versions)
        return {p["Value"] for i in range(0, len(names), 10)
                for p in ssm.get_parameters(Names=names[i:i + 10], WithDecryption=True)["Parameters"]
                if p["Type"] == "SecureString"}


@pytest.fixture
def world(fast_aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Secrets:
    return Secrets(tmp_path, monkeypatch)


def commands(world: Secrets) -> list[list[str]]:
    path, owner = str(world.folder), ("--owner", world.fleet.owner)
    return [
        ["validate", "-f", path],
        ["reconcile", "-f", path, *owner, "--dry-run", "--detailed-exitcode"],
        ["reconcile", "-f", path, *owner, "--dry-run", "--output", "json"],
        ["reconcile", "-f", path, *owner],
        ["reconcile", "-f", path, *owner, "--output", "json"],
        ["verify", "-f", path],
        ["verify", "-f", path, "--output", "json"],
        ["run", "-f", path, *owner, "--once"],
        ["controller-policy", "-f", path, "--account", "123456789012"],
        ["schema"],
    ]


@pytest.mark.parametrize(("level", "fmt"), [
    pytest.param(level, fmt, marks=() if (level, fmt) in CI_COMBOS else pytest.mark.slow) for level, fmt in COMBOS])
def test_no_command_prints_a_secret(level: str, fmt: str, world: Secrets, fast_aws: str, capfd) -> None:
    printed = []
    for _ in range(2):    # create, then update every value: both paths are logged
        world.refresh()
        for argv in commands(world):
            run = cli(capfd, *argv, "--log-level", level, "--log-format", fmt)
            assert "Traceback" not in run.err or level == "debug", run.err[-2000:]
            printed.append((" ".join(argv[:1] + [level, fmt]), run.text))
        assert world.stored(fast_aws) >= {v for k, v in world.fleet.env.items() if k != world.fleet.variable(3)}
    secrets = world.seen | world.stored(fast_aws)
    assert len(secrets) >= 8
    for where, text in printed:
        assert_absent(secrets, text, where)
    assert any("(sensitive value)" in text for _, text in printed)


def test_nothing_written_to_aws_carries_a_secret(world: Secrets, fast_aws: str, capfd) -> None:
    assert cli(capfd, "reconcile", "-f", str(world.folder), "--owner", world.fleet.owner).code == 0
    fleet, ssm, iam, ecs = world.fleet, *(direct(s, fast_aws) for s in ("ssm", "iam", "ecs"))
    written = []
    for name in holdings(fast_aws, fleet).versions:
        written.append(ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"])
        written.append(ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"])
        written.append(ssm.get_parameter_history(Name=name)["Parameters"][0].get("Description"))
    for i in range(fleet.roles):
        role = fleet.role_name(i)
        written += [iam.get_role(RoleName=role)["Role"], iam.list_role_tags(RoleName=role)["Tags"],
                    iam.get_role_policy(RoleName=role, PolicyName="ecs-secrets")["PolicyDocument"]]
    for i in range(fleet.families):
        written.append(ecs.describe_task_definition(taskDefinition=fleet.family(i), include=["TAGS"]))
    assert_absent(world.seen | world.stored(fast_aws), json.dumps(written, default=str), "what was written to AWS")


def _echo(seen: set[str], template: str):
    """An AWS validation error whose message repeats the request's value, as SSM's do."""
    def answer(op, body: bytes):
        request = json.loads(body)
        value = request["Value"]
        if request.get("Type", "SecureString") != "SecureString":
            return None   # a plain String value is no secret; let it through
        seen.add(value)
        return 400, "ValidationException", template.format(value=value)
    return answer


ECHOES = [
    "1 validation error detected: Value '{value}' at 'value' failed to satisfy constraint: Member must have "
    "length less than or equal to 4096",
    "Parameter value {value} is not valid for the parameter type SecureString",   # not the usual shape
    'Invalid request: {{"Name": "/x", "Value": "{value}"}}',
]


@pytest.mark.parametrize("template", ECHOES, ids=["quoted", "bare", "json"])
def test_an_aws_error_that_echoes_the_value_is_scrubbed(template: str, world: Secrets, fast_aws: str, capfd,
                                                        monkeypatch, no_backoff) -> None:
    echoed: set[str] = set()
    with ScriptedProxy(fast_aws, script=[("ssm:PutParameter", None, _echo(echoed, template))]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        for level, fmt in (("debug", "text"), ("info", "json"), ("warning", "text")):
            run = cli(capfd, "reconcile", "-f", str(world.folder), "--owner", world.fleet.owner,
                      "--log-level", level, "--log-format", fmt)
            assert run.code == 1
            assert "ValidationException" in run.err
            assert_absent(world.seen | echoed, run.text, f"reconcile at {level}/{fmt}")
    assert len(echoed) >= 6   # fromEnv, fromFile and generated values were all echoed
