"""From the walked graph to a network: what ``ignored=`` keeps, which blockers remain, the
searchable groups in graph order, their costs as small matrices, and the cuts of every sliced
parameter."""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn

from pareco.cost import CostModel, Factor, Polynomial
from pareco.layers import SliceSwitch, make_sliceable
from pareco.slimming.context import ShapeLike
from pareco.slimming.costs import constant_flops, cost_terms
from pareco.slimming.errors import SlimError
from pareco.slimming.groups import Expr
from pareco.slimming.net import SlimmableNet, _Cut
from pareco.slimming.walker import Walker, where
from pareco.space import ChannelGroup, WidthSpace


def _owner(fqn: str | None) -> str | None:
    if fqn is None:
        return None
    return fqn.rpartition(".")[0]


def apply_ignored(walk: Walker, ignored: set[str]) -> list[str]:
    notes = []
    for fqn, info in walk.param_dims.items():
        owner = _owner(fqn) or fqn
        under = any(owner == i or owner.startswith(i + ".") or i == "" for i in ignored)
        if under and 0 in info:
            walk.g.fix(info[0])
    if ignored:
        notes.append(f"kept at full width as asked: {', '.join(sorted(ignored))}")
    return notes


def resolve_blockers(walk: Walker, auto: bool) -> None:
    g = walk.g
    blocking = []
    for b in walk.blockers:
        roots = {r for e in b.exprs for r, _ in g.resolve(e)}
        if any(g.live[r] is not None and not g.fixed[r] for r in roots):
            blocking.append((b, roots))
    if not blocking:
        return
    if auto:
        kept = []
        for b, roots in blocking:
            for r in roots:
                g.fixed[r] = True
            kept.append(f"{b.what} at {where(b.node)}")
            walk.notes.append(f"kept at full width (ignored='auto'): {kept[-1]}")
        warnings.warn(
            f"pareco.slim kept {len(kept)} operation(s) it cannot follow at full width "
            f"(ignored='auto'): " + "; ".join(kept),
            stacklevel=3,
        )
        return
    producers = set()
    lines = []
    for b, roots in blocking:
        layers = sorted(_producers(walk, roots))
        producers.update(layers)
        lines.append(f"  - {b.what} at {where(b.node)}; its input comes from {layers or '-'}")
    hint = ", ".join(repr(p) for p in sorted(producers))
    raise SlimError(
        f"cannot slim through {len(blocking)} operation(s) that act on a searchable channel "
        "dimension:\n" + "\n".join(lines) + f"\nKeep them at full width with "
        f"pareco.slim(..., ignored=[{hint}]), or pass ignored='auto' to do so automatically."
    )


def _producers(walk: Walker, roots: set[int]) -> set[str]:
    out = set()
    for fqn, info in walk.param_dims.items():
        if 0 in info and any(r in roots for r, _ in walk.g.resolve(info[0])):
            out.add(_owner(fqn) or fqn)
    return out


def build(
    model: nn.Module,
    walk: Walker,
    round_to: int,
    min_multiplier: float,
    example: tuple[tuple, dict],
    notes: list[str],
) -> SlimmableNet:
    g = walk.g
    macs_terms, params_terms, memory_terms = cost_terms(walk)
    # A term of degree three (or a memory size of degree two) cannot be priced: keep its extra
    # groups at full width until every term fits.
    while True:
        searchable = lambda r: g.live[r] is not None and not g.fixed[r]  # noqa: E731
        changed = False
        for factors, limit, what in (
            [(f, 2, "a cost term over three channel groups") for f, _ in macs_terms]
            + [(f, 2, "a parameter over three channel groups") for f in params_terms]
            + [(f, 1, "a tensor with two searchable channel dimensions") for f, *_ in memory_terms]
        ):
            varying = [
                f
                for f in factors
                if not isinstance(f, int) and any(searchable(r) for r, _ in g.resolve(f))
            ]
            for f in varying[limit:]:
                g.fix(f)
                changed = True
                if what not in " ".join(walk.notes):
                    walk.notes.append(f"kept at full width: {what}")
        if not changed:
            break
    roots = sorted(
        {
            i
            for i in range(len(g.parent))
            if g.find(i) == i and i not in g.binding and searchable(i)
        },
        key=lambda r: (g.live[r], r),
    )
    col = {r: i for i, r in enumerate(roots)}

    def factor(f: Any) -> Factor:
        if isinstance(f, int):
            return f
        terms, const = [], 0
        for r, per in g.resolve(f):
            if r in col:
                terms.append((col[r], per))
            else:
                const += g.size[r] * per
        return terms, const

    n = len(col)
    macs, params = Polynomial(n), Polynomial(n)
    for factors, coef in macs_terms:
        macs.add([factor(f) for f in factors], coef / walk.batch)
    for factors in params_terms:
        params.add([factor(f) for f in factors])
    params.const += sum(
        p.numel() for name, p in model.named_parameters() if name not in walk.param_dims
    )
    macs.const += constant_flops(walk) / 2 / walk.batch
    memory = []
    for factors, first, last in memory_terms:
        size = Polynomial(n)
        size.add([factor(f) for f in factors], 1.0 / walk.batch)
        terms = [(i, w) for i, w in enumerate(size.lin.tolist()) if w]
        memory.append(((terms, size.const), first, last))
    costs = CostModel.from_memory(macs, params, memory, n)

    # Slices: every parameter or buffer dimension that holds a searchable group.
    def segs(e: Expr) -> list[tuple[int | None, int, int]]:
        return [(col.get(r), per, g.size[r]) for r, per in g.resolve(e)]

    cuts: list[_Cut] = []
    by_module: dict[str, list[str]] = {}
    fixed_roots = sorted(
        {
            r
            for r in (g.find(i) for i in range(len(g.parent)))
            if g.live[r] is not None and r not in g.binding
        }
        - set(roots),
        key=lambda r: (g.live[r], r),
    )
    members: dict[int, list[str]] = {r: [] for r in roots + fixed_roots}
    consumers: dict[int, list[str]] = {r: [] for r in roots + fixed_roots}
    unit: dict[int, int] = {}
    order = sorted(walk.param_dims, key=lambda f: walk.param_first_use.get(f, 1 << 60))
    for fqn in order:
        info = walk.param_dims[fqn]
        owner, _, tensor = fqn.rpartition(".")
        dims = [(d, segs(e)) for d, e in sorted(info.items())]
        dims = [(d, s) for d, s in dims if any(c is not None for c, _, _ in s)]
        if dims:
            cuts.append(_Cut(model.get_submodule(owner), tensor, dims))
            by_module.setdefault(owner, []).append(tensor)
        for d, e in info.items():
            for r, per in g.resolve(e):
                target = members if d == 0 else consumers if d == 1 else None
                label = owner or fqn
                if target is not None and r in target and label not in target[r]:
                    target[r].append(label)
                    if d == 0 and r not in unit:  # channels per unit in the group's producer
                        unit[r] = per
    switch = SliceSwitch()
    for owner, tensors in by_module.items():
        make_sliceable(model.get_submodule(owner), tuple(tensors), switch)
    attrs = []
    for owner, attr, e, kind in walk.attrs:
        s = segs(e)
        if any(c is not None for c, _, _ in s):
            module = model.get_submodule(owner)
            if isinstance(kind, ShapeLike):  # the module's own size tuples equal to the view's
                for name, value in sorted(vars(module).items()):
                    if isinstance(value, (tuple, list)) and not name.startswith("_") and (
                        tuple(value) == kind.shape and all(isinstance(v, int) for v in value)
                    ):  # fmt: skip
                        attrs.append((module, name, s, kind.dim))
                continue
            attrs.append((module, attr, s, kind))

    def group(r: int, searchable: bool) -> ChannelGroup:
        name = members[r][0] if members[r] else f"group{col[r]}" if searchable else "input"
        return ChannelGroup(
            name, g.size[r], tuple(members[r]), tuple(consumers[r]), searchable, unit.get(r, 1)
        )

    space = WidthSpace(
        tuple(group(r, True) for r in roots),
        tuple(group(r, False) for r in fixed_roots),
        min_multiplier=min_multiplier,
        round_to=round_to,
    )
    return SlimmableNet(model, space, cuts, attrs, costs, example, notes + walk.notes, switch)
