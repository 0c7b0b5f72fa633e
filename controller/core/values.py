"""Where parameter values come from: a mapping of variables and a file reader, both handed in. Pure.

The caller supplies the sources: the controller's environment and files (``reconcile``), or the
sandbox's stand-ins for what is not set (``controller.sandbox``); nothing here knows which.
"""

from __future__ import annotations

from typing import Callable, Mapping

from controller.core.desired import Desired, DesiredParameter
from controller.manifests import rules
from controller.manifests.valuefile import Refused, TooLarge
from controller.vocab.problems import Problem
from controller.vocab.sensitive import MIN_SECRET_LEN, Sensitive

ReadFile = Callable[[str, int], str]   # (path, the most bytes to accept) → the file's text


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
                raw = read_bounded(read, source.fromFile, p.tier)
            except (TooLarge, Refused) as exc:
                problems.append(obj.problem(at + ("fromFile",), refusal(source.fromFile, p.tier, exc)))
                continue
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(obj.problem(at + ("fromFile",), f"cannot read {source.fromFile}: "
                                            f"{getattr(exc, 'strerror', None) or 'not UTF-8 text'}"))
                continue
        else:
            raw = source.literal
        # sized before it is registered with the redactor (a huge value must not be expanded into its forms)
        msg = _value_problem(raw, p.tier, secret=not p.literal) or _too_short(raw, p)
        if msg:
            problems.append(obj.problem(at, msg))
            continue
        values[obj.name] = Sensitive(raw, secret=not p.literal)  # a literal SecureString is a secret once stored
    return values, problems


def check_readable(desired: Desired, environ: Mapping[str, str], read: ReadFile) -> list[Problem]:
    """``validate``: every ``fromEnv`` that is set and ``fromFile`` that can be read now, against its tier's
    size. A source not set or not readable here (a laptop without production secrets) is no problem yet:
    reconcile reads it where it runs. The values are held as ``Sensitive``, so they are scrubbed from
    whatever is printed after; a message never says a value or its length."""
    problems = []
    for p in desired.parameters.values():
        source = p.source
        if source is None or (source.fromEnv is None and source.fromFile is None):
            continue  # generate: nothing to check; literal: ``checks`` sized it already
        if source.fromEnv is not None:
            raw = environ.get(source.fromEnv)
        else:
            try:
                raw = read_bounded(read, source.fromFile, p.tier)
            except (TooLarge, Refused) as exc:   # refused wherever it runs: a FIFO, a device, too large
                problems.append(p.obj.problem(("spec", "value", "fromFile"), refusal(source.fromFile, p.tier, exc)))
                continue
            except (OSError, UnicodeDecodeError):
                raw = None
        if raw is None:
            continue
        msg = _value_problem(raw, p.tier, secret=True) or _too_short(raw, p)
        Sensitive(raw)  # registered, so that nothing printed after shows it
        if msg:
            problems.append(p.obj.problem(("spec", "value", "fromEnv" if source.fromEnv else "fromFile"), msg))
    return problems


def read_bounded(read: ReadFile, name: str, tier: str) -> str:
    """The file's value, one trailing newline stripped. The reader may take one byte more than the tier
    allows (that newline) and stops there, so an endless or huge file costs no memory and is never held."""
    limit = rules.VALUE_LIMITS[tier]
    raw = read(name, limit + 1).removesuffix("\n")
    if len(raw.encode("utf-8")) > limit:
        raise TooLarge()   # the byte allowed for the newline was not one
    return raw


def refusal(name: str, tier: str, exc: Exception) -> str:
    return rules.too_large(tier) if isinstance(exc, TooLarge) else f"cannot read {name}: {exc}"


def _value_problem(raw: str, tier: str, secret: bool) -> str | None:
    return rules.check_value_size(raw, tier, secret=secret) or (
        None if raw else "the value is empty; SSM needs at least one character")


def _too_short(raw: str, p: DesiredParameter) -> str | None:
    """A secret shorter than ``MIN_SECRET_LEN`` could not be scrubbed from what AWS echoes without
    replacing ordinary words everywhere, which would tell what it is; so it is refused (no value shown)."""
    if p.literal or len(raw) >= MIN_SECRET_LEN:
        return None
    return (f"a secret value must be at least {MIN_SECRET_LEN} characters (shorter ones cannot be kept "
            "out of logs and error messages); use a longer value or type: String with a literal")
