"""SQLite SQL: JSON text columns read with SQLite's JSON functions, lists bound as JSON arrays."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from ..codec import encode_plain
from ..core.dialect import SHARED_TABLE_NAMES, Dialect
from ..core.fragments import Filter
from ..core.search import CREATED_INDEXES
from ..core.stmt import Sql

_SCHEMA_V1 = (
    """CREATE TABLE checkpoints (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        thread_ts TEXT NOT NULL,
        parent_ts TEXT,
        checkpoint TEXT NOT NULL CHECK (json_valid(checkpoint)),
        metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
        run_id TEXT,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (thread_id, checkpoint_ns, thread_ts)
    )""",
    "CREATE INDEX checkpoints_run_id ON checkpoints (run_id) WHERE run_id IS NOT NULL",
    """CREATE TABLE checkpoint_writes (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        thread_ts TEXT NOT NULL,
        task_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        channel TEXT NOT NULL,
        task_path TEXT NOT NULL DEFAULT '',
        value TEXT NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, thread_ts, task_id, idx)
    ) WITHOUT ROWID""",
)

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

# The thread registry. A thread's run state is `state` when `state_ts` (the checkpoint an
# interrupt or error was written for) is its latest root checkpoint `head_ts`, else idle.
_SCHEMA_THREADS = (
    f"""CREATE TABLE threads (
        thread_id TEXT PRIMARY KEY,
        user_id TEXT,
        title TEXT,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
        metadata TEXT NOT NULL DEFAULT '{{}}' CHECK (json_valid(metadata)),
        head_ts TEXT,
        state TEXT CHECK (state IN ('interrupted', 'error')),
        state_ts TEXT,
        created_at TEXT NOT NULL DEFAULT ({_NOW}),
        updated_at TEXT NOT NULL DEFAULT ({_NOW})
    ) WITHOUT ROWID""",
    "CREATE INDEX threads_user_recent ON threads (user_id, updated_at DESC, thread_id DESC)",
    "CREATE INDEX threads_recent ON threads (updated_at DESC, thread_id DESC)",
    # existing databases: a row per thread, its owner from the first checkpoint naming one
    """INSERT INTO threads (thread_id, user_id, created_at, updated_at)
        SELECT c.thread_id, (SELECT json_extract(x.metadata, '$.user_id') FROM checkpoints x
            WHERE x.thread_id = c.thread_id AND json_type(x.metadata, '$.user_id')
            IN ('text', 'integer') ORDER BY x.thread_ts LIMIT 1), min(c.created_at),
            max(c.created_at)
        FROM checkpoints c GROUP BY c.thread_id""",
    """UPDATE threads SET head_ts = (SELECT max(c.thread_ts) FROM checkpoints c
        WHERE c.thread_id = threads.thread_id AND c.checkpoint_ns = '')""",
    """UPDATE threads SET state_ts = head_ts, state = CASE
        WHEN EXISTS (SELECT 1 FROM checkpoint_writes w WHERE w.thread_id = threads.thread_id
            AND w.checkpoint_ns = '' AND w.thread_ts = threads.head_ts
            AND w.channel = '__error__') THEN 'error'
        WHEN EXISTS (SELECT 1 FROM checkpoint_writes w WHERE w.thread_id = threads.thread_id
            AND w.checkpoint_ns = '' AND w.thread_ts = threads.head_ts
            AND w.channel = '__interrupt__') THEN 'interrupted' END
        WHERE head_ts IS NOT NULL""",
)


def _expanded(doc: str, thread: str) -> str:
    """An expression expanding the references in JSON text `doc` of thread `thread`, textually:
    {"$r":h} becomes the stored value, {"$s":h} the stored run's items (brackets dropped).
    The recursion alternates between finding the next reference and replacing it."""
    r, s = """'{"$r":"'""", """'{"$s":"'"""
    first = f"""CASE WHEN instr(x.t, {r}) = 0 THEN instr(x.t, {s})
        WHEN instr(x.t, {s}) = 0 THEN instr(x.t, {r})
        ELSE min(instr(x.t, {r}), instr(x.t, {s})) END"""
    token = "substr(x.t, x.p, 31)"
    value = f"""coalesce((SELECT CASE substr(x.t, x.p + 3, 1) WHEN 'r' THEN v.value
        ELSE substr(v.value, 2, length(v.value) - 2) END FROM checkpoint_values v
        WHERE v.thread_id = {thread} AND v.hash = substr(x.t, x.p + 7, 22)),
        '{{"$missing":"' || substr(x.t, x.p + 7, 22) || '"}}')"""
    return f"""(WITH RECURSIVE x (t, p) AS (
            SELECT {doc}, NULL
            UNION ALL
            SELECT CASE WHEN x.p IS NULL THEN x.t ELSE replace(x.t, {token}, {value}) END,
                CASE WHEN x.p IS NULL THEN {first} END
            FROM x WHERE x.p IS NULL OR x.p > 0)
        SELECT t FROM x WHERE p = 0)"""


# Interned values (see core/intern.py): one row per thread and hash; `refs` lists the
# hashes a snapshot or value refers to directly (NULL on checkpoints stored before, and
# on values that refer to none). `checkpoints_expanded` shows snapshots with references
# replaced by what they stand for.
_SCHEMA_INTERN = (
    """CREATE TABLE checkpoint_values (
        thread_id TEXT NOT NULL,
        hash TEXT NOT NULL,
        value TEXT NOT NULL,
        refs TEXT,
        PRIMARY KEY (thread_id, hash)
    ) WITHOUT ROWID""",
    "ALTER TABLE checkpoints ADD COLUMN refs TEXT",
    f"""CREATE VIEW checkpoints_expanded AS SELECT c.thread_id, c.checkpoint_ns, c.thread_ts,
        c.parent_ts, CASE WHEN c.refs IS NULL OR c.refs = '[]' THEN c.checkpoint
        ELSE {_expanded("c.checkpoint", "c.thread_id")} END AS checkpoint,
        c.metadata, c.run_id, c.created_at FROM checkpoints c""",
)


def _writes_of(ts: str) -> str:
    """A JSON array text of a checkpoint's task rows, `[task_id, task_path, writes]`."""
    return f"""(SELECT '[' || group_concat('[' || json_quote(w.task_id) || ',' ||
        json_quote(w.task_path) || ',' || w.writes || ']', ',') || ']'
        FROM checkpoint_writes w WHERE w.thread_id = c.thread_id
        AND w.checkpoint_ns = c.checkpoint_ns AND w.thread_ts = {ts})"""


# The checkpoint format before v4 kept pending `Send`s as writes on the parent. The
# checkpoint text always starts with its "v" key, so the test reads no JSON.
_COLUMNS = f"""c.thread_id, c.checkpoint_ns, c.thread_ts, c.parent_ts, c.checkpoint,
    c.metadata, {_writes_of("c.thread_ts")} AS writes,
    CASE WHEN c.parent_ts IS NOT NULL AND substr(c.checkpoint, 1, 7) IN
        ('{{"v":1,', '{{"v":2,', '{{"v":3,')
    THEN {_writes_of("c.parent_ts")} END AS sends, c.refs"""
_SELECT = f"SELECT {_COLUMNS} FROM checkpoints c"


def _one(where: str) -> str:
    """The latest checkpoint of those `where` selects, as a read's row; its values follow
    in `select_listed_values` (rows of a second statement, at no round trip's cost, read
    faster than the same rows added here with UNION ALL: 50 against 56 us a read)."""
    return f"""WITH c AS MATERIALIZED (
            SELECT * FROM checkpoints WHERE {where} ORDER BY thread_ts DESC LIMIT 1)
    SELECT {_COLUMNS}, NULL AS hash, NULL AS value, NULL AS value_refs FROM c"""


def _live(thread: str) -> str:
    """The recursive CTE `live`: the hashes of the values the snapshots of thread `thread`
    need."""
    return f"""live (hash) AS (
            SELECT j.value FROM checkpoints c, json_each(c.refs) j WHERE c.thread_id = {thread}
            UNION
            SELECT j.value FROM live JOIN checkpoint_values v
            ON v.thread_id = {thread} AND v.hash = live.hash, json_each(v.refs) j)"""


# A metadata key matches when its JSON type and value are equal; the key is bound, never
# spliced into a JSON path.
_MATCH = """EXISTS (SELECT 1 FROM json_each({column}) m WHERE m.key = :{p}key
    AND m.type = :{p}type AND (m.type IN ('true', 'false', 'null') OR m.value = :{p}value))"""


def _in(name: str) -> str:
    """IN the list bound (as a JSON array) as parameter `name`."""
    return f"IN (SELECT value FROM json_each(:{name}))"


def _json_type(value: Any) -> tuple[str, Any]:
    """json_each's type name for an encoded filter value, and the value to compare."""
    if value is None:
        return "null", None
    if value is True or value is False:
        return ("true" if value else "false"), None
    if isinstance(value, int):
        return "integer", value
    if isinstance(value, float):
        return "real", value
    if isinstance(value, str):
        return "text", value
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return ("array" if isinstance(value, list) else "object"), text


# Threads are listed by the minute of their last activity, then the instant (see
# core/thread_sql.py). Version 4 changed PostgreSQL's column types too.
_SCHEMA_THREAD_MINUTES = (
    """ALTER TABLE threads ADD COLUMN updated_minute TEXT
        GENERATED ALWAYS AS (substr(updated_at, 1, 16)) VIRTUAL""",
    "DROP INDEX threads_user_recent",
    "DROP INDEX threads_recent",
    "CREATE INDEX threads_user_recent ON threads (user_id, updated_minute DESC)",
    "CREATE INDEX threads_recent ON threads (updated_minute DESC)",
)


# Version 5 keeps a task's writes in one row, `writes` holding `[[idx, channel, value],
# ...]` (see the PostgreSQL dialect); `checkpoint_writes_flat` shows a row per write.
_SCHEMA_TASK_WRITES = (
    """CREATE TABLE checkpoint_task_writes (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        thread_ts TEXT NOT NULL,
        task_id TEXT NOT NULL,
        task_path TEXT NOT NULL DEFAULT '',
        writes TEXT NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, thread_ts, task_id)
    ) WITHOUT ROWID""",
    """INSERT INTO checkpoint_task_writes
        SELECT thread_id, checkpoint_ns, thread_ts, task_id, min(task_path),
            '[' || group_concat('[' || idx || ',' || json_quote(channel) || ',' || value || ']',
            ',') || ']'
        FROM (SELECT * FROM checkpoint_writes ORDER BY thread_id, checkpoint_ns, thread_ts,
            task_id, idx)
        GROUP BY thread_id, checkpoint_ns, thread_ts, task_id""",
    "DROP TABLE checkpoint_writes",
    "ALTER TABLE checkpoint_task_writes RENAME TO checkpoint_writes",
    """CREATE VIEW checkpoint_writes_flat AS SELECT w.thread_id, w.checkpoint_ns, w.thread_ts,
        w.task_id, w.task_path, e.value ->> 0 AS idx, e.value ->> 1 AS channel,
        e.value -> 2 AS value FROM checkpoint_writes w, json_each(w.writes) e""",
)


# Version 6: a thread's time-to-live (core/ttl.py). `expires_at` is its last activity plus
# `ttl_seconds`, kept by every statement that moves `updated_at`; sweeps find expired threads
# by the minute of their expiry, as lists find recent ones (see the PostgreSQL dialect).
_SCHEMA_TTL = (
    "ALTER TABLE threads ADD COLUMN ttl_seconds REAL CHECK (ttl_seconds > 0)",
    """ALTER TABLE threads ADD COLUMN ttl_strategy TEXT
        CHECK (ttl_strategy IN ('delete', 'keep_latest'))""",
    "ALTER TABLE threads ADD COLUMN expires_at TEXT",
    """ALTER TABLE threads ADD COLUMN expires_minute TEXT
        GENERATED ALWAYS AS (substr(expires_at, 1, 16)) VIRTUAL""",
    "CREATE INDEX threads_expiry ON threads (expires_minute) WHERE expires_minute IS NOT NULL",
)

# Version 7 (usage and thread search): `message_usage` has a row per AI message with token
# usage found in a thread's writes, counted once however many writes hold it (by id, else
# by its JSON), with its model, owner and the time of the first checkpoint it was written
# against; thread lists sort by creation too.
_SCHEMA_USAGE = (
    *CREATED_INDEXES,
    """CREATE VIEW message_usage AS SELECT u.thread_id, u.user_id,
        max(u.message_id) AS message_id, max(u.model) AS model,
        max(u.input_tokens) AS input_tokens, max(u.output_tokens) AS output_tokens,
        max(u.total_tokens) AS total_tokens, min(u.created_at) AS created_at,
        substr(min(u.created_at), 1, 10) AS day
    FROM (SELECT w.thread_id, t.user_id, m.value ->> '$.id' AS message_id,
            coalesce(m.value ->> '$.id', m.value) AS message_key,
            coalesce(m.value ->> '$.response_metadata.model_name',
                m.value ->> '$.response_metadata.model') AS model,
            CAST(m.value ->> '$.usage_metadata.input_tokens' AS INTEGER) AS input_tokens,
            CAST(m.value ->> '$.usage_metadata.output_tokens' AS INTEGER) AS output_tokens,
            CAST(CASE WHEN json_type(m.value, '$.usage_metadata.total_tokens')
                IN ('integer', 'real') THEN m.value ->> '$.usage_metadata.total_tokens'
                ELSE (m.value ->> '$.usage_metadata.input_tokens')
                + (m.value ->> '$.usage_metadata.output_tokens') END AS INTEGER)
                AS total_tokens,
            c.created_at
        FROM threads t
        JOIN checkpoint_writes w ON w.thread_id = t.thread_id
        JOIN checkpoints c ON c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns
            AND c.thread_ts = w.thread_ts,
        json_tree(w.writes) m
        WHERE instr(w.writes, '"usage_metadata"') > 0 AND m.type = 'object'
            AND m.value ->> '$."$t"' = 'msg' AND m.value ->> '$.type' IN ('ai', 'AIMessageChunk')
            AND json_type(m.value, '$.usage_metadata.input_tokens') IN ('integer', 'real')
            AND json_type(m.value, '$.usage_metadata.output_tokens') IN ('integer', 'real')) u
    GROUP BY u.thread_id, u.user_id, u.message_key""",
)


class SqliteDialect(Dialect):
    name = "sqlite"
    named_param = re.compile(r"(?<![:\w]):(\w+)")
    positional_param = re.compile(r"\?")
    select_checkpoints = _SELECT
    migrations = (
        _SCHEMA_V1,
        _SCHEMA_INTERN,
        _SCHEMA_THREADS,
        _SCHEMA_THREAD_MINUTES,
        _SCHEMA_TASK_WRITES,
        _SCHEMA_TTL,
        _SCHEMA_USAGE,
    )

    create_version_table = """CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY,
        applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"""
    select_version_table = (
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    )
    select_taken_tables = f"""SELECT name FROM sqlite_master WHERE type = 'table'
        AND name IN {tuple(SHARED_TABLE_NAMES)}"""
    lock_setup = None  # setup runs in BEGIN IMMEDIATE, which already excludes other writers
    select_version = "SELECT max(version) FROM schema_version"
    insert_version = "INSERT INTO schema_version (version) VALUES (:version)"

    select_latest = _one("thread_id = :thread_id AND checkpoint_ns = :checkpoint_ns")
    select_head = """SELECT thread_ts FROM checkpoints
        WHERE thread_id = :thread_id AND checkpoint_ns = :checkpoint_ns
        ORDER BY thread_ts DESC LIMIT 1"""
    select_sends = None  # the read statement fills `sends` (its plan is cached)
    select_routines = None  # statements are prepared once per connection: no routines
    select_by_id = _one(
        "thread_id = :thread_id AND checkpoint_ns = :checkpoint_ns AND thread_ts = :thread_ts"
    )
    upsert_checkpoint = Sql("""INSERT INTO checkpoints
        (thread_id, checkpoint_ns, thread_ts, parent_ts, checkpoint, metadata, run_id, refs)
        VALUES (:thread_id, :checkpoint_ns, :thread_ts, :parent_ts, :checkpoint, :metadata,
        :run_id, :refs)
        ON CONFLICT (thread_id, checkpoint_ns, thread_ts) DO UPDATE SET
        parent_ts = excluded.parent_ts, checkpoint = excluded.checkpoint,
        metadata = excluded.metadata, run_id = excluded.run_id, refs = excluded.refs""")
    insert_values = """INSERT INTO checkpoint_values (thread_id, hash, value, refs)
        VALUES (:thread_id, :hash, :value, :refs) ON CONFLICT DO NOTHING"""
    select_listed_values = """SELECT v.hash, v.value, v.refs AS value_refs
        FROM json_each(:refs) j CROSS JOIN checkpoint_values v
        ON v.thread_id = :thread_id AND v.hash = j.value
        WHERE j.value NOT IN (SELECT value FROM json_each(:known))"""
    select_values = """WITH RECURSIVE needed (hash) AS (
            SELECT value FROM json_each(:hashes)
            UNION
            SELECT j.value FROM needed CROSS JOIN checkpoint_values v
            ON v.thread_id = :thread_id AND v.hash = needed.hash, json_each(v.refs) j
            WHERE j.value NOT IN (SELECT value FROM json_each(:known)))
        SELECT v.hash, v.value FROM needed CROSS JOIN checkpoint_values v
        ON v.thread_id = :thread_id AND v.hash = needed.hash"""
    # A task's later writes merge into its row: regular writes (idx >= 0) already there
    # stay, special ones (idx < 0: errors, interrupts, ...) are replaced.
    upsert_writes = Sql("""INSERT INTO checkpoint_writes
        (thread_id, checkpoint_ns, thread_ts, task_id, task_path, writes)
        VALUES (:thread_id, :checkpoint_ns, :thread_ts, :task_id, :task_path, :writes)
        ON CONFLICT (thread_id, checkpoint_ns, thread_ts, task_id) DO UPDATE SET writes = (
            SELECT '[' || group_concat(e, ',') || ']' FROM (
                SELECT o.value AS e FROM json_each(checkpoint_writes.writes) o
                WHERE o.value ->> 0 >= 0 OR o.value ->> 0 NOT IN (SELECT x.value ->> 0
                    FROM json_each(excluded.writes) x)
                UNION ALL
                SELECT n.value FROM json_each(excluded.writes) n
                WHERE n.value ->> 0 < 0 OR n.value ->> 0 NOT IN (SELECT x.value ->> 0
                    FROM json_each(checkpoint_writes.writes) x)))""")

    lock_threads = share_threads = None  # write transactions exclude each other
    delete_thread_writes = "DELETE FROM checkpoint_writes WHERE thread_id = :thread_id"
    delete_thread_checkpoints = "DELETE FROM checkpoints WHERE thread_id = :thread_id"
    delete_thread_values = "DELETE FROM checkpoint_values WHERE thread_id = :thread_id"
    sweep_values = f"""WITH RECURSIVE {_live(":thread_id")} DELETE FROM checkpoint_values
        WHERE thread_id = :thread_id AND hash NOT IN (SELECT hash FROM live)"""
    delete_run_writes = f"""DELETE FROM checkpoint_writes
        WHERE (thread_id, checkpoint_ns, thread_ts) IN (SELECT thread_id, checkpoint_ns, thread_ts
        FROM checkpoints WHERE run_id {_in("run_ids")})"""
    delete_run_checkpoints = (
        f"DELETE FROM checkpoints WHERE run_id {_in('run_ids')} RETURNING thread_id"
    )
    # Three statements: the write transaction they run in keeps puts out.
    copy_thread = (
        Sql(
            """INSERT INTO checkpoint_values (thread_id, hash, value, refs)
            SELECT :target, v.hash, v.value, v.refs FROM live JOIN checkpoint_values v
            ON v.thread_id = :source AND v.hash = live.hash WHERE true ON CONFLICT DO NOTHING""",
            (_live(":source"),),
            recursive=True,
        ),
        Sql("""INSERT INTO checkpoints (thread_id, checkpoint_ns, thread_ts, parent_ts,
        checkpoint, metadata, run_id, created_at, refs)
        SELECT :target, checkpoint_ns, thread_ts, parent_ts, checkpoint, metadata, run_id,
        created_at, refs FROM checkpoints WHERE thread_id = :source ON CONFLICT DO NOTHING"""),
        Sql("""INSERT INTO checkpoint_writes
        (thread_id, checkpoint_ns, thread_ts, task_id, task_path, writes)
        SELECT :target, checkpoint_ns, thread_ts, task_id, task_path, writes
        FROM checkpoint_writes WHERE thread_id = :source ON CONFLICT DO NOTHING"""),
    )

    select_heads = """SELECT c.checkpoint_ns, c.thread_ts,
        c.metadata -> '$.counters_since_delta_snapshot' AS delta_counters
        FROM checkpoints c WHERE c.thread_id = :thread_id AND c.thread_ts = (
        SELECT max(x.thread_ts) FROM checkpoints x
        WHERE x.thread_id = :thread_id AND x.checkpoint_ns = c.checkpoint_ns)"""
    select_chain = """WITH RECURSIVE chain (ts, parent, depth) AS (
            SELECT thread_ts, parent_ts, 0 FROM checkpoints
            WHERE thread_id = :thread_id AND checkpoint_ns = :checkpoint_ns
            AND thread_ts = :thread_ts
            UNION ALL
            SELECT c.thread_ts, c.parent_ts, chain.depth + 1 FROM chain CROSS JOIN checkpoints c
            ON c.thread_id = :thread_id AND c.checkpoint_ns = :checkpoint_ns
            AND c.thread_ts = chain.parent
            WHERE chain.depth < 1000000)
        SELECT chain.ts AS thread_ts, chain.parent AS parent_ts, (SELECT json_group_array(v.key)
            FROM checkpoints c, json_each(c.checkpoint, '$.channel_values') v
            WHERE c.thread_id = :thread_id AND c.checkpoint_ns = :checkpoint_ns
            AND c.thread_ts = chain.ts) AS channels
        FROM chain ORDER BY chain.depth"""
    select_chain_writes = f"""SELECT thread_ts, task_id, task_path, writes
        FROM checkpoint_writes WHERE thread_id = :thread_id AND checkpoint_ns = :checkpoint_ns
        AND thread_ts {_in("thread_ts_list")}"""
    select_seeds = f"""SELECT thread_ts, checkpoint, refs FROM checkpoints
        WHERE thread_id = :thread_id AND checkpoint_ns = :checkpoint_ns
        AND thread_ts {_in("thread_ts_list")}"""
    select_references = """SELECT 'c' AS kind, thread_id, checkpoint_ns || '/' || thread_ts
            AS key, checkpoint -> '$.channel_values' AS document, refs FROM checkpoints
        WHERE refs IS NOT NULL AND thread_id = :thread_id
        UNION ALL
        SELECT 'v', thread_id, hash, value, refs FROM checkpoint_values
        WHERE thread_id = :thread_id"""
    select_stored_threads = """SELECT * FROM (SELECT DISTINCT 'c' AS kind, thread_id
            FROM checkpoints WHERE thread_id >= :after ORDER BY thread_id LIMIT :limit)
        UNION ALL
        SELECT * FROM (SELECT DISTINCT 'v', thread_id FROM checkpoint_values
            WHERE thread_id >= :after ORDER BY thread_id LIMIT :limit)"""
    # a channel's values inline in each snapshot, and the values they lead to, once each
    select_channel_bytes = """WITH RECURSIVE
        channels (channel, doc, type) AS (
            SELECT ch.key, c.checkpoint -> ch.fullkey, ch.type FROM checkpoints c,
            json_each(c.checkpoint, '$.channel_values') ch WHERE c.thread_id = :thread_id),
        reach (channel, hash) AS (
            SELECT DISTINCT channels.channel, r.value FROM channels, json_tree(channels.doc) r
            WHERE channels.type IN ('object', 'array') AND r.key IN ('$r', '$s')
                AND r.type = 'text'
            UNION
            SELECT reach.channel, j.value FROM reach JOIN checkpoint_values v
            ON v.thread_id = :thread_id AND v.hash = reach.hash, json_each(v.refs) j)
        SELECT channel, coalesce(sum(bytes), 0) AS bytes FROM (
            SELECT channel, length(CAST(doc AS BLOB)) AS bytes FROM channels
            UNION ALL
            SELECT reach.channel, length(CAST(v.value AS BLOB)) FROM reach
            JOIN checkpoint_values v ON v.thread_id = :thread_id AND v.hash = reach.hash)
        GROUP BY channel ORDER BY channel"""
    analysis_settings = None  # no JIT, nothing to set
    delete_ns_writes_except = f"""DELETE FROM checkpoint_writes
        WHERE thread_id = :thread_id AND checkpoint_ns = :checkpoint_ns
        AND thread_ts NOT {_in("keep")}"""
    delete_ns_checkpoints_except = f"""DELETE FROM checkpoints
        WHERE thread_id = :thread_id AND checkpoint_ns = :checkpoint_ns
        AND thread_ts NOT {_in("keep")}"""

    now = _NOW
    ago = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%.6f seconds', :seconds))"
    delta_counters = "metadata -> '$.counters_since_delta_snapshot'"
    for_update = ""  # write transactions hold the database's write lock already

    def param(self, name: str) -> str:
        return f":{name}"

    def array(self, values: Sequence[Any]) -> str:
        return orjson.dumps(list(values)).decode()

    def in_array(self, expr: str, name: str) -> str:
        return f"{expr} {_in(name)}"

    def minute(self, ts: str) -> str:
        return f"substr({ts}, 1, 16)"

    def later(self, ts: str, seconds: str) -> str:
        start = "'now'" if ts == self.now else ts  # the same instant within a statement
        return f"""CASE WHEN {seconds} IS NOT NULL THEN strftime('%Y-%m-%dT%H:%M:%fZ', {start},
            printf('%+.3f seconds', {seconds})) END"""

    def greatest(self, a: str, b: str) -> str:
        return f"coalesce(max({a}, {b}), {a}, {b})"

    def size(self, expr: str) -> str:
        return f"length(CAST({expr} AS BLOB))"

    def counted(self, sql: str, each: str = "1") -> str:
        return f"{sql} RETURNING {each}"

    def metadata_filter(self, filter: dict[str, Any], column: str = "c.metadata") -> Filter:
        clauses: list[str] = []
        params: dict[str, Any] = {}
        for i, (key, value) in enumerate(filter.items()):
            p = f"meta_{i}_"
            clauses.append(_MATCH.format(column=column, p=p))
            params[p + "key"] = key
            params[p + "type"], params[p + "value"] = _json_type(encode_plain(value))
        return clauses, params


SQLITE = SqliteDialect()
