"""Figures of fronts: test error against cost, and the channels each front point keeps per group.

Drawn with matplotlib's object API (``Figure`` + the Agg canvas), never ``pyplot``: no global
state, no display needed, safe to call from any thread or a headless machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pareco.atomic import atomic_path

#: Axis label of each cost, as a ratio to the full network.
COST_LABELS = {
    "flops": "FLOPs ratio",
    "macs": "MACs ratio",
    "memory": "peak activation memory ratio",
    "params": "parameter ratio",
    "latency": "predicted latency ratio",
}


@dataclass(frozen=True)
class Curve:
    """One front drawn as the error a budget buys: a step at every front point.

    Attributes:
        label: legend entry.
        cost: ``k`` cost ratios, increasing.
        error: ``k`` test errors in [0, 1], one per point.
    """

    label: str
    cost: Sequence[float]
    error: Sequence[float]


@dataclass(frozen=True)
class WidthLine:
    """The channels one sub-network keeps in every searchable group.

    Attributes:
        label: legend entry (cost and accuracy of the point, say).
        channels: ``dim`` channel counts.
    """

    label: str
    channels: Sequence[int]


def plot_fronts(
    panels: Mapping[str, Sequence[Curve]],
    path: str | Path,
    title: str = "",
    extend_to: float | None = 1.0,
) -> Path:
    """One panel per cost (key of ``panels``: flops, memory, ...), curves overlaid in each.

    Each curve is drawn post-step: between two front points, the error is that of the cheaper one,
    which is what a budget in that range buys. Past the last point the curve stays flat up to
    ``extend_to`` (dotted: no point there, the last one still fits).
    """
    return _save(fronts_figure(panels, title, extend_to), path)


def fronts_figure(
    panels: Mapping[str, Sequence[Curve]], title: str = "", extend_to: float | None = 1.0
) -> Figure:
    """The figure :func:`plot_fronts` writes (for tests and notebooks)."""
    fig = Figure(figsize=(5.2 * len(panels), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (cost, curves) in zip(axes, panels.items()):
        for curve in curves:
            errors = [100.0 * e for e in curve.error]
            (line,) = ax.plot(curve.cost, errors, drawstyle="steps-post", marker="o", ms=3.5,
                              label=curve.label)  # fmt: skip
            if errors and extend_to is not None and curve.cost[-1] < extend_to:
                ax.plot([curve.cost[-1], extend_to], [errors[-1]] * 2, ls=":",
                        color=line.get_color())  # fmt: skip
        ax.set_xlabel(COST_LABELS.get(cost, f"{cost} ratio"))
        ax.set_ylabel("test error (%)")
        ax.grid(alpha=0.3)
        if any(len(c.cost) for c in curves):
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_widths(
    groups: Sequence[str],
    sizes: Sequence[int],
    lines: Sequence[WidthLine],
    path: str | Path,
    title: str = "",
) -> Path:
    """Channels per searchable group, one line per sub-network, over the full network's sizes.

    The x axis names each group by its first layer (as ``net.space.describe()`` does), so the
    plot can be read against the model. The full network is drawn as grey bars behind the lines,
    so a front point at full width (identical to it) cannot hide it; each line is shifted
    sideways by a small step and has its own marker, so points with equal channels stay visible.
    """
    return _save(widths_figure(groups, sizes, lines, title), path)


def widths_figure(
    groups: Sequence[str], sizes: Sequence[int], lines: Sequence[WidthLine], title: str = ""
) -> Figure:
    """The figure :func:`plot_widths` writes (for tests and notebooks)."""
    n = len(groups)
    fig = Figure(figsize=(max(6.0, 0.42 * n + 3.0), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = list(range(n))
    ax.bar(x, list(sizes), width=0.8, color="0.88", edgecolor="0.6", label="full network", zorder=1)
    step = 0.5 / max(1, len(lines))
    markers = "osD^vP*Xh<>"
    for k, line in enumerate(lines):
        shift = (k - (len(lines) - 1) / 2) * step
        ax.plot([i + shift for i in x], list(line.channels), marker=markers[k % len(markers)],
                ms=4, lw=1.2, label=line.label, zorder=3 + k)  # fmt: skip
    ax.set_xticks(x)
    ax.set_xticklabels(list(groups), rotation=60, ha="right", fontsize=7)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("channel group (its first layer)")
    ax.set_ylabel("channels")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    """Write atomically: a crash never leaves a truncated image where an old one stood."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
    return path
