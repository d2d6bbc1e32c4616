"""A run's noise-rate estimate, what ``detect`` reports (``run_noise_rate``): the losses' reading
(``rate``), held within the floors and ceilings that the run's other evidence gives (``evidence``,
``held_out``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from noisyctl.estimate.annotators import ANNOTATORS, run_annotators_floor
from noisyctl.estimate.evidence import (FIRST_SIGHT_REFUSED, HELD_NOT_MEMORISED, NEVER_BELIEVED, REFUSED,
                                        UNDER_CHANCE_AT_END, late_contradictions, read_run_evidence)
from noisyctl.estimate.held_out import (ANCHOR_MIN_COUNT, FEW_CLASSES, HELD_OUT_ANCHORS, run_held_out_anchors,
                                        run_held_out_contradicted_anchors, run_held_out_count, run_held_out_refused)
from noisyctl.estimate.mixture import LATE_CLASS_MIN, UNFITTED_LOSS
from noisyctl.estimate.rate import (NOT_LEARNED, WEAK_EVIDENCE, NoiseRateEstimate, _evidence, count_interval,
                                    estimate_noise_rate, sampling_high)

# The refused labels' floor (``REFUSED``) also counts a label refused by both readings of a run
# trained with --folds: the model never believed it (mean loss above log C) and models that never
# trained on it gave it under REFUSED_PROBABILITY. On overlapping clusters (blobs: a fifth of the
# samples lie in another class's cluster) the clean losses' tail reaches past the wrong labels and
# the losses read 0.0% at 1-5% noise, while held-out models alone give 2% of the clean samples
# under 1% (they are overconfident where the clusters meet). Few clean labels fail both (0.0-0.7%
# on 47 clean cached runs; a median of 100% of what runs with 2-10% uniform or pair-flip noise
# counted was wrong, 79% at least), so it is a floor, as the refused share is: it undercounts a
# model that memorises (about half the wrong labels of blobs with 5% noise were believed). As clean
# runs leave a few such labels, its lower end rises only where the count's bound is clear evidence
# (WEAK_EVIDENCE), so a clean run keeps "no clear sign".
HELD_OUT_REFUSED = "refused held out"
# The held-out anchors' floor (``HELD_OUT_ANCHORS``) counts the contradicted anchors the model never
# believed, and a model trained long memorises wrong labels in its second half: the calibration
# blobs with 5-20% uniform noise read 3.2-10.5%. Those it had not believed by halfway through its
# run (``BELIEVED_BY``) count too. Either share counts only where confident learning's held-out
# count is at most ANCHORS_AGREE times it: where it is more, the classes overlap so much that clean
# labels the model did not believe fill the anchors too (clean blobs of 20 overlapping classes
# trained 15 epochs: 10.2% of the anchors had not been believed halfway, beside a held-out count of
# 50.9%; with a bar of up to 4 times, no cached clean run moved; clean tables of 3, 5 and 8
# overlapping classes read 1.7-2.7% by the labels never believed before the bar held for them too:
# docs/benchmarks-history.md, sixty-first pass). The halfway share is not read with FEW_CLASSES or
# fewer: there a label under chance's probability, 1/2 or 1/3, is one the model leans away from,
# and halfway through a run it still leans away from clean samples near the boundary (of the cached
# runs with two or three classes, it moved 14, 6 out of the tolerance and 2 into it), while the
# labels it never believed already read such runs' noise (see FEW_CLASSES).
ANCHORS_AGREE = 3.0
# A class the model did not learn: UNLEARNED_CLASS of its samples (LATE_CLASS_MIN or more) still
# unfitted at the end (loss above log 2 in each of its last epochs). Noise leaves the majority of a
# class fitted below 50% noise, whatever its kind; a model that never learned a class leaves nearly
# all of it unfitted, noisy or not (text-bag on 584 Chinese tickets, two thirds in one class, 30
# epochs: three of the four small classes 94-100% unfitted, read as 9.1% noise with clear
# evidence; 100 epochs fit them and read 0.0%). Their labels cannot be judged: the rate counts them
# at the other samples' rate and the interval spans them whole. Of 390 cached runs, 13 had such a
# class: that one, shapes with 45% uniform noise (a class of 175, all unfitted: 35.5% read, 39.2%
# without it, 45% true) and runs stopped early or trained on a handful of samples.
UNLEARNED_CLASS = 0.8
# Where the classes the model did not learn hold UNLEARNED_MOST of the samples or more, it is early
# in learning the others too: they are learned at different paces, and the half-learned classes'
# hard samples stand apart from the rest as noise would. LeNet on clean digits in batches of 512
# (120 optimizer steps) did not learn four classes (40% of the samples) and half learned three
# more, whose upper halves three Gaussians read as 6.3% noise with clear evidence (2.9-100%),
# failing the 3% gate. There the interval reaches down to zero: the losses cannot tell. Of the
# cached runs with classes not learned, 7 hold 1.5-10% of their samples in them (rare classes of
# long-tailed data, one class of a briefly fine-tuned CNN, shapes with 45% noise) and read as
# before; the 11 with 20-100% are under-trained runs: two more LeNet ones (4.0% with clear evidence
# at 2% noise, now "cannot tell"; none at 5%), and tables trained 10 epochs (none or weak before).
UNLEARNED_MOST = 0.25
# With FEW_CLASSES or fewer, held-out models also contradict, and surely, clean labels that lie on
# the far side of a boundary where the classes overlap, which confident learning counts: clean
# moons (two classes, noise 0.25, 5.8% of them on the far side) 1.65-1.75% with clear evidence. The
# anchors, the samples held-out models are surest of, lie far from the boundaries, where noise that
# does not depend on the sample shows as often as anywhere: there 1 of 518 labels was
# contradicted. Where the losses can tell and the share of contradicted anchors is under their
# reading or the held-out count, whichever is the estimate, it is the estimate (OVERLAP_ANCHORS),
# read from ANCHOR_MIN_COUNT labels on (from fewer, only where its exact upper bound is under the
# estimate: 3 of 626 anchors read moons with 1% noise 0.47%); the interval reaches down to its
# lower bound either way, and its upper end stays: noise placed where classes meet
# (instance-dependent) is read low there, as everywhere. The figures that chose this (moons with
# 1-3% noise read 2.4-4.5% before, the truth under the interval) are in docs/benchmarks-history.md,
# sixty-first pass.
OVERLAP_ANCHORS = "held-out anchors, under the held-out count"


def run_noise_rate(dynamics, judged: np.ndarray | None = None) -> NoiseRateEstimate | None:
    """The noise-rate estimate of a run, what ``detect`` reports, over the ``judged`` samples (a
    mask; others, such as AUM threshold samples, are left out); None when the run recorded no loss.

    In order (each step's method names the estimate where it decides it):

    1. A run whose model never began to learn (``never_learned``) cannot tell at all: 0% with an
       interval of 0-100%. Classes it did not learn (``unlearned_classes``) are left out: the rest
       are read as below, at a rate their samples are counted at too, with an interval reaching
       all of them (``unlearned_classes`` and ``unlearned`` on the estimate); with fewer than two
       classes learned, as step 1.
    2. The losses' reading: ``estimate_noise_rate`` on the run's ``read_run_evidence``. Where it
       cannot tell, the run's eval passes are read too, for the samples the model contradicted
       late (``late_contradictions``).
    3. Where the losses can tell:

       - with ``--folds``, confident learning's count on the out-of-fold probabilities
         (``run_held_out_count``) where it is the smaller (``"held-out"``): the two err upward for
         different reasons, the losses counting clean samples a weak or brief model has not yet
         fitted, held-out models counting samples that look like another class; with
         ``FEW_CLASSES`` or fewer, where both count the overlap of the classes, at most the share
         of held-out anchors whose label the held-out models contradicted, the interval reaching
         down to that share's (``run_held_out_contradicted_anchors``; ``OVERLAP_ANCHORS``);
       - at most the share of labels the model never believed, where it knew the data from its
         first epoch or held its wrong labels to the end (``_at_most_never_believed``;
         ``"never believed"``).
    4. At least the share of labels it refused to its end (``refused_labels``; ``"refused"``), or
       never believed while another reading refused them: the model at first sight, where it
       knew the data from its first epoch (``"refused at first sight"``), or held-out models,
       where the losses can tell (``run_held_out_refused``; ``"refused held out"``). Where they
       cannot and the model knew the data from its first epoch, at least the share it still gave
       under chance at its end (``under_chance_at_end``; ``"under chance at the end"``). A floor
       below the count still raises the interval's lower end to its own bound.
    5. With ``--folds``, at least the share of held-out anchors whose label the held-out models
       contradicted and the model never believed (or, with more than ``FEW_CLASSES`` classes, had
       not believed by halfway through its run), where confident learning's count is at most
       ``ANCHORS_AGREE`` times that share, or confident learning's count if smaller
       (``run_held_out_anchors``; ``"held-out anchors"``).
    6. Where the run keeps several annotators' own labels and its given labels are their own
       aggregate (their vote, or their Dawid-Skene model's most probable classes), at least what
       that model counts wrong, where that is clear evidence
       (``run_annotators_floor``; ``"annotators"``): it sees the errors they make alike, which
       a model trained on them learns as the task.
    """
    evidence = read_run_evidence(dynamics)
    if evidence is None:
        return None
    keep = slice(None) if judged is None else judged
    mean, steady = evidence.mean_loss[keep], evidence.learned_steadily[keep]
    if not evidence.learned:  # nothing to read, here or in held-out models trained the same way
        return _not_learned(mean)
    labels = np.asarray(dynamics.given_labels)[keep]
    unlearned = unlearned_classes(evidence.unfitted_at_end[keep], labels)
    if len(unlearned):
        return _without_unlearned_classes(dynamics, judged, labels, unlearned, mean)
    estimate = estimate_noise_rate(mean, learned_steadily=steady, labels=labels)
    refused = evidence.refused[keep]
    never_believed = evidence.never_believed(dynamics.num_classes)[keep]
    first_sight = None if evidence.refused_at_first_sight is None else evidence.refused_at_first_sight[keep]
    held_out = run_held_out_count(dynamics, judged)
    if estimate.unsure:
        if dynamics.has_channel("eval_pred"):
            if evidence.contradicted is None:
                evidence.contradicted = np.concatenate([late_contradictions(block["eval_pred"], block["given_label"])
                                                        for _, block in dynamics.iter_blocks(("eval_pred",))])
            estimate = estimate_noise_rate(mean, learned_steadily=steady, contradicted=evidence.contradicted[keep],
                                           labels=labels)
        # The labels the model refused are wrong whether or not the losses can tell (a briefly pretrained
        # model, fine-tuned, leaves many clean samples unfitted); held-out models' own count is shown
        # beside such a reading instead of their refusals. A model that knew the data counts those it
        # left under chance too (UNDER_CHANCE_AT_END).
        under_chance = None if evidence.under_chance_at_end is None else evidence.under_chance_at_end[keep]
        floor = _at_least_refused_labels(estimate, refused, never_believed, None, first_sight, under_chance)
    else:
        if held_out is not None and held_out.rate < estimate.rate:
            low = min(estimate.low, held_out.low)
            estimate = replace(estimate, rate=held_out.rate, low=low, high=max(estimate.high, held_out.high),
                               method="held-out", evidence=_evidence(low, estimate.samples))
        if held_out is not None and dynamics.num_classes <= FEW_CLASSES:
            estimate = _at_most_contradicted_anchors(estimate, run_held_out_contradicted_anchors(dynamics, judged))
        # A fine-tuned model, or one trained too briefly to memorise where its losses read little noise
        not_memorising = evidence.knew_at_start or (evidence.few_updates and estimate.method == "tail")
        ceiling = _at_most_never_believed(estimate, never_believed, refused, not_memorising)
        floor = _at_least_refused_labels(ceiling, refused, never_believed, run_held_out_refused(dynamics, judged),
                                         first_sight)
    halfway = run_held_out_anchors(dynamics, judged, halfway=True) if dynamics.num_classes > FEW_CLASSES else None
    floor = _at_least_held_out_anchors(floor, run_held_out_anchors(dynamics, judged), held_out, halfway)
    return _at_least_annotators(floor, run_annotators_floor(dynamics, judged))


def unlearned_classes(unfitted_at_end: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The labels of the classes the model did not learn: ``UNLEARNED_CLASS`` of their samples (at
    least ``LATE_CLASS_MIN``) unfitted at its end (``unfitted_at_end``, (N,), over the judged
    samples, whose given ``labels`` are (N,))."""
    names, index = np.unique(labels, return_inverse=True)
    sizes = np.bincount(index, minlength=len(names))
    unfitted = np.bincount(index, unfitted_at_end.astype(np.float64), len(names))
    return names[(sizes >= LATE_CLASS_MIN) & (unfitted >= UNLEARNED_CLASS * sizes)]


def _without_unlearned_classes(dynamics, judged: np.ndarray | None, labels: np.ndarray, unlearned: np.ndarray,
                               mean: np.ndarray) -> NoiseRateEstimate:
    """The estimate of the samples of the classes the model learned, at their rate, with an interval
    that reaches all the samples of those it did not (``unlearned``); with fewer than two classes
    learned, the run cannot tell at all. ``labels`` and ``mean`` are over the judged samples."""
    judged = np.ones(len(dynamics.given_labels), dtype=bool) if judged is None else np.asarray(judged, dtype=bool)
    outside = np.isin(labels, unlearned)
    seen = np.isfinite(mean)
    share = float(outside[seen].mean()) if seen.any() else 1.0
    whole = _not_learned(mean, unlearned_classes=tuple(unlearned.tolist()), unlearned=share)
    if len(np.unique(labels[~outside])) < 2:
        return whole
    learned = judged.copy()
    learned[judged] = ~outside
    inner = run_noise_rate(dynamics, learned)
    low = 0.0 if share >= UNLEARNED_MOST else inner.low * (1 - share)
    high = min(1.0, inner.high * (1 - share) + share)
    return replace(inner, low=low, high=high, evidence=_evidence(low, whole.samples), samples=whole.samples,
                   unfitted=whole.unfitted, unlearned_classes=whole.unlearned_classes, unlearned=share)


def _not_learned(mean: np.ndarray, **marks) -> NoiseRateEstimate:
    """0% with an interval of 0-100%: the model learned nothing the mean losses (N,) could be read
    by (``marks``: what the estimate says of the classes it did not learn)."""
    seen = mean[np.isfinite(mean)]
    return NoiseRateEstimate(0.0, 0.0, 1.0, 0.9, NOT_LEARNED, "none", len(seen),
                             float((seen > UNFITTED_LOSS).mean()) if len(seen) else 0.0, **marks)


def _at_least_refused_labels(estimate: NoiseRateEstimate, refused: np.ndarray, never_believed: np.ndarray,
                             held_out: np.ndarray | None, first_sight: np.ndarray | None,
                             under_chance: np.ndarray | None = None) -> NoiseRateEstimate:
    """The estimate raised to the share of labels the model refused to its end, then to that share
    with the never-believed labels held-out models (``held_out``) or the model at first sight
    (``first_sight``) refused, then to the share it left under chance at its end (``under_chance``),
    where given; each (N,) over the judged samples."""
    floor = _at_least_refused(estimate, refused)
    for refused_elsewhere, method in ((held_out, HELD_OUT_REFUSED), (first_sight, FIRST_SIGHT_REFUSED)):
        if refused_elsewhere is not None:
            refused = refused | (never_believed & refused_elsewhere)
            floor = _at_least_refused(floor, refused, method, clear_bound_only=True)
    if under_chance is not None:
        floor = _at_least_refused(floor, under_chance, UNDER_CHANCE_AT_END, clear_bound_only=True)
    return floor


def _binomial_low(count: int, estimate: NoiseRateEstimate, samples: int | None = None) -> float:
    """The exact binomial lower bound (``count_interval``) of a share of ``count`` of the estimate's
    samples (or of ``samples``), at its confidence; 0 for a count of 0."""
    return count_interval(count, estimate.samples if samples is None else samples, estimate.confidence)[0]


def _refused_bound(refused: np.ndarray, estimate: NoiseRateEstimate) -> float:
    """The refused share's lower bound (``_binomial_low``) where it is a sample or more, else 0:
    three refused samples or fewer say no more than "no clear sign"."""
    bound = _binomial_low(int(refused.sum()), estimate)
    return bound if bound * estimate.samples >= 1 else 0.0


def _at_most_never_believed(estimate: NoiseRateEstimate, never_believed: np.ndarray, refused: np.ndarray,
                            not_memorising: bool) -> NoiseRateEstimate:
    """The estimate lowered to the share of labels the model never believed (``never_believed``:
    mean loss above log C), or the refused share if larger, where the model could not have memorised
    wrong labels (``not_memorising``: it knew the data from its first epoch,
    ``RunEvidence.knew_at_start``, or where the losses read the tail, took few optimizer steps for
    its samples, ``RunEvidence.few_updates``) or held its wrong labels (the refused ones are
    evidence, ``_refused_bound`` above 0, and a ``HELD_NOT_MEMORISED`` share of the never-believed
    ones or more). The lower end comes down to the count's own binomial bound where it lay above;
    the upper end stays, the losses' reading not being ruled out."""
    never, held = int(never_believed.sum()), int((never_believed & refused).sum())
    held_them = never > 0 and held >= HELD_NOT_MEMORISED * never and _refused_bound(refused, estimate) > 0
    if not (not_memorising or held_them):
        return estimate
    count = max(never, int(refused.sum()))
    share = count / max(1, estimate.samples)
    if share >= estimate.rate:
        return estimate
    low = min(estimate.low, _binomial_low(count, estimate))
    return replace(estimate, rate=share, low=low, method=NEVER_BELIEVED, evidence=_evidence(low, estimate.samples))


def _at_least_refused(estimate: NoiseRateEstimate, refused: np.ndarray, method: str = REFUSED,
                      clear_bound_only: bool = False) -> NoiseRateEstimate:
    """The estimate raised to the share of refused labels where that is larger, its lower end to
    the share's lower bound (``_refused_bound``; with ``clear_bound_only``, only where that bound
    is clear evidence, WEAK_EVIDENCE or more), its upper end to the share's exact binomial upper
    bound (a count of a few samples is no surer than that); ``method`` names the count where it
    raises it. Where another reading counts more, the lower end still rises to the bound: refused
    labels are evidence of noise whichever reading sets the count (breast cancer with 5% noise,
    counted 4.7% by held-out models, read 0.0-7.7%, "no clear sign", beside 15 labels both readings
    refused; 1.6-7.7% with them)."""
    count = int(refused.sum())
    share = count / max(1, estimate.samples)
    bound = _refused_bound(refused, estimate)
    low = max(estimate.low, 0.0 if clear_bound_only and bound < WEAK_EVIDENCE else bound)
    evidence = _evidence(low, estimate.samples)
    if share <= estimate.rate:
        return replace(estimate, low=low, evidence=evidence) if low > estimate.low else estimate
    high = sampling_high(max(estimate.high, share), count, estimate.samples, estimate.confidence, evidence)
    return replace(estimate, rate=share, low=low, high=high, method=method, evidence=evidence)


def _at_least_held_out_anchors(estimate: NoiseRateEstimate, anchors: tuple[int, int] | None,
                               counted: NoiseRateEstimate | None,
                               halfway: tuple[int, int] | None = None) -> NoiseRateEstimate:
    """The estimate raised to the share of held-out anchors whose label the held-out models
    contradicted and the model never believed (``run_held_out_anchors``: that count, anchors), or
    to confident learning's held-out count (``counted``) where that is smaller, where
    ANCHOR_MIN_COUNT or more such labels count and their share's lower bound is clear evidence
    (WEAK_EVIDENCE). With ``halfway`` (the same count with the labels not believed by halfway
    through the run), the larger of the two shares; either counts only where ``counted`` is at most
    ANCHORS_AGREE times it. The interval spans both readings: its lower end stays, and its upper
    end reaches the counted share's exact binomial upper bound among the anchors (or confident
    learning's upper end, where that count is the smaller)."""
    if anchors is None or counted is None:
        return estimate
    shares = [(_anchor_share(estimate, counts), counts) for counts in (anchors, halfway) if counts is not None]
    readings = [(share if counted.rate <= ANCHORS_AGREE * share else 0.0, counts) for share, counts in shares]
    share, (count, size) = max(readings, key=lambda reading: reading[0])
    if min(share, counted.rate) <= estimate.rate:
        return estimate
    if counted.rate < share:  # confident learning's count is the smaller reading, with its own interval
        rate, high = counted.rate, max(estimate.high, counted.high)
    else:
        rate, high = share, sampling_high(max(estimate.high, share), count, size, estimate.confidence,
                                          estimate.evidence)
    return replace(estimate, rate=rate, high=high, method=HELD_OUT_ANCHORS)


def _at_most_contradicted_anchors(estimate: NoiseRateEstimate, anchors: tuple[int, int] | None) -> NoiseRateEstimate:
    """The estimate (the losses' reading or the held-out count) lowered to the share of held-out
    anchors whose label the held-out models contradicted (``run_held_out_contradicted_anchors``:
    that count, anchors), where that share is the smaller: from ANCHOR_MIN_COUNT labels on, else
    where its exact upper bound is; its lower end comes down to the share's lower bound either way,
    its upper end stays (see OVERLAP_ANCHORS)."""
    if anchors is None:
        return estimate
    count, size = anchors
    low, high = count_interval(count, size, estimate.confidence)
    low = min(estimate.low, low)
    estimate = replace(estimate, low=low, evidence=_evidence(low, estimate.samples))
    # a share of a handful of labels is too rough to lower an estimate it does not clearly undercut
    if high < estimate.rate or (count >= ANCHOR_MIN_COUNT and count / size < estimate.rate):
        return replace(estimate, rate=count / size, method=OVERLAP_ANCHORS)
    return estimate


def _at_least_annotators(estimate: NoiseRateEstimate, counted: NoiseRateEstimate | None) -> NoiseRateEstimate:
    """The estimate raised to the annotators' count (``run_annotators_floor``: where the given labels
    are their own aggregate), where it is larger and its lower end is clear evidence
    (WEAK_EVIDENCE); the interval spans both readings."""
    if counted is None or counted.rate <= estimate.rate or counted.low < WEAK_EVIDENCE:
        return estimate
    low = max(estimate.low, counted.low)
    return replace(estimate, rate=counted.rate, low=low, high=max(estimate.high, counted.high), method=ANNOTATORS,
                   evidence=_evidence(low, estimate.samples))


def _anchor_share(estimate: NoiseRateEstimate, anchors: tuple[int, int]) -> float:
    """The share of the anchors counted (``run_held_out_anchors``: that count, anchors), where
    ANCHOR_MIN_COUNT or more count and the share's lower bound is clear evidence; else 0."""
    count, size = anchors
    if count < ANCHOR_MIN_COUNT or _binomial_low(count, estimate, size) < WEAK_EVIDENCE:
        return 0.0
    return count / size
