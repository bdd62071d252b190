"""Per-seed evaluation and the report of the method comparison (see compare_methods.py).

`evaluate_seed` builds, for one seed and each cost objective, the fronts of Slim, TwoStage and
PareCO and the two cross-evaluations, and writes the small summary docs/results/compare/s<seed>.json.
`report` reads every summary and writes docs/results.md: per-method means, and per-seed *paired*
differences of the area under the test-error–cost curve (AUC, lower is better) with a 95% t interval,
a paired t test with Holm's correction over every contrast and cost objective, and a two-sided sign
test. The report recomputes every front's metrics from the points a summary stores, so a change of
metric (the validation-chosen step curve, the interpolated AUC) applies to earlier seeds too.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
SUMMARIES = ROOT / "docs" / "results" / "compare"
COSTS = ("flops", "memory")
BUDGETS = (0.25, 0.5, 0.75, 1.0)
PLANNED_SEEDS = 5
#: The fronts compared per seed and cost objective.
VARIANTS = {
    "slim": "Slim (uniform widths on Slim's weights)",
    "twostage": "TwoStage (searched widths on TwoStage's weights)",
    "pareco": "PareCO (its own widths and weights)",
    "pareco_widths_on_slim": "PareCO's front widths on Slim's weights",
    "uniform_on_pareco": "uniform widths on PareCO's weights",
}
#: Paired differences reported (a − b; negative AUC difference = a is better) and what they tell.
CONTRASTS = [
    ("pareco", "slim", "PareCO vs Slim (the paper's comparison)"),
    ("pareco", "twostage", "PareCO vs TwoStage"),
    ("pareco_widths_on_slim", "slim", "better widths? searched vs uniform, both on Slim's weights"),
    ("pareco", "uniform_on_pareco", "better widths? searched vs uniform, both on PareCO's weights"),
    ("uniform_on_pareco", "slim", "better weights? uniform widths on PareCO's vs Slim's weights"),
]


def _front_summary(front: dict[str, Any], cost: str) -> dict[str, Any]:
    from pareco.front import front_points

    points = front_points(front, cost)
    return {
        "points": [
            {
                "cost_ratio": p[f"{cost}_ratio"],
                "val_accuracy": p["val_accuracy"],
                "test_accuracy": p["test_accuracy"],
                "channels": p["channels"],
            }
            for p in points
        ],
    }


def metrics(points: list[dict[str, Any]], lo: float) -> dict[str, Any]:
    """AUC (test error over [lo, 1]), hypervolume and accuracy at budgets of a front."""
    from pareco.front import summary_metrics

    cost = torch.tensor([p["cost_ratio"] for p in points], dtype=torch.float64)
    val = torch.tensor([p["val_accuracy"] for p in points], dtype=torch.float64)
    test = torch.tensor([p["test_accuracy"] for p in points], dtype=torch.float64)
    m = summary_metrics(cost, val, test, lo=lo, budgets=BUDGETS)
    return {
        "auc": m["auc"],
        "auc_linear": m["auc_linear"],
        "points": len(points),
        "mean_test_error": m["mean_test_error"],
        "hypervolume": m["hypervolume"],
        "accuracy_at": {str(a["budget"]): a["test_accuracy"] for a in m["accuracy_at"]},
    }


def _search_stats(run_dir: Path) -> dict[str, Any]:
    from pareco.front import read_history

    path = run_dir / "history.jsonl"
    if not path.exists():
        return {}
    records = read_history(path)
    gp = [r for r in records if r.get("kind") == "gp"]
    hits = [r for r in gp if r.get("hit")]
    from pareco.front import open_run

    space = open_run(run_dir).net.space
    alphas = torch.tensor([r["alpha"] for r in records], dtype=torch.float64)
    distinct = len({tuple(c) for c in space.channels(alphas).tolist()}) if records else 0
    return {
        "proposals": len(records),
        "distinct": distinct,
        "gp_proposals": len(gp),
        "gp_hits": len(hits),
        "gp_costs": [r["cost"] for r in gp],
    }


def evaluate_seed(root: Path, seed: int, summaries: Path = SUMMARIES, device: str = "cpu") -> None:
    from pareco.front import Candidate, build_front, ensure_front, open_run, uniform_sweep
    from pareco.samplers import rescoring_images

    torch.set_num_threads(1)
    start = time.perf_counter()
    slim_dir = root / f"slim-s{seed}"
    slim_run = open_run(slim_dir, device)
    summary: dict[str, Any] = {"seed": seed, "costs": {}, "runs": {}}
    cache = root / f"cross-s{seed}"
    cache.mkdir(exist_ok=True)
    for cost in COSTS:
        dirs = {
            "slim": slim_dir,
            "twostage": root / f"twostage-{cost}-s{seed}",
            "pareco": root / f"pareco-{cost}-s{seed}",
        }
        fronts = {k: ensure_front(d, device=device, progress=False) for k, d in dirs.items()}
        pareco_run = open_run(dirs["pareco"], device)
        cross_file = cache / f"{cost}.json"
        if cross_file.exists():
            cross = json.loads(cross_file.read_text())
        else:
            from pareco.front import front_points

            widths = [
                Candidate(torch.tensor(p["alpha"], dtype=torch.float64), "cross")
                for p in front_points(fronts["pareco"], cost)
            ]
            net = pareco_run.net
            sweep = uniform_sweep(net.space, lambda a, net=net, c=cost: net.cost_ratio(a, c), 16)
            cross = {
                "pareco_widths_on_slim": build_front(
                    slim_run, candidates=widths, device=device, progress=False
                ),
                "uniform_on_pareco": build_front(
                    pareco_run,
                    candidates=[Candidate(a, "uniform") for a in sweep],
                    device=device,
                    progress=False,
                ),
            }
            cross_file.write_text(json.dumps(cross) + "\n")
        fronts.update(cross)
        parts = {k: _front_summary(f, cost) for k, f in fronts.items()}
        lo = max(min(p["cost_ratio"] for p in v["points"]) for v in parts.values())
        for v in parts.values():
            v["metrics"] = metrics(v["points"], lo)
        summary["costs"][cost] = {"cost_range": [lo, 1.0], "fronts": parts}
    for d in sorted(root.glob(f"*-s{seed}")):
        if not (d / "eval.json").exists():
            continue
        info: dict[str, Any] = {
            "train_seconds": json.loads((d / "eval.json").read_text())["train_seconds"]
        }
        if (d / "search.json").exists():
            search = json.loads((d / "search.json").read_text())
            info["search_seconds"] = search["seconds"]
            if search.get("partial"):  # continued from a state that did not record the time
                info["search_seconds_partial"] = True
        info.update(_search_stats(d))
        config = json.loads((d / "config.json").read_text())
        if "proposals" in info and config["method"] == "pareco":
            info["scoring_images"] = rescoring_images(
                info["proposals"],
                config["num_sampled"],
                config["calib_size"] or config["batch_size"],
            )
        elif "proposals" in info:  # TwoStage: every candidate scored once on 2 training batches
            info["scoring_images"] = info["proposals"] * 2 * config["batch_size"]
        summary["runs"][d.name] = info
    summary["evaluate_seconds"] = time.perf_counter() - start
    summaries.mkdir(parents=True, exist_ok=True)
    out = summaries / f"s{seed}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")


# ------------------------------------------------------------------------------------------------
def paired(diffs: list[float]) -> dict[str, Any]:
    """Mean paired difference, its 95% t interval, the paired t test's two-sided p (NaN with
    fewer than 2 seeds), and a two-sided sign test."""
    from scipy import stats

    n = len(diffs)
    mean = statistics.mean(diffs)
    p_t = math.nan
    sd = math.nan
    if n > 1:
        sd = statistics.stdev(diffs)
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        if sd > 0:
            p_t = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
        else:
            p_t = 0.0 if mean != 0 else 1.0
    else:
        half = math.nan
    negative = sum(d < 0 for d in diffs)
    nonzero = sum(d != 0 for d in diffs)
    p_sign = stats.binomtest(negative, nonzero, 0.5).pvalue if nonzero else 1.0
    return {"n": n, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half],
            "negative": negative, "t_test_p": p_t, "sign_test_p": p_sign}  # fmt: skip


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of `m` p-values (family-wise error), in their given order.

    The k-th smallest p (k = 0, 1, ...) is multiplied by m − k, made non-decreasing along the
    sorted order and capped at 1. NaN p-values are left out of the family and stay NaN.
    """
    known = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    m = len(known)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for k, (p, i) in enumerate(sorted(known)):
        running = max(running, min(1.0, (m - k) * p))
        adjusted[i] = running
    return adjusted


def contrast_table(summaries: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every contrast under every cost objective: `paired` of its AUC differences, plus the
    Holm-adjusted t-test p over the whole family and the linear-AUC differences' `paired`."""
    table = {}
    for cost in COSTS:
        for a, b, _ in CONTRASTS:
            p = paired(_auc_diffs(summaries, cost, a, b))
            linear = _auc_diffs(summaries, cost, a, b, "auc_linear")
            p["linear"] = paired(linear) if linear else None
            table[(cost, a, b)] = p
    keys = list(table)
    for key, adj in zip(keys, holm([table[k]["t_test_p"] for k in keys])):
        table[key]["holm_p"] = adj
    return table


def _finding(what: str, p: dict[str, Any], planned: int) -> str:
    """One plain sentence on what a paired difference shows, and what it does not."""
    lo, hi = p["ci95"]
    if p["n"] < 2:
        return f"- {what}: one seed, no interval; nothing is claimed."
    if hi < 0:
        verdict = "a is better: the 95% interval lies below 0"
    elif lo > 0:
        verdict = "b is better: the 95% interval lies above 0"
    else:
        verdict = "not separated: the 95% interval contains 0"
    if (hi < 0 or lo > 0) and not p["holm_p"] < 0.05:
        verdict += f", but not after Holm's correction (adjusted p = {p['holm_p']:.2f})"
    elif hi < 0 or lo > 0:
        verdict += f", and after Holm's correction (adjusted p = {p['holm_p']:.3f})"
    tail = f"{p['negative']} of {p['n']} seeds favour a, sign test p = {p['sign_test_p']:.3f}"
    if p["n"] < planned:
        tail += f"; {p['n']} of {planned} planned seeds, so not a conclusion"
    return f"- {what}: {verdict} ({tail})."


def _pm(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    vals = [scale * v for v in values if v is not None]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.mean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def _scale_note(summaries: list[dict[str, Any]], convergence: Path | None = None) -> str:
    """What the full networks reached: how far from convergence the comparison stands.

    ``convergence`` is `benchmarks/convergence.py`'s summary (Slim trained for different lengths);
    when it holds two lengths, the note says what doubling the training added.
    """
    full = [
        100 * s["costs"]["flops"]["fronts"][k]["metrics"]["accuracy_at"]["1.0"]
        for s in summaries
        for k in ("slim", "twostage", "pareco")
    ]
    span = (
        f"{min(full):.1f}"
        if f"{min(full):.1f}" == f"{max(full):.1f}"
        else (f"{min(full):.1f}–{max(full):.1f}")
    )
    reached = (
        f"**Scale.** The full networks reach {span}% test accuracy "
        "(front points at 100% of the FLOPs, every method and seed)"
    )
    rows = json.loads(convergence.read_text()) if convergence and convergence.exists() else []
    rows = sorted((r for r in rows if "accuracy" in r), key=lambda r: r["epochs"])
    if len(rows) < 2:
        return (
            f"{reached}: these are short runs, not converged networks. What this page shows holds "
            "for this training length; whether the ordering holds after long training is not "
            "measured here."
        )
    short, long = rows[0], rows[-1]
    gains = [100 * (long["accuracy"][w] - short["accuracy"][w]) for w in long["accuracy"]]
    return (
        f"{reached}. Training Slim for {long['epochs']} epochs instead of {short['epochs']} "
        f"(seed {long['seed']}, `{convergence.name}`) added {min(gains):+.1f} to "
        f"{max(gains):+.1f} points at uniform widths {', '.join(long['accuracy'])}: the networks "
        "compared here are not fully converged, and whether the ordering holds after longer "
        "training is not measured."
    )


#: The most seeds `seeds_to_show` looks at; beyond it the report prints "> MOST_SEEDS".
MOST_SEEDS = 50


def _strictest_holm_t(n: int, family: int) -> float:
    """The |t| a paired t test on `n` seeds must exceed to pass Holm's strictest step over `family`
    tests (two-sided p < 0.05 / family): t(1 − 0.025 / family, n − 1)."""
    from scipy import stats

    return float(stats.t.ppf(1 - 0.025 / family, n - 1))


def _multiplicity_note(n: int) -> str:
    """How many intervals the page reports, what that means for one that excludes 0, and what
    ``n`` seeds can show at all after the correction."""
    k = len(CONTRASTS) * len(COSTS)
    chance = 1 - 0.95**k
    note = (
        f"**Many intervals.** The page reports {k} paired intervals ({len(CONTRASTS)} contrasts × "
        f"{len(COSTS)} cost objectives). If no method differed and they were independent, at least "
        f"one would exclude 0 by chance with probability {chance:.2f}: an interval that only just "
        "excludes 0 is weak evidence on its own. So every contrast also gets its paired t test's "
        f"p-value adjusted by Holm's step-down correction over the {k} tests (family-wise error "
        "5%): only a contrast whose adjusted p is below 0.05 is called shown."
    )
    if n < 2:
        return note
    t = _strictest_holm_t(n, k)
    df = f"{n - 1} degree" + ("s" if n > 2 else "")
    return note + (
        f" With {n} seeds, even the strongest contrast survives only if its two-sided p is below "
        f"0.05/{k}, that is |t| > {t:.2f} on {df} of freedom: its mean difference must "
        f"be at least {t / n**0.5:.2f} times the standard deviation of its per-seed differences. "
        f"The sign test cannot go below p = {2 * 0.5**n:.3f} with {n} seeds."
    )


def seeds_to_show(mean: float, sd: float, family: int, most: int = MOST_SEEDS) -> int | None:
    """The fewest seeds at which a paired t test would pass the strictest step of Holm's correction
    over `family` tests (two-sided p < 0.05 / family) *if* the per-seed differences kept this mean
    and standard deviation: the smallest n ≥ 2 with |mean| / (sd / √n) > t(1 − 0.025 / family, n − 1).

    A projection, not a measurement: with few seeds the SD is itself uncertain. 2 when sd is 0 and
    mean is not; None when no n up to `most` would do (or mean is 0).
    """
    if mean == 0:
        return None
    if sd == 0:
        return 2
    for n in range(2, most + 1):
        if abs(mean) / (sd / math.sqrt(n)) > _strictest_holm_t(n, family):
            return n
    return None


def _sizes_note(summaries: list[dict[str, Any]]) -> str:
    """Fronts of different sizes: say how many points each has on average."""
    cells = []
    for key in VARIANTS:
        counts = [
            s["costs"][c]["fronts"][key]["metrics"].get("points") for s in summaries for c in COSTS
        ]
        counts = [n for n in counts if n is not None]
        if counts:
            cells.append(f"{key} {statistics.mean(counts):.1f}")
    if not cells:
        return ""
    return (
        "**Fronts of different sizes.** Mean points per front (both cost objectives): "
        + ", ".join(cells)
        + ". The cross-evaluation 'PareCO's front widths on Slim's weights' takes only PareCO's "
        "front widths, against Slim's sweep of 16 uniform widths: a front with fewer points draws a "
        "coarser step curve, so its step AUC is handicapped; the linear AUC (curve drawn between "
        "consecutive points) handicaps sparse fronts less. The comparison is not at equal point "
        "counts; read those contrasts with that in mind."
    )


def _auc_diffs(
    summaries: list[dict[str, Any]], cost: str, a: str, b: str, key: str = "auc"
) -> list[float]:
    fronts = [s["costs"][cost]["fronts"] for s in summaries]
    if any(key not in f[v]["metrics"] for f in fronts for v in (a, b)):
        return []
    return [f[a]["metrics"][key] - f[b]["metrics"][key] for f in fronts]


def refresh_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """Recompute every front's metrics from its stored points (summaries keep the points)."""
    for part in summary["costs"].values():
        lo = part["cost_range"][0]
        for front in part["fronts"].values():
            if "points" in front:
                front["metrics"] = metrics(front["points"], lo)
    return summary


def _summary(summaries: list[dict[str, Any]], planned: int) -> list[str]:
    """The page in a few lines: which contrasts survive Holm's correction, which only exclude 0
    from their own interval, and which are not separated."""
    if len(summaries) < 2:
        return []
    table = contrast_table(summaries)
    shown, weak, not_shown = [], [], []
    for cost in COSTS:
        for a, b, what in CONTRASTS:
            p = table[(cost, a, b)]
            lo, hi = p["ci95"]
            line = f"{what}, {cost}: {p['mean']:+.4f} [{lo:+.4f}, {hi:+.4f}]"
            if hi < 0 or lo > 0:
                winner = VARIANTS[a if hi < 0 else b]
                text = (
                    f"- {line}, {p['negative']}/{p['n']} seeds favour a: {winner} is better "
                    f"(Holm-adjusted p = {p['holm_p']:.3f})."
                )
                (shown if p["holm_p"] < 0.05 else weak).append(text)
            else:
                not_shown.append(f"- {line}.")
    incomplete = (
        f" (only {len(summaries)} of {planned} planned seeds: not conclusions)"
        if len(summaries) < planned
        else ""
    )
    return [
        "## Summary",
        "",
        f"Paired AUC differences (a − b) that survive Holm's correction{incomplete}:",
        "",
        *(shown or ["- none."]),
        "",
        "Whose own 95% interval excludes 0, but not after the correction (not shown):",
        "",
        *(weak or ["- none."]),
        "",
        "Not separated (the interval contains 0), so not shown by this experiment:",
        "",
        *(not_shown or ["- none."]),
        "",
    ]


def _p(value: float) -> str:
    """A p-value for a table cell; '–' where there is none (one seed)."""
    return "–" if math.isnan(value) else f"{value:.3f}"


def _job_seconds(summary: dict[str, Any]) -> float:
    """Seconds of one-thread jobs a seed took: every training once, stage two, the evaluation."""
    total = summary["evaluate_seconds"]
    for name, info in summary["runs"].items():
        stage_two = name.startswith("twostage-") and "search_seconds" in info
        total += info["search_seconds"] if stage_two else info["train_seconds"]
    return total


def _at_least(summary: dict[str, Any]) -> str:
    """'≥' for a seed whose job-seconds miss part of a stage two (continued from an old state)."""
    return "≥" if any(i.get("search_seconds_partial") for i in summary["runs"].values()) else ""


def report(
    folder: Path = SUMMARIES,
    page: Path = ROOT / "docs" / "results.md",
    config: Path = ROOT / "configs" / "compare_fmnist.yaml",
    planned: int = PLANNED_SEEDS,
    title: str = "Method comparison on Fashion-MNIST (paired seeds)",
    command: str = "python benchmarks/compare_methods.py",
    note: str = "",
    jobs: int = 2,
) -> None:
    summaries = [refresh_metrics(json.loads(p.read_text())) for p in sorted(folder.glob("s*.json"))]
    if not summaries:
        raise SystemExit(f"no summaries in {folder}: run `compare_methods.py run` first")
    seeds = [s["seed"] for s in summaries]
    if not note and (Path(folder) / "note.md").exists():  # what the page must say about these runs
        note = (Path(folder) / "note.md").read_text().strip()
    config_text = Path(config).read_text()
    from pareco.config import read_config_file

    val_size = int(read_config_file(config).get("val_size", 5000))
    try:
        config_name = Path(config).resolve().relative_to(ROOT)
    except ValueError:
        config_name = Path(config)
    try:
        folder_name = Path(folder).resolve().relative_to(ROOT)
    except ValueError:
        folder_name = Path(folder)
    all_seeds = " ".join(str(i) for i in range(planned))
    # the options that name this experiment's configuration and summaries, where not the defaults
    where = "" if config_name == Path("configs/compare_fmnist.yaml") else f" --config {config_name}"
    where += "" if folder_name == Path("docs/results/compare") else f" --summaries {folder_name}"
    out = [
        f"# {title}",
        "",
        f"Produced by `{command} run{where} --seeds ...` (trainings, TwoStage "
        "searches, fronts and cross-evaluations; one small summary per seed in "
        f"`{folder_name}/`) and `{command} report{where}` (this page). "
        f"Seeds in this report: {', '.join(map(str, seeds))} ({len(seeds)} of {planned} planned).",
        "",
        *([note, ""] if note else []),
        *(
            [
                f"**Incomplete: {len(seeds)} of the {planned} planned seeds.** The tables "
                "below are what these seeds measured; no conclusion about the methods is drawn "
                "from them (one seed gives no interval at all, and few give wide ones). The other "
                f"seeds resume with `{command} run{where} --seeds {all_seeds}` (finished steps are "
                "skipped).",
                "",
            ]
            if len(seeds) < planned
            else []
        ),
        "Every run shares the model, data, epochs and trainer; each front is selected on the "
        f"{val_size:,}-image validation split and reported on the Fashion-MNIST test set (10,000 images). "
        "AUC = area under the test-error–cost-ratio curve over the common cost range [cost of the "
        "smallest network, 1]; lower is better. At cost c the step curve is the test error of the "
        "front point chosen *on validation* within c (the point `pareco export` would ship); the "
        "linear AUC draws it linearly between consecutive front points. Differences are paired by "
        "seed (the same seed gives every method the same data split, initialization and batch "
        "order).",
        "",
        f"Configuration (`{config_name}`):\n\n```yaml\n{config_text}```",
        "",
        _scale_note(summaries, Path(folder) / "convergence.json"),
        "",
        _multiplicity_note(len(summaries)),
        "",
        _sizes_note(summaries),
        "",
        *_summary(summaries, planned),
    ]
    table = contrast_table(summaries) if len(summaries) > 1 else {}
    for cost in COSTS:
        rows = {k: [s["costs"][cost]["fronts"][k] for s in summaries] for k in VARIANTS}
        lo = summaries[0]["costs"][cost]["cost_range"][0]
        out += [f"## Cost objective: {cost} (range [{lo:.3f}, 1])", ""]
        head = ["front", "points", "AUC", "linear AUC", "hypervolume",
                *(f"acc @ {int(100 * b)}% (%)" for b in BUDGETS)]  # fmt: skip
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key, label in VARIANTS.items():
            ms = [r["metrics"] for r in rows[key]]
            cells = [
                label,
                _pm([m.get("points") for m in ms if m.get("points") is not None], 1, 1),
                _pm([m["auc"] for m in ms], 1, 4),
                _pm([m.get("auc_linear") for m in ms if m.get("auc_linear") is not None], 1, 4),
                _pm([m["hypervolume"] for m in ms], 1, 4),
            ]
            cells += [_pm([m["accuracy_at"][str(b)] for m in ms], 100) for b in BUDGETS]
            out.append("| " + " | ".join(cells) + " |")
        findings = []
        floor = 2 / 2 ** len(seeds)
        if len(seeds) == 1:
            out += ["", "AUC differences of the one seed (a − b; negative: a is better): no "
                    "interval, t test or Holm adjustment until a second seed is in.", ""]  # fmt: skip
        else:
            out += ["", "Paired AUC differences (a − b; negative: a is better). The interval is a "
                    f"t interval over {len(seeds)} seeds; the t test's p is adjusted by Holm over "
                    f"all {len(CONTRASTS) * len(COSTS)} contrasts; with {len(seeds)} seeds the "
                    f"two-sided sign test cannot go below p = {floor:.4f}, even when every seed "
                    "agrees. 'Seeds to show, if it held': the fewest seeds at which this contrast's "
                    "t test would pass the strictest Holm step if its per-seed differences kept "
                    "the mean and standard deviation seen so far; a projection for planning "
                    "(few seeds estimate the SD poorly), not a result.", ""]  # fmt: skip
        out += [
            "| contrast | mean | 95% interval | t test p | Holm p | seeds a better | sign test p "
            "| linear AUC: mean [95%] | seeds to show, if it held |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for a, b, what in CONTRASTS:
            p = table.get((cost, a, b))
            if p is None:  # one seed: no family to adjust over
                p = paired(_auc_diffs(summaries, cost, a, b))
                linear = _auc_diffs(summaries, cost, a, b, "auc_linear")
                p["linear"] = paired(linear) if linear else None
            p.setdefault("holm_p", math.nan)
            lo95, hi95 = p["ci95"]
            interval = "–" if p["n"] < 2 else f"[{lo95:+.4f}, {hi95:+.4f}]"
            lin = p.get("linear")
            lin_cell = "–"
            if lin and lin["n"] > 1:
                lin_cell = f"{lin['mean']:+.4f} [{lin['ci95'][0]:+.4f}, {lin['ci95'][1]:+.4f}]"
            elif lin:  # one seed: its difference, no interval
                lin_cell = f"{lin['mean']:+.4f}"
            need = "–"
            if p["n"] > 1:
                n_show = seeds_to_show(p["mean"], p["sd"], len(CONTRASTS) * len(COSTS))
                need = f"> {MOST_SEEDS}" if n_show is None else str(n_show)
            out.append(
                f"| {what} | {p['mean']:+.4f} | {interval} | {_p(p['t_test_p'])} | "
                f"{_p(p['holm_p'])} | {p['negative']}/{p['n']} | {p['sign_test_p']:.3f} | "
                f"{lin_cell} | {need} |"
            )
            findings.append(_finding(what, p, planned))
        out += ["", *findings, ""]
    job_seconds = [_job_seconds(s) for s in summaries]
    out += ["## Wall time and search statistics", "",
            "Job-seconds per seed (each training once, TwoStage's two stage-two searches, the "
            "evaluation): " + ", ".join(f"seed {s['seed']} {_at_least(s)}{j:.0f} s" for s, j in
            zip(summaries, job_seconds)) + f". At {jobs} job{'s' * (jobs > 1)} at a time, the quietest seed (fewest job-seconds) gives "
            f"{min(job_seconds) / jobs / 60:.0f} min per seed, {planned * min(job_seconds) / jobs / 3600:.1f} h "
            f"for {planned} seeds.", "",
            "Scoring images: PareCO's re-scoring of its history over the run, TwoStage's "
            "stage-two scoring (2 training batches per candidate). Wall times are as the runs "
            f"recorded them, {jobs} one-thread job{'s' * (jobs > 1)} at a time; a run that shared the machine with "
            "other work or was paused took longer, so they are not speed figures.", "",
            "| run | train (s) | stage two (s) | proposals | distinct channel vectors | scoring images | GP proposals hit ±0.02 |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in summaries:
        for name, info in sorted(s["runs"].items()):
            hits = f"{info['gp_hits']}/{info['gp_proposals']}" if info.get("gp_proposals") else "–"
            stage2 = f"{info['search_seconds']:.0f}" if "search_seconds" in info else "–"
            if info.get("search_seconds_partial"):
                stage2 = f"≥{stage2} (part)"
            out.append(f"| {name} | {info['train_seconds']:.0f} | {stage2} | "
                       f"{info.get('proposals', '–')} | {info.get('distinct', '–')} | "
                       f"{info.get('scoring_images', '–')} | {hits} |")  # fmt: skip
    page.write_text("\n".join(out) + "\n")
    print("\n".join(out))
