"""Noise from a class-to-class transition matrix T[i][j] = P(noisy = j | true = i), given in YAML."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from noisyctl.api import NoiseContext, NoisyctlError, read_yaml_file

TOLERANCE = 1e-6


def _read(matrix) -> object:
    """A path to a YAML file, or the matrix itself (from a recipe)."""
    if isinstance(matrix, (str, Path)):
        return read_yaml_file(matrix, "transition matrix file")
    return matrix


def parse_matrix(context: NoiseContext, matrix) -> np.ndarray:
    """A full C x C list of rows, or a mapping {true class: {noisy class: p}} by name or index.

    In the mapping form, classes not named keep their label, and a row that leaves out its own
    class keeps the rest of the probability on it.
    """
    data = _read(matrix)
    c = context.num_classes
    names = context.class_names
    if isinstance(data, dict):
        table = np.eye(c)
        for source, row in data.items():
            i = context.class_index(source)
            if not isinstance(row, dict):
                raise NoisyctlError(f"transition matrix row '{source}' must map classes to probabilities")
            table[i] = 0.0
            for target, p in row.items():
                table[i, context.class_index(target)] = _probability(p, names[i])
            if i not in {context.class_index(t) for t in row}:
                table[i, i] = 1.0 - table[i].sum()
    elif isinstance(data, list):
        try:
            table = np.array(data, dtype=np.float64)
        except (TypeError, ValueError):
            raise NoisyctlError("transition matrix must be a list of rows of numbers") from None
        if table.shape != (c, c):
            raise NoisyctlError(f"transition matrix is {'x'.join(map(str, table.shape))} but there are {c} classes")
    else:
        raise NoisyctlError("transition matrix must be a list of rows or a mapping of rows")
    if (table < -TOLERANCE).any() or not np.isfinite(table).all():
        i = int(np.argwhere((table < -TOLERANCE) | ~np.isfinite(table))[0][0])
        raise NoisyctlError(f"transition matrix row '{names[i]}' has a negative or non-finite probability")
    sums = table.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > TOLERANCE)
    if len(bad):
        raise NoisyctlError(f"transition matrix row '{names[bad[0]]}' sums to {sums[bad[0]]:.6g}, not 1")
    return np.clip(table, 0.0, None)


def _probability(value, row: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise NoisyctlError(f"transition matrix row '{row}' has a value that is not a number: {value!r}") from None


def exact_counts(probabilities: np.ndarray, n: int) -> np.ndarray:
    """Integer counts summing to n, proportional to probabilities (largest remainder)."""
    raw = probabilities * n
    counts = np.floor(raw).astype(int)
    short = n - counts.sum()
    counts[np.argsort(-(raw - counts), kind="stable")[:short]] += 1
    return counts


def transition(context: NoiseContext, rate: float | None, matrix=None) -> np.ndarray:
    """Class-to-class noise from a transition matrix (YAML); each class's flips hit its row's shares exactly."""
    if rate is not None:
        raise NoisyctlError("transition noise takes its rates from the matrix: drop --rate")
    if matrix is None:
        raise NoisyctlError("transition noise needs its matrix: --noise-option matrix=FILE.yaml")
    table = parse_matrix(context, matrix)
    labels = context.labels
    noisy = labels.copy()
    for i in range(context.num_classes):
        members = np.flatnonzero(labels == i)
        if not len(members):
            continue
        members = context.rng.permutation(members)
        counts = exact_counts(table[i], len(members))
        noisy[members] = np.repeat(np.arange(context.num_classes), counts)
    return noisy
