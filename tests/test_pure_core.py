"""The pure core imports no AWS client, reads no clock and no environment (STYLE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PURE = ["vocab/arns", "manifests/checks", "verify/keypolicy", "verify/command", "verify/report", "core/desired", "core/diff", "manifests/ecsmodel", "verify/iam_eval", "verify/conditions", "manifests/loader", "manifests/models", "core/ops", "core/plan", "vocab/policy", "vocab/problems", "core/prune", "core/render", "manifests/rules", "vocab/secretrefs", "core/state", "core/taskdef", "core/taskdef_diff", "manifests/yamlload"]
FORBIDDEN = {"boto3", "time", "datetime", "os.environ"}


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_aws_client_nor_clock(module):
    tree = ast.parse(Path(f"controller/{module}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, imported
    source = Path(f"controller/{module}.py").read_text()
    assert "os.environ" not in source and "getenv" not in source


def test_loading_the_pure_core_does_not_load_boto3():
    code = ("import sys; import " + ", ".join(f"controller.{m.replace('/', '.')}" for m in PURE) +
            "; print('boto3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
