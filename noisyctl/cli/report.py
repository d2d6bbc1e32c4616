"""``noisyctl report``: what a run file holds, in tables."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from rich.table import Table

from noisyctl import plugins
from noisyctl.api import DetectorResult
from noisyctl.cli.common import JSON_OPTION, RECIPE_OPTION, emit, require, with_recipe
from noisyctl.cli.tables import estimate_text, metrics_table, suspects_table
from noisyctl.data import load_dataset
from noisyctl.detection import Outcome, estimate_noise, noise_flags, suggested_labels, top_suspects
from noisyctl.fileio import write_text_atomic
from noisyctl.html_report import build_figures, render_html, write_pngs
from noisyctl.errors import NoisyctlError
from noisyctl.metrics import detection_metrics
from noisyctl.store import RunFile

app = typer.Typer()

EPOCH_COLUMNS = (("train_loss", "train loss", "{:.3f}"), ("train_accuracy", "train acc", "{:.1%}"),
                 ("eval_accuracy", "eval acc", "{:.1%}"), ("eval_true_accuracy", "acc vs truth", "{:.1%}"),
                 ("test_accuracy", "test acc", "{:.1%}"), ("learning_rate", "lr", "{:.3g}"),
                 ("seconds", "seconds", "{:.2f}"))


def _shown_epochs(count: int, most: int = 12) -> list[int]:
    """Every epoch when few, else evenly spaced ones that include the first and the last."""
    if count <= most:
        return list(range(count))
    return sorted(set(np.linspace(0, count - 1, most).round().astype(int).tolist()))


def describe_labels(run: RunFile) -> str:
    """What a run trained on, in a few words: noisy, pruned, corrected or true labels, and how."""
    training, labels = run.training, run.labels
    if training.get("true_labels"):
        what = "true labels"
    elif labels.pruning:
        pruning = labels.pruning
        by = f" by {pruning['detector']}" if pruning.get("detector") else ""
        what = f"pruned{by} ({pruning['removed']:,} removed)"
    elif labels.correction:
        by = labels.correction["by"].split(":", 1)[-1]
        what = f"relabeled by {by} ({labels.correction['changed']:,} changed)"
    else:
        what = "given labels" if labels.noise is None else "noisy labels"
    strategy = training.get("strategy", "standard")
    return what if strategy == "standard" else f"{what}, {strategy} training"


def suspect_images(run: RunFile, suspects: list[dict], notes: list[str]) -> list | None:
    """The suspects' inputs from the dataset, for the gallery; None (with a note) when the data
    cannot be loaded here or is not images. For text data, each suspect gets its ``text`` instead."""
    if not suspects:
        return None
    name = run.labels.dataset.get("name")
    if run.recorded_by and name not in plugins.registry().names("dataset"):
        notes.append(f"no suspect gallery: the run was recorded by {run.recorded_by} on '{name}', which is not "
                     f"a noisyctl dataset (give the Recorder dataset={{'name': ..., 'root': ...}} of one to see "
                     f"the samples)")
        return None
    try:
        data = load_dataset(run.labels.dataset)
    except NoisyctlError as exc:
        notes.append(f"no suspect gallery: {exc}")
        return None
    if data.kind == "features":
        return None
    position = {sample_id: i for i, sample_id in enumerate(data.train.ids)}
    missing = [s["id"] for s in suspects if s["id"] not in position]
    if missing:
        notes.append(f"no suspect gallery: sample {missing[0]} is not in the dataset as loaded here")
        return None
    if data.kind == "text":
        for suspect in suspects:
            suspect["text"] = data.train.text(position[suspect["id"]])
        return None
    return [data.train.load(position[s["id"]]) for s in suspects]


def compare_runs(paths: list[Path]) -> list[dict]:
    """Test accuracy of runs side by side, and the share of the gap between the noisy-label run and
    the true-label run that each other run closed."""
    rows = []
    for path in paths:
        with RunFile(path) as other:
            test = other.epochs().get("test_accuracy")
            rows.append({"run": str(path), "trained_on": describe_labels(other), "samples": other.num_samples,
                         "strategy": other.training.get("strategy", "standard"),
                         "true_labels": bool(other.training.get("true_labels")),
                         "plain": not (other.labels.pruning or other.labels.correction or other.training.get(
                             "true_labels")) and other.training.get("strategy", "standard") == "standard",
                         "test_accuracy": None if test is None else float(test[-1]),
                         "best_test_accuracy": None if test is None else float(test.max())})
    noisy = next((r["test_accuracy"] for r in rows if r["plain"]), None)
    true = next((r["test_accuracy"] for r in rows if r["true_labels"]), None)
    for row in rows:
        closable = noisy is not None and true is not None and true > noisy and row["test_accuracy"] is not None
        row["gap_closed"] = (row["test_accuracy"] - noisy) / (true - noisy) if closable else None
    return rows


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
    with RunFile(run_path) as run_file:
        labels = run_file.labels
        epochs = run_file.epochs()
        scores = run_file.scores()
        flags = run_file.flags()
        truth = labels.is_noisy
        detectors = {}
        for name, values in scores.items():
            attrs = run_file.score_attrs(name)
            detectors[name] = {
                "description": attrs.get("description", ""), "options": attrs.get("options", {}),
                "flagged": int(flags[name].sum()) if name in flags else None,
                "metrics": None if truth is None else detection_metrics(truth, values, flags.get(name)),
            }
        ranked_by = p["detector"] or next(iter(scores), None)
        if ranked_by is not None and ranked_by not in scores:
            raise NoisyctlError(f"{run_path} has no '{ranked_by}' scores; it has: {', '.join(scores) or 'none'} "
                                f"(run `noisyctl detect {run_path} -d {ranked_by}`)")
        suggestions = suggested_labels(run_file)
        suspects = top_suspects(run_file, scores[ranked_by], max(0, p["top"]), suggestions) if ranked_by else []
        stored = [Outcome(name, detectors[name]["description"], DetectorResult(values, flags.get(name)), {}, 0.0)
                  for name, values in scores.items()]
        decided = noise_flags(run_file, stored) if stored else None
        estimate = estimate_noise(run_file, stored, suggestions, decided) if stored else None
        made, notes = {}, []
        if p["html"] or p["png"]:
            flagged = decided[0] if decided else None
            images = suspect_images(run_file, suspects, notes)
            made = build_figures(run_file, scores, flagged, suspects, suggestions, images)
        result = {
            "run": str(run_path), "samples": run_file.num_samples, "classes": labels.class_names,
            "dataset": labels.dataset, "noise": labels.noise,
            "noisy": None if truth is None else int(truth.sum()),
            "training": run_file.training, "epochs": {k: v.tolist() for k, v in epochs.items()},
            "detectors": detectors, "estimate": estimate, "ranked_by": ranked_by, "top": suspects,
            "trained_on": describe_labels(run_file),
        }
    result["comparison"] = compare_runs([run_path, *p["compare"]]) if p["compare"] else []
    if p["png"]:
        result["png"] = write_pngs(Path(p["png"]), made)
    if p["html"]:
        write_text_atomic(Path(p["html"]), render_html(result, made, notes))
        result["html"] = str(p["html"])
    result["notes"] = notes

    def render(console):
        summary = Table(title=f"run {run_path}", show_header=False)
        summary.add_row("dataset", f"{labels.dataset.get('name')} ({result['samples']:,} samples, "
                                   f"{len(labels.class_names)} classes)")
        if labels.noise:
            n = labels.noise
            summary.add_row("noise", f"{n['name']} at {n['flipped'] / result['samples']:.0%}, seed {n['seed']}: "
                                     f"{n['flipped']:,} labels flipped")
        t = run_file.training
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
        for e in _shown_epochs(count):
            table.add_row(str(e + 1), *(fmt.format(float(epochs[key][e])) for key, _, fmt in present))
        console.print(table)
        if detectors:
            console.print(metrics_table(detectors, result["noisy"], result["samples"]))
            console.print(estimate_text(estimate))
        else:
            console.print(f"no detector scores yet: run `noisyctl detect {run_path}`")
        if suspects:
            console.print(suspects_table(suspects, ranked_by))
        if result["comparison"]:
            console.print(comparison_table(result["comparison"]))
        for written in (result.get("html"), *(result.get("png") or [])):
            if written:
                console.print(f"wrote {written}")
        for note in notes:
            console.print(f"[yellow]note:[/] {note}")

    return emit(ctx, result, render, p["json_output"])
