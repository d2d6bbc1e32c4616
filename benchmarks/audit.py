"""How far to trust an audit (``correct --audit N``, then ``import-review``): over repeated random
samples of the unflagged labels, how often the 90% interval holds the true noise rate, and how
wide it is, for audits of several sizes and noise among the unflagged samples.

A dataset of 1,800 samples: 20 flagged, 13 of them wrong (reviewed whole), and the rest holding
the given share of wrong labels, which the audit samples. Prints one row per setting.

    .venv/bin/python benchmarks/audit.py            # 500 audits per setting, about a minute
"""

from __future__ import annotations

import argparse

import numpy as np

from noisyctl.estimate.audit import AuditStratum, audited_noise_rate

SAMPLES, FLAGGED, FLAGGED_WRONG = 1800, 20, 13


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--audits", type=int, default=500, help="random audits per setting")
    parser.add_argument("--sizes", default="50,100,300,1000", help="random samples an audit reviews")
    parser.add_argument("--shares", default="0,0.005,0.02,0.05,0.1,0.3", help="wrong labels among the unflagged")
    args = parser.parse_args()
    rest = SAMPLES - FLAGGED
    rng = np.random.default_rng(0)
    print(f"{'audit':>6} {'unflagged wrong':>16} {'true rate':>10} {'interval holds it':>18} {'mean width':>11}")
    for size in (int(v) for v in args.sizes.split(",")):
        for share in (float(v) for v in args.shares.split(",")):
            wrong = int(round(share * rest))
            truth = (FLAGGED_WRONG + wrong) / SAMPLES
            held, widths = 0, []
            for trial in range(args.audits):
                seen = int((rng.choice(rest, size, replace=False) < wrong).sum())
                strata = [AuditStratum("flagged", FLAGGED, FLAGGED, FLAGGED_WRONG),
                          AuditStratum("random", rest, size, seen)]
                estimate = audited_noise_rate(strata, draws=4000, seed=trial)
                held += estimate.low - 1e-12 <= truth <= estimate.high + 1e-12
                widths.append(estimate.high - estimate.low)
            print(f"{size:>6} {share:>16.1%} {truth:>10.2%} {held / args.audits:>18.0%} {np.mean(widths):>11.2%}")


if __name__ == "__main__":
    main()
