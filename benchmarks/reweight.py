"""Learning to Reweight Examples (Ren et al. 2018) reproduced at our scale.

The well-known MNIST demonstration of the method trains on 80% uniform noise with a few clean
samples per class: plain training fits the noise and its test accuracy falls, reweighting keeps it
high, at about 2.5-3x the time per step. Here: digits (a quarter held out as the clean test set),
80% uniform noise (exact), an MLP, 10 trusted samples per class (drawn among the correctly
labelled, as `synth --reviewed-per-class` does), the same seed, order and schedule for both.

Prints both test-accuracy curves per epoch, the best and last accuracy of each, and the ratio of
their training-step times (measured on the training steps only, recording pass excluded).

    .venv/bin/python benchmarks/reweight.py            # ~1 minute on 2 CPU cores
    .venv/bin/python benchmarks/reweight.py --per-class 5 --seeds 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from noisyctl.data import load_dataset
from noisyctl.store import write_labels_file
from noisyctl.synth import synthesize
from noisyctl.training import Trainer, TrainOptions, load_trusted


def curve(labels, data, options, trusted):
    """Test accuracy after each epoch and the seconds spent in training steps."""
    trainer = Trainer(labels, data, options, trusted)
    accuracy, seconds = [], 0.0
    for epoch in range(options.epochs):
        started = time.perf_counter()
        trainer.train_epoch(epoch)
        seconds += time.perf_counter() - started
        accuracy.append(trainer.test_accuracy())
    return np.array(accuracy), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=0.8)
    parser.add_argument("--per-class", type=int, default=10, help="trusted samples per class")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args()
    console = Console(width=120)
    spec = {"name": "digits", "root": None, "options": {"test_fraction": 0.25}}
    data = load_dataset(spec)
    import tempfile
    from pathlib import Path

    summary = Table(title=f"digits, {args.rate:.0%} uniform noise, {args.model}, {args.per_class} trusted per class, "
                          f"{args.epochs} epochs")
    for column in ("seed", "standard best", "standard last", "reweight best", "reweight last", "step-time ratio"):
        summary.add_column(column, justify="right")
    for seed in range(args.seeds):
        labels = synthesize(spec, "uniform", args.rate, seed=seed, reviewed_per_class=args.per_class)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "labels.h5"
            write_labels_file(path, labels)
            trusted = load_trusted(str(path), data)
        base = dict(model=args.model, epochs=args.epochs, seed=seed, device=args.device, record_eval=False)
        standard, standard_seconds = curve(labels, data, TrainOptions(**base), None)
        reweight, reweight_seconds = curve(labels, data, TrainOptions(**base, strategy="reweight",
                                                                      trusted=str(path)), trusted)
        table = Table(title=f"seed {seed}: test accuracy per epoch")
        table.add_column("epoch", justify="right")
        table.add_column("standard", justify="right")
        table.add_column("reweight", justify="right")
        for epoch in range(args.epochs):
            table.add_row(str(epoch + 1), f"{standard[epoch]:.1%}", f"{reweight[epoch]:.1%}")
        console.print(table)
        summary.add_row(str(seed), f"{standard.max():.1%}", f"{standard[-1]:.1%}", f"{reweight.max():.1%}",
                        f"{reweight[-1]:.1%}", f"{reweight_seconds / standard_seconds:.2f}x")
    console.print(summary)


if __name__ == "__main__":
    main()
