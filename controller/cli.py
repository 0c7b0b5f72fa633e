"""The command line: parse, set up logging and AWS, run one command, map the outcome to an exit code.

Exit codes are terraform's: 0 success, 1 any error (a usage error included: argparse's own 2 would read as
``--detailed-exitcode``'s "changes pending"), 2 only for pending changes, 3 for ``verify``'s unknowns.
Global options may stand before or after the command; no option is ever abbreviated.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Callable, NoReturn

import shtab

from controller.manifests.files import STDIN, Sources
from controller.manifests.yamlload import MAX_FILE_BYTES
from controller.vocab.problems import CheckError, ControllerError, ManifestError
from controller.vocab.sensitive import scrub

log = logging.getLogger("ecs_secrets")
EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2

EXITS = {
    "validate": "0 valid; 1 invalid, or a usage error",
    "reconcile": "0 converged (with --dry-run: planned); 1 any error, a usage error included;\n"
                 "  2 only with --dry-run --detailed-exitcode: changes pending",
    "run": "0 after SIGTERM or SIGINT (with --once: everything converged); 1 an error",
    "verify": "0 every secret readable (with --service, every network path open); 1 any denied or missing, or an "
              "error; 3 only unknowns",
    "schema": "0; 1 a usage error",
    "controller-policy": "0; 1 an error",
    "init": "0 manifests written; 1 nothing found to adopt, or an error",
    "completion": "0; 1 a usage error",
    "events-setup": "0 printed (with --apply: created or already in place); 1 an error",
}


class UsageError(Exception):
    """A command line that argparse or our own checks refuse: exit 1 with the usage of ``parser``."""

    def __init__(self, message: str, parser: argparse.ArgumentParser) -> None:
        super().__init__(message)
        self.message, self.parser = message, parser


class Parser(argparse.ArgumentParser):
    """argparse with terraform's exit code for a usage error (1, never 2) and no abbreviated options
    (``--pru`` must not mean ``--prune``). ``add_subparsers`` makes every subparser one too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    commands: dict[str, argparse.ArgumentParser]   # the main parser's: each command's own parser

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self)


# --- options ------------------------------------------------------------------------------------
# The global options are defined on the main parser and on every subcommand that they make sense for,
# all with default=SUPPRESS: an option is in the namespace only where it was given, so the copy after the
# command never overwrites the one before it with a default. The defaults are filled in after parsing.

DEFAULTS: dict[str, Any] = {"region": None, "profile": None, "endpoint_url": None, "owner": "ecs-secrets",
                            "sandbox": False, "sandbox_state": None, "sandbox_reset": False, "sandbox_strict": False,
                            "rate_limit": None, "output": "text", "quiet": False, "log_format": "text",
                            "log_level": "warning"}
AWS, OUTPUT, LOGS = "aws", "output", "logs"


def _global_options(p: argparse.ArgumentParser, *groups: str, top: bool = False) -> None:
    g = p.add_argument_group("global options (before or after the command)")
    S = argparse.SUPPRESS
    if AWS in groups:
        g.add_argument("--region", default=S, help="AWS Region (default: from the environment or profile)")
        g.add_argument("--profile", default=S, help="AWS shared-config profile")
        g.add_argument("--endpoint-url", default=S, help="AWS endpoint (AWS_ENDPOINT_URL works too)")
        g.add_argument("--owner", default=S, help="owner id written to the ecs-secrets:owner tag (default ecs-secrets)")
        g.add_argument("--sandbox", action="store_true", default=S, help="run against an embedded AWS (moto), no "
                       "account needed; it keeps its state between commands in .ecs-secrets/ (no values)")
        g.add_argument("--sandbox-state", default=S, metavar="PATH", help="with --sandbox: the state file (default "
                       ".ecs-secrets/sandbox.jsonl in the working directory)")
        g.add_argument("--sandbox-reset", action="store_true", default=S, help="with --sandbox: start from an empty AWS")
        g.add_argument("--sandbox-strict", action="store_true", default=S, help="with --sandbox: invent nothing (no "
                       "placeholders, no random values for unset sources), so a typo in a reference fails as on an "
                       "account")
        # the main parser's copy has its own dest: a subparser starts an empty list, and the two are joined
        g.add_argument("--rate-limit", action="append", default=S, dest="top_rate_limit" if top else "rate_limit",
                       metavar="NAME=TPS[/BURST]", help="client-side API rate limit, repeatable: ssm=40, "
                       "ecs-write=1/20, iam=off, or off for none (default: AWS's published quotas; "
                       "ECS_SECRETS_RATE_LIMITS works too)")
    if OUTPUT in groups:
        g.add_argument("--output", choices=("text", "json", "markdown"), default=S,
                       help="text (default; coloured on a terminal unless NO_COLOR is set), json: one JSON document "
                       "on stdout, refusals included, or markdown: the plan for a pull-request comment")
        g.add_argument("-q", "--quiet", action="store_true", default=S, help="no progress lines on stderr "
                       "(warnings and errors still show)")
    if LOGS in groups:
        g.add_argument("--log-format", choices=("text", "json"), default=S, help="stderr logs as text (default) "
                       "or JSON lines")
        g.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=S,
                       help="default warning (run: info); debug also shows tracebacks")
    if not top:
        p.set_defaults(_globals=frozenset(_dests(groups)))


def _dests(groups: tuple[str, ...]) -> set[str]:
    by_group = {AWS: {"region", "profile", "endpoint_url", "owner", "sandbox", "sandbox_state", "sandbox_reset",
                      "sandbox_strict", "rate_limit"}, OUTPUT: {"output", "quiet"},
                LOGS: {"log_format", "log_level"}}
    return set().union(*(by_group[g] for g in groups))


def _common(p: argparse.ArgumentParser, manifests: bool = True) -> None:
    """What every command that talks to AWS or reads manifests takes."""
    if manifests:
        _manifest_options(p)
    _global_options(p, AWS, OUTPUT, LOGS)


def _manifest_options(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-f", "--filename", action="append", required=required, metavar="PATH",
                   help="a manifest file, a folder of them (*.yaml, *.yml, *.json) or - (standard input); "
                   "repeatable: every -f adds to one desired state").complete = shtab.FILE
    p.add_argument("-R", "--recursive", action="store_true", help="also read the subfolders of a folder given to -f")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more")
    return value


def _seconds(positive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if value != value or value < 0 or (positive and value == 0):   # NaN, negative, zero
            raise argparse.ArgumentTypeError(f"{text} seconds: give {'more than 0' if positive else '0 or more'}")
        return value
    return parse


def _queue_url(text: str) -> str:
    from controller.core.events import queue_url
    try:
        return queue_url(text).url
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fifo_queue_url(text: str) -> str:
    url = _queue_url(text)
    if not url.rstrip("/").endswith(".fifo"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a FIFO queue (its name ends in .fifo): only a FIFO queue "
                                         "keeps two replicas off one object")
    return url


def _port(text: str) -> int:
    value = _count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value}: a port is 0 to 65535 (0: any free one)")
    return value


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage") from None
    if not 0 < value <= 100:   # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text}: give a percentage above 0 and at most 100")
    return value


def _epilog(command: str) -> str:
    return f"exit status: {EXITS[command]}"


# --- the parser ---------------------------------------------------------------------------------

def parser() -> Parser:
    top = Parser(prog="ecs-secrets", description="Keep SSM parameters, task execution roles and ECS task "
                 "definitions converged from one desired-state YAML.", epilog="exit status: 0 success; 1 any "
                 "error, a usage error included; 2 `reconcile --dry-run --detailed-exitcode`: changes pending;\n"
                 "  3 `verify`: only unknowns. `ecs-secrets COMMAND --help` says each command's.")
    top.add_argument("--version", action="version", version=f"ecs-secrets {_version()}")
    _global_options(top, AWS, OUTPUT, LOGS, top=True)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    v = sub.add_parser("validate", help="check manifests; no AWS call", epilog=_epilog("validate"))
    _common(v)
    _reconcile_parser(sub)
    _verify_parser(sub)
    _controller_policy_parser(sub)
    _run_parser(sub)
    _init_parser(sub)
    _events_setup_parser(sub)
    sch = sub.add_parser("schema", help="print the manifests' JSON Schema", epilog=_epilog("schema"))
    _global_options(sch, LOGS)
    comp = sub.add_parser("completion", help="print a shell completion script", epilog=_epilog("completion") +
                          '\n\nbash: eval "$(ecs-secrets completion bash)" (or save it in '
                          "~/.local/share/bash-completion/completions/ecs-secrets)\n"
                          'zsh:  ecs-secrets completion zsh > "${fpath[1]}/_ecs-secrets"')
    comp.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    comp.set_defaults(_globals=frozenset())
    top.commands = sub.choices
    return top


def _reconcile_parser(sub: Any) -> None:
    rec = sub.add_parser("reconcile", help="observe, plan, print the plan, apply it", epilog=_epilog("reconcile"))
    _common(rec)
    rec.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
    rec.add_argument("--detailed-exitcode", action="store_true", help="with --dry-run: exit 2 when changes are pending")
    rec.add_argument("--prune", action="store_true", help="delete owned objects that left the manifests")
    rec.add_argument("--max-deletions", type=_count, default=10, metavar="N", help="refuse a plan with more "
                     "deletions (and deregistrations) than this (default 10)")
    rec.add_argument("--lease-table", metavar="NAME", help="the DynamoDB lease table of `run --lease-table`: hold "
                     "its lease while observing, planning and writing, so that no other run or daemon of the same "
                     "owner writes at the same time (created if missing)")
    rec.add_argument("--lock-timeout", type=_seconds(positive=False), default=60.0, metavar="S", help="with "
                     "--lease-table: wait this long for the lease, then fail writing nothing (default 60; 0: fail "
                     "at once)")
    rec.add_argument("--out", metavar="FILE", help="with --dry-run: also save the plan to FILE (JSON; no value, "
                     "digest or length of a value), for `reconcile --plan FILE`")
    rec.add_argument("--plan", metavar="FILE", help="apply exactly the plan saved in FILE; refused, writing nothing, "
                     "when AWS or the manifests changed since it was made (give the same -f and options)")
    rec.add_argument("--skip-values", action="store_true", help="with --dry-run: read no fromEnv/fromFile value "
                     "(none is compared), so that a job without the production secrets can plan")
    _cluster(rec)
    _rollout_timeout(rec)
    _target(rec)
    rec.set_defaults(_check=_check_reconcile)


def _check_reconcile(args: argparse.Namespace) -> str | None:
    if args.detailed_exitcode and not args.dry_run:
        return "--detailed-exitcode needs --dry-run (an apply exits 0 converged or 1 error)"
    return None


def _verify_parser(sub: Any) -> None:
    ver = sub.add_parser("verify", help="prove each container can read each of its secrets", epilog=_epilog("verify"))
    _manifest_options(ver, required=False)
    _common(ver, manifests=False)
    _target(ver)
    ver.add_argument("--family", metavar="NAME[:REV]", help="a registered task definition instead of manifests")
    ver.add_argument("--against", choices=("aws",), help="also cross-check with iam:SimulatePrincipalPolicy")
    ver.add_argument("--service", action="append", default=[], metavar="CLUSTER/NAME", help="an ECS service: the "
                     "revision it runs now, and the network path from its subnets to the endpoints the agent calls; "
                     "repeatable")
    ver.set_defaults(_check=lambda a: None if a.filename or a.family or a.service else
                     "verify needs -f PATH, --family NAME[:REV] or --service CLUSTER/NAME")


def _controller_policy_parser(sub: Any) -> None:
    pol = sub.add_parser("controller-policy", help="print the least-privilege IAM policy the controller itself needs",
                         epilog=_epilog("controller-policy"))
    _common(pol)
    pol.add_argument("--lease-table", metavar="NAME", help="include the DynamoDB lease table of `run --lease-table`")
    pol.add_argument("--prune", action="store_true", help="include what --prune needs to list and delete")
    pol.add_argument("--account", metavar="ID", help="12-digit account id (default: sts:GetCallerIdentity)")
    pol.add_argument("--verify-service", action="append", default=[], metavar="CLUSTER/NAME", help="include what "
                     "`verify --service` reads of that service and its VPC (ecs:DescribeServices, EC2 Describe*); "
                     "repeatable")
    pol.add_argument("--events", type=_queue_url, metavar="QUEUE_URL", help="include reading and deleting the "
                     "messages of `run --events QUEUE_URL`")
    pol.add_argument("--work-queue", type=_fifo_queue_url, metavar="QUEUE_URL", help="include sending, "
                     "receiving, extending and deleting the work items of `run --work-queue QUEUE_URL`")
    _cluster(pol)
    _target(pol, policy=True)


def _target(p: argparse.ArgumentParser, policy: bool = False) -> None:
    if policy:
        p.add_argument("--target", metavar="NAME", help="a Target of the manifests: print the policy of the role "
                       "to assume in its account (default: the controller's own policy)")
    else:
        p.add_argument("--target", action="append", default=[], metavar="NAME", help="only this Target of the "
                       "manifests (objects with metadata.targets naming it); repeatable (default: every target and "
                       "the objects without targets)")


def _rollout_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rollout-timeout", type=_seconds(positive=True), default=900.0, metavar="SECONDS",
                   help="follow each service's deployment of a spec.rollout this long before it counts as failed "
                   "(default 900)")


def _events_setup_parser(sub: Any) -> None:
    p = sub.add_parser("events-setup", help="print (or --apply: create) the SQS queue and EventBridge rules that "
                       "`run --events` reads", epilog=_epilog("events-setup"))
    _common(p, manifests=False)
    p.add_argument("--queue-name", default="ecs-secrets-events", metavar="NAME",
                   help="the SQS queue (default ecs-secrets-events)")
    p.add_argument("--apply", action="store_true", help="create them (idempotent: run it again after any change)")
    p.add_argument("--account", metavar="ID", help="12-digit account id (default: sts:GetCallerIdentity)")


def _cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", action="append", default=[], metavar="NAME", help="an ECS cluster whose services' "
                   "task-definition revisions keepRevisions and --prune never deregister; repeatable (default: "
                   "every cluster of the Region)")


def _init_parser(sub: Any) -> None:
    p = sub.add_parser("init", help="write manifests for task definitions that already run (adopt: true, never "
                       "a value)", epilog=_epilog("init"))
    _common(p, manifests=False)
    p.add_argument("--family", action="append", default=[], metavar="NAME[:REV]", help="a task-definition family "
                   "(its latest ACTIVE revision) or FAMILY:REVISION; repeatable")
    p.add_argument("--service", action="append", default=[], metavar="CLUSTER/NAME", help="an ECS service: the "
                   "revision it runs now; repeatable")
    p.add_argument("-o", "--out-dir", metavar="DIR", help="write one file per family into DIR (default: print "
                   "them on stdout)")


def _run_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="the daemon: reconcile every interval and on manifest changes",
                         epilog=_epilog("run"))
    _common(run)
    _cluster(run)
    _rollout_timeout(run)
    _target(run)
    positive = _seconds(positive=True)
    run.add_argument("--interval", type=positive, default=60.0, metavar="SECONDS", help="between reconciles (±10%%); "
                     "with --events, only while the queue cannot be read")
    run.add_argument("--events", type=_queue_url, metavar="QUEUE_URL", help="reconcile what the EventBridge events "
                     "on this SQS queue concern, instead of everything every --interval")
    run.add_argument("--resync-interval", type=positive, default=3600.0, metavar="SECONDS", help="with --events: "
                     "between full reconciles, the safety net for lost events; with --work-queue: between the resyncs "
                     "the lease holder enqueues (default 3600, ±10%%)")
    run.add_argument("--api-budget", type=_percent, default=25.0, metavar="PERCENT", help="the share of each AWS "
                     "quota the daemon shares with the account that it may use (default 25; a bucket given with "
                     "--rate-limit is taken as given)")
    run.add_argument("--work-queue", type=_fifo_queue_url, metavar="QUEUE_URL", help="share the work with the other "
                     "replicas through this SQS FIFO queue (.fifo): each takes any item, the lease holder enqueues the "
                     "resyncs (needs --lease-table)")
    run.add_argument("--work-visibility-timeout", type=_count, default=60, metavar="S", help="with --work-queue: "
                     "how long a taken item stays invisible to the other replicas; a heartbeat extends it every "
                     "quarter while the reconcile runs (default 60)")
    run.add_argument("--metrics-port", type=_port, default=9100, metavar="PORT",
                     help="/metrics, /healthz, /readyz, /status (default 9100; 0: any free port)")
    run.add_argument("--metrics-address", default="0.0.0.0", metavar="ADDRESS",
                     help="address the metrics port binds to")
    run.add_argument("--lease-table", metavar="NAME", help="DynamoDB table for leader election (created if missing)")
    run.add_argument("--lease-duration", type=positive, default=15.0, metavar="S", help="a follower takes over after "
                     "the lease went unrenewed this long (default 15)")
    run.add_argument("--lease-renew-deadline", type=positive, default=10.0, metavar="S", help="the leader stops "
                     "writing when it could not renew for this long (default 10)")
    run.add_argument("--lease-retry-period", type=positive, default=2.0, metavar="S", help="between renewals and "
                     "attempts to acquire (default 2)")
    run.add_argument("--once", action="store_true", help="one reconcile, then exit (0 when all converged)")
    # a daemon says what it does: each reconcile, each write, each state change
    run.set_defaults(_defaults={"log_level": "info"}, _check=_check_run)


def _check_run(args: argparse.Namespace) -> str | None:
    if not args.work_queue:
        return None
    if not args.lease_table:
        return "--work-queue needs --lease-table: its holder enqueues the resyncs"
    if args.once:
        return "--work-queue serves a queue; --once is one reconcile of a single replica (drop one)"
    if not 2 <= args.work_visibility_timeout <= 43200:
        return "--work-visibility-timeout: 2 to 43200 seconds (SQS's maximum, 12 hours)"
    return None


def no_core_dumps() -> None:
    """A core dump (SIGQUIT, SIGSEGV) would hold every value in memory: allow none, and make the process
    non-dumpable, which also keeps other processes of the same user from attaching to it or reading its
    memory through /proc. Linux only for the second (prctl); elsewhere the limit alone."""
    try:   # the soft limit is the one the kernel applies; the hard one is left for whoever runs us
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    except (ImportError, ValueError, OSError):  # no resource module (Windows), or the limit cannot be set
        pass
    if sys.platform.startswith("linux"):
        import ctypes
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
        except (OSError, AttributeError):
            pass


_PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("ecs-secrets")
    except PackageNotFoundError:   # run from a checkout that was never installed
        from controller import __version__
        return __version__


def parse(argv: list[str]) -> argparse.Namespace:
    """The namespace of ``argv`` with every default filled in; ``UsageError`` for what cannot run."""
    top = parser()
    args = top.parse_args(argv)
    command, allowed = top.commands[args.command], getattr(args, "_globals", frozenset())
    stray = sorted(k for k in _dests((AWS, OUTPUT, LOGS)) if hasattr(args, k) and k not in allowed)
    if getattr(args, "top_rate_limit", None) and "rate_limit" not in allowed:
        stray.append("rate_limit")
    if stray:
        flags = ", ".join("--" + k.replace("_", "-") for k in stray)
        raise UsageError(f"{flags}: not an option of {args.command}", command)
    args.rate_limit = (getattr(args, "top_rate_limit", None) or []) + (getattr(args, "rate_limit", None) or []) \
        or None
    for key, value in {**DEFAULTS, **getattr(args, "_defaults", {})}.items():
        if not hasattr(args, key):
            setattr(args, key, value)
    if (getattr(args, "filename", None) or []).count(STDIN) > 1:
        raise UsageError("-f - (standard input) can be given once", command)
    problem = _global_problem(args)
    if problem:
        raise UsageError(problem, command)
    problem = getattr(args, "_check", lambda a: None)(args)
    if problem:
        raise UsageError(problem, command)
    return args


def _global_problem(args: argparse.Namespace) -> str | None:
    """Global options that this command would take and then ignore, or that contradict each other."""
    if args.sandbox and args.endpoint_url:
        # moto answers only AWS's own hostnames: another endpoint would get the sandbox's requests, values included
        return "--sandbox runs against an embedded AWS; drop --endpoint-url (or drop --sandbox)"
    if not args.sandbox and (args.sandbox_state or args.sandbox_reset or args.sandbox_strict):
        return "--sandbox-state, --sandbox-reset and --sandbox-strict need --sandbox"
    if args.output == "markdown" and args.command != "reconcile":
        return f"--output markdown renders a plan: only for reconcile, not {args.command} (text or json)"
    return None


# --- running a command --------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    no_core_dumps()
    try:
        code = _main(sys.argv[1:] if argv is None else list(argv))
        sys.stdout.flush()   # a closed pipe shows here, not as a traceback when the interpreter exits
        return code
    except BrokenPipeError:
        # Python's documented way (signal module, "Note on SIGPIPE"): point stdout at devnull, then exit
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass   # not a real file descriptor (a test's captured stdout)
        return EXIT_ERROR


def _main(argv: list[str]) -> int:
    try:
        args = parse(argv)
    except UsageError as exc:
        exc.parser.print_usage(sys.stderr)
        print(f"{exc.parser.prog}: error: {exc.message}", file=sys.stderr)
        if _json_requested(argv):
            print(json.dumps({"errors": [_error(None, None, None, None, exc.message)]}))
        return EXIT_ERROR
    from controller import logs
    logs.setup(args.log_format, args.log_level)
    try:
        _check_owner(args)
        if getattr(args, "filename", None):
            args.filename = _manifest_sources(args)
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        raise
    except ControllerError as exc:
        _fail(args, str(exc), exc)
    except KeyboardInterrupt:
        _fail(args, "interrupted", None)
        return 130
    except Exception as exc:  # one clear line, not a traceback, unless debugging
        from controller.aws.session import error_code
        _fail(args, f"{error_code(exc)}: {scrub(str(exc))}", exc)
    finally:
        if getattr(args, "_sandbox", None) is not None:
            args._sandbox.stop()   # what it invented, if not said yet; the mock ends with the command
    return EXIT_ERROR


def _check_owner(args: argparse.Namespace) -> None:
    """Before anything else: --owner is written as a tag value on every parameter, role and task definition
    (a bad one would fail at the first CreateRole, after the parameters were written)."""
    if getattr(args, "owner", None) is None:
        return
    from controller.manifests.limits import check_owner
    msg = check_owner(args.owner)
    if msg:
        raise ControllerError(msg)


def _manifest_sources(args: argparse.Namespace) -> Sources:
    """What the -f options name; standard input read here, once (bounded like a manifest file)."""
    stdin = sys.stdin.buffer.read(MAX_FILE_BYTES + 1) if STDIN in args.filename else None
    return Sources(tuple(args.filename), args.recursive, stdin)


def _json_requested(argv: list[str]) -> bool:
    return "--output=json" in argv or any(a == "--output" and b == "json" for a, b in zip(argv, argv[1:]))


def _fail(args: argparse.Namespace, message: str, exc: BaseException | None) -> None:
    if exc is not None and args.log_level == "debug":
        log.debug("traceback", exc_info=exc)
    if args.output == "json":
        document: dict[str, Any] = {"valid": False} if args.command == "validate" else {}
        document["errors"] = _errors(exc, message)
        print(json.dumps(document, indent=2))
    print(f"error: {message}", file=sys.stderr)


def _errors(exc: BaseException | None, message: str) -> list[dict[str, Any]]:
    """A refusal as data: ``[{file, line, object, field, message}]``, null where it does not apply."""
    if isinstance(exc, ManifestError):
        return [_error(p.file, p.line, p.obj, p.field, p.message) for p in exc.problems]
    if isinstance(exc, CheckError):
        return [_error(None, None, ref, None, reason) for ref, reason in exc.blockers]
    return [_error(None, None, None, None, message)]


def _error(file: str | None, line: int | None, obj: str | None, field: str | None, message: str) -> dict[str, Any]:
    return {"file": file, "line": line, "object": obj, "field": field, "message": scrub(message)}


def _aws(args: argparse.Namespace) -> Any:
    from controller.aws.session import Aws
    if args.sandbox:
        from controller.sandbox import embedded
        args._sandbox = embedded.start(args.region, args.sandbox_state, args.sandbox_reset, args.sandbox_strict)
    flags = getattr(args, "rate_limit", None)  # after ECS_SECRETS_RATE_LIMITS, so that the flags win
    limits = ",".join([os.environ.get("ECS_SECRETS_RATE_LIMITS", ""), *flags]) if flags else None
    aws = Aws(region=args.region, profile=None if args.sandbox else args.profile, endpoint_url=args.endpoint_url,
              rate_limits=limits, api_budget=getattr(args, "api_budget", None))
    if args.sandbox:
        args._sandbox.attach(aws)   # its writes are what the next command restores
    return aws


def _region(args: argparse.Namespace) -> str:
    if args.region:
        return args.region   # a botocore session takes longer than validating a manifest
    import botocore.session
    session = botocore.session.Session(profile=args.profile) if args.profile and not args.sandbox else \
        botocore.session.Session()
    return args.region or session.get_config_variable("region") or "us-east-1"


def _load(args: argparse.Namespace, aws: Any, desired: Any = None) -> Any:
    """The manifests as ``Desired`` in the Region of ``aws`` (unless loaded already); under --sandbox, with its
    placeholders seeded."""
    from controller import reconcile
    desired = desired if desired is not None else reconcile.load(args.filename, aws, args.owner)
    if args.sandbox:
        args._sandbox.prepare(aws, desired)
    return desired


def _sources(args: argparse.Namespace) -> dict[str, Any]:
    """Where values come from: ``reconcile.Settings``' own defaults (the environment and files), or under
    --sandbox the same with stand-ins for what is missing."""
    return args._sandbox.sources() if args.sandbox else {}


def cmd_validate(args: argparse.Namespace) -> int:
    fleet = _fleet(args, _region(args), sized=True)
    refs = [o.ref for o in fleet.objects]
    if args.output == "json":
        print(json.dumps({"valid": True, "objects": refs}))
    else:
        print(f"{len(refs)} objects valid: " + ", ".join(refs))
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    _saved_plan_flags(args)
    aws = _aws(args)
    with _lock(args, aws):   # with --lease-table: from the observation to the last write
        fleet = _fleet(args, aws.region)
        if fleet.single and not args.target:
            return _reconcile(args, aws, fleet.groups.get(None))
        from controller import cli_fleet
        return cli_fleet.reconcile(args, aws, _fleet_only(args, fleet), colour(sys.stdout))


def _fleet(args: argparse.Namespace, region: str, sized: bool = False) -> Any:
    """The manifests as a ``Fleet`` (one ``Desired`` per target; today's single ``Desired`` when no target is
    named anywhere), without any AWS call."""
    from controller.core import fleet
    from controller.manifests import valuefile
    sources = {"environ": os.environ, "read": valuefile.read_text} if sized else {}
    return fleet.load(args.filename, region, args.owner, **sources)


def _fleet_only(args: argparse.Namespace, fleet: Any) -> Any:
    from controller.core import fleet as fleet_
    return fleet_.only(fleet, args.target) if args.target else fleet


def _saved_plan_flags(args: argparse.Namespace) -> None:
    if args.out and not args.dry_run:
        raise ControllerError("--out saves the plan of a --dry-run: add --dry-run (a saved plan is applied with "
                              "--plan FILE)")
    if args.plan and args.dry_run:
        raise ControllerError("--plan FILE applies a saved plan: drop --dry-run (its plan is in the file already)")
    if args.skip_values and not args.dry_run:
        raise ControllerError("--skip-values plans without reading the values, so it cannot apply: add --dry-run")
    if args.skip_values and args.out:
        raise ControllerError("a plan made with --skip-values compares no value, so it cannot be applied: drop "
                              "--out or --skip-values")


def _reconcile(args: argparse.Namespace, aws: Any, desired: Any = None) -> int:
    from controller import progress as progress_
    from controller import reconcile
    progress = progress_.for_stream(sys.stderr, getattr(args, "quiet", False))
    aws.limiter.on_wait = lambda limit, seconds: progress.waiting(limit.what or limit.name, limit.tps, seconds)
    try:
        return _plan_and_apply(args, aws, reconcile, progress, desired)
    finally:
        progress.close()
        aws.limiter.on_wait = None


def _plan_and_apply(args: argparse.Namespace, aws: Any, reconcile: Any, progress: Any, desired: Any = None) -> int:
    import time
    from controller.core import planfile, render
    saved = reconcile.read_plan(args.plan) if args.plan else None
    desired = _load(args, aws, desired)
    options = planfile.Options(args.owner, args.prune, args.max_deletions, tuple(args.cluster))
    if saved is not None:
        reconcile.check_inputs(args.plan, saved, desired, options)
    settings = reconcile.Settings(prune=args.prune, max_deletions=args.max_deletions, clusters=tuple(args.cluster),
                                  skip_values=args.skip_values, **_sources(args))
    started = time.monotonic()
    progress.phase(f"reading the state of {len(desired.objects)} objects from AWS ({aws.region})")
    result = reconcile.make(aws, desired, settings)
    progress.phase(f"planned in {time.monotonic() - started:.1f}s")
    progress.close()   # the live line, off the terminal before the plan is printed
    if saved is not None:
        reconcile.check_plan(args.plan, saved, result, options)
    saved_first = args.output == "json" and args.dry_run and args.out
    if args.output == "json":
        reconcile.check(result.plan)   # refused: stdout is the one document of the errors, not two
        if saved_first:   # a plan file that cannot be written is the one document too, not a second one
            reconcile.write_plan(args.out, result, options)
    if args.output != "json" or args.dry_run:   # a JSON apply prints one document: the plan with its results
        print(_rendered(args, result.plan, planfile.parameter_versions(result.plan, result.actual)), flush=True)
    reconcile.check(result.plan)
    if args.dry_run:
        if args.out:
            if not saved_first:
                reconcile.write_plan(args.out, result, options)
            print(f"Saved the plan to {args.out}; apply it with: reconcile --plan {args.out}", file=sys.stderr)
        return EXIT_CHANGES if args.detailed_exitcode and result.plan.changes else EXIT_OK
    if result.plan.changes and not args.lease_table and not args.sandbox:
        print(f"warning: no --lease-table: nothing stops another `reconcile` or `run` of owner {args.owner} "
              "from writing at the same time (duplicate revisions, extra parameter versions)", file=sys.stderr)
    progress.plan(len(result.plan.changes))
    report = reconcile.execute(aws, result, on_start=lambda c: progress.started(c.ref, c.action),
                               on_outcome=lambda o: progress.finished(o.change.ref, o.change.action, o.result),
                               rollout_timeout=args.rollout_timeout)
    progress.close()
    for outcome in report.outcomes:
        if outcome.result != "applied":
            print(f"{outcome.change.ref}: {outcome.result}: {outcome.error}", file=sys.stderr)
    if args.output == "json":
        print(render.applied_json(result.plan, report.outcomes))
    elif result.plan.changes:
        print(render.applied_text(report.outcomes))
    return EXIT_OK if report.ok else EXIT_ERROR


def _rendered(args: argparse.Namespace, plan: Any, versions: Any) -> str:
    from controller.core import render
    if args.output == "json":
        return render.as_json(plan)
    if args.output == "markdown":
        return render.markdown(plan)
    return render.text(plan, versions, colour=colour(sys.stdout))


def colour(stream: Any) -> bool:
    """Colour only for a person at a terminal: never into a pipe or file, never with NO_COLOR set
    (https://no-color.org: present and not empty) or TERM=dumb."""
    import os
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _lock(args: argparse.Namespace, aws: Any) -> Any:
    """``--lease-table`` (not for a dry-run, which writes nothing): the owner's lease, held to the last write."""
    import contextlib
    if not args.lease_table or args.dry_run:
        return contextlib.nullcontext()
    from controller.daemon import lock
    return lock.held(aws, args.lease_table, args.owner, None if args.sandbox else args.profile, args.lock_timeout,
                     say=lambda line: print(line, file=sys.stderr))


def cmd_verify(args: argparse.Namespace) -> int:
    from controller.verify import command as verify
    aws = _aws(args)
    fleet = _fleet(args, aws.region) if args.filename else None
    if fleet is not None and (not fleet.single or args.target):
        from controller import cli_fleet
        return cli_fleet.verify(args, aws, _fleet_only(args, fleet))
    desired = _load(args, aws, fleet.groups.get(None)) if fleet is not None else None
    return verify.command(aws, desired=desired, family=args.family, output=args.output,
                          against_aws=args.against == "aws", out=sys.stdout, services=args.service)


def cmd_init(args: argparse.Namespace) -> int:
    import yaml

    from controller.aws import adopt_read
    from controller.core import adopt
    if not args.family and not args.service:
        raise ControllerError("init needs --family NAME or --service CLUSTER/NAME")
    aws = _aws(args)
    found = adopt_read.read(aws, args.family, args.service)
    header = "# written by `ecs-secrets init`: what runs now, adopt: true; no value was read or written\n"
    if not args.out_dir:
        print(header + yaml.safe_dump_all(adopt.documents(found, aws.region), sort_keys=False), end="")
        return EXIT_OK
    from pathlib import Path
    out = Path(args.out_dir)
    files = {out / f"{name}.yaml": docs for name, docs in adopt.by_family(found, aws.region).items()}
    clash = [str(path) for path in files if path.exists()]
    if clash:
        raise ControllerError(f"{', '.join(clash)} exists; init never overwrites a file (remove it or choose -o)")
    out.mkdir(parents=True, exist_ok=True)
    for path, docs in files.items():
        path.write_text(header + yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from controller.manifests.schema import schema
    print(json.dumps(schema(), indent=2))
    return EXIT_OK


def cmd_completion(args: argparse.Namespace) -> int:
    print(shtab.complete(parser(), shell=args.shell), end="")
    return EXIT_OK


def cmd_controller_policy(args: argparse.Namespace) -> int:
    from controller.core import permissions
    from controller.vocab import policy
    region = _region(args)
    fleet = _fleet(args, region)
    if not fleet.single or args.target:
        from controller import cli_fleet
        return cli_fleet.controller_policy(args, fleet, region, _identity)
    desired = fleet.groups.get(None)
    partition, account = _identity(args, region)
    target = permissions.Target(account=account, region=region, partition=partition, owner=args.owner,
                                lease_table=args.lease_table, prune=args.prune, clusters=tuple(args.cluster),
                                verify_services=tuple(_service_refs(args.verify_service)),
                                events_queue=args.events, work_queue=args.work_queue)
    document = permissions.policy_for(desired, target)
    print(json.dumps(document, indent=2))
    if policy.size(document) > permissions.MAX_MANAGED_POLICY_CHARS:
        print(f"note: {policy.size(document)} characters: over the {permissions.MAX_MANAGED_POLICY_CHARS} of a "
              "managed policy; attach it as an inline policy (10,240) or split the manifests", file=sys.stderr)
    return EXIT_OK


def _service_refs(refs: list[str]) -> list[str]:
    for ref in refs:
        cluster, _, name = ref.partition("/")
        if not cluster or not name or "/" in name:
            raise ControllerError(f"--verify-service {ref!r}: write CLUSTER/SERVICE")
    return refs


def _identity(args: argparse.Namespace, region: str) -> tuple[str, str]:
    """(partition, account): from --account without any AWS call, else from sts:GetCallerIdentity."""
    import re
    if args.account:
        if not re.fullmatch(r"\d{12}", args.account):
            raise ControllerError(f"--account {args.account!r}: an AWS account id is 12 digits")
        import botocore.session
        return botocore.session.Session().get_partition_for_region(region), args.account
    arn = _aws(args).client("sts").get_caller_identity()["Arn"]
    return arn.split(":")[1], arn.split(":")[4]


def cmd_events_setup(args: argparse.Namespace) -> int:
    from controller import cli_events
    return cli_events.events_setup(args, _region(args), _identity, _aws)


def cmd_run(args: argparse.Namespace) -> int:
    from controller.daemon import loop
    aws = _aws(args)
    fleet = _fleet(args, aws.region)
    if args.work_queue:
        from controller.daemon import workqueue
        if args.sandbox:
            raise ControllerError("--work-queue shares the work of replicas on one AWS; --sandbox is one embedded AWS "
                                  "per process (drop one)")
        _fleet_only(args, fleet)
        return loop.run(args, aws, _sources(args), None, factory=workqueue.factory(args, lambda base: _queue_aws(
            args, base)))
    if fleet.single and not args.target:
        return loop.run(args, aws, _sources(args), args._sandbox.prepare if args.sandbox else None)
    from controller import cli_fleet
    from controller.daemon import fleetloop
    cli_fleet.refuse_single_account_only(args)
    _fleet_only(args, fleet)   # an unknown --target stops the daemon before it starts
    return loop.run(args, aws, _sources(args), None, factory=fleetloop.factory(args.target))


def _queue_aws(args: argparse.Namespace, base: Any) -> Any:
    """The work queue's own clients: the controller's credentials, no write guard (a delete after a reconcile)."""
    from controller.aws.session import Aws
    return Aws(region=base.region, profile=args.profile, endpoint_url=base.endpoint_url, rate_limits="off")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate, "reconcile": cmd_reconcile, "verify": cmd_verify, "schema": cmd_schema,
    "controller-policy": cmd_controller_policy, "run": cmd_run, "init": cmd_init, "completion": cmd_completion,
    "events-setup": cmd_events_setup,
}
