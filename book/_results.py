"""Read the committed benchmark reports (``benchmarks/results``) for the book's pages.

The pages that show measurements too long to recompute at every build read them from
these files, so that a number in the book is always the number in the report.
"""

from __future__ import annotations

import re
from pathlib import Path

from IPython.display import Markdown

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def report(name: str) -> str:
    """The text of ``benchmarks/results/<name>.md``."""
    return (RESULTS / f"{name}.md").read_text()


def tables(name: str, *, footnotes: bool = False, text: str | None = None) -> Markdown:
    """The markdown tables of a report, with its starred footnotes if asked.

    Footnotes are the paragraphs that open with ``\\*`` marks; they are shown in the
    order of their marks, so that every mark in a table cell has its note.
    """
    text = report(name) if text is None else text
    lines = [line for line in text.splitlines() if line.startswith("|")]
    if footnotes:
        notes = [p.strip() for p in text.split("\n\n") if p.startswith("\\*")]
        marks = [re.match(r"\\(\*+)", note).group(1) for note in notes]
        for mark, note in sorted(zip(marks, notes), key=lambda pair: len(pair[0])):
            body = note[1 + len(mark):].replace("\n", " ")
            lines += ["", "\\*" * len(mark) + body]
    return Markdown("\n".join(lines))


def rows(name: str, *, text: str | None = None) -> list[list[str]]:
    """Cells of the data rows of a report's tables (header and rule lines left out)."""
    text = report(name) if text is None else text
    lines = [line for line in text.splitlines() if line.startswith("|")]
    out = []
    for line, following in zip(lines, lines[1:] + [""]):
        is_rule = set(line) <= set("|-: ")
        is_header = set(following) <= set("|-: ") and following.startswith("|-")
        if not (is_rule or is_header):
            out.append([cell.strip() for cell in line.strip("|").split("|")])
    return out


def curve_rows(name: str) -> list[dict]:
    """The fits of a learning-curve report (``benchmarks/accuracy/learning_curve.py``):
    one dict per fit, with its ``seed`` (0 where the report predates seeds)."""
    import json

    data = json.loads((RESULTS / f"{name}.json").read_text())
    fits = data["rows"] if isinstance(data, dict) else data
    return [{"seed": 0, **row} for row in fits]


def curve_points(*names: str) -> dict[str, dict[int, dict]]:
    """Per model and training size of one or more learning-curve reports: the test MAEs
    of its seeds (``maes``), their ``mean`` and standard deviation ``std`` (ddof 0). A fit
    (model, size, seed) found in two reports is an error, not counted twice."""
    import numpy as np

    maes: dict = {}
    seen: set = set()
    for row in (row for name in names for row in curve_rows(name)):
        fit = (row["model"], row["n_train"], row["seed"])
        if fit in seen:
            raise ValueError(f"the fit {fit} is in more than one of {names}")
        seen.add(fit)
        maes.setdefault(row["model"], {}).setdefault(row["n_train"], []).append(row["mae"])
    return {
        model: {n: {"maes": v, "mean": float(np.mean(v)), "std": float(np.std(v))}
                for n, v in sorted(points.items())}
        for model, points in maes.items()
    }  # fmt: skip
