"""Reading LangGraph run configs: which thread, namespace and checkpoint a call targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig

from ..errors import ConfigError


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
    return str(value)


def checkpoint_id_of(conf: dict[str, Any]) -> str | None:
    """The checkpoint id of a configurable; `thread_ts` is accepted as an alias."""
    value = conf.get("checkpoint_id") or conf.get("thread_ts")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"checkpoint_id must be a str, got {type(value).__name__}")
    return value


def target(config: RunnableConfig | None, *, need_id: bool = False, what: str = "config") -> Target:
    """Parse a config into a Target, with clear errors for what is missing."""
    conf = configurable(config, what)
    ns = conf.get("checkpoint_ns") or ""
    if not isinstance(ns, str):
        raise ConfigError(f"checkpoint_ns must be a str, got {type(ns).__name__}")
    cid = checkpoint_id_of(conf)
    if need_id and cid is None:
        raise ConfigError(f"{what}['configurable']['checkpoint_id'] is required here")
    return Target(
        thread_id_of(conf.get("thread_id"), f"{what}['configurable']['thread_id']"), ns, cid
    )
