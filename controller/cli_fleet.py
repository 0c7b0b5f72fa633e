"""The command line's fleet commands: ``reconcile`` and ``controller-policy`` when the manifests name Targets.

The single-account commands stay in ``cli``; this is what they turn to when a Target or ``metadata.targets``
is in the manifests (or ``--target`` is given). Every report names ``Kind/name@target``; the JSON documents
carry a ``target`` on each entry as well.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from controller.vocab.problems import ControllerError

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def refuse_single_account_only(args: argparse.Namespace) -> None:
    if getattr(args, "sandbox", False):
        raise ControllerError("--sandbox is one embedded account: it cannot assume the roles of Targets; run the "
                              "manifests without Targets there, or against the accounts")
    if getattr(args, "events", None):
        raise ControllerError("--events with Targets needs --work-queue (its lease holder moves the events of every "
                              "target's account onto the work queue); without it the daemon polls each target")
    if getattr(args, "plan", None) or getattr(args, "out", None):
        raise ControllerError("saved plans (--out, --plan) cover one account; not available for manifests with "
                              "Targets yet (use --dry-run, then reconcile)")


def reconcile(args: argparse.Namespace, aws: Any, fleet: Any, colour: bool = False) -> int:
    from controller import fleet as run
    from controller import progress as progress_
    from controller import reconcile as reconcile_
    from controller.core import fleet as fleet_
    from controller.core import render
    refuse_single_account_only(args)
    progress = progress_.for_stream(sys.stderr, getattr(args, "quiet", False))
    aws.limiter.on_wait = lambda limit, seconds: progress.waiting(limit.what or limit.name, limit.tps, seconds)
    try:
        settings = reconcile_.Settings(prune=args.prune, max_deletions=args.max_deletions, clusters=tuple(args.cluster),
                                       skip_values=args.skip_values)
        connections = run.connect(aws, fleet)
        started = time.monotonic()
        places = ", ".join(f"{n} ({fleet.targets[n].account} {fleet.targets[n].region})" if n else
                           f"own account ({aws.region})" for n in fleet.groups)
        progress.phase(f"reading the state of {len(fleet.objects)} objects from AWS: {places}")
        result = run.make(fleet, connections, settings)
        progress.phase(f"planned in {time.monotonic() - started:.1f}s")
        progress.close()
        plan = result.plan
        if args.output == "json":
            run.check(result)   # refused: stdout is the one document of the errors
        if args.output != "json" or args.dry_run:
            print(_rendered(args, plan, colour), flush=True)
        run.check(result)   # every target's read-only check passed before the first write anywhere
        if args.dry_run:
            return EXIT_CHANGES if args.detailed_exitcode and plan.changes else EXIT_OK
        if plan.changes and not args.lease_table:
            print(f"warning: no --lease-table: nothing stops another `reconcile` or `run` of owner {args.owner} "
                  "from writing at the same time (duplicate revisions, extra parameter versions)", file=sys.stderr)
        progress.plan(len(plan.changes))
        outcomes = run.execute(result, connections, on_start=lambda c: progress.started(c.ref, c.action),
                               on_outcome=lambda o: progress.finished(o.change.ref, o.change.action, o.result),
                               rollout_timeout=args.rollout_timeout)
        progress.close()
        for outcome in outcomes:
            if outcome.result != "applied":
                print(f"{outcome.change.ref}: {outcome.result}: {outcome.error}", file=sys.stderr)
        rank = {c.ref: i for i, c in enumerate(plan.ordered())}
        ordered = sorted(outcomes, key=lambda o: rank.get(o.change.ref, len(rank)))
        if args.output == "json":
            print(json.dumps(fleet_.with_targets(render.applied_dict(plan, outcomes)), indent=2, default=str))
        elif plan.changes:
            print(render.applied_text(ordered))
        return EXIT_OK if result.ok else EXIT_ERROR
    finally:
        progress.close()
        aws.limiter.on_wait = None


def _rendered(args: argparse.Namespace, plan: Any, colour: bool) -> str:
    from controller.core import fleet as fleet_
    from controller.core import render
    from controller.vocab.sensitive import scrub
    if args.output == "json":
        return scrub(json.dumps(fleet_.with_targets(render.as_dict(plan)), indent=2, default=str))
    if args.output == "markdown":
        return render.markdown(plan)
    return render.text(plan, colour=colour)


def controller_policy(args: argparse.Namespace, fleet: Any, region: str, identity: Any) -> int:
    """``--target NAME``: the policy of the role to assume there; without: the controller's own, which may
    assume exactly the targets' roles (plus what its own objects need, as without targets)."""
    from controller.core import fleet as fleet_
    from controller.core import permissions
    if args.target:
        fleet_.only(fleet, [args.target])   # an unknown name: said as --target of reconcile says it
        t = fleet.targets[args.target]
        desired = fleet.groups.get(args.target) or fleet_.empty(t.region, fleet.owner)
        where = permissions.Target(account=t.account, region=t.region, partition=t.partition, owner=args.owner,
                                   prune=args.prune, clusters=tuple(args.cluster))
        document = permissions.policy_for(desired, where)
        print(json.dumps(document, indent=2))
        print(f"note: attach it to {t.role_arn}; its trust policy must allow sts:AssumeRole by the controller's "
              "own role" + (" with the condition sts:ExternalId = the Target's externalId" if t.external_id else ""),
              file=sys.stderr)
        return EXIT_OK
    statements = []
    own = fleet.groups.get(None)
    if own is not None or args.lease_table or getattr(args, "work_queue", None):
        partition, account = identity(args, region)
        where = permissions.Target(account=account, region=region, partition=partition, owner=args.owner,
                                   lease_table=args.lease_table, prune=args.prune, clusters=tuple(args.cluster),
                                   work_queue=getattr(args, "work_queue", None))
        statements = permissions.policy_for(own or fleet_.empty(region, fleet.owner), where)["Statement"]
    document = fleet_.controller_policy(statements, fleet.targets.values())
    print(json.dumps(document, indent=2))
    return EXIT_OK


def verify(args: argparse.Namespace, aws: Any, fleet: Any, out: Any = sys.stdout) -> int:
    """``verify -f`` of a fleet: every target's task definitions, verified in that target's account, each row
    naming ``family@target``. A target whose role cannot be assumed is an error that names it."""
    from dataclasses import replace

    from controller import fleet as run
    from controller.core import fleet as fleet_
    from controller.verify import observe
    from controller.verify.facts import exit_code
    from controller.verify.report import render_json, render_text
    if args.family or getattr(args, "service", None):
        raise ControllerError("--family and --service verify what runs in one account; not with manifests that "
                              "name Targets (verify -f alone, or those options without such manifests)")
    refuse_single_account_only(args)
    connections = run.connect(aws, fleet)
    failed = [why for name, why in ((n, run.reachable(connections[n], fleet.targets[n])) for n in fleet.groups
                                    if n is not None) if why]
    if failed:
        raise ControllerError("; ".join(failed))
    rows = []
    for name, desired in fleet.groups.items():
        found = observe.rows(connections[name], desired=desired, against_aws=args.against == "aws")
        rows += [replace(r, target=replace(r.target, task_definition=fleet_.label(r.target.task_definition, name)))
                 for r in found]
    out.write(render_json(rows) if args.output == "json" else render_text(rows, args.against == "aws"))
    return exit_code(rows)
