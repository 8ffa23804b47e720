"""The package's shape: no import cycles, drivers only in their engines, engines found
through the registry, and public types that a user's type checker accepts."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from langgraph_store_dual import opener, registry
from langgraph_store_dual.errors import ConfigError
from langgraph_store_dual.saver import AsyncSaver, SyncSaver

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "langgraph_store_dual"
DRIVERS = {
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "aiosqlite": "sqlite",
    "sqlite3": "sqlite",
}


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


MODULES = _module_names()


def _imports(module: str, path: Path) -> Iterator[str]:
    """Every module `module` imports, wherever the import stands (top level, a function,
    `if TYPE_CHECKING:`), as absolute names."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from . import ops` imports the module `ops` (the package is a parent of
            # every module: an import of it alone is no edge)
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            yield from submodules or [base]


def _graph() -> dict[str, set[str]]:
    """The package's modules and, for each, the package modules it imports."""
    return {m: {i for i in _imports(m, p) if i in MODULES and i != m} for m, p in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_walk_sees_imports_of_every_kind() -> None:
    graph = _graph()
    assert "langgraph_store_dual.core.ops" in graph  # `core` has no __init__.py
    assert "langgraph_store_dual.errors" in graph["langgraph_store_dual.core.ops"]  # ..errors
    assert "langgraph_store_dual.core.ops" in graph["langgraph_store_dual.core.history"]  # from .
    assert "langgraph_store_dual.threads" in graph["langgraph_store_dual.saver"]  # TYPE_CHECKING
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_package_has_no_import_cycles() -> None:
    """Counting every import, lazy and TYPE_CHECKING ones too: the engines are loaded by
    name through the registry, which is how the layers below reach them."""
    cycles = _cycles(_graph())
    listed = "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)
    assert cycles == [], listed


def test_drivers_are_imported_only_by_their_engines() -> None:
    misplaced = []
    for module, path in MODULES.items():
        for name in _imports(module, path):
            engine = DRIVERS.get(name.partition(".")[0])
            if engine and not module.startswith(f"langgraph_store_dual.{engine}."):
                misplaced.append(f"{module} imports {name}")
            if engine and module == f"langgraph_store_dual.{engine}.dialect":
                misplaced.append(f"{module} (a dialect) imports {name}")
    assert misplaced == []


def _loaded_drivers(code: str) -> list[str]:
    """The drivers loaded after running `code` in a fresh interpreter."""
    shown = f"[m for m in {sorted(DRIVERS)!r} if m in sys.modules]"
    script = f"import json, sys\n{code}\nprint(json.dumps({shown}))"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_importing_the_package_core_and_dialects_loads_no_driver() -> None:
    engines = tuple(f"langgraph_store_dual.{e.name}" for e in registry.ENGINES)
    modules = [m for m in MODULES if not m.startswith(engines) or m.endswith(".dialect")]
    modules += ["langgraph_store_dual.sqlite", "langgraph_store_dual.postgres"]
    code = "\n".join(f"import {m}" for m in modules)
    assert "import langgraph_store_dual.core.ops" in code
    assert "import langgraph_store_dual.postgres.dialect" in code
    assert _loaded_drivers(code) == []


@pytest.mark.parametrize(
    ("name", "drivers"),
    [
        ("SqliteSaver", ["aiosqlite", "sqlite3"]),
        ("AsyncPostgresSaver", ["psycopg", "psycopg_pool"]),
        ("ConnectError", ["psycopg"]),
    ],
)
def test_an_engine_is_imported_when_used(name: str, drivers: list[str]) -> None:
    assert _loaded_drivers(f"from langgraph_store_dual import {name}") == drivers


@pytest.mark.parametrize("engine", registry.ENGINES, ids=lambda e: e.name)
def test_each_registry_entry_names_parts_that_exist(engine: registry.Engine) -> None:
    import langgraph_store_dual

    assert issubclass(engine.saver_class(sync=True), SyncSaver)
    assert issubclass(engine.saver_class(sync=False), AsyncSaver)
    dialect = engine.load_dialect()
    assert engine.saver_class(sync=True).dialect is dialect
    assert engine.saver_class(sync=False).dialect is dialect
    for name in engine.public_names():
        assert getattr(langgraph_store_dual, name) is engine.load(name)
        assert name in langgraph_store_dual.__all__
    for kind in engine.sync_connections + engine.async_connections:
        module, _, cls = kind.rpartition(".")
        assert isinstance(getattr(__import__(module), cls), type), kind
    for scheme in engine.schemes:
        assert registry.engine_for_url(f"{scheme}://x/y") is engine


def test_urls_name_their_engine_or_the_forms_that_work() -> None:
    assert registry.engine_for_url("host=db dbname=agents").name == "postgres"
    assert registry.engine_for_url("SQLite:///a.db").name == "sqlite"
    with pytest.raises(ConfigError) as caught:
        opener.from_url("mysql://app:hunter2@db/agents")
    assert str(caught.value) == (
        "unknown database URL scheme 'mysql' in mysql://app:***@db/agents: use "
        "sqlite:///path.db, postgresql://user@host/db or host=... dbname=... (libpq)"
    )
    with pytest.raises(ConfigError, match="unknown engine 'mysql': the engines are sqlite"):
        registry.engine_named("mysql")
    with pytest.raises(ConfigError, match="postgres engine keeps no database in a file"):
        registry.engine_named("postgres").url_for_file("/tmp/x.db")


def test_connections_are_told_apart_by_the_registry(tmp_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "x.db")
    try:
        assert registry.engine_for_connection(conn, sync=True) is registry.engine_named("sqlite")
        assert registry.engine_for_connection(conn, sync=False) is None
        assert registry.engine_for_connection("sqlite:///x.db", sync=True) is None
    finally:
        conn.close()


USER_CODE = """
    from __future__ import annotations

    import asyncio

    from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

    from langgraph_store_dual import (
        AsyncPostgresSaver,
        AsyncSqliteSaver,
        AsyncThreadManager,
        PostgresSaver,
        SqliteSaver,
        Thread,
        ThreadManager,
        ThreadPage,
        from_url,
    )
    from langgraph_store_dual.threads import Saver


    def sync_use(url: str) -> None:
        with SqliteSaver.from_conn_string("agent.db") as saver:
            checkpointer: BaseCheckpointSaver[str] = saver
            thread: Thread | None = saver.threads.get("t1")
            page: ThreadPage = saver.threads.list(user_id="ana", limit=5)
            history: list[CheckpointTuple] = saver.threads.history("t1", limit=None)
            managed: Saver = saver  # what the managers need of a saver
        with PostgresSaver.from_conn_string(url) as pg:
            created: Thread = pg.threads.create(title="hello")
            managed = pg
        with from_url(url) as any_saver, ThreadManager(url) as threads:
            count: int = any_saver.threads.count() + threads.count(user_id="ana")
            gone: bool = threads.delete("t1")


    async def async_use(url: str) -> None:
        async with AsyncSqliteSaver.from_conn_string("agent.db") as saver:
            thread: Thread | None = await saver.threads.get("t1")
            page: ThreadPage = await saver.threads.list(user_id="ana")
            managed: Saver = saver
        async with AsyncPostgresSaver.from_conn_string(url) as pg:
            forked: Thread = await pg.threads.fork({"configurable": {"thread_id": "t1"}})
            stats = await pg.threads.stats("t1")
            turns: int = stats.checkpoints
            managed = pg
        async with from_url(url) as any_saver, AsyncThreadManager(url) as threads:
            removed = await any_saver.threads.keep_last(3)
            count: int = await threads.count()


    asyncio.run(async_use("postgresql://app@db/agents"))
"""

WRONG_CODE = """
    from langgraph_store_dual import AsyncThreadManager, SqliteSaver, Thread, ThreadManager


    def sync_misuse(threads: ThreadManager) -> None:
        pending: Thread = threads.get("t1")  # may be None
        threads.list(owner="ana")  # no such filter


    async def async_misuse(threads: AsyncThreadManager) -> None:
        page: int = await threads.list()  # a ThreadPage
        thread = threads.get("t1")
        thread.title  # a coroutine: not awaited


    def saver_misuse() -> None:
        with SqliteSaver.from_conn_string("agent.db") as saver:
            saver.threads.create("t1")  # keyword-only
"""


def test_users_type_checker_sees_the_right_signatures(tmp_path: Path) -> None:
    """mypy --strict on code that uses both managers and all four savers: no error; and
    on code that misuses them: the errors a user should see (so the types are not Any)."""
    (tmp_path / "user_code.py").write_text(textwrap.dedent(USER_CODE))
    (tmp_path / "wrong_code.py").write_text(textwrap.dedent(WRONG_CODE))
    # in a child process: mypy retunes the garbage collector of the process it runs in
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--cache-dir",
            str(ROOT / ".cache" / "mypy-user-code"),
            str(tmp_path / "user_code.py"),
            str(tmp_path / "wrong_code.py"),
        ],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    out, err = done.stdout, done.stderr
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert [e for e in errors if "user_code.py" in e] == [], out + err
    wrong = sorted(int(e.split(":")[1]) for e in errors if "wrong_code.py" in e)
    assert wrong == [6, 7, 11, 13, 18], out


def _test_modules_imported(path: Path) -> set[str]:
    """The `test_*` modules a file under tests/ imports (as `test_x` or `tests.test_x`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            last = name.removeprefix("tests.").split(".")[0]
            if last.startswith("test_"):
                found.add(last)
    return found


def test_test_modules_import_no_other_test_module() -> None:
    """Shared test code lives in tests/helpers.py (and the other helper modules): a test
    module never imports another, nor does a helper module import a test module."""
    files = sorted((ROOT / "tests").glob("*.py"))
    assert any(p.name == "helpers.py" for p in files)
    wrong = {
        p.name: sorted(imported - {p.stem})
        for p in files
        if (imported := _test_modules_imported(p)) - {p.stem}
    }
    assert wrong == {}, wrong
