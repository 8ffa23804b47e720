"""What every command shares: the database option, opening it without creating anything,
durations and filters, and printing (tables on a terminal, JSON with `--json`)."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .. import maintenance
from ..errors import ConfigError, NotFoundError, SchemaVersionError
from ..opener import from_url

Url = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="DATABASE_URL",
        show_envvar=True,
        show_default=False,
        help="Database: sqlite:///path.db or postgresql://user@host/db (or $DATABASE_URL).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

EXIT_ERROR, EXIT_USAGE, EXIT_CONNECT, EXIT_NOT_FOUND, EXIT_SCHEMA = 1, 2, 3, 4, 5


def is_connect_error(exc: BaseException) -> bool:
    connect = sys.modules.get("langgraph_store_dual.postgres.errors")
    return connect is not None and isinstance(exc, connect.ConnectError)


def exit_code(exc: BaseException) -> int:
    if is_connect_error(exc):
        return EXIT_CONNECT
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, SchemaVersionError):
        return EXIT_SCHEMA
    return EXIT_ERROR


def hint(exc: BaseException) -> str | None:
    if is_connect_error(exc):
        return "check the host, port, database, user and password of --url / $DATABASE_URL"
    if isinstance(exc, SchemaVersionError) and "newer" not in str(exc):
        return "run `langgraph-store-dual setup` (or `setup --print-sql` to review the SQL first)"
    if isinstance(exc, ConfigError) and "no SQLite database" in str(exc):
        return "to start a new database there, run `langgraph-store-dual setup --create`"
    return None


_TTY = sys.stdout.isatty()
#: Off a terminal, lines are not wrapped and tables are as wide as their content. No
#: markup: what is printed (titles, ids, messages) is shown as it is stored.
out = Console(soft_wrap=not _TTY, width=None if _TTY else 1000, highlight=False, markup=False)
err = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)


@contextmanager
def open_saver(url: str) -> Iterator[Any]:
    """The sync saver of an existing database whose schema is set up (SchemaVersionError
    otherwise): nothing is created or migrated."""
    if maintenance.engine_of(url).name == "sqlite":
        maintenance.existing_sqlite_path(url)
    with from_url(url, auto_setup=False) as saver:
        yield saver


@contextmanager
def open_raw(url: str) -> Iterator[Any]:
    """A plain connection to an existing database (see `maintenance.connect`)."""
    with closing(maintenance.connect(url)) as conn:
        yield conn


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def seconds(text: str) -> float:
    """`30d`, `12h`, `90m`, `45s`, `2w` as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration: use e.g. 30d, 12h, 90m, 2w")
    return float(match[1]) * _UNITS[match[2]]


def metadata_filter(pairs: list[str] | None) -> dict[str, Any] | None:
    """`key=value` pairs as a metadata filter: a value that parses as JSON is that value
    (`n=3` is a number), else text (quote it to force text: `id='"123"'`)."""
    if not pairs:
        return None
    found: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r}: metadata filters are key=value")
        try:
            found[key] = json.loads(value)
        except ValueError:
            found[key] = value
    return found


def thread_config(thread_id: str, checkpoint_id: str | None = None, ns: str = "") -> Any:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def jsonable(value: Any) -> Any:
    """`value` as plain JSON values: datetimes as ISO text, dataclasses and models as
    objects, messages with their type, anything else unknown as its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        try:
            return jsonable(value.model_dump(mode="json"))
        except (TypeError, ValueError):  # fields that do not dump: show its repr
            return repr(value)
    return repr(value)


def print_json(value: Any) -> None:
    print(json.dumps(jsonable(value), ensure_ascii=False, indent=2))


def emit(as_json: bool, value: Any, human: Callable[[], None]) -> None:
    """`value` as JSON, or the human rendering."""
    print_json(value) if as_json else human()


def table(*columns: str, title: str | None = None) -> Table:
    grid = Table(title=title, title_justify="left", header_style="bold")
    for name in columns:
        grid.add_column(name, overflow="fold")
    return grid


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def one_of(options: dict[str, Any], what: str) -> str:
    """The name of the one option that was given (ConfigError unless exactly one)."""
    given = [name for name, value in options.items() if value not in (None, False, [], ())]
    if len(given) != 1:
        raise ConfigError(f"{what}: give exactly one of {', '.join(options)}")
    return given[0]
