"""References to stored values: resolving ``{"$r": h}`` and ``{"$s": h}`` while decoding.

Each stored value is decoded once per cache, every use gets its own copy, and how far
values used more than once may expand a checkpoint is bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from ..errors import DecodeError, MissingValueError
from ..fresh import copier
from .decode import MESSAGES, DecodeContext, decode_node
from .syntax import MISSING, SPLICE, TAG
from .table import MESSAGE

MAX_EXPANSION = 4 << 20
"""Default of the characters of JSON that stored values used more than once may add to a
checkpoint being read, beyond `EXPANSION_RATIO` times what it stores (see `ValueCache`)."""
EXPANSION_RATIO = 16


class Flat(NamedTuple):
    """A run with the runs inside it spliced in: its `items` as (value, copier), and the
    hashes of those inner `runs`."""

    items: list[tuple[Any, Any]]
    runs: frozenset[str]


class ValueCache:
    """Stored values (hash -> JSON tree) that references in a tree resolve to.

    Each value is decoded once, however many snapshots (and reads) use it, and every use
    gets its own copy (see `fresh`): a caller mutating one snapshot never changes another.
    With `shared=False` the cache serves one decoding only (one snapshot): the first use
    of a value then gets the decoded object itself. Values missing from `trees` are
    parsed from their JSON text in `raw`, when given, on first use. With `flatten` (for a
    listing, which copies the same runs of list items into snapshot after snapshot), a run
    used again is kept as one list of its items, the runs inside spliced in: copied at C
    speed from then on instead of walked, for one more reference per item a snapshot
    gets (a run holding every earlier message of a thread grows with the thread, so not
    for caches kept across reads).

    Expansion is bounded: a snapshot's first use of a value counts its expanded size
    (characters of JSON) as `fresh`, each further use adds it to `spent`, and when `spent`
    exceeds the codec's `max_expansion` plus `EXPANSION_RATIO` times `fresh`, decoding
    stops with a DecodeError before making the copies: stored values referring to each
    other twice would otherwise expand exponentially. `begin` starts a new snapshot.
    """

    __slots__ = (
        "_flats",
        "_grown",
        "_held",
        "_quiet",
        "_runs",
        "_seen",
        "_sizes",
        "_values",
        "fresh",
        "raw",
        "shared",
        "spent",
        "trees",
    )

    def __init__(
        self,
        trees: dict[str, Any] | None = None,
        *,
        shared: bool = True,
        raw: Mapping[str, str] | None = None,
        flatten: bool = False,
    ) -> None:
        self.shared = shared
        self.raw = raw
        self.trees: dict[str, Any] = trees if trees is not None else {}
        # {"$r": h} -> (value, copier); {"$s": h} -> its items as (value or hash, copier)
        self._values: dict[str, tuple[Any, Any]] = {}
        self._runs: dict[str, list[tuple[Any, Any]]] = {}
        self._flats: dict[str, Flat] | None = {} if flatten else None  # with `flatten`
        self._sizes: dict[str, int] = {}  # hash -> characters of JSON it expands to
        self._seen: set[str] = set()  # hashes the current snapshot used
        self.fresh = 0  # characters the current snapshot's first uses expand to
        self.spent = 0  # characters its repeated uses add
        self._grown = 0  # characters expanded so far (measures `_sizes`)
        self._held = 0  # > 0 while re-emitting a decoded run: `_grown` already counted it
        self._quiet = 0  # > 0 while re-emitting a run charged whole

    def begin(self) -> None:
        """Start decoding a new snapshot: every value's next use is its first."""
        self._seen.clear()
        self.fresh = self.spent = 0

    def _enter(self, h: Any, ctx: DecodeContext) -> Any:
        """The tree stored under `h`, being decoded until `ctx.active` drops it."""
        if type(h) is not str:
            raise DecodeError(f"stored value {h!r} is missing")
        raw = self.raw
        text = raw.get(h) if raw is not None else None
        tree = self.trees.get(h, MISSING)
        if tree is MISSING:
            if text is None:
                raise MissingValueError(f"stored value {h!r} is missing")
            try:
                tree = self.trees[h] = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise DecodeError(f"stored value {h!r} is not valid JSON: {exc}") from exc
        if h in ctx.active:
            raise DecodeError(f"stored value {h!r} refers to itself")
        ctx.active.add(h)
        self._seen.add(h)
        if not self._held:
            size = len(text) if text is not None else len(orjson.dumps(tree))
            self._grown += size
            self.fresh += size
        return tree

    def _repeat(self, size: int, ctx: DecodeContext) -> None:
        """Charge the repeated use of a value or run of `size` characters of JSON."""
        self.spent += size
        if self.spent > ctx.max_expansion + EXPANSION_RATIO * self.fresh:
            raise DecodeError(
                f"stored values expand beyond the limit: values used more than once add "
                f"{self.spent} characters of JSON to a checkpoint of {self.fresh}, over "
                f"max_expansion ({ctx.max_expansion}) plus {EXPANSION_RATIO} times that"
            )

    def value(self, h: Any, ctx: DecodeContext) -> Any:
        """The value ``{"$r": h}`` stands for."""
        done = self._values.get(h) if type(h) is str else None
        if done is None:
            start = self._grown
            tree = self._enter(h, ctx)
            try:
                v = decode_node(tree, ctx)
            finally:
                ctx.active.discard(h)
            self._sizes[h] = self._grown - start
            done = self._values[h] = (v, _plan(v, self.shared))
            if not self.shared:
                return v
        else:  # no value is decoded while a run is re-emitted: not held, not quiet
            size = self._sizes[h]
            self._grown += size
            if h in self._seen:
                self._repeat(size, ctx)
            else:
                self._seen.add(h)
                self.fresh += size
        v, copy = done
        if copy is _UNPLANNED:
            copy = copier(v)
            self._values[h] = (v, copy)
        return v if copy is None else copy()

    def items(self, x: list[Any], ctx: DecodeContext) -> list[Any]:
        """Decode a list, splicing in the items its ``{"$s": h}`` entries stand for."""
        out: list[Any] = []
        for i in x:
            ti = type(i)
            if ti is str or ti is int or ti is float:
                out.append(i)
            elif ti is dict and len(i) == 1 and SPLICE in i:
                self._splice(i[SPLICE], ctx, out)
            else:
                out.append(decode_node(i, ctx))
        return out

    def _splice(self, h: Any, ctx: DecodeContext, out: list[Any]) -> None:
        """Append the items of run `h` to `out`: copies, unless this (unshared) cache
        decodes them now."""
        parts = self._runs.get(h) if type(h) is str else None
        hit = parts is not None
        charged = first = False
        if hit:  # a run decoded before: counted whole here, so not its parts again
            if not self._quiet:  # else inside a run charged whole
                size = self._sizes.get(h, 0)
                charged = h in self._seen
                if charged:
                    self._repeat(size, ctx)
                else:
                    self._seen.add(h)
                if not self._held:
                    self._grown += size
                    if not charged:
                        self.fresh += size
            flat = None
            if self._flats is not None:
                flat = self._flats.get(h) or self._flat(h, set())
            if flat is not None and (
                charged or self._quiet or self._seen.isdisjoint(flat.runs)
            ):  # as the parts below would count it: the runs inside are new or not counted
                if not (charged or self._quiet):
                    self._seen.update(flat.runs)
                out.extend([v if copy is None else copy() for v, copy in flat.items])
                return
            self._held += 1
            self._quiet += charged
        else:
            start = self._grown
            tree = self._enter(h, ctx)
            try:
                if type(tree) is not list:
                    raise DecodeError(f"stored run {h!r} is not a list")
                raw = self.raw
                text = raw.get(h) if raw is not None else None
                item = MESSAGES.decode_plain if _messages_alone(tree, text) else decode_node
                parts = self._runs[h] = [
                    (i[SPLICE], _SPLICED)
                    if type(i) is dict and len(i) == 1 and SPLICE in i
                    else ((v := item(i, ctx)), _plan(v, self.shared))
                    for i in tree
                ]
            finally:
                ctx.active.discard(h)
            first = not self.shared
        assert parts is not None
        try:
            if h in ctx.active:
                raise DecodeError(f"stored value {h!r} refers to itself")
            ctx.active.add(h)
            try:
                for j, (v, copy) in enumerate(parts):
                    if copy is _SPLICED:
                        self._splice(v, ctx, out)
                    elif first or copy is None:
                        out.append(v)
                    else:
                        if copy is _UNPLANNED:
                            copy = copier(v)
                            parts[j] = (v, copy)
                        out.append(v if copy is None else copy())
            finally:
                ctx.active.discard(h)
        finally:
            if hit:
                self._held -= 1
                self._quiet -= charged
        if not hit:
            self._sizes[h] = self._grown - start

    def _flat(self, h: str, outer: set[str]) -> Flat | None:
        """Run `h` flattened, made once per run (copying its parts' lists at C speed
        instead of walking them each time); None unless `h` and every run inside it are
        decoded (`outer`: the runs being flattened, so a cycle is None too)."""
        assert self._flats is not None
        got = self._flats.get(h)
        if got is not None:
            return got
        parts = self._runs.get(h)
        if parts is None or h in outer:
            return None
        outer.add(h)
        flat: list[tuple[Any, Any]] = []
        inner: set[str] = set()
        for j, (v, copy) in enumerate(parts):
            if copy is _SPLICED:
                nested = self._flat(v, outer)
                if nested is None:
                    return None
                flat.extend(nested.items)
                inner.add(v)
                inner.update(nested.runs)
            else:
                if copy is _UNPLANNED:
                    copy = copier(v)
                    parts[j] = (v, copy)
                flat.append((v, copy))
        outer.discard(h)
        got = self._flats[h] = Flat(flat, frozenset(inner))
        return got


def _messages_alone(run: list[Any], text: str | None) -> bool:
    """Whether a run holds messages and splices only, with no envelope or reference inside
    a message (nor a string starting with "$" anywhere): its JSON text then holds one
    ``"$`` per item (a message's tag, a splice's key) and no other."""
    if text is None:
        return False
    for i in run:
        if type(i) is not dict or (i.get(TAG) != MESSAGE.tag and not (len(i) == 1 and SPLICE in i)):
            return False
    return text.count('"$') == len(run)


# Markers in place of a copier: a part of a run that is a run itself; a value whose
# copier is made when it is used a second time (by caches serving one decoding).
_SPLICED: Any = object()
_UNPLANNED: Any = object()


def _plan(v: Any, shared: bool) -> Any:
    return copier(v) if shared else _UNPLANNED
