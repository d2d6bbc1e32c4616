"""The ``OUT.ckpt/`` folder of an unfinished run, and the run file assembled from it.

Each finished epoch is one shard (``epoch_NNNNN.npz``: that epoch's [N] vector of every channel and
its figures), then the state (``state.pt``) that says how many epochs are sealed; both are written
atomically, shard first, so a kill at any moment leaves either the previous state or the new one.
The run file is built from the shards only at the end and moved into place.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from noisyctl.errors import NoisyctlError
from noisyctl.fileio import atomic_output
from noisyctl.store import (CHUNK_EPOCHS, RUN, Labels, checkpoint_folder, create_field, field_for, new_file,
                            write_field)

# Per-epoch figures a run file keeps (epochs/<name>); train_loss, train_accuracy, learning_rate and
# seconds are required by the schema and written as NaN when an epoch did not give them.
EPOCH_FIGURES = ("train_loss", "train_accuracy", "eval_accuracy", "eval_true_accuracy", "test_accuracy",
                 "learning_rate", "seconds")
REQUIRED_FIGURES = ("train_loss", "train_accuracy", "learning_rate", "seconds")


class Checkpoints:
    """The ``OUT.ckpt/`` folder of an unfinished run: per-epoch shards and the latest state."""

    def __init__(self, out: Path) -> None:
        out = Path(out)
        self.folder = checkpoint_folder(out)
        self.state_path = self.folder / "state.pt"

    def shard(self, epoch: int) -> Path:
        return self.folder / f"epoch_{epoch:05d}.npz"

    def exists(self) -> bool:
        return self.state_path.exists()

    def load_state(self) -> dict[str, Any]:
        import torch

        try:
            return torch.load(self.state_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise NoisyctlError(f"checkpoint {self.state_path} is unreadable ({type(exc).__name__}); "
                                f"start again with --restart") from None

    def save_state(self, state: dict[str, Any]) -> None:
        import torch

        # Serialised in memory, then written with plain file I/O: torch's zip writer reports a full
        # disk as an opaque "unexpected pos", a plain write as the OSError it is.
        buffer = io.BytesIO()
        torch.save(state, buffer)
        with atomic_output(self.state_path) as tmp:
            tmp.write_bytes(buffer.getbuffer())

    def save_shard(self, epoch: int, arrays: dict[str, np.ndarray]) -> str:
        """Write epoch ``epoch``'s shard; returns its checksum, which the state keeps."""
        with atomic_output(self.shard(epoch)) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
            return _digest(tmp)

    def verify(self, epochs: int, digests: list[str | None] | None) -> None:
        """Check the shards of the ``epochs`` sealed epochs before any training resumes, so damage is
        found now, not after the remaining epochs: each must exist and match the checksum written
        with it (checkpoints from before checksums: each must load, without Python objects)."""
        for epoch in range(epochs):
            shard = self.shard(epoch)
            if not shard.is_file():
                raise NoisyctlError(f"cannot resume: checkpoint shard {shard} is missing; start again with --restart")
            if digests is not None and epoch < len(digests) and digests[epoch] is not None:
                if _digest(shard) != digests[epoch]:
                    raise NoisyctlError(f"cannot resume: checkpoint shard {shard} is damaged (it does not match "
                                        f"the checksum written with it); start again with --restart")
                continue
            try:
                with np.load(shard, allow_pickle=False) as arrays:
                    for key in arrays.files:
                        arrays[key]
            except Exception as exc:
                raise NoisyctlError(f"cannot resume: checkpoint shard {shard} is unreadable ({type(exc).__name__}); "
                                    f"start again with --restart") from None

    def array_path(self, name: str) -> Path:
        return self.folder / f"{name}.npy"

    def save_array(self, name: str, values: np.ndarray) -> None:
        with atomic_output(self.array_path(name)) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, values)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def discard_from(self, epoch: int) -> None:
        """Remove the shards of epoch ``epoch`` on, and the features array, which the last of them
        saved: what a rewind to ``epoch`` sealed epochs leaves behind."""
        for shard in self.folder.glob("epoch_*.npz"):
            if int(shard.stem.split("_")[1]) >= epoch:
                shard.unlink()
        self.array_path("features").unlink(missing_ok=True)

    def discard_if_empty(self) -> None:
        """Remove the folder when it holds nothing to resume (a run that failed before its first epoch)."""
        if self.folder.is_dir() and not any(p.name != "lock" for p in self.folder.iterdir()):
            shutil.rmtree(self.folder, ignore_errors=True)


def _digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fill(channel: str) -> Any:
    """The value of an epoch that did not record a channel: NaN, or -1 for integer channels."""
    return -1 if field_for(f"dynamics/{channel}").dtype.startswith("int") else np.nan


def assemble_run(out: Path, labels: Labels, checkpoints: Checkpoints, num_epochs: int,
                 attrs: dict[str, Any], extra: dict[str, np.ndarray] | None = None) -> None:
    """Build the run file from the epoch shards, streaming CHUNK_EPOCHS epochs at a time, and move it
    into place. A channel some epochs lack (an eval pass skipped) holds NaN (-1) there."""
    shards = []
    try:
        for e in range(num_epochs):
            try:
                shards.append(np.load(checkpoints.shard(e), allow_pickle=False))
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise NoisyctlError(f"checkpoint shard {checkpoints.shard(e)} is unreadable "
                                    f"({type(exc).__name__}); start again with --restart") from None
        n = len(labels.ids)
        channels = sorted({k for s in shards for k in s.files if not k.startswith("figure_")})
        with atomic_output(out) as tmp:
            with h5py.File(tmp, "w") as h5:
                new_file(h5, RUN, num_epochs=num_epochs, **attrs)
                labels.write(h5)
                for channel in channels:
                    dataset = create_field(h5, f"dynamics/{channel}", (n, num_epochs))
                    for start in range(0, num_epochs, CHUNK_EPOCHS):
                        stop = min(num_epochs, start + CHUNK_EPOCHS)
                        dataset[:, start:stop] = np.stack(
                            [shards[e][channel] if channel in shards[e].files else np.full(n, _fill(channel))
                             for e in range(start, stop)], axis=1)
                for name in EPOCH_FIGURES:
                    key = f"figure_{name}"
                    if name in REQUIRED_FIGURES or any(key in s.files for s in shards):
                        write_field(h5, f"epochs/{name}",
                                    [float(s[key]) if key in s.files else np.nan for s in shards])
                for path, values in (extra or {}).items():
                    write_field(h5, path, values)
    finally:
        for shard in shards:
            shard.close()
