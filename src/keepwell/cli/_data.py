"""Reading the data files commands take: Parquet or CSV, chosen by the file's suffix."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from keepwell.errors import ValidationError

__all__ = ["column", "read_frame"]


def read_frame(path: Path) -> pd.DataFrame:
    """A Parquet or CSV file as a data frame, chosen by the file's suffix."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise ValidationError(f"cannot read {path.name}: data files must be Parquet "
                              "(.parquet, .pq) or CSV (.csv).")
    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read {path.name} ({type(exc).__name__}); check that "
                              f"it is a valid {suffix[1:]} file.") from None


def column(frame: pd.DataFrame, name: str, path: Path, hint: str) -> pd.Series:
    """Column ``name`` of a data file, or an error that names it and says ``hint``."""
    if name not in frame.columns:
        raise ValidationError(f"{path.name} has no column {name!r}; {hint}.")
    return frame[name]
