"""SQLite savers: `SqliteSaver` (sqlite3) and `AsyncSqliteSaver` (aiosqlite)."""

from .savers import AsyncSqliteSaver, SqliteSaver

__all__ = ["AsyncSqliteSaver", "SqliteSaver"]
