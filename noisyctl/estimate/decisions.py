"""Which samples a detector's scores call mislabeled (a two-component split, DivideMix's), and the
given -> suggested label pairs most common among them."""

from __future__ import annotations

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
