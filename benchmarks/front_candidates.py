"""Which networks the front keeps: the history's non-dominated proposals by search loss (the
faithful rule, DESIGN.md "After training") against every proposal of the history.

A PareCO or TwoStage front is taken from the proposals that are non-dominated in (cost, search
loss), the loss measured on one or two *training* batches; only those are recalibrated and
scored on validation. When that loss stops falling with cost (a network that fits its training
images at every width), the non-dominated set ends early and the front keeps no network between
its widest proposal and the full one, whatever the search proposed there. This evaluates *every*
scored proposal of each run on validation (BN recalibrated, as the front does), selects the
front on validation from all of them, reports it on test, and prints both fronts' metrics over
the same cost range, with the rank correlation between search loss and validation error and,
given ``--slim``, the Slim front of the same seed for reference. The whole-history front is a
deviation from the paper (``pareco front RUN --proposals all``, not the default); here it is
cached as ``front_all_history.json`` in each run directory, beside the faithful front.json.

    python benchmarks/front_candidates.py runs/paper/pareco-flops-s0 runs/paper/pareco-flops-s1 \\
        --slim runs/paper/slim-s0 runs/paper/slim-s1

Each run costs one recalibration and one validation pass per distinct proposal: 728–1064 s for
the 182 scored proposals of a paper-regime PareCO run (ResNet-20 w8, one thread, beside two
training jobs on two cores); a TwoStage history of 1000, over an hour.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_analysis import BUDGETS, _front_summary, metrics

from pareco.atomic import write_text_atomic
from pareco.front import build_front, ensure_front, open_run

CACHE = "front_all_history.json"


def whole_history_front(run_dir: Path, threads: int) -> tuple[dict[str, Any], float | None]:
    """The front selected on validation from every proposal (cached), and the seconds it took
    (None when read from the cache)."""
    path = run_dir / CACHE
    if path.is_file():
        return json.loads(path.read_text()), None
    torch.set_num_threads(threads)
    start = time.perf_counter()
    run = open_run(run_dir)
    front = build_front(run, proposals="all", progress=False)
    write_text_atomic(path, json.dumps(front) + "\n")
    return front, time.perf_counter() - start


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (ties broken by order; the losses here are continuous)."""
    if len(x) < 3:
        return float("nan")

    def ranks(v: list[float]) -> torch.Tensor:
        r = torch.empty(len(v), dtype=torch.float64)
        r[torch.tensor(v, dtype=torch.float64).argsort()] = torch.arange(
            len(v), dtype=torch.float64
        )
        return r

    a, b = ranks(x), ranks(y)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def describe(run_dir: Path, threads: int) -> dict[str, Any]:
    """Both fronts of one run under its cost objective, their metrics over [cost(smallest), 1],
    and how search loss ranks the proposals against validation error."""
    faithful = ensure_front(run_dir, progress=False)
    whole, seconds = whole_history_front(run_dir, threads)
    cost = whole["cost"]
    key = f"{cost}_ratio"
    lo = min(p[key] for p in whole["points"])
    rows = {}
    for name, front in (("faithful", faithful), ("whole history", whole)):
        points = _front_summary(front, cost)["points"]
        rows[name] = metrics(points, lo)
        below_full = [p["cost_ratio"] for p in points if p["cost_ratio"] < 1.0 - 1e-9]
        rows[name]["widest_below_full"] = max(below_full) if below_full else None
    history = [p for p in whole["points"] if p["source"] == "history"]
    gap = rows["faithful"]["widest_below_full"] or 0.0
    above = [p for p in history if p[key] > gap + 1e-9]
    return {
        "run": str(run_dir),
        "cost": cost,
        "lo": lo,
        "seconds": seconds,
        "fronts": rows,
        "proposals": len(history),
        "proposals_above_gap": len(above),
        "spearman_all": spearman(
            [p["search_loss"] for p in history], [1 - p["val_accuracy"] for p in history]
        ),
        "spearman_above_gap": spearman(
            [p["search_loss"] for p in above], [1 - p["val_accuracy"] for p in above]
        ),
    }


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def table(results: list[dict[str, Any]]) -> str:
    budgets = [b for b in BUDGETS if b < 1.0]
    head = ["run", "front", "points", "widest below full", "AUC", "linear AUC"]
    head += [f"acc @ {int(100 * b)}% (%)" for b in budgets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        for name, m in r["fronts"].items():
            widest = m.get("widest_below_full")
            cells = [
                Path(r["run"]).name,
                name,
                str(m["points"]),
                "–" if widest is None else f"{widest:.3f}",
                f"{m['auc']:.4f}",
                f"{m['auc_linear']:.4f}",
                *(_pct(m["accuracy_at"].get(str(b))) for b in budgets),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished PareCO or TwoStage run directories")
    p.add_argument("--slim", nargs="*", type=Path, default=[],
                   help="Slim runs of the same seeds, in the same order (reference rows)")  # fmt: skip
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    if args.slim and len(args.slim) != len(args.runs):
        p.error(f"--slim takes one Slim run per run ({len(args.runs)}), got {len(args.slim)}")
    results = []
    for i, run_dir in enumerate(args.runs):
        r = describe(run_dir, args.threads)
        if args.slim:
            slim = ensure_front(args.slim[i], progress=False)
            r["fronts"]["Slim (same seed)"] = metrics(
                _front_summary(slim, r["cost"])["points"], r["lo"]
            )
        took = "cached" if r["seconds"] is None else f"{r['seconds']:.0f} s"
        print(
            f"{run_dir.name} ({r['cost']}, {took}): {r['proposals']} proposals, "
            f"{r['proposals_above_gap']} costlier than the faithful front's widest point below the "
            f"full network; Spearman(search loss, validation error) {r['spearman_all']:+.2f} over "
            f"all, {r['spearman_above_gap']:+.2f} over those",
            flush=True,
        )
        results.append(r)
    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
