"""The noise rate a person's review measures (``correct --audit N``, then ``import-review``).

Noise that follows what the samples look like, an annotator's systematic confusions, is learned by
every model as if it were the task, so no reading of a run counts it (digits relabeled 8% by a weak
model's confusions: 1.0%, "no clear sign", and held-out models 2.2%). A person counts it. The
review holds two strata: the flagged samples, most of them wrong, and a random sample of the rest,
which stands for every sample no detector flagged; each stratum's share of wrong labels, weighted by
the samples it stands for, is the rate. This module is apart from the run's layers: it reads a
review, not a run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AUDIT_DRAWS = 20_000


@dataclass(frozen=True)
class AuditStratum:
    """Samples a review stands for: ``population`` of them, ``reviewed`` checked by a person, of
    which ``wrong`` had a wrong label (set to another class, or removed)."""

    name: str
    population: int
    reviewed: int
    wrong: int


@dataclass(frozen=True)
class AuditEstimate:
    """The share of wrong labels a review measured, and its ``confidence`` interval [low, high]."""

    rate: float
    low: float
    high: float
    confidence: float
    strata: tuple[AuditStratum, ...]


def audited_noise_rate(strata: list[AuditStratum], confidence: float = 0.9, draws: int = AUDIT_DRAWS,
                       seed: int = 0) -> AuditEstimate:
    """The noise rate of the samples the ``strata`` stand for, from a person's review of some of them.

    Each stratum's share of wrong labels among its reviewed samples, weighted by its population
    (a stratified estimate). The interval draws each share from its Jeffreys posterior,
    Beta(wrong + 1/2, right + 1/2), which holds at 0 of 100 as at 50 of 100, and takes the
    ``confidence`` quantiles of the weighted sum; a stratum reviewed whole is known exactly.

    Parameters
    ----------
    strata : list of AuditStratum
        Every stratum with a population has one reviewed sample or more.
    confidence : float
        The interval's coverage (0.9: the 5th to the 95th percentile).
    draws, seed
        Posterior draws, and their seed (the interval is the same for the same review).
    """
    population = sum(s.population for s in strata)
    if population == 0:
        return AuditEstimate(0.0, 0.0, 0.0, confidence, tuple(strata))
    rng = np.random.default_rng(seed)
    rate, sampled = 0.0, np.zeros(draws)
    for stratum in strata:
        if stratum.population == 0:
            continue
        weight = stratum.population / population
        rate += weight * stratum.wrong / stratum.reviewed
        if stratum.reviewed >= stratum.population:
            sampled += weight * stratum.wrong / stratum.reviewed
        else:
            sampled += weight * rng.beta(stratum.wrong + 0.5, stratum.reviewed - stratum.wrong + 0.5, draws)
    tail = (1 - confidence) / 2
    low, high = np.quantile(sampled, [tail, 1 - tail])
    return AuditEstimate(float(rate), float(min(low, rate)), float(max(high, rate)), confidence, tuple(strata))
