"""Realistic checkpoints: record what a real agent graph writes, replay it at any scale.

The agent of `examples/agent.py` (a compiled LangGraph graph: fake chat model, AI messages
with tool calls and usage metadata, tool results, ~400-character answers) is run once
against a recording saver; every `put` and the `put_writes` made against it are kept as
`Step`s. Replaying the steps through a saver's public `put`/`put_writes` writes exactly what
the graph would have written, without running the graph again.

Each saver family numbers channel versions its own way (this package: small integers;
the official savers: zero-padded strings with a random suffix), and a graph run on a saver
uses that saver's `get_next_version`; `record(..., next_version=...)` reproduces that.

Replays made by the benchmark give every checkpoint a deterministic id (`checkpoint_id`)
and every thread a deterministic UUID (`thread_id`), so all contenders hold the same
threads and checkpoint ids and a sample can name any of them without reading first.
"""

from __future__ import annotations

import hashlib
import random
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from agent import build_agent

#: Turns of a preloaded conversation thread (about 50 checkpoints).
THREAD_TURNS = 10
#: Turns of the long-chat thread.
LONG_CHAT_TURNS = 300
#: Characters of each final answer of the fake model.
ANSWER_CHARS = 400
#: Bump when what is written changes: cached preloaded databases are then rebuilt.
WORKLOAD_VERSION = 1

NextVersion = Callable[[Any, Any], Any]


@dataclass
class Step:
    """One `put` of the recorded run and the `put_writes` made against its checkpoint."""

    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    new_versions: dict[str, Any]
    writes: list[tuple[str, list[tuple[str, Any]], str]] = field(default_factory=list)


class _Recorder(InMemorySaver):
    def __init__(self, next_version: NextVersion | None = None) -> None:
        super().__init__()
        self.steps: list[Step] = []
        self._by_id: dict[str, Step] = {}
        self._next_version = next_version

    def get_next_version(self, current: Any, channel: Any = None) -> Any:
        if self._next_version is None:
            return super().get_next_version(current, channel)
        return self._next_version(current, channel)

    def put(self, config, checkpoint, metadata, new_versions):
        step = Step(checkpoint, dict(metadata), dict(new_versions))
        self.steps.append(step)
        self._by_id[checkpoint["id"]] = step
        return super().put(config, checkpoint, metadata, new_versions)

    def put_writes(self, config, writes, task_id, task_path=""):
        step = self._by_id.get(config["configurable"]["checkpoint_id"])
        if step is not None:
            step.writes.append((task_id, list(writes), task_path))
        return super().put_writes(config, writes, task_id, task_path)


def record(
    turns: int,
    answer_chars: int = ANSWER_CHARS,
    next_version: NextVersion | None = None,
    seed: int = 7,
) -> list[Step]:
    """Run the agent for `turns` turns on one thread and return every step it stored.

    `next_version(current, channel)` numbers channel versions as the target saver would
    (default: LangGraph's `InMemorySaver` scheme). The global `random` state is seeded
    for the run (the official savers' version suffixes use it) and restored afterwards.
    """
    state = random.getstate()
    random.seed(seed)
    try:
        recorder = _Recorder(next_version)
        graph = build_agent(turns, answer_chars).compile(checkpointer=recorder)
        config = {"configurable": {"thread_id": "recorded"}}
        for turn in range(turns):
            graph.invoke({"messages": [("user", question(turn))]}, config)
    finally:
        random.setstate(state)
    return recorder.steps


def question(turn: int) -> str:
    """The user's message of a turn."""
    return f"Question {turn}: is 10.{turn % 250}.0.0/16 routed?"


# -- deterministic ids -------------------------------------------------------------------

_UUID_EPOCH_100NS = 0x01B21DD213814000  # 1582-10-15 -> 1970-01-01 in 100 ns units
_BASE_100NS = 1_735_689_600 * 10_000_000  # 2025-01-01T00:00:00Z: before any live checkpoint
_THREAD_SPACING = 10_000_000  # 1 s between the starts of consecutive threads
_STEP_SPACING = 100_000  # 10 ms between the checkpoints of a thread


def thread_id(number: int, namespace: str = "t") -> str:
    """The id of preloaded thread `number`: a UUID, as applications commonly use."""
    digest = hashlib.blake2b(f"lgsd-bench/{namespace}/{number}".encode(), digest_size=16)
    return str(uuid.UUID(bytes=digest.digest(), version=4))


def _timestamp(number: int, step: int) -> int:
    return _BASE_100NS + number * _THREAD_SPACING + step * _STEP_SPACING


def checkpoint_id(number: int, step: int, clock_seq: int = 0) -> str:
    """The id of checkpoint `step` of thread `number`: a UUIDv6 like LangGraph's, time-ordered
    within the thread and older than any checkpoint written live."""
    ts = _timestamp(number, step) + _UUID_EPOCH_100NS
    node = int.from_bytes(hashlib.blake2b(b"%d" % number, digest_size=6).digest(), "big")
    value = ((ts >> 12) & 0xFFFFFFFFFFFF) << 80
    value |= (ts & 0x0FFF) << 64
    value |= (clock_seq & 0x3FFF) << 48
    value |= node
    value |= 0x6 << 76  # version 6 (the version bits of ts & 0x0FFF above are zero)
    value |= 0x2 << 62  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def checkpoint_ts(number: int, step: int) -> str:
    """The `ts` field matching `checkpoint_id(number, step)`."""
    seconds = _timestamp(number, step) / 10_000_000
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()


def _clock_seq(step: Step) -> int:
    return step.metadata.get("step", 0) & 0x3FFF  # LangGraph uses the step number


def replayed_id(steps: list[Step], number: int, index: int) -> str:
    """The id checkpoint `index` of `steps` gets when replayed as thread `number`."""
    return checkpoint_id(number, index, _clock_seq(steps[index]))


def renumbered(step: Step, number: int, index: int) -> dict[str, Any]:
    """The recorded checkpoint of `step` with the deterministic id of (thread, index)."""
    return {
        **step.checkpoint,
        "id": checkpoint_id(number, index, _clock_seq(step)),
        "ts": checkpoint_ts(number, index),
    }


# -- replay ------------------------------------------------------------------------------


def _config(thread: str, parent: str | None) -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ""}
    if parent:
        conf["checkpoint_id"] = parent
    return {"configurable": conf}


def replay(saver: Any, steps: list[Step], thread: str, number: int | None = None) -> Iterator[str]:
    """Write the recorded steps into `saver` as thread `thread`; yield checkpoint ids.

    With `number`, checkpoints get the deterministic ids of thread `number`; without it
    they keep the recorded ids.
    """
    parent: str | None = None
    for index, step in enumerate(steps):
        checkpoint = step.checkpoint if number is None else renumbered(step, number, index)
        stored = saver.put(_config(thread, parent), checkpoint, step.metadata, step.new_versions)
        for task_id, writes, task_path in step.writes:
            saver.put_writes(stored, writes, task_id, task_path)
        parent = stored["configurable"]["checkpoint_id"]
        yield parent


async def areplay(
    saver: Any, steps: list[Step], thread: str, number: int | None = None
) -> AsyncIterator[str]:
    """`replay` through the async API."""
    parent: str | None = None
    for index, step in enumerate(steps):
        checkpoint = step.checkpoint if number is None else renumbered(step, number, index)
        conf = _config(thread, parent)
        stored = await saver.aput(conf, checkpoint, step.metadata, step.new_versions)
        for task_id, writes, task_path in step.writes:
            await saver.aput_writes(stored, writes, task_id, task_path)
        parent = stored["configurable"]["checkpoint_id"]
        yield parent
