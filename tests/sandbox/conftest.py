"""The in-process sandbox shared by the agent and load balancer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox.helpers import Lab, start_lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One in-process sandbox; at the end the agent must leave no container behind."""
    lab = start_lab(tmp_path_factory.mktemp("agent-home"))
    yield lab
    lab.sandbox.agent.stop()
    left = lab.containers()
    lab.sandbox.stop()
    assert left == [], f"the agent left containers behind: {left}"
