"""How well the learned detector transfers to training runs it never saw, run by run.

The shipped detector is judged on digits and on shapes seeds it never saw (`detectors.py`); this
asks a wider question with the runs `recipes/default-detector.yaml` makes (44 runs: shapes and
blobs, uniform / pair-flip / instance / transition-matrix noise, three models, sgd / adam / adamw
with cosine, step or constant schedules, with and without augmentation). The runs are split into
K folds; for each fold a `learned` detector (the recipe's settings: members, hidden units,
epochs) is trained on the other folds and scores the fold's runs, beside the hand-crafted
detectors on the same runs, and with its adaptation to the run turned off (`adapt=false`, shown
for reference, not counted among the winners). A run is never scored by a detector that saw any
of its samples.

    make setup && .venv/bin/noisyctl run recipes/default-detector.yaml   # the runs, once
    .venv/bin/python benchmarks/transfer.py                              # ~15 minutes on 2 cores
    .venv/bin/python benchmarks/transfer.py --folds 4 --epochs 30 --crop 1   # another training setting
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from noisyctl.builtin.detectors.learned.training import train_detector
from noisyctl.detection import run_detector
from noisyctl.store import RunFile

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "default-detector.yaml"
HAND_CRAFTED = ["loss", "aum", "datamap", "ema-loss"]
UNADAPTED = "learned, not adapted"
TRAINING_KEYS = ("epochs", "batch_size", "lr", "seed", "members", "hidden", "crop")  # the train-detector step keys it takes


def recipe_step() -> dict:
    """The recipe's train-detector step for the shipped `learned` detector."""
    steps = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))["steps"]
    return next(s["train-detector"] for s in steps if s.get("train-detector", {}).get("kind") == "learned")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, help="train the detector this many epochs instead of the recipe's")
    parser.add_argument("--members", type=int, help="this many members instead of the recipe's")
    parser.add_argument("--crop", type=float, help="this shortest training share instead of the recipe's (1: off)")
    args = parser.parse_args()
    # Overrides compare training settings on the same folds without editing the recipe.
    overrides = {"epochs": args.epochs, "members": args.members, "crop": args.crop}
    step = {**recipe_step(), **{k: v for k, v in overrides.items() if v is not None}}
    runs = [Path(r) for r in step["runs"]]
    missing = [r for r in runs if not r.is_file()]
    if missing:
        raise SystemExit(f"{missing[0]} does not exist: run recipes/default-detector.yaml first")
    console = Console(width=120)
    fold_of = np.random.default_rng(0).permutation(len(runs)) % args.folds
    rows = []
    for fold in range(args.folds):
        seen = [r for r, f in zip(runs, fold_of) if f != fold]
        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(tmp) / "learned.safetensors"
            train_detector(seen, "learned", weights, **{k: v for k, v in step.items() if k in TRAINING_KEYS})
            for run_path in (r for r, f in zip(runs, fold_of) if f == fold):
                with RunFile(run_path) as run:
                    scores = {"learned": run_detector(run, "learned", {"weights": str(weights)}).metrics["map"],
                              UNADAPTED: run_detector(run, "learned", {"weights": str(weights), "adapt": False}).metrics["map"]}
                    scores.update({d: run_detector(run, d).metrics["map"] for d in HAND_CRAFTED})
                rows.append((run_path.stem, scores))
                console.print(f"fold {fold + 1}/{args.folds}  {run_path.stem}: "
                              + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    methods = ["learned", UNADAPTED, *HAND_CRAFTED]
    contenders = [m for m in methods if m != UNADAPTED]
    settings = ", ".join(f"{k} {step[k]}" for k in TRAINING_KEYS if k in step)
    table = Table(title=f"mAP on runs the learned detector never saw ({len(runs)} runs, {args.folds} folds; {settings})")
    table.add_column("run")
    for method in methods:
        table.add_column(method, justify="right")
    for name, scores in rows:
        best = max(scores[m] for m in contenders)
        table.add_row(name, *[f"[bold green]{scores[m]:.3f}[/]" if scores[m] == best else f"{scores[m]:.3f}"
                              for m in methods])
    means = {m: float(np.mean([s[m] for _, s in rows])) for m in methods}
    wins = {m: sum(s[m] == max(s[c] for c in contenders) for _, s in rows) for m in contenders}
    table.add_row("mean", *[f"{means[m]:.3f}" for m in methods], style="bold")
    table.add_row("best on", *[f"{wins[m]} runs" if m in wins else "" for m in methods])
    console.print(table)


if __name__ == "__main__":
    main()
