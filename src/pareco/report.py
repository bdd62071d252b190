"""Text and markdown renderings: a front's table, an export's report, a comparison's table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pareco.cost_metrics import get_metric
from pareco.front import front_points, point_metrics

if TYPE_CHECKING:
    from pareco.budget import AgreementCheck


def export_report(
    front: Mapping[str, Any],
    point: Mapping[str, Any],
    cost: str,
    budget: float,
    checks: Mapping[str, AgreementCheck],
    target: Path,
    formats: Sequence[str],
) -> dict[str, Any]:
    """report.json: the point, its costs and widths, and the accuracy checks it passed."""
    files = ["model.json", "weights.pt"] if "pt" in formats else []
    files += ["model.onnx"] if "onnx" in formats else []
    return {
        "run": front["run"],
        "method": front["method"],
        "model": front["model"],
        "budget": {"cost": cost, "ratio": budget},
        "point": point["id"],
        "cost_ratios": {m: point[f"{m}_ratio"] for m in point_metrics(front)},
        "costs": {m: point[m] for m in point_metrics(front)},
        "val_accuracy": point["val_accuracy"],
        "test_accuracy": point["test_accuracy"],
        "checks": {k: {**asdict(c), "accuracy": c.accuracy} for k, c in checks.items()},
        "widths": [
            {"group": g["name"], "channels": ch, "size": g["size"], "alpha": a}
            for g, ch, a in zip(front["groups"], point["channels"], point["alpha"])
        ],
        "files": files,
        "path": str(target),
    }


def export_report_markdown(report: Mapping[str, Any]) -> str:
    """report.md: :func:`export_report` for people."""
    b, r = report["budget"], report["cost_ratios"]
    lines = [
        f"# {report['model']} sub-network for {b['cost']} ≤ "
        + (f"{b['ms']:g} ms (predicted)" if b.get("ms") is not None else f"{b['ratio']:g}"),
        "",
        f"Run `{report['run']}` ({report['method']}), front point {report['point']}, "
        "chosen by validation accuracy.",
        "",
        "| cost | ratio | absolute |",
        "|---|---|---|",
        *(f"| {m} | {r[m]:.4f} | {report['costs'][m]:.6g} {get_metric(m).unit} |" for m in r),
        "",
        f"Validation accuracy {100 * report['val_accuracy']:.2f}%, "
        f"test accuracy {100 * report['test_accuracy']:.2f}% (front).",
        "",
        "| model checked | test accuracy | max logit difference |",
        "|---|---|---|",
        *(
            f"| {k} | {100 * c['accuracy']:.2f}% ({c['correct']}/{c['samples']}) "
            f"| {c['max_logit_diff']:.3g} |"
            for k, c in report["checks"].items()
        ),
        "",
        "| group | channels | of | alpha |",
        "|---|---|---|---|",
        *(
            f"| {w['group']} | {w['channels']} | {w['size']} | {w['alpha']:.4f} |"
            for w in report["widths"]
        ),
        "",
        f"Files: {', '.join(report['files'])}",
        "",
    ]
    lat = report.get("latency")
    if lat:
        rt = lat["runtime"]
        budget = "" if lat["budget_ms"] is None else f" (budget {lat['budget_ms']:g} ms)"
        lines[-1:-1] = [
            f"Latency on {rt['name']} ({rt.get('device', 'cpu')}, {rt.get('threads')} thread(s), "
            f"{rt.get('clock', 'wall')} clock): predicted {lat['predicted_ms']:.3f} ms, measured "
            f"{lat['measured_ms']:.3f} ms{budget}.",
            "",
        ]
    return "\n".join(lines)


def compare_markdown(result: Mapping[str, Any]) -> str:
    """The comparison as a markdown table, with the conventions it was computed under."""
    cost, (lo, hi) = result["cost"], result["cost_range"]
    ref = result["hypervolume_reference"]
    budgets = result["budgets"]
    header = ["run", "method", "objective", "points", f"mean test error [{lo:.3f}, {hi:g}]",
              "hypervolume", *(f"acc @ {100 * b:g}%" for b in budgets)]  # fmt: skip
    lines = [
        f"Fronts under the {cost} ratio: selected on validation, reported on test. Mean test "
        f"error = area under the error–cost curve / range width; hypervolume reference = "
        f"(cost ratio {ref['cost_ratio']:g}, error {ref['error']:g}); acc @ budget = test accuracy "
        "of the front point most accurate on validation within the budget.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in result["runs"]:
        acc = [
            "—" if a["test_accuracy"] is None else f"{100 * a['test_accuracy']:.2f}%"
            for a in r["accuracy_at"]
        ]
        cells = [r["run"], r["method"], r["objective"], str(r["front_points"]),
                 f"{100 * r['mean_test_error']:.2f}%", f"{r['hypervolume']:.4f}", *acc]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_front_table(front: Mapping[str, Any], cost: str | None = None) -> str:
    """The front under ``cost`` (default: the run's objective) as aligned text, with metrics."""
    cost = cost or front["cost"]
    ms = "latency" in point_metrics(front)  # predicted milliseconds beside the ratios
    shown = ("flops", "memory", "params", *(("latency",) if ms else ()))
    own = () if cost in shown else (cost,)  # a user's metric gets a column of its own
    header = ("id", "FLOPs ratio", "memory ratio", "params ratio", *(("latency",) if ms else ()),
              *(f"{c} ratio" for c in own), "val acc", "test acc", "source")  # fmt: skip
    rows = [header]
    for p in front_points(front, cost):
        rows.append((
            str(p["id"]), f"{p['flops_ratio']:.3f}", f"{p['memory_ratio']:.3f}",
            f"{p['params_ratio']:.3f}",
            *((get_metric("latency").show(p["latency"]),) if ms else ()),
            *(f"{p[c + '_ratio']:.3f}" for c in own),
            f"{100 * p['val_accuracy']:.2f}%", f"{100 * p['test_accuracy']:.2f}%", p["source"],
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    m = front["metrics"][cost]
    lo, hi = m["cost_range"]
    acc = ", ".join(
        f"{100 * a['budget']:g}%: "
        + ("—" if a["test_accuracy"] is None else f"{100 * a['test_accuracy']:.2f}%")
        for a in m["accuracy_at"]
    )
    shape = front.get("input_shape")
    rows_are = "samples" if shape is not None and len(shape) != 3 else "images"  # text, ...
    lines += [
        "",
        f"front under {cost}: {len(rows) - 1} of {len(front['points'])} candidates "
        f"(selected on {front['samples']['val']} validation {rows_are}, reported on "
        f"{front['samples']['test']} test {rows_are})",
        f"mean test error over {cost} ratio [{lo:.3f}, {hi:g}]: {100 * m['mean_test_error']:.2f}%; "
        f"hypervolume (ref cost 1, error 1): {m['hypervolume']:.4f}",
        f"test accuracy at {cost} budget: {acc}",
    ]
    return "\n".join(lines)
