"""Where parameter values come from: a mapping of variables and a file reader, both handed in. Pure.

The caller supplies the sources: the controller's environment and files (``reconcile``), or the
sandbox's stand-ins for what is not set (``controller.sandbox``); nothing here knows which.
"""

from __future__ import annotations

from typing import Callable, Mapping

from controller.core.desired import Desired
from controller.manifests import rules
from controller.vocab.problems import Problem
from controller.vocab.sensitive import Sensitive

ReadFile = Callable[[str], str]


def resolve(desired: Desired, environ: Mapping[str, str], read: ReadFile) -> tuple[dict[str, Sensitive], list[Problem]]:
    """metadata.name → value for every Parameter whose value is given (not generated)."""
    values, problems = {}, []
    for p in desired.parameters.values():
        source, obj = p.source, p.obj
        if source is None or not p.compares_value:   # generated, or not read (--skip-values)
            continue
        at = ("spec", "value")
        if source.fromEnv is not None:
            raw = environ.get(source.fromEnv)
            if raw is None:
                problems.append(obj.problem(at + ("fromEnv",), f"environment variable {source.fromEnv} is not "
                                            "set; export it before running ecs-secrets"))
                continue
        elif source.fromFile is not None:
            try:
                raw = read(source.fromFile).removesuffix("\n")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(obj.problem(at + ("fromFile",), f"cannot read {source.fromFile}: "
                                            f"{getattr(exc, 'strerror', None) or 'not UTF-8 text'}"))
                continue
        else:
            raw = source.literal
        value = Sensitive(raw, secret=source.literal is None)
        msg = rules.check_value_size(raw, p.tier) or (None if raw else "the value is empty; SSM needs "
                                                      "at least one character")
        if msg:
            problems.append(obj.problem(at, msg))
            continue
        values[obj.name] = value
    return values, problems
