"""SQL of the thread registry, time travel and retention, written once from a dialect's
primitives (placeholder, clock, JSON and list parameters)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.serde.types import ERROR, INTERRUPT

if TYPE_CHECKING:
    from .dialect import Dialect

#: WHERE clauses and their parameters.
Filter = tuple[list[str], list[Any]]
#: A keyset position in a thread list: (updated_at, thread_id).
Position = tuple[Any, str]
# Threads are indexed by the minute of their last activity (`updated_minute`, generated from
# `updated_at`), not by the instant: the put that touches a thread's row then changes no
# indexed column unless a new minute began, so PostgreSQL updates the row in place (HOT)
# and its indexes do not grow with every checkpoint. Within a minute the engine sorts.
ORDER = " ORDER BY updated_minute DESC, updated_at DESC, thread_id DESC"

#: The number of writes in a row of `checkpoint_writes` (a task's writes).
WRITE_COUNT = "json_array_length(writes)"

#: A thread's run state: what was reported for its latest root checkpoint, else idle.
RUN_STATE = "CASE WHEN state_ts = head_ts THEN coalesce(state, 'idle') ELSE 'idle' END"


class ThreadSql:
    """Statements on the `threads` table (and the checkpoints it registers).

    Thread SELECTs return `thread_model.ThreadRow`: (thread_id, user_id, title, status,
    run_state, metadata_json, created_at, updated_at).
    """

    def __init__(self, d: Dialect) -> None:
        self.d = d
        p, now, j = d.placeholder, d.now, d.json_param
        self.columns = cols = (
            f"thread_id, user_id, title, status, {RUN_STATE}, {d.json_out('metadata')}, "
            "created_at, updated_at"
        )
        # (thread_id, user_id, title, head_ts): a put creates or touches its thread's row
        self.touch = f"""INSERT INTO threads (thread_id, user_id, title, head_ts)
            VALUES ({p}, {p}, {p}, {p}) ON CONFLICT (thread_id) DO UPDATE SET
            user_id = coalesce(threads.user_id, excluded.user_id),
            title = coalesce(threads.title, excluded.title),
            head_ts = {d.greatest("threads.head_ts", "excluded.head_ts")}, updated_at = {now}"""
        # (thread_id, user_id, state, state_ts): writes reported an interrupt or an error
        self.note_state = f"""INSERT INTO threads (thread_id, user_id, state, state_ts)
            VALUES ({p}, {p}, {p}, {p}) ON CONFLICT (thread_id) DO UPDATE SET
            user_id = coalesce(threads.user_id, excluded.user_id),
            state = CASE WHEN threads.state_ts IS NULL OR excluded.state_ts >= threads.state_ts
                THEN excluded.state ELSE threads.state END,
            state_ts = {d.greatest("threads.state_ts", "excluded.state_ts")}, updated_at = {now}"""
        # (thread_id, user_id, title, metadata)
        self.insert = f"""INSERT INTO threads (thread_id, user_id, title, metadata)
            VALUES ({p}, {p}, {p}, {j}) ON CONFLICT (thread_id) DO NOTHING RETURNING {cols}"""
        self.get = f"SELECT {cols} FROM threads WHERE thread_id = {p}"  # (thread_id,)
        self.get_for_update = self.get + d.for_update
        # (title, metadata, status, thread_id)
        self.update = f"""UPDATE threads SET title = {p}, metadata = {j}, status = {p},
            updated_at = {now} WHERE thread_id = {p} RETURNING {cols}"""
        self.delete = f"DELETE FROM threads WHERE thread_id = {p}"  # (thread_id,)
        # (target, source): a copy keeps what the source has, and is active
        self.copy = f"""INSERT INTO threads
            (thread_id, user_id, title, metadata, head_ts, state, state_ts)
            SELECT {p}, user_id, title, metadata, head_ts, state, state_ts FROM threads
            WHERE thread_id = {p} ON CONFLICT (thread_id) DO NOTHING"""
        # (thread_id,) each: head and run state again from the checkpoints (after a fork)
        self.refresh = (
            f"""UPDATE threads SET head_ts = (SELECT max(c.thread_ts) FROM checkpoints c
            WHERE c.thread_id = threads.thread_id AND c.checkpoint_ns = '')
            WHERE thread_id = {p}""",
            f"""UPDATE threads SET state_ts = head_ts, state = CASE
            WHEN {_head_wrote(ERROR)} THEN 'error'
            WHEN {_head_wrote(INTERRUPT)} THEN 'interrupted' END WHERE thread_id = {p}""",
        )
        # (thread_id,) x5
        self.stats = f"""SELECT updated_at,
            (SELECT count(*) FROM checkpoints c WHERE c.thread_id = t.thread_id),
            (SELECT coalesce(sum({WRITE_COUNT}), 0) FROM checkpoint_writes w
                WHERE w.thread_id = t.thread_id),
            (SELECT coalesce(sum({d.size("c.checkpoint")} + {d.size("c.metadata")}), 0)
                FROM checkpoints c WHERE c.thread_id = t.thread_id)
            + (SELECT coalesce(sum({d.size("v.value")}), 0)
                FROM checkpoint_values v WHERE v.thread_id = t.thread_id),
            (SELECT coalesce(sum({d.size("w.writes")}), 0)
                FROM checkpoint_writes w WHERE w.thread_id = t.thread_id)
            FROM threads t WHERE t.thread_id = {p}"""

        # time travel
        # (thread_id, ns) -> [(latest checkpoint id,)]
        self.latest_id = f"""SELECT max(thread_ts) FROM checkpoints
            WHERE thread_id = {p} AND checkpoint_ns = {p}"""
        # (thread_id, ns, checkpoint_id or None, thread_id, ns, thread_id, ns, limit,
        #  thread_id, ns) -> checkpoint rows, the checkpoint then its ancestors
        self.lineage = f"""WITH RECURSIVE chain (ts, parent, depth) AS (
                SELECT thread_ts, parent_ts, 0 FROM checkpoints
                WHERE thread_id = {p} AND checkpoint_ns = {p} AND thread_ts = coalesce({p},
                    (SELECT max(thread_ts) FROM checkpoints WHERE thread_id = {p}
                    AND checkpoint_ns = {p}))
                UNION ALL
                SELECT x.thread_ts, x.parent_ts, chain.depth + 1 FROM chain
                JOIN checkpoints x ON x.thread_id = {p} AND x.checkpoint_ns = {p}
                AND x.thread_ts = chain.parent WHERE chain.depth + 1 < {p})
            {d.select_checkpoints} JOIN chain ON c.thread_id = {p} AND c.checkpoint_ns = {p}
            AND c.thread_ts = chain.ts ORDER BY chain.depth"""
        # (thread_id, ns, checkpoint_id): a fork drops what came after it in other namespaces
        self.drop_later_writes = f"""DELETE FROM checkpoint_writes WHERE thread_id = {p}
            AND checkpoint_ns <> {p} AND thread_ts > {p}"""
        self.drop_later_checkpoints = f"""DELETE FROM checkpoints WHERE thread_id = {p}
            AND checkpoint_ns <> {p} AND thread_ts > {p}"""

        # retention
        self.cutoff = f"SELECT {d.ago}"  # (seconds,) -> [(timestamp,)]
        # (after_thread_id, limit) -> [(thread_id,)]
        self.ids_after = f"""SELECT thread_id FROM threads WHERE thread_id > {p}
            ORDER BY thread_id LIMIT {p}"""
        # (thread_ids,) -> [(thread_id, ns, ts, parent_ts, delta_counters, created_at)]
        self.shapes = f"""SELECT thread_id, checkpoint_ns, thread_ts, parent_ts,
            {d.delta_counters}, created_at FROM checkpoints WHERE {d.in_array("thread_id")}
            ORDER BY thread_id, checkpoint_ns, thread_ts DESC"""
        # (thread_id, ns, ts_list), counted
        self.delete_checkpoints = f"""DELETE FROM checkpoints WHERE thread_id = {p}
            AND checkpoint_ns = {p} AND {d.in_array("thread_ts")}"""
        self.delete_writes = f"""DELETE FROM checkpoint_writes WHERE thread_id = {p}
            AND checkpoint_ns = {p} AND {d.in_array("thread_ts")}"""
        # (cutoff, cutoff, limit) -> [(thread_id,)]
        self.idle = f"""SELECT thread_id FROM threads
            WHERE updated_minute <= {d.minute(d.ts_param)} AND updated_at < {d.ts_param}
            ORDER BY updated_minute LIMIT {p}"""
        # (thread_ids, cutoff) -> [(thread_id,)]: still idle under the row lock
        self.delete_idle = f"""DELETE FROM threads WHERE {d.in_array("thread_id")}
            AND updated_at < {d.ts_param} RETURNING thread_id"""
        # (thread_ids,), counted
        self.delete_threads_writes = (
            f"DELETE FROM checkpoint_writes WHERE {d.in_array('thread_id')}"
        )
        self.delete_threads_checkpoints = f"DELETE FROM checkpoints WHERE {d.in_array('thread_id')}"

    def where(self, user_id: str | None, status: str | None, run_state: str | None) -> Filter:
        """The WHERE clauses of `list` and `count` on columns, with their parameters."""
        p = self.d.placeholder
        where: Filter = ([], [])
        for clause, value in (
            (f"user_id = {p}", user_id),
            (f"status = {p}", status),
            (f"{RUN_STATE} = {p}", run_state),
        ):
            if value is not None:
                where[0].append(clause)
                where[1].append(value)
        return where

    def matching(self, metadata: dict[str, Any] | None) -> Filter:
        """The WHERE clauses of a metadata filter (each key equal), with their parameters."""
        return self.d.metadata_filter(metadata, "metadata") if metadata else ([], [])

    def page(self, where: Filter, after: Position | None, limit: int) -> tuple[str, list[Any]]:
        """A page of threads, most recently active first, after a keyset position."""
        sql, params = self._after(f"SELECT {self.columns} FROM threads", where, after)
        return sql + f"{ORDER} LIMIT {self.d.placeholder}", [*params, limit]

    def window(
        self, where: Filter, matching: Filter, after: Position | None, size: int, limit: int
    ) -> tuple[str, list[Any]]:
        """A page of the threads among the next `size` that match: read in index order,
        whatever plan the engine caches for a metadata filter."""
        inner, params = self._after("SELECT * FROM threads", where, after)
        p = self.d.placeholder
        sql = f"SELECT {self.columns} FROM ({inner}{ORDER} LIMIT {p}) w{_where(matching[0])}"
        return sql + f"{ORDER} LIMIT {p}", [*params, size, *matching[1], limit]

    def position(self, where: Filter, after: Position | None, offset: int) -> tuple[str, list]:
        """The keyset position (updated_at, thread_id) `offset` rows after `after`."""
        sql, params = self._after("SELECT updated_at, thread_id FROM threads", where, after)
        p = self.d.placeholder
        return sql + f"{ORDER} LIMIT 1 OFFSET {p}", [*params, offset]

    def count(self, where: Filter) -> tuple[str, list[Any]]:
        return f"SELECT count(*) FROM threads{_where(where[0])}", where[1]

    def _after(self, select: str, where: Filter, after: Position | None) -> tuple[str, list]:
        clauses, params = where
        if after is not None:
            d = self.d
            keyset = [
                f"updated_minute <= {d.minute(d.ts_param)}",
                f"(updated_at, thread_id) < ({d.ts_param}, {d.placeholder})",
            ]
            clauses, params = [*clauses, *keyset], [*params, after[0], *after]
        return select + _where(clauses), params


def _head_wrote(channel: str) -> str:
    return f"""EXISTS (SELECT 1 FROM checkpoint_writes_flat w
        WHERE w.thread_id = threads.thread_id AND w.checkpoint_ns = ''
        AND w.thread_ts = threads.head_ts AND w.channel = '{channel}')"""


def _where(clauses: list[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""
