"""--sandbox: an embedded AWS (moto, in process) that keeps its state between commands.

It lets anyone try ecs-secrets with no account. ``start`` begins a fresh moto and replays into it the
writes of the earlier commands (``journal``: ``.ecs-secrets/sandbox.jsonl`` in the working directory, or
``--sandbox-state PATH``; ``--sandbox-reset`` starts empty), so ``reconcile``, then ``verify``, then a
no-op ``reconcile --dry-run`` behave as they do on an account. ``prepare`` creates placeholders for what
the manifests expect to exist already (KMS aliases, Secrets Manager secrets, undeclared parameters,
external roles) and stand-ins for unset value sources (``values``); everything invented is listed in one
block on stderr. ``--sandbox-strict`` invents nothing, so that a typo in a reference fails the pre-write
check as it would on an account.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from controller.aws.session import Aws
from controller.core import values as core_values
from controller.core.desired import Desired
from controller.manifests import rules, valuefile
from controller.sandbox import journal as journal_
from controller.sandbox import values
from controller.vocab.policy import trust_policy
from controller.vocab.problems import ControllerError

_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox", "AWS_SESSION_TOKEN": "sandbox"}
_SENT = "ecs_secrets_sandbox_params"


def say(message: str) -> None:
    print(message, file=sys.stderr)


class Sandbox:
    """One command's embedded AWS: the moto mock, its journal, and what it invented."""

    def __init__(self, mock: Any, journal: journal_.Journal, strict: bool) -> None:
        self.mock, self.journal, self.strict = mock, journal, strict
        self.invented: list[str] = []
        self._reported = 0
        self._sources: dict[tuple[str, str, str], journal_.Source] = {}
        self.environ = values.Environ(os.environ, self.invent)
        self.read_file = values.reader(core_values_read, self.invent)

    # --- what it invents ------------------------------------------------------------------------------
    def invent(self, what: str) -> None:
        self.invented.append(what)

    def report(self) -> None:
        """Everything invented since the last report, in one block on stderr (never a value)."""
        new = self.invented[self._reported:]
        self._reported = len(self.invented)
        if new:
            say("sandbox: invented, so that the manifests' references resolve (--sandbox-strict invents nothing):\n"
                + "\n".join(f"  {line}" for line in new))

    # --- value sources ------------------------------------------------------------------------------
    def sources(self) -> dict[str, Any]:
        """``reconcile.Settings``' environ and read_file: the real ones under --sandbox-strict."""
        return {} if self.strict else {"environ": self.environ, "read_file": self.read_file}

    def source_of(self, service: str, region: str, name: str) -> journal_.Source:
        return self._sources.get((service, region, name), {"placeholder": True})

    def _value(self, source: journal_.Source, service: str, region: str, name: str) -> str:
        """A restored value, from its source as it is now (or a random one, said)."""
        self._sources.setdefault((service, region, name), source)
        if "fromEnv" in source:
            found = (os.environ.get if self.strict else self.environ.get)(source["fromEnv"])
            if found is not None:
                return found
        elif "fromFile" in source:
            try:
                read = core_values_read if self.strict else self.read_file
                return read(source["fromFile"], max(rules.VALUE_LIMITS.values()) + 1).removesuffix("\n")
            except (OSError, UnicodeDecodeError, valuefile.Refused, valuefile.TooLarge):
                pass
        what = next(iter(source), "placeholder")
        self.invent(f"{name} in {region}: restored with a new random value ({what}; values are never stored)")
        return secrets.token_urlsafe(24)

    # --- recording and restoring ----------------------------------------------------------------------
    def attach(self, aws: Aws) -> None:
        """Record every successful write ``aws`` makes from now on (its clients are made after this)."""
        aws.session.events.register("before-parameter-build", self._before)
        aws.session.events.register("after-call", self._after)

    def _before(self, params: dict, context: dict, **_: Any) -> None:
        context[_SENT] = copy.deepcopy(params)

    def _after(self, http_response: Any, parsed: dict, model: Any, context: dict, **_: Any) -> None:
        sent = context.pop(_SENT, None)
        if sent is not None and http_response.status_code < 300:
            self.journal.record(model.service_model.service_name, context.get("client_region") or "",
                                model.name, sent, parsed)

    def restore(self) -> int:
        import boto3
        from botocore import xform_name
        session = boto3.session.Session()   # not attached: replayed calls are not recorded again
        clients: dict[tuple[str, str], Any] = {}

        def call(service: str, region: str, operation: str, params: dict[str, Any]) -> Any:
            if (service, region) not in clients:
                clients[(service, region)] = session.client(service, region_name=region)
            return getattr(clients[(service, region)], xform_name(operation))(**params)
        try:
            return journal_.replay(self.journal.entries(), call, self._value, invented=not self.strict)
        except Exception as exc:
            raise ControllerError(f"cannot restore the sandbox from {self.journal.path} ({type(exc).__name__}); "
                                  "start empty with --sandbox-reset") from exc

    def stop(self) -> None:
        self.report()
        self.mock.stop()

    # --- what the manifests expect to exist ---------------------------------------------------------------
    def prepare(self, aws: Aws, desired: Desired) -> None:
        """Placeholders and value stand-ins for these manifests (none under --sandbox-strict), then the block."""
        for (region, name), p in desired.parameters.items():
            source = p.source
            kind = None if source is None else next(k for k in ("fromEnv", "fromFile", "generate", "literal")
                                                    if getattr(source, k) is not None)
            if kind is not None:
                self._sources[("ssm", region, name)] = {kind: getattr(source, kind) if kind in ("fromEnv", "fromFile")
                                                        else True}
        if not self.strict:
            self.journal.inventing = True
            try:
                _seed(self, aws, desired)
            finally:
                self.journal.inventing = False
            core_values.resolve(desired, self.environ, self.read_file)   # stand-ins are invented (and listed) now
        self.report()


def core_values_read(path: str, limit: int) -> str:
    return valuefile.read_text(path, limit)


def start(region: str | None, state: str | None = None, reset: bool = False, strict: bool = False) -> Sandbox:
    try:
        from moto import mock_aws
    except ImportError:
        raise ControllerError("--sandbox needs moto: pip install 'ecs-secrets[sandbox]'") from None
    # nothing may send the sandbox's requests (values included) elsewhere: moto answers only AWS's own
    # hostnames, so an endpoint from the environment or a config file would reach a real server
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")] + ["AWS_PROFILE"]:
        os.environ.pop(key, None)
    os.environ["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "true"
    os.environ.update(_CREDENTIALS)
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"  # AmazonECSTaskExecutionRolePolicy must exist
    os.environ.setdefault("AWS_DEFAULT_REGION", region or "us-east-1")
    from controller.sandbox import faithful
    faithful.install()  # answer as ECS does where it matters (enableFaultInjection, role ARNs, ...)
    mock = mock_aws()
    mock.start()
    box = Sandbox(mock, None, strict)  # type: ignore[arg-type]
    box.journal = journal_.Journal(Path(state) if state else journal_.DEFAULT_PATH, box.source_of)
    if reset:
        box.journal.reset()
    restored = box.restore()
    kept = f"state in {box.journal.path}" + (f", {restored} writes restored" if restored else ", empty")
    say(f"sandbox: using an embedded AWS (moto) in this process; nothing leaves it ({kept}"
        + ("; strict: nothing invented" if strict else "") + ")")
    return box


def _seed(box: Sandbox, aws: Aws, desired: Desired) -> None:
    for region, n in desired.reads.items():
        for key in sorted(n.keys):
            _kms_alias(box, aws, region, key)
        for secret_id in sorted(n.secrets):
            _secret(box, aws, region, secret_id)
        for name in sorted(n.undeclared | {k for k, p in n.declared.items() if p.source is None}):
            _parameter(box, aws, region, name)
    iam = aws.client("iam")
    for name in sorted(desired.external_roles):
        try:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_policy("123456789012")))
        except iam.exceptions.EntityAlreadyExistsException:
            continue
        box.invent(f"IAM role {name} (a placeholder)")


def _kms_alias(box: Sandbox, aws: Aws, region: str, key: str) -> None:
    if not key.startswith("alias/"):
        say(f"sandbox: cannot create KMS key {key} with that id; use an alias in the sandbox")
        return
    kms = aws.client("kms", region)
    if any(a["AliasName"] == key for page in kms.get_paginator("list_aliases").paginate() for a in page["Aliases"]):
        return
    key_id = kms.create_key(Description=f"ecs-secrets sandbox placeholder for {key}")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=key, TargetKeyId=key_id)
    box.invent(f"KMS key {key} in {region}")


def _secret(box: Sandbox, aws: Aws, region: str, secret_id: str) -> None:
    name = secret_id.split(":secret:", 1)[-1] if secret_id.startswith("arn:") else secret_id
    client = aws.client("secretsmanager", region)
    try:
        client.create_secret(Name=name, SecretString=secrets.token_urlsafe(24))
    except client.exceptions.ResourceExistsException:
        return
    box.invent(f"Secrets Manager secret {name} in {region}, with a random value")


def _parameter(box: Sandbox, aws: Aws, region: str, name: str) -> None:
    if name.startswith("/aws/"):
        return
    ssm = aws.client("ssm", region)
    try:
        ssm.put_parameter(Name=name, Type="SecureString", Value=secrets.token_urlsafe(24))
    except ssm.exceptions.ParameterAlreadyExists:
        return
    box.invent(f"SSM parameter {name} in {region}, with a random value (not owned)")
