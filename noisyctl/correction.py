"""Proposing labels (correctors) and applying them; ``noisyctl.review`` sends what a corrector is
not sure of to a person and reads the review back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from noisyctl import plugins
from noisyctl.api import Correction, Corrector
from noisyctl.errors import NoisyctlError
from noisyctl.detection import detector_decision
from noisyctl.estimate import decided_noisy, run_held_out_label_probability, run_noise_rate
from noisyctl.metrics import ranking
from noisyctl.store import Labels, RunFile



@dataclass
class CorrectionOutcome:
    name: str
    correction: Correction
    seconds: float
    provenance: list[str] = field(default_factory=list)
    min_confidence: float = 0.0  # the corrector's own bar for "sure"


def default_corrector(run: RunFile) -> str:
    """``annotators`` for a run that keeps several annotators' own labels, else ``suggested``: on
    four digits runs labeled by three annotators (their majority 4.7-8.4% wrong), among the same
    flagged samples the annotators' model fixed 294 labels and broke 6, ``suggested`` 315 and 20;
    among the 120 top-scored of each, 315 and 12 against 352 and 101 (``benchmarks/annotators.py``)."""
    return "annotators" if run.has("annotations") else "suggested"


def run_corrector(run: RunFile, name: str, options: dict[str, Any] | None = None,
                  flagged: np.ndarray | None = None) -> CorrectionOutcome:
    """Run a corrector; one that declares ``propose(run, flagged)`` gets the samples the correction
    applies to."""
    import inspect

    registration = plugins.get("corrector", name)
    corrector: Corrector = registration.call(options=options)
    lacking = run.lacking(corrector.reads)
    if lacking:
        raise NoisyctlError(f"corrector '{name}' needs {lacking}")
    started = time.perf_counter()
    wants_flags = len(inspect.signature(corrector.propose).parameters) >= 2
    arguments = (run, np.zeros(run.num_samples, dtype=bool) if flagged is None else flagged) if wants_flags else (run,)
    correction = registration.guarded(corrector.propose, *arguments)
    labels = np.asarray(correction.labels).astype(np.int64)
    confidence = np.asarray(correction.confidence, dtype=np.float64)
    if labels.shape != (run.num_samples,) or confidence.shape != (run.num_samples,):
        raise NoisyctlError(f"corrector '{name}' from {registration.provenance()} returned proposals of shape "
                            f"{labels.shape} for {run.num_samples} samples")
    if ((labels < 0) | (labels >= run.num_classes)).any():
        raise NoisyctlError(f"corrector '{name}' from {registration.provenance()} proposed labels outside the classes")
    correction = replace(correction, labels=labels, confidence=confidence)
    return CorrectionOutcome(name, correction, time.perf_counter() - started, registration.origin,
                             float(getattr(corrector, "min_confidence", 0.0)))


def flagged_samples(run: RunFile, name: str, scores: np.ndarray, flags: np.ndarray | None,
                    top: int | None) -> tuple[np.ndarray, str]:
    """The samples a correction applies to: the ``top`` highest scores, else what the detector
    decides (``detector_decision``: its own flags, or as many as the run's noise-rate estimate
    counts), else (a run without losses) those a two-component mixture on its scores puts on the
    noisy side."""
    if top is None:
        decided, words = detector_decision(run, name, scores, flags)
        return (decided, words) if decided is not None else (decided_noisy(scores, None), "a mixture on the scores")
    judged = ~np.isnan(scores)
    chosen = np.zeros(len(scores), dtype=bool)
    chosen[ranking(np.where(judged, scores, -np.inf))[:min(top, int(judged.sum()))]] = True
    return chosen, f"top {top} by score"


def noise_shown(run: RunFile, scores: np.ndarray) -> bool:
    """Whether the run shows a clear sign of label noise among the samples the detector judged
    (``scores`` (N,), NaN: not judged): its estimate's interval stays above zero. A run that
    recorded no loss has no estimate, and its detector's decision stands."""
    estimate = run_noise_rate(run, ~np.isnan(scores))
    return estimate is None or estimate.evidence != "none"


def proposal_quality(labels: Labels, proposal: Correction, flagged: np.ndarray,
                     min_confidence: float, noise_shown: bool = True) -> dict[str, Any]:
    """How many proposals change a label (flagged, in all, and in all at ``min_confidence`` or more),
    and, when the truth is known, the share that are right and what relabeling the flagged samples'
    sure proposals would fix and break (none where not ``noise_shown``, as ``decide``)."""
    proposed = proposal.labels
    changes = proposed != labels.given_labels
    # "suggested" proposes another label for any sample the model once mispredicted (most of a clean
    # set, early in training): the count a person can act on is the sure ones
    quality: dict[str, Any] = {"flagged": int(flagged.sum()), "changes_flagged": int((changes & flagged).sum()),
                               "changes_all": int(changes.sum()),
                               "changes_all_sure": int((changes & (proposal.confidence >= min_confidence)).sum())}
    truth = labels.true_labels
    if truth is not None:
        right = proposed == truth
        noisy = labels.is_noisy
        quality.update(
            right_flagged=float(right[flagged].mean()) if flagged.any() else None,
            right_all=float(right.mean()),
            right_noisy_flagged=float(right[flagged & noisy].mean()) if (flagged & noisy).any() else None,
            given_right_flagged=float((labels.given_labels == truth)[flagged].mean()) if flagged.any() else None,
            fixed=int((changes & flagged & right & noisy).sum()),
            broken=int((changes & flagged & ~noisy).sum()),
        )
        # what relabeling the flagged samples' sure proposals does to the whole set (--apply's relabels):
        # the share of right proposals over every sample says little of it, as "suggested" proposes
        # another class for most clean samples, unsure
        relabeled = decide(labels, proposal, flagged, min_confidence, noise_shown)["relabeled"]
        quality["relabeling_sure"] = {
            "relabeled": int(relabeled.sum()), "wrong_before": int(noisy.sum()),
            "wrong_after": int((np.where(relabeled, proposed, labels.given_labels) != truth).sum()),
            "fixed": int((relabeled & right & noisy).sum()), "broken": int((relabeled & ~noisy).sum())}
    return quality


def decide(labels: Labels, proposal: Correction, flagged: np.ndarray, min_confidence: float,
           noise_shown: bool = True) -> dict[str, np.ndarray]:
    """The flagged samples in three groups: ``relabeled`` (a sure proposal of another label),
    ``review`` (a proposal under ``min_confidence``: for a person) and ``left`` (the corrector
    proposes the given label). Where the run shows no clear sign of noise (not ``noise_shown``: its
    estimate's interval reaches zero), every proposal of another label is for a person: detect calls
    such suspects "worth a look, not a verdict" (clean breast cancer: 4 flagged, each relabeled
    "sure" by every corrector, all 4 right as given)."""
    other = proposal.labels != labels.given_labels
    sure = proposal.confidence >= min_confidence
    relabeled, left = flagged & other & sure & noise_shown, flagged & ~other & sure
    return {"relabeled": relabeled, "review": flagged & ~relabeled & ~left, "left": left}


def apply_correction(labels: Labels, proposed: np.ndarray, apply_to: np.ndarray, by: str, source: str,
                     remove: np.ndarray | None = None) -> Labels:
    """``labels`` with the proposals taken where ``apply_to`` and they differ, marking what changed;
    ``remove`` marks samples to leave out of training (as prune does)."""
    changed = apply_to & (proposed != labels.given_labels)
    given = np.where(changed, proposed, labels.given_labels)
    corrected = replace(labels, given_labels=given, corrected=labels.mark("corrected") | changed,
                        correction={"by": by, "changed": int(changed.sum()), "from": source})
    if remove is not None and remove.any():
        corrected = replace(corrected, removed=labels.mark("removed") | remove,
                            pruning=labels.pruning or {"detector": None, "rule": f"unsure {by}",
                                                       "removed": int(remove.sum()), "from": source})
    return corrected


# Where a corrector that reads the run's own model is unsure of at least this many flagged samples,
# and of more than it is sure of, ``correct`` names one that asks models that never learned their
# labels: ``consensus`` where the run holds out-of-fold probabilities (free), else ``retrained`` and
# its cost. Digits with 5% uniform noise: suggested sure of 11 of 85 flagged, retrained of 85, all
# right, consensus on --folds 3 of 85, 83 right and none broken; with 5% instance noise 3 and 38 of
# 40 (retrained); shapes and blobs: alike.
CORRECTOR_HINT_MIN = 5


def corrector_hint(run: RunFile, corrector: str, groups: dict[str, np.ndarray], shown: bool) -> dict | None:
    """How many flagged samples the corrector was unsure of, and the corrector that asks models
    that never learned their labels (``consensus`` on the run's out-of-fold probabilities, else
    ``retrained``, with the run's own training seconds), where it would likely relabel more: the
    corrector reads the run's model, most flagged samples are unsure though the run shows noise
    (``shown``), and the run holds held-out models or can be trained again (noisyctl trained it on
    all its samples); else None."""
    unsure, sure = int(groups["review"].sum()), int(groups["relabeled"].sum())
    held_out = run_held_out_label_probability(run) is not None  # read once, when noise_shown estimated
    if (corrector == "retrained" or (corrector == "consensus" and held_out) or not shown
            or unsure < max(CORRECTOR_HINT_MIN, sure + 1)):
        return None
    flagged = unsure + sure + int(groups["left"].sum())
    if held_out:
        return {"unsure": unsure, "flagged": flagged, "corrector": "consensus", "seconds": 0.0}
    if run.recorded_by or run.labels.pruning:
        return None
    seconds = run.epochs().get("seconds")
    return {"unsure": unsure, "flagged": flagged, "corrector": "retrained",
            "seconds": None if seconds is None else float(np.nansum(seconds))}


