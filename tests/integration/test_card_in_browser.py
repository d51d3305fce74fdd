"""The HTML model card in a real browser (headless Chromium driven by Playwright).

The card must be one self-contained page: it loads nothing from the network, draws its
histograms, and text from the training data never runs as script.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import sync_playwright
from sklearn.linear_model import LogisticRegression

import keepwell as kw

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

HOSTILE = "<script>window.__pwned = 1</script>"
HOSTILE_IMG = "<img src=x onerror='window.__pwned = 2'>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; `make test` installs it "
                    "(apt-get install chromium).")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def render(browser: Any, html_path: Path) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(html_path.as_uri())
    page.wait_for_load_state("load")
    return page, errors, requests


def test_card_renders_its_histograms_and_loads_nothing(
        browser: Any, tmp_path: Path, fitted_pipeline: Any,
        classification_data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = classification_data
    with kw.connect(tmp_path / "ws") as ws:
        ws.register("churn", fitted_pipeline, X, y, holdout=(X, y), alias="champion")
        html = ws.registry.card("churn", format="html")
        profile = ws.registry.load_profile("churn")
    path = tmp_path / "card.html"
    path.write_text(html, encoding="utf-8")

    page, errors, requests = render(browser, path)
    assert page.title() == "Model card: churn@1"
    assert errors == []
    assert requests == [path.as_uri()]  # self-contained: no CDN, fonts or images
    numeric = [p for p in [*profile.features.values(), *profile.outputs.values()]
               if p.kind == "numeric"]
    charts = page.locator("svg")
    assert charts.count() == len(numeric)
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 50 and box["height"] > 10
    heading = page.get_by_role("heading", name="Holdout metrics")
    assert heading.is_visible()
    page.screenshot(path=str(tmp_path / "card.png"), full_page=True)
    assert (tmp_path / "card.png").stat().st_size > 10_000
    page.close()


def test_hostile_names_never_run_in_the_browser(browser: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame({HOSTILE: rng.normal(size=300), "{{7*7}}": rng.normal(size=300)})
    y = pd.Series((X[HOSTILE] > 0).astype(int), name="label")
    model = LogisticRegression().fit(X, y)
    with kw.connect(tmp_path / "ws") as ws:
        ws.register("hostile", model, X, y, reason=HOSTILE_IMG, description=HOSTILE)
        path = tmp_path / "card.html"
        path.write_text(ws.registry.card("hostile@1", format="html"), encoding="utf-8")

    page, errors, _ = render(browser, path)
    assert page.evaluate("window.__pwned") is None
    assert errors == []
    text = page.locator("body").inner_text()
    assert HOSTILE in text and HOSTILE_IMG in text and "{{7*7}}" in text
    assert page.locator("script").count() == 0
    page.close()
