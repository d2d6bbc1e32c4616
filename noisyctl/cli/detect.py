"""``noisyctl detect``: score every sample of a run file with one or more detectors."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, List, Optional

import typer

from noisyctl.cli.common import JSON_OPTION, RECIPE_OPTION, emit, note, require, require_not_negative, with_recipe
from noisyctl.cli.progress import step_progress
from noisyctl.cli.tables import estimate_text, metrics_table, suspects_table
from noisyctl.data import parse_options
from noisyctl.detection import DEFAULT_DETECTORS, GATE_ON, Detection, default_detectors, detect_run, gate_verdict
from noisyctl.errors import GateFailed, NoisyctlError, check_share
from noisyctl.fileio import atomic_output, csv_cell
from noisyctl.store import RunFile

app = typer.Typer()


def detector_options(pairs: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    """``["ema-loss.alpha=0.01"]`` -> ``{"ema-loss": {"alpha": 0.01}}``."""
    options: dict[str, dict[str, Any]] = {name: {} for name in names}
    for pair in pairs:
        name, dot, rest = pair.partition(".")
        if not dot or name not in options:
            raise NoisyctlError(f"detector option '{pair}' must be DETECTOR.KEY=VALUE for a detector "
                                f"being run ({', '.join(names)})")
        options[name].update(parse_options([rest], f"detector '{name}'"))
    return options


def write_scores_csv(path: Path, found: Detection) -> None:
    names = found.class_names
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", "given_label", *found.scores])
        columns = list(found.scores.values())
        for i, sample_id in enumerate(found.ids):
            writer.writerow([csv_cell(sample_id), csv_cell(names[found.given_labels[i]]),
                             *(f"{c[i]:.6g}" for c in columns)])


@app.command()
def detect(
    ctx: typer.Context,
    run: Optional[Path] = typer.Argument(None, help="Run file from `train`.", show_default=False),
    detector: List[str] = typer.Option([], "--detector", "-d", help="Detector to run (repeat for several; the "
                                       f"first ranks the suspects). Default: {', '.join(DEFAULT_DETECTORS)} "
                                       "(those the run has the dynamics for)."),
    detector_option: List[str] = typer.Option([], "--detector-option", "-O", help="DETECTOR.KEY=VALUE, e.g. "
                                              "ema-loss.alpha=0.01."),
    top: int = typer.Option(10, "--top", "-k", help="How many suspects to list."),
    scores_out: Optional[Path] = typer.Option(None, "--scores-out", help="Write per-sample scores to this CSV."),
    save: bool = typer.Option(True, "--save/--no-save", help="Store the scores in the run file."),
    fail_above: Optional[float] = typer.Option(None, "--fail-above", help="CI gate: exit with code 3 when the "
                                               "estimated noise rate exceeds this share (e.g. 0.05).",
                                               show_default=False),
    gate_on: str = typer.Option("estimate", "--gate-on", help="What --fail-above compares: the estimate (the "
                                "lower end where the losses cannot tell), or the lower or upper end of its "
                                "interval (lower: fail only when the data is surely noisier; upper: fail unless "
                                "it is surely cleaner)."),
    fail_count: Optional[int] = typer.Option(None, "--fail-count", help="CI gate: exit with code 3 when more "
                                             "than this many samples score above --fail-score.", show_default=False),
    fail_score: Optional[float] = typer.Option(None, "--fail-score", help="The score --fail-count counts "
                                               "samples above (the first detector's scale).", show_default=False),
    recipe: Optional[Path] = RECIPE_OPTION,
    json_output: bool = JSON_OPTION,
):
    """Score every sample (higher = more likely mislabeled); judge detectors when the truth is known."""
    p = with_recipe(ctx)
    run_path = Path(require(p["run"], "RUN file"))
    require_not_negative(p["top"], "--top")
    if p["gate_on"] not in GATE_ON:
        raise NoisyctlError(f"--gate-on is one of {', '.join(GATE_ON)}, not '{p['gate_on']}'")
    if p["fail_above"] is not None:
        check_share(p["fail_above"], "--fail-above")
    if (p["fail_count"] is None) != (p["fail_score"] is None):
        raise NoisyctlError("--fail-count and --fail-score go together: fail when more than COUNT samples "
                            "score above SCORE")
    with RunFile(run_path) as run_file:
        names, skipped = (list(dict.fromkeys(p["detector"])), {}) if p["detector"] else default_detectors(run_file)
    with step_progress(not p["json_output"]) as progress:
        found = detect_run(run_path, names, detector_options(p["detector_option"], names), p["top"], p["save"],
                           progress)
    if p["scores_out"] is not None:
        write_scores_csv(Path(p["scores_out"]), found)
    outcomes, estimate, suspects = found.outcomes, found.estimate, found.suspects
    primary = outcomes[0]
    truth = found.true_labels
    result = {
        "run": str(run_path), "samples": len(found.ids),
        "noisy": None if truth is None else int((truth != found.given_labels).sum()), "primary": primary.name,
        "detectors": {o.name: {"description": o.description, "options": o.options, "seconds": o.seconds,
                               "flagged": None if o.result.flagged is None else int(o.result.flagged.sum()),
                               "metrics": o.metrics, "info": o.result.info, "plugin": o.provenance}
                      for o in outcomes},
        "estimate": estimate, "top": suspects, "scores_out": None if p["scores_out"] is None else str(p["scores_out"]),
        "saved": p["save"], "not_run": skipped,
    }
    result["gate"] = gate_verdict(estimate, primary.result.scores, p["fail_above"], p["gate_on"], p["fail_count"],
                                  p["fail_score"])

    def render(console):
        console.print(metrics_table(result["detectors"], result["noisy"], result["samples"]))
        console.print(estimate_text(estimate))
        for o in outcomes:
            if o.result.info.get("note"):
                note(console, o.result.info["note"])
        if skipped:
            grouped: dict[str, list[str]] = {}
            for name, why in skipped.items():
                grouped.setdefault(why, []).append(name)
            note(console, "not run: " + "; ".join(
                f"{', '.join(names)} ({why.removeprefix('needs ')})" for why, names in grouped.items()))
        if suspects:
            console.print(suspects_table(suspects, primary.name))
        if result["gate"] and result["gate"]["warning"]:
            note(console, result["gate"]["warning"])

    emit(ctx, result, render, p["json_output"])
    if result["gate"] and not result["gate"]["passed"]:
        raise GateFailed(result["gate"]["reason"])
    return result
