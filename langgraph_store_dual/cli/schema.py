"""`setup`: apply the schema migrations, or print them for a DBA to review."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import maintenance
from ..errors import ConfigError
from ..opener import from_url
from ..urls import sqlite_path
from .common import Json, Url, emit, open_raw, out, print_json

SETUP_HELP = """Create or migrate the schema (idempotent; safe while apps run).

With --print-sql, print the statements that would take the schema to this package's
version, in one transaction, and apply nothing: a DBA reviews and runs them with an
owner role, and the apps run with auto_setup=False as a least-privilege role. Add
--grant-to ROLE for the grants that role needs (PostgreSQL): USAGE on the schema;
SELECT, INSERT, UPDATE, DELETE on threads, checkpoints, checkpoint_writes and
checkpoint_values; SELECT on schema_version, checkpoint_writes_flat and
checkpoints_expanded.
"""


def register(app: typer.Typer) -> None:
    app.command("setup", help=SETUP_HELP)(setup)


def setup(
    url: Url,
    print_sql: Annotated[
        bool, typer.Option("--print-sql", help="Print the pending SQL; apply nothing.")
    ] = False,
    grant_to: Annotated[
        str | None, typer.Option("--grant-to", help="With --print-sql: grants for this role.")
    ] = None,
    create: Annotated[
        bool, typer.Option("--create", help="Create the SQLite file if it does not exist.")
    ] = False,
    as_json: Json = False,
) -> None:
    engine = maintenance.engine_of(url)
    if grant_to is not None and not print_sql:
        raise ConfigError("--grant-to goes with --print-sql")
    if print_sql:
        _print_sql(url, grant_to, as_json)
        return
    if create and engine.name == "sqlite" and not Path(sqlite_path(url)).exists():
        before = None
    else:
        with open_raw(url) as conn:
            before = maintenance.schema_version(conn, engine)
    with from_url(url) as saver:
        saver.setup()
    latest = len(maintenance.dialect(engine).migrations)
    result = {"engine": engine.name, "before": before, "version": latest}
    emit(as_json, result, lambda: out.print(_applied(before, latest)))


def _applied(before: int | None, latest: int) -> str:
    if before == latest:
        return f"schema is at version {latest}: nothing to do"
    start = "no schema" if before is None else f"version {before}"
    return f"schema migrated from {start} to version {latest}"


def _print_sql(url: str, grant_to: str | None, as_json: bool) -> None:
    engine = maintenance.engine_of(url)
    with open_raw(url) as conn:
        current, latest, statements = maintenance.pending_sql(conn, engine)
        grants: list[str] = []
        if grant_to is not None:
            if engine.name != "postgres":
                raise ConfigError("--grant-to is for PostgreSQL (SQLite has no roles)")
            schema = maintenance.rows(conn, "SELECT current_schema()")[0][0]
            grants = maintenance.grants(grant_to, schema)
    if as_json:
        print_json({"current": current, "latest": latest, "sql": statements, "grants": grants})
        return
    head = "no schema" if current is None else f"version {current}"
    print(f"-- langgraph-store-dual schema: {head}, this package: version {latest}")
    if not statements:
        print("-- nothing to apply")
    for sql in statements:
        print(sql if sql.startswith("--") else f"{sql};")
    if grants:
        print("-- the runtime role (apps run with auto_setup=False)")
        for sql in grants:
            print(f"{sql};")
