"""Independent copies of decoded values, made fast by planning them once.

A value stored once and used by many snapshots is decoded once; each use gets a copy, as
mutating one snapshot's objects must never change another's. `copier(v)` looks at `v`
once and returns a function making copies of it (None when `v` is immutable and can be
shared): containers are copied with C-level `copy()` where their contents allow, and
pydantic models (LangChain messages) are rebuilt as `BaseModel.__deepcopy__` does.
`v` must not change afterwards.
"""

from __future__ import annotations

import copy
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

__all__ = ["Copier", "copier", "gc_paused", "new_model"]

Copier = Callable[[], Any]

_ATOMIC = frozenset(
    {str, int, float, bool, type(None), bytes, complex, Decimal, UUID, date, datetime, time}
    | {timedelta, timezone, frozenset}
)
_set_attr = object.__setattr__


def copier(v: Any) -> Copier | None:
    """A function returning copies of `v` sharing no mutable object with it, or None if
    `v` is immutable."""
    t = type(v)
    if t in _ATOMIC and (t is not frozenset or all(type(x) in _ATOMIC for x in v)):
        return None
    if t is dict:
        return _dict(v)
    if t is list:
        return _list(v)
    if t is tuple:
        parts = [copier(x) for x in v]
        if all(c is None for c in parts):
            return None
        return lambda: tuple(x if c is None else c() for x, c in zip(v, parts, strict=True))
    if t is set and all(type(x) in _ATOMIC for x in v):
        items: set[Any] = v
        return items.copy
    if isinstance(v, BaseModel) and t.__deepcopy__ is BaseModel.__deepcopy__:
        return _model(v, t)
    if isinstance(v, (Enum, PurePath)):
        return None
    return lambda: copy.deepcopy(v)


def _dict(v: dict[Any, Any]) -> Copier:
    inner = [(k, c) for k, x in v.items() if (c := copier(x)) is not None]
    if not inner:
        return v.copy

    def copy_dict() -> dict[Any, Any]:
        out = v.copy()
        for k, c in inner:
            out[k] = c()
        return out

    return copy_dict


def _list(v: list[Any]) -> Copier:
    parts = [copier(x) for x in v]
    if all(c is None for c in parts):
        return v.copy
    pairs = list(zip(v, parts, strict=True))
    return lambda: [x if c is None else c() for x, c in pairs]


def _slot_setter(name: str) -> Callable[[Any, Any], None]:
    """Sets a `BaseModel` slot through its descriptor (faster than `object.__setattr__`)."""
    slot = vars(BaseModel).get(name)
    setter = getattr(slot, "__set__", None)
    if setter is None:
        return lambda obj, value: _set_attr(obj, name, value)
    return setter  # type: ignore[no-any-return]


_set_extra = _slot_setter("__pydantic_extra__")
_set_fields_set = _slot_setter("__pydantic_fields_set__")
_set_private = _slot_setter("__pydantic_private__")


def _model(m: BaseModel, t: type[BaseModel]) -> Copier:
    """What `BaseModel.__deepcopy__` does, planned."""
    fields = _dict(m.__dict__)
    extra = m.__pydantic_extra__
    extra_copy = None if extra is None else _dict(extra)
    fields_set = m.__pydantic_fields_set__
    private = getattr(m, "__pydantic_private__", None)
    if private is not None:
        private = {k: x for k, x in private.items() if x is not PydanticUndefined}
    new = t.__new__

    def copy_model() -> BaseModel:  # `new_model` inline: a history copies every message
        out = new(t)
        _set_attr(out, "__dict__", fields())
        _set_extra(out, None if extra_copy is None else extra_copy())
        _set_fields_set(out, set(fields_set))
        _set_private(out, None if private is None else copy.deepcopy(private))
        return out

    return copy_model


def new_model(
    t: type[BaseModel],
    fields: dict[str, Any],
    extra: dict[str, Any] | None,
    fields_set: set[str],
    private: dict[str, Any] | None,
) -> Any:
    """A `t` holding exactly these fields and pydantic state, made without validation."""
    new = t.__new__(t)
    _set_attr(new, "__dict__", fields)
    _set_extra(new, extra)
    _set_fields_set(new, fields_set)
    _set_private(new, private)
    return new


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while decoding a batch of snapshots.

    Decoding a history builds many acyclic objects that the caller keeps (LangGraph's
    `get_state_history` holds them all). Collected young, each would be traversed by a
    young and a middle-generation pass: half the time of a long history. So when a pause
    ends with a young collection due (more allocations than the youngest generation's
    threshold), every tracked object moves straight to the oldest generation instead
    (`gc.freeze()` then `gc.unfreeze()`, skipped if the process froze objects itself):
    only full passes, which Python makes rare, look at them. Cyclic garbage that was young
    (at most a threshold's worth from before the pause) then waits for the next full pass.
    Pauses nest across threads; the collector resumes when the last ends, unless it was off
    before the first began. No caller code runs while it is paused.
    """
    global _gc_depth, _gc_resume
    with _gc_lock:
        if _gc_depth == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0:
                due = gc.get_threshold()[0]
                if 0 < due < gc.get_count()[0] and gc.get_freeze_count() == 0:
                    gc.freeze()
                    gc.unfreeze()
                if _gc_resume:
                    gc.enable()
