"""The `langgraph-store-dual` command: inspect, maintain and move the databases of the
savers. Needs the `cli` extra (typer and rich)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

INSTALL_HINT = "the langgraph-store-dual command needs: pip install 'langgraph-store-dual[cli]'"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command (the console script and `python -m langgraph_store_dual`)."""
    try:
        import rich  # noqa: F401
        import typer  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        raise SystemExit(2) from None
    from .app import run

    run(list(sys.argv[1:] if argv is None else argv))
