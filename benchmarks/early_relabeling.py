"""How sure `suggested` may be of its relabelings: the share of all eval passes that predicted the
suggested class (what it reads) against the share of the passes before the model began to fit the
noise (early learning: the first epoch whose accuracy on the given labels reaches one minus
`detect`'s estimated rate), on the calibration runs (`calibration.py --cache DIR` makes them).

For each run where `detect` shows noise, the flagged samples whose suggestion another class reaches
a share of 0.5 are relabeled; the script counts the wrong labels each reading fixes, the right ones
it breaks and the wrong ones it sets to another wrong class, summed by dataset.

    .venv/bin/python benchmarks/early_relabeling.py --cache runs/calibration
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

import noisyctl
from noisyctl.detection import suggestions
from noisyctl.store import RunFile

RATES = ("0.005", "0.01", "0.02", "0.05", "0.1", "0.2")
BAR = 0.5


def early_share(run: RunFile, suggested: np.ndarray, rate: float) -> tuple[np.ndarray, int]:
    """Each sample's share of the eval passes up to the memorisation onset that predicted its
    suggested class, and that onset's epoch."""
    predicted = run.channel("eval_pred").astype(np.int64)
    judged = predicted >= 0
    accuracy = ((predicted == run.given_labels[:, None]) & judged).sum(0) / np.maximum(judged.sum(0), 1)
    reached = np.flatnonzero(accuracy >= 1 - rate)
    onset = int(reached[0]) if len(reached) else predicted.shape[1] - 1
    early, seen = predicted[:, :onset + 1], judged[:, :onset + 1]
    return ((early == suggested[:, None]) & seen).sum(1) / np.maximum(seen.sum(1), 1), onset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("runs/calibration"), help="calibration.py's runs")
    args = parser.parse_args()
    pattern = re.compile(rf"(digits|shapes|blobs)-(uniform|pairflip|instance)-({'|'.join(RATES)})\.h5")
    totals: dict[str, dict[str, np.ndarray]] = defaultdict(lambda: defaultdict(lambda: np.zeros(3, dtype=int)))
    for path in sorted(args.cache.glob("*.h5")):
        if not pattern.fullmatch(path.name):
            continue
        detection = noisyctl.detect(path, save=False)
        if detection.estimate.get("evidence") == "none":
            continue  # correct relabels nothing where the run shows no clear sign of noise
        with RunFile(path) as run:
            suggested, share = suggestions(run)
            early, onset = early_share(run, suggested, detection.estimate["rate"])
            given, truth = run.given_labels, run.labels.true_labels
        line = [f"{path.stem:24s} onset {onset:2d}"]
        for name, sureness in (("all passes", share), ("before the onset", early)):
            sure = detection.flagged & (suggested != given) & (sureness >= BAR)
            counts = np.array([(sure & (given != truth) & (suggested == truth)).sum(), (sure & (given == truth)).sum(),
                               (sure & (given != truth) & (suggested != truth)).sum()])
            totals[path.stem.split("-")[0]][name] += counts
            line.append(f"{name}: {counts[0]} fixed, {counts[1]} broken, {counts[2]} wrong to wrong")
        print(" | ".join(line), flush=True)
    for dataset, readings in totals.items():
        print(dataset + ": " + "; ".join(f"{name}: {c[0]} fixed, {c[1]} broken, {c[2]} wrong to wrong"
                                         for name, c in readings.items()))


if __name__ == "__main__":
    main()
