"""The soak script runs end to end on both engines and reports no error (`python -m
benchmarks.soak`, a few seconds per engine). Its figures depend on the machine's load:
only that they are reported is checked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_short_soak_on_both_engines(pg_server_url: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.soak",
            "--engine",
            "both",
            "--seconds",
            "3",
            "--clients",
            "4",
            "--pg-url",
            pg_server_url,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"
    assert proc.returncode == 0, output
    for engine in ("sqlite", "postgres"):
        line = re.search(rf"^{engine}: (\d+) turns .* errors 0; problems 0$", proc.stdout, re.M)
        assert line and int(line.group(1)) > 0, output
        assert re.search(rf"^{engine}: .* turns/s, p50 [\d.]+ ms, p99 [\d.]+ ms", proc.stdout, re.M)
