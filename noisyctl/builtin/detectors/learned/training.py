"""Training a learned detector on runs whose noise was synthesized (so the truth is known)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from noisyctl.api import NOISYCTL_VERSION, NoisyctlError, open_run

from .features import FEATURE_SETS, STEPS
from .network import MAX_HIDDEN, MAX_MEMBERS, load_weights, network, predict, save_weights


def train_detector(runs: list[Path], kind: str, out: Path, *, epochs: int = 10, batch_size: int = 64,
                   lr: float = 1e-3, seed: int = 0, holdout: float = 0.1, members: int = 1, hidden: int = 64,
                   crop: float = 1.0, fine_tune: Path | None = None, progress=None) -> dict[str, Any]:
    """Train a detector on runs whose truth is known: ``members`` networks, member ``i`` with seed
    ``seed + i`` (initialisation, hold-out split, order), each kept at its epoch of best hold-out mAP.

    ``crop`` below 1 cuts each training sequence to a random first share in [crop, 1] of its run,
    resampled back to the full steps: the detector then also sees runs stopped early, before the
    model fits the noise, which made it transfer better to runs unlike its training runs."""
    feature_set = FEATURE_SETS[kind]
    if not (1 <= members <= MAX_MEMBERS and 1 <= hidden <= MAX_HIDDEN):
        raise NoisyctlError(f"a detector has 1 to {MAX_MEMBERS} members of 1 to {MAX_HIDDEN} hidden units")
    if epochs < 1 or batch_size < 1:
        raise NoisyctlError(f"train a detector for at least one epoch in batches of at least one sample "
                            f"(epochs {epochs}, batch size {batch_size})")
    if not (lr > 0 and math.isfinite(lr)):
        raise NoisyctlError(f"the learning rate must be a positive number, not {lr}")
    if not 0 < crop <= 1:
        raise NoisyctlError(f"crop is the shortest share of a run to train on, in (0, 1]; got {crop}")
    inputs, targets, sources = [], [], []
    say = progress or (lambda text, done, total: None)
    for number, path in enumerate(runs, start=1):
        say(f"reading {Path(path).name}", number - 1, len(runs))
        with open_run(path) as run:
            truth = run.labels.is_noisy
            if truth is None:
                raise NoisyctlError(f"{path} has no known truth: train detectors on runs of synthesized noise")
            lacking = run.lacking(feature_set.channels)
            if lacking:
                raise NoisyctlError(f"a {kind} detector learns from {lacking}")
            inputs.append(feature_set.compute(run))
            targets.append(truth.astype(np.int64))
            sources.append({"run": Path(path).name, "dataset": run.labels.dataset.get("name"),
                            "noise": (run.labels.noise or {}).get("name"), "samples": run.num_samples,
                            "epochs": run.num_epochs, "noisy": float(truth.mean())})
    x, y = np.concatenate(inputs).astype(np.float32), np.concatenate(targets)
    if y.min() == y.max():
        raise NoisyctlError("the runs need both clean and mislabeled samples to learn from")
    starts: list = [None] * members
    if fine_tune is not None:
        tuned, meta = load_weights(fine_tune, kind)
        starts = [tuned[i % len(tuned)] for i in range(members)]
        hidden = meta.get("hidden", 64)
    trained, held_out = [], []
    for member, start in enumerate(starts):
        which = f"member {member + 1}/{members}, " if members > 1 else ""

        def report(text, done, total, which=which):
            say(which + text, done, total)

        member_network, best = _fit(x, y, seed + member, holdout, epochs, batch_size, lr, hidden, crop, start, report)
        trained.append(member_network)
        held_out.append(best)
    summary = {"map": float(np.mean([b["map"] for b in held_out])),
               "auc": float(np.mean([b["auc"] for b in held_out])) if all(b["auc"] for b in held_out) else None,
               "epoch": [b["epoch"] for b in held_out]}
    if members == 1:
        summary["epoch"] = summary["epoch"][0]
    meta = {"kind": kind, "features": feature_set.names, "steps": STEPS, "hidden": hidden,
            "layers": 2, "noisyctl_version": NOISYCTL_VERSION, "trained_on": sources,
            "crop": crop, "holdout": {"share": holdout, **summary}, "fine_tuned_from": str(fine_tune) if fine_tune else None}
    save_weights(Path(out), trained, meta)
    return {"out": str(out), "kind": kind, "samples": int(len(y)), "members": members, "runs": sources,
            "holdout": meta["holdout"]}


def _crop(batch, shortest: float):
    """Each sequence of a ``[B, steps, features]`` batch cut to its first share in [shortest, 1] and
    linearly resampled back to ``steps``. As the features are resampled epochs, running means
    included, this is close to the features the run would have had, had it stopped there."""
    import torch

    count, steps, _ = batch.shape
    share = shortest + (1 - shortest) * torch.rand(count, 1)
    position = torch.linspace(0, 1, steps)[None, :] * share * (steps - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=steps - 1)
    weight = (position - low)[..., None]
    rows = torch.arange(count)[:, None]
    return (1 - weight) * batch[rows, low] + weight * batch[rows, high]


def _fit(x: np.ndarray, y: np.ndarray, seed: int, holdout: float, epochs: int, batch_size: int, lr: float,
         hidden: int, crop: float, start, progress) -> tuple[Any, dict[str, Any]]:
    """One member network, at the epoch of its best mAP on a hold-out share of the samples."""
    import torch
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    cut = max(1, int(round(holdout * len(y))))
    held, fit = order[:cut], order[cut:]
    torch.manual_seed(seed)
    if start is not None:
        model = start.train()
    else:
        model = network(x.shape[2], hidden)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    x_fit, y_fit = torch.from_numpy(x[fit]), torch.from_numpy(y[fit])
    best: dict[str, Any] = {"map": -1.0}
    for epoch in range(epochs):
        model.train()
        shuffle = torch.randperm(len(fit))
        steps = range(0, len(fit), batch_size)
        for step, first in enumerate(steps):
            if step % max(1, len(steps) // 50) == 0:
                progress(f"epoch {epoch + 1}/{epochs}", step, len(steps))
            batch = shuffle[first:first + batch_size]
            inputs = x_fit[batch] if crop >= 1 else _crop(x_fit[batch], crop)
            loss = torch.nn.functional.cross_entropy(model(inputs), y_fit[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        scores = predict([model], x[held])
        held_map = float(average_precision_score(y[held], scores)) if 0 < y[held].sum() < len(held) else 0.0
        if held_map > best["map"]:
            best = {"map": held_map, "auc": float(roc_auc_score(y[held], scores)) if held_map else None,
                    "epoch": epoch + 1, "state": {k: v.clone() for k, v in model.state_dict().items()}}
        progress(f"epoch {epoch + 1}/{epochs}: hold-out mAP {held_map:.3f}", len(steps), len(steps))
    model.load_state_dict(best.pop("state"))
    return model.eval(), best
