"""LangGraph checkpointers for SQLite and PostgreSQL with readable JSON snapshots.

The savers (and `ConnectError`, a psycopg error) are the engines' (see `registry`),
imported on first use: an application that uses one engine never imports the other's
driver (psycopg or aiosqlite).
"""

from typing import TYPE_CHECKING, Any

from .core.history import ChannelDiff, CheckpointDiff
from .core.thread_model import Removed, Thread, ThreadPage, ThreadStats
from .core.usage import Usage
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
from .health import Health
from .opener import from_url
from .registry import exported_names
from .threads import AsyncThreadManager, ThreadManager

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
    "Health",
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
    "Usage",
    "WrongThreadError",
    "from_url",
]

#: The engines' public names (savers, errors), each loaded from its engine on first use.
_ENGINE_NAMES = dict(exported_names())

if TYPE_CHECKING:
    from .postgres import AsyncPostgresSaver, ConnectError, PostgresSaver
    from .sqlite import AsyncSqliteSaver, SqliteSaver


def __getattr__(name: str) -> Any:
    engine = _ENGINE_NAMES.get(name)
    if engine is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = engine.load(name)
    return value
