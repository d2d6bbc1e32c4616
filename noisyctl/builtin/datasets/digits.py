"""scikit-learn's bundled handwritten digits: the embedded default, no download."""

from __future__ import annotations

import numpy as np

from noisyctl.api import DatasetData, TensorSampleSet, check_share
from .common import reads_no_root


def load_digits(root=None, test_fraction: float | str = 0.0) -> DatasetData:
    """scikit-learn's bundled handwritten digits (1,797 8x8 images, 10 classes); no download."""
    import torch
    from sklearn.datasets import load_digits as sklearn_digits

    reads_no_root(root, "digits")
    test_fraction = float(test_fraction)
    check_share(test_fraction, "digits: test_fraction")
    digits = sklearn_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # [N, 1, 8, 8] in [0, 1]
    labels = digits.target.astype(np.int64)
    ids = np.array([f"digits/{i:04d}" for i in range(len(labels))])
    # A fixed split (independent of any run seed) so every run sees the same test subset.
    is_test = np.zeros(len(labels), dtype=bool)
    if test_fraction > 0:
        order = np.random.default_rng(1797).permutation(len(labels))
        is_test[order[: int(round(test_fraction * len(labels)))]] = True

    def subset(mask):
        return TensorSampleSet(list(ids[mask]), labels[mask], images[torch.from_numpy(mask)])

    return DatasetData(train=subset(~is_test), test=subset(is_test) if is_test.any() else None,
                       class_names=[str(c) for c in digits.target_names], input_shape=(1, 8, 8))
