"""Confident learning through the cleanlab library (Northcutt et al. 2021)."""

from __future__ import annotations

import numpy as np

from noisyctl.api import Detector, DetectorResult, NoisyctlError


class CleanlabDetector(Detector):
    """Confident learning (cleanlab) on out-of-fold probabilities (train --folds K); flags cleanlab's label issues."""

    reads = ("probabilities",)

    def __init__(self, method: str = "self_confidence") -> None:
        self.method = method

    def score(self, dynamics) -> DetectorResult:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        probs, source = dynamics.best_probabilities()
        note = None if source == "out_of_fold" else (
            "cleanlab used in-sample probabilities (the late-epoch mean of the model that trained on "
            "these labels); train --folds K gives the out-of-sample ones it is designed for")
        labels = dynamics.given_labels
        try:
            quality = get_label_quality_scores(labels, probs, method=self.method)
            # In one process: cleanlab forks a pool otherwise, and a fork of a process running
            # torch's threads can deadlock (a test run hung there for 12 minutes).
            issues = find_label_issues(labels, probs, n_jobs=1)
        except ValueError as exc:
            raise NoisyctlError(f"cleanlab: {exc}") from None
        info = {"probabilities": "out-of-fold" if source == "out_of_fold" else "in-sample", "method": self.method}
        if note:
            info["note"] = note
        return DetectorResult(1.0 - quality, flagged=np.asarray(issues, dtype=bool), info=info)
