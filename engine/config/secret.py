"""A resolved secret from csops.yaml (``${VAR}``): its repr and str never show the value.

Part of engine/config/config.py's model, apart to keep that module small.
"""

from __future__ import annotations

from typing import Any, NoReturn


class Secret:
    """A secret value resolved from an environment variable; shows only the variable's name.

    Args:
        value: The secret itself.
        source: The environment variable it came from (shown by repr, which is safe).
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "") -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        """The secret itself: pass it straight to a connector's constructor, nowhere else."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(${{{self.source}}})" if self.source else "Secret(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value and other.source == self.source

    def __hash__(self) -> int:
        return hash(("Secret", self.source))

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self  # immutable; lets dataclasses.asdict work on a config

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is never serialized: pass secret.reveal() to a connector's constructor instead")
