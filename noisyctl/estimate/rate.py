"""The noise-rate estimate from mean losses alone (``estimate_noise_rate``): the mixture's or the
tail's reading (``mixture``) with a bootstrap interval, as a ``NoiseRateEstimate``."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, replace

import numpy as np

from noisyctl.estimate.mixture import (MODE, UNFITTED_LOSS, WIDE_NOISE, ClassView, _noise_spread, late_class_view,
                                       noise_share)

BOOTSTRAP_MAX_SAMPLES = 50_000  # larger runs are subsampled for the interval's draws
FIT_MAX_SAMPLES = 200_000  # and for the estimate itself
WEAK_EVIDENCE = 0.005
# Without evidence of noise, an interval reaching above this means "cannot tell", not "clean".
UNSURE_ABOVE = 0.10
NOT_LEARNED = "not learned"  # the method of a run whose model never began to learn


def cannot_tell(evidence: str | None, high: float | None) -> bool:
    """No evidence of noise, yet room for much of it: the losses cannot tell (a run too short, or
    noise that looks like hard samples, such as 30-45% pair-flip)."""
    return evidence == "none" and high is not None and high > UNSURE_ABOVE


@dataclass
class NoiseRateEstimate:
    """The share of mislabeled samples, with an interval and the regime it was read in.

    ``rate``, ``low`` and ``high`` are shares in [0, 1]; ``low``/``high`` bound a ``confidence``
    (e.g. 0.9) percentile-bootstrap interval over the samples (in the tail, ``high`` from resamples
    that count the samples learned steadily too, and ``low`` from resamples read with a heavier
    clean tail, or of a separate mode of high losses where one stands). ``high`` reaches at least
    the exact binomial upper bound of the count read (``sampling_high``: 0 of 1,797 samples,
    0.17%), the share the mixture cannot rule out (posterior above ``PLAUSIBLE``) and
    ``unfitted``, the share of samples the model never fitted (mean loss above log 2, a
    geometric-mean probability of the given label under 1/2), among which noise that looks like
    the data's own ambiguity cannot be told from hard samples, by this estimate or by any detector.
    ``method`` is ``"mixture"`` (much, separated noise) or ``"tail"`` (little or none) on the losses, or ``"held-out"``
    (confident learning on out-of-fold probabilities, ``held_out_noise_rate``; ``run_noise_rate``
    takes it where it is below the losses' reading, and the interval then spans both), or
    ``"refused"`` (the share of labels the model refused to the end, ``refused_labels``, where it
    is above the losses' reading), or ``"refused held out"`` / ``"refused at first sight"`` (that
    share with the labels never believed that held-out models, or the model itself when it first met
    them, refused), or ``"held-out anchors"`` (among the samples held-out models are surest of, the
    share of labels they contradict and the model never believed, or had not halfway,
    ``run_held_out_anchors``, where it is above the losses' reading), or ``"annotators"`` (what
    several annotators' own labels count wrong, ``run_annotators_floor``, where the given labels are
    their own aggregate, their labels say who is right and it is above the losses' reading), or
    ``"never believed"`` (the
    share of labels whose mean loss stayed above log C, where it is below the losses' reading and
    the run can say so), or ``"not learned"`` (``run_noise_rate`` on a run whose model never began
    to learn). ``evidence`` is ``"none"`` when the interval reaches down to zero, ``"weak"`` when
    its lower end is under ``WEAK_EVIDENCE``, else ``"clear"``. ``late_classes``: the labels of
    classes the model learned later as a whole, whose losses were modelled on their own
    (``late_class_view``; given ``labels``).
    ``noise_spread``: in the pooled mixture, its noisy component's sd over its clean one's (see
    ``noise_as_wide_as_clean``); None otherwise. ``unlearned_classes``: the labels of classes the
    model did not learn (``run_noise_rate``), whose samples (``unlearned``, their share) the rate
    counts at the other samples' rate and the interval spans whole.
    """

    rate: float
    low: float
    high: float
    confidence: float
    method: str
    evidence: str
    samples: int
    unfitted: float = 0.0
    late_classes: tuple = ()
    noise_spread: float | None = None
    unlearned_classes: tuple = ()
    unlearned: float = 0.0

    @property
    def count(self) -> int:
        return int(round(self.rate * self.samples))

    @property
    def unsure(self) -> bool:
        return cannot_tell(self.evidence, self.high)

    def top_flags(self, scores: np.ndarray, given_labels: np.ndarray, judged: np.ndarray) -> np.ndarray:
        """(N,) bool: as many of the ``judged`` samples (N,) as the estimate counts, the highest
        ``scores`` (N,) first; of a run with ``unlearned_classes``, among the samples of the
        others, as many as the rate counts of them."""
        eligible = np.asarray(judged, dtype=bool) & ~np.isin(given_labels, self.unlearned_classes)
        count = int(round(self.rate * eligible.sum())) if self.unlearned_classes else self.count
        candidates = np.flatnonzero(eligible)
        flags = np.zeros(len(eligible), dtype=bool)
        flags[candidates[np.argsort(-np.asarray(scores, dtype=np.float64)[candidates], kind="stable")[:count]]] = True
        return flags

    @property
    def noise_as_wide_as_clean(self) -> bool:
        """The mixture's noisy component is at least as wide as the clean one (``WIDE_NOISE``): it
        may hold clean samples the model has not fitted, and a held-out count is surer."""
        return self.method == "mixture" and self.noise_spread is not None and self.noise_spread >= WIDE_NOISE

    @property
    def model_never_learned(self) -> bool:
        """The run's model stayed at chance (``never_learned``): neither its losses nor its detectors'
        decisions say anything of the labels."""
        return self.method == NOT_LEARNED


def estimate_noise_rate(mean_loss: np.ndarray, confidence: float = 0.9, draws: int = 100,
                        seed: int = 0, contradicted: np.ndarray | None = None,
                        learned_steadily: np.ndarray | None = None,
                        labels: np.ndarray | None = None) -> NoiseRateEstimate:
    """The share of mislabeled samples from each sample's mean training loss, with an interval.

    Parameters
    ----------
    mean_loss : np.ndarray, shape (N,)
        Each sample's training loss of its given label, averaged over the run (the ``loss``
        detector's score). NaN entries (samples not judged) are left out.
    contradicted : np.ndarray of bool, shape (N,), optional
        Whether the model's prediction contradicted the sample's label after the first
        ``EARLY_LEARNING`` share of training (``late_contradictions``). Where the losses cannot tell
        (``unsure``), the interval's upper end reaches their share: noise the model memorised
        hides among them.
    learned_steadily : np.ndarray of bool, shape (N,), optional
        Whether the model learned each sample steadily (``loss_evidence``). A separated high-loss
        minority is not counted as noise when ``STEADY_MOST`` of it was; without these flags, any
        separated minority above the fitted line is.
    labels : np.ndarray, shape (N,), optional
        Each sample's given label. When the model learned some class later than the others as a
        whole (a rare class in imbalanced data, ``late_class_view``), each class's clean losses are
        modelled on their own; without labels such a class reads as noise.
    confidence : float
        Coverage of the percentile-bootstrap interval.
    draws : int
        Bootstrap resamples; runs over ``BOOTSTRAP_MAX_SAMPLES`` samples draw that many per resample
        and the interval is narrowed by sqrt(subsample / N), as a larger sample's would be.
    seed : int
        The bootstrap's seed: the same run always gets the same interval.
    """
    values = np.asarray(mean_loss, dtype=np.float64)
    finite = np.isfinite(values)
    values = values[finite]
    if len(values) == 0:
        return NoiseRateEstimate(0.0, 0.0, 0.0, confidence, "tail", "none", 0, 0.0)
    steady = None if learned_steadily is None else np.asarray(learned_steadily, dtype=bool)[finite]
    labels = None if labels is None else np.asarray(labels)[finite]
    # detect asks twice for the same run (the learned detector's flags, then the estimate itself)
    digest = hashlib.blake2b(values.tobytes(), digest_size=16)
    if steady is not None:
        digest.update(np.packbits(steady).tobytes())
    if labels is not None:
        digest.update(np.ascontiguousarray(labels).tobytes())
    key = (digest.digest(), steady is None, labels is None, confidence, draws, seed)
    if key not in _recent:
        _recent.clear()  # one run at a time is all a command needs
        _recent[key] = _estimate(values, steady, labels, confidence, draws, seed)
    estimate = _recent[key]
    if contradicted is not None and estimate.unsure:
        share = float(np.asarray(contradicted, dtype=bool)[finite].mean())
        estimate = replace(estimate, high=max(estimate.high, share))
    return estimate


_recent: dict[tuple, NoiseRateEstimate] = {}


def _estimate(values: np.ndarray, steady: np.ndarray | None, labels: np.ndarray | None, confidence: float,
              draws: int, seed: int) -> NoiseRateEstimate:
    rng = np.random.default_rng(seed)
    z = np.log(np.maximum(values, 1e-12))
    # A million samples estimate no better than a fifth of them, at five times the mixture's cost.
    fit = rng.choice(len(z), FIT_MAX_SAMPLES, replace=False) if len(z) > FIT_MAX_SAMPLES else slice(None)
    classes = None if labels is None else late_class_view(z, labels)
    fit_classes = None if classes is None else classes.take(fit)
    fit_steady = None if steady is None else steady[fit]
    rate, method, plausible, mixture = noise_share(z[fit], steady=fit_steady, classes=fit_classes)
    size = min(len(z), BOOTSTRAP_MAX_SAMPLES)
    # The tail read two more ways, each widening one end of the interval with what cannot be ruled
    # out. The upper end: the tail leaves out the samples learned steadily, slow clean learners or
    # wrong labels the model memorised without pushing them away first, so it is read with them
    # counted too. The lower end: a clean tail can be heavier than its quartiles say (an MLP on clean
    # digits: 2.2% from the quartiles' normal), so it is read with the spread from a higher quantile too;
    # but where three (or four) Gaussians found a separate mode of high losses (counting less than the
    # tail), the high losses stand apart rather than stretch the clean tail, and the lower end reads that mode.
    # Read with a heavier tail, 20,000 shapes with 5% pair-flip noise in such a mode reached 0.0%
    # ("no clear sign" at 4.6%); the mode reads 4.0% at its lower end.
    other_readings = {}
    if method in ("tail", MODE) and steady is not None:
        other_readings["high"] = functools.partial(_tail_share, steady_counted=False)
    if method == "tail":
        other_readings["low"] = (functools.partial(_mode_share, modes=mixture) if mixture
                                 else functools.partial(_tail_share, heavier=True))
    shares, other_shares = [], {end: [] for end in other_readings}
    for _ in range(draws):
        drawn = rng.choice(len(z), size, replace=True)
        drawn_classes = None if classes is None else classes.take(drawn)
        drawn_steady = None if steady is None else steady[drawn]
        share = noise_share(z[drawn], method, mixture or None, drawn_steady, drawn_classes)[0]
        if method == MODE:  # the larger of the two readings, in every resample as in the run
            share = max(share, noise_share(z[drawn], "tail", steady=drawn_steady)[0])
        shares.append(share)
        for end, read in other_readings.items():
            other_shares[end].append(read(z[drawn], drawn_steady, drawn_classes))
    low, high = _interval(rate, np.array(shares), size, len(z), confidence)
    for end, read in other_readings.items():
        other_low, other_high = _interval(read(z[fit], fit_steady, fit_classes),
                                          np.array(other_shares[end]), size, len(z), confidence)
        low, high = (min(low, other_low), high) if end == "low" else (low, max(high, other_high))
    unfitted = float((values > UNFITTED_LOSS).mean())
    evidence = _evidence(low, len(z))
    # A share read as a count of the samples is no surer than that count's binomial bound: the
    # resamples of a count near zero all read near zero, and clean data read 0.0% (0.0-0.0%).
    high = sampling_high(max(high, unfitted, plausible), int(round(rate * len(z))), len(z), confidence, evidence)
    late = () if classes is None else tuple(classes.labels[classes.late].tolist())
    spread = _noise_spread(*mixture) if method in ("mixture", MODE) and classes is None else None
    method = "mixture" if method == MODE else method  # a mode is a mixture's reading to the user
    return NoiseRateEstimate(float(rate), low, high, confidence, method, evidence, len(z), unfitted, late, spread)


def _tail_share(z: np.ndarray, steady: np.ndarray | None, classes: ClassView | None, steady_counted: bool = True,
                heavier: bool = False) -> float:
    """The tail's reading (``tail_excess_share``), with or without the steady learners counted."""
    return noise_share(z, "tail", steady=steady if steady_counted else None, classes=classes,
                       heavier=heavier)[0]


def _mode_share(z: np.ndarray, steady: np.ndarray | None, classes: ClassView | None, modes: tuple) -> float:
    """The separate mode's reading (``separate_mode``), its three or four Gaussians started from ``modes``."""
    return noise_share(z, MODE, modes, steady)[0]


def _interval(rate: float, shares: np.ndarray, size: int, samples: int, confidence: float) -> tuple[float, float]:
    """The percentile-bootstrap interval of resamples of ``size`` drawn from ``samples``, narrowed by
    sqrt(size / samples) as the full sample's would be, and reaching the estimate itself."""
    spread = np.sqrt(size / samples)
    tail = (1 - confidence) / 2
    low_q, high_q = np.quantile(shares, [tail, 1 - tail])
    centre = np.median(shares)
    low = float(np.clip(min(rate, centre - (centre - low_q) * spread), 0, 1))
    high = float(np.clip(max(rate, centre + (high_q - centre) * spread), 0, 1))
    return low, high


def count_interval(count: int, samples: int, confidence: float) -> tuple[float, float]:
    """The exact binomial (Clopper-Pearson) interval of the share of ``count`` of ``samples``, at
    ``confidence``: 0 at its lower end for a count of 0, 1 at its upper end for all of them."""
    from scipy import stats

    tail = (1 - confidence) / 2
    low = float(stats.beta.ppf(tail, count, samples - count + 1)) if count > 0 else 0.0
    high = float(stats.beta.ppf(1 - tail, count + 1, samples - count)) if count < samples else 1.0
    return low, high


def sampling_high(high: float, count: int, samples: int, confidence: float, evidence: str) -> float:
    """An interval's upper end ``high`` raised to the upper end of ``count_interval`` (a share read
    as ``count`` of ``samples`` is no surer than that), but, with no ``evidence``, not across
    UNSURE_ABOVE by that bound alone: "cannot tell" says the losses cannot separate wrong labels
    from hard ones, which sampling does not (24 clean samples, none counted, reach 11.7%, and the
    learned detector would flag two by its networks' own decision); such a set reads up to 10%."""
    bound = count_interval(count, samples, confidence)[1]
    if evidence == "none" and high <= UNSURE_ABOVE:
        bound = min(bound, UNSURE_ABOVE)
    return max(high, bound)


def _evidence(low: float, samples: int) -> str:
    return "none" if low * samples < 1 else "weak" if low < WEAK_EVIDENCE else "clear"
