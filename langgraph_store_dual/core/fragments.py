"""The SQL building blocks an engine supplies, from which the core writes its own
statements once (`Dialect.list_query`, `thread_sql`): placeholders, the clock, JSON,
lists bound as one parameter."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from .contract import Contracted, statement
from .rows import CheckpointRow

#: WHERE clauses and their named parameters.
Filter = tuple[list[str], dict[str, Any]]


class Fragments(Contracted, abstract=True):
    name: ClassVar[str]
    required = (*Contracted.required, "name")

    #: The SELECT of `CheckpointRow`s, without WHERE (table alias `c`).
    select_checkpoints: ClassVar[str] = statement(rows=CheckpointRow)
    now: ClassVar[str] = statement(doc="the current time, as created_at / updated_at hold it")
    ago: ClassVar[str] = statement("seconds", doc="the time `seconds` before now")
    delta_counters: ClassVar[str] = statement(
        doc="a checkpoint's metadata counters_since_delta_snapshot, as JSON text"
    )
    for_update: ClassVar[str] = statement(doc="appended to a SELECT to lock its rows")
    #: Thread metadata filters can use an index.
    metadata_index: ClassVar[bool] = False

    @abstractmethod
    def param(self, name: str) -> str:
        """The placeholder of the named parameter `name`."""

    def json_param(self, name: str) -> str:
        """A placeholder for JSON text."""
        return self.param(name)

    def ts_param(self, name: str) -> str:
        """A placeholder for a timestamp read back from the database."""
        return self.param(name)

    @abstractmethod
    def array(self, values: Sequence[Any]) -> Any:
        """A list bound as one parameter (JSON text on SQLite, an array on PostgreSQL)."""

    @abstractmethod
    def in_array(self, expr: str, name: str) -> str:
        """A condition: `expr` is in the list bound (with `array`) as parameter `name`."""

    def json_out(self, expr: str) -> str:
        """`expr` (a JSON column) as JSON text."""
        return expr

    @abstractmethod
    def minute(self, ts: str) -> str:
        """The minute of timestamp `ts` as the generated column `threads.updated_minute`
        holds it."""

    @abstractmethod
    def later(self, ts: str, seconds: str) -> str:
        """Timestamp `ts` plus `seconds` (an expression; NULL gives NULL), as times are
        stored: a thread's expiry (`core.ttl`)."""

    @abstractmethod
    def greatest(self, a: str, b: str) -> str:
        """The larger of two nullable values (NULL only if both are)."""

    @abstractmethod
    def size(self, expr: str) -> str:
        """The stored size of a value, in bytes."""

    @abstractmethod
    def counted(self, sql: str, each: str = "1") -> str:
        """A DELETE returning rows whose numbers add up to the sum of `each` (a number per
        deleted row) over what it deleted."""

    @abstractmethod
    def metadata_filter(self, filter: dict[str, Any], column: str = "c.metadata") -> Filter:
        """WHERE clauses (and their parameters, named `meta_...`) matching metadata keys
        to values exactly."""
