"""Our savers behind LangGraph's own checkpointer fixtures (copied in by .ci/langgraph-suite).

``.ci/langgraph-suite`` copies this file to ``tests/conftest_lgsd.py`` of the extracted
``langgraph`` sdist and appends ``from tests.conftest_lgsd import *`` to its
``tests/conftest.py``: the ``sync_checkpointer`` and ``async_checkpointer`` defined here
replace LangGraph's (a later name in the same conftest wins). They are built exactly the
way LangGraph's ``tests/conftest_checkpointer.py`` builds the official savers, with our
classes (or, with ``LGSD_SUITE_SAVERS=official``, the official ones, to check the harness):

    with SqliteSaver.from_conn_string(":memory:") as checkpointer: ...
    async with AsyncSqliteSaver.from_conn_string(":memory:") as checkpointer: ...
    with PostgresSaver.from_conn_string(url) as checkpointer: checkpointer.setup(); ...
    async with AsyncPostgresSaver.from_conn_string(url) as checkpointer:
        await checkpointer.setup(); ...

With ``LGSD_SUITE_FORMS=all`` (``--all-forms``) each saver also runs made the official
docs' other ways: on a ``sqlite3``/``aiosqlite`` connection, and on a psycopg connection
and a pool with the docs' ``autocommit=True, prepare_threshold=0, row_factory=dict_row``.

PostgreSQL comes from our ``tests/pg_server.py`` (``LGSD_TEST_POSTGRES_URL``, else
127.0.0.1:5432, else a throwaway server): one fresh database for the session, emptied
before each test. No server means an error on every PostgreSQL test, never a skip.

Only tests that take one of the two fixtures are run (the others do not exercise a
checkpointer); every one of them runs for each saver. At the end a per-saver table is
printed (and written as JSON to ``LGSD_SUITE_REPORT`` when set). Failures fail the run as
usual; in a whole run (``LGSD_SUITE_WHOLE=1``) so does a saver without a passing test.
"""

from __future__ import annotations

import functools
import gc
import importlib
import inspect
import json
import os
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, closing
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiosqlite
import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

sys.path.insert(0, str(Path(os.environ["LGSD_REPO"]) / "tests"))
from pg_server import pg_clean_url, pg_server_url, pg_url

__all__ = [
    "async_checkpointer",
    "pg_clean_url",
    "pg_server_url",
    "pg_url",
    "pytest_collection_modifyitems",
    "pytest_runtest_call",
    "pytest_runtest_logreport",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "sync_checkpointer",
]

FIXTURES = ("sync_checkpointer", "async_checkpointer")
SAVER_SETS = {
    "ours": {
        "sqlite": "langgraph_store_dual:SqliteSaver",
        "sqlite_aio": "langgraph_store_dual:AsyncSqliteSaver",
        "postgres": "langgraph_store_dual:PostgresSaver",
        "postgres_aio": "langgraph_store_dual:AsyncPostgresSaver",
    },
    "official": {
        "sqlite": "langgraph.checkpoint.sqlite:SqliteSaver",
        "sqlite_aio": "langgraph.checkpoint.sqlite.aio:AsyncSqliteSaver",
        "postgres": "langgraph.checkpoint.postgres:PostgresSaver",
        "postgres_aio": "langgraph.checkpoint.postgres.aio:AsyncPostgresSaver",
    },
}
SAVER_SET = os.environ.get("LGSD_SUITE_SAVERS", "ours")
SAVERS = SAVER_SETS[SAVER_SET]

# fixture param -> (saver, how it is made): "url" is from_conn_string; "conn" and "pool"
# are the official docs' other forms (a connection, a pool), with their connection_kwargs
FORMS = {
    "sqlite": ("sqlite", "url"),
    "sqlite_conn": ("sqlite", "conn"),
    "postgres": ("postgres", "url"),
    "postgres_conn": ("postgres", "conn"),
    "postgres_pool": ("postgres", "pool"),
    "sqlite_aio": ("sqlite_aio", "url"),
    "sqlite_aio_conn": ("sqlite_aio", "conn"),
    "postgres_aio": ("postgres_aio", "url"),
    "postgres_aio_conn": ("postgres_aio", "conn"),
    "postgres_aio_pool": ("postgres_aio", "pool"),
}
ALL_FORMS = os.environ.get("LGSD_SUITE_FORMS") == "all"
SYNC_PARAMS = [p for p, (s, f) in FORMS.items() if "aio" not in s and (ALL_FORMS or f == "url")]
ASYNC_PARAMS = [p for p, (s, f) in FORMS.items() if "aio" in s and (ALL_FORMS or f == "url")]
PG_KWARGS: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


def saver_class(param: str) -> Any:
    module, name = SAVERS[FORMS[param][0]].split(":")
    return getattr(importlib.import_module(module), name)


def saver_label(param: str) -> str:
    """The saver's class name, with how it was made unless from_conn_string."""
    saver, form = FORMS[param]
    name = SAVERS[saver].split(":")[1]
    return name if form == "url" else f"{name}({form})"


@pytest.fixture(scope="function", params=SYNC_PARAMS)
def sync_checkpointer(request: pytest.FixtureRequest) -> Iterator[Any]:
    cls = saver_class(request.param)
    saver, form = FORMS[request.param]
    if saver == "sqlite":
        if form == "conn":
            with closing(sqlite3.connect(":memory:", check_same_thread=False)) as conn:
                yield cls(conn)
        else:
            with cls.from_conn_string(":memory:") as checkpointer:
                yield checkpointer
        return
    url = request.getfixturevalue("pg_clean_url")
    with ExitStack() as stack:
        if form == "conn":
            checkpointer = cls(stack.enter_context(psycopg.Connection.connect(url, **PG_KWARGS)))
        elif form == "pool":
            pool = ConnectionPool(url, max_size=10, kwargs=PG_KWARGS)
            checkpointer = cls(stack.enter_context(pool))
        else:
            checkpointer = stack.enter_context(cls.from_conn_string(url))
        checkpointer.setup()
        yield checkpointer


@pytest.fixture(scope="function", params=ASYNC_PARAMS)
async def async_checkpointer(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    cls = saver_class(request.param)
    saver, form = FORMS[request.param]
    if saver == "sqlite_aio":
        if form == "conn":
            async with aiosqlite.connect(":memory:") as conn:
                yield cls(conn)
        else:
            async with cls.from_conn_string(":memory:") as checkpointer:
                yield checkpointer
        return
    url = request.getfixturevalue("pg_clean_url")
    async with AsyncExitStack() as stack:
        if form == "conn":
            conn = await psycopg.AsyncConnection.connect(url, **PG_KWARGS)
            checkpointer = cls(await stack.enter_async_context(conn))
        elif form == "pool":
            pool = AsyncConnectionPool(url, max_size=10, kwargs=PG_KWARGS, open=False)
            checkpointer = cls(await stack.enter_async_context(pool))
        else:
            checkpointer = await stack.enter_async_context(cls.from_conn_string(url))
        await checkpointer.setup()
        yield checkpointer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tests that take a checkpointer fixture."""
    keep = [item for item in items if _saver_param(item) is not None]
    dropped = [item for item in items if _saver_param(item) is None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def _saver_param(item: pytest.Item) -> str | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for fixture in FIXTURES:
        if fixture in params:
            return params[fixture]
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    param = _saver_param(item)
    if param is not None:
        report.lgsd_saver = saver_label(param)
    return report


def _times_itself(item: pytest.Item) -> bool:
    """Whether the test asserts wall-clock windows (LangGraph's `FloatBetween`)."""
    function = getattr(item, "function", None)
    return function is not None and _asserts_windows(function)


@functools.cache
def _asserts_windows(function: Any) -> bool:
    """Read once per test function, not once per saver it runs on."""
    try:
        return "FloatBetween(" in inspect.getsource(function)
    except (OSError, TypeError):
        return False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Run the tests that time themselves with the heap built so far frozen.

    A full pass of Python's garbage collector over the heap a long suite run builds takes
    0.1-0.2 s here (the same with the official savers); one that falls inside such a test
    shifts its chunks out of their 0.1 s windows. Frozen objects are skipped by the
    collector; new ones are still collected.
    """
    if not _times_itself(item):
        return (yield)
    gc.collect()
    gc.freeze()
    try:
        return (yield)
    finally:
        gc.unfreeze()


# per test: "passed" | "failed" | "error" | "skipped" (the worst of its phases)
_outcomes: dict[str, tuple[str, str]] = {}
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    saver = getattr(report, "lgsd_saver", None)
    if saver is None:
        return
    if report.passed:
        outcome = "passed"
    elif report.skipped:
        outcome = "skipped"
    else:
        outcome = "failed" if report.when == "call" else "error"
    before = _outcomes.get(report.nodeid, (saver, "passed"))[1]
    if _RANK[outcome] >= _RANK[before]:
        _outcomes[report.nodeid] = (saver, outcome)


def _table() -> dict[str, Counter[str]]:
    """Per saver class name (all four, in order): how many tests ended how."""
    table: dict[str, Counter[str]] = {saver_label(p): Counter() for p in SYNC_PARAMS + ASYNC_PARAMS}
    for saver, outcome in _outcomes.values():
        table[saver][outcome] += 1
    return table


def _idle(table: dict[str, Counter[str]]) -> list[str]:
    """Savers without a passing test, when that counts (a whole run: LGSD_SUITE_WHOLE=1)."""
    if os.environ.get("LGSD_SUITE_WHOLE") != "1":
        return []
    return [saver for saver, counts in table.items() if not counts["passed"]]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if terminalreporter.config.option.collectonly:
        return
    table = _table()
    write = terminalreporter.write_line
    terminalreporter.write_sep(
        "=", f"LangGraph {version('langgraph')} checkpointer suite, {SAVER_SET} savers"
    )
    write(f"{'saver':<26}{'passed':>8}{'failed':>8}{'errors':>8}{'skipped':>9}")
    for saver, counts in table.items():
        write(
            f"{saver:<26}{counts['passed']:>8}{counts['failed']:>8}"
            f"{counts['error']:>8}{counts['skipped']:>9}"
        )
    for saver in _idle(table):
        terminalreporter.write_line(f"{saver}: no test passed", red=True, bold=True)
    report_path = os.environ.get("LGSD_SUITE_REPORT")
    if report_path:
        document = {
            "langgraph": version("langgraph"),
            "savers": SAVER_SET,
            "counts": {saver: dict(counts) for saver, counts in table.items()},
            "not_passed": {
                node: outcome
                for node, (_, outcome) in sorted(_outcomes.items())
                if outcome not in ("passed", "skipped")
            },
        }
        Path(report_path).write_text(json.dumps(document, indent=2) + "\n")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A saver without a passing test fails a whole run."""
    if session.config.option.collectonly:
        return
    if _idle(_table()) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
