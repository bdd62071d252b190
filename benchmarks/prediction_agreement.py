"""How often trained runs agree: test accuracy of each run at one uniform width, and the share of
test images on which each pair of runs predicts the same class.

Two runs with equal accuracy are not therefore one network: this says whether their predictions
differ (docs/paper_regime.md uses it for three seed-0 runs that all read 91.54% at width 0.42).
BN is recalibrated on each run's own recalibration batches first, as its eval.json was.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/prediction_agreement.py RUN_DIR RUN_DIR [...] \
        [--width 0.42]   # default: the smallest width
"""

from __future__ import annotations

import argparse
import itertools

import torch

from pareco.recalibrate import recalibrate_bn
from pareco.run import load_run


@torch.no_grad()
def predictions(run_dir: str, width: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted classes, labels) of ``run_dir``'s network at uniform ``width`` on its test split."""
    run = load_run(run_dir)
    net = run.net
    alpha = net.space.smallest() if width is None else net.space.uniform(width)
    recalibrate_bn(net, alpha, run.recalibration())
    net.eval()
    pred, labels = [], []
    with net.widths(alpha):
        for x, y in run.data.eval_loader("test", 1000):
            pred.append(net(x).argmax(1))
            labels.append(y)
    return torch.cat(pred), torch.cat(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories trained on the same data")
    parser.add_argument(
        "--width", type=float, default=None, help="uniform width (default smallest)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    preds = {}
    for run in args.runs:
        pred, labels = predictions(run, args.width)
        preds[run] = pred
        print(f"{run}: test accuracy {(pred == labels).double().mean().item():.2%}")
    for a, b in itertools.combinations(args.runs, 2):
        same = (preds[a] == preds[b]).double().mean().item()
        print(f"{a} vs {b}: same class on {same:.2%} of the test images")


if __name__ == "__main__":
    main()
