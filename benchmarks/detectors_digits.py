"""Every built-in detector on digits under several noise settings, side by side.

For each setting (noise type x rate x seed) one small CNN is trained with dynamics recorded, then
every registered detector scores the same run. Prints AUC, mAP and precision@k per detector and
setting, and the mean over settings.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from noisyctl import plugins
from noisyctl.data import load_dataset
from noisyctl.detection import make_detector, run_detector
from noisyctl.store import RunFile
from noisyctl.synth import synthesize
from noisyctl.training import TrainOptions, train

SETTINGS = [("uniform", 0.2), ("uniform", 0.4), ("pairflip", 0.2), ("pairflip", 0.4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    spec = {"name": "digits", "root": None, "options": {}}
    data = load_dataset(spec)
    detectors = plugins.registry().names("detector")
    console = Console(width=160)
    table = Table(title=f"detectors on digits ({args.epochs} epochs, small-cnn), mAP / AUC / P@k")
    table.add_column("setting")
    for name in detectors:
        table.add_column(name, justify="right")
    table.add_column("train s", justify="right")
    maps: dict[str, list[float]] = {name: [] for name in detectors}
    with tempfile.TemporaryDirectory() as folder:
        for noise, rate in SETTINGS:
            for seed in range(args.seeds):
                labels = synthesize(spec, noise, rate, seed)
                path = Path(folder) / f"{noise}-{rate}-{seed}.h5"
                started = time.perf_counter()
                train(labels, data, TrainOptions(epochs=args.epochs, seed=seed), path)
                seconds = time.perf_counter() - started
                cells = []
                with RunFile(path) as run:
                    for name in detectors:
                        if run.lacking(make_detector(name, {})[0].reads):  # reweight reads a reweight run
                            cells.append("-")
                            continue
                        m = run_detector(run, name).metrics
                        maps[name].append(m["map"])
                        cells.append(f"{m['map']:.3f} / {m['auc']:.3f} / {m['precision_at_k']:.3f}")
                table.add_row(f"{noise} {rate:.0%} seed {seed}", *cells, f"{seconds:.1f}")
    table.add_row("[bold]mean mAP", *(f"[bold]{np.mean(maps[n]):.3f}" if maps[n] else "-" for n in detectors), "")
    console.print(table)


if __name__ == "__main__":
    main()
