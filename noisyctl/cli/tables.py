"""Rich tables shared by `detect` and `report`."""

from __future__ import annotations

from textwrap import shorten
from typing import Any

import numpy as np
from rich.text import Text
from rich.table import Table

from noisyctl.cli.common import printable
from noisyctl.detection import estimate_words

# How much of a suspect's text the table shows: enough to judge most labels; the CSVs hold all of it.
SHOWN_TEXT = 100


def _fmt(value: Any, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


def metrics_table(detectors: dict[str, dict[str, Any]], noisy: int | None, samples: int) -> Table:
    """One row per detector: AUC, mAP, precision at k = #noisy (which is also its recall), its own flag
    count, and its time when it was timed (a report of stored scores has none)."""
    title = "detectors"
    if noisy is not None:
        title += f": {noisy:,} of {samples:,} labels are wrong, k = {noisy:,}"
    any_flags = any(d.get("flagged") is not None for d in detectors.values())
    table = Table(title=title)
    table.add_column("detector", style="bold")
    if noisy is not None:
        for name in ("AUC", "mAP", "P@k"):
            table.add_column(name, justify="right")
        table.caption = "P@k: wrong labels among the k highest scores (k = their count: also the share found)"
    if any_flags:
        table.add_column("flagged", justify="right")
    timed = any(d.get("seconds") for d in detectors.values())
    if timed:
        table.add_column("seconds", justify="right")
    best = max((d["metrics"]["map"] for d in detectors.values() if d.get("metrics") and d["metrics"]["map"]
                is not None), default=None)
    for name, d in detectors.items():
        row = [name]
        m = d.get("metrics")
        if noisy is not None and m:
            ap = _fmt(m["map"])
            row += [_fmt(m["auc"]), Text(ap, style="green") if m["map"] == best else ap, _fmt(m["precision_at_k"])]
        if any_flags:
            row.append("-" if d.get("flagged") is None else f"{d['flagged']:,}")
        if timed:
            row.append(_fmt(d.get("seconds"), "{:.2f}"))
        table.add_row(*row)
    return table


def suspects_table(rows: list[dict[str, Any]], detector: str) -> Table:
    truth_known = bool(rows) and rows[0]["true"] is not None
    texts = bool(rows) and "text" in rows[0]
    flags = [row["flagged"] for row in rows if row.get("flagged") is not None]
    # Whether they count as mislabeled: on a clean run the top ten are only the hardest samples.
    flagged = "" if len(flags) != len(rows) or not rows else \
        f" ({'all' if all(flags) else 'none' if not any(flags) else sum(flags)} of them flagged)"
    table = Table(title=f"top {len(rows)} suspects by {detector}{flagged}")
    # On a narrow terminal the text gives way (wraps, a long word folded, never cut), not the ids and
    # labels a reader acts on; a wider floor pushed the score off an 80-column terminal for a table's rows.
    for name in ["#", "sample id"] + (["text"] if texts else []) + ["given"] + (["true"] if truth_known else []) \
            + ["suggested", "score"]:
        text = name == "text"
        table.add_column(name, justify="right" if name in ("#", "score") else "left", no_wrap=not text,
                         min_width=8 if text else None, overflow="fold" if text else "ellipsis")
    # One number of decimals for the column, about three significant digits at its largest score,
    # so the scores line up (0.810 under 0.813, not 0.81).
    largest = max((abs(row["score"]) for row in rows if np.isfinite(row["score"])), default=1.0)
    decimals = int(max(0, 3 - np.floor(np.log10(largest)) - 1)) if largest > 0 else 3
    for row in rows:
        cells = [str(row["rank"]), row["id"]]
        if texts:
            cells.append(printable(shorten(row["text"], SHOWN_TEXT, placeholder=" …")))
        cells.append(row["given"])
        if truth_known:
            cells.append(Text(printable(row["true"]), style="red" if row["is_noisy"] else "dim"))
        cells += [row["suggested"] or "-", f"{row['score']:.{decimals}f}"]
        table.add_row(*cells)
    if truth_known:
        table.caption = "red: the given label is wrong"
    return table


def estimate_text(estimate: dict[str, Any]) -> str:
    """One paragraph: the estimated noise rate (and the true one when known) and the confused pairs."""
    text = estimate_words(estimate)
    if estimate.get("true_rate") is not None:
        text += f"; true: {estimate['true_rate']:.1%}"
    pairs = estimate.get("confused_pairs") or []
    if pairs:
        text += "\nmost confused (given -> suggested): " + ", ".join(
            f"{p['given']} -> {p['suggested']} ({p['count']})" for p in pairs)
    return text
