"""`doctor`: is the database reachable and set up, how big is it, is it intact, and what
to do about anything wrong."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from .. import maintenance
from ..errors import StoreError
from ..urls import redact
from .common import EXIT_SCHEMA, Json, Url, emit, exit_code, hint, open_saver, out, size, table

MARK = {
    "ok": Text("ok", style="green"),
    "warn": Text("warn", style="yellow"),
    "fail": Text("FAIL", style="bold red"),
}


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(
    url: Url,
    top: Annotated[int, typer.Option(min=1, help="How many of the largest threads to list.")] = 5,
    as_json: Json = False,
) -> None:
    """Check the database and say what to do about anything wrong (exit 1 when a check
    fails, 3 when it cannot be reached, 5 when the schema is missing or too new)."""
    report: dict[str, Any] = {"database": redact(url), "checks": []}
    code = _examine(url, top, report)
    emit(as_json, report, lambda: _print(report))
    raise typer.Exit(code)


def _check(report: dict[str, Any], name: str, status: str, detail: str, fix: str = "") -> None:
    report["checks"].append({"check": name, "status": status, "detail": detail, "fix": fix})


def _examine(url: str, top: int, report: dict[str, Any]) -> int:
    engine = maintenance.engine_of(url)
    report["engine"] = engine.name
    try:
        conn = maintenance.connect(url)
    except StoreError as exc:
        _check(report, "reachable", "fail", str(exc), hint(exc) or "check --url / $DATABASE_URL")
        return exit_code(exc)
    try:
        _check(report, "reachable", "ok", f"{engine.name} database {redact(url)}")
        current = _schema(conn, engine, report)
        report["settings"] = maintenance.settings(conn, engine)
        if engine.name == "postgres":
            report["settings"]["client_port"] = conn.info.port
        (_postgres if engine.name == "postgres" else _sqlite)(url, report)
        report["tables"] = maintenance.table_stats(conn, engine)
        latest = len(maintenance.dialect(engine).migrations)
        if current is None or current > latest:
            return EXIT_SCHEMA
        if current < latest or report["schema"].get("missing_functions"):
            return 0  # the rest needs the current schema
        report["largest_threads"] = maintenance.largest_threads(conn, engine, top)
    finally:
        conn.close()
    with open_saver(url) as saver:
        problems = saver.check_references()
    report["reference_problems"] = problems
    if problems:
        _check(
            report,
            "references",
            "fail",
            f"{len(problems)} problem(s), e.g. {problems[0]}",
            "restore the affected threads from a backup, or delete them (threads delete)",
        )
        return 1
    _check(report, "references", "ok", "every stored value referred to exists")
    return 1 if any(c["status"] == "fail" for c in report["checks"]) else 0


def _schema(conn: Any, engine: maintenance.EngineSql, report: dict[str, Any]) -> int | None:
    current = maintenance.schema_version(conn, engine)
    latest = len(maintenance.dialect(engine).migrations)
    report["schema"] = {"version": current, "latest": latest}
    if current is None:
        _check(
            report,
            "schema",
            "fail",
            "no langgraph-store-dual schema",
            "run `setup` (or `setup --print-sql` for a DBA to review)",
        )
    elif current > latest:
        _check(
            report,
            "schema",
            "fail",
            f"version {current} is newer than this package's {latest}",
            "upgrade langgraph-store-dual",
        )
    elif current < latest:
        pending = list(range(current + 1, latest + 1))
        report["schema"]["pending"] = pending
        _check(
            report,
            "schema",
            "warn",
            f"version {current}; pending migrations: {', '.join(map(str, pending))}",
            "run `setup` (or `setup --print-sql` for a DBA); savers with auto_setup=False "
            "refuse this database until then",
        )
    elif missing := maintenance.missing_routines(conn, engine):
        report["schema"]["missing_functions"] = len(missing)
        _check(
            report,
            "schema",
            "warn",
            f"version {current} (latest), {len(missing)} function(s) of this package missing",
            "run `setup` (or `setup --print-sql` for a DBA); savers with auto_setup=False "
            "refuse this database until then",
        )
    else:
        _check(report, "schema", "ok", f"version {current} (latest)")
    return current


def _postgres(url: str, report: dict[str, Any]) -> None:
    s = report["settings"]
    usable = int(s["max_connections"]) - int(s["superuser_reserved_connections"])
    used = int(s["connections"])
    pool = maintenance.pool_settings(url)
    status = "warn" if used > 0.8 * usable else "ok"
    fix = "use PgBouncer or smaller pools (pool_max_size)" if status == "warn" else ""
    detail = (
        f"{used} of {usable} in use; pool_max_size={pool.pool_max_size} per process: "
        f"{usable // pool.pool_max_size} processes fit"
    )
    _check(report, "connections", status, detail, fix)
    client_port = s["client_port"]
    flag = pool.pgbouncer
    server_port = s["server_port"]
    pooled = client_port is not None and server_port is not None and client_port != server_port
    report["pooler"] = pooled
    if pooled and not flag:
        _check(
            report,
            "pooler",
            "warn",
            f"connected on port {client_port}, the server listens on {server_port}: "
            "a pooler (PgBouncer?) is in between",
            "with PgBouncer in transaction mode add ?pgbouncer=true to the URL",
        )
    elif flag and not pooled:
        _check(
            report,
            "pooler",
            "warn",
            "pgbouncer=true, yet connected to the server directly",
            "drop pgbouncer=true to use prepared statements",
        )
    else:
        _check(report, "pooler", "ok", "PgBouncer mode on" if flag else "direct connection")


def _sqlite(url: str, report: dict[str, Any]) -> None:
    s = report["settings"]
    if s["journal_mode"] != "wal":
        _check(
            report,
            "journal",
            "warn",
            f"journal_mode={s['journal_mode']}",
            "open it once with a saver (it turns WAL on) for concurrent readers",
        )
    pages, free = int(s["page_count"]), int(s["freelist_count"])
    if pages and free / pages > 0.25:
        _check(
            report,
            "free space",
            "warn",
            f"{free} of {pages} pages are free",
            "run `vacuum` to return them to the operating system",
        )
    else:
        _check(report, "free space", "ok", f"{free} of {pages} pages free")


def _print(report: dict[str, Any]) -> None:
    checks = table("check", "status", "detail", "what to do")
    for c in report["checks"]:
        checks.add_row(c["check"], MARK[c["status"]], c["detail"], c["fix"])
    out.print(checks)
    if report.get("tables"):
        sizes = table("table", "rows", "size", title="Tables")
        for t in report["tables"]:
            sizes.add_row(t["table"], str(t["rows"]), size(t["bytes"]))
        out.print(sizes)
    if report.get("largest_threads"):
        big = table("thread", "checkpoints", "size", title="Largest threads")
        for t in report["largest_threads"]:
            big.add_row(t["thread_id"], str(t["checkpoints"]), size(t["bytes"]))
        out.print(big)
    if report.get("settings"):
        out.print("Settings: " + ", ".join(f"{k}={v}" for k, v in report["settings"].items()))
