"""The JSON Schemas shipped in the ``schemas`` package, found through importlib.resources.

So they are found wherever csops is installed (a wheel, a zip, an editable checkout), not at a
path computed from this file's place in the tree.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any


def schema_file(name: str) -> Traversable:
    """The schema ``name`` (e.g. ``playbook.schema.json``) of the ``schemas`` package."""
    return resources.files("schemas").joinpath(name)


@cache
def parsed_schema(name: str) -> dict[str, Any]:
    """The schema ``name`` parsed, once per process (every checker of every file kind asks for it often)."""
    with schema_file(name).open(encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema
