"""Share of training time spent by PareCO's search, and the cost of one round at larger histories.

1. The README-sized Fashion-MNIST run (configs/fmnist_quick.yaml): seconds of training, and of
   them the seconds spent re-scoring the history, fitting the GP and proposing (target <= 5%).
   Trains the run, or reads a finished one with --run RUNDIR.
2. One GP fit + one round of M = 2 proposals at history sizes 100, 300 and 1000 (dim 24).

    python benchmarks/search_overhead.py [--run RUNDIR] [--config configs/fmnist_quick.yaml]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from search_fit_propose import time_rounds, warm_up

from pareco.search.history import History
from pareco.search.synthetic import ChainProblem


def run_share(run_dir: Path) -> None:
    summary = json.loads((run_dir / "eval.json").read_text())
    search = summary["search_seconds"]
    total = summary["train_seconds"]
    parts = {k: search[k] for k in ("rescore", "fit", "propose")}
    spent = sum(parts.values())
    config = json.loads((run_dir / "config.json").read_text())
    history = History.read_records(run_dir / "history.jsonl")
    print(f"run {run_dir}: {config['model']} {config['model_kwargs']}, {summary['steps']} steps, "
          f"{len(history)} proposals")  # fmt: skip
    print(f"training wall time (search included): {total:8.1f} s")
    for k, v in parts.items():
        print(f"  {k:<8} {v:8.1f} s  {100 * v / total:5.2f}%")
    print(f"  {'search':<8} {spent:8.1f} s  {100 * spent / total:5.2f}%   (target <= 5%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished pareco run (skips training)")
    parser.add_argument("--config", default="configs/fmnist_quick.yaml")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--dim", type=int, default=24)
    args = parser.parse_args()
    if args.run:
        run_share(args.run)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp, "run")
            cmd = [sys.executable, "-m", "pareco", "train", "--config", args.config,
                   "--out", str(out), "--no-progress"]  # fmt: skip
            subprocess.run(cmd, check=True, capture_output=True)
            run_share(out)
    torch.set_num_threads(2)
    warm_up()
    problem = ChainProblem(dim=args.dim, seed=0)
    print(f"\none GP fit + M = 2 proposals, dim {args.dim}:")
    print(f"{'history':>8} {'cold s':>8} {'warm s':>8}")
    for n in args.sizes:
        t = time_rounds(problem, n)
        print(f"{n:>8} {t['cold_total']:>8.2f} {t['warm_total']:>8.2f}")


if __name__ == "__main__":
    main()
