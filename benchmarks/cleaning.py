"""Does cleaning pay? Clean test accuracy of models trained on noisy labels, after each way
noisyctl has to clean them, and on the true labels, side by side in one run.

For each setting (digits with a quarter held out; generated shapes with its own test subset),
with the same model, seed and schedule:

- noisy: the given (noisy) labels;
- prune: `detect` with the default detectors, `prune --auto` (the default detector's own flags), retrain;
- relabel knn: `correct -c knn --apply` on those flags, retrain;
- relabel retrained: `correct -c retrained --apply` (a model trained without the flagged samples
  proposes their labels; the unsure ones keep theirs), retrain;
- reweight: `train --strategy reweight` against 10 reviewed samples per class;
- self-learning: `train --strategy self-learning`;
- true: `train --true-labels`, the ceiling.

Prints test accuracy after the last epoch, the share of the noisy-to-true gap each method
closed, how many wrong labels were left for the prune and relabel runs, and for each relabeler:
of the truly mislabeled samples it relabeled, the share set right; of the right labels, the share
it broke; and how many it was not sure of (left for review).

    .venv/bin/python benchmarks/cleaning.py        # ~12 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import h5py
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from noisyctl.cli import create_app

SETTINGS = [
    ("digits", {"test_fraction": 0.25}, "uniform", 0.4, 20),
    ("digits", {"test_fraction": 0.25}, "pairflip", 0.3, 20),
    ("shapes", {"seed": 200}, "uniform", 0.3, 20),
    ("shapes", {"seed": 201}, "instance", 0.3, 20),
    ("digits", {"test_fraction": 0.25}, "instance", 0.1, 20),
]
RELABELERS = ("knn", "retrained")


def noisyctl(*args) -> dict:
    result = CliRunner().invoke(create_app(), [str(a) for a in args] + ["--json"])
    if result.exit_code != 0:
        raise SystemExit(f"noisyctl {' '.join(map(str, args))} failed: {result.stderr or result.stdout}")
    return json.loads(result.stdout)


def judged(correction: dict) -> str:
    """Of the truly mislabeled samples a corrector relabeled, the share set right; of the right
    labels, the share it broke (relabeled to something else)."""
    with h5py.File(correction["source"]) as h5:
        given, truth = h5["samples/given_label"][:], h5["samples/true_label"][:]
    with h5py.File(correction["applied"]["out"]) as h5:
        new = h5["samples/given_label"][:]
    changed = new != given
    noisy_changed = changed & (given != truth)
    right = float((new[noisy_changed] == truth[noisy_changed]).mean()) if noisy_changed.any() else float("nan")
    broken = float((changed & (given == truth)).sum() / max(1, (given == truth).sum()))
    return f"{right:.0%} / {broken:.2%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", type=int, nargs="*", help="run only these setting numbers (1-based)")
    args = parser.parse_args()
    console = Console(width=200)
    table = Table(title="clean test accuracy after the last epoch (share of the noisy -> true gap closed)")
    methods = ("noisy", "prune", *(f"relabel {r}" for r in RELABELERS), "reweight", "self-learning", "true")
    table.add_column("setting")
    for method in methods:
        table.add_column(method, justify="right")
    table.add_column("wrong labels left: noisy / prune / " + " / ".join(RELABELERS), justify="right")
    for r in RELABELERS:
        table.add_column(f"{r}: set right / broke (review)", justify="right")
    for number, (name, options, noise, rate, epochs) in enumerate(SETTINGS, start=1):
        if args.only and number not in args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            dataset_options = [f"-D{k}={v}" for k, v in options.items()]
            synth = noisyctl("synth", "-d", name, *dataset_options, "-n", noise, "-r", rate, "--seed", number,
                             "--reviewed-per-class", 10, "-o", d / "labels.h5")
            common = ["-e", epochs, "--seed", number, "-q", "--restart"]
            accuracy = {}
            accuracy["noisy"] = noisyctl("train", "-l", d / "labels.h5", *common, "-o", d / "noisy.h5")
            accuracy["true"] = noisyctl("train", "-l", d / "labels.h5", *common, "--true-labels", "-o", d / "true.h5")
            noisyctl("detect", d / "noisy.h5", "-k", 0)
            pruned = noisyctl("prune", d / "noisy.h5", "--auto", "-o", d / "pruned.labels.h5")
            accuracy["prune"] = noisyctl("train", "-l", d / "pruned.labels.h5", *common, "-o", d / "pruned.h5")
            relabeled = {}
            for r in RELABELERS:
                relabeled[r] = noisyctl("correct", d / "noisy.h5", "-c", r, "--apply", "-o", d / f"{r}.labels.h5")
                relabeled[r]["source"] = d / "labels.h5"
                relabeled[r]["judged"] = judged(relabeled[r]) + f" ({relabeled[r]['decided']['review']:,})"
                accuracy[f"relabel {r}"] = noisyctl("train", "-l", d / f"{r}.labels.h5", *common, "-o",
                                                    d / f"relabel-{r}.h5")
            accuracy["reweight"] = noisyctl("train", "-l", d / "labels.h5", *common, "--strategy", "reweight",
                                            "--trusted", d / "labels.h5", "-o", d / "reweight.h5")
            accuracy["self-learning"] = noisyctl("train", "-l", d / "labels.h5", *common, "--strategy",
                                                 "self-learning", "-o", d / "self-learning.h5")
        test = {m: accuracy[m]["last_epoch"]["test_accuracy"] for m in methods}
        gap = test["true"] - test["noisy"]
        cells = [f"{test[m]:.1%}" + ("" if m in ("noisy", "true") or gap <= 0 else
                                     f" ({(test[m] - test['noisy']) / gap:+.0%})") for m in methods]
        left = " / ".join([f"{synth['flipped']:,}", f"{pruned['quality']['noisy_left']:,}",
                           *(f"{relabeled[r]['applied']['noisy_after']:,}" for r in RELABELERS)])
        table.add_row(f"{number}. {name} {noise} {rate:.0%}", *cells, left, *(relabeled[r]["judged"] for r in RELABELERS))
        console.print(f"setting {number} done: " + ", ".join(f"{m} {test[m]:.1%}" for m in methods)
                      + "; " + ", ".join(f"{r} {relabeled[r]['judged']}" for r in RELABELERS))
    console.print(table)


if __name__ == "__main__":
    main()
