"""Shared fixtures: every saver flavour, and the graph API a test drives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from langgraph_store_dual import AsyncSqliteSaver, SqliteSaver

FLAVOURS = ["sqlite-sync", "sqlite-async"]


@asynccontextmanager
async def open_saver(flavour: str, path: Path, **options) -> AsyncIterator:
    """A fresh saver of one flavour on an empty database under `path`."""
    if flavour == "sqlite-sync":
        with SqliteSaver.from_conn_string(str(path / "sync.db"), **options) as saver:
            yield saver
    elif flavour == "sqlite-async":
        async with AsyncSqliteSaver.from_conn_string(str(path / "async.db"), **options) as saver:
            yield saver
    else:  # pragma: no cover - a typo in a parametrisation
        raise ValueError(flavour)


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def saver_factory(flavour: str, tmp_path: Path):
    """Open further savers of the same flavour, on their own databases or a shared one."""
    counter = iter(range(1_000_000))

    def make(shared: bool = False, **options) -> AbstractAsyncContextManager:
        path = tmp_path if shared else tmp_path / f"db{next(counter)}"
        path.mkdir(exist_ok=True)
        return open_saver(flavour, path, **options)

    return make


@pytest.fixture
async def saver(saver_factory):
    async with saver_factory(shared=True) as saver:
        yield saver


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest) -> str:
    return request.param
