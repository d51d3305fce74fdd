"""The model card of a version, as Markdown or as one self-contained HTML page.

Everything the registry knows about a version (identity, lineage, holdout metrics, parameters,
signature, reference profile, alias history) is turned into plain display values here, and the
templates in ``templates/`` lay them out. User text (descriptions, reasons, feature names,
category values) only ever reaches a template as data, never as template source: HTML is
autoescaped, and every value printed into the Markdown card passes :func:`escape_markdown`.

Examples
--------
>>> escape_markdown("a|b <i>")
'a\\\\|b &lt;i&gt;'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from itertools import pairwise
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from keepwell.errors import ValidationError
from keepwell.registry.profile import ColumnProfile, NumericProfile, ReferenceProfile
from keepwell.registry.records import AliasMove, ModelInfo, ModelVersion
from keepwell.registry.signature import ColumnSpec

__all__ = ["FORMATS", "CardFormat", "escape_markdown", "render_card"]

CardFormat = Literal["markdown", "html"]
FORMATS: tuple[CardFormat, ...] = ("markdown", "html")
_TEMPLATES: dict[str, str] = {"markdown": "card.md.j2", "html": "card.html.j2"}
HISTORY_ROWS = 20
TOP_CATEGORIES = 8
SIGNATURE_CATEGORIES = 12
_MD_SPECIAL = str.maketrans({"\\": "\\\\", "|": "\\|", "`": "\\`", "[": "\\[", "]": "\\]",
                             "&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": " ", "\n": " "})
_SPARKS = "▁▂▃▄▅▆▇█"
_SVG_W, _SVG_H = 180.0, 40.0


def escape_markdown(value: object) -> str:
    """``value`` as text that stays on one line and inside its Markdown table cell."""
    return str(value).translate(_MD_SPECIAL).replace("\u2028", " ").replace("\u2029", " ")


@cache
def _environment(fmt: CardFormat) -> Environment:
    # HTML is autoescaped; Markdown is not HTML, so there every printed value is escaped
    # for Markdown on its way out instead (``finalize``).
    markdown: dict[str, Any] = {"finalize": escape_markdown, "trim_blocks": True,
                                "lstrip_blocks": True, "keep_trailing_newline": True}
    return Environment(loader=PackageLoader("keepwell.registry", "templates"),
                       autoescape=select_autoescape(("html.j2",), ("md.j2",), default=True),
                       undefined=StrictUndefined, **({} if fmt == "html" else markdown))


def _num(x: float | None) -> str:
    """About four significant digits, without an exponent for everyday magnitudes."""
    if x is None:
        return "—"
    if not math.isfinite(x):
        return str(x)
    if x == 0 or 1e-3 <= abs(x) < 1e7:
        decimals = 0 if x == 0 else max(0, 3 - math.floor(math.log10(abs(x))))
        text = f"{x:,.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{x:.3e}"


def _when(at: datetime) -> str:
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n:,} bytes"
    scaled, unit = next((n / 1024**i, u) for i, u in ((3, "GiB"), (2, "MiB"), (1, "KiB"))
                        if n >= 1024**i)
    return f"{scaled:.1f} {unit} ({n:,} bytes)"


def _clip(values: Sequence[Any], limit: int) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", … (+{len(values) - limit} more)" if len(values) > limit else "")


def _signature_row(spec: ColumnSpec) -> dict[str, str]:
    if spec.categories is not None:
        domain = _clip(spec.categories, SIGNATURE_CATEGORIES)
    elif spec.min is not None:
        domain = f"{_num(spec.min)} … {_num(spec.max)}"
    else:
        domain = "—"
    return {"name": spec.name, "dtype": spec.dtype, "nullable": "yes" if spec.nullable else "no",
            "domain": domain}


def _histogram(p: NumericProfile) -> dict[str, Any]:
    """SVG bars of the density (share / width) of each quantile bin on a linear x axis, and a
    text sparkline of the same density re-binned, uniformly within bins, to 16 equal cells."""
    edges, shares = p.bin_edges, p.bin_shares
    if len(edges) < 2:  # no values, or a constant column: one full bar or none
        return {"spark": "█" if shares else "", "bars": [
            {"x": 0, "w": _SVG_W, "y": 0, "h": _SVG_H, "title": f"{_num(p.min)}: 100%"}
        ] if shares else []}
    lo, span = edges[0], edges[-1] - edges[0]
    bins = [(a, b, s) for (a, b), s in zip(pairwise(edges), shares, strict=True)]
    top = max(s / (b - a) for a, b, s in bins)
    bars = [{"x": round((a - lo) / span * _SVG_W, 2), "w": round(max((b - a) / span * _SVG_W,
             0.5), 2), "h": round(h, 2), "y": round(_SVG_H - h, 2),
             "title": f"{_num(a)} – {_num(b)}: {s:.1%} of rows"}
            for a, b, s in bins for h in [max(s / (b - a) / top * _SVG_H, 1.0 if s else 0.0)]]
    cells = [lo + span * k / 16 for k in range(17)]
    mass = [sum(s * max(0.0, min(b, c1) - max(a, c0)) / (b - a) for a, b, s in bins)
            for c0, c1 in pairwise(cells)]
    spark = "".join(_SPARKS[min(7, int(m / (max(mass) or 1.0) * 8))] for m in mass)
    return {"spark": spark, "bars": bars}


def _column(p: ColumnProfile) -> dict[str, Any]:
    base: dict[str, Any] = {"name": p.name, "dtype": p.dtype, "kind": p.kind,
                            "count": f"{p.count:,}", "missing": f"{p.missing_rate:.1%}"}
    if isinstance(p, NumericProfile):
        return {**base, "min": _num(p.min), "max": _num(p.max), "mean": _num(p.mean),
                "std": _num(p.std), "histogram": _histogram(p)}
    total = p.count or 1
    top = [{"label": str(c), "share": k / total, "pct": f"{k / total:.1%}"}
           for c, k in zip(p.categories[:TOP_CATEGORIES], p.counts, strict=False)]
    rest = sum(p.counts[TOP_CATEGORIES:]) + p.other_count
    return {**base, "top": top, "other": f"{rest / total:.1%}" if rest else "",
            "other_share": rest / total,
            "summary": ", ".join(f"{c['label']} {c['pct']}" for c in top)
            + (f", other {rest / total:.1%}" if rest else "")}


def _param(value: Any) -> str:
    """A stored parameter (JSON) as one line of text, cut at 300 characters."""
    if isinstance(value, list):
        text = "[" + ", ".join(map(_param, value)) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {_param(v)}" for k, v in value.items()) + "}"
    else:
        text = " ".join(str(value).split())
    return text if len(text) <= 300 else text[:299] + "…"


def _metric(name: str, value: float) -> str:
    if name == "n" and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def _history(history: Sequence[AliasMove], version: int) -> list[dict[str, Any]]:
    newest = list(reversed(history))  # the registry keeps it oldest first, in commit order
    return [{"at": _when(m.at), "alias": m.alias, "action": m.action,
             "from": "—" if m.from_version is None else str(m.from_version),
             "to": "—" if m.to_version is None else str(m.to_version), "actor": m.actor,
             "reason": m.reason, "this": version in (m.from_version, m.to_version)}
            for m in newest[:HISTORY_ROWS]]


def _context(model: ModelInfo, version: ModelVersion, profile: ReferenceProfile,
             history: Sequence[AliasMove]) -> dict[str, Any]:
    """The display values the card templates lay out (all strings, numbers and lists)."""
    sig = version.signature
    return {
        "ref": version.ref, "model": model.name, "version": version.version,
        "status": version.status, "task": sig.task, "target": sig.target or "—",
        "classes": ", ".join(map(str, sig.classes)) if sig.classes is not None else "—",
        "description": model.description, "created_by": version.created_by,
        "created_at": _when(version.created_at), "reason": version.reason,
        "aliases": sorted(version.aliases),
        "lineage": {
            "parent": "—" if version.parent_version is None else f"{model.name}@"
                      f"{version.parent_version}",
            "fingerprint": version.data_fingerprint, "flavor": version.flavor,
            "artifact_sha256": version.artifact_sha256, "profile_sha256": version.profile_sha256,
            "artifact_size": _size(version.artifact_size),
            "libraries": [{"name": k, "version": v} for k, v in sorted(version.libraries.items())],
        },
        "metrics": [{"name": k, "value": _metric(k, v)} for k, v in version.metrics.items()],
        "params": [{"name": k, "value": _param(v)} for k, v in sorted(version.params.items())],
        "tags": [{"name": k, "value": v} for k, v in sorted(version.tags.items())],
        "signature": [_signature_row(c) for c in sig.inputs],
        "n_rows": f"{profile.n_rows:,}", "bins": profile.bins,
        "features": [_column(p) for p in profile.features.values()],
        "outputs": [_column(p) for p in profile.outputs.values()],
        "sensitive": list(model.sensitive_features),
        "history": _history(history, version.version), "history_total": len(history),
        "history_limit": HISTORY_ROWS, "svg_width": _SVG_W, "svg_height": _SVG_H,
    }


def render_card(model: ModelInfo, version: ModelVersion, profile: ReferenceProfile,
                history: Sequence[AliasMove], *, format: str = "markdown") -> str:
    """Render the model card of ``version`` as ``"markdown"`` or as a self-contained ``"html"``
    page.

    Raises
    ------
    ValidationError
        ``format`` is not one of :data:`FORMATS`.
    """
    if format not in _TEMPLATES:
        raise ValidationError(f"card format {format!r:.40} is not supported; use one of "
                              f"{', '.join(FORMATS)}.")
    fmt: CardFormat = "html" if format == "html" else "markdown"
    template = _environment(fmt).get_template(_TEMPLATES[fmt])
    return template.render(_context(model, version, profile, history))
