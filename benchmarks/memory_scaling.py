"""Peak memory of detect, prune, correct and report as the number of samples grows 10x.

Generates run files of 100,000 and 1,000,000 samples x 100 epochs (the generator of
large_file.py, plus late-epoch class probabilities), then runs each command in a fresh process and
records its peak resident memory. Streaming commands should stay nearly flat: what grows with N is
one number (or one row of C probabilities) per sample, not N x epochs.

    .venv/bin/python benchmarks/memory_scaling.py        # ~10 minutes, ~3.5 GB of disk under /tmp
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from large_file import generate  # noqa: E402

from noisyctl.store import write_field  # noqa: E402

RUN = """
import resource, sys, time
from noisyctl.cli import create_app
started = time.perf_counter()
try:
    create_app()(sys.argv[1:], prog_name="noisyctl", standalone_mode=False)
finally:
    print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - started)
"""


def measure(*args) -> tuple[float, float]:
    done = subprocess.run([sys.executable, "-c", RUN, *map(str, args)], capture_output=True, text=True,
                          env={"NOISYCTL_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"})
    line = next((l for l in done.stdout.splitlines() if l.startswith("PEAK")), None)
    if done.returncode or line is None:
        raise SystemExit(f"noisyctl {' '.join(map(str, args))} failed:\n{done.stderr[-2000:]}")
    _, peak, seconds = line.split()
    return float(peak), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    console = Console(width=120)
    steps = {
        "detect (loss, ema-loss, gmm-loss)": lambda run, d: ("detect", run, "-d", "loss", "-d", "ema-loss",
                                                             "-d", "gmm-loss", "-k", "10"),
        "prune --ratio 0.1": lambda run, d: ("prune", run, "-d", "loss", "--ratio", "0.1", "-o", d / "pruned.h5"),
        "correct -c consensus": lambda run, d: ("correct", run, "-c", "consensus", "-d", "gmm-loss"),
        "report --png": lambda run, d: ("report", run, "--png", d / "png"),
    }
    results: dict[str, dict[int, tuple[float, float]]] = {name: {} for name in steps}
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            d = Path(folder)
            run = d / "run.h5"
            started = time.perf_counter()
            generate(run, size, args.epochs)
            with h5py.File(run, "r+") as h5:  # late-epoch class probabilities, as train records them
                given = h5["samples/given_label"][:]
                probs = np.full((size, 10), 0.02, dtype=np.float16)
                probs[np.arange(size), given] = 0.82
                write_field(h5, "probs/late_mean", probs)
            console.print(f"{size:,} x {args.epochs}: generated in {time.perf_counter() - started:.0f} s, "
                          f"{run.stat().st_size / 2**30:.2f} GiB")
            for name, make in steps.items():
                results[name][size] = measure(*make(run, d))
                console.print(f"  {name}: {results[name][size][0]:,.0f} MB peak, {results[name][size][1]:.1f} s")
    table = Table(title=f"peak memory (fresh process each, interpreter and imports included), {args.epochs} epochs")
    table.add_column("command")
    for size in args.sizes:
        table.add_column(f"{size:,} samples", justify="right")
    table.add_column("ratio", justify="right")
    for name, by_size in results.items():
        cells = [f"{by_size[s][0]:,.0f} MB ({by_size[s][1]:.1f} s)" for s in args.sizes]
        ratio = by_size[args.sizes[-1]][0] / by_size[args.sizes[0]][0]
        table.add_row(name, *cells, f"{ratio:.2f}x")
    console.print(table)


if __name__ == "__main__":
    main()
