"""The JSON Schemas shipped in the ``schemas`` package, found through importlib.resources.

So they are found wherever csops is installed (a wheel, a zip, an editable checkout), not at a
path computed from this file's place in the tree.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def schema_file(name: str) -> Traversable:
    """The schema ``name`` (e.g. ``playbook.schema.json``) of the ``schemas`` package."""
    return resources.files("schemas").joinpath(name)
