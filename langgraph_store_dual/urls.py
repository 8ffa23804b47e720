"""Database URLs as text: password redaction, libpq keyword strings, SQLite paths.

`from_url` (in `opener`) opens a saver for a URL.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from .errors import ConfigError

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


#: The database `from_url()` opens when neither a URL nor `DATABASE_URL` names one.
DEFAULT_URL = "sqlite:///checkpoints.db"
