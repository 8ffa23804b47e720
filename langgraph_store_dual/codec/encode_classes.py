"""Encoders of the classes the table does not list, made when a class is first met:
LangGraph's (``langgraph.types``, not imported before) and user classes (enum, pydantic
model, dataclass, namedtuple) that a ``"module:qualname"`` reference finds again."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import BaseModel

from .syntax import MISSING, TAG, storable
from .table import LANGGRAPH, USER_CLASSES, Envelope, Form

#: An encoder: (value, the encoding's context) -> its JSON tree.
Encoder = Callable[[Any, Any], Any]


class Kit(NamedTuple):
    """The encoding's own functions, which the encoders made here recurse into (given
    by `encode`, so that this module does not import it back)."""

    encode: Callable[[Any, Any], Any]
    encode_fields: Callable[[dict[Any, Any], Any], dict[str, Any]]
    fixed_encoder: Callable[[Envelope, type], Encoder]


def class_encoder(t: type, kit: Kit) -> Encoder | None:
    """The encoder of a type the table does not list, or None (the serde's)."""
    row = LANGGRAPH.get(t.__name__) if t.__module__ == "langgraph.types" else None
    if row is not None:
        lg = sys.modules.get("langgraph.types")
        if lg is not None and vars(lg).get(t.__name__) is t:
            return kit.fixed_encoder(row, t)
    for row in USER_CLASSES:
        assert row.kind is not None
        if row.kind(t):
            ref = _class_ref(t)
            return _FORMS[row.form](row, t, ref, kit) if ref else None
    return None


def _class_ref(t: type) -> str | None:
    """``"module:qualname"`` of ``t`` if that path resolves back to ``t``, else None."""
    mod, qual = t.__module__, t.__qualname__
    obj: Any = sys.modules.get(mod)
    for part in qual.split("."):
        try:
            obj = vars(obj).get(part)
        except TypeError:
            return None
    if obj is not t or not storable(mod) or not storable(qual):
        return None
    return f"{mod}:{qual}"


def _enum(row: Envelope, t: type, ref: str, kit: Kit) -> Encoder:
    tag, encode = row.tag, kit.encode

    def enc(v: Any, ec: Any) -> Any:
        return {TAG: tag, "c": ref, "v": encode(v.value, ec)}

    return enc


def _namedtuple(row: Envelope, t: type, ref: str, kit: Kit) -> Encoder:
    tag, encode = row.tag, kit.encode

    def enc(v: Any, ec: Any) -> Any:
        return {TAG: tag, "c": ref, "v": [encode(x, ec) for x in v]}

    return enc


def _dataclass(row: Envelope, t: type, ref: str, kit: Kit) -> Encoder:
    tag, encode = row.tag, kit.encode
    fields = tuple(
        (f.name, f.default if f.default is not dataclasses.MISSING else MISSING)
        for f in dataclasses.fields(t)
    )

    def enc(v: Any, ec: Any) -> Any:
        out: dict[str, Any] = {}
        for name, default in fields:
            x = getattr(v, name, MISSING)
            if x is MISSING or x is default:
                continue
            out[name] = encode(x, ec)
        return {TAG: tag, "c": ref, "v": out}

    return enc


def _pydantic(row: Envelope, t: type, ref: str, kit: Kit) -> Encoder:
    assert issubclass(t, BaseModel)
    defaults = {
        n: f.default
        for n, f in t.model_fields.items()
        if f.default_factory is None and not f.is_required()
    }
    return _model(row.tag, ref, defaults, kit, v1=False)


def _pydantic_v1(row: Envelope, t: type, ref: str, kit: Kit) -> Encoder:
    model_fields: dict[str, Any] = t.__fields__  # type: ignore[attr-defined]
    defaults = {
        n: f.default
        for n, f in model_fields.items()
        if f.default_factory is None and not f.required
    }
    return _model(row.tag, ref, defaults, kit, v1=True)


def _model(tag: str, ref: str, defaults: dict[str, Any], kit: Kit, v1: bool) -> Encoder:
    """A pydantic model: all field values, minus unset fields still at their default.

    ``"u"`` lists the stored names that were not in the model's fields-set.
    """

    encode_fields = kit.encode_fields

    def enc(m: Any, ec: Any) -> Any:
        if v1:
            fields_set = m.__fields_set__
            items: Any = m.__dict__.items()
        else:
            fields_set = m.__pydantic_fields_set__
            items = m.__dict__.items()
            extra = m.__pydantic_extra__
            if extra:
                items = [*items, *extra.items()]
        values: dict[str, Any] = {}
        unset: list[str] = []
        for name, x in items:
            if name not in fields_set:
                if x is defaults.get(name, MISSING):
                    continue
                unset.append(name)
            values[name] = x
        out = {TAG: tag, "c": ref, "v": encode_fields(values, ec)}
        if unset:
            out["u"] = unset
        return out

    return enc


_FORMS: dict[Form, Callable[[Envelope, type, str, Kit], Encoder]] = {
    "enum": _enum,
    "pydantic": _pydantic,
    "pydantic_v1": _pydantic_v1,
    "dataclass": _dataclass,
    "namedtuple": _namedtuple,
}
