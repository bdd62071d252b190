"""How a search history's loss depends on cost, and where its bisections missed their targets.

The search (PareCO's during training, TwoStage's on frozen weights) scores each proposal on one
or two training batches. This prints, per run, the lowest and the median search loss in bands of
the cost ratio, and, among the GP proposals, how many reached their target cost within the
tolerance and where the others aimed and landed. A loss that no longer falls with cost leaves
the scalarization no reason to go wide, so targets at the wide end are missed, and the front's
non-dominated proposals end early (see ``front_candidates.py``).

    python benchmarks/search_loss_by_cost.py runs/paper/twostage-flops-s0 runs/paper/twostage-flops-s1
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path
from typing import Any

from pareco.search import History

BANDS = (0.15, 0.30, 0.45, 0.60, 0.75, 0.90, 1.0)


def loss_by_cost(records: list[dict[str, Any]], bands: tuple[float, ...] = BANDS) -> list[dict]:
    """Per band [lo, hi) of the cost ratio (the last one closed): proposals scored in it, their
    lowest and median loss (None for an empty band)."""
    rows = []
    for k, (lo, hi) in enumerate(itertools.pairwise(bands)):
        last = k == len(bands) - 2
        losses = [
            float(r["loss"])
            for r in records
            if r.get("loss") is not None and lo <= r["cost"] and (r["cost"] < hi or last)
        ]
        rows.append({
            "band": [lo, hi],
            "n": len(losses),
            "min": min(losses) if losses else None,
            "median": statistics.median(losses) if losses else None,
        })  # fmt: skip
    return rows


def misses(records: list[dict[str, Any]]) -> dict[str, Any]:
    """GP proposals, those that hit their target, and for the others: target quartiles and the
    median of cost − target."""
    gp = [r for r in records if r.get("kind") == "gp"]
    missed = [r for r in gp if r.get("hit") is False]
    out: dict[str, Any] = {"gp": len(gp), "hits": sum(1 for r in gp if r.get("hit")),
                           "missed": len(missed)}  # fmt: skip
    if len(missed) >= 2:
        targets = [float(r["target_cost"]) for r in missed]
        out["target_quartiles"] = statistics.quantiles(targets, n=4)
        out["median_cost_minus_target"] = statistics.median(
            float(r["cost"]) - t for r, t in zip(missed, targets)
        )
    return out


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories with a history.jsonl")
    args = p.parse_args()
    for run in args.runs:
        path = run / "history.jsonl"
        if not path.is_file():
            raise SystemExit(f"search_loss_by_cost: {path} not found (a PareCO run, or a TwoStage "
                             "run after `pareco search`)")  # fmt: skip
        records = History.read_records(path)
        m = misses(records)
        print(f"{run.name}: {m['hits']} of {m['gp']} GP proposals hit their target", end="")
        if "target_quartiles" in m:
            q = " / ".join(f"{t:.2f}" for t in m["target_quartiles"])
            print(f"; the {m['missed']} misses aimed at {q} (quartiles) and landed "
                  f"{m['median_cost_minus_target']:+.3f} from it (median)", end="")  # fmt: skip
        print()
        print("  cost band      n   lowest loss  median loss")
        rows = loss_by_cost(records)
        for k, row in enumerate(rows):
            lo, hi = row["band"]
            close = "]" if k == len(rows) - 1 else ")"
            print(f"  [{lo:.2f}, {hi:.2f}{close} {row['n']:5d}   {_f(row['min']):>11}  "
                  f"{_f(row['median']):>11}")  # fmt: skip


if __name__ == "__main__":
    main()
