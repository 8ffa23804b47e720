"""PostgreSQL SQL: JSONB columns, lists bound as arrays, setup serialised by an advisory lock."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import orjson

from ..codec import encode_plain
from ..core.dialect import SHARED_TABLE_NAMES, Dialect
from ..core.fragments import Filter
from ..core.records import BEFORE_V4, CheckpointRecord
from ..core.rows import ReadRow
from ..core.search import CREATED_INDEXES
from ..core.stmt import Routine, Sql
from .routines import routine

_SCHEMA_V1 = (
    """CREATE TABLE checkpoints (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        thread_ts TEXT COLLATE "C" NOT NULL,
        parent_ts TEXT COLLATE "C",
        checkpoint JSONB NOT NULL,
        metadata JSONB NOT NULL DEFAULT '{}',
        run_id TEXT,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (thread_id, checkpoint_ns, thread_ts)
    )""",
    "CREATE INDEX checkpoints_run_id ON checkpoints (run_id) WHERE run_id IS NOT NULL",
    "CREATE INDEX checkpoints_metadata ON checkpoints USING gin (metadata jsonb_path_ops)",
    """CREATE TABLE checkpoint_writes (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        thread_ts TEXT COLLATE "C" NOT NULL,
        task_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        channel TEXT NOT NULL,
        task_path TEXT NOT NULL DEFAULT '',
        value JSONB NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, thread_ts, task_id, idx)
    )""",
)

# The thread registry. A thread's run state is `state` when `state_ts` (the checkpoint an
# interrupt or error was written for) is its latest root checkpoint `head_ts`, else idle.
_SCHEMA_THREADS = (
    """CREATE TABLE threads (
        thread_id TEXT PRIMARY KEY,
        user_id TEXT,
        title TEXT,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
        metadata JSONB NOT NULL DEFAULT '{}',
        head_ts TEXT COLLATE "C",
        state TEXT CHECK (state IN ('interrupted', 'error')),
        state_ts TEXT COLLATE "C",
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX threads_user_recent ON threads (user_id, updated_at DESC, thread_id DESC)",
    "CREATE INDEX threads_recent ON threads (updated_at DESC, thread_id DESC)",
    "CREATE INDEX threads_metadata ON threads USING gin (metadata jsonb_path_ops)",
    # existing databases: a row per thread, its owner from the first checkpoint naming one
    """INSERT INTO threads (thread_id, user_id, created_at, updated_at)
        SELECT thread_id, (array_agg(metadata ->> 'user_id' ORDER BY thread_ts)
            FILTER (WHERE jsonb_typeof(metadata -> 'user_id') IN ('string', 'number')))[1],
            min(created_at), max(created_at)
        FROM checkpoints GROUP BY thread_id""",
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


def _expand_function(create: str, json: str) -> str:
    """`checkpoint_expand(thread_id, doc)`: a JSON document of a thread (of type `json`)
    with references replaced by what they stand for, textually: {"$r": h} by the value,
    {"$s": h} by the run's items."""
    return rf"""{create} FUNCTION checkpoint_expand(thread_id TEXT, doc {json}) RETURNS {json}
    LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
    DECLARE
        t TEXT := doc::text;
        m TEXT[];
        v TEXT;
    BEGIN
        LOOP
            m := regexp_match(t, '(\{{"\$([rs])": ?"([A-Za-z0-9_-]{{22}})"\}})');
            EXIT WHEN m IS NULL;
            SELECT c.value INTO v FROM checkpoint_values c
            WHERE c.thread_id = checkpoint_expand.thread_id AND c.hash = m[3];
            IF v IS NULL THEN
                v := '{{"$missing": "' || m[3] || '"}}';
            ELSIF m[2] = 's' THEN
                v := substr(v, 2, length(v) - 2);
            END IF;
            t := replace(t, m[1], v);
        END LOOP;
        RETURN t::{json};
    END
    $$"""


# Interned values (see core/intern.py): one row per thread and hash; `refs` lists the
# hashes a snapshot or value refers to directly (NULL on checkpoints stored before).
_SCHEMA_INTERN = (
    """CREATE TABLE checkpoint_values (
        thread_id TEXT NOT NULL,
        hash TEXT COLLATE "C" NOT NULL,
        value TEXT NOT NULL,
        refs TEXT[] COLLATE "C",
        PRIMARY KEY (thread_id, hash)
    )""",
    'ALTER TABLE checkpoints ADD COLUMN refs TEXT[] COLLATE "C"',
    # Large values (runs of items) compress faster and smaller with lz4, where available.
    """DO $$ BEGIN
        ALTER TABLE checkpoint_values ALTER COLUMN value SET COMPRESSION lz4;
        ALTER TABLE checkpoint_writes ALTER COLUMN value SET COMPRESSION lz4;
        ALTER TABLE checkpoints ALTER COLUMN checkpoint SET COMPRESSION lz4;
    EXCEPTION WHEN OTHERS THEN NULL;  -- before PostgreSQL 14, or built without lz4
    END $$""",
    _expand_function("CREATE", "JSONB"),
    """CREATE VIEW checkpoints_expanded AS SELECT thread_id, checkpoint_ns, thread_ts,
        parent_ts, CASE WHEN refs IS NULL OR refs = '{}' THEN checkpoint
        ELSE checkpoint_expand(thread_id, checkpoint) END AS checkpoint,
        metadata, run_id, created_at FROM checkpoints""",
)

# Version 4 makes what every put writes smaller and cheaper:
# - snapshots and writes are JSON text, kept as written: PostgreSQL stores and returns it
#   without converting it to or from JSONB, and object keys keep their order, so the codec
#   needs no key-order envelopes;
# - checkpoint metadata stays JSONB for containment filters but loses its GIN index: `list`
#   filters within a thread (the primary key), and the index cost a tenth of every put's
#   bytes (thread search keeps its own);
# - `refs` columns list hashes as space-separated text (26 bytes for one hash against an
#   array's 52, 233 for ten against 304);
# - threads are listed by the minute of their last activity (see core/thread_sql.py).
# Its statements can run again after the thread registry is rebuilt (version 3).
_SCHEMA_COMPACT = (
    "DROP INDEX IF EXISTS checkpoints_metadata",
    """ALTER TABLE threads ADD COLUMN updated_minute TIMESTAMP
        GENERATED ALWAYS AS (date_trunc('minute', updated_at AT TIME ZONE 'UTC')) STORED""",
    "DROP INDEX threads_user_recent",
    "DROP INDEX threads_recent",
    "CREATE INDEX threads_user_recent ON threads (user_id, updated_minute DESC)",
    "CREATE INDEX threads_recent ON threads (updated_minute DESC)",
    # room on each page for the updates of the thread's row that puts make in place
    "ALTER TABLE threads SET (fillfactor = 90)",
    "DROP VIEW IF EXISTS checkpoints_expanded",
    "DROP FUNCTION IF EXISTS checkpoint_expand(TEXT, JSONB)",
    "ALTER TABLE checkpoints ALTER COLUMN checkpoint TYPE JSON USING checkpoint::json",
    "ALTER TABLE checkpoint_writes ALTER COLUMN value TYPE JSON USING value::json",
    """DO $$ BEGIN
        IF (SELECT data_type FROM information_schema.columns WHERE table_schema =
            current_schema() AND table_name = 'checkpoints' AND column_name = 'refs') = 'ARRAY'
        THEN
            ALTER TABLE checkpoints ALTER COLUMN refs TYPE TEXT COLLATE "C"
                USING array_to_string(refs, ' ');
            ALTER TABLE checkpoint_values ALTER COLUMN refs TYPE TEXT COLLATE "C"
                USING array_to_string(refs, ' ');
        END IF;
    END $$""",
    """DO $$ BEGIN
        ALTER TABLE checkpoint_writes ALTER COLUMN value SET COMPRESSION lz4;
        ALTER TABLE checkpoints ALTER COLUMN checkpoint SET COMPRESSION lz4;
    EXCEPTION WHEN feature_not_supported THEN NULL;  -- built without lz4
    END $$""",
    _expand_function("CREATE OR REPLACE", "JSON"),
    """CREATE VIEW checkpoints_expanded AS SELECT thread_id, checkpoint_ns, thread_ts,
        parent_ts, CASE WHEN refs IS NULL OR refs = '' THEN checkpoint
        ELSE checkpoint_expand(thread_id, checkpoint) END AS checkpoint,
        metadata, run_id, created_at FROM checkpoints""",
)

# Version 5 keeps a task's writes in one row, `writes` holding `[[idx, channel, value],
# ...]`: a put_writes stores one row, and the writes of a step cost one row's keys and
# index entry instead of one per channel written. `checkpoint_writes_flat` shows a row
# per write.
_SCHEMA_TASK_WRITES = (
    """CREATE TABLE checkpoint_task_writes (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        thread_ts TEXT COLLATE "C" NOT NULL,
        task_id TEXT NOT NULL,
        task_path TEXT NOT NULL DEFAULT '',
        writes JSON NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, thread_ts, task_id)
    )""",
    """INSERT INTO checkpoint_task_writes
        SELECT thread_id, checkpoint_ns, thread_ts, task_id, min(task_path),
            json_agg(json_build_array(idx, channel, value) ORDER BY idx)
        FROM checkpoint_writes GROUP BY thread_id, checkpoint_ns, thread_ts, task_id""",
    "DROP TABLE checkpoint_writes",
    "ALTER TABLE checkpoint_task_writes RENAME TO checkpoint_writes",
    "ALTER INDEX checkpoint_task_writes_pkey RENAME TO checkpoint_writes_pkey",
    """DO $$ BEGIN
        ALTER TABLE checkpoint_writes ALTER COLUMN writes SET COMPRESSION lz4;
    EXCEPTION WHEN feature_not_supported THEN NULL;  -- built without lz4
    END $$""",
    # one row per write, for reading with SQL
    """CREATE VIEW checkpoint_writes_flat AS SELECT w.thread_id, w.checkpoint_ns, w.thread_ts,
        w.task_id, w.task_path, (e ->> 0)::int AS idx, e ->> 1 AS channel, e -> 2 AS value
        FROM checkpoint_writes w, json_array_elements(w.writes) e""",
)

# Version 6: a thread's time-to-live (core/ttl.py). `expires_at` is its last activity plus
# `ttl_seconds`, kept by every statement that moves `updated_at`. Sweeps find expired
# threads through the minute of their expiry: like `updated_minute`, it changes at most
# once a minute, so the put touching the row stays an in-place (HOT) update.
_SCHEMA_TTL = (
    """ALTER TABLE threads
        ADD COLUMN ttl_seconds DOUBLE PRECISION CHECK (ttl_seconds > 0),
        ADD COLUMN ttl_strategy TEXT CHECK (ttl_strategy IN ('delete', 'keep_latest')),
        ADD COLUMN expires_at TIMESTAMPTZ,
        ADD COLUMN expires_minute TIMESTAMP
            GENERATED ALWAYS AS (date_trunc('minute', expires_at AT TIME ZONE 'UTC')) STORED""",
    "CREATE INDEX threads_expiry ON threads (expires_minute) WHERE expires_minute IS NOT NULL",
)

# Version 7 (usage and thread search): `message_usage` has a row per AI message with token
# usage found in a thread's writes, counted once however many writes hold it (by id, else
# by a digest of its JSON), with its model, owner and the time of the first checkpoint it
# was written against; thread lists sort by creation too. Filters on thread_id and
# user_id (grouping columns) reach the writes' primary key and the threads' index.
_SCHEMA_USAGE = (
    *CREATED_INDEXES,
    """CREATE VIEW message_usage AS SELECT u.thread_id, u.user_id,
        max(u.message_id) AS message_id, max(u.model) AS model,
        max(u.input_tokens) AS input_tokens, max(u.output_tokens) AS output_tokens,
        max(u.total_tokens) AS total_tokens, min(u.created_at) AS created_at,
        to_char(min(u.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day
    FROM (SELECT w.thread_id, t.user_id, m ->> 'id' AS message_id,
            coalesce(m ->> 'id', md5(m::text)) AS message_key,
            coalesce(m #>> '{response_metadata,model_name}',
                m #>> '{response_metadata,model}') AS model,
            (m #>> '{usage_metadata,input_tokens}')::numeric::bigint AS input_tokens,
            (m #>> '{usage_metadata,output_tokens}')::numeric::bigint AS output_tokens,
            coalesce(CASE WHEN jsonb_typeof(m #> '{usage_metadata,total_tokens}') = 'number'
                THEN (m #>> '{usage_metadata,total_tokens}')::numeric::bigint END,
                (m #>> '{usage_metadata,input_tokens}')::numeric::bigint
                + (m #>> '{usage_metadata,output_tokens}')::numeric::bigint) AS total_tokens,
            c.created_at
        FROM threads t
        JOIN checkpoint_writes w ON w.thread_id = t.thread_id
        JOIN checkpoints c ON c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns
            AND c.thread_ts = w.thread_ts,
        jsonb_path_query(w.writes::jsonb, 'strict $.** ? (@."$t" == "msg"
            && (@.type == "ai" || @.type == "AIMessageChunk")
            && @.usage_metadata.input_tokens.type() == "number"
            && @.usage_metadata.output_tokens.type() == "number")') m
        WHERE strpos(w.writes::text, '"usage_metadata"') > 0) u
    GROUP BY u.thread_id, u.user_id, u.message_key""",
)

# Puts and sweeps of one thread exclude each other (a sweep must see every snapshot that
# still needs a value): puts take this advisory lock shared, sweeps exclusive.
_LOCK_CLASS = 736451928


def _writes_of(ts: str) -> str:
    """A JSON array of a checkpoint's task rows, `[task_id, task_path, writes]`."""
    return f"""(SELECT json_agg(json_build_array(w.task_id, w.task_path, w.writes))::text
        FROM checkpoint_writes w WHERE w.thread_id = c.thread_id
        AND w.checkpoint_ns = c.checkpoint_ns AND w.thread_ts = {ts})"""


# JSON goes over the wire as text and is parsed by orjson, never by the driver.
def _refs(column: str) -> str:
    """The hashes a `refs` column lists (space-separated text, see version 4 above)."""
    return f"string_to_array({column}, ' ')"


# The checkpoint format before v4 kept pending `Send`s as writes on the parent. Its "v"
# key comes first (as written, or as JSONB printed those stored before schema version 4),
# so the test reads text, not JSON: a row the JSON functions reject cannot fail a `list`.
_BEFORE_V4 = f"substr(c.checkpoint::text, 1, 8) ~ '^{BEFORE_V4}'"


def _columns(sends: str, refs: str) -> str:
    return f"""c.thread_id, c.checkpoint_ns, c.thread_ts, c.parent_ts, c.checkpoint::text,
    c.metadata::text, {_writes_of("c.thread_ts")} AS writes, {sends} AS sends, {refs} AS refs"""


_COLUMNS = _columns(
    f"CASE WHEN c.parent_ts IS NOT NULL AND {_BEFORE_V4} THEN {_writes_of('c.parent_ts')} END",
    "c.refs",
)
_SELECT = f"SELECT {_COLUMNS} FROM checkpoints c"


# The stored values of thread `thread` that the hashes in array `refs` name. OFFSET 0 keeps
# it one index lookup per hash: pulled up into a join, it would read all the thread's
# values (and the planner, overestimating, would compile the query with JIT).
def _values_of(refs: str, thread: str = "c.thread_id") -> str:
    return f"""unnest({refs}) AS r (hash), LATERAL (SELECT v.hash, v.value, v.refs
        FROM checkpoint_values v WHERE v.thread_id = {thread} AND v.hash = r.hash OFFSET 0) v"""


def _one(where: str) -> str:
    """The latest checkpoint of those `where` selects, then the values its `refs` name
    (all it needs, for a snapshot that lists its closure; see core/intern.py) but those
    under hashes the caller knows (an array parameter after `where`'s): a read's rows,
    one round trip. Values as rows, not aggregated into one JSON array: nothing to
    escape, build and parse (a read 50 us faster, measured).

    Planned at every call where prepared statements are off (PgBouncer), so kept plain:
    `sends` left to `select_sends`, refs as stored (hashes separated by spaces, not
    built into JSON for every row)."""
    return f"""WITH c AS MATERIALIZED (
            SELECT * FROM checkpoints WHERE {where} ORDER BY thread_ts DESC LIMIT 1)
    SELECT {_columns("NULL", "c.refs")}, NULL AS hash, NULL AS value, NULL AS value_refs
    FROM c
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, v.hash, v.value, v.refs
    FROM c, {_values_of(_refs("c.refs"))} WHERE r.hash <> ALL(%(known)s::text[])"""


#: The conditions naming a thread's namespace.
_AT_NS = "thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s"

# A put is one statement: lock, values, checkpoint. More per-put writes join as CTEs.
_PUT_LOCK = f"""thread_lock AS MATERIALIZED (
    SELECT pg_advisory_xact_lock_shared({_LOCK_CLASS}, hashtext(%(thread_id)s)))"""
_PUT_VALUES = """new_values AS (
    INSERT INTO checkpoint_values (thread_id, hash, value, refs)
    SELECT %(thread_id)s, v.hash, v.value, v.refs
    FROM thread_lock, unnest(%(hashes)b::text[], %(values)b::text[], %(value_refs)b::text[])
        AS v (hash, value, refs)
    ON CONFLICT DO NOTHING)"""
_PUT_CHECKPOINT = """INSERT INTO checkpoints
    (thread_id, checkpoint_ns, thread_ts, parent_ts, checkpoint, metadata, run_id, refs)
    SELECT %(thread_id)s, %(checkpoint_ns)s, %(thread_ts)s, %(parent_ts)s, %(checkpoint)s::json,
        %(metadata)s::jsonb, %(run_id)s, %(refs)s
    FROM thread_lock
    ON CONFLICT (thread_id, checkpoint_ns, thread_ts) DO UPDATE SET
    parent_ts = EXCLUDED.parent_ts, checkpoint = EXCLUDED.checkpoint,
    metadata = EXCLUDED.metadata, run_id = EXCLUDED.run_id, refs = EXCLUDED.refs"""


def _live(thread: str) -> str:
    """The recursive CTE `live`: the values the snapshots of thread `thread` need."""
    return f"""live (hash, value, refs) AS (
            SELECT v.* FROM (SELECT array_agg(DISTINCT h) AS refs FROM checkpoints,
                unnest({_refs("refs")}) AS h WHERE thread_id = {thread}) AS c,
                {_values_of("c.refs", thread)}
            UNION
            SELECT v.* FROM live, {_values_of(_refs("live.refs"), thread)})"""


class PostgresDialect(Dialect):
    name = "postgres"
    named_param = re.compile(r"%\((\w+)\)[sbt]")
    positional_param = re.compile(r"%[sbt]")
    select_checkpoints = _SELECT
    migrations = (
        _SCHEMA_V1,
        _SCHEMA_INTERN,
        _SCHEMA_THREADS,
        _SCHEMA_COMPACT,
        _SCHEMA_TASK_WRITES,
        _SCHEMA_TTL,
        _SCHEMA_USAGE,
    )

    create_version_table = """CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
    select_version_table = "SELECT 1 WHERE to_regclass('schema_version') IS NOT NULL"
    select_taken_tables = f"""SELECT name FROM unnest(ARRAY{list(SHARED_TABLE_NAMES)}) name
        WHERE to_regclass(name) IS NOT NULL"""
    # One key for every process: concurrent setup() calls wait for each other.
    lock_setup = "SELECT pg_advisory_xact_lock(7364519283746501)"
    select_version = "SELECT max(version) FROM schema_version"
    select_routines = """SELECT proname FROM pg_proc
        WHERE proname = ANY(%(names)s::text[]) AND pg_function_is_visible(oid)"""
    insert_version = "INSERT INTO schema_version (version) VALUES (%(version)s)"

    select_latest = _one(_AT_NS)
    select_head = f"""SELECT thread_ts FROM checkpoints WHERE {_AT_NS}
        ORDER BY thread_ts DESC LIMIT 1"""
    select_by_id = _one(f"{_AT_NS} AND thread_ts = %(thread_ts)s")
    select_sends = f"""SELECT {_writes_of("%(thread_ts)s")} FROM (SELECT %(thread_id)s AS thread_id,
        %(checkpoint_ns)s AS checkpoint_ns) AS c"""
    upsert_checkpoint = Sql(_PUT_CHECKPOINT, (_PUT_LOCK, _PUT_VALUES))
    insert_values = None
    select_listed_values = None  # the read statement fetches them: one round trip
    select_values = f"""WITH RECURSIVE known AS MATERIALIZED (
            SELECT unnest(%(known)s::text[]) AS hash),
        needed (hash, value, refs) AS (
            SELECT v.* FROM {_values_of("%(hashes)s::text[]", "%(thread_id)s")}
            UNION
            SELECT v.* FROM needed, {_values_of(_refs("needed.refs"), "%(thread_id)s")}
            WHERE r.hash NOT IN (SELECT hash FROM known))
        SELECT hash, value FROM needed"""
    # A task's later writes merge into its row: regular writes (idx >= 0) already there
    # stay, special ones (idx < 0: errors, interrupts, ...) are replaced.
    upsert_writes = Sql("""INSERT INTO checkpoint_writes AS w
        (thread_id, checkpoint_ns, thread_ts, task_id, task_path, writes)
        VALUES (%(thread_id)s, %(checkpoint_ns)s, %(thread_ts)s, %(task_id)s, %(task_path)s,
        %(writes)s::json)
        ON CONFLICT (thread_id, checkpoint_ns, thread_ts, task_id) DO UPDATE SET writes = (
            SELECT json_agg(e) FROM (
                SELECT e FROM json_array_elements(w.writes) e WHERE (e ->> 0)::int >= 0
                    OR (e ->> 0)::int NOT IN (SELECT (x ->> 0)::int
                    FROM json_array_elements(EXCLUDED.writes) x)
                UNION ALL
                SELECT e FROM json_array_elements(EXCLUDED.writes) e WHERE (e ->> 0)::int < 0
                    OR (e ->> 0)::int NOT IN (SELECT (x ->> 0)::int
                    FROM json_array_elements(w.writes) x)) AS merged)""")

    # Sorted, so that transactions locking several threads cannot deadlock.
    lock_threads = f"""SELECT pg_advisory_xact_lock({_LOCK_CLASS}, hashtext(t))
        FROM (SELECT DISTINCT t FROM unnest(%(thread_ids)s::text[]) AS t ORDER BY t) AS s"""
    share_threads = f"""SELECT pg_advisory_xact_lock_shared({_LOCK_CLASS}, hashtext(t))
        FROM (SELECT DISTINCT t FROM unnest(%(thread_ids)s::text[]) AS t ORDER BY t) AS s"""
    delete_thread_writes = "DELETE FROM checkpoint_writes WHERE thread_id = %(thread_id)s"
    delete_thread_checkpoints = "DELETE FROM checkpoints WHERE thread_id = %(thread_id)s"
    delete_thread_values = "DELETE FROM checkpoint_values WHERE thread_id = %(thread_id)s"
    # NOT EXISTS, an anti-join: `hash NOT IN (SELECT hash FROM live)` is hashed only when
    # the planner expects `live` to fit in work_mem, and otherwise scans `live` once per
    # stored value (keep_last on a 46k-value thread: 13 s, now 0.1 s).
    sweep_values = f"""WITH RECURSIVE {_live("%(thread_id)s")} DELETE FROM checkpoint_values v
        WHERE v.thread_id = %(thread_id)s AND NOT EXISTS (
            SELECT FROM live WHERE live.hash = v.hash)"""
    delete_run_writes = """DELETE FROM checkpoint_writes w USING checkpoints c
        WHERE c.run_id = ANY(%(run_ids)s) AND w.thread_id = c.thread_id
        AND w.checkpoint_ns = c.checkpoint_ns AND w.thread_ts = c.thread_ts"""
    delete_run_checkpoints = (
        "DELETE FROM checkpoints WHERE run_id = ANY(%(run_ids)s) RETURNING thread_id"
    )
    # One statement: its data-modifying CTEs read one snapshot of the source, so a put
    # committed meanwhile is in the copy whole or not at all, at READ COMMITTED, without
    # holding up the source's puts (an exclusive lock would) or retrying serialization
    # failures (REPEATABLE READ would).
    copy_thread = (
        Sql(
            """INSERT INTO checkpoint_writes
            (thread_id, checkpoint_ns, thread_ts, task_id, task_path, writes)
            SELECT %(target)s, checkpoint_ns, thread_ts, task_id, task_path, writes
            FROM checkpoint_writes WHERE thread_id = %(source)s ON CONFLICT DO NOTHING""",
            (
                _live("%(source)s"),
                """copied_values AS (INSERT INTO checkpoint_values (thread_id, hash, value, refs)
                SELECT %(target)s, hash, value, refs FROM live ON CONFLICT DO NOTHING)""",
                """copied_checkpoints AS (INSERT INTO checkpoints (thread_id, checkpoint_ns,
                thread_ts, parent_ts, checkpoint, metadata, run_id, created_at, refs)
                SELECT %(target)s, checkpoint_ns, thread_ts, parent_ts, checkpoint, metadata,
                run_id, created_at, refs FROM checkpoints WHERE thread_id = %(source)s
                ON CONFLICT DO NOTHING)""",
            ),
            recursive=True,
        ),
    )

    select_heads = """SELECT DISTINCT ON (checkpoint_ns) checkpoint_ns, thread_ts,
        (metadata -> 'counters_since_delta_snapshot')::text AS delta_counters
        FROM checkpoints WHERE thread_id = %(thread_id)s ORDER BY checkpoint_ns, thread_ts DESC"""
    select_chain = f"""WITH RECURSIVE chain (thread_id, ns, ts, parent, depth) AS (
            SELECT thread_id, checkpoint_ns, thread_ts, parent_ts, 0 FROM checkpoints
            WHERE {_AT_NS} AND thread_ts = %(thread_ts)s
            UNION ALL
            SELECT c.thread_id, c.checkpoint_ns, c.thread_ts, c.parent_ts, chain.depth + 1
            FROM chain JOIN checkpoints c ON c.thread_id = chain.thread_id
            AND c.checkpoint_ns = chain.ns AND c.thread_ts = chain.parent)
            CYCLE ts SET looped USING path
        SELECT chain.ts AS thread_ts, chain.parent AS parent_ts, (SELECT json_agg(k)::text
            FROM checkpoints c, json_object_keys(c.checkpoint -> 'channel_values') k
            WHERE c.thread_id = chain.thread_id AND c.checkpoint_ns = chain.ns
            AND c.thread_ts = chain.ts) AS channels
        FROM chain WHERE NOT looped ORDER BY chain.depth"""
    select_chain_writes = f"""SELECT thread_ts, task_id, task_path, writes::text
        FROM checkpoint_writes WHERE {_AT_NS} AND thread_ts = ANY(%(thread_ts_list)s)"""
    select_seeds = f"""SELECT thread_ts, checkpoint::text, refs
        FROM checkpoints
        WHERE {_AT_NS} AND thread_ts = ANY(%(thread_ts_list)s)"""
    select_references = """SELECT 'c' AS kind, thread_id, checkpoint_ns || '/' || thread_ts
            AS key, (checkpoint -> 'channel_values')::text AS document,
            refs FROM checkpoints WHERE refs IS NOT NULL
        AND thread_id = %(thread_id)s
        UNION ALL
        SELECT 'v', thread_id, hash, value, refs FROM checkpoint_values
        WHERE thread_id = %(thread_id)s"""
    select_stored_threads = """(SELECT DISTINCT 'c' AS kind, thread_id FROM checkpoints
            WHERE thread_id >= %(after)s ORDER BY thread_id LIMIT %(limit)s)
        UNION ALL
        (SELECT DISTINCT 'v', thread_id FROM checkpoint_values
            WHERE thread_id >= %(after)s ORDER BY thread_id LIMIT %(limit)s)"""
    # a channel's values inline in each snapshot, and the values they lead to, once each
    select_channel_bytes = rf"""WITH RECURSIVE
        channels (channel, doc) AS (
            SELECT ch.key, ch.value::text FROM checkpoints c,
            json_each(c.checkpoint -> 'channel_values') ch WHERE c.thread_id = %(thread_id)s),
        roots AS (SELECT DISTINCT channel, m[1] AS hash FROM channels,
            regexp_matches(doc, '\{{"\$[rs]": ?"([A-Za-z0-9_-]{{22}})"\}}', 'g') m),
        reach (channel, hash, refs, bytes) AS (
            SELECT roots.channel, v.hash, v.refs, pg_column_size(v.value) FROM roots
            JOIN checkpoint_values v ON v.thread_id = %(thread_id)s AND v.hash = roots.hash
            UNION
            SELECT reach.channel, v.hash, v.refs, pg_column_size(v.value)
            FROM reach, {_values_of(_refs("reach.refs"), "%(thread_id)s")})
        SELECT channel, coalesce(sum(bytes), 0)::bigint AS bytes FROM (
            SELECT channel, octet_length(doc) AS bytes FROM channels
            UNION ALL
            SELECT channel, bytes FROM reach) AS b
        GROUP BY channel ORDER BY channel"""
    # The planner overestimates the breakdown by orders of magnitude (json_each 100 rows a
    # snapshot, regexp_matches 10 a channel, a recursion 10 times its start): past
    # `jit_above_cost` it was JIT-compiled, 250 ms for a 2 ms query (a thread of 50 among
    # 100,000 checkpoints, before ANALYZE; 300 ms for 35 ms on one of 1,500 after).
    analysis_settings = "SET LOCAL jit = off"
    delete_ns_writes_except = f"""DELETE FROM checkpoint_writes
        WHERE {_AT_NS} AND NOT (thread_ts = ANY(%(keep)s))"""
    delete_ns_checkpoints_except = f"""DELETE FROM checkpoints
        WHERE {_AT_NS} AND NOT (thread_ts = ANY(%(keep)s))"""

    now = "now()"
    ago = "now() - make_interval(secs => %(seconds)s)"
    delta_counters = "(metadata -> 'counters_since_delta_snapshot')::text"
    for_update = " FOR UPDATE"
    metadata_index = True

    def param(self, name: str) -> str:
        return f"%({name})s"

    def json_param(self, name: str) -> str:
        return f"%({name})s::jsonb"

    def ts_param(self, name: str) -> str:
        return f"CAST(%({name})s AS timestamptz)"

    def array(self, values: Sequence[Any]) -> list[Any]:
        return list(values)

    def json_out(self, expr: str) -> str:
        return f"{expr}::text"

    def in_array(self, expr: str, name: str) -> str:
        return f"{expr} = ANY(%({name})s)"

    def minute(self, ts: str) -> str:
        return f"date_trunc('minute', {ts} AT TIME ZONE 'UTC')"

    def later(self, ts: str, seconds: str) -> str:
        return f"({ts} + make_interval(secs => {seconds}))"

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})"

    def size(self, expr: str) -> str:
        return f"pg_column_size({expr})"

    def counted(self, sql: str, each: str = "1") -> str:
        return f"WITH gone AS ({sql} RETURNING {each} AS n) SELECT coalesce(sum(n), 0) FROM gone"

    def together(self, first: Sql, then: Sql) -> list[Sql]:
        # `then` runs as a data-modifying CTE of `first`: one statement, one round trip,
        # atomic even in autocommit.
        return [first.with_cte("then_", then)]

    @cached_property
    def routines(self) -> Mapping[str, Routine]:
        # A graph step's statements: its read (latest or by id), put and writes.
        columns = len(ReadRow._fields)
        put = self.together(self.upsert_checkpoint, self.threads.touch)[0].text
        return {
            self.select_latest: routine("read", self.select_latest, columns),
            self.select_by_id: routine("read_id", self.select_by_id, columns),
            put: routine("put", put),
            self.upsert_writes.text: routine("put_writes", self.upsert_writes.text),
        }

    @cached_property
    def routine_calls(self) -> Mapping[str, str]:
        """Statement text -> the call of the routine standing in for it."""
        return {sql: r.call for sql, r in self.routines.items()}

    def put_params(self, record: CheckpointRecord) -> dict[str, Any]:
        values = record.values
        return {
            **super().put_params(record),
            "hashes": list(values),
            "values": [data.decode() for data, _ in values.values()],
            "value_refs": [" ".join(refs) if refs else None for _, refs in values.values()],
            "refs": " ".join(record.refs),
        }

    def metadata_filter(self, filter: dict[str, Any], column: str = "c.metadata") -> Filter:
        encoded = {key: encode_plain(value) for key, value in filter.items()}
        # Containment can use a GIN index (threads have one); per-key equality makes it exact.
        clauses = [f"{column} @> {self.json_param('meta')}"]
        params = {"meta": orjson.dumps(encoded).decode()}
        for i, (key, value) in enumerate(encoded.items()):
            p = f"meta_{i}_"
            clauses.append(f"{column} -> {self.param(p + 'key')} = {self.json_param(p + 'value')}")
            params[p + "key"] = key
            params[p + "value"] = orjson.dumps(value).decode()
        return clauses, params


POSTGRES = PostgresDialect()
