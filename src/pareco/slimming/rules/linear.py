"""Rules for the ops that multiply channels: convolutions, linear layers, matrix products.

A weight's output dimension is a channel group of its own (joined to the bias and to whatever
the output meets later); its input dimension is tied to the input's channels. Each rule also
prices the op: ``prod(weight dims) * output positions`` multiply-adds.
"""

from __future__ import annotations

import math
from typing import Any

from pareco.slimming.context import RuleContext
from pareco.slimming.groups import Expr
from pareco.slimming.registry import register_rule


def _conv(ctx: RuleContext, transposed: bool, groups: int) -> None:
    a = ctx.args()
    x, w, b = a["input"], a["weight"], a.get("bias")
    if transposed:
        return ctx.block("a transposed convolution")
    xi, wi = ctx.dims(x), ctx.dims(w)
    xs, ws, out_shape = ctx.shape(x), ctx.shape(w), ctx.output_shape()
    cin, cout = xs[1], ws[0]
    wout = wi.get(0)
    if groups == 1:
        win = ctx.tie(
            [(xi.get(1), cin), (wi.get(1), ws[1])],
            cin,
            "a conv reads channels pareco does not follow",
        )
        if win is not None:
            ctx.set_param_dims(w, 1, win)
    elif groups == cin == cout and ws[1] == 1 and wout is not None:
        e = ctx.tie(
            [(xi.get(1), cin), (wout, cout)],
            cout,
            "a depthwise conv reads channels pareco does not follow",
        )
        ctx.set_param_dims(w, 0, e)
        wout = e
        owner = ctx.parameter_owner(w)
        if owner is not None and e is not None:
            ctx.set_attribute(owner, "groups", e, "groups")
        else:
            ctx.keep_full(
                {0: e} if e is not None else None, "a depthwise conv whose weight is computed"
            )
    else:
        units = _whole_groups(ctx, xi.get(1), cin, cout, groups) if wout is not None else None
        owner = ctx.parameter_owner(w)
        if units is None or owner is None:
            why = f"a grouped conv (groups={groups})"
            if units is not None:
                why += " whose weight is computed"
            ctx.keep_full({1: xi[1]} if 1 in xi else None, why)
            ctx.keep_full(ctx.dims(w), why)
        else:
            unit_expr, out_expr = units
            wout = ctx.unify(wout, out_expr)
            ctx.set_attribute(owner, "groups", unit_expr, "groups")
    wi = ctx.dims(w)
    if b is not None and wout is not None:
        bi = ctx.dims(b)
        e = ctx.tie([(wout, cout), (bi.get(0), cout)], cout, "conv bias")
        ctx.set_param_dims(w, 0, e)
        wi[0] = e
    ctx.set_output({1: wi[0]} if wi.get(0) is not None else {})
    spatial = math.prod(out_shape[2:])
    ctx.add_macs([ctx.size_of(w, d) for d in range(len(ws))], spatial * out_shape[0])


def _whole_groups(
    ctx: RuleContext, x: Expr | None, cin: int, cout: int, groups: int
) -> tuple[Expr, Expr] | None:
    """A grouped conv sliced in whole groups: its input read in units of ``cin/groups``
    channels, its output in units of ``cout/groups``. Returns the units (an expression whose
    size is the number of groups) and the output's expression, or None when the input's
    segments do not fall on whole groups."""
    if x is None:
        return None
    ci, co = cin // groups, cout // groups
    units, out = [], []
    for g, per in ctx.resolve(x):
        if per % ci == 0:
            units.append((g, per // ci))
            out.append((g, per // ci * co))
        elif ci % per == 0 and ctx.group_size(g) % (ci // per) == 0:
            r = ci // per
            ((u, _),) = ctx.new_group(ctx.group_size(g) // r)
            ctx.bind(g, ((u, r),))
            units.append((u, 1))
            out.append((u, co))
        else:
            return None
    return tuple(units), tuple(out)


@register_rule("aten::conv1d", "aten::conv2d", "aten::conv3d")
def conv(ctx: RuleContext) -> None:
    """``conv{1,2,3}d``: output channels from the weight, input channels tied to the input's;
    a depthwise conv ties both and sets the module's ``groups``."""
    _conv(ctx, False, ctx.args()["groups"])


@register_rule("aten::convolution", "aten::_convolution")
def convolution(ctx: RuleContext) -> None:
    """The general convolution (transposed ones are not followed)."""
    a = ctx.args()
    _conv(ctx, bool(a["transposed"]), a["groups"])


@register_rule("aten::linear")
def linear(ctx: RuleContext) -> None:
    """``x @ W.T + b`` on the last dimension; the rows keep their size."""
    a = ctx.args()
    x, w, b = a["input"], a["weight"], a.get("bias")
    xi, wi = ctx.dims(x), ctx.dims(w)
    xs, ws = ctx.shape(x), ctx.shape(w)
    last = len(xs) - 1
    e = ctx.tie(
        [(xi.get(last), xs[last]), (wi.get(1), ws[1])],
        ws[1],
        "a linear layer reads features pareco does not follow",
    )
    if e is not None:
        ctx.set_param_dims(w, 1, e)
    wi = ctx.dims(w)
    if b is not None and 0 in wi:
        bi = ctx.dims(b)
        wi[0] = ctx.tie([(wi[0], ws[0]), (bi.get(0), ws[0])], ws[0], "bias")
        ctx.set_param_dims(w, 0, wi[0])
    xi.pop(last, None)
    if xi:  # the rows of a linear layer would multiply with its features: keep them fixed
        ctx.keep_full(xi, "a linear layer over a channel dimension")
    ctx.set_output({last: wi[0]} if wi.get(0) is not None else {})
    rows = math.prod(xs[:-1])
    ctx.add_macs([ctx.size_of(w, 0), ctx.size_of(w, 1)], rows)


def _matmul(ctx: RuleContext, a: Any, b: Any, bias: Any = None) -> None:
    sa, sb, so = ctx.shape(a), ctx.shape(b), ctx.output_shape()
    if len(sa) < 2 or len(sb) < 2:
        return ctx.block()
    ia, ib = ctx.dims(a), ctx.dims(b)
    k = ctx.tie(
        [(ia.get(len(sa) - 1), sa[-1]), (ib.get(len(sb) - 2), sb[-2])],
        sa[-1],
        "a matmul contracts channels pareco does not follow",
    )
    out = {}
    if ia.get(len(sa) - 2) is not None:
        out[len(so) - 2] = ia[len(sa) - 2]
    if ib.get(len(sb) - 1) is not None:
        out[len(so) - 1] = ib[len(sb) - 1]
    for d in list(ia) + list(ib):  # batch dimensions of a matmul stay fixed
        if (d in ia and d < len(sa) - 2) or (d in ib and d < len(sb) - 2):
            ctx.keep_full({0: (ia if d in ia else ib)[d]}, "a batched matmul")
    if bias is not None:
        bi, bs = ctx.dims(bias), ctx.shape(bias)
        for d, e in bi.items():
            od = d + len(so) - len(bs)
            if od in out:
                out[od] = ctx.unify(out[od], e)
            else:
                ctx.keep_full({0: e}, "a matmul bias")
    ctx.set_output(out)
    factors: list[Any] = [k if k is not None else sa[-1]]
    factors += [out.get(len(so) - 2, so[-2]), out.get(len(so) - 1, so[-1])]
    ctx.add_macs(factors, math.prod(so[:-2]))


@register_rule("aten::mm", "aten::bmm", "aten::matmul", "aten::_mm", "aten::_bmm", "aten::_matmul")
def matmul(ctx: RuleContext) -> None:
    """``a @ b``: the contracted dimensions are tied; batch dimensions keep their size."""
    _matmul(ctx, ctx.node.args[0], ctx.node.args[1])


@register_rule("aten::addmm", "aten::baddbmm", "aten::_addmm", "aten::_baddbmm")
def addmm(ctx: RuleContext) -> None:
    """``bias + a @ b``."""
    _matmul(ctx, ctx.node.args[1], ctx.node.args[2], bias=ctx.node.args[0])
