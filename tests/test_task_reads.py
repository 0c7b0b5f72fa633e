"""The task execution role's reads at task start beyond ``secrets``: what the derived policy grants,
what is refused before any AWS call, and verify's rows. Pure: no AWS.

Sources (ECS Developer Guide unless said otherwise):
- "Private registry authentication for tasks" / "Required IAM permissions for private registry
  authentication": secretsmanager:GetSecretValue on the credentialsParameter secret, kms:Decrypt for a
  customer managed key; the RepositoryCredentials API reference: a full ARN or, in the task's Region, the
  secret's name.
- "Amazon ECS task execution IAM role", "Amazon S3 file storage permissions": s3:GetObject on the
  environment file object, s3:GetBucketLocation on its bucket. The agent does both with the execution
  role's credentials: amazon-ecs-agent agent/s3/factory (NewS3ClientForBucket calls GetBucketLocation
  first), used by agent/taskresource/envFiles and agent/taskresource/credentialspec.
- "Send Amazon ECS logs to CloudWatch" (awslogs-create-group) and the Docker awslogs driver docs: "Your AWS
  IAM policy must include the logs:CreateLogGroup permission"; AmazonECSTaskExecutionRolePolicy grants only
  logs:CreateLogStream and logs:PutLogEvents. The request resource is ``log-group:NAME:log-stream:`` (the
  AccessDenied text quoted in terraform-aws-modules/terraform-aws-ecs#145).
- FireLens custom configuration from S3: the execution role needs s3:GetObject and s3:GetBucketLocation
  (aws-samples/amazon-ecs-firelens-examples README, "Task Execution Role").
- gMSA credential specs (AWS CDK ``DomainJoinedCredentialSpec``: "the task definition's execution role has
  permissions to read from the S3 bucket or SSM parameter where the CredSpec file is stored").
- FSxWindowsFileServerAuthorizationConfig API reference: credentialsParameter is a Secrets Manager secret or
  an SSM parameter ARN.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.core.desired import Context, desire
from controller.manifests.loader import load
from controller.verify.decide import check
from controller.verify.facts import Facts, KeyFact, RoleFact, SecretFact, targets
from controller.verify.keypolicy import aws_managed_key_policy
from controller.verify.iam_eval import NamedPolicy
from controller.vocab.problems import ManifestError

ACCOUNT, REGION = "123456789012", "us-east-1"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:registry/dockerhub-AbCdEf"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

ROLE = """\
apiVersion: ecs-secrets/v1
kind: ExecutionRole
metadata: {name: exec}
spec: {roleName: exec-role}
---
"""


def task(containers: str, extra: str = "") -> str:
    return ROLE + f"""\
apiVersion: ecs-secrets/v1
kind: TaskDefinition
metadata: {{name: app}}
spec:
  family: app
  executionRole: exec
{extra}  containerDefinitions:
{containers}"""


EVERYTHING = task("""\
    - name: app
      image: registry.example.com/app:1
      repositoryCredentials: {credentialsParameter: registry/dockerhub}
      environmentFiles:
        - {type: s3, value: "arn:aws:s3:::config-bucket/app/prod.env"}
        - {type: s3, value: "arn:aws:s3:::config-bucket/app/common.env"}
      logConfiguration:
        logDriver: awslogs
        options: {awslogs-group: /ecs/app, awslogs-region: eu-west-1, awslogs-create-group: "true",
                  awslogs-stream-prefix: app}
      credentialSpecs: ["credentialspec:arn:aws:s3:::gmsa-bucket/specs/app.json"]
    - name: log_router
      image: public.ecr.aws/aws-observability/aws-for-fluent-bit:stable
      firelensConfiguration:
        type: fluentbit
        options: {config-file-type: s3, config-file-value: "arn:aws:s3:::fluent-bucket/extra.conf"}
""", """\
  volumes:
    - name: share
      fsxWindowsFileServerVolumeConfiguration:
        fileSystemId: fs-0123456789abcdef0
        rootDirectory: share
        authorizationConfig:
          credentialsParameter: "arn:aws:ssm:us-east-1:123456789012:parameter/fsx/credentials"
          domain: example.com
""")


def desired_of(tmp_path: Path, text: str, region: str = REGION):
    (tmp_path / "m.yaml").write_text(text)
    return desire(load(tmp_path, region))


def statements(document: dict) -> dict:
    return {s["Sid"]: (s["Action"], s["Resource"]) for s in document["Statement"]}


def test_the_derived_policy_grants_exactly_each_read(tmp_path: Path) -> None:
    desired = desired_of(tmp_path, EVERYTHING)
    ctx = Context(ACCOUNT, REGION, secret_arns={(REGION, "registry/dockerhub"): SECRET}, secret_keys={SECRET: KEY},
                  key_arns={(REGION, KEY): KEY})
    role = desired.resolve(ctx).roles[0]
    assert statements(role.inline) == {
        "ReadParameters": ("ssm:GetParameters", [f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/fsx/credentials"]),
        "ReadSecrets": ("secretsmanager:GetSecretValue", [SECRET]),
        "DecryptWithCustomKeys": ("kms:Decrypt", [KEY]),
        "ReadS3Files": ("s3:GetObject", ["arn:aws:s3:::config-bucket/app/common.env",
                                         "arn:aws:s3:::config-bucket/app/prod.env",
                                         "arn:aws:s3:::fluent-bucket/extra.conf",
                                         "arn:aws:s3:::gmsa-bucket/specs/app.json"]),
        "LocateS3FileBuckets": ("s3:GetBucketLocation", ["arn:aws:s3:::config-bucket", "arn:aws:s3:::fluent-bucket",
                                                         "arn:aws:s3:::gmsa-bucket"]),
        "CreateLogGroups": ("logs:CreateLogGroup", [f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/ecs/app:*"]),
    }
    assert "*" not in [r for _, rs in statements(role.inline).values() for r in rs]


def test_observe_is_told_what_must_exist(tmp_path: Path) -> None:
    reads = desired_of(tmp_path, EVERYTHING).reads[REGION]
    assert reads.secrets == {"registry/dockerhub"}
    assert reads.undeclared == {"/fsx/credentials"}
    assert reads.objects == {"arn:aws:s3:::config-bucket/app/prod.env", "arn:aws:s3:::config-bucket/app/common.env",
                             "arn:aws:s3:::fluent-bucket/extra.conf", "arn:aws:s3:::gmsa-bucket/specs/app.json"}


def test_log_group_arn_is_in_the_partition_of_the_context(tmp_path: Path) -> None:
    text = task("""\
    - name: app
      image: app:1
      logConfiguration:
        logDriver: awslogs
        options: {awslogs-group: app, awslogs-region: cn-north-1, awslogs-create-group: "true"}
""")
    role = desired_of(tmp_path, text, "cn-north-1").resolve(Context(ACCOUNT, "cn-north-1", "aws-cn")).roles[0]
    assert statements(role.inline) == {
        "CreateLogGroups": ("logs:CreateLogGroup", [f"arn:aws-cn:logs:cn-north-1:{ACCOUNT}:log-group:app:*"])}


def test_without_create_group_nothing_is_granted(tmp_path: Path) -> None:
    text = task("""\
    - name: app
      image: app:1
      logConfiguration:
        logDriver: awslogs
        options: {awslogs-group: app, awslogs-region: us-east-1, awslogs-create-group: "false"}
      environmentFiles: [{type: s3, value: "arn:aws:s3:::b/k.env"}]
""")
    role = desired_of(tmp_path, text).resolve(Context(ACCOUNT, REGION)).roles[0]
    assert set(statements(role.inline)) == {"ReadS3Files", "LocateS3FileBuckets"}


@pytest.mark.parametrize("container, where, words", [
    ("""\
    - name: app
      image: app:1
      credentialSpecs: ["credentialspecdomainless:arn:aws:s3:::b/spec.json"]
""", "containerDefinitions[0].credentialSpecs[0]", "domainless gMSA is not supported"),
    ("""\
    - name: app
      image: app:1
      environmentFiles: [{type: s3, value: "arn:aws:s3:::only-a-bucket"}]
""", "containerDefinitions[0].environmentFiles[0].value", "not an S3 object ARN"),
    ("""\
    - name: app
      image: app:1
      logConfiguration: {logDriver: awslogs, options: {awslogs-group: g, awslogs-create-group: "true"}}
""", "awslogs-region", "needs awslogs-region"),
    ("""\
    - name: app
      image: app:1
      repositoryCredentials: {credentialsParameter: "arn:aws:ssm:us-east-1:123456789012:parameter/creds"}
""", "repositoryCredentials.credentialsParameter", "is a Secrets Manager secret"),
    ("""\
    - name: app
      image: app:1
      credentialSpecs: ["credentialspec:arn:aws:ssm:us-east-1:123456789012:parameter/gmsa/app"]
""", "containerDefinitions[0].credentialSpecs[0]", "reads only the name's last segment"),
])
def test_what_cannot_be_granted_is_refused_at_its_field(tmp_path: Path, container: str, where: str,
                                                         words: str) -> None:
    with pytest.raises(ManifestError) as exc:
        desired_of(tmp_path, task(container))
    text = str(exc.value)
    assert where in text and words in text and "m.yaml:" in text


def test_verify_has_a_row_per_read_and_decides_each(tmp_path: Path) -> None:
    body = dict(desired_of(tmp_path, EVERYTHING).resolve(Context(ACCOUNT, REGION)).task_definitions[0].body)
    role_arn = body["executionRoleArn"]
    found = targets("app", body)
    assert [(t.container, t.variable, t.read) for t in found] == [
        ("app", "repositoryCredentials", "reference"), ("app", "environmentFiles[0]", "object"),
        ("app", "environmentFiles[1]", "object"), ("app", "awslogs-create-group", "log-group"),
        ("app", "credentialSpecs[0]", "object"), ("log_router", "firelens config-file-value", "object"),
        ("", "volume share", "reference")]
    desired = desired_of(tmp_path, EVERYTHING)
    granted = desired.resolve(Context(ACCOUNT, REGION, secret_arns={(REGION, "registry/dockerhub"): SECRET})).roles[0]
    facts = Facts(ACCOUNT, REGION)
    facts.roles[role_arn] = RoleFact(role_arn, (NamedPolicy("ecs-secrets", granted.inline),))
    facts.secrets[(REGION, "registry/dockerhub")] = SecretFact(SECRET, None)
    # the secret has no customer managed key: verify decides Decrypt on the AWS managed key as well
    facts.keys[(REGION, "alias/aws/secretsmanager")] = KeyFact(
        f"arn:aws:kms:{REGION}:{ACCOUNT}:key/9999ffff-88ee-77dd-66cc-555544443333", "Enabled", "AWS",
        aws_managed_key_policy("secretsmanager", REGION, ACCOUNT, "aws"))
    facts.parameters[(REGION, "/fsx/credentials")] = None          # does not exist
    for t in found:
        if t.read == "object":
            facts.objects[t.source] = True
    facts.objects["arn:aws:s3:::config-bucket/app/common.env"] = None  # does not exist
    rows = {r.target.variable: (r.verdict, r.reason) for r in (check(t, facts) for t in found)}
    assert rows["repositoryCredentials"] == ("allowed", "")
    assert rows["environmentFiles[0]"] == ("allowed", "")
    assert rows["environmentFiles[1]"][0] == "missing" and "common.env does not exist" in rows["environmentFiles[1]"][1]
    assert rows["awslogs-create-group"] == ("allowed", "")
    assert rows["firelens config-file-value"] == ("allowed", "")
    assert rows["volume share"][0] == "missing"
    # without the grants: each read is denied, naming the action and the exact resource
    facts.roles[role_arn] = RoleFact(role_arn, ())
    rows = {r.target.variable: (r.verdict, r.reason) for r in (check(t, facts) for t in found)}
    assert rows["awslogs-create-group"][0] == "denied"
    assert f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/ecs/app:log-stream:" in rows["awslogs-create-group"][1]
    assert rows["environmentFiles[0]"][0] == "denied" and "s3:GetObject" in rows["environmentFiles[0]"][1]
    assert rows["repositoryCredentials"][0] == "denied" and "secretsmanager:GetSecretValue" in rows[
        "repositoryCredentials"][1]


def test_a_task_that_reads_files_needs_an_execution_role(tmp_path: Path) -> None:
    text = task("""\
    - name: app
      image: app:1
      environmentFiles: [{type: s3, value: "arn:aws:s3:::b/k.env"}]
""").replace("  executionRole: exec\n", "")
    with pytest.raises(ManifestError) as exc:
        desired_of(tmp_path, text)
    assert "environmentFiles[0] with the task execution role; add spec.executionRole" in str(exc.value)


def test_a_credential_spec_in_ssm_is_read_like_a_parameter(tmp_path: Path) -> None:
    """amazon-ecs-agent credentialspec_windows.go: GetParameters with the execution role's credentials."""
    text = task("""\
    - name: app
      image: app:1
      credentialSpecs: ["credentialspec:arn:aws:ssm:us-east-1:123456789012:parameter/gmsa-app"]
""")
    role = desired_of(tmp_path, text).resolve(Context(ACCOUNT, REGION)).roles[0]
    assert statements(role.inline) == {
        "ReadParameters": ("ssm:GetParameters", [f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/gmsa-app"])}
