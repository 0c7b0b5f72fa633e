"""`ecs-secrets verify`: every container secret of the task definitions, decided, rendered, with its exit code;
with ``--service``, also the network path from the service's subnets to the endpoints the agent calls."""

from __future__ import annotations

import sys
from typing import Any, Sequence, TextIO

from controller.core.desired import Desired
from controller.verify import observe, observe_network
from controller.verify.facts import exit_code
from controller.verify.network import NetRow, Network
from controller.verify.network import exit_code as network_exit_code
from controller.verify.report import render_json, render_network, render_text


def command(aws: Any, *, desired: Desired | None = None, family: str | None = None, output: str = "text",
            against_aws: bool = False, out: TextIO = sys.stdout, services: Sequence[str] = ()) -> int:
    """``ecs-secrets verify``: the task definitions of ``desired`` and/or ``family`` (``NAME``, ``NAME:REV`` or
    an ARN of a registered task definition), and the revisions ``services`` (``CLUSTER/NAME``) run now with
    their network path. Returns the exit code."""
    rows = observe.rows(aws, desired=desired, family=family, against_aws=against_aws) if desired or family else []
    if not services:
        out.write(render_json(rows) if output == "json" else render_text(rows, against_aws))
        return exit_code(rows)
    net: list[NetRow] = []
    cache = Network(aws.region)
    identity = observe._facts(aws)  # the account and partition, read once
    for ref in services:
        place, body = observe_network.service(aws, ref)
        mine = observe.rows(aws, family=body["taskDefinitionArn"], against_aws=against_aws)
        rows += mine
        net += observe_network.rows(aws, place, body, mine, identity.account, identity.partition, cache)
    if output == "json":
        out.write(render_json(rows, net))
    else:
        out.write(render_text(rows, against_aws) + "\n" + render_network(net))
    return network_exit_code(rows, net)

