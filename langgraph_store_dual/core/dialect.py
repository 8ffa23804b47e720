"""What an engine adapter provides: SQL for each operation, and its migrations.

The operations in `ops` are written once against this contract; each engine fills it
with its own SQL (placeholders, JSON functions, list parameters) and nothing else. Every
statement is declared below with the named parameters the core binds and the row
(`core.rows`) it returns; an engine class that misses one, or names a parameter the core
does not bind, is refused when it is defined (`core.contract`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, ClassVar, NamedTuple

from .contract import statement
from .fragments import Fragments
from .records import CheckpointRecord
from .rows import (
    ChainRow,
    ChainWriteRow,
    ChannelBytesRow,
    HeadRow,
    ListedValueRow,
    ReadRow,
    ReferenceRow,
    SeedRow,
    StoredThreadRow,
    ValueRow,
)
from .stmt import Routine, Sql
from .thread_sql import Query, ThreadSql

#: Table names of ours that other savers (the official ones) also use.
SHARED_TABLE_NAMES = ("checkpoints", "checkpoint_writes")

#: The order of `list`: newest first; ties (copies, namespaces) by thread and namespace.
_LIST_ORDER = " ORDER BY c.thread_ts DESC, c.thread_id DESC, c.checkpoint_ns DESC"

#: The parameters of `upsert_checkpoint` (`put_params`): the row, and the snapshot's values
#: as parallel lists (`hashes`, `values`, `value_refs`) for engines without `insert_values`.
PUT_PARAMS = (
    "thread_id checkpoint_ns thread_ts parent_ts checkpoint metadata run_id refs "
    "hashes values value_refs"
)
#: A checkpoint's key.
_AT = "thread_id checkpoint_ns thread_ts"


class ListWhere(NamedTuple):
    """The checkpoints `list` selects: those matching every condition that is not None."""

    thread_id: str | None
    checkpoint_ns: str | None
    checkpoint_id: str | None
    before: str | None  # checkpoint ids below this one
    metadata: dict[str, Any] | None  # keys equal to these values


class Dialect(Fragments, abstract=True):
    """SQL of one engine: the statements below, with named parameters."""

    #: Numbered migrations: index i holds the statements that take the schema to version i + 1.
    migrations: ClassVar[Sequence[Sequence[str]]]
    required = (*Fragments.required, "migrations")

    # setup
    create_version_table: ClassVar[str] = statement()
    select_version_table: ClassVar[str] = statement(doc="[(1,)] if the version table exists")
    select_taken_tables: ClassVar[str] = statement(doc="[(name,)] of our tables in use")
    lock_setup: ClassVar[str | None] = statement(
        optional=True, doc="serialises concurrent setup(); None if the transaction does"
    )
    select_version: ClassVar[str] = statement(doc="[(version,)]")
    insert_version: ClassVar[str] = statement("version")
    #: Of the `routines` named (a list parameter), those the database has.
    select_routines: ClassVar[str | None] = statement("names", optional=True, doc="[(name,)]")

    # reads: the checkpoint (by id, or the latest) and, unless `select_listed_values`
    # reads them, the values its `refs` lists but the `known` ones (a list parameter)
    select_latest: ClassVar[str] = statement("thread_id checkpoint_ns known", ReadRow)
    select_by_id: ClassVar[str] = statement(f"{_AT} known", ReadRow)
    select_head: ClassVar[str] = statement("thread_id checkpoint_ns", doc="[(thread_ts,)]")
    #: A checkpoint's task rows as the `writes` column gives them (`thread_ts` its
    #: parent's), for a read of a snapshot before format v4, whose `sends` column the read
    #: statement leaves NULL (PostgreSQL: its plan, made at every call without prepared
    #: statements, costs less); None where the read statement fills it.
    select_sends: ClassVar[str | None] = statement(_AT, optional=True, doc="[(JSON or NULL,)]")
    #: The values a checkpoint row's `refs` column lists (bound as it came) but the
    #: `known` ones, each with its own refs, not followed further: a second statement of
    #: a read, for engines where it costs no round trip and beats adding the values to
    #: the first (SQLite); None where the read statement returns them.
    select_listed_values: ClassVar[str | None] = statement(
        "thread_id refs known", ListedValueRow, optional=True
    )
    select_values: ClassVar[str] = statement(
        "thread_id hashes known", ValueRow, doc="those values and the values they refer to"
    )

    # writes
    #: also inserts the snapshot's values unless `insert_values` does
    upsert_checkpoint: ClassVar[Sql] = statement(PUT_PARAMS, parts=True)
    insert_values: ClassVar[str | None] = statement(
        "thread_id hash value refs", optional=True, doc="executemany, `value_rows`"
    )
    #: `records.write_row(...)`: a task's writes, merged into its row if it has one
    upsert_writes: ClassVar[Sql] = statement(f"{_AT} task_id task_path writes", parts=True)

    # deletion and copies
    #: stops puts on those threads until the transaction ends (None when write
    #: transactions already exclude each other); `share_threads` only stops sweeps
    lock_threads: ClassVar[str | None] = statement("thread_ids", optional=True)
    share_threads: ClassVar[str | None] = statement("thread_ids", optional=True)
    delete_thread_writes: ClassVar[str] = statement("thread_id")
    delete_thread_checkpoints: ClassVar[str] = statement("thread_id")
    delete_thread_values: ClassVar[str] = statement("thread_id")
    sweep_values: ClassVar[str] = statement(
        "thread_id", doc="delete the values no checkpoint of the thread needs"
    )
    delete_run_writes: ClassVar[str] = statement("run_ids")
    delete_run_checkpoints: ClassVar[str] = statement("run_ids", doc="[(thread_id,)] deleted")
    #: Copy the values the source's snapshots need, its checkpoints and its writes.
    #: Together they must read one state of the source, or a put landing between two of
    #: them leaves the copy referring to values it lacks: one statement (its parts share a
    #: snapshot), or statements in a transaction that excludes puts.
    copy_thread: ClassVar[Sequence[Sql]] = statement("target source", several=True, parts=True)
    select_references: ClassVar[str] = statement("thread_id", ReferenceRow)
    select_stored_threads: ClassVar[str] = statement(
        "after limit",
        StoredThreadRow,
        doc="the first `limit` thread ids from `after` on (>=) of checkpoints, and of values",
    )
    select_channel_bytes: ClassVar[str] = statement(
        "thread_id", ChannelBytesRow, doc="per channel: its values' bytes, inline and interned"
    )
    #: the `Stmt.settings` of `threads.stats`' statements, which read a whole thread and
    #: which the planner overestimates (None: nothing to set)
    analysis_settings: ClassVar[str | None] = statement(optional=True)

    # pruning and delta channels
    select_heads: ClassVar[str] = statement("thread_id", HeadRow, doc="the latest per ns")
    select_chain: ClassVar[str] = statement(_AT, ChainRow, doc="it and its ancestors")
    select_chain_writes: ClassVar[str] = statement(
        "thread_id checkpoint_ns thread_ts_list", ChainWriteRow
    )
    select_seeds: ClassVar[str] = statement("thread_id checkpoint_ns thread_ts_list", SeedRow)
    delete_ns_writes_except: ClassVar[str] = statement("thread_id checkpoint_ns keep")
    delete_ns_checkpoints_except: ClassVar[str] = statement("thread_id checkpoint_ns keep")

    @cached_property
    def routines(self) -> Mapping[str, Routine]:
        """Database functions standing in for statements (by the statement's text) on
        connections that prepare no statements; `setup()` creates those missing. None on
        engines that plan statements once anyway."""
        return {}

    @cached_property
    def threads(self) -> ThreadSql:
        """The SQL of the thread registry, time travel and retention on this engine."""
        return ThreadSql(self)

    def together(self, first: Sql, then: Sql) -> list[Sql]:
        """Two writes of one transaction (binding the same named parameters), as one
        statement where the engine can combine them."""
        return [first, then]

    def list_query(self, where: ListWhere, limit: int | None) -> Query:
        """The SELECT behind `list`, with its parameters: newest first, then by thread and
        namespace (a total order, which `list_page` resumes)."""
        conditions, params = self._list_conditions(where)
        sql = self.select_checkpoints + conditions + _LIST_ORDER
        if limit is not None:
            sql += f" LIMIT {self.param('limit')}"
            params["limit"] = limit
        return sql, params

    def list_page(self, where: ListWhere, size: int, after: Sequence[str] | None) -> Query:
        """The next `size` rows of `list_query` after the row whose (thread_ts, thread_id,
        checkpoint_ns) is `after` (None: the first). The page's keys are chosen first, so
        only its rows' columns are computed, even where the engine sorts."""
        conditions, params = self._list_conditions(where, after)
        keys = f"""SELECT c.thread_id, c.checkpoint_ns, c.thread_ts FROM checkpoints c
            {conditions}{_LIST_ORDER} LIMIT {self.param("size")}"""
        sql = f"""{self.select_checkpoints}
            WHERE (c.thread_id, c.checkpoint_ns, c.thread_ts) IN ({keys}){_LIST_ORDER}"""
        return sql, {**params, "size": size}

    def _list_conditions(
        self, where: ListWhere, after: Sequence[str] | None = None
    ) -> tuple[str, dict[str, Any]]:
        p = self.param
        clauses: list[str] = []
        params: dict[str, Any] = {}
        for name, clause, value in (
            ("thread_id", f"c.thread_id = {p('thread_id')}", where.thread_id),
            ("checkpoint_ns", f"c.checkpoint_ns = {p('checkpoint_ns')}", where.checkpoint_ns),
            ("checkpoint_id", f"c.thread_ts = {p('checkpoint_id')}", where.checkpoint_id),
            ("before", f"c.thread_ts < {p('before')}", where.before),
        ):
            if value is not None:
                clauses.append(clause)
                params[name] = value
        if after is not None:  # the first condition is a range an index scan can start at
            ts, tid, ns = p("after_ts"), p("after_thread_id"), p("after_ns")
            clauses.append(f"c.thread_ts <= {ts}")
            clauses.append(
                f"(c.thread_ts < {ts} OR c.thread_id < {tid} OR "
                f"(c.thread_id = {tid} AND c.checkpoint_ns < {ns}))"
            )
            params.update(zip(("after_ts", "after_thread_id", "after_ns"), after, strict=True))
        if where.metadata:
            more, values = self.metadata_filter(where.metadata)
            clauses += more
            params.update(values)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def put_params(self, record: CheckpointRecord) -> dict[str, Any]:
        """The named parameters of `upsert_checkpoint` (`PUT_PARAMS`)."""
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
