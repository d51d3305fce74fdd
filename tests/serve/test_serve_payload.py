"""Request bodies the server must refuse, and how (RELIABILITY I2, I3, I4, I5, S14).

Non-finite numbers, wrong types and shapes are 422 problems naming each field with a JSON
pointer; broken JSON is 400; a wrong media type 415; a body over the limit 413 before it is
read whole; too many rows 422; deep nesting 400 or 422 and never a 500. A model that returns
NaN gets a 500 ``non-finite-prediction`` problem that is itself valid JSON. None of these
leaves a record in the logbook.

Chunked bodies over the limit need a real HTTP server: they are in
``tests/integration/test_server_live.py``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import serve_support
from serve_support import (
    MODEL,
    RECORD,
    MakeServed,
    Served,
    assert_problem,
    logged_ids,
    open_client,
    pointers,
)
from sklearn.base import BaseEstimator, RegressorMixin

from keepwell.errors import PayloadError
from keepwell.registry.signature import ColumnSpec, Signature
from keepwell.serve.payload import model_inputs, parse_json

# The fixtures these tests use (see serve_support for why they are not in a conftest.py).
anyio_backend, make_served = serve_support.anyio_backend, serve_support.make_served
served, client = serve_support.served, serve_support.client
pytestmark = pytest.mark.anyio

PREDICT = f"/v1/models/{MODEL}/predict"
JSON = {"content-type": "application/json"}


async def _post(client: httpx.AsyncClient, served: Served, raw: bytes | str,
                path: str = PREDICT, headers: dict[str, str] | None = None) -> httpx.Response:
    content = raw.encode() if isinstance(raw, str) else raw
    return await client.post(path, content=content,
                             headers={**served.auth(), **(JSON if headers is None else headers)})


def _strict_json(text: str) -> Any:
    """Parse as strict JSON: NaN/Infinity literals are an error, as for any JSON parser."""
    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON literal {name}")
    return json.loads(text, parse_constant=refuse)


# -- I2: non-finite numbers ----------------------------------------------------------------

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1E+999"]


@pytest.mark.parametrize("literal", NON_FINITE)
async def test_non_finite_literals_in_records_are_422_with_pointers(
        served: Served, client: httpx.AsyncClient, literal: str) -> None:
    raw = ('{"inputs": [{"age": 30, "income": 1.0, "region": "north"}, '
           f'{{"age": {literal}, "income": {literal}, "region": "south"}}]}}')
    body = assert_problem(await _post(client, served, raw), 422, "invalid-payload")
    assert pointers(body) == {"/inputs/1/age", "/inputs/1/income"}
    assert logged_ids(served.ws) == []


@pytest.mark.parametrize("literal", NON_FINITE)
async def test_non_finite_literals_in_columns_are_422_with_pointers(
        served: Served, client: httpx.AsyncClient, literal: str) -> None:
    raw = (f'{{"inputs": {{"age": [1, 2, {literal}], "income": [1, 2, 3], '
           '"region": ["a", "b", "c"]}}')
    body = assert_problem(await _post(client, served, raw), 422, "invalid-payload")
    assert pointers(body) == {"/inputs/age/2"}


async def test_non_finite_anywhere_in_the_body_is_named(served: Served,
                                                        client: httpx.AsyncClient) -> None:
    raw = ('{"inputs": [{"age": 1, "income": 2, "region": "north"}], "key": NaN, '
           '"subjects": [Infinity], "a/b~c": -Infinity}')
    body = assert_problem(await _post(client, served, raw), 422)
    assert pointers(body) == {"/key", "/subjects/0", "/a~1b~0c"}  # RFC 6901 escapes


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "", "12"])
async def test_strings_for_numeric_features_are_422_naming_the_field(
        served: Served, client: httpx.AsyncClient, text: str) -> None:
    record = {**RECORD, "income": text}
    response = await client.post(PREDICT, json={"inputs": [record]}, headers=served.auth())
    body = assert_problem(response, 422, "invalid-payload")
    assert pointers(body) == {"/inputs/0/income"}
    assert "income" in body["errors"][0]["detail"]


# -- I3: wrong types and shapes ------------------------------------------------------------

async def test_missing_extra_and_wrong_typed_keys_are_each_named(
        served: Served, client: httpx.AsyncClient) -> None:
    inputs = [
        {"age": 30, "region": "north", "zip": "02139"},             # income missing, zip extra
        {"age": "old", "income": True, "region": 7},                 # three wrong types
        {"age": [1], "income": {"x": 1}, "region": "south", "a/b": 1},  # nested; escaped key
        "not a record",
    ]
    response = await client.post(PREDICT, json={"inputs": inputs}, headers=served.auth())
    body = assert_problem(response, 422, "invalid-payload")
    assert pointers(body) == {
        "/inputs/0/income", "/inputs/0/zip",
        "/inputs/1/age", "/inputs/1/income", "/inputs/1/region",
        "/inputs/2/age", "/inputs/2/income", "/inputs/2/a~1b",
        "/inputs/3",
    }
    details = {e["pointer"]: e["detail"] for e in body["errors"]}
    assert "income" in details["/inputs/0/income"]
    assert "zip" in details["/inputs/0/zip"]
    assert logged_ids(served.ws) == []


async def test_column_errors_are_each_named(served: Served, client: httpx.AsyncClient) -> None:
    inputs = {"age": [1, "x"], "income": 5, "zip": ["1", "2"], "region": ["a", None]}
    response = await client.post(PREDICT, json={"inputs": inputs}, headers=served.auth())
    body = assert_problem(response, 422, "invalid-payload")
    assert pointers(body) == {"/inputs/age/1", "/inputs/income", "/inputs/zip"}


@pytest.mark.parametrize("inputs", [None, 3, "x", [], {}, {"age": [], "income": [],
                                                            "region": []}, [[1, 2, 3]]])
async def test_inputs_of_the_wrong_shape_are_422(served: Served, client: httpx.AsyncClient,
                                                 inputs: Any) -> None:
    response = await client.post(PREDICT, json={"inputs": inputs}, headers=served.auth())
    body = assert_problem(response, 422)
    assert any(p.startswith("/inputs") for p in pointers(body))


@pytest.mark.parametrize("body", [[RECORD], "inputs", 5, None, {"records": [RECORD]}, True])
async def test_a_body_that_is_not_an_object_with_inputs_is_422(
        served: Served, client: httpx.AsyncClient, body: Any) -> None:
    response = await _post(client, served, json.dumps(body))
    assert pointers(assert_problem(response, 422)) == {"/inputs"}


@pytest.mark.parametrize(("extra", "pointer"), [({"key": 5}, "/key"),
                                                ({"subjects": ["a", "b"]}, "/subjects"),
                                                ({"subjects": [3]}, "/subjects")])
async def test_bad_key_or_subjects_are_422(served: Served, client: httpx.AsyncClient,
                                           extra: dict[str, Any], pointer: str) -> None:
    response = await client.post(PREDICT, json={"inputs": [RECORD], **extra},
                                 headers=served.auth())
    assert pointers(assert_problem(response, 422)) == {pointer}


async def test_an_unseen_category_is_left_to_the_model(served: Served,
                                                       client: httpx.AsyncClient) -> None:
    """The documented category policy: accepted, passed to the model's encoder, logged."""
    response = await client.post(PREDICT, json={"inputs": [{**RECORD, "region": "mars"}]},
                                 headers=served.auth())
    assert response.status_code == 200, response.text
    rows = served.ws.logbook.predictions(MODEL).to_pylist()
    assert rows[0]["region"] == "mars"


async def test_reordered_keys_change_nothing(served: Served, client: httpx.AsyncClient) -> None:
    a = await client.post(PREDICT, json={"inputs": [RECORD]}, headers=served.auth())
    b = await client.post(PREDICT, json={"inputs": [dict(reversed(RECORD.items()))]},
                          headers=served.auth())
    assert a.json()["scores"] == b.json()["scores"]




async def test_duplicate_keys_are_422(served: Served, client: httpx.AsyncClient) -> None:
    raw = '{"inputs": [{"age": 1, "age": 2, "income": 3, "region": "north"}]}'
    assert pointers(assert_problem(await _post(client, served, raw), 422)) == {"/inputs/0/age"}




@pytest.mark.parametrize(("raw", "expected"), [
    (b'{"inputs": {"age": [1], "age": [2]}}', {"/inputs/age"}),
    (b'{"inputs": [{"a": 1}], "inputs": []}', {"/inputs"}),
    (b'{"x": {"a/b": 1, "a/b" : 2, "t~": 3, "t~"\n:4}}', {"/x/a~1b", "/x/t~0"}),
    (b'[{"k": {"k": 1, "k": 2}}, {"k": 1, "j": 2, "k": 3}]', {"/0/k/k", "/1/k"}),
    (b'{"a\\"": 1, "a\\"": 2}', {'/a"'}),
])
def test_repeated_keys_are_named_wherever_they_are(raw: bytes, expected: set[str]) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_json(raw)
    assert {e["pointer"] for e in caught.value.errors} == expected


@pytest.mark.parametrize("raw", [
    b'{"note": "a \\":b", "inputs": [{"age": 1}]}',  # a key-like pattern inside a string
    b'{":": 1, "x": {"\\":": 2}}',  # keys that hold quotes and colons
    b'[1, 2.5, "x", null, true, [], {}]',
    b'"just a string with \\": in it"',
])
def test_key_like_text_without_repeats_is_accepted(raw: bytes) -> None:
    assert parse_json(raw) == json.loads(raw)


async def test_repeated_keys_in_feedback_are_422(served: Served,
                                                 client: httpx.AsyncClient) -> None:
    raw = '{"labels": [1], "labels": [0], "request_ids": ["x"]}'
    body = assert_problem(await _post(client, served, raw, f"/v1/models/{MODEL}/feedback"), 422)
    assert pointers(body) == {"/labels"}


async def test_an_unknown_top_level_key_is_422(served: Served, client: httpx.AsyncClient) -> None:
    response = await client.post(PREDICT, json={"inputs": [RECORD], "inptus": [RECORD]},
                                 headers=served.auth())
    assert pointers(assert_problem(response, 422)) == {"/inptus"}


# -- missing values and model failures -----------------------------------------------------



async def test_a_null_the_model_cannot_take_is_not_a_500(served: Served,
                                                         client: httpx.AsyncClient) -> None:
    response = await client.post(PREDICT, json={"inputs": [{**RECORD, "age": None}]},
                                 headers=served.auth())
    assert 400 <= response.status_code < 500, response.text




async def test_a_bad_request_does_not_fail_its_batch_neighbours(make_served: MakeServed) -> None:
    served = make_served(max_wait_ms=100)
    async with open_client(served.app) as client:
        async def send(record: dict[str, Any]) -> int:
            response = await client.post(PREDICT, json={"inputs": [record]},
                                         headers=served.auth())
            return response.status_code

        good = [{**RECORD, "age": float(a)} for a in range(20, 36)]
        codes: list[int] = []
        for _ in range(3):  # the bad request sits in the middle of a burst, three times
            burst = await asyncio.gather(*(send(r) for r in good[:8]),
                                         send({**RECORD, "age": None}),
                                         *(send(r) for r in good[8:]))
            codes += burst[:8] + burst[9:]
    assert codes == [200] * len(codes), codes


class NanAbove(RegressorMixin, BaseEstimator):
    """Predicts age / 10, or NaN when age is above ``limit``: a model gone wrong."""

    def __init__(self, limit: float = 1000.0) -> None:
        self.limit = limit

    def fit(self, X: pd.DataFrame, y: Any = None) -> NanAbove:
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        age = np.asarray(X["age"], dtype=float)
        return np.where(age > self.limit, np.nan, age / 10)


async def test_a_model_returning_nan_is_a_500_with_valid_json(
        make_served: MakeServed, classification_data: Any) -> None:
    served = make_served()
    X, y = classification_data
    served.ws.registry.register("nanny", NanAbove().fit(X), X, y.astype(float),
                                task="regression", flavor="pickle", trust_pickle=True,
                                alias="champion")
    async with open_client(served.app) as client:
        ok = await client.post("/v1/models/nanny/predict", json={"inputs": [RECORD]},
                               headers=served.auth())
        assert ok.status_code == 200, ok.text
        assert ok.json()["predictions"] == [pytest.approx(3.15)]
        records = [RECORD, {**RECORD, "age": 5000.0}]
        bad = await client.post("/v1/models/nanny/predict", json={"inputs": records},
                                headers=served.auth())
    assert bad.status_code == 500
    body = _strict_json(bad.text)
    assert body["type"].endswith("/non-finite-prediction")
    assert bad.headers["content-type"] == "application/problem+json"
    assert "NaN" not in bad.text.replace("NaN or", "")  # no NaN literal, only the message
    logged = served.ws.logbook.predictions("nanny").column("request_id").to_pylist()
    assert [str(i) for i in logged] == ok.json()["request_ids"]  # the 500 left no record


# -- I4 / S14: size limits and nesting -----------------------------------------------------

async def test_a_body_over_the_limit_is_413(served: Served, client: httpx.AsyncClient) -> None:
    limit = served.settings.serve.max_body_bytes
    records = [RECORD] * (limit // len(json.dumps(RECORD)) + 10)
    raw = json.dumps({"inputs": records})
    assert len(raw) > limit
    for path in (PREDICT, f"/v1/models/{MODEL}/feedback"):
        body = assert_problem(await _post(client, served, raw, path), 413, "body-too-large")
        assert body["instance"] == path
    response = await client.put(f"/v1/models/{MODEL}/aliases/champion", content=raw,
                                headers={**served.auth(), **JSON})
    assert_problem(response, 413, "body-too-large")
    assert logged_ids(served.ws) == []


async def test_a_million_rows_is_refused_fast(served: Served, client: httpx.AsyncClient) -> None:
    raw = '{"inputs": {"age": [' + ",".join(["1"] * 1_000_000) + "]}}"
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert_problem(await _post(client, served, raw), 413, "body-too-large")
    assert loop.time() - started < 2.0


@pytest.mark.parametrize("shape", ["records", "columns"])
async def test_too_many_rows_is_422(make_served: MakeServed, shape: str) -> None:
    served = make_served(max_rows=5)
    inputs: Any = [RECORD] * 6
    if shape == "columns":
        inputs = {k: [v] * 6 for k, v in RECORD.items()}
    async with open_client(served.app) as client:
        response = await client.post(PREDICT, json={"inputs": inputs}, headers=served.auth())
        assert pointers(assert_problem(response, 422, "invalid-payload")) == {"/inputs"}
        five = await client.post(PREDICT, json={"inputs": [RECORD] * 5}, headers=served.auth())
        assert five.status_code == 200


NESTED = {
    "array": lambda n: "[" * n + "]" * n,
    "object": lambda n: '{"a":' * n + "1" + "}" * n,
    "in-record": lambda n: ('{"inputs": [{"age": ' + "[" * n + "]" * n
                            + ', "income": 1, "region": "north"}]}'),
    "in-columns": lambda n: '{"inputs": {"age": [' + "[" * n + "]" * n + "]}}",
    "with-nan": lambda n: '{"inputs": ' + "[" * n + "NaN" + "]" * n + "}",
}


DEPTHS = (64, 1000, 1023, 1024, 1025, 1100, 3000, 100_000)


@pytest.mark.parametrize("shape", sorted(NESTED))
async def test_deep_nesting_is_400_or_422(served: Served, client: httpx.AsyncClient,
                                          shape: str) -> None:
    """Around the parsers' depth limits (orjson 1024, the standard library's recursion
    limit) and far beyond, on every route that takes a body."""
    for depth in DEPTHS:
        raw = NESTED[shape](depth)
        for path in (PREDICT, f"/v1/models/{MODEL}/feedback"):
            response = await _post(client, served, raw, path)
            assert response.status_code in (400, 422), (path, depth, response.text)
            assert_problem(response, response.status_code)
        for path in (f"/v1/models/{MODEL}/aliases/champion", f"/v1/models/{MODEL}/traffic"):
            response = await client.put(path, content=raw, headers={**served.auth(), **JSON})
            assert response.status_code in (400, 422), (path, depth, response.text)
            assert_problem(response, response.status_code)


# -- I5: malformed JSON and media types ----------------------------------------------------

BROKEN = ["{", '{"inputs": [}', '{"inputs": [1,]}', "{'inputs': []}", "", "null garbage",
          '{"inputs": [{"age": 1}]} trailing', b'{"inputs": "\xff\xfe"}', '"\\ud800"',
          "\x00", '{"inputs": [01]}']


@pytest.mark.parametrize("raw", BROKEN, ids=range(len(BROKEN)))
async def test_broken_json_is_400(served: Served, client: httpx.AsyncClient,
                                  raw: str | bytes) -> None:
    for path in (PREDICT, f"/v1/models/{MODEL}/feedback"):
        assert_problem(await _post(client, served, raw, path), 400, "malformed-body")




@pytest.mark.parametrize("path", ["aliases/champion", "traffic"])
async def test_broken_json_on_put_routes_is_400(served: Served, client: httpx.AsyncClient,
                                                path: str) -> None:
    response = await client.put(f"/v1/models/{MODEL}/{path}", content=b'{"version": ',
                                headers={**served.auth(), **JSON})
    assert_problem(response, 400)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml",
                                          "application/jsonx", "text/json"])
async def test_a_wrong_media_type_is_415(served: Served, client: httpx.AsyncClient,
                                         content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    raw = json.dumps({"inputs": [RECORD]})
    for path in (PREDICT, f"/v1/models/{MODEL}/feedback"):
        assert_problem(await _post(client, served, raw, path, headers), 415,
                       "unsupported-media-type")
    assert logged_ids(served.ws) == []


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
async def test_json_media_type_variants_are_accepted(served: Served, client: httpx.AsyncClient,
                                                     content_type: str) -> None:
    response = await _post(client, served, json.dumps({"inputs": [RECORD]}), PREDICT,
                           {"content-type": content_type})
    assert response.status_code == 200, response.text




async def test_a_wrong_media_type_on_put_routes_is_415(served: Served,
                                                       client: httpx.AsyncClient) -> None:
    response = await client.put(f"/v1/models/{MODEL}/aliases/champion",
                                content=json.dumps({"version": 2}),
                                headers={**served.auth(), "content-type": "text/plain"})
    assert_problem(response, 415)
    assert served.ws.registry.get_model(MODEL).aliases["champion"] == 1


async def test_no_payload_error_reaches_the_log(served: Served, client: httpx.AsyncClient) -> None:
    """After every kind of refusal above, a good request still works and is the only record."""
    for raw in ['{"inputs": [{"age": NaN}]}', "{", json.dumps({"inputs": [{"age": "x"}]})]:
        await _post(client, served, raw)
    ok = await client.post(PREDICT, json={"inputs": [RECORD]}, headers=served.auth())
    assert logged_ids(served.ws) == ok.json()["request_ids"]


# -- the model's frame and the logbook's table ----------------------------------------------

MIXED = Signature((
    ColumnSpec("x", "float", True), ColumnSpec("n", "integer", False),
    ColumnSpec("m", "integer", True), ColumnSpec("h", "integer", False),
    ColumnSpec("c", "category", True, categories=("a", "b")),
    ColumnSpec("b", "boolean", False), ColumnSpec("bn", "boolean", True),
    ColumnSpec("s", "string", True), ColumnSpec("t", "datetime", False),
), "binary")


def _reference_frame(columns: dict[str, list[Any]]) -> pd.DataFrame:
    """The frame as built column by column with pandas, the way it was before model_inputs."""
    ints = pd.Series(columns["n"], dtype="float64")
    return pd.DataFrame({
        "x": pd.Series(columns["x"], dtype="float64"),
        "n": ints.astype("int64"),
        "m": pd.Series(columns["m"], dtype="float64"),
        "h": pd.Series(columns["h"], dtype="float64"),
        "c": pd.Categorical(columns["c"], categories=["a", "b", "z"]),
        "b": pd.Series(columns["b"], dtype="bool"),
        "bn": pd.Series(columns["bn"], dtype="boolean"),
        "s": pd.Series(columns["s"], dtype="object"),
        "t": pd.to_datetime(pd.Series(columns["t"]), utc=True, format="ISO8601"),
    })


def test_model_inputs_match_the_pandas_path() -> None:
    columns = {"x": [1.5, None, 3], "n": [1, 2, 3], "m": [1, None, 3], "h": [1, 2.5, 3],
               "c": ["b", None, "z"], "b": [True, False, True], "bn": [True, None, False],
               "s": ["p", None, "q"],
               "t": ["2026-01-01T00:00:00+00:00", "2026-01-02T12:00:00+01:00",
                     "2026-01-03T00:00:00Z"]}
    frame, table = model_inputs(columns, MIXED)
    reference = _reference_frame(columns)
    pd.testing.assert_frame_equal(frame, reference, check_column_type=False)
    assert list(frame.columns) == MIXED.feature_names
    via_pandas = pa.Table.from_pandas(reference, preserve_index=False)
    assert table.schema.equals(via_pandas.schema, check_metadata=False)
    assert table.equals(via_pandas.replace_schema_metadata(None))
    assert table.column("x").null_count == 1  # a missing number is logged as null, not NaN


def test_an_all_numeric_frame_is_one_float_block() -> None:
    signature = Signature(tuple(ColumnSpec(f"f{i}", "float", False) for i in range(10)),
                          "binary")
    rng = np.random.default_rng(3)
    columns = {f"f{i}": rng.standard_normal(7).tolist() for i in range(10)}
    frame, table = model_inputs(columns, signature)
    reference = pd.DataFrame({n: pd.Series(v, dtype="float64") for n, v in columns.items()})
    pd.testing.assert_frame_equal(frame, reference, check_column_type=False)
    assert frame.columns.dtype == object  # scikit-learn reads the labels on every call
    assert len({id(frame[n].to_numpy().base) for n in frame.columns}) == 1  # one block
    assert table.equals(pa.Table.from_pandas(reference, preserve_index=False)
                        .replace_schema_metadata(None))
