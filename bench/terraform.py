"""The peer: Terraform with the hashicorp/aws provider on the same workload, offline, against moto.

Found, not installed: the ``terraform`` binary on PATH (or ``TERRAFORM``), and a filesystem mirror of
the provider named by ``TF_PLUGIN_MIRROR`` (a folder holding ``registry.terraform.io/hashicorp/aws/``),
else one of Terraform's own implied mirror folders. ``find()`` says why when either is missing, and the
runner skips the peer with that message.

The HCL is what a user would write: ``aws_ssm_parameter`` (count N), ``aws_iam_role`` +
``aws_iam_role_policy`` + ``aws_iam_role_policy_attachment`` and ``aws_ecs_task_definition`` (count R),
with the same tags ecs-secrets writes, the provider pointed at the counting server with every
start-up check that needs real AWS skipped. Values come from the same files (``file()``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench import workload as w

PROVIDER = Path("registry.terraform.io/hashicorp/aws")
IMPLIED_MIRRORS = ("~/.terraform.d/plugins", "~/.local/share/terraform/plugins",
                   "/usr/local/share/terraform/plugins", "/usr/share/terraform/plugins")
MANAGED_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"


@dataclass(frozen=True)
class Terraform:
    binary: str
    mirror: Path
    provider_version: str


def find(environ: dict[str, str] | None = None) -> tuple[Terraform | None, str]:
    """(Terraform, "") or (None, why it is skipped)."""
    env = os.environ if environ is None else environ
    binary = env.get("TERRAFORM") or shutil.which("terraform")
    if not binary:
        return None, "Terraform peer skipped: no terraform binary on PATH (set TERRAFORM=/path/to/terraform)"
    candidates = [env["TF_PLUGIN_MIRROR"]] if env.get("TF_PLUGIN_MIRROR") else list(IMPLIED_MIRRORS)
    for folder in candidates:
        root = Path(folder).expanduser()
        versions = sorted(p.name for p in (root / PROVIDER).glob("*") if p.is_dir())
        if versions:
            return Terraform(binary, root, versions[-1]), ""
    where = f"TF_PLUGIN_MIRROR={env['TF_PLUGIN_MIRROR']}" if env.get("TF_PLUGIN_MIRROR") else \
        "TF_PLUGIN_MIRROR is not set and none of " + ", ".join(IMPLIED_MIRRORS)
    return None, (f"Terraform peer skipped: {where} holds no {PROVIDER}/<version>/ (set TF_PLUGIN_MIRROR to a "
                  "filesystem mirror of the hashicorp/aws provider, e.g. made by `terraform providers mirror`)")


def hcl(work: w.Workload, tf: Terraform, endpoint: str, owner: str = "terraform") -> str:
    return _provider(tf, endpoint) + _parameters(work, owner) + _roles(work, owner) + _task_definitions(work, owner)


def _provider(tf: Terraform, endpoint: str) -> str:
    services = "\n".join(f"    {s} = \"{endpoint}\"" for s in ("ssm", "iam", "ecs", "sts", "kms", "secretsmanager"))
    return f"""terraform {{
  required_providers {{
    aws = {{ source = "hashicorp/aws", version = "= {tf.provider_version}" }}
  }}
}}

provider "aws" {{
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  skip_requesting_account_id  = true
  endpoints {{
{services}
  }}
}}

data "aws_caller_identity" "me" {{}}

"""


def _tags(owner: str) -> str:
    return f'{{ "ecs-secrets:owner" = "{owner}", "ecs-secrets:deletion-policy" = "Retain" }}'


def _parameters(work: w.Workload, owner: str) -> str:
    return f"""resource "aws_ssm_parameter" "p" {{
  count = {work.n}
  name  = "/bench/app${{count.index}}/db_password"
  type  = "SecureString"
  value = file("{work.values}/p${{count.index}}")
  tags  = {_tags(owner)}
}}

"""


def _slice(expr: str) -> str:
    return f"[for i in range(count.index * {w.PER_TASK}, min((count.index + 1) * {w.PER_TASK}, local.n)) : {expr}]"


def _roles(work: w.Workload, owner: str) -> str:
    arn = '"arn:aws:ssm:us-east-1:${data.aws_caller_identity.me.account_id}:parameter/bench/app${i}/db_password"'
    return f"""locals {{
  n = {work.n}
}}

resource "aws_iam_role" "r" {{
  count = {work.r}
  name  = "bench-app${{count.index}}-exec"
  path  = "/bench/"
  assume_role_policy = jsonencode({{
    Version = "2012-10-17"
    Statement = [{{
      Effect    = "Allow"
      Principal = {{ Service = "ecs-tasks.amazonaws.com" }}
      Action    = "sts:AssumeRole"
      Condition = {{ StringEquals = {{ "aws:SourceAccount" = data.aws_caller_identity.me.account_id }} }}
    }}]
  }})
  tags = {_tags(owner)}
}}

resource "aws_iam_role_policy" "r" {{
  count = {work.r}
  name  = "ecs-secrets"
  role  = aws_iam_role.r[count.index].id
  policy = jsonencode({{
    Version = "2012-10-17"
    Statement = [{{
      Sid      = "ReadParameters"
      Effect   = "Allow"
      Action   = "ssm:GetParameters"
      Resource = {_slice(arn)}
    }}]
  }})
}}

resource "aws_iam_role_policy_attachment" "r" {{
  count      = {work.r}
  role       = aws_iam_role.r[count.index].name
  policy_arn = "{MANAGED_POLICY}"
}}

"""


def _task_definitions(work: w.Workload, owner: str) -> str:
    secret = '{ name = "DB_PASSWORD_${i}", valueFrom = "/bench/app${i}/db_password" }'
    return f"""resource "aws_ecs_task_definition" "t" {{
  count                    = {work.r}
  family                   = "bench-app${{count.index}}"
  execution_role_arn       = aws_iam_role.r[count.index].arn
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = "256"
  memory                   = "512"
  container_definitions = jsonencode([{{
    name      = "app"
    image     = count.index == 0 ? "{work.image}" : "{w.IMAGE}"
    essential = true
    secrets   = {_slice(secret)}
  }}])
  tags = {_tags(owner)}
}}
"""


def env(tf: Terraform, base: dict[str, str], folder: Path) -> dict[str, str]:
    """Offline: a CLI config with only the filesystem mirror; no checkpoint calls, no prompts."""
    config = folder / "terraformrc"
    config.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path    = "{tf.mirror}"\n'
                      f'    include = ["registry.terraform.io/hashicorp/aws"]\n  }}\n}}\n', encoding="utf-8")
    return {**base, "TF_CLI_CONFIG_FILE": str(config), "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0", "TF_PLUGIN_CACHE_DIR": ""}


def commands(tf: Terraform) -> dict[str, list[str]]:
    b = tf.binary
    return {
        "init": [b, "init", "-input=false", "-no-color", f"-plugin-dir={tf.mirror}"],
        "cold": [b, "apply", "-auto-approve", "-input=false", "-no-color"],
        "noop": [b, "plan", "-detailed-exitcode", "-input=false", "-no-color"],
        "update": [b, "apply", "-auto-approve", "-input=false", "-no-color"],
        "noop2": [b, "plan", "-detailed-exitcode", "-input=false", "-no-color"],
    }
