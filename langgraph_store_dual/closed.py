"""What a saver's connection becomes when the saver is closed."""

from __future__ import annotations

from typing import Any

from .errors import ClosedError


class ClosedConnection:
    """Stands in for the connection (or pool) of a saver whose `with` block ended, or
    that was closed: any use raises `ClosedError` instead of the driver's own error."""

    closed = True

    def __init__(self, saver: object) -> None:
        self._saver = type(saver).__name__

    def close(self) -> None:
        """Closing a closed saver again does nothing."""

    def __getattr__(self, name: str) -> Any:
        raise ClosedError(
            f"this {self._saver} is closed (used after its `with` block, or after close()): "
            "open a new saver"
        )

    def __repr__(self) -> str:
        return "<closed>"
