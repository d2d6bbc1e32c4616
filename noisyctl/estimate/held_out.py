"""What models that never trained on a sample say of its label (out-of-fold probabilities, ``train
--folds``): confident learning's count, the anchors they are surest of, the labels they refused."""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass, field

import numpy as np

from noisyctl.estimate.evidence import _refused_loss, read_run_evidence
from noisyctl.estimate.rate import BOOTSTRAP_MAX_SAMPLES, NoiseRateEstimate, _evidence, _interval, sampling_high

# Held-out models and the losses together give one more floor. The samples held-out models are
# surest of, the ANCHOR_SHARE of each class they predict, are anchors: nearly every one truly belongs
# to its predicted class, so the labels that contradict that prediction read the noise's share
# (anchor points give a noise transition's rows, Patrini et al. 2017), away from the class
# boundaries where a wrong label's loss looks like a hard clean one's (with two or three classes a
# wrong label's loss is bounded by how far its sample lies from the boundary: the losses read 2-8%
# as 0.8-5.4%). Held-out models are also confidently wrong by nature where classes overlap, and more
# so trained on noisy labels (blobs with 5% noise: 18 of 511 anchors, beside 26 wrong labels); a
# clean label there is one the model trained on believes, so only contradicted anchors the model
# never believed (mean loss above log C) count. The floor is their share of the anchors, at most
# confident learning's held-out count, where ANCHOR_MIN_COUNT or more count and their share's
# lower bound is clear evidence (WEAK_EVIDENCE). It stands for the whole run where the noise is
# independent of how typical a sample is; noise placed where classes meet is under-read there. Of
# 144 noisy runs with held-out models it moved 61 (55 toward the truth, 25 into the tolerance, 1
# out of it) and no clean one of 64; two batches of them were made after it was fixed.
HELD_OUT_ANCHORS = "held-out anchors"
ANCHOR_SHARE = 0.25
ANCHOR_MIN_COUNT = 5
# With this many classes or fewer a wrong label's loss is bounded by how far its sample lies from the
# boundary, and the losses undercount (binary and three-class blobs and shapes with 1-8% noise: 4 of
# 13 within the tolerance, the rest under it); held-out models' anchors count most of the rest
# (shapes, two classes: 2-5% from 0.2-3.2% to 2.1-4.4%), so train fits them by default for such tasks.
FEW_CLASSES = 3


@dataclass
class _HeldOutRead:
    """A run's out-of-fold probabilities, read once per opened run: the given labels (N,) and the
    probabilities (N, C), None when it holds none; confident learning's count (a bootstrap) and the
    anchors whose label the held-out models contradict (a mask, and how many anchors) per set of
    judged samples."""

    counts: dict = field(default_factory=dict)
    contradicted_anchors: dict = field(default_factory=dict)
    given: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    read: bool = False


# detect's estimate, its second reading and the learned detector ask the same of the same run: once is enough.
_held_out_read: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _held_out_cache(dynamics) -> _HeldOutRead:
    try:
        return _held_out_read.setdefault(dynamics, _HeldOutRead())
    except TypeError:  # an object that cannot be weakly referenced: read every time
        return _HeldOutRead()


def _judged_key(judged: np.ndarray | None) -> bytes | None:
    """A set of judged samples as a cache key (None: all of them)."""
    return None if judged is None else hashlib.blake2b(np.packbits(judged).tobytes(), digest_size=16).digest()


def run_held_out_count(dynamics, judged: np.ndarray | None = None) -> NoiseRateEstimate | None:
    """``held_out_noise_rate`` on the ``judged`` samples' out-of-fold probabilities (``train
    --folds``), once per opened run and set of judged samples; None when the run holds none, or
    when the judged labels are of one class (a model that learned one class: confident learning
    counts against the others)."""
    key = _judged_key(judged)
    cache = _held_out_cache(dynamics)
    if key not in cache.counts:
        held_out = _held_out_probabilities(dynamics, judged, cache)
        cache.counts[key] = None if held_out is None or len(np.unique(held_out[0])) < 2 \
            else held_out_noise_rate(*held_out)
    return cache.counts[key]


def run_held_out_anchors(dynamics, judged: np.ndarray | None = None, halfway: bool = False) -> tuple[int, int] | None:
    """Of the ``judged`` samples' held-out anchors (``held_out_anchors``), how many have a label the
    held-out models contradicted and the model never believed (mean loss above log C, from
    ``read_run_evidence``; with ``halfway``, or had not believed by halfway through its run), and
    how many anchors there are. None when the run holds no out-of-fold probabilities or recorded no
    loss."""
    contradicted = _contradicted_anchors(dynamics, judged)
    evidence = read_run_evidence(dynamics)
    if contradicted is None or evidence is None:
        return None
    contradicted_anchors, size = contradicted
    not_believed = evidence.never_believed(dynamics.num_classes, halfway)[slice(None) if judged is None else judged]
    return int((contradicted_anchors & not_believed).sum()), size


def run_held_out_contradicted_anchors(dynamics, judged: np.ndarray | None = None) -> tuple[int, int] | None:
    """Of the ``judged`` samples' held-out anchors (``held_out_anchors``), how many have a label the
    held-out models contradicted, whatever the model made of it, and how many anchors there are;
    None when the run holds no out-of-fold probabilities."""
    contradicted = _contradicted_anchors(dynamics, judged)
    return None if contradicted is None else (int(contradicted[0].sum()), contradicted[1])


def _contradicted_anchors(dynamics, judged: np.ndarray | None) -> tuple[np.ndarray, int] | None:
    """The ``judged`` samples' held-out anchors whose label the held-out models contradicted (a mask,
    (N,)) and how many anchors there are, once per opened run and set of judged samples; None when
    the run holds no out-of-fold probabilities."""
    key, cache = _judged_key(judged), _held_out_cache(dynamics)
    if key not in cache.contradicted_anchors:  # every reading, and every estimate of the run, share them
        held_out = _held_out_probabilities(dynamics, judged, cache)
        if held_out is None:
            cache.contradicted_anchors[key] = None
        else:
            anchors, contradicted = held_out_anchors(*held_out)
            cache.contradicted_anchors[key] = (anchors & contradicted, int(anchors.sum()))
    return cache.contradicted_anchors[key]


def held_out_anchors(given_labels: np.ndarray, probabilities: np.ndarray,
                     share: float = ANCHOR_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """The samples held-out models are surest of, and whose given label they contradict.

    The anchors are, for each class the models predict, the ``share`` of its samples with the
    highest predicted probability; all samples tied at the cut are taken (probabilities saturate at
    1, and a run file keeps them in float16). Nearly every anchor truly belongs to its predicted
    class, so among anchors the contradicted labels read class-conditional noise (the rows of its
    transition matrix, Patrini et al. 2017); where classes overlap, they also include samples that
    lie in another class's region.

    Parameters
    ----------
    given_labels : np.ndarray, shape (N,)
        Each sample's given label.
    probabilities : np.ndarray, shape (N, C)
        Out-of-fold class probabilities, from models that never trained on the sample.
    share : float
        The share of each predicted class's samples taken as anchors.

    Returns
    -------
    anchors : np.ndarray of bool, shape (N,)
        Whether the sample is an anchor.
    contradicted : np.ndarray of bool, shape (N,)
        Whether the held-out prediction (the most probable class) differs from the given label.
    """
    given = np.asarray(given_labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted, surest = probabilities.argmax(axis=1), probabilities.max(axis=1)
    anchors = np.zeros(len(given), dtype=bool)
    for predicted_class in np.unique(predicted):
        members = np.flatnonzero(predicted == predicted_class)
        anchors[members[surest[members] >= np.quantile(surest[members], 1 - share)]] = True
    return anchors, predicted != given


def run_held_out_label_probability(dynamics) -> np.ndarray | None:
    """The probability models that never trained on each sample (``train --folds``) gave its given
    label (N,), from the out-of-fold probabilities the estimate read (once per opened run); None
    when the run holds none."""
    held_out = _held_out_probabilities(dynamics, None, _held_out_cache(dynamics))
    if held_out is None:
        return None
    given, probabilities = held_out
    return probabilities[np.arange(len(given)), given]


def run_held_out_probabilities(dynamics, judged: np.ndarray | None = None) -> np.ndarray | None:
    """The ``judged`` samples' out-of-fold class probabilities (N, C), rows summing to one, as the
    estimate read them (once per opened run); None when the run holds none."""
    held_out = _held_out_probabilities(dynamics, judged, _held_out_cache(dynamics))
    if held_out is None:
        return None
    probabilities = np.clip(np.asarray(held_out[1], dtype=np.float64), 1e-12, None)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def run_held_out_refused(dynamics, judged: np.ndarray | None = None) -> np.ndarray | None:
    """Whether models that never trained on each ``judged`` sample (``train --folds``) refused its
    given label, giving it under REFUSED_PROBABILITY (and a tenth of chance); None when the run holds
    no out-of-fold probabilities."""
    held_out = _held_out_probabilities(dynamics, judged, _held_out_cache(dynamics))
    if held_out is None:
        return None
    given, probabilities = held_out
    return probabilities[np.arange(len(given)), given] < np.exp(-_refused_loss(dynamics.num_classes))


def _held_out_probabilities(dynamics, judged: np.ndarray | None,
                            cache: _HeldOutRead) -> tuple[np.ndarray, np.ndarray] | None:
    """The ``judged`` samples' given labels (N,) and out-of-fold class probabilities (N, C), or None
    when the run holds none; read from the run once, into ``cache``."""
    if not cache.read:
        probabilities = dynamics.probabilities("out_of_fold") if hasattr(dynamics, "probabilities") else None
        if probabilities is not None:
            cache.given, cache.probabilities = np.asarray(dynamics.given_labels), np.asarray(probabilities)
        cache.read = True
    if cache.probabilities is None:
        return None
    keep = slice(None) if judged is None else judged
    return cache.given[keep], cache.probabilities[keep]


def held_out_noise_rate(given_labels: np.ndarray, probabilities: np.ndarray, confidence: float = 0.9,
                        draws: int = 100, seed: int = 0) -> NoiseRateEstimate:
    """The share of mislabeled samples by confident learning on held-out class probabilities.

    Where the losses cannot tell (``NoiseRateEstimate.unsure``: noise the model fits like hard
    samples, such as 45% pair-flip), a model that never trained on a sample still gives its true
    class more probability than its wrong label. cleanlab's count of label issues
    (``cleanlab.count.num_label_issues``, Northcutt et al. 2021) reads that; it also counts samples
    that look like another class by nature, so it is the second reading, not the first (on the
    calibration runs it counted 6-8% on clean overlapping clusters where the losses read 0%).

    Parameters
    ----------
    given_labels : np.ndarray, shape (N,)
        Each sample's given label.
    probabilities : np.ndarray, shape (N, C)
        Out-of-fold class probabilities (``train --folds K``): from models that never trained on the
        sample. Rows are renormalised.
    confidence, draws, seed
        As in ``estimate_noise_rate``: the bootstrap interval's coverage, resamples and seed.

    The given labels must hold two classes or more.
    """
    import warnings

    from cleanlab.count import num_label_issues

    given = np.asarray(given_labels)
    probs = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, None)
    probs /= probs.sum(axis=1, keepdims=True)
    if len(given) == 0:
        return NoiseRateEstimate(0.0, 0.0, 0.0, confidence, "held-out", "none", 0, 0.0)

    def share(rows: np.ndarray) -> float:
        return num_label_issues(given[rows], probs[rows]) / len(rows)

    rng = np.random.default_rng(seed)
    size = min(len(given), BOOTSTRAP_MAX_SAMPLES)
    with warnings.catch_warnings():  # cleanlab warns of classes a resample happens to lack
        warnings.simplefilter("ignore")
        rate = share(np.arange(len(given)))
        resamples = (rng.choice(len(given), size, replace=True) for _ in range(draws))
        # cleanlab counts against other classes: a resample that drew one class alone says nothing
        shares = np.array([share(rows) for rows in resamples if len(np.unique(given[rows])) > 1] or [rate])
    low, high = _interval(rate, shares, size, len(given), confidence)
    evidence = _evidence(low, len(given))
    high = sampling_high(high, int(round(rate * len(given))), len(given), confidence, evidence)
    return NoiseRateEstimate(float(rate), low, high, confidence, "held-out", evidence, len(given))
