"""noisyctl's detectors against the peers, side by side in one run.

Settings: digits (real handwritten digits) and shapes (an image dataset generated here, with a seed
the shipped learned detectors never saw), with uniform, pair-flip and instance-dependent noise at
20-45%, and uniform noise at 5%. For each setting one model trains with its dynamics recorded, and then:

- every noisyctl detector scores that single run;
- cleanlab, the way cleanlab recommends: its own get_label_quality_scores / find_label_issues on
  5-fold out-of-sample probabilities of the same model (5 more trainings, counted in its time);
- the `aum` package's AUMCalculator, fed the recorded training-mode margins of every presentation;
- Datumaro's EMA loss: datumaro 1.13 no longer ships its noisy-label analyzer (the module is empty),
  so noisyctl's `ema-loss` (alpha 0.001 per presentation, seeded with 0) stands for it.

Prints AUC, mAP, precision@k and wall time per method and setting, and whether noisyctl's default
detector (the first of `detect`'s defaults) has the best mAP. One run per setting moves mAP by a few
thousandths between seeds; `--seeds 3` gives the mean of three runs per setting (three times as long).

    .venv/bin/pip install aum && .venv/bin/python benchmarks/detectors.py    # ~10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from noisyctl import plugins
from noisyctl.data import load_dataset
from noisyctl.detection import DEFAULT_DETECTORS, make_detector, run_detector
from noisyctl.metrics import detection_metrics
from noisyctl.store import RunFile
from noisyctl.synth import synthesize
from noisyctl.training import Checkpoints, TrainOptions, out_of_fold_probabilities, train

SETTINGS = [
    # dataset, dataset options, noise, rate, train options
    ("digits", {}, "uniform", 0.45, {"epochs": 30}),
    ("digits", {}, "pairflip", 0.2, {"epochs": 30}),
    ("digits", {}, "instance", 0.3, {"epochs": 30}),
    ("shapes", {"seed": 100}, "uniform", 0.3, {"epochs": 20}),
    ("shapes", {"seed": 101}, "pairflip", 0.4, {"epochs": 20}),
    ("shapes", {"seed": 102}, "instance", 0.25, {"epochs": 20}),
    # Little noise, as in many real datasets: the mislabeled samples share the top few percent of
    # ranks, where a detector has to order them finely.
    ("digits", {}, "uniform", 0.05, {"epochs": 30}),
    ("shapes", {"seed": 103}, "uniform", 0.05, {"epochs": 20}),
]


DATUMARO = "Datumaro EMA loss (= noisyctl ema-loss)"


def cleanlab_five_fold(labels, data, options, folder: Path):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    probs = out_of_fold_probabilities(labels, data, TrainOptions(**{**options.__dict__, "folds": 5}),
                                      Checkpoints(folder / "folds.h5"))
    probs = np.clip(probs.astype(np.float64), 1e-12, None)
    probs /= probs.sum(axis=1, keepdims=True)
    quality = get_label_quality_scores(labels.given_labels, probs)
    issues = find_label_issues(labels.given_labels, probs, n_jobs=1)  # no forked pool beside torch's threads
    return 1.0 - quality, issues


def aum_package(run: RunFile, folder: Path) -> np.ndarray:
    """The aum package's AUM from the recorded margins: logits with z_y = margin and 0 elsewhere
    have exactly that margin."""
    import pandas as pd
    from aum import AUMCalculator

    calculator = AUMCalculator(str(folder / "aum"), compressed=True)
    margins = run.channel("train_margin")
    targets = torch.as_tensor(run.given_labels)
    ids = list(range(run.num_samples))
    for epoch in range(margins.shape[1]):
        logits = torch.zeros(run.num_samples, run.num_classes)
        logits[torch.arange(run.num_samples), targets] = torch.from_numpy(margins[:, epoch].astype(np.float32))
        calculator.update(logits, targets, ids)
    calculator.finalize()
    table = pd.read_csv(folder / "aum" / "aum_values.csv").set_index("sample_id")
    return -table.loc[ids, "aum"].to_numpy()


def score_setting(name, dataset_options, noise, rate, train_options, seed, detectors):
    """Every method's metrics and seconds on one run of a setting (noise and training seeded ``seed``),
    the seconds that run took to train, and its number of samples."""
    spec = {"name": name, "root": None, "options": dataset_options}
    data = load_dataset(spec)
    labels = synthesize(spec, noise, rate, seed=seed)
    options = TrainOptions(seed=seed, **train_options)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        train(labels, data, options, folder / "run.h5")
        train_seconds = time.perf_counter() - started
        truth = labels.is_noisy
        with RunFile(folder / "run.h5") as run:
            for detector in detectors:
                if run.lacking(make_detector(detector, {})[0].reads):
                    continue  # reweight scores only runs trained with that strategy
                outcome = run_detector(run, detector)
                rows.append((f"noisyctl {detector}", outcome.metrics, outcome.seconds))
                if detector == "ema-loss":  # Datumaro's formula; datumaro no longer ships it
                    rows.append((DATUMARO, outcome.metrics, outcome.seconds))
            started = time.perf_counter()
            scores = aum_package(run, folder)
            rows.append(("aum package (AUMCalculator)", detection_metrics(truth, scores),
                         time.perf_counter() - started))
        started = time.perf_counter()
        scores, issues = cleanlab_five_fold(labels, data, options, folder)
        rows.append(("cleanlab, 5-fold out-of-sample", detection_metrics(truth, scores, issues),
                     time.perf_counter() - started))
    return rows, train_seconds, len(labels.ids)


def averaged(runs: list) -> tuple[dict, float]:
    """One method's mean metrics and mean seconds over its runs, given as (metrics, seconds) pairs."""
    keys = [key for key in ("map", "auc", "precision_at_k", "flagged") if key in runs[0][0]]
    return ({key: float(np.mean([metrics[key] for metrics, _ in runs])) for key in keys},
            float(np.mean([seconds for _, seconds in runs])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", type=int, nargs="*", help="run only these setting numbers (1-based)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="runs per setting, with noise and training seeded n, n+10, n+20, ... (setting n); "
                             "the tables give the mean over them")
    args = parser.parse_args()
    console = Console(width=130)
    detectors = [d for d in plugins.registry().names("detector")]
    default = DEFAULT_DETECTORS[0]
    verdicts = []
    for number, (name, dataset_options, noise, rate, train_options) in enumerate(SETTINGS, start=1):
        if args.only and number not in args.only:
            continue
        per_method: dict[str, list] = {}
        train_seconds = []
        for seed in range(number, number + 10 * args.seeds, 10):
            rows, seconds, samples = score_setting(name, dataset_options, noise, rate, train_options, seed, detectors)
            train_seconds.append(seconds)
            for method, metrics, took in rows:
                per_method.setdefault(method, []).append((metrics, took))
        mean = {method: averaged(runs) for method, runs in per_method.items()}
        over_runs = f"mean of {args.seeds} runs, " if args.seeds > 1 else ""
        table = Table(title=f"{number}. {name} {noise} {rate:.0%} ({over_runs}{samples:,} samples, "
                            f"{train_options['epochs']} epochs small-cnn; one run took {np.mean(train_seconds):.1f} s)")
        for column in ("method", "mAP", "AUC", "P@k", "flagged", "seconds"):
            table.add_column(column, justify="left" if column == "method" else "right")
        best_map = max(m["map"] for m, _ in mean.values())
        peers_best = max(m["map"] for method, (m, _) in mean.items() if not method.startswith("noisyctl "))
        for method, (m, seconds) in sorted(mean.items(), key=lambda r: -r[1][0]["map"]):
            style = "bold green" if m["map"] == best_map else ""
            flagged = f"{m['flagged']:.0f}" if "flagged" in m else "-"
            table.add_row(method, f"{m['map']:.3f}", f"{m['auc']:.3f}", f"{m['precision_at_k']:.3f}",
                          flagged, f"{seconds:.2f}", style=style)
        console.print(table)
        default_map = mean[f"noisyctl {default}"][0]["map"]
        verdicts.append((f"{name} {noise} {rate:.0%}", default_map, peers_best, default_map >= best_map))
    summary = Table(title=f"noisyctl's default detector ({default}) against the best peer")
    for column in ("setting", f"{default} mAP", "best peer mAP", "best of all?"):
        summary.add_column(column)
    for setting, ours, peer, best in verdicts:
        summary.add_row(setting, f"{ours:.4f}", f"{peer:.4f}", "yes" if best else "no")
    console.print(summary)


if __name__ == "__main__":
    main()
