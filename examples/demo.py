"""keepwell demo: the maintenance story on real census data, step by step.

Data: ACS employment, Massachusetts (data/acs-employment-ma/, see its README). The 2015 survey
year trains the model; 2016-2018 play production: every person is scored and logged, and the
true labels arrive later as feedback. The story so far: train → register (signature,
reference profile, safe artifact, lineage, model card) → champion → log every prediction →
join late labels → monitor (drift, data quality, performance with and without labels,
fairness) → alerts. The maintenance loop comes next.

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
from keepwell.config import MonitorSettings, Settings
from keepwell.registry.evaluation import model_outputs

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

    production(OUT / "workspace")
    monitoring(OUT / "workspace")

    (OUT / "employment-card.md").write_text(card_md, encoding="utf-8")
    (OUT / "employment-card.html").write_text(card_html, encoding="utf-8")
    console.rule("Model card")
    console.print(Markdown(card_md))
    console.rule()
    console.print(f"Model card written to {OUT.relative_to(ROOT)}/employment-card.html "
                  "(open it in a browser) and .md")


def production(workspace: Path) -> None:
    """2016-2018 as production: score and log everyone, then feed back the true labels."""
    analysis = pd.read_parquet(DATA / "employment_MA_analysis.pq")
    labels = pd.read_parquet(DATA / "employment_MA_analysis_target.pq")
    with kw.connect(workspace, actor="demo") as ws:
        champion = ws.registry.get_version("employment@champion")
        model = ws.registry.load_model(champion.ref)
        started = time.perf_counter()
        logged = 0
        with console.status("Scoring and logging 2016-2018 (durable, fsynced)…"):
            for year, people in analysis.groupby("year"):
                # People arrive in random order (the survey file is sorted by household).
                people = people.sample(frac=1.0, random_state=int(str(year)))
                X = people[FEATURES]
                outputs = pd.DataFrame({"prediction": model.predict(X),
                                        "score": model.predict_proba(X)[:, 1]})
                # Spread each survey year's people over that year, as production traffic.
                ts = pd.Timestamp(f"{year}-01-01", tz="UTC") + pd.to_timedelta(
                    range(len(people)), unit="s") * (365 * 86400 // len(people))
                ids = ws.logbook.append_frame("employment", champion.version, X, outputs,
                                              ts=ts, subjects=people["id"].astype(str))
                truth = labels.set_index("id").loc[people["id"], "employed"]
                ws.logbook.add_feedback("employment", truth.tolist(), request_ids=ids)
                logged += len(people)
            sealed = ws.logbook.seal()
        elapsed = time.perf_counter() - started
        console.print(f"[bold]Logbook[/]: {logged:,} predictions and {logged:,} late labels "
                      f"logged in {elapsed:.1f} s, sealed into {sealed.files} Parquet files")
        yearly = ws.logbook.query("""
            SELECT year(p.ts) AS year, count(*) AS people,
                   avg(CASE WHEN p.prediction = l.label THEN 1.0 ELSE 0.0 END) AS accuracy,
                   avg(p.score) AS mean_score, avg(l.label) AS employment_rate
            FROM predictions p JOIN labels l USING (request_id)
            GROUP BY 1 ORDER BY 1""")
    table = Table(title="The champion in production (from the logbook, labels joined)")
    for column in ("year", "people", "accuracy", "mean score", "employment rate"):
        table.add_column(column, justify="right")
    for row in yearly.to_pylist():
        table.add_row(str(row["year"]), f"{row['people']:,}", f"{row['accuracy']:.4f}",
                      f"{row['mean_score']:.4f}", f"{row['employment_rate']:.4f}")
    console.print(table)


# Every age moved up by 6 years: a quarter of the age's standard deviation (23.6 years), the
# smallest shift the default drift verdict is documented to call material.
PLANTED_YEARS = 6


def monitoring(workspace: Path) -> None:
    """The default monitor over 2016-2018 in 30-day windows, then a planted shift."""
    settings = Settings.for_workspace(workspace, actor="demo", monitor=MonitorSettings(
        window={"every": "30d"}))
    with kw.Workspace(settings) as ws, console.status("Monitoring 2016-2018…") as status:
        started = time.perf_counter()
        reports = ws.monitor.run(
            "employment", since=pd.Timestamp("2016-01-01", tz="UTC").to_pydatetime(),
            until=pd.Timestamp("2019-01-01", tz="UTC").to_pydatetime(),
            progress=lambda done, total: status.update(f"Monitoring: window {done}/{total}"))
        elapsed = time.perf_counter() - started
        report = reports[0]
        table = Table(title=f"The default monitor: {report.windows} windows of 30 days, "
                            f"{len(report.results)} check results in {elapsed:.1f} s")
        for column in ("check", "ok", "alert", "skipped", "latest value", "latest message"):
            table.add_column(column, justify="left" if "message" in column else "right")
        for check in dict.fromkeys(r.check for r in report.results):
            rows = [r for r in report.results if r.check == check]
            judged = [r for r in rows if r.status in ("ok", "alert")]
            last = judged[-1] if judged else rows[-1]
            value = last.outcome.value
            table.add_row(check, *(str(sum(r.status == s for r in rows))
                                   for s in ("ok", "alert", "skipped")),
                          "-" if value is None else f"{value:.4f}", last.outcome.message)
        console.print(table)
        for alert in report.alerts:
            console.print(f"[yellow]alert[/] {alert.check}: {alert.message}")
        if not any(a.check in ("data_drift", "performance") for a in report.alerts):
            console.print("[green]No drift alarm, and accuracy holds[/] over the three years.")
        if any(a.check == "data_quality" for a in report.alerts):
            console.print("(A true finding: the survey top-coded ages at 94 up to 2016 and at "
                          "95 from 2017, a value the model never saw in training.)")

        analysis = pd.read_parquet(DATA / "employment_MA_analysis.pq")
        people = analysis[analysis["year"] == 2018].sample(6000, random_state=1)
        people = people.assign(AGEP=people["AGEP"] + PLANTED_YEARS)
        model = ws.registry.load_model("employment@champion")
        frame = pd.concat([people[FEATURES].reset_index(drop=True),
                           model_outputs(model, people[FEATURES], "binary")
                           .reset_index(drop=True)], axis=1)
        shifted = {r.check: r for r in ws.monitor.check_frame("employment", frame)}
    drift = shifted["data_drift"]
    console.print(f"[bold]Planted shift[/] (every age +{PLANTED_YEARS} years, 6,000 people of "
                  f"2018): data_drift says [red]{drift.status}[/] — {drift.outcome.message}")
    console.print("Results are stored as time series: `keepwell monitor history employment`; "
                  "alerts: `keepwell monitor alerts`.")


if __name__ == "__main__":
    main()
