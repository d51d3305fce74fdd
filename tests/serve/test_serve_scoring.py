"""Batch scoring of files (keepwell.serve.scoring): the output holds exactly what the model
says, row for row, under request ids that the logbook holds with the same inputs and
outputs; a failed run leaves no output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import FixedThresholdClassifier

import keepwell as kw
from keepwell.config import DEFAULT_TRUSTED_TYPES, RegistrySettings, Settings
from keepwell.errors import ValidationError
from keepwell.serve.scoring import score_file

MODEL = "churn"


# Forests hold sklearn.tree._tree.Tree, which loading must be told to trust.
TRUSTED = RegistrySettings(trusted_types=(*DEFAULT_TRUSTED_TYPES, "sklearn.tree._tree.Tree"))


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[kw.Workspace]:
    workspace = kw.Workspace(Settings.for_workspace(tmp_path / "ws", actor="tester",
                                                    registry=TRUSTED))
    try:
        yield workspace
    finally:
        workspace.close()


def _input(tmp_path: Path, classification_data: Any, suffix: str) -> tuple[Path, pd.DataFrame]:
    X, _ = classification_data
    frame = X.assign(region=X["region"].astype(str), row=np.arange(len(X)))
    path = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path, frame


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_the_output_is_the_models_answers_and_the_log_agrees(
        ws: kw.Workspace, tmp_path: Path, fitted_pipeline: Any, classification_data: Any,
        suffix: str) -> None:
    X, y = classification_data
    ws.registry.register(MODEL, fitted_pipeline, X, y)
    source, frame = _input(tmp_path, classification_data, suffix)
    target = tmp_path / f"out{suffix}"
    report = score_file(ws, f"{MODEL}@1", source, target, chunk_rows=150)
    assert report.rows == len(X)
    if suffix == ".parquet":  # (a CSV file is read in blocks of bytes, not rows)
        assert report.chunks == -(-len(X) // 150)
    out = pd.read_csv(target) if suffix == ".csv" else pd.read_parquet(target)
    assert out["row"].tolist() == list(range(len(X)))  # extra columns carried, in order
    assert out["prediction"].tolist() == fitted_pipeline.predict(X).tolist()
    np.testing.assert_allclose(out["score"], fitted_pipeline.predict_proba(X)[:, 1],
                               rtol=0, atol=1e-15 if suffix == ".parquet" else 1e-12)
    logged = ws.logbook.predictions(MODEL, arm="batch").to_pandas()
    by_id = logged.assign(request_id=logged["request_id"].astype(str)).set_index("request_id")
    assert sorted(by_id.index) == sorted(out["request_id"])
    joined = by_id.loc[out["request_id"]]
    assert joined["prediction"].tolist() == out["prediction"].tolist()
    assert joined["age"].tolist() == frame["age"].tolist()
    assert joined["region"].tolist() == frame["region"].tolist()


@pytest.mark.parametrize("kind", ["forest", "threshold"])
def test_one_call_or_two_the_predictions_are_predicts(ws: kw.Workspace, tmp_path: Path,
                                                      kind: str) -> None:
    """A forest is asked predict_proba alone; a tuned threshold is asked predict as well:
    either way the output is model.predict's."""
    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.standard_normal((900, 5)), columns=list("abcde"))
    y = (X["a"] + rng.normal(0, 1, 900) > 0).astype(int)
    model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y) \
        if kind == "forest" else FixedThresholdClassifier(
            RandomForestClassifier(n_estimators=10, random_state=0), threshold=0.8).fit(X, y)
    ws.registry.register(MODEL, model, X, y)
    source = tmp_path / "in.parquet"
    X.to_parquet(source, index=False)
    score_file(ws, MODEL + "@1", source, tmp_path / "out.parquet", chunk_rows=400)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["prediction"].tolist() == model.predict(X).tolist()
    np.testing.assert_array_equal(out["score"], model.predict_proba(X)[:, 1])


def test_float_columns_are_written_without_a_dictionary(ws: kw.Workspace, tmp_path: Path,
                                                        fitted_pipeline: Any,
                                                        classification_data: Any) -> None:
    X, y = classification_data
    ws.registry.register(MODEL, fitted_pipeline, X, y)
    source, _ = _input(tmp_path, classification_data, ".parquet")
    score_file(ws, f"{MODEL}@1", source, tmp_path / "out.parquet")
    meta = pq.ParquetFile(tmp_path / "out.parquet").metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings
                 for i in range(meta.num_columns)}
    assert "RLE_DICTIONARY" not in encodings["income"]
    assert "RLE_DICTIONARY" not in encodings["score"]
    assert "RLE_DICTIONARY" not in encodings["request_id"]
    assert "RLE_DICTIONARY" in encodings["region"]


def test_a_failed_run_leaves_no_output(ws: kw.Workspace, tmp_path: Path, fitted_pipeline: Any,
                                       classification_data: Any) -> None:
    X, y = classification_data
    ws.registry.register(MODEL, fitted_pipeline, X, y)
    source = tmp_path / "partial.parquet"
    X.drop(columns="income").to_parquet(source, index=False)
    with pytest.raises(ValidationError, match="income"):
        score_file(ws, f"{MODEL}@1", source, tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial.parquet", "ws"]
