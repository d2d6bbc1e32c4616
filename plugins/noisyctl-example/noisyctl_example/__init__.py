"""An example noisyctl plugin: one dataset, one detector and one noise type.

A plugin is a module with ``@hookimpl`` functions named after the hooks in
``noisyctl.hookspecs``; each gets a ``register`` callback. Use only
``noisyctl.api``: it is the stable surface.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from noisyctl.api import (BlockDetector, DatasetData, NoiseContext, NoisyctlError, SampleSet, atomic_folder,
                          check_rate, hookimpl)


class NpyFiles(SampleSet):
    """Samples that are .npy files under a root, read one at a time: a worker process opens each file
    itself, so the set holds paths, not arrays."""

    def __init__(self, root: Path, ids: list[str], labels: list[int]) -> None:
        super().__init__(ids, np.array(labels))
        self.root = root

    def load(self, index: int):
        import torch

        return torch.from_numpy(np.load(self.root / self.ids[index], allow_pickle=False).astype(np.float32))


def load_npy_folder(root=None) -> DatasetData:
    """A folder per class of .npy files, one sample each (embeddings, spectrograms), all of one shape.
    Its relabeled copy (``export --data-copy NEW_FOLDER``) is the same layout with each file in the
    folder of its class as it now stands."""
    if root is None:
        raise NoisyctlError("npy-folder: give --data-root FOLDER, a folder per class of .npy files")
    root = Path(root)
    classes = sorted(folder.name for folder in root.iterdir() if folder.is_dir()) if root.is_dir() else []
    ids = [f"{name}/{file.name}" for name in classes for file in sorted((root / name).glob("*.npy"))]
    if not ids:
        raise NoisyctlError(f"npy-folder: no CLASS/*.npy files under {root}")
    labels = [classes.index(sample_id.split("/")[0]) for sample_id in ids]
    shape = np.load(root / ids[0], mmap_mode="r", allow_pickle=False).shape

    def relabeled_copy(new_labels: dict[str, str | None], out: Path) -> int:
        if Path(out).resolve().is_relative_to(root.resolve()):
            raise NoisyctlError(f"{out} is inside the dataset {root}; write the copy elsewhere")
        written = 0
        with atomic_folder(out) as building:  # the copy appears whole or not at all
            for sample_id in ids:
                name = new_labels.get(sample_id, "")  # "": as it was; None: left out
                if name is None:
                    continue
                old_class, file_name = sample_id.split("/")
                target = building / (name or old_class) / file_name
                target.parent.mkdir(exist_ok=True)
                shutil.copy2(root / sample_id, target)
                written += 1
        return written

    return DatasetData(train=NpyFiles(root, ids, labels), class_names=classes, input_shape=tuple(shape),
                       relabeled_copy=relabeled_copy)


class DisagreementDetector(BlockDetector):
    """Share of epochs whose eval-mode prediction disagrees with the given label; flags over one half."""

    reads = ("eval_pred",)

    def __init__(self, threshold: float | str = 0.5) -> None:
        self.threshold = float(threshold)

    def score(self, dynamics):
        result = super().score(dynamics)  # streams blocks of samples through score_block
        result.flagged = result.scores > self.threshold
        result.info["threshold"] = self.threshold
        return result

    def score_block(self, block):
        return (block["eval_pred"] != block["given_label"][:, None]).mean(axis=1)


def collapse(context: NoiseContext, rate: float | None, target: str | int = 0) -> np.ndarray:
    """Exactly round(rate*N) samples of the other classes are relabeled to one target class."""
    rate = check_rate(0.1 if rate is None else rate)  # None: the user gave no --rate
    target_class = context.class_index(target)
    labels = context.labels
    others = np.flatnonzero(labels != target_class)
    count = int(round(rate * len(labels)))
    if count > len(others):
        raise NoisyctlError(f"collapse: only {len(others)} samples are not of class '{target}'")
    chosen = context.rng.choice(others, size=count, replace=False)
    noisy = labels.copy()
    noisy[chosen] = target_class
    return noisy


@hookimpl
def register_datasets(register):
    register("npy-folder", load_npy_folder)


@hookimpl
def register_detectors(register):
    register("disagreement", DisagreementDetector)


@hookimpl
def register_noise(register):
    register("collapse", collapse)
