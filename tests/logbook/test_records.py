"""Record layouts: what a prediction or feedback batch holds, and validation errors that name
the field at fault."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from keepwell.errors import ValidationError
from keepwell.logbook.ids import id_array, new_id
from keepwell.logbook.records import (
    ARMS,
    META_COLUMNS,
    TIMESTAMP,
    feedback_batch,
    prediction_batch,
    to_table,
    uuid_array,
)
from keepwell.registry.signature import RESERVED_COLUMNS

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _features(n: int = 3) -> pa.Table:
    return pa.table({"age": [30.0 + i for i in range(n)], "city": [f"c{i}" for i in range(n)]})


def _outputs(n: int = 3, **extra: list[Any]) -> pa.Table:
    return pa.table({"prediction": [i % 2 for i in range(n)], **extra})


def _predict(**options: Any) -> pa.RecordBatch:
    features = options.pop("features", _features())
    outputs = options.pop("outputs", _outputs(features.num_rows))
    return prediction_batch("churn", 3, features, outputs, **options)


# -- layouts ---------------------------------------------------------------------------------

def test_a_prediction_batch_has_the_documented_layout() -> None:
    ids = [new_id() for _ in range(3)]
    batch = _predict(outputs=_outputs(3, score=[0.1, 0.5, 0.9]), arm="challenger", ts=T0,
                     latency_ms=[1.5, 2.5, None], subjects=["a", None, "c"], request_ids=ids)
    assert batch.schema.names == [*META_COLUMNS, "prediction", "score", "age", "city"]
    assert isinstance(batch.schema.field("request_id").type, pa.UuidType)
    assert batch.schema.field("ts").type == TIMESTAMP
    assert batch.schema.field("version").type == pa.int32()
    rows = batch.to_pylist()
    assert [uuid.UUID(bytes=r) for r in batch.column(0).storage.to_pylist()] == [
        uuid.UUID(i) for i in ids]
    assert {r["model"] for r in rows} == {"churn"} and {r["version"] for r in rows} == {3}
    assert {r["arm"] for r in rows} == {"challenger"}
    assert [r["ts"] for r in rows] == [T0] * 3
    assert [r["latency_ms"] for r in rows] == [1.5, 2.5, None]
    assert [r["subject"] for r in rows] == ["a", None, "c"]
    assert [r["score"] for r in rows] == [0.1, 0.5, 0.9]
    assert [r["city"] for r in rows] == ["c0", "c1", "c2"]


def test_defaults_new_increasing_ids_now_and_null_optionals() -> None:
    before = datetime.now(UTC)
    batch = _predict()
    after = datetime.now(UTC)
    raw = batch.column(0).storage.to_pylist()
    assert all(a < b for a, b in itertools.pairwise(raw))
    assert all(before - timedelta(microseconds=1) <= t <= after
               for t in batch.column(1).to_pylist())
    assert batch.column("latency_ms").null_count == 3
    assert batch.column("subject").null_count == 3
    assert set(batch.column("arm").to_pylist()) == {"champion"}


def test_multiclass_probabilities_are_kept_as_proba_columns() -> None:
    batch = _predict(outputs=_outputs(3, proba_a=[0.2] * 3, proba_b=[0.8] * 3))
    assert batch.schema.names[len(META_COLUMNS):len(META_COLUMNS) + 3] == [
        "prediction", "proba_a", "proba_b"]


def test_an_aware_timestamp_in_another_zone_is_stored_as_the_same_instant() -> None:
    local = datetime(2024, 3, 1, 17, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    batch = _predict(ts=local)
    assert batch.column("ts").to_pylist() == [T0] * 3


def test_timestamps_may_be_given_per_row() -> None:
    stamps = [T0 + timedelta(minutes=i) for i in range(3)]
    assert _predict(ts=stamps).column("ts").to_pylist() == stamps
    as_series = pd.Series(pd.to_datetime(stamps, utc=True))
    assert _predict(ts=as_series).column("ts").to_pylist() == stamps


def test_categorical_features_are_stored_as_plain_values() -> None:
    frame = pd.DataFrame({"region": pd.Categorical(["n", "s", "n"]), "age": [1.0, 2.0, 3.0]})
    batch = _predict(features=to_table(frame, "features"))
    region = batch.schema.field("region").type
    assert pa.types.is_string(region) or pa.types.is_large_string(region), region
    assert batch.column("region").to_pylist() == ["n", "s", "n"]


def test_an_empty_batch_keeps_its_schema() -> None:
    batch = _predict(features=_features(0), outputs=_outputs(0))
    assert batch.num_rows == 0 and batch.schema.names[:len(META_COLUMNS)] == list(META_COLUMNS)


def test_uuid_array_passes_an_arrow_uuid_array_through() -> None:
    ids = id_array(4)
    assert uuid_array(ids, 4, "request_ids") is ids


def test_a_feedback_batch_has_the_documented_layout() -> None:
    rid = new_id()
    batch = feedback_batch("churn", [1, 0], request_ids=[rid, None], subjects=[None, "bob"],
                           event_ts=[None, T0])
    assert batch.schema.names == ["feedback_id", "received_ts", "model", "request_id",
                                  "subject", "event_ts", "label"]
    rows = batch.to_pylist()
    assert [r["label"] for r in rows] == [1, 0]
    assert batch.column("request_id").is_null().to_pylist() == [False, True]
    assert uuid.UUID(bytes=batch.column("request_id").storage[0].as_py()) == uuid.UUID(rid)
    assert [r["subject"] for r in rows] == [None, "bob"]
    assert [r["event_ts"] for r in rows] == [None, T0]
    assert all(uuid.UUID(bytes=f).version == 7
               for f in batch.column("feedback_id").storage.to_pylist())


def test_feedback_by_request_id_needs_no_event_time() -> None:
    batch = feedback_batch("churn", ["yes"], request_ids=[new_id()])
    assert batch.column("event_ts").null_count == 1


# -- validation names the field --------------------------------------------------------------

@pytest.mark.parametrize(("options", "field"), [
    ({"request_ids": ["not-a-uuid"] * 3}, "request_ids[0]"),
    ({"request_ids": [new_id(), "1234", new_id()]}, "request_ids[1]"),
    ({"request_ids": [new_id()] * 2}, "request_ids"),
    ({"outputs": _outputs(2)}, "outputs"),
    ({"latency_ms": [1.0, 2.0]}, "latency_ms"),
    ({"subjects": ["a"] * 4}, "subjects"),
    ({"ts": [T0, T0]}, "ts"),
    ({"ts": [object(), object(), object()]}, "ts"),
    ({"ts": datetime(2024, 3, 1, 12)}, "ts"),
    ({"arm": "canary"}, "arm"),
    ({"outputs": pa.table({"label": [1, 0, 1]})}, "prediction"),
    ({"outputs": _outputs(3, confidence=[1.0] * 3)}, "confidence"),
])
def test_a_bad_prediction_argument_is_named(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _predict(**options)
    assert field in str(caught.value), str(caught.value)
    assert caught.value.status == 422


def test_every_arm_is_accepted() -> None:
    for arm in ARMS:
        assert _predict(arm=arm).column("arm")[0].as_py() == arm


@pytest.mark.parametrize("name", [*sorted(RESERVED_COLUMNS), "proba_yes"])
def test_a_feature_may_not_take_a_logbook_column_name(name: str) -> None:
    features = pa.table({"age": [1.0], name: [2.0]})
    with pytest.raises(ValidationError) as caught:
        _predict(features=features, outputs=_outputs(1))
    assert repr(name) in str(caught.value)


@pytest.mark.parametrize(("options", "field"), [
    ({}, "request_ids"),
    ({"subjects": ["a", "b"]}, "event_ts"),
    ({"request_ids": [new_id()]}, "request_ids"),
    ({"request_ids": ["nope", new_id()]}, "request_ids[0]"),
    ({"subjects": ["a"], "event_ts": [T0, T0]}, "subjects"),
    ({"subjects": ["a", "b"], "event_ts": [T0]}, "event_ts"),
    ({"subjects": ["a", "b"], "event_ts": datetime(2024, 3, 1)}, "event_ts"),
])
def test_a_bad_feedback_argument_is_named(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        feedback_batch("churn", [1, 0], **options)
    assert field in str(caught.value), str(caught.value)


def test_to_table_names_what_it_could_not_read() -> None:
    with pytest.raises(ValidationError, match="features"):
        to_table([[1.0, 2.0]], "features")  # type: ignore[arg-type]
    assert to_table({"a": [1]}, "features").column_names == ["a"]
    assert to_table(pd.DataFrame({"a": [1]}, index=[7]), "features").column_names == ["a"]


@pytest.mark.parametrize("where", ["ts list", "ts series", "event_ts list"])
def test_naive_datetimes_in_a_list_are_refused(where: str) -> None:
    naive = datetime(2024, 3, 1, 12)
    with pytest.raises(ValidationError, match="ts"):
        if where == "ts list":
            _predict(ts=[naive] * 3)
        elif where == "ts series":
            _predict(ts=pd.Series([naive] * 3))
        else:
            feedback_batch("churn", [1], subjects=["a"], event_ts=[naive])


def test_an_arrow_request_id_array_of_the_wrong_length_is_named() -> None:
    with pytest.raises(ValidationError, match="request_ids"):
        _predict(request_ids=id_array(4))


def test_a_prediction_needs_every_request_id() -> None:
    with pytest.raises(ValidationError, match="request_ids"):
        _predict(request_ids=[new_id(), None, new_id()])
