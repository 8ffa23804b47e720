"""`bench`: the repository's benchmark harness, run with the arguments given."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import typer

from ..errors import StoreError

BENCH_HELP = """Run the benchmarks (`python -m benchmarks`) with these arguments, e.g.
`bench -- --help`. Needs a checkout of the repository (its benchmarks/ package) on the
path and the `bench` extra."""


def register(app: typer.Typer) -> None:
    settings = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
    app.command("bench", help=BENCH_HELP, context_settings=settings, add_help_option=False)(bench)


def bench(ctx: typer.Context) -> None:
    if importlib.util.find_spec("benchmarks") is None:
        raise StoreError(
            "the benchmarks package is not importable: run this from a checkout of the "
            "langgraph-store-dual repository (it holds benchmarks/), with the bench extra"
        )
    done = subprocess.run([sys.executable, "-m", "benchmarks", *ctx.args], check=False)
    raise typer.Exit(done.returncode)
