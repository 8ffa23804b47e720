"""The JSON Lines export format, line by line: built from what a saver reads, checked and
decoded for a saver to store. No I/O.

Every line is one JSON object with a "kind":

- line 1, "header": `format` (FORMAT), `version` (VERSION), `exported_at` (ISO 8601, UTC),
  `engine` ("sqlite" or "postgresql") and `schema_version` of the source database;
- "thread": a thread's row (thread_id, user_id, title, status, run_state, metadata,
  created_at, updated_at, and since version 2 ttl_seconds and ttl_strategy, null without a
  ttl), before the checkpoints of that thread;
- "checkpoint": thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, the
  checkpoint (without its id; channel values in the codec's typed JSON, every value
  expanded, the other fields in its plain typed JSON), metadata (plain typed JSON) and
  writes (task_id, task_path, idx, channel, value in the codec's typed JSON);
- last, "end": how many threads, checkpoints and writes the file holds (a file without it
  was cut short).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from langgraph.checkpoint.base import WRITES_IDX_MAP, CheckpointTuple

from ..codec import JsonCodec, encode_plain
from ..core.thread_model import Thread
from ..core.threads import UNSET
from ..core.ttl import check_strategy, check_ttl
from ..errors import DecodeError, SchemaVersionError
from .sql import TaskWrites

FORMAT = "langgraph-store-dual/threads"
VERSION = 2  # 2: thread lines carry the ttl (version 1 files are read as before)
KINDS = ("threads", "checkpoints", "writes")


@dataclass(frozen=True, slots=True)
class Write:
    """One pending write, decoded."""

    task_id: str
    task_path: str
    idx: int
    channel: str
    value: Any


@dataclass(frozen=True, slots=True)
class CheckpointLine:
    """A checkpoint line, decoded: what `put` and `put_writes` store again."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_id: str | None
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    writes: list[Write]

    def config(self, checkpoint_id: str | None) -> dict[str, Any]:
        """The config naming `checkpoint_id` (None: none) in this line's thread and ns."""
        conf = {"thread_id": self.thread_id, "checkpoint_ns": self.checkpoint_ns}
        return {
            "configurable": conf
            if checkpoint_id is None
            else {**conf, "checkpoint_id": checkpoint_id}
        }


# -- building ---------------------------------------------------------------------------


def header(engine: str, schema_version: int, now: datetime | None = None) -> dict[str, Any]:
    at = (now or datetime.now(timezone.utc)).isoformat()
    return {
        "kind": "header",
        "format": FORMAT,
        "version": VERSION,
        "exported_at": at,
        "engine": engine,
        "schema_version": schema_version,
    }


def thread_line(thread: Thread) -> dict[str, Any]:
    return {
        "kind": "thread",
        "thread_id": thread.thread_id,
        "user_id": thread.user_id,
        "title": thread.title,
        "status": thread.status,
        "run_state": thread.run_state,
        "metadata": thread.metadata,
        "created_at": thread.created_at.isoformat(),
        "updated_at": thread.updated_at.isoformat(),
        "ttl_seconds": None if thread.ttl is None else thread.ttl.total_seconds(),
        "ttl_strategy": thread.ttl_strategy if thread.ttl is not None else None,
    }


def checkpoint_line(
    item: CheckpointTuple, tasks: Sequence[TaskWrites], codec: JsonCodec
) -> dict[str, Any]:
    """The line of a checkpoint `list` returned, with its writes as stored."""
    conf = item.config["configurable"]
    parent = (item.parent_config or {}).get("configurable", {}).get("checkpoint_id")
    body: dict[str, Any] = {
        k: encode_plain(v) for k, v in item.checkpoint.items() if k not in ("id", "channel_values")
    }
    body["channel_values"] = {
        ch: codec.encode(v) for ch, v in item.checkpoint["channel_values"].items()
    }
    writes = [
        {"task_id": task_id, "task_path": path, "idx": idx, "channel": channel, "value": value}
        for task_id, path, entries in sorted(tasks, key=lambda t: (t[1], t[0]))
        for idx, channel, value in sorted(entries, key=lambda e: e[0])
    ]
    return {
        "kind": "checkpoint",
        "thread_id": conf["thread_id"],
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf["checkpoint_id"],
        "parent_checkpoint_id": parent,
        "checkpoint": body,
        "metadata": encode_plain(dict(item.metadata)),
        "writes": writes,
    }


def end_line(counts: Mapping[str, int]) -> dict[str, Any]:
    return {"kind": "end", **{k: counts.get(k, 0) for k in KINDS}}


# -- checking ---------------------------------------------------------------------------


def field(
    line: Mapping[str, Any], key: str, typ: type | tuple[type, ...], optional: bool = False
) -> Any:
    """`line[key]`, checked to be of type `typ` (or None if `optional`)."""
    if key not in line:
        raise DecodeError(f"{line.get('kind')} line has no {key!r}")
    value = line[key]
    if value is None and optional:
        return None
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is int):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise DecodeError(f"{key!r} must be {names}, got {type(value).__name__}")
    return value


def check_header(line: Any) -> dict[str, Any]:
    """The header, checked: SchemaVersionError for a newer format version."""
    if not isinstance(line, dict) or line.get("kind") != "header" or line.get("format") != FORMAT:
        raise DecodeError(f"not a {FORMAT} export: the first line must be its header")
    version = field(line, "version", int)
    if version > VERSION or version < 1:
        raise SchemaVersionError(
            f"the export is in format version {version}; this package reads version "
            f"{VERSION}: upgrade the package"
        )
    return line


def check_thread(line: Mapping[str, Any], version: int = VERSION) -> dict[str, Any]:
    """A thread line's row, checked; its `ttl` (seconds or None) and `ttl_strategy` as
    `threads.create` takes them (UNSET from a version 1 file, which does not say)."""
    for key, typ, optional in (
        ("thread_id", str, False),
        ("user_id", str, True),
        ("title", str, True),
        ("status", str, False),
        ("run_state", str, False),
        ("metadata", dict, False),
    ):
        field(line, key, typ, optional)
    row = dict(line)
    row["ttl"] = row["ttl_strategy"] = UNSET
    if version >= 2:
        seconds = field(line, "ttl_seconds", (int, float), optional=True)
        strategy = field(line, "ttl_strategy", str, optional=True)
        row["ttl"] = None if seconds is None else check_ttl(seconds)
        if seconds is not None and strategy is not None:
            row["ttl_strategy"] = check_strategy(strategy)
    return row


def decode_checkpoint(line: Mapping[str, Any], codec: JsonCodec) -> CheckpointLine:
    """A checkpoint line decoded with the target's codec (its revival policy): DecodeError
    names what is malformed or not allowed."""
    body = dict(field(line, "checkpoint", dict))
    values = body.pop("channel_values", None)
    if not isinstance(values, dict):
        raise DecodeError("'checkpoint' has no 'channel_values' object")
    checkpoint = {k: codec.decode_plain(v) for k, v in body.items()}
    checkpoint_id = field(line, "checkpoint_id", str)
    if not checkpoint_id:
        raise DecodeError("'checkpoint_id' is empty")
    checkpoint["id"] = checkpoint_id
    checkpoint["channel_values"] = {ch: codec.decode(v) for ch, v in values.items()}
    metadata = codec.decode_plain(field(line, "metadata", dict))
    if not isinstance(metadata, dict):
        raise DecodeError("'metadata' is not an object")
    writes = [_decode_write(w, codec) for w in field(line, "writes", list)]
    return CheckpointLine(
        field(line, "thread_id", str),
        field(line, "checkpoint_ns", str),
        checkpoint_id,
        field(line, "parent_checkpoint_id", str, optional=True),
        checkpoint,
        metadata,
        writes,
    )


def _decode_write(entry: Any, codec: JsonCodec) -> Write:
    if not isinstance(entry, dict) or "value" not in entry:
        raise DecodeError("each write must be an object with a 'value'")
    return Write(
        field(entry, "task_id", str),
        field(entry, "task_path", str),
        field(entry, "idx", int),
        field(entry, "channel", str),
        codec.decode(entry["value"]),
    )


def write_calls(writes: Sequence[Write]) -> list[tuple[str, str, list[tuple[str, Any]]]]:
    """`put_writes` calls (task_id, task_path, writes) that store `writes` at their index:
    a regular write's index is its position in its call, a special channel's is fixed."""
    tasks: dict[str, tuple[str, dict[int, tuple[str, Any]], list[tuple[str, Any]]]] = {}
    for w in writes:
        path, regular, special = tasks.setdefault(w.task_id, (w.task_path, {}, []))
        if path != w.task_path:
            raise DecodeError(f"task {w.task_id!r} has writes with two task paths")
        fixed = WRITES_IDX_MAP.get(w.channel)
        if fixed is not None and w.idx != fixed:
            raise DecodeError(f"a write to {w.channel} has index {w.idx}, not {fixed}")
        if fixed is None and (w.idx < 0 or w.idx in regular):
            raise DecodeError(f"task {w.task_id!r} has a write with index {w.idx} twice or below 0")
        if fixed is None:
            regular[w.idx] = (w.channel, w.value)
        else:
            special.append((w.channel, w.value))
    calls = []
    for task_id, (path, regular, special) in tasks.items():
        # a special write takes no position of its own: it fills a gap between regular ones
        spare = list(special)
        slots: list[tuple[str, Any]] = []
        for idx in range(max(regular, default=-1) + 1):
            if idx in regular:
                slots.append(regular[idx])
            elif spare:
                slots.append(spare.pop())
            else:
                raise DecodeError(f"task {task_id!r} has no write at index {idx}")
        calls.append((task_id, path, slots + spare))
    return calls


def check_end(line: Mapping[str, Any], seen: Mapping[str, int]) -> dict[str, int]:
    """The counts of the end line, checked against the lines `seen`."""
    counts = {k: field(line, k, int) for k in KINDS}
    wrong = [
        f"{k}: {counts[k]} stated, {seen.get(k, 0)} read"
        for k in KINDS
        if counts[k] != seen.get(k, 0)
    ]
    if wrong:
        raise DecodeError(f"the end line does not match the file ({'; '.join(wrong)})")
    return counts
