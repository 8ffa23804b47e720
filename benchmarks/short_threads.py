"""Short threads, side by side: the operations every graph turn makes, ours against the
official savers, on threads of a few turns (where most applications live).

    python -m benchmarks.short_threads                    # both engines, about a minute
    python -m benchmarks.short_threads --rounds 400 --engines sqlite

Per engine, each implementation gets a fresh database holding `--threads` threads of the
recorded agent (`--turns` turns each); then every round picks one thread and one older
checkpoint of it and runs get latest, get by id, put, put_writes and a graph turn (one
`invoke` of the agent on a thread of 10 to ~17 turns) on all four slots
(ours and official, sync and async), the order rotating from round to round, as the main
benchmark does (`measure.run_op`). Prints p50 and p99 (ms) per slot and the ratio
ours/official per flavour.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

from . import workload
from .contenders import DEFAULT_PG_URL, create, drop, make_store, next_version, open_sync
from .measure import EngineRun, Plan, _open_slots, _writes_template, cleanup, prepare, run_op
from .soak import p50_p99

OPS = ("get_latest", "get_by_id", "put", "put_writes", "graph_turn")
IMPLS = ["ours", "official"]


def _load(run: EngineRun) -> None:
    for impl, store in run.stores.items():
        create(store)
        with open_sync(store, preload=True) as saver:
            for number in range(run.threads):
                thread = workload.thread_id(number)
                for _ in workload.replay(saver, run.steps[impl], thread, number):
                    pass


async def sample(
    run: EngineRun, rounds: int, warmup: int, seed: int, cold: bool
) -> dict[str, dict]:
    rng = random.Random(seed)
    samples: dict[str, dict[str, list[float]]] = {op: {} for op in OPS}
    async with AsyncExitStack() as stack:
        slots = await _open_slots(stack, run, IMPLS)
        writes = {impl: _writes_template(run.steps[impl]) for impl in IMPLS}
        plan = Plan(rounds, 1, warmup, put_threads=4, long_samples=0)
        for i, slot in enumerate(slots):
            await prepare(slot, plan, i, warmup + rounds)
            for op in OPS:
                samples[op][slot.name] = []
        try:
            for r in range(warmup + rounds):
                number = rng.randrange(run.threads)
                ctx = {
                    "thread": workload.thread_id(number),
                    "old_id": workload.replayed_id(
                        run.steps[IMPLS[0]], number, rng.randrange(run.steps_per_thread - 1)
                    ),
                    "put_thread": r % 4,
                    "graph_thread": r,
                }
                order = slots[r % len(slots) :] + slots[: r % len(slots)]
                for op in OPS:
                    for slot in order:
                        ctx["writes"] = writes[slot.impl]
                        if cold and slot.impl == "ours":  # as a process that never read it
                            slot.saver.value_caches.__init__()
                        ms = await run_op(slot, op, ctx)
                        if r >= warmup:
                            samples[op][slot.name].append(ms)
        finally:
            for slot in slots:
                await cleanup(slot)
    return samples


def report(engine: str, samples: dict[str, dict[str, list[float]]]) -> None:
    print(f"\n{engine}: p50 / p99 ms, ratio ours/official")
    print(
        "| op | flavour | ours p50 | official p50 | ratio p50 "
        "| ours p99 | official p99 | ratio p99 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for op, by_slot in samples.items():
        for flavour in ("sync", "async"):
            ours, off = by_slot[f"ours-{flavour}"], by_slot[f"official-{flavour}"]
            (o50, o99), (f50, f99) = p50_p99(ours), p50_p99(off)
            print(
                f"| {op} | {flavour} | {o50:.3f} | {f50:.3f} | {o50 / f50:.2f} "
                f"| {o99:.3f} | {f99:.3f} | {o99 / f99:.2f} |"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.short_threads")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--turns", type=int, default=14)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cold", action="store_true", help="forget cached values each time")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="admin URL of the server")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for engine in args.engines.split(","):
            steps = {
                impl: workload.record(args.turns, next_version=next_version(impl, engine))
                for impl in IMPLS
            }
            stores = {impl: make_store(engine, impl, "short", out, args.pg_url) for impl in IMPLS}
            n = len(steps["ours"])
            run = EngineRun(engine, stores, steps, args.threads, n)
            try:
                _load(run)
                samples = sample(run, args.rounds, args.warmup, args.seed, args.cold)
                report(engine, asyncio.run(samples))
            finally:
                for store in stores.values():
                    drop(store)


if __name__ == "__main__":
    main()
