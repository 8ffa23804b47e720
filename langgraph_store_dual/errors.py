"""Errors raised by langgraph-store-dual. Each names the problem it reports."""

from __future__ import annotations

import inspect
from collections.abc import Iterable


class StoreError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(StoreError, ValueError):
    """A config, URL or argument is missing or malformed."""


class SchemaVersionError(StoreError):
    """The database schema is newer than this version of the package understands."""


class DecodeError(StoreError, ValueError):
    """A stored value cannot be decoded: the row is corrupt or was tampered with."""


class MissingValueError(DecodeError):
    """A snapshot refers to a stored value that is not there."""


class UnsafeTypeError(DecodeError):
    """A stored value names a type that is not on the revival allowlist."""


class WrongThreadError(StoreError, RuntimeError):
    """A blocking call was made on the event loop thread of an async saver."""


class NotFoundError(StoreError, LookupError):
    """The thread or checkpoint a call names does not exist."""


class ThreadExistsError(StoreError, ValueError):
    """A thread with the id given for a new thread already exists."""


class ClosedError(StoreError, RuntimeError):
    """A saver was used after its `with` block ended (or after `close()`)."""


def check_options(owner: type, options: Iterable[str], extra: Iterable[str] = ()) -> None:
    """Raise `ConfigError` naming the `options` that `owner` does not take (the keyword
    arguments of its `__init__` and its bases', and `extra`), and the ones it does."""
    valid = set(extra)
    for cls in owner.__mro__:
        init = cls.__dict__.get("__init__")
        if init is None or cls is object:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
                valid.add(param.name)
    valid -= {"self", "conn"}
    if unknown := sorted(set(options) - valid):
        raise ConfigError(
            f"unknown {owner.__name__} option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; valid options: {', '.join(sorted(valid))}"
        )
