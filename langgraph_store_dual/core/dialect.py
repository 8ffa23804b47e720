"""What an engine adapter provides: SQL text for each operation, and its migrations.

The operations in `ops` are written once against this interface; each engine fills it
with its own SQL (placeholders, JSON functions, list parameters) and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

if TYPE_CHECKING:
    from .records import CheckpointRecord
    from .thread_sql import ThreadSql

#: Table names of ours that other savers (the official ones) also use.
SHARED_TABLE_NAMES = ("checkpoints", "checkpoint_writes")

#: The order of `list`: newest first; ties (copies, namespaces) by thread and namespace.
_LIST_ORDER = " ORDER BY c.thread_ts DESC, c.thread_id DESC, c.checkpoint_ns DESC"


class ListWhere(NamedTuple):
    """The checkpoints `list` selects: those matching every condition that is not None."""

    thread_id: str | None
    checkpoint_ns: str | None
    checkpoint_id: str | None
    before: str | None  # checkpoint ids below this one
    metadata: dict[str, Any] | None  # keys equal to these values


class Dialect:
    """SQL of one engine. Statements take positional parameters in the documented order,
    or named ones where noted (`{name: ...}`)."""

    name: ClassVar[str]
    #: Numbered migrations: index i holds the statements that take the schema to version i + 1.
    migrations: ClassVar[Sequence[Sequence[str]]]

    # setup
    create_version_table: ClassVar[str]
    select_version_table: ClassVar[str]  # -> [(1,)] when the version table exists, else []
    select_taken_tables: ClassVar[str]  # -> [(name,)] of our table names already in use
    lock_setup: ClassVar[str | None]  # serialises concurrent setup(); None if the transaction does
    select_version: ClassVar[str]  # -> [(version,)]
    insert_version: ClassVar[str]  # (version,)

    # checkpoint SELECTs return
    # (thread_id, ns, ts, parent_ts, checkpoint, metadata, writes, sends, refs, values)
    # refs: JSON array of the hashes the snapshot refers to (NULL: stored before interning);
    # values: JSON array of [hash, JSON text] of the values it needs but the `known` hashes
    # (and those under them) (NULL in `list` rows)
    select_latest: ClassVar[str]  # (thread_id, ns, known)
    select_by_id: ClassVar[str]  # (thread_id, ns, ts, known)
    select_head: ClassVar[str]  # (thread_id, ns) -> [(ts,)] of the latest checkpoint
    #: {`put_params`}; also inserts the snapshot's values unless `insert_values` does
    upsert_checkpoint: ClassVar[str]
    insert_values: ClassVar[str | None]  # (thread_id, hash, value, refs), executemany
    #: `records.write_row(...)`: a task's writes, merged into its row if it has one
    upsert_writes: ClassVar[str]
    #: {thread_id, hashes, known} -> [(hash, value)]: those values and the values they
    #: refer to, following references but not into the `known` hashes
    select_values: ClassVar[str]

    # deletion and copies
    #: (thread_ids,): stops puts on those threads until the transaction ends (None when
    #: write transactions already exclude each other); `share_threads` only stops sweeps
    lock_threads: ClassVar[str | None]
    share_threads: ClassVar[str | None]
    delete_thread_writes: ClassVar[str]  # (thread_id,)
    delete_thread_checkpoints: ClassVar[str]  # (thread_id,)
    delete_thread_values: ClassVar[str]  # (thread_id,)
    sweep_values: ClassVar[str]  # {thread_id}: delete the values no checkpoint of it needs
    delete_run_writes: ClassVar[str]  # (run_ids,)
    delete_run_checkpoints: ClassVar[str]  # (run_ids,) -> [(thread_id,)] of deleted rows
    #: {target, source}: copy the values the source's snapshots need, its checkpoints and
    #: its writes. Together they must read one state of the source, or a put landing
    #: between two of them leaves the copy referring to values it lacks: one statement
    #: (its parts share a snapshot), or statements in a transaction that excludes puts.
    copy_thread: ClassVar[Sequence[str]]
    select_references: ClassVar[str]  # {thread_id (None: all)} -> [(kind, thread_id, key,
    #   json, refs)]: kind "c" for a checkpoint (key ns/ts), "v" for a value (key hash)

    # pruning and delta channels
    select_heads: ClassVar[str]  # (thread_id,) -> [(ns, ts, delta_counters_json)], latest per ns
    select_chain: ClassVar[str]  # (thread_id, ns, ts) -> [(ts, parent_ts, held_channels_json)]
    #   the checkpoint and its ancestors, newest first
    select_chain_writes: ClassVar[str]  # (thread_id, ns, ts_list)
    #   -> [(ts, task_id, task_path, entries)]
    select_seeds: ClassVar[str]  # (thread_id, ns, ts_list) -> [(ts, checkpoint, refs)]
    delete_ns_writes_except: ClassVar[str]  # (thread_id, ns, keep_ts_list)
    delete_ns_checkpoints_except: ClassVar[str]  # (thread_id, ns, keep_ts_list)

    #: The SELECT of checkpoint rows, without WHERE (table alias `c`), and the placeholder.
    select_checkpoints: ClassVar[str]
    placeholder: ClassVar[str]

    # the thread registry: primitives its SQL (`threads`) is built from
    now: ClassVar[str]  # the current time, as stored in created_at / updated_at
    json_param: ClassVar[str]  # a placeholder for JSON text
    ts_param: ClassVar[str]  # a placeholder for a timestamp read back from the database
    ago: ClassVar[str]  # the time a number of seconds (one parameter) before now
    delta_counters: ClassVar[str]  # a checkpoint's counters_since_delta_snapshot, as JSON text
    for_update: ClassVar[str]  # appended to a SELECT to lock its rows until the commit
    metadata_index: ClassVar[bool] = False  # thread metadata filters can use an index

    @cached_property
    def threads(self) -> ThreadSql:
        """The SQL of the thread registry, time travel and retention on this engine."""
        from .thread_sql import ThreadSql

        return ThreadSql(self)

    def json_out(self, expr: str) -> str:
        """`expr` (a JSON column) as JSON text."""
        return expr

    def in_array(self, expr: str) -> str:
        """A condition: `expr` is in the list bound (with `array`) as one parameter."""
        raise NotImplementedError

    def minute(self, ts: str) -> str:
        """The minute of timestamp `ts` as the generated column `threads.updated_minute`
        holds it."""
        raise NotImplementedError

    def greatest(self, a: str, b: str) -> str:
        """The larger of two nullable values (NULL only if both are)."""
        raise NotImplementedError

    def size(self, expr: str) -> str:
        """The stored size of a value, in bytes."""
        raise NotImplementedError

    def counted(self, sql: str, each: str = "1") -> str:
        """A DELETE returning rows whose numbers add up to the sum of `each` (a number per
        deleted row) over what it deleted."""
        raise NotImplementedError

    def together(
        self, first: tuple[str, Sequence[Any]], then: tuple[str, Sequence[Any]]
    ) -> list[tuple[str, Sequence[Any]]]:
        """Two writes of one transaction, as one statement where the engine can combine them."""
        return [first, then]

    def metadata_filter(
        self, filter: dict[str, Any], column: str = "c.metadata"
    ) -> tuple[list[str], list[Any]]:
        """WHERE clauses (and their parameters) matching metadata keys to values exactly."""
        raise NotImplementedError

    def list_query(self, where: ListWhere, limit: int | None) -> tuple[str, list[Any]]:
        """The SELECT behind `list`, with its parameters: newest first, then by thread and
        namespace (a total order, which `list_page` resumes)."""
        conditions, params = self._list_conditions(where)
        sql = self.select_checkpoints + conditions + _LIST_ORDER
        if limit is not None:
            sql += f" LIMIT {self.placeholder}"
            params.append(limit)
        return sql, params

    def list_page(
        self, where: ListWhere, size: int, after: Sequence[str] | None
    ) -> tuple[str, list[Any]]:
        """The next `size` rows of `list_query` after the row whose (thread_ts, thread_id,
        checkpoint_ns) is `after` (None: the first). The page's keys are chosen first, so
        only its rows' columns are computed, even where the engine sorts."""
        conditions, params = self._list_conditions(where, after)
        keys = f"""SELECT c.thread_id, c.checkpoint_ns, c.thread_ts FROM checkpoints c
            {conditions}{_LIST_ORDER} LIMIT {self.placeholder}"""
        sql = f"""{self.select_checkpoints}
            WHERE (c.thread_id, c.checkpoint_ns, c.thread_ts) IN ({keys}){_LIST_ORDER}"""
        return sql, [*params, size]

    def _list_conditions(
        self, where: ListWhere, after: Sequence[str] | None = None
    ) -> tuple[str, list[Any]]:
        p = self.placeholder
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in (
            (f"c.thread_id = {p}", where.thread_id),
            (f"c.checkpoint_ns = {p}", where.checkpoint_ns),
            (f"c.thread_ts = {p}", where.checkpoint_id),
            (f"c.thread_ts < {p}", where.before),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if after is not None:  # the first condition is a range an index scan can start at
            ts, tid, ns = after
            clauses.append(f"c.thread_ts <= {p}")
            clauses.append(
                f"(c.thread_ts < {p} OR c.thread_id < {p} OR "
                f"(c.thread_id = {p} AND c.checkpoint_ns < {p}))"
            )
            params += [ts, ts, tid, tid, ns]
        if where.metadata:
            more, values = self.metadata_filter(where.metadata)
            clauses += more
            params += values
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def array(self, values: Sequence[Any]) -> Any:
        """A list bound as one parameter (JSON text on SQLite, an array on PostgreSQL)."""
        raise NotImplementedError

    def put_params(self, record: CheckpointRecord) -> dict[str, Any]:
        """The named parameters of `upsert_checkpoint`."""
        return {
            "thread_id": record.thread_id,
            "checkpoint_ns": record.checkpoint_ns,
            "thread_ts": record.thread_ts,
            "parent_ts": record.parent_ts,
            "checkpoint": record.checkpoint,
            "metadata": record.metadata,
            "run_id": record.run_id,
            "refs": self.array(record.refs),
        }
