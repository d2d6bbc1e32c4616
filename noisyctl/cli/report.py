"""``noisyctl report``: what a run file holds, in tables."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from rich.table import Table

from noisyctl.cli.common import JSON_OPTION, RECIPE_OPTION, emit, note, printable, require, with_recipe
from noisyctl.cli.tables import estimate_text, metrics_table, suspects_table
from noisyctl.report import (ANNOTATOR_HEADERS, REPORTED_ANNOTATORS, annotator_cells, annotators_caption,
                             build_report, shown_epochs)

app = typer.Typer()

EPOCH_COLUMNS = (("train_loss", "train loss", "{:.3f}"), ("train_accuracy", "train acc", "{:.1%}"),
                 ("eval_accuracy", "eval acc", "{:.1%}"), ("eval_true_accuracy", "acc vs truth", "{:.1%}"),
                 ("test_accuracy", "test acc", "{:.1%}"), ("learning_rate", "lr", "{:.3g}"),
                 ("seconds", "seconds", "{:.2f}"))


def comparison_table(rows: list[dict]) -> Table:
    table = Table(title="the same data, trained differently")
    for column in ("run", "trained on", "samples", "test acc (last)", "test acc (best)", "gap closed"):
        table.add_column(column, justify="left" if column in ("run", "trained on") else "right")
    for row in rows:
        table.add_row(Path(row["run"]).name, row["trained_on"], f"{row['samples']:,}",
                      *("-" if row[k] is None else f"{row[k]:.1%}" for k in
                        ("test_accuracy", "best_test_accuracy", "gap_closed")))
    table.caption = "gap closed: (test acc - noisy-label run) / (true-label run - noisy-label run)"
    return table


@app.command()
def report(
    ctx: typer.Context,
    run: Optional[Path] = typer.Argument(None, help="Run file from `train` (scored by `detect`).", show_default=False),
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Rank suspects by this stored detector "
                                           "(default: the first stored)."),
    top: int = typer.Option(10, "--top", "-k", help="How many suspects to list."),
    compare: List[Path] = typer.Option([], "--compare", help="Other runs of the same data (after prune, "
                                       "correct, a strategy, or --true-labels) to set beside this one: test "
                                       "accuracy and the share of the gap to the true-label run each closed."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write the report as one self-contained HTML "
                                        "file (figures embedded).", dir_okay=False),
    png: Optional[Path] = typer.Option(None, "--png", help="Also write the report's figures as PNG files into "
                                       "this folder.", file_okay=False),
    recipe: Optional[Path] = RECIPE_OPTION,
    json_output: bool = JSON_OPTION,
):
    """Summarise a run: data, noise, training curves, detector quality and top suspects."""
    p = with_recipe(ctx)
    run_path = Path(require(p["run"], "RUN file"))
    result = build_report(run_path, p["detector"], p["top"], p["compare"], p["html"], p["png"])
    epochs = {key: np.asarray(values) for key, values in result["epochs"].items()}
    detectors, suspects = result["detectors"], result["top"]

    def render(console):
        summary = Table(title=f"run {run_path}", show_header=False)
        summary.add_row("dataset", f"{result['dataset'].get('name')} ({result['samples']:,} samples, "
                                   f"{len(result['classes'])} classes)")
        if result["noise"]:
            n = result["noise"]
            flipped = n.get("flipped") if isinstance(n.get("flipped"), int) else result["noisy"] or 0
            summary.add_row("noise", f"{n['name']} at {flipped / result['samples']:.0%}, seed {n.get('seed')}: "
                                     f"{flipped:,} labels flipped")
        t = result["training"]
        summary.add_row("trained on", result["trained_on"])
        summary.add_row("model", f"{t.get('model')}, {t.get('epochs')} epochs, {t.get('optimizer')} lr {t.get('lr')}, "
                                 f"{t.get('device_used')}")
        console.print(summary)
        count = len(next(iter(epochs.values()))) if epochs else 0
        table = Table(title="per epoch")
        table.add_column("epoch", justify="right")
        present = [c for c in EPOCH_COLUMNS if c[0] in epochs]
        for _, header, _ in present:
            table.add_column(header, justify="right")
        for e in shown_epochs(count):
            table.add_row(str(e + 1), *(fmt.format(float(epochs[key][e])) for key, _, fmt in present))
        console.print(table)
        if detectors:
            console.print(metrics_table(detectors, result["noisy"], result["samples"]))
            console.print(estimate_text(result["estimate"]))
        else:
            console.print(f"no detector scores yet: run `noisyctl detect {run_path}`")
        if result["annotators"]:
            table = Table(title="annotators", caption=annotators_caption(result["annotators"], str(run_path)))
            for header in ANNOTATOR_HEADERS:
                table.add_column(header, justify="left" if header in ("annotator", "mistakes most") else "right")
            for row in result["annotators"]["rows"][:REPORTED_ANNOTATORS]:
                table.add_row(*map(printable, annotator_cells(row)))
            console.print(table)
        if suspects:
            console.print(suspects_table(suspects, result["ranked_by"]))
        if result["comparison"]:
            console.print(comparison_table(result["comparison"]))
        for written in (result.get("html"), *(result.get("png") or [])):
            if written:
                console.print(f"wrote {written}")
        for text in result["notes"]:
            note(console, text)

    return emit(ctx, result, render, p["json_output"])
