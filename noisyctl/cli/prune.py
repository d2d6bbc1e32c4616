"""``noisyctl prune``: remove suspects (marked in a new labels file, the data untouched) and retrain."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from noisyctl.cli.common import JSON_OPTION, RECIPE_KEY, RECIPE_OPTION, emit, require, stderr, with_recipe
from noisyctl.cli.progress import training_progress
from noisyctl.data import load_labels_dataset
from noisyctl.pruning import choose_removals, pruned_labels, removal_quality, stored_detector, whole_dataset_labels
from noisyctl.store import RunFile, write_labels_file
from noisyctl.training import options_from_run, train as train_run

app = typer.Typer()


@app.command()
def prune(
    ctx: typer.Context,
    run: Optional[Path] = typer.Argument(None, help="Run file scored by `detect`.", show_default=False),
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Stored detector whose scores decide "
                                           "(default: the one that ranked the latest detect)."),
    ratio: Optional[float] = typer.Option(None, "--ratio", help="Remove this share of the samples, highest "
                                          "scores first.", show_default=False),
    count: Optional[int] = typer.Option(None, "--count", help="Remove this many samples.", show_default=False),
    auto: bool = typer.Option(False, "--auto", help="Remove what the detector decides: its own flags, or as "
                              "many of its most suspect samples as the noise-rate estimate counts (as detect "
                              "flags). The default, without --ratio or --count."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Labels file to write, with the removed samples "
                                       "marked (train on it to retrain on the kept ones)."),
    retrain: Optional[Path] = typer.Option(None, "--retrain", help="Also retrain now, with the run's own "
                                           "training options, into this run file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar while retraining."),
    recipe: Optional[Path] = RECIPE_OPTION,
    json_output: bool = JSON_OPTION,
):
    """Remove the most suspect samples (by ratio, count or the detector's decision) and retrain."""
    p = with_recipe(ctx)
    run_path = Path(require(p["run"], "RUN file"))
    out_path = Path(require(p["out"], "--out"))
    with RunFile(run_path) as run_file:
        labels = whole_dataset_labels(run_file)
        name, scores, flags = stored_detector(run_file, p["detector"])
        removed, rule = choose_removals(run_file, name, scores, flags, ratio=p["ratio"], count=p["count"],
                                        auto=p["auto"] or None)
        pruned = pruned_labels(labels, scores, removed, name, rule, str(run_path))
        options = options_from_run(run_file) if p["retrain"] else None
        before = run_file.epochs().get("test_accuracy")
        recorded_by = run_file.recorded_by
    write_labels_file(out_path, pruned, recipe=ctx.meta.get(RECIPE_KEY))
    result = {"run": str(run_path), "out": str(out_path), "detector": name, **rule, "samples": len(labels.ids),
              "removed": int(removed.sum()), "kept": int((~removed).sum()),
              "quality": removal_quality(labels, removed), "retrained": None}
    if options is not None:
        if not p["json_output"]:
            stderr().print(f"removed {result['removed']:,} of {result['samples']:,} samples ({rule['rule']} "
                           f"{rule['value']}) into {out_path}; retraining on the {result['kept']:,} kept ones, "
                           f"{options.epochs} epochs, into {p['retrain']}")
        with training_progress(not (p["quiet"] or p["json_output"])) as progress:
            data = load_labels_dataset(pruned, str(run_path))[1]
            trained = train_run(pruned, data, options, Path(p["retrain"]), restart=True,
                                progress=progress, recipe=ctx.meta.get(RECIPE_KEY))
        result["retrained"] = {"out": trained["out"], "seconds": trained["seconds"],
                               "test_accuracy_before": None if before is None else float(before[-1]),
                               "test_accuracy_after": trained["last_epoch"].get("test_accuracy")}

    def render(console):
        table = Table(title=f"prune {run_path} by {name}", show_header=False)
        table.add_row("removed", f"{result['removed']:,} of {result['samples']:,} ({rule['rule']} {rule['value']})")
        q = result["quality"]
        if q:
            precision = "-" if q["precision"] is None else f"{q['precision']:.1%}"
            recall = "-" if q["recall"] is None else f"{q['recall']:.1%}"
            table.add_row("truly mislabeled among removed", f"{q['removed_noisy']:,} ({precision})")
            table.add_row("mislabeled samples removed", f"{recall} ({q['noisy_left']:,} left)")
        table.add_row("labels file", str(out_path))
        r = result["retrained"]
        if r:
            if r["test_accuracy_after"] is not None:
                before_text = "-" if r["test_accuracy_before"] is None else f"{r['test_accuracy_before']:.1%}"
                verdict = ""
                if r["test_accuracy_before"] is not None:
                    change = r["test_accuracy_after"] - r["test_accuracy_before"]
                    verdict = (f" ({'better' if change > 0 else 'worse' if change < 0 else 'no change'}"
                               f"{f' by {abs(change) * 100:.1f} points' if change else ''})")
                table.add_row("test accuracy", f"{before_text} -> {r['test_accuracy_after']:.1%}{verdict}")
            table.add_row("retrained run", r["out"])
        elif not result["removed"]:
            table.add_row("next", "nothing: no sample was removed, so training again would learn the same labels")
        else:
            table.add_row("next", f"noisyctl train --labels {out_path} --out RUN.h5" if not recorded_by else
                          f"train in {recorded_by} on the samples {out_path} keeps (samples/removed marks the others)")
        console.print(table)

    return emit(ctx, result, render, p["json_output"])
