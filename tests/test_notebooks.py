"""The example notebooks run top to bottom in a fresh kernel, with nbmake's runner: on
SQLite, and on the test's throwaway PostgreSQL database, which reaches the kernel as
`DATABASE_URL`. The quickstart, production and migration notebooks need PostgreSQL and
fail loudly without it.

Each notebook checks its own story with `assert`s; here we check that it ran without an
error, within its time budget, against the database it was given, and that the copy in
`examples/` carries small, clean saved outputs."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import nbformat
import psycopg
import pytest
from nbmake.nb_run import NotebookRun  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BUDGET = 60  # seconds, per notebook (and per cell); each takes a few seconds

# notebook -> (its SQLite file in the working directory, the threads it leaves)
NOTEBOOKS = {
    "01_quickstart.ipynb": ("quickstart.db", 1),
    "02_time_travel.ipynb": ("time_travel.db", 2),
    "03_human_in_the_loop.ipynb": ("human_in_the_loop.db", 4),
    "04_chat_backend.ipynb": ("chat_backend.db", 5),
    "05_production.ipynb": ("production.db", 3),  # a copy of its PostgreSQL threads
    "06_migration.ipynb": ("migration.db", 7),  # imported into PostgreSQL, migrated back
    "07_storage_and_speed.ipynb": ("storage_and_speed.db", 1),
}
# need PostgreSQL; each writes its SQLite file too
POSTGRES_ONLY = {"01_quickstart.ipynb", "05_production.ipynb", "06_migration.ipynb"}
CASES = [
    pytest.param(name, engine, id=f"{name.removesuffix('.ipynb')}-{engine}")
    for name in NOTEBOOKS
    for engine in (["postgres"] if name in POSTGRES_ONLY else ["sqlite", "postgres"])
]
MAX_SAVED_OUTPUT = 12_000  # characters of saved outputs per notebook
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the colours of IPython's tracebacks


def execute(name: str, workdir: Path, database_url: str | None, mp: pytest.MonkeyPatch) -> Any:
    """Run a copy of the notebook in `workdir`; the kernel inherits this environment."""
    shutil.copy(EXAMPLES / name, workdir / name)
    path = os.environ.get("PYTHONPATH")
    mp.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *([path] if path else [])]))
    if database_url is None:
        mp.delenv("DATABASE_URL", raising=False)
    else:
        mp.setenv("DATABASE_URL", database_url)
    return NotebookRun(workdir / name, default_timeout=BUDGET).execute()


def count_threads(url_or_path: str | Path) -> int:
    if isinstance(url_or_path, Path):
        with sqlite3.connect(url_or_path) as db:
            (n,) = db.execute("SELECT count(*) FROM threads").fetchone()
    else:
        with psycopg.connect(url_or_path) as conn:
            row = conn.execute("SELECT count(*) FROM threads").fetchone()
            assert row is not None
            (n,) = row
    return int(n)


@pytest.mark.parametrize(("name", "engine"), CASES)
def test_notebook_runs(
    name: str, engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pg_url = request.getfixturevalue("pg_clean_url") if engine == "postgres" else None
    started = time.perf_counter()
    with pytest.MonkeyPatch.context() as mp:
        result = execute(name, tmp_path, pg_url, mp)
    took = time.perf_counter() - started
    if result.error is not None:
        cell, trace = result.error.failing_cell_index, ANSI.sub("", result.error.trace)
        pytest.fail(f"{name} on {engine}, cell {cell}:\n{trace}", pytrace=False)
    assert took < BUDGET, f"{name} took {took:.1f} s on {engine}"

    db_file, threads = NOTEBOOKS[name]
    if pg_url is not None:
        assert count_threads(pg_url) == threads  # it used the database it was given
    if engine == "sqlite" or name in POSTGRES_ONLY:
        assert count_threads(tmp_path / db_file) == threads


@pytest.mark.parametrize("name", sorted(POSTGRES_ONLY))
def test_fails_loudly_without_postgres(name: str, tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        result = execute(name, tmp_path, None, mp)
    assert result.error is not None and "set DATABASE_URL" in ANSI.sub("", result.error.trace)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # it stopped before doing anything


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.ipynb")), ids=lambda p: p.stem)
def test_saved_notebook_is_small_and_clean(path: Path) -> None:
    """Every notebook is run above, states what it shows first, and was saved after a
    clean run: outputs in order, no errors, small, no database URL."""
    assert path.name in NOTEBOOKS, f"{path.name} is not run by the tests: add it to NOTEBOOKS"
    nb: Any = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), first.source[:80]
    assert "What this notebook shows" in first.source

    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    outputs = [output for cell in code for output in cell.outputs]
    assert all(output.output_type != "error" for output in outputs)
    assert not any(output.get("name") == "stderr" for output in outputs)
    saved = json.dumps(outputs)
    assert len(saved) < MAX_SAVED_OUTPUT, f"{path.name}: {len(saved)} characters of outputs"
    assert "postgresql://" not in saved and "postgres@" not in saved
    assert all(not cell.metadata for cell in nb.cells)  # no execution timings
