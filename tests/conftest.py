"""Shared fixtures: every saver flavour, and the graph API a test drives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from pg_server import *  # noqa: F403  (PostgreSQL/PgBouncer fixtures, LGSD_REQUIRE_POSTGRES guard)

from langgraph_store_dual import from_url
from langgraph_store_dual.registry import ENGINES, Engine, engine_named

#: `<engine>-sync` and `<engine>-async` for every engine in the registry.
FLAVOURS = [f"{engine.name}-{kind}" for engine in ENGINES for kind in ("sync", "async")]


def flavour_engine(flavour: str) -> tuple[Engine, bool]:
    """The engine of a flavour, and whether the flavour is the sync saver."""
    name, _, kind = flavour.rpartition("-")
    if kind not in ("sync", "async"):  # pragma: no cover - a typo in a parametrisation
        raise ValueError(flavour)
    return engine_named(name), kind == "sync"


def flavour_url(flavour: str, where: Path | str) -> str:
    """The database of a flavour: `<kind>.db` in the directory `where` for an engine that
    keeps its database in a file, else the server URL `where`."""
    engine, sync = flavour_engine(flavour)
    if engine.file_url is None:
        return str(where)
    return engine.url_for_file(str(Path(where) / ("sync.db" if sync else "async.db")))


@asynccontextmanager
async def open_saver(flavour: str, where: Path | str, **options) -> AsyncIterator:
    """A saver of one flavour: on a file under the directory `where` (SQLite), or on the
    server URL `where` (PostgreSQL)."""
    opener = from_url(flavour_url(flavour, where), **options)
    if flavour_engine(flavour)[1]:
        with opener as saver:
            yield saver
    else:
        async with opener as saver:
            yield saver


@pytest.fixture
def postgres_clean_url(pg_clean_url: str) -> str:
    """The PostgreSQL engine's database for a test (`<engine>_clean_url`, see below)."""
    return pg_clean_url


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def saver_factory(flavour: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Open savers of the test's flavour. Savers of an engine keeping its database in a
    file get their own file unless `shared`; the others share the test's database, the
    fixture `<engine>_clean_url` (emptied before the test)."""
    counter = iter(range(1_000_000))
    engine = flavour_engine(flavour)[0]
    server_url = None
    if engine.file_url is None:
        server_url = request.getfixturevalue(f"{engine.name}_clean_url")

    def make(shared: bool = False, **options) -> AbstractAsyncContextManager:
        if server_url is not None:
            return open_saver(flavour, server_url, **options)
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
