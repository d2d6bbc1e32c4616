"""What ``noisyctl report`` says about a run: its summary, stored detector quality, suspects and
their inputs, and other runs of the same data beside it. The CLI prints it; :mod:`.html` and
:mod:`.figures` draw it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from noisyctl import plugins
from noisyctl.data import load_dataset
from noisyctl.detection import (annotators_table, detector_decision, estimate_noise, noise_flags, stored_outcomes,
                                suggested_labels, top_suspects)
from noisyctl.errors import NoisyctlError
from noisyctl.fileio import write_text_atomic
from noisyctl.metrics import detection_metrics
from noisyctl.store import RunFile


def build_report(run_path: Path, detector: str | None = None, top: int = 10, compare: list[Path] = (),
                 html: Path | None = None, png: Path | None = None) -> dict[str, Any]:
    """The report of the run at ``run_path`` as a dict (what ``report --json`` prints), with the
    suspects ranked by the stored ``detector`` (default: the first stored) and, where the run keeps
    several annotators' own labels, their figures (``annotators_table``); with ``html`` and/or
    ``png``, the self-contained page and/or the figures as PNG files are written too."""
    from noisyctl.report.html import build_figures, render_html, write_pngs

    with RunFile(run_path) as run:
        labels = run.labels
        truth = labels.is_noisy
        stored = stored_outcomes(run)  # read once: the tables, the flags and the estimate all come from it
        scores = {o.name: o.result.scores for o in stored}
        detectors = {o.name: {
            "description": o.description, "options": o.options,
            "flagged": None if o.result.flagged is None else int(o.result.flagged.sum()),
            "metrics": None if truth is None else detection_metrics(truth, o.result.scores, o.result.flagged),
        } for o in stored}
        ranked_by = detector or next(iter(scores), None)
        if ranked_by is not None and ranked_by not in scores:
            raise NoisyctlError(f"{run_path} has no '{ranked_by}' scores; it has: {', '.join(scores) or 'none'} "
                                f"(run `noisyctl detect {run_path} -d {ranked_by}`)")
        suggestions = suggested_labels(run)
        decided = noise_flags(run, stored) if stored else None
        if ranked_by is None:
            suspects = []
        else:  # flagged as detect flags, by the detector that ranks them
            by = next(o for o in stored if o.name == ranked_by)
            flags = decided[0] if by is stored[0] else detector_decision(run, ranked_by, by.result.scores,
                                                                        by.result.flagged)[0]
            suspects = top_suspects(run, scores[ranked_by], max(0, top), suggestions, flags)
        estimate = estimate_noise(run, stored, suggestions, decided) if stored else None
        made, notes = {}, []
        if html or png:
            flagged = decided[0] if decided else None
            made = build_figures(run, scores, flagged, suspects, suggestions, suspect_images(run, suspects, notes),
                                 notes)
        epochs = run.epochs()
        result = {
            "run": str(run_path), "samples": run.num_samples, "classes": labels.class_names,
            "dataset": labels.dataset, "noise": labels.noise,
            "noisy": None if truth is None else int(truth.sum()),
            "training": run.training, "epochs": {k: v.tolist() for k, v in epochs.items()},
            "detectors": detectors, "estimate": estimate, "ranked_by": ranked_by, "top": suspects,
            "trained_on": describe_labels(run),
            "annotators": annotators_table(run),
        }
    result["comparison"] = compare_runs([run_path, *compare]) if compare else []
    if result["comparison"] and all(row["test_accuracy"] is None for row in result["comparison"]):
        notes.append("no test accuracy to compare: these runs' data has no test split (for digits, blobs and "
                     "shapes, synth -D test_fraction=0.2 holds a clean one out)")
    if png:
        result["png"] = write_pngs(Path(png), made)
    if html:
        write_text_atomic(Path(html), render_html(result, made, notes))
        result["html"] = str(html)
    result["notes"] = notes
    return result


# Annotators a report's table shows (of a crowd, the surely least often right); --json and
# export --annotators give them all
REPORTED_ANNOTATORS = 20


def annotator_cells(row: dict[str, Any]) -> list[str]:
    """One annotator's figures (an ``annotators_table`` row) as a report's table shows them."""
    agreed = "-" if row["agreed_with_given"] is None else f"{row['agreed_with_given']:.0%}"
    return [row["annotator"], f"{row['labeled']:,}", agreed,
            f"{row['accuracy']:.0%} ({row['accuracy_low']:.0%}-{row['accuracy_high']:.0%})", row["mistakes_most"]]


ANNOTATOR_HEADERS = ["annotator", "labeled", "agreed", "accuracy", "mistakes most"]


def annotators_caption(annotators: dict[str, Any], run: str) -> str:
    """What a report's annotators' table is, and where the rest of a crowd's figures are."""
    prior = " with held-out models' prior" if annotators["held_out_prior"] else ""
    rows = annotators["rows"]
    more = (f"; {len(rows) - REPORTED_ANNOTATORS:,} more: noisyctl export {run} --annotators annotators.csv"
            if len(rows) > REPORTED_ANNOTATORS else "")
    return (f"agreed: gave the given label; accuracy (90% interval) and mistakes estimated by Dawid-Skene{prior}; "
            f"the surely careless first (by their intervals' upper ends){more}")


def shown_epochs(count: int, most: int = 12) -> list[int]:
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
    cannot be loaded here or is not images, which is not loaded. Text suspects carry their ``text``
    instead (``top_suspects``)."""
    if not suspects or "text" in suspects[0]:
        return None
    found = image_samples(run, [s["id"] for s in suspects], notes)
    return None if found is None else [found[0].load(i) for i in found[1]]


def image_samples(run: RunFile, ids: list[str], notes: list[str],
                  missing_what: str = "no suspect gallery") -> tuple | None:
    """The run's training samples as the dataset loads them here, and the positions of ``ids``
    among them; None (with a note that begins ``missing_what``) when the data cannot be loaded here,
    is not images, or lacks one of the ids."""
    if not ids or run.labels.dataset.get("kind", "image") != "image":
        return None
    name = run.labels.dataset.get("name")
    if run.recorded_by and name not in plugins.registry().names("dataset"):
        notes.append(f"{missing_what}: the run was recorded by {run.recorded_by} on '{name}', which is not "
                     f"a noisyctl dataset (give the Recorder dataset={{'name': ..., 'root': ...}} of one to see "
                     f"the samples)")
        return None
    try:
        data = load_dataset(run.labels.dataset)
    except NoisyctlError as exc:
        notes.append(f"{missing_what}: {exc}")
        return None
    if data.kind != "image":  # a file from before datasets recorded their kind
        return None
    position = {sample_id: i for i, sample_id in enumerate(data.train.ids)}
    missing = [sample_id for sample_id in ids if sample_id not in position]
    if missing:
        notes.append(f"{missing_what}: sample {missing[0]} is not in the dataset as loaded here")
        return None
    return data.train, [position[sample_id] for sample_id in ids]


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
