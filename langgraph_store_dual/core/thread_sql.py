"""SQL of the thread registry, time travel and retention, written once from an engine's
`Fragments` (placeholders, clock, JSON and list parameters)."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.serde.types import ERROR, INTERRUPT

from .fragments import Filter, Fragments
from .search import BY_ACTIVITY, Sort
from .stmt import Sql

#: A statement and its named parameters.
Query = tuple[str, dict[str, Any]]
#: A keyset position in a thread list: (the sort column's value, thread_id).
Position = tuple[Any, str]
# Threads are indexed by the minute of their last activity (`updated_minute`, generated from
# `updated_at`), not by the instant: the put that touches a thread's row then changes no
# indexed column unless a new minute began, so PostgreSQL updates the row in place (HOT)
# and its indexes do not grow with every checkpoint. Within a minute the engine sorts.

#: The number of writes in a row of `checkpoint_writes` (a task's writes).
WRITE_COUNT = "json_array_length(writes)"

#: A thread's run state: what was reported for its latest root checkpoint, else idle.
RUN_STATE = "CASE WHEN state_ts = head_ts THEN coalesce(state, 'idle') ELSE 'idle' END"


class ThreadSql:
    """Statements on the `threads` table (and the checkpoints it registers), with named
    parameters (listed above each). Thread SELECTs return `rows.ThreadRow`."""

    def __init__(self, d: Fragments) -> None:
        self.d = d
        p, now = d.param, d.now
        self.columns = cols = (
            f"thread_id, user_id, title, status, {RUN_STATE} AS run_state, "
            f"{d.json_out('metadata')} AS metadata, created_at, updated_at, "
            "ttl_seconds, ttl_strategy, expires_at"
        )
        # A thread's expiry is its last activity plus its ttl: each statement moving
        # `updated_at` moves `expires_at` (see core/ttl.py).
        expiry = d.later(now, "threads.ttl_seconds")
        new_expiry = d.later(now, p("ttl_seconds"))
        # thread_id, user_id, title, head_ts, ttl_seconds, ttl_strategy (the saver's default
        # ttl, for a new thread): a put creates or touches its thread's row
        self.touch = Sql(f"""INSERT INTO threads
            (thread_id, user_id, title, head_ts, ttl_seconds, ttl_strategy, expires_at)
            VALUES ({p("thread_id")}, {p("user_id")}, {p("title")}, {p("head_ts")},
            {p("ttl_seconds")}, {p("ttl_strategy")}, {new_expiry})
            ON CONFLICT (thread_id) DO UPDATE SET
            user_id = coalesce(threads.user_id, excluded.user_id),
            title = coalesce(threads.title, excluded.title),
            head_ts = {d.greatest("threads.head_ts", "excluded.head_ts")}, updated_at = {now},
            expires_at = {expiry}""")
        # thread_id, user_id, state, state_ts, ttl_seconds, ttl_strategy: writes reported an
        # interrupt or an error
        self.note_state = Sql(f"""INSERT INTO threads
            (thread_id, user_id, state, state_ts, ttl_seconds, ttl_strategy, expires_at)
            VALUES ({p("thread_id")}, {p("user_id")}, {p("state")}, {p("state_ts")},
            {p("ttl_seconds")}, {p("ttl_strategy")}, {new_expiry})
            ON CONFLICT (thread_id) DO UPDATE SET
            user_id = coalesce(threads.user_id, excluded.user_id),
            state = CASE WHEN threads.state_ts IS NULL OR excluded.state_ts >= threads.state_ts
                THEN excluded.state ELSE threads.state END,
            state_ts = {d.greatest("threads.state_ts", "excluded.state_ts")}, updated_at = {now},
            expires_at = {expiry}""")
        # thread_id, user_id, title, metadata
        self.insert = f"""INSERT INTO threads (thread_id, user_id, title, metadata)
            VALUES ({p("thread_id")}, {p("user_id")}, {p("title")}, {d.json_param("metadata")})
            ON CONFLICT (thread_id) DO NOTHING RETURNING {cols}"""
        self.get = f"SELECT {cols} FROM threads WHERE thread_id = {p('thread_id')}"
        self.get_for_update = self.get + d.for_update
        # thread_id, title, metadata, status
        self.update = f"""UPDATE threads SET title = {p("title")},
            metadata = {d.json_param("metadata")}, status = {p("status")},
            updated_at = {now}, expires_at = {expiry}
            WHERE thread_id = {p("thread_id")} RETURNING {cols}"""
        self.delete = f"DELETE FROM threads WHERE thread_id = {p('thread_id')}"
        # target, source: a copy keeps what the source has (its ttl from now), and is active
        self.copy = Sql(f"""INSERT INTO threads (thread_id, user_id, title, metadata, head_ts,
            state, state_ts, ttl_seconds, ttl_strategy, expires_at)
            SELECT {p("target")}, user_id, title, metadata, head_ts, state, state_ts,
            ttl_seconds, ttl_strategy, {expiry} FROM threads WHERE thread_id = {p("source")}
            ON CONFLICT (thread_id) DO NOTHING""")
        # thread_id, each: head and run state again from the checkpoints (after a fork)
        self.refresh = (
            f"""UPDATE threads SET head_ts = (SELECT max(c.thread_ts) FROM checkpoints c
            WHERE c.thread_id = threads.thread_id AND c.checkpoint_ns = '')
            WHERE thread_id = {p("thread_id")}""",
            f"""UPDATE threads SET state_ts = head_ts, state = CASE
            WHEN {_head_wrote(ERROR)} THEN 'error'
            WHEN {_head_wrote(INTERRUPT)} THEN 'interrupted' END
            WHERE thread_id = {p("thread_id")}""",
        )
        # thread_id -> StatsRow
        self.stats = f"""SELECT updated_at,
            (SELECT count(*) FROM checkpoints c WHERE c.thread_id = t.thread_id) AS checkpoints,
            (SELECT coalesce(sum({WRITE_COUNT}), 0) FROM checkpoint_writes w
                WHERE w.thread_id = t.thread_id) AS writes,
            (SELECT coalesce(sum({d.size("c.checkpoint")} + {d.size("c.metadata")}), 0)
                FROM checkpoints c WHERE c.thread_id = t.thread_id) AS checkpoint_bytes,
            (SELECT coalesce(sum({d.size("v.value")}), 0)
                FROM checkpoint_values v WHERE v.thread_id = t.thread_id) AS value_bytes,
            (SELECT coalesce(sum({d.size("w.writes")}), 0)
                FROM checkpoint_writes w WHERE w.thread_id = t.thread_id) AS write_bytes
            FROM threads t WHERE t.thread_id = {p("thread_id")}"""

        # time travel
        tid, ns = p("thread_id"), p("checkpoint_ns")
        # thread_id, checkpoint_ns -> [(latest checkpoint id,)]
        self.latest_id = f"""SELECT max(thread_ts) FROM checkpoints
            WHERE thread_id = {tid} AND checkpoint_ns = {ns}"""
        # thread_id, checkpoint_ns, checkpoint_id (None: the latest), depth -> CheckpointRows,
        # the checkpoint then its ancestors, `depth` of them at most
        self.lineage = f"""WITH RECURSIVE chain (ts, parent, depth) AS (
                SELECT thread_ts, parent_ts, 0 FROM checkpoints
                WHERE thread_id = {tid} AND checkpoint_ns = {ns}
                AND thread_ts = coalesce({p("checkpoint_id")}, ({self.latest_id}))
                UNION ALL
                SELECT x.thread_ts, x.parent_ts, chain.depth + 1 FROM chain
                JOIN checkpoints x ON x.thread_id = {tid} AND x.checkpoint_ns = {ns}
                AND x.thread_ts = chain.parent WHERE chain.depth + 1 < {p("depth")})
            {d.select_checkpoints} JOIN chain ON c.thread_id = {tid} AND c.checkpoint_ns = {ns}
            AND c.thread_ts = chain.ts ORDER BY chain.depth"""
        # thread_id, checkpoint_ns, checkpoint_id: a fork drops what came after it in
        # other namespaces
        later = f"thread_id = {tid} AND checkpoint_ns <> {ns} AND thread_ts > {p('checkpoint_id')}"
        self.drop_later_writes = f"DELETE FROM checkpoint_writes WHERE {later}"
        self.drop_later_checkpoints = f"DELETE FROM checkpoints WHERE {later}"

        # retention
        self.cutoff = f"SELECT {d.ago}"  # seconds -> [(timestamp,)]
        # after, limit -> [(thread_id,)]
        self.ids_after = f"""SELECT thread_id FROM threads WHERE thread_id > {p("after")}
            ORDER BY thread_id LIMIT {p("limit")}"""
        # thread_ids -> ShapeRows
        self.shapes = f"""SELECT thread_id, checkpoint_ns, thread_ts, parent_ts,
            {d.delta_counters} AS delta_counters, created_at FROM checkpoints
            WHERE {d.in_array("thread_id", "thread_ids")}
            ORDER BY thread_id, checkpoint_ns, thread_ts DESC"""
        # thread_id, checkpoint_ns, gone (checkpoint ids), counted
        these = f"thread_id = {tid} AND checkpoint_ns = {ns} AND {d.in_array('thread_ts', 'gone')}"
        self.delete_checkpoints = f"DELETE FROM checkpoints WHERE {these}"
        self.delete_writes = f"DELETE FROM checkpoint_writes WHERE {these}"
        cutoff = d.ts_param("cutoff")
        # cutoff, limit -> [(thread_id,)]
        self.idle = f"""SELECT thread_id FROM threads
            WHERE updated_minute <= {d.minute(cutoff)} AND updated_at < {cutoff}
            ORDER BY updated_minute LIMIT {p("limit")}"""
        # thread_ids, cutoff -> [(thread_id,)]: still idle under the row lock
        self.delete_idle = f"""DELETE FROM threads WHERE {d.in_array("thread_id", "thread_ids")}
            AND updated_at < {cutoff} RETURNING thread_id"""
        # thread_ids, counted
        in_ids = d.in_array("thread_id", "thread_ids")
        self.delete_threads_writes = f"DELETE FROM checkpoint_writes WHERE {in_ids}"
        self.delete_threads_checkpoints = f"DELETE FROM checkpoints WHERE {in_ids}"

    def where(
        self,
        user_id: str | None,
        status: str | None,
        run_state: str | None,
        expires_within: float | None = None,
    ) -> Filter:
        """The WHERE clauses of `list` and `count` on columns, with their parameters."""
        p = self.d.param
        given = {
            "user_id": user_id,
            "status": status,
            "run_state": run_state,
            "expires_within": expires_within,
        }
        clauses = {
            "user_id": f"user_id = {p('user_id')}",
            "status": f"status = {p('status')}",
            "run_state": f"{RUN_STATE} = {p('run_state')}",
            "expires_within": f"expires_at <= {self.d.later(self.d.now, p('expires_within'))}",
        }
        params = {k: v for k, v in given.items() if v is not None}
        return [clauses[k] for k in params], params

    def matching(self, metadata: dict[str, Any] | None) -> Filter:
        """The WHERE clauses of a metadata filter (each key equal), with their parameters."""
        return self.d.metadata_filter(metadata, "metadata") if metadata else ([], {})

    def page(
        self, where: Filter, after: Position | None, limit: int, sort: Sort = BY_ACTIVITY
    ) -> Query:
        """A page of threads in `sort` order (most recently active first), after a keyset
        position."""
        sql, params = self._after(f"SELECT {self.columns} FROM threads", where, after, sort)
        return sql + f"{sort.order_by} LIMIT {self.d.param('limit')}", {**params, "limit": limit}

    def window(
        self,
        where: Filter,
        matching: Filter,
        after: Position | None,
        size: int,
        limit: int,
        sort: Sort = BY_ACTIVITY,
    ) -> Query:
        """A page of the threads among the next `size` that match: read in index order,
        whatever plan the engine caches for a metadata filter."""
        inner, params = self._after("SELECT * FROM threads", where, after, sort)
        p, order = self.d.param, sort.order_by
        sql = f"SELECT {self.columns} FROM ({inner}{order} LIMIT {p('size')}) w"
        sql += f"{_where(matching[0])}{order} LIMIT {p('limit')}"
        return sql, {**params, "size": size, **matching[1], "limit": limit}

    def position(
        self, where: Filter, after: Position | None, offset: int, sort: Sort = BY_ACTIVITY
    ) -> Query:
        """The keyset position (sort column, thread_id) `offset` rows after `after`."""
        select = f"SELECT {sort.by}, thread_id FROM threads"
        sql, params = self._after(select, where, after, sort)
        return sql + f"{sort.order_by} LIMIT 1 OFFSET {self.d.param('offset')}", {
            **params,
            "offset": offset,
        }

    def count(self, where: Filter) -> Query:
        return f"SELECT count(*) FROM threads{_where(where[0])}", where[1]

    def _after(self, select: str, where: Filter, after: Position | None, sort: Sort) -> Query:
        clauses, params = where
        if after is not None:
            d = self.d
            keyset = sort.keyset(d, d.ts_param("after_at"), d.param("after_id"))
            clauses = [*clauses, *keyset]
            params = {**params, "after_at": after[0], "after_id": after[1]}
        return select + _where(clauses), params


def _head_wrote(channel: str) -> str:
    return f"""EXISTS (SELECT 1 FROM checkpoint_writes_flat w
        WHERE w.thread_id = threads.thread_id AND w.checkpoint_ns = ''
        AND w.thread_ts = threads.head_ts AND w.channel = '{channel}')"""


def _where(clauses: list[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""
