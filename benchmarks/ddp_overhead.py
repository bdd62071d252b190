"""DDP overhead: 2 processes x 1 thread (torchrun, gloo) against 1 process x 2 threads.

Same model, data, global batch and steps; both runs in this one invocation, one after the other
(each owns the 2 cores while it runs). The machines here have 2 cores, so the point is that the
overhead of two processes and their all-reduce is small, not a speed-up.

    python benchmarks/ddp_overhead.py [--model resnet20] [--epochs 1] [--train-subset 6400]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run(cmd: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{result.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--method", default="slim")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-subset", type=int, default=6400)
    args = parser.parse_args()
    common = ["--model", args.model, "--data", args.data, "--method", args.method,
              "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
              "--train-subset", str(args.train_subset), "--no-progress", "--device", "cpu",
              "--recal-batches", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        single, ddp = Path(tmp, "single"), Path(tmp, "ddp")
        run(
            [
                sys.executable,
                "-m",
                "pareco",
                "train",
                *common,
                "--threads",
                "2",
                "--out",
                str(single),
            ],
            env,
        )
        run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
             "-m", "pareco", "train", *common, "--threads", "1", "--out", str(ddp)], env)  # fmt: skip
        a = json.loads((single / "eval.json").read_text())
        b = json.loads((ddp / "eval.json").read_text())
    steps = a["steps"]
    imgs = steps * args.batch_size
    print(f"{args.model} {args.method}, {steps} sandwich steps of global batch {args.batch_size}")
    print(
        f"1 process x 2 threads:   {a['train_seconds']:7.1f} s  {imgs / a['train_seconds']:7.0f} img/s"
    )
    print(
        f"2 processes x 1 thread:  {b['train_seconds']:7.1f} s  {imgs / b['train_seconds']:7.0f} img/s"
    )
    print(f"ratio ddp / single:      {b['train_seconds'] / a['train_seconds']:7.3f}")
    acc_a = a["uniform"][-1]["test_accuracy"]
    acc_b = b["uniform"][-1]["test_accuracy"]
    print(f"test accuracy at full width: single {100 * acc_a:.2f}%, ddp {100 * acc_b:.2f}%")


if __name__ == "__main__":
    main()
