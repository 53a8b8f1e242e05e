"""The in-process sandbox used by the agent, load balancer and fault tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox.helpers import Lab, start_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """An in-process sandbox per test module; at the end the agent must leave no container.

    Per module, not per session: moto's state is process-wide, so the sandbox must be
    gone before tests that use moto's in-process mocks run.
    """
    lab = start_lab(tmp_path_factory.mktemp("agent-home"))
    yield lab
    lab.sandbox.agent.stop()
    left = lab.containers()
    lab.sandbox.stop()
    assert left == [], f"the agent left containers behind: {left}"
