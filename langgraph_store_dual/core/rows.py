"""The rows statements return, by name.

Drivers hand rows over as plain tuples. Cold paths name them with `Row._make(row)`; the
hot read path (checkpoint rows) unpacks them in one place (`records.to_tuple`) and
otherwise indexes them with the constants below, so reading a row creates no object.
The dialect contract (`core.dialect`) says which statement returns which row.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class CheckpointRow(NamedTuple):
    """A checkpoint with what reading it needs."""

    thread_id: str
    checkpoint_ns: str
    thread_ts: str
    parent_ts: str | None
    checkpoint: str  # JSON text
    metadata: str  # JSON text
    writes: str | None  # JSON: its task rows [[task_id, task_path, [[idx, channel, value]]]]
    sends: str | None  # JSON: its parent's task rows, for snapshots before format v4
    #: JSON array of the hashes the snapshot needs (all of them, or those it refers to
    #: directly: core/intern.py), or (PostgreSQL's reads) the hashes separated by
    #: spaces; NULL: not interned
    refs: str | None


class ReadRow(NamedTuple):
    """A row of a read (get latest, get by id): the checkpoint (`CheckpointRow`'s columns,
    the value columns NULL) or a stored value its `refs` lists (the checkpoint columns
    NULL: `thread_id` tells them apart)."""

    thread_id: str | None
    checkpoint_ns: str | None
    thread_ts: str | None
    parent_ts: str | None
    checkpoint: str | None
    metadata: str | None
    writes: str | None
    sends: str | None
    refs: str | None
    hash: str | None
    value: str | None  # JSON text
    value_refs: str | None  # the hashes the value refers to, as `refs` gives them


#: Positions in a checkpoint row and a read's rows, for the hot paths.
THREAD_ID, CHECKPOINT_NS, THREAD_TS, PARENT_TS, CHECKPOINT, SENDS = 0, 1, 2, 3, 4, 7
REFS, HASH, VALUE, VALUE_REFS = 8, 9, 10, 11


class ThreadRow(NamedTuple):
    thread_id: str
    user_id: str | None
    title: str | None
    status: str
    run_state: str
    metadata: str  # JSON text
    created_at: Any  # a datetime, or ISO text on SQLite
    updated_at: Any
    ttl_seconds: float | None
    ttl_strategy: str | None
    expires_at: Any


class StatsRow(NamedTuple):
    updated_at: Any
    checkpoints: int
    writes: int
    checkpoint_bytes: int  # snapshots and their metadata
    value_bytes: int  # interned values
    write_bytes: int


class ChannelBytesRow(NamedTuple):
    """The stored size of a channel's values across a thread's snapshots."""

    channel: str
    bytes: int


class HeadRow(NamedTuple):
    """The latest checkpoint of a namespace."""

    checkpoint_ns: str
    thread_ts: str
    delta_counters: str | None  # JSON: its metadata's counters_since_delta_snapshot


class ChainRow(NamedTuple):
    """A checkpoint of a parent chain (newest first), and the channels it holds."""

    thread_ts: str
    parent_ts: str | None
    channels: str | None  # JSON array of its channel_values keys


class ChainWriteRow(NamedTuple):
    thread_ts: str
    task_id: str
    task_path: str
    writes: str  # JSON [[idx, channel, value], ...]


class SeedRow(NamedTuple):
    thread_ts: str
    checkpoint: str  # JSON text
    refs: str | None  # as `ReadRow.refs`


class ValueRow(NamedTuple):
    hash: str
    value: str  # JSON text


class ListedValueRow(NamedTuple):
    hash: str
    value: str  # JSON text
    value_refs: str | None  # JSON array of the hashes it refers to


class ReferenceRow(NamedTuple):
    """A stored document and the hashes it declares: kind "c" for a checkpoint (key
    "ns/ts", document its channel values), "v" for a value (key its hash)."""

    kind: str
    thread_id: str
    key: str
    document: str
    refs: str | None  # as `ReadRow.refs`


class StoredThreadRow(NamedTuple):
    """A thread id stored in a table: kind "c" found in checkpoints, "v" in values."""

    kind: str
    thread_id: str


class ShapeRow(NamedTuple):
    """A checkpoint as retention sees it."""

    thread_id: str
    checkpoint_ns: str
    thread_ts: str
    parent_ts: str | None
    delta_counters: str | None
    created_at: Any
