"""Checkpoints for the batch writer's tests (also imported by their subprocess driver)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage

from langgraph_store_dual.transfer.batch import Item, checkpoint_ops


def checkpoint_id(thread: int, step: int) -> str:
    return f"1f000000-0000-6000-8000-{thread:06d}{step:06d}"


def item(saver: Any, thread: int, step: int, **extra: Any) -> Item:
    """Checkpoint `step` of thread `t<thread>` (a chat growing by two messages a step, and
    `extra` channels) with the writes of one task against it."""
    tid = f"t{thread}"
    messages = []
    for turn in range(step + 1):
        messages += [HumanMessage(f"question {turn} of {tid}"), AIMessage(f"answer {turn}")]
    checkpoint = {
        "v": 4,
        "id": checkpoint_id(thread, step),
        "ts": "2026-01-01T00:00:00+00:00",
        "channel_values": {"messages": messages, "step": step, **extra},
        "channel_versions": {"messages": step + 1, "step": step + 1},
        "versions_seen": {},
        "updated_channels": ["messages"],
    }
    own = {
        "configurable": {"thread_id": tid, "checkpoint_ns": "", "checkpoint_id": checkpoint["id"]}
    }
    parent: dict[str, Any] = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
    if step:
        parent["configurable"]["checkpoint_id"] = checkpoint_id(thread, step - 1)
    writes = [("messages", [AIMessage(f"next of {step}")]), ("step", step + 1)]
    tasks = [(f"task-{step}", "~__pregel_pull, agent", writes)]
    metadata = {"source": "loop", "step": step, "user_id": "ana"}
    return Item(
        tid, checkpoint_ops(saver, own, parent, checkpoint, metadata, tasks), (thread, step)
    )


def stored(saver: Any) -> dict[tuple[str, str], tuple[int, int]]:
    """Per stored checkpoint (thread, id): its messages and its pending writes."""
    found = {}
    for t in saver.list(None):
        conf = t.config["configurable"]
        found[(conf["thread_id"], conf["checkpoint_id"])] = (
            len(t.checkpoint["channel_values"]["messages"]),
            len(t.pending_writes or []),
        )
    return found
