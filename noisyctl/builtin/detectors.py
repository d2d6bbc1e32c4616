"""Built-in detectors over recorded dynamics. Higher score = more likely mislabeled."""

from __future__ import annotations

import numpy as np

from noisyctl.api import BlockDetector, NoisyctlError, hookimpl


class LossDetector(BlockDetector):
    """Mean training-mode loss of the given label over all presentations."""

    channels = ("train_loss",)

    def score_block(self, block):
        return block["train_loss"].mean(axis=1, dtype=np.float64)


class EmaLossDetector(BlockDetector):
    """Datumaro's EMA of the per-presentation loss (alpha 0.001, seeded with 0); score = last value."""

    channels = ("train_loss",)

    def __init__(self, alpha: float | str = 0.001) -> None:
        self.alpha = float(alpha)
        if not 0.0 < self.alpha <= 1.0:
            raise NoisyctlError(f"ema-loss: alpha {self.alpha} is outside (0, 1]")

    def score_block(self, block):
        losses = block["train_loss"].astype(np.float64)
        # ema_T = sum_t alpha (1-alpha)^(T-1-t) loss_t, the closed form of the recursion from ema_0 = 0.
        steps = losses.shape[1]
        weights = self.alpha * (1.0 - self.alpha) ** np.arange(steps - 1, -1, -1)
        return losses @ weights


class AumDetector(BlockDetector):
    """Area under the margin (Pleiss et al. 2020): mean training-mode logit margin; score = -AUM."""

    channels = ("train_margin",)

    def score_block(self, block):
        return -block["train_margin"].mean(axis=1, dtype=np.float64)


@hookimpl
def register_detectors(register):
    register("loss", LossDetector)
    register("ema-loss", EmaLossDetector)
    register("aum", AumDetector)
