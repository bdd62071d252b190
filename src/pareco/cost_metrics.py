"""The cost metrics pareco knows, in one registry: what config, CLI, front, report and export read.

A :class:`Metric` is one registered object: its name, how it is shown (label, unit, scale of the
absolute value), where it may be used (the training/search objective, a front's selection, a
figure panel) and how a batch of widths is priced. Four are exact polynomials of the channel
counts, priced by the slimmable net itself (:mod:`pareco.cost`); ``latency`` is predicted from a
measured per-layer table (:mod:`pareco.latency`) and is only available where a table is. A
user's metric is priced by its own function (:func:`register_cost_metric`), checked once per run
(one value per width vector, finite, growing with width) before the search relies on it.

``Pricer(net, latency=model)`` prices width vectors under every metric available for a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from pareco.errors import ParecoError, first_line

if TYPE_CHECKING:
    from pareco.latency import LatencyModel
    from pareco.slimming import SlimmableNet


class UnknownMetric(ParecoError, ValueError):
    """A cost name that is not registered, or not usable where it was asked for (one line)."""


class MetricError(ParecoError, ValueError):
    """A user's cost metric whose price function misbehaves, or a registration that clashes."""


#: ``price(net, alpha)``: ``n x dim`` float64 width multipliers → ``n`` absolute costs.
PriceFn = Callable[["SlimmableNet", Tensor], Tensor]


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
        price: a user's pricing function (``price(net, alpha)``, ``n x dim`` → ``n``); None for
            pareco's own metrics, which the net or the latency table price.
    """

    name: str
    label: str
    unit: str
    objective: bool
    front: bool
    plotted: bool
    needs_table: bool = False
    show: Callable[[float], str] = lambda v: f"{v:.4g}"
    price: PriceFn | None = None


_REGISTRY: dict[str, Metric] = {}
_BUILTIN: set[str] = set()


def _key(name: str) -> str:
    return str(name).strip().lower()


def register_metric(metric: Metric, *, replace: bool = False) -> Metric:
    """Add ``metric`` to the registry.

    A name registered twice is refused unless ``replace`` (a notebook cell run again); pareco's
    own metrics are never replaced.
    """
    key = _key(metric.name)
    if not key or any(ch in key for ch in " ,=") or key != metric.name:
        raise MetricError(
            f"cost metric name {metric.name!r}: use a lowercase word without spaces, commas or '='"
        )
    if key in _BUILTIN or (key in _REGISTRY and not replace):
        raise MetricError(
            f"cost metric {key!r} is already registered"
            + ("" if key in _BUILTIN else "; pass replace=True to replace it")
        )
    _REGISTRY[key] = metric
    return metric


def register_cost_metric(
    name: str,
    *,
    label: str | None = None,
    unit: str = "",
    objective: bool = True,
    front: bool = True,
    plotted: bool = True,
    show: Callable[[float], str] | None = None,
    replace: bool = False,
) -> Callable[[PriceFn], PriceFn]:
    """Register a cost metric priced by the decorated function (decorator).

    The function takes the slimmable net and an ``n x dim`` float64 tensor of width multipliers
    and returns ``n`` absolute costs; ``net.space.channels(alpha)`` gives the channel counts and
    ``net.cost(alpha, "macs" | "params" | "memory")`` pareco's exact costs. The cost must grow
    with the width (the search and the fronts rank sub-networks by it): a run checks that on a
    sweep of uniform widths before it starts. ``objective``, ``front`` and ``plotted`` say where
    the metric may be used (``cost:`` of a run, ``pareco export --cost``, a panel in the figures).

    Example::

        @pareco.register_cost_metric("energy", unit="nJ")
        def energy(net, alpha):  # 0.9 nJ per MAC plus 2.5 nJ per activation element moved
            return 0.9e-9 * net.cost(alpha, "macs") + 2.5e-9 * net.cost(alpha, "memory")
    """

    def wrap(fn: PriceFn) -> PriceFn:
        if not callable(fn):
            raise MetricError(f"cost metric {name!r}: the price must be a function (net, alpha)")
        register_metric(
            Metric(
                _key(name),
                label or _key(name),
                unit,
                objective,
                front,
                plotted,
                show=show or _count,
                price=fn,
            ),
            replace=replace,
        )
        return fn

    return wrap


def unregister_metric(name: str) -> None:
    """Remove a user's metric (pareco's own stay)."""
    key = _key(name)
    if key in _BUILTIN:
        raise MetricError(f"cost metric {key!r} is pareco's own and cannot be removed")
    _REGISTRY.pop(key, None)


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
    key = _key(name)
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
_BUILTIN.update(_REGISTRY)


def check_price(metric: Metric, net: SlimmableNet) -> None:
    """Check a user's price function on a sweep of uniform widths, smallest to largest.

    Raises:
        MetricError: one line when it does not give one finite value per width vector, or when
            the cost falls as the width grows.
    """
    space = net.space
    levels = torch.linspace(space.min_multiplier, 1.0, 6, dtype=torch.float64)
    alphas = torch.stack([space.uniform(float(t)) for t in levels]).to(torch.float64)
    where = f"cost metric {metric.name!r}"
    try:
        out = _call_price(metric, net, alphas)
    except MetricError:
        raise
    except Exception as err:  # the user's code: any failure becomes one line
        raise MetricError(
            f"{where}: its price function failed on {len(alphas)} width vectors "
            f"({type(err).__name__}: {first_line(err)})"
        ) from None
    if not bool(torch.isfinite(out).all()) or bool((out < 0).any()):
        raise MetricError(f"{where}: costs must be finite and >= 0, got {out.tolist()}")
    if float(out[-1]) <= 0:
        raise MetricError(f"{where}: the full network costs {float(out[-1])}; it must be > 0")
    if bool((out.diff() < -1e-9 * float(out[-1])).any()):
        raise MetricError(
            f"{where}: the cost must grow with the width, but uniform widths "
            f"{[round(float(t), 3) for t in levels]} cost {[f'{v:.4g}' for v in out.tolist()]}"
        )


def _call_price(metric: Metric, net: SlimmableNet, alpha: Tensor) -> Tensor:
    assert metric.price is not None
    batch = torch.as_tensor(alpha, dtype=torch.float64).reshape(-1, net.space.dim)
    out = metric.price(net, batch)
    out = torch.as_tensor(out, dtype=torch.float64).detach().cpu()
    if out.shape != (len(batch),):
        raise MetricError(
            f"cost metric {metric.name!r}: its price function must return one value per width "
            f"vector (shape ({len(batch)},)), got shape {tuple(out.shape)}"
        )
    return out


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
        self._checked: set[str] = set()

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
        if metric.price is not None:
            if metric.name not in self._checked:
                check_price(metric, self.net)
                self._checked.add(metric.name)
            out = _call_price(metric, self.net, alpha)
            return out.reshape(()) if torch.as_tensor(alpha).dim() == 1 else out
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
        self.ratio(self.net.space.largest(), name)  # a user's price function is checked here
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
