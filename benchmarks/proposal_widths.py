"""Which widths a PareCO run trained: per-group mean width of its proposals, and how many of them
were close to uniform.

PareCO trains each proposal for ``tau`` steps (besides the largest and smallest networks, which
every step trains), so the proposals of ``history.jsonl`` are what the shared weights saw. A
cost objective that charges some groups little (peak memory: the late, low-resolution stages)
lets the search keep those groups wide; uniform widths narrow every group alike, and a run that
seldom trained such networks gives them poorly trained weights (the "uniform widths on PareCO's
weights" front of the comparison). This prints, per run, the mean width of each group over the
proposals (the one full-width proposal aside) and the share of proposals whose widths differ by
less than ``--spread`` across groups.

    python benchmarks/proposal_widths.py runs/paper/pareco-flops-s0 runs/paper/pareco-memory-s0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pareco.checkpoint import read_checkpoint_file
from pareco.search import History
from pareco.space import WidthSpace


def proposal_widths(rows: list[dict], spread: float) -> dict:
    """Per-group mean width over the proposals that are not the full network (``mean``), their
    count (``count``), and the share whose widths span less than ``spread`` (max − min across
    groups) among them (``near``) and among the search's own, GP-proposed ones (``near_gp``,
    ``gp``: the warm-up's uniform and random proposals aside)."""
    kept = [r for r in rows if r["kind"] != "full"]
    if not kept:
        raise SystemExit("proposal_widths: the history holds no proposal besides the full network")
    alphas = torch.tensor([r["alpha"] for r in kept], dtype=torch.float64)
    near = (alphas.max(dim=1).values - alphas.min(dim=1).values) < spread
    gp = torch.tensor([r["kind"] == "gp" for r in kept])
    return {
        "mean": alphas.mean(dim=0).tolist(),
        "count": len(kept),
        "near": float(near.double().mean()),
        "gp": int(gp.sum()),
        "near_gp": float(near[gp].double().mean()) if gp.any() else float("nan"),
    }


def read_run(run: Path) -> tuple[list[str], list[dict]]:
    """The searchable groups' names and the history of one PareCO run directory."""
    history = run / "history.jsonl"
    if not history.is_file():
        raise SystemExit(
            f"proposal_widths: {run} has no history.jsonl: pass a PareCO run directory"
        )
    space = WidthSpace.from_dict(read_checkpoint_file(run / "checkpoint.pt")["space"])
    return [g.name for g in space.groups if g.searchable], History.read_records(history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="PareCO run directories")
    parser.add_argument("--spread", type=float, default=0.1,
                        help="widths closer than this across groups count as uniform (default 0.1)")  # fmt: skip
    args = parser.parse_args()
    results = []
    for run in args.runs:
        names, rows = read_run(run)
        results.append((run.name, names, proposal_widths(rows, args.spread)))
    print("| group (mean width of the proposals) | " + " | ".join(r[0] for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for g, name in enumerate(results[0][1]):
        cells = [f"{r[2]['mean'][g]:.2f}" if g < len(r[2]["mean"]) else "" for r in results]
        print(f"| {name} | " + " | ".join(cells) + " |")
    cells = [f"{100 * r[2]['near']:.1f}% of {r[2]['count']}" for r in results]
    print(f"| near uniform (spread < {args.spread}), all proposals | " + " | ".join(cells) + " |")
    cells = [f"{100 * r[2]['near_gp']:.1f}% of {r[2]['gp']}" for r in results]
    print("| near uniform, GP proposals (after warm-up) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
