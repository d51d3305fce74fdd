"""Batch scoring of files (keepwell.serve.scoring): the output holds exactly what the model
says, row for row, under request ids that the logbook holds with the same inputs and
outputs; a failed run leaves no output."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import FixedThresholdClassifier

import keepwell as kw
from keepwell.config import DEFAULT_TRUSTED_TYPES, RegistrySettings, Settings
from keepwell.errors import ValidationError
from keepwell.logbook.staging import StagedJob
from keepwell.serve import scoring
from keepwell.serve.scoring import chunk_plan, default_chunk_rows, score_file

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
        assert report.chunks == len(chunk_plan(len(X), 150)) == 5
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
                                                      kind: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
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
    asked: list[int] = []
    loaded = type(model)
    predict = loaded.predict

    def counted(self: Any, data: Any) -> Any:
        asked.append(len(data))
        return predict(self, data)

    monkeypatch.setattr(loaded, "predict", counted)
    score_file(ws, MODEL + "@1", source, tmp_path / "out.parquet", chunk_rows=400)
    monkeypatch.undo()
    # The forest's predictions are read off its probabilities; the threshold is asked.
    assert (sum(asked) == len(X)) if kind == "threshold" else asked == []
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


def test_a_failure_in_a_later_chunk_keeps_neither_output_nor_log(
        ws: kw.Workspace, tmp_path: Path, fitted_pipeline: Any, classification_data: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chunk but the last is scored and staged before the last fails: none of them is
    logged."""
    X, y = classification_data
    ws.registry.register(MODEL, fitted_pipeline, X, y)
    bad = X.copy()
    bad.loc[len(X) - 5, "income"] = np.inf
    source = tmp_path / "in.parquet"
    bad.to_parquet(source, index=False)
    staged: list[int] = []
    append = StagedJob.append

    def counting(job: StagedJob, batch: pa.RecordBatch) -> None:
        append(job, batch)
        staged.append(batch.num_rows)

    monkeypatch.setattr(StagedJob, "append", counting)
    with pytest.raises(ValueError, match="infinity"):
        score_file(ws, f"{MODEL}@1", source, tmp_path / "out.parquet", chunk_rows=40)
    assert sum(staged) == len(X) - chunk_plan(len(X), 40)[-1]  # all but the last chunk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "ws"]
    assert ws.logbook.predictions(MODEL).num_rows == 0
    ws.logbook.seal()
    assert ws.logbook.predictions(MODEL).num_rows == 0


def _missing_income(X: pd.DataFrame, path: Path) -> None:
    X.drop(columns="income").to_parquet(path, index=False)


def _income_as_text(X: pd.DataFrame, path: Path) -> None:
    X.assign(income=X["income"].map("{:.2f} EUR".format)).to_parquet(path, index=False)


def _age_not_a_number(X: pd.DataFrame, path: Path) -> None:
    X.astype({"age": object}).assign(age=["unknown", *X["age"][1:]]).to_csv(path, index=False)


@pytest.mark.parametrize(("write", "name", "match"), [
    (_missing_income, "in.parquet", "the input lacks the model's feature\\(s\\) income"),
    (_income_as_text, "in.parquet",
     "column 'income' is text in the input, but the model's signature says float"),
    (_age_not_a_number, "in.csv", "in.csv: column 'age' must hold float values, as in the "
                                  "model's signature, but holds an invalid value 'unknown'"),
], ids=["missing column", "text for numbers", "csv value"])
def test_bad_input_is_named_and_leaves_nothing(
        ws: kw.Workspace, tmp_path: Path, fitted_pipeline: Any, classification_data: Any,
        write: Callable[[pd.DataFrame, Path], None], name: str, match: str) -> None:
    X, y = classification_data
    ws.registry.register(MODEL, fitted_pipeline, X, y)
    write(X, tmp_path / name)
    with pytest.raises(ValidationError, match=match):
        score_file(ws, f"{MODEL}@1", tmp_path / name, tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, "ws"]
    assert ws.logbook.predictions(MODEL).num_rows == 0


def test_csv_columns_are_read_as_the_signature_types(ws: kw.Workspace, tmp_path: Path) -> None:
    """Codes with leading zeros stay text, as the model was trained on them (read by
    inference, "01" would become the number 1, a category the model never saw)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(8)
    X = pd.DataFrame({"code": pd.Categorical(rng.choice(["01", "02", "10"], 300)),
                      "amount": rng.normal(0, 1, 300)})
    y = ((X["code"] == "01") ^ (X["amount"] > 1)).astype(int)
    model = make_pipeline(ColumnTransformer([
        ("code", OneHotEncoder(handle_unknown="ignore"), ["code"]),
        ("amount", "passthrough", ["amount"])]), LogisticRegression()).fit(X, y)
    ws.registry.register(MODEL, model, X, y)
    source = tmp_path / "in.csv"
    X.to_csv(source, index=False)
    score_file(ws, f"{MODEL}@1", source, tmp_path / "out.parquet")
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["code"].tolist() == X["code"].astype(str).tolist()
    np.testing.assert_allclose(out["score"], model.predict_proba(X)[:, 1], rtol=0, atol=1e-12)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice is Linux's")
def test_io_threads_run_below_the_models_priority(ws: kw.Workspace, tmp_path: Path,
                                                  fitted_pipeline: Any, classification_data: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading, logging and writing yield to the model's thread on a busy machine."""
    X, y = classification_data
    ws.registry.register(MODEL, fitted_pipeline, X, y)
    source, _ = _input(tmp_path, classification_data, ".parquet")
    seen: dict[str, int] = {}

    def sampled(original: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            seen[threading.current_thread().name.rsplit("_", 1)[0]] = os.getpriority(
                os.PRIO_PROCESS, threading.get_native_id())
            return original(*args)
        return run

    monkeypatch.setattr(scoring, "_features", sampled(scoring._features))
    monkeypatch.setattr(scoring, "_log", sampled(scoring._log))
    monkeypatch.setattr(scoring._Output, "write", sampled(scoring._Output.write))
    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    score_file(ws, f"{MODEL}@1", source, tmp_path / "out.parquet", chunk_rows=100)
    assert seen == dict.fromkeys(["keepwell-score-read", "keepwell-score-log",
                                  "keepwell-score-out"], min(main + 10, 19))
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main


@pytest.mark.parametrize("total", [1, 7, 149, 150, 151, 399, 400, 1_000, 12_345])
@pytest.mark.parametrize("chunk_rows", [1, 8, 150, 1_000])
def test_the_chunk_plan_covers_the_file_with_small_ends(total: int, chunk_rows: int) -> None:
    sizes = chunk_plan(total, chunk_rows)
    assert sum(sizes) == total and all(size >= 1 for size in sizes)
    assert max(sizes) <= chunk_rows + 2 * max(chunk_rows // 8, 1)
    if len(sizes) > 2:  # small ends: the model starts soon, the unoverlapped tail is short
        small = max(chunk_rows // 8, 1)
        assert sizes[0] == small and sizes[-1] <= 2 * small


def test_chunks_hold_about_24_mb_of_features(ws: kw.Workspace) -> None:
    rng = np.random.default_rng(2)
    for columns, rows in ((3, 1_000_000), (60, (24 << 20) // (8 * 60)), (5_000, 10_000)):
        X = pd.DataFrame(rng.standard_normal((40, columns)),
                         columns=[f"c{i}" for i in range(columns)])
        version = ws.registry.register(f"m{columns}", LinearRegression().fit(X, X["c0"]),
                                       X, X["c0"])
        assert default_chunk_rows(version.signature) == rows
