"""What operations yield (`Stmt`) and are (`Op`): generators of statements receiving rows;
and `Sql`, a statement's text kept in parts so that engines can combine statements."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")
Rows = list[Sequence[Any]]
#: Named parameters (`{name: value}`, the dialect's `param(name)` in the SQL); a
#: sequence only for statements without parameters, or a list of mappings with `many`.
Params = Mapping[str, Any] | Sequence[Any]


@dataclass(frozen=True, slots=True)
class Stmt:
    """One statement to run. With `many`, `params` is a list of parameter mappings.

    `fetch=False` marks a statement whose rows the operation ignores, so an engine can
    queue it (pipeline mode) instead of waiting for it; it then receives `[]`.

    `settings`, a statement of the dialect's, sets what this one (a read) runs with, for
    it alone: the engine runs both in a transaction of their own (a savepoint in an open
    one), rolled back after, so that no setting outlives the statement.
    """

    sql: str
    params: Params = ()
    many: bool = False
    fetch: bool = True
    settings: str | None = None


Op = Generator[Stmt, Rows, T]


class Routine(NamedTuple):
    """A database function an engine may run in place of a statement: its name, the DDL
    creating it, and the call (binding the statement's named parameters) that runs it."""

    name: str
    create: str
    call: str


@dataclass(frozen=True, slots=True)
class Sql:
    """A statement as its parts: common table expressions (`name AS (...)`, without the
    WITH) and the body they precede. `text` is the whole statement."""

    body: str
    ctes: tuple[str, ...] = ()
    recursive: bool = False
    text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        head = ("WITH RECURSIVE " if self.recursive else "WITH ") if self.ctes else ""
        object.__setattr__(self, "text", head + ", ".join(self.ctes) + " " * bool(head) + self.body)

    def __str__(self) -> str:
        return self.text

    def with_cte(self, name: str, sql: Sql) -> Sql:
        """This statement with `sql` (a data-modifying statement without CTEs of its own)
        run first as the CTE `name`: one statement, atomic even in autocommit."""
        if sql.ctes:
            raise ValueError(f"a statement with CTEs cannot join another as CTE {name!r}")
        return _with_cte(self, name, sql)


@lru_cache(maxsize=64)
def _with_cte(sql: Sql, name: str, first: Sql) -> Sql:
    return Sql(sql.body, (f"{name} AS ({first.body})", *sql.ctes), sql.recursive)


def merged(first: Mapping[str, Any], then: Mapping[str, Any]) -> dict[str, Any]:
    """The named parameters of two statements run as one: a name both use must have one
    value."""
    for name in first.keys() & then.keys():
        if first[name] != then[name]:
            raise ValueError(f"statements joined into one bind {name!r} to different values")
    return {**first, **then}
