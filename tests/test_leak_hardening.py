"""The secret leaks an attack on "No secret anywhere" found (issue 15, items 1-4), each pinned.

Every test uses random canaries and asserts that no piece of them appears in what the command printed
(stdout and stderr, at debug in text and JSON formats) or, for the daemon, in /status.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

pytest.register_assert_rewrite("faultkit")
from faultkit import canary, cli, direct, doc, fast_aws, no_backoff  # noqa: E402,F401

FORMATS = [("debug", "text"), ("debug", "json")]


def write(folder: Path, *docs: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs) + "\n", encoding="utf-8")
    return folder


def assert_nowhere(pieces: set[str], text: str, where: str) -> None:
    for piece in pieces:
        assert piece not in text, f"a piece of a secret value appears in {where}:\n{text[-3000:]}"


def owner() -> str:
    return "leak-" + secrets.token_hex(4)


# --- 1. a plan never shows a value that was a SecureString -------------------------------------

def _literal(name: str, param: str, adopt: bool = False) -> dict:
    d = doc("Parameter", name, {"name": param, "type": "String", "value": {"literal": "plain-" + secrets.token_hex(4)}})
    if adopt:
        d["metadata"]["adopt"] = True
    return d


def _dry_runs(capfd, folder: Path, own: str) -> list[tuple[str, str]]:
    out = []
    for level, fmt in FORMATS:
        for output in ("text", "json"):
            run = cli(capfd, "reconcile", "-f", str(folder), "--owner", own, "--dry-run", "--output", output,
                      "--log-level", level, "--log-format", fmt)
            assert run.code == 0, run.text
            out.append((f"dry-run {output} at {level}/{fmt}", run.text))
    return out


def test_adopting_a_securestring_as_a_literal_string_never_shows_its_value(fast_aws, tmp_path, capfd) -> None:
    value, param, own = canary(), "/leak/adopt-" + secrets.token_hex(4), owner()
    direct("ssm", fast_aws).put_parameter(Name=param, Value=value, Type="SecureString")
    folder = write(tmp_path / "m", _literal("adopted", param, adopt=True))
    printed = _dry_runs(capfd, folder, own)
    for where, text in printed:
        assert_nowhere({value}, text, where)
        assert "(sensitive value)" in text, text      # both sides: it was a SecureString
        assert "plain-" not in text                    # the literal it becomes is shown as sensitive too
    run = cli(capfd, "reconcile", "-f", str(folder), "--owner", own, "--log-level", "debug")
    assert run.code == 0, run.text
    assert_nowhere({value}, run.text, "the apply")


def test_an_owned_securestring_turned_literal_string_never_shows_its_value(fast_aws, tmp_path, capfd,
                                                                           monkeypatch) -> None:
    value, param, own = canary(), "/leak/owned-" + secrets.token_hex(4), owner()
    monkeypatch.setenv("LEAK_VALUE", value)
    secure = doc("Parameter", "p", {"name": param, "value": {"fromEnv": "LEAK_VALUE"}})
    folder = write(tmp_path / "m", secure)
    assert cli(capfd, "reconcile", "-f", str(folder), "--owner", own).code == 0
    write(folder, _literal("p", param))
    for where, text in _dry_runs(capfd, folder, own):
        assert_nowhere({value}, text, where)
        assert '"before": "(sensitive value)"' in text or "value: (sensitive value) ->" in text, text
