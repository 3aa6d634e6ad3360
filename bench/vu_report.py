"""The report of the virtual-user benchmark (imported by ``bench/vu.py``): the table in the seed's shape, the
chart, and a summary of a py-spy profile."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["chart", "collapsed_stacks", "print_table", "summarize_profile"]

Result = dict[str, Any]

SEED = {
    "average response latency": ("280 ms", "34 ms"),
    "memory footprint per node": ("1.2 GB", "410 MB"),
    "database write throughput": ("450 writes/s", "3,200 writes/s"),
}
"""The seed's table: baseline and optimized, as the issue quotes them."""


def _ms(microseconds: float | None) -> str:
    if microseconds is None:
        return "-"
    return f"{microseconds / 1000:,.1f} ms" if microseconds < 100_000 else f"{microseconds / 1000:,.0f} ms"


def _mb(kilobytes: int) -> str:
    return f"{kilobytes / 1024:,.0f} MB"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def rows_of(scenario: Result) -> dict[str, str]:
    """The table's cells of one scenario, by metric."""
    run = scenario["measured"]
    latency = run["latency_us"]
    errors = run["errors"]
    seconds = run["duration_us"] / 1e6
    statuses = run["statuses"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    return {
        "average response latency": _ms(latency["mean"]),
        "memory footprint per node": f"{_mb(scenario['rss']['peak_kb'])} peak RSS",
        "database write throughput": f"{scenario['events']['per_second']:,.0f} events/s",
        "requests/s served (all answers)": _count(run["requests"] / seconds),
        "  of which 2xx/s": _count(statuses.get("2xx", 0) / seconds),
        "commands/s answered 2xx": _count(scenario["commands_ok_per_second"]),
        **_by_operation(run),
        "latency p50": _ms(latency["p50"]),
        "latency p99": _ms(latency["p99"]),
        "latency p99.9": _ms(latency["p999"]),
        "latency max": _ms(latency["max"]),
        "socket errors connect/read/write/timeout": (
            f"{errors['connect']}/{errors['read']}/{errors['write']}/{errors['timeout']}"
            + (" (!)" if socket_errors else "")
        ),
        "non-2xx: 4xx / 5xx": f"{statuses.get('4xx', 0):,} / {statuses.get('5xx', 0):,}",
        "server processes (peak RSS each)": ", ".join(_mb(kb) for kb in scenario["rss"]["peak_by_process_kb"]),
        "peak PSS, all server processes": _mb(scenario["rss"]["peak_pss_kb"]),
        "sockets held by the server (peak)": _count(scenario["rss"]["peak_sockets"]),
        "CPU cores used: server / load generator": (
            f"{scenario['server_cpu_seconds'] / seconds:.2f} / {run['generator_cpu_seconds'] / seconds:.2f}"
        ),
        "CPU cores by server process": ", ".join(
            f"{cpu / seconds:.2f}" for cpu in scenario.get("server_cpu_seconds_by_process", [])
        ),
        "server CPU per answer": f"{1000 * scenario['server_cpu_seconds'] / max(1, run['requests']):.2f} ms",
        "events written in the window": _count(scenario["events"]["written"]),
        "consumers' lag at the end (events)": f"{scenario['events'].get('consumers_behind', 0):,}",
    }


QUERIES = ("order", "invoice", "item", "access", "pay_exhausted")
COMMANDS = ("register", "create", "pay")


def _by_operation(run: Result) -> dict[str, str]:
    """Average latency of queries and of commands, and each operation's p99 (vuload reports them; wrk not)."""
    by_op = run.get("latency_by_op_us")
    if not by_op:
        return {"average latency: queries / commands": "", "p99 by operation (ms)": ""}

    def mean(ops: tuple[str, ...]) -> str:
        answers = sum(by_op[o]["answers"] for o in ops if o in by_op)
        total = sum(by_op[o]["answers"] * by_op[o]["mean"] for o in ops if o in by_op)
        return _ms(total / answers) if answers else "-"

    p99 = ", ".join(f"{o} {by_op[o]['p99'] / 1000:,.0f}" for o in (*QUERIES, *COMMANDS) if o in by_op)
    return {"average latency: queries / commands": f"{mean(QUERIES)} / {mean(COMMANDS)}", "p99 by operation (ms)": p99}


def print_table(scenarios: list[Result]) -> str:
    """Print the side-by-side table (Markdown); return it."""
    headers = ["metric", "seed baseline", "seed optimized", *(s["label"] for s in scenarios)]
    cells = [rows_of(s) for s in scenarios]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for metric in cells[0]:
        seed = SEED.get(metric, ("", ""))
        lines.append("| " + " | ".join([metric, *seed, *(c[metric] for c in cells)]) + " |")
    table = "\n".join(lines)
    print(table)
    return table


def _per_second(run: Result) -> tuple[list[int], list[int]]:
    """Responses per second of a load run, as seconds since its first full second and counts; the first and
    last (partial) seconds are left out."""
    counts = sorted((int(k), int(v)) for k, v in run["per_second"].items())[1:-1]
    if not counts:
        return [], []
    start = counts[0][0]
    return [t - start for t, _ in counts], [c for _, c in counts]


def chart(scenarios: list[Result], path: Path) -> None:
    """Write a PNG: latency percentiles per scenario (bars), and responses per second over the window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (bars, lines) = plt.subplots(1, 2, figsize=(13, 4.8))
    names = [("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")]
    width = 0.8 / len(scenarios)
    for i, scenario in enumerate(scenarios):
        latency = scenario["measured"]["latency_us"]
        values = [latency[key] / 1000 for key, _ in names]
        positions = [x + i * width for x in range(len(names))]
        drawn = bars.bar(positions, values, width, label=scenario["label"])
        bars.bar_label(drawn, labels=[f"{v:,.0f}" if v >= 10 else f"{v:.1f}" for v in values], fontsize=8)
        seconds, counts = _per_second(scenario["measured"])
        lines.plot(seconds, counts, label=scenario["label"])
    bars.set_xticks([x + width * (len(scenarios) - 1) / 2 for x in range(len(names))], [n for _, n in names])
    bars.set_yscale("log")
    bars.set_ylabel("latency (ms, log scale)")
    bars.axhline(34, color="grey", linestyle="--", linewidth=0.8, label="seed optimized: 34 ms average")
    bars.set_title("Latency percentiles (measured window)")
    highest = max(s["measured"]["latency_us"][key] / 1000 for s in scenarios for key, _ in names)
    bars.set_ylim(top=max(highest, 34) * 30)  # room above the tallest bar for the legend (log scale)
    bars.legend(fontsize=8, loc="upper left")
    offered = scenarios[0].get("offered_per_second")
    if offered:
        lines.axhline(offered, color="grey", linestyle="--", linewidth=0.8, label=f"offered: ~{offered:,.0f}/s")
    lines.set_xlabel("second of the measured window")
    lines.set_ylabel("responses per second")
    lines.set_ylim(bottom=0)
    lines.set_title("Throughput over time")
    lines.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _frame_name(frame: str) -> str:
    """``function (path/to/module.py:123)`` → ``function (module.py)``: lines merged, paths shortened."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    short = "/".join(file.split("/")[-2:]) if "/citadel/" in file or "/examples/" in file else file.split("/")[-1]
    return f"{name} ({short})" if where else name


_ROOTS = {"Handle._run": "event loop", "Thread.run": "other threads"}
"""Frames under which the interesting part of a stack starts (the frames above are the same in every sample)."""


def _trim(frames: list[str]) -> tuple[list[str], str]:
    """Cut a stack below its last root frame; return the rest and which kind of thread it ran on."""
    for i in range(len(frames) - 1, -1, -1):
        kind = _ROOTS.get(frames[i].split(" (", 1)[0])
        if kind:
            return frames[i + 1 :], kind
    return frames, "loop machinery, other"


def collapsed_stacks(path: Path) -> Iterator[tuple[list[str], int]]:
    """The stacks of py-spy's raw (collapsed) output, each as its frames (outermost first) and its sample count."""
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if count_text.isdigit():
            yield (stack.split(";") if stack else []), int(count_text)


def summarize_profile(path: Path, top: int = 20) -> dict[str, Any]:
    """Read py-spy's raw (collapsed) output: where samples ran (event loop or other threads), and the frames
    with most inclusive and own samples (stacks cut below the event loop's ``Handle._run`` or ``Thread.run``)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    total = 0
    for stack, count in collapsed_stacks(path):
        if stack:
            frames, kind = _trim([_frame_name(f) for f in stack])
        else:  # a thread with no Python frame: granian's runtime threads calling Python's C API
            frames, kind = [], "no Python frame (native threads)"
        total += count
        kinds[kind] += count
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(frame, round(100 * n / total, 1)) for frame, n in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "threads_percent": share(kinds),
        "inclusive_percent": share(inclusive),
        "own_percent": share(own),
    }


def print_profile(summary: dict[str, Any]) -> None:
    """Print a profile summary from ``summarize_profile``."""
    print(f"\nprofile: {summary['samples']:,} samples of one worker")
    for title, key in (("thread", "threads_percent"), ("inclusive", "inclusive_percent"), ("own", "own_percent")):
        print(f"  samples by {title}:" if key == "threads_percent" else f"  top frames by {title} time:")
        for frame, percent in summary[key]:
            print(f"    {percent:5.1f}%  {frame}")
