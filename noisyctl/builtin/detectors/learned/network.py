"""The sequence classifier, its weights files and its predictions.

Weights are safetensors files: tensors plus a metadata header (kind, feature names, sizes, what the
detector was trained on), never pickled code. A file may hold several members: networks trained
with different seeds, whose probabilities are averaged (a single network's scores moved by
0.02-0.05 mAP between seeds; the average does not).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from noisyctl.api import NoisyctlError, atomic_output

from .features import FEATURE_SETS

# A weights file declares its sizes in its metadata: checked before any network is allocated.
MAX_MEMBERS = 64
MAX_HIDDEN = 4096
MAX_LAYERS = 8


def network(inputs: int, hidden: int = 64, layers: int = 2):
    """Jia et al.'s classifier: a stacked LSTM with orthogonal init and a linear layer on the last step."""
    import torch
    from torch import nn

    class SequenceClassifier(nn.Module):
        """A stacked LSTM over the dynamics; two logits (clean, mislabeled) from the last step."""

        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(inputs, hidden, num_layers=layers, batch_first=True)
            self.head = nn.Linear(hidden, 2)
            for name, weight in self.lstm.named_parameters():
                if name.startswith("weight"):
                    nn.init.orthogonal_(weight)
                else:
                    nn.init.zeros_(weight)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            output, _ = self.lstm(x)
            return self.head(output[:, -1])

    return SequenceClassifier()


def save_weights(path: Path, members: list, meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors = {f"member{i}.{k}": v.detach().contiguous().cpu()
               for i, member in enumerate(members) for k, v in member.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in {**meta, "members": len(members)}.items()})


def load_weights(path: Path, kind: str | None = None):
    """The member networks and the metadata of a safetensors file of a ``kind`` detector (any kind
    when None), refusing anything else, and weights that read other features than this noisyctl
    computes for their kind."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise NoisyctlError(f"detector weights {path} do not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:
        raise NoisyctlError(f"{path} is not a safetensors file of detector weights ({type(exc).__name__})") from None
    if meta.get("kind") not in FEATURE_SETS:
        raise NoisyctlError(f"{path} holds no noisyctl detector (its metadata names no known kind)")
    if kind is not None and meta["kind"] != kind:
        raise NoisyctlError(f"{path} holds a '{meta['kind']}' detector, not '{kind}'")
    if meta.get("features") != FEATURE_SETS[meta["kind"]].names:
        raise NoisyctlError(f"{path} reads other features than this noisyctl computes for a {meta['kind']} "
                            f"detector; train a new one (noisyctl train-detector)")
    sizes = {"members": (meta.get("members", 0), MAX_MEMBERS), "hidden": (meta.get("hidden", 64), MAX_HIDDEN),
             "layers": (meta.get("layers", 2), MAX_LAYERS)}
    for name, (value, most) in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise NoisyctlError(f"{path}: its metadata declares {name} {value!r:.20}; a detector has 1 to {most}")
    members = []
    for i in range(meta["members"]):
        state = {k[len(f"member{i}."):]: v for k, v in tensors.items() if k.startswith(f"member{i}.")}
        member = network(len(meta["features"]), meta.get("hidden", 64), meta.get("layers", 2))
        try:
            member.load_state_dict(state)
        except RuntimeError:
            raise NoisyctlError(f"{path}: its tensors do not fit a {meta['kind']} detector") from None
        members.append(member.eval())
    if not members:
        raise NoisyctlError(f"{path}: its metadata counts no member networks")
    return members, meta


def predict(members: list, inputs: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """The mean over the member networks of the probability that each sample is mislabeled."""
    import torch

    out = np.empty(len(inputs), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(inputs[start:start + batch_size], dtype=np.float32))
            probability = sum(torch.softmax(member(batch), dim=1)[:, 1] for member in members) / len(members)
            out[start:start + batch_size] = probability.double().numpy()
    return out
