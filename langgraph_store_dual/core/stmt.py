"""What operations yield (`Stmt`) and are (`Op`): generators of statements receiving rows."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
Rows = list[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Stmt:
    """One statement to run. With `many`, `params` is a list of parameter tuples.

    `fetch=False` marks a statement whose rows the operation ignores, so an engine can
    queue it (pipeline mode) instead of waiting for it; it then receives `[]`.
    """

    sql: str
    params: Sequence[Any] = ()
    many: bool = False
    fetch: bool = True


Op = Generator[Stmt, Rows, T]
