"""The command line as CI and people use it: several -f, standard input, folders, exit codes, refusals
as data, closed pipes, shell completion and help. Every test goes through ``cli.main`` or ``python -m
controller``, as a user would."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import pytest

from controller import cli as cli_module
from controller.cli import COMMANDS as ALL_COMMANDS
from controller.cli import main

REPO = Path(__file__).resolve().parent.parent


def parameter(name: str, *, delete: bool = False) -> str:
    """A String parameter with a literal value: no secret, nothing to set in the environment."""
    policy = "  deletionPolicy: Delete\n" if delete else ""
    return textwrap.dedent(f"""\
        apiVersion: ecs-secrets/v1
        kind: Parameter
        metadata: {{name: {name}}}
        spec:
          name: /cli-args/{name}
          type: String
        """) + policy + "  value: {literal: plain}\n"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def shell(*argv: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controller", *argv], input=stdin, capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})}, timeout=60)


def objects(out: str) -> list[str]:
    return json.loads(out)["objects"]


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(parameter("alpha", delete=True))
    b.write_text(parameter("beta", delete=True))
    return a, b


# --- 1. every -f adds to one desired state ------------------------------------------------------------

def test_every_f_adds_to_one_desired_state(two, capsys):
    a, b = two
    code, out, err = cli(capsys, "validate", "-f", str(a), "-f", str(b), "--output", "json")
    assert code == 0, err
    assert objects(out) == ["Parameter/alpha", "Parameter/beta"]   # main checked only the last -f


def test_a_file_named_twice_or_by_its_folder_is_read_once(two, capsys):
    a, _ = two
    code, out, err = cli(capsys, "validate", "-f", str(a.parent), "-f", str(a), "-f", str(a), "--output", "json")
    assert code == 0, err
    assert objects(out) == ["Parameter/alpha", "Parameter/beta"]


def test_duplicates_across_files_are_refused_with_both_places(two, capsys):
    a, b = two
    b.write_text(parameter("alpha"))
    code, _, err = cli(capsys, "validate", "-f", str(a), "-f", str(b))
    assert code == 1 and "Parameter/alpha" in err and str(a) in err and str(b) in err


def test_prune_does_not_delete_the_objects_of_the_first_f(two, aws_env, capsys):
    """``reconcile -f a -f b --prune`` once deleted a's objects: they were not in the desired state."""
    a, b = two
    assert cli(capsys, "reconcile", "-f", str(a.parent))[0] == 0      # both exist, owned, deletionPolicy Delete
    code, out, err = cli(capsys, "reconcile", "-f", str(a), "-f", str(b), "--prune", "--dry-run",
                         "--detailed-exitcode")
    assert code == 0, out + err
    assert "No changes." in out and "delete" not in out.split("No changes.")[0]
    code, out, err = cli(capsys, "reconcile", "-f", str(a), "-f", str(b), "--prune")
    assert code == 0, err
    ssm = boto3.client("ssm", endpoint_url=aws_env, region_name="us-east-1")
    names = {p["Name"] for p in ssm.describe_parameters()["Parameters"]}
    assert names == {"/cli-args/alpha", "/cli-args/beta"}


def test_standard_input_adds_to_the_files(two):
    _, b = two
    run = shell("validate", "-f", "-", "-f", str(b), "--output", "json", stdin=parameter("gamma"))
    assert run.returncode == 0, run.stderr
    assert objects(run.stdout) == ["Parameter/gamma", "Parameter/beta"]


def test_a_problem_in_standard_input_is_located_as_stdin():
    bad = parameter("gamma").replace("  type: String\n", "  type: String\n  bogus: 1\n")
    run = shell("validate", "-f", "-", stdin=bad)
    assert run.returncode == 1
    assert "<stdin>:7: Parameter/gamma: spec.bogus: unknown field 'bogus'" in run.stderr
    run = shell("validate", "-f", "-", "--output", "json", stdin=bad)
    (error,) = json.loads(run.stdout)["errors"]
    assert error["file"] == "<stdin>" and error["line"] == 7


def test_standard_input_can_be_named_once(capsys):
    code, _, err = cli(capsys, "validate", "-f", "-", "-f", "-")
    assert code == 1 and "standard input" in err


def test_a_folder_takes_yaml_yml_and_json_and_says_what_subfolder_it_skips(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text(parameter("alpha"))
    (tmp_path / "b.yml").write_text(parameter("beta"))
    doc = {"apiVersion": "ecs-secrets/v1", "kind": "Parameter", "metadata": {"name": "gamma"},
           "spec": {"name": "/cli-args/gamma", "type": "String", "value": {"literal": "x"}}}
    (tmp_path / "c.json").write_text(json.dumps(doc, indent=2))
    (tmp_path / "README.md").write_text("# not a manifest\n")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "d.yaml").write_text(parameter("delta"))
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "e.yaml").write_text(parameter("epsilon"))
    code, out, err = cli(capsys, "validate", "-f", str(tmp_path), "--output", "json")
    assert code == 0, err
    assert objects(out) == ["Parameter/alpha", "Parameter/beta", "Parameter/gamma"]
    assert f"{tmp_path / 'nested'}: a subfolder, skipped; pass -R" in err     # said, never silent
    assert ".hidden" not in err
    code, out, err = cli(capsys, "validate", "-R", "-f", str(tmp_path), "--output", "json")
    assert code == 0, err
    assert objects(out) == ["Parameter/alpha", "Parameter/beta", "Parameter/gamma", "Parameter/delta"]
    assert "skipped" not in err


def test_with_r_a_folder_named_like_a_manifest_is_read_and_a_symlinked_folder_is_said(tmp_path, capsys):
    (tmp_path / "sub.yaml").mkdir()
    (tmp_path / "sub.yaml" / "a.yaml").write_text(parameter("alpha"))
    (tmp_path / "link").symlink_to(tmp_path / "sub.yaml", target_is_directory=True)
    code, _, err = cli(capsys, "validate", "-f", str(tmp_path))
    assert code == 1 and "a folder named like a manifest" in err and "-R" in err   # refused, as before -R existed
    code, out, err = cli(capsys, "validate", "-R", "-f", str(tmp_path), "--output", "json")
    assert code == 0, err
    assert objects(out) == ["Parameter/alpha"]                      # read once: the symlink is not followed
    assert f"{tmp_path / 'link'}: a symlink to a folder, not followed" in err


def test_the_daemon_takes_every_f(two, aws_env, capsys):
    a, b = two
    code, _, err = cli(capsys, "run", "-f", str(a), "-f", str(b), "--once")
    assert code == 0, err
    ssm = boto3.client("ssm", endpoint_url=aws_env, region_name="us-east-1")
    assert {p["Name"] for p in ssm.describe_parameters()["Parameters"]} == {"/cli-args/alpha", "/cli-args/beta"}


def test_the_daemon_watches_every_f(two, tmp_path):
    from controller.daemon.watch import Watcher
    from controller.manifests.files import Sources
    a, b = two
    w = Watcher(Sources((str(a), "-", str(b))))
    assert not w.changed()
    b.write_text(parameter("beta") + "\n")
    assert w.changed() and not w.changed()
    a.write_text(parameter("alpha") + "\n\n")
    assert w.changed()


# --- 2. exit codes are terraform's ------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["reconcile", "-f", "manifests", "--dry-run", "--no-such-flag"],          # an unknown flag
    ["reconcile", "-f", "manifests", "--dry-run", "--output", "yaml"],        # a bad value
    ["reconcile", "--dry-run"],                                                # a missing -f
    ["reconcile", "-f", "manifests", "--dry-run", "--max-deletions", "many"],
    ["no-such-command"],
    [],
])
def test_a_usage_error_exits_1_never_2(argv, capsys):
    """2 is --detailed-exitcode's "changes pending": a typo in a CI job's flags must not read as it."""
    code, _, err = cli(capsys, *argv)
    assert code == 1 and "usage: ecs-secrets" in err


def test_flags_are_never_abbreviated(capsys):
    code, out, err = cli(capsys, "controller-policy", "-f", "manifests", "--acc", "123456789012")
    assert code == 1 and "unrecognized arguments: --acc" in err and out == ""
    code, _, err = cli(capsys, "reconcile", "-f", "manifests", "--dry-run", "--pru")
    assert code == 1 and "--pru" in err


def test_contradictions_are_refused_before_any_aws_call(capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")   # nothing listens: a call would fail otherwise
    code, _, err = cli(capsys, "reconcile", "-f", "manifests", "--detailed-exitcode")
    assert code == 1 and "--detailed-exitcode needs --dry-run" in err
    code, _, err = cli(capsys, "reconcile", "-f", "manifests", "--prune", "--max-deletions", "-1")
    assert code == 1 and "--max-deletions: -1 is negative" in err
    code, _, err = cli(capsys, "run", "-f", "manifests", "--interval", "0")
    assert code == 1 and "--interval" in err


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_stand_before_or_after_the_command(where, two, capsys):
    a, _ = two
    options = ["--output", "json", "--log-level", "error", "--region", "eu-west-1"]
    argv = [*options, "validate", "-f", str(a)] if where == "before" else ["validate", "-f", str(a), *options]
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    assert objects(out) == ["Parameter/alpha"]


def test_a_global_option_before_the_command_is_not_lost_to_its_default(capsys, monkeypatch, two):
    """The subcommand's copy of --output must not overwrite the one given before the command."""
    a, _ = two
    code, out, _ = cli(capsys, "--output", "json", "validate", "-f", str(a), "--region", "eu-west-1")
    assert code == 0 and json.loads(out)["valid"] is True


def test_a_global_option_that_a_command_does_not_take_is_refused(capsys):
    code, _, err = cli(capsys, "--region", "eu-west-1", "schema")
    assert code == 1 and "--region: not an option of schema" in err


# --- 8. errors as data, closed pipes, a port in use ---------------------------------------------------

def test_refusals_are_json_with_output_json(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(parameter("alpha").replace("  type: String\n", "  type: String\n  tier: Huge\n"))
    code, out, _ = cli(capsys, "validate", "-f", str(bad), "--output", "json")
    assert code == 1
    document = json.loads(out)
    assert document["valid"] is False
    (error,) = document["errors"]
    assert set(error) == {"file", "line", "object", "field", "message"}
    assert error["file"] == str(bad) and error["line"] == 7 and error["object"] == "Parameter/alpha"
    assert error["field"] == "spec.tier" and error["message"]


def test_a_usage_error_is_json_with_output_json(capsys):
    code, out, _ = cli(capsys, "--output", "json", "reconcile", "-f", "manifests", "--pru")
    assert code == 1
    (error,) = json.loads(out)["errors"]
    assert "--pru" in error["message"] and error["file"] is None


def test_a_check_refusal_is_one_json_document_naming_the_object(tmp_path, aws_env, capsys, monkeypatch):
    """What only AWS can reveal (a KMS alias that does not exist) is refused as data too."""
    m = tmp_path / "p.yaml"
    m.write_text(textwrap.dedent("""\
        apiVersion: ecs-secrets/v1
        kind: Parameter
        metadata: {name: keyed}
        spec:
          name: /cli-args/keyed
          kmsKeyId: alias/does-not-exist
          value: {fromEnv: CLI_ARGS_VALUE}
        """))
    canary = f"canary-{secrets.token_urlsafe(16)}"
    monkeypatch.setenv("CLI_ARGS_VALUE", canary)
    code, out, err = cli(capsys, "reconcile", "-f", str(m), "--output", "json")
    assert canary not in out + err
    assert code == 1, err
    document = json.loads(out)                      # one document: not the plan and then the errors
    assert [e["object"] for e in document["errors"]] == ["Parameter/keyed"]
    assert "alias/does-not-exist" in document["errors"][0]["message"]


def test_a_closed_pipe_is_no_traceback():
    """``ecs-secrets schema | head -1``: the reader went away; Python's docs (signal module, "Note on
    SIGPIPE") say to point stdout at devnull and exit, so that nothing is said on stderr."""
    child = subprocess.Popen([sys.executable, "-m", "controller", "schema"], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    child.stdout.close()                            # before the child starts writing: every write fails
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 1
    assert err == "", err


def test_a_metrics_port_in_use_names_the_flag(capsys, tmp_path, two, monkeypatch):
    a, _ = two
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = cli(capsys, "run", "-f", str(a), "--region", "us-east-1", "--metrics-address", "127.0.0.1",
                           "--metrics-port", str(port))
    assert code == 1
    assert f"--metrics-port {port}: 127.0.0.1:{port} is already in use" in err


# --- 12. completion, version, help --------------------------------------------------------------------

@pytest.mark.parametrize("sh", ["bash", "zsh"])
def test_shell_completion_scripts_know_the_commands_and_flags(sh, capsys):
    code, out, _ = cli(capsys, "completion", sh)
    assert code == 0
    for word in ("reconcile", "validate", "completion", "--detailed-exitcode", "--recursive"):
        assert word in out
    checker = {"bash": ["bash", "-n"], "zsh": ["zsh", "-n"]}[sh]
    if sh == "zsh" and subprocess.run(["sh", "-c", "command -v zsh"], capture_output=True).returncode:
        return   # no zsh on this machine: the words above are what can be checked
    assert subprocess.run(checker, input=out, text=True, capture_output=True).returncode == 0


def test_bash_completion_completes_a_command_name():
    """Source the generated script and ask it what `ecs-secrets rec<TAB>` completes to."""
    script = shell("completion", "bash").stdout
    probe = script + textwrap.dedent("""
        COMP_WORDS=(ecs-secrets rec); COMP_CWORD=1; COMP_LINE="ecs-secrets rec"; COMP_POINT=${#COMP_LINE}
        _shtab_ecs_secrets ecs-secrets rec ecs-secrets
        printf '%s\\n' "${COMPREPLY[@]}"
        """)
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert "reconcile" in done.stdout.split(), done.stderr


def test_version_is_the_installed_distributions(capsys):
    from importlib.metadata import version
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"ecs-secrets {version('ecs-secrets')}"


COMMANDS = sorted(ALL_COMMANDS)   # every command the command line has, those added later too


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_its_exit_codes(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    help_ = capsys.readouterr().out
    assert re.search(r"exit status: 0\b", help_), help_


# --- 14. the README documents what the command line has --------------------------------------------------

def help_of(command: str) -> str:
    run = shell(command, "--help")
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_the_readme_lists_every_command_and_documents_every_flag():
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for command in COMMANDS + ["init"]:
        assert re.search(rf"^\| `{command}\b", table, re.M), f"{command} is not in the commands table"
    missing = [f"{command} {flag}" for command in COMMANDS
               for flag in sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", help_of(command))) - {"--help"})
               if f"`{flag}" not in readme]
    assert not missing, f"not documented in README.md: {missing}"


def test_the_readme_has_no_stale_counts_or_outside_references():
    readme = (REPO / "README.md").read_text()
    assert "../shared" not in readme and "/work/" not in readme
    assert not re.search(r"\b\d+ (?:tests|passed)\b", readme), re.findall(r".{30}\b\d+ (?:tests|passed)\b", readme)


def test_an_option_given_before_and_after_the_command_takes_the_later_and_joins_lists():
    args = cli_module.parse(["--owner", "a", "--rate-limit", "ssm=1", "--log-level", "debug", "run",
                             "-f", "manifests", "--owner", "b", "--rate-limit", "iam=2"])
    assert args.owner == "b" and args.rate_limit == ["ssm=1", "iam=2"]
    assert args.log_level == "debug"                          # not run's own default, info
    assert cli_module.parse(["run", "-f", "manifests"]).log_level == "info"


# --- global options a command would take and then ignore ------------------------------------------------

@pytest.mark.parametrize(("argv", "needle"), [
    (["validate", "-f", "manifests", "--sandbox-reset"], "need --sandbox"),
    (["controller-policy", "-f", "manifests", "--account", "123456789012", "--sandbox-strict"], "need --sandbox"),
    (["validate", "-f", "manifests", "--output", "markdown"], "only for reconcile"),
    (["verify", "--family", "web", "--output", "markdown"], "only for reconcile"),
    # moto answers only AWS's hostnames: any other endpoint would receive the sandbox's writes, values included
    (["reconcile", "-f", "manifests", "--dry-run", "--sandbox", "--endpoint-url", "http://127.0.0.1:9"],
     "drop --endpoint-url"),
], ids=["sandbox-reset-alone", "sandbox-strict-alone", "markdown-validate", "markdown-verify", "sandbox-endpoint"])
def test_an_option_that_would_be_ignored_is_refused(monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(REPO)
    code, out, err = cli(capsys, *argv)
    assert code == 1 and needle in err, err


def test_the_sandbox_ignores_endpoints_from_the_environment(tmp_path, monkeypatch, capsys):
    """An AWS_ENDPOINT_URL_<SERVICE> (botocore's service-specific endpoint variable) must not take the
    sandbox's requests out of the process: with one pointing at a closed port, the sandbox still plans."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECS", "http://127.0.0.1:9")
    code, out, err = cli(capsys, "reconcile", "--sandbox", "-f", str(REPO / "manifests"), "--dry-run")
    assert code == 0, err[-2000:]
    assert "EndpointConnectionError" not in err and "Plan:" in out
