"""Checking an engine's SQL against what the core asks of it, when its class is defined.

A base class declares each statement it needs with `statement(...)`: the named parameters
the core binds and the row it reads back. `Contracted.__init_subclass__` then refuses an
engine class that leaves a statement or an abstract method undefined, gives a statement
the wrong kind of value, or names a parameter the core does not bind (a KeyError on
first use otherwise), or still uses positional placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .stmt import Sql

#: SQL string literals, which may hold what looks like a placeholder.
_LITERAL = re.compile(r"'(?:[^']|'')*'")


@dataclass(frozen=True, slots=True)
class Spec:
    """What the core binds to one statement (`params`) and reads from it (`rows`)."""

    params: frozenset[str]
    rows: type | None
    optional: bool  # None means "not needed on this engine"
    several: bool  # a sequence of statements run in order
    parts: bool  # `Sql` objects (which the engine may combine with others), not text
    doc: str


def statement(
    params: str = "",
    rows: type | None = None,
    *,
    optional: bool = False,
    several: bool = False,
    parts: bool = False,
    doc: str = "",
) -> Any:
    """Declare a statement in a base class: `params` its named parameters, space-separated.
    (Typed Any: the declaration stands where subclasses put the SQL.)"""
    return Spec(frozenset(params.split()), rows, optional, several, parts, doc)


def _texts(value: Any, parts: bool) -> Iterator[str]:
    for part in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(part, Sql):
            yield part.text
        elif isinstance(part, str) and not parts:
            yield part
        else:
            raise TypeError(f"{type(part).__name__}, not {'Sql' if parts else 'SQL text'}")


class Contracted:
    """Base of classes checked against their declared statements when subclassed;
    `class X(Base, abstract=True)` defers the check to X's own subclasses."""

    #: A named placeholder, the name its group 1; and any positional one.
    named_param: ClassVar[re.Pattern[str]]
    positional_param: ClassVar[re.Pattern[str]]
    #: Other class attributes a concrete subclass must set (each class adds its own).
    required: ClassVar[tuple[str, ...]] = ("named_param", "positional_param")

    @classmethod
    def contract(cls) -> dict[str, Spec]:
        """Every statement declared by this class and its bases."""
        specs: dict[str, Spec] = {}
        for klass in reversed(cls.__mro__):
            specs.update((k, v) for k, v in vars(klass).items() if isinstance(v, Spec))
        return specs

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not abstract:
            problems = list(cls._problems())
            if problems:
                raise TypeError(
                    f"{cls.__name__} does not meet the {cls.__mro__[1].__name__} contract: "
                    + "; ".join(problems)
                )

    @classmethod
    def _problems(cls) -> Iterator[str]:
        missing = [name for name, spec in cls.contract().items() if cls._is_spec(name)]
        missing += [name for name in cls.required if not hasattr(cls, name)]
        missing += [
            name
            for name in dir(cls)
            if getattr(getattr(cls, name, None), "__isabstractmethod__", False)
        ]
        if missing:
            yield f"it does not define {', '.join(sorted(missing))}"
        if hasattr(cls, "named_param"):
            for name, spec in cls.contract().items():
                if not cls._is_spec(name):
                    yield from cls._check(name, spec, getattr(cls, name))

    @classmethod
    def _is_spec(cls, name: str) -> bool:
        return isinstance(getattr(cls, name, None), Spec)

    @classmethod
    def _check(cls, name: str, spec: Spec, value: Any) -> Iterator[str]:
        if value is None:
            if not spec.optional:
                yield f"{name} is None, but every engine needs it"
            return
        if spec.several != isinstance(value, (tuple, list)):
            yield f"{name} must be {'a sequence of statements' if spec.several else 'SQL'}"
            return
        try:
            texts: Sequence[str] = list(_texts(value, spec.parts))
        except TypeError as exc:
            yield f"{name} holds a {exc}"
            return
        for text in texts:
            bare = _LITERAL.sub("''", text)
            if cls.positional_param.search(bare):
                yield f"{name} uses a positional placeholder: name its parameters"
            unknown = {m.group(1) for m in cls.named_param.finditer(bare)} - spec.params
            if unknown:
                bound = ", ".join(sorted(spec.params)) or "none"
                yield f"{name} uses parameters {', '.join(sorted(unknown))} (bound: {bound})"
