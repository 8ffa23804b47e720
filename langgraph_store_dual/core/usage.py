"""Token usage and cost from the AI messages stored in threads' writes, as a sans-I/O
operation over the `message_usage` view (schema version 6), which BI tools read too.

The view has a row per message, counted once per thread however many writes hold it
(subgraphs and parent graphs write the same message; by its id, else by its JSON), with
the model its `response_metadata` names, its `usage_metadata` tokens, its thread's owner
and the time (`created_at`, `day` in UTC) of the first checkpoint it was written against.
Runs with `durability="exit"` store no step writes, and retention deletes writes with
their checkpoints: what they held is not counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from ..errors import ConfigError
from . import thread_model as tm
from .config import thread_id_of
from .dialect import Dialect
from .search import stamp
from .stmt import Op, Stmt

#: What usage can be grouped by, and the view's column for each.
GROUPS = {"model": "model", "thread": "thread_id", "user": "user_id", "day": "day"}
#: Token kinds a price names, per token.
PRICED = ("input", "output")


@dataclass(frozen=True, slots=True)
class Usage:
    """Token totals of one group: `group` maps each key asked for ("model", "thread",
    "user", "day") to its value (None: messages without one). `cost` is in the prices'
    currency, None if no prices were given or a message's model has none."""

    group: dict[str, Any]
    messages: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float | None = None


def check_group_by(group_by: Any) -> tuple[str, ...]:
    if isinstance(group_by, str):
        group_by = (group_by,)
    if not isinstance(group_by, Sequence) or any(k not in GROUPS for k in group_by):
        raise ConfigError(f"group_by must be a sequence of {', '.join(GROUPS)}, got {group_by!r}")
    return tuple(dict.fromkeys(group_by))


def check_prices(prices: Any) -> dict[str, dict[str, float]] | None:
    """`{"model": {"input": per token, "output": per token}}`, checked."""
    if prices is None:
        return None
    if not isinstance(prices, Mapping):
        raise ConfigError(f"prices must be a dict of models, got {type(prices).__name__}")
    checked: dict[str, dict[str, float]] = {}
    for model, rate in prices.items():
        if not isinstance(rate, Mapping) or set(rate) != set(PRICED):
            raise ConfigError(
                f"prices[{model!r}] must be {{'input': price, 'output': price}} "
                "(per token), got " + repr(rate)
            )
        for kind, price in rate.items():
            ok = isinstance(price, (int, float)) and not isinstance(price, bool)
            if not ok or not math.isfinite(price) or price < 0:
                raise ConfigError(f"prices[{model!r}][{kind!r}] must be a number >= 0")
        checked[model] = {kind: float(rate[kind]) for kind in PRICED}
    return checked


def query(
    d: Dialect, thread_id: Any, user_id: Any, since: Any, until: Any, keys: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """The SELECT of totals grouped by `keys` and the model, with its parameters."""
    conditions = {
        "thread_id": f"thread_id = {d.param('thread_id')}",
        "user_id": f"user_id = {d.param('user_id')}",
        "since": f"created_at >= {d.ts_param('since')}",
        "until": f"created_at < {d.ts_param('until')}",
    }
    given = {"thread_id": thread_id, "user_id": user_id, "since": since, "until": until}
    params = {k: v for k, v in given.items() if v is not None}
    clauses = [conditions[k] for k in params]
    columns = ", ".join([*(GROUPS[k] for k in keys if k != "model"), "model"])
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    sql = f"""SELECT {columns}, count(*), coalesce(sum(input_tokens), 0),
        coalesce(sum(output_tokens), 0), coalesce(sum(total_tokens), 0)
        FROM message_usage{where} GROUP BY {columns}"""
    return sql, params


def usage(
    d: Dialect,
    thread_id: Any,
    user_id: Any,
    since: Any,
    until: Any,
    group_by: Any,
    prices: Any,
) -> Op[list[Usage]]:
    """Token totals (and cost, with `prices`) per group, in the order of the groups."""
    keys = check_group_by(group_by)
    rates = check_prices(prices)
    sql, params = query(
        d,
        None if thread_id is None else thread_id_of(thread_id),
        tm.check_user_id(user_id),
        None if since is None else stamp(since, "since"),
        None if until is None else stamp(until, "until"),
        keys,
    )
    rows = yield Stmt(sql, params)
    return total(rows, keys, rates)


def total(
    rows: Sequence[Sequence[Any]], keys: Sequence[str], rates: dict[str, dict[str, float]] | None
) -> list[Usage]:
    """Rows `(*keys but model, model, messages, input, output, total)` merged per group
    of `keys`, priced by model."""
    grouped: dict[tuple[Any, ...], list[Any]] = {}
    others = [k for k in keys if k != "model"]
    for row in rows:
        found = dict(zip(others, row, strict=False))
        model, messages, tokens_in, tokens_out, tokens = row[len(others) :]
        found["model"] = model
        if found.get("day") is not None:  # ISO text on both engines
            found["day"] = date.fromisoformat(found["day"])
        key = tuple(found[k] for k in keys)
        cost = None
        if rates is not None and model in rates:
            rate = rates[model]
            cost = int(tokens_in) * rate["input"] + int(tokens_out) * rate["output"]
        acc = grouped.setdefault(key, [0, 0, 0, 0, 0.0])
        counts = (messages, tokens_in, tokens_out, tokens)
        acc[:4] = [a + int(b) for a, b in zip(acc[:4], counts, strict=True)]
        acc[4] = None if cost is None or acc[4] is None else acc[4] + cost
    out = [
        Usage(
            group=dict(zip(keys, key, strict=True)),
            messages=acc[0],
            input_tokens=acc[1],
            output_tokens=acc[2],
            total_tokens=acc[3],
            cost=acc[4] if rates is not None else None,
        )
        for key, acc in grouped.items()
    ]
    out.sort(key=lambda u: tuple((v is None, v) for v in u.group.values()))
    return out
