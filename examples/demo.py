"""keepwell demo: train a model on real census data, register it, make it champion.

Data: ACS employment, Massachusetts (data/acs-employment-ma/, see its README). The 2015 survey
year is the training data; later issues grow this demo into the whole maintenance story over
2016-2018.

Run with `make demo`; everything is written under .demo/ (recreated on each run).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

import keepwell as kw

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "acs-employment-ma"
OUT = ROOT / ".demo"
FEATURES = ["AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC",
            "NATIVITY", "DEAR", "DEYE", "DREM", "SEX", "RAC1P"]
TARGET = "employed"

console = Console()


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(mode=0o700)

    with console.status("Loading ACS employment 2015 (Massachusetts)…"):
        frame = pd.read_parquet(DATA / "employment_MA_reference.pq")
        X, y = frame[FEATURES], frame[TARGET]
        X_train, X_hold, y_train, y_hold = train_test_split(
            X, y, test_size=0.2, stratify=y, random_state=0)
    console.print(f"[bold]Data[/]: {len(frame):,} people, {len(FEATURES)} features; "
                  f"train {len(X_train):,}, holdout {len(X_hold):,}")

    with console.status("Training a gradient-boosted classifier…"):
        started = time.perf_counter()
        categorical = FEATURES[1:]
        encode = ColumnTransformer(
            [("codes", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                      encoded_missing_value=-1), categorical)],
            remainder="passthrough")
        boost = HistGradientBoostingClassifier(
            categorical_features=list(range(len(categorical))), max_iter=100, random_state=0)
        model = make_pipeline(encode, boost).fit(X_train, y_train)
    console.print(f"[bold]Trained[/] in {time.perf_counter() - started:.1f} s")

    with kw.connect(OUT / "workspace", actor="demo") as ws, \
            console.status("Registering: signature, reference profile, safe artifact…"):
        started = time.perf_counter()
        version = ws.register(
            "employment", model, X_train, y_train,
            holdout=(X_hold, y_hold),
            sensitive_features=["SEX", "RAC1P"],
            description="Predicts whether a Massachusetts resident is employed (ACS PUMS).",
            reason="initial model, trained on survey year 2015",
            tags={"data": "acs-employment-ma-2015"},
            alias="champion",
        )
        elapsed = time.perf_counter() - started
        profile = ws.registry.load_profile("employment@champion")
        card_md = ws.registry.card("employment@champion")
        card_html = ws.registry.card("employment@champion", format="html")
        verified = ws.audit.verify()
        events = ws.audit.events()

    console.print(f"[bold]Registered[/] {version.ref} in {elapsed:.1f} s "
                  f"(flavor {version.flavor}, sha256 {version.artifact_sha256[:12]}…), "
                  f"aliases: {', '.join(version.aliases)}")

    metrics = Table(title="Holdout metrics (2015, 20% stratified)")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for name, value in version.metrics.items():
        metrics.add_row(name, f"{value:,.0f}" if name == "n" else f"{value:.4f}")
    console.print(metrics)

    console.print(f"[bold]Reference profile[/]: {len(profile.features)} features, "
                  f"{len(profile.outputs)} outputs, {profile.n_rows:,} rows, "
                  f"{len(profile.to_bytes()) / 1024:.1f} KiB")
    console.print(f"[bold]Audit log[/]: {len(events)} events, chain "
                  + ("[green]intact[/]" if verified.ok else f"[red]BROKEN at {verified}[/]"))

    (OUT / "employment-card.md").write_text(card_md, encoding="utf-8")
    (OUT / "employment-card.html").write_text(card_html, encoding="utf-8")
    console.rule("Model card")
    console.print(Markdown(card_md))
    console.rule()
    console.print(f"Model card written to {OUT.relative_to(ROOT)}/employment-card.html "
                  "(open it in a browser) and .md")


if __name__ == "__main__":
    main()
