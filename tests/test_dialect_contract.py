"""The dialect contract: checked when an engine class is defined, rows named as the core
reads them (on both real engines), and the core's module graph."""

from __future__ import annotations

import ast
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint

from langgraph_store_dual import PostgresSaver, SqliteSaver
from langgraph_store_dual.core.dialect import Dialect, ListWhere
from langgraph_store_dual.core.rows import CheckpointRow, ShapeRow, StatsRow, ThreadRow
from langgraph_store_dual.core.stmt import Sql
from langgraph_store_dual.postgres.dialect import POSTGRES, PostgresDialect
from langgraph_store_dual.postgres.routines import routine
from langgraph_store_dual.sqlite.dialect import SQLITE, SqliteDialect

CORE = Path(__file__).parent.parent / "langgraph_store_dual" / "core"
DRIVERS = {"sqlite3", "aiosqlite", "psycopg", "psycopg_pool"}


def refused(define: Callable[[], object]) -> str:
    with pytest.raises(TypeError) as err:
        define()
    return str(err.value)


def test_an_engine_missing_statements_or_methods_is_refused_when_defined() -> None:
    def define() -> object:
        class Partial(Dialect):
            named_param = re.compile(r":(\w+)")
            positional_param = re.compile(r"\?")
            select_head = "SELECT 1"

        return Partial

    message = refused(define)
    assert message.startswith("Partial does not meet the Dialect contract: it does not define")
    names = ("select_latest", "upsert_checkpoint", "copy_thread", "param", "migrations", "name")
    for name in (*names, "in_array"):
        assert f" {name}," in message or message.endswith(f" {name}"), name
    assert "select_head," not in message


def test_an_engine_statement_naming_a_parameter_the_core_does_not_bind_is_refused() -> None:
    def define() -> object:
        class Typo(SqliteDialect):
            select_head = "SELECT thread_ts FROM checkpoints WHERE thread_id = :thread"

        return Typo

    assert "select_head uses parameters thread (bound: checkpoint_ns, thread_id)" in refused(define)

    def positional() -> object:
        class Old(PostgresDialect):
            delete_thread_values = "DELETE FROM checkpoint_values WHERE thread_id = %s"

        return Old

    assert "delete_thread_values uses a positional placeholder" in refused(positional)


def test_an_engine_statement_of_the_wrong_kind_is_refused() -> None:
    def define() -> object:
        class Wrong(SqliteDialect):
            upsert_writes = "INSERT INTO checkpoint_writes VALUES (:thread_id)"  # not Sql
            copy_thread = Sql("INSERT INTO threads VALUES (:target)")  # not a sequence
            sweep_values = None  # every engine needs it

        return Wrong

    message = refused(define)
    assert "upsert_writes holds a str, not Sql" in message
    assert "copy_thread must be a sequence of statements" in message
    assert "sweep_values is None, but every engine needs it" in message


def test_placeholders_inside_string_literals_are_not_parameters() -> None:
    class Literal(SqliteDialect):
        select_version = "SELECT ':version' || '?', max(version) FROM schema_version"

    assert Literal.select_version.startswith("SELECT ':version'")


def test_an_abstract_engine_base_is_checked_in_its_subclasses() -> None:
    class Base(Dialect, abstract=True):
        pass

    def define() -> object:
        class Concrete(Base):
            pass

        return Concrete

    assert "Concrete does not meet the Base contract" in refused(define)


def test_both_engines_declare_every_statement_of_the_contract() -> None:
    for d in (SQLITE, POSTGRES):
        for name, spec in Dialect.contract().items():
            value = getattr(d, name)
            assert value is not None or spec.optional, (d.name, name)


# -- rows, by name, on the real engines --------------------------------------------------


def _data(saver: Any) -> list[str]:
    """Two checkpoints of thread "t" (the second refers to an interned value), and a write;
    their ids."""
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    ids = []
    for text in ("hello", "a long message " * 40):
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": [text]}
        config = saver.put(config, checkpoint, {"user_id": "ana"}, {})
        ids.append(checkpoint["id"])
    saver.put_writes(config, [("messages", "hi")], "task")
    return ids


def _named_rows(d: Dialect, ids: list[str], execute: Callable[[str, Any], Any]) -> None:
    """Run every statement declared to return a row type and compare the names."""
    values = {
        "thread_id": "t",
        "checkpoint_ns": "",
        "thread_ts": ids[-1],
        "known": d.array([]),
        "thread_ts_list": d.array(ids),
        "after": "",
        "limit": 10,
    }
    hashes = [h for (h,) in execute("SELECT hash FROM checkpoint_values", {})[1]]
    assert hashes, "the second checkpoint interned a value"
    values["hashes"] = values["refs"] = d.array(hashes)
    checked = []
    statements: list[tuple[str, str, type, dict[str, Any]]] = []
    for name, spec in Dialect.contract().items():
        if spec.rows is not None and name != "select_checkpoints" and getattr(d, name):
            params = {p: values[p] for p in spec.params}
            statements.append((name, getattr(d, name), spec.rows, params))
    listed, params = d.list_query(ListWhere("t", "", None, None, None), None)
    statements.append(("list_query", listed, CheckpointRow, params))
    t = d.threads
    statements += [
        ("threads.get", t.get, ThreadRow, {"thread_id": "t"}),
        ("threads.stats", t.stats, StatsRow, {"thread_id": "t"}),
        ("threads.shapes", t.shapes, ShapeRow, {"thread_ids": d.array(["t"])}),
        (
            "threads.lineage",
            t.lineage,
            CheckpointRow,
            {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": None, "depth": 10},
        ),
    ]
    for name, sql, row_type, params in statements:
        names, rows = execute(sql, params)
        assert names == list(row_type._fields), name  # type: ignore[attr-defined]
        assert rows, name
        checked.append(name)
    assert len(checked) == (16 if d.select_listed_values else 15)


@contextmanager
def _sqlite(path: Path) -> Iterator[Callable[[str, Any], Any]]:
    with closing(sqlite3.connect(path)) as conn:

        def execute(sql: str, params: Any) -> Any:
            cur = conn.execute(sql, params)
            return [c[0] for c in cur.description], cur.fetchall()

        yield execute


def test_sqlite_rows_have_the_names_the_core_reads(tmp_path: Path) -> None:
    path = tmp_path / "rows.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        ids = _data(saver)
    with _sqlite(path) as execute:
        _named_rows(SQLITE, ids, execute)


def test_postgres_rows_have_the_names_the_core_reads(pg_clean_url: str) -> None:
    with PostgresSaver.from_conn_string(pg_clean_url) as saver:
        ids = _data(saver)
    with psycopg.connect(pg_clean_url) as conn:

        def execute(sql: str, params: Any) -> Any:
            cur = conn.execute(sql, params)
            assert cur.description is not None
            return [c.name for c in cur.description], cur.fetchall()

        _named_rows(POSTGRES, ids, execute)


# -- the core's module graph ---------------------------------------------------------------


def _imports() -> dict[str, set[str]]:
    """Each core module -> the core modules and top-level packages it imports."""
    graph: dict[str, set[str]] = {}
    for path in CORE.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level == 1:  # from . import x / from .x import y
                    names = [node.module] if node.module else [a.name for a in node.names]
                    found |= {f"core.{n.split('.')[0]}" for n in names}
                elif node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
        graph[f"core.{path.stem}"] = found
    return graph


def test_the_core_has_no_import_cycle_and_imports_no_driver() -> None:
    graph = _imports()
    assert {"core.ops", "core.dialect", "core.thread_sql", "core.values"} <= graph.keys()
    for module, imported in graph.items():
        assert not imported & DRIVERS, module
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for dep in graph.get(module, ()):
            if dep.startswith("core."):
                visit(dep, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())


def test_a_routine_is_its_statement_with_positional_parameters() -> None:
    """A routine's body is its statement with each named parameter numbered in order of
    first use; its call binds the same names; another text is another function."""
    r = routine("t", "SELECT %(thread_id)s, %(known)s::text[], %(thread_id)s", columns=3)
    assert "RETURN QUERY SELECT $1, $2::text[], $1;" in r.create
    assert r.create.startswith(f"CREATE FUNCTION {r.name}(text, text[]) RETURNS TABLE (")
    assert r.call == f"SELECT * FROM {r.name}(%(thread_id)s::text, %(known)s::text[])"
    assert routine("t", "SELECT %(thread_id)s, %(known)s::text[]", columns=2).name != r.name
    assert routine("w", "DELETE FROM x WHERE a = %(thread_id)s").call.startswith("SELECT lgsd_w_")
    with pytest.raises(ValueError, match="'nope' has no SQL type"):
        routine("t", "SELECT %(nope)s")
    with pytest.raises(ValueError, match="literal %"):
        routine("t", "SELECT 'a%%b' WHERE %(thread_id)s IS NULL")
