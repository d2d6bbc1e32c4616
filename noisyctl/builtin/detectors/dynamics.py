"""Hand-crafted detectors over recorded dynamics. Higher score = more likely mislabeled."""

from __future__ import annotations

import numpy as np

from noisyctl.api import (BlockDetector, Detector, DetectorResult, NoisyctlError, gmm_noisy_posterior, open_run,
                          presented_mean)


class LossDetector(BlockDetector):
    """Mean training-mode loss of the given label over all presentations."""

    reads = ("train_loss",)

    def score_block(self, block):
        return presented_mean(block["train_loss"])


class EmaLossDetector(BlockDetector):
    """Datumaro's EMA of the per-presentation loss (alpha 0.001, seeded with 0); score = last value."""

    reads = ("train_loss",)

    def __init__(self, alpha: float | str = 0.001) -> None:
        self.alpha = float(alpha)
        if not 0.0 < self.alpha <= 1.0:
            raise NoisyctlError(f"ema-loss: alpha {self.alpha} is outside (0, 1]")

    def score_block(self, block):
        losses = block["train_loss"].astype(np.float64)
        # ema_T = sum_t alpha (1-alpha)^(T-1-t) loss_t, the closed form of the recursion from ema_0 = 0.
        steps = losses.shape[1]
        seen = ~np.isnan(losses)
        if seen.all():
            return losses @ (self.alpha * (1.0 - self.alpha) ** np.arange(steps - 1, -1, -1))
        # A sample presented fewer times (NaN-padded, imported): the recursion over its own presentations.
        order = np.cumsum(seen, axis=1) - 1
        exponent = seen.sum(axis=1, keepdims=True) - 1 - order
        weights = np.where(seen, self.alpha * (1.0 - self.alpha) ** np.maximum(exponent, 0), 0.0)
        scores = (np.where(seen, losses, 0.0) * weights).sum(axis=1)
        return np.where(seen.any(axis=1), scores, np.nan)


class AumDetector(BlockDetector):
    """Area under the margin (Pleiss et al. 2020): mean training-mode logit margin; score = -AUM; flags with threshold samples."""

    reads = ("train_margin",)

    def __init__(self, pair: str | None = None, percentile: float | str = 99.0) -> None:
        self.pair = pair
        self.percentile = float(percentile)

    def score_block(self, block):
        return -presented_mean(block["train_margin"])

    def score(self, dynamics) -> DetectorResult:
        """With threshold samples (train --aum-threshold-set), flag every sample whose AUM is below
        the given percentile of theirs; with ``pair`` (the run of the other set) cover every sample."""
        result = super().score(dynamics)
        threshold = getattr(dynamics, "threshold_samples", None)
        if threshold is None or not threshold.any():
            if self.pair:
                raise NoisyctlError("aum pair needs a run trained with --aum-threshold-set")
            return result
        result.flagged, result.info["aum_threshold"] = self._flags(result.scores, threshold)
        if self.pair:
            self._take_from_pair(dynamics, result, threshold)
        return result

    def _flags(self, scores: np.ndarray, threshold: np.ndarray):
        """Below the threshold samples' AUM percentile (scores are -AUM, so above its negation)."""
        limit = float(np.percentile(-scores[threshold], self.percentile))
        return (-scores < limit) & ~threshold, limit

    def _take_from_pair(self, dynamics, result: DetectorResult, threshold: np.ndarray) -> None:
        with open_run(self.pair) as other:
            if other.labels.ids != dynamics.labels.ids:
                raise NoisyctlError(f"aum pair {self.pair} is a run of other samples")
            if other.threshold_samples is None or (other.threshold_samples & threshold).any():
                raise NoisyctlError(f"aum pair {self.pair} needs threshold samples disjoint from this run's "
                                    "(train it with the other --aum-threshold-set)")
            other_scores = super().score(other).scores
            other_flags, limit = self._flags(other_scores, other.threshold_samples)
        result.scores[threshold] = other_scores[threshold]
        result.flagged[threshold] = other_flags[threshold]
        result.info.update(judges_threshold_samples=True, pair=str(self.pair), pair_aum_threshold=limit)


class ForgettingDetector(BlockDetector):
    """Forgetting events (Toneva et al. 2019): right at one presentation, wrong at the next; never-learned first."""

    reads = ("train_margin",)

    def score_block(self, block):
        margin = block["train_margin"]
        seen = ~np.isnan(margin)  # an epoch that did not present a sample (NaN) is no presentation of it
        correct = margin > 0  # right exactly when the given label's logit leads
        if seen.all():
            events = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1)
        else:  # each presentation against the one before it, over the epochs between
            epochs = np.arange(margin.shape[1])
            latest = np.maximum.accumulate(np.where(seen, epochs, -1), axis=1)
            before = np.concatenate((np.full((len(margin), 1), -1), latest[:, :-1]), axis=1)
            was_right = np.take_along_axis(correct, np.maximum(before, 0), axis=1) & (before >= 0)
            events = (seen & was_right & ~correct).sum(axis=1)
        presented = seen.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            wrong_share = 1.0 - correct.sum(axis=1) / presented
        never_learned = ~correct.any(axis=1)
        # Ties among equal event counts are broken by how often the sample was wrong (a share < 1).
        scores = np.where(never_learned, correct.shape[1] + 1.0, events + wrong_share)
        return np.where(presented > 0, scores, np.nan)


class DataMapDetector(BlockDetector):
    """Data maps (Swayamdipta et al. 2020): low confidence in the given label over epochs; score = 1 - confidence."""

    reads = ("eval_prob", "eval_pred")

    def score_block(self, block):
        pred = block["eval_pred"]
        confidence = presented_mean(block["eval_prob"].astype(np.float64))  # over the epochs evaluated
        correctness = presented_mean(np.where(pred >= 0, pred == block["given_label"][:, None], np.nan))
        # Correctness separates samples of equal confidence: the one the model never agreed with first.
        return (1.0 - confidence) + 1e-3 * (1.0 - correctness)


class GmmLossDetector(Detector):
    """DivideMix's split: a two-component Gaussian mixture on normalised mean loss; flags P(noisy) > 0.5."""

    reads = ("train_loss",)

    def __init__(self, reg_covar: float | str = 5e-4) -> None:
        self.reg_covar = float(reg_covar)

    def score(self, dynamics):
        loss = LossDetector().score(dynamics).scores
        presented = ~np.isnan(loss)  # a sample never trained on has no loss: not judged
        scores, flagged = np.full(len(loss), np.nan), np.zeros(len(loss), dtype=bool)
        if not presented.any():
            return DetectorResult(scores, flagged=flagged, info={"reg_covar": self.reg_covar})
        loss = loss[presented]
        posterior = gmm_noisy_posterior(loss, self.reg_covar)
        span = loss.max() - loss.min() or 1.0
        # Saturated posteriors tie at 1.0; the loss itself orders them, far below any real difference.
        scores[presented] = posterior + 1e-6 * (loss - loss.min()) / span
        flagged[presented] = posterior > 0.5
        return DetectorResult(scores, flagged=flagged, info={"reg_covar": self.reg_covar})


class ReweightDetector(BlockDetector):
    """Learning to Reweight's per-sample weights (train --strategy reweight): score = -mean weight over training."""

    reads = ("sample_weight",)

    def score_block(self, block):
        weights = block["sample_weight"].astype(np.float64)
        seen = np.isfinite(weights)
        # A sample never presented (NaN throughout) is not judged.
        with np.errstate(invalid="ignore", divide="ignore"):
            return -np.where(seen, weights, 0.0).sum(axis=1) / seen.sum(axis=1)
