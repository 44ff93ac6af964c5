"""Rows of figures, the printed table and bench/results.json."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One figure: its value, the baseline measured in the same run (if any), and the issue's target (if any)."""

    case: str
    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    met: bool | None = None  # None: no target, or not measurable this run
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline


@dataclass
class CaseResult:
    """What one case measured: its rows and the raw details behind them (kept in results.json)."""

    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""

    def add(self, figure: str, value: float | None, unit: str, **kw: Any) -> Row:
        row = Row(case=self.title, figure=figure, value=value, unit=unit, **kw)
        self.rows.append(row)
        return row


def fmt(value: float | None, unit: str) -> str:
    """A figure with its unit, with as many digits as its size deserves."""
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    if unit in ("", "count"):
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}"


def table(cases: list[CaseResult]) -> list[list[str]]:
    """The table's cells, header first: case, figure, value, baseline, ratio, target, met?"""
    cells = [["case", "figure", "value", "baseline", "ratio", "target", "met?"]]
    for case in cases:
        if case.error:
            cells.append([case.title, "FAILED", case.error.splitlines()[0][:80], "", "", "", "no"])
        for row in case.rows:
            baseline = fmt(row.baseline, row.unit) if row.baseline is not None else ""
            if row.baseline_label and baseline:
                baseline = f"{baseline} ({row.baseline_label})"
            ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
            met = {True: "yes", False: "NO", None: ""}[row.met]
            cells.append([row.case, row.figure, fmt(row.value, row.unit), baseline, ratio, row.target, met])
    return cells


def render_text(cells: list[list[str]]) -> str:
    """The table aligned in columns for a terminal."""
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(cells: list[list[str]]) -> str:
    """The table as GitHub Markdown, for docs/benchmarks.md."""
    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in r) + " |"

    return "\n".join([line(cells[0]), "|" + "---|" * len(cells[0])] + [line(r) for r in cells[1:]])


def write_json(path: Path, meta: dict[str, Any], cases: list[CaseResult]) -> None:
    """results.json: the run's metadata and, per case, its rows (with ratio and met) and details."""
    out: dict[str, Any] = {"meta": meta, "cases": {}}
    for case in cases:
        rows = [{**asdict(r), "ratio": r.ratio} for r in case.rows]
        out["cases"][case.key] = {"title": case.title, "seconds": round(case.seconds, 2), "error": case.error,
                                  "rows": rows, "details": case.details}
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")


def read_json(path: Path) -> tuple[dict[str, Any], list[CaseResult]]:
    """A results.json back as (meta, cases), to print its table again."""
    data = json.loads(path.read_text())
    fields = {f for f in Row.__dataclass_fields__}
    cases = []
    for key, raw in data["cases"].items():
        case = CaseResult(key, raw["title"], details=raw["details"], seconds=raw["seconds"], error=raw["error"])
        case.rows = [Row(**{k: v for k, v in row.items() if k in fields}) for row in raw["rows"]]
        cases.append(case)
    return data["meta"], cases
