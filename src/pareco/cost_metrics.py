"""The cost metrics pareco knows, in one registry: what config, CLI, front, report and export read.

A :class:`Metric` is one registered object: its name, how it is shown (label, unit, scale of the
absolute value), where it may be used (the training/search objective, a front's selection, a
figure panel) and how a batch of widths is priced. Four are exact polynomials of the channel
counts, priced by the slimmable net itself (:mod:`pareco.cost`); ``latency`` is predicted from a
measured per-layer table (:mod:`pareco.latency`) and is only available where a table is.

``Pricer(net, latency=model)`` prices width vectors under every metric available for a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from pareco.errors import ParecoError

if TYPE_CHECKING:
    from pareco.latency import LatencyModel
    from pareco.slimming import SlimmableNet


class UnknownMetric(ParecoError, ValueError):
    """A cost name that is not registered, or not usable where it was asked for (one line)."""


@dataclass(frozen=True)
class Metric:
    """One cost metric.

    Attributes:
        name: the key in configs, front.json, ``--cost`` (``flops``).
        label: how tables and figures name it (``FLOPs``).
        unit: the unit of the absolute value as stored (``FLOPs``, ``ms``).
        objective: may be the search's cost (``cost:`` of a training run).
        front: a front is selected under it (``pareco export --cost``).
        plotted: a panel of its own in front.png and compare.png.
        needs_table: priced from a latency table, so only where the run has one.
        show: the absolute value as a short text (``12.3 ms``).
    """

    name: str
    label: str
    unit: str
    objective: bool
    front: bool
    plotted: bool
    needs_table: bool = False
    show: Callable[[float], str] = lambda v: f"{v:.4g}"


_REGISTRY: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` to the registry (a name registered twice is refused)."""
    if metric.name in _REGISTRY:
        raise ValueError(f"cost metric {metric.name!r} is already registered")
    _REGISTRY[metric.name] = metric
    return metric


def all_metrics() -> tuple[Metric, ...]:
    """Every registered metric, in registration order."""
    return tuple(_REGISTRY.values())


def names(role: str | None = None, *, tables: bool = True) -> tuple[str, ...]:
    """Names of the metrics usable as ``role`` (``objective``, ``front``, ``plotted``; None: all).

    ``tables=False`` leaves out the metrics that need a latency table.
    """
    return tuple(
        m.name
        for m in _REGISTRY.values()
        if (role is None or getattr(m, role)) and (tables or not m.needs_table)
    )


_ROLE_WORDS = {None: "cost", "objective": "search cost", "front": "front cost", "plotted": "cost"}


def get_metric(name: str, role: str | None = None) -> Metric:
    """The metric called ``name`` (case and spaces ignored), usable as ``role``.

    Raises:
        UnknownMetric: one line listing the names that are.
    """
    key = str(name).strip().lower()
    metric = _REGISTRY.get(key)
    if metric is None or (role is not None and not getattr(metric, role)):
        raise UnknownMetric(
            f"unknown {_ROLE_WORDS[role]} {name!r}; choose one of {', '.join(names(role))}"
        )
    return metric


def _count(v: float) -> str:
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.2f}{prefix}"
    return f"{v:.0f}"


MACS = register_metric(Metric("macs", "MACs", "MACs", False, False, False, show=_count))
FLOPS = register_metric(Metric("flops", "FLOPs", "FLOPs", True, True, True, show=_count))
MEMORY = register_metric(
    Metric("memory", "memory", "activation elements at batch 1", True, True, True, show=_count)
)
PARAMS = register_metric(Metric("params", "params", "parameters", False, True, False, show=_count))
LATENCY = register_metric(
    Metric(
        "latency", "latency", "ms", True, True, True, needs_table=True, show=lambda v: f"{v:.3f} ms"
    )
)


class Pricer:
    """Absolute costs and cost ratios of width vectors under every metric a run has.

    Args:
        net: the slimmable net (exact metrics).
        latency: a latency predictor bound to ``net`` (``pareco.latency.LatencyModel``), or None:
            then ``latency`` is not available.
    """

    def __init__(self, net: SlimmableNet, latency: LatencyModel | None = None) -> None:
        self.net = net
        self.latency = latency
        self._full: dict[str, Tensor] = {}

    def available(self, role: str | None = None) -> tuple[str, ...]:
        """The metrics this pricer can evaluate, usable as ``role``."""
        return names(role, tables=self.latency is not None)

    def metric(self, name: str, role: str | None = None) -> Metric:
        """``get_metric``, refusing a table metric when there is no table (one line)."""
        metric = get_metric(name, role)
        if metric.needs_table and self.latency is None:
            raise UnknownMetric(
                f"cost {metric.name!r} needs a latency table (config key latency_table: PATH; "
                "build one with `pareco latency-table`)"
            )
        return metric

    def cost(self, alpha: Tensor | Any, name: str) -> Tensor:
        """Absolute cost: ``n x dim`` multipliers → ``n`` (``dim`` → scalar), float64."""
        metric = self.metric(name)
        if metric.needs_table:
            assert self.latency is not None
            return self.latency.predict_alpha(alpha)
        return self.net.cost(alpha, metric.name)

    def ratio(self, alpha: Tensor | Any, name: str) -> Tensor:
        """Cost relative to the full network: ``n x dim`` → ``n``."""
        metric = self.metric(name)
        if metric.name not in self._full:
            self._full[metric.name] = self.cost(self.net.space.largest(), metric.name)
        return self.cost(alpha, metric.name) / self._full[metric.name]

    def ratio_fn(self, name: str) -> Callable[[Tensor], Tensor]:
        """``alpha ↦ ratio(alpha, name)``, checked once: the search's cost function."""
        self.metric(name)
        return lambda a: self.ratio(a, name).to(torch.float64)


#: Where a run keeps the latency table it was trained with (copied there at the start).
RUN_TABLE = "latency_table.json"


def run_pricer(net: SlimmableNet, run_dir: Any = None, latency_table: str | None = None) -> Pricer:
    """The pricer of a run: with a latency model when the run has a table.

    The table is ``RUN_DIR/latency_table.json`` (what training copied there) or else the
    config's ``latency_table`` path; either is refused in one line when it was built for another
    model (``pareco.latency.LatencyError``).
    """
    from pathlib import Path

    path = None
    if run_dir is not None and (Path(run_dir) / RUN_TABLE).is_file():
        path = Path(run_dir) / RUN_TABLE
    elif latency_table:
        path = Path(latency_table)
    if path is None:
        return Pricer(net)
    from pareco.latency import load_for

    return Pricer(net, load_for(net, path))
