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


def test_readme_first_example_runs_verbatim(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    for _ in range(2):  # the second run continues the stored conversation
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["You asked about BGP.", "12 checkpoints", "Hi!"]
