"""Confident learning through the cleanlab library (Northcutt et al. 2021)."""

from __future__ import annotations

import numpy as np

from noisyctl.api import Detector, DetectorResult, NoisyctlError


class CleanlabDetector(Detector):
    """Confident learning (cleanlab) on out-of-fold probabilities (train --folds K); flags cleanlab's label issues."""

    channels = ()

    def __init__(self, method: str = "self_confidence") -> None:
        self.method = method

    def score(self, dynamics) -> DetectorResult:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        probs, source = dynamics.probabilities("out_of_fold"), "out-of-fold"
        note = None
        if probs is None:
            probs, source = dynamics.probabilities("late_mean"), "in-sample"
            note = ("cleanlab used in-sample probabilities (the late-epoch mean of the model that trained on "
                    "these labels); train --folds K gives the out-of-sample ones it is designed for")
        if probs is None:
            raise NoisyctlError("cleanlab needs class probabilities: train with --folds K (out-of-sample) or "
                                "--record-probs")
        probs = np.clip(probs.astype(np.float64), 1e-12, None)
        probs /= probs.sum(axis=1, keepdims=True)
        labels = dynamics.given_labels
        try:
            quality = get_label_quality_scores(labels, probs, method=self.method)
            issues = find_label_issues(labels, probs)
        except ValueError as exc:
            raise NoisyctlError(f"cleanlab: {exc}") from None
        info = {"probabilities": source, "method": self.method}
        if note:
            info["note"] = note
        return DetectorResult(1.0 - quality, flagged=np.asarray(issues, dtype=bool), info=info)
