"""Latency of the core operations on a preloaded database.

    python benchmarks/latency.py --url sqlite:///bench.db --checkpoints 10000
    python benchmarks/latency.py --url postgresql://postgres@127.0.0.1/bench --checkpoints 100000

Preloads the database with threads of a recorded agent conversation (10 turns, about
50 checkpoints a thread) up to the given number of checkpoints (skipped when already
there), then samples random threads and reports p50/p95/p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.workload import record, replay
from langgraph_store_dual import from_url


def pct(samples: list[float], p: float) -> float:
    return (
        statistics.quantiles(samples, n=100, method="inclusive")[p - 1] if p < 100 else max(samples)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--checkpoints", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=2_000)
    args = parser.parse_args()
    steps = record(10)
    per_thread = len(steps)
    threads = max(1, args.checkpoints // per_thread)
    with from_url(args.url) as saver:
        have = sum(1 for _ in saver.list({"configurable": {"thread_id": f"t{threads - 1}"}}))
        if have < per_thread:
            start = time.perf_counter()
            for i in range(threads):
                for _ in replay(saver, steps, f"t{i}"):
                    pass
                if i % 100 == 0:
                    done = (i + 1) * per_thread
                    print(f"\rpreloaded {done:,} checkpoints", end="", file=sys.stderr)
            print(
                f"\rpreloaded {threads * per_thread:,} checkpoints in "
                f"{time.perf_counter() - start:.0f} s",
                file=sys.stderr,
            )
        rng = random.Random(7)
        ids = {}
        timings: dict[str, list[float]] = {
            "get latest": [],
            "get by id": [],
            "list 10": [],
            "put": [],
        }
        for _ in range(args.samples):
            tid = f"t{rng.randrange(threads)}"
            conf = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
            t0 = time.perf_counter()
            latest = saver.get_tuple(conf)
            t1 = time.perf_counter()
            cid = ids.setdefault(tid, [c.config for c in saver.list(conf, limit=20)])
            pick = rng.choice(cid)
            t2 = time.perf_counter()
            saver.get_tuple(pick)
            t3 = time.perf_counter()
            list(saver.list(conf, limit=10))
            t4 = time.perf_counter()
            step = steps[-1]
            saver.put(
                latest.config,
                {**step.checkpoint, "id": _next_id()},
                step.metadata,
                step.new_versions,
            )
            t5 = time.perf_counter()
            for name, dt in zip(timings, (t1 - t0, t3 - t2, t4 - t3, t5 - t4), strict=True):
                timings[name].append(dt * 1000)
    print(f"{args.url.split(':')[0]}: {threads * per_thread:,} checkpoints, {args.samples} samples")
    print("| operation | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|")
    for name, samples in timings.items():
        print(
            f"| {name} | {pct(samples, 50):.3f} | {pct(samples, 95):.3f} | {pct(samples, 99):.3f} |"
        )


def _next_id() -> str:
    from langgraph.checkpoint.base.id import uuid6

    return str(uuid6(clock_seq=0))


if __name__ == "__main__":
    main()
