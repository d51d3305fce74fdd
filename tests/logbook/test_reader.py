"""Reading the logbook: time windows, last N, filters, labels (latest wins, by subject and
time), unmatched feedback, windows by count and by time, SQL, and the empty logbook.

Most questions are asked twice: over unsealed segments and over sealed Parquet, which must
answer the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from logbook_support import ids_as_text

from keepwell.errors import ValidationError
from keepwell.logbook import Logbook
from keepwell.logbook.ids import new_id

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.fixture(params=["unsealed", "sealed"])
def sealed(request: pytest.FixtureRequest) -> bool:
    return request.param == "sealed"


def _log(book: Logbook, minutes: list[int], *, model: str = "m", version: int = 1,
         arm: str = "champion", subjects: list[str] | None = None) -> list[str]:
    return book.append_frame(
        model, version, {"x": [float(m) for m in minutes]},
        {"prediction": [m % 2 for m in minutes], "score": [m / 100 for m in minutes]},
        arm=arm, ts=[T0 + m * MIN for m in minutes], subjects=subjects)


def _ids(table: object) -> list[str]:
    return ids_as_text(table["request_id"])  # type: ignore[index]


def _minutes(table: object) -> list[int]:
    return [int((t - T0) / MIN) for t in table["ts"].to_pylist()]  # type: ignore[index]


# -- the empty logbook ----------------------------------------------------------------------

def test_an_empty_logbook_answers_with_empty_tables(book: Logbook) -> None:
    assert book.predictions("m").num_rows == 0
    assert book.predictions("m", with_labels=True, last=5).num_rows == 0
    assert book.feedback().num_rows == 0
    assert book.unmatched_feedback().num_rows == 0
    assert book.query("SELECT count(*) AS n FROM predictions").column("n").to_pylist() == [0]
    assert list(book.windows("m", size=10)) == []
    assert book.stats() == {"models": []}
    assert "request_id" in book.predictions("m").column_names


def test_an_unknown_model_is_empty_beside_others(book: Logbook) -> None:
    _log(book, [1, 2])
    assert book.predictions("other").num_rows == 0


# -- time windows, last N, filters ------------------------------------------------------------

def test_predictions_by_time_window_are_start_inclusive_end_exclusive(
        book: Logbook, sealed: bool) -> None:
    ids = _log(book, list(range(10)))
    if sealed:
        book.seal()
    window = book.predictions("m", start=T0 + 2 * MIN, end=T0 + 5 * MIN)
    assert _minutes(window) == [2, 3, 4]
    assert _ids(window) == ids[2:5]
    assert _minutes(book.predictions("m", start=T0 + 8 * MIN)) == [8, 9]
    assert _minutes(book.predictions("m", end=T0 + 2 * MIN)) == [0, 1]
    assert book.predictions("m", start=T0 + 3 * MIN, end=T0 + 3 * MIN).num_rows == 0


def test_predictions_come_oldest_first_whatever_the_append_order(book: Logbook,
                                                                  sealed: bool) -> None:
    _log(book, [5, 1])
    _log(book, [3, 0, 4])
    if sealed:
        book.seal()
    _log(book, [2])
    assert _minutes(book.predictions("m")) == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("with_labels", [False, True])
def test_records_at_the_same_time_come_in_request_id_order(book: Logbook, sealed: bool,
                                                           with_labels: bool) -> None:
    ids = sorted(new_id() for _ in range(6))
    # In the files: minute 1 with ids in falling order, then minute 0, then minute 1 again.
    book.append_frame("m", 1, {"x": [1.0, 1.0, 0.0]}, {"prediction": [1, 1, 0]},
                      ts=[T0 + MIN, T0 + MIN, T0], request_ids=[ids[4], ids[3], ids[0]])
    book.append_frame("m", 1, {"x": [1.0, 1.0, 1.0]}, {"prediction": [1, 1, 1]},
                      ts=[T0 + MIN] * 3, request_ids=[ids[5], ids[1], ids[2]])
    book.add_feedback("m", [7], request_ids=[ids[3]])
    if sealed:
        book.seal()
    table = book.predictions("m", with_labels=with_labels)
    assert _ids(table) == ids and _minutes(table) == [0, 1, 1, 1, 1, 1]
    if with_labels:
        assert table["label"].to_pylist() == [None, None, None, 7, None, None]
    in_order = book.predictions("m", start=T0 + MIN)
    assert _ids(in_order) == ids[1:]


def test_a_window_spanning_days_reads_every_day(book: Logbook, sealed: bool) -> None:
    day = 24 * 60
    _log(book, [-day - 1, -1, 0, 1, day + 1])
    if sealed:
        book.seal()
    assert _minutes(book.predictions("m", start=T0 - day * MIN, end=T0 + 2 * day * MIN)) == [
        -1, 0, 1, day + 1]


def test_last_n(book: Logbook, sealed: bool) -> None:
    ids = _log(book, list(range(10)))
    if sealed:
        book.seal()
    last = book.predictions("m", last=3)
    assert _minutes(last) == [7, 8, 9] and _ids(last) == ids[7:]
    assert book.predictions("m", last=0).num_rows == 0
    assert book.predictions("m", last=100).num_rows == 10
    assert _minutes(book.predictions("m", last=2, end=T0 + 5 * MIN)) == [3, 4]
    with pytest.raises(ValidationError, match="last"):
        book.predictions("m", last=-1)


def test_filters_by_version_and_arm(book: Logbook, sealed: bool) -> None:
    _log(book, [0, 1, 2], version=1, arm="champion")
    _log(book, [3, 4], version=2, arm="challenger")
    _log(book, [5], version=2, arm="shadow")
    if sealed:
        book.seal()
    assert _minutes(book.predictions("m", version=1)) == [0, 1, 2]
    assert _minutes(book.predictions("m", version=2)) == [3, 4, 5]
    assert _minutes(book.predictions("m", arm="challenger")) == [3, 4]
    assert _minutes(book.predictions("m", version=2, arm="shadow")) == [5]
    assert book.predictions("m", version=1, arm="shadow").num_rows == 0
    assert book.predictions("m", version=3).num_rows == 0


def test_a_column_asked_for_twice_comes_twice_in_time_order(book: Logbook) -> None:
    _log(book, [1, 0])
    twice = book.predictions("m", columns=["ts", "request_id", "ts"])
    assert twice.column_names == ["ts", "request_id", "ts"]
    assert [int((t - T0) / MIN) for t in twice.column(2).to_pylist()] == [0, 1]


def test_columns_selects_columns(book: Logbook) -> None:
    _log(book, [0, 1])
    table = book.predictions("m", columns=["ts", "x"])
    assert table.column_names == ["ts", "x"]
    assert table.column("x").to_pylist() == [0.0, 1.0]
    with pytest.raises(ValidationError, match="column"):
        book.predictions("m", columns=['x" FROM predictions; --'])


def test_naive_window_bounds_are_refused(book: Logbook) -> None:
    with pytest.raises(ValidationError, match="timezone"):
        book.predictions("m", start=datetime(2024, 3, 1))


def test_models_are_kept_apart(book: Logbook, sealed: bool) -> None:
    _log(book, [0, 1], model="a")
    _log(book, [2], model="b")
    if sealed:
        book.seal()
    assert _minutes(book.predictions("a")) == [0, 1]
    assert _minutes(book.predictions("b")) == [2]


def test_window_bounds_in_another_time_zone_read_the_same_sealed_or_not(book: Logbook) -> None:
    # Rows at 21:00, 23:00 (day 1) and 01:00 (day 2) UTC.
    start_ts = datetime(2024, 3, 1, 21, 0, tzinfo=UTC)
    book.append_frame("m", 1, {"x": [1.0, 2.0, 3.0]}, {"prediction": [0, 1, 0]},
                      ts=[start_ts, start_ts + 2 * 60 * MIN, start_ts + 4 * 60 * MIN])
    start = datetime(2024, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=5)))    # 20:00 UTC
    end = datetime(2024, 3, 1, 22, 30, tzinfo=timezone(timedelta(hours=-5)))   # 03:30 UTC
    unsealed = (book.predictions("m", start=start).num_rows,
                book.predictions("m", end=end).num_rows)
    assert unsealed == (3, 3)
    book.seal()
    assert (book.predictions("m", start=start).num_rows,
            book.predictions("m", end=end).num_rows) == unsealed


def test_last_n_with_chosen_columns(book: Logbook) -> None:
    _log(book, [0, 1, 2])
    assert book.predictions("m", last=2, columns=["x"]).column("x").to_pylist() == [1.0, 2.0]


# -- labels ----------------------------------------------------------------------------------

def test_labels_join_by_request_id_and_the_latest_received_wins(book: Logbook,
                                                                sealed: bool) -> None:
    ids = _log(book, [0, 1, 2])
    first = book.add_feedback("m", ["no"], request_ids=[ids[1]])
    assert (first.accepted, first.unmatched) == (1, 0)
    book.add_feedback("m", ["yes"], request_ids=[ids[2]])
    if sealed:
        book.seal()
    book.add_feedback("m", ["changed my mind"], request_ids=[ids[1]])  # later: wins
    table = book.predictions("m", with_labels=True)
    assert table.column("label").to_pylist() == [None, "changed my mind", "yes"]
    stamps = table.column("label_ts").to_pylist()
    assert stamps[0] is None and stamps[1] > stamps[2]
    # Every label received is kept; the joined view shows one per prediction.
    assert sorted(book.feedback("m").column("label").to_pylist()) == [
        "changed my mind", "no", "yes"]
    assert book.query("SELECT label_count FROM labels WHERE request_id = ?",
                      [ids[1]]).column("label_count").to_pylist() == [2]


def test_two_labels_in_one_batch_for_one_request_keep_the_later_row(book: Logbook) -> None:
    (rid,) = _log(book, [0])
    book.add_feedback("m", [1, 0], request_ids=[rid, rid])
    assert book.predictions("m", with_labels=True).column("label").to_pylist() == [0]


def test_labels_by_subject_go_to_the_latest_prediction_at_or_before_the_event(
        book: Logbook, sealed: bool) -> None:
    ids = _log(book, [0, 10, 20, 30], subjects=["ann", "ann", "bob", "ann"])
    if sealed:
        book.seal()
    result = book.add_feedback("m", ["between", "exactly", "early"],
                               subjects=["ann", "bob", "ann"],
                               event_ts=[T0 + 15 * MIN, T0 + 20 * MIN, T0 - MIN])
    assert (result.accepted, result.unmatched) == (3, 1)
    labels = dict(zip(_ids(book.predictions("m", with_labels=True)),
                      book.predictions("m", with_labels=True).column("label").to_pylist(),
                      strict=True))
    assert labels == {ids[0]: None, ids[1]: "between", ids[2]: "exactly", ids[3]: None}
    unmatched = book.unmatched_feedback("m")
    assert unmatched.column("label").to_pylist() == ["early"]


def test_a_label_for_an_unknown_id_is_kept_and_listed(book: Logbook, sealed: bool) -> None:
    ids = _log(book, [0])
    unknown = "01890000-0000-7000-8000-000000000001"
    result = book.add_feedback("m", [1, 0], request_ids=[ids[0], unknown])
    assert (result.accepted, result.unmatched) == (2, 1)
    if sealed:
        book.seal()
    unmatched = book.unmatched_feedback("m")
    assert _ids(unmatched) == [unknown] and unmatched.column("label").to_pylist() == [0]
    assert book.feedback("m").num_rows == 2
    assert book.unmatched_feedback().num_rows == 1


def test_a_label_that_arrives_before_its_prediction_matches_once_it_is_logged(
        book: Logbook) -> None:
    from keepwell.logbook.ids import new_id

    rid = new_id()
    assert book.add_feedback("m", [1], request_ids=[rid]).unmatched == 1
    book.append_frame("m", 1, {"x": [1.0]}, {"prediction": [1]}, request_ids=[rid])
    assert book.unmatched_feedback("m").num_rows == 0
    assert book.predictions("m", with_labels=True).column("label").to_pylist() == [1]


def test_labels_by_subject_stay_within_their_model(book: Logbook) -> None:
    (mine,) = _log(book, [0], model="a", subjects=["ann"])
    _log(book, [5], model="b", subjects=["ann"])  # later, another model
    book.add_feedback("a", ["label for a"], subjects=["ann"], event_ts=[T0 + 10 * MIN])
    joined = book.query("SELECT p.model, p.request_id::VARCHAR AS request_id, l.label "
                        "FROM predictions p JOIN labels l USING (request_id)")
    assert joined.to_pylist() == [{"model": "a", "request_id": mine, "label": "label for a"}]
    book.add_feedback("b", ["label for b"], subjects=["zed"], event_ts=[T0 + 10 * MIN])
    book.add_feedback("b", ["b, too early"], subjects=["ann"], event_ts=[T0 + 1 * MIN])
    assert sorted(book.unmatched_feedback().column("label").to_pylist()) == [
        "b, too early", "label for b"]


@pytest.mark.parametrize("what", ["label", "feature"])
def test_values_of_different_types_do_not_break_reading(book: Logbook, what: str) -> None:
    ids = _log(book, [0, 1])
    if what == "label":
        book.add_feedback("m", [1], request_ids=[ids[0]])
        book.add_feedback("m", ["yes"], request_ids=[ids[1]])
    else:
        book.append_frame("m", 1, {"x": ["high"]}, {"prediction": [0]})
    assert book.predictions("m").num_rows == 2 + (what == "feature")
    assert book.feedback("m").num_rows == 2 * (what == "label")


# -- windows ---------------------------------------------------------------------------------

def test_windows_by_count(book: Logbook, sealed: bool) -> None:
    ids = _log(book, list(range(10)))
    if sealed:
        book.seal()
    windows = list(book.windows("m", size=4))
    assert [w.table.num_rows for w in windows] == [4, 4, 2]
    assert [i for w in windows for i in _ids(w.table)] == ids
    # [start, end): the end is just after the window's last record.
    assert (windows[0].start, windows[0].end) == (T0, T0 + 3 * MIN + timedelta(microseconds=1))
    assert windows[-1].start == T0 + 8 * MIN


def test_windows_by_time(book: Logbook, sealed: bool) -> None:
    _log(book, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 17])
    if sealed:
        book.seal()
    windows = list(book.windows("m", every=3 * MIN))
    assert [_minutes(w.table) for w in windows] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9],
                                                    [17]]  # empty windows are skipped
    for w in windows:
        assert w.end - w.start == 3 * MIN
        assert all(w.start <= t < w.end for t in w.table["ts"].to_pylist())
    assert windows[-1].start == T0 + 15 * MIN


def test_windows_by_time_from_a_given_start_and_until_an_end(book: Logbook) -> None:
    _log(book, list(range(10)))
    windows = list(book.windows("m", every=4 * MIN, start=T0 + 2 * MIN, end=T0 + 9 * MIN))
    assert [(w.start, _minutes(w.table)) for w in windows] == [
        (T0 + 2 * MIN, [2, 3, 4, 5]), (T0 + 6 * MIN, [6, 7, 8])]


def test_windows_with_labels(book: Logbook) -> None:
    ids = _log(book, [0, 1, 2])
    book.add_feedback("m", [1], request_ids=[ids[2]])
    (window,) = book.windows("m", size=3, with_labels=True)
    assert window.table.column("label").to_pylist() == [None, None, 1]


@pytest.mark.parametrize("options", [{}, {"size": 2, "every": MIN}, {"size": 0},
                                     {"every": timedelta(0)}])
def test_windows_need_one_positive_size_or_duration(book: Logbook,
                                                    options: dict[str, object]) -> None:
    _log(book, [0])
    with pytest.raises(ValidationError):
        list(book.windows("m", **options))  # type: ignore[arg-type]


def test_windows_by_count_hold_their_rows_in_start_end(book: Logbook) -> None:
    _log(book, list(range(6)))
    for w in book.windows("m", size=3):
        assert all(w.start <= t < w.end for t in w.table["ts"].to_pylist())


# -- SQL --------------------------------------------------------------------------------------

def test_query_runs_sql_over_the_views(book: Logbook, sealed: bool) -> None:
    _log(book, [0, 1, 2], version=1)
    ids = _log(book, [3, 4], version=2, arm="challenger")
    book.add_feedback("m", [1], request_ids=[ids[0]])
    if sealed:
        book.seal()
    table = book.query("SELECT version, arm, count(*) AS n, sum(x) AS total FROM predictions "
                       "GROUP BY ALL ORDER BY version")
    assert table.to_pylist() == [
        {"version": 1, "arm": "champion", "n": 3, "total": 3.0},
        {"version": 2, "arm": "challenger", "n": 2, "total": 7.0}]
    assert book.query("SELECT count(*) AS n FROM predictions WHERE x > ?", [2.5]).column(
        "n").to_pylist() == [2]
    labelled = book.query("SELECT p.x, l.label FROM predictions p JOIN labels l "
                          "USING (request_id)")
    assert labelled.to_pylist() == [{"x": 3.0, "label": 1}]


def test_stats_counts_rows_per_kind_and_model(book: Logbook) -> None:
    _log(book, [0, 1, 2], model="a")
    ids = _log(book, [3], model="b")
    book.seal()
    _log(book, [4], model="a")
    book.add_feedback("b", [1], request_ids=ids)
    rows = {(m["kind"], m["model"]): m["rows"] for m in book.stats()["models"]}
    assert rows == {("predictions", "a"): 4, ("predictions", "b"): 1, ("feedback", "b"): 1}
    first = next(m for m in book.stats()["models"] if m["model"] == "a")
    assert first["first"] == T0 and first["last"] == T0 + 4 * MIN
