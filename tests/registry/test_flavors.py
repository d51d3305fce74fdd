"""Safe model files (RELIABILITY S3, S4): nothing executes unless the caller says so."""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

import keepwell as kw
from keepwell.registry.flavors import detect_flavor

Data = tuple[pd.DataFrame, pd.Series]


class CanaryPayload:
    """Unpickling this creates a file: the classic model-file remote code execution."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


class HandMadeClassifier(ClassifierMixin, BaseEstimator):
    """A custom class: skops does not trust it unless configuration says so."""

    def fit(self, X: Any, y: Any) -> HandMadeClassifier:
        self.classes_ = np.unique(y)
        self.threshold_ = float(np.median(np.asarray(X)[:, 0]))
        return self

    def predict(self, X: Any) -> Any:
        return (np.asarray(X)[:, 0] > self.threshold_).astype(int)


@pytest.fixture
def numeric_data(classification_data: Data) -> Data:
    X, y = classification_data
    return X[["age", "income"]], y


def test_a_malicious_pickle_is_refused_without_being_opened(
        workspace: kw.Workspace, tmp_path: Path, numeric_data: Data) -> None:
    canary = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(CanaryPayload(canary)))
    with pytest.raises(kw.UnsafeArtifactError, match=r"pickle file.*trust_pickle"):
        workspace.registry.register("m", path, *numeric_data)
    with pytest.raises(kw.UnsafeArtifactError):
        workspace.registry.register("m", path, *numeric_data, trust_pickle=True)
    with pytest.raises(kw.UnsafeArtifactError):
        workspace.registry.register("m", path, *numeric_data, trust_pickle="0" * 64)
    assert not canary.exists()
    assert workspace.registry.list_models() == []


def test_a_malicious_joblib_file_is_refused(workspace: kw.Workspace, tmp_path: Path,
                                            numeric_data: Data) -> None:
    canary = tmp_path / "pwned"
    for compress in (0, 3):
        path = tmp_path / f"model{compress}.joblib"
        joblib.dump(CanaryPayload(canary), path, compress=compress)
        with pytest.raises(kw.UnsafeArtifactError, match="joblib"):
            workspace.registry.register("m", path, *numeric_data)
    assert not canary.exists()


def test_a_pickle_loads_only_with_its_pinned_hash_and_the_models_opt_in(
        workspace: kw.Workspace, tmp_path: Path, numeric_data: Data) -> None:
    X, y = numeric_data
    model = LogisticRegression().fit(X, y)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    v = workspace.registry.register("m", path, X, y, trust_pickle=f"sha256:{digest}")
    assert (v.flavor, v.artifact_sha256) == ("pickle", digest)
    assert workspace.registry.get_model("m").allow_unsafe_formats
    np.testing.assert_array_equal(workspace.registry.load_model("m@1").predict(X),
                                  model.predict(X))
    workspace.registry.configure_model("m", allow_unsafe_formats=False, reason="policy")
    with pytest.raises(kw.UnsafeArtifactError, match="not allowed"):
        workspace.registry.load_model("m@1")


def test_in_memory_pickle_needs_an_explicit_opt_in(workspace: kw.Workspace,
                                                   numeric_data: Data) -> None:
    X, y = numeric_data
    model = LogisticRegression().fit(X, y)
    for flavor in ("pickle", "joblib"):
        with pytest.raises(kw.UnsafeArtifactError, match="trust_pickle=True"):
            workspace.registry.register("m", model, X, y, flavor=flavor)
    v = workspace.registry.register("m", model, X, y, flavor="joblib", trust_pickle=True)
    assert v.flavor == "joblib"
    np.testing.assert_array_equal(workspace.registry.load_model("m@1").predict(X),
                                  model.predict(X))


def test_a_skops_file_with_an_untrusted_type_is_refused(
        workspace: kw.Workspace, tmp_path: Path, numeric_data: Data) -> None:
    X, y = numeric_data
    path = tmp_path / "model.skops"
    sio.dump(HandMadeClassifier().fit(X.to_numpy(), y), path)
    with pytest.raises(kw.UnsafeArtifactError, match="HandMadeClassifier"):
        workspace.registry.register("m", path, X, y)
    with pytest.raises(kw.UnsafeArtifactError, match="trusted_types"):
        workspace.registry.register("m", HandMadeClassifier().fit(X.to_numpy(), y), X, y)
    assert workspace.registry.list_models() == []


def test_trusted_types_come_from_configuration(tmp_path: Path, numeric_data: Data) -> None:
    X, y = numeric_data
    name = f"{HandMadeClassifier.__module__}.HandMadeClassifier"
    settings = kw.Settings.for_workspace(tmp_path / "ws", actor="t")
    trusting = settings.model_copy(update={"registry": settings.registry.model_copy(
        update={"trusted_types": (*settings.registry.trusted_types, name)})})
    with kw.Workspace(trusting) as ws:
        ws.registry.register("m", HandMadeClassifier().fit(X.to_numpy(), y), X, y)
        assert ws.registry.load_model("m@1").predict(X.to_numpy()).shape == (len(X),)
    with kw.Workspace(settings) as ws, pytest.raises(kw.UnsafeArtifactError):
        ws.registry.load_model("m@1")  # same file, configuration no longer trusts the type


def test_a_flipped_byte_fails_the_next_load(workspace: kw.Workspace, fitted_pipeline: Any,
                                           classification_data: Data) -> None:
    v = workspace.registry.register("churn", fitted_pipeline, *classification_data)
    for digest, load in ((v.artifact_sha256, workspace.registry.load_model),
                         (v.profile_sha256, workspace.registry.load_profile)):
        path = workspace.artifacts.root / "objects" / digest[:2] / digest
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
        with pytest.raises(kw.ArtifactIntegrityError, match="integrity"):
            load("churn@1")


def test_formats_are_told_apart_by_their_bytes(tmp_path: Path) -> None:
    model = LogisticRegression()
    assert detect_flavor(sio.dumps(model)) == "skops"
    assert detect_flavor(pickle.dumps(model)) == "pickle"
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    assert detect_flavor(buffer.getvalue()) == "joblib"
    with pytest.raises(kw.ValidationError, match=r"cannot tell the format of weights\.bin"):
        detect_flavor(b"GGUF....", "/secret/place/weights.bin")


def test_trees_and_forests_round_trip_with_the_default_trusted_types(
        workspace: kw.Workspace, numeric_data: Data) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    X, y = numeric_data
    for name, model in (("forest", RandomForestClassifier(n_estimators=5, random_state=0)),
                        ("tree", DecisionTreeClassifier(max_depth=4, random_state=0))):
        model.fit(X, y)
        workspace.register(name, model, X, y)
        loaded = workspace.registry.load_model(f"{name}@1")
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
