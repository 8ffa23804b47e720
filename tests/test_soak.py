"""The soak script runs end to end on both engines and reports no error (`python -m
benchmarks.soak`, a few seconds per engine). Its figures depend on the machine's load:
only that they are reported is checked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_module(*args: str) -> tuple[str, str]:
    """Run `python -m ARGS` from the checkout: its stdout, and all it printed (for errors)."""
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    output = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"
    assert proc.returncode == 0, output
    return proc.stdout, output


def test_a_short_soak_on_both_engines(pg_server_url: str) -> None:
    stdout, output = run_module(
        "benchmarks.soak", "--engine", "both", "--seconds", "3", "--clients", "4",
        "--pg-url", pg_server_url,
    )  # fmt: skip
    for engine in ("sqlite", "postgres"):
        line = re.search(rf"^{engine}: (\d+) turns .* errors 0; problems 0$", stdout, re.M)
        assert line and int(line.group(1)) > 0, output
        assert re.search(rf"^{engine}: .* turns/s, p50 [\d.]+ ms, p99 [\d.]+ ms", stdout, re.M)


def test_a_short_concurrency_run_on_both_engines(pg_server_url: str, pgbouncer_url: str) -> None:
    """`python -m benchmarks.concurrency`: ours and the official savers, one level, both
    engines and PgBouncer; a row each, no error."""
    stdout, output = run_module(
        "benchmarks.concurrency", "--levels", "2", "--seconds", "1", "--processes", "1",
        "--pg-url", pg_server_url, "--pgbouncer-url", pgbouncer_url,
    )  # fmt: skip
    for route in ("sqlite", "postgres", "postgres via PgBouncer"):
        row = re.search(rf"^\| {route} \| 2 \| ([\d.]+) \| ([\d.]+) \| .* \| 0 \|", stdout, re.M)
        assert row and float(row.group(1)) > 0 and float(row.group(2)) > 0, output
