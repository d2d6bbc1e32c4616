"""Injecting known label noise into a dataset's labels (the ``synth`` step)."""

from __future__ import annotations

from typing import Any

import numpy as np

from noisyctl import plugins
from noisyctl.api import NoiseContext, check_rate
from noisyctl.data import load_dataset
from noisyctl.errors import NoisyctlError
from noisyctl.store import Labels


def synthesize(spec: dict[str, Any], noise: str, rate: float | None, seed: int,
               options: dict[str, Any] | None = None) -> Labels:
    """Labels for ``spec``'s training samples with ``noise`` applied; the truth is kept beside them."""
    registration = plugins.get("noise", noise)
    if rate is not None:
        check_rate(rate)
    options = options or {}
    data = load_dataset(spec)
    clean = data.train.labels.copy()
    context = NoiseContext(labels=clean.copy(), class_names=list(data.class_names),
                           rng=np.random.default_rng(seed), dataset=data)
    try:
        noisy = registration.obj(context, rate, **options)
    except TypeError as exc:  # an option the generator does not take
        raise NoisyctlError(f"noise '{noise}': {exc}") from None
    noisy = np.asarray(noisy)
    if noisy.shape != clean.shape or not np.issubdtype(noisy.dtype, np.integer):
        raise NoisyctlError(f"noise '{noise}' ({registration.provenance()}) returned {noisy.shape} "
                            f"{noisy.dtype} labels, expected {clean.shape} integers")
    if ((noisy < 0) | (noisy >= data.num_classes)).any():
        raise NoisyctlError(f"noise '{noise}' ({registration.provenance()}) returned labels outside the classes")
    return Labels(
        ids=list(data.train.ids), given_labels=noisy.astype(np.int64), class_names=list(data.class_names),
        dataset=spec, true_labels=clean,
        noise={"name": noise, "rate": rate, "seed": seed, "options": options,
               "flipped": int((noisy != clean).sum())},
        plugins={f"dataset:{spec['name']}": plugins.get("dataset", spec["name"]).origin,
                 f"noise:{noise}": registration.origin},
    )
