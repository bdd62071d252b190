"""Rules for ops that move channels between dimensions: views, permutes, expand, concatenation,
stacking, padding.

Flattening ``C x H x W`` keeps the channel outermost, so the first ``k`` channels are the first
``k*H*W`` elements (a segment with ``H*W`` elements per channel); unflattening gives it back. A
concatenation on a channel dimension is the list of its inputs' segments.
"""

from __future__ import annotations

import math

from pareco.slimming.context import RuleContext
from pareco.slimming.groups import Info
from pareco.slimming.registry import register_rule

_RESHAPE = (
    "view", "reshape", "_unsafe_view", "flatten", "unflatten", "view_as", "reshape_as",
    "squeeze", "squeeze_", "unsqueeze", "unsqueeze_",
)  # fmt: skip


def reshape_info(
    ctx: RuleContext, xi: Info, a: tuple, b: tuple, inferred: int | None = None
) -> Info:
    """The channel expressions of a tensor of shape ``a`` viewed as shape ``b``; ``inferred``:
    the dimension of ``b`` the code asked for as ``-1``, if any (its size follows the tensor,
    while the others may be constants of the module)."""
    ai = [d for d in range(len(a)) if a[d] != 1]
    bj = [d for d in range(len(b)) if b[d] != 1]
    out: Info = {}
    i = j = 0
    while i < len(ai) and j < len(bj):
        src_dims, dst_dims = [ai[i]], [bj[j]]
        pa, pb = a[ai[i]], b[bj[j]]
        i, j = i + 1, j + 1
        while pa != pb:
            if pa < pb:
                src_dims.append(ai[i])
                pa *= a[ai[i]]
                i += 1
            else:
                dst_dims.append(bj[j])
                pb *= b[bj[j]]
                j += 1
        tracked = [d for d in src_dims if d in xi]
        if not tracked:
            continue
        if len(src_dims) == 1 and len(dst_dims) == 1:
            out[dst_dims[0]] = xi[src_dims[0]]
        elif len(dst_dims) == 1 and tracked == [src_dims[0]]:  # flatten, channel outermost
            inner = math.prod(a[d] for d in src_dims[1:])
            segs = ctx.resolve(xi[src_dims[0]])
            out[dst_dims[0]] = tuple((g, p * inner) for g, p in segs)
        elif len(src_dims) == 1:  # unflatten: the channel comes back as the outer dimension
            inner = math.prod(b[d] for d in dst_dims[1:])
            segs = ctx.resolve(xi[src_dims[0]])
            parts = None
            if all(p % inner == 0 for _, p in segs):
                out[dst_dims[0]] = tuple((g, p // inner) for g, p in segs)
            elif (
                len(dst_dims) == 2
                and inferred != dst_dims[0]
                and ctx.may_split_parts(certain=inferred == dst_dims[1])
            ):
                # (G, C/G): G equal parts, the channel inside (a shuffle). Not where the code
                # asked for the count as -1 (``view(B, N, -1, head_size)``): there the part's
                # size is a constant and the count is what would follow (attention heads).
                parts = ctx.split(xi[src_dims[0]], [inner] * b[dst_dims[0]])
            if parts is not None:
                e = parts[0]
                for p in parts[1:]:
                    e = ctx.tie([(e, inner), (p, inner)], inner, "a reshape into unequal parts")
                out[dst_dims[1]] = e
            elif dst_dims[0] not in out:
                ctx.keep_full(
                    {d: xi[d] for d in tracked}, "a reshape splits channels (heads, a shuffle)"
                )
        elif len(dst_dims) == 1 and tracked == [src_dims[-1]]:  # (G, C) flattened: G copies
            outer = math.prod(a[d] for d in src_dims[:-1])
            out[dst_dims[0]] = ctx.resolve(xi[src_dims[-1]]) * outer
        else:
            ctx.keep_full(
                {d: xi[d] for d in tracked}, "a reshape mixes channels with another dimension"
            )
    return out


@register_rule(*(f"aten::{n}" for n in _RESHAPE))
def reshape(ctx: RuleContext) -> None:
    """Views and reshapes: channels move with the elements they own."""
    x = ctx.node.args[0]
    out_shape = ctx.output_shape()
    sizes = ctx.node.args[1] if len(ctx.node.args) > 1 else None
    inferred = None
    if ctx.op in ("aten::view", "aten::reshape", "aten::_unsafe_view") and isinstance(
        sizes, (list, tuple)
    ):
        inferred = next((d for d, s in enumerate(sizes) if isinstance(s, int) and s == -1), None)
    out = reshape_info(ctx, ctx.dims(x), ctx.shape(x), out_shape, inferred)
    ctx.set_output(out)
    owner = ctx.parameter_owner(x)
    if owner is not None and out_shape is not None:  # a parameter viewed to a size of the module
        for d, e in out.items():
            ctx.follow_shape_attribute(owner, out_shape, d, e)


@register_rule("aten::expand", "aten::expand_as", "aten::_expand", "aten::_expand_as")
def expand(ctx: RuleContext) -> None:
    """Broadcast to a larger shape: the input's dimensions keep their expressions."""
    x = ctx.node.args[0]
    a, b = ctx.shape(x), ctx.output_shape()
    ctx.set_output({d + len(b) - len(a): e for d, e in ctx.dims(x).items()})


@register_rule("aten::permute", "aten::_permute")
def permute(ctx: RuleContext) -> None:
    x, perm = ctx.node.args[0], ctx.node.args[1]
    xi, nd = ctx.dims(x), len(ctx.shape(x))
    perm = [p % nd for p in perm]
    ctx.set_output({i: xi[p] for i, p in enumerate(perm) if p in xi})


@register_rule("aten::transpose", "aten::_transpose", "aten::t", "aten::_t")
def transpose(ctx: RuleContext) -> None:
    x = ctx.node.args[0]
    xi, nd = ctx.dims(x), len(ctx.shape(x))
    args = ctx.node.args
    d0, d1 = (args[1] % nd, args[2] % nd) if len(args) > 2 else (0, 1)
    swap = {d0: d1, d1: d0}
    ctx.set_output({swap.get(d, d): e for d, e in xi.items()})


@register_rule("aten::movedim", "aten::_movedim")
def movedim(ctx: RuleContext) -> None:
    x, s, t = ctx.node.args[0], ctx.node.args[1], ctx.node.args[2]
    nd = len(ctx.shape(x))
    src = [s] if isinstance(s, int) else list(s)
    dst = [t] if isinstance(t, int) else list(t)
    src, dst = [v % nd for v in src], [v % nd for v in dst]
    rest = iter(d for d in range(nd) if d not in src)
    perm = [src[dst.index(i)] if i in dst else next(rest) for i in range(nd)]
    xi = ctx.dims(x)
    ctx.set_output({i: xi[p] for i, p in enumerate(perm) if p in xi})


@register_rule("aten::cat", "aten::_cat")
def cat(ctx: RuleContext) -> None:
    """Concatenation: on its dimension, the inputs' segments one after the other (an untracked
    input is a fixed segment); the other dimensions are tied."""
    node = ctx.node
    tensors = [t for t in node.args[0] if ctx.shape(t) is not None]
    out_shape = ctx.output_shape()
    nd = len(out_shape)
    dim = (node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)) % nd
    tensors = [t for t in tensors if len(ctx.shape(t)) == nd]  # torch.cat skips empty 1-D
    info: Info = {}
    segs = []
    for t in tensors:
        e = ctx.dims(t).get(dim)
        segs += (
            list(ctx.resolve(e)) if e is not None else list(ctx.new_group(ctx.shape(t)[dim], True))
        )
    if any(ctx.dims(t).get(dim) is not None for t in tensors):
        info[dim] = tuple(segs)
    for d in range(nd):
        if d == dim:
            continue
        entries = [(ctx.dims(t).get(d), ctx.shape(t)[d]) for t in tensors]
        e = ctx.tie(entries, out_shape[d], "a concatenation of tensors that pareco does not follow")
        if e is not None:
            info[d] = e
    ctx.set_output(info)


@register_rule("aten::stack", "aten::_stack")
def stack(ctx: RuleContext) -> None:
    """Stacking adds a dimension of fixed size; the inputs' dimensions are tied."""
    node = ctx.node
    tensors = node.args[0]
    nd = len(ctx.output_shape())
    dim = (node.args[1] if len(node.args) > 1 else 0) % nd
    info: Info = {}
    for d in range(nd - 1):
        entries = [(ctx.dims(t).get(d), ctx.shape(t)[d]) for t in tensors]
        e = ctx.tie(entries, ctx.shape(tensors[0])[d], "a stack")
        if e is not None:
            info[d + (d >= dim)] = e
    ctx.set_output(info)


@register_rule("aten::constant_pad_nd", "aten::pad", "aten::_constant_pad_nd", "aten::_pad")
def pad(ctx: RuleContext) -> None:
    """Padding a dimension keeps its channels at full width (the pad is a fixed size)."""
    x, p = ctx.node.args[0], ctx.node.args[1]
    xi, nd = ctx.dims(x), len(ctx.shape(x))
    padded = {nd - 1 - i // 2 for i, v in enumerate(p) if v}
    ctx.keep_full({d: e for d, e in xi.items() if d in padded}, "padding channels")
    ctx.set_output({d: e for d, e in xi.items() if d not in padded})
