"""How much noise there is and where: a two-component split of scores, the noise-rate estimate,
and the most confused class pairs."""

from __future__ import annotations

import functools
import hashlib
import weakref
from dataclasses import dataclass, field, replace

import numpy as np


def gmm_noisy_posterior(values: np.ndarray, reg_covar: float = 5e-4, seed: int = 0) -> np.ndarray:
    """P(high component | value) of a two-component Gaussian mixture on min-max normalised values.

    DivideMix's split of clean from noisy samples by their loss (Li et al. 2020).
    """
    from sklearn.mixture import GaussianMixture

    values = np.asarray(values, dtype=np.float64)
    span = values.max() - values.min() if len(values) else 0.0
    if len(values) < 2 or span <= 0:
        return np.zeros(len(values))
    x = ((values - values.min()) / span)[:, None]
    gmm = GaussianMixture(n_components=2, reg_covar=reg_covar, tol=1e-3, max_iter=100, random_state=seed)
    gmm.fit(x)
    posterior = gmm.predict_proba(x)[:, int(np.argmax(gmm.means_.ravel()))]
    # Below the clean component's mean a sample is clean, whatever the wider component's tail says.
    clean_mean = float(gmm.means_.ravel().min())
    return np.where(x.ravel() < clean_mean, np.minimum(posterior, 0.5 - 1e-9), posterior)


def decided_noisy(scores: np.ndarray, flags: np.ndarray | None) -> np.ndarray:
    """The samples a detector judges mislabeled: its own flags when it makes a decision, else those a
    two-component mixture on its scores puts on the noisy side. Unjudged (NaN) samples never."""
    judged = ~np.isnan(scores)
    if flags is not None:
        return np.asarray(flags, dtype=bool) & judged
    chosen = np.zeros(len(scores), dtype=bool)
    chosen[judged] = gmm_noisy_posterior(scores[judged]) > 0.5
    return chosen


def confused_pairs(given: np.ndarray, suggested: np.ndarray, flagged: np.ndarray, class_names: list[str],
                   top: int = 5) -> list[dict]:
    """The (given -> suggested) label pairs most common among flagged samples."""
    mask = flagged & (given != suggested)
    if not mask.any():
        return []
    c = len(class_names)
    counts = np.bincount(given[mask] * c + suggested[mask], minlength=c * c)
    order = np.argsort(-counts, kind="stable")[:top]
    return [{"given": class_names[i // c], "suggested": class_names[i % c], "count": int(counts[i])}
            for i in order if counts[i] > 0]


# --- the noise-rate estimate -------------------------------------------------
#
# Read on log(mean training loss): a mislabeled sample keeps a high loss until the model memorises
# it, a clean one loses it early. Two regimes, because no single model of that distribution held
# from 0% to 45% on the calibration runs (benchmarks/calibration.py):
# - much noise, well separated: a two-Gaussian mixture whose high component is a minority lying
#   SEPARATION standard deviations of the clean one above it; the rate is that component's share.
#   Without the separation test a mixture always "finds" a second component in clean data, whose
#   loss is skewed (it called 25% of clean digits noisy).
# - otherwise, little or no noise: the clean samples' right tail is modelled as a normal from their
#   median and upper quartile; the samples above where that normal expects half a sample are the
#   excess. A normal fitted to the excess (truncated at the threshold) adds its mass below the
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
HEAVIER_TAIL_QUANTILE = 0.9  # the interval's lower end also reads the tail's spread from this quantile
TAIL_FIT_MIN = 10  # excess samples needed to fit their normal and add its hidden part
PLAUSIBLE = 0.05  # a mixture posterior above this keeps a sample within the interval's upper end
BOOTSTRAP_MAX_SAMPLES = 50_000  # larger runs are subsampled for the interval's draws
FIT_MAX_SAMPLES = 200_000  # and for the estimate itself
WEAK_EVIDENCE = 0.005
# Where the losses cannot tell, the interval's upper end also reaches the samples whose label the
# model contradicted after the first EARLY_LEARNING share of training: a wrong label the model fitted
# only by memorising it was contradicted before (the model predicted the true class first), so
# none of them can be ruled out. The first epochs are left out: there the model has not yet fitted
# even the clean samples (it contradicted 23-99% of every clean calibration run somewhere in them).
EARLY_LEARNING = 0.25
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
# A model that starts on a plateau (LeNet on digits sat at chance for three epochs) has not begun
# learning while the median sample's loss stays within this share of its first epoch's; those
# epochs say nothing of the labels, and their chance-level losses are left out of the estimate.
PLATEAU = 0.97
# Without evidence of noise, an interval reaching above this means "cannot tell", not "clean".
UNSURE_ABOVE = 0.10
# A noisy component at least this wide (its sd over the clean one's) holds the clean losses' long
# tail as much as noise: samples a briefly or weakly trained model has not fitted. Of the pooled
# mixtures on every benchmark run and the validation sets, 4 of the 6 that wide overcounted (iris
# after 30 epochs of 3 steps: 11.3% for 5%; tickets with 10% pair-flip: 17.3%), against 3 of the
# 52 narrower ones. Held-out models count such a run surer, and detect says so.
WIDE_NOISE = 1.0
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
MODE = "mode"
# A label the model still gave under REFUSED_PROBABILITY (and under a tenth of chance, 1/C) in each
# of its last REFUSED_EPOCHS epochs, after training on it all run, was refused: the model fits a
# clean sample, or at least draws it toward its label, and memorises a wrong one in time. A model
# that already knows the data and is fine-tuned for a few epochs does not: its wrong labels stay
# near 1e-4 while its clean losses spread so wide that the tail's normal reaches past them (1-2%
# noise read 0.0-0.2%). The refused share is a floor under the estimate. On the 437 cached runs of
# every set and probe (fine-tuned or trained from scratch, 0-45% noise), no clean run refused more
# than 0.22%; it moved 16 noisy readings (8 into the tolerance, none out), and 93-100% of what
# those runs refused were wrong labels (LeNet refuses a few hard clean digits too, 50-77% wrong,
# under its own count). A model that memorises refuses nothing, so the floor leaves such runs
# alone. Of 32 runs made after it (fine-tuned, and short runs from scratch), it moved two with
# 1% noise from 0.0% to 0.9% and four clean ones from 0.00% to 0.11% (one sample: no clear sign).
REFUSED = "refused"
REFUSED_PROBABILITY = 0.01
REFUSED_EPOCHS = 2
# The floor also counts a label refused by both readings of a run trained with --folds: the model
# never believed it (mean loss above log C) and models that never trained on it gave it under
# REFUSED_PROBABILITY. On overlapping clusters (blobs: a fifth of the samples lie in another
# class's cluster) the clean losses' tail reaches past the wrong labels and the losses read 0.0% at
# 1-5% noise, while held-out models alone give 2% of the clean samples under 1% (they are
# overconfident where the clusters meet). Few clean labels fail both (0.0-0.7% on 47 clean cached
# runs; a median of 100% of what runs with 2-10% uniform or pair-flip noise counted was wrong, 79%
# at least), so it is a floor, as the refused share is: it undercounts a model that memorises
# (about half the wrong labels of blobs with 5% noise were believed). As clean runs leave a few
# such labels, its lower end rises only where the count's bound is clear evidence (WEAK_EVIDENCE),
# so a clean run keeps "no clear sign".
HELD_OUT_REFUSED = "refused held out"
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
# A model that knew the data from its first recorded epoch (KNEW_AT_START: fine-tuned) read each
# sample's label in that epoch's training batches before it had trained on it: a held-out reading
# from the run itself. A label it never believed and gave under REFUSED_PROBABILITY at first sight
# counts in the floor as held-out models' refusals do. Fine-tuned, a model begins to learn some of
# its wrong labels, so the labels it still refused at its end undercount them (digits with 2% noise:
# 12 of 18 refused, 17 of 18 at first sight and never believed); on the 119 fine-tuned runs of
# benchmarks/fine_tuning.py, 0-5 clean labels of 899-2,000 were refused at first sight and never
# believed (0.0-0.25%); of what noisy runs counted so a median of 98% were wrong (71% at least).
# Its lower end rises only on clear evidence, as the held-out refusals' does. Training-loss
# channels only: an eval pass reads a sample after the model trained on it.
FIRST_SIGHT_REFUSED = "refused at first sight"
FIRST_SIGHT_CHANNELS = ("train_loss",)
# Where the losses cannot tell because a model that knew the data from its first epoch was
# fine-tuned briefly (pretrained 3-5 epochs, it leaves a tenth or more of its clean samples
# unfitted), a label it still gave under chance's probability (loss above log C) in each of its last
# REFUSED_EPOCHS epochs counts in the floor too: it knew the data and trained on that label every
# epoch, yet leans to another class; its unfitted clean samples mostly lie between log 2 and log C.
# On the 15 such runs of benchmarks/fine_tuning.py (digits: 7 clean, 8 with 1-3% noise), 3-7 clean
# labels of 899 were (0.3-0.8%; 12, 1.3%, on a CNN fine-tuned on digits from another domain); of
# what the noisy runs counted so, a median of 73% were wrong (52% at least), and the refusals alone
# undercount there (digits with 2% noise: 9-13 of 18 wrong labels refused at first sight and never
# believed, 16-17 under chance at the end). Its lower end rises only on clear evidence, as the
# first-sight refusals' does. Left out where the losses can tell: there it brought two fine-tuned
# readings into the tolerance and took two out of it (a clean run to 1.1%).
UNDER_CHANCE_AT_END = "under chance at the end"
# A ceiling from the same losses. A label the model never believed has a mean loss above log(C),
# a geometric-mean probability under chance. A model that knew the data from its first recorded
# epoch (the median sample's loss under a tenth of chance's: fine-tuned, or easy data learned
# within an epoch) met its wrong labels far above chance and had to memorise them from there, so a
# label it believed on average is not one; nor is it where the model still refuses a quarter or
# more of its never-believed labels at its end (it holds its wrong labels rather than memorising
# them). There the count is at most the never-believed share. Fine-tuned after a short
# pretraining, a model keeps a shoulder of hard clean samples below chance's loss, which the
# mixture took in with the wrong labels (tickets with 2-5% noise read 7.2-7.7%; a clean run 4.0%).
# A model that meets its labels near chance (its first epoch's median at 0.37 of chance's loss or
# more on the runs trained from scratch here) fits some wrong ones below it, and where it refuses
# few of those it never believed (shapes with 5-10% instance noise: 6-7%) the share would
# undercount: left alone.
NEVER_BELIEVED = "never believed"
KNEW_AT_START = 0.1
HELD_NOT_MEMORISED = 0.25
SKEWED_CLEAN_TOPS = (0.1, 0.05, 0.02, 0.01)
MODE_TRIAL_SAMPLES = 20_000  # the starts compete on this many samples of a larger run
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
    that count the samples learned steadily too). ``high`` reaches at least the share
    the mixture cannot rule out (posterior above ``PLAUSIBLE``) and ``unfitted``, the share of
    samples the model never fitted (mean loss above log 2, a geometric-mean probability of the
    given label under 1/2), among which noise that looks like the data's own ambiguity cannot be
    told from hard samples, by this estimate or by any detector. ``method`` is ``"mixture"``
    (much, separated noise) or ``"tail"`` (little or none) on the losses, or ``"held-out"``
    (confident learning on out-of-fold probabilities, ``held_out_noise_rate``; ``run_noise_rate``
    takes it where it is below the losses' reading, and the interval then spans both), or
    ``"refused"`` (the share of labels the model refused to the end, ``refused_labels``, where it
    is above the losses' reading), or ``"refused held out"`` / ``"refused at first sight"`` (that
    share with the labels never believed that held-out models, or the model itself when it first met
    them, refused), or ``"held-out anchors"`` (among the samples held-out models are surest of, the
    share of labels they contradict and the model never believed, ``run_held_out_anchors``, where it
    is above the losses' reading), or ``"never believed"`` (the share of labels whose mean loss
    stayed above log C, where it is below the losses' reading and the run can say so), or
    ``"not learned"`` (``run_noise_rate`` on a run whose model never began to learn). ``evidence`` is
    ``"none"`` when the interval reaches down to zero, ``"weak"`` when its lower end is under
    ``WEAK_EVIDENCE``, else ``"clear"``. ``late_classes``: the labels of classes the model learned
    later as a whole, whose losses were modelled on their own (``late_class_view``; given ``labels``).
    ``noise_spread``: in the pooled mixture, its noisy component's sd over its clean one's (see
    ``noise_as_wide_as_clean``); None otherwise.
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

    @property
    def count(self) -> int:
        return int(round(self.rate * self.samples))

    @property
    def unsure(self) -> bool:
        return cannot_tell(self.evidence, self.high)

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
        post = np.exp(log_p - total[:, None])
        ll = float(total.sum())
        mass = post.sum(axis=0) + 1e-12
        w = np.clip(mass / len(z), 1e-6, 1 - 1e-6)
        mu = (post * z[:, None]).sum(axis=0) / mass
        sd = np.sqrt((post * (z[:, None] - mu) ** 2).sum(axis=0) / mass) + floor
        if ll - previous < 1e-7 * abs(ll):
            break
        previous = ll
    return w, mu, sd, ll, post[:, int(np.argmax(mu))]


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
    if not _stands_above(w[high], mu[high], sd[high], clean_mean, clean_sd, 2 * (ll2 - ll1) - 3 * np.log(len(z)),
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
    Also the mixture's (weights, means, sds). See ``MODE`` and ``SKEWED_CLEAN_TOPS``."""
    if len(z) < 20 or z.std() == 0:
        return None, ()
    w, mu, sd = two if two is not None else _gaussians(z)[:3]
    ll2 = float(_log_densities(z, w, mu, sd)[1].sum())
    # The starts compete on a subsample of a large run; the winner is refitted on every sample.
    trial = z if len(z) <= MODE_TRIAL_SAMPLES else np.random.default_rng(0).choice(z, MODE_TRIAL_SAMPLES, replace=False)
    starts = [_split_start(trial, (0.5, 1 - top)) for top in SKEWED_CLEAN_TOPS if top * len(trial) >= 2]
    starts = [start for start in starts if np.isfinite(start[1]).all()]  # ties can leave a stretch empty
    if not starts:
        return None, ()
    best = max((_gaussians(trial, start) for start in starts), key=lambda fit: fit[3])
    w3, mu3, sd3, ll3, post3 = best if trial is z else _gaussians(z, best[:3])
    bic_gain = 2 * (ll3 - ll2) - 3 * np.log(len(z))
    high, pooled_mean, pooled_sd = _noise_and_clean(w3, mu3, sd3)
    below = int(np.argsort(mu3)[-2])  # the clean component next to the noise
    for clean_mean, clean_sd in ((pooled_mean, pooled_sd), (mu3[below], sd3[below])):
        # scarce noise needs no dip; a component as wide as the clean losses is their tail without one (MODE)
        if (_stands_above(w3[high], mu3[high], sd3[high], clean_mean, clean_sd, bic_gain, post3, steady)
                and (not _as_wide_as_clean(sd3[high], clean_sd)
                     or not _one_mode_between(w3, mu3, sd3, clean_mean, mu3[high]))):
            return post3, (w3, mu3, sd3)
    return None, (w3, mu3, sd3)


def _log_densities(z: np.ndarray, w: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's log density under each weighted component (N, K), and under the mixture (N,)."""
    log_p = np.log(w) - np.log(sd) - 0.5 * ((z[:, None] - mu) / sd) ** 2 - 0.5 * np.log(2 * np.pi)
    top = log_p.max(axis=1, keepdims=True)
    return log_p, top[:, 0] + np.log(np.exp(log_p - top).sum(axis=1))


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
        threshold = median - spread * special.ndtri(TAIL_EXPECTED / clean_count)
        threshold = max(threshold, FITTED_BELOW)
        first_above = np.searchsorted(ordered, threshold, side="right")
        above = ordered[first_above:][counted[first_above:]]
        excess = max(0.0, len(above) - TAIL_EXPECTED)
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
# upper quartile) above the pooled lower quartile; a lower quartile stays with a class's clean
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
    spread = (upper - median) / QUARTILE_Z
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
    class (``late_class_view``). Where no two-Gaussian mixture stands, the tail's reading, or a
    separate mode of high losses (``separate_mode``, regime ``MODE``) where that counts more."""
    posterior, mixture = None, ()
    if method in (None, "mixture", MODE):
        if classes is None:
            posterior, mixture = separated_posterior(z, require_separation=method is None, start=start, steady=steady)
        else:
            posterior, mixture = class_mixture(z, classes, steady, start, require_separation=method is None)
    if posterior is not None:
        return float(posterior.mean()), method or "mixture", float((posterior > PLAUSIBLE).mean()), mixture
    share = tail_excess_share(z if classes is None else classes.onto_pooled(z), steady, heavier=heavier)
    if method is None and classes is None:
        mode, modes = separate_mode(z, steady, mixture or None)
        if mode is not None and mode.mean() > share:
            return float(mode.mean()), MODE, float((mode > PLAUSIBLE).mean()), modes
    return share, "tail", share, ()


def _left_plateau(median_losses: np.ndarray) -> int | None:
    """The first epoch whose median sample's loss fell below ``PLATEAU`` of the first epoch's; None
    when none did (or the first epoch has none: an imported run)."""
    median_losses = np.asarray(median_losses, dtype=np.float64)
    below = np.flatnonzero(median_losses < PLATEAU * median_losses[0]) if len(median_losses) else []
    return int(below[0]) if len(below) else None


def learning_start(median_losses: np.ndarray) -> int:
    """The epoch a run that started on a plateau (the median sample's loss, per epoch, within
    ``PLATEAU`` of its first for two epochs or more) began to learn in; 0 when the model learned from
    its first epoch, or never."""
    left = _left_plateau(median_losses)
    return left if left is not None and left >= 2 else 0


def never_learned(median_losses: np.ndarray) -> bool:
    """Whether the median sample's loss stayed within ``PLATEAU`` of its first epoch's through the
    last (two epochs or more), above the fitted line (log 2): a model that never began to learn,
    whose losses say nothing of the labels. LeNet on digits with 30% noise sat at chance for all of
    its 6 epochs, and a mixture found a clearly separated 2.9% in the chance-level losses' jitter,
    passing a 3% gate. A model recorded only after it had learned (a recorder added to a fine-tuned
    model's last epochs) stays level too, but below the line."""
    median_losses = np.asarray(median_losses, dtype=np.float64)
    return (len(median_losses) >= 2 and bool(np.isfinite(median_losses[0])) and _left_plateau(median_losses) is None
            and bool(median_losses[-1] > PLATEAU * UNFITTED_LOSS))


def presented_mean(values: np.ndarray) -> np.ndarray:
    """Each row's mean over the presentations it has: an imported run pads samples presented fewer
    times with NaN (as Datumaro keeps every sample's own series); a row with none is NaN (not judged)."""
    if not np.isnan(values).any():
        return values.mean(axis=1, dtype=np.float64)
    seen = ~np.isnan(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen, values, 0.0).sum(axis=1, dtype=np.float64) / seen.sum(axis=1)


def loss_evidence(losses: np.ndarray, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's mean loss and whether the model learned it steadily (its loss fell
    ``STEADY_BY`` from its first epoch to its last, never rising ``STEADY_BY`` above the first,
    and, given ``num_classes``, ended below chance's log(num_classes)), from ``[N, epochs]`` losses
    of the given labels: the two inputs of ``estimate_noise_rate``, computed a block of samples at
    a time."""
    losses = np.asarray(losses, dtype=np.float64)
    mean = presented_mean(losses)
    seen = ~np.isnan(losses)
    with np.errstate(invalid="ignore"):
        if losses.shape[1] < 2:
            return mean, np.zeros(len(losses), dtype=bool)
        first = losses[:, 0]
        last_seen = losses.shape[1] - 1 - np.argmax(seen[:, ::-1], axis=1)
        last = losses[np.arange(len(losses)), last_seen]
        highest = np.where(seen[:, 1:], losses[:, 1:], -np.inf).max(axis=1, initial=-np.inf)
        learned = last < (np.inf if num_classes is None else np.log(num_classes))
        return mean, (last < first - STEADY_BY) & (highest <= first + STEADY_BY) & learned


def refused_labels(losses: np.ndarray, num_classes: int) -> np.ndarray:
    """Whether the model refused each sample's given label: its loss above -log(REFUSED_PROBABILITY)
    and log(10 * num_classes) in each of the last ``REFUSED_EPOCHS`` of ``[N, epochs]`` losses it was
    presented in (NaN: not presented; a sample presented in none of them is not refused)."""
    return _above_at_the_end(losses, _refused_loss(num_classes))


def under_chance_at_end(losses: np.ndarray, num_classes: int) -> np.ndarray:
    """Whether the model still gave each sample's given label less than chance's probability: its
    loss above log(num_classes) in each of the last ``REFUSED_EPOCHS`` of ``[N, epochs]`` losses it
    was presented in (as ``refused_labels``, at chance's bar)."""
    return _above_at_the_end(losses, float(np.log(num_classes)))


def _above_at_the_end(losses: np.ndarray, bar: float) -> np.ndarray:
    """Whether each row of ``[N, epochs]`` losses is above ``bar`` in each of its last
    ``REFUSED_EPOCHS`` epochs it was presented in (NaN: not presented)."""
    last = np.asarray(losses, dtype=np.float64)[:, -REFUSED_EPOCHS:]
    seen = ~np.isnan(last)
    return seen.any(axis=1) & ((last > bar) | ~seen).all(axis=1)


def _refused_loss(num_classes: int) -> float:
    """The loss above which a label is refused: -log(REFUSED_PROBABILITY), or log(10 * C) where that
    is higher (a tenth of chance)."""
    return float(np.log(max(1 / REFUSED_PROBABILITY, 10 * num_classes)))


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
    # digits: 2.2% from the quartiles' normal), so it is read with the spread from a higher quantile too.
    other_readings = {}
    if method in ("tail", MODE) and steady is not None:
        other_readings["high"] = {"steady_counted": False}
    if method == "tail":
        other_readings["low"] = {"heavier": True}
    shares, other_shares = [], {end: [] for end in other_readings}
    for _ in range(draws):
        drawn = rng.choice(len(z), size, replace=True)
        drawn_classes = None if classes is None else classes.take(drawn)
        drawn_steady = None if steady is None else steady[drawn]
        share = noise_share(z[drawn], method, mixture or None, drawn_steady, drawn_classes)[0]
        if method == MODE:  # the larger of the two readings, in every resample as in the run
            share = max(share, noise_share(z[drawn], "tail", steady=drawn_steady)[0])
        shares.append(share)
        for end, how in other_readings.items():
            other_shares[end].append(_tail_share(z[drawn], drawn_steady, drawn_classes, **how))
    low, high = _interval(rate, np.array(shares), size, len(z), confidence)
    for end, how in other_readings.items():
        other_low, other_high = _interval(_tail_share(z[fit], fit_steady, fit_classes, **how),
                                          np.array(other_shares[end]), size, len(z), confidence)
        low, high = (min(low, other_low), high) if end == "low" else (low, max(high, other_high))
    unfitted = float((values > UNFITTED_LOSS).mean())
    high = max(high, unfitted, plausible)
    late = () if classes is None else tuple(classes.labels[classes.late].tolist())
    spread = _noise_spread(*mixture) if method in ("mixture", MODE) and classes is None else None
    method = "mixture" if method == MODE else method  # a mode is a mixture's reading to the user
    return NoiseRateEstimate(float(rate), low, high, confidence, method, _evidence(low, len(z)), len(z), unfitted,
                             late, spread)


def _tail_share(z: np.ndarray, steady: np.ndarray | None, classes: ClassView | None, steady_counted: bool = True,
                heavier: bool = False) -> float:
    """The tail's reading (``tail_excess_share``), with or without the steady learners counted."""
    return noise_share(z, "tail", steady=steady if steady_counted else None, classes=classes,
                       heavier=heavier)[0]


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


def _evidence(low: float, samples: int) -> str:
    return "none" if low * samples < 1 else "weak" if low < WEAK_EVIDENCE else "clear"


def late_contradictions(predictions: np.ndarray, given_labels: np.ndarray) -> np.ndarray:
    """Whether each sample's predicted class differed from its given label in any epoch after the
    first ``EARLY_LEARNING`` share, from ``[N, epochs]`` eval-pass predictions (-1: none that epoch)."""
    later = predictions[:, int(EARLY_LEARNING * predictions.shape[1]):]
    return ((later != given_labels[:, None]) & (later >= 0)).any(axis=1)


# What the estimate reads, in order of preference: runs imported with eval passes only have no
# training loss, and their eval-mode loss is read the same way.
LOSS_CHANNELS = {"train_loss": "training loss", "eval_loss": "eval-mode loss"}


@dataclass
class RunEvidence:
    """What the estimate reads from a run's losses, per sample (``read_run_evidence``).

    ``mean_loss`` (N,): the mean loss of the given label from where the model began to learn (NaN:
    never presented); ``learned_steadily`` (N,): ``loss_evidence``'s flags; ``contradicted`` (N,):
    ``late_contradictions`` from the eval passes, read by ``run_noise_rate`` only where the losses
    cannot tell (None until then); ``learned``: False when the model never began to learn
    (``never_learned``); ``refused`` (N,): ``refused_labels``' flags; ``knew_at_start``: the median
    sample's loss in the first recorded epoch was under ``KNEW_AT_START`` of chance's, log(C) (a
    fine-tuned model, or easy data learned within an epoch); ``refused_at_first_sight`` (N,): where
    it knew the data then and the channel is a training loss (``FIRST_SIGHT_CHANNELS``), whether the
    first recorded epoch's loss was above the refused labels' bar (``refused_labels``), else None;
    ``under_chance_at_end`` (N,): where it knew the data then, ``under_chance_at_end``'s flags, else None."""

    mean_loss: np.ndarray
    learned_steadily: np.ndarray
    refused: np.ndarray
    knew_at_start: bool
    contradicted: np.ndarray | None = None
    learned: bool = True
    refused_at_first_sight: np.ndarray | None = None
    under_chance_at_end: np.ndarray | None = None

    def never_believed(self, num_classes: int) -> np.ndarray:
        """Whether the model never believed each label (N,): a mean loss above log C, a geometric-mean
        probability under chance (False for a sample never presented)."""
        with np.errstate(invalid="ignore"):  # NaN: never presented
            return self.mean_loss > np.log(num_classes)


# detect's estimate and the learned detector both read the same opened run: once is enough.
_evidence_read: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def read_run_evidence(dynamics) -> RunEvidence | None:
    """A run's ``RunEvidence``: its samples' losses of the first of ``LOSS_CHANNELS`` it recorded,
    read from where it began to learn (``learning_start``), a block of samples at a time, once per
    opened run; None when the run recorded no loss. ``dynamics`` is a ``noisyctl.api.Dynamics``
    (a ``RunFile``, or what a detector is handed)."""
    try:
        return _evidence_read[dynamics]
    except (KeyError, TypeError):  # TypeError: an object that cannot be weakly referenced
        pass
    channel = next((name for name in LOSS_CHANNELS if dynamics.has_channel(name)), None)
    if channel is None:
        return None
    medians = _plateau_medians(dynamics, channel)
    start = learning_start(medians)
    knew_at_start = bool(medians[0] < KNEW_AT_START * np.log(dynamics.num_classes))  # NaN (none presented): False
    read_first_sight = knew_at_start and channel in FIRST_SIGHT_CHANNELS
    means, steady, refused, first_sight, under_chance = [], [], [], [], []
    for _, block in dynamics.iter_blocks((channel,)):
        mean, learned = loss_evidence(block[channel][:, start:], dynamics.num_classes)
        means.append(mean)
        steady.append(learned)
        refused.append(refused_labels(block[channel], dynamics.num_classes))
        if read_first_sight:  # the refused labels' bar, read on the first epoch alone
            first_sight.append(refused_labels(block[channel][:, :1], dynamics.num_classes))
        if knew_at_start:
            under_chance.append(under_chance_at_end(block[channel], dynamics.num_classes))
    evidence = RunEvidence(np.concatenate(means), np.concatenate(steady), np.concatenate(refused), knew_at_start,
                           learned=not never_learned(medians),
                           refused_at_first_sight=np.concatenate(first_sight) if read_first_sight else None,
                           under_chance_at_end=np.concatenate(under_chance) if knew_at_start else None)
    try:
        _evidence_read[dynamics] = evidence
    except TypeError:
        pass
    return evidence


def run_noise_rate(dynamics, judged: np.ndarray | None = None) -> NoiseRateEstimate | None:
    """The noise-rate estimate of a run, what ``detect`` reports: ``estimate_noise_rate`` on its
    ``read_run_evidence`` over the ``judged`` samples (a mask; others, such as AUM threshold
    samples, are left out). A run whose model never began to learn (``never_learned``) cannot
    tell at all: 0% with an interval of 0-100%. Where the losses cannot tell, the run's eval passes
    are read too, for the samples the model contradicted late (``late_contradictions``). Where they
    can and the run was trained with ``--folds``, confident learning's count on its out-of-fold
    probabilities (``held_out_noise_rate``) is the estimate when it is the smaller: the two
    readings err upward for different reasons, the losses counting clean samples the model has not
    yet fitted (a weak or briefly trained model), held-out models counting samples that look like
    another class. Where the losses can tell, the estimate is at most the share of labels the model
    never believed, where it knew the data from its first epoch or held its wrong labels to the end
    (``_at_most_never_believed``; method ``"never believed"``). Whether or not they can, it is at
    least the share it refused to the end (``refused_labels``; method ``"refused"`` where that is
    the larger) or never believed while, where it knew the data from its first epoch, it refused it
    at first sight (``RunEvidence.refused_at_first_sight``; method ``"refused at first sight"``)
    or, where the losses can tell and the run was trained with ``--folds``, held-out models refused
    it (``run_held_out_refused``; method ``"refused held out"``); where they cannot and the model
    knew the data from its first epoch, at least the share it still gave under chance at its end
    (``under_chance_at_end``; method ``"under chance at the end"``). Last, where the run was trained
    with ``--folds``, it is at least the share of held-out anchors whose label the held-out models
    contradicted and the model never believed, or confident learning's count if smaller
    (``run_held_out_anchors``; method ``"held-out anchors"``). None when the run recorded no loss."""
    evidence = read_run_evidence(dynamics)
    if evidence is None:
        return None
    keep = slice(None) if judged is None else judged
    mean, steady = evidence.mean_loss[keep], evidence.learned_steadily[keep]
    if not evidence.learned:  # nothing to read, here or in held-out models trained the same way
        seen = mean[np.isfinite(mean)]
        return NoiseRateEstimate(0.0, 0.0, 1.0, 0.9, NOT_LEARNED, "none", len(seen),
                                 float((seen > UNFITTED_LOSS).mean()) if len(seen) else 0.0)
    labels = np.asarray(dynamics.given_labels)[keep]
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
        ceiling = _at_most_never_believed(estimate, never_believed, refused, evidence.knew_at_start)
        floor = _at_least_refused_labels(ceiling, refused, never_believed, run_held_out_refused(dynamics, judged),
                                         first_sight)
    return _at_least_held_out_anchors(floor, run_held_out_anchors(dynamics, judged), held_out)


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
    """The exact binomial (Clopper-Pearson) lower bound of a share of ``count`` of the estimate's
    samples (or of ``samples``), at its confidence; 0 for a count of 0."""
    from scipy import stats

    samples = estimate.samples if samples is None else samples
    return float(stats.beta.ppf((1 - estimate.confidence) / 2, count, samples - count + 1)) if count else 0.0


def _refused_bound(refused: np.ndarray, estimate: NoiseRateEstimate) -> float:
    """The refused share's lower bound (``_binomial_low``) where it is a sample or more, else 0:
    three refused samples or fewer say no more than "no clear sign"."""
    bound = _binomial_low(int(refused.sum()), estimate)
    return bound if bound * estimate.samples >= 1 else 0.0


def _at_most_never_believed(estimate: NoiseRateEstimate, never_believed: np.ndarray, refused: np.ndarray,
                            knew_at_start: bool) -> NoiseRateEstimate:
    """The estimate lowered to the share of labels the model never believed (``never_believed``:
    mean loss above log C), or the refused share if larger, where the model knew the data from its
    first epoch (``RunEvidence.knew_at_start``) or held its wrong labels (the refused ones are
    evidence, ``_refused_bound`` above 0, and a ``HELD_NOT_MEMORISED`` share of the never-believed
    ones or more). The lower end comes down to the count's own binomial bound where it lay above;
    the upper end stays, the losses' reading not being ruled out."""
    never, held = int(never_believed.sum()), int((never_believed & refused).sum())
    held_them = never > 0 and held >= HELD_NOT_MEMORISED * never and _refused_bound(refused, estimate) > 0
    if not (knew_at_start or held_them):
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
    is clear evidence, WEAK_EVIDENCE or more); ``method`` names the count where it raises it."""
    share = int(refused.sum()) / max(1, estimate.samples)
    if share <= estimate.rate:
        return estimate
    bound = _refused_bound(refused, estimate)
    low = max(estimate.low, 0.0 if clear_bound_only and bound < WEAK_EVIDENCE else bound)
    return replace(estimate, rate=share, low=low, high=max(estimate.high, share), method=method,
                   evidence=_evidence(low, estimate.samples))


def _at_least_held_out_anchors(estimate: NoiseRateEstimate, anchors: tuple[int, int] | None,
                               counted: NoiseRateEstimate | None) -> NoiseRateEstimate:
    """The estimate raised to the share of held-out anchors whose label the held-out models
    contradicted and the model never believed (``run_held_out_anchors``: that count, anchors), or
    to confident learning's held-out count (``counted``) where that is smaller, where
    ANCHOR_MIN_COUNT or more such labels count and their share's lower bound is clear evidence
    (WEAK_EVIDENCE). The interval spans both readings: its lower end stays."""
    if anchors is None or counted is None:
        return estimate
    count, size = anchors
    if count < ANCHOR_MIN_COUNT or _binomial_low(count, estimate, size) < WEAK_EVIDENCE:
        return estimate
    rate = min(count / size, counted.rate)
    if rate <= estimate.rate:
        return estimate
    return replace(estimate, rate=rate, high=max(estimate.high, rate), method=HELD_OUT_ANCHORS)


@dataclass
class _HeldOutRead:
    """A run's out-of-fold probabilities, read once per opened run: the given labels (N,) and the
    probabilities (N, C), None when it holds none; confident learning's count (a bootstrap) per set of
    judged samples."""

    counts: dict = field(default_factory=dict)
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


def run_held_out_count(dynamics, judged: np.ndarray | None = None) -> NoiseRateEstimate | None:
    """``held_out_noise_rate`` on the ``judged`` samples' out-of-fold probabilities (``train
    --folds``), once per opened run and set of judged samples; None when the run holds none."""
    key = None if judged is None else hashlib.blake2b(np.packbits(judged).tobytes(), digest_size=16).digest()
    cache = _held_out_cache(dynamics)
    if key not in cache.counts:
        held_out = _held_out_probabilities(dynamics, judged, cache)
        cache.counts[key] = None if held_out is None else held_out_noise_rate(*held_out)
    return cache.counts[key]


def run_held_out_anchors(dynamics, judged: np.ndarray | None = None) -> tuple[int, int] | None:
    """Of the ``judged`` samples' held-out anchors (``held_out_anchors``), how many have a label the
    held-out models contradicted and the model never believed (mean loss above log C, from
    ``read_run_evidence``), and how many anchors there are. None when the run holds no out-of-fold
    probabilities or recorded no loss."""
    held_out = _held_out_probabilities(dynamics, judged, _held_out_cache(dynamics))
    evidence = read_run_evidence(dynamics)
    if held_out is None or evidence is None:
        return None
    anchors, contradicted = held_out_anchors(*held_out)
    never_believed = evidence.never_believed(dynamics.num_classes)[slice(None) if judged is None else judged]
    return int((anchors & contradicted & never_believed).sum()), int(anchors.sum())


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


def _plateau_medians(dynamics, channel: str) -> np.ndarray:
    """The median sample's loss per epoch, read until it falls below the plateau (usually within
    the first chunk of epochs): what ``learning_start`` needs."""
    import warnings

    medians: list[float] = []
    for _, block in dynamics.iter_epoch_blocks((channel,)):
        with warnings.catch_warnings():  # an epoch no sample was presented in (imported runs) is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            medians.extend(np.nanmedian(block[channel], axis=0))
        if np.nanmin(medians) < PLATEAU * medians[0]:
            break  # the plateau, if any, has ended within what was read
    return np.array(medians)


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
        shares = np.array([share(rng.choice(len(given), size, replace=True)) for _ in range(draws)])
    low, high = _interval(rate, shares, size, len(given), confidence)
    return NoiseRateEstimate(float(rate), low, high, confidence, "held-out", _evidence(low, len(given)), len(given))
