"""The columns a model expects: names, dtypes, kinds, and the value families each accepts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol, runtime_checkable

from keepwell.errors import ValidationError
from keepwell.stats.quality._values import BOOL, MISSING, NUMBER, OTHER, STR, family_of

__all__ = ["ExpectedColumn", "Kind", "allowed_families", "expected_columns"]

Kind = Literal["numeric", "categorical", "boolean"]

# dtype (a Signature's, or a kind as shorthand) -> (dtype, kind)
_DTYPES: dict[str, tuple[str, Kind]] = {
    "integer": ("integer", "numeric"), "float": ("float", "numeric"),
    "datetime": ("datetime", "numeric"), "numeric": ("float", "numeric"),
    "category": ("category", "categorical"), "string": ("string", "categorical"),
    "categorical": ("category", "categorical"), "boolean": ("boolean", "boolean"),
}


@runtime_checkable
class ExpectedColumn(Protocol):
    """An expected column (``keepwell.registry.ColumnSpec``): its name and dtype."""

    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> str: ...


def expected_columns(expected: Any) -> list[tuple[str, str, Kind, tuple[Any, ...] | None]]:
    """``(name, dtype, kind, categories)`` per expected column."""
    if isinstance(expected, Mapping):
        items: list[tuple[Any, Any, Any]] = [(n, d, None) for n, d in expected.items()]
    else:
        specs = getattr(expected, "inputs", expected)
        if isinstance(specs, str | bytes) or not isinstance(specs, Iterable):
            raise ValidationError("expected must be a Signature, its inputs, or a mapping of "
                                  "column name to dtype, not " + type(expected).__name__ + ".")
        specs = list(specs)
        if not all(isinstance(s, ExpectedColumn) for s in specs):
            raise ValidationError("expected must hold column specs with a name and a dtype "
                                  "(a Signature's inputs).")
        items = [(s.name, s.dtype, getattr(s, "categories", None)) for s in specs]
    columns = []
    for name, dtype, categories in items:
        if not isinstance(name, str):
            raise ValidationError(f"expected column names must be strings, not {name!r}.")
        if dtype not in _DTYPES:
            raise ValidationError(f"column {name!r} has dtype {dtype!r}; use one of "
                                  f"{', '.join(sorted(_DTYPES))}.")
        canonical, kind = _DTYPES[dtype]
        columns.append((name, canonical, kind,
                        tuple(categories) if categories is not None else None))
    if len({c[0] for c in columns}) != len(columns):
        raise ValidationError("expected names a column twice; name each column once.")
    return columns


def allowed_families(dtype: str, kind: Kind, categories: tuple[Any, ...] | None) -> frozenset[int]:
    if kind == "boolean":
        return frozenset({BOOL, NUMBER})  # numbers other than 0 and 1 are dropped later
    if categories is None:
        return frozenset({STR, NUMBER, BOOL}) if dtype == "category" else frozenset({STR})
    return frozenset({STR} | {family_of(type(c)) for c in categories} - {MISSING, OTHER})

