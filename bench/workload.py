"""The benchmark workload for any N, as ecs-secrets manifests (and, in ``terraform.py``, as HCL).

N SecureString parameters ``/bench/app<i>/db_password``, R = ceil(N/10) execution roles on path
``/bench/`` and R task definitions ``bench-app<j>`` (FARGATE, awsvpc, 256/512, one container with the
10 secrets of its slice). Values are random per run and come from files (``fromFile``) in a private
temporary folder: one environment variable per parameter would not scale to N = 10,000, and both tools
can read files. Values are never printed.
"""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

PER_TASK = 10
PER_FILE = 500
IMAGE = "public.ecr.aws/nginx/nginx:1.27"
UPDATED_IMAGE = "public.ecr.aws/nginx/nginx:1.28"


def roles_for(n: int) -> int:
    return math.ceil(n / PER_TASK)


def param_name(i: int) -> str:
    return f"/bench/app{i}/db_password"


def role_name(j: int) -> str:
    return f"bench-app{j}-exec"


def family(j: int) -> str:
    return f"bench-app{j}"


def slice_of(j: int, n: int) -> range:
    return range(j * PER_TASK, min((j + 1) * PER_TASK, n))


@dataclass
class Workload:
    """Files of one run: ``manifests/`` (ecs-secrets) and ``values/`` (one file per parameter, mode 0600)."""

    n: int
    root: Path
    image: str = IMAGE

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def values(self) -> Path:
        return self.root / "values"

    @property
    def r(self) -> int:
        return roles_for(self.n)

    def value_file(self, i: int) -> Path:
        return self.values / f"p{i}"

    def write(self) -> Workload:
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.values.mkdir(mode=0o700, parents=True, exist_ok=True)
        for i in range(self.n):
            self.set_value(i)
        self.write_manifests()
        return self

    def set_value(self, i: int) -> None:
        """A fresh random value for parameter ``i`` (the update phase changes one)."""
        path = self.value_file(i)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(24))

    def write_manifests(self) -> None:
        """Files of at most ``PER_FILE`` documents: ecs-secrets refuses a manifest file over 1 MiB."""
        self._write("parameters", [parameter_doc(i, self.value_file(i)) for i in range(self.n)])
        self._write("roles", [role_doc(j) for j in range(self.r)])
        self._write("taskdefs", [task_doc(j, self.n, self.image if j == 0 else IMAGE) for j in range(self.r)])

    def _write(self, stem: str, docs: list[str]) -> None:
        for k in range(0, len(docs), PER_FILE):
            (self.manifests / f"{stem}-{k // PER_FILE:03d}.yaml").write_text("".join(docs[k:k + PER_FILE]),
                                                                              encoding="utf-8")

    def update(self) -> None:
        """The update phase: one new value (parameter 0) and one new image (task definition 0)."""
        self.set_value(0)
        self.image = UPDATED_IMAGE
        self.write_manifests()


def parameter_doc(i: int, value_file: Path) -> str:
    return (f"---\napiVersion: ecs-secrets/v1\nkind: Parameter\nmetadata: {{name: app{i}-db-password}}\n"
            f"spec:\n  name: {param_name(i)}\n  type: SecureString\n  value: {{fromFile: {value_file}}}\n")


def role_doc(j: int) -> str:
    return (f"---\napiVersion: ecs-secrets/v1\nkind: ExecutionRole\nmetadata: {{name: app{j}-exec}}\n"
            f"spec:\n  roleName: {role_name(j)}\n  path: /bench/\n")


def task_doc(j: int, n: int, image: str) -> str:
    secrets_ = "".join(f"        - {{name: DB_PASSWORD_{i}, valueFrom: {param_name(i)}}}\n" for i in slice_of(j, n))
    return (f"---\napiVersion: ecs-secrets/v1\nkind: TaskDefinition\nmetadata: {{name: {family(j)}}}\n"
            f"spec:\n  family: {family(j)}\n  executionRole: app{j}-exec\n  requiresCompatibilities: [FARGATE]\n"
            f"  networkMode: awsvpc\n  cpu: \"256\"\n  memory: \"512\"\n  containerDefinitions:\n"
            f"    - name: app\n      image: {image}\n      essential: true\n      secrets:\n{secrets_}")
