"""Data quality of a window against a real Signature and ReferenceProfile.

The reference is built by ``ReferenceProfile.from_frame`` and ``Signature.from_frame`` on a
seeded training frame of every dtype; windows are drawn from the same generator, and problems
are planted in them with known counts. The p-values are checked against exact references:
``scipy.stats.fisher_exact`` for the rate test (1e-9 relative) and full enumeration of the
pooled sample's arrangements for the out-of-range tail (1e-12 absolute). Counts are checked
against Evidently 0.7.23's ``MissingValueCount``, ``OutRangeValueCount`` and
``OutListValueCount`` on the same data (exact).
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from keepwell.errors import ValidationError
from keepwell.registry.profile import ReferenceProfile
from keepwell.registry.signature import Signature
from keepwell.stats.quality import (
    QualityReport,
    check_quality,
    out_of_range_p_value,
    rate_increase_p_value,
)
from peers import run_peer

PLANS = np.array(["basic", "plus", "pro", "team"])
PLAN_SHARES = np.array([0.5, 0.3, 0.15, 0.05])
REGIONS = ["north", "south", "east", "west", "centre", "islands"]
START = pd.Timestamp("2020-01-01")


def draw(n: int, seed: int) -> pd.DataFrame:
    """One sample of the training distribution: every dtype a Signature knows."""
    rng = np.random.default_rng(seed)
    rating = rng.normal(0.0, 1.0, n)
    rating[rng.random(n) < 0.05] = np.nan  # 5 % missing, in training too
    return pd.DataFrame({
        "age": rng.integers(18, 91, n),  # 18..90: the training sample holds both ends
        "income": rng.lognormal(10, 0.5, n),
        "rating": rating,
        "plan": rng.choice(PLANS, n, p=PLAN_SHARES),
        "region": pd.Categorical(rng.choice(REGIONS, n), categories=REGIONS),
        "member": rng.random(n) < 0.3,
        "signup": START + pd.to_timedelta(rng.integers(0, 3 * 365 * 24, n), unit="h"),
    })


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return draw(5_000, 0)


@pytest.fixture(scope="module")
def signature(train: pd.DataFrame) -> Signature:
    return Signature.from_frame(train, task="regression")


@pytest.fixture(scope="module")
def profile(train: pd.DataFrame) -> ReferenceProfile:
    return ReferenceProfile.from_frame(train)


def test_the_signature_and_profile_are_what_the_checks_expect(signature: Signature,
                                                              profile: ReferenceProfile) -> None:
    assert [c.dtype for c in signature.inputs] == ["integer", "float", "float", "string",
                                                   "category", "boolean", "datetime"]
    assert profile.features["age"].min == 18 and profile.features["age"].max == 90
    assert profile.features["rating"].missing > 0


def test_a_clean_window_is_ok(signature: Signature, profile: ReferenceProfile) -> None:
    window = draw(3_000, 1)
    report = check_quality(window, signature, reference=profile)
    assert report.ok and not report.failed and report.failed_columns == ()
    assert report.rows == 3_000 and len(report.columns) == 7
    assert report.missing_columns == report.extra_columns == report.duplicate_columns == ()
    for column in report.columns:
        assert column.problems == () and column.type_errors == column.non_finite == 0
        assert column.valid + column.missing.count == 3_000
    assert report["rating"].missing.count == int(window["rating"].isna().sum())
    assert report["age"].out_of_range is not None and report["age"].out_of_range.count == 0
    assert report["plan"].unseen is not None and report["plan"].unseen.count == 0
    assert report["plan"].unseen_exact is True
    assert report["age"].kind == "numeric" and report["plan"].kind == "categorical"
    assert report["member"].kind == "boolean" and report["signup"].dtype == "datetime"


@pytest.mark.parametrize("n", [50, 2_000, 50_000])
def test_same_distribution_windows_never_fail(signature: Signature, profile: ReferenceProfile,
                                              n: int) -> None:
    trials = {50: 30, 2_000: 30, 50_000: 6}[n]
    smallest = 1.0
    out_of_range = 0
    for seed in range(trials):
        report = check_quality(draw(n, 100 + seed), signature, reference=profile)
        assert report.ok, report.failed_columns
        out_of_range += sum(c.out_of_range.count for c in report.columns if c.out_of_range)
        smallest = min(smallest, *(check.p_value_adjusted for c in report.columns
                                   for check in (c.missing, c.out_of_range, c.unseen)
                                   if check is not None and check.p_value_adjusted is not None))
    if n == 50_000:
        # Values outside the training range do occur (income and rating are continuous), and
        # the exact test knows they should: about 2·n/(5,000 + 1) ≈ 20 per column and window.
        assert out_of_range > 0
    assert smallest > 0.05


def plant(window: pd.DataFrame) -> pd.DataFrame:
    """Known problems in a window of 2,000 rows."""
    w = window.copy()
    w["income"] = w["income"].astype(object)
    w.loc[100:136, "income"] = "n/a"                   # 37 strings in a number column
    w.loc[200:211, "age"] = 200                        # 12 ages above the maximum (90)
    w.loc[300:302, "plan"] = "enterprise"              # 5 values of 2 unseen plans
    w.loc[303:304, "plan"] = "gold"
    w.loc[400:402, "rating"] = np.inf                   # 3 infinities
    w.loc[403, "rating"] = -np.inf                      # and one more
    w["member"] = w["member"].astype(object)
    w.loc[500:503, "member"] = "yes"                   # 4 strings in a boolean column
    w.loc[504:506, "member"] = 1                       # 0 and 1 are booleans: fine
    w["signup"] = w["signup"].astype(object)
    w.loc[600:605, "signup"] = "soon"                  # 6 unparseable dates
    w.loc[606:615, "signup"] = "2031-05-01T00:00:00"   # 10 dates after the last one
    w.loc[700:999, "region"] = np.nan                  # 300 missing where training had none
    return w


def test_planted_problems_are_found_with_exact_counts(signature: Signature,
                                                      profile: ReferenceProfile) -> None:
    window = plant(draw(2_000, 7))
    report = check_quality(window, signature, reference=profile)
    assert report.failed
    assert set(report.failed_columns) == {"income", "age", "rating", "member", "signup",
                                          "region"}
    income = report["income"]
    assert income.problems == ("type_errors",)
    assert income.type_errors == 37 and income.type_error_examples == ("n/a",)
    assert income.valid == 2_000 - 37 and income.observed_dtype == "object"
    age = report["age"]
    assert age.problems == ("out_of_range",) and age.out_of_range is not None
    assert age.out_of_range.count == 12 and age.out_of_range.examples == (200.0,)
    assert age.out_of_range.p_value == pytest.approx(out_of_range_p_value(12, 5_000, 2_000))
    plan = report["plan"]
    assert plan.unseen is not None and plan.unseen_exact
    assert plan.unseen.count == 5 and plan.unseen.examples == ("enterprise", "gold")
    # 5 new values of 2,000 against none of 5,000: p = 0.0019 (Fisher), not enough evidence
    # once Holm-adjusted over the report's 14 rate tests at alpha = 0.01 ...
    assert plan.unseen.p_value == pytest.approx(stats.fisher_exact(
        [[5, 1_995], [0, 5_000]], alternative="greater").pvalue, rel=1e-9)
    assert plan.unseen.p_value_adjusted > 0.01 and plan.problems == ()
    more = window.copy()
    more.loc[1_000:1_014, "plan"] = "enterprise"  # ... 20 are
    plan = check_quality(more, signature, reference=profile)["plan"]
    assert plan.unseen is not None and plan.unseen.count == 20
    assert plan.problems == ("unseen_categories",)
    rating = report["rating"]
    assert rating.problems == ("non_finite",) and rating.non_finite == 4
    member = report["member"]
    assert member.problems == ("type_errors",)
    assert member.type_errors == 4 and member.type_error_examples == ("yes",)
    assert member.unseen is not None and member.unseen.count == 0  # 1 is True
    signup = report["signup"]
    assert signup.problems == ("type_errors", "out_of_range") and signup.out_of_range
    assert signup.type_errors == 6 and signup.type_error_examples == ("soon",)
    assert signup.out_of_range.count == 10
    assert signup.out_of_range.examples == ("2031-05-01T00:00:00+00:00",)
    region = report["region"]
    assert region.problems == ("missing_rate",) and region.missing.count == 300
    assert region.missing.rate == 0.15 and region.missing.expected_rate == 0.0


def test_the_missing_rate_needs_significance_and_size() -> None:
    train = np.random.default_rng(5).normal(size=400_000)
    train[:20_000] = np.nan  # 5 % missing
    ref = ReferenceProfile.from_frame(pd.DataFrame({"x": train})).features["x"]
    reference = {"x": ref}
    ref_rate = 0.05

    def window(n: int, missing: int) -> QualityReport:
        values = np.linspace(-1.0, 1.0, n)
        values[:missing] = np.nan
        return check_quality(pd.DataFrame({"x": values}), {"x": "float"}, reference=reference)

    def rate_check(n: int, missing: int) -> Any:
        check = window(n, missing)["x"].missing
        expected = stats.fisher_exact([[missing, n - missing],
                                       [ref.missing, ref.count]], alternative="greater")
        assert check.p_value == pytest.approx(expected.pvalue, rel=1e-9)
        return check

    small_noise = rate_check(40, 4)  # 10 %: a rise of 5 points, but 4 of 40 is not evidence
    assert small_noise.increase > 0.04 and small_noise.p_value > 0.05 and not small_noise.flagged
    small_real = rate_check(40, 16)  # 40 %
    assert small_real.p_value < 1e-6 and small_real.flagged
    large_small = rate_check(400_000, round(400_000 * (ref_rate + 0.006)))
    assert large_small.p_value < 1e-20 and not large_small.flagged  # certain but negligible
    large_real = rate_check(400_000, round(400_000 * (ref_rate + 0.015)))
    assert large_real.p_value < 1e-20 and large_real.flagged


@pytest.mark.parametrize(("k_ref", "n_ref", "k_cur", "n_cur"),
                         [(5, 100, 15, 100), (0, 5_000, 3, 40), (250, 5_000, 330, 4_000),
                          (70, 1_000, 1, 20), (0, 10, 0, 10)])
def test_the_rate_test_is_fishers_exact_test(k_ref: int, n_ref: int, k_cur: int,
                                             n_cur: int) -> None:
    expected = stats.fisher_exact([[k_cur, n_cur - k_cur], [k_ref, n_ref - k_ref]],
                                  alternative="greater").pvalue
    assert rate_increase_p_value(k_ref, n_ref, k_cur, n_cur) == pytest.approx(expected,
                                                                             rel=1e-9)


@pytest.mark.parametrize(("n_ref", "n_cur"), [(6, 5), (9, 7), (3, 10)])
def test_the_out_of_range_tail_is_exact(n_ref: int, n_cur: int) -> None:
    # Every arrangement of the pooled sample is equally likely: enumerate them all.
    total = n_ref + n_cur
    outside = []
    for current in itertools.combinations(range(total), n_cur):
        reference = sorted(set(range(total)) - set(current))
        outside.append(sum(p < reference[0] or p > reference[-1] for p in current))
    counts = np.bincount(outside, minlength=n_cur + 2)
    tail = counts[::-1].cumsum()[::-1] / math.comb(total, n_cur)
    for k in range(n_cur + 2):
        assert out_of_range_p_value(k, n_ref, n_cur) == pytest.approx(tail[k], abs=1e-12)
    mean = sum(k * c for k, c in enumerate(counts)) / math.comb(total, n_cur)
    assert mean == pytest.approx(2 * n_cur / (n_ref + 1), abs=1e-12)  # the expected rate


def test_a_truncated_profile_still_judges_new_categories() -> None:
    rng = np.random.default_rng(3)
    levels = np.array([f"l{i}" for i in range(8)])
    shares = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.015, 0.005])
    train = pd.DataFrame({"c": rng.choice(levels, 5_000, p=shares)})
    profile = ReferenceProfile.from_frame(train, max_categories=3).features
    assert profile["c"].other_count > 0 and profile["c"].categories == ("l0", "l1", "l2")
    clean = pd.DataFrame({"c": rng.choice(levels, 2_000, p=shares)})
    report = check_quality(clean, {"c": "string"}, reference=profile)
    unseen = report["c"].unseen
    assert report.ok and unseen is not None and report["c"].unseen_exact is False
    # Values of the pooled categories cannot be told from new ones: an upper bound.
    assert unseen.count == int((~clean["c"].isin(["l0", "l1", "l2"])).sum()) > 300
    assert unseen.expected_rate == profile["c"].other_count / 5_000
    assert set(unseen.examples) <= set(levels[3:])
    new = clean.copy()
    new.loc[:199, "c"] = "brand_new"  # 10 % of a category never seen
    flagged = check_quality(new, {"c": "string"}, reference=profile)
    assert flagged["c"].problems == ("unseen_categories",)
    assert flagged["c"].unseen is not None and flagged["c"].unseen.examples[0] == "brand_new"


def test_new_values_of_a_long_tail_are_expected() -> None:
    # Zip-code-like: many categories seen once; new ones keep coming (Good-Turing).
    rng = np.random.default_rng(4)
    draw_codes = lambda n: pd.Series(rng.zipf(1.6, n).astype(str))  # noqa: E731
    train = pd.DataFrame({"zip": draw_codes(5_000)})
    profile = ReferenceProfile.from_frame(train).features
    singletons = int((train["zip"].value_counts() == 1).sum())
    report = check_quality(pd.DataFrame({"zip": draw_codes(3_000)}), {"zip": "string"},
                           reference=profile)
    unseen = report["zip"].unseen
    assert unseen is not None and unseen.count > 50 and report.ok
    assert unseen.expected_rate == singletons / 5_000


def test_type_errors_by_dtype() -> None:
    frame = pd.DataFrame({
        "int": pd.Series([1, 2.5, 3, None, 4.0], dtype=object),
        "float": pd.Series([1.5, "3.5", True, None, np.int64(2)], dtype=object),
        "mixed": pd.Series([1, True, 1.0, False, 0], dtype=object),  # True == 1 in Python
        "bool": pd.Series([True, 0, 1, 2, None], dtype=object),
        "text": pd.Series(["a", 5, b"x", None, "b"], dtype=object),
        "cat": pd.Categorical([1, 2, 2, None, 1]),
        "when": pd.Series(["2020-01-01", "tomorrow", 17, None, pd.Timestamp("2021-01-01")],
                          dtype=object),
        "flags": [True, False, True, True, False],  # a bool dtype where numbers are expected
    })
    expected = {"int": "integer", "float": "float", "mixed": "float", "bool": "boolean",
                "text": "string", "cat": "category", "when": "datetime", "flags": "float"}
    report = check_quality(frame, expected)
    errors = {c.name: (c.type_errors, c.type_error_examples) for c in report.columns}
    assert errors == {"int": (1, (2.5,)), "float": (2, ("3.5", True)),
                      "mixed": (2, (True, False)), "bool": (1, (2,)),
                      "text": (2, (5, "b'x'")), "cat": (0, ()), "when": (2, ("tomorrow", 17)),
                      "flags": (5, (True, False))}
    assert [report[c].missing.count for c in expected] == [1, 1, 0, 1, 1, 1, 1, 0]
    assert report["when"].valid == 2 and report["mixed"].valid == 3
    assert report.failed_columns == ("int", "float", "mixed", "bool", "text", "when", "flags")


def test_schema_problems(signature: Signature, profile: ReferenceProfile) -> None:
    window = draw(500, 9)
    extra = window.assign(request_id=range(500), comment="x")
    report = check_quality(extra, signature, reference=profile, ignore_columns=["request_id"])
    assert report.ok and report.extra_columns == ("comment",)  # reported, not fatal
    missing = check_quality(window.drop(columns=["plan", "age"]), signature, reference=profile)
    assert missing.failed and missing.missing_columns == ("age", "plan")
    assert missing.failed_columns == () and len(missing.columns) == 5
    doubled = pd.concat([window, window[["income"]]], axis=1)
    twice = check_quality(doubled, signature, reference=profile)
    assert twice.failed and twice.duplicate_columns == ("income",)
    assert twice["income"].valid == 500


def test_a_column_without_reference_gets_the_checks_that_need_none(
        signature: Signature, profile: ReferenceProfile) -> None:
    window = plant(draw(2_000, 7))
    report = check_quality(window, signature)
    assert report["income"].type_errors == 37 and report["rating"].non_finite == 4
    assert report["region"].missing.count == 300 and report["region"].missing.p_value is None
    assert report["age"].out_of_range is None and report["plan"].unseen is None
    assert report.failed_columns == ("income", "rating", "member", "signup")
    partial = {k: v for k, v in profile.features.items() if k != "age"}
    assert check_quality(window, signature, reference=partial)["age"].out_of_range is None


def test_raw_reference_values_give_the_profiles_answer(train: pd.DataFrame,
                                                       signature: Signature,
                                                       profile: ReferenceProfile) -> None:
    window = plant(draw(2_000, 7))
    from_profile = check_quality(window, signature, reference=profile).to_dict()
    assert check_quality(window, signature, reference=train).to_dict() == from_profile
    as_mapping = {c: train[c].to_numpy() for c in train.columns}
    assert check_quality(window, signature, reference=as_mapping).to_dict() == from_profile


def test_a_pyarrow_table_is_read_like_its_frame(signature: Signature,
                                                profile: ReferenceProfile) -> None:
    window = draw(1_000, 11)
    window.loc[:9, "rating"] = np.inf
    table = pa.Table.from_pandas(window, preserve_index=False)
    assert check_quality(table, signature, reference=profile).to_dict() == \
        check_quality(window, signature, reference=profile).to_dict()


def test_range_margin_and_holm(profile: ReferenceProfile) -> None:
    reference = {"age": profile.features["age"]}  # 18..90
    ages = np.resize(np.arange(18, 91), 2_000).astype(float)
    ages[:30] = 93.0  # 3 years above: within a 10 % margin (7.2 years)
    ages[30:40] = 120.0
    frame = pd.DataFrame({"age": ages})
    plain = check_quality(frame, {"age": "integer"}, reference=reference)["age"].out_of_range
    wide = check_quality(frame, {"age": "integer"}, reference=reference,
                         range_margin=0.1)["age"].out_of_range
    assert plain is not None and wide is not None
    assert plain.count == 40 and wide.count == 10
    assert plain.examples == (120.0, 93.0) and wide.examples == (120.0,)
    assert plain.p_value_adjusted is not None and plain.p_value is not None
    assert plain.p_value_adjusted >= plain.p_value


def test_to_dict_is_json_safe(signature: Signature, profile: ReferenceProfile) -> None:
    window = plant(draw(2_000, 7))
    window.loc[800:819, "plan"] = [f"{'long ' * 40}{i}" for i in range(20)]
    report = check_quality(window, signature, reference=profile, max_examples=3)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["ok"] is False and data["rows"] == 2_000
    plan = next(c for c in data["columns"] if c["name"] == "plan")
    assert plan["unseen"]["count"] == 25 and len(plan["unseen"]["examples"]) == 3
    assert all(len(e) <= 80 for e in plan["unseen"]["examples"])
    assert plan["problems"] == ["unseen_categories"]
    assert data["failed_columns"] == list(report.failed_columns)


def test_an_empty_window_has_nothing_wrong(signature: Signature,
                                           profile: ReferenceProfile) -> None:
    report = check_quality(draw(10, 0).iloc[:0], signature, reference=profile)
    assert report.ok and report.rows == 0
    assert all(c.missing.rate == 0.0 and c.missing.p_value == 1.0 for c in report.columns)


@pytest.mark.parametrize(("call", "message"), [
    (lambda s, p: check_quality([[1, 2]], s, reference=p), "pandas DataFrame"),
    (lambda s, p: check_quality(np.zeros((3, 2)), s), "pandas DataFrame"),
    (lambda s, p: check_quality(draw(5, 0), {"age": "decimal"}), "dtype 'decimal'"),
    (lambda s, p: check_quality(draw(5, 0), 42), "Signature"),
    (lambda s, p: check_quality(draw(5, 0), ["age"]), "column specs"),
    (lambda s, p: check_quality(draw(5, 0), {"plan": "float"}, reference=p.features),
     "categorical"),
    (lambda s, p: check_quality(draw(5, 0), {"age": "string"}, reference=p.features),
     "numeric"),
    (lambda s, p: check_quality(draw(5, 0), s, reference="profile"), "ReferenceProfile"),
    (lambda s, p: check_quality(draw(5, 0), s, reference={"age": np.zeros((2, 2))}),
     "one-dimensional"),
    (lambda s, p: check_quality(draw(5, 0), s, alpha=0.0), "alpha"),
    (lambda s, p: check_quality(draw(5, 0), s, min_missing_increase=2), "min_"),
    (lambda s, p: check_quality(draw(5, 0), s, range_margin=-1), "range_margin"),
    (lambda s, p: check_quality(draw(5, 0), s, max_examples=-1), "max_examples"),
    (lambda s, p: check_quality(draw(5, 0), s, ignore_columns="ts"), "ignore_columns"),
])
def test_bad_input_is_refused_with_the_fix(signature: Signature, profile: ReferenceProfile,
                                           call: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        call(signature, profile)


EVIDENTLY = """
import json
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import MissingValueCount, OutListValueCount, OutRangeValueCount

window = pd.read_parquet(INPUT / "window.parquet")
bounds = json.loads((INPUT / "bounds.json").read_text())
numeric = [c for c in bounds if "left" in bounds[c]]
categorical = [c for c in bounds if "values" in bounds[c]]
metrics = [MissingValueCount(column=c) for c in bounds]
metrics += [OutRangeValueCount(column=c, **bounds[c]) for c in numeric]
metrics += [OutListValueCount(column=c, values=bounds[c]["values"]) for c in categorical]
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
snapshot = Report(metrics).run(Dataset.from_pandas(window, data_definition=definition), None)
found = {}
for metric in snapshot.dict()["metrics"]:
    kind = metric["config"]["type"].rsplit(":", 1)[1]
    found.setdefault(kind, {})[metric["config"]["column"]] = metric["value"]["count"]
print(json.dumps(found))
"""


@pytest.mark.slow  # one Evidently run: ~10 s, most of it importing Evidently
def test_counts_equal_evidentlys(profile: ReferenceProfile, tmp_path: Any) -> None:
    rng = np.random.default_rng(12)
    window = draw(3_000, 12)[["age", "income", "rating", "plan"]]
    window["income"] = window["income"] * rng.choice([1.0, 3.0], 3_000, p=[0.97, 0.03])
    window.loc[rng.random(3_000) < 0.02, "plan"] = "new"
    window.loc[rng.random(3_000) < 0.1, "age"] = np.nan
    features = profile.features
    bounds = {c: {"left": features[c].min, "right": features[c].max}  # type: ignore[union-attr]
              for c in ("age", "income", "rating")}
    bounds["plan"] = {"values": list(features["plan"].categories)}  # type: ignore[union-attr]
    (tmp_path / "bounds.json").write_text(json.dumps(bounds))
    found = run_peer(EVIDENTLY, tmp_path, window=window)
    report = check_quality(window, {"age": "float", "income": "float", "rating": "float",
                                    "plan": "string"}, reference=features)
    assert found["MissingValueCount"] == {c.name: c.missing.count for c in report.columns}
    out_of_range = {c.name: c.out_of_range.count for c in report.columns if c.out_of_range}
    assert found["OutRangeValueCount"] == out_of_range
    assert found["OutListValueCount"] == {"plan": report["plan"].unseen.count}  # type: ignore
    assert out_of_range["income"] > 0 and report["plan"].unseen.count > 0  # type: ignore
    assert report["age"].missing.count > 0
