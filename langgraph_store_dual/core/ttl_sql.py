"""SQL of thread time-to-live and erasure (`core.ttl`), written once from an engine's
`Fragments`, with named parameters (listed above each)."""

from __future__ import annotations

from .fragments import Fragments


class TtlSql:
    """Statements on the `threads` table and the rows of the threads they delete."""

    def __init__(self, d: Fragments, columns: str) -> None:
        p, now = d.param, d.now
        cutoff = d.ts_param("cutoff")
        ids = d.in_array("thread_id", "thread_ids")
        # thread_id, user_id, ttl_seconds, ttl_strategy -> ThreadRow: an owner or a ttl set
        # (from now) by hand
        self.patch = f"""UPDATE threads SET user_id = {p("user_id")},
            ttl_seconds = {p("ttl_seconds")}, ttl_strategy = {p("ttl_strategy")},
            updated_at = {now}, expires_at = {d.later(now, p("ttl_seconds"))}
            WHERE thread_id = {p("thread_id")} RETURNING {columns}"""
        # cutoff, limit -> [(thread_id,)]: threads expired by `cutoff`, soonest first
        self.expired = f"""SELECT thread_id FROM threads
            WHERE expires_minute <= {d.minute(cutoff)} AND expires_at <= {cutoff}
            ORDER BY expires_minute LIMIT {p("limit")}"""
        # thread_ids, cutoff -> [(thread_id,)]: the rows of those still expired under the
        # row lock (a put since the SELECT moved its expiry), deleted
        self.delete_expired = f"""DELETE FROM threads WHERE {ids} AND expires_at <= {cutoff}
            AND coalesce(ttl_strategy, 'delete') = 'delete' RETURNING thread_id"""
        # thread_ids, cutoff -> [(thread_id,)]: those still expired, due for pruning; their
        # next activity sets an expiry again
        self.keep_expired = f"""UPDATE threads SET expires_at = NULL WHERE {ids}
            AND expires_at <= {cutoff} AND ttl_strategy = 'keep_latest' RETURNING thread_id"""
        # user_id, limit -> [(thread_id,)]
        self.owned = f"""SELECT thread_id FROM threads WHERE user_id = {p("user_id")}
            LIMIT {p("limit")}"""
        # thread_ids, user_id -> [(thread_id,)]: the rows of those still the user's, deleted
        self.delete_owned = f"""DELETE FROM threads WHERE {ids}
            AND user_id = {p("user_id")} RETURNING thread_id"""
        # thread_ids
        self.delete_values = f"DELETE FROM checkpoint_values WHERE {ids}"
