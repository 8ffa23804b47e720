"""The examples run to the end on both engines: the README's demo (which reads its state
back with SQL), the time-travel story with a stateful subgraph (sync and async API), and
the README's first example, verbatim."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_example(script: str, url: str, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, f"examples/{script}", "--url", url],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_demo_on_sqlite(tmp_path: Path) -> None:
    out = run_example("demo.py", f"sqlite:///{tmp_path / 'demo.db'}")
    assert "Forked at step 3" in out
    assert "SQL reads the last message: 'Turn " in out


def test_demo_on_postgres(pg_clean_url: str) -> None:
    assert "Forked at step 3" in run_example("demo.py", pg_clean_url)


def test_time_travel_on_sqlite(tmp_path: Path) -> None:
    out = run_example("time_travel.py", f"sqlite:///{tmp_path / 'time_travel.db'}")
    assert "sync  ok" in out and "async ok" in out, out


@pytest.mark.parametrize("psycopg_impl", ["binary", "python"])
def test_time_travel_on_postgres(pg_clean_url: str, psycopg_impl: str) -> None:
    """`python`: psycopg's pure-Python implementation over the system's libpq, as after a
    plain `pip install langgraph-store-dual` (Debian 12: libpq 15)."""
    if psycopg_impl == "python" and not ctypes.util.find_library("pq"):
        pytest.skip("no system libpq (Debian: libpq5); .ci/plain-install installs it")
    out = run_example("time_travel.py", pg_clean_url, PSYCOPG_IMPL=psycopg_impl)
    assert f"{psycopg_impl} implementation" in out, out
    assert "sync  ok" in out and "async ok" in out, out


def test_readme_first_example_runs_verbatim(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    for _ in range(2):  # the second run continues the stored conversation
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["You asked about BGP.", "12 checkpoints", "Hi!"]
