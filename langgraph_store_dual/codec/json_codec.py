"""`JsonCodec`, the codec a saver uses, and the serializer-free `encode_plain` and
`decode_plain` (metadata, channel versions)."""

from __future__ import annotations

from typing import Any

import orjson
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from ..errors import ConfigError, DecodeError
from .decode import DecodeContext, decode
from .encode import PLAIN, EncodeContext, encode, encode_serde
from .policy import DEFAULT_ALLOWED, allowed_of, check_pickle_key
from .refs import MAX_EXPANSION, ValueCache
from .syntax import MISSING


class JsonCodec:
    """Encode checkpoint values to JSON-compatible trees and back.

    ``native`` is True when ``serde`` is a ``JsonPlusSerializer``: values use the typed
    JSON encoding and the serde only handles unknown types. Otherwise every value passed
    to :meth:`encode` goes whole through ``serde.dumps_typed`` (so e.g. encrypted state is
    never stored as plain JSON).
    """

    __slots__ = ("_ctx", "_ec", "_plain", "native", "serde")

    def __init__(
        self,
        serde: SerializerProtocol,
        *,
        pickle_key: bytes | None = None,
        max_expansion: int = MAX_EXPANSION,
    ) -> None:
        self.serde = serde
        self.native: bool = isinstance(serde, JsonPlusSerializer)
        pickle_key = check_pickle_key(pickle_key)
        if (
            not isinstance(max_expansion, int)
            or isinstance(max_expansion, bool)
            or max_expansion < 0
        ):
            raise ConfigError(
                f"max_expansion must be an int of characters >= 0, got {max_expansion!r}"
            )
        self._ec = EncodeContext(serde, pickle_key)
        allowed = allowed_of(serde)
        self._ctx = DecodeContext(serde, allowed, pickle_key, max_expansion)
        self._plain = DecodeContext(None, allowed)

    def encode(self, value: Any) -> Any:
        """Return the JSON-compatible tree for ``value``."""
        if self.native:
            return encode(value, self._ec)
        return encode_serde(value, self._ec)

    def decode(self, tree: Any, refs: ValueCache | None = None) -> Any:
        """Revive a tree made by :meth:`encode`; DecodeError if it is malformed.

        With `refs`, ``{"$r": h}`` and ``{"$s": h}`` resolve to the stored values it holds.
        """
        if refs is None:
            return decode(tree, self._ctx)
        return decode(tree, self._ctx.resolving(refs))

    def decode_plain(self, tree: Any) -> Any:
        """Revive a tree made by :func:`encode_plain` (metadata, versions) under this
        codec's class policy."""
        return decode(tree, self._plain)

    def dumps(self, value: Any) -> bytes:
        """``encode`` then serialize to JSON bytes."""
        return orjson.dumps(self.encode(value))

    def loads(self, data: bytes | str) -> Any:
        """Parse JSON bytes/str and ``decode`` them."""
        try:
            tree = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"stored value is not valid JSON: {exc}") from exc
        return decode(tree, self._ctx)


_PLAIN_CTX = DecodeContext(None, DEFAULT_ALLOWED)


def encode_plain(value: Any) -> Any:
    """Typed JSON encoding without any serializer (TypeError for unsupported types)."""
    return encode(value, PLAIN)


def decode_plain(tree: Any, *, allowed_modules: Any = MISSING) -> Any:
    """Inverse of :func:`encode_plain`.

    ``allowed_modules`` is the user-class policy, as for ``JsonPlusSerializer``:
    True (default unless ``LANGGRAPH_STRICT_MSGPACK`` is set) allows classes whose
    module is already imported, an iterable of ``(module, name)`` allows just those,
    None allows the fixed built-in types only.
    """
    ctx = _PLAIN_CTX if allowed_modules is MISSING else DecodeContext(None, allowed_modules)
    return decode(tree, ctx)
