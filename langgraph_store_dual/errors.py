"""Errors raised by langgraph-store-dual. Each names the problem it reports."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(StoreError, ValueError):
    """A config, URL or argument is missing or malformed."""


class SchemaVersionError(StoreError):
    """The database schema is newer than this version of the package understands."""


class DecodeError(StoreError, ValueError):
    """A stored value cannot be decoded: the row is corrupt or was tampered with."""


class UnsafeTypeError(DecodeError):
    """A stored value names a type that is not on the revival allowlist."""


class WrongThreadError(StoreError, RuntimeError):
    """A blocking call was made on the event loop thread of an async saver."""


class NotFoundError(StoreError, LookupError):
    """The thread or checkpoint a call names does not exist."""


class ThreadExistsError(StoreError, ValueError):
    """A thread with the id given for a new thread already exists."""
