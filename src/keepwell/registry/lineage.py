"""Lineage facts stored with each version: a fingerprint of the training data, and the
versions of the libraries the model was built with."""

from __future__ import annotations

import contextlib
import hashlib
import platform
from importlib import metadata

import numpy as np
import pandas as pd

__all__ = ["data_fingerprint", "library_versions"]

_LIBRARIES = ("keepwell", "numpy", "pandas", "scikit-learn", "scipy", "skops", "lightgbm",
              "xgboost")


def data_fingerprint(X: pd.DataFrame, y: pd.Series | None = None) -> str:
    """sha256 over the column names, dtypes and row hashes of ``X`` (and ``y``).

    The same data in the same column order always gives the same fingerprint; changing one
    value, one column name or the row order changes it.
    """
    digest = hashlib.sha256()
    for frame in (X, None if y is None else y.to_frame()):
        if frame is None:
            continue
        digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
        rows = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
        digest.update(rows.tobytes())
    return digest.hexdigest()


def library_versions(module_names: set[str] | None = None) -> dict[str, str]:
    """Installed versions of keepwell's scientific stack, plus Python's.

    Libraries that are not installed are left out, except those named in ``module_names``
    (the top-level modules the model's classes come from), which are always looked up.
    """
    versions = {"python": platform.python_version()}
    wanted = list(_LIBRARIES)
    for module in sorted(module_names or ()):
        dist = {"sklearn": "scikit-learn"}.get(module, module)
        if dist not in wanted:
            wanted.append(dist)
    for name in wanted:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "xgboost":
                with contextlib.suppress(metadata.PackageNotFoundError):
                    versions[name] = metadata.version("xgboost-cpu")
    return versions
