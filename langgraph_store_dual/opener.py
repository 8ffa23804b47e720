"""`from_url`: pick the engine by URL; the same object opens a sync or an async saver."""

from __future__ import annotations

import os
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import Any

from .registry import engine_for_url
from .saver import AsyncSaver, SyncSaver
from .urls import DEFAULT_URL, redact


class SaverOpener(AbstractContextManager[SyncSaver], AbstractAsyncContextManager[AsyncSaver]):
    """Opens the sync saver with `with`, the async saver with `async with`."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.engine = engine_for_url(url)
        self.url, self.options = url, options
        self._cm: Any = None

    def __repr__(self) -> str:
        return f"SaverOpener({redact(self.url)!r})"

    def __enter__(self) -> SyncSaver:
        self._cm = self.engine.open_url(self.url, self.options, sync=True)
        saver: SyncSaver = self._cm.__enter__()
        return saver

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        result: bool | None = self._cm.__exit__(exc_type, exc, tb)
        return result

    async def __aenter__(self) -> AsyncSaver:
        self._cm = self.engine.open_url(self.url, self.options, sync=False)
        saver: AsyncSaver = await self._cm.__aenter__()
        return saver

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        result: bool | None = await self._cm.__aexit__(exc_type, exc, tb)
        return result


def from_url(url: str | None = None, **options: Any) -> SaverOpener:
    """Open a saver by URL: `with from_url(url) as saver` (sync) or `async with` (async).

    `sqlite:///agent.db` opens SQLite; `postgresql://user@host:5432/db` (or a libpq keyword
    string, `host=db dbname=agents user=app`) opens PostgreSQL. Without a URL, the
    environment's `DATABASE_URL`, else `checkpoints.db` (SQLite) in the working directory.
    Keyword options go to the saver (e.g. `auto_setup=False`, `serde=...`).
    """
    if url is None:
        url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    return SaverOpener(url, options)
