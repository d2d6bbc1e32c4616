"""Detectors on a large run file: 1,000,000 samples x 100 epochs, generated here.

Targets (issue 4): each hand-crafted detector scores the file in at most 10 s on 2 cores with peak
memory at most 1.5 GB, streaming from HDF5; the learned detectors in at most 2 minutes. Each
detector runs in a fresh process, so its peak resident memory (the interpreter and its imports
included) is its own. The `aum` package computes AUM on the same margins for comparison; it
keeps a Python record per sample and update, so it runs on a subset and its full time is scaled
linearly from it (printed as such).

    .venv/bin/python benchmarks/large_file.py                 # writes ~3 GB under /tmp
    .venv/bin/python benchmarks/large_file.py --samples 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from rich.console import Console
from rich.table import Table

from noisyctl.store import RUN, Labels, create_field, new_file, write_field

HAND_CRAFTED = ["loss", "ema-loss", "aum", "forgetting", "datamap", "gmm-loss"]
LEARNED = ["learned", "lstm"]
BLOCK = 65536


def generate(path: Path, samples: int, epochs: int, classes: int = 10, noise: float = 0.2, seed: int = 0) -> None:
    """A run file whose dynamics look like training's: clean samples are learned early, mislabeled
    ones late or never; written a block of samples at a time."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, classes, samples)
    noisy = rng.random(samples) < noise
    given = np.where(noisy, (true + rng.integers(1, classes, samples)) % classes, true)
    labels = Labels(ids=[f"s{i:07d}" for i in range(samples)], given_labels=given,
                    class_names=[str(c) for c in range(classes)],
                    dataset={"name": "generated", "root": None, "options": {}}, true_labels=true)
    t = np.arange(epochs, dtype=np.float32)[None, :]
    with h5py.File(path, "w") as h5:
        new_file(h5, RUN, num_epochs=epochs, dataset=labels.dataset, plugins={},
                 training={"model": "generated", "epochs": epochs})
        labels.write(h5)
        for name in ("train_loss", "train_accuracy", "learning_rate", "seconds"):
            write_field(h5, f"epochs/{name}", np.zeros(epochs))
        fields = {name: create_field(h5, f"dynamics/{name}", (samples, epochs))
                  for name in ("train_loss", "train_margin", "train_step", "eval_loss", "eval_prob",
                               "eval_margin", "eval_pred")}
        for start in range(0, samples, BLOCK):
            rows = slice(start, min(start + BLOCK, samples))
            n = rows.stop - rows.start
            learned_at = np.where(noisy[rows], rng.uniform(0.3, 1.5, n), rng.uniform(0.0, 0.3, n)) * epochs
            hardness = rng.uniform(0.5, 2.5, n)[:, None]
            loss = hardness / (1 + np.exp((t - learned_at[:, None]) / 4)) + rng.gamma(1.0, 0.05, (n, epochs))
            loss = loss.astype(np.float32)
            margin = (1.5 - loss * 2 + rng.normal(0, 0.3, (n, epochs))).astype(np.float32)
            fields["train_loss"][rows] = loss
            fields["train_margin"][rows] = margin
            fields["train_step"][rows] = np.broadcast_to(t.astype(np.int32) * (samples // 128), (n, epochs))
            eval_loss = (loss * 0.9).astype(np.float32)
            fields["eval_loss"][rows] = eval_loss
            fields["eval_prob"][rows] = np.exp(-eval_loss)
            fields["eval_margin"][rows] = margin + 0.1
            right = margin > 0
            other = (given[rows] + 1 + rng.integers(0, classes - 1, n)) % classes
            fields["eval_pred"][rows] = np.where(right, given[rows][:, None], other[:, None]).astype(np.int32)


SCORE = """
import json, resource, sys, time
from noisyctl.detection import run_detector
from noisyctl.store import RunFile
with RunFile(sys.argv[1]) as run:
    started = time.perf_counter()
    outcome = run_detector(run, sys.argv[2])
    seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "auc": outcome.metrics["auc"], "map": outcome.metrics["map"],
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def score_in_fresh_process(path: Path, detector: str) -> dict:
    done = subprocess.run([sys.executable, "-c", SCORE, str(path), detector], capture_output=True, text=True,
                          env={"NOISYCTL_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"})
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout)


def aum_package_seconds(path: Path, samples: int) -> float:
    import torch
    from aum import AUMCalculator

    with h5py.File(path) as h5:
        margins = h5["dynamics/train_margin"][:samples]
        targets = torch.as_tensor(h5["samples/given_label"][:samples].astype(np.int64))
    classes = int(targets.max()) + 1
    ids = list(range(samples))
    with tempfile.TemporaryDirectory() as folder:
        calculator = AUMCalculator(folder, compressed=True)
        started = time.perf_counter()
        for epoch in range(margins.shape[1]):
            logits = torch.zeros(samples, classes)
            logits[torch.arange(samples), targets] = torch.from_numpy(margins[:, epoch])
            calculator.update(logits, targets, ids)
        calculator.finalize()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--aum-samples", type=int, default=50_000, help="subset the aum package runs on")
    parser.add_argument("--detectors", nargs="*", default=HAND_CRAFTED + LEARNED)
    args = parser.parse_args()
    console = Console(width=120)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large.h5"
        started = time.perf_counter()
        generate(path, args.samples, args.epochs)
        console.print(f"generated {args.samples:,} x {args.epochs} in {time.perf_counter() - started:.0f} s: "
                      f"{path.stat().st_size / 2**30:.2f} GiB")
        table = Table(title=f"{args.samples:,} samples x {args.epochs} epochs, 2 CPU cores, one fresh process each")
        for column in ("detector", "seconds", "peak memory", "target", "AUC", "mAP"):
            table.add_column(column, justify="left" if column == "detector" else "right")
        results = {}
        for detector in args.detectors:
            r = results[detector] = score_in_fresh_process(path, detector)
            seconds_target = 10 if detector in HAND_CRAFTED else 120
            met = r["seconds"] <= seconds_target and (detector in LEARNED or r["peak_mb"] <= 1536)
            target = f"<= {seconds_target} s" + (", 1.5 GB" if detector in HAND_CRAFTED else "")
            table.add_row(detector, f"{r['seconds']:.1f}", f"{r['peak_mb']:,.0f} MB",
                          f"[{'green' if met else 'red'}]{target}[/]", f"{r['auc']:.3f}", f"{r['map']:.3f}")
        console.print(table)
        if "aum" not in results:
            return
        subset = min(args.aum_samples, args.samples)
        package = aum_package_seconds(path, subset) * args.samples / subset
        ours = results["aum"]["seconds"]
        console.print(f"aum package on the same margins: {package:.0f} s for {args.samples:,} samples (measured on "
                      f"{subset:,}, scaled linearly); noisyctl aum: {ours:.1f} s; ratio {package / ours:.0f}x")


if __name__ == "__main__":
    main()
