"""How far a training length is from convergence: test accuracy at uniform widths of Slim runs
of different lengths (issue #20: choose the paper regime's epochs from Slim at 15 and 30 epochs).

Reads each run's `eval.json` (BN-recalibrated test accuracy at the run's `eval_widths`) and
`config.json`, writes a small summary (default docs/results/compare_paper/convergence.json) and
prints a markdown table. Runs that have not finished are listed as such.

    python benchmarks/convergence.py runs/paper/converge/slim-e15 runs/paper/slim-s0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "results" / "compare_paper" / "convergence.json"
    )
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        config = json.loads((run / "config.json").read_text())
        row = {"run": run.name, "method": config["method"], "epochs": config["epochs"],
               "seed": config["seed"]}  # fmt: skip
        if (run / "eval.json").exists():
            ev = json.loads((run / "eval.json").read_text())
            row.update(
                train_hours=ev["train_seconds"] / 3600,
                accuracy={str(r["width"]): r["test_accuracy"] for r in ev["uniform"]},
            )
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else []
    merged = {r["run"]: r for r in previous}
    merged.update({r["run"]: r for r in rows if "accuracy" in r or r["run"] not in merged})
    args.out.write_text(
        json.dumps(sorted(merged.values(), key=lambda r: r["epochs"]), indent=1) + "\n"
    )
    widths = sorted({w for r in merged.values() for w in r.get("accuracy", {})}, key=float)
    print(
        "| run | method | epochs | seed | train (h) | "
        + " | ".join(f"acc @ {w} (%)" for w in widths)
        + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(widths))
    for r in sorted(merged.values(), key=lambda r: r["epochs"]):
        if "accuracy" not in r:
            print(
                f"| {r['run']} | {r['method']} | {r['epochs']} | {r['seed']} | not finished |"
                + " |" * len(widths)
            )
            continue
        cells = " | ".join(f"{100 * r['accuracy'][w]:.2f}" for w in widths)
        print(
            f"| {r['run']} | {r['method']} | {r['epochs']} | {r['seed']} | {r['train_hours']:.2f} | {cells} |"
        )


if __name__ == "__main__":
    main()
