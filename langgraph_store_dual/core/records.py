"""Checkpoints and writes <-> database rows. Pure functions, no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    writes_sort_key,
)
from langgraph.checkpoint.serde.types import TASKS

from ..codec import JsonCodec, ValueCache, encode_plain
from ..errors import ConfigError, DecodeError
from .config import Target, check_id
from .intern import Remembered, intern_channels

#: What the id checks call a channel name (a key of `channel_values`, a write's channel).
_CHANNEL = "a channel name"


#: Levels of nesting a stored JSON document may have (orjson's limit).
MAX_NESTING = 254


_NOTHING: Mapping[str, Any] = MappingProxyType({})


@contextmanager
def _shallow(what: str) -> Iterator[None]:
    """Make `what` nested too deeply to store a ConfigError naming the limit (also a
    decorator)."""
    try:
        yield
    except (RecursionError, orjson.JSONEncodeError) as exc:
        if isinstance(exc, orjson.JSONEncodeError) and "Recursion" not in str(exc):
            raise
        raise ConfigError(
            f"{what} nests deeper than the {MAX_NESTING} levels JSON storage holds"
        ) from None


def dump(tree: Any) -> str:
    """Serialise a JSON tree to text for a JSON/JSONB column."""
    return orjson.dumps(tree).decode()


def load(value: str | bytes | None) -> Any:
    """Parse a JSON column (drivers are set up to hand JSON over as text or bytes)."""
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise DecodeError(f"stored JSON is malformed: {exc}") from exc


def load_refs(value: str | bytes | None) -> list[str]:
    """Parse a `refs` column given as a JSON array of hashes, or as PostgreSQL stores it,
    hashes separated by spaces (NULL: none)."""
    if type(value) is str and not value.startswith("["):
        return value.split()
    refs = load(value)
    if refs is None:
        return []
    if type(refs) is not list or any(type(h) is not str for h in refs):
        raise DecodeError("stored refs are not a list of hashes")
    return refs


@dataclass(slots=True)
class CheckpointRecord:
    """A checkpoint as stored: its row, and the values its snapshot refers to."""

    thread_id: str
    checkpoint_ns: str
    thread_ts: str
    parent_ts: str | None
    checkpoint: str  # JSON
    metadata: str  # JSON, keys sorted
    run_id: str | None
    refs: list[str]
    values: dict[str, tuple[bytes, list[str]]]  # hash -> (JSON, refs)
    channels: dict[str, Remembered]  # each channel that has a version, as stored

    def value_rows(self) -> list[dict[str, Any]]:
        """The parameters of `insert_values` for each value: refs a JSON array or NULL."""
        tid = self.thread_id
        return [
            {"thread_id": tid, "hash": h, "value": data.decode(), "refs": dump(r) if r else None}
            for h, (data, r) in self.values.items()
        ]


@_shallow("a checkpoint's state or metadata")
def checkpoint_record(
    target: Target,
    checkpoint: Checkpoint,
    meta: CheckpointMetadata,
    codec: JsonCodec,
    known: Mapping[str, Remembered] = _NOTHING,
) -> CheckpointRecord:
    """The checkpoint `target`'s checkpoint id is the parent of, ready to store; `meta`
    its metadata merged with its config's (`get_checkpoint_metadata`). `known`: channels
    as an earlier put stored them: one holding the same object at the same version is
    taken as it was (see `values.ChannelMemo`)."""
    checkpoint_id = check_id(checkpoint["id"], "checkpoint_id (checkpoint['id'])")
    # "v" first: engines test it without parsing. A partial checkpoint (as in the
    # official savers' docs) is stored as given, with empty channel values if it has none.
    body: dict[str, Any] = {"v": checkpoint["v"]} if "v" in checkpoint else {}
    interned = None
    remembered: dict[str, Remembered] = {}
    parts: dict[str, Any] = {"channel_values": {}, **checkpoint}
    for key, value in parts.items():
        if key in ("id", "v"):
            continue
        if key == "channel_values":
            versions = checkpoint.get("channel_versions") or _NOTHING
            trees: dict[str, Any] = {}
            for ch, v in value.items():
                was = known.get(check_id(ch, _CHANNEL))
                if (
                    was is not None
                    and was.value is v
                    and ch in versions
                    and was.version == versions[ch]
                ):
                    trees[ch] = was.unit  # the same object at the same version
                else:
                    trees[ch] = codec.encode(v)
            interned = intern_channels(trees)
            body[key] = interned.channels
            remembered = {
                ch: Remembered(versions[ch], v, interned.units[ch])
                for ch, v in value.items()
                if ch in versions
            }
        else:
            body[key] = encode_plain(value)
    if interned is None:
        interned = intern_channels({})
    run_id = meta.get("run_id")
    return CheckpointRecord(
        target.thread_id,
        target.checkpoint_ns,
        checkpoint_id,
        target.checkpoint_id,
        dump(body),
        orjson.dumps(encode_plain(meta), option=orjson.OPT_SORT_KEYS).decode(),
        None if run_id is None else check_id(str(run_id), "run_id (metadata['run_id'])"),
        interned.refs,
        interned.values,
        remembered,
    )


@_shallow("a write")
def write_row(
    target: Target,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
    codec: JsonCodec,
) -> dict[str, str]:
    """The parameters of `upsert_writes`: a task's writes as one row (thread_id,
    checkpoint_ns, thread_ts, task_id, task_path, writes), `writes` the JSON array
    `[[idx, channel, value], ...]`.

    Special channels (errors, interrupts, ...) take their fixed negative index so a
    later write replaces them (within one call too: the last one is kept); regular writes
    keep their position and are never replaced (the engines' `upsert_writes` merge a
    task's later writes into its row so).
    """
    assert target.checkpoint_id is not None
    check_id(task_id, "task_id")
    check_id(task_path, "task_path")
    by_idx = {
        WRITES_IDX_MAP.get(check_id(channel, _CHANNEL), idx): (channel, value)
        for idx, (channel, value) in enumerate(writes)
    }
    entries = [[idx, channel, codec.encode(value)] for idx, (channel, value) in by_idx.items()]
    return {
        "thread_id": target.thread_id,
        "checkpoint_ns": target.checkpoint_ns,
        "thread_ts": target.checkpoint_id,
        "task_id": task_id,
        "task_path": task_path,
        "writes": dump(entries),
    }


class ValueTexts(dict[str, str]):
    """Stored values of one thread as JSON text, by hash, and their total `size` in
    characters. Text, not parsed trees: kept across reads, it costs the garbage collector
    nothing. The rest is `ValueCaches.take_decoded`'s: how many reads of the thread decode
    for themselves `alone` next, whether a read `kept` its decoded values, and the `backoff`
    (reads alone) due if those are dropped unused."""

    __slots__ = ("alone", "backoff", "kept", "size")

    def __init__(self) -> None:
        super().__init__()
        self.size = 0
        self.alone = 1
        self.kept = False
        self.backoff = 1

    def add(self, h: str, text: str) -> None:
        if h not in self:
            self[h] = text
            self.size += len(text)


def to_tuple(
    row: Sequence[Any],
    codec: JsonCodec,
    config: RunnableConfig | None = None,
    values: ValueCache | None = None,
    texts: ValueTexts | None = None,
) -> CheckpointTuple:
    """Build a CheckpointTuple from a checkpoint row (`rows.CheckpointRow`, as the driver
    gives it) with its aggregated writes.

    References in an interned snapshot (`refs` not NULL) resolve through `values` (a cache
    serving many rows), or else through `texts` (JSON text by hash: the caller has added
    those the row needs).
    """
    thread_id, ns, ts, parent_ts, body, meta, writes, sends, refs = row[:9]
    tree = load(body)
    if not isinstance(tree, dict) or not isinstance(tree.get("channel_values"), dict):
        raise DecodeError(f"checkpoint {thread_id}/{ns}/{ts} is not a checkpoint object")
    checkpoint: dict[str, Any] = {
        k: codec.decode_plain(v) for k, v in tree.items() if k != "channel_values"
    }
    checkpoint["id"] = ts
    cache = None  # rows stored before interning hold no references
    if refs is not None:
        if values is not None:
            values.begin()
        if values is None:
            values = ValueCache(shared=False, raw=ValueTexts() if texts is None else texts)
        cache = values
    checkpoint["channel_values"] = {
        ch: codec.decode(v, cache) for ch, v in tree["channel_values"].items()
    }
    if sends is not None:
        _adopt_pending_sends(checkpoint, load(sends), codec)
    own = {"thread_id": thread_id, "checkpoint_ns": ns}
    if config is None:
        config = {"configurable": {**own, "checkpoint_id": ts}}
    elif "checkpoint_id" not in config["configurable"]:  # asked for by the `thread_ts` alias
        conf = {k: v for k, v in config["configurable"].items() if k != "thread_ts"}
        config = {**config, "configurable": {**conf, "checkpoint_id": ts}}
    return CheckpointTuple(
        config=config,
        checkpoint=checkpoint,  # type: ignore[arg-type]
        metadata=codec.decode_plain(load(meta)),
        parent_config={"configurable": {**own, "checkpoint_id": parent_ts}} if parent_ts else None,
        pending_writes=pending_writes(load(writes), codec) if writes is not None else [],
    )


def pending_writes(
    tasks: list[Any], codec: JsonCodec, channel: str | None = None
) -> list[tuple[str, str, Any]]:
    """The writes of aggregated task rows `[task_id, task_path, [[idx, channel, value],
    ...]]` (those to `channel`, if given) in LangGraph's order."""
    items = []
    for task in tasks:
        if not (type(task) is list and len(task) == 3 and type(task[2]) is list):
            raise DecodeError("stored checkpoint writes are malformed: a task row is not a list")
        task_id, path, entries = task
        if type(task_id) is not str or type(path) is not str:
            raise DecodeError("stored checkpoint writes are malformed: task id or path")
        for entry in entries:
            if not (
                type(entry) is list
                and len(entry) == 3
                and type(entry[0]) is int
                and type(entry[1]) is str
            ):
                raise DecodeError(
                    f"stored writes of task {task_id!r} are malformed: each must be "
                    "[index, channel, value]"
                )
            idx, ch, value = entry
            if channel is None or ch == channel:
                items.append((task_id, ch, path, idx, value))
    items.sort(key=lambda w: writes_sort_key(w[2], w[0], w[3]))
    return [(w[0], w[1], codec.decode(w[4])) for w in items]


#: The text of a checkpoint of format 1 to 3 (its "v" key first, as written or as
#: PostgreSQL's JSONB printed it); a regular expression Python and PostgreSQL both read.
BEFORE_V4 = r'\{"v": ?[123],'
_BEFORE_V4 = re.compile(BEFORE_V4)


def before_v4(body: str) -> bool:
    """Whether checkpoint text `body` is of a format that kept `Send`s on its parent."""
    return _BEFORE_V4.match(body) is not None


def _adopt_pending_sends(checkpoint: dict[str, Any], sends: list[Any], codec: JsonCodec) -> None:
    """Checkpoints older than format v4 kept `Send`s as writes on their parent."""
    pending = [v for _, _, v in pending_writes(sends, codec, TASKS)]
    if not pending:
        return
    checkpoint["channel_values"][TASKS] = pending
    versions = checkpoint.setdefault("channel_versions", {})
    versions[TASKS] = max(versions.values()) if versions else 1


def next_version(current: str | int | float | None) -> str | int:
    """The channel version after `current`.

    New threads use small integers (compact in every snapshot); threads imported from
    databases that used zero-padded string versions keep that format so versions stay
    comparable.
    """
    if current is None:
        return 1
    if isinstance(current, str):
        major = int(current.split(".", 1)[0]) + 1
        return f"{major:032}.{0:016}"
    return int(current) + 1
