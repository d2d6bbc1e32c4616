"""Running detectors on a run file, judging them when the truth is known, and naming suspects."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from noisyctl import plugins
from noisyctl.api import Detector, DetectorResult, TrainableDetector
from noisyctl.data import sample_texts
from noisyctl.errors import NoisyctlError
from noisyctl.estimate import (ANNOTATORS, FEW_CLASSES, FIRST_SIGHT_REFUSED, HELD_OUT_ANCHORS, HELD_OUT_REFUSED,
                               LOSS_CHANNELS, NEVER_BELIEVED, NOT_LEARNED, OVERLAP_ANCHORS, PLATEAU, REFUSED,
                               REFUSED_PROBABILITY, UNDER_CHANCE_AT_END, UNSETTLED, UNSURE_ABOVE, NoiseRateEstimate,
                               cannot_tell, confused_pairs, decided_noisy, read_run_evidence, run_annotators_count,
                               run_held_out_count, run_noise_rate, surely_least_right_first)
from noisyctl.fileio import same_file
from noisyctl.metrics import detection_metrics, ranking
from noisyctl.store import RunFile, save_scores

# The learned detector (trained on generated data only, see recipes/default-detector.yaml) ranks
# first (best or within 0.02 mAP of the best in benchmarks/detectors.py); mean loss, EMA loss and
# AUM need no eval pass. Not gmm-loss: DivideMix's split, made to pick samples while training on
# much noise, puts part of every clean set on its noisy side (4% of clean digits, 10-11% of shapes,
# 12-14% of blobs), a count beside the estimate's that the estimate contradicts; it ranks as the
# mean loss does.
DEFAULT_DETECTORS = ("learned", "loss", "ema-loss", "aum")


@dataclass
class Outcome:
    name: str
    description: str
    result: DetectorResult
    options: dict[str, Any]
    seconds: float
    metrics: dict[str, Any] | None = None
    provenance: list[str] = field(default_factory=list)


def stored_outcomes(run: RunFile) -> list[Outcome]:
    """The outcomes an earlier ``detect`` stored in the run (scores, flags, description, options),
    the detector that ranked the latest suspects first; their timings are not stored (0)."""
    flags = run.flags()
    outcomes = []
    for name, values in run.scores().items():
        attrs = run.score_attrs(name)
        outcomes.append(Outcome(name, attrs.get("description", ""), DetectorResult(values, flags.get(name)),
                                attrs.get("options", {}), 0.0, provenance=attrs.get("plugin") or []))
    return outcomes


def make_detector(name: str, options: dict[str, Any]) -> tuple[Detector, Any]:
    registration = plugins.get("detector", name)
    return registration.call(options=options), registration


# When a run (imported from another tool) has the dynamics of none of the defaults.
FALLBACK_DETECTORS = ("lstm", "datamap", "forgetting")


def default_detectors(run: RunFile) -> tuple[list[str], dict[str, str]]:
    """The default detectors whose dynamics the run has (a run without the eval pass, or imported
    from another tool, lacks some), and why each other one cannot run. When no default can, the
    fallbacks that can."""
    chosen, skipped = [], {}
    for name in DEFAULT_DETECTORS:
        lacking = run.lacking(make_detector(name, {})[0].reads)
        if lacking:
            skipped[name] = f"needs {lacking}"
        else:
            chosen.append(name)
    if not chosen:
        chosen = [name for name in FALLBACK_DETECTORS
                  if run.lacking(make_detector(name, {})[0].reads) is None]
    if not chosen:
        raise NoisyctlError(f"{run.path} holds none of the dynamics noisyctl's detectors read "
                            f"({'; '.join(f'{k} {v}' for k, v in skipped.items())})")
    return chosen, skipped


def run_detector(run: RunFile, name: str, options: dict[str, Any] | None = None) -> Outcome:
    options = options or {}
    detector, registration = make_detector(name, options)
    lacking = run.lacking(detector.reads)
    if lacking:
        raise NoisyctlError(f"detector '{name}' needs {lacking}")
    started = time.perf_counter()
    result = registration.guarded(detector.score, run)
    seconds = time.perf_counter() - started
    scores = np.asarray(result.scores, dtype=np.float64)
    if scores.shape != (run.num_samples,):
        raise NoisyctlError(f"detector '{name}' from {registration.provenance()} returned {scores.shape} scores "
                            f"for {run.num_samples} samples")
    if run.num_samples and np.isnan(scores).all():  # every count and ranking after would be empty
        raise NoisyctlError(f"detector '{name}' from {registration.provenance()} judged none of the "
                            f"{run.num_samples:,} samples of this run; pick another with -d (loss reads any run)")
    # NaN means "not judged"; infinities become just beyond the finite extremes, so rankings hold.
    scores = scores.copy()
    finite = np.isfinite(scores)
    if finite.any() and (~finite & ~np.isnan(scores)).any():
        scores[np.isposinf(scores)] = scores[finite].max() + 1.0
        scores[np.isneginf(scores)] = scores[finite].min() - 1.0
    if result.flagged is not None:
        result.flagged = np.asarray(result.flagged, dtype=bool).copy()
    threshold = run.threshold_samples
    if threshold is not None and not result.info.get("judges_threshold_samples"):
        # Threshold samples trained on a fake class: no detector can judge their given label here.
        scores[threshold] = np.nan
        if result.flagged is not None:
            result.flagged[threshold] = False
    if np.isnan(scores).any():
        result.info["not_judged"] = int(np.isnan(scores).sum())
    result.scores = scores
    outcome = Outcome(name, registration.description, result, options, seconds,
                      provenance=registration.origin)
    truth = run.labels.is_noisy
    if truth is not None:
        outcome.metrics = detection_metrics(truth, scores, result.flagged)
    return outcome


def suggested_labels(run: RunFile) -> np.ndarray | None:
    """The class the model most often predicted instead of the given label (eval passes); the given
    label for samples the model always agreed with. None when the run has no eval passes."""
    suggested = suggestions(run)
    return None if suggested is None else suggested[0]


def suggestions(run) -> tuple[np.ndarray, np.ndarray] | None:
    """For every sample, the class the model most often predicted instead of its given label (the
    given label when it always agreed), and the share of the run's eval passes that predicted that
    class: ``(labels [N], share [N])``. None when the run has no eval passes."""
    if not run.has_channel("eval_pred"):
        return None
    labels, share = run.given_labels.copy(), np.zeros(run.num_samples)
    for where, block in run.iter_blocks(("eval_pred",)):
        preds = block["eval_pred"].astype(np.int64)
        given = run.given_labels[where]
        # One spare column: runs with AUM threshold samples also predict the fake class C, never suggested;
        # -1 (an epoch without an eval pass) is counted nowhere.
        counts = np.zeros((preds.shape[0], run.num_classes + 2), dtype=np.int32)
        rows = np.repeat(np.arange(preds.shape[0]), preds.shape[1])
        np.add.at(counts, (rows, np.where(preds < 0, run.num_classes + 1, np.minimum(preds, run.num_classes)).ravel()), 1)
        passes = np.maximum(preds.shape[1] - counts[:, -1], 1)
        counts = counts[:, :run.num_classes]
        agreed = counts[np.arange(len(given)), given].copy()
        counts[np.arange(len(given)), given] = 0
        disagree = counts.max(axis=1) > 0
        labels[where] = np.where(disagree, counts.argmax(axis=1), given)
        share[where] = np.where(disagree, counts.max(axis=1), agreed) / passes
    return labels, share


def estimated_flags(run: RunFile, name: str, scores: np.ndarray, flags: np.ndarray | None
                    ) -> tuple[np.ndarray, str, np.ndarray, NoiseRateEstimate] | None:
    """The samples a detector's ``scores`` (N,) judge mislabeled, as many as the run's noise-rate
    estimate counts, the most suspicious first (the estimate says how many, the ranking says
    which); where the losses cannot tell, the detector's own ``flags`` (N,) where it decides by a
    rule of its own (flags other than those); none where the model did not learn.
    With who decided, which samples were judged (scored) and the estimate; None where the run
    recorded no loss to estimate from."""
    judged = ~np.isnan(scores)
    estimate = run_noise_rate(run, judged)
    if estimate is None:
        return None
    if estimate.model_never_learned:  # a model at chance: its detectors' decisions are chance too
        return np.zeros(len(judged), dtype=bool), "nothing: the model did not learn", judged, estimate
    counted = estimate.top_flags(scores, run.given_labels, judged)
    own = None if flags is None else np.asarray(flags, dtype=bool) & judged
    if estimate.unsure and own is not None and not np.array_equal(own, counted):
        # The losses cannot tell; a detector with a rule of its own (cleanlab, gmm-loss, aum with
        # threshold samples) keeps it. One without gets the count (learned flags just that): a
        # mixture on losses that cannot tell is no better informed (after one epoch it split off
        # 60% of a digits run with 20% noise).
        return own, f"{name}'s own decision", judged, estimate
    return counted, f"{name}'s top {estimate.count:,}", judged, estimate


def detector_decision(run: RunFile, name: str, scores: np.ndarray, flags: np.ndarray | None
                      ) -> tuple[np.ndarray | None, str]:
    """What a detector with ``scores`` (N,) decides, and in words: its own ``flags`` (N,) where it
    flags samples (``learned`` flags as many as the estimate counts), else ``estimated_flags`` on its
    ranking, as ``detect`` decides; None where it flags none itself and the run recorded no loss."""
    if flags is not None:
        return decided_noisy(scores, flags), "the detector's flags"
    decided = estimated_flags(run, name, scores, None)
    if decided is None:
        return None, ""
    flagged, _, _, estimate = decided
    return flagged, ("none: the model did not learn" if estimate.model_never_learned else
                     "the noise-rate estimate's count, by the scores")


def noise_flags(run: RunFile, outcomes: list[Outcome]) -> tuple[np.ndarray, str, np.ndarray, NoiseRateEstimate | None]:
    """The samples judged mislabeled, who decided, which were judged, and the noise-rate estimate.

    With the training loss recorded: ``estimated_flags`` on the first detector. Without it: the
    first detector that flags samples itself; when none does, a mixture on the first one's scores."""
    primary = outcomes[0]
    decided = estimated_flags(run, primary.name, primary.result.scores, primary.result.flagged)
    if decided is not None:
        return decided
    chosen = next((o for o in outcomes if o.result.flagged is not None), primary)
    by = chosen.name if chosen.result.flagged is not None else f"mixture on {chosen.name} scores"
    return decided_noisy(chosen.result.scores, chosen.result.flagged), by, ~np.isnan(chosen.result.scores), None


# Where the run's out-of-fold probabilities (train --folds) count fewer than its losses (see run_noise_rate).
HELD_OUT_METHOD = "held-out count (train --folds), below the losses' reading"
NOT_LEARNED_METHOD = "none: the model did not learn"
# Where more labels stayed under 1% probability to the run's end than the losses count (see run_noise_rate).
REFUSED_METHOD = "labels the model still refused at its end, above the losses' reading"
# Where fewer labels stayed under chance on average than the losses count, in a run that says so (run_noise_rate).
NEVER_BELIEVED_METHOD = "labels the model never believed, below the losses' reading"
# Where more labels were refused by the model, or never believed by it and refused by held-out models (train
# --folds), than the losses count (see run_noise_rate).
HELD_OUT_REFUSED_METHOD = "labels the model and held-out models refused, above the losses' reading"
# Where a model that knew the data from its first epoch refused more labels at first sight, and never believed
# them, than the losses count (see run_noise_rate).
FIRST_SIGHT_REFUSED_METHOD = "labels the model refused at first sight and never believed, above the losses' reading"
# Where the losses cannot tell and a model that knew the data from its first epoch still gave more labels under
# chance at its end than they count (see run_noise_rate).
UNDER_CHANCE_METHOD = "labels the model still gave under chance at its end, above the losses' reading"
# Where, among the samples held-out models are surest of, the labels they contradict and the model never
# believed (or had not halfway) are a larger share than the losses count (see run_noise_rate).
HELD_OUT_ANCHORS_METHOD = ("labels held-out models contradict where surest and the model never believed, above the "
                           "losses' reading")
# Where, with two or three classes, the labels held-out models contradict where surest are a smaller share than
# the losses' reading or their count (see run_noise_rate).
OVERLAP_ANCHORS_METHOD = "labels held-out models contradict where surest, below their count"
# Where the given labels are the annotators' majority and their own labels count more (see run_noise_rate).
ANNOTATORS_METHOD = "the annotators' own labels, above the losses' reading"
METHODS_IN_WORDS = {"held-out": HELD_OUT_METHOD, ANNOTATORS: ANNOTATORS_METHOD, REFUSED: REFUSED_METHOD,
                    NEVER_BELIEVED: NEVER_BELIEVED_METHOD,
                    HELD_OUT_REFUSED: HELD_OUT_REFUSED_METHOD, FIRST_SIGHT_REFUSED: FIRST_SIGHT_REFUSED_METHOD,
                    UNDER_CHANCE_AT_END: UNDER_CHANCE_METHOD, HELD_OUT_ANCHORS: HELD_OUT_ANCHORS_METHOD,
                    OVERLAP_ANCHORS: OVERLAP_ANCHORS_METHOD, NOT_LEARNED: NOT_LEARNED_METHOD}


def estimate_noise(run: RunFile, outcomes: list[Outcome], suggestions: np.ndarray | None,
                   decided: tuple | None = None) -> dict[str, Any]:
    """The share of mislabeled samples, its interval and how clear the evidence is, and the most
    confused class pairs; ``decided`` is what noise_flags returned, when the caller has it."""
    flagged, by, judged, estimate = decided or noise_flags(run, outcomes)
    truth = run.labels.is_noisy
    read = {"low": None, "high": None, "confidence": None, "method": "detector flags", "evidence": None,
            "late_classes": [], "unlearned_classes": [], "unlearned": 0.0}
    # what the estimate read (an estimate comes from a run's losses): the loss, and how the run trained
    evidence = None if estimate is None else read_run_evidence(run)
    if estimate is not None:
        # the training loss, else (eval passes only, or training batches of mixed inputs) the eval-mode loss
        loss = LOSS_CHANNELS[evidence.channel]
        read = {"low": estimate.low, "high": estimate.high, "confidence": estimate.confidence,
                "method": METHODS_IN_WORDS.get(estimate.method, f"{estimate.method} on mean {loss}"),
                "evidence": estimate.evidence,
                "late_classes": [run.labels.class_names[c] for c in estimate.late_classes],
                "unlearned_classes": [run.labels.class_names[c] for c in estimate.unlearned_classes],
                "unlearned": estimate.unlearned}
    # held-out models' count, as the estimate's, of the classes the model learned
    counted = held_out_reading(run, judged if estimate is None else
                               judged & ~np.isin(run.given_labels, estimate.unlearned_classes))
    # Beside a late class judged on its own, a held-out count above the losses' interval says the
    # class may be late because its look-alikes carry another label, not because it is rare or hard.
    shown = counted is not None and (estimate is None or estimate.unsure or (
        bool(estimate.late_classes) and counted["low"] > estimate.high))
    return {
        "rate": float(flagged.sum() / max(1, judged.sum())) if estimate is None else estimate.rate,
        "count": int(flagged.sum()), "by": by, "detector": outcomes[0].name, **read,
        "held_out": counted if shown else None,
        # a wide noisy component may hold unfitted clean samples; a run with held-out models already took the smaller
        "may_overcount": bool(estimate is not None and estimate.noise_as_wide_as_clean and counted is None),
        # with few classes the losses miscount; a run with held-out models already read its anchors
        "may_miscount": bool(estimate is not None and run.num_classes <= FEW_CLASSES and counted is None),
        "held_out_models": counted is not None,  # the run has out-of-fold probabilities (train --folds)
        "unfitted": None if estimate is None else estimate.unfitted,  # mean loss above log 2: the upper end reaches them
        # the share of fitted labels that mixed training batches left above log 2: read from the eval passes
        "mixed_batches": None if evidence is None else evidence.mixed_batches,
        # optimizer steps over samples (about epochs / batch size); few_updates: under FEW_UPDATES, from
        # scratch, the model had not begun to memorise, and where the losses read the tail the
        # never-believed labels are the count
        "updates_per_sample": None if evidence is None else evidence.updates_per_sample,
        "few_updates": evidence is not None and evidence.few_updates,
        # from scratch, MEMORISING_UPDATES or more, no held-out models: no clear sign, or weak, says little
        "may_have_memorised": bool(estimate is not None and counted is None and evidence.memorising
                                   and estimate.evidence in ("none", "weak") and not estimate.unsure),
        "annotators": annotators_reading(run, judged),
        "true_rate": None if truth is None else float(truth[judged].mean()),
        "confused_pairs": [] if suggestions is None else
        confused_pairs(run.given_labels, suggestions, flagged, run.labels.class_names),
    }


def held_out_reading(run: RunFile, judged: np.ndarray) -> dict[str, float] | None:
    """Confident learning's count on the run's out-of-fold probabilities (train --folds K), when it
    has them: the second reading where the losses cannot tell, or where they judged a late class
    on its own and the count lies above their interval. There it is not the estimate, nor what
    the gate compares: it also counts samples that look like another class by nature (6-8% of clean
    overlapping blobs), and held-out models trained briefly count more (16% of clean blobs after 3
    epochs). Where the losses can tell, the smaller of the two is the estimate (``run_noise_rate``)."""
    counted = run_held_out_count(run, judged)
    if counted is None:
        return None
    return {"rate": counted.rate, "low": counted.low, "high": counted.high, "confidence": counted.confidence}


def annotators_reading(run: RunFile, judged: np.ndarray) -> dict[str, Any] | None:
    """What the annotators' own labels say of the ``judged`` samples' given labels, where the run
    keeps them (``run_annotators_count``): a second reading, shown beside the estimate. It is a
    floor of the estimate only where the given labels are their own aggregate and their labels say
    who is right (``run_annotators_floor``): beside an expert's labels it counts the crowd's errors
    too, and two annotators a sample leave it a range (``unsettled``)."""
    counted = run_annotators_count(run, judged)
    if counted is None:
        return None
    estimate, people, held_out, unsettled = counted
    return {"rate": estimate.rate, "low": estimate.low, "high": estimate.high, "confidence": estimate.confidence,
            "held_out_prior": held_out, "unsettled": unsettled, "annotators": people}


def annotators_words(counted: dict[str, Any], is_the_estimate: bool = False) -> str:
    """The annotators' reading (``annotators_reading``) in words; where it ``is_the_estimate``, the
    annotators' accuracies without the count again. Where their labels leave who is right open
    (``UNSETTLED``), the words say so, with each accuracy's range."""
    people = counted["annotators"]
    prior = " with models that never trained on the samples" if counted["held_out_prior"] else ""
    reading = (f"the {len(people):,} annotators' own labels (Dawid-Skene{prior}) count this" if is_the_estimate else
               f"the {len(people):,} annotators' own labels (Dawid-Skene{prior}) count {counted['rate']:.1%} of the "
               f"given labels wrong ({counted['low']:.1%}-{counted['high']:.1%} over resamples and fits about as "
               f"likely; more where they err alike)")
    unsettled = counted.get("unsettled", 0.0) >= UNSETTLED
    if unsettled:
        reading += ("; but where two annotators disagree nothing in their labels says which is right, so the count "
                    "is a range and so are their accuracies (a third annotator on some samples, or models that never "
                    "trained on them: train --folds 3, tells them apart)")
    if len(people) <= ANNOTATORS_NAMED:
        shown = ", ".join(f"{p['annotator']} {p['accuracy']:.0%}" + (
            f" ({p['accuracy_interval'][0]:.0%}-{p['accuracy_interval'][1]:.0%})" if unsettled else "")
            for p in people)
        return f"{reading}, each right about {shown} of the time"
    # a crowd: those a person would look at first, surely careless
    least = surely_least_right_first(people)[:ANNOTATORS_NAMED]
    shown = ", ".join(f"{p['annotator']} {p['accuracy']:.0%} ({p['accuracy_interval'][0]:.0%}-"
                      f"{p['accuracy_interval'][1]:.0%}) of {p['labeled']:,}" for p in least)
    return f"{reading}; the least often right, by their intervals' upper ends: {shown}"


def annotators_table(run: RunFile) -> dict[str, Any] | None:
    """Each annotator's figures from the run's annotators' own labels (``run_annotators_count`` on
    every sample, as ``detect`` reads them), surely least often right first
    (``surely_least_right_first``): who, the samples they labeled, how often they gave the given
    label, their estimated accuracy and its 90% interval, and the mistake they make most (``cat ->
    dog``) as ``rows``; and whether held-out models gave the prior. None for a run that keeps none. What
    ``export --annotators`` writes and ``report`` shows: whom a team would brief, and on what."""
    counted = run_annotators_count(run, np.ones(len(run.given_labels), dtype=bool))
    if counted is None:
        return None
    names = run.labels.class_names
    rows = [{"annotator": p["annotator"], "labeled": p["labeled"], "agreed_with_given": p["agreed"],
             "accuracy": p["accuracy"], "accuracy_low": p["accuracy_interval"][0],
             "accuracy_high": p["accuracy_interval"][1],
             "mistakes_most": f"{names[p['confuses'][0]]} -> {names[p['confuses'][1]]}"}
            for p in surely_least_right_first(counted.people)]
    return {"rows": rows, "held_out_prior": counted.held_out_prior}


ANNOTATORS_NAMED = 5  # annotators named in words (of more, the least often right); --json lists them all
LATE_NAMED = 5  # late classes named in words; --json lists them all
# What would make a count from the losses alone surer, for a run trained by noisyctl or recorded in a user's loop
HELD_OUT_HINT = "train --folds 3 (or give your own loop's out_of_fold probabilities) to count with held-out models too"
# Noise every model learns as if it were the task (an annotator's systematic confusions) reads as none:
# a person's review of a random sample counts it (digits relabeled 8% by a weak model's confusions:
# "no clear sign", 1.0%; a review of 100 random samples and the 18 flagged read 8.6%, 5.1-13.9%).
AUDIT_HINT = ("a person's review of a random sample also counts noise no model sees (correct --audit 100 --export "
              "audit.html)")
# Both ways: blobs of two classes with 8% noise read 5.4%; clean two-moons that overlap 3.0%.
FEW_CLASSES_HINT = ("with two or three classes the losses miscount: a wrong label near a boundary looks like a "
                    "hard clean one, and where the classes overlap, a clean one on the far side looks wrong: "
                    f"{HELD_OUT_HINT}")


# The words say the interval reaches the unfitted samples where they are at least this many times the
# estimate: three quarters of them or more not counted as noise, so the model left clean ones unfitted
UNFITTED_MOSTLY_CLEAN = 4


def memorised_words(estimate: dict[str, Any]) -> str:
    """Why a reading of no clear sign or weak evidence says little where ``may_have_memorised``
    (``MEMORISING_UPDATES``): what the words and the gate's warning say."""
    return (f"a model trained from scratch for {estimate.get('updates_per_sample') or 0:.1f} optimizer steps a "
            "sample fits its wrong labels too, which then look clean to its losses")


def _named_classes(names: list[str]) -> tuple[str, str, str]:
    """Classes as words name them (the first ``LATE_NAMED``, then how many more), with "class" or
    "classes" and "its" or "their" to match."""
    named = ", ".join(names[:LATE_NAMED]) + (f" and {len(names) - LATE_NAMED} more" if len(names) > LATE_NAMED else "")
    return (named, "class", "its") if len(names) == 1 else (named, "classes", "their")


def estimate_words(estimate: dict[str, Any]) -> str:
    """The estimate in words, plain text: the rate, its interval, and how clear the evidence is,
    then what the annotators' own labels count, where the run keeps them. A run without clear
    evidence of noise is never called noisy."""
    words = _run_words(estimate)
    counted = estimate.get("annotators")
    if not counted:
        return words
    if estimate.get("method") == ANNOTATORS_METHOD:
        return f"{words}; {annotators_words(counted, is_the_estimate=True)}"
    # "but" where the annotators' count lies above what the run can hold (annotators who err alike)
    but = "but " if estimate.get("high") is not None and counted["low"] > estimate["high"] else ""
    return f"{words}; {but}{annotators_words(counted)}"


def _run_words(estimate: dict[str, Any]) -> str:
    """``estimate_words`` of the run's own reading."""
    if estimate.get("low") is None:
        return f"estimated noise {estimate['rate']:.1%} ({estimate['count']:,} samples, by {estimate['by']})"
    interval = f"{estimate['confidence']:.0%} interval {estimate['low']:.1%}-{estimate['high']:.1%}"
    unlearned = estimate.get("unlearned_classes") or []
    if unlearned:
        named, which, own = _named_classes(unlearned)
        # "Unfitted" is a label still under 50% at the end: a model can guess 70% right and fit none.
        not_learned = (f"the model did not learn {which} {named} ({estimate['unlearned']:.0%} of the samples, "
                       f"most still given under 50% at its end), so {own} labels cannot be judged"
                       if estimate["unlearned"] < 1 else "the model fitted none of the classes yet (most samples "
                       "of each still given under 50% for their label at its end, however many it guessed "
                       "right), so no label can be judged")
        if estimate["method"] == NOT_LEARNED_METHOD:
            return f"cannot tell how noisy: {not_learned}; train longer, or with another learning rate"
        interval += f"; {not_learned}: counted at the others' rate, the interval reaching them all (train longer)"
    late = estimate.get("late_classes") or []
    if late:
        named, which, own = _named_classes(late)
        interval += f"; {which} {named}, learned later than the rest, judged against {own} own losses"
    if estimate.get("mixed_batches") is not None:
        interval += (f"; read from the eval passes: the training batches were mixed (mixup or cutmix; late in "
                     f"training {estimate['mixed_batches']:.0%} of the labels the model fitted sat under 50% in them)")
    if cannot_tell(estimate["evidence"], estimate["high"]):
        decided = f"; {estimate['by']} flags {estimate['count']:,}" if estimate["by"].endswith("decision") else ""
        held_out = estimate.get("held_out")
        if estimate["method"] == NOT_LEARNED_METHOD:
            return (f"cannot tell how noisy: the model did not learn (the median sample's loss stayed within "
                    f"{1 - PLATEAU:.0%} of its first epoch's), so its losses say nothing of the labels; train longer, "
                    f"or with another learning rate{decided}")
        if held_out:
            # Its bootstrap spread is sampling only: the count's bias (samples that look like another
            # class) is larger, so it is not called an interval (it held the truth in 2 of 10 runs).
            # Held-out models were the run's last reading: what is left is a person's count.
            second = (f"; models that never trained on the samples (train --folds) count {held_out['rate']:.1%} "
                      f"({held_out['low']:.1%}-{held_out['high']:.1%} over resamples), samples that look like "
                      f"another class included; {AUDIT_HINT}")
        else:
            second = f"; {HELD_OUT_HINT}"
        # the number then comes from the held-out anchors' floor, not from the losses that cannot tell
        anchors = (", counted among the samples models that never trained on them are surest of"
                   if estimate["method"] == HELD_OUT_ANCHORS_METHOD else "")
        return (f"cannot tell how noisy: estimated noise {estimate['rate']:.1%}{anchors} ({interval}); the model "
                "never fitted many samples, and wrong labels among them look like hard ones (train longer, or "
                f"review the top suspects){second}{decided}")
    doubted = bool(late and estimate.get("held_out"))  # held-out models count more than the class view
    if doubted:
        counted = estimate["held_out"]
        interval += (f"; but models that never trained on the samples (train --folds) count {counted['rate']:.1%} "
                     f"({counted['low']:.1%}-{counted['high']:.1%} over resamples): a class can be learned late "
                     "because many of its look-alikes carry another label")
    # why the reading may count too few, and what counts the rest
    hints = f"; {FEW_CLASSES_HINT}" if estimate.get("may_miscount") else ""
    if estimate.get("may_have_memorised"):
        hints += f"; {memorised_words(estimate)}: {HELD_OUT_HINT}"
    if estimate["evidence"] == "none":
        return (f"no clear sign of label noise{' in the losses' if doubted else ''}: estimated {estimate['rate']:.1%} "
                f"({interval}); the top suspects are worth a look, not a verdict{hints}; {AUDIT_HINT}")
    weak = "; weak evidence" if estimate["evidence"] == "weak" else ""
    among_surest = "; counted among the samples models that never trained on them are surest of"
    counted_by = {HELD_OUT_METHOD: "; counted by models that never trained on the samples",
                  REFUSED_METHOD: (f"; counted as the labels the model still gave under {REFUSED_PROBABILITY:.0%} "
                                   "in its last epochs"),
                  NEVER_BELIEVED_METHOD: "; counted as the labels the model never believed (under chance on "
                                         "average): the rest it learned" + (
                                             f", in too few optimizer steps to memorise any "
                                             f"({estimate.get('updates_per_sample') or 0:.2f} a sample)"
                                             if estimate.get("few_updates") else ""),
                  HELD_OUT_REFUSED_METHOD: (f"; counted as the labels the model never believed and models that never "
                                            f"trained on them gave under {REFUSED_PROBABILITY:.0%}: more may hide among "
                                            "those it fitted"),
                  FIRST_SIGHT_REFUSED_METHOD: (f"; counted as the labels the model gave under "
                                               f"{REFUSED_PROBABILITY:.0%} when it first met them, before training on "
                                               "them, and never believed: more may hide among those it began to "
                                               "learn"),
                  HELD_OUT_ANCHORS_METHOD: (f"{among_surest}, as the share of labels those models contradict and "
                                            "the model never believed (or had not yet believed halfway through "
                                            "training)"),
                  OVERLAP_ANCHORS_METHOD: (f"{among_surest}, far from where the classes meet, as the share of labels "
                                           "those models contradict: their whole count also holds clean samples "
                                           "that lie among another class's"),
                  UNDER_CHANCE_METHOD: ("; counted as the labels the model, which knew the data from its first "
                                        "epoch, still gave under chance's probability in its last epochs (its "
                                        "losses alone cannot tell)"),
                  ANNOTATORS_METHOD: ("; counted from the annotators' own labels, which the given labels "
                                      "aggregate: they show errors annotators make alike, which the model learned as "
                                      "the task")}.get(estimate["method"], "")
    advice = ("; the high losses spread as wide as the clean ones, so the count may include clean samples the "
              f"model has not fitted: {HELD_OUT_HINT}") if estimate.get("may_overcount") else ""
    if hints and not advice:
        advice = hints
    if weak and not advice and estimate.get("held_out_models") is False:
        # a weak model's clean tail reads as a little noise (an MLP on clean digits: 1.6%, 0.3-0.6% held out)
        advice = f"; {HELD_OUT_HINT}"
    unfitted = estimate.get("unfitted") or 0.0
    if (estimate["high"] > UNSURE_ABOVE and unfitted >= estimate["high"]
            and unfitted >= UNFITTED_MOSTLY_CLEAN * estimate["rate"]):
        # An interval as wide as 1-66% says why (an MLP on shapes' pixels fits a third of them); not
        # where the unfitted samples are mostly the noise (shapes with 20%: 42% unfitted, 19% counted).
        advice += (f"; the interval reaches the {unfitted:.0%} of samples the model never fitted, any of which "
                   "may be mislabeled: train longer, or with a model that fits them")
    return (f"estimated noise {estimate['rate']:.1%} ({interval}{weak}{counted_by}): {estimate['count']:,} samples, "
            f"the most suspicious by {estimate['detector']}{advice}")


GATE_ON = ("estimate", "lower", "upper")  # what --fail-above compares


def gate_verdict(estimate: dict[str, Any], scores: np.ndarray, fail_above: float | None = None,
                 gate_on: str = "estimate", fail_count: int | None = None,
                 fail_score: float | None = None) -> dict[str, Any] | None:
    """The CI gate's verdict on ``estimate_noise``'s estimate (``fail_above``, compared with the
    estimate, or its lower end where the losses cannot tell, or an end of its interval, as
    ``gate_on`` says) and on the first detector's ``scores`` (more than ``fail_count`` above
    ``fail_score``); None when no gate was asked for.
    A gate that passes while the interval reaches above ``fail_above`` carries a warning: it could
    not rule that much noise out."""
    if fail_above is None and fail_count is None:
        return None
    reasons = []
    compared, what = estimate["rate"], "estimated noise"
    unsure = cannot_tell(estimate.get("evidence"), estimate.get("high"))
    # Weak evidence is a tail the mixture could not set apart: on clean digits a small CNN trained
    # from scratch 3-5 epochs (97% right) read 8-9% so, its hard samples learned late; a 5% run
    # trained as briefly read 6.0% with clear evidence. Of 795 cached runs one verdict moved.
    weak = estimate.get("evidence") == "weak" and estimate.get("low") is not None
    if gate_on != "estimate" and estimate.get("low") is not None:
        compared = estimate["low"] if gate_on == "lower" else estimate["high"]
        what = f"the {gate_on} end of the noise interval"
    elif unsure or weak:
        # Where the losses cannot tell, an estimate above zero comes with an interval reaching zero,
        # mostly the held-out anchors' count: among the anchors an under-trained model left unfitted,
        # clean samples in another class's region count too (clean blobs after 10 epochs: 5.6%). The
        # default gate compares the lower end there, and where the evidence is weak: it does not
        # fail what the run cannot tell.
        why = "the losses cannot tell" if unsure else "weak evidence"
        compared, what = estimate["low"], f"the lower end of the noise interval ({why})"
    if fail_above is not None and compared > fail_above:
        words = estimate_words(estimate)
        said = f"{what} {compared:.1%} "  # the estimate's words begin with what the gate compared: not twice
        detail = words[len(said):] if words.startswith(said) else f"({words})"
        reasons.append(f"{what} {compared:.1%} is above --fail-above {fail_above:.1%} {detail}")
    above = int((scores > fail_score).sum()) if fail_score is not None else 0
    if fail_count is not None and above > fail_count:
        reasons.append(f"{above:,} samples score above {fail_score:g}, more than --fail-count {fail_count:,}")
    warning = None
    passed_on_rate = not reasons and fail_above is not None
    if passed_on_rate and estimate.get("may_have_memorised"):
        warning = f"the gate passed, but {memorised_words(estimate)}; {HELD_OUT_HINT}"
    # Three outcomes, as with any interval: below the threshold throughout, above it, or straddling
    # it. A silent pass on the last hid 5% of noise in overlapping blobs (read 0.0%, up to 8.6%).
    # (An upper gate that passed has its upper end under the threshold: it never warns.)
    elif passed_on_rate and estimate.get("high") is not None and estimate["high"] > fail_above:
        on = "estimate" if gate_on == "estimate" else "lower end"
        if gate_on == "estimate" and (unsure or weak) and estimate["rate"] > fail_above:
            on = "lower end, as the losses cannot tell" if unsure else "lower end, as the evidence is weak"
        warning = (f"the gate passed on the {on}, but noise up to {estimate['high']:.1%} cannot be ruled out; "
                   "--gate-on upper fails such runs")
    return {"passed": not reasons, "reason": "; ".join(reasons) or None, "warning": warning,
            "estimated_rate": estimate["rate"], "gate_on": gate_on, "compared_rate": compared,
            "above_score": above if fail_score is not None else None}


@dataclass
class Detection:
    """What ``detect`` finds in a run: every detector's scores, the samples judged mislabeled, the
    noise-rate estimate and the top suspects (``noisyctl.detect`` returns one).

    Attributes
    ----------
    run : str
        The run file.
    ids : list of str, length N
        The samples' ids, in the run's order.
    class_names : list of str, length C
    given_labels : np.ndarray of int, shape (N,)
        The labels the model trained on.
    true_labels : np.ndarray of int, shape (N,), or None
        The clean labels, where ``synth`` made the noise.
    scores : dict of str to np.ndarray of float, shape (N,)
        Each detector's scores, higher = more likely mislabeled, NaN where it judged none.
    primary : str
        The detector that ranks the suspects (the first one run).
    flagged : np.ndarray of bool, shape (N,)
        The samples judged mislabeled: as many as the estimate counts, by the primary's scores (or
        a detector's own decision where the run recorded no loss).
    suggested : np.ndarray of int, shape (N,), or None
        The class the model most often predicted instead of the given label (None without eval passes).
    estimate : dict
        The noise-rate estimate, as ``detect --json`` writes it: ``rate``, ``low``, ``high``,
        ``evidence``, ``method``, ``words`` (what ``detect`` prints) and more.
    suspects : list of dict
        The ``top`` most suspect samples: rank, index, id, given, suggested, score (and text).
    metrics : dict of str to dict, or None
        Each detector's AUC, mAP and precision at k where the run knows the truth (``synth``).
    not_run : dict of str to str
        The default detectors the run lacks the dynamics for, and what they need.
    outcomes : list of Outcome
        The detectors' full results (descriptions, options, timings, provenance).
    """

    run: str
    ids: list[str]
    class_names: list[str]
    given_labels: np.ndarray
    true_labels: np.ndarray | None
    scores: dict[str, np.ndarray]
    primary: str
    flagged: np.ndarray
    suggested: np.ndarray | None
    estimate: dict[str, Any]
    suspects: list[dict[str, Any]]
    metrics: dict[str, dict[str, Any]] | None
    not_run: dict[str, str]
    outcomes: list[Outcome] = field(repr=False, default_factory=list)

    def __repr__(self) -> str:
        return (f"Detection(run={self.run!r}, samples={len(self.ids):,}, primary={self.primary!r}, "
                f"flagged={int(self.flagged.sum()):,}, estimate={self.estimate['words']!r})")

    def to_frame(self):
        """A pandas DataFrame, a row per sample, most suspect first: id, given and suggested class
        (and the true one, with ``is_noisy``, where synth made the noise), each detector's score, and
        whether it is flagged."""
        import pandas as pd

        frame = pd.DataFrame({"id": self.ids, "given": [self.class_names[c] for c in self.given_labels]})
        if self.true_labels is not None:
            frame["true"] = [self.class_names[c] for c in self.true_labels]
            frame["is_noisy"] = np.asarray(self.true_labels) != np.asarray(self.given_labels)
        if self.suggested is not None:
            frame["suggested"] = [self.class_names[c] for c in self.suggested]
        for name, values in self.scores.items():
            frame[name] = values
        frame["flagged"] = self.flagged
        return frame.iloc[ranking(self.scores[self.primary])].reset_index(drop=True)


def detect_run(path: str | Path, detectors: list[str] | None = None,
               options: dict[str, dict[str, Any]] | None = None, top: int = 10, save: bool = True,
               progress=None) -> Detection:
    """Run ``detectors`` (default: ``DEFAULT_DETECTORS``, those the run has the dynamics for) on the
    run file at ``path`` with their ``options`` (by name), estimate the noise, and list the ``top``
    suspects; with ``save``, store the scores in the run (what ``correct``, ``prune`` and ``report``
    read). ``progress(what, done, total)`` hears of each detector."""
    path = Path(path)
    with RunFile(path) as run:
        skipped: dict[str, str] = {}
        names = list(dict.fromkeys(detectors)) if detectors else None
        if names is None:
            names, skipped = default_detectors(run)
        options = options or {}
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise NoisyctlError(f"options for detectors not run: {', '.join(unknown)} (running {', '.join(names)})")
        outcomes = []
        for done, name in enumerate(names):
            if progress is not None:
                progress(f"scoring {run.num_samples:,} samples with {name}", done, len(names))
            outcomes.append(run_detector(run, name, options.get(name, {})))
        suggestions = suggested_labels(run)
        decided = noise_flags(run, outcomes)
        estimate = estimate_noise(run, outcomes, suggestions, decided)
        estimate["words"] = estimate_words(estimate)
        detection = Detection(
            run=str(path), ids=list(run.labels.ids), class_names=list(run.labels.class_names),
            given_labels=np.asarray(run.given_labels), true_labels=run.labels.true_labels,
            scores={o.name: o.result.scores for o in outcomes},
            primary=outcomes[0].name, flagged=np.asarray(decided[0], dtype=bool), suggested=suggestions,
            estimate=estimate, suspects=top_suspects(run, outcomes[0].result.scores, top, suggestions, decided[0]),
            metrics=None if run.labels.is_noisy is None else {o.name: o.metrics for o in outcomes},
            not_run=skipped, outcomes=outcomes)
        identity = run.identity
    if save:
        save_scores(path, {o.name: {"scores": o.result.scores, "flagged": o.result.flagged,
                                    "description": o.description, "options": o.options, "info": o.result.info,
                                    "plugin": o.provenance}
                           for o in outcomes}, scored=identity)
    return detection


def top_suspects(run: RunFile, scores: np.ndarray, k: int, suggestions: np.ndarray | None,
                 flagged: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The ``k`` highest of ``scores`` (N,) as rows: rank, id, labels, score, and whether the
    detector's decision (``flagged`` (N,), where known) counts each as mislabeled."""
    names = run.labels.class_names
    truth = run.labels.true_labels
    rows = []
    order = ranking(scores)
    for rank, i in enumerate(order[~np.isnan(scores[order])][:k], start=1):
        rows.append({
            "rank": rank, "index": int(i), "id": run.labels.ids[i],
            "given": names[run.given_labels[i]],
            "true": None if truth is None else names[truth[i]],
            "suggested": None if suggestions is None else names[suggestions[i]],
            "score": float(scores[i]),
            "flagged": None if flagged is None else bool(flagged[i]),
            "is_noisy": None if truth is None else bool(truth[i] != run.given_labels[i]),
        })
    # Text samples' ids are hashes: the suspects carry their texts, which is what a reader judges.
    for row, text in zip(rows, suspect_texts(run, [row["id"] for row in rows]) or []):
        row["text"] = text
    return rows


def suspect_texts(run: RunFile, ids: list[str]) -> list[str] | None:
    """The texts of the samples ``ids``: as the run recorded them (a user's loop), else from the
    dataset when it is text and loads here; None for other data."""
    if not ids:
        return None
    recorded = run.texts(ids)
    if recorded is not None:
        return recorded
    return sample_texts(run.labels.dataset, ids)  # loads only data recorded as text (or before kinds were)


def trainable_detectors() -> list[str]:
    """Names of the registered detectors that learn from runs of known noise (``train-detector``)."""
    registry = plugins.registry()
    return [name for name in registry.names("detector")
            if isinstance(registry.get("detector", name).obj, type)
            and issubclass(registry.get("detector", name).obj, TrainableDetector)]


def train_detector(kind: str, runs: list[Path], out: Path, **settings: Any) -> dict[str, Any]:
    """Train the detector ``kind`` on ``runs`` into the weights file ``out`` (see
    :class:`noisyctl.api.TrainableDetector`)."""
    if not runs:
        raise NoisyctlError("give at least one run file to learn from")
    for later, run in enumerate(runs):
        twin = next((earlier for earlier in runs[:later] if same_file(earlier, run)), None)
        if twin is not None:
            raise NoisyctlError(f"{run} is given twice (as {twin}): its samples would sit on both sides of the "
                                f"hold-out split and its mAP would mean nothing")
    trainable = trainable_detectors()
    if kind not in trainable:
        raise NoisyctlError(f"detector '{kind}' does not learn from runs; trainable: {', '.join(trainable) or 'none'}")
    registration = plugins.get("detector", kind)
    return registration.guarded(registration.obj.train, [Path(r) for r in runs], Path(out), **settings)
