"""The PostgreSQL statements and connection of the operator tools (`maintenance`)."""

from __future__ import annotations

import psycopg

from ..maintenance import EngineSql
from ..urls import redact
from .connect import check_connect
from .errors import ConnectError
from .pool import parse


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection without a pool (ConnectError, with the server's message
    and never the password, when it cannot be reached)."""
    conninfo, settings, _ = parse(url, {})
    check_connect(conninfo, settings)
    try:
        return psycopg.connect(conninfo, autocommit=True, prepare_threshold=None)
    except psycopg.OperationalError as exc:  # the server went away since the check
        raise ConnectError(f"cannot connect to PostgreSQL ({redact(url)})") from exc


SQL = EngineSql(
    name="postgres",
    placeholder="%s",
    has_table="SELECT 1 WHERE to_regclass(%s) IS NOT NULL",
    table_bytes="SELECT pg_total_relation_size(to_regclass(%s))",
    size="pg_column_size({})",
    ago="now() - make_interval(secs => %s)",
    settings=(
        ("server_version", "SHOW server_version"),
        ("max_connections", "SHOW max_connections"),
        ("superuser_reserved_connections", "SHOW superuser_reserved_connections"),
        (
            "connections",
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
        ),
        ("server_port", "SELECT inet_server_port()"),
        ("current_user", "SELECT current_user"),
        ("search_path", "SHOW search_path"),
    ),
    connect=connect,
)
