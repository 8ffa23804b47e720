"""The README's demo runs to the end on both engines and reads its state back with SQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_demo(url: str) -> str:
    proc = subprocess.run(
        [sys.executable, "examples/demo.py", "--url", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_demo_on_sqlite(tmp_path: Path) -> None:
    out = run_demo(f"sqlite:///{tmp_path / 'demo.db'}")
    assert "Forked at step 3" in out
    assert "SQL reads the last message: 'Turn " in out


def test_demo_on_postgres(pg_clean_url: str) -> None:
    assert "Forked at step 3" in run_demo(pg_clean_url)
