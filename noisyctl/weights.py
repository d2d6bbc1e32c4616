"""Pretrained weights from a local file, loaded without unpickling code (any model plugin gets this)."""

from __future__ import annotations

from pathlib import Path

from noisyctl.errors import NoisyctlError


def load_local_weights(model, path: Path, drop_mismatched: bool = True) -> None:
    """Load a state dict from a local .safetensors or torch file without unpickling code.

    Tensors whose shape differs (a classifier for another class count) are left as initialised.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise NoisyctlError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
    except Exception as exc:
        raise NoisyctlError(f"cannot read weights from {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict):
        raise NoisyctlError(f"{path} does not hold a state dict")
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and (not drop_mismatched or v.shape == own[k].shape)}
    if not usable:
        raise NoisyctlError(f"no tensor in {path} matches the model's parameters")
    model.load_state_dict(usable, strict=False)
