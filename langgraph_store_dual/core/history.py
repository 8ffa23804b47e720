"""Time travel as sans-I/O operations: the lineage of a checkpoint (one query), the diff
of two checkpoints, and a fork from any checkpoint into a new thread."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple

from ..codec import JsonCodec
from ..errors import ConfigError, NotFoundError
from . import ops
from . import thread_model as tm
from . import threads as thread_ops
from .config import target
from .dialect import Dialect
from .listing import ListPlan, ListReader
from .rows import ChainRow
from .stmt import Op, Stmt
from .thread_model import Thread
from .values import ValueCaches

#: Deepest lineage walked when no limit is given (also guards against a parent cycle).
MAX_DEPTH = 1_000_000


def lineage(
    d: Dialect, codec: JsonCodec, config: RunnableConfig, limit: int | None
) -> Op[list[CheckpointTuple]]:
    """The checkpoint `config` names (default: the latest) and its ancestors, newest first."""
    t = target(config)
    depth = MAX_DEPTH if limit is None else tm.check_limit(limit, MAX_DEPTH)
    params = {
        "thread_id": t.thread_id,
        "checkpoint_ns": t.checkpoint_ns,
        "checkpoint_id": t.checkpoint_id,
        "depth": depth,
    }
    rows = yield Stmt(d.threads.lineage, params)
    reader = ListReader(d, codec, ListPlan("", {}, {}, None), ValueCaches())
    if (fetch := reader.fetch(rows)) is not None:  # the values the snapshots refer to
        yield from fetch
    return reader.tuples(rows)


@dataclass(frozen=True, slots=True)
class ChannelDiff:
    """How one channel differs. For lists (messages...), `added` and `removed` hold the
    items only one side has (matched by equality, message ids included)."""

    channel: str
    change: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None
    added: list[Any] = field(default_factory=list)
    removed: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CheckpointDiff:
    """The channels that differ from checkpoint `before` to checkpoint `after`."""

    before: RunnableConfig
    after: RunnableConfig
    channels: dict[str, ChannelDiff]

    @property
    def messages_added(self) -> list[Any]:
        return self.channels["messages"].added if "messages" in self.channels else []

    @property
    def messages_removed(self) -> list[Any]:
        return self.channels["messages"].removed if "messages" in self.channels else []


def diff(
    d: Dialect, codec: JsonCodec, config_a: RunnableConfig, config_b: RunnableConfig
) -> Op[CheckpointDiff]:
    """What changed from checkpoint `config_a` to checkpoint `config_b`.

    Compares stored channel values: a `DeltaChannel` holds its value only at snapshots.
    """
    found = []
    for config in (config_a, config_b):
        item = yield from ops.get_tuple(d, codec, config)
        if item is None:
            raise NotFoundError(f"no checkpoint for {config!r}")
        found.append(item)
    return compare(*found)


def compare(a: CheckpointTuple, b: CheckpointTuple) -> CheckpointDiff:
    """The diff of two checkpoints' channel values (no I/O)."""
    old, new = a.checkpoint["channel_values"], b.checkpoint["channel_values"]
    channels: dict[str, ChannelDiff] = {}
    for ch in [*old, *(k for k in new if k not in old)]:
        if ch not in new:
            channels[ch] = ChannelDiff(ch, "removed", before=old[ch])
        elif ch not in old:
            channels[ch] = ChannelDiff(ch, "added", after=new[ch], added=_items(new[ch]))
        elif not _same(old[ch], new[ch]):
            added, removed = _list_changes(old[ch], new[ch])
            channels[ch] = ChannelDiff(ch, "changed", old[ch], new[ch], added, removed)
    return CheckpointDiff(a.config, b.config, channels)


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # a value whose == raises or is ambiguous (arrays): compare reprs
        return repr(a) == repr(b)


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _list_changes(old: Any, new: Any) -> tuple[list[Any], list[Any]]:
    """(items only in `new`, items only in `old`) of two lists; ([], []) for other values."""
    if not isinstance(old, (list, tuple)) or not isinstance(new, (list, tuple)):
        return [], []
    common = 0  # a conversation usually grows at its end: skip the shared prefix
    while common < min(len(old), len(new)) and _same(old[common], new[common]):
        common += 1
    removed = list(old[common:])
    added = []
    for item in new[common:]:
        match = next((i for i, gone in enumerate(removed) if _same(gone, item)), None)
        if match is None:
            added.append(item)
        else:
            del removed[match]
    return added, removed


def fork(d: Dialect, config: RunnableConfig, new_thread_id: Any) -> Op[Thread]:
    """A new thread whose history is the checkpoint `config` names (default: the latest)
    and its ancestors, with their writes; the source thread's row, metadata included, is
    copied. In other namespaces (subgraphs) what came after the checkpoint is dropped."""
    t = target(config)
    at = {"thread_id": t.thread_id, "checkpoint_ns": t.checkpoint_ns}
    ts = t.checkpoint_id
    if ts is None:
        ts = (yield Stmt(d.threads.latest_id, at))[0][0]
    chain = [] if ts is None else (yield Stmt(d.select_chain, {**at, "thread_ts": ts}))
    if not chain:
        raise NotFoundError(f"no checkpoint to fork for {config!r}")
    copied = yield from thread_ops.copy(d, t.thread_id, new_thread_id)
    dst = copied.thread_id
    yield from ops.delete_except(
        d, dst, t.checkpoint_ns, [ChainRow._make(r).thread_ts for r in chain]
    )
    later = {"thread_id": dst, "checkpoint_ns": t.checkpoint_ns, "checkpoint_id": ts}
    yield Stmt(d.threads.drop_later_writes, later, fetch=False)
    yield Stmt(d.threads.drop_later_checkpoints, later, fetch=False)
    yield from ops.sweep_values(d, [dst])  # the values only the dropped snapshots held
    yield from ops.refresh_threads(d, [dst])
    return (yield from thread_ops.existing(d, dst))


def history_args(
    thread_id: Any, limit: Any, before: Any, checkpoint_ns: Any
) -> tuple[RunnableConfig, RunnableConfig | None, int | None]:
    """`list` arguments for a page of a thread's history: (config, before, limit).
    `before` is a checkpoint id or a config naming one."""
    t = target({"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}})
    cid = before if before is None or isinstance(before, str) else target(before).checkpoint_id
    if before is not None and not cid:
        raise ConfigError("before must name a checkpoint: pass a checkpoint's config or id")
    limit = None if limit is None else tm.check_limit(limit, MAX_DEPTH)
    return t.config(), None if cid is None else t.config(cid), limit
