"""Injecting known label noise into a dataset's labels (the ``synth`` step)."""

from __future__ import annotations

from typing import Any

import numpy as np

from noisyctl import plugins
from noisyctl.api import NoiseContext, check_rate
from noisyctl.data import load_dataset, recorded_dataset
from noisyctl.errors import NoisyctlError
from noisyctl.store import Labels


def reviewed_sample(clean: np.ndarray, noisy: np.ndarray, per_class: int, seed: int) -> np.ndarray | None:
    """``per_class`` samples per class whose label is right, as if a reviewer had confirmed them.

    Drawn among the samples the noise left alone, so the synthesized rate stays exact."""
    if per_class < 0:
        raise NoisyctlError(f"--reviewed-per-class {per_class} cannot be negative")
    if per_class == 0:
        return None
    rng = np.random.default_rng([seed, 7])
    reviewed = np.zeros(len(clean), dtype=bool)
    for c in np.unique(clean):
        candidates = np.flatnonzero((clean == c) & (noisy == clean))
        reviewed[rng.choice(candidates, size=min(per_class, len(candidates)), replace=False)] = True
    return reviewed


def synthesize(spec: dict[str, Any], noise: str, rate: float | None, seed: int,
               options: dict[str, Any] | None = None, reviewed_per_class: int = 0,
               notes: list[str] | None = None) -> Labels:
    """Labels for ``spec``'s training samples with ``noise`` applied; the truth is kept beside them.
    ``notes``, where given, receives what the loader chose (the columns it read the labels from)."""
    registration = plugins.get("noise", noise)
    if rate is not None:
        check_rate(rate)
    options = options or {}
    data = load_dataset(spec)
    if notes is not None:
        notes += data.notes
    clean = data.train.labels.copy()
    context = NoiseContext(labels=clean.copy(), class_names=list(data.class_names),
                           rng=np.random.default_rng(seed), dataset=data, annotations=data.annotations)
    noisy = registration.call(context, rate, options=options)
    noisy = np.asarray(noisy)
    if noisy.shape != clean.shape or not np.issubdtype(noisy.dtype, np.integer):
        raise NoisyctlError(f"noise '{noise}' ({registration.provenance()}) returned {noisy.shape} "
                            f"{noisy.dtype} labels, expected {clean.shape} integers")
    if ((noisy < 0) | (noisy >= data.num_classes)).any():
        raise NoisyctlError(f"noise '{noise}' ({registration.provenance()}) returned labels outside the classes")
    return Labels(
        ids=list(data.train.ids), given_labels=noisy.astype(np.int64), class_names=list(data.class_names),
        dataset=recorded_dataset(spec, data), true_labels=clean,
        noise={"name": noise, "rate": rate, "seed": seed, "options": options,
               "flipped": int((noisy != clean).sum())},
        plugins={f"dataset:{spec['name']}": plugins.get("dataset", spec["name"]).origin,
                 f"noise:{noise}": registration.origin},
        reviewed=reviewed_sample(clean, noisy, reviewed_per_class, seed),
        annotations=None if context.annotations is None else context.annotations.checked(
            len(clean), data.num_classes, f"noise '{noise}' ({registration.provenance()})"),
    )
