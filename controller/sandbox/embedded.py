"""--sandbox: an embedded AWS (moto, in process) seeded with what the manifests expect to exist.

It lets anyone try ecs-secrets with no account. Placeholders are created for KMS aliases, Secrets
Manager secrets, undeclared parameters and external roles; unset value sources get random values
from ``controller.sandbox.values``.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from typing import Any

from controller.aws.session import Aws
from controller.core.desired import Desired
from controller.vocab.policy import trust_policy
from controller.vocab.problems import ControllerError

_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox", "AWS_SESSION_TOKEN": "sandbox"}


def start(region: str | None) -> Any:
    try:
        from moto import mock_aws
    except ImportError:
        raise ControllerError("--sandbox needs moto: pip install 'ecs-secrets[sandbox]'") from None
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(key, None)
    os.environ.update(_CREDENTIALS)
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"  # AmazonECSTaskExecutionRolePolicy must exist
    os.environ.setdefault("AWS_DEFAULT_REGION", region or "us-east-1")
    from controller.sandbox import faithful
    faithful.install()  # answer as ECS does where it matters (enableFaultInjection, role ARNs, ...)
    mock = mock_aws()
    mock.start()
    say("sandbox: using an embedded, in-memory AWS (moto); nothing leaves this process")
    return mock


def say(message: str) -> None:
    print(message, file=sys.stderr)


def seed(aws: Aws, desired: Desired) -> None:
    for region, n in desired.reads.items():
        for key in sorted(n.keys):
            _kms_alias(aws, region, key)
        for secret_id in sorted(n.secrets):
            _secret(aws, region, secret_id)
        for name in sorted(n.undeclared | {k for k, p in n.declared.items() if p.source is None}):
            _parameter(aws, region, name)
    for name in sorted(desired.external_roles):
        aws.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_policy("123456789012")))
        say(f"sandbox: created placeholder IAM role {name}")


def _kms_alias(aws: Aws, region: str, key: str) -> None:
    if not key.startswith("alias/"):
        say(f"sandbox: cannot create KMS key {key} with that id; use an alias in the sandbox")
        return
    kms = aws.client("kms", region)
    key_id = kms.create_key(Description=f"ecs-secrets sandbox placeholder for {key}")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=key, TargetKeyId=key_id)
    say(f"sandbox: created KMS key {key} in {region}")


def _secret(aws: Aws, region: str, secret_id: str) -> None:
    name = secret_id.split(":secret:", 1)[-1] if secret_id.startswith("arn:") else secret_id
    aws.client("secretsmanager", region).create_secret(Name=name, SecretString=secrets.token_urlsafe(24))
    say(f"sandbox: created Secrets Manager secret {name} in {region} with a random value")


def _parameter(aws: Aws, region: str, name: str) -> None:
    if name.startswith("/aws/"):
        return
    aws.client("ssm", region).put_parameter(Name=name, Type="SecureString", Value=secrets.token_urlsafe(24))
    say(f"sandbox: created SSM parameter {name} in {region} with a random value (not owned)")
