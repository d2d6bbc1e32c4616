"""Choosing the samples ``prune`` removes, from a detector's stored scores."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from noisyctl.detection import detector_decision
from noisyctl.errors import NoisyctlError, check_share
from noisyctl.metrics import ranking
from noisyctl.store import Labels, RunFile


def stored_detector(run: RunFile, name: str | None) -> tuple[str, np.ndarray, np.ndarray | None]:
    """A detector's stored scores and flags; by default the detector that ranked the latest `detect`."""
    scores = run.scores()
    if not scores:
        raise NoisyctlError(f"{run.path} has no detector scores yet: run `noisyctl detect {run.path}` first")
    name = name or next(iter(scores))
    if name not in scores:
        raise NoisyctlError(f"{run.path} has no '{name}' scores; it has: {', '.join(scores)} "
                            f"(run `noisyctl detect {run.path} -d {name}`)")
    return name, scores[name].astype(np.float64), run.flags().get(name)


def whole_dataset_labels(run: RunFile) -> Labels:
    """The run's labels, refused when the run trained on a pruned subset (a labels file covers all samples)."""
    if run.labels.pruning:
        raise NoisyctlError(f"{run.path} was trained on a pruned labels file and holds only the kept samples; "
                            f"prune or correct the run trained on all of them")
    return run.labels


def choose_removals(run: RunFile, detector: str, scores: np.ndarray, flags: np.ndarray | None, *,
                    ratio: float | None = None, count: int | None = None,
                    auto: bool = False) -> tuple[np.ndarray, dict]:
    """The samples to remove (the highest scores, or what the detector decides: ``detector_decision``)
    and the rule, as a record."""
    given = [rule for rule, value in (("ratio", ratio), ("count", count), ("auto", auto or None)) if value is not None]
    if len(given) > 1:
        raise NoisyctlError("say how many to remove with one of --ratio, --count or --auto, not several")
    auto = auto or not given  # what detect flags, unless told otherwise
    judged = ~np.isnan(scores)
    removed = np.zeros(len(scores), dtype=bool)
    if auto:
        flags = detector_decision(run, detector, scores, flags)[0]
        if flags is None:
            raise NoisyctlError(f"detector '{detector}' makes no decision of its own and the run recorded no loss "
                                f"to estimate the noise from; use --ratio or --count, or a detector that flags samples "
                                f"(learned, cleanlab, aum with threshold samples)")
        removed = np.asarray(flags, dtype=bool) & judged
        return removed, {"rule": "auto", "value": int(removed.sum())}
    if ratio is not None:
        check_share(ratio, "--ratio")
        count_now = int(round(ratio * judged.sum()))
        rule = {"rule": "ratio", "value": float(ratio)}
    else:
        if count < 0:
            raise NoisyctlError(f"--count {count} cannot be negative")
        count_now = min(int(count), int(judged.sum()))
        rule = {"rule": "count", "value": int(count)}
    order = ranking(np.where(judged, scores, -np.inf))
    removed[order[:count_now]] = True
    return removed, rule


def pruned_labels(labels: Labels, scores: np.ndarray, removed: np.ndarray, detector: str, rule: dict,
                  source: str) -> Labels:
    """``labels`` with the removed samples marked, with the detector's score and their rank."""
    rank = np.zeros(len(scores), dtype=np.int32)
    order = ranking(np.where(np.isnan(scores), -np.inf, scores))
    in_order = order[removed[order]]
    rank[in_order] = np.arange(1, len(in_order) + 1)
    pruning: dict[str, Any] = {"detector": detector, **rule, "removed": int(removed.sum()), "from": source}
    return replace(labels, removed=removed, removal_score=scores.astype(np.float32), removal_rank=rank,
                   pruning=pruning)


def removal_quality(labels: Labels, removed: np.ndarray) -> dict[str, Any] | None:
    """When the truth is known: how many removed samples were mislabeled, and the share of all mislabeled ones."""
    truth = labels.is_noisy
    if truth is None:
        return None
    hits = int((truth & removed).sum())
    return {"removed_noisy": hits, "precision": hits / removed.sum() if removed.any() else None,
            "recall": hits / truth.sum() if truth.any() else None, "noisy_left": int((truth & ~removed).sum())}
