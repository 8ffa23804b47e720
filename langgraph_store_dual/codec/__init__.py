"""Typed JSON encoding of checkpoint values.

Values are turned into a *JSON-compatible tree* (dict with str keys, list, str, int,
float, bool, None) that both orjson and PostgreSQL JSONB store unchanged. Plain JSON
encodes to itself; everything else becomes a *typed envelope*: a dict holding the
reserved key ``"$t"`` (the type tag) and payload keys, e.g. ``{"$t": "tup", "v": [1, 2]}``.
Unknown types fall back to the checkpoint serializer (``serde``).

Modules: `syntax` (reserved keys, storable text), `table` (every envelope: tag, types,
payload form), `encode` and `decode` (both derived from the table), `policy` (what
decoding may revive), `refs` (stored values referred to), `json_codec` (`JsonCodec`).
"""

from .json_codec import JsonCodec, decode_plain, encode_plain
from .policy import MIN_PICKLE_KEY, PICKLE, check_pickle_key
from .refs import EXPANSION_RATIO, MAX_EXPANSION, ValueCache
from .syntax import MAP_ORDER, MAP_PAIRS, REF, SPLICE, TAG, storable
from .table import OPEN_ENVELOPES

__all__ = [
    "EXPANSION_RATIO",
    "MAP_ORDER",
    "MAP_PAIRS",
    "MAX_EXPANSION",
    "MIN_PICKLE_KEY",
    "OPEN_ENVELOPES",
    "PICKLE",
    "REF",
    "SPLICE",
    "TAG",
    "JsonCodec",
    "ValueCache",
    "check_pickle_key",
    "decode_plain",
    "encode_plain",
    "storable",
]
