"""An example noisyctl plugin: one detector and one noise type.

A plugin is a module with ``@hookimpl`` functions named after the hooks in
``noisyctl.hookspecs``; each gets a ``register`` callback. Use only
``noisyctl.api``: it is the stable surface.
"""

from __future__ import annotations

import numpy as np

from noisyctl.api import BlockDetector, NoiseContext, NoisyctlError, check_rate, hookimpl


class DisagreementDetector(BlockDetector):
    """Share of epochs whose eval-mode prediction disagrees with the given label; flags over one half."""

    reads = ("eval_pred",)

    def __init__(self, threshold: float | str = 0.5) -> None:
        self.threshold = float(threshold)

    def score(self, dynamics):
        result = super().score(dynamics)  # streams blocks of samples through score_block
        result.flagged = result.scores > self.threshold
        result.info["threshold"] = self.threshold
        return result

    def score_block(self, block):
        return (block["eval_pred"] != block["given_label"][:, None]).mean(axis=1)


def collapse(context: NoiseContext, rate: float | None, target: str | int = 0) -> np.ndarray:
    """Exactly round(rate*N) samples of the other classes are relabeled to one target class."""
    rate = check_rate(0.1 if rate is None else rate)  # None: the user gave no --rate
    target_class = context.class_index(target)
    labels = context.labels
    others = np.flatnonzero(labels != target_class)
    count = int(round(rate * len(labels)))
    if count > len(others):
        raise NoisyctlError(f"collapse: only {len(others)} samples are not of class '{target}'")
    chosen = context.rng.choice(others, size=count, replace=False)
    noisy = labels.copy()
    noisy[chosen] = target_class
    return noisy


@hookimpl
def register_detectors(register):
    register("disagreement", DisagreementDetector)


@hookimpl
def register_noise(register):
    register("collapse", collapse)
