"""Errors, each with where it came from and whether waiting can heal it."""

from __future__ import annotations

from dataclasses import dataclass

from controller.vocab.sensitive import scrub, scrub_values


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the manifests, said where and how to fix it."""

    file: str
    line: int
    obj: str | None      # "Kind/name"
    field: str | None    # "spec.containerDefinitions[0].secrets[1].valueFrom"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        parts = [where] + [p for p in (self.obj, self.field) if p] + [self.message]
        return ": ".join(map(_one_line, parts))


def _one_line(text: str) -> str:
    """A kind, name or key with a newline in it must not break the one-line-per-problem format."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ControllerError(Exception):
    """Base of every error the CLI reports in one line. ``terminal``: waiting will not heal it."""

    terminal = True

    def __init__(self, message: str) -> None:
        super().__init__(self._scrub(message))

    @staticmethod
    def _scrub(message: str) -> str:
        return scrub(message)


class ManifestError(ControllerError):
    """Our own refusals: they quote names and "did you mean 'value'?" hints, never AWS's echoes of a
    request, so only the registered secret values are scrubbed, and nothing else is touched."""

    _scrub = staticmethod(scrub_values)

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line))
        n = len(self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''} in the manifests:\n"
                         + "\n".join(f"  {p}" for p in self.problems))


class CheckError(ControllerError):
    """The read-only check of the plan found what only AWS could reveal (missing key, secret, …)."""

    def __init__(self, blockers: list[tuple[str, str]]) -> None:
        self.blockers = blockers   # (Kind/name, why)
        problems = self.problems = [f"{ref}: {why}" for ref, why in blockers]
        super().__init__(f"{len(problems)} problem(s) found before any write:\n"
                         + "\n".join(f"  {p}" for p in problems))


class ApplyError(ControllerError):
    terminal = False


def dotted(path: tuple) -> str:
    """('spec', 'containerDefinitions', 0, 'image') → 'spec.containerDefinitions[0].image'."""
    out = ""
    for part in path:
        part = part if isinstance(part, int) or str(part).isprintable() else repr(part)  # one line per problem
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
