"""Reading LangGraph run configs: which thread, namespace and checkpoint a call targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig

from ..errors import ConfigError

#: The longest id (thread, namespace, checkpoint, task, task path, channel, run), in bytes
#: of UTF-8. PostgreSQL refuses a btree index entry over 2704 bytes; the widest primary key
#: (a task's writes: thread, namespace, checkpoint and task ids) then takes 2,088 at most.
MAX_ID_BYTES = 512


def check_id(value: Any, what: str) -> str:
    """`value` if both engines can store and index it as an id: a str without NUL
    characters or lone surrogates, at most `MAX_ID_BYTES` long in UTF-8; else a
    ConfigError naming `what`."""
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a str, got {type(value).__name__}")
    if "\x00" in value:
        raise ConfigError(f"{what} contains a NUL character, which PostgreSQL cannot store")
    try:
        size = len(value.encode())
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"{what} is not valid Unicode text: {exc.reason} at position {exc.start}"
        ) from None
    if size > MAX_ID_BYTES:
        raise ConfigError(f"{what} is {size} bytes long in UTF-8, the limit is {MAX_ID_BYTES}")
    return value


@dataclass(frozen=True, slots=True)
class Target:
    """The checkpoint a config points at; `checkpoint_id` is None for "the latest"."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str | None

    def config(self, checkpoint_id: str | None = None) -> RunnableConfig:
        """The LangGraph config of `checkpoint_id` (default: this target's) in this namespace."""
        return {
            "configurable": {
                "thread_id": self.thread_id,
                "checkpoint_ns": self.checkpoint_ns,
                "checkpoint_id": checkpoint_id or self.checkpoint_id,
            }
        }


def configurable(config: RunnableConfig | None, what: str = "config") -> dict[str, Any]:
    """`config["configurable"]`, or a ConfigError saying it is missing."""
    if not isinstance(config, dict):
        raise ConfigError(f"{what} must be a dict with a 'configurable' mapping, got {config!r}")
    conf = config.get("configurable")
    if not isinstance(conf, dict):
        raise ConfigError(f"{what}['configurable'] is missing: pass a thread_id there")
    return conf


def thread_id_of(value: Any, what: str = "thread_id") -> str:
    """A thread id as text; LangGraph accepts str, int and UUID ids."""
    if value is None or value == "":
        raise ConfigError(f"{what} is required, e.g. {{'configurable': {{'thread_id': 't1'}}}}")
    if not isinstance(value, (str, int)) and type(value).__name__ != "UUID":
        raise ConfigError(f"{what} must be a str, int or UUID, got {type(value).__name__}")
    return check_id(str(value), what)


def checkpoint_id_of(conf: dict[str, Any]) -> str | None:
    """The checkpoint id of a configurable; `thread_ts` is accepted as an alias."""
    value = conf.get("checkpoint_id") or conf.get("thread_ts")
    if value is None or value == "":
        return None
    return check_id(value, "checkpoint_id")


def target(config: RunnableConfig | None, *, need_id: bool = False, what: str = "config") -> Target:
    """Parse a config into a Target, with clear errors for what is missing."""
    conf = configurable(config, what)
    ns = check_id(conf.get("checkpoint_ns") or "", "checkpoint_ns")
    cid = checkpoint_id_of(conf)
    if need_id and cid is None:
        raise ConfigError(f"{what}['configurable']['checkpoint_id'] is required here")
    return Target(
        thread_id_of(conf.get("thread_id"), f"{what}['configurable']['thread_id']"), ns, cid
    )
