"""Would keeping each annotator's label, not only the majority, find and count the wrong labels
better? Three simulated annotators label digits (``synth -n from-file -N annotators=a,b,c``); the
majority vote (of a tie, the later annotator's) is the given label, trained on with ``train
--folds 3``. Two kinds of annotator:

- ``independent``: each errs on its own random samples, to a random other class (10%, 15%, 20%);
- ``confused``: each is a weak model fitted on 10 samples a class (``-n instance -N annotator=10``,
  one seed each) and errs where it confuses the classes (10%, 15%, 20%), so their errors fall on
  the same hard samples, as people's do;
- ``crowd``: 100 crowd workers (accuracy 0.55-0.95, five of them spammers who answer at random),
  three a sample, delivered as crowdsourcing tools export them, one row a label (``-N
  annotators=worker``).

For the majority's wrong labels the script prints:

- the share the noisyctl estimate reads; the annotators' reading ``detect`` shows beside it (Dawid
  and Skene's model with the held-out probabilities as prior) and each annotator's estimated
  accuracy; the same model without the prior; and the annotators' reading beside the clean
  labels (trained on ``clean_label``, as if an expert's labels stood beside the crowd's);
- the share wrong, and the estimate, where the labels are their Dawid-Skene aggregate (``-N
  aggregate=dawid-skene``) instead of their vote;
- the average precision of ``learned``, of the annotators' disagreement with the majority, and of
  their rank sum;
- the wrong labels fixed and right ones broken by cleanlab's CROWDLAB consensus (annotators and
  held-out probabilities) over every sample, and by ``correct -c annotators`` (the default for
  such runs) and ``-c suggested`` among the detector's flags and among the 120 top-scored.

    .venv/bin/python benchmarks/annotators.py --out runs/annotators
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score

from noisyctl.api import NOT_LABELED, NoiseContext
from noisyctl.builtin.noise.instance import instance
from noisyctl.data import load_dataset
from noisyctl.estimate import dawid_skene

ERROR_RATES = (0.10, 0.15, 0.20)
WEAK_ANNOTATOR = 10  # samples a class the confused annotators' models are fitted on
CROWD, SPAMMERS, A_SAMPLE = 100, 5, 3


def annotate(kind: str, clean: np.ndarray, data, seed: int) -> np.ndarray:
    """Each annotator's labels, (N, annotators), NOT_LABELED where they gave none."""
    if kind == "crowd":
        rng = np.random.default_rng([seed, 99])
        accuracy = np.concatenate([rng.uniform(0.55, 0.95, CROWD - SPAMMERS), np.full(SPAMMERS, 0.1)])
        votes = np.full((len(clean), CROWD), NOT_LABELED)
        for i, label in enumerate(clean):
            for who in rng.choice(CROWD, A_SAMPLE, replace=False):  # a random answer is right one time in ten
                votes[i, who] = label if rng.random() < accuracy[who] else (label + rng.integers(1, 10)) % 10
        return votes
    columns = []
    for number, rate in enumerate(ERROR_RATES):
        rng = np.random.default_rng([seed, number])
        if kind == "confused":
            context = NoiseContext(labels=clean.copy(), class_names=list(data.class_names), rng=rng, dataset=data)
            columns.append(instance(context, rate, annotator=WEAK_ANNOTATOR))
            continue
        labels = clean.copy()
        wrong = rng.random(len(clean)) < rate
        labels[wrong] = (clean[wrong] + rng.integers(1, data.num_classes, wrong.sum())) % data.num_classes
        columns.append(labels)
    return np.stack(columns, axis=1)


def noisyctl(*args) -> str:
    done = subprocess.run([sys.executable, "-m", "noisyctl", *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"noisyctl {' '.join(map(str, args))}: {done.stderr.strip()}")
    return done.stdout


def trained(out: Path, name: str, crowd: Path, *options: str) -> dict:
    """``detect --json`` of a run trained with held-out models on labels from the ``crowd`` file."""
    stem = out / name
    if not Path(f"{stem}.run.h5").exists():
        noisyctl("synth", "-n", "from-file", "-N", f"path={crowd}", *options, "-o", f"{stem}.labels.h5")
        noisyctl("train", "--labels", f"{stem}.labels.h5", "--folds", "3", "-q", "-o", f"{stem}.run.h5")
    return json.loads(noisyctl("detect", f"{stem}.run.h5", "--json"))


def measure(out: Path, kind: str, seed: int) -> None:
    data = load_dataset({"name": "digits", "root": None, "options": {}})
    clean = data.train.labels.copy()
    votes = annotate(kind, clean, data, seed)
    stem = out / f"digits-{kind}-{seed}"
    if kind == "crowd":  # one row a label
        crowd = out / f"digits-{kind}-{seed}.csv"
        with open(crowd, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "worker", "label"])
            writer.writerows((data.train.ids[i], f"w{a:03d}", votes[i, a]) for i, a in zip(*np.nonzero(votes >= 0)))
        options = ("-N", "annotators=worker")
    else:
        crowd = out / f"digits-{kind}-{seed}.npz"
        np.savez(crowd, a=votes[:, 0], b=votes[:, 1], c=votes[:, 2], clean_label=clean)
        options = ("-N", "annotators=a,b,c")
    detected = trained(out, f"digits-{kind}-{seed}", crowd, *options)  # their majority, as a crowd's data is labeled
    # their Dawid-Skene aggregate as the labels, instead of their vote
    aggregated = trained(out, f"digits-{kind}-{seed}-ds", crowd, *options, "-N", "aggregate=dawid-skene")
    # an expert's labels beside the crowd's (a table of one row a label holds none)
    beside_clean = None if kind == "crowd" else \
        trained(out, f"digits-{kind}-{seed}-clean", crowd, *options, "-N", "key=clean_label")
    corrected = {(corrector, top): json.loads(noisyctl("correct", f"{stem}.run.h5", "-c", corrector, *top, "--json"))
                 for corrector in ("annotators", "suggested") for top in ((), ("-k", "120"))}
    with h5py.File(f"{stem}.run.h5") as h5:
        given = h5["samples/given_label"][:]
        learned = h5["scores/learned"][:]
        held_out = h5["probs/out_of_fold"][:].astype(float)
    held_out /= held_out.sum(1, keepdims=True)
    wrong = given != clean
    alone = 1 - dawid_skene(votes, data.num_classes)[0][np.arange(len(given)), given]
    answered = votes != NOT_LABELED
    disagreement = ((votes != given[:, None]) & answered).sum(1) / answered.sum(1)
    from cleanlab.multiannotator import get_label_quality_multiannotator

    consensus = get_label_quality_multiannotator(np.where(answered, votes, np.nan), held_out, verbose=False,
                                                 return_detailed_quality=False,
                                                 return_annotator_stats=False)["label_quality"]["consensus_label"]
    changed = consensus.to_numpy() != given
    estimate, counted = detected["estimate"], detected["estimate"]["annotators"]
    realized = np.array([(votes[answered[:, a], a] == clean[answered[:, a]]).mean() for a in range(votes.shape[1])])
    names = [f"w{a:03d}" for a in range(votes.shape[1])] if kind == "crowd" else list("abc")
    by_name = {p["annotator"]: p for p in counted["annotators"]}
    estimated = np.array([by_name[name]["accuracy"] for name in names])
    intervals = np.array([by_name[name]["accuracy_interval"] for name in names])
    held = ((intervals[:, 0] <= realized) & (realized <= intervals[:, 1])).mean()
    off = np.abs(estimated - realized)
    accuracy = (f"annotators right {np.round(realized, 3).tolist()}, estimated {np.round(estimated, 3).tolist()}"
                if kind != "crowd" else
                f"{len(names)} annotators right {realized.min():.2f}-{realized.max():.2f}, estimated accuracy off by "
                f"{off.mean():.3f} on average (at most {off.max():.3f}), correlation "
                f"{np.corrcoef(estimated, realized)[0, 1]:.3f}; their 90% intervals (median width "
                f"{np.median(intervals[:, 1] - intervals[:, 0]):.2f}) hold {held:.0%} of them")
    print(f"{kind:11s} seed {seed}: {accuracy}, majority wrong {wrong.mean():.2%}")
    clean_reading = "" if beside_clean is None else \
        f"; beside the clean labels {beside_clean['estimate']['annotators']['rate']:.2%}"
    print(f"  estimate: noisyctl {estimate['rate']:.2%} ({estimate['low']:.2%}-{estimate['high']:.2%}); the "
          f"annotators' reading (detect) {counted['rate']:.2%} ({counted['low']:.2%}-{counted['high']:.2%}); "
          f"Dawid-Skene without held-out models {alone.mean():.2%}{clean_reading}")
    ap = {"learned": average_precision_score(wrong, learned),
          "disagreement": average_precision_score(wrong, disagreement),
          "rank sum": average_precision_score(wrong, rankdata(learned) + rankdata(disagreement))}
    with h5py.File(f"{stem}-ds.run.h5") as h5:
        ds_wrong = h5["samples/given_label"][:] != clean
    ds_estimate = aggregated["estimate"]
    print(f"  their Dawid-Skene aggregate as the labels: {ds_wrong.mean():.2%} wrong (their vote {wrong.mean():.2%}); "
          f"estimate {ds_estimate['rate']:.2%} ({ds_estimate['low']:.2%}-{ds_estimate['high']:.2%}), "
          f"by {ds_estimate['method']}")
    print("  AP: " + ", ".join(f"{name} {value:.3f}" for name, value in ap.items()))
    print(f"  CROWDLAB consensus over every sample: fixed {int((changed & (consensus.to_numpy() == clean)).sum())}, "
          f"broken {int((changed & ~wrong).sum())}")
    print("  correct, fixed / broken: " + "; ".join(
        f"-c {corrector} {'the top 120' if top else 'the detector flags'}: {made['fixed']} / {made['broken']}"
        for (corrector, top), made in corrected.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/annotators"), help="folder for the runs")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--kinds", nargs="+", default=["independent", "confused", "crowd"],
                        choices=["independent", "confused", "crowd"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for kind in args.kinds:
        for seed in range(args.seeds):
            measure(args.out, kind, seed)


if __name__ == "__main__":
    main()
