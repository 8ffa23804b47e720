"""LangGraph checkpointers for SQLite and PostgreSQL with readable JSON snapshots."""

from .errors import (
    ConfigError,
    DecodeError,
    SchemaVersionError,
    StoreError,
    UnsafeTypeError,
    WrongThreadError,
)
from .postgres import AsyncPostgresSaver, PostgresSaver
from .sqlite import AsyncSqliteSaver, SqliteSaver
from .urls import from_url

__all__ = [
    "AsyncPostgresSaver",
    "AsyncSqliteSaver",
    "ConfigError",
    "DecodeError",
    "PostgresSaver",
    "SchemaVersionError",
    "SqliteSaver",
    "StoreError",
    "UnsafeTypeError",
    "WrongThreadError",
    "from_url",
]
