"""Figures from raw samples: percentiles, ratios, the markdown report, the chart, the verdict."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

from .measure import LONG_OPS, OP_LABELS, OPS, RETRIEVAL_OPS

#: The seed requirement: retrieval p99 of ours under this many milliseconds.
RETRIEVAL_P99_LIMIT_MS = 50.0

SLOTS = ("ours-sync", "ours-async", "official-sync", "official-async")


def percentile(values: list[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of a non-empty list."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * p / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summarize(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": sum(values) / len(values),
        "min": min(values),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def _ms(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _ratio(v: float | None) -> str:
    if v is None:
        return "-"
    mark = " ⚠" if v > 1.10 else ""
    return f"{v:.2f}{mark}"


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.1f}"


# -- the verdict -----------------------------------------------------------------------------


def verdict(results: dict[str, Any]) -> tuple[bool, str, list[str]]:
    """Retrieval (get latest, get by id) p99 of ours below the limit on every engine,
    flavour and scale. Returns (passed, line, failures)."""
    failures = []
    worst = 0.0
    for scale, engines in results["scales"].items():
        for engine, data in engines.items():
            for op in RETRIEVAL_OPS:
                for slot in ("ours-sync", "ours-async"):
                    stats = data["ops"][op].get(slot)
                    if not stats or not stats.get("n"):
                        failures.append(f"{engine} {slot} {op} at {scale}: no samples")
                        continue
                    worst = max(worst, stats["p99"])
                    if stats["p99"] >= RETRIEVAL_P99_LIMIT_MS:
                        failures.append(
                            f"{engine} {slot} {op} at {int(scale):,}: p99 {stats['p99']:.2f} ms"
                        )
    limit = f"{RETRIEVAL_P99_LIMIT_MS:g} ms"
    if failures:
        return False, f"retrieval p99 < {limit}: FAIL ({'; '.join(failures)})", failures
    return True, f"retrieval p99 < {limit}: PASS (worst {worst:.2f} ms)", failures


# -- markdown --------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    cfg = results["config"]
    wl = results["workload"]
    lines = [
        "# langgraph-store-dual benchmark",
        "",
        f"Run {results['started']} ({results['duration_s']:.0f} s, "
        f"{'quick' if cfg['quick'] else 'full'}). Machine: {m['cpu_model']}, {m['cores']} cores, "
        f"{m['ram_gib']:.1f} GiB RAM, load average {m['loadavg_start']} at start, "
        f"{m.get('loadavg_end', '?')} at end; Python {m['python']}, SQLite {m['sqlite']}, "
        f"PostgreSQL {m.get('postgresql', '-')}.",
        "",
        f"Workload: the agent graph of `examples/agent.py` recorded once per saver family; "
        f"each preloaded thread is a {wl['thread_turns']}-turn conversation "
        f"({wl['steps_per_thread']} checkpoints); the long chat is one thread of "
        f"{wl['long_chat_turns']} turns ({wl['long_chat_steps']} checkpoints). "
        f"{cfg['rounds']} sample rounds per scale ({cfg['heavy_samples']} for history walks and "
        f"graph turns), contenders interleaved within each round. Latencies in milliseconds; "
        f"**ratio = ours / official** (below 1: ours faster or smaller; ⚠ marks > 1.10).",
        "",
        f"**{results['verdict']['line']}**",
        "",
    ]
    if results.get("official_missing"):
        lines += [f"Official savers not measured: {results['official_missing']}", ""]
    scales = sorted(results["scales"], key=int)
    for scale in scales:
        for engine, data in results["scales"][scale].items():
            lines += [f"## {engine}, {int(scale):,} checkpoints", ""]
            lines += _op_table(data["ops"], OPS)
            lines += [""]
    lines += ["## Bytes per checkpoint", ""]
    lines += [
        "| engine | checkpoints | ours B/ckpt | official B/ckpt | ratio "
        "| ours MiB | official MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for scale in scales:
        for engine, data in results["scales"][scale].items():
            o, f = data["stores"].get("ours", {}), data["stores"].get("official", {})
            lines.append(
                f"| {engine} | {o.get('checkpoints', 0):,} | {_bpc(o)} | {_bpc(f)} | "
                f"{_ratio(ratio(o.get('bytes_per_checkpoint'), f.get('bytes_per_checkpoint')))} | "
                f"{_mib(o.get('bytes'))} | {_mib(f.get('bytes'))} |"
            )
    lines += [""]
    if results.get("long_chat"):
        lines += _long_chat(results)
    if len(scales) > 1:
        lines += _growth(results, scales)
    lines += _preload(results)
    lines += [
        "## Notes",
        "",
        "- Each contender has its own database per scale; the sync and async savers of one "
        "implementation share it. Databases were preloaded through `put`/`put_writes` with "
        "relaxed durability (SQLite `synchronous=OFF`, PostgreSQL `synchronous_commit=off`), "
        "then settled (SQLite `wal_checkpoint(TRUNCATE)`, PostgreSQL `VACUUM ANALYZE`); "
        "measurements use each saver's own defaults (`from_url` for ours, `from_conn_string` "
        "for the official savers: SQLite's default `synchronous=FULL` there, ours sets "
        "`NORMAL`; a pool for ours on PostgreSQL, a single connection for the official one).",
        "- Bytes: SQLite file plus WAL after a TRUNCATE checkpoint; PostgreSQL "
        "`pg_total_relation_size` of the saver's tables; divided by the checkpoint count, "
        "measured right after preloading.",
        "- Writes go to scratch threads deleted after the run (see `benchmarks/measure.py`).",
        "",
    ]
    return "\n".join(lines)


def _bpc(store: dict[str, Any]) -> str:
    v = store.get("bytes_per_checkpoint")
    return "-" if v is None else f"{v:,.0f}"


def _op_table(ops: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    lines = [
        "| operation | flavour | ours p50 | ours p95 | ours p99 | official p50 | official p95 "
        "| official p99 | ratio p50 | ratio p99 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for op in names:
        for flavour in ("sync", "async"):
            o = ops.get(op, {}).get(f"ours-{flavour}") or {}
            f = ops.get(op, {}).get(f"official-{flavour}") or {}
            lines.append(
                f"| {OP_LABELS[op]} | {flavour} | {_ms(o.get('p50'))} | {_ms(o.get('p95'))} | "
                f"{_ms(o.get('p99'))} | {_ms(f.get('p50'))} | {_ms(f.get('p95'))} | "
                f"{_ms(f.get('p99'))} | {_ratio(ratio(o.get('p50'), f.get('p50')))} | "
                f"{_ratio(ratio(o.get('p99'), f.get('p99')))} |"
            )
    return lines


def _long_chat(results: dict[str, Any]) -> list[str]:
    wl = results["workload"]
    lines = [
        f"## Long chat: one thread of {wl['long_chat_turns']} turns "
        f"({wl['long_chat_steps']} checkpoints)",
        "",
        "| engine | ours MiB | official MiB | size ratio | ours B/ckpt | official B/ckpt |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for engine, data in results["long_chat"].items():
        o, f = data["stores"].get("ours", {}), data["stores"].get("official", {})
        lines.append(
            f"| {engine} | {_mib(o.get('bytes'))} | {_mib(f.get('bytes'))} | "
            f"{_ratio(ratio(o.get('bytes'), f.get('bytes')))} | {_bpc(o)} | {_bpc(f)} |"
        )
    lines += [""]
    for engine, data in results["long_chat"].items():
        lines += [f"### {engine}: long chat reads", ""]
        lines += [
            "| operation | flavour | ours p50 | ours max | official p50 | official max "
            "| ratio p50 | n |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for op in LONG_OPS:
            for flavour in ("sync", "async"):
                o = data["ops"].get(op, {}).get(f"ours-{flavour}") or {}
                f = data["ops"].get(op, {}).get(f"official-{flavour}") or {}
                lines.append(
                    f"| {OP_LABELS[op]} | {flavour} | {_ms(o.get('p50'))} | {_ms(o.get('max'))} "
                    f"| {_ms(f.get('p50'))} | {_ms(f.get('max'))} | "
                    f"{_ratio(ratio(o.get('p50'), f.get('p50')))} | {o.get('n', 0)} |"
                )
        lines += [""]
    return lines


def _growth(results: dict[str, Any], scales: list[str]) -> list[str]:
    lines = ["## Growth: p99 (ms) as the database grows", ""]
    engines = list(results["scales"][scales[0]])
    head = " | ".join(f"{int(s):,}" for s in scales)
    steps = " | ".join(f"x{int(b) // int(a)}" for a, b in itertools.pairwise(scales))
    for engine in engines:
        lines += [
            f"### {engine}",
            "",
            f"| operation | contender | {head} | {steps} |",
            "|---|---|" + "---:|" * (len(scales) * 2 - 1),
        ]
        for op in OPS:
            for slot in SLOTS:
                vals = [
                    results["scales"][s].get(engine, {}).get("ops", {}).get(op, {}).get(slot)
                    for s in scales
                ]
                if not any(vals):
                    continue
                p99 = [v.get("p99") if v else None for v in vals]
                growth = [ratio(b, a) for a, b in itertools.pairwise(p99)]
                lines.append(
                    f"| {OP_LABELS[op]} | {slot} | "
                    + " | ".join(_ms(v) for v in p99)
                    + " | "
                    + " | ".join("-" if g is None else f"{g:.2f}" for g in growth)
                    + " |"
                )
        lines += [""]
        lines += [
            f"| bytes/checkpoint | contender | {head} |",
            "|---|---|" + "---:|" * len(scales),
        ]
        for impl in ("ours", "official"):
            vals = [
                results["scales"][s].get(engine, {}).get("stores", {}).get(impl, {}) for s in scales
            ]
            if any(vals):
                lines.append(f"| | {impl} | " + " | ".join(_bpc(v) for v in vals) + " |")
        lines += [""]
    return lines


def _preload(results: dict[str, Any]) -> list[str]:
    wall = results.get("preload_wall_seconds")
    lines = [
        "## Preloading",
        "",
        f"Through `put`/`put_writes` only, {results['config']['jobs']} worker processes sharing "
        "the machine (and the PostgreSQL server) with each other: a store's seconds run from "
        "its first chunk's start to its last chunk's end; process-seconds add up its chunks. "
        + (
            f"This run spent {wall:,.0f} s preloading or checking cached databases."
            if wall is not None
            else ""
        ),
        "",
        "| database | checkpoints | seconds | checkpoints/s | process-seconds | cached |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for key, meta in results.get("preload", {}).items():
        secs = meta.get("preload_seconds") or 0.0
        busy = meta.get("preload_busy_seconds")
        n = meta.get("checkpoints_loaded", 0)
        lines.append(
            f"| {key} | {n:,} | {secs:,.0f} | {n / max(secs, 1e-9):,.0f} | "
            f"{'-' if busy is None else f'{busy:,.0f}'} | "
            f"{'yes' if meta.get('cached') else 'no'} |"
        )
    lines += [""]
    return lines


# -- chart -----------------------------------------------------------------------------------


def chart(results: dict[str, Any], path: Path) -> None:
    """p99 of get-latest and get-by-id against database size (log x), per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    scales = sorted(results["scales"], key=int)
    present = {e for s in scales for e in results["scales"][s]}
    engines = [e for e in ("sqlite", "postgres") if e in present] or sorted(present)
    fig, axes = plt.subplots(
        1, max(1, len(engines)), figsize=(6 * max(1, len(engines)), 5), squeeze=False
    )
    styles = {"ours": "-", "official": "--"}
    markers = {"get_latest": "o", "get_by_id": "s"}
    colours = {
        "ours-sync": "tab:blue",
        "ours-async": "tab:cyan",
        "official-sync": "tab:red",
        "official-async": "tab:orange",
    }
    handles: dict[str, Any] = {}
    for ax, engine in zip(axes[0], engines, strict=False):
        for op in RETRIEVAL_OPS:
            for slot in SLOTS:
                xs, ys = [], []
                for s in scales:
                    stats = results["scales"][s].get(engine, {}).get("ops", {}).get(op, {})
                    v = stats.get(slot)
                    if v and v.get("n"):
                        xs.append(int(s))
                        ys.append(v["p99"])
                if xs:
                    label = f"{slot}: {OP_LABELS[op]}"
                    (line,) = ax.plot(
                        xs,
                        ys,
                        styles[slot.split("-")[0]],
                        marker=markers[op],
                        color=colours[slot],
                        label=label,
                    )
                    handles[label] = line
        ax.axhline(RETRIEVAL_P99_LIMIT_MS, color="grey", linewidth=1, linestyle=":")
        ax.annotate(
            f"{RETRIEVAL_P99_LIMIT_MS:g} ms requirement",
            xy=(0.02, 0.97),
            xycoords="axes fraction",
            color="grey",
            fontsize=8,
            va="top",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(top=RETRIEVAL_P99_LIMIT_MS * 1.6)
        if len(scales) == 1:
            ax.set_xlim(int(scales[0]) / 3, int(scales[0]) * 3)
        ax.set_title(f"{engine}: p99 of get latest (o) and get by id (s)")
        ax.set_xlabel("checkpoints in the database")
        ax.set_ylabel("p99 latency (ms, log)")
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="lower center",
        ncol=2 * max(1, len(engines)),
        fontsize=7,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.16 if len(engines) < 2 else 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
