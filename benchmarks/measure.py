"""Latency sampling: every contender, interleaved.

Per engine there are four *slots*: ours and the official saver, each as its sync saver
driven through the sync API and its async saver driven through the async API. A sample
round picks one preloaded thread (and one old checkpoint of it) and runs each operation
on every slot in turn, the order rotating from round to round, so that noise from other
work on the machine falls on every contender alike.

Reads go to the preloaded threads. Writes (put, put_writes, graph turns) go to scratch
threads created for the run and deleted at its end, so cached databases keep their
preloaded content: `put`/`put_writes` extend a few fresh threads checkpoint by checkpoint
(put's parent is the previous put; put_writes writes an answer against it), a graph turn
invokes the compiled agent graph on a scratch thread that first received the recorded
10-turn conversation (each such thread takes a few turns, so it holds 10 to ~14 turns).
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.base.id import uuid6
from tqdm import tqdm

from . import workload
from .contenders import Store, open_async, open_sync

OPS = ("get_latest", "get_by_id", "list_10", "history_thread", "put", "put_writes", "graph_turn")
HEAVY_OPS = ("history_thread", "graph_turn")
RETRIEVAL_OPS = ("get_latest", "get_by_id")
LONG_OPS = ("long_get_latest", "long_history", "long_state_history")

OP_LABELS = {
    "get_latest": "get latest",
    "get_by_id": "get by id (old checkpoint)",
    "list_10": "list (limit 10)",
    "history_thread": "history walk (~50 checkpoints)",
    "put": "put",
    "put_writes": "put_writes",
    "graph_turn": "graph turn (invoke)",
    "long_get_latest": "long chat: get latest",
    "long_history": "long chat: history walk",
    "long_state_history": "long chat: get_state_history",
}


@dataclass
class Plan:
    rounds: int  # light operations are sampled every round
    heavy_every: int  # heavy operations every n-th round
    warmup: int  # rounds run first and discarded
    put_threads: int  # scratch threads taking puts, per slot
    long_samples: int  # long-chat samples per slot
    seed: int = 1

    @property
    def heavy_samples(self) -> int:
        return math.ceil(self.rounds / self.heavy_every)

    @property
    def graph_threads(self) -> int:
        return max(1, min(50, math.ceil(self.heavy_samples / 4)))


@dataclass
class Slot:
    engine: str
    impl: str
    flavour: str
    saver: Any
    steps: list[workload.Step]
    graph: Any = None
    put_state: list[dict[str, Any]] = field(default_factory=list)
    graph_thread_ids: list[str] = field(default_factory=list)
    turns: int = 0
    last_put: dict[int, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.impl}-{self.flavour}"

    @property
    def is_async(self) -> bool:
        return self.flavour == "async"


class CheckFailed(AssertionError):
    pass


def _check(ok: bool, slot: Slot, what: str) -> None:
    if not ok:
        raise CheckFailed(f"{slot.engine} {slot.name}: {what}")


def _conf(thread: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ""}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


# -- the operations --------------------------------------------------------------------


def _put_args(slot: Slot, k: int) -> tuple[dict[str, Any], dict, dict, dict]:
    """A new checkpoint for put thread k: the last recorded step (a 10-turn state) with a
    fresh id and fresh versions of the channels it updates, parented on the last put."""
    template = slot.steps[-1]
    state = slot.put_state[k]
    versions = state["versions"]
    new_versions = {}
    for channel in template.new_versions:
        versions[channel] = slot.saver.get_next_version(versions.get(channel), None)
        new_versions[channel] = versions[channel]
    checkpoint = {
        **template.checkpoint,
        "id": str(uuid6(clock_seq=template.metadata.get("step", 0))),
        "channel_versions": dict(versions),
    }
    metadata = {**template.metadata, "step": state["count"]}
    state["count"] += 1
    return _conf(state["thread"], state["parent"]), checkpoint, metadata, new_versions


def _writes_template(steps: list[workload.Step]) -> tuple[list[tuple[str, Any]], str]:
    """The final answer the agent node writes (an AI message of ~400 characters)."""
    for step in reversed(steps):
        for _task, writes, path in step.writes:
            if writes and writes[0][0] == "messages":
                return list(writes), path
    raise RuntimeError("the recording has no message write")


async def _timed_get(slot: Slot, conf: dict[str, Any]) -> tuple[int, Any, int]:
    """`get_tuple` through the slot's own API, between two clock readings (ns)."""
    clock = time.perf_counter_ns
    if slot.is_async:
        t0 = clock()
        got = await slot.saver.aget_tuple(conf)
        return t0, got, clock()
    t0 = clock()
    got = slot.saver.get_tuple(conf)
    return t0, got, clock()


async def run_op(slot: Slot, op: str, ctx: dict[str, Any]) -> float:
    """Run one operation on a slot; return its duration in milliseconds (checked after)."""
    saver = slot.saver
    clock = time.perf_counter_ns
    if op == "get_latest":
        conf = _conf(ctx["thread"])
        t0, got, t1 = await _timed_get(slot, conf)
        _check(got is not None, slot, "get latest found nothing")
    elif op == "get_by_id":
        conf = _conf(ctx["thread"], ctx["old_id"])
        t0, got, t1 = await _timed_get(slot, conf)
        _check(got is not None and got.checkpoint["id"] == ctx["old_id"], slot, "get by id")
    elif op in ("list_10", "history_thread", "long_history"):
        limit = 10 if op == "list_10" else None
        conf = _conf(ctx["long_thread"] if op == "long_history" else ctx["thread"])
        n = 0
        if slot.is_async:
            t0 = clock()
            async for _ in saver.alist(conf, limit=limit):
                n += 1
            t1 = clock()
        else:
            t0 = clock()
            for _ in saver.list(conf, limit=limit):
                n += 1
            t1 = clock()
        expected = ctx["long_steps"] if op == "long_history" else ctx["steps_per_thread"]
        _check(n == (10 if limit else expected), slot, f"{op} returned {n} checkpoints")
    elif op == "long_get_latest":
        conf = _conf(ctx["long_thread"])
        t0, got, t1 = await _timed_get(slot, conf)
        _check(got is not None, slot, "long chat: get latest found nothing")
    elif op == "long_state_history":
        conf = _conf(ctx["long_thread"])
        if slot.is_async:
            t0 = clock()
            n = len([s async for s in slot.graph.aget_state_history(conf)])
            t1 = clock()
        else:
            t0 = clock()
            n = len(list(slot.graph.get_state_history(conf)))
            t1 = clock()
        _check(n == ctx["long_steps"], slot, f"get_state_history returned {n} snapshots")
    elif op == "put":
        k = ctx["put_thread"]
        args = _put_args(slot, k)
        if slot.is_async:
            t0 = clock()
            stored = await saver.aput(*args)
            t1 = clock()
        else:
            t0 = clock()
            stored = saver.put(*args)
            t1 = clock()
        slot.put_state[k]["parent"] = stored["configurable"]["checkpoint_id"]
        slot.last_put[k] = stored
    elif op == "put_writes":
        k = ctx["put_thread"]
        writes, path = ctx["writes"]
        task_id = str(uuid.uuid4())
        conf = slot.last_put[k]
        if slot.is_async:
            t0 = clock()
            await saver.aput_writes(conf, writes, task_id, path)
            t1 = clock()
        else:
            t0 = clock()
            saver.put_writes(conf, writes, task_id, path)
            t1 = clock()
    elif op == "graph_turn":
        thread = slot.graph_thread_ids[ctx["graph_thread"] % len(slot.graph_thread_ids)]
        inputs = {"messages": [("user", workload.question(slot.turns))]}
        slot.turns += 1
        if slot.is_async:
            t0 = clock()
            result = await slot.graph.ainvoke(inputs, _conf(thread))
            t1 = clock()
        else:
            t0 = clock()
            result = slot.graph.invoke(inputs, _conf(thread))
            t1 = clock()
        _check(len(result["messages"][-1].content) > 0, slot, "graph turn gave no answer")
    else:  # pragma: no cover
        raise ValueError(op)
    return (t1 - t0) / 1e6


# -- set-up and tear-down of scratch threads -----------------------------------------------


async def _replay(slot: Slot, thread: str, number: int) -> None:
    if slot.is_async:
        async for _ in workload.areplay(slot.saver, slot.steps, thread, number):
            pass
    else:
        for _ in workload.replay(slot.saver, slot.steps, thread, number):
            pass


def put_threads(slot: Slot, count: int) -> None:
    """`count` fresh scratch threads for the slot's puts."""
    template = slot.steps[-1]
    slot.put_state = [
        {
            "thread": str(uuid.uuid4()),
            "parent": None,
            "versions": dict(template.checkpoint["channel_versions"]),
            "count": 0,
        }
        for _ in range(count)
    ]


async def prepare(slot: Slot, plan: Plan, index: int, graph_turns: int) -> None:
    """Scratch threads for the writes and a compiled graph on the slot's saver."""
    from agent import build_agent

    slot.graph = build_agent(graph_turns + 5).compile(checkpointer=slot.saver)
    put_threads(slot, plan.put_threads)
    slot.graph_thread_ids = []
    for k in range(plan.graph_threads):
        thread = str(uuid.uuid4())
        await _replay(slot, thread, 9_000_000 + index * 1000 + k)
        slot.graph_thread_ids.append(thread)


async def cleanup(slot: Slot) -> None:
    threads = [s["thread"] for s in slot.put_state] + slot.graph_thread_ids
    for thread in threads:
        if slot.is_async:
            await slot.saver.adelete_thread(thread)
        else:
            slot.saver.delete_thread(thread)


# -- the sampling loop ---------------------------------------------------------------------

Samples = dict[str, dict[str, dict[str, list[float]]]]  # engine -> op -> slot -> ms


@dataclass
class EngineRun:
    engine: str
    stores: dict[str, Store]  # impl -> store of the scale
    steps: dict[str, list[workload.Step]]  # impl -> recorded 10-turn thread
    threads: int
    steps_per_thread: int


async def _open_slots(stack: Any, run: EngineRun, impls: list[str]) -> list[Slot]:
    slots = []
    for impl in impls:
        store = run.stores[impl]
        sync_saver = stack.enter_context(open_sync(store))
        slots.append(Slot(run.engine, impl, "sync", sync_saver, run.steps[impl]))
        async_saver = await stack.enter_async_context(open_async(store))
        slots.append(Slot(run.engine, impl, "async", async_saver, run.steps[impl]))
    return slots


async def sample_scale(
    runs: list[EngineRun], impls: list[str], plan: Plan, label: str, log: Callable = print
) -> Samples:
    """Sample every operation of `OPS` on every slot of every engine at one scale."""
    from contextlib import AsyncExitStack

    rng = random.Random(plan.seed)
    samples: Samples = {r.engine: {op: {} for op in OPS} for r in runs}
    async with AsyncExitStack() as stack:
        slots_by_engine: dict[str, list[Slot]] = {}
        t_prep = time.perf_counter()
        for run in runs:
            slots = await _open_slots(stack, run, impls)
            slots_by_engine[run.engine] = slots
            turns = math.ceil((plan.rounds + plan.warmup) / plan.heavy_every) + 1
            for i, slot in enumerate(slots):
                await prepare(slot, plan, i, turns)
                for op in OPS:
                    samples[run.engine][op][slot.name] = []
        log(f"{label}: scratch threads ready in {time.perf_counter() - t_prep:.0f} s")
        writes = {
            run.engine: {impl: _writes_template(run.steps[impl]) for impl in impls} for run in runs
        }
        total = plan.warmup + plan.rounds
        tty = sys.stderr.isatty()
        bar = tqdm(
            total=total,
            desc=f"{label} rounds",
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5 if tty else 30,
        )
        heavy_round = 0
        try:
            for r in range(total):
                warm = r < plan.warmup
                heavy = r % plan.heavy_every == 0
                ops = [op for op in OPS if heavy or op not in HEAVY_OPS]
                for run in runs:
                    slots = slots_by_engine[run.engine]
                    number = rng.randrange(run.threads)
                    old = rng.randrange(run.steps_per_thread - 1)
                    ctx = {
                        "thread": workload.thread_id(number),
                        "old_id": workload.replayed_id(run.steps[impls[0]], number, old),
                        "steps_per_thread": run.steps_per_thread,
                        "put_thread": r % plan.put_threads,
                        "graph_thread": heavy_round,
                    }
                    shift = r % len(slots)
                    order = slots[shift:] + slots[:shift]
                    for op in ops:
                        for slot in order:
                            ctx["writes"] = writes[run.engine][slot.impl]
                            ms = await run_op(slot, op, ctx)
                            if not warm:
                                samples[run.engine][op][slot.name].append(ms)
                if heavy:
                    heavy_round += 1
                bar.update(1)
        finally:
            bar.close()
            t_clean = time.perf_counter()
            for slots in slots_by_engine.values():
                for slot in slots:
                    await cleanup(slot)
            log(f"{label}: scratch threads deleted in {time.perf_counter() - t_clean:.0f} s")
    return samples


@dataclass
class LongRun:
    engine: str
    stores: dict[str, Store]
    thread: str
    steps: int


async def sample_long_chat(
    runs: list[LongRun], impls: list[str], plan: Plan, log: Callable = print
) -> Samples:
    """Sample the long-chat reads: the latest state and the whole history of one thread
    (the saver's `list`, and a compiled agent graph's `get_state_history`)."""
    from contextlib import AsyncExitStack

    from agent import build_agent

    samples: Samples = {r.engine: {op: {} for op in LONG_OPS} for r in runs}
    async with AsyncExitStack() as stack:
        slots_by_engine = {}
        for run in runs:
            slots = []
            for impl in impls:
                store = run.stores[impl]
                slots.append(
                    Slot(run.engine, impl, "sync", stack.enter_context(open_sync(store)), [])
                )
                slots.append(
                    Slot(
                        run.engine,
                        impl,
                        "async",
                        await stack.enter_async_context(open_async(store)),
                        [],
                    )
                )
            for slot in slots:
                slot.graph = build_agent().compile(checkpointer=slot.saver)
            slots_by_engine[run.engine] = slots
            for op in LONG_OPS:
                for slot in slots:
                    samples[run.engine][op][slot.name] = []
        tty = sys.stderr.isatty()
        bar = tqdm(
            total=plan.long_samples + 1,
            desc="long chat rounds",
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5 if tty else 30,
        )
        try:
            for r in range(plan.long_samples + 1):  # round 0 warms up
                for run in runs:
                    ctx = {"long_thread": run.thread, "long_steps": run.steps}
                    slots = slots_by_engine[run.engine]
                    shift = r % len(slots)
                    order = slots[shift:] + slots[:shift]
                    for op in LONG_OPS:
                        reps = 5 if op == "long_get_latest" else 1
                        if r == 0 and op != "long_get_latest":
                            continue  # warm-up reads the latest state only
                        for slot in order:
                            for _ in range(reps):
                                ms = await run_op(slot, op, ctx)
                                if r > 0:
                                    samples[run.engine][op][slot.name].append(ms)
                bar.update(1)
        finally:
            bar.close()
    return samples


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)
