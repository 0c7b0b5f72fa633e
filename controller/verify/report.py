"""verify's output: an aligned table or JSON (controller/verify/verify.schema.json), and the AWS cross-check note."""

from __future__ import annotations

import json
from typing import Sequence

from controller.verify.facts import VERDICTS, Need, Row, summary
from controller.verify.iam_eval import Decision
from controller.verify.network import NetRow, net_summary


# What decides a real request but is not read or evaluated here: each may still deny what verify allows.
NOT_EVALUATED = (
    "service control policies (SCPs)",
    "resource control policies (RCPs)",
    "VPC endpoint policies",
    "session policies",
)


# What decides the network path of ``verify --service`` but is not read.
NETWORK_NOT_EVALUATED = (
    "network ACLs",
    "security groups referenced by the groups' rules",
    "IPv6 paths",
    "DNS servers other than Amazon's",
    "firewalls and appliances",
)


def render_json(rows: Sequence[Row], net: Sequence[NetRow] | None = None) -> str:
    report: dict = {"rows": [r.as_dict() for r in rows], "summary": summary(rows), "not_evaluated": list(NOT_EVALUATED)}
    if net is not None:
        report["network"] = [r.as_dict() for r in net]
        report["network_summary"] = net_summary(net)
    return json.dumps(report, indent=2) + "\n"


_COLUMNS = ("TASK DEFINITION", "CONTAINER", "VARIABLE", "SOURCE", "VERDICT", "REASON")


def _cells(row: Row, against_aws: bool) -> list[str]:
    t = row.target
    cells = [t.task_definition, t.container, t.variable, t.source, row.verdict, row.reason]
    return cells + ([row.aws_simulation or ""] if against_aws else [])


def render_text(rows: Sequence[Row], against_aws: bool = False) -> str:
    """An aligned table, one row per container secret, and a closing summary line."""
    if not rows:
        return "No container secrets to verify.\n"
    table = [list(_COLUMNS) + (["AWS SIMULATION"] if against_aws else [])]
    table += [_cells(r, against_aws) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    counts = summary(rows)
    total = ", ".join(f"{counts[v]} {v}" for v in VERDICTS)
    caveat = "Not evaluated (any of them may still deny): " + ", ".join(NOT_EVALUATED) + "."
    return "\n".join(lines) + f"\n\n{caveat}\nVerified {len(rows)} secret{'s' if len(rows) != 1 else ''}: {total}.\n"


_NET_COLUMNS = ("SERVICE", "SUBNET", "ENDPOINT", "CHECK", "VERDICT", "REASON")


def render_network(net: Sequence[NetRow]) -> str:
    """``verify --service``: an aligned table, one row per subnet, endpoint and check, and its summary."""
    table = [list(_NET_COLUMNS)] + [[r.service, r.subnet, r.endpoint, r.check, r.verdict, r.reason] for r in net]
    widths = [max(len(line[i]) for line in table) for i in range(len(_NET_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    counts = net_summary(net)
    total = ", ".join(f"{counts[v]} {v}" for v in VERDICTS)
    caveat = "Network path, not evaluated: " + ", ".join(NETWORK_NOT_EVALUATED) + "."
    return "\n".join(lines) + f"\n\n{caveat}\nChecked {len(net)} network path{'s' if len(net) != 1 else ''}: {total}.\n"


_SIMULATOR_NAMES = {Decision.ALLOW: "allowed", Decision.EXPLICIT_DENY: "explicitDeny",
                    Decision.IMPLICIT_DENY: "implicitDeny", Decision.UNKNOWN: "unknown"}


def simulation_note(pairs: Sequence[tuple[Need, Decision, str | None]], unavailable: str | None = None) -> str:
    """Compare our IAM decisions (identity policies and boundary) with SimulatePrincipalPolicy's."""
    if not pairs or any(theirs is None for _, _, theirs in pairs):
        return f"not available: {unavailable or 'nothing to simulate'}"
    differ = [f"{need.action} on {need.resource}: ours {_SIMULATOR_NAMES[ours]}, AWS {theirs}"
              for need, ours, theirs in pairs if _SIMULATOR_NAMES[ours] != theirs]
    return "differs: " + "; ".join(differ) if differ else "agrees"
