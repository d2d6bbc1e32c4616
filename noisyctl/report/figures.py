"""The report's figures (matplotlib, no display needed): each function takes what a run file holds
and returns a Figure, or None when the run lacks what the figure shows.

Everything that reads ``[N x E]`` dynamics streams them in blocks, so figures of large runs keep
memory flat; only the handful of suspects' series are kept whole.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EMA_ALPHA = 0.001  # Datumaro's per-presentation EMA of the loss


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _charmap(path: str) -> set[int]:
    from matplotlib.ft2font import FT2Font

    try:
        return set(FT2Font(path).get_charmap())
    except (OSError, RuntimeError, ValueError):  # a font file FreeType cannot read
        return set()


def drawable_class_names(names: list[str]) -> tuple[list[str], str | None]:
    """Class names as the figures can draw them, and a note where they cannot.

    matplotlib's own font (DejaVu Sans) has no Chinese, Japanese or Thai glyphs and draws such
    names as boxes. Where an installed font has the glyphs it becomes the figures' fallback font
    (matplotlib falls back through a list of families) and the names stay; else the figures label
    classes by index, and the note gives each index's name for the page, which the browser draws
    in its own fonts."""
    from matplotlib import font_manager, rcParams

    wanted = {ord(char) for name in names for char in name if not char.isspace()}
    families = list(rcParams["font.family"])
    default = font_manager.findfont(font_manager.FontProperties(family=families[:1]))
    missing = wanted - _charmap(default)
    looked_at = set(families)
    for entry in font_manager.fontManager.ttflist:  # one file a family is enough: its styles share glyphs
        if not missing:
            break
        # Last Resort (shipped with matplotlib 3.10+) maps every character to a box naming its block
        if entry.name in looked_at or entry.name.startswith("Last Resort"):
            continue
        looked_at.add(entry.name)
        covered = missing & _charmap(entry.fname)
        if covered:
            families.append(entry.name)
            missing -= covered
    if not missing:
        rcParams["font.family"] = families
        return list(names), None
    return [str(c) for c in range(len(names))], (
        "no installed font draws these class names, so the figures label classes by index: "
        + ", ".join(f"{c} {name}" for c, name in enumerate(names)))


def png_bytes(figure) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def accuracy_curves(epochs: dict[str, np.ndarray]):
    """Training, eval (given and true labels) and clean test accuracy per epoch."""
    names = {"train_accuracy": "train (given labels)", "eval_accuracy": "eval (given labels)",
             "eval_true_accuracy": "eval (true labels)", "test_accuracy": "test (clean)"}
    present = [k for k in names if k in epochs]
    if not present:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 3.6))
    x = np.arange(1, len(epochs[present[0]]) + 1)
    for key in present:
        axis.plot(x, epochs[key], label=names[key], linewidth=2 if key == "test_accuracy" else 1.3)
    axis.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="accuracy per epoch")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure


def _ema(series: np.ndarray, alpha: float = EMA_ALPHA) -> np.ndarray:
    """The EMA after each presentation, from 0 (rows are samples or means, columns presentations)."""
    out = np.empty_like(series, dtype=np.float64)
    value = np.zeros(series.shape[0])
    for e in range(series.shape[1]):
        value = (1 - alpha) * value + alpha * series[:, e]
        out[:, e] = value
    return out


def ema_loss_curves(run, suspects: list[int], class_names: list[str]):
    """Datumaro's plot: the EMA loss of the top suspects against the dataset mean and the mean of
    each suspect's label. The EMA is linear, so a mean of EMAs is the EMA of the per-epoch mean loss."""
    if not suspects or not run.has_channel("train_loss"):
        return None
    given = run.given_labels
    classes = len(class_names)
    sums = np.zeros((classes + 1, run.num_epochs))
    counts = np.bincount(given, minlength=classes + 1).astype(np.float64)
    for where, block in run.iter_blocks(("train_loss",)):
        losses = block["train_loss"].astype(np.float64)
        np.add.at(sums, np.minimum(block["given_label"], classes), losses)
    per_label = _ema(sums / np.maximum(counts, 1)[:, None])
    overall = _ema(sums.sum(axis=0, keepdims=True) / max(1, len(given)))[0]
    series = _ema(run.channel_rows("train_loss", suspects).astype(np.float64))
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    x = np.arange(1, run.num_epochs + 1)
    colors = plt.get_cmap("tab10")
    shown_labels = list(dict.fromkeys(int(given[i]) for i in suspects))
    for n, label in enumerate(shown_labels):
        axis.plot(x, per_label[label], "--", color=colors(n % 10), linewidth=1.4,
                  label=f"mean of label {class_names[label]}")
    for i, row in zip(suspects, series):
        axis.plot(x, row, color=colors(shown_labels.index(int(given[i])) % 10), alpha=0.55, linewidth=1)
    axis.plot(x, overall, color="black", linewidth=2.2, label="dataset mean")
    axis.plot([], [], color="grey", alpha=0.55, linewidth=1, label="a top suspect (colour: its label)")
    axis.set(xlabel="epoch", ylabel=f"EMA of loss (alpha {EMA_ALPHA} per presentation)",
             title=f"top {len(suspects)} suspects (thin) against the means")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    return figure


def data_map(run, flagged: np.ndarray | None):
    """Swayamdipta et al.'s data map: mean and spread of the eval-mode probability of the given label."""
    if not run.has_channel("eval_prob"):
        return None
    confidence = np.empty(run.num_samples)
    variability = np.empty(run.num_samples)
    for where, block in run.iter_blocks(("eval_prob",)):
        confidence[where] = block["eval_prob"].mean(axis=1)
        variability[where] = block["eval_prob"].std(axis=1)
    truth = run.labels.is_noisy
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 4.6))
    step = max(1, run.num_samples // 20000)  # enough points to see the shape, few enough to draw
    keep = np.arange(0, run.num_samples, step)
    axis.scatter(variability[keep], confidence[keep], s=4, c="#9aa5b1", alpha=0.5, linewidths=0, label="samples")
    if truth is not None and truth.any():
        noisy = keep[truth[keep]]
        axis.scatter(variability[noisy], confidence[noisy], s=14, facecolors="none", edgecolors="#d62728",
                     linewidths=0.7, label="truly mislabeled")
    if flagged is not None and flagged.any():
        marked = keep[flagged[keep]]
        axis.scatter(variability[marked], confidence[marked], s=9, marker="x", c="#1f3b73", linewidths=0.7,
                     label="flagged")
    axis.set(xlabel="variability (std of p(given label))", ylabel="confidence (mean p(given label))",
             title="data map", ylim=(-0.02, 1.02))
    axis.legend(fontsize=7, loc="lower right")
    return figure


def detector_curves(truth: np.ndarray | None, scores: dict[str, np.ndarray]):
    """Precision-recall and ROC curves of every stored detector, when the truth is known."""
    if truth is None or not scores or truth.all() or not truth.any():
        return None
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    plt = _pyplot()
    figure, (pr, roc) = plt.subplots(1, 2, figsize=(10, 4.2))
    styles = ("-", "--", "-.", ":")  # curves that coincide stay apart by their dashes
    for n, (name, values) in enumerate(scores.items()):
        judged = ~np.isnan(values)
        y, s = truth[judged], values[judged]
        style = {"linestyle": styles[n % len(styles)], "linewidth": 1.8 - 0.25 * (n % len(styles))}
        precision, recall, _ = precision_recall_curve(y, s)
        pr.plot(recall, precision, label=f"{name} (mAP {average_precision_score(y, s):.3f})", **style)
        fpr, tpr, _ = roc_curve(y, s)
        roc.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, s):.3f})", **style)
    pr.axhline(truth.mean(), color="grey", linestyle=":", linewidth=1)
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall (noisy = positive)", ylim=(0, 1.02))
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    for axis in (pr, roc):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower left" if axis is pr else "lower right")
    return figure


def transition_matrices(given: np.ndarray, estimated_true: np.ndarray, true: np.ndarray | None,
                        class_names: list[str]):
    """Row-normalised P(given label | true label): estimated (flagged samples take the suggested
    label as their true one) and, when known, the real one."""
    c = len(class_names)
    if c > 60:
        return None  # unreadable as a picture; the JSON report has the confused pairs

    def matrix(true_labels):
        counts = np.bincount(true_labels * c + given, minlength=c * c).reshape(c, c).astype(np.float64)
        return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)

    panels = [("estimated", matrix(estimated_true))]
    if true is not None:
        panels.append(("true", matrix(true)))
    plt = _pyplot()
    size = min(5.0, 1.2 + 0.35 * c)
    # constrained layout keeps the second panel's axis label clear of the first one's colour bar
    figure, axes = plt.subplots(1, len(panels), figsize=(size * len(panels) + 1, size), squeeze=False,
                                layout="constrained")
    for axis, (title, values) in zip(axes[0], panels):
        image = axis.imshow(values, cmap="Blues", vmin=0, vmax=1)
        axis.set(title=f"noise transition ({title})", xlabel="given label",
                 ylabel="true label" if title == "true" else "estimated true label")
        if c <= 20:
            axis.set_xticks(range(c), class_names, rotation=90, fontsize=7)
            axis.set_yticks(range(c), class_names, fontsize=7)
            for i in range(c):
                for j in range(c):
                    if values[i, j] >= 0.01:
                        axis.text(j, i, f"{values[i, j]:.0%}", ha="center", va="center", fontsize=7 if c <= 10 else 5.5,
                                  color="white" if values[i, j] > 0.5 else "black")
        figure.colorbar(image, ax=axis, shrink=0.8)
    return figure


def image_array(tensor) -> np.ndarray | None:
    """A CHW (or HW) tensor as an HxWx3 or HxW array in [0, 1]; None for feature vectors."""
    values = np.asarray(tensor, dtype=np.float64)
    if values.ndim == 3 and values.shape[0] in (1, 3):
        values = values.transpose(1, 2, 0)
        values = values[:, :, 0] if values.shape[2] == 1 else values
    elif values.ndim != 2:
        return None
    low, high = values.min(), values.max()
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def suspect_gallery(images: list[Any], captions: list[str]):
    """A grid of the suspects' images, each captioned with its labels and score."""
    pictures = [image_array(i) for i in images]
    if not pictures or any(p is None for p in pictures):
        return None
    plt = _pyplot()
    columns = min(5, len(pictures))
    rows = -(-len(pictures) // columns)
    # constrained layout keeps the title clear of the three-line captions at any count
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.6 * rows + 0.4), squeeze=False,
                                layout="constrained")
    for axis in axes.ravel():
        axis.axis("off")
    for axis, picture, caption in zip(axes.ravel(), pictures, captions):
        axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None, interpolation="nearest")
        axis.set_title(caption, fontsize=7)
    figure.suptitle("top suspects", fontsize=10)
    return figure
