"""Model cards rendered from real registered versions, in Markdown and HTML."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import keepwell as kw
from keepwell.errors import ValidationError
from keepwell.registry.card import escape_markdown, render_card
from keepwell.registry.profile import NumericProfile, ReferenceProfile
from keepwell.registry.signature import Signature

SCRIPT, TEMPLATE, PIPE = "<script>alert(1)</script>", "{{7*7}}", "a|b"
CATEGORY_COL = "`tick` & <b>"
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source", "area", "base"}


class PageChecker(HTMLParser):
    """Checks that tags nest properly and records what a self-contained page must not have."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.cells: list[str] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "td":
            self._text = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack, f"</{tag}> closes nothing"
        assert self.stack.pop() == tag, f"</{tag}> closes the wrong element"
        if tag == "td" and self._text is not None:
            self.cells.append("".join(self._text).strip())
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def check_page(html: str) -> PageChecker:
    checker = PageChecker()
    checker.feed(html)
    checker.close()
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert checker.stack == [], f"unclosed elements: {checker.stack}"
    assert checker.tags.count("html") == 1
    assert checker.tags.count("style") == 1
    # Self-contained and inert: no scripts, no external resources, no event handlers.
    assert not {"script", "link", "img", "iframe", "object"} & set(checker.tags)
    assert not [n for n, _ in checker.attrs if n in ("src", "href") or n.startswith("on")]
    return checker


def table_widths(markdown: str) -> list[set[int]]:
    """For each Markdown table, the set of cell counts of its rows (escaped pipes skipped)."""
    tables: list[set[int]] = []
    previous_was_row = False
    for line in markdown.splitlines():
        is_row = line.startswith("|")
        if is_row:
            cells, escaped = 0, False
            for ch in line:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == "|":
                    cells += 1
            if not previous_was_row:
                tables.append(set())
            tables[-1].add(cells - 1)
        previous_was_row = is_row
    return tables


def numeric_columns(profile: ReferenceProfile) -> int:
    columns = [*profile.features.values(), *profile.outputs.values()]
    return sum(isinstance(p, NumericProfile) for p in columns)


@pytest.fixture
def churn(workspace: kw.Workspace, classification_data: tuple[pd.DataFrame, pd.Series],
          fitted_pipeline: object) -> kw.Workspace:
    X, y = classification_data
    workspace.registry.register("churn", fitted_pipeline, X, y, holdout=(X, y),
                                alias="champion", reason="first churn model",
                                description="Predicts who cancels next month.")
    return workspace


def test_markdown_card_holds_the_registered_facts(churn: kw.Workspace) -> None:
    version = churn.registry.get_version("churn@1")
    card = churn.registry.card("churn@1")

    assert card.startswith("# Model card: churn@1\n")
    for row in ("| Version | 1 |", "| Status | ready |", "| Task | binary |",
                "| Target | label |", "| Classes | 0, 1 |", "| Aliases | champion |",
                "| Description | Predicts who cancels next month. |",
                "| Reason | first churn model |", "| Flavor | skops |"):
        assert row in card
    assert f"`{version.data_fingerprint}`" in card
    assert f"sha256:{version.artifact_sha256}" in card
    assert f"sha256:{version.profile_sha256}" in card
    assert f"scikit-learn {version.libraries['scikit-learn']}" in card
    assert "| n | 400 |" in card
    for name in ("accuracy", "roc_auc", "log_loss"):
        assert f"| {name} | {version.metrics[name]:.4f} |" in card
    for feature in ("age", "income", "region"):
        assert f"| {feature} |" in card
    assert re.search(r"\| region \| category \| 0\.0% \| \w+ \d+\.\d%, ", card)
    assert "| score | float |" in card
    assert "| prediction | " in card
    history = card.split("## Alias history")[1]
    assert re.search(r"\| champion \| set \| — \| 1 \| tester \| first churn model \|", history)
    assert all(len(widths) == 1 for widths in table_widths(card))


def test_html_card_is_one_self_contained_page(churn: kw.Workspace) -> None:
    version = churn.registry.get_version("churn@1")
    html = churn.registry.card("churn@1", format="html")

    checker = check_page(html)
    # One histogram per numeric feature (age, income) and numeric output (at least the score).
    assert checker.tags.count("svg") == numeric_columns(churn.registry.load_profile("churn@1"))
    assert checker.tags.count("svg") >= 3
    assert checker.tags.count("rect") >= 4
    assert version.data_fingerprint in html
    assert f"{version.metrics['roc_auc']:.4f}" in checker.cells
    assert {"age", "income", "region", "score", "champion"} <= set(checker.cells)
    assert 'class="badge alias">champion<' in html
    for region in ("north", "south", "east"):  # one bar per category, with its share
        assert re.search(rf'<div class="cat" title="{region}: \d+\.\d%">', html)


def test_user_text_is_escaped_and_never_evaluated(workspace: kw.Workspace) -> None:
    rng = np.random.default_rng(1)
    n = 120
    X = pd.DataFrame({
        SCRIPT: rng.normal(size=n), TEMPLATE: rng.normal(size=n), PIPE: rng.normal(size=n),
        CATEGORY_COL: rng.choice(["x|y", "line\nbreak", "<img src=x onerror=alert(1)>",
                                  "{{ 6*7 }}"], n),
    })
    y = pd.Series(np.where(X[SCRIPT] + rng.normal(size=n) > 0, "<i>yes</i>", "no|maybe"),
                  name="out`come`")
    pre = ColumnTransformer([("num", StandardScaler(), [SCRIPT, TEMPLATE, PIPE]),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), [CATEGORY_COL])])
    model = make_pipeline(pre, LogisticRegression()).fit(X, y)
    workspace.registry.register(
        "injection", model, X, y, holdout=(X, y), alias="champion",
        reason="<img src=x onerror=alert(2)>", tags={"team|x": "<b>ml</b>"},
        description="line one\nline | two {{ 8*8 }} <script>x()</script>",
        sensitive_features=[PIPE])

    html = workspace.registry.card("injection@1", format="html")
    checker = check_page(html)
    assert "<script" not in html
    assert "<img" not in html
    assert "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SCRIPT in checker.cells
    assert TEMPLATE in checker.cells
    assert PIPE in checker.cells
    assert "{{ 8*8 }}" in html
    assert "{{ 6*7 }}" in html
    assert not {"49", "64", "42"} & set(checker.cells)
    # Three numeric features, the score, and the prediction if it is profiled as a number.
    assert checker.tags.count("svg") == numeric_columns(
        workspace.registry.load_profile("injection@1"))
    assert checker.tags.count("svg") >= 4

    card = workspace.registry.card("injection@1", format="markdown")
    assert "<" not in card
    assert ">" not in card
    assert f"| {escape_markdown(SCRIPT)} | float |" in card
    assert "| {{7*7}} | float |" in card
    assert "| a\\|b | float |" in card
    assert "{{ 8*8 }}" in card
    assert "{{ 6*7 }}" in card
    assert "| Description | line one line \\| two {{ 8*8 }} &lt;script&gt;x()&lt;/script&gt; |" \
        in card
    assert "line break" in card
    assert "x\\|y" in card
    assert "Declared: a\\|b." in card
    assert all(len(widths) == 1 for widths in table_widths(card)), table_widths(card)


def test_alias_history_is_newest_first_and_limited(
        churn: kw.Workspace, classification_data: tuple[pd.DataFrame, pd.Series],
        fitted_pipeline: object) -> None:
    X, y = classification_data
    registry = churn.registry
    registry.register("churn", fitted_pipeline, X, y, parent=1, reason="retrained")
    registry.set_alias("churn", "champion", 2, reason="promote v2")
    registry.rollback("churn", reason="v2 | worse")

    card = registry.card("churn@2")
    actions = re.findall(r"^\| [\d-]+ [\d:]+ UTC \| champion \| (\w+) \| (\S+) \| (\S+) \|",
                         card, flags=re.MULTILINE)
    assert actions == [("rollback", "2", "1"), ("set", "1", "2"), ("set", "—", "1")]
    assert "v2 \\| worse" in card
    assert "| Parent version | churn@1 |" in card

    for i in range(20):
        registry.set_alias("churn", "challenger", 1 + i % 2, reason=f"move {i}")
    html = registry.card("churn@2", format="html")
    assert "The 20 most recent of 23 alias moves" in html
    history = html.split("<h2>Alias history</h2>")[1]
    rows = re.findall(r"<tr(?: class=\"this\")?><td class=\"mono\">", history)
    assert len(rows) == 20
    assert history.index("move 19") < history.index("move 18") < history.index("move 0<")
    assert "promote v2" not in history  # the three oldest moves are left out


def test_edge_profiles_render(churn: kw.Workspace) -> None:
    n = 50
    frame = pd.DataFrame({
        "constant": np.full(n, 3.0), "empty": np.full(n, np.nan),
        "normal": np.linspace(0.0, 1.0, n),
        "city": [f"city {i % 30:02d}" for i in range(n)],
    })
    profile = ReferenceProfile.from_frame(frame)
    version = dataclasses.replace(churn.registry.get_version("churn@1"), metrics={}, params={},
                                  signature=Signature.from_frame(frame, task="binary"))
    model = churn.registry.get_model("churn")

    html = render_card(model, version, profile, [], format="html")
    checker = check_page(html)
    assert checker.tags.count("svg") == 3
    assert "no values" in html  # the all-missing column
    assert "100.0%" in checker.cells  # its missing rate
    assert "No holdout metrics" in html
    assert "No alias of churn has been set yet." in html

    card = render_card(model, version, profile, [])
    assert "| constant | float | 0.0% | 3 | 3 | 3 | 0 | █ |" in card
    assert "| empty | float | 100.0% | — | — | — | — | — |" in card
    assert "… (+18 more)" in card  # 30 cities in the signature, 12 shown
    assert re.search(r"\| city \| string \| 0\.0% \| .*, other \d+\.\d% \|", card)
    assert all(len(widths) == 1 for widths in table_widths(card))


def test_unknown_format_is_refused(churn: kw.Workspace) -> None:
    with pytest.raises(ValidationError, match="markdown, html"):
        churn.registry.card("churn@1", format="pdf")


def test_escape_markdown_keeps_text_in_its_cell() -> None:
    assert escape_markdown("a|b\nc`d`<e>&[f]\\") == "a\\|b c\\`d\\`&lt;e&gt;&amp;\\[f\\]\\\\"
