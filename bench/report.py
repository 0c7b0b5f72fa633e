"""Medians of benchmark runs as a Markdown table, and the chart (``python -m bench.report FILES...``)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

PHASES = ("cold", "noop", "update", "noop2")
TOOLS = ("ecs-secrets", "terraform")
Row = dict[str, Any]


def load(files: list[Path]) -> list[Row]:
    rows = []
    for f in files:
        rows += [{**json.loads(line), "file": str(f)}
                 for line in Path(f).read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def medians(rows: list[Row]) -> dict[tuple[str, int, str], Row]:
    """(tool, n, phase) → the median of its repeats: seconds, RSS and calls; how many runs; all ok."""
    groups: dict[tuple[str, int, str], list[Row]] = defaultdict(list)
    for r in rows:
        groups[(r["tool"], r["n"], r["phase"])].append(r)
    out = {}
    for key, every in groups.items():
        rs = [r for r in every if r.get("ok", r.get("rc") == 0)] or every   # a failed run's time says little
        med: Row = {"runs": len(rs), "failed": len(every) - len(rs) if rs is not every else len(every),
                    "ok": rs is not every or not every, "limits": sorted({r.get("limits", "?") for r in rs})}
        for field in ("seconds", "peak_rss_mb", "total", "model", "model_aws", "ratio_model", "cpu_seconds",
                      "server_seconds", "load"):
            values = [r[field] for r in rs if r.get(field) is not None]
            if values:
                med[field] = statistics.median_low(values) if field in ("total", "model") else statistics.median(values)
        calls: dict[str, list[int]] = defaultdict(list)
        for r in rs:
            for k, v in r.get("calls", {}).items():
                calls[k].append(v)
        med["calls"] = {k: statistics.median(v) for k, v in sorted(calls.items())}
        out[key] = med
    return out


def paired_time_ratios(rows: list[Row]) -> dict[tuple[int, str], float]:
    """(n, phase) → the median over repeats of ours/Terraform wall time, each pair from the same run."""
    seconds: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r.get("ok", r.get("rc") == 0) and r["tool"] in TOOLS:
            seconds[(r["file"], r.get("repeat"), r["n"], r["phase"])][r["tool"]] = r["seconds"]
    ratios: dict[tuple[int, str], list[float]] = defaultdict(list)
    for (_, _, n, phase), pair in seconds.items():
        if len(pair) == 2:
            ratios[(n, phase)].append(pair["ecs-secrets"] / pair["terraform"])
    return {k: statistics.median(v) for k, v in ratios.items()}


def pairs(rows: list[Row], n: int) -> str:
    """Every same-run pair at N: seconds of each tool, their ratio, and the machine's load average then."""
    lines = ["| run | repeat | phase | ecs-secrets s | its CPU s | moto busy s | Terraform s | ours/TF | load (1 min) |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    keyed: dict[tuple, dict[str, Row]] = defaultdict(dict)
    for r in rows:
        if r["n"] == n and r["phase"] in PHASES:
            keyed[(Path(r["file"]).stem, r.get("repeat"), PHASES.index(r["phase"]))][r["tool"]] = r
    for (run, rep, i), pair in sorted(keyed.items()):
        o, t = pair.get("ecs-secrets", {}), pair.get("terraform", {})
        ok = t.get("ok", False) and o.get("ok", False)
        lines.append(f"| {run} | {rep} | {PHASES[i]} | {_fmt(o.get('seconds'), 2)} | {_fmt(o.get('cpu_seconds'), 2)} | "
                     f"{_fmt(o.get('server_seconds'), 2)} | {_fmt(t.get('seconds'), 1)}{'' if ok or not t else ' (failed)'} | "
                     f"{_ratio(o.get('seconds'), t.get('seconds')) if ok else '—'} | {_fmt(o.get('load'), 1)} |")
    return "\n".join(lines)


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.{digits}f}"
    return f"{int(v):,}"


def table(rows: list[Row]) -> str:
    med, paired = medians(rows), paired_time_ratios(rows)
    ns = sorted({n for _, n, _ in med})
    lines = ["| N | phase | ecs-secrets calls | model (moto / AWS paging) | ours/model | Terraform calls | "
             "ours/TF calls | ecs-secrets s | Terraform s | ours/TF time (paired) | ecs-secrets RSS MB | Terraform RSS MB | runs |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in ns:
        for phase in PHASES:
            o, t = med.get(("ecs-secrets", n, phase)), med.get(("terraform", n, phase))
            if o is None and t is None:
                continue
            o, t = o or {}, t or {}
            lines.append("| " + " | ".join([
                f"{n:,}", phase + _failed(o, "ecs-secrets") + _failed(t, "Terraform"),
                _fmt(o.get("total")), f"{_fmt(o.get('model') or t.get('model'))} / "
                f"{_fmt(o.get('model_aws') or t.get('model_aws'))}", _ratio(o.get("total"), o.get("model")),
                _fmt(t.get("total")), _ratio(o.get("total"), t.get("total")),
                _fmt(o.get("seconds"), 2), _fmt(t.get("seconds"), 1), _ratio(paired.get((n, phase)), 1.0),
                _fmt(o.get("peak_rss_mb")), _fmt(t.get("peak_rss_mb")),
                f"{_runs(o)}/{_runs(t)}"]) + " |")
    return "\n".join(lines)


def _failed(m: Row, tool: str) -> str:
    return "" if m.get("ok", True) else f" ({tool} failed)"


def _runs(m: Row) -> str:
    return f"{m.get('runs', 0)}" + (f" (+{m['failed']} failed)" if m.get("failed") else "")


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if not a or not b else f"{a / b:.3f}"


QUOTA_PHASES = ("cold", "noop", "update", "noop2")
POLL_INTERVAL = 60.0      # the daemon's default --interval
RESYNC_INTERVAL = 3600.0  # the events daemon's default --resync-interval


def quota_table(rows: list[Row]) -> str:
    """The runs made through the quota proxy: each tool's time against the quota-bound minimum."""
    rows = [r for r in rows if r.get("quota")]
    med = medians(rows)
    bounds = {(r["n"], r["phase"]): (r["quota_bound"], r.get("quota_bucket", "")) for r in rows}
    throttled: dict[tuple[str, int, str], list[int]] = defaultdict(list)
    for r in rows:
        throttled[(r["tool"], r["n"], r["phase"])].append(r.get("throttled_total", 0))
    lines = ["| N | phase | quota-bound minimum s (bucket) | ecs-secrets s | × bound | calls | refused | "
             "Terraform s | × bound | calls | refused | runs |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in sorted({n for _, n, _ in med}):
        for phase in QUOTA_PHASES:
            if (n, phase) not in bounds:
                continue
            least, bucket = bounds[(n, phase)]
            o, t = med.get(("ecs-secrets", n, phase), {}), med.get(("terraform", n, phase), {})
            cells = [f"{n:,}", phase + _failed(o, "ecs-secrets") + _failed(t, "Terraform"),
                     f"{least:,.1f} ({bucket or 'none'})"]
            for tool, m in (("ecs-secrets", o), ("terraform", t)):
                refused = throttled.get((tool, n, phase))
                cells += [_fmt(m.get("seconds"), 2), _ratio(m.get("seconds"), least), _fmt(m.get("total")),
                          _fmt(statistics.median_low(refused)) if refused else "—"]
            cells.append(f"{_runs(o)}/{_runs(t)}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + daemon_table(rows)


def daemon_table(rows: list[Row]) -> str:
    """The idle daemon's SSM/IAM/ECS/STS calls an hour: polling from the measured pass (``run --once`` with
    nothing to change) times passes an hour; events from the model: one resync pass an hour, nothing else."""
    med = medians([r for r in rows if r.get("phase") == "daemon-pass"])
    lines = ["| N | calls a pass (measured) | pass s | polling, every 60 s: calls/h | "
             "events, resync 1 h: calls/h (model) | events/polling |", "|---:|---:|---:|---:|---:|---:|"]
    for (_, n, _), m in sorted(med.items(), key=lambda kv: kv[0][1]):
        per_pass = m.get("total", 0)
        polling = per_pass * 3600 / POLL_INTERVAL
        events = per_pass * 3600 / RESYNC_INTERVAL
        lines.append(f"| {n:,} | {_fmt(per_pass)} | {_fmt(m.get('seconds'), 2)} | {_fmt(polling)} | "
                     f"{_fmt(events)} | {_ratio(events, polling)} |")
    return "\n".join(lines)


def calls_by_action(rows: list[Row], n: int, phase: str) -> str:
    med = medians(rows)
    lines = ["| action | ecs-secrets | Terraform |", "|---|---:|---:|"]
    o = med.get(("ecs-secrets", n, phase), {}).get("calls", {})
    t = med.get(("terraform", n, phase), {}).get("calls", {})
    for action in sorted(set(o) | set(t)):
        lines.append(f"| {action} | {_fmt(o.get(action))} | {_fmt(t.get(action))} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--chart", type=Path, help="write the PNG chart here (needs matplotlib: pip install -e .[bench])")
    p.add_argument("--actions", type=int, metavar="N", help="also print calls by action at this N")
    p.add_argument("--pairs", type=int, metavar="N", help="also print every same-run pair at this N")
    p.add_argument("--quota", action="store_true", help="the runs made through the quota proxy (bench.run --quota)")
    args = p.parse_args(argv)
    rows = load(args.files)
    if args.quota:
        print(quota_table(rows))
        if args.chart:
            from bench.chart import draw_quota
            for n in sorted({r["n"] for r in rows if r.get("quota")}):
                out = args.chart.with_name(f"{args.chart.stem}-{n}{args.chart.suffix}")
                draw_quota(rows, out, n)
                print(f"\nchart: {out}")
        return 0
    rows = [r for r in rows if not r.get("quota")]   # the quota runs have their own table (--quota)
    print(table(rows))
    if args.actions:
        for phase in PHASES:
            print(f"\n{phase}, N={args.actions:,}\n\n{calls_by_action(rows, args.actions, phase)}")
    if args.pairs:
        print(f"\nPairs, N={args.pairs:,}\n\n{pairs(rows, args.pairs)}")
    if args.chart:
        from bench.chart import draw
        draw(medians(rows), args.chart)
        print(f"\nchart: {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
