"""The noise's share from the distribution of log mean training losses: a two- or three-Gaussian
mixture where the noise stands apart from the clean losses, else the excess above the clean losses'
right tail; a run whose model learned some classes later as a whole is read class by class."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

# Read on log(mean training loss): a mislabeled sample keeps a high loss until the model memorises
# it, a clean one loses it early. Two regimes, because no single model of that distribution held
# from 0% to 45% on the calibration runs (benchmarks/calibration.py):
# - much noise, well separated: a two-Gaussian mixture whose high component is a minority lying
#   SEPARATION standard deviations of the clean one above it; the rate is that component's share.
#   Without the separation test a mixture always "finds" a second component in clean data, whose
#   loss is skewed (it called 25% of clean digits noisy).
# - otherwise, little or no noise: the clean samples' right tail is modelled as a normal from their
#   median and upper quartile; the samples above where that normal expects half a sample (in a run
#   of more than 2,000, TAIL_SHARE of its clean samples) are the excess, less what it expects
#   there. A normal fitted to the excess (truncated at the threshold) adds its mass below the
#   threshold only when its mode lies above it: an excess piled against the threshold is the top
#   of the clean tail, not a bump of noise. Samples learned steadily (STEADY_BY) are not counted:
#   above the threshold they are slow clean learners (tickets about two topics), while a wrong
#   label the model cannot learn is pushed away first. Iterated, since the clean quantiles come
#   from all but the estimated noisy share; on clean data the excess is a few samples at most.
SEPARATION = 2.0
# The two components must also be clearly apart: Ashman's D, the mean gap over the root mean square
# of the sds, of 2 or more (the usual bar for a clean split). A high component wider than the clean
# one is the clean samples' own long tail (LeNet on digits with 1% noise read 9.2% from one); every
# component of real noise in the calibration runs had a D of 2.5 or more.
CLEAR_SPLIT = 2.0
# A sample whose mean loss stays under log 2 was, on (geometric) average, given probability above 1/2:
# the model fitted its label. Noise is what it did not fit; a hard but fitted minority (a text that
# mentions two topics) must not read as noise, in the mixture or in the tail.
UNFITTED_LOSS = float(np.log(2))
FITTED_BELOW = float(np.log(UNFITTED_LOSS))  # the same bar on log(mean loss)
QUARTILE_Z = 0.6745  # a normal's upper quartile, in sds: (upper quartile - median) / QUARTILE_Z is a robust sd
TAIL_EXPECTED = 0.5  # clean samples the threshold leaves above it, by the normal tail
# No further out than where the normal expects this share of the clean samples, that many subtracted
# (where it stands at 2,000 samples, 3.48 sds). Half a sample moves out as a run grows (4.06 sds at
# 20,000), past where clean losses end (2.1-2.8 sds in clean runs of 20,000: their far tail is
# lighter than the normal's) and over the lower wrong labels: 20,000 tickets with 2% noise read
# 1.39%, half their wrong labels under the threshold; at 3.48 sds 1.93%.
TAIL_SHARE = 0.5 / 2000
HEAVIER_TAIL_QUANTILE = 0.9  # the interval's lower end also reads the tail's spread from this quantile
TAIL_FIT_MIN = 10  # excess samples needed to fit their normal and add its hidden part
PLAUSIBLE = 0.05  # a mixture posterior above this keeps a sample within the interval's upper end
# A separated high-loss component is not noise when two thirds of it or more (posterior-weighted)
# was learned steadily: each sample's loss fell by STEADY_BY (the label's probability doubled) from
# its first epoch to its last, never rising STEADY_BY above the first. Those are clean samples the
# model learns slowly; a mislabeled one is pushed away from its label while the model learns its
# true class, or learned only as far as the noise pattern allows. After 12 epochs on generated
# shapes (the calibration runs train 20) such a minority formed a separated component, 72% of it
# learned steadily, and a clean run read as 4.3% noise, failing the gate; the components of real
# noise were at most 54% (20% pair-flip: 45-48%, as the model half learns the flip). A sample
# still below chance at its last epoch (loss above log C) was not learned at all: fine-tuning a
# model that already knows the data for 3 epochs, the wrong labels' probability rose from 3e-5 to
# 1e-4, a fall of log 2 and more, and 74-100% of them read as learned steadily (3% noise: 0.0%).
STEADY_BY = float(np.log(2))
STEADY_MOST = 2 / 3
# A noisy component at least this wide (its sd over the clean one's) holds the clean losses' long
# tail as much as noise: samples a briefly or weakly trained model has not fitted. Of the pooled
# mixtures on every benchmark run and the validation sets, 4 of the 6 that wide overcounted (iris
# after 30 epochs of 3 steps: 11.3% for 5%; tickets with 10% pair-flip: 17.3%), against 3 of the
# 52 narrower ones. Held-out models count such a run surer, and detect says so.
WIDE_NOISE = 1.0
# Two Gaussians whose noisy component is that wide and has no mode of its own (the density never
# dips between the clean mean and it) may have split one skewed hump of clean losses: where the
# tail reads less, the tail counts (``_skewed_hump``; both read the hump's top as noise, and the
# smaller is the surer). An MLP on clean overlapping blobs in batches of 256 (0.12 optimizer steps
# a sample) left a fifth of them unfitted in such a hump, and two Gaussians read 30.8% with clear
# evidence (failing the 3% gate; 5% pair-flip noise read 25.7%); the tail reads 0.0% there, and the
# interval, reaching the unfitted samples, says the run cannot tell. Of 618 cached readings of
# every set this moved 5, none out of the tolerance (LeNet in batches of 256 with 5% pair-flip noise
# into it, 7.0% to 4.1%). Counting the tail wherever the hump stands moved 2 more, iris with 5%
# noise from its losses alone among them: 8.7% where two Gaussians read 7.6% (and said their count
# may be high).
# Where three Gaussians find a narrower mode of high losses that stands, it is the noise when two
# Gaussians' noisy component is at least this wide (over the clean one's): that component holds the
# clean losses' shoulder with the wrong labels. Fine-tuned for a few epochs from a model that knows
# the data, clean losses spread wide in log loss, and two counted 10.2% and 13.8% for 3% and 5%
# (sd ratios 0.98 and 0.97), three 2.3% and 3.9%. Of the 437 readings of every set and probe, the
# five with a ratio of 0.75-1.0 where three stand all read as near the truth or nearer with three
# (LeNet on digits with 5% pair-flip: 7.2% to 5.4%); below 0.75 three were as often worse
# (LeNet, 3% pair-flip: 6.0% for two, 1.0% for three).
SHOULDER_WIDE = 0.75
# Three count where they count more only when their noise component stands where the two's does
# (its mean within this many of the two's noise sds): two then gave the noise only its top. On every
# cached run where three counted more and helped, it stood 0.0-0.9 sds off and at most 1.4 times as
# wide; fine-tuned on tickets, three merged a shoulder of clean losses with the noise into a
# component 4.9-7.3 sds below the two's and 5-6 times as wide (3% read 7.2% and 9.5%; two: 2.7%).
SAME_NOISE_SDS = 2.0
# Two readings where a run's noise is little, and the larger counts: the tail, and a separate mode
# of high losses. The tail misses a mode when the clean losses lean right, as after a long run:
# their upper quartile stretches its normal until its threshold passes the mode (60 epochs on
# generated shapes: 5% pair-flip noise 3.3 clean sds above the clean losses read 0.1%, where a
# two-Gaussian mixture spent its second component on their long right tail, 26% of the samples).
# Three Gaussians, the lower two the clean losses, find such a mode: its component counts when it
# passes the noise component's tests against their pooled mean and sd, BIC prefers three to two,
# and the density dips before it (a mode of its own, not the shoulder of a tail). A component
# narrower than the clean losses (its sd under WIDE_NOISE of theirs) needs no dip: scarce noise
# peaks lower than the clean losses' tail runs there, so the density falls all the way (blobs of
# 50 classes with 2% and 5% uniform noise, three clean sds above and half as wide: 0.1% and 0.0%
# from the tail, 1.7% and 4.6% from three). A wide one without a dip is the clean losses' own
# tail (LeNet on digits after 15 epochs with 1% noise: 3.7%, where the tail reads 1.5%). A mode
# misses noise spread thinly up the tail, which the tail counts. Each resample of the interval
# takes the larger of its two readings too.
# Three are tried too where two Gaussians find a noisy component nearly as wide as the clean one
# (SHOULDER_WIDE): tickets after 20 epochs with 10% pair-flip noise read 17.3% from two, 9.8% from
# three. And wherever two find noise, three count where they count more: noise that flips some
# classes and not others leaves the model less sure of those classes' clean samples too, the clean
# losses fall into groups, and two Gaussians spend a component on the groups and give the noise
# only its top (shapes with 20% of five classes flipped to a look-alike, 10% in all: 4.9% from
# two, 10.7% from three). The noise then stands above the clean losses pooled, or above the
# component next below it: the pooled sd takes in the gap between the groups (digits, flipped the
# same way: 0.0% from the tail, 7.5% from three). Started with the top 10%, 5%, 2% or 1% apart;
# the best fit wins.
# Clean losses can take three Gaussians of their own (the deep mass of fitted samples, the bulk, and
# a shoulder of hard ones), and three in all then spend the top one on the shoulder: with the wrong
# labels (tickets with 4.6% of labels swapped between look-alike topics: a component twice as wide
# as the clean ones, 11.4%) or without them (shapes with 2.4% swapped: no mode, and the tail, its
# threshold past half of them, 0.8%). So four are fitted too, the lower three the clean losses, and
# count instead of three where BIC prefers them to three and their top component passes the same
# tests narrower than the clean losses (WIDE_NOISE): a mode of noise (the tickets: 3.4%, and the
# tail's 4.4% then counts, as the larger; the shapes: 2.0%). A wide top of four is the clean
# losses' tail again (wine with 5% pair-flip noise, 178 samples: 10.2% from four, 5.8% from three).
MODE = "mode"
SKEWED_CLEAN_TOPS = (0.1, 0.05, 0.02, 0.01)
CLEAN_COMPONENT_CUTS = ((0.5,), (0.25, 0.6))  # two or three clean Gaussians' starting stretches below the top
MODE_TRIAL_SAMPLES = 20_000  # the starts compete on this many samples of a larger run


def _gaussians(z: np.ndarray, start: tuple | None = None, iterations: int = 200):
    """EM for a 1-D mixture of Gaussians, started from ``start`` (weights, means, sds; as many
    components as it gives) or, without one, two components from the lower 80% and the top 20%.

    Returns (weights, means, sds, log-likelihood, posterior of the highest component)."""
    if start is not None:
        w, mu, sd = (np.array(v, dtype=np.float64) for v in start)
    else:
        w, mu, sd = _split_start(z, (0.8,))
    floor = 1e-3 * (z.std() + 1e-12)
    previous = -np.inf
    for _ in range(iterations):
        log_p, total = _log_densities(z, w, mu, sd)
        post = np.exp(log_p - total)  # (K, N): sums over the samples run along rows, far faster
        ll = float(total.sum())
        mass = post.sum(axis=1) + 1e-12
        w = np.clip(mass / len(z), 1e-6, 1 - 1e-6)
        mu = (post * z).sum(axis=1) / mass
        sd = np.sqrt((post * (z - mu[:, None]) ** 2).sum(axis=1) / mass) + floor
        if ll - previous < 1e-7 * abs(ll):
            break
        previous = ll
    return w, mu, sd, ll, post[int(np.argmax(mu))]


def _split_start(z: np.ndarray, cuts: tuple) -> tuple:
    """A mixture's start: one component for each stretch of ``z`` between the quantiles ``cuts``."""
    edges = np.quantile(z, cuts)
    part = np.searchsorted(edges, z, side="left")
    parts = [z[part == k] for k in range(len(cuts) + 1)]
    return (np.array([len(p) / len(z) for p in parts]), np.array([p.mean() if len(p) else np.nan for p in parts]),
            np.array([p.std() if len(p) else np.nan for p in parts]) + 1e-3)


def _noise_and_clean(w: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> tuple[int, float, float]:
    """A mixture's highest component (the noise), and the mean and sd of the others pooled as one
    distribution (the clean losses)."""
    high = int(np.argmax(mu))
    rest = np.arange(len(w)) != high
    w, mu, sd = w[rest], mu[rest], sd[rest]
    mean = float((w * mu).sum() / w.sum())
    return high, mean, float(np.sqrt((w * (sd ** 2 + (mu - mean) ** 2)).sum() / w.sum()))


def _noise_spread(w: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> float:
    """The noisy component's sd over the clean losses' (``WIDE_NOISE``)."""
    high, _, clean_sd = _noise_and_clean(w, mu, sd)
    return float(sd[high] / clean_sd)


def _as_wide_as_clean(noise_sd: float, clean_sd: float, share: float = WIDE_NOISE) -> bool:
    """Whether a noise component's sd is at least ``share`` of the clean losses' (``WIDE_NOISE``:
    as wide; ``SHOULDER_WIDE``: nearly)."""
    return bool(noise_sd >= share * clean_sd)


def _one_mode_between(w: np.ndarray, mu: np.ndarray, sd: np.ndarray, low: float, high: float) -> bool:
    """Whether the mixture's density falls nowhere between ``low`` and ``high`` below its value at
    ``high``: the component there is no mode of its own, only the shoulder of a longer tail."""
    density = np.exp(_log_densities(np.linspace(low, high, 200), w, mu, sd)[1])
    return bool(density.min() >= 0.999 * density[-1])


def separated_posterior(z: np.ndarray, require_separation: bool = True, start: tuple | None = None,
                        steady: np.ndarray | None = None) -> tuple[np.ndarray | None, tuple]:
    """Each sample's posterior of the high component, when a two-Gaussian mixture finds a minority
    of high losses clearly apart from the rest (``SEPARATION`` and ``CLEAR_SPLIT``), BIC prefers it
    to one Gaussian, and, with ``steady`` (the samples' ``learned_steadily`` flags), less than
    ``STEADY_MOST`` of it was learned steadily; else None. Also the mixture's (weights, means, sds).
    Three Gaussians are tried too (``separate_mode``): where they stand they count when the two's
    noisy component is nearly as wide as the clean one (``SHOULDER_WIDE``: it holds the clean
    losses' shoulder with the noise), or when they count more with their noise component where the
    two's stands (``SAME_NOISE_SDS``; clean losses in groups). Without
    ``require_separation`` (the interval's resamples of a run already judged separated, started
    from its mixture, of two components or three), whatever the mixture finds."""
    if len(z) < 20 or z.std() == 0:
        return (None if require_separation else np.zeros(len(z))), ()
    w, mu, sd, ll2, post = _gaussians(z, start)
    if not require_separation:
        return post, (w, mu, sd)
    ll1 = float(-0.5 * len(z) * (np.log(2 * np.pi * z.var()) + 1))
    high, clean_mean, clean_sd = _noise_and_clean(w, mu, sd)
    if not _stands_above(w[high], mu[high], sd[high], clean_mean, clean_sd, _bic_gain(ll2, ll1, 1, len(z)),
                         post, steady):
        return None, (w, mu, sd)
    mode, modes = separate_mode(z, steady, (w, mu, sd))
    if mode is not None:
        holds_shoulder = _as_wide_as_clean(sd[high], clean_sd, SHOULDER_WIDE)
        three_noise_mean = modes[1].max()
        same_noise = abs(three_noise_mean - mu[high]) <= SAME_NOISE_SDS * sd[high]
        if holds_shoulder or (mode.mean() > post.mean() and same_noise):
            return mode, modes
    return post, (w, mu, sd)


def separate_mode(z: np.ndarray, steady: np.ndarray | None = None,
                  two: tuple | None = None) -> tuple[np.ndarray | None, tuple]:
    """Each sample's posterior of the highest of three Gaussians, the lower two the clean losses,
    when it passes the noise component's tests against their pooled mean and sd or against the
    component next below it, BIC prefers three to two (``two``: the two-Gaussian mixture already
    fitted), and it is a mode of its own (the density dips between that clean mean and it) or
    narrower than those clean losses (``WIDE_NOISE``), not the shoulder of a long tail; else None.
    Four Gaussians, the lower three the clean losses, take the place of three where BIC prefers
    them to three and their highest passes those tests narrower than the clean losses. Also the
    mixture's (weights, means, sds). See ``MODE`` and ``SKEWED_CLEAN_TOPS``."""
    if len(z) < 20 or z.std() == 0:
        return None, ()
    ll2, three, four = _skewed_fits(z, two)
    if three is None:
        return None, ()
    if (four is not None and _bic_gain(four[3], three[3], 1, len(z)) > 0
            and _mode_stands(z, four, ll2, steady, narrow=True)):
        return four[4], tuple(four[:3])
    return (three[4] if _mode_stands(z, three, ll2, steady) else None), tuple(three[:3])


def _skewed_fits(z: np.ndarray, two: tuple | None = None) -> tuple[float, tuple | None, tuple | None]:
    """What ``separate_mode`` chooses from: the log-likelihood of two Gaussians (``two``, or fitted
    here), and three and four Gaussians with two and three of them for the clean losses, as
    ``_gaussians`` returns them (None where no start fits; four only where three do)."""
    w, mu, sd = two if two is not None else _gaussians(z)[:3]
    ll2 = float(_log_densities(z, w, mu, sd)[1].sum())
    # The starts compete on a subsample of a large run; the winner is refitted on every sample.
    trial = z if len(z) <= MODE_TRIAL_SAMPLES else np.random.default_rng(0).choice(z, MODE_TRIAL_SAMPLES, replace=False)
    three_cuts, four_cuts = CLEAN_COMPONENT_CUTS
    three = _best_skewed_fit(z, trial, three_cuts)
    four = None if three is None else _best_skewed_fit(z, trial, four_cuts)
    return ll2, three, four


def _bic_gain(ll_more: float, ll_fewer: float, added: int, samples: int) -> float:
    """How much BIC prefers a 1-D Gaussian mixture of log-likelihood ``ll_more`` to one with
    ``added`` fewer components (three parameters each) of ``ll_fewer``; above 0: preferred."""
    return 2 * (ll_more - ll_fewer) - 3 * added * np.log(samples)


def _best_skewed_fit(z: np.ndarray, trial: np.ndarray, clean_cuts: tuple):
    """The likeliest of the mixtures started with the clean losses split at the quantiles
    ``clean_cuts`` and the top ``SKEWED_CLEAN_TOPS`` apart (fitted on ``trial``, then refitted on
    ``z``), as ``_gaussians`` returns it; None where no start has every stretch filled."""
    starts = [_split_start(trial, (*clean_cuts, 1 - top)) for top in SKEWED_CLEAN_TOPS if top * len(trial) >= 2]
    starts = [start for start in starts if np.isfinite(start[1]).all()]  # ties can leave a stretch empty
    if not starts:
        return None
    best = max((_gaussians(trial, start) for start in starts), key=lambda fit: fit[3])
    return best if trial is z else _gaussians(z, best[:3])


def _mode_stands(z: np.ndarray, fit: tuple, ll2: float, steady: np.ndarray | None, narrow: bool = False) -> bool:
    """Whether the highest component of ``fit`` (``_gaussians``' return) passes the noise component's
    tests against the others pooled or the one next below it, with BIC against two Gaussians of
    log-likelihood ``ll2``, and is narrower than those clean losses or (unless ``narrow``) a mode of
    its own, the density dipping before it."""
    w, mu, sd, ll, posterior = fit
    bic_gain = _bic_gain(ll, ll2, len(w) - 2, len(z))
    high, pooled_mean, pooled_sd = _noise_and_clean(w, mu, sd)
    below = int(np.argsort(mu)[-2])  # the clean component next to the noise
    for clean_mean, clean_sd in ((pooled_mean, pooled_sd), (mu[below], sd[below])):
        wide = _as_wide_as_clean(sd[high], clean_sd)
        # scarce noise needs no dip; a component as wide as the clean losses is their tail without one (MODE)
        if (_stands_above(w[high], mu[high], sd[high], clean_mean, clean_sd, bic_gain, posterior, steady)
                and not (wide and (narrow or _one_mode_between(w, mu, sd, clean_mean, mu[high])))):
            return True
    return False


def _skewed_hump(w: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> bool:
    """Whether a two-Gaussian mixture's noisy component is as wide as the clean one (``WIDE_NOISE``)
    with no mode of its own, the density never dipping between them: one skewed hump split in two."""
    if len(w) != 2:
        return False
    high, clean_mean, clean_sd = _noise_and_clean(w, mu, sd)
    return _as_wide_as_clean(sd[high], clean_sd) and _one_mode_between(w, mu, sd, clean_mean, mu[high])


def _log_densities(z: np.ndarray, w: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's log density under each weighted component (K, N), and under the mixture (N,)."""
    w, mu, sd = (np.asarray(v, dtype=np.float64)[:, None] for v in (w, mu, sd))
    log_p = np.log(w) - np.log(sd) - 0.5 * ((z[None, :] - mu) / sd) ** 2 - 0.5 * np.log(2 * np.pi)
    # Reduced a component at a time: numpy reduces across the few components of each sample slowly,
    # and for so few the sum adds them in the same order either way.
    top = log_p[0].copy()
    for row in log_p[1:]:
        np.maximum(top, row, out=top)
    scaled = np.exp(log_p - top)
    total = scaled[0].copy()
    for row in scaled[1:]:
        total += row
    return log_p, top + np.log(total)


def _stands_above(share: float, mean: float, sd: float, clean_mean: float, clean_sd: float, bic_gain: float,
                  posterior: np.ndarray, steady: np.ndarray | None) -> bool:
    """``_noise_component_stands`` for a noise component (``share``, ``mean``, ``sd``) above clean
    losses of ``clean_mean`` and ``clean_sd``."""
    ashman_d = (mean - clean_mean) / np.sqrt((sd ** 2 + clean_sd ** 2) / 2)
    return _noise_component_stands(share, (mean - clean_mean) / clean_sd, ashman_d, bic_gain, mean, posterior, steady)


def _noise_component_stands(share: float, separation: float, ashman_d: float, bic_gain: float, noise_mean: float,
                            posterior: np.ndarray, steady: np.ndarray | None) -> bool:
    """The tests a mixture's noise component passes to count as noise, pooled or class by class: a
    minority ``SEPARATION`` clean sds above the clean losses, clearly apart (``CLEAR_SPLIT``),
    preferred by BIC, unfitted (``FITTED_BELOW``), and with ``steady``, less than ``STEADY_MOST``
    of it learned steadily."""
    if not (share < 0.5 and separation >= SEPARATION and ashman_d >= CLEAR_SPLIT and bic_gain > 0
            and noise_mean > FITTED_BELOW):
        return False
    return steady is None or float((posterior * steady).sum() / max(posterior.sum(), 1e-12)) < STEADY_MOST


@functools.lru_cache(maxsize=1)
def _truncation_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a normal cut at ``alpha`` of its sds: (mean - cut) / sd of the part above, and its
    variance as a share of the whole normal's."""
    from scipy import special

    alpha = np.linspace(-6.0, 6.0, 1201)
    hazard = np.exp(-0.5 * alpha ** 2 - 0.5 * np.log(2 * np.pi) - np.log(special.ndtr(-alpha)))
    variance_factor = np.maximum(1 + alpha * hazard - hazard ** 2, 1e-12)
    return alpha, (hazard - alpha) / np.sqrt(variance_factor), variance_factor


def _normal_above(values: np.ndarray, threshold: float) -> tuple[float, float]:
    """Mean and sd of a normal seen only above ``threshold``, by matching the truncated normal's
    moments: (mean - threshold) / sd of the part seen depends only on where the threshold cuts."""
    alpha, ratio, variance_factor = _truncation_table()
    seen = (values.mean() - threshold) / values.std()
    a = float(np.interp(seen, ratio[::-1], alpha[::-1]))  # ratio falls as alpha grows
    sd = values.std() / np.sqrt(float(np.interp(a, alpha, variance_factor)))
    return threshold - a * sd, sd


def tail_excess_share(z: np.ndarray, steady: np.ndarray | None = None, iterations: int = 20,
                      heavier: bool = False) -> float:
    """The share of samples above the clean samples' right tail (see the comment above); with
    ``steady`` (``learned_steadily`` flags), those learned steadily are not counted. ``heavier``:
    the tail's spread is also read from the clean samples' HEAVIER_TAIL_QUANTILE and the wider
    of the two taken, for a clean tail that grows heavier than its quartiles say."""
    from scipy import special

    n = len(z)
    order = np.argsort(z)
    ordered = z[order]
    counted = np.ones(n, dtype=bool) if steady is None else ~np.asarray(steady, dtype=bool)[order]
    share = 0.0
    for _ in range(iterations):
        clean_count = max(10, int(round((1 - share) * n)))
        median, upper_quartile = np.quantile(ordered[:clean_count], [0.5, 0.75])
        spread = (upper_quartile - median) / QUARTILE_Z
        if heavier:
            high = np.quantile(ordered[:clean_count], HEAVIER_TAIL_QUANTILE)
            spread = max(spread, (high - median) / special.ndtri(HEAVIER_TAIL_QUANTILE))
        expected = max(TAIL_EXPECTED, TAIL_SHARE * clean_count)
        threshold = median - spread * special.ndtri(expected / clean_count)
        threshold = max(threshold, FITTED_BELOW)
        first_above = np.searchsorted(ordered, threshold, side="right")
        above = ordered[first_above:][counted[first_above:]]
        excess = max(0.0, len(above) - expected)
        total = excess
        if len(above) >= TAIL_FIT_MIN and above.std() > 0:
            mu, sd = _normal_above(above, threshold)
            if mu >= threshold:
                total = excess / special.ndtr((mu - threshold) / sd)
        new = min(0.95, total / n)
        if abs(new - share) < 1e-5:
            return new
        share = new
    return share


# --- classes the model learned later as a whole -------------------------------
#
# In imbalanced data a rare class is learned later than the others, every sample of it, clean or
# not, and on the pooled losses the whole class reads as noise: digits with five classes of 18
# samples beside five of 180 read 2.2% clean, 9.8% with 1% noise and 21.1% with 10%. A class is
# late when its lower quartile of log mean loss lies LATE_CLASS_BAR robust sds (the pooled median to
# the nearer quartile) above the pooled lower quartile; a lower quartile stays with a class's clean
# samples until three quarters of it are noise. In the balanced runs of both benchmark sets the
# largest such shift was 1.6, so they read as before. A run with late classes is read with each
# class's clean losses modelled on their own (``class_mixture``): each class its own clean
# Gaussian, one noise Gaussian for all (a wrong label's loss comes from the class the sample
# really is, not the rare one it was given), each class its own noise share (uniform noise lands
# on a rare class's labels as often as on a common one's, a third of its samples or more) pulled
# toward the overall share by NOISE_SHARE_SHRINK pseudo-samples, and its own clean variance pulled
# toward the pooled one by CLASS_VARIANCE_SHRINK. In the tail, each late class is moved and scaled
# so that its lower quartile and median fall on the pooled ones (its lower half, where its noise
# is not; its spread pulled toward the pooled one the same way).
LATE_CLASS_BAR = 2.0
LATE_CLASS_MIN = 5  # samples a class needs for its quartile to say anything
NOISE_SHARE_SHRINK = 10
CLASS_VARIANCE_SHRINK = 20
CLASS_NOISE_START = 2.5  # the class mixture starts from the samples this many robust sds above their class's median


def _class_quantiles(z: np.ndarray, index: np.ndarray, classes: int, q) -> np.ndarray:
    """Each class's ``q`` quantile of ``z`` (interpolated as ``np.quantile`` does), from one sort;
    NaN for a class without samples. ``index``: each sample's class number in [0, classes); ``q``
    a share or a sequence of them (then one row per share)."""
    q = np.asarray(q, dtype=np.float64)[..., None]
    if len(z) == 0:
        return np.full(q.shape[:-1] + (classes,), np.nan)
    ordered = z[np.lexsort((z, index))]  # by class, then by value
    counts = np.bincount(index, minlength=classes)
    last = np.cumsum(counts) - 1
    position = (last - counts + 1) + q * np.maximum(counts - 1, 0)
    below = np.clip(np.floor(position).astype(int), 0, len(z) - 1)
    above = np.clip(np.minimum(below + 1, last), 0, len(z) - 1)
    fraction = position - np.floor(position)
    values = ordered[below] * (1 - fraction) + ordered[above] * fraction
    return np.where(counts > 0, values, np.nan)


@dataclass
class ClassView:
    """The samples' classes, for a run with classes learned later as a whole: ``index`` (N,) each
    sample's class number, ``late`` (classes,) whether that class is late (``late_class_view``),
    ``labels`` (classes,) the label each class number stands for."""

    index: np.ndarray
    late: np.ndarray
    labels: np.ndarray

    def take(self, rows: np.ndarray) -> ClassView:
        return ClassView(self.index[rows], self.late, self.labels)

    def onto_pooled(self, z: np.ndarray) -> np.ndarray:
        """``z`` with each late class moved and scaled so that its lower quartile and median fall on
        the pooled ones (what the tail reads); a class's spread is pulled toward the pooled one by
        ``CLASS_VARIANCE_SHRINK`` pseudo-samples, as a few samples' quartiles can sit close together
        (17 clean digits of a class, scaled by their own, put 1.1% of a clean run above the tail)."""
        lower, median = np.quantile(z, [0.25, 0.5])
        classes = len(self.late)
        class_lower, class_median = _class_quantiles(z, self.index, classes, (0.25, 0.5))
        sizes = np.bincount(self.index, minlength=classes)
        spread = ((sizes * (class_median - class_lower)
                   + CLASS_VARIANCE_SHRINK * (median - lower)) / (sizes + CLASS_VARIANCE_SHRINK))
        moved = self.late[self.index] & (spread[self.index] > 0)
        out = z.copy()
        rows = self.index[moved]
        out[moved] = lower + (z[moved] - class_lower[rows]) * (median - lower) / spread[rows]
        return out


def late_class_view(z: np.ndarray, labels: np.ndarray) -> ClassView | None:
    """The samples' classes when some class was learned later as a whole (its lower quartile of
    ``z``, log mean loss, ``LATE_CLASS_BAR`` robust sds above the pooled one; see the comment
    above); None when none was."""
    names, index = np.unique(labels, return_inverse=True)
    lower, median, upper = np.quantile(z, [0.25, 0.5, 0.75])
    # The narrower half's spread: where late classes hold a quarter of the samples or more (a class
    # of two thirds fitted early, four small ones late), the pooled upper quartile lies among their
    # losses and the spread from it hid them (584 clean tickets after 45 epochs read 7.0% noise).
    spread = min(upper - median, median - lower) / QUARTILE_Z
    counts = np.bincount(index, minlength=len(names))
    late = ((_class_quantiles(z, index, len(names), 0.25) - lower > LATE_CLASS_BAR * spread)
            & (counts >= LATE_CLASS_MIN))
    return ClassView(index, late, names) if spread > 0 and late.any() else None


def class_mixture(z: np.ndarray, classes: ClassView, steady: np.ndarray | None = None, start: tuple | None = None,
                  require_separation: bool = True, iterations: int = 200) -> tuple[np.ndarray | None, tuple]:
    """``separated_posterior`` for a run with late classes: each class its own clean Gaussian,
    one noise Gaussian shared by all, each class its own noise share (see the comment above). The
    separation tests take each noisy sample's gap from its own class's clean Gaussian. Returns the
    posterior of noise (None when not separated) and the fit (the resamples' ``start``)."""
    n, count = len(z), len(classes.late)
    index = classes.index
    sizes = np.bincount(index, minlength=count)
    floor = 1e-3 * (z.std() + 1e-12)

    def fit(posterior):
        share = float(np.clip(posterior.mean(), 1e-6, 1 - 1e-6))
        noise_mean = float((posterior * z).sum() / max(posterior.sum(), 1e-12))
        noise_sd = float(np.sqrt((posterior * (z - noise_mean) ** 2).sum() / max(posterior.sum(), 1e-12))) + floor
        clean = 1 - posterior
        weight = np.bincount(index, clean, count) + 1e-12
        location = np.bincount(index, clean * z, count) / weight
        deviation = np.bincount(index, clean * (z - location[index]) ** 2, count)
        pooled = deviation.sum() / weight.sum()
        sd = np.sqrt((deviation + CLASS_VARIANCE_SHRINK * pooled) / (weight + CLASS_VARIANCE_SHRINK)) + floor
        class_share = np.clip((np.bincount(index, posterior, count) + NOISE_SHARE_SHRINK * share)
                              / (sizes + NOISE_SHARE_SHRINK), 1e-6, 1 - 1e-6)
        return class_share, location, sd, noise_mean, noise_sd

    def expect(params):
        class_share, location, sd, noise_mean, noise_sd = params
        log_clean = np.log(1 - class_share[index]) - np.log(sd[index]) - 0.5 * ((z - location[index]) / sd[index]) ** 2
        log_noise = np.log(class_share[index]) - np.log(noise_sd) - 0.5 * ((z - noise_mean) / noise_sd) ** 2
        total = np.logaddexp(log_clean, log_noise)
        return np.exp(log_noise - total), float(total.sum())

    if start is None:
        location = _class_quantiles(z, index, count, 0.5)
        residual = z - location[index]
        median, upper = np.quantile(residual, [0.5, 0.75])
        noisy = (residual - median) > CLASS_NOISE_START * max((upper - median) / QUARTILE_Z, 1e-12)
        noisy[np.argsort(residual)[-2:]] = True
        start = fit(noisy.astype(np.float64))
    params, previous = start, -np.inf
    for _ in range(iterations):
        posterior, log_likelihood = expect(params)
        params = fit(posterior)
        if log_likelihood - previous < 1e-7 * abs(log_likelihood):
            break
        previous = log_likelihood
    if not require_separation:
        return posterior, params
    class_share, location, sd, noise_mean, noise_sd = params
    # One clean Gaussian per class and no noise: what BIC compares with.
    _, clean_location, clean_sd, _, _ = fit(np.zeros(n))
    log_clean_only = float((-np.log(clean_sd[index]) - 0.5 * ((z - clean_location[index]) / clean_sd[index]) ** 2).sum())
    bic_gain = 2 * (log_likelihood - log_clean_only) - 3 * np.log(n)
    mass = max(posterior.sum(), 1e-12)
    gap = noise_mean - location[index]
    separation = float((posterior * gap / sd[index]).sum() / mass)
    ashman_d = float((posterior * gap / np.sqrt((sd[index] ** 2 + noise_sd ** 2) / 2)).sum() / mass)
    separated = _noise_component_stands(posterior.mean(), separation, ashman_d, bic_gain, noise_mean, posterior, steady)
    return (posterior if separated else None), params


def noise_share(z: np.ndarray, method: str | None = None, start: tuple | None = None,
                steady: np.ndarray | None = None, classes: ClassView | None = None, heavier: bool = False):
    """The estimated share of mislabeled samples from their log mean losses, the regime, the share
    the estimate cannot rule out (in the mixture, the samples whose posterior of the noisy
    component is above PLAUSIBLE, where its Gaussian shapes are least sure), and the mixture.
    ``method`` forces a regime, and ``start`` starts the mixture: the interval's resamples keep the
    regime of the whole run and start from its mixture. ``steady``: see ``separated_posterior`` and
    ``tail_excess_share``. ``classes``: a run with classes learned later as a whole is read class by
    class (``late_class_view``). Where no two-Gaussian mixture stands, or where it split one skewed
    hump (``_skewed_hump``) and the tail reads less, the tail's reading, or a separate mode of high
    losses (``separate_mode``, regime ``MODE``) where that counts more; where such a mode stands and
    counts less, the tail's reading comes with the mode's mixture."""
    posterior, mixture = None, ()
    if method in (None, "mixture", MODE):
        if classes is None:
            posterior, mixture = separated_posterior(z, require_separation=method is None, start=start, steady=steady)
        else:
            posterior, mixture = class_mixture(z, classes, steady, start, require_separation=method is None)
    share = None  # the tail's reading, where it was needed to judge a skewed hump
    if posterior is not None and method is None and classes is None and _skewed_hump(*mixture):
        share = tail_excess_share(z, steady, heavier=heavier)
        if share < posterior.mean():  # the hump's split counts more than its tail: the tail's reading, below
            posterior = None
    if posterior is not None:
        return float(posterior.mean()), method or "mixture", float((posterior > PLAUSIBLE).mean()), mixture
    if share is None:
        share = tail_excess_share(z if classes is None else classes.onto_pooled(z), steady, heavier=heavier)
    if method is None and classes is None:
        mode, modes = separate_mode(z, steady, mixture or None)
        if mode is not None and mode.mean() > share:
            return float(mode.mean()), MODE, float((mode > PLAUSIBLE).mean()), modes
        if mode is not None:  # the tail counts more, and the mode's fit reads the interval's lower end
            return share, "tail", share, modes
    return share, "tail", share, ()
