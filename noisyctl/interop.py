"""Interop with the tools people already use.

- OpenVINO Training Extensions (OTX) exports the loss dynamics it tracks for noisy-label detection
  as a Datumaro-format dataset: ``annotations/<subset>.json`` whose label annotations carry the
  attributes ``iters`` (the training iterations at which the sample was presented) and
  ``loss_dynamics`` (its loss at each). ``import_otx`` turns that into a run file, so every
  detector that needs only the training loss runs on it (loss, ema-loss, gmm-loss, forgetting-free
  ones); detectors that need margins or eval passes say what the file lacks.
- cleanlab takes ``labels`` and ``pred_probs`` arrays; ``export_cleanlab`` writes them (out-of-fold
  probabilities when the run has them) to an ``.npz``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from noisyctl.errors import NoisyctlError
from noisyctl.fileio import atomic_output
from noisyctl.store import RUN, Labels, RunFile, create_field, new_file, write_field


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NoisyctlError(f"{path} is not a readable Datumaro annotation file ({type(exc).__name__})") from None


def read_otx_export(folder: Path) -> tuple[Labels, np.ndarray, np.ndarray, dict[str, Any]]:
    """Samples, losses [N x E] and iterations [N x E] from an OTX loss-dynamics export."""
    folder = Path(folder)
    files = sorted((folder / "annotations").glob("*.json")) if folder.is_dir() else []
    if folder.is_file() and folder.suffix == ".json":
        files = [folder]
    if not files:
        raise NoisyctlError(f"{folder} holds no Datumaro annotations (annotations/*.json)")
    ids, labels, losses, iters = [], [], [], []
    class_names: list[str] | None = None
    for path in files:
        document = _read_json(path)
        try:
            names = [c["name"] for c in document["categories"]["label"]["labels"]]
        except (KeyError, TypeError):
            raise NoisyctlError(f"{path} has no label categories (categories.label.labels)") from None
        if class_names is None:
            class_names = names
        elif names != class_names:
            raise NoisyctlError(f"{path} names other classes than {files[0]}")
        subset = path.stem
        for item in document.get("items", []):
            for annotation in item.get("annotations", []):
                attributes = annotation.get("attributes") or {}
                if annotation.get("type") != "label" or "loss_dynamics" not in attributes:
                    continue
                label = annotation.get("label_id")
                if not isinstance(label, int) or not 0 <= label < len(names):
                    raise NoisyctlError(f"{path}: item '{item.get('id')}' has label {label!r}, not one of "
                                        f"0..{len(names) - 1}")
                series = np.asarray(attributes["loss_dynamics"], dtype=np.float64)
                steps = np.asarray(attributes.get("iters", np.arange(len(series))), dtype=np.int64)
                if series.ndim != 1 or steps.shape != series.shape:
                    raise NoisyctlError(f"{path}: item '{item.get('id')}' has {steps.size} iters but "
                                        f"{series.size} loss values")
                order = np.argsort(steps, kind="stable")
                sample_id = item.get("id")
                ids.append(sample_id if len(files) == 1 else f"{subset}/{sample_id}")
                labels.append(label)
                losses.append(series[order])
                iters.append(steps[order])
    if not ids:
        raise NoisyctlError(f"{folder}: no label annotation carries loss_dynamics (export them from OTX "
                            f"training with noisy-label detection on)")
    if len(set(ids)) != len(ids):
        raise NoisyctlError(f"{folder}: two annotations share the sample id '{next(i for i in ids if ids.count(i) > 1)}'")
    lengths = np.array([len(s) for s in losses])
    epochs = int(lengths.min())
    if epochs == 0:
        raise NoisyctlError(f"{folder}: sample '{ids[int(lengths.argmin())]}' has no loss values")
    # A sample's k-th presentation is its epoch k; samples presented more often keep their first ones.
    loss = np.stack([s[:epochs] for s in losses]).astype(np.float32)
    steps = np.stack([s[:epochs] for s in iters]).astype(np.int32)
    sample_labels = Labels(ids=ids, given_labels=np.array(labels, dtype=np.int64), class_names=class_names or [],
                           dataset={"name": "otx-export", "root": str(folder), "options": {}},
                           plugins={})
    source = {"imported_from": "otx", "source": str(folder), "presentations_dropped": int((lengths - epochs).sum())}
    return sample_labels, loss, steps, source


def import_otx(folder: Path, out: Path) -> dict[str, Any]:
    """Write a run file from an OTX loss-dynamics export."""
    labels, loss, steps, source = read_otx_export(folder)
    n, epochs = loss.shape
    with atomic_output(out) as tmp, h5py.File(tmp, "w") as h5:
        new_file(h5, RUN, dataset=labels.dataset, plugins={}, num_epochs=epochs, training=source)
        labels.write(h5)
        for name, values in (("train_loss", loss), ("train_step", steps)):
            create_field(h5, f"dynamics/{name}", (n, epochs))[...] = values
        unknown = np.full(epochs, np.nan, dtype=np.float32)  # OTX does not export these
        write_field(h5, "epochs/train_loss", loss.mean(axis=0))
        for name in ("train_accuracy", "learning_rate", "seconds"):
            write_field(h5, f"epochs/{name}", unknown)
    return {"out": str(out), "samples": n, "epochs": epochs, "classes": len(labels.class_names), **source}


def export_cleanlab(run: RunFile, out: Path) -> dict[str, Any]:
    """``labels``, ``pred_probs`` (as cleanlab's find_label_issues takes them) and ``ids`` in an .npz."""
    source = "out_of_fold" if run.probabilities("out_of_fold") is not None else "late_mean"
    probs = run.probabilities(source)
    if probs is None:
        raise NoisyctlError(f"{run.path} has no class probabilities to export (train --record-probs, or "
                            f"--folds K for the out-of-sample ones cleanlab wants)")
    probs = np.clip(probs.astype(np.float64), 1e-12, None)
    probs /= probs.sum(axis=1, keepdims=True)
    with atomic_output(out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, labels=run.given_labels.astype(np.int64), pred_probs=probs.astype(np.float32),
                     ids=np.array(run.labels.ids), class_names=np.array(run.labels.class_names),
                     pred_probs_source=np.array(source))
    return {"out": str(out), "pred_probs": source, "in_sample": source != "out_of_fold"}


def export_suspects(path: Path, suspects: list[dict[str, Any]]) -> dict[str, Any]:
    """The ranked suspects as CSV or JSON (by the file's extension)."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise NoisyctlError(f"--suspects {path}: give a .csv or .json file")
    with atomic_output(path) as tmp:
        if path.suffix.lower() == ".json":
            tmp.write_text(json.dumps(suspects, indent=2), encoding="utf-8")
        else:
            columns = ["rank", "id", "given", "true", "suggested", "score", "is_noisy"]
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(suspects)
    return {"out": str(path), "rows": len(suspects)}
