"""Plain values: how a category or label is kept in JSON, shared by every layer."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["json_value"]


def json_value(value: Any) -> Any:
    """A category value as JSON holds it: numpy scalars unwrapped, anything exotic as text.

    Examples
    --------
    >>> json_value(np.int64(3)), json_value("a"), json_value(None)
    (3, 'a', None)
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return str(value)
