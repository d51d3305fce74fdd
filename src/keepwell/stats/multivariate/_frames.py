"""Input checks and numeric conversion shared by the multivariate detectors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from keepwell.errors import ValidationError

__all__ = ["as_frame", "check_columns", "numbers"]


def as_frame(data: pd.DataFrame | Mapping[str, Any], *, what: str) -> pd.DataFrame:
    """``data`` as a DataFrame with at least one row."""
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(dict(data))
    if len(frame) == 0:
        raise ValidationError(f"{what}: the frame has no rows; pass at least one.")
    return frame


def check_columns(frame: pd.DataFrame, names: list[str], *, what: str) -> None:
    """``names`` are present in ``frame``, once each, and there is at least one."""
    if not names:
        raise ValidationError(f"{what}: no columns to compare; pass columns=[...].")
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise ValidationError(f"{what}: the frame has no column {missing[0]!r}; add it or "
                              "use fewer columns.")
    if len(set(names)) != len(names):
        raise ValidationError(f"{what}: columns are named more than once: {names!r}.")


def numbers(series: pd.Series, name: str) -> NDArray[np.float64]:
    """Float values, datetimes as seconds since the epoch (UTC); NaN, None, NaT and ±inf
    become NaN (missing)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        stamps = pd.to_datetime(series, utc=True)
        series = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    try:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"column {name!r} holds values that are not numbers.") from exc
    values[~np.isfinite(values)] = np.nan
    return values
