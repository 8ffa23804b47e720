"""LangChain messages rebuilt from stored fields without running pydantic's validation.

A stored message holds the fields of a message that pydantic validated when it was made.
Validating them again (`cls(**fields)`) gives the same message and costs 4 to 10 us each,
the largest part of a cold read. `builder(cls)` returns a function that tests, with type
checks compiled once from the class's field annotations, that the fields are what
validation leaves unchanged, and then sets them directly (as `BaseModel.__deepcopy__`
does). For anything else it returns None and the caller validates as before, so tampered
or older rows still meet pydantic's errors and coercions. A class with a validator, an
`__init__`, a private attribute or an annotation not known here gets no builder.
"""

from __future__ import annotations

import itertools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union

from langchain_core.messages import tool as lc_tool
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from typing_extensions import NotRequired, Required, is_typeddict

from ..fresh import new_model

__all__ = ["Builder", "builder"]

Builder = Callable[[dict[str, Any]], Any]
Rule = Callable[[dict[str, Any]], bool]

_TOOL_CALL_KEYS = frozenset(lc_tool.tool_call(name="", args={}, id=None))
_INVALID_CALL_KEYS = frozenset(lc_tool.invalid_tool_call())


def _tool_calls_as_validated(kw: dict[str, Any]) -> bool:
    """`AIMessage._backwards_compat_tool_calls` rebuilds every tool call from its name,
    args and id (adding `type`), and parses `additional_kwargs["tool_calls"]` when there
    are no tool calls."""
    calls, invalid = kw.get("tool_calls"), kw.get("invalid_tool_calls")
    if not calls and not invalid:
        extra = kw.get("additional_kwargs")
        return not (extra and extra.get("tool_calls"))
    for call in calls or ():
        if call.keys() != _TOOL_CALL_KEYS or call["type"] != "tool_call":
            return False
    for call in invalid or ():
        if call.keys() != _INVALID_CALL_KEYS or call["type"] != "invalid_tool_call":
            return False
    return True


def _unchanged(kw: dict[str, Any]) -> bool:
    """`ToolMessage.coerce_args` changes only a content or a tool call id that is not
    already text (or a list of text and dicts), which the type checks let through alone."""
    return True


#: The model validators known here, and what their input must pass to come out unchanged.
_RULES: Mapping[str, Rule] = {
    "AIMessage._backwards_compat_tool_calls": _tool_calls_as_validated,
    "ToolMessage.coerce_args": _unchanged,
}
#: The `__init__`s known here: each passes its fields on to pydantic's.
_INITS = frozenset(
    f"{name}.__init__"
    for name in ("BaseMessage", "HumanMessage", "AIMessage", "SystemMessage", "ToolMessage")
)


class _Compiler:
    """Writes a Python expression testing that a value of an annotation comes out of
    validation unchanged (exact types: `bool` is not an `int`, a tuple not a list)."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {"NoneType": type(None)}
        self.lines: list[str] = []
        self._ids = itertools.count()

    def constant(self, value: Any) -> str:
        name = f"_c{next(self._ids)}"
        self.names[name] = value
        return name

    def var(self) -> str:
        return f"_v{next(self._ids)}"

    def test(self, t: Any, x: str) -> str | None:
        """The expression testing `x` (an expression itself), or None if `t` is not
        known here."""
        if t is Any:
            return "True"
        exact = _exact_types(t)
        if exact is not None:
            if len(exact) == 1:
                return f"type({x}) is {self.constant(next(iter(exact)))}"
            return f"type({x}) in {self.constant(exact)}"
        origin, args = typing.get_origin(t), typing.get_args(t)
        if origin is Literal and all(type(a) is str for a in args):
            return f"(type({x}) is str and {x} in {self.constant(frozenset(args))})"
        if origin in (Union, types.UnionType):
            simple = frozenset().union(*(_exact_types(a) or () for a in args))
            parts = [f"type({x}) in {self.constant(simple)}"] if simple else []
            for a in args:
                if _exact_types(a) is None:
                    part = self.test(a, x)
                    if part is None:
                        return None
                    parts.append(part)
            return f"({' or '.join(parts)})"
        if origin is list:
            if is_typeddict(args[0]):  # a function: mapped, no generator
                function = self.typed_dict(args[0])
                return (
                    None
                    if function is None
                    else f"(type({x}) is list and all(map({function}, {x})))"
                )
            v = self.var()
            item = self.test(args[0], v)
            return None if item is None else f"(type({x}) is list and all({item} for {v} in {x}))"
        if origin is dict:
            k, v = self.var(), self.var()
            key, value = self.test(args[0], k), self.test(args[1], v)
            if key is None or value is None:
                return None
            if value == "True":
                pairs = f"all({key} for {k} in {x})"
            else:
                pairs = f"all({key} and {value} for {k}, {v} in {x}.items())"
            return f"(type({x}) is dict and {pairs})"
        if is_typeddict(t):
            function = self.typed_dict(t)
            return None if function is None else f"{function}({x})"
        return None

    def typed_dict(self, t: Any) -> str | None:
        """Defines a function testing a `TypedDict` `t`; returns its name."""
        d = self.var()
        keys: list[str] = []
        tests = [f"type({d}) is dict", f"{self.constant(t.__required_keys__)} <= {d}.keys()"]
        for key, hint in typing.get_type_hints(t, include_extras=True).items():
            if typing.get_origin(hint) in (NotRequired, Required):
                hint = typing.get_args(hint)[0]
            test = self.test(hint, f"{d}[{key!r}]")
            if test is None:
                return None
            keys.append(key)
            optional = key not in t.__required_keys__
            tests.append(f"({key!r} not in {d} or {test})" if optional else test)
        tests.insert(2, f"{d}.keys() <= {self.constant(frozenset(keys))}")
        name = self.var()
        self.lines.append(f"def {name}({d}):\n    return {' and '.join(tests)}\n")
        return name

    def function(self, name: str, body: str) -> Callable[..., Any]:
        source = "".join(self.lines) + body
        namespace = dict(self.names)
        exec(compile(source, f"<message check {name}>", "exec"), namespace)
        return namespace[name]  # type: ignore[no-any-return]


def _exact_types(t: Any) -> frozenset[type] | None:
    """The types a value of annotation `t` may have when a type test alone decides
    (`str`, `dict[Any, Any]`, `str | None`, ...), else None."""
    if t in (str, bool, int, float, dict, list, type(None)):
        return frozenset({t})
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin in (dict, list) and all(a is Any for a in args):
        return frozenset({origin})
    if origin in (Union, types.UnionType):
        parts = [_exact_types(a) for a in args]
        if all(p is not None for p in parts):
            return frozenset().union(*parts)  # type: ignore[arg-type]
    return None


def _known(cls: type[BaseModel]) -> list[Rule] | None:
    """The rules of `cls`'s validators, or None if it runs code not known here."""
    decorators = cls.__pydantic_decorators__
    validators = list(decorators.model_validators.values())
    rules = [_RULES.get(v.func.__qualname__) for v in validators]
    if (
        any(rule is None for rule in rules)
        or any(v.info.mode != "before" for v in validators)
        or decorators.field_validators
        or decorators.validators
        or cls.__private_attributes__
        or cls.model_post_init is not BaseModel.model_post_init
        or cls.__init__.__qualname__ not in _INITS
    ):
        return None
    return [rule for rule in rules if rule is not None]


#: Default factories written as literals in a builder.
_LITERALS: dict[Any, str] = {dict: "{}", list: "[]"}


def builder(cls: type[BaseModel]) -> Builder | None:
    """A function building a `cls` from a dict of its fields (with `content`) when they
    need no validation, else returning None; or None if `cls` is not known here.

    It is one compiled function: the type tests, the model validators' rules, then the
    model's `__dict__` written out in field order (defaults and factories inline)."""
    rules = _known(cls)
    if rules is None:
        return None
    compiler = _Compiler()
    tests = ["kw.keys() <= fields", "required <= kw.keys()"]
    values: list[str] = []  # each field's entry of the model's `__dict__`
    required: set[str] = set()
    for name, info in cls.model_fields.items():
        test = compiler.test(info.annotation, f"kw[{name!r}]")
        if test is None or any(
            getattr(m, "coerce_numbers_to_str", None) is not True for m in info.metadata
        ):
            return None
        tests.append(f"({name!r} not in kw or {test})")
        factory = info.default_factory
        if factory is not None:
            made = _LITERALS.get(factory) or f"{compiler.constant(factory)}()"
            values.append(f"{name!r}: kw[{name!r}] if {name!r} in kw else {made}")
        elif info.default is PydanticUndefined:
            required.add(name)
            values.append(f"{name!r}: kw[{name!r}]")
        elif isinstance(info.default, (str, bool, int, type(None))):
            values.append(f"{name!r}: kw.get({name!r}, {compiler.constant(info.default)})")
        else:
            return None  # pydantic copies a mutable default
    compiler.names.update(
        fields=frozenset(cls.model_fields),
        required=frozenset(required),
        cls=cls,
        new_model=new_model,
    )
    checks = [f"{compiler.constant(rule)}(kw)" for rule in rules]
    body = (
        "def build(kw):\n"
        f"    if not ({' and '.join(tests + checks)}):\n"
        "        return None\n"
        f"    return new_model(cls, {{{', '.join(values)}}}, {{}}, set(kw), None)\n"
    )
    return compiler.function("build", body)
