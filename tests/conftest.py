"""Shared fixtures: every saver flavour, and the graph API a test drives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from pg_server import *  # noqa: F403  (PostgreSQL/PgBouncer fixtures, LGSD_REQUIRE_POSTGRES guard)

from langgraph_store_dual import AsyncPostgresSaver, AsyncSqliteSaver, PostgresSaver, SqliteSaver

FLAVOURS = ["sqlite-sync", "sqlite-async", "postgres-sync", "postgres-async"]


@asynccontextmanager
async def open_saver(flavour: str, where: Path | str, **options) -> AsyncIterator:
    """A saver of one flavour: on a SQLite file under `where`, or the PostgreSQL URL `where`."""
    if flavour == "sqlite-sync":
        with SqliteSaver.from_conn_string(str(Path(where) / "sync.db"), **options) as saver:
            yield saver
    elif flavour == "sqlite-async":
        path = str(Path(where) / "async.db")
        async with AsyncSqliteSaver.from_conn_string(path, **options) as saver:
            yield saver
    elif flavour == "postgres-sync":
        with PostgresSaver.from_conn_string(str(where), **options) as saver:
            yield saver
    elif flavour == "postgres-async":
        async with AsyncPostgresSaver.from_conn_string(str(where), **options) as saver:
            yield saver
    else:  # pragma: no cover - a typo in a parametrisation
        raise ValueError(flavour)


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def saver_factory(flavour: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Open savers of the test's flavour. SQLite savers get their own database file unless
    `shared`; PostgreSQL savers share the test's database, emptied before the test."""
    counter = iter(range(1_000_000))
    pg_url = request.getfixturevalue("pg_clean_url") if flavour.startswith("postgres") else None

    def make(shared: bool = False, **options) -> AbstractAsyncContextManager:
        if pg_url is not None:
            return open_saver(flavour, pg_url, **options)
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
