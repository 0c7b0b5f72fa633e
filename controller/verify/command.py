"""`ecs-secrets verify`: every container secret of the task definitions, decided, rendered, with its exit code."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from controller.core.desired import Desired
from controller.verify import observe
from controller.verify.facts import exit_code
from controller.verify.report import render_json, render_text


def command(aws: Any, *, desired: Desired | None = None, family: str | None = None, output: str = "text",
            against_aws: bool = False, out: TextIO = sys.stdout) -> int:
    """``ecs-secrets verify``: the task definitions of ``desired`` and/or ``family`` (``NAME``, ``NAME:REV`` or
    an ARN of a registered task definition). Returns the exit code."""
    rows = observe.rows(aws, desired=desired, family=family, against_aws=against_aws)
    out.write(render_json(rows) if output == "json" else render_text(rows, against_aws))
    return exit_code(rows)
