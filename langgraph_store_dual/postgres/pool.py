"""Connection settings: pool sizes, lifetimes, health checks and PgBouncer mode, taken from
keyword arguments or from URL parameters (which are removed before libpq sees the URL).
Connection strings are parsed by libpq (psycopg.conninfo), URLs and keyword strings alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..errors import ConfigError, check_options
from ..urls import is_keyword_conninfo, redact


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"expected true or false, got {value!r}")


def _threshold(value: Any) -> int | None:
    if value is None or str(value).strip().lower() in ("none", "off", "-1"):
        return None
    return int(value)


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How the savers connect when given a URL. Every field is also a URL parameter."""

    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_max_idle: float = 300.0  # seconds an idle connection is kept
    pool_max_lifetime: float = 3600.0  # seconds before a connection is replaced
    pool_timeout: float = 30.0  # seconds to wait for a free connection
    pool_reconnect_timeout: float = 1.0  # seconds the pool retries a failed connection
    pool_check: bool = True  # test a connection on checkout, replace it if dead
    pool_check_idle: float = 1.0  # ... only after this many idle seconds (0: every checkout)
    pgbouncer: bool = False  # transaction pooling: no server-side prepared statements
    prepare_threshold: int | None = 5  # psycopg's automatic prepare; None turns it off
    pipeline: bool = True  # send a write's statements in one round trip

    def connection_kwargs(self) -> dict[str, Any]:
        threshold = None if self.pgbouncer else self.prepare_threshold
        return {"autocommit": True, "prepare_threshold": threshold}


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "pool_min_size": int,
    "pool_max_size": int,
    "pool_max_idle": float,
    "pool_max_lifetime": float,
    "pool_timeout": float,
    "pool_reconnect_timeout": float,
    "pool_check": _flag,
    "pool_check_idle": float,
    "pgbouncer": _flag,
    "prepare_threshold": _threshold,
    "pipeline": _flag,
}


def libpq_conninfo(conninfo: str) -> str:
    """`conninfo` (a URL or a keyword string) as libpq parses it, in keyword form.

    A mistake libpq finds (an unknown option, a malformed value) is a `ConfigError` naming
    it; libpq's message is only shown when it does not come from the password.
    """
    try:
        return make_conninfo("", **conninfo_to_dict(conninfo))
    except psycopg.ProgrammingError:
        pass
    try:
        conninfo_to_dict(redact(conninfo))
    except psycopg.ProgrammingError as exc:
        problem = str(exc).strip()
        hint = (
            ": pool settings go in a URL's query or in keyword arguments"
            if "pool_" in problem or "pgbouncer" in problem
            else ""
        )
        raise ConfigError(f"{problem} in {redact(conninfo)}{hint}") from None
    raise ConfigError(
        f"malformed password in {redact(conninfo)}: quote a password with spaces or quotes "
        "in a keyword string (password='...'), percent-encode it in a URL"
    )


def parse(url: str, options: dict[str, Any]) -> tuple[str, PoolSettings, dict[str, Any]]:
    """Split a URL or libpq keyword string and keyword options into (libpq conninfo, pool
    settings, other options). Pool settings are URL parameters or keyword options."""
    ours: dict[str, Any] = {}
    if url and not is_keyword_conninfo(url):
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in _CONVERT}
        rest = [(k, v) for k, v in query if k not in _CONVERT]
        url = parts._replace(query=urlencode(rest, quote_via=quote)).geturl()
    conninfo = libpq_conninfo(url) if url else ""
    ours.update({k: options.pop(k) for k in list(options) if k in _CONVERT})
    values: dict[str, Any] = {}
    for key, value in ours.items():
        try:
            values[key] = _CONVERT[key](value)
        except (ValueError, TypeError, ConfigError) as exc:
            raise ConfigError(f"bad value {value!r} for {key}: {exc}") from None
    settings = replace(PoolSettings(), **values)
    if settings.pool_check_idle < 0:
        raise ConfigError(f"pool_check_idle must be >= 0 seconds, got {settings.pool_check_idle}")
    if settings.pool_min_size < 0 or settings.pool_max_size < max(1, settings.pool_min_size):
        raise ConfigError(
            f"pool sizes must satisfy 0 <= pool_min_size <= pool_max_size, pool_max_size >= 1; "
            f"got {settings.pool_min_size} and {settings.pool_max_size}"
        )
    return conninfo, settings, options


def for_saver(owner: type, conn: Any, options: dict[str, Any]) -> tuple[str, PoolSettings]:
    """The libpq URL (empty unless `conn` is a URL) and the settings of a saver."""
    url, settings, unknown = parse(conn if isinstance(conn, str) else "", dict(options))
    check_options(owner, unknown, extra=_CONVERT)
    return url, settings
