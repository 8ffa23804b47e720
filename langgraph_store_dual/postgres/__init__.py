"""PostgreSQL savers: `PostgresSaver` and `AsyncPostgresSaver` (psycopg 3)."""

from .savers import AsyncPostgresSaver, PostgresSaver

__all__ = ["AsyncPostgresSaver", "PostgresSaver"]
