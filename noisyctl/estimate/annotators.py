"""What a dataset's annotators' own labels (``annotators/label``) say of its given labels: Dawid and
Skene's (1979) model, an error matrix for each annotator fitted by EM, with the held-out models'
probabilities (``train --folds``) as each sample's prior where the run has them. Its share of given
labels the model judges wrong is a second reading beside the run's estimate, and a floor of the
estimate where the given labels are the annotators' own aggregate (``run_annotators_floor``):

- where annotators err alike, as people do on hard samples, a model trained on their majority
  learns their confusions and the run reads a third of that noise (digits, three annotators
  confused like weak models, 8.1% and 8.4% wrong: 2.8% and 3.1%); this reading counts 4.8% and
  4.5% (``benchmarks/annotators.py``);
- where the given labels are not the annotators' (an expert's beside a crowd's), it counts the
  crowd's errors too: clean digits beside the same annotators read 1.9-2.1% with the held-out
  prior. There it is no floor;
- where two annotators labeled each sample and no prior weighs them, their labels fit as well with
  either right where they disagree (``_fits_from_each_start``): the count and each annotator's
  accuracy are ranges, and no floor either; where a few dozen or hundred have a third label, those
  say who is right only roughly, and the fits along each accuracy about as likely widen the
  intervals (``_profile``), under ten labels' worth of pull on the error matrices' rows and under
  the likeliest (``_likeliest_pull``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from noisyctl.agreement import NOT_LABELED, Annotations
from noisyctl.errors import NoisyctlError
from noisyctl.estimate.held_out import _judged_key, run_held_out_probabilities
from noisyctl.estimate.rate import (BOOTSTRAP_MAX_SAMPLES, NoiseRateEstimate, _evidence, _interval, count_interval,
                                   sampling_high)

ANNOTATORS = "annotators"
# EM steps at most (SQUAREM-accelerated, ``_fitted``); it stops where no error rate moves by
# CONVERGED. Plain EM stopped at 1e-4 a step while still creeping along who is right: two
# annotators a sample read anywhere from 2% to 37% wrong by where it stopped
EM_ITERATIONS = 1000
CONVERGED = 1e-6
# A resample's EM starts from the whole data's fit and runs at most this many steps: of a few
# annotators (at most STARTS_MOST) 30 (100 read the same intervals); of a crowd 10 (747 workers,
# 50,000 samples: 16 s, 109 s with 100)
RESAMPLE_ITERATIONS = 10
FEW_RESAMPLE_ITERATIONS = 30
# Each row of an annotator's error matrix holds some labels' worth of counts beside theirs, drawn
# toward their own accuracy over all their labels: no cell is zero, and a crowd worker's few labels a
# class are not pulled toward chance (one count a row spread evenly read 100 workers of 54 labels
# each 0.11 less accurate than they were). How many labels' worth is the strength under which the
# rows are likeliest (``_likeliest_pull``, between PULL_LEAST and PULL_MOST, from ROW_PSEUDOCOUNT):
# annotators who confuse classes alike read 40, workers who err at random the most (with ten, 747
# such workers of about 200 labels read 10.2% (9.8-10.5%) for 11.3%; now 11.4% (11.1-11.6%))
ROW_PSEUDOCOUNT = 10.0
PULL_LEAST, PULL_MOST = 1.0, 10_000.0
PULL_ROUNDS = 5
DRAWS = 50
# Fits whose log-likelihood is within this of the best are plausible too (a one-parameter 90%
# profile-likelihood bound: chi-squared(1) at 0.9 is 2.71, halved); fits start from each of at most
# STARTS_MOST annotators in turn taken as right with probability SURE
LIKELIHOOD_SPAN = 1.35
STARTS_MOST = 12
SURE = 0.99
# Where this share of samples or more has three annotators' labels, every start met the same fit
# (digits-like tables of three annotators, 55% with three: within 0.011 of the truth, 9 of 10 inside
# the interval), and the other starts and the profile are skipped (three annotators over 50,000
# samples: 7.5 s, 14 s with the starts)
IDENTIFIED_BY_THREE = 0.5
# Where fits about as likely count this far apart, the annotators' labels leave who is right open:
# the words say so, and their count is no floor of the estimate (two annotators a sample, 90% and
# 70% right: 35 points; three a sample: none)
UNSETTLED = 0.01
# The profile likelihood's fits (``_profile``) hold an accuracy at levels this far apart, and
# converge to PROFILE_CONVERGED: each starts from its neighbour's with one accuracy held, and needs
# no more (50,000 samples, 2,500 with a third label: 2.3 s, 45 s to 1e-6)
PROFILE_STEP = 0.02
PROFILE_CONVERGED = 1e-4


def dawid_skene(votes: np.ndarray, classes: int, prior: np.ndarray | None = None,
                iterations: int = EM_ITERATIONS, start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's posterior over its true class and each annotator's error matrix.

    Parameters
    ----------
    votes : np.ndarray of int, shape (N, A)
        Each annotator's label of each sample, ``NOT_LABELED`` (-1) where they gave none.
    classes : int
        C, the number of classes.
    prior : np.ndarray, shape (N, C), optional
        Each sample's prior over its true class (held-out models' probabilities); without it, the
        classes' shares, fitted too.
    iterations : int
        EM steps at most: it stops earlier where no error rate moves by ``CONVERGED``.
    start : np.ndarray, shape (A, C, C), optional
        Error matrices to start from (else the votes' shares).

    Returns
    -------
    posterior : np.ndarray, shape (N, C)
    errors : np.ndarray, shape (A, C, C)
        ``errors[a, true, said]``: how likely annotator ``a`` says ``said`` of a sample of class ``true``.
    """
    labels = _GivenLabels.of(votes)
    fit = _fitted(labels, classes, prior, iterations, start, pull=_rows_pull(labels, classes, prior))
    return fit.posterior, fit.errors


# How several annotators' labels of a sample make the one label trained on (``aggregate_labels``).
AGGREGATES = ("majority", "dawid-skene")


def aggregate_labels(annotations: Annotations, how: str | None, classes: int, where: str) -> np.ndarray:
    """One label a sample from several annotators' own.

    Parameters
    ----------
    annotations : Annotations
        N samples x A annotators' labels.
    how : str or None
        ``"majority"`` (None: the default): the class most of them gave (of a tie, the later
        annotator's); ``"dawid-skene"``: the class Dawid and Skene's model of them makes most
        probable, which weighs a careful annotator above a careless one (on digits it left 13-29%
        fewer wrong labels than the vote where annotators err on their own, 5% fewer where they
        err alike: ``benchmarks/annotators.py``).
    classes : int
        C, the number of classes.
    where : str
        What asked (``from-file``, ``text``), for the one line that refuses another ``how``.

    Returns
    -------
    np.ndarray of int, shape (N,)
        Class indices; ``NOT_LABELED`` where no annotator labeled the sample.

    ``dawid-skene`` of labels no sample has three of is refused: two annotators a sample fit as
    well with either right where they disagree.
    """
    chosen = str(how or AGGREGATES[0]).strip().lower()
    if chosen not in AGGREGATES:
        raise NoisyctlError(f"{where}: aggregate={how}: choose {' or '.join(AGGREGATES)}")
    if chosen == "majority":
        return annotations.majority()
    per_sample = annotations.per_sample()
    if not (per_sample >= 3).any():
        raise NoisyctlError(f"{where}: aggregate={how} needs three annotators' labels of some samples: with two a "
                            f"sample, nothing in their labels says which is right where they disagree (their "
                            f"vote, and detect on a run trained with --folds 3, weighs them by a model's view)")
    aggregate = dawid_skene(annotations.labels, classes)[0].argmax(axis=1)
    return np.where(per_sample > 0, aggregate, NOT_LABELED)


@dataclass
class _GivenLabels:
    """Each label given, one entry a (sample, annotator, class), in sample order: time and memory
    grow with the labels given, not with samples x annotators (a crowd of hundreds who each label
    a few samples)."""

    rows: np.ndarray  # (L,) the sample
    people: np.ndarray  # (L,) the annotator
    said: np.ndarray  # (L,) the class
    samples: int
    annotators: int
    _cells: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, votes: np.ndarray) -> "_GivenLabels":
        rows, people = np.nonzero(votes != NOT_LABELED)
        return cls(rows, people, votes[rows, people].astype(np.int64), votes.shape[0], votes.shape[1])

    def cells(self, classes: int):
        """(N, A * C) sparse, once each: how many labels of each sample fall in each (annotator,
        class said) cell of the error matrices (0 or 1)."""
        from scipy import sparse

        if classes not in self._cells:
            self._cells[classes] = sparse.csr_matrix(
                (np.ones(len(self.rows)), (self.rows, self.people * classes + self.said)),
                shape=(self.samples, self.annotators * classes))
        return self._cells[classes]

    def resampled(self, samples: np.ndarray) -> "_GivenLabels":
        """The labels of ``samples`` (indices, repeats allowed), as a table of those rows would hold them."""
        starts = np.searchsorted(self.rows, np.arange(self.samples + 1))
        counts = (starts[1:] - starts[:-1])[samples]
        first = np.repeat(starts[samples], counts)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        taken = first + offset
        return _GivenLabels(np.repeat(np.arange(len(samples)), counts), self.people[taken], self.said[taken],
                            len(samples), self.annotators)


class _Fit(NamedTuple):
    """One Dawid-Skene fit of the labels given."""

    posterior: np.ndarray  # (N, C): each sample's posterior over its true class
    errors: np.ndarray  # (A, C, C): errors[a, true, said]
    likelihood: float  # the labels' log-likelihood under it


def _fitted(labels: _GivenLabels, classes: int, prior: np.ndarray | None, iterations: int,
            start: np.ndarray | None, held: tuple[int, float] | None = None, converged: float = CONVERGED,
            pull: float = ROW_PSEUDOCOUNT) -> _Fit:
    """``dawid_skene`` of the labels given, each row of the error matrices holding ``pull`` labels'
    worth of its expected row (``_error_matrices``); ``held``: an annotator whose accuracy is held
    at a level (their matrix fitted, then mixed toward always right or toward chance to reach it).
    EM is accelerated by SQUAREM (Varadhan and Roland 2008): where few samples have three labels
    the likelihood is nearly flat along who is right, and plain EM creeps along it by less than
    CONVERGED a step, hundreds of steps short of the fit."""
    log_prior = None if prior is None else np.log(np.clip(prior, 1e-6, 1.0))
    posterior = np.full((labels.samples, classes), 1e-9)
    np.add.at(posterior, (labels.rows, labels.said), 1.0)
    posterior /= posterior.sum(axis=1, keepdims=True)

    def holding(errors: np.ndarray, posterior: np.ndarray) -> np.ndarray:
        if held is not None:
            errors[held[0]] = _at_accuracy(errors[held[0]], held[1], posterior.mean(axis=0))
        return errors

    errors = holding(_error_matrices(labels, classes, posterior, pull) if start is None else start.copy(), posterior)
    size, shape = errors.size, errors.shape
    # one vector of the error matrices and the classes' shares, which EM maps to the next
    fit = np.concatenate([errors.ravel(), posterior.mean(axis=0)])

    def unpacked(point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return point[:size].reshape(shape), point[size:]

    def em_step(point: np.ndarray) -> tuple[np.ndarray, float]:
        """The next point, and the likelihood of ``point``."""
        posterior, likelihood = _posterior(labels, classes, log_prior, *unpacked(point))
        errors = holding(_error_matrices(labels, classes, posterior, pull), posterior)
        return np.concatenate([errors.ravel(), posterior.mean(axis=0)]), likelihood

    steps = 0
    while steps < iterations:
        once, likelihood = em_step(fit)
        step = once - fit
        steps += 1
        if np.abs(step[:size]).max() < converged or steps + 2 > iterations:
            fit = once
            break
        twice, _ = em_step(once)
        bend = twice - once - step
        steps += 2
        if not bend.any():
            fit = twice
            continue
        # the extrapolation along the last two steps, shortened toward ``twice`` (at -1) until
        # every rate is positive
        length = min(-np.linalg.norm(step) / np.linalg.norm(bend), -1.0)
        while True:
            leap = fit - 2 * length * step + length ** 2 * bend
            if length == -1.0 or leap.min() > 0:
                break
            length = (length - 1) / 2 if length < -1.5 else -1.0
        landed, leap_likelihood = em_step(leap)
        fit = landed if leap_likelihood >= likelihood else twice  # a leap that loses likelihood is not taken
    errors, shares = unpacked(fit)
    posterior, likelihood = _posterior(labels, classes, log_prior, errors, shares)
    return _Fit(posterior, errors, likelihood)


def _error_matrices(labels: _GivenLabels, classes: int, posterior: np.ndarray, pull: float) -> np.ndarray:
    """(A, C, C): each annotator's error matrix given each sample's ``posterior`` (EM's M step),
    each row holding ``pull`` labels' worth of their ``_expected_rows`` beside their own."""
    counts, toward = _expected_rows(labels, classes, posterior)
    errors = counts + pull * toward
    return errors / errors.sum(axis=2, keepdims=True)


def _expected_rows(labels: _GivenLabels, classes: int, posterior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, C, C) twice: ``counts[a, true, said]``, the posterior mass of each true class annotator a
    labeled ``said``; and each row as the annotator's own accuracy over all their labels makes it,
    their errors spread evenly (not chance: a crowd worker's few labels a class say little alone)."""
    counts = (labels.cells(classes).T @ posterior).reshape(labels.annotators, classes, classes).transpose(0, 2, 1)
    right = (np.trace(counts, axis1=1, axis2=2) + 1) / (counts.sum(axis=(1, 2)) + 2)
    return counts, _erring_evenly(right, classes)


def _erring_evenly(right: np.ndarray, classes: int) -> np.ndarray:
    """(A, C, C): error matrices right with each annotator's probability ``right`` (A,), their
    errors spread evenly over the other classes."""
    return np.where(np.eye(classes, dtype=bool), right[:, None, None],
                    ((1 - right) / max(classes - 1, 1))[:, None, None])


def _rows_pull(labels: _GivenLabels, classes: int, prior: np.ndarray | None) -> float:
    """How many labels' worth of their expected row the rows of the error matrices hold in the
    fits read: the likeliest (``_likeliest_pull``), or ROW_PSEUDOCOUNT where who is right may be
    open (``_who_is_right_may_be_open``): there the rows' scatter is not what says how sure the fit
    is, and a strong pull keeps the fits from each start from the ends of the ridge (two
    annotators, 90% and 70% right: 13-23%)."""
    return ROW_PSEUDOCOUNT if _who_is_right_may_be_open(labels) else _likeliest_pull(labels, classes, prior)


def _likeliest_pull(labels: _GivenLabels, classes: int, prior: np.ndarray | None) -> float:
    """``_pull_of`` the fit from the labels' shares, from ROW_PSEUDOCOUNT, refitted with each
    strength found until it stays within 10% (at most PULL_ROUNDS fits): a fit with too weak a
    pull scatters the rows, which then call for a weak one (747 workers who err at random: 10,
    140, then 10,000)."""
    pull, start = ROW_PSEUDOCOUNT, None
    for _ in range(PULL_ROUNDS):
        fit = _fitted(labels, classes, prior, EM_ITERATIONS, start, pull=pull)
        pull, previous, start = _pull_of(labels, classes, fit), pull, fit.errors
        if abs(np.log(pull / previous)) < np.log(1.1):
            break
    return pull


def _pull_of(labels: _GivenLabels, classes: int, fit: _Fit) -> float:
    """How many labels' worth of their expected row each row of an error matrix holds: the
    strength under which the fit's rows are likeliest (a Dirichlet-multinomial's marginal
    likelihood over every annotator's rows, empirical Bayes), from PULL_LEAST to PULL_MOST.
    Annotators who err at random make it strong, as their rows' scatter is chance; annotators who
    confuse classes alike make it weak."""
    from scipy.optimize import minimize_scalar
    from scipy.special import gammaln

    counts, toward = _expected_rows(labels, classes, fit.posterior)
    given = counts.sum(axis=2)

    def unlikelihood(log_pull: float) -> float:
        prior = np.exp(log_pull) * toward
        return -float((gammaln(np.exp(log_pull)) - gammaln(np.exp(log_pull) + given)).sum()
                      + (gammaln(prior + counts) - gammaln(prior)).sum())

    found = minimize_scalar(unlikelihood, bounds=(np.log(PULL_LEAST), np.log(PULL_MOST)), method="bounded")
    return float(np.exp(found.x))


def _posterior(labels: _GivenLabels, classes: int, log_prior: np.ndarray | None, errors: np.ndarray,
               shares: np.ndarray) -> tuple[np.ndarray, float]:
    """(N, C): each sample's posterior over its true class, from its prior (the held-out one, else
    the classes' ``shares``) and the likelihood of its labels under ``errors`` (EM's E step); and
    the log-likelihood of all the labels."""
    log = np.repeat(np.log(shares)[None, :], labels.samples, axis=0) if log_prior is None else log_prior.copy()
    # the log-likelihood of each sample's labels under each true class
    log += labels.cells(classes) @ np.log(errors).transpose(0, 2, 1).reshape(-1, classes)
    top = log.max(axis=1)
    posterior = np.exp(log - top[:, None])
    total = posterior.sum(axis=1)
    return posterior / total[:, None], float((top + np.log(total)).sum())


def annotators_noise_rate(annotations: Annotations, given_labels: np.ndarray, classes: int,
                          prior: np.ndarray | None = None, confidence: float = 0.9, draws: int = DRAWS,
                          seed: int = 0) -> tuple[NoiseRateEstimate, list[dict], float]:
    """The share of given labels the annotators' model judges wrong, the mean over samples of one
    less the posterior of the given label, with a ``confidence`` percentile-bootstrap interval
    over the samples; and each annotator's figures: the samples they ``labeled``, the share of those
    whose given label they gave (``agreed``), their estimated ``accuracy`` (the diagonal of their
    error matrix, weighted by the classes' posterior shares) with its ``confidence`` interval over
    the same resamples (``accuracy_interval``: [low, high]; wide for one who labeled a few), and the
    mistake they make most (``confuses``: [true class, class they say], by the same weights).

    ``given_labels`` is (N,) and ``prior`` (N, C) as in ``dawid_skene``. The interval covers
    sampling, and the fits about as likely as the best (``_fits_from_each_start``, ``_profile``):
    where no prior and too few samples with three labels say which of two annotators is right
    where they disagree, it spans both, as each accuracy's does, and the count is the middle; how
    far apart the starts' counts lie (``unsettled``, 0 where they agree) is returned too. Where
    annotators err alike, the model misreads them and the truth lies above it."""
    votes = np.asarray(annotations.labels)
    labels = _GivenLabels.of(votes)
    given = np.asarray(given_labels)
    n = len(given)
    resample_steps = FEW_RESAMPLE_ITERATIONS if labels.annotators <= STARTS_MOST else RESAMPLE_ITERATIONS
    pull = _rows_pull(labels, classes, prior)

    def readings(posterior: np.ndarray, errors: np.ndarray, rows: np.ndarray) -> tuple[float, np.ndarray]:
        """A fit's share of the ``rows``' given labels it judges wrong, and each annotator's accuracy."""
        return (float(1 - posterior[np.arange(len(rows)), given[rows]].mean()),
                np.diagonal(errors, axis1=1, axis2=2) @ posterior.mean(axis=0))

    def resample_readings(rows: np.ndarray, start: np.ndarray) -> tuple[float, np.ndarray]:
        """The readings of a resample of the samples ``rows``, fitted from ``start``; NaN the accuracy
        of an annotator who labeled none of them."""
        drawn = labels.resampled(rows)
        fit = _fitted(drawn, classes, None if prior is None else prior[rows], resample_steps, start, pull=pull)
        share, accuracy = readings(fit.posterior, fit.errors, rows)
        accuracy[np.bincount(drawn.people, minlength=drawn.annotators) == 0] = np.nan
        return share, accuracy

    everyone = np.arange(n)
    # fits about as likely as the best (which annotator is right where they disagree may not be in
    # their labels: two a sample) make the readings ranges, and the middle of each range is read:
    # the labels say no more of one end than of the other
    fits = _fits_from_each_start(labels, classes, prior, pull)
    best = max(fits, key=lambda fit: fit.likelihood)
    plausible = [readings(fit.posterior, fit.errors, everyone)
                 for fit in fits if fit.likelihood >= best.likelihood - LIKELIHOOD_SPAN]
    rates = np.array([fit_rate for fit_rate, _ in plausible])
    accuracies = np.array([fit_accuracy for _, fit_accuracy in plausible])  # (fits, A)
    rate = float(rates.max() + rates.min()) / 2
    accuracy = (accuracies.max(axis=0) + accuracies.min(axis=0)) / 2
    unsettled = float(rates.max() - rates.min())
    rng = np.random.default_rng(seed)
    size = min(n, BOOTSTRAP_MAX_SAMPLES)
    # (share, accuracies) a resample
    drawn = [resample_readings(rng.integers(0, n, size), best.errors) for _ in range(draws)]
    low, high = _interval(rate, np.array([drawn_share for drawn_share, _ in drawn]), size, n, confidence)
    labeled = np.bincount(labels.people, minlength=labels.annotators)
    drawn_accuracies = np.array([drawn_accuracy for _, drawn_accuracy in drawn])
    accuracy_intervals = [_accuracy_interval(accuracy[a], drawn_accuracies[:, a], int(labeled[a]), size, n,
                                             confidence) for a in range(labels.annotators)]
    if _who_is_right_may_be_open(labels):
        # a few third labels: the fits along each accuracy about as likely widen the readings too,
        # under ten labels' worth of pull (which reaches the ends of the ridge) and under the
        # likeliest, which reads annotators who err at random nearer its middle: where the
        # labels leave who is right open they leave the pull open too
        likeliest = _likeliest_pull(labels, classes, prior)
        nearer = _fitted(labels, classes, prior, EM_ITERATIONS, best.errors, pull=likeliest)
        along = _profile(labels, classes, prior, best, pull) + _profile(labels, classes, prior, nearer, likeliest)
        plausible += [readings(fit.posterior, fit.errors, everyone) for fit in along]
    widest_rates = [fit_rate for fit_rate, _ in plausible]
    widest = np.array([fit_accuracy for _, fit_accuracy in plausible])  # (fits, A)
    low, high = min(low, *widest_rates), max(high, *widest_rates)
    accuracy_intervals = [(min(interval[0], widest[:, a].min()), max(interval[1], widest[:, a].max()))
                          for a, interval in enumerate(accuracy_intervals)]
    evidence = _evidence(low, n)
    high = sampling_high(high, int(round(rate * n)), n, confidence, evidence)
    agreed = np.bincount(labels.people, weights=labels.said == given[labels.rows], minlength=labels.annotators)
    # (A, C, C): how often each mistake, off the diagonal
    mistakes = best.posterior.mean(axis=0)[None, :, None] * best.errors * (1 - np.eye(classes))
    confuses = [np.unravel_index(int(np.argmax(mistake)), mistake.shape) for mistake in mistakes]
    people = [{"annotator": name, "labeled": int(labeled[a]),
               "agreed": float(agreed[a] / labeled[a]) if labeled[a] else None,
               "accuracy": float(accuracy[a]), "accuracy_interval": [float(end) for end in accuracy_intervals[a]],
               "confuses": [int(c) for c in confuses[a]]}
              for a, name in enumerate(annotations.names)]
    return NoiseRateEstimate(rate, low, high, confidence, ANNOTATORS, evidence, n), people, unsettled


def _fits_from_each_start(labels: _GivenLabels, classes: int, prior: np.ndarray | None, pull: float) -> list[_Fit]:
    """Dawid-Skene fitted from the labels' shares, and, of a few annotators (at most
    ``STARTS_MOST``) of whom three labeled fewer than ``IDENTIFIED_BY_THREE`` of the samples, from
    each in turn taken as nearly always right and the others as right on the labels another
    confirmed. Where the labels do not say who is right (two annotators a sample, 90% and 70%
    right), those fits differ and are about as likely."""
    starts = [None]
    if _who_is_right_may_be_open(labels):
        confirmed = np.clip(_confirmed(labels, classes), 1.0 / classes, SURE)
        for sure in range(labels.annotators):
            starts.append(_erring_evenly(np.where(np.arange(labels.annotators) == sure, SURE, confirmed), classes))
    return [_fitted(labels, classes, prior, EM_ITERATIONS, start, pull=pull) for start in starts]


def _who_is_right_may_be_open(labels: _GivenLabels) -> bool:
    """Whether the labels are a few annotators' (at most ``STARTS_MOST``), of whom three labeled
    fewer than ``IDENTIFIED_BY_THREE`` of the samples: who is right where two disagree may then
    rest on a few third labels, or on none."""
    three = (np.bincount(labels.rows, minlength=labels.samples) >= 3).mean()
    return labels.annotators <= STARTS_MOST and three < IDENTIFIED_BY_THREE


def _profile(labels: _GivenLabels, classes: int, prior: np.ndarray | None, best: _Fit, pull: float) -> list[_Fit]:
    """The fits along each annotator's accuracy about as likely as ``best`` (within
    ``LIKELIHOOD_SPAN``): their accuracy held at levels ``PROFILE_STEP`` apart, from best's toward
    always right and toward chance, everything else refitted, until the likelihood falls further.
    A profile likelihood: with a few dozen third labels the bootstrap's resamples all read one
    annotator as the better (a table of 1,800 with 100 third labels, 27 where the two others
    disagree: 76% and 97% right, the truth 82% and 91%)."""
    weights = best.posterior.mean(axis=0)
    top, along = best.likelihood, []
    for annotator, matrix in enumerate(best.errors):
        accuracy = float(np.diagonal(matrix) @ weights)
        for step in (PROFILE_STEP, -PROFILE_STEP):
            start, level, stride = best.errors, accuracy, step
            while 1.0 / classes < level + stride < SURE:
                fit = _fitted(labels, classes, prior, EM_ITERATIONS, start, (annotator, level + stride),
                              PROFILE_CONVERGED, pull)
                top = max(top, fit.likelihood)
                if fit.likelihood >= top - LIKELIHOOD_SPAN:
                    along.append(fit)
                    start, level = fit.errors, level + stride
                elif abs(stride) > abs(step) / 4:  # past the edge: nearer, to find it within a quarter step
                    stride /= 2
                else:
                    break
    return [fit for fit in along if fit.likelihood >= top - LIKELIHOOD_SPAN]


def _at_accuracy(matrix: np.ndarray, level: float, weights: np.ndarray) -> np.ndarray:
    """An error matrix (C, C) mixed toward always right, or toward chance, until its accuracy
    (its diagonal weighted by the classes' ``weights``) is ``level``."""
    classes = len(matrix)
    accuracy = float(np.diagonal(matrix) @ weights)
    toward = np.eye(classes) if level > accuracy else np.full((classes, classes), 1.0 / classes)
    reach = float(np.diagonal(toward) @ weights) - accuracy
    return matrix if reach == 0 else matrix + (level - accuracy) / reach * (toward - matrix)


def _confirmed(labels: _GivenLabels, classes: int) -> np.ndarray:
    """(A,): the share of each annotator's labels another annotator gave the same sample too."""
    cell = labels.rows * classes + labels.said
    same = np.bincount(cell, minlength=labels.samples * classes)[cell] > 1
    given = np.bincount(labels.people, minlength=labels.annotators)
    return np.bincount(labels.people, weights=same, minlength=labels.annotators) / np.maximum(given, 1)


def _accuracy_interval(accuracy: float, drawn: np.ndarray, labeled: int, size: int, samples: int,
                       confidence: float) -> tuple[float, float]:
    """An annotator's accuracy's interval: over the resamples that hold their labels (``drawn``, NaN
    in the others), and no narrower than the exact binomial interval of that share of the samples
    they ``labeled``: a resample of 8 labels, all right, varies little, yet says little."""
    drawn = drawn[np.isfinite(drawn)]
    low, high = _interval(accuracy, drawn, size, samples, confidence) if len(drawn) > 1 else (0.0, 1.0)
    exact_low, exact_high = count_interval(int(round(accuracy * labeled)), labeled, confidence) if labeled \
        else (0.0, 1.0)
    return min(low, exact_low), max(high, exact_high)


def surely_least_right_first(people: list[dict]) -> list[dict]:
    """Annotators' figures (``annotators_noise_rate``'s) ordered by the upper end of their accuracy's
    interval, then their accuracy: those surely careless before those whose few labels say little
    (among 60 crowd workers of about 75 labels, one of eight labels, all right, reads 83% with an
    interval from 53% to 99%)."""
    return sorted(people, key=lambda p: (p["accuracy_interval"][1], p["accuracy"]))


class AnnotatorsCount(NamedTuple):
    """``annotators_noise_rate``'s reading of a run (``run_annotators_count``)."""

    estimate: NoiseRateEstimate
    people: list[dict]  # each annotator's figures
    held_out_prior: bool  # whether held-out models' probabilities were each sample's prior
    unsettled: float  # how far apart the counts of fits about as likely lie


def run_annotators_count(run, judged: np.ndarray) -> AnnotatorsCount | None:
    """``annotators_noise_rate`` on a run's ``judged`` samples (a mask, (N,)), with its held-out
    probabilities as the prior where it has them. None for a run whose
    labels keep no annotators' own. Once per opened run and set of judged samples: the estimate
    and ``detect``'s second reading ask the same."""
    annotations = _kept_annotations(run)
    if annotations is None or not judged.any():
        return None
    key, cache = _judged_key(judged), _cache_of(run)
    if key not in cache:
        prior = run_held_out_probabilities(run, judged)
        rows = np.flatnonzero(judged)
        estimate, people, unsettled = annotators_noise_rate(annotations.subset(rows),
                                                            np.asarray(run.given_labels)[rows], run.num_classes, prior)
        cache[key] = AnnotatorsCount(estimate, people, prior is not None, unsettled)
    return cache[key]


# detect's estimate, its second reading and every detector's decision ask the same of the same run
_counted: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cache_of(run) -> dict:
    """What was counted of an opened run, by what was asked; a fresh dict for an object that cannot
    be weakly referenced (counted every time)."""
    try:
        return _counted.setdefault(run, {})
    except TypeError:
        return {}


def run_annotators_floor(run, judged: np.ndarray | None = None) -> NoiseRateEstimate | None:
    """The annotators' count (``run_annotators_count``) where the run's given labels are their own
    aggregate (``_labels_are_theirs``): their majority vote (a crowd's labels, a Label Studio
    export with overlap) or their Dawid-Skene model's most probable classes (``synth -n from-file
    -N aggregate=dawid-skene``); None elsewhere. There it reads the very labels the estimate does,
    and it sees what a model trained on them learns as the task: the errors annotators make alike
    (digits, three annotators confused like weak models, 8.1% and 8.4% of the majority wrong: the
    losses read 2.8% and 3.1%, this 4.8% and 4.5%). Beside labels of another hand (an expert's
    beside a crowd's; labels corrected since) it would count the crowd's own errors too (clean
    digits: 1.9-2.1%), so it is no floor there; nor where fits about as likely count ``UNSETTLED``
    or more apart (two annotators a sample, nothing to weigh them)."""
    annotations = _kept_annotations(run)
    if annotations is None:
        return None
    judged = np.ones(len(run.given_labels), dtype=bool) if judged is None else np.asarray(judged, dtype=bool)
    if not _labels_are_theirs(run, annotations, judged):
        return None
    counted = run_annotators_count(run, judged)
    return None if counted is None or counted.unsettled >= UNSETTLED else counted.estimate


def _labels_are_theirs(run, annotations: Annotations, judged: np.ndarray) -> bool:
    """Whether the ``judged`` samples' given labels are the annotators' own aggregate: their
    majority vote (a tie broken either way), or their Dawid-Skene model's most probable classes
    (fitted only where the vote is not); once per run and set of judged samples."""
    key, cache = ("theirs", _judged_key(judged)), _cache_of(run)
    if key not in cache:
        rows = np.flatnonzero(judged)
        subset, given = annotations.subset(rows), np.asarray(run.given_labels)[rows]
        cache[key] = bool(subset.voted_most(given).all() or np.array_equal(
            dawid_skene(subset.labels, run.num_classes)[0].argmax(axis=1), given))
    return cache[key]


def run_annotators_posterior(run) -> tuple[np.ndarray, bool] | None:
    """Each sample's posterior over its true class (N, C) from the run's annotators' own labels
    (``dawid_skene``, with its held-out probabilities as the prior where it has them), and whether
    it had them; None for a run that keeps no annotators' labels."""
    annotations = _kept_annotations(run)
    if annotations is None:
        return None
    prior = run_held_out_probabilities(run)
    return dawid_skene(annotations.labels, run.num_classes, prior)[0], prior is not None


def _kept_annotations(run) -> Annotations | None:
    """The annotators' own labels a run keeps (a run file's, a Recorder's); None where it has none."""
    return getattr(getattr(run, "labels", None), "annotations", None)
