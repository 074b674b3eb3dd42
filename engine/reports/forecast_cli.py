"""``csops forecast PLAYBOOK``: placeholder replaced below."""
from __future__ import annotations

from typing import Any


def add_forecast(sub: Any) -> None:
    """Register ``csops forecast``."""
