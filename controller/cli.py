"""The command line: parse, set up logging and AWS, run one command, map the outcome to an exit code."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable

from controller import __version__
from controller.vocab.problems import ControllerError

log = logging.getLogger("ecs_secrets")
EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def _common(p: argparse.ArgumentParser, manifests: bool = True) -> None:
    if manifests:
        p.add_argument("-f", "--filename", required=True, metavar="PATH", help="a manifest file or a folder of them")
    p.add_argument("--region", help="AWS Region (default: from the environment or profile)")
    p.add_argument("--profile", help="AWS shared-config profile")
    p.add_argument("--endpoint-url", help="AWS endpoint (AWS_ENDPOINT_URL works too)")
    p.add_argument("--owner", default="ecs-secrets", help="owner id written to the ecs-secrets:owner tag")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="warning")
    p.add_argument("--sandbox", action="store_true", help="run against an embedded AWS (moto), no account needed")
    p.add_argument("--rate-limit", action="append", metavar="NAME=TPS[/BURST]", help="client-side API rate limit, "
                   "repeatable: ssm=40, ecs-write=1/20, iam=off, or off for none (default: AWS's published "
                   "quotas; ECS_SECRETS_RATE_LIMITS works too)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ecs-secrets", description="Keep SSM parameters, task execution roles "
                                  "and ECS task definitions converged from one desired-state YAML.")
    top.add_argument("--version", action="version", version=f"ecs-secrets {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _common(sub.add_parser("validate", help="check manifests; no AWS call"))
    rec = sub.add_parser("reconcile", help="observe, plan, print the plan, apply it")
    _common(rec)
    rec.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
    rec.add_argument("--detailed-exitcode", action="store_true", help="with --dry-run: exit 2 when changes are pending")
    rec.add_argument("--prune", action="store_true", help="delete owned objects that left the manifests")
    rec.add_argument("--max-deletions", type=int, default=10, metavar="N")
    rec.add_argument("--lease-table", metavar="NAME", help="the DynamoDB lease table of `run --lease-table`: hold "
                     "its lease while observing, planning and writing, so that no other run or daemon of the same "
                     "owner writes at the same time (created if missing)")
    rec.add_argument("--lock-timeout", type=float, default=60.0, metavar="S", help="with --lease-table: wait this "
                     "long for the lease, then fail writing nothing (default 60; 0: fail at once)")
    _cluster(rec)
    ver = sub.add_parser("verify", help="prove each container can read each of its secrets")
    _common(ver, manifests=False)
    ver.add_argument("-f", "--filename", metavar="PATH")
    ver.add_argument("--family", metavar="NAME[:REV]", help="a registered task definition instead of manifests")
    ver.add_argument("--against", choices=("aws",), help="also cross-check with iam:SimulatePrincipalPolicy")
    pol = sub.add_parser("controller-policy", help="print the least-privilege IAM policy the controller itself needs")
    _common(pol)
    pol.add_argument("--lease-table", metavar="NAME", help="include the DynamoDB lease table of `run --lease-table`")
    pol.add_argument("--prune", action="store_true", help="include what --prune needs to list and delete")
    pol.add_argument("--account", metavar="ID", help="12-digit account id (default: sts:GetCallerIdentity)")
    _cluster(pol)
    _run_parser(sub.add_parser("run", help="the daemon: reconcile every interval and on manifest changes"))
    sch = sub.add_parser("schema", help="print the manifests' JSON Schema")
    sch.add_argument("--log-level", default="warning")
    sch.add_argument("--log-format", default="text")
    return top


def _cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", action="append", default=[], metavar="NAME", help="an ECS cluster whose services' "
                   "task-definition revisions keepRevisions and --prune never deregister; repeatable (default: "
                   "every cluster of the Region)")


def _run_parser(run: argparse.ArgumentParser) -> None:
    _common(run)
    _cluster(run)
    run.add_argument("--interval", type=float, default=60.0, metavar="SECONDS", help="between reconciles (±10%%)")
    run.add_argument("--metrics-port", type=int, default=9100, help="/metrics, /healthz, /readyz, /status")
    run.add_argument("--metrics-address", default="0.0.0.0", help="address the metrics port binds to")
    run.add_argument("--lease-table", metavar="NAME", help="DynamoDB table for leader election (created if missing)")
    run.add_argument("--lease-duration", type=float, default=15.0, metavar="S", help="a follower takes over after "
                     "the lease went unrenewed this long (default 15)")
    run.add_argument("--lease-renew-deadline", type=float, default=10.0, metavar="S", help="the leader stops writing "
                     "when it could not renew for this long (default 10)")
    run.add_argument("--lease-retry-period", type=float, default=2.0, metavar="S", help="between renewals and "
                     "attempts to acquire (default 2)")
    run.add_argument("--once", action="store_true", help="one reconcile, then exit (0 when all converged)")
    run.set_defaults(log_level="info")  # a daemon says what it does: each reconcile, each write, each state change


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


def main(argv: list[str] | None = None) -> int:
    no_core_dumps()
    args = parser().parse_args(argv)
    from controller import logs
    logs.setup(args.log_format, args.log_level)
    try:
        return COMMANDS[args.command](args)
    except ControllerError as exc:
        _fail(args, str(exc), exc)
    except KeyboardInterrupt:
        _fail(args, "interrupted", None)
        return 130
    except Exception as exc:  # one clear line, not a traceback, unless debugging
        from controller.aws.session import error_code
        from controller.vocab.sensitive import scrub
        _fail(args, f"{error_code(exc)}: {scrub(str(exc))}", exc)
    return EXIT_ERROR


def _fail(args: argparse.Namespace, message: str, exc: BaseException | None) -> None:
    if exc is not None and args.log_level == "debug":
        log.debug("traceback", exc_info=exc)
    print(f"error: {message}", file=sys.stderr)


def _aws(args: argparse.Namespace) -> Any:
    from controller.aws.session import Aws
    if args.sandbox:
        from controller.sandbox import embedded
        args._sandbox = embedded.start(args.region)
    import os
    flags = getattr(args, "rate_limit", None)  # after ECS_SECRETS_RATE_LIMITS, so that the flags win
    limits = ",".join([os.environ.get("ECS_SECRETS_RATE_LIMITS", ""), *flags]) if flags else None
    return Aws(region=args.region, profile=None if args.sandbox else args.profile, endpoint_url=args.endpoint_url,
               rate_limits=limits)


def _region(args: argparse.Namespace) -> str:
    import botocore.session
    session = botocore.session.Session(profile=args.profile) if args.profile and not args.sandbox else \
        botocore.session.Session()
    return args.region or session.get_config_variable("region") or "us-east-1"


def _desired(args: argparse.Namespace, region: str, sized: bool = False) -> Any:
    """The manifests as ``Desired``, without any AWS call (no boto3 import either: start-up stays fast);
    ``sized``: also the values that can be read now against their tiers' size."""
    import os

    from controller.core import validate
    from controller.manifests import valuefile
    sources = {"environ": os.environ, "read": valuefile.read_text} if sized else {}
    return validate.load(args.filename, region, args.owner, **sources)


def _load(args: argparse.Namespace, aws: Any) -> Any:
    """The manifests as ``Desired`` in the Region of ``aws``; under --sandbox, with its placeholders seeded."""
    from controller import reconcile
    desired = reconcile.load(args.filename, aws, args.owner)
    if args.sandbox:
        from controller.sandbox import embedded
        embedded.seed(aws, desired)
    return desired


def _sources(args: argparse.Namespace) -> dict[str, Any]:
    """Where values come from: ``reconcile.Settings``' own defaults (the environment and files), or under
    --sandbox the same with stand-ins for what is missing."""
    if not args.sandbox:
        return {}
    import os

    from controller import reconcile
    from controller.sandbox import values
    return {"environ": values.Environ(os.environ), "read_file": values.reader(reconcile.read_text)}


def cmd_validate(args: argparse.Namespace) -> int:
    desired = _desired(args, _region(args), sized=True)
    refs = [o.ref for o in desired.objects]
    if args.output == "json":
        print(json.dumps({"valid": True, "objects": refs}))
    else:
        print(f"{len(refs)} objects valid: " + ", ".join(refs))
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    aws = _aws(args)
    with _lock(args, aws):   # with --lease-table: from the observation to the last write
        return _reconcile(args, aws)


def _reconcile(args: argparse.Namespace, aws: Any) -> int:
    from controller import reconcile
    from controller.core import render
    desired = _load(args, aws)
    settings = reconcile.Settings(prune=args.prune, max_deletions=args.max_deletions, clusters=tuple(args.cluster),
                                  **_sources(args))
    result = reconcile.make(aws, desired, settings)
    print(render.as_json(result.plan) if args.output == "json" else render.text(result.plan))
    reconcile.check(result.plan)
    if args.dry_run:
        return EXIT_CHANGES if args.detailed_exitcode and result.plan.changes else EXIT_OK
    if result.plan.changes and not args.lease_table and not args.sandbox:
        print(f"warning: no --lease-table: nothing stops another `reconcile` or `run` of owner {args.owner} "
              "from writing at the same time (duplicate revisions, extra parameter versions)", file=sys.stderr)
    report = reconcile.execute(aws, result)
    for outcome in report.outcomes:
        if outcome.result != "applied":
            print(f"{outcome.change.ref}: {outcome.result}: {outcome.error}", file=sys.stderr)
    if args.output == "text" and result.plan.changes:
        print(f"Apply complete: {report.count('applied')} applied, {report.count('failed')} failed, "
              f"{report.count('blocked')} blocked.")
    return EXIT_OK if report.ok else EXIT_ERROR


def _lock(args: argparse.Namespace, aws: Any) -> Any:
    """``--lease-table`` (not for a dry-run, which writes nothing): the owner's lease, held to the last write."""
    import contextlib
    if not args.lease_table or args.dry_run:
        return contextlib.nullcontext()
    if args.lock_timeout < 0:
        raise ControllerError("--lock-timeout must be 0 or more")
    from controller.daemon import lock
    return lock.held(aws, args.lease_table, args.owner, None if args.sandbox else args.profile, args.lock_timeout,
                     say=lambda line: print(line, file=sys.stderr))


def cmd_verify(args: argparse.Namespace) -> int:
    from controller.verify import command as verify
    if not args.filename and not args.family:
        raise ControllerError("verify needs -f PATH or --family NAME[:REV]")
    aws = _aws(args)
    desired = _load(args, aws) if args.filename else None
    return verify.command(aws, desired=desired, family=args.family, output=args.output,
                          against_aws=args.against == "aws", out=sys.stdout)


def cmd_schema(args: argparse.Namespace) -> int:
    from controller.manifests.schema import schema
    print(json.dumps(schema(), indent=2))
    return EXIT_OK


def cmd_controller_policy(args: argparse.Namespace) -> int:
    from controller.core import permissions
    from controller.vocab import policy
    region = _region(args)
    desired = _desired(args, region)
    partition, account = _identity(args, region)
    target = permissions.Target(account=account, region=region, partition=partition, owner=args.owner,
                                lease_table=args.lease_table, prune=args.prune, clusters=tuple(args.cluster))
    document = permissions.policy_for(desired, target)
    print(json.dumps(document, indent=2))
    if policy.size(document) > permissions.MAX_MANAGED_POLICY_CHARS:
        print(f"note: {policy.size(document)} characters: over the {permissions.MAX_MANAGED_POLICY_CHARS} of a "
              "managed policy; attach it as an inline policy (10,240) or split the manifests", file=sys.stderr)
    return EXIT_OK


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


def cmd_run(args: argparse.Namespace) -> int:
    from controller.daemon import loop
    seed = None
    if args.sandbox:
        from controller.sandbox.embedded import seed
    return loop.run(args, _aws(args), _sources(args), seed)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate, "reconcile": cmd_reconcile, "verify": cmd_verify, "schema": cmd_schema,
    "controller-policy": cmd_controller_policy, "run": cmd_run,
}
