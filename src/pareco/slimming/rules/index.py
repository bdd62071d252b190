"""Rules for ops that pick parts of a dimension: slices, selects, splits, rolls, embeddings.

Taking part of a channel dimension keeps its group at full width; taking all of it, or working
on another dimension, changes nothing.
"""

from __future__ import annotations

import torch

from pareco.slimming.context import RuleContext
from pareco.slimming.groups import Info
from pareco.slimming.registry import register_rule


def slice_like(ctx: RuleContext, dim: int, full_range: bool, drop: bool) -> Info:
    """The input's expressions after taking part (or, ``full_range``, all) of ``dim``; with
    ``drop`` the dimension disappears (select, unbind)."""
    x = ctx.node.args[0]
    xi, nd = ctx.dims(x), len(ctx.shape(x))
    dim %= nd
    out = dict(xi)
    if dim in xi and not full_range:
        ctx.keep_full({dim: xi[dim]}, "a slice or split of channels")
        out.pop(dim)
    if drop:
        out = {d - (d > dim): e for d, e in out.items() if d != dim}
    return out


@register_rule("aten::slice", "aten::_slice")
def slice_(ctx: RuleContext) -> None:
    a = ctx.args()
    size = ctx.shape(a["self"])[a["dim"] % len(ctx.shape(a["self"]))]
    start, end, step = a.get("start") or 0, a.get("end"), a.get("step") or 1
    full = start in (0, None) and (end is None or end >= size) and step == 1
    ctx.set_output(slice_like(ctx, a["dim"], full, False))


@register_rule("aten::select", "aten::_select")
def select(ctx: RuleContext) -> None:
    ctx.set_output(slice_like(ctx, ctx.node.args[1], False, True))


@register_rule("aten::narrow", "aten::_narrow")
def narrow(ctx: RuleContext) -> None:
    args = ctx.node.args
    size = ctx.shape(args[0])[args[1]]
    full = args[2] == 0 and args[3] >= size
    ctx.set_output(slice_like(ctx, args[1], full, False))


@register_rule(
    "aten::split", "aten::split_with_sizes", "aten::tensor_split",
    "aten::_split", "aten::_split_with_sizes", "aten::_tensor_split",
)  # fmt: skip
def split(ctx: RuleContext) -> None:
    """Splits whose sizes are written in the code (``split(x, 8)``, ``split(x, [8, 8])``): the
    sub-network would split at the same sizes, so a channel dimension is kept at full width."""
    node = ctx.node
    dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
    pieces = ctx.output_value()
    out = slice_like(ctx, dim, len(pieces) == 1, False)
    ctx.set_output([dict(out) for _ in pieces])


@register_rule("aten::chunk", "aten::_chunk", "aten::tensor_split.sections")
def chunk(ctx: RuleContext) -> None:
    """``chunk(k)`` splits into ``k`` equal pieces at every width: on a channel dimension each
    piece becomes its own segment, and the pieces are tied (equal widths), so the sub-network's
    chunks are the first channels of the full ones (CSP blocks, ShuffleNet's channel split)."""
    node = ctx.node
    x = node.args[0]
    k = node.args[1]
    dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
    xi, xs = ctx.dims(x), ctx.shape(x)
    dim %= len(xs)
    pieces = ctx.output_value()
    if dim not in xi or not isinstance(k, int) or len(pieces) != k or k == 1 or xs[dim] % k:
        return split(ctx)
    size = xs[dim] // k
    parts = ctx.split(xi[dim], [size] * k)
    if parts is None:
        return split(ctx)
    e = parts[0]
    for p in parts[1:]:
        e = ctx.tie([(e, size), (p, size)], size, "chunks that pareco does not follow")
    ctx.set_output([{**xi, dim: e} for _ in pieces])


@register_rule("aten::unbind", "aten::_unbind")
def unbind(ctx: RuleContext) -> None:
    node = ctx.node
    dim = node.args[1] if len(node.args) > 1 else 0
    out = slice_like(ctx, dim, False, True)
    ctx.set_output([dict(out) for _ in ctx.output_value()])


@register_rule("aten::roll", "aten::flip", "aten::_roll", "aten::_flip")
def roll(ctx: RuleContext) -> None:
    """Rolls and flips move elements along their dimensions: fine away from channels (Swin's
    shifted windows), a blocker on a searchable channel dimension."""
    x = ctx.node.args[0]
    xi, nd = ctx.dims(x), len(ctx.shape(x))
    dims = ctx.args()["dims"]
    dims = {d % nd for d in ([dims] if isinstance(dims, int) else dims or range(nd))}
    if any(d in xi for d in dims):
        return ctx.block()
    ctx.set_output(dict(xi))


@register_rule("aten::embedding", "aten::_embedding")
def embedding(ctx: RuleContext) -> None:
    """A lookup table: the output's last dimension is the table's feature dimension."""
    w = ctx.node.args[0]
    e = ctx.dims(w).get(1)
    out_nd = len(ctx.output_shape())
    ctx.set_output({out_nd - 1: e} if e is not None else {})


@register_rule("aten::index", "aten::_index", "aten::_unsafe_index")
def index(ctx: RuleContext) -> None:
    """Advanced indexing ``x[i, j]`` with integer tensors on dimensions other than the channels
    (GPT-2's ``logits[arange(B), last_token]``): the channel dimensions keep their groups and
    move where NumPy's rules put them (the index dimensions in place of the indexed ones when
    those are adjacent, first otherwise). Tensors indexing a channel dimension, and boolean masks,
    are a blocker on a searchable channel."""
    x, indices = ctx.node.args[0], list(ctx.node.args[1])
    xi, nd = ctx.dims(x), len(ctx.shape(x))
    indexed = [d for d, i in enumerate(indices) if i is not None]
    vals = [i.meta.get("val") if hasattr(i, "meta") else None for i in indices if i is not None]
    if any(v is None or v.dtype.is_floating_point or v.dtype == torch.bool for v in vals):
        return ctx.block()
    if any(d in xi for d in indexed):
        return ctx.block("aten::index on a channel dimension")
    kept = [d for d in range(nd) if d not in indexed]
    extra = len(ctx.output_shape()) - len(kept)  # the broadcast index dimensions
    adjacent = indexed == list(range(indexed[0], indexed[-1] + 1)) if indexed else True
    out = {}
    for d, e in xi.items():
        if not adjacent:
            out[extra + kept.index(d)] = e
        elif indexed and d > indexed[-1]:
            out[d - len(indexed) + extra] = e
        else:
            out[d] = e
    ctx.set_output(out)
