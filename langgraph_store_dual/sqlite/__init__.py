"""SQLite savers: `SqliteSaver` (sqlite3) and `AsyncSqliteSaver` (aiosqlite).

The savers, and with them the drivers, are imported on first use: the dialect is not.
"""

from typing import TYPE_CHECKING

from ..registry import lazy_names
from ..urls import sqlite_path

if TYPE_CHECKING:
    from .savers import AsyncSqliteSaver, SqliteSaver

__all__ = ["AsyncSqliteSaver", "SqliteSaver", "sqlite_path"]

__getattr__ = lazy_names(__name__, {"SqliteSaver": ".savers", "AsyncSqliteSaver": ".savers"})
