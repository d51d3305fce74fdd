"""The registry on SQLite and PostgreSQL: versions, lineage, aliases, rollback, lifecycle."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, LogisticRegression

import keepwell as kw
from keepwell.registry import ANY
from keepwell.registry.lineage import data_fingerprint

Data = tuple[pd.DataFrame, pd.Series]


def register_versions(ws: kw.Workspace, model: Any, data: Data, n: int,
                      name: str = "churn") -> list[kw.ModelVersion]:
    X, y = data
    return [ws.registry.register(name, model, X, y, reason=f"v{i + 1}") for i in range(n)]


def audit_actions(ws: kw.Workspace) -> list[str]:
    return [e.action for e in ws.audit.events()]


# -- registering ---------------------------------------------------------------------------


def test_register_stores_everything_the_version_knows(
        workspace: kw.Workspace, fitted_pipeline: Any, classification_data: Data) -> None:
    X, y = classification_data
    v = workspace.registry.register("churn", fitted_pipeline, X, y, holdout=(X, y),
                                    reason="first model", tags={"team": "risk"},
                                    sensitive_features=["region"], description="churn risk")
    assert (v.model, v.version, v.status, v.flavor) == ("churn", 1, "ready", "skops")
    assert v.signature.task == "binary"
    assert v.signature.classes == (0, 1)
    assert v.signature.target == "label"
    assert [(c.name, c.dtype) for c in v.signature.inputs] == [
        ("age", "float"), ("income", "float"), ("region", "category")]
    assert v.signature.column("region").categories == ("east", "north", "south")
    assert v.signature.column("age").min == X["age"].min()
    assert v.data_fingerprint == data_fingerprint(X, y)
    assert v.libraries["scikit-learn"]
    assert v.libraries["skops"]
    assert v.libraries["python"]
    assert v.params["logisticregression__C"] == 1.0
    assert v.params["logisticregression"] == "LogisticRegression"
    assert "steps" not in v.params  # the step list lives in the model file
    # Holdout metrics agree with scikit-learn on the same data.
    from sklearn.metrics import accuracy_score, roc_auc_score
    assert v.metrics["accuracy"] == pytest.approx(accuracy_score(y, fitted_pipeline.predict(X)))
    assert v.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(y, fitted_pipeline.predict_proba(X)[:, 1]))
    assert v.tags == {"team": "risk"}
    assert v.reason == "first model"
    model = workspace.registry.get_model("churn")
    assert model.sensitive_features == ("region",)
    assert model.description == "churn risk"
    assert model.latest_version == 1
    assert model.aliases == {}
    assert audit_actions(workspace) == ["version.register"]


def test_loaded_model_predicts_like_the_original(
        workspace: kw.Workspace, fitted_pipeline: Any, classification_data: Data) -> None:
    X, y = classification_data
    workspace.registry.register("churn", fitted_pipeline, X, y)
    loaded = workspace.registry.load_model("churn@1")
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted_pipeline.predict_proba(X))


def test_reference_profile_is_stored_with_the_version(
        workspace: kw.Workspace, fitted_pipeline: Any, classification_data: Data) -> None:
    X, y = classification_data
    workspace.registry.register("churn", fitted_pipeline, X, y)
    profile = workspace.registry.load_profile("churn@1")
    assert profile.n_rows == len(X)
    assert set(profile.features) == {"age", "income", "region"}
    age = profile.features["age"]
    assert age.count == len(X)
    assert age.missing == 0
    np.testing.assert_allclose(age.quantiles, np.quantile(X["age"], np.linspace(0, 1, 101)))
    region = profile.features["region"]
    assert dict(zip(region.categories, region.counts, strict=True)) == \
        X["region"].value_counts().to_dict()
    scores = fitted_pipeline.predict_proba(X)[:, 1]
    assert profile.outputs["score"].mean == pytest.approx(scores.mean())
    assert profile.target is not None
    assert profile.target.kind == "categorical"


def test_versions_count_up_and_stay_as_registered(
        workspace: kw.Workspace, fitted_pipeline: Any, classification_data: Data) -> None:
    X, y = classification_data
    first = workspace.registry.register("churn", fitted_pipeline, X, y)
    other = clone(fitted_pipeline).set_params(logisticregression__C=0.01).fit(X, y)
    second = workspace.registry.register("churn", other, X, y, parent=1, reason="retrained")
    assert (first.version, second.version, second.parent_version) == (1, 2, 1)
    assert workspace.registry.get_version("churn@1") == first
    assert first.artifact_sha256 != second.artifact_sha256
    assert [v.version for v in workspace.registry.list_versions("churn")] == [1, 2]


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_boosting_libraries_register_through_their_sklearn_api(
        workspace: kw.Workspace, classification_data: Data, library: str) -> None:
    X, y = classification_data
    X = X.assign(region=X["region"].cat.codes)
    if library == "lightgbm":
        from lightgbm import LGBMClassifier
        model: Any = LGBMClassifier(n_estimators=20, verbose=-1).fit(X, y)
    else:
        from xgboost import XGBClassifier
        model = XGBClassifier(n_estimators=20, max_depth=3).fit(X, y)
    v = workspace.registry.register("boost", model, X, y)
    assert v.flavor == "skops"
    assert library in v.libraries
    loaded = workspace.registry.load_model("boost@1")
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_regression_models_get_a_regression_signature(workspace: kw.Workspace) -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x1": rng.normal(size=200), "x2": rng.normal(size=200)})
    y = pd.Series(3 * X["x1"] - X["x2"] + rng.normal(0, 0.1, 200), name="demand")
    v = workspace.registry.register("demand", LinearRegression().fit(X, y), X, y,
                                    holdout=(X, y))
    assert v.signature.task == "regression"
    assert v.signature.classes is None
    assert set(v.metrics) == {"n", "mae", "rmse", "r2"}
    assert v.metrics["r2"] > 0.99
    assert list(workspace.registry.load_profile("demand@1").outputs) == ["prediction"]


@pytest.mark.parametrize(("bad", "message"), [
    ("not a frame", "DataFrame"),
    ("wrong columns", "columns"),
    ("short y", "one label per row"),
    ("unfitted", "not fitted"),
    ("empty", "no rows"),
])
def test_bad_registrations_say_what_to_fix_and_leave_nothing(
        workspace: kw.Workspace, fitted_pipeline: Any, classification_data: Data, bad: str,
        message: str) -> None:
    X, y = classification_data
    model: Any = fitted_pipeline
    args: tuple[Any, Any] = (X, y)
    if bad == "not a frame":
        args = (X.to_numpy(), y)
    elif bad == "wrong columns":
        args = (X.rename(columns={"age": "years"}), y)
    elif bad == "short y":
        args = (X, y[:-1])
    elif bad == "unfitted":
        model = LogisticRegression()
    elif bad == "empty":
        args = (X.iloc[:0], y.iloc[:0])
    with pytest.raises(kw.ValidationError, match=message):
        workspace.registry.register("churn", model, *args)
    assert workspace.registry.list_models() == []
    assert workspace.audit.events() == []
    assert list(workspace.artifacts.iter_objects()) == []


@pytest.mark.parametrize("name", ["", "../x", "a b", "-lead", "x" * 129, "a/b", "<script>",
                                  "$(rm -rf)", "{{7*7}}", "a;b"])
def test_model_names_are_checked(workspace: kw.Workspace, fitted_pipeline: Any,
                                 classification_data: Data, name: str) -> None:
    with pytest.raises(kw.InvalidNameError):
        workspace.registry.register(name, fitted_pipeline, *classification_data)


def test_a_model_keeps_its_task(workspace: kw.Workspace, fitted_pipeline: Any,
                                classification_data: Data) -> None:
    X, y = classification_data
    workspace.registry.register("churn", fitted_pipeline, X, y)
    reg = LinearRegression().fit(X[["age", "income"]], y.astype(float) + 0.5)
    with pytest.raises(kw.ValidationError, match="binary"):
        workspace.registry.register("churn", reg, X[["age", "income"]], y + 0.5,
                                    task="regression")
    assert [v.version for v in workspace.registry.list_versions("churn")] == [1]
    assert audit_actions(workspace) == ["version.register"]


def test_unknown_things_are_not_found_errors(workspace: kw.Workspace, fitted_pipeline: Any,
                                             classification_data: Data) -> None:
    with pytest.raises(kw.ModelNotFoundError):
        workspace.registry.get_version("nope")
    register_versions(workspace, fitted_pipeline, classification_data, 1)
    with pytest.raises(kw.VersionNotFoundError):
        workspace.registry.get_version("churn@7")
    with pytest.raises(kw.AliasNotFoundError):
        workspace.registry.get_version("churn")  # no champion yet
    with pytest.raises(kw.VersionNotFoundError):
        workspace.registry.register("churn", fitted_pipeline, *classification_data, parent=9)


# -- aliases and rollback ------------------------------------------------------------------


def test_aliases_move_and_keep_their_history(workspace: kw.Workspace, fitted_pipeline: Any,
                                            classification_data: Data) -> None:
    register_versions(workspace, fitted_pipeline, classification_data, 3)
    reg = workspace.registry
    reg.set_alias("churn", "champion", 1, reason="launch")
    reg.set_alias("churn", "challenger", 2)
    move = reg.set_alias("churn", "champion", 2, expected_version=1, reason="better")
    assert (move.from_version, move.to_version, move.changed) == (1, 2, True)
    assert reg.get_version("churn").version == 2
    assert reg.get_version("churn@challenger").aliases == ("challenger", "champion")
    assert reg.get_model("churn").aliases == {"challenger": 2, "champion": 2}
    history = reg.alias_history("churn", "champion")
    assert [(m.from_version, m.to_version, m.reason) for m in history] == [
        (None, 1, "launch"), (1, 2, "better")]
    seqs = [m.audit_seq for m in reg.alias_history("churn")]
    assert seqs == sorted(seqs)
    events = {e.seq: e for e in workspace.audit.events()}
    assert events[history[1].audit_seq].before == {"version": 1}
    assert events[history[1].audit_seq].after == {"version": 2}


def test_if_match_refuses_a_stale_expectation(workspace: kw.Workspace, fitted_pipeline: Any,
                                             classification_data: Data) -> None:
    register_versions(workspace, fitted_pipeline, classification_data, 3)
    reg = workspace.registry
    reg.set_alias("churn", "champion", 1)
    with pytest.raises(kw.AliasConflictError, match="points to 1, not 2"):
        reg.set_alias("churn", "champion", 3, expected_version=2)
    with pytest.raises(kw.AliasConflictError):
        reg.set_alias("churn", "champion", 3, expected_version=None)
    reg.set_alias("churn", "shadow", 3, expected_version=None)
    assert reg.get_model("churn").aliases == {"champion": 1, "shadow": 3}
    assert len(workspace.audit.events(action="alias.set")) == 2


def test_a_move_to_the_current_version_records_nothing(
        workspace: kw.Workspace, fitted_pipeline: Any, classification_data: Data) -> None:
    register_versions(workspace, fitted_pipeline, classification_data, 1)
    workspace.registry.set_alias("churn", "champion", 1)
    move = workspace.registry.set_alias("churn", "champion", 1)
    assert not move.changed
    assert move.audit_seq is None
    assert len(workspace.registry.alias_history("churn")) == 1


def test_rollback_walks_back_through_champions(workspace: kw.Workspace, fitted_pipeline: Any,
                                              classification_data: Data) -> None:
    register_versions(workspace, fitted_pipeline, classification_data, 3)
    reg = workspace.registry
    for v in (1, 2, 3):
        reg.set_alias("churn", "champion", v)
    assert reg.rollback("churn", reason="v3 regressed").to_version == 2
    assert reg.rollback("churn").to_version == 1  # not back to 3
    with pytest.raises(kw.InvalidStateError, match="no earlier version"):
        reg.rollback("churn")
    assert reg.get_version("churn").version == 1


def test_rollback_returns_to_the_previous_champion_not_the_previous_number(
        workspace: kw.Workspace, fitted_pipeline: Any, classification_data: Data) -> None:
    register_versions(workspace, fitted_pipeline, classification_data, 3)
    reg = workspace.registry
    for v in (3, 1, 2):
        reg.set_alias("churn", "champion", v)
    assert reg.rollback("churn").to_version == 1
    assert reg.rollback("churn").to_version == 3


def test_rollback_skips_versions_that_can_no_longer_be_served(
        workspace: kw.Workspace, fitted_pipeline: Any, classification_data: Data) -> None:
    register_versions(workspace, fitted_pipeline, classification_data, 3)
    reg = workspace.registry
    for v in (1, 2, 3):
        reg.set_alias("churn", "champion", v)
    reg.archive_version("churn", 2, reason="bad calibration")
    assert reg.rollback("churn").to_version == 1


def test_rollback_without_history_is_refused(workspace: kw.Workspace, fitted_pipeline: Any,
                                             classification_data: Data) -> None:
    register_versions(workspace, fitted_pipeline, classification_data, 1)
    with pytest.raises(kw.InvalidStateError, match="not set"):
        workspace.registry.rollback("churn")
    workspace.registry.set_alias("churn", "champion", 1)
    with pytest.raises(kw.InvalidStateError):
        workspace.registry.rollback("churn")
    assert audit_actions(workspace) == ["version.register", "alias.set"]


def test_register_can_set_an_alias_in_the_same_call(
        workspace: kw.Workspace, fitted_pipeline: Any, classification_data: Data) -> None:
    v = workspace.registry.register("churn", fitted_pipeline, *classification_data,
                                    alias="champion")
    assert v.aliases == ("champion",)
    assert audit_actions(workspace) == ["version.register", "alias.set"]


def test_delete_alias(workspace: kw.Workspace, fitted_pipeline: Any,
                      classification_data: Data) -> None:
    register_versions(workspace, fitted_pipeline, classification_data, 1)
    workspace.registry.set_alias("churn", "challenger", 1)
    move = workspace.registry.delete_alias("churn", "challenger")
    assert move.to_version is None
    assert workspace.registry.get_model("churn").aliases == {}
    with pytest.raises(kw.AliasNotFoundError):
        workspace.registry.delete_alias("churn", "challenger")


# -- lifecycle -------------------------------------------------------------------------------


def test_archived_and_deleted_versions_are_never_served(
        workspace: kw.Workspace, fitted_pipeline: Any, classification_data: Data) -> None:
    versions = register_versions(workspace, fitted_pipeline, classification_data, 3)
    reg = workspace.registry
    reg.set_alias("churn", "champion", 1)
    with pytest.raises(kw.InvalidStateError, match="still champion"):
        reg.archive_version("churn", 1)
    reg.archive_version("churn", 2, reason="superseded")
    with pytest.raises(kw.InvalidStateError, match="archived"):
        reg.load_model("churn@2")
    assert reg.load_model("churn@2", allow_archived=True) is not None
    with pytest.raises(kw.InvalidStateError):
        reg.set_alias("churn", "champion", 2)
    # Versions 1 and 3 hold identical bytes: deleting 3 must keep the shared file.
    reg.delete_version("churn", 3)
    assert workspace.artifacts.exists(versions[0].artifact_sha256)
    reg.delete_version("churn", 2)
    assert workspace.artifacts.exists(versions[0].artifact_sha256)
    with pytest.raises(kw.InvalidStateError, match="deleted"):
        reg.load_model("churn@3")
    assert [v.version for v in reg.list_versions("churn")] == [1]
    assert [v.status for v in reg.list_versions("churn", include_deleted=True)] == [
        "ready", "deleted", "deleted"]
    with pytest.raises(kw.InvalidStateError):
        reg.archive_version("churn", 3)


def test_deleting_the_last_user_of_a_file_removes_it(
        workspace: kw.Workspace, fitted_pipeline: Any, classification_data: Data) -> None:
    X, y = classification_data
    v = workspace.registry.register("churn", fitted_pipeline, X, y)
    workspace.registry.delete_version("churn", 1, reason="gdpr")
    assert not workspace.artifacts.exists(v.artifact_sha256)
    assert workspace.artifacts.exists(v.profile_sha256)  # profiles stay for lineage


def test_configuration_changes_are_audited_with_before_and_after(
        workspace: kw.Workspace, fitted_pipeline: Any, classification_data: Data) -> None:
    register_versions(workspace, fitted_pipeline, classification_data, 1)
    info = workspace.registry.configure_model("churn", description="v2 of the churn model",
                                              sensitive_features=["region"], reason="review")
    assert info.description == "v2 of the churn model"
    workspace.registry.configure_model("churn", description="v2 of the churn model")  # no-op
    events = workspace.audit.events(action="model.configure")
    assert len(events) == 1
    assert events[0].before == {"description": "", "sensitive_features": []}
    assert events[0].after == {"description": "v2 of the churn model",
                               "sensitive_features": ["region"]}


def test_one_audit_event_per_state_change(workspace: kw.Workspace, fitted_pipeline: Any,
                                          classification_data: Data) -> None:
    reg = workspace.registry
    register_versions(workspace, fitted_pipeline, classification_data, 3)  # 3 changes
    reg.set_alias("churn", "champion", 1)                                  # 4
    reg.set_alias("churn", "champion", 2)                                  # 5
    reg.set_alias("churn", "champion", 2)                                  # no change
    reg.rollback("churn")                                                  # 6
    with pytest.raises(kw.AliasConflictError):
        reg.set_alias("churn", "champion", 3, expected_version=2)          # refused
    reg.archive_version("churn", 3)                                        # 7
    reg.delete_version("churn", 3)                                         # 8
    reg.configure_model("churn", description="x")                          # 9
    assert audit_actions(workspace) == [
        "version.register", "version.register", "version.register", "alias.set",
        "alias.set", "alias.rollback", "version.archive", "version.delete", "model.configure"]
    assert workspace.audit.verify().ok


def test_expected_version_any_is_the_default(workspace: kw.Workspace, fitted_pipeline: Any,
                                             classification_data: Data) -> None:
    register_versions(workspace, fitted_pipeline, classification_data, 2)
    workspace.registry.set_alias("churn", "champion", 1, expected_version=ANY)
    assert workspace.registry.get_version("churn").version == 1


def test_a_registration_racing_a_delete_of_the_same_bytes_keeps_its_file(
        settings: kw.Settings, fitted_pipeline: Any, classification_data: Data) -> None:
    """delete_version removes a model file no live version uses. A registration of the very
    same bytes, in another process, may find the file present, then wait for the write lock
    while the delete removes it: it must write the file again before its version row."""
    import threading
    import time

    import skops.io

    X, y = classification_data
    path = settings.workspace.parent / "model.skops"  # one file: the very same bytes twice
    skops.io.dump(fitted_pipeline, path)
    with kw.Workspace(settings) as ws, kw.Workspace(settings) as other:
        first = ws.registry.register("churn", path, X, y)
        remove = ws.artifacts.delete
        racers: list[threading.Thread] = []

        def delete_while_another_registers(digest: str) -> None:
            # The interleaving to force: the other registration has stored its artifacts
            # (finding this file present) and now waits for the lock the delete holds.
            racer = threading.Thread(
                target=lambda: other.registry.register("churn", path, X, y))
            racer.start()
            racers.append(racer)
            time.sleep(1.0)
            remove(digest)

        ws.artifacts.delete = delete_while_another_registers  # type: ignore[method-assign]
        ws.registry.delete_version("churn", 1)
        racers[0].join(timeout=60)
        second = other.registry.get_version("churn@2")
        assert second.artifact_sha256 == first.artifact_sha256
        loaded = other.registry.load_model("churn@2")  # the file is back, and verified
        np.testing.assert_array_equal(loaded.predict(X), fitted_pipeline.predict(X))
