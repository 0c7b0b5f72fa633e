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
import faultproxy  # noqa: E402
from awsops import identify  # noqa: E402
from faultkit import ScriptedProxy, canary, cli, direct, doc, fast_aws, no_backoff  # noqa: E402,F401

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
    for (level, fmt), output in zip(FORMATS, ("text", "json")):
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


# --- 2. every form of a registered value is scrubbed, and nothing else --------------------------

def tricky() -> tuple[str, set[str]]:
    """A value with every character that escaping changes, and the random pieces between them."""
    pieces = ["k" + secrets.token_hex(5) for _ in range(8)]
    glue = ["'", '"', "\\", "\n", "\t", "é", "€"]
    value = pieces[0] + "".join(g + p for g, p in zip(glue, pieces[1:]))
    return value, set(pieces)


def _in_messages(value: str) -> dict[str, str]:
    """``value`` as it shows in messages: as AWS echoes it, inside JSON, a URL, XML, a Python literal,
    a bytes literal (botocore's debug bodies), and one line of it."""
    from html import escape
    from urllib.parse import quote, quote_plus
    body = json.dumps({"Name": "/x", "Value": value})
    return {
        "raw": f"1 validation error detected: Value '{value}' at 'value' failed to satisfy constraint",
        "json": body, "json-utf8": json.dumps({"Value": value}, ensure_ascii=False),
        "json-in-json": json.dumps({"message": body}), "url": "Value=" + quote(value, safe=""),
        "url-plus": "Value=" + quote_plus(value), "xml": f"<Message>{escape(value)}</Message>",
        "xml-quotes": f"<M a='{escape(value, quote=True)}'/>", "repr": repr({"Value": value}),
        "bytes": repr(body.encode()), "line": "bad line: " + value.splitlines()[1],
        "first-line": value.splitlines()[0] + " ...",
    }


@pytest.mark.parametrize("form", sorted(_in_messages("x\ny")))
def test_every_form_of_a_registered_value_is_scrubbed(form: str) -> None:
    from controller.vocab.sensitive import Sensitive, scrub
    value, pieces = tricky()
    Sensitive(value)
    message = _in_messages(value)[form]
    scrubbed = scrub(message)
    assert_nowhere(pieces, scrubbed, form)
    assert "(sensitive value)" in scrubbed


def test_only_registered_values_are_scrubbed() -> None:
    from controller.vocab.sensitive import Sensitive, scrub
    Sensitive("k" + secrets.token_hex(6))
    text = "1 validation error detected: Value 'Standard' at 'tier'; did you mean 'value'? \"x\" é \n"
    assert scrub(text) == text


def test_a_short_secret_is_scrubbed_only_where_it_stands_alone() -> None:
    """A 4-7 character secret replaced inside words ("pass" in "password") would tell what it is."""
    from controller.vocab.sensitive import Sensitive, scrub
    word = "z" + secrets.token_hex(2)          # 5 characters
    Sensitive(word)
    assert scrub(f"x{word}y {word}s") == f"x{word}y {word}s"
    assert scrub(f"token={word}; '{word}'") == "token=(sensitive value); '(sensitive value)'"
    assert scrub("(sensitive value)") == "(sensitive value)"


@pytest.mark.parametrize("form", [pytest.param(f, marks=() if f in ("raw", "json") else pytest.mark.slow)
                                  for f in ("raw", "json", "line", "first-line", "xml", "url")])
def test_what_aws_echoes_of_a_tricky_value_is_scrubbed_everywhere(form: str, fast_aws, tmp_path, capfd,
                                                                  monkeypatch, no_backoff) -> None:
    value, pieces = tricky()
    monkeypatch.setenv("LEAK_TRICKY", value)
    folder = write(tmp_path / "m", doc("Parameter", "tricky", {"name": "/leak/tricky-" + secrets.token_hex(4),
                                                              "value": {"fromEnv": "LEAK_TRICKY"}}))
    forms = _in_messages(value)

    def echo(op, body):
        assert json.loads(body)["Value"] == value
        return 400, "ValidationException", forms[form]
    with ScriptedProxy(fast_aws, script=[("ssm:PutParameter", None, echo)]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        for level, fmt in FORMATS:
            run = cli(capfd, "reconcile", "-f", str(folder), "--owner", owner(), "--log-level", level,
                      "--log-format", fmt)
            assert run.code == 1 and "ValidationException" in run.err, run.text
            assert_nowhere(pieces, run.text, f"reconcile, {form} echo, at {level}/{fmt}")


def test_status_never_shows_a_piece_of_an_echoed_value() -> None:
    """/status is JSON: what it shows of an error is the message JSON-escaped."""
    import urllib.request

    from controller.daemon.httpserver import Endpoints, Server
    from controller.vocab.sensitive import Sensitive
    value, pieces = tricky()
    Sensitive(value)
    status = {"objects": {"Parameter/tricky": {"state": "failed", "error": _in_messages(value)["raw"]}}}
    server = Server("127.0.0.1", 0, Endpoints(lambda: b"", lambda: (True, "ok"), lambda: (True, "ok"),
                                              lambda: status)).start()
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/status", timeout=5).read().decode()
    finally:
        server.stop()
    assert_nowhere(pieces, body, "/status")
    assert "failed" in body


# --- 4. a secret too short to scrub is refused ------------------------------------------------

@pytest.mark.parametrize("short", ["a", "ab", "abc"])
def test_a_secret_shorter_than_four_characters_is_refused(short: str, fast_aws, tmp_path, capfd,
                                                           monkeypatch) -> None:
    monkeypatch.setenv("LEAK_SHORT", short)
    param = "/leak/short-" + secrets.token_hex(4)
    folder = write(tmp_path / "m", doc("Parameter", "short", {"name": param, "value": {"fromEnv": "LEAK_SHORT"}}))
    run = cli(capfd, "reconcile", "-f", str(folder), "--owner", owner())
    assert run.code == 1 and "at least 4 characters" in run.err, run.text
    assert not direct("ssm", fast_aws).describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [param]}])["Parameters"]


# --- 3. a reply to a read that decrypts, which botocore could not parse, is never shown ---------

class _CutReplies(faultproxy.FaultProxy):
    """Forwards every request; the replies to ssm:GetParameters come back cut off just after the first
    value, with ``status`` (botocore then takes the whole body as the error message)."""

    def __init__(self, upstream_url: str, status: int) -> None:
        super().__init__(upstream_url)
        self.status, self.cut = status, 0
        self._server.RequestHandlerClass = _CutHandler


class _CutHandler(faultproxy._Handler):
    def do_request(self) -> None:
        body = self._read_body()
        path, _, query = self.path.partition("?")
        op = identify(self.command, path, self.headers, body, query)
        status, headers, reply = self._forward(body)
        if (op.service, op.operation) == ("ssm", "GetParameters") and b'"Value"' in reply:
            end = reply.index(b'"Value"')
            end = reply.index(b'",', end + 10) + 1
            self.server.proxy.cut += 1
            return self._send(self.server.proxy.status, headers, reply[:end])
        self._send(status, headers, reply)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_request


@pytest.mark.parametrize("status", [500, 400, 200])
def test_a_cut_off_reply_to_a_decrypting_read_is_never_shown(status: int, fast_aws, tmp_path, capfd,
                                                             monkeypatch, no_backoff) -> None:
    """botocore's JSON parser makes an unparsable body the error message (parsers.py,
    BaseJSONParser._parse_body_as_json: "include the literal string as the message")."""
    value, param, own = canary(), "/leak/cut-" + secrets.token_hex(4), owner()
    direct("ssm", fast_aws).put_parameter(Name=param, Value=value, Type="SecureString")
    monkeypatch.setenv("LEAK_CUT", canary())
    folder = write(tmp_path / "m", {**doc("Parameter", "cut", {"name": param, "value": {"fromEnv": "LEAK_CUT"}}),
                                    "metadata": {"name": "cut", "adopt": True}})
    with _CutReplies(fast_aws, status) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        for level, fmt in FORMATS:
            run = cli(capfd, "reconcile", "-f", str(folder), "--owner", own, "--dry-run", "--log-level", level,
                      "--log-format", fmt)
            assert run.code == 1, run.text
            assert "not shown" in run.err, run.text
            assert_nowhere({value}, run.text, f"a cut-off GetParameters reply ({status}) at {level}/{fmt}")
    assert proxy.cut >= 2


def test_a_well_formed_error_of_a_decrypting_read_keeps_its_message() -> None:
    from types import SimpleNamespace

    from controller.aws import decrypting
    model = SimpleNamespace(name="GetParameters", service_model=SimpleNamespace(service_name="ssm"))
    denied = json.dumps({"__type": "AccessDeniedException", "message": "not authorized to perform kms:Decrypt"})
    parsed = {"Error": {"Code": "AccessDeniedException", "Message": "not authorized to perform kms:Decrypt"}}
    decrypting.guard(SimpleNamespace(status_code=400, content=denied.encode()), parsed, model)
    assert parsed["Error"]["Message"] == "not authorized to perform kms:Decrypt"
    full = json.dumps({"Parameters": [{"Name": "/x", "Value": "v"}], "__type": "X", "message": "m"})
    parsed = {"Error": {"Code": "X", "Message": "m"}}
    decrypting.guard(SimpleNamespace(status_code=500, content=full.encode()), parsed, model)
    assert parsed["Error"] == {"Code": "X", "Message": decrypting.NOT_SHOWN}


# --- 4. no core dump holds a value ----------------------------------------------------------

def test_the_cli_allows_no_core_dump(tmp_path) -> None:
    """RLIMIT_CORE 0 (the soft limit, which the kernel applies) and PR_SET_DUMPABLE 0 (prctl(2): a non-dumpable process writes no core dump and
    cannot be attached to by other processes of its user), checked in a process of its own that ran
    a command."""
    import subprocess
    import sys
    check = ("import ctypes, resource, sys\n"
             "hard = resource.getrlimit(resource.RLIMIT_CORE)[1]\n"
             "resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))\n"   # as a shell with ulimit -c unlimited
             "from controller.cli import main\n"
             "main(['schema'])\n"
             "dumpable = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0) if sys.platform.startswith('linux') else 0\n"
             "print('RESULT', resource.getrlimit(resource.RLIMIT_CORE)[0], dumpable, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])
    assert "RESULT 0 0" in done.stderr, done.stderr[-2000:]


def _core_pattern() -> str:
    try:
        return Path("/proc/sys/kernel/core_pattern").read_text().strip()
    except OSError:
        return "|"


@pytest.mark.skipif(_core_pattern().startswith("|") or "/" in _core_pattern(),
                    reason="cores go to a handler or elsewhere, not to the working directory")
@pytest.mark.parametrize("hardened", [False, True], ids=["control", "hardened"])
def test_a_sigquit_leaves_no_core_file(hardened: bool, tmp_path) -> None:
    """With the hard limit allowing cores, SIGQUIT writes one, unless the CLI's start-up ran first."""
    import os
    import signal
    import subprocess
    import sys
    check = ("import resource, sys, time\n"
             "try:\n"    # where the hard limit is 0, this test cannot show anything
             "    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
             "except (ValueError, OSError):\n"
             "    print('no cores allowed', flush=True)\n"
             "    sys.exit(0)\n"
             + ("from controller.cli import no_core_dumps\nno_core_dumps()\n" if hardened else "") +
             "secret = 'k' + 'core-canary' * 3\n"
             "print('ready', flush=True)\n"
             "time.sleep(30)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", check], cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.readline().strip()
    if first == "no cores allowed":
        proc.wait(timeout=30)
        pytest.skip("the core-size hard limit is 0 and cannot be raised here")
    assert first == "ready"
    proc.send_signal(signal.SIGQUIT)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGQUIT
    cores = list(tmp_path.glob("core*"))
    for core in cores:
        core.unlink()   # tens of MB: not kept with the test's folder
    assert bool(cores) is not hardened, cores
