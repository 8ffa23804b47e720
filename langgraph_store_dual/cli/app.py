"""The command tree, and how an expected error ends it: one line on stderr, a hint, and
an exit code by kind (no traceback)."""

from __future__ import annotations

import sys

import typer

from ..errors import StoreError
from . import doctor, retention, schema, state, threads, tools, transfer
from .common import EXIT_ERROR, err, exit_code, hint

HELP = """Inspect, maintain and move langgraph-store-dual databases (SQLite or PostgreSQL).

Every command takes the database as --url or $DATABASE_URL and never creates one
(a SQLite path that does not exist is an error; `setup --create` makes a new file).

Exit codes: 0 ok, 1 error or problems found, 2 bad usage, 3 cannot connect,
4 unknown thread or checkpoint, 5 schema missing, outdated or newer than this package.
"""

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(threads.app, name="threads")
for module in (doctor, schema, state, retention, transfer, tools):
    module.register(app)


def _database_error(exc: BaseException) -> bool:
    """A driver's error (the drivers that were imported: sqlite3's, psycopg's)."""
    kinds = [getattr(sys.modules.get(m), "Error", None) for m in ("sqlite3", "psycopg")]
    return any(isinstance(kind, type) and isinstance(exc, kind) for kind in kinds)


def run(argv: list[str]) -> None:
    """Run the command line `argv`; expected errors exit with a message, not a traceback."""
    try:
        app(args=argv, prog_name="langgraph-store-dual")
    except StoreError as exc:
        err.print(f"error: {exc}")
        if (text := hint(exc)) is not None:
            err.print(f"hint: {text}")
        raise SystemExit(exit_code(exc)) from None
    except OSError as exc:
        if exc.filename is None:  # not a file's (a bug, or the network): the traceback
            raise
        err.print(f"error: {exc}")  # a file that cannot be read or written: a full disk...
        raise SystemExit(EXIT_ERROR) from None
    except Exception as exc:
        if not _database_error(exc):
            raise
        err.print(f"error: the database reported: {type(exc).__name__}: {exc}")
        raise SystemExit(EXIT_ERROR) from None
