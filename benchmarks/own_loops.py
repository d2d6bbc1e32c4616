"""The estimate and the 3% gate on runs recorded from a user's own PyTorch loop, written the ways
loops differ from ``noisyctl train``: mixup (the mixed logits handed to the Recorder, or the
un-mixed batch's), a sampler that draws with replacement, few epochs, few optimizer steps an
epoch, dropout, AdamW, label smoothing, an eval pass every fifth epoch, weight decay with a cosine
schedule. Each on scikit-learn's digits (a small CNN, as in docs/own-training-loop.md; an MLP for
the sampler), clean and with 5% of noisyctl's uniform noise, no held-out models.

Prints, per run, the true and estimated rate, the interval, the evidence, the gate's verdict and
the default detector's mAP, then how many clean runs read 1% or less and pass the gate, and how many
noisy ones are within max(0.5 points, 25%) and fail it. About 5 minutes a seed on 2 CPU cores.

    .venv/bin/python benchmarks/own_loops.py --seeds 0 1

Few optimizer steps a sample (fifty-sixth pass; about 4 and 3 minutes):

    .venv/bin/python benchmarks/own_loops.py --only "5 epochs" "8 epochs" "12 epochs" "batches of 128" \
        --seeds 0 1 2 --rates 0 0.02 0.05
    .venv/bin/python benchmarks/own_loops.py --only "batches of 256" "batches of 512" --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

import noisyctl
from noisyctl.detection import gate_verdict
from noisyctl.synth import synthesize

NOISY_TOLERANCE = (0.005, 0.25)
GATE = 0.03
# name: how the loop differs from the plain one (30 epochs, batches of 64, SGD, an eval pass each epoch)
LOOPS = {
    "plain": {},
    "mixup 0.2, mixed logits": {"mixup": 0.2},
    "mixup 1.0, mixed logits": {"mixup": 1.0},
    "mixup 0.2, un-mixed logits": {"mixup": 0.2, "unmixed": True},
    "weighted sampler (MLP)": {"weighted": True, "mlp": True},
    "5 epochs": {"epochs": 5},
    "8 epochs": {"epochs": 8},
    "60 epochs": {"epochs": 60},
    "batches of 512": {"batch": 512},
    "dropout 0.5": {"dropout": 0.5},
    "adamw": {"adamw": True},
    "label smoothing 0.1": {"smoothing": 0.1},
    "eval every 5th epoch": {"eval_every": 5},
    "weight decay, cosine": {"weight_decay": 5e-4, "cosine": True},
}
# few optimizer steps a sample (the fifty-sixth pass): run only when named with --only
FEW_UPDATE_LOOPS = {
    "12 epochs": {"epochs": 12},
    "batches of 128": {"batch": 128},
    "batches of 256": {"batch": 256},
    "adamw, 12 epochs": {"adamw": True, "epochs": 12},
    "adamw, 20 epochs": {"adamw": True, "epochs": 20},
    "adamw, batches of 128": {"adamw": True, "batch": 128},
    "adamw, batches of 256": {"adamw": True, "batch": 256},
}


def model_for(loop: dict, dropout: float) -> torch.nn.Module:
    if loop.get("mlp"):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 128), torch.nn.ReLU(),
                                   torch.nn.Linear(128, 10))
    return torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Dropout(dropout), torch.nn.Linear(16 * 64, 128), torch.nn.ReLU(),
                               torch.nn.Dropout(dropout), torch.nn.Linear(128, 10))


def record(loop: dict, rate: float, seed: int, out: Path) -> np.ndarray:
    """Train as ``loop`` says on digits with ``rate`` of the labels flipped (noisyctl's uniform
    noise), recording into ``out``; returns which labels are wrong."""
    inputs = torch.tensor(load_digits().images / 16.0, dtype=torch.float32).unsqueeze(1)
    noisy = synthesize({"name": "digits", "root": None, "options": {}}, "uniform", rate, seed=seed)
    labels = noisy.given_labels
    data = TensorDataset(inputs, torch.as_tensor(labels), torch.arange(len(labels)))
    epochs = loop.get("epochs", 30)
    torch.manual_seed(seed)
    model = model_for(loop, loop.get("dropout", 0.0))
    optimizer = (torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01) if loop.get("adamw") else
                 torch.optim.SGD(model.parameters(), lr=0.1 if loop.get("mlp") else 0.05, momentum=0.9,
                                 weight_decay=loop.get("weight_decay", 0.0)))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs) if loop.get("cosine") else None
    sampler = (WeightedRandomSampler(np.where(labels == 0, 5.0, 1.0), len(labels), replacement=True,
                                     generator=torch.Generator().manual_seed(seed)) if loop.get("weighted") else None)
    mix = torch.distributions.Beta(loop["mixup"], loop["mixup"]) if "mixup" in loop else None
    recorder = noisyctl.Recorder(out, labels, epochs=epochs, true_labels=noisy.true_labels,
                                 allow_partial=bool(loop.get("weighted")))
    for epoch in range(epochs):
        torch.manual_seed(1000 * seed + epoch)
        model.train()
        for x, y, index in DataLoader(data, batch_size=loop.get("batch", 64), shuffle=sampler is None, sampler=sampler):
            if mix is None:
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=loop.get("smoothing", 0.0))
                recorder.update(index, logits, y)
            else:
                share, partner = float(mix.sample()), torch.randperm(len(x))
                logits = model(share * x + (1 - share) * x[partner])
                loss = share * F.cross_entropy(logits, y) + (1 - share) * F.cross_entropy(logits, y[partner])
                if loop.get("unmixed"):
                    with torch.no_grad():
                        recorder.update(index, model(x), y)
                else:
                    recorder.update(index, logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if schedule is not None:
            schedule.step()
        if (epoch + 1) % loop.get("eval_every", 1) == 0 or epoch == epochs - 1:
            recorder.evaluate(model, DataLoader(data, batch_size=512))
        recorder.end_epoch()
    recorder.close()
    return noisy.given_labels != noisy.true_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="+",
                        help="loops to run (names as printed; default: all but the few-update ones)")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.05], help="noise rates (0: clean)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    console = Console(width=130)
    table = Table(title="a user's own loop on digits: the estimate and the 3% gate (no held-out models)")
    for column in ("loop", "seed", "true", "estimate", "interval", "evidence", "gate", "mAP"):
        table.add_column(column, justify="left" if column in ("loop", "evidence", "gate") else "right")
    clean, noisy = [], []
    with tempfile.TemporaryDirectory() as folder:
        for name, loop in {**LOOPS, **FEW_UPDATE_LOOPS}.items():
            if name not in (args.only or LOOPS):
                continue
            for seed in args.seeds:
                for rate in args.rates:
                    out = Path(folder) / f"run-{len(clean) + len(noisy)}.h5"
                    flip = record(loop, rate, seed, out)
                    found = noisyctl.detect(out, save=False)
                    estimate = found.estimate
                    gate = gate_verdict(estimate, found.scores[found.primary], fail_above=GATE)
                    verdict = ("passes" if gate["passed"] else "fails") + (", warns" if gate["warning"] else "")
                    average_precision = (found.metrics or {}).get(found.primary, {}).get("map")
                    truth = float(flip.mean())
                    table.add_row(name, str(seed), f"{truth:.1%}", f"{estimate['rate']:.1%}",
                                  f"{estimate['low']:.1%}-{estimate['high']:.1%}", estimate["evidence"], verdict,
                                  "-" if average_precision is None else f"{average_precision:.3f}")
                    if rate == 0:
                        clean.append((estimate["rate"] <= 0.01, gate["passed"]))
                    else:
                        tolerance = max(NOISY_TOLERANCE[0], NOISY_TOLERANCE[1] * truth)
                        noisy.append((abs(estimate["rate"] - truth) <= tolerance, truth, not gate["passed"]))
    console.print(table)
    console.print(f"clean runs: estimate <= 1%: {sum(low for low, _ in clean)}/{len(clean)}; the 3% gate passes: "
                  f"{sum(passed for _, passed in clean)}/{len(clean)}")
    above = [failed for _, truth, failed in noisy if truth > GATE]  # the gate's verdict where the truth is above it
    console.print(f"noisy runs: within max(0.5 points, 25%) of the truth: {sum(w for w, _, _ in noisy)}/{len(noisy)}; "
                  f"above 3%, the 3% gate fails: {sum(above)}/{len(above)}")


if __name__ == "__main__":
    main()
