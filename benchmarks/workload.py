"""Realistic checkpoints: record what a real agent graph writes, replay it at any scale."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from agent import build_agent


@dataclass
class Step:
    """One `put` of the recorded run and the `put_writes` made against its checkpoint."""

    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    new_versions: dict[str, Any]
    writes: list[tuple[str, list[tuple[str, Any]], str]] = field(default_factory=list)


class _Recorder(InMemorySaver):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[Step] = []
        self._by_id: dict[str, Step] = {}

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


def record(turns: int, answer_chars: int = 400) -> list[Step]:
    """Run the agent for `turns` turns on one thread and return every step it stored."""
    recorder = _Recorder()
    graph = build_agent(turns, answer_chars).compile(checkpointer=recorder)
    config = {"configurable": {"thread_id": "recorded"}}
    for turn in range(turns):
        graph.invoke(
            {"messages": [("user", f"Question {turn}: is 10.{turn}.0.0/16 routed?")]}, config
        )
    return recorder.steps


def replay(saver: Any, steps: list[Step], thread_id: str) -> Iterator[str]:
    """Write the recorded steps into `saver` as thread `thread_id`; yield checkpoint ids."""
    parent: str | None = None
    for step in steps:
        conf = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        if parent:
            conf["configurable"]["checkpoint_id"] = parent
        stored = saver.put(conf, step.checkpoint, step.metadata, step.new_versions)
        for task_id, writes, task_path in step.writes:
            saver.put_writes(stored, writes, task_id, task_path)
        parent = stored["configurable"]["checkpoint_id"]
        yield parent
