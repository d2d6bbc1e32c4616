"""The estimate on tables no detector or default was tuned on: scikit-learn's generated
classification problems (``make_classification``: several clusters a class, classes from well
apart to overlapping) and its bundled wine, breast cancer and iris, clean and with 2% uniform
noise, each run as a user would: ``synth -d table``, ``train`` with its defaults, ``detect
--fail-above 0.03``.

Prints, per run, the true and estimated rate, the interval, the evidence in words, whether the gate
passed and the default detector's mAP, then how many clean runs read 1% or less and pass the gate,
and how many noisy ones are within max(0.5 points, 25%) and inside the interval.

    .venv/bin/python benchmarks/unseen_tables.py --out runs/unseen
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_classification

# (samples, features, informative, classes, class_sep, clusters a class): well apart to overlapping
GENERATED = ((1500, 20, 8, 4, 1.0, 2), (3000, 30, 10, 6, 1.5, 1), (800, 10, 5, 3, 0.8, 2),
             (2500, 40, 20, 10, 2.0, 1), (1200, 8, 4, 2, 0.6, 2), (4000, 15, 6, 5, 1.2, 3))
BUNDLED = {"wine": load_wine, "breast-cancer": load_breast_cancer, "iris": load_iris}
NOISY_TOLERANCE = (0.005, 0.25)


def tables() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    found = {}
    for seed, (n, features, informative, classes, sep, clusters) in enumerate(GENERATED):
        x, y = make_classification(n_samples=n, n_features=features, n_informative=informative,
                                   n_redundant=min(2, features - informative), n_classes=classes,
                                   n_clusters_per_class=clusters, class_sep=sep, flip_y=0, random_state=seed)
        found[f"generated-{n}x{features}-{classes}classes-sep{sep}-{clusters}clusters"] = (x, y)
    for name, load in BUNDLED.items():
        data = load()
        found[name] = (data.data, data.target)
    return found


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{j}" for j in range(x.shape[1])] + ["label"])
        writer.writerows([f"{value:.5g}" for value in row] + [f"class{label}"] for row, label in zip(x, y))


def noisyctl(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "noisyctl", *map(str, args)], capture_output=True, text=True)


def run_one(out: Path, name: str, rate: float) -> dict:
    stem = out / f"{name}-{rate}"
    for step in (("synth", "-d", "table", "--data-root", out / f"{name}.csv", "-n", "uniform", "-r", rate,
                  "-o", f"{stem}.labels.h5"),
                 ("train", "--labels", f"{stem}.labels.h5", "-q", "-o", f"{stem}.run.h5")):
        if not Path(step[-1]).exists():
            done = noisyctl(*step)
            if done.returncode:
                raise SystemExit(f"{' '.join(map(str, step))}: {done.stderr.strip()}")
    detected = noisyctl("detect", f"{stem}.run.h5", "--fail-above", "0.03", "--no-save", "--json")
    result = json.loads(detected.stdout)
    estimate = result["estimate"]
    primary = result["detectors"][result["primary"]]["metrics"]
    return {"name": name, "true": estimate.get("true_rate", 0.0), "rate": estimate["rate"], "low": estimate["low"],
            "high": estimate["high"], "gate_passed": detected.returncode == 0, "map": primary.get("map"),
            "words": estimate["words"].split(":")[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/unseen"), help="folder for the tables and runs")
    parser.add_argument("--rates", default="0,0.02", help="noise rates, comma-separated")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (x, y) in tables().items():
        write_csv(args.out / f"{name}.csv", x, y)
        for rate in map(float, args.rates.split(",")):
            row = run_one(args.out, name, rate)
            rows.append(row)
            shown = "-" if row["map"] is None else f"{row['map']:.3f}"
            print(f"{name:48s} true {row['true']:6.2%} estimate {row['rate']:6.2%} "
                  f"({row['low']:.2%}-{row['high']:.2%}) gate {'pass' if row['gate_passed'] else 'FAIL'} "
                  f"mAP {shown}  {row['words']}", flush=True)
    clean = [r for r in rows if r["true"] == 0]
    noisy = [r for r in rows if r["true"] > 0]
    points, share = NOISY_TOLERANCE
    print(f"clean runs: estimate <= 1%: {sum(r['rate'] <= 0.01 for r in clean)}/{len(clean)}; "
          f"the 3% gate passes: {sum(r['gate_passed'] for r in clean)}/{len(clean)}")
    print(f"noisy runs: within max({points:.1%} points, {share:.0%}): "
          f"{sum(abs(r['rate'] - r['true']) <= max(points, share * r['true']) for r in noisy)}/{len(noisy)}; "
          f"true rate inside the interval: {sum(r['low'] <= r['true'] <= r['high'] for r in noisy)}/{len(noisy)}")


if __name__ == "__main__":
    main()
