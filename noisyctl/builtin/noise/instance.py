"""Instance-dependent noise: a sample flips toward the class it is genuinely confusable with,
and harder samples flip more often (the noise closest to real annotation mistakes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from noisyctl.api import NoiseContext, NoisyctlError, check_rate

DEFAULT_RATE = 0.2


def _inputs(context: NoiseContext, max_features: int) -> np.ndarray:
    """Every training input as a flat vector, images average-pooled down to about max_features values."""
    import torch
    import torch.nn.functional as F

    samples = context.dataset.train
    rows = []
    for start in range(0, len(samples), 512):
        batch = torch.stack([samples[i][0] for i in range(start, min(start + 512, len(samples)))]).float()
        if batch.dim() == 4:
            channels, height, width = batch.shape[1:]
            side = max(1, int((max_features / channels) ** 0.5))
            if side < min(height, width):
                batch = F.adaptive_avg_pool2d(batch, side)
        rows.append(batch.flatten(1).numpy())
    return np.concatenate(rows)


def reference_probabilities(context: NoiseContext, max_features: int, annotator: int | None = None) -> np.ndarray:
    """Out-of-sample class probabilities of a logistic regression on the inputs (5-fold); with
    ``annotator``, of one fitted on that many samples of each class, drawn at random (a weak
    annotator: its confusions cover whole regions of the inputs)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if context.dataset is None:
        raise NoisyctlError("instance noise needs the dataset's inputs or reference probabilities (probs=FILE.npy)")
    x = _inputs(context, max_features)
    labels = context.labels
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=0.1))
    if annotator is not None:
        fitted = np.concatenate([context.rng.permutation(np.flatnonzero(labels == c))[:annotator]
                                 for c in range(context.num_classes)])
        if len(np.unique(labels[fitted])) < context.num_classes:
            raise NoisyctlError("instance noise: annotator needs a sample of every class")
        probs = np.zeros((len(labels), context.num_classes))
        probs[:, np.unique(labels[fitted])] = model.fit(x[fitted], labels[fitted]).predict_proba(x)
        return probs
    folds = min(5, int(np.bincount(labels).min()))
    if folds < 2:
        raise NoisyctlError("instance noise needs at least 2 samples of every class for its reference model")
    cv = StratifiedKFold(folds, shuffle=True, random_state=int(context.rng.integers(2**31)))
    return cross_val_predict(model, x, labels, cv=cv, method="predict_proba")


def _load_probs(path, context: NoiseContext) -> np.ndarray:
    path = Path(path)
    try:
        probs = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise NoisyctlError(f"cannot read reference probabilities {path}: {exc}") from None
    expected = (len(context.labels), context.num_classes)
    if probs.shape != expected:
        raise NoisyctlError(f"{path} holds {probs.shape} probabilities; expected {expected} (samples x classes)")
    return probs.astype(np.float64)


def instance(context: NoiseContext, rate: float | None, probs=None, max_features: int = 256,
             annotator: int | None = None) -> np.ndarray:
    """Instance-dependent: exactly round(rate*N) flips, each to the sample's most confusable class, hard samples
    first; with ``annotator=K``, as a weak annotator trained on K samples a class confuses them."""
    rate = DEFAULT_RATE if rate is None else rate
    labels = context.labels
    if annotator is not None:
        annotator = int(annotator)
        if annotator < 1 or probs is not None:
            raise NoisyctlError("instance noise: annotator is a number of samples a class (1 or more), not with probs")
    p = _load_probs(probs, context) if probs is not None else reference_probabilities(context, int(max_features),
                                                                                      annotator)
    rows = np.arange(len(labels))
    hardness = 1.0 - p[rows, labels]
    others = p.copy()
    others[rows, labels] = -np.inf
    confusable = others.argmax(axis=1)
    count = int(round(check_rate(rate) * len(labels)))
    # Weighted draw without replacement by the reference model's odds of being wrong: the harder
    # a sample, the likelier it flips, and confidently easy samples almost never do.
    weights = (hardness + 1e-3) / np.maximum(1.0 - hardness, 1e-3)
    chosen = context.rng.choice(len(labels), size=count, replace=False, p=weights / weights.sum())
    noisy = labels.copy()
    noisy[chosen] = confusable[chosen]
    return noisy
