"""PostgreSQL savers: `PostgresSaver` and `AsyncPostgresSaver` (psycopg 3).

The savers and `ConnectError`, and with them psycopg, are imported on first use: the
dialect is not.
"""

from typing import TYPE_CHECKING

from ..registry import lazy_names

if TYPE_CHECKING:
    from .errors import ConnectError
    from .savers import AsyncPostgresSaver, PostgresSaver

__all__ = ["AsyncPostgresSaver", "ConnectError", "PostgresSaver"]

__getattr__ = lazy_names(
    __name__,
    {"PostgresSaver": ".savers", "AsyncPostgresSaver": ".savers", "ConnectError": ".errors"},
)
