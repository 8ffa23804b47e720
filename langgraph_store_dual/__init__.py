"""LangGraph checkpointers for SQLite and PostgreSQL with readable JSON snapshots.

The savers (and `ConnectError`, a psycopg error) are imported on first use, so an
application that uses one engine never imports the other's driver (psycopg or aiosqlite).
"""

from typing import TYPE_CHECKING, Any

from .core.history import ChannelDiff, CheckpointDiff
from .core.thread_model import Removed, Thread, ThreadPage, ThreadStats
from .errors import (
    ClosedError,
    ConfigError,
    DecodeError,
    NotFoundError,
    SchemaVersionError,
    StoreError,
    ThreadExistsError,
    UnsafeTypeError,
    WrongThreadError,
)
from .threads import AsyncThreadManager, ThreadManager
from .urls import from_url

__all__ = [
    "AsyncPostgresSaver",
    "AsyncSqliteSaver",
    "AsyncThreadManager",
    "ChannelDiff",
    "CheckpointDiff",
    "ClosedError",
    "ConfigError",
    "ConnectError",
    "DecodeError",
    "NotFoundError",
    "PostgresSaver",
    "Removed",
    "SchemaVersionError",
    "SqliteSaver",
    "StoreError",
    "Thread",
    "ThreadExistsError",
    "ThreadManager",
    "ThreadPage",
    "ThreadStats",
    "UnsafeTypeError",
    "WrongThreadError",
    "from_url",
]

_SAVERS = {
    "SqliteSaver": "sqlite",
    "AsyncSqliteSaver": "sqlite",
    "PostgresSaver": "postgres",
    "AsyncPostgresSaver": "postgres",
    "ConnectError": "postgres",
}

if TYPE_CHECKING:
    from .postgres import AsyncPostgresSaver, ConnectError, PostgresSaver
    from .sqlite import AsyncSqliteSaver, SqliteSaver


def __getattr__(name: str) -> Any:
    engine = _SAVERS.get(name)
    if engine is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    saver = getattr(import_module(f".{engine}", __name__), name)
    globals()[name] = saver
    return saver
