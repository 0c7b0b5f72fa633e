"""The chart of docs/benchmarks.md: API calls and wall time against N, both tools, cold create and no-op check.

Needs matplotlib, a bench-only dependency (``pip install -e .[bench]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

SERIES = (("ecs-secrets", "cold", "tab:blue", "-"), ("ecs-secrets", "noop", "tab:blue", "--"),
          ("terraform", "cold", "tab:red", "-"), ("terraform", "noop", "tab:red", "--"))
LABEL = {"ecs-secrets": "ecs-secrets", "terraform": "Terraform", "cold": "cold create", "noop": "no-op check"}


def draw(medians: dict[tuple[str, int, str], dict[str, Any]], out: Path) -> None:
    fig, (calls, seconds) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for tool, phase, color, style in SERIES:
        points = sorted((n, m) for (t, n, p), m in medians.items() if t == tool and p == phase and m.get("ok"))
        if not points:
            continue
        ns = [n for n, _ in points]
        label = f"{LABEL[tool]}, {LABEL[phase]}"
        calls.plot(ns, [m["total"] for _, m in points], style, color=color, marker="o", label=label)
        seconds.plot(ns, [m["seconds"] for _, m in points], style, color=color, marker="o", label=label)
    for (tool, n, phase), m in medians.items():   # a run stopped by the time limit: a lower bound, marked x
        if not m.get("ok") and phase in ("cold", "noop") and m.get("seconds"):
            color = "tab:red" if tool == "terraform" else "tab:blue"
            seconds.plot([n], [m["seconds"]], "x", color=color, markersize=10)
            seconds.annotate(f"{LABEL[tool]} {LABEL[phase]}\nkilled at {m['seconds']:,.0f} s", (n, m["seconds"]),
                             textcoords="offset points", xytext=(-120, -8), fontsize=7, color=color)
    cpu = sorted((n, m["cpu_seconds"]) for (t, n, p), m in medians.items()
                 if t == "ecs-secrets" and p == "noop" and m.get("cpu_seconds"))
    if cpu:
        seconds.plot([n for n, _ in cpu], [v for _, v in cpu], ":", color="tab:blue", marker=".",
                     label="ecs-secrets, no-op: its own CPU time")
    model = sorted((n, m["model"]) for (t, n, p), m in medians.items() if t == "ecs-secrets" and p == "noop")
    if model:
        calls.plot([n for n, _ in model], [v for _, v in model], ":", color="gray", label="model, no-op (moto paging)")
    for ax, title, unit in ((calls, "AWS API calls", "calls"), (seconds, "Wall time", "seconds")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N parameters (N/10 roles and task definitions)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
            axis.set_minor_formatter(ticker.NullFormatter())
    calls.legend(fontsize=8)
    seconds.legend(fontsize=8)
    fig.suptitle("ecs-secrets vs Terraform against moto (medians; ecs-secrets' rate limits lifted)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def draw_quota(rows: list[dict[str, Any]], out: Path, n: int) -> None:
    """Bars of the runs through the quota proxy at N: the quota-bound minimum, ecs-secrets, Terraform."""
    phases = [p for p in ("cold", "noop", "update", "noop2")
              if any(r.get("quota") and r["n"] == n and r["phase"] == p for r in rows)]
    if not phases:
        return
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    width = 0.27
    for k, (label, color, pick) in enumerate((
            ("quota-bound minimum", "gray", lambda p: _median(rows, n, p, None, "quota_bound")),
            ("ecs-secrets", "tab:blue", lambda p: _median(rows, n, p, "ecs-secrets", "seconds")),
            ("Terraform", "tab:red", lambda p: _median(rows, n, p, "terraform", "seconds")))):
        values = [pick(p) for p in phases]
        failed = [v is None and tool_failed(rows, n, p, label) for p, v in zip(phases, values)]
        values = [v if v is not None or not bad else _median(rows, n, p, _TOOL.get(label), "seconds", failed=True)
                  for p, v, bad in zip(phases, values, failed)]
        xs = [i + (k - 1) * width for i in range(len(phases))]
        for x, v, bad in zip(xs, values, failed):
            if v is None:
                continue
            ax.bar([x], [v], width, color=color, hatch="//" if bad else None, alpha=0.5 if bad else 1.0,
                   label=label if label not in ax.get_legend_handles_labels()[1] else None)
            ax.annotate(f"{v:,.1f}" + (" (failed)" if bad else ""), (x, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(phases)))
    ax.set_xticklabels(phases)
    ax.set_yscale("log")
    ax.set_ylabel("seconds (log)")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.set_title(f"Through AWS's published quotas (bench/quotaproxy.py), N = {n:,}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


_TOOL = {"ecs-secrets": "ecs-secrets", "Terraform": "terraform"}


def tool_failed(rows: list[dict[str, Any]], n: int, phase: str, label: str) -> bool:
    tool = _TOOL.get(label)
    return tool is not None and any(r.get("quota") and r["n"] == n and r["phase"] == phase and r["tool"] == tool
                                    and not r.get("ok", True) for r in rows)


def _median(rows: list[dict[str, Any]], n: int, phase: str, tool: str | None, field: str,
            failed: bool = False) -> float | None:
    """The median over the quota runs; ``failed``: of the failed runs instead (a lower bound, marked)."""
    import statistics
    values = [r[field] for r in rows if r.get("quota") and r["n"] == n and r["phase"] == phase
              and (tool is None or r["tool"] == tool) and r.get(field) is not None
              and (tool is None or r.get("ok", True) != failed)]
    return statistics.median(values) if values else None
