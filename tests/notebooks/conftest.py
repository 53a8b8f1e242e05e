"""Each notebook test module runs the lab against a private sandbox of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import private_lab_env, require_data_plane


@pytest.fixture(scope="module")
def sandbox_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private sandbox that notebook 00 starts, with strict checks."""
    require_data_plane()
    with private_lab_env(tmp_path_factory, strict=True) as env:
        yield env
