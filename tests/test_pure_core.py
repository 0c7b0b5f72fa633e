"""The pure core imports no AWS client, reads no clock and no environment (STYLE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PURE_PACKAGES = ("vocab", "manifests", "core")   # every module in them; verify's pure half below
PURE = sorted(str(p.relative_to("controller").with_suffix("")) for pkg in PURE_PACKAGES
              for p in Path("controller", pkg).glob("*.py") if p.name != "__init__.py") + \
    ["verify/facts", "verify/decide", "verify/keypolicy", "verify/report", "verify/iam_eval", "verify/conditions"]
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
