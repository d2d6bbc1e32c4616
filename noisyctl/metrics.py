"""Detection quality against known noise, from scikit-learn's definitions."""

from __future__ import annotations

import numpy as np


def ranking(scores: np.ndarray) -> np.ndarray:
    """Sample indices from most to least suspicious; ties keep sample order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def precision_recall_at(is_noisy: np.ndarray, scores: np.ndarray, k: int) -> tuple[float, float]:
    """Precision and recall of the k highest-scored samples."""
    positives = int(is_noisy.sum())
    if k <= 0:
        return float("nan"), float("nan")
    hits = int(is_noisy[ranking(scores)[:k]].sum())
    return hits / k, (hits / positives if positives else float("nan"))


def detection_metrics(is_noisy: np.ndarray, scores: np.ndarray, flagged: np.ndarray | None = None) -> dict:
    """AUC, mAP (average precision of the noisy class), precision/recall at k = #noisy and at the flag count.

    Samples scored NaN were not judged (AUM threshold samples) and are left out.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score  # a second of start-up

    scores = np.asarray(scores, dtype=np.float64)
    judged = ~np.isnan(scores)
    is_noisy = np.asarray(is_noisy, dtype=bool)[judged]
    scores = scores[judged]
    flagged = None if flagged is None else np.asarray(flagged, dtype=bool)[judged]
    k = int(is_noisy.sum())
    both_classes = 0 < k < len(is_noisy)
    p_k, r_k = precision_recall_at(is_noisy, scores, k)
    metrics = {
        "auc": float(roc_auc_score(is_noisy, scores)) if both_classes else None,
        "map": float(average_precision_score(is_noisy, scores)) if both_classes else None,
        "k": k,
        "judged": int(judged.sum()),
        "precision_at_k": None if np.isnan(p_k) else p_k,
        "recall_at_k": None if np.isnan(r_k) else r_k,
    }
    if flagged is not None:
        flagged = np.asarray(flagged, dtype=bool)
        hits = int((flagged & is_noisy).sum())
        metrics.update(flagged=int(flagged.sum()),
                       precision_at_flagged=hits / int(flagged.sum()) if flagged.any() else None,
                       recall_at_flagged=hits / k if k else None)
    return metrics
