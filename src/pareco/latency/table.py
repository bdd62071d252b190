"""Per-layer latency tables: built by measuring, saved as JSON, bound to a net to predict.

A table holds, for every *kind* of layer (its fixed shape: op, kernel, stride, spatial size, ...),
the measured milliseconds on a grid of its varying sizes (``c_in x c_out`` for a conv or linear
layer, ``c`` for depthwise convs, norms, activations and pools). Each axis of the grid holds the
smallest and the largest size the width space can produce for that kind, and every producible
size when there are at most ``max_points`` of them; otherwise ``max_points`` of them evenly spread
by rank. Between grid points a latency is interpolated (linearly per axis), so every producible
size is inside the grid: nothing is extrapolated.

The predicted latency of ``alpha`` is ``slope * Σ_layers table(sizes) + intercept``: the end-to-end
correction is a least-squares line of measured whole sub-networks on their table sums, which
carries what the layers leave out (functional ops, residual adds, framework overhead).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from pareco import batch as batch_inputs
from pareco.errors import ParecoError
from pareco.latency.layers import LayerCall, discover_layers, fingerprint
from pareco.space import WidthSpace

if TYPE_CHECKING:
    from pareco.latency.runtime import Runtime
    from pareco.slimming import SlimmableNet

TABLE_FORMAT = "pareco-latency-table"
TABLE_VERSION = 1

#: Grid points per axis of a layer kind when the space produces more sizes than this.
MAX_POINTS = 6


class LatencyError(ParecoError, ValueError):
    """A latency table that cannot be built, read or used for this model (one line)."""


def producible_channels(space: WidthSpace, steps: int = 4096) -> list[list[int]]:
    """Every channel count each group column (``G``, searchable then fixed) can take."""
    a = torch.linspace(space.min_multiplier, 1.0, steps, dtype=torch.float64)
    alphas = a[:, None].expand(-1, space.dim)
    c = space.channels(torch.cat([alphas, space.smallest()[None], space.largest()[None]]))
    return [sorted({int(v) for v in c[:, g].tolist()}) for g in range(c.shape[1])]


def producible_sizes(layer: LayerCall, per_group: Sequence[Sequence[int]]) -> list[list[int]]:
    """Every size each varying dim of ``layer`` can take over the width space."""
    out = []
    for d in range(len(layer.dims)):
        values = {float(layer.bias[d])}
        for g in layer.weights[d].nonzero().flatten().tolist():
            w = float(layer.weights[d, g])
            values = {v + w * c for v in values for c in per_group[g]}
        out.append(sorted({round(v) for v in values}))
    return out


def axis_grid(values: Sequence[int], max_points: int = MAX_POINTS) -> list[int]:
    """All of ``values`` (sorted) when there are at most ``max_points``, else ``max_points`` of
    them evenly spread by rank, the smallest and the largest included."""
    values = sorted(set(values))
    if len(values) <= max_points:
        return values
    idx = torch.linspace(0, len(values) - 1, max_points).round().long().tolist()
    return sorted({values[i] for i in idx})


@dataclass
class Kind:
    """One layer kind: its fixed shape, the names of its varying sizes, their grid, the times.

    ``ms`` has one axis per dim (``len(grid[0]) x len(grid[1])`` for a conv)."""

    spec: dict[str, Any]
    dims: tuple[str, ...]
    grid: list[list[int]]
    ms: Tensor


@dataclass
class LatencyTable:
    """A measured latency table of one model and width space on one runtime."""

    fingerprint: str
    runtime: dict[str, Any]
    model: str
    space: WidthSpace
    layers: list[LayerCall]
    kinds: dict[str, Kind]
    slope: float = 1.0
    intercept: float = 0.0
    samples: list[dict[str, Any]] = field(default_factory=list)
    steps: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TABLE_FORMAT,
            "version": TABLE_VERSION,
            "fingerprint": self.fingerprint,
            "model": self.model,
            "runtime": self.runtime,
            "space": self.space.to_dict(),
            "correction": {
                "slope": self.slope,
                "intercept": self.intercept,
                "samples": self.samples,
            },
            "round_to": self.steps,
            "notes": self.notes,
            "meta": self.meta,
            "layers": [lay.to_dict() for lay in self.layers],
            "kinds": {
                k: {"spec": v.spec, "dims": list(v.dims), "grid": v.grid, "ms": v.ms.tolist()}
                for k, v in self.kinds.items()
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatencyTable:
        layers = [
            LayerCall(
                x["name"],
                x["kind"],
                d["kinds"][x["kind"]]["spec"],
                tuple(x["dims"]),
                torch.tensor(x["weights"], dtype=torch.float64).reshape(len(x["dims"]), -1),
                torch.tensor(x["bias"], dtype=torch.float64),
            )
            for x in d["layers"]
        ]
        kinds = {
            k: Kind(
                v["spec"],
                tuple(v["dims"]),
                [list(map(int, g)) for g in v["grid"]],
                torch.tensor(v["ms"], dtype=torch.float64),
            )
            for k, v in d["kinds"].items()
        }
        c = d["correction"]
        return cls(
            d["fingerprint"],
            d["runtime"],
            d["model"],
            WidthSpace.from_dict(d["space"]),
            layers,
            kinds,
            float(c["slope"]),
            float(c["intercept"]),
            c.get("samples", []),
            d.get("round_to", {}),
            d.get("notes", []),
            d.get("meta", {}),
        )

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(path)
        return path


def load_table(path: str | Path) -> LatencyTable:
    """Read a table written by :meth:`LatencyTable.save`.

    Raises:
        LatencyError: missing, damaged, or not a latency table.
    """
    path = Path(path)
    if not path.is_file():
        raise LatencyError(
            f"latency table {path} does not exist: build it on the target device with "
            "`pareco latency-table --model ... --out TABLE.json`"
        )
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise LatencyError(f"latency table {path} is damaged ({err}); build it again") from None
    if not isinstance(d, dict) or d.get("format") != TABLE_FORMAT:
        raise LatencyError(f"{path} is not a {TABLE_FORMAT} file")
    if d.get("version") != TABLE_VERSION:
        raise LatencyError(
            f"{path} is a {TABLE_FORMAT} v{d.get('version')} file; this pareco reads "
            f"v{TABLE_VERSION}: build it again"
        )
    try:
        return LatencyTable.from_dict(d)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise LatencyError(
            f"latency table {path} is damaged ({type(err).__name__}: {err})"
        ) from None


def _loadavg() -> list[float] | None:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def build_table(
    net: SlimmableNet,
    runtime: Runtime,
    *,
    model: str = "",
    max_points: int = MAX_POINTS,
    samples: int = 8,
    probe_steps: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> LatencyTable:
    """Measure ``net``'s layers on ``runtime`` and fit the end-to-end correction.

    Args:
        net: the slimmable net (its example input sets the spatial sizes; batch 1 is timed).
        runtime: ``pareco.latency.make_runtime(...)``, or a fake one in tests.
        model: a label recorded in the table (the model's name).
        max_points: grid points per axis (see the module docstring).
        samples: whole sub-networks measured for the correction (the smallest, the largest and
            random ones); fewer than 2 keep slope 1, intercept 0.
        probe_steps: also time the costliest conv/linear kind at every output size in the top
            32 producible ones, twice, to see whether multiples of 8 or 16 are faster
            (``round_to``: suggested only when both passes agree).
        seed: the order of the measurements (shuffled, so a drifting load spreads evenly) and
            the random sub-networks.
    """
    say = progress or (lambda _: None)
    start_load = _loadavg()
    layers, notes = discover_layers(net, seed=seed)
    per_group = producible_channels(net.space)
    by_kind: dict[str, list[LayerCall]] = {}
    for lay in layers:
        by_kind.setdefault(lay.kind, []).append(lay)
    grids: dict[str, list[list[int]]] = {}
    for key, members in by_kind.items():
        sizes = [producible_sizes(m, per_group) for m in members]
        grids[key] = [
            axis_grid(sorted({v for s in sizes for v in s[d]}), max_points)
            for d in range(len(members[0].dims))
        ]
    jobs = []
    for key, grid in grids.items():
        for idx in torch.cartesian_prod(*[torch.arange(len(g)) for g in grid]).reshape(
            -1, len(grid)
        ):
            jobs.append((key, tuple(int(i) for i in idx)))
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(jobs), generator=gen).tolist()
    ms = {k: torch.zeros(*[len(g) for g in grids[k]], dtype=torch.float64) for k in grids}
    say(f"timing {len(jobs)} layer shapes of {len(grids)} kinds")
    for j in order:
        key, idx = jobs[j]
        members = by_kind[key]
        sizes = {d: grids[key][a][i] for a, (d, i) in enumerate(zip(members[0].dims, idx))}
        ms[key][idx] = runtime.layer_ms(members[0].spec, sizes)
    kinds = {k: Kind(by_kind[k][0].spec, by_kind[k][0].dims, grids[k], ms[k]) for k in grids}
    table = LatencyTable(
        fingerprint(net), runtime.describe(), model, net.space, layers, kinds, notes=notes
    )
    if samples >= 2:
        say(f"timing {samples} whole sub-networks for the end-to-end correction")
        fit_correction(table, net, runtime, samples, seed)
    if probe_steps:
        table.steps = probe_round_to(table, per_group, runtime)
    table.meta = {
        "loadavg_start": start_load,
        "loadavg_end": _loadavg(),
        "host": platform.node(),
        "machine": platform.machine(),
        "max_points": max_points,
    }
    return table


def example_tensor(net: SlimmableNet) -> Tensor:
    """The first tensor of the net's example input, at batch 1."""
    args, kwargs = net._example
    first = next(
        t for t in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(t, Tensor)
    )
    return first[:1]


def example_inputs(net: SlimmableNet) -> batch_inputs.Inputs:
    """What the net is called with, at batch 1: its one tensor, or its dict of keyword tensors
    (a tokenizer's ``input_ids`` and ``attention_mask``); else the first tensor."""
    args, kwargs = net._example
    if not args and kwargs and batch_inputs.is_inputs(kwargs):
        return batch_inputs.take(dict(kwargs), 1)
    return example_tensor(net)


def fit_correction(
    table: LatencyTable, net: SlimmableNet, runtime: Runtime, samples: int, seed: int = 0
) -> None:
    """Measure ``samples`` whole sub-networks (in random order, after one untimed warm-up model)
    and fit ``measured ≈ slope * table_sum + intercept`` (least squares; a slope that is not
    positive keeps slope 1 with the mean offset)."""
    space = net.space
    gen = torch.Generator().manual_seed(seed + 1)
    alphas = torch.cat(
        [
            space.smallest()[None],
            space.largest()[None],
            space.sample(max(0, samples - 2), generator=gen),
        ]
    )
    example = example_inputs(net)
    model = LatencyModel(table, space)
    sums = model.layer_sum(space.channels(alphas))
    runtime.model_ms(net.export(alphas[1]).eval(), example)  # first-call costs: not a sample
    measured = [0.0] * len(alphas)
    for i in torch.randperm(len(alphas), generator=gen).tolist():
        measured[i] = runtime.model_ms(net.export(alphas[i]).eval(), example)
    y = torch.tensor(measured, dtype=torch.float64)
    x = torch.stack([sums, torch.ones_like(sums)], 1)
    slope, intercept = torch.linalg.lstsq(x, y[:, None]).solution.flatten().tolist()
    if not slope > 0:
        slope, intercept = 1.0, float((y - sums).mean())
    table.slope, table.intercept = float(slope), float(intercept)
    table.samples = [
        {"alpha": a.tolist(), "measured_ms": float(m), "table_sum_ms": float(s)}
        for a, m, s in zip(alphas, y, sums)
    ]


def probe_round_to(
    table: LatencyTable, per_group: Sequence[Sequence[int]], runtime: Runtime, span: int = 32
) -> dict[str, Any]:
    """Time the costliest conv/linear kind (at its largest input size) at each of the top
    ``span`` producible output sizes, and suggest ``round_to`` from the steps (see
    :func:`suggest_round_to`)."""
    best, cost = None, -1.0
    for key, kind in table.kinds.items():
        if kind.dims == ("c_in", "c_out") and float(kind.ms.max()) > cost:
            best, cost = key, float(kind.ms.max())
    if best is None:
        return {"suggested": None, "why": "no conv or linear layer varies"}
    kind = table.kinds[best]
    members = [lay for lay in table.layers if lay.kind == best]
    outs = sorted({v for m in members for v in producible_sizes(m, per_group)[1]})[-span:]
    if len(outs) < 17:
        return {"suggested": None, "why": f"only {len(outs)} output sizes to compare"}
    c_in = kind.grid[0][-1]
    if kind.spec.get("groups", 1) > 1:
        return {"suggested": None, "why": "the costliest kind is a grouped conv"}
    passes = []
    for order in (outs, outs[::-1]):  # two passes, opposite orders: a suggestion both agree on
        ms = {c: runtime.layer_ms(kind.spec, {"c_in": c_in, "c_out": c}) for c in order}
        passes.append((ms, *suggest_round_to(ms)))
    agreed = passes[0][1] if passes[0][1] == passes[1][1] else None
    return {
        "suggested": agreed,
        "kind": best,
        "c_in": c_in,
        "passes": [
            {"suggested": sug, "step_ratios": ratios, "ms": {str(c): ms[c] for c in outs}}
            for ms, sug, ratios in passes
        ],
    }


def suggest_round_to(ms: dict[int, float], threshold: float = 1.05) -> tuple[int | None, dict]:
    """``round_to`` worth using, from latencies at consecutive output sizes.

    A step at multiples of ``m`` means that one channel past a multiple of ``m`` costs clearly
    more than one channel past another size: the median ratio ``ms[c + 1] / ms[c]`` over the
    multiples ``c`` of ``m`` exceeds ``threshold`` times the median ratio over the other sizes.
    Returns 16 when the steps are at multiples of 16 only, 8 when at multiples of 8, else None,
    with the ratios.
    """
    sizes = sorted(ms)
    pairs = [(c, ms[c + 1] / ms[c]) for c in sizes if c + 1 in ms and ms[c] > 0]
    if not pairs:
        return None, {}

    def med(sel: list[float]) -> float | None:
        return statistics.median(sel) if sel else None

    other = med([r for c, r in pairs if c % 8])
    at8 = med([r for c, r in pairs if c % 8 == 0 and c % 16])
    at16 = med([r for c, r in pairs if c % 16 == 0])
    ratios = {"other": other, "at_8": at8, "at_16": at16}
    if other is None:
        return None, ratios
    step8 = at8 is not None and at8 > threshold * other
    step16 = at16 is not None and at16 > threshold * other
    if step16 and not step8:
        return 16, ratios
    if step8 or step16:
        return 8, ratios
    return None, ratios


class LatencyModel:
    """A table bound to a width space: predicted milliseconds of a batch of widths.

    Sizes are whole numbers, so each kind's interpolated table is expanded once into a dense
    lookup over every integer size of its range (when that has at most ``DENSE_LIMIT`` entries);
    a batch of ``n`` width vectors then costs, per kind, one small matrix product and one gather
    over ``n x layers_of_that_kind`` sizes.
    """

    DENSE_LIMIT = 1 << 22

    def __init__(self, table: LatencyTable, space: WidthSpace) -> None:
        self.table, self.space = table, space
        self._kinds = []
        for key, kind in table.kinds.items():
            members = [lay for lay in table.layers if lay.kind == key]
            if not members:
                continue
            w = torch.stack([m.weights for m in members])  # L x D x G
            b = torch.stack([m.bias for m in members])  # L x D
            grid = [torch.tensor(g, dtype=torch.float64) for g in kind.grid]
            lo = [int(g[0]) for g in kind.grid]
            span = [int(g[-1]) - int(g[0]) + 1 for g in kind.grid]
            dense = None
            if math.prod(span) <= self.DENSE_LIMIT:
                axes = [torch.arange(a, a + n, dtype=torch.float64) for a, n in zip(lo, span)]
                pts = torch.cartesian_prod(*axes).reshape(-1, len(axes))
                dense = interpolate(grid, kind.ms, pts)  # row-major over the axes
            self._kinds.append((w, b, grid, kind.ms, lo, span, dense))

    def layer_sum(self, channels: Tensor) -> Tensor:
        """Sum of the table entries: ``n x G`` channel counts → ``n`` ms (before correction)."""
        c = channels.to(torch.float64)
        if c.ndim == 1:
            return self.layer_sum(c[None])[0]
        total = torch.zeros(c.shape[0], dtype=torch.float64)
        for w, b, grid, ms, lo, span, dense in self._kinds:
            sizes = torch.einsum("ng,ldg->nld", c, w) + b  # n x L x D
            if dense is None:
                total += interpolate(grid, ms, sizes).sum(1)
                continue
            flat = torch.zeros(sizes.shape[:2], dtype=torch.long)
            for d in range(len(lo)):
                i = (sizes[..., d].round().long() - lo[d]).clamp(0, span[d] - 1)
                flat = flat * span[d] + i
            total += dense[flat].sum(1)
        return total

    def predict_channels(self, channels: Tensor) -> Tensor:
        """Predicted latency in ms: ``n x G`` channel counts → ``n`` (``G`` → scalar)."""
        return self.table.slope * self.layer_sum(channels) + self.table.intercept

    def predict_alpha(self, alpha: Tensor | Sequence[float]) -> Tensor:
        """Predicted latency in ms: ``n x dim`` multipliers → ``n`` (``dim`` → scalar)."""
        return self.predict_channels(self.space.channels(alpha))


def interpolate(grid: Sequence[Tensor], values: Tensor, points: Tensor) -> Tensor:
    """Piecewise-linear interpolation on a 1-d or 2-d grid.

    Args:
        grid: ``D`` sorted axes (``D`` = 1 or 2), each ``m_d`` sizes.
        values: ``m_1`` or ``m_1 x m_2`` values at the grid points.
        points: ``... x D`` query points (clamped to the grid's range).

    Returns:
        ``...`` interpolated values.
    """
    idx, frac = [], []
    for d, axis in enumerate(grid):
        x = points[..., d].clamp(float(axis[0]), float(axis[-1]))
        if len(axis) == 1:
            idx.append(torch.zeros_like(x, dtype=torch.long))
            frac.append(torch.zeros_like(x))
            continue
        i = (torch.searchsorted(axis, x.contiguous(), right=True) - 1).clamp(0, len(axis) - 2)
        idx.append(i)
        frac.append((x - axis[i]) / (axis[i + 1] - axis[i]))
    if len(grid) == 1:
        v = values
        hi = (idx[0] + 1).clamp(max=len(grid[0]) - 1)
        return v[idx[0]] * (1 - frac[0]) + v[hi] * frac[0]
    i, j = idx
    i1 = (i + 1).clamp(max=len(grid[0]) - 1)
    j1 = (j + 1).clamp(max=len(grid[1]) - 1)
    fi, fj = frac
    return (
        values[i, j] * (1 - fi) * (1 - fj)
        + values[i1, j] * fi * (1 - fj)
        + values[i, j1] * (1 - fi) * fj
        + values[i1, j1] * fi * fj
    )


def bind(table: LatencyTable, net: SlimmableNet, path: str | Path | None = None) -> LatencyModel:
    """The table as a predictor for ``net``, refused when it was built for another model.

    Raises:
        LatencyError: the fingerprints differ (one line, saying how to rebuild).
    """
    mine = fingerprint(net)
    if table.fingerprint != mine:
        where = f"latency table {path}" if path is not None else "the latency table"
        raise LatencyError(
            f"{where} was built for another model or width space (fingerprint "
            f"{table.fingerprint}, this model's is {mine}); rebuild it for this model with "
            "`pareco latency-table`"
        )
    return LatencyModel(table, net.space)


def load_for(net: SlimmableNet, path: str | Path) -> LatencyModel:
    """``bind(load_table(path), net, path)``."""
    return bind(load_table(path), net, path)
