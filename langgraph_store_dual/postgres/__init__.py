"""PostgreSQL savers: `PostgresSaver` and `AsyncPostgresSaver` (psycopg 3)."""

from .errors import ConnectError
from .savers import AsyncPostgresSaver, PostgresSaver

__all__ = ["AsyncPostgresSaver", "ConnectError", "PostgresSaver"]
