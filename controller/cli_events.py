"""`ecs-secrets events-setup`: the SQS queue and EventBridge rules that feed `run --events` (``core.eventrules``
says what; ``aws.eventrules`` makes the calls). Kept beside ``cli`` as ``cli_fleet`` is."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, Callable

from controller.vocab.problems import ControllerError


def events_setup(args: argparse.Namespace, region: str, identity: Callable, make_aws: Callable) -> int:
    """`events-setup`: print, or with --apply create, the queue and rules of ``core.eventrules``."""
    from controller.core import eventrules
    if args.sandbox:
        raise ControllerError("events-setup creates EventBridge rules that only a real account delivers to; "
                              "drop --sandbox (print them with --account ID and no --apply)")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}", args.queue_name):
        raise ControllerError(f"--queue-name {args.queue_name!r}: an SQS queue name is 1 to 80 letters, digits, "
                              "- and _ (a FIFO queue, ending .fifo, cannot be an EventBridge rule's target here)")
    partition, account = identity(args, region)
    setup = eventrules.Setup(account=account, region=region, partition=partition, owner=args.owner,
                             queue=args.queue_name)
    plan = eventrules.plan(setup)
    if not args.apply:
        if args.output == "json":
            print(json.dumps(eventrules.document(plan), indent=2))
        else:
            print(_setup_text(plan, "would create (run again with --apply)"))
        return 0
    from controller.aws import eventrules as apply_rules
    aws = make_aws(args)
    notes = apply_rules.trail_notes(aws, sorted({region} | {c.region for c in plan.calls}))
    done: list[Any] = []
    url = apply_rules.apply(aws, plan, args.owner, done.append)
    if args.output == "json":
        doc = eventrules.document(plan, url)
        doc["results"] = [{"operation": d.call.operation, "region": d.call.region, "result": d.result} for d in done]
        doc["notes"] += notes
        print(json.dumps(doc, indent=2))
    else:
        for d in done:
            print(f"{d.result:8} {d.call.says}")
        for note in list(plan.notes) + notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"\nReady: ecs-secrets run -f PATH --events {url}")
    return 0


def _setup_text(plan: Any, heading: str) -> str:
    lines = [f"events-setup {heading}:"]
    lines += [f"  + {c.says}" for c in plan.calls]
    lines += [f"note: {n}" for n in plan.notes]
    lines.append("Every call with its parameters (rule patterns, queue policy, role): --output json")
    return "\n".join(lines)
