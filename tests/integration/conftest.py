"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.procs import Procs


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """The test's processes, each stopped (and its children) when the test ends."""
    procs = Procs(tmp_path)
    try:
        yield procs
    finally:
        procs.cleanup()
