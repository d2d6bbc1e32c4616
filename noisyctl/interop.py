"""Interop with the tools people already use.

- OpenVINO Training Extensions (OTX) exports the loss dynamics it tracks for noisy-label detection
  as a Datumaro-format dataset: ``annotations/<subset>.json`` whose label annotations carry the
  attributes ``iters`` (the training iterations at which the sample was presented) and
  ``loss_dynamics`` (its loss at each). ``import_otx`` turns that into a run file, so every
  detector that needs only the training loss runs on it (loss, ema-loss, gmm-loss, forgetting-free
  ones); detectors that need margins or eval passes say what the file lacks.
- ``import_dynamics`` reads what other recorders wrote: the "Learning from Training Dynamics"
  repository's ``training_dynamics.npz``, the ``aum`` package's ``full_aum_records.csv``, and plain
  per-epoch loss, logit or probability arrays.
- cleanlab takes ``labels`` and ``pred_probs`` arrays; ``export_cleanlab`` writes them (out-of-fold
  probabilities when the run has them) to an ``.npz``.
- A training pipeline outside noisyctl takes labels as a table it joins on the sample id;
  ``export_labels`` writes a labels or run file's labels, as prune, correct and a review left them,
  to a CSV.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from noisyctl import plugins
from noisyctl.data import load_dataset, sample_texts
from noisyctl.detection import annotators_table, detector_decision, suggested_labels, suspect_texts, top_suspects
from noisyctl.errors import NoisyctlError
from noisyctl.fileio import atomic_output, csv_cell
from noisyctl.pruning import stored_detector
from noisyctl.review import sample_path
from noisyctl.store import (RUN, Labels, RunFile, create_field, get_attr, new_file, open_checked, read_labels,
                            write_field)


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NoisyctlError(f"{path} is not a readable Datumaro annotation file ({type(exc).__name__})") from None


def read_otx_export(folder: Path) -> tuple[Labels, np.ndarray, np.ndarray, dict[str, Any]]:
    """Samples, losses [N x E] and iterations [N x E] from an OTX loss-dynamics export."""
    folder = Path(folder)
    if not folder.exists():
        raise NoisyctlError(f"{folder} does not exist (give the folder OTX exported to, or one of its .json files)")
    files = sorted((folder / "annotations").glob("*.json")) if folder.is_dir() else []
    if folder.is_file() and folder.suffix == ".json":
        files = [folder]
    if not files:
        raise NoisyctlError(f"{folder} holds no Datumaro annotations (annotations/*.json)")
    ids, labels, losses, iters = [], [], [], []
    class_names: list[str] | None = None
    other_kinds: set[str] = set()  # annotation types that carry dynamics but are not classification
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
        items = document.get("items", [])
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise NoisyctlError(f"{path}: 'items' should be a list of objects")
        for item in items:
            sample_id = item.get("id")
            if not isinstance(sample_id, (str, int)) or isinstance(sample_id, bool):
                raise NoisyctlError(f"{path}: an item's id is {sample_id!r:.40}, not a string")
            sample_id = str(sample_id)
            annotations = item.get("annotations", [])
            if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
                raise NoisyctlError(f"{path}: item '{sample_id}' has annotations that are not a list of objects")
            for annotation in annotations:
                attributes = annotation.get("attributes") or {}
                if not isinstance(attributes, dict) or "loss_dynamics" not in attributes:
                    continue
                if annotation.get("type") != "label":
                    other_kinds.add(str(annotation.get("type")))
                    continue
                label = annotation.get("label_id")
                if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(names):
                    raise NoisyctlError(f"{path}: item '{sample_id}' has label {label!r}, not one of "
                                        f"0..{len(names) - 1}")
                try:
                    series = np.asarray(attributes["loss_dynamics"], dtype=np.float64)
                    steps = np.asarray(attributes.get("iters", np.arange(series.size)), dtype=np.int64)
                except (TypeError, ValueError):
                    raise NoisyctlError(f"{path}: item '{sample_id}': loss_dynamics and iters should be lists of "
                                        f"numbers") from None
                if series.ndim != 1 or steps.shape != series.shape:
                    raise NoisyctlError(f"{path}: item '{sample_id}' has {steps.size} iters but "
                                        f"{series.size} loss values")
                order = np.argsort(steps, kind="stable")
                ids.append(sample_id if len(files) == 1 else f"{subset}/{sample_id}")
                labels.append(label)
                losses.append(series[order])
                iters.append(steps[order])
    if not ids and other_kinds:
        raise NoisyctlError(f"{folder} is an OTX export of {', '.join(sorted(other_kinds))} annotations (detection "
                            f"or segmentation); noisyctl reads classification exports, whose label annotations "
                            f"carry loss_dynamics")
    if not ids:
        raise NoisyctlError(f"{folder}: no label annotation carries loss_dynamics (export them from OTX "
                            f"training with noisy-label detection on)")
    if len(set(ids)) != len(ids):
        raise NoisyctlError(f"{folder}: two annotations share the sample id '{next(i for i in ids if ids.count(i) > 1)}'")
    lengths = np.array([len(s) for s in losses])
    if lengths.min() == 0:
        raise NoisyctlError(f"{folder}: sample '{ids[int(lengths.argmin())]}' has no loss values")
    # A sample's k-th presentation is its epoch k. Every presentation is kept, as Datumaro's own
    # analyzer keeps them: a sample presented fewer times is padded with NaN (step -1), which the
    # detectors read as "not presented".
    epochs = int(lengths.max())
    loss = np.full((len(ids), epochs), np.nan, dtype=np.float32)
    steps = np.full((len(ids), epochs), -1, dtype=np.int32)
    for row, (series, order) in enumerate(zip(losses, iters)):
        loss[row, :len(series)] = series
        steps[row, :len(order)] = order
    sample_labels = Labels(ids=ids, given_labels=np.array(labels, dtype=np.int64), class_names=class_names or [],
                           dataset={"name": "otx-export", "root": str(folder), "options": {}},
                           plugins={})
    source = {"imported_from": "otx", "source": str(folder), "presentations_padded": int((epochs - lengths).sum())}
    return sample_labels, loss, steps, source


def import_otx(folder: Path, out: Path) -> dict[str, Any]:
    """Write a run file from an OTX loss-dynamics export."""
    labels, loss, steps, source = read_otx_export(folder)
    return write_imported_run(out, labels, {"train_loss": loss, "train_step": steps}, source)


DYNAMICS_FORMATS = ("auto", "jia", "aum", "arrays")
ARRAY_KINDS = ("losses", "logits", "probs")
RECORDED_IN = ("train", "eval")


def import_dynamics(source: Path, out: Path, *, format: str = "auto", labels: Path | None = None,
                    true_labels: Path | None = None, class_names: list[str] | None = None,
                    recorded_in: str = "train") -> dict[str, Any]:
    """Write a run file from dynamics another tool recorded (``format``: see DYNAMICS_FORMATS)."""
    source = Path(source)
    if format not in DYNAMICS_FORMATS:
        raise NoisyctlError(f"unknown format '{format}'; available: {', '.join(DYNAMICS_FORMATS)}")
    if recorded_in not in RECORDED_IN:
        raise NoisyctlError(f"--recorded-in is train or eval, not '{recorded_in}'")
    if not source.is_file():
        raise NoisyctlError(f"{source} is not a file")
    if format == "auto":
        format = _sniff(source)
    if format == "jia":
        sample_labels, channels, arrays, info = read_jia_dynamics(source)
    elif format == "aum":
        sample_labels, channels, arrays, info = read_aum_records(source)
    else:
        sample_labels, channels, arrays, info = read_dynamics_arrays(source, labels, recorded_in)
    if true_labels is not None:
        sample_labels.true_labels = _label_file(true_labels, len(sample_labels.ids), "--true-labels")
    if class_names is not None:
        if len(class_names) < sample_labels.num_classes:
            raise NoisyctlError(f"{len(class_names)} class names for {sample_labels.num_classes} classes in {source}")
        sample_labels.class_names = list(class_names)
    truth = sample_labels.true_labels
    if truth is not None and (truth.min() < 0 or truth.max() >= sample_labels.num_classes):
        raise NoisyctlError(f"true labels outside the {sample_labels.num_classes} classes")
    return write_imported_run(out, sample_labels, channels, {"imported_from": format, "source": str(source), **info},
                              arrays)


def _sniff(source: Path) -> str:
    """By the file's name and, for an .npz, the names of its arrays (read from its index only)."""
    if source.suffix.lower() == ".csv":
        return "aum"
    if source.suffix.lower() != ".npz":
        return "arrays"
    try:
        with np.load(source, allow_pickle=False) as loaded:
            names = set(loaded.files)
    except (OSError, ValueError, EOFError):
        return "arrays"  # unreadable: the arrays reader says so in its own words
    return "jia" if {"td", "labels"} <= names else "arrays"


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz (by name) or an .npy (under ""), never unpickling objects."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not hasattr(loaded, "files"):
            return {"": loaded}
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except (OSError, ValueError, EOFError, KeyError) as exc:
        raise NoisyctlError(f"{path} is not a readable .npy/.npz file ({type(exc).__name__})") from None


def _label_file(path: Path, n: int, what: str) -> np.ndarray:
    """Labels from a .npy (or an .npz's 'labels'), one integer per sample."""
    arrays = _read_arrays(Path(path))
    if "" not in arrays and "labels" not in arrays:
        raise NoisyctlError(f"{what} {path}: an .npz of labels needs a 'labels' array")
    return _labels(arrays.get("labels", arrays.get("")), n, f"{what} {path}")


def _labels(values: np.ndarray, n: int, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (n,) or not np.issubdtype(values.dtype, np.integer):
        raise NoisyctlError(f"{what}: expected {n} integer labels, found {values.dtype} of shape {values.shape}")
    if values.min(initial=0) < 0:
        raise NoisyctlError(f"{what}: labels cannot be negative")
    return values.astype(np.int64)


def _sample_labels(given: np.ndarray, classes: int, source: Path, ids: list[str] | None = None) -> Labels:
    return Labels(ids=ids or [str(i) for i in range(len(given))], given_labels=given,
                  class_names=[str(c) for c in range(classes)],
                  dataset={"name": "imported", "root": str(source), "options": {}}, plugins={})


def _from_probabilities(probs: np.ndarray, given: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    """Loss, margin (and with eval, probability and prediction) of the given label from class
    probabilities [N x E x C]: log-probabilities are logits up to a per-row shift, so the margin
    log p_y - max_{k!=y} log p_k is the logit margin exactly."""
    tiny = np.finfo(np.float32).tiny
    log_p = np.log(np.clip(probs.astype(np.float32), tiny, None))
    rows = np.arange(len(given))
    assigned = log_p[rows, :, given]  # [N x E]
    others = log_p.copy()
    others[rows, :, given] = -np.inf
    margin = assigned - others.max(axis=2)
    channels = {f"{prefix}_loss": -assigned, f"{prefix}_margin": margin}
    if prefix == "eval":
        channels.update(eval_prob=np.exp(assigned), eval_pred=probs.argmax(axis=2).astype(np.int32))
    return channels


def _steps(n: int, epochs: int) -> np.ndarray:
    """Presentation order unknown: each epoch's presentations share one step, the epoch's number."""
    return np.broadcast_to(np.arange(epochs, dtype=np.int32), (n, epochs)).copy()


def _late_mean(probs: np.ndarray) -> np.ndarray:
    epochs = probs.shape[1]
    late = probs[:, epochs - max(1, epochs // 4):].astype(np.float64).mean(axis=1)
    return (late / np.clip(late.sum(axis=1, keepdims=True), 1e-12, None)).astype(np.float32)


def read_jia_dynamics(path: Path):
    """The "Learning from Training Dynamics" repository's ``training_dynamics.npz``: ``td`` [N x E x C]
    float16 eval-mode probabilities after each epoch, column 0 that of the assigned label and the rest
    the other classes, in the order ``labels`` [N x C] gives (its column 0 is the assigned label).
    ``metadata.pth`` beside it (a torch.save of tensors, read with weights_only) adds the truth."""
    archive = _read_arrays(path)
    if not {"td", "labels"} <= set(archive):
        raise NoisyctlError(f"{path} is not a training_dynamics.npz: it needs 'td' and 'labels' arrays")
    td, order = archive["td"], archive["labels"]
    if td.ndim != 3 or order.ndim != 2 or order.shape != (td.shape[0], td.shape[2]) or td.shape[1] < 1:
        raise NoisyctlError(f"{path}: td {td.shape} and labels {order.shape} are not [N, E, C] and [N, C]")
    if not np.issubdtype(order.dtype, np.integer) or not np.issubdtype(td.dtype, np.floating):
        raise NoisyctlError(f"{path}: td must hold probabilities and labels class indices")
    n, epochs, classes = td.shape
    order = order.astype(np.int64)
    if not (np.sort(order, axis=1) == np.arange(classes)).all():
        raise NoisyctlError(f"{path}: each row of 'labels' must list every class once (column 0 the assigned one)")
    if not np.isfinite(td).all() or td.min() < 0 or td.max() > 1.001:
        raise NoisyctlError(f"{path}: 'td' must hold probabilities in [0, 1]")
    probs = np.empty(td.shape, dtype=np.float32)  # back into class order
    np.put_along_axis(probs, np.broadcast_to(order[:, None, :], td.shape), td.astype(np.float32), axis=2)
    given = order[:, 0]
    labels = _sample_labels(given, classes, path)
    labels.true_labels = _jia_truth(path.with_name("metadata.pth"), given)
    channels = {**_from_probabilities(probs, given, "eval")}
    return labels, channels, {"probs/late_mean": _late_mean(probs)}, {"epochs_recorded": epochs}


def _jia_truth(path: Path, given: np.ndarray) -> np.ndarray | None:
    """``true_targets`` from the repository's metadata.pth, when it is there and matches the labels."""
    if not path.is_file():
        return None
    import torch

    try:
        metadata = torch.load(path, map_location="cpu", weights_only=True)
        truth = np.asarray(metadata["true_targets"]).astype(np.int64)
        assigned = np.asarray(metadata["assigned_targets"]).astype(np.int64)
    except Exception as exc:
        raise NoisyctlError(f"{path} cannot be read safely ({type(exc).__name__}); move it away to import "
                            f"without the true labels") from None
    if truth.shape != given.shape or not np.array_equal(assigned, given):
        raise NoisyctlError(f"{path} describes other samples than training_dynamics.npz beside it")
    return truth


AUM_COLUMNS = ("sample_id", "num_measurements", "target_logit", "target_val", "other_logit", "other_val", "margin")


def read_aum_records(path: Path):
    """The ``aum`` package's ``full_aum_records.csv`` (AUMCalculator(compressed=False)): one row per
    sample and update call with the target class and the margin; the k-th measurement of a sample
    is its k-th presentation, taken as epoch k."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in AUM_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise NoisyctlError(f"{path} is not an aum full_aum_records.csv: no '{missing[0]}' column")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NoisyctlError(f"{path} cannot be read as CSV ({type(exc).__name__})") from None
    if not rows:
        raise NoisyctlError(f"{path} holds no records")
    series: dict[str, dict[int, float]] = {}
    targets: dict[str, int] = {}
    classes = 0
    for line, row in enumerate(rows, start=2):
        try:
            sample, count = row["sample_id"], int(row["num_measurements"])
            target, other, margin = int(row["target_logit"]), int(row["other_logit"]), float(row["margin"])
        except (TypeError, ValueError):
            raise NoisyctlError(f"{path}, line {line}: num_measurements, target_logit and other_logit must be "
                                f"integers and margin a number") from None
        if target < 0 or other < 0 or count < 1:
            raise NoisyctlError(f"{path}, line {line}: negative class or measurement number")
        if targets.setdefault(sample, target) != target:
            raise NoisyctlError(f"{path}, line {line}: sample '{sample}' changes its target class")
        series.setdefault(sample, {})[count] = margin
        classes = max(classes, target + 1, other + 1)
    ids = sorted(series, key=lambda s: (0, int(s)) if s.lstrip("-").isdigit() else (1, s))
    epochs = min(len(series[s]) for s in ids)
    margin = np.array([[series[s].get(k, np.nan) for k in sorted(series[s])[:epochs]] for s in ids], dtype=np.float32)
    if not np.isfinite(margin).all():
        raise NoisyctlError(f"{path}: a margin is not a finite number")
    given = np.array([targets[s] for s in ids], dtype=np.int64)
    labels = _sample_labels(given, max(classes, 2), path, ids)
    dropped = sum(len(series[s]) - epochs for s in ids)
    return labels, {"train_margin": margin, "train_step": _steps(len(ids), epochs)}, {}, \
        {"presentations_dropped": int(dropped)}


def read_dynamics_arrays(path: Path, labels_path: Path | None, recorded_in: str):
    """Plain arrays: an .npz with ``labels`` [N] and one of ``losses`` [N x E], ``logits`` or
    ``probs`` [N x E x C] (optionally ``true_labels``, ``ids``), or an .npy of one of those with
    the labels in ``labels_path``. ``recorded_in`` says whether they come from the training forward
    pass (train_* channels) or an eval pass after each epoch (eval_*)."""
    loaded = _read_arrays(path)
    if "" in loaded:
        values, given, truth, ids = loaded[""], None, None, None
        kind = "losses" if values.ndim == 2 else "logits"
    else:
        kinds = [k for k in ARRAY_KINDS if k in loaded]
        if len(kinds) != 1:
            raise NoisyctlError(f"{path} must hold exactly one of {', '.join(ARRAY_KINDS)} (found "
                                f"{', '.join(loaded) or 'nothing'})")
        kind, values = kinds[0], loaded[kinds[0]]
        given, truth = loaded.get("labels"), loaded.get("true_labels")
        ids = [str(i) for i in loaded["ids"]] if "ids" in loaded else None
    if labels_path is not None:
        given = _label_file(labels_path, len(values), "--labels")
    if given is None:
        raise NoisyctlError(f"{path} holds no labels: give --labels FILE.npy (one integer per sample)")
    if not np.issubdtype(values.dtype, np.floating) or values.ndim != (2 if kind == "losses" else 3):
        shape = "[N, E]" if kind == "losses" else "[N, E, C]"
        raise NoisyctlError(f"{path}: {kind} must be a float array {shape}, not {values.dtype} {values.shape}")
    n, epochs = values.shape[:2]
    given = _labels(given, n, f"labels of {path}")
    if ids is not None and (len(ids) != n or len(set(ids)) != n):
        raise NoisyctlError(f"{path}: 'ids' must give {n} distinct ids")
    if not np.isfinite(values).all():
        raise NoisyctlError(f"{path}: {kind} hold NaN or infinite values")
    arrays = {}
    if kind == "losses":
        classes = int(given.max()) + 1
        channels = {f"{recorded_in}_loss": values.astype(np.float32)}
    else:
        classes = values.shape[2]
        if kind == "probs" and (values.min() < 0 or values.max() > 1.001):
            raise NoisyctlError(f"{path}: probs must lie in [0, 1]")
        probs = values if kind == "probs" else _softmax(values)
        channels = _from_probabilities(probs, np.minimum(given, classes - 1), recorded_in)
        arrays["probs/late_mean"] = _late_mean(probs)
    if given.max() >= classes:
        raise NoisyctlError(f"labels of {path} reach class {int(given.max())} but the arrays have {classes}")
    if recorded_in == "train":
        channels["train_step"] = _steps(n, epochs)
    labels = _sample_labels(given, max(classes, 2), path, ids)
    if truth is not None:
        labels.true_labels = _labels(truth, n, f"true_labels of {path}")
    return labels, channels, arrays, {"kind": kind, "recorded_in": recorded_in}


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=2, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=2, keepdims=True)).astype(np.float32)


def write_imported_run(out: Path, labels: Labels, channels: dict[str, np.ndarray], source: dict[str, Any],
                       arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """A run file holding what another tool recorded: the ``channels`` ([N x E] each) it could fill,
    per-epoch figures derived from them (NaN where they cannot be), and ``arrays`` (probabilities)."""
    n, epochs = next(iter(channels.values())).shape
    with atomic_output(out) as tmp, h5py.File(tmp, "w") as h5:
        new_file(h5, RUN, dataset=labels.dataset, plugins={}, num_epochs=epochs, training=source)
        labels.write(h5)
        for name, values in channels.items():
            create_field(h5, f"dynamics/{name}", (n, epochs))[...] = values
        unknown = np.full(epochs, np.nan, dtype=np.float32)  # what other tools do not record
        figures = {"train_loss": unknown, "train_accuracy": unknown, "learning_rate": unknown, "seconds": unknown}
        if "train_loss" in channels:
            figures["train_loss"] = np.nanmean(channels["train_loss"], axis=0)
        if "train_margin" in channels:
            figures["train_accuracy"] = (channels["train_margin"] > 0).mean(axis=0)
        if "eval_pred" in channels:
            figures["eval_accuracy"] = (channels["eval_pred"] == labels.given_labels[:, None]).mean(axis=0)
            if labels.true_labels is not None:
                figures["eval_true_accuracy"] = (channels["eval_pred"] == labels.true_labels[:, None]).mean(axis=0)
        for name, values in figures.items():
            write_field(h5, f"epochs/{name}", values)
        for path, values in (arrays or {}).items():
            write_field(h5, path, values)
    return {"out": str(out), "samples": n, "epochs": epochs, "classes": len(labels.class_names),
            "channels": sorted(channels), **source}


def export_cleanlab(run: RunFile, out: Path) -> dict[str, Any]:
    """``labels``, ``pred_probs`` (as cleanlab's find_label_issues takes them) and ``ids`` in an .npz."""
    lacking = run.lacking(["probabilities"])
    if lacking:
        raise NoisyctlError(f"exporting for cleanlab needs {lacking}")
    probs, source = run.best_probabilities()
    with atomic_output(out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, labels=run.given_labels.astype(np.int64), pred_probs=probs.astype(np.float32),
                     ids=np.array(run.labels.ids), class_names=np.array(run.labels.class_names),
                     pred_probs_source=np.array(source))
    return {"out": str(out), "pred_probs": source, "in_sample": source != "out_of_fold"}


def export_suspects(run: RunFile, path: Path, detector: str | None = None, top: int | None = None) -> dict[str, Any]:
    """The suspects of the stored ``detector`` (default: the one that ranked the latest detect) as
    CSV or JSON (by the file's extension), marked flagged as detect flags them: the ``top`` highest
    scores, by default those flagged and at least 100."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise NoisyctlError(f"--suspects {path}: give a .csv or .json file")
    name, scores, own_flags = stored_detector(run, detector)
    flagged = detector_decision(run, name, scores, own_flags)[0]
    if top is None:
        top = max(100, 0 if flagged is None else int(flagged.sum()))
    suspects = top_suspects(run, scores, top, suggested_labels(run), flagged)
    with atomic_output(path) as tmp:
        if path.suffix.lower() == ".json":
            tmp.write_text(json.dumps(suspects, indent=2), encoding="utf-8")
        else:
            columns = ["rank", "id"] + (["text"] if suspects and "text" in suspects[0] else []) \
                + ["given", "true", "suggested", "score", "flagged", "is_noisy"]
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows({key: csv_cell(value) if key in ("id", "text", "given", "true", "suggested") and value
                                  is not None else value for key, value in row.items()} for row in suspects)
    return {"out": str(path), "rows": len(suspects), "detector": name,
            "flagged": None if flagged is None else int(flagged.sum())}


def export_annotators(run: RunFile, path: Path) -> dict[str, Any]:
    """Each annotator's figures (``annotators_table``) as CSV or JSON, by the file's extension."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise NoisyctlError(f"--annotators {path}: give a .csv or .json file")
    table = annotators_table(run)
    if table is None:
        raise NoisyctlError(f"{run.path} keeps no annotators' own labels (a Label Studio export with overlap, "
                            f"synth -n from-file -N annotators=..., Recorder(annotations=...))")
    rows = table["rows"]
    with atomic_output(path) as tmp:
        if path.suffix.lower() == ".json":
            tmp.write_text(json.dumps(rows, indent=2), encoding="utf-8")
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows({**row, "annotator": csv_cell(row["annotator"]),
                                  "mistakes_most": csv_cell(row["mistakes_most"]),
                                  "agreed_with_given": None if row["agreed_with_given"] is None
                                  else f"{row['agreed_with_given']:.4f}",
                                  **{key: f"{row[key]:.4f}" for key in ("accuracy", "accuracy_low", "accuracy_high")}}
                                 for row in rows)
    return {"out": str(path), "rows": len(rows), "held_out_prior": table["held_out_prior"]}


def _labels_as_they_stand(source: Path) -> tuple[Labels, bool]:
    """The labels of a labels or run file, and whether it is a run file."""
    with open_checked(source) as h5:
        is_run = get_attr(h5.attrs, "file_kind") == RUN
    if not is_run:
        return read_labels(source), False
    with RunFile(source) as run:
        return run.labels, True


def export_data_copy(source: Path, out: Path) -> dict[str, Any]:
    """A copy of the dataset's own records file (a table, texts, an image list, a Datumaro
    annotation file, arrays), CIFAR batches, MNIST idx files or class folders with every training
    sample's label as it stands in a labels
    or run file (``source``), after prune, correct --apply or import-review, and the removed samples
    left out: the cleaned data, in the layout a pipeline outside noisyctl already reads (the
    dataset's ``relabeled_copy``). Records that are no training sample (a held-out test share) are
    written as they are."""
    labels, _ = _labels_as_they_stand(source)
    name = labels.dataset.get("name", "?")
    if name not in plugins.registry().names("dataset"):  # a run recorded by the user's own loop
        raise NoisyctlError(f"--data-copy: {source} was recorded from data noisyctl does not read ('{name}'); "
                            f"--labels-csv writes its labels for your pipeline to join")
    data = load_dataset(labels.dataset)
    if data.relabeled_copy is None:
        raise NoisyctlError(f"--data-copy: {name} has no copy of its own to write (data generated or shipped "
                            f"with a library); --labels-csv writes its labels")
    known = set(data.train.ids)
    missing = next((sample_id for sample_id in labels.ids if sample_id not in known), None)
    if missing is not None:
        raise NoisyctlError(f"--data-copy: the data no longer holds sample {missing} of {source}: it changed "
                            f"since the labels were made")
    if list(data.class_names) != list(labels.class_names):
        raise NoisyctlError(f"--data-copy: the data's classes ({', '.join(data.class_names[:5])} ...) are not "
                            f"those of {source}: it changed since the labels were made")
    removed = np.zeros(len(labels.ids), dtype=bool) if labels.removed is None else labels.removed
    names = labels.class_names
    current = {sample_id: None if removed[i] else names[labels.given_labels[i]]
               for i, sample_id in enumerate(labels.ids)}
    written = data.relabeled_copy(current, Path(out))
    original = dict(zip(data.train.ids, data.train.labels))
    changed = sum(1 for i, sample_id in enumerate(labels.ids)
                  if not removed[i] and original[sample_id] != labels.given_labels[i])
    return {"out": str(out), "rows": int(written), "relabeled": changed, "removed": int(removed.sum())}


def export_labels(source: Path, out: Path) -> dict[str, Any]:
    """Every sample's label in a labels or run file (``source``) as it stands, after prune, correct
    --apply or import-review, as a CSV that a training pipeline outside noisyctl joins on ``id``:
    ``id``, ``path`` (image files) or ``text`` (text ids are hashes of the texts) where known,
    ``label`` (the class name), ``label_index``, ``removed``, ``corrected`` and ``reviewed`` (true or
    false), and ``true_label`` where the noise was synthesized, each cell exactly as the data holds
    it. Removed samples keep their row, so a pipeline filters on ``removed`` rather than guessing
    what is missing."""
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise NoisyctlError(f"--labels-csv {out}: give a .csv file")
    # Texts, whose ids are hashes, are what a pipeline joins on; a table row's cells are for a
    # reviewer (its id names the row), so they are not loaded here.
    labels, is_run = _labels_as_they_stand(source)
    texts = None
    if labels.dataset.get("kind", "text") == "text":
        if is_run:  # a user's loop may have recorded the texts in the run
            with RunFile(source) as run:
                texts = suspect_texts(run, labels.ids)
        else:
            texts = sample_texts(labels.dataset, labels.ids)
    names, count = labels.class_names, len(labels.ids)
    files = [sample_path(labels.dataset, sample_id) for sample_id in labels.ids]
    marks = {name: np.zeros(count, dtype=bool) if getattr(labels, name) is None else getattr(labels, name)
             for name in ("removed", "corrected", "reviewed")}
    columns = ["id", *(["path"] if any(files) else []), *(["text"] if texts is not None else []), "label",
               "label_index", *marks, *(["true_label"] if labels.true_labels is not None else [])]
    with atomic_output(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        # Cells exactly as the data holds them, for a program to join on: the review and suspects
        # CSVs, meant for spreadsheets, guard ids and texts with an apostrophe (csv_cell); here one
        # would miss the join for a text that begins with "-" or a hash id of twelve digits.
        for i, sample_id in enumerate(labels.ids):
            where = ([files[i]] if "path" in columns else []) + ([] if texts is None else [texts[i]])
            truth = [] if labels.true_labels is None else [names[labels.true_labels[i]]]
            writer.writerow([sample_id, *where, names[labels.given_labels[i]], int(labels.given_labels[i]),
                             *("true" if marks[m][i] else "false" for m in marks), *truth])
    return {"out": str(out), "rows": count, **{name: int(mark.sum()) for name, mark in marks.items()}}

