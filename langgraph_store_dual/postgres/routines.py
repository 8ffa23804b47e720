"""Database functions standing in for the hot statements on connections that do not
prepare statements (PgBouncer in transaction mode before 1.21, `pgbouncer=True`).

Without prepared statements PostgreSQL parses and plans every statement it receives:
for a put's statement that is 250 of its 600 us, for a read's 250 of 400. PL/pgSQL
keeps the plans of a function's statements for the life of the server connection
(which PgBouncer keeps open for many clients), so the same statement run inside a
function is planned once per connection; only the one-line call is planned each time.

A routine is generated from its statement: the body is the statement itself, its named
parameters become positional ones (`$1`, ...), and its name carries a hash of its
definition, so a statement that changes is a new function, which `setup()` creates
(`core.ops.ensure_schema`). The call binds the statement's own named parameters.
"""

from __future__ import annotations

import hashlib
import re

from ..core.stmt import Routine

#: The SQL type of each parameter a routine's statement may bind.
_TEXT = (
    "thread_id checkpoint_ns thread_ts parent_ts checkpoint metadata run_id refs user_id "
    "title head_ts ttl_strategy task_id task_path writes"
)
PARAM_TYPES = {
    **dict.fromkeys(_TEXT.split(" "), "text"),
    **dict.fromkeys(("hashes", "values", "value_refs", "known"), "text[]"),
    "ttl_seconds": "float8",
}

_PARAM = re.compile(r"%\((\w+)\)([sbt])")


def routine(purpose: str, sql: str, columns: int = 0) -> Routine:
    """The routine running statement `sql`: a function returning its rows (`columns`
    text columns), or nothing when `columns` is 0."""
    names: list[str] = []
    formats: dict[str, str] = {}

    def positional(match: re.Match[str]) -> str:
        name, form = match.groups()
        if name not in PARAM_TYPES:
            raise ValueError(f"routine {purpose!r}: parameter {name!r} has no SQL type")
        if name not in names:
            names.append(name)
            formats[name] = form
        return f"${names.index(name) + 1}"

    body = _PARAM.sub(positional, sql)
    # psycopg unescapes `%%` in the DDL it runs; a DBA's script (setup --print-sql) would not
    if "%" in body:
        raise ValueError(f"routine {purpose!r}: its statement has a literal %")
    types = [PARAM_TYPES[n] for n in names]
    if columns:
        result = "TABLE (" + ", ".join(f"c{i} text" for i in range(columns)) + ")"
        run = f"RETURN QUERY {body};"
    else:
        result, run = "void", f"{body};"
    signature = f"({', '.join(types)}) RETURNS {result} LANGUAGE plpgsql"
    definition = f"{signature} AS $routine$ BEGIN {run} END $routine$"
    digest = hashlib.blake2b(definition.encode(), digest_size=6).hexdigest()
    name = f"lgsd_{purpose}_{digest}"
    args = ", ".join(f"%({n}){formats[n]}::{t}" for n, t in zip(names, types, strict=True))
    call = f"SELECT * FROM {name}({args})" if columns else f"SELECT {name}({args})"
    return Routine(name, f"CREATE FUNCTION {name}{definition}", call)
