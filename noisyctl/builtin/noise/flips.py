"""Uniform (symmetric) and pair-flip (asymmetric) noise at an exact rate."""

from __future__ import annotations

import numpy as np

from noisyctl.api import NoiseContext, NoisyctlError, choose_exact


DEFAULT_RATE = 0.2


def uniform(context: NoiseContext, rate: float | None) -> np.ndarray:
    """Symmetric noise: exactly round(rate*N) samples flip, each to another class chosen uniformly."""
    rate = DEFAULT_RATE if rate is None else rate
    if context.num_classes < 2:
        raise NoisyctlError("uniform noise needs at least 2 classes")
    labels = context.labels
    noisy = labels.copy()
    chosen = choose_exact(len(labels), rate, context.rng)
    # An offset in 1..C-1 never maps a class onto itself and is uniform over the others.
    offsets = context.rng.integers(1, context.num_classes, size=len(chosen))
    noisy[chosen] = (labels[chosen] + offsets) % context.num_classes
    return noisy


def _parse_pairs(context: NoiseContext, pairs) -> dict[int, int]:
    """``{"cat": "dog", "dog": "cat"}`` or ``"cat:dog,dog:cat"`` (names or indices)."""
    if isinstance(pairs, str):
        items = []
        for part in filter(None, (p.strip() for p in pairs.split(","))):
            if ":" not in part:
                raise NoisyctlError(f"pairflip: '{part}' is not a SOURCE:TARGET pair")
            items.append(tuple(part.split(":", 1)))
    elif isinstance(pairs, dict):
        items = list(pairs.items())
    else:
        raise NoisyctlError("pairflip: pairs must be a mapping or 'SOURCE:TARGET,...'")
    mapping = {}
    for source, target in items:
        s, t = context.class_index(source), context.class_index(target)
        if s == t:
            raise NoisyctlError(f"pairflip: class '{context.class_names[s]}' cannot flip to itself")
        mapping[s] = t
    return mapping


def _within_groups(context: NoiseContext) -> dict[int, int]:
    """Each class to the next one of its superclass (CIFAR-100's asymmetric noise, Patrini et al. 2017)."""
    groups = context.dataset.class_groups if context.dataset is not None else None
    if not groups:
        raise NoisyctlError("pairflip within_groups needs a dataset with class groups (superclasses), "
                            "such as cifar100")
    return {c: group[(i + 1) % len(group)] for group in groups if len(group) > 1 for i, c in enumerate(group)}


def pairflip(context: NoiseContext, rate: float | None, pairs=None, within_groups: bool = False) -> np.ndarray:
    """Asymmetric noise: class c flips to c+1 (or to its pair); exactly round(rate*n) of the flippable samples flip."""
    rate = DEFAULT_RATE if rate is None else rate
    if context.num_classes < 2:
        raise NoisyctlError("pairflip noise needs at least 2 classes")
    if pairs is not None and within_groups:
        raise NoisyctlError("pairflip takes pairs or within_groups, not both")
    if pairs is not None:
        mapping = _parse_pairs(context, pairs)
    elif within_groups:
        mapping = _within_groups(context)
    else:
        mapping = {c: (c + 1) % context.num_classes for c in range(context.num_classes)}
    labels = context.labels
    flippable = np.flatnonzero(np.isin(labels, list(mapping)))
    chosen = flippable[choose_exact(len(flippable), rate, context.rng)]
    noisy = labels.copy()
    noisy[chosen] = np.array([mapping[c] for c in labels[chosen]], dtype=labels.dtype)
    return noisy
