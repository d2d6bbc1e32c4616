"""``noisyctl train-detector``: train a learned detector (any registered ``TrainableDetector``) on runs of
synthesized noise."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from noisyctl.cli.common import JSON_OPTION, RECIPE_OPTION, emit, require, with_recipe
from noisyctl.cli.progress import step_progress
from noisyctl.detection import train_detector

app = typer.Typer()


@app.command("train-detector")
def train_detector_command(
    ctx: typer.Context,
    runs: Optional[List[Path]] = typer.Argument(None, help="Run files whose noise was synthesized "
                                                "(the truth is known).", show_default=False),
    kind: str = typer.Option("learned", "--kind", help="Detector to train: lstm, learned, or a plugin's TrainableDetector."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Weights file to write (.safetensors)."),
    epochs: int = typer.Option(10, "--epochs", "-e", help="Passes over the runs' samples; the epoch with "
                               "the best hold-out mAP is kept."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Samples per step."),
    lr: float = typer.Option(1e-3, "--lr", help="AdamW learning rate."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, hold-out split and order (member i "
                             "uses seed + i)."),
    members: int = typer.Option(1, "--members", help="Networks to train with different seeds; the detector "
                                "averages their probabilities (steadier scores, that many times the scoring "
                                "time)."),
    hidden: int = typer.Option(64, "--hidden", help="Hidden units of each LSTM layer."),
    crop: float = typer.Option(1.0, "--crop", help="Train on each run cut to a random first share in "
                               "[CROP, 1] of its epochs, so the detector also knows runs stopped early "
                               "(1: whole runs only)."),
    fine_tune: Optional[Path] = typer.Option(None, "--fine-tune", help="Start from these detector weights."),
    recipe: Optional[Path] = RECIPE_OPTION,
    json_output: bool = JSON_OPTION,
):
    """Train a learned detector (lstm, learned, or a plugin's) on run files of synthesized noise; use it with
    `detect -d KIND --detector-option KIND.weights=FILE`."""
    p = with_recipe(ctx)
    out_path = Path(require(p["out"], "--out"))
    with step_progress(not p["json_output"]) as progress:
        result = train_detector(p["kind"], p["runs"] or [], out_path, epochs=p["epochs"],
                                batch_size=p["batch_size"], lr=p["lr"], seed=p["seed"], members=p["members"],
                                hidden=p["hidden"], crop=p["crop"], fine_tune=p["fine_tune"], progress=progress)

    def render(console):
        table = Table(title=f"{result['kind']} detector trained on {result['samples']:,} samples", show_header=False)
        held = result["holdout"]
        table.add_row("hold-out mAP / AUC", f"{held['map']:.3f} / {held['auc']:.3f} (epoch {held['epoch']})"
                      + (f", mean of {result['members']} members" if result["members"] > 1 else ""))
        table.add_row("runs", ", ".join(f"{r['dataset']}/{r['noise']}" for r in result["runs"]))
        table.add_row("weights", result["out"])
        console.print(table)

    return emit(ctx, result, render, p["json_output"])
