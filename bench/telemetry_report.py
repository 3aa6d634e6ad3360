"""The report of ``bench/telemetry_cost.py``: the table of runs with each one's ratio to A in its round, the
verdict against the 5% budget, and where a py-spy profile spent its samples in telemetry code."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from vu_report import collapsed_stacks

__all__ = ["BUDGET", "print_profile", "print_table", "summarize_telemetry"]

Result = dict[str, Any]

BUDGET = 1.05
"""Issue 24, item 8: server CPU per answer with telemetry at most 5% above the build without it."""

TELEMETRY_MODULES = ("citadel/tracing/", "citadel/metrics/", "citadel/logs.py", "citadel/http/access_log.py")
"""The project's own telemetry code."""
TELEMETRY_LIBRARIES = {
    "OpenTelemetry": ("opentelemetry/",),
    "prometheus_client": ("prometheus_client/",),
    "logging": ("logging/",),
}
"""Libraries the telemetry code calls, by their files' paths."""
OPENTELEMETRY_SHORT = ("trace/", "context/", "_decorator.py", "_shared_internal/", "id_generator.py", "attributes/")
"""OpenTelemetry's files as py-spy names them without ``--full-filenames`` (site-packages and ``opentelemetry/``
cut off): the profiles of this benchmark are taken with full names, these read older ones."""


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(runs: list[Result], labels: dict[str, str]) -> Result:
    """Print the runs as a Markdown table, then each configuration's median ratio to A and the verdict; return
    the medians."""
    baseline = {run["run"]: run["cpu_ms_per_answer"] for run in runs if run["configuration"] == "A"}
    ratios: dict[str, list[float]] = {}
    print(
        "| configuration | round | requests/s | average latency | p99 | server cores | other work's cores "
        "| server CPU per answer | ratio to A |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        key, latency = run["configuration"], run["latency_ms"]
        ratio = run["cpu_ms_per_answer"] / baseline[run["run"]] if run["run"] in baseline else None
        if ratio is not None and key != "A":
            ratios.setdefault(key, []).append(ratio)
        print(
            f"| {key}: {labels[key]} | {run['run']} | {run['requests_per_second']:,.0f} "
            f"| {latency['mean']:.1f} ms | {latency['p99']:.0f} ms | {run['server_cores']:.2f} "
            f"| {_cores(run.get('other_cores'))} | {run['cpu_ms_per_answer']:.3f} ms "
            f"| {'' if ratio is None or key == 'A' else f'{ratio:.3f}'} |"
        )
    medians = {key: statistics.median(values) for key, values in ratios.items()}
    print()
    for key, median in medians.items():
        each = ", ".join(f"{r:.3f}" for r in ratios[key])
        verdict = "within" if median <= BUDGET else "NOT within"
        print(f"{key}/A: median {median:.3f} (rounds: {each}): {verdict} 5% of A")
    return {"ratios": ratios, "medians": medians, "budget": BUDGET}


def _frame(frame: str) -> tuple[str, str]:
    """``function (path/to/module.py:123)`` → (``function (to/module.py)``, the path)."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    return f"{name} ({'/'.join(path.split('/')[-2:])})", path


def _project(path: str) -> bool:
    return "citadel/" in path or "examples/" in path


def _library(path: str) -> str | None:
    """Which telemetry library the file ``path`` belongs to, if any."""
    for library, markers in TELEMETRY_LIBRARIES.items():
        if any(marker in path for marker in markers):
            return library
    return "OpenTelemetry" if path.startswith(OPENTELEMETRY_SHORT) else None


def _attribute(frames: list[tuple[str, str]]) -> tuple[str, str] | None:
    """Whether a sample ran telemetry: walking up from the leaf to the first frame of the project's code, either
    that frame is telemetry code, or a telemetry library was on the way (the project called it). Returns the
    group and the entry (the project's frame and what it called), None for other code."""
    libraries: list[str] = []
    for i in range(len(frames) - 1, -1, -1):
        name, path = frames[i]
        if _project(path):
            callee = frames[i + 1][0] if i + 1 < len(frames) else "(itself)"
            if any(module in path for module in TELEMETRY_MODULES):
                return "/".join(path.split("/")[-2:]), f"{name} -> {callee}"
            if libraries:
                return libraries[-1], f"{name} -> {callee}"
            return None
        if found := _library(path):
            libraries.append(found)
    return None


def summarize_telemetry(path: Path, top: int = 12) -> Result:
    """Read py-spy's raw (collapsed) output; return the share of samples that ran telemetry code (see
    ``_attribute``) by group (a telemetry module of the project, or the library it called) and by entry."""
    groups: Counter[str] = Counter()
    entries: Counter[str] = Counter()
    total = 0
    for stack, count in collapsed_stacks(path):
        total += count
        found = _attribute([_frame(f) for f in stack])
        if found is not None:
            groups[found[0]] += count
            groups["all telemetry"] += count
            entries[found[1]] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 2)) for name, n in counter.most_common(top)] if total else []

    return {"samples": total, "groups": share(groups), "entries": share(entries)}


def print_profile(summary: Result, key: str) -> None:
    """Print ``summarize_telemetry``'s result for a run of configuration ``key``."""
    print(f"\nprofile of {key}: {summary['samples']:,} samples of the busiest worker (percent of them)")
    for title, name in (("telemetry, by module or library", "groups"), ("where the project enters it", "entries")):
        print(f"  {title}:")
        for frame, percent in summary[name]:
            print(f"    {percent:6.2f}%  {frame}")
