"""The public langgraph-checkpoint-conformance suite, every capability, on every saver."""

from __future__ import annotations

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES


async def test_conformance_all_capabilities(saver_factory, flavour: str) -> None:
    @checkpointer_test(name=flavour)
    async def factory():
        async with saver_factory() as saver:
            yield saver

    report = await validate(factory)
    results = report.results
    missing = {c.value for c in ALL_CAPABILITIES} - {k for k, r in results.items() if r.detected}
    assert not missing, f"capabilities not detected: {sorted(missing)}"
    failures = {k: r.failures for k, r in results.items() if not r.passed}
    assert not failures, f"conformance failures: {failures}"
    assert all(r.tests_passed > 0 for r in results.values())
