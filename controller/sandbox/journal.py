"""The sandbox's memory between commands: a journal of the writes made to it, replayed at the next start.

moto keeps its state in memory and has no supported way to save it. Rather than pickling moto's backends
(private objects that change between moto versions, and that hold every parameter value in plaintext),
the sandbox records each successful write call it receives — service, Region, operation, parameters —
and replays them, through boto3, into the fresh moto of the next command. The state is whatever those
calls build, so it is as faithful as moto is.

No value is ever written to the journal. A parameter's or secret's value is replaced by where it came
from (``{"fromEnv": "DB_PASSWORD"}``, ``{"fromFile": ...}``, ``{"generate": true}``, ``{"placeholder":
true}``); on replay the value is taken from that source *now*, or is a new random one, said on stderr.
Only a ``literal`` String/StringList value is kept as written: it sits in a manifest in plaintext and
every plan shows it. Identifiers that moto makes up at random (KMS key ids, Secrets Manager ARN suffixes)
are mapped from the old run's to the new run's, so a recorded policy naming a key ARN still names it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

FORMAT = 1
DEFAULT_PATH = Path(".ecs-secrets") / "sandbox.jsonl"

_READS = ("Get", "List", "Describe", "Simulate", "Scan", "Query", "BatchGet", "Decrypt", "Encrypt",
          "Generate", "Lookup", "Validate", "Search", "Head")
# Where a value travels in a write: never recorded; its source is recorded instead.
VALUE_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("ssm", "PutParameter"): ("Value",),
    ("secretsmanager", "CreateSecret"): ("SecretString", "SecretBinary"),
    ("secretsmanager", "PutSecretValue"): ("SecretString", "SecretBinary"),
    ("secretsmanager", "UpdateSecret"): ("SecretString", "SecretBinary"),
}
# Identifiers moto makes up: (service, operation) → paths into the answer.
RANDOM_IDS: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
    ("kms", "CreateKey"): (("KeyMetadata", "KeyId"), ("KeyMetadata", "Arn")),
    ("secretsmanager", "CreateSecret"): (("ARN",),),
}

Source = Mapping[str, Any]
"""Where a value came from: one of fromEnv / fromFile / generate / placeholder / literal."""


def is_write(operation: str) -> bool:
    return not operation.startswith(_READS)


def _dig(answer: Any, path: tuple[str, ...]) -> str | None:
    for key in path:
        answer = answer.get(key) if isinstance(answer, Mapping) else None
    return answer if isinstance(answer, str) else None


def value_name(service: str, params: Mapping[str, Any]) -> str:
    """The name a value source is looked up by: the SSM name, or the secret's name or id."""
    return str(params.get("Name") or params.get("SecretId") or "")


class Journal:
    """Appends one JSON line per write; ``source_of(service, region, name)`` says where a value came from."""

    def __init__(self, path: Path, source_of: Callable[[str, str, str], Source]) -> None:
        self.path, self.source_of = path, source_of
        self.paused = False
        self.inventing = False   # writes of the sandbox's own placeholders: --sandbox-strict leaves them out
        self._lock = threading.Lock()

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lines or lines[0].get("ecs-secrets-sandbox") != FORMAT:
            raise ValueError(f"{self.path} is not a sandbox state of format {FORMAT}")
        return lines[1:]

    def reset(self) -> None:
        if self.path.exists():
            self.path.unlink()

    def record(self, service: str, region: str, operation: str, params: Mapping[str, Any], answer: Any) -> None:
        if self.paused or not is_write(operation):
            return
        entry: dict[str, Any] = {"service": service, "region": region, "operation": operation,
                                 "params": self._without_values(service, region, operation, params)}
        ids = {"/".join(p): v for p in RANDOM_IDS.get((service, operation), ()) if (v := _dig(answer, p))}
        if ids:
            entry["ids"] = ids
        if self.inventing:
            entry["invented"] = True
        line = json.dumps(entry, sort_keys=True, default=_refuse)
        with self._lock:
            self._start_file()
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")

    def _without_values(self, service: str, region: str, operation: str, params: Mapping[str, Any]) -> dict:
        out = dict(params)
        for field in VALUE_FIELDS.get((service, operation), ()):
            if field in out:
                source = dict(self.source_of(service, region, value_name(service, params)))
                if "literal" in source:
                    if service == "ssm" and params.get("Type") in ("String", "StringList"):
                        continue   # a String literal is no secret: the manifest holds it and plans show it
                    source = {"placeholder": True}   # never a SecureString's value
                out[field] = {"$source": source}
        return out

    def _start_file(self) -> None:
        if self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ignore = self.path.parent / ".gitignore"
        if self.path.parent.name == ".ecs-secrets" and not ignore.exists():
            ignore.write_text("# the --sandbox state of ecs-secrets: local, never committed\n*\n", encoding="utf-8")
        self.path.write_text(json.dumps({"ecs-secrets-sandbox": FORMAT}) + "\n", encoding="utf-8")


def _refuse(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot record a parameter of type {type(value).__name__}")


def replay(entries: list[dict[str, Any]], call: Callable[[str, str, str, dict[str, Any]], Any],
           value: Callable[[Source, str, str, str], str], invented: bool = True) -> int:
    """Send every entry again through ``call(service, region, operation, params)``; ``value(source, service,
    region, name)`` gives each value anew; ``invented=False`` leaves out the sandbox's own placeholders.
    Returns how many calls were replayed."""
    renamed: dict[str, str] = {}
    entries = [e for e in entries if invented or not e.get("invented")]
    for entry in entries:
        service, region, operation = entry["service"], entry["region"], entry["operation"]
        text = json.dumps(entry["params"])
        for old, new in renamed.items():
            text = text.replace(old, new)
        params = json.loads(text)
        for field, held in list(params.items()):
            if isinstance(held, Mapping) and "$source" in held:
                params[field] = value(held["$source"], service, region, value_name(service, params))
        answer = call(service, region, operation, params)
        for path, old in entry.get("ids", {}).items():
            new = _dig(answer, tuple(path.split("/")))
            if new and new != old:
                renamed[old] = new
    return len(entries)
