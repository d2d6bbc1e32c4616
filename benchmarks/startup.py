"""Start-up time and peak memory of commands that never train, with and without torch imported.

Until torch was imported lazily, every command paid for it at start-up (``augment.py`` imported it
at module level, and ``training`` imported ``augment``). This script runs each command twice, side
by side: as noisyctl now starts, and with ``import torch`` first, as it started before. Each figure
is the median of ``--repeat`` runs in fresh processes.

    .venv/bin/python benchmarks/startup.py
    .venv/bin/python benchmarks/startup.py --run path/to/run.h5   # also time `detect RUN -d loss`
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs the CLI in a child process and prints (seconds, peak RSS in MB, torch imported?) as JSON.
CHILD = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run([sys.executable, "-c", sys.argv[1]] + sys.argv[2:], capture_output=True)
seconds = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps([seconds, peak_mb, done.returncode, done.stdout.decode()[-200:]]))
"""
NOW = ("import sys\nfrom noisyctl.cli import main\ntry:\n    main()\nfinally:\n"
       "    print('TORCH', 'torch' in sys.modules)")
BEFORE = "import torch\n" + NOW

COMMANDS = (["--version"], ["plugins"], ["prune", "--help"], ["report", "--help"], ["detect", "--help"])


def measure(program: str, argv: list[str], repeat: int) -> tuple[float, float, bool]:
    results = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", CHILD, program, *argv], capture_output=True, text=True,
                             check=True)
        seconds, peak_mb, returncode, tail = json.loads(out.stdout)
        if returncode != 0:
            raise SystemExit(f"noisyctl {' '.join(argv)} failed (exit {returncode})")
        results.append((seconds, peak_mb, "TORCH True" in tail))
    return (statistics.median(r[0] for r in results), statistics.median(r[1] for r in results),
            results[0][2])


def digits_run(folder: Path) -> Path:
    """A short digits run to score (trained here: a few seconds)."""
    path = folder / "run.h5"
    subprocess.run([sys.executable, "-m", "noisyctl", "train", "-d", "digits", "-e", "3", "-o", str(path)],
                   check=True, capture_output=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--run", type=Path, help="a run file for `detect RUN -d loss` (default: train one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run = args.run or digits_run(Path(folder))
        commands = [*COMMANDS, ["detect", str(run), "-d", "loss", "--no-save"]]
        print(f"{'command':32s} {'now s':>7s} {'MB':>6s} {'torch?':>6s} | {'before s':>8s} {'MB':>6s} "
              f"| {'time ratio':>10s} {'memory ratio':>12s}")
        for argv in commands:
            now = measure(NOW, argv, args.repeat)
            before = measure(BEFORE, argv, args.repeat)
            label = " ".join("RUN" if a == str(run) else a for a in argv)
            print(f"{label:32s} {now[0]:7.2f} {now[1]:6.0f} {'yes' if now[2] else 'no':>6s} | {before[0]:8.2f} "
                  f"{before[1]:6.0f} | {now[0] / before[0]:10.2f} {now[1] / before[1]:12.2f}")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
