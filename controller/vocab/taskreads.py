"""What else the task execution role reads when a task starts, beyond ``secrets``. Pure.

The ECS agent reads these with the task execution role (each as the ECS Developer Guide says):
- ``repositoryCredentials.credentialsParameter``: a Secrets Manager secret (ARN, or name in the task's
  Region) — secretsmanager:GetSecretValue, kms:Decrypt under a customer managed key ("Private registry
  authentication for tasks", "Required IAM permissions for private registry authentication");
- ``environmentFiles`` of type ``s3``: s3:GetObject on the object, s3:GetBucketLocation on its bucket
  ("Amazon ECS task execution IAM role", section "Amazon S3 file storage permissions");
- ``logConfiguration`` awslogs with ``awslogs-create-group: "true"``: logs:CreateLogGroup, which
  AmazonECSTaskExecutionRolePolicy does not grant (it has logs:CreateLogStream and logs:PutLogEvents
  only); the awslogs driver asks for it on ``…:log-group:NAME:log-stream:`` (the AccessDenied message
  quoted in terraform-aws-modules/terraform-aws-ecs#145);
- FireLens ``config-file-type: s3``: s3:GetObject and s3:GetBucketLocation, as for environment files
  (ECS "Example task definition: custom configuration file"; aws-samples/amazon-ecs-firelens-examples);
- ``credentialSpecs`` ``credentialspec:ARN`` (domain-joined gMSA): the credential spec from S3
  (s3:GetObject; the agent locates the bucket first) or an SSM parameter (ssm:GetParameters), both with
  the execution role (amazon-ecs-agent agent/taskresource/credentialspec/credentialspec_windows.go);
- FSx for Windows File Server ``authorizationConfig.credentialsParameter``: a Secrets Manager secret or
  SSM parameter ARN (API reference ``FSxWindowsFileServerAuthorizationConfig``).

``credentialspecdomainless:`` is refused (``refusals``): the credential spec names a Secrets Manager
secret the agent reads with the execution role, and that name is inside the file, not the manifests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from controller.vocab.arns import Arn, BadReference, Reference, parse_arn, parse_value_from

OBJECT, LOG_GROUP, REFERENCE = "object", "log-group", "reference"


@dataclass(frozen=True)
class TaskRead:
    path: tuple             # from the task definition's root to the field as written
    container: str          # "" for a task-level read (a volume)
    label: str              # what a report calls it: "repositoryCredentials", "environmentFiles[0]", …
    kind: str               # OBJECT (an S3 object ARN), LOG_GROUP (a group name) or REFERENCE (SSM / Secrets Manager)
    source: str             # as written
    region: str | None = None   # LOG_GROUP: awslogs-region


@dataclass(frozen=True)
class S3Object:
    partition: str
    bucket: str
    key: str

    @property
    def arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}/{self.key}"

    @property
    def bucket_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}"


def s3_object(text: str) -> S3Object | None:
    """``arn:PARTITION:s3:::BUCKET/KEY``; None for anything else (a bucket alone, another service)."""
    arn = parse_arn(text)
    if arn is None or arn.service != "s3" or arn.region or arn.account:
        return None
    bucket, _, key = arn.resource.partition("/")
    return S3Object(arn.partition, bucket, key) if bucket and key else None


def log_group_arn(partition: str, region: str, account: str, name: str) -> str:
    """What IAM matches CreateLogGroup against is ``log-group:NAME:log-stream:``; ``:*`` covers it."""
    return f"arn:{partition}:logs:{region}:{account}:log-group:{name}:*"


def log_group_request_arn(partition: str, region: str, account: str, name: str) -> str:
    return f"arn:{partition}:logs:{region}:{account}:log-group:{name}:log-stream:"


def reference(read: TaskRead) -> Reference:
    """A REFERENCE read as ECS resolves it; raises BadReference."""
    if read.label == "repositoryCredentials" and not read.source.startswith("arn:"):
        return Reference(read.source, "secretsmanager", read.source)   # a secret name in the task's Region
    ref = parse_value_from(read.source)
    if read.label == "repositoryCredentials" and ref.service != "secretsmanager":
        raise BadReference(f"{read.source!r}: repositoryCredentials.credentialsParameter is a Secrets Manager "
                           "secret (its ARN, or its name in the task's Region)")
    if ref.json_key or ref.version_stage or ref.version_id:
        raise BadReference(f"{read.source!r}: give the secret's ARN without :json-key:version-stage:version-id")
    return ref


def _true(value: Any) -> bool:
    return str(value).lower() == "true"


def task_reads(td: dict[str, Any]) -> Iterator[TaskRead]:
    for i, c in enumerate(td.get("containerDefinitions") or []):
        if not isinstance(c, dict):
            continue
        name, at = str(c.get("name", f"#{i}")), ("containerDefinitions", i)
        creds = c.get("repositoryCredentials")
        if isinstance(creds, dict) and isinstance(creds.get("credentialsParameter"), str):
            yield TaskRead(at + ("repositoryCredentials", "credentialsParameter"), name, "repositoryCredentials",
                           REFERENCE, creds["credentialsParameter"])
        for j, f in enumerate(c.get("environmentFiles") or []):
            if isinstance(f, dict) and f.get("type") == "s3" and isinstance(f.get("value"), str):
                yield TaskRead(at + ("environmentFiles", j, "value"), name, f"environmentFiles[{j}]", OBJECT,
                               f["value"])
        log = c.get("logConfiguration")
        options = log.get("options") if isinstance(log, dict) else None
        if isinstance(options, dict) and log.get("logDriver") == "awslogs" and _true(
                options.get("awslogs-create-group")) and isinstance(options.get("awslogs-group"), str):
            region = options.get("awslogs-region")
            yield TaskRead(at + ("logConfiguration", "options", "awslogs-group"), name, "awslogs-create-group",
                           LOG_GROUP, options["awslogs-group"], region if isinstance(region, str) else None)
        fire = c.get("firelensConfiguration")
        fire_options = fire.get("options") if isinstance(fire, dict) else None
        if isinstance(fire_options, dict) and fire_options.get("config-file-type") == "s3" and isinstance(
                fire_options.get("config-file-value"), str):
            yield TaskRead(at + ("firelensConfiguration", "options", "config-file-value"), name,
                           "firelens config-file-value", OBJECT, fire_options["config-file-value"])
        for j, spec in enumerate(c.get("credentialSpecs") or []):
            if isinstance(spec, str) and spec.startswith("credentialspec:arn:"):
                where = spec[len("credentialspec:"):]
                kind = OBJECT if (parse_arn(where) or Arn("", "", "", "", "")).service == "s3" else REFERENCE
                yield TaskRead(at + ("credentialSpecs", j), name, f"credentialSpecs[{j}]", kind, where)
    for i, v in enumerate(td.get("volumes") or []):
        fsx = v.get("fsxWindowsFileServerVolumeConfiguration") if isinstance(v, dict) else None
        auth = fsx.get("authorizationConfig") if isinstance(fsx, dict) else None
        if isinstance(auth, dict) and isinstance(auth.get("credentialsParameter"), str):
            yield TaskRead(("volumes", i, "fsxWindowsFileServerVolumeConfiguration", "authorizationConfig",
                            "credentialsParameter"), "", f"volume {v.get('name', i)}", REFERENCE,
                           auth["credentialsParameter"])


def refusals(td: dict[str, Any]) -> Iterator[tuple[tuple, str]]:
    """(path, message) for every read the derived policy cannot grant, or that ECS cannot make."""
    for read in task_reads(td):
        if read.kind == OBJECT and s3_object(read.source) is None:
            yield read.path, (f"{read.source!r} is not an S3 object ARN; give arn:aws:s3:::BUCKET/KEY (the "
                              "execution role is granted s3:GetObject on exactly that object)")
        elif read.kind == LOG_GROUP and not read.region:
            yield read.path[:-1] + ("awslogs-region",), ("awslogs-create-group needs awslogs-region: the "
                                                         "execution role is granted logs:CreateLogGroup on "
                                                         "that group in that Region")
        elif read.kind == REFERENCE:
            try:
                ref = reference(read)
            except BadReference as exc:
                yield read.path, str(exc)
                continue
            if read.label.startswith("credentialSpecs") and (ref.service != "ssm" or "/" in ref.name.strip("/")):
                # the agent asks GetParameters for the ARN's last path segment only
                # (amazon-ecs-agent agent/taskresource/credentialspec, handleSSMCredentialspecFile)
                yield read.path, (f"{read.source!r}: a credential spec is an S3 object ARN or the ARN of an SSM "
                                  "parameter at the top level (the ECS agent reads only the name's last segment)")
    for i, c in enumerate(td.get("containerDefinitions") or []):
        for j, spec in enumerate((c.get("credentialSpecs") if isinstance(c, dict) else None) or []):
            if isinstance(spec, str) and spec.startswith("credentialspecdomainless:"):
                yield ("containerDefinitions", i, "credentialSpecs", j), (
                    "domainless gMSA is not supported: the credential spec names a Secrets Manager secret that "
                    "the execution role must read, and the derived policy cannot see inside the file; use "
                    "credentialspec:ARN (domain-joined) or manage this role outside ecs-secrets")
