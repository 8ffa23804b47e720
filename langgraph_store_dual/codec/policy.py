"""The revival policy: what decoding may bring back to life. The security review surface.

Decoding never imports or calls anything outside an allowlist. The fixed types of the type
table (standard types, LangChain messages and ``Document``, LangGraph ``Send`` /
``Interrupt`` / ``Command`` / ``TimeoutPolicy`` / ``_DeltaSnapshot``) are always revived.
User classes (enum, dataclass, namedtuple, pydantic) follow the serializer's
``allowed_msgpack_modules``: True allows classes whose module is already imported (and
never imports one), a collection of ``(module, name)`` or classes allows just those
(importing their module if needed), None allows none; LangGraph's own safe list is always
allowed. A pickle is revived only with the saver's signature, and the classes a
JsonPlusSerializer msgpack payload names get the same policy before the serializer runs.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import ipaddress
import sys
from collections import deque
from datetime import date, time, timedelta, timezone
from decimal import Decimal
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from uuid import UUID

import ormsgpack
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import SecretBytes, SecretStr

from ..errors import ConfigError, DecodeError, UnsafeTypeError
from .syntax import MISSING, b64, qualname
from .table import Envelope, is_dataclass, is_enum, is_pydantic, is_pydantic_v1

try:  # LangGraph's own list of types that are always safe to revive.
    from langgraph.checkpoint.serde._msgpack import (
        SAFE_MSGPACK_TYPES as _LG_SAFE,
    )
    from langgraph.checkpoint.serde._msgpack import (
        STRICT_MSGPACK_ENABLED as _LG_STRICT,
    )
except ImportError:  # pragma: no cover - older/newer layouts
    _LG_SAFE = frozenset()
    _LG_STRICT = False

DEFAULT_ALLOWED: Any = None if _LG_STRICT else True
"""The policy without a serializer: JsonPlusSerializer's default (``LANGGRAPH_STRICT_MSGPACK``)."""
PICKLE = "pickle"
"""Serializer type of a pickle: its ``serde`` envelope carries a signature ``"k"``."""
MIN_PICKLE_KEY = 16


def pickle_mac(key: bytes, data: bytes) -> str:
    """The signature of a pickle: HMAC-SHA256 under the saver's pickle key, base64."""
    return b64(hmac.digest(key, b"pickle\0" + data, hashlib.sha256))


def check_pickle_key(key: Any) -> bytes | None:
    """`key` if it is None or bytes of at least `MIN_PICKLE_KEY` bytes, else ConfigError."""
    if key is None:
        return None
    if not isinstance(key, bytes) or len(key) < MIN_PICKLE_KEY:
        raise ConfigError(
            f"pickle_key must be bytes, at least {MIN_PICKLE_KEY} of them (e.g. "
            f"secrets.token_bytes(32)), got {type(key).__name__}"
        )
    return key


def allowed_of(serde: Any) -> Any:
    """The serde's ``_allowed_msgpack_modules`` (also looked up on a wrapped ``.serde``)."""
    for s in (serde, getattr(serde, "serde", None)):
        if s is not None and "_allowed_msgpack_modules" in getattr(s, "__dict__", {}):
            return s._allowed_msgpack_modules
    return None


def reaches_jsonplus(serde: Any) -> bool:
    """Whether a ``msgpack`` payload reaches JsonPlusSerializer (maybe wrapped, e.g.
    encrypted), which would import what it names."""
    return isinstance(serde, JsonPlusSerializer) or isinstance(
        getattr(serde, "serde", None), JsonPlusSerializer
    )


class RevivalPolicy:
    """Which user classes and pickles one decoding context may revive.

    ``allowed``: True (classes whose module is already imported), a frozenset of
    ``(module, name)`` (only those; may import), or None (fixed types only).
    """

    __slots__ = ("allowed", "classes", "modules", "pickle_key")

    def __init__(self, allowed: Any, pickle_key: bytes | None = None) -> None:
        self.pickle_key = pickle_key  # pickles are revived only with a valid signature
        if allowed is True:
            self.allowed: Any = True
            self.modules: frozenset[str] = frozenset()
        elif allowed:
            keys: set[tuple[str, ...]] = set()
            for k in allowed:
                if isinstance(k, type):
                    keys.add((k.__module__, k.__name__))
                else:
                    keys.add(tuple(k))
            self.allowed = frozenset(keys)
            self.modules = frozenset(k[0] for k in keys if k)
        else:
            self.allowed = None
            self.modules = frozenset()
        self.classes: dict[tuple[str, str], type] = {}  # (tag, "module:qualname") -> class

    def resolve(self, row: Envelope, ref: str) -> type:
        """The class a user-class envelope's ``"c"`` names, if the policy allows it."""
        tag = row.tag
        mod, _, qual = ref.partition(":")
        parts = qual.split(".")
        if not all(p.isidentifier() for p in mod.split(".")) or not all(
            p.isidentifier() for p in parts
        ):
            raise DecodeError(f"{tag!r} envelope has a malformed class reference {ref!r}")
        key = (mod, qual)
        cls = self.classes.get((tag, ref))
        if cls is not None:
            return cls
        name = parts[-1]
        builtin = key in _LG_SAFE or (mod, name) in _LG_SAFE
        allowed = self.allowed
        if builtin or (type(allowed) is frozenset and mod in self.modules):
            if not builtin and key not in allowed and (mod, name) not in allowed:
                raise UnsafeTypeError(f"class {ref!r} is not in allowed_msgpack_modules")
            module = sys.modules.get(mod)
            if module is None:
                try:
                    module = importlib.import_module(mod)
                except Exception as exc:
                    raise DecodeError(f"cannot import module {mod!r} for {ref!r}") from exc
        elif allowed is True:
            module = sys.modules.get(mod)
            if module is None:
                raise UnsafeTypeError(
                    f"class {ref!r} refused: module {mod!r} is not imported "
                    "(decoding never imports modules in permissive mode)"
                )
        else:
            raise UnsafeTypeError(f"class {ref!r} is not on the decoding allowlist")
        obj: Any = module
        for part in parts:
            try:
                obj = vars(obj).get(part, MISSING)
            except TypeError:
                obj = MISSING
            if obj is MISSING:
                raise DecodeError(f"class {ref!r} not found")
        assert row.kind is not None
        if not isinstance(obj, type) or not row.kind(obj):
            raise UnsafeTypeError(f"{ref!r} is not {row.what}; refusing to revive it")
        if obj.__module__ != mod or obj.__qualname__ != qual:
            raise UnsafeTypeError(f"{ref!r} is an alias of {qualname(obj)}; refusing it")
        self.classes[(tag, ref)] = obj
        return obj

    def check_pickle(self, mac: Any, data: bytes) -> None:
        """Refuse a pickle this saver did not sign (unpickling runs whatever it names)."""
        if self.pickle_key is None:
            raise UnsafeTypeError("pickle refused: the saver has no pickle_key to check it with")
        if type(mac) is not str or not hmac.compare_digest(mac, pickle_mac(self.pickle_key, data)):
            raise UnsafeTypeError("pickle refused: its signature does not match the pickle_key")

    def check_msgpack(self, data: bytes) -> None:
        """Check every class a JsonPlusSerializer msgpack payload names, before the serde
        runs: in its permissive mode the serde imports any module and calls any callable
        named in the data."""
        refused: list[DecodeError] = []

        def hook(code: int, payload: bytes) -> None:
            if not refused and code in _EXT_NESTING_CODES:
                tup = ormsgpack.unpackb(payload, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)
                if code in _EXT_CLASS_CODES and not refused:
                    try:
                        self._check_serde_class(tup)
                    except DecodeError as exc:
                        refused.append(exc)
            return None

        try:
            ormsgpack.unpackb(data, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)
        except Exception as exc:
            if refused:
                raise refused[0] from None
            raise DecodeError(f"'serde' envelope holds malformed msgpack: {exc}") from exc
        if refused:
            raise refused[0]

    def _check_serde_class(self, tup: Any) -> None:
        if not (
            type(tup) is list and len(tup) >= 3 and type(tup[0]) is str and type(tup[1]) is str
        ):
            raise DecodeError("'serde' envelope holds a malformed msgpack class extension")
        mod, name = tup[0], tup[1]
        if (mod, name) in _LG_SAFE:
            return
        allowed = self.allowed
        if allowed is True:
            module = sys.modules.get(mod)
            if module is None:
                raise UnsafeTypeError(
                    f"serialized class {mod}.{name} refused: module {mod!r} is not imported"
                )
            namespace = getattr(module, "__dict__", {})
            obj = namespace.get(name, MISSING)
            if obj is MISSING and "__getattr__" not in namespace:
                return  # the serde cannot find it either and keeps the raw payload
            if not _serde_class_ok(obj):
                raise UnsafeTypeError(f"serialized {mod}.{name} is not a revivable class")
        elif not allowed or (mod, name) not in allowed:
            raise UnsafeTypeError(f"serialized class {mod}.{name} is not on the decoding allowlist")


# JsonPlusSerializer msgpack extensions: codes whose payload is (module, name, ...) and
# names a class it will import and call, and codes whose payload may nest other extensions.
_EXT_CLASS_CODES = frozenset({0, 1, 2, 4, 5})
_EXT_NESTING_CODES = frozenset({0, 1, 2, 3, 4, 5, 7})
_SAFE_VALUE_BASES = (
    str,
    bytes,
    bytearray,
    int,
    float,
    tuple,
    list,
    dict,
    set,
    frozenset,
    deque,
    PurePosixPath,
    PureWindowsPath,
    UUID,
    Decimal,
    date,
    time,
    timedelta,
    timezone,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
    SecretStr,
    SecretBytes,
)


def _serde_class_ok(obj: Any) -> bool:
    """A class JsonPlusSerializer may construct under the permissive policy."""
    return isinstance(obj, type) and (
        issubclass(obj, _SAFE_VALUE_BASES)
        or is_enum(obj)
        or is_dataclass(obj)
        or is_pydantic(obj)
        or is_pydantic_v1(obj)
    )
