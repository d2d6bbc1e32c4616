"""The report as one self-contained HTML file (figures embedded as PNG data) or as PNG files."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np

from noisyctl.report import ANNOTATOR_HEADERS, REPORTED_ANNOTATORS, annotator_cells, annotators_caption, figures
from noisyctl.detection import estimate_words
from noisyctl.fileio import atomic_output

# One sentence a figure is read by (the page shows it under the figure and as its alt text).
FIGURE_WORDS = {
    "accuracy": "Accuracy against the given labels rises toward 100% as the model memorises the noise; accuracy "
                "against the true labels (when known) and on the clean test split peak earlier: the gap is the noise "
                "the model fitted.",
    "ema_loss": "Each thin line is one top suspect's training loss, smoothed as Datumaro's EMA, coloured by its "
                "given label; the dashed lines are the mean of each of those labels and the black one the dataset's: "
                "a mislabeled sample keeps a high loss after its label's mean has dropped.",
    "data_map": "Each dot is a sample: its mean confidence in the given label against how much that confidence "
                "varied over training; flagged samples (crosses) and, when known, the mislabeled ones (red rings) "
                "sit low, where the model rarely believed the label.",
    "detectors": "Left, precision against recall of each detector's ranking (a curve toward the top right finds "
                 "the wrong labels with few clean ones among them; dotted: chance); right, the ROC curve.",
    "transition": "Row i, column j: the share of samples of (estimated) true class i whose given label is j; "
                  "off the diagonal is the noise, read here from the flagged samples' suggested labels.",
    "suspects": "The most suspect samples, each with its given label, the label the model suggests (and the true "
                "one when known) and its score.",
}
METRIC_WORDS = ("AUC: the chance that a mislabeled sample scores above a clean one (0.5 is chance). mAP: the "
                "precision averaged over every mislabeled sample's rank, 1 when all come first. P@k: the share of "
                "wrong labels among the k highest scores, where k is the number of wrong labels, so it is also the "
                "share of them found (recall at k). flagged: how many the detector itself judges mislabeled.")

FIGURE_TITLES = {
    "accuracy": "Accuracy per epoch",
    "ema_loss": "EMA loss of the top suspects",
    "data_map": "Data map",
    "detectors": "Detectors against the truth",
    "transition": "Noise transition",
    "suspects": "Top suspects",
}


def build_figures(run, scores: dict[str, np.ndarray], flagged: np.ndarray | None, suspects: list[dict],
                  suggestions: np.ndarray | None, images: list | None, notes: list[str]) -> dict[str, bytes]:
    """Every figure the run has the data for, as PNG bytes by name (in FIGURE_TITLES order); drawn
    once, whether they go into the page, into PNG files, or both. ``notes`` gets what the page
    should say of them."""
    labels = run.labels
    names, note = figures.drawable_class_names(labels.class_names)
    if note:
        notes.append(note)
    shown = dict(zip(labels.class_names, names))
    made = {
        "accuracy": figures.accuracy_curves(run.epochs()),
        "ema_loss": figures.ema_loss_curves(run, [s["index"] for s in suspects], names),
        "data_map": figures.data_map(run, flagged),
        "detectors": figures.detector_curves(labels.is_noisy, scores),
    }
    if suggestions is not None and flagged is not None:
        estimated_true = np.where(flagged, suggestions, run.given_labels)
        made["transition"] = figures.transition_matrices(run.given_labels, estimated_true, labels.true_labels, names)
    if images:
        captions = [f"#{s['rank']} {s['id']}\ngiven {shown[s['given']]} -> {shown.get(s['suggested'], '?')}"
                    + (f" (true {shown[s['true']]})" if s.get("true") is not None else "") + f"\nscore {s['score']:.3g}"
                    for s in suspects]
        made["suspects"] = figures.suspect_gallery(images, captions)
    return {name: figures.png_bytes(made[name]) for name in FIGURE_TITLES if made.get(name) is not None}


def write_pngs(folder: Path, made: dict[str, bytes]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, png in made.items():
        path = folder / f"{name}.png"
        with atomic_output(path) as tmp:
            tmp.write_bytes(png)
        written.append(str(path))
    return written


def _table(headers: list[str] | None, rows: list[list[Any]], caption: str = "", prose: tuple[str, ...] = ()) -> str:
    """An HTML table (without a header row when ``headers`` is None); the columns named in ``prose``
    hold text to read, left-aligned."""
    width = len(headers) if headers else len(rows[0])
    cells = ["<td class='prose'>" if headers and h in prose else "<td>" for h in (headers or [None] * width)]
    body = "".join("<tr>" + "".join(f"{cells[k]}{html.escape(str(c))}</td>" for k, c in enumerate(row)) + "</tr>"
                   for row in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    head = "<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in headers) + "</tr></thead>" \
        if headers else ""
    return f"<table>{cap}{head}<tbody>{body}</tbody></table>"


def _fmt(value, pattern="{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2733;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde3ea}
.sub{color:#5b6b7c;margin-top:0}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{padding:.3rem .7rem;border-bottom:1px solid #e6ebf0;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f3f6f9}
td.prose{text-align:left;max-width:32rem}
caption{text-align:left;color:#5b6b7c;font-size:.85rem;padding-bottom:.3rem}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #e6ebf0;border-radius:4px}
figcaption{color:#5b6b7c;font-size:.85rem}.estimate{font-size:1.05rem}.noisy{color:#c62828;font-weight:600}
"""


def render_html(result: dict[str, Any], made: dict[str, bytes], notes: list[str]) -> str:
    """The report page: summary, estimate, detector metrics, annotators, suspects, comparison, then the
    figures."""
    esc = html.escape
    parts = [f"<h1>noisyctl report</h1><p class='sub'>{esc(result['run'])}</p>"]
    summary = [["dataset", f"{(result['dataset'] or {}).get('name')} ({result['samples']:,} samples, "
                           f"{len(result['classes'])} classes)"],
               ["trained on", result["trained_on"]]]
    noise = result.get("noise")
    if noise:
        flipped = noise.get("flipped") if isinstance(noise.get("flipped"), int) else result["noisy"] or 0
        summary.append(["synthesized noise", f"{noise['name']}: {flipped:,} labels flipped"])
    t = result.get("training") or {}
    summary.append(["model", f"{t.get('model')}, {t.get('epochs')} epochs, {t.get('device_used')}"])
    parts.append(_table(None, summary))
    estimate = result.get("estimate")
    if estimate:
        words = estimate_words(estimate)
        text = esc(words[0].upper() + words[1:])
        if estimate.get("true_rate") is not None:
            text += f"; true: {estimate['true_rate']:.1%}"
        parts.append(f"<p class='estimate'>{text}</p>")
        pairs = estimate.get("confused_pairs") or []
        if pairs:
            parts.append(_table(["given", "suggested", "count"],
                                [[p["given"], p["suggested"], p["count"]] for p in pairs],
                                "most confused class pairs among flagged samples"))
    detectors = result.get("detectors") or {}
    if detectors:
        truth_known = result.get("noisy") is not None
        headers = ["detector"] + (["AUC", "mAP", "P@k"] if truth_known else []) + ["flagged"]
        rows = []
        for name, d in detectors.items():
            m = d.get("metrics") or {}
            rows.append([name] + ([_fmt(m.get("auc")), _fmt(m.get("map")), _fmt(m.get("precision_at_k"))]
                                  if truth_known else [])
                        + ["-" if d.get("flagged") is None else f"{d['flagged']:,}"])
        caption = f"{result['noisy']:,} of {result['samples']:,} labels are wrong, k = {result['noisy']:,}" \
            if truth_known else ""
        words = METRIC_WORDS if truth_known else METRIC_WORDS.split("flagged: ")[-1].capitalize()
        parts.append("<h2>Detectors</h2>" + _table(headers, rows, caption) + f"<p class='sub'>{esc(words)}</p>")
    annotators = result.get("annotators")
    if annotators:
        parts.append("<h2>Annotators</h2>" + _table(
            ANNOTATOR_HEADERS, [annotator_cells(row) for row in annotators["rows"][:REPORTED_ANNOTATORS]],
            annotators_caption(annotators, result["run"])))
    top = result.get("top") or []
    if top:
        truth_known = top[0].get("true") is not None
        texts = "text" in top[0]  # text data: the suspects' texts, where images get a gallery
        headers = ["#", "sample id"] + (["text"] if texts else []) + ["given"] + (["true"] if truth_known else []) \
            + ["suggested", "score"]
        rows = []
        for s in top:
            rows.append([s["rank"], s["id"]] + ([s["text"]] if texts else []) + [s["given"]]
                        + ([s["true"]] if truth_known else []) + [s["suggested"] or "-", f"{s['score']:.3g}"])
        parts.append(f"<h2>Top {len(top)} suspects by {esc(str(result['ranked_by']))}</h2>"
                     + _table(headers, rows, "given -> suggested: read the text and judge" if texts else "",
                              prose=("text",)))
    comparison = result.get("comparison") or []
    if comparison:
        rows = [[Path(r["run"]).name, r["trained_on"], f"{r['samples']:,}", _fmt(r["test_accuracy"], "{:.1%}"),
                 _fmt(r["best_test_accuracy"], "{:.1%}"), _fmt(r["gap_closed"], "{:.0%}")] for r in comparison]
        parts.append("<h2>The same data, trained differently</h2>" + _table(
            ["run", "trained on", "samples", "test acc (last)", "test acc (best)", "gap closed"], rows,
            "gap closed: (test acc - noisy-label run) / (true-label run - noisy-label run)"))
    for name, png in made.items():
        data = base64.b64encode(png).decode("ascii")
        words = FIGURE_WORDS[name]
        parts.append(f"<h2>{esc(FIGURE_TITLES[name])}</h2><figure><img alt='{esc(FIGURE_TITLES[name])}: {esc(words)}' "
                     f"src='data:image/png;base64,{data}'><figcaption>{esc(words)}</figcaption></figure>")
    for note in notes:
        parts.append(f"<p class='sub'>note: {esc(note)}</p>")
    # Marks the page once every image has decoded (tests read it from a headless browser).
    script = ("<script>window.addEventListener('load',function(){var i=document.images,n=0;"
              "for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0)n++;}"
              "document.body.setAttribute('data-images-loaded',n+'/'+i.length);});</script>")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>noisyctl report: {esc(Path(result['run']).name)}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(parts)}{script}</body></html>")
