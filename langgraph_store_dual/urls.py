"""`from_url`: pick the engine by URL; the same object opens a sync or an async saver."""

from __future__ import annotations

import os
import re
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from .errors import ConfigError

SQLITE_SCHEMES = ("sqlite",)
POSTGRES_SCHEMES = ("postgresql", "postgres")


#: The value of `password` in a libpq keyword string: quoted, or everything up to the
#: next `key=` (an unquoted value with a space is malformed, and all of it may be secret).
_KEYWORD_PASSWORD = re.compile(
    r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|.*?)(?=\s+[A-Za-z_]+\s*=|\s*$)", re.DOTALL
)


def is_keyword_conninfo(text: str) -> bool:
    """Whether `text` is a libpq keyword string (`host=db dbname=agents`), not a URL."""
    return "=" in text and "://" not in text


def redact(url: str) -> str:
    """The URL or libpq keyword string with any password (in the user info, a `password=`
    parameter or a `password=` keyword) as `***`."""
    if is_keyword_conninfo(url):
        return _KEYWORD_PASSWORD.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    query = parse_qsl(parts.query, keep_blank_values=True)
    if password is None and all(k != "password" for k, _ in query):
        return url  # nothing to mask (and `sqlite:////abs.db` stays as written)
    if password is not None:
        user, host = parts.netloc.rsplit("@", 1)
        parts = parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}")
    if any(k == "password" for k, _ in query):
        masked = [(k, "***" if k == "password" else v) for k, v in query]
        parts = parts._replace(query=urlencode(masked, safe="*"))
    return parts.geturl()


def sqlite_path(url: str) -> str:
    """The database path of a `sqlite:` URL: `sqlite:///rel.db`, `sqlite:////abs.db`,
    `sqlite:///:memory:` (or `sqlite://`)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"malformed sqlite URL {redact(url)}: {exc}") from None
    if parts.netloc:
        raise ConfigError(
            f"sqlite URLs have no host: use sqlite:///relative.db or sqlite:////absolute.db, "
            f"got {redact(url)}"
        )
    if parts.query:
        names = ", ".join(sorted({k for k, _ in parse_qsl(parts.query, keep_blank_values=True)}))
        raise ConfigError(
            f"sqlite URLs take no parameters (got {names or parts.query!r}): pass options as "
            f"keyword arguments, e.g. from_url(url, auto_setup=False); got {redact(url)}"
        )
    path = unquote(parts.path)
    if path in ("", "/", "/:memory:"):
        return ":memory:"
    return path[1:] if path.startswith("/") else path


class SaverOpener(AbstractContextManager, AbstractAsyncContextManager):
    """Opens the sync saver with `with`, the async saver with `async with`."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        if not isinstance(url, str):
            raise ConfigError(f"a database URL must be a str, got {type(url).__name__}")
        try:
            scheme = "postgresql" if is_keyword_conninfo(url) else urlsplit(url).scheme.lower()
        except ValueError as exc:
            raise ConfigError(f"malformed database URL {redact(url)}: {exc}") from None
        if scheme not in SQLITE_SCHEMES + POSTGRES_SCHEMES:
            raise ConfigError(
                f"unknown database URL scheme {scheme!r} in {redact(url)}: use "
                "sqlite:///path.db, postgresql://user@host/db or host=... dbname=... (libpq)"
            )
        self.url, self.scheme, self.options = url, scheme, options
        self._cm: Any = None

    def __repr__(self) -> str:
        return f"SaverOpener({redact(self.url)!r})"

    def _sync_cm(self) -> AbstractContextManager:
        if self.scheme in SQLITE_SCHEMES:
            from .sqlite import SqliteSaver

            return SqliteSaver.from_conn_string(sqlite_path(self.url), **self.options)
        from .postgres import PostgresSaver

        return PostgresSaver.from_conn_string(self.url, **self.options)

    def _async_cm(self) -> AbstractAsyncContextManager:
        if self.scheme in SQLITE_SCHEMES:
            from .sqlite import AsyncSqliteSaver

            return AsyncSqliteSaver.from_conn_string(sqlite_path(self.url), **self.options)
        from .postgres import AsyncPostgresSaver

        return AsyncPostgresSaver.from_conn_string(self.url, **self.options)

    def __enter__(self) -> Any:
        self._cm = self._sync_cm()
        return self._cm.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return self._cm.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> Any:
        self._cm = self._async_cm()
        return await self._cm.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._cm.__aexit__(exc_type, exc, tb)


#: The database `from_url()` opens when neither a URL nor `DATABASE_URL` names one.
DEFAULT_URL = "sqlite:///checkpoints.db"


def from_url(url: str | None = None, **options: Any) -> SaverOpener:
    """Open a saver by URL: `with from_url(url) as saver` (sync) or `async with` (async).

    `sqlite:///agent.db` opens SQLite; `postgresql://user@host:5432/db` (or a libpq keyword
    string, `host=db dbname=agents user=app`) opens PostgreSQL. Without a URL, the
    environment's `DATABASE_URL`, else `checkpoints.db` (SQLite) in the working directory.
    Keyword options go to the saver (e.g. `auto_setup=False`, `serde=...`).
    """
    if url is None:
        url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    return SaverOpener(url, options)
