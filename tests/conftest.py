"""Shared test setup.

temporalio's native core can abort the interpreter while it shuts down (sdk-python #300), so the
test process ends with os._exit once pytest has printed its summary.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _status and not os.environ.get("CSOPS_PYTEST_NO_OS_EXIT"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_status[0])
