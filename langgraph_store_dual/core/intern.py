"""Content-addressed interning of snapshot values. Pure functions, no I/O.

Storing each checkpoint's whole state makes a thread grow with the square of its length.
Before a snapshot is stored, `intern_channels` moves its large parts into rows of
`checkpoint_values` (one per thread and hash) and leaves references in the JSON:

- a channel value, or a field of a large object, that is a JSON object or string of
  `MIN_BYTES` or more is stored once and replaced by ``{"$r": hash}``;
- a list of `MIN_BYTES` or more becomes ``[{"$s": hash}]``, "splice the items stored under
  hash here". What is stored is a *prefix chain*: the value for the first n items is
  ``[{"$s": <first n - step>}, <last step>]`` where step is the largest power of `FANOUT`
  dividing n, and the last step is one item (inline) or a *run* of `FANOUT`**k items
  (level 1: `FANOUT` items inline; level k: `FANOUT` runs of level k - 1). Appending an
  item to a list adds one small value (and, every `FANOUT` items, a run); a reader
  follows at most `FANOUT` - 1 links per level;
- list items and objects of `DESCEND_BYTES` or more are looked into, so that lists and
  large fields inside them get the same treatment (typed envelopes only where their
  decoder reads the fields as trees: messages, documents, models, tuples..., as the
  codec's type table says in `OPEN_ENVELOPES`).

``hash`` is the URL-safe base64 of a 16-byte blake2b digest of the stored JSON bytes.
Each stored value lists the hashes it refers to directly (`refs`), so that the engines
follow references without parsing JSON. A snapshot lists every hash it needs (its
closure) when they are at most `CLOSED_MAX`, so that a read fetches them all in one
lookup, and else those it refers to directly (a long thread's, which a read follows
down; listing them all would make its snapshots grow with the square of its length).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from ..codec import OPEN_ENVELOPES, REF, SPLICE, TAG

#: Channel values, fields of large objects and lists of this many bytes of JSON or more
#: are stored once per thread.
MIN_BYTES = 128
#: List items and objects of this many bytes or more are looked into.
DESCEND_BYTES = 2048
#: Items per level-1 run, runs per higher-level run.
FANOUT = 16
#: Characters of a hash (URL-safe base64 of 16 bytes, unpadded).
HASH_CHARS = 22
#: A snapshot needing at most this many values lists them all (see above).
CLOSED_MAX = 24
#: Hashes remembered with the JSON they name, of values of at most `MEMO_MAX_BYTES`
#: (8 MiB at most, held by the process).
DIGEST_MEMO = 512
MEMO_MAX_BYTES = 16 << 10

_dumps = orjson.dumps
_NONE: frozenset[str] = frozenset()

Refs = frozenset[str] | set[str]


def digest(data: bytes) -> str:
    """The hash naming stored JSON bytes. Remembered for the values of at most
    `MEMO_MAX_BYTES` met last: a put interns its whole state again, and all but its
    newest values were met before (a dict lookup hashes them 3 to 4 times faster)."""
    return _remembered(data) if len(data) <= MEMO_MAX_BYTES else _digest(data)


def _digest(data: bytes) -> str:
    raw = hashlib.blake2b(data, digest_size=16).digest()
    return base64.urlsafe_b64encode(raw)[:HASH_CHARS].decode("ascii")


_remembered = lru_cache(maxsize=DIGEST_MEMO)(_digest)


@dataclass(frozen=True, slots=True)
class Unit:
    """A channel value interned: its entry in the snapshot, the hashes the entry refers
    to, the values it needs (hash -> (JSON, hashes it refers to)) and their bytes."""

    entry: Any
    refs: Refs
    values: dict[str, tuple[bytes, list[str]]]
    size: int


class Remembered(NamedTuple):
    """A channel as a put stored it: its version, its value, what the value was interned
    to (see `values.ChannelMemo`)."""

    version: Any
    value: Any
    unit: Unit


@dataclass(slots=True)
class Interned:
    """A snapshot's channel values with references, and what they refer to."""

    channels: dict[str, Any]
    refs: list[str]  # sorted: every hash they need if at most CLOSED_MAX, else direct ones
    values: dict[str, tuple[bytes, list[str]]]  # hash -> (JSON, hashes it refers to)
    units: dict[str, Unit]  # each channel's


def intern_channel(tree: Any) -> Unit:
    """Intern one encoded channel value (a JSON tree made by the codec)."""
    interner = _Interner()
    entry, refs = interner.unit(tree)
    values = interner.values
    return Unit(entry, refs, values, sum(len(data) for data, _ in values.values()))


def intern_channels(channels: Mapping[str, Any]) -> Interned:
    """Intern encoded channel values: JSON trees made by the codec, or the `Unit` a
    channel's value was interned to before."""
    out: dict[str, Any] = {}
    refs: set[str] = set()
    values: dict[str, tuple[bytes, list[str]]] = {}  # every value the snapshot needs
    units: dict[str, Unit] = {}
    for ch, tree in channels.items():
        unit = tree if type(tree) is Unit else intern_channel(tree)
        units[ch] = unit
        out[ch] = unit.entry
        refs |= unit.refs
        values.update(unit.values)
    return Interned(out, sorted(values if len(values) <= CLOSED_MAX else refs), values, units)


class _Interner:
    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[str, tuple[bytes, list[str]]] = {}

    def store(self, data: bytes, refs: Refs) -> str:
        h = digest(data)
        if h not in self.values:
            self.values[h] = (data, sorted(refs))
        return h

    def unit(self, node: Any) -> tuple[Any, Refs]:
        """A channel value or a field of a large object: stored once if large."""
        t = type(node)
        if t is list:
            return self.sequence(node)
        if t is dict:
            data = _dumps(node)
            refs: Refs = _NONE
            if len(data) >= DESCEND_BYTES:
                node, refs = self.fields(node)
                if refs:
                    data = _dumps(node)
        elif t is str and len(node) * 4 >= MIN_BYTES:  # a char is 1 to 4 bytes of UTF-8
            data = _dumps(node)
            refs = _NONE
        else:
            return node, _NONE
        if len(data) < MIN_BYTES:
            return node, refs
        h = self.store(data, refs)
        return {REF: h}, {h}

    def fields(self, node: dict[str, Any]) -> tuple[dict[str, Any], Refs]:
        tag = node.get(TAG)
        keep = _NONE if tag is None else OPEN_ENVELOPES.get(tag) if type(tag) is str else None
        if keep is None:
            return node, _NONE
        out: dict[str, Any] = {}
        refs: set[str] = set()
        for k, v in node.items():
            if k == TAG or k in keep:
                out[k] = v
                continue
            out[k], r = self.unit(v)
            refs |= r
        return out, refs

    def item(self, node: Any) -> tuple[Any, Refs, bytes]:
        """A list item, kept inline: (entry, its refs, its JSON)."""
        t = type(node)
        if t is list:
            node, refs = self.sequence(node)
            return node, refs, _dumps(node)
        data = _dumps(node)
        if t is dict and len(data) >= DESCEND_BYTES:
            node, refs = self.fields(node)
            if refs:
                return node, refs, _dumps(node)
        return node, _NONE, data

    def sequence(self, items: list[Any]) -> tuple[list[Any], Refs]:
        """A list: inline if small, else stored as a prefix chain."""
        entries: list[Any] = []
        refs: list[Refs] = []
        texts: list[bytes] = []
        size = 1
        for item in items:
            e, r, data = self.item(item)
            entries.append(e)
            refs.append(r)
            texts.append(data)
            size += len(data) + 1
        if size < MIN_BYTES:
            return entries, set().union(*refs)
        h = self.prefix(texts, refs)
        return [{SPLICE: h}], {h}

    def prefix(self, texts: list[bytes], refs: list[Refs]) -> str:
        """Store the prefix chain of a list whose entries' JSON is `texts`; return the hash
        of the whole (a list's JSON is its items' JSON joined by commas, as orjson writes
        it)."""
        n = len(texts)
        level1 = []
        for i in range(0, n - n % FANOUT, FANOUT):
            span = slice(i, i + FANOUT)
            level1.append(self.store(_list_of(texts[span]), set().union(*refs[span])))
        runs = [level1]  # runs[k][j]: items [j * F**(k+1), (j + 1) * F**(k+1))
        while len(runs[-1]) >= FANOUT:
            below = runs[-1]
            runs.append([])
            for i in range(0, len(below) - len(below) % FANOUT, FANOUT):
                group = below[i : i + FANOUT]
                runs[-1].append(self.store(_list_of(map(_splice, group)), set(group)))
        chain = []  # (end, level) from n down to 0: the last step is one item (level -1)
        end = n
        while end:
            level, step = -1, 1
            while end % (step * FANOUT) == 0:
                level, step = level + 1, step * FANOUT
            chain.append((end, level))
            end -= step
        prev: str | None = None
        for end, level in reversed(chain):
            if level < 0:
                last, last_refs = texts[end - 1], refs[end - 1]
            else:
                run = runs[level][end // FANOUT ** (level + 1) - 1]
                last, last_refs = _splice(run), {run}
            if prev is None:
                prev = self.store(b"[" + last + b"]", last_refs)
            else:
                prev = self.store(b"[" + _splice(prev) + b"," + last + b"]", {prev, *last_refs})
        assert prev is not None
        return prev


def _list_of(texts: Iterable[bytes]) -> bytes:
    return b"[" + b",".join(texts) + b"]"


def _splice(h: str) -> bytes:
    return b'{"' + SPLICE.encode() + b'":"' + h.encode() + b'"}'


def refs_in(tree: Any) -> Iterator[str]:
    """Every hash a JSON tree refers to directly."""
    stack = [tree]
    while stack:
        node = stack.pop()
        t = type(node)
        if t is dict:
            if len(node) == 1:
                key = next(iter(node))
                if key in (REF, SPLICE) and type(node[key]) is str:
                    yield node[key]
                    continue
            stack.extend(node.values())
        elif t is list:
            stack.extend(node)
