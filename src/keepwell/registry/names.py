"""Names of models and aliases, and references such as ``fraud@champion`` or ``fraud@3``.

Names are checked against an allowlist pattern, so they are safe in paths, URLs, shell
commands, Markdown and HTML without further escaping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from keepwell.errors import InvalidNameError

__all__ = ["ModelRef", "check_alias", "check_model_name", "parse_ref"]

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
CHAMPION = "champion"


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`InvalidNameError`."""
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise InvalidNameError(
            f"model name {name!r:.80} is not allowed: use 1-128 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit."
        )
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if it is a valid alias name, else raise :class:`InvalidNameError`."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidNameError(
            f"alias {alias!r:.80} is not allowed: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter (so it cannot be mistaken for a version number)."
        )
    return alias


@dataclass(frozen=True)
class ModelRef:
    """A model name plus either a version number or an alias (``champion`` by default)."""

    name: str
    version: int | None = None
    alias: str | None = None
    # The alias or version was named in the reference, not the default (not part of equality).
    pinned: bool = field(default=False, compare=False)

    def __repr__(self) -> str:
        return f"ModelRef(name={self.name!r}, version={self.version!r}, alias={self.alias!r})"

    def __str__(self) -> str:
        return f"{self.name}@{self.version if self.version is not None else self.alias}"


def parse_ref(ref: str, *, default_alias: str = CHAMPION) -> ModelRef:
    """Parse ``name``, ``name@alias`` or ``name@version``.

    Examples
    --------
    >>> parse_ref("fraud")
    ModelRef(name='fraud', version=None, alias='champion')
    >>> parse_ref("fraud@3")
    ModelRef(name='fraud', version=3, alias=None)
    """
    name, sep, suffix = ref.partition("@")
    check_model_name(name)
    if not sep:
        return ModelRef(name, alias=default_alias)
    if suffix.isdigit() and suffix.isascii():
        if len(suffix) > 9:
            raise InvalidNameError(f"version {suffix[:20]!r} is out of range.")
        return ModelRef(name, version=int(suffix), pinned=True)
    return ModelRef(name, alias=check_alias(suffix), pinned=True)
