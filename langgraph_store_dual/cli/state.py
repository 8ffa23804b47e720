"""`history THREAD`, `show THREAD [CHECKPOINT]` and `diff THREAD A B`: time travel,
with messages rendered as a chat."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from langgraph.checkpoint.base import CheckpointTuple

from ..errors import NotFoundError
from .common import Json, Url, emit, jsonable, open_saver, out, table, thread_config, when
from .threads import _existing

Ns = Annotated[str, typer.Option("--ns", help="Checkpoint namespace (subgraph); root by default.")]


def register(app: typer.Typer) -> None:
    app.command("history")(history)
    app.command("show")(show)
    app.command("diff")(diff)


def history(
    url: Url,
    thread_id: str,
    limit: Annotated[int, typer.Option(min=1, help="Checkpoints to list, newest first.")] = 50,
    ns: Ns = "",
    as_json: Json = False,
) -> None:
    """One line per checkpoint: id, parent, step, source, node, time, message count."""
    with open_saver(url) as saver:
        _existing(saver, thread_id)
        items = saver.threads.history(thread_id, limit=limit + 1, checkpoint_ns=ns)
    lines = [_line(item, parent) for item, parent in zip(items, [*items[1:], None], strict=True)][
        :limit
    ]

    def human() -> None:
        grid = table("checkpoint", "parent", "step", "source", "node", "time", "messages")
        for line in lines:
            cells = {**line, "time": when(datetime.fromisoformat(line["time"]))}
            grid.add_row(*("" if v is None else str(v) for v in cells.values()))
        out.print(grid)

    emit(as_json, lines, human)


def _line(item: CheckpointTuple, parent: CheckpointTuple | None) -> dict[str, Any]:
    checkpoint, meta = item.checkpoint, item.metadata or {}
    parent_id = (item.parent_config or {}).get("configurable", {}).get("checkpoint_id")
    return {
        "checkpoint_id": checkpoint["id"],
        "parent_id": parent_id,
        "step": meta.get("step"),
        "source": meta.get("source"),
        "node": ",".join(_nodes(item, parent)) or None,
        "time": checkpoint["ts"],
        "messages": _message_count(checkpoint["channel_values"]),
    }


def _nodes(item: CheckpointTuple, parent: CheckpointTuple | None) -> list[str]:
    """The nodes that ran to make a checkpoint: those whose seen versions changed since
    its parent (when the parent is known)."""
    if parent is None:
        return []
    seen, before = item.checkpoint["versions_seen"], parent.checkpoint["versions_seen"]
    return sorted(n for n in seen if seen[n] != before.get(n))


def _message_count(values: dict[str, Any]) -> int | None:
    messages = values.get("messages")
    return len(messages) if isinstance(messages, (list, tuple)) else None


def show(
    url: Url,
    thread_id: str,
    checkpoint_id: Annotated[str | None, typer.Argument(help="Default: the latest.")] = None,
    ns: Ns = "",
    as_json: Json = False,
) -> None:
    """A checkpoint's state; messages as a chat, and what the run is waiting for."""
    with open_saver(url) as saver:
        _existing(saver, thread_id)
        item = saver.get_tuple(thread_config(thread_id, checkpoint_id, ns))
    if item is None:
        raise NotFoundError(f"no checkpoint {checkpoint_id or '(latest)'} in thread {thread_id!r}")
    values = item.checkpoint["channel_values"]
    interrupts = [
        one
        for _, channel, value in item.pending_writes or []
        if channel == "__interrupt__"
        for one in (value if isinstance(value, (list, tuple)) else [value])
    ]
    result = {
        "checkpoint_id": item.checkpoint["id"],
        "metadata": item.metadata,
        "values": values,
        "interrupts": interrupts,
    }

    def human() -> None:
        meta = item.metadata or {}
        out.print(
            f"checkpoint {item.checkpoint['id']} (step {meta.get('step')}, "
            f"{meta.get('source')}, {item.checkpoint['ts']})"
        )
        for channel, value in values.items():
            if channel == "messages" and isinstance(value, (list, tuple)):
                out.print("messages:")
                for message in value:
                    chat_line(message, "  ")
            elif not channel.startswith("branch:"):
                out.print(f"{channel}: {jsonable(value)}")
        for value in interrupts:
            out.print(f"waiting for input: {jsonable(getattr(value, 'value', value))}")

    emit(as_json, result, human)


def chat_line(message: Any, indent: str = "", mark: str = "") -> None:
    """One message (a LangChain message or a dict with a role) as `role: text`, with its
    tool calls."""
    fields = (
        message
        if isinstance(message, dict)
        else vars(message)
        if hasattr(message, "__dict__")
        else {}
    )
    role = fields.get("type") or fields.get("role")
    content = fields.get("content", message)
    name = fields.get("name")
    who = f"{role} ({name})" if role == "tool" and name else (role or "value")
    text = content if isinstance(content, str) else str(jsonable(content))
    out.print(f"{indent}{mark}{who}: {text}")
    for call in fields.get("tool_calls") or []:
        args = ", ".join(f"{k}={v!r}" for k, v in call.get("args", {}).items())
        out.print(f"{indent}{mark}  -> {call.get('name')}({args})")


def diff(url: Url, thread_id: str, a: str, b: str, ns: Ns = "", as_json: Json = False) -> None:
    """What changed from checkpoint A to checkpoint B of a thread."""
    with open_saver(url) as saver:
        _existing(saver, thread_id)
        change = saver.threads.diff(
            thread_config(thread_id, a, ns), thread_config(thread_id, b, ns)
        )

    def human() -> None:
        if not change.channels:
            out.print("no differences")
        for channel, d in change.channels.items():
            out.print(f"{channel}: {d.change}")
            if channel == "messages" and (d.added or d.removed):
                for message in d.removed:
                    chat_line(message, "  ", "- ")
                for message in d.added:
                    chat_line(message, "  ", "+ ")
            elif d.change == "changed":
                out.print(f"  - {jsonable(d.before)}\n  + {jsonable(d.after)}")
            else:
                out.print(f"  {jsonable(d.after if d.change == 'added' else d.before)}")

    emit(as_json, {"from": a, "to": b, "channels": change.channels}, human)
