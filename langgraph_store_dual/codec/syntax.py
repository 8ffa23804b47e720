"""The stored format's reserved keys, and which text it holds as is."""

from __future__ import annotations

import base64
import re
from typing import Any

TAG = "$t"
"""Reserved key marking a typed envelope."""
MAP_PAIRS = "$m"
"""Key of a ``map`` envelope holding the ``[key, value]`` pairs JSON cannot hold inline."""
MAP_ORDER = "$o"
"""Key of a ``map`` envelope giving the full key order when the stored form loses it."""
REF = "$r"
"""Key of ``{"$r": hash}``: a value stored once per thread (see ``core.intern``)."""
SPLICE = "$s"
"""Key of ``{"$s": hash}`` in a list: a stored run of items, spliced in its place."""

MAP_RESERVED = frozenset({TAG, MAP_PAIRS, MAP_ORDER})
"""Keys a ``map`` envelope cannot hold inline."""
ESCAPED_KEYS = frozenset({TAG, REF, SPLICE})
"""Keys that make a plain dict a ``map`` envelope (else it would read as an envelope or a
reference)."""

MISSING: Any = object()
"""An absent attribute or field, or a field without a default."""

_UNSTORABLE = re.compile("([\x00\ud800-\udfff])")


def storable(s: str) -> bool:
    """True if ``s`` has no NUL and no lone surrogate: orjson and JSONB store it as is.

    Loops over every value inline its ASCII case, ``s.isascii() and "\\x00" not in s``,
    and ask this function about the rest.
    """
    if s.isascii():
        return "\x00" not in s
    if "\x00" in s:
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def split_unstorable(s: str) -> list[str | int]:
    """``s`` as its storable runs of text, with the code point of each character that
    `storable` refuses in between."""
    parts: list[str | int] = []
    for i, part in enumerate(_UNSTORABLE.split(s)):
        if i % 2:
            parts.append(ord(part))
        elif part:
            parts.append(part)
    return parts


def qualname(t: type) -> str:
    """``module.qualname`` of a class, for messages."""
    return f"{t.__module__}.{t.__qualname__}"


def b64(data: bytes | bytearray) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")
