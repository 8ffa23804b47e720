"""LangGraph checkpointers for SQLite and PostgreSQL with readable JSON snapshots."""

from .core.history import ChannelDiff, CheckpointDiff
from .core.thread_model import Removed, Thread, ThreadPage, ThreadStats
from .errors import (
    ConfigError,
    ConnectError,
    DecodeError,
    NotFoundError,
    SchemaVersionError,
    StoreError,
    ThreadExistsError,
    UnsafeTypeError,
    WrongThreadError,
)
from .postgres import AsyncPostgresSaver, PostgresSaver
from .sqlite import AsyncSqliteSaver, SqliteSaver
from .threads import AsyncThreadManager, ThreadManager
from .urls import from_url

__all__ = [
    "AsyncPostgresSaver",
    "AsyncSqliteSaver",
    "AsyncThreadManager",
    "ChannelDiff",
    "CheckpointDiff",
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
