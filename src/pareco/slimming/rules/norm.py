"""Rules for normalizations: their affine parameters and statistics follow the normalized
channels; LayerNorm and GroupNorm set their size attributes at every width."""

from __future__ import annotations

from torch import fx

from pareco.slimming.context import RuleContext
from pareco.slimming.groups import Expr
from pareco.slimming.registry import register_rule

_BATCH_NORM = (
    "batch_norm", "native_batch_norm", "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training", "_native_batch_norm_legit_functional",
    "instance_norm",
)  # fmt: skip


def normalize(ctx: RuleContext, dim: int, names: tuple[str, ...]) -> Expr | None:
    """Tie dimension ``dim`` of the input with dimension 0 of the parameters ``names``."""
    a = ctx.args()
    x = a["input"]
    xi, xs = ctx.dims(x), ctx.shape(x)
    size = xs[dim]
    entries = [(xi.get(dim), size)]
    for n in names:
        p = a.get(n)
        if isinstance(p, fx.Node):
            entries.append((ctx.dims(p).get(0), ctx.shape(p)[0]))
    e = ctx.tie(entries, size, "a norm over channels pareco does not follow")
    for n in names:
        p = a.get(n)
        if isinstance(p, fx.Node) and e is not None:
            ctx.set_param_dims(p, 0, e)
    out = dict(xi)
    if e is not None:
        out[dim] = e
    v = ctx.output_value()
    ctx.set_output(out if ctx.output_shape() is not None else [out] + [{} for _ in v[1:]])
    return e


@register_rule(*(f"aten::{n}" for n in _BATCH_NORM))
def batch_norm(ctx: RuleContext) -> None:
    """BatchNorm and InstanceNorm over dimension 1, with running statistics."""
    normalize(ctx, 1, ("weight", "bias", "running_mean", "running_var"))


@register_rule("aten::layer_norm", "aten::native_layer_norm", "aten::_native_layer_norm")
def layer_norm(ctx: RuleContext) -> None:
    """LayerNorm over the last dimension (its module's ``normalized_shape`` follows); over
    several dimensions it is kept at full width."""
    a = ctx.args()
    xs = ctx.shape(a["input"])
    shape = list(a["normalized_shape"])
    if len(shape) != 1:
        xi = ctx.dims(a["input"])
        ctx.keep_full(
            {d: e for d, e in xi.items() if d >= len(xs) - len(shape)},
            "a LayerNorm over several dimensions",
        )
        return ctx.keep_input_dims()
    e = normalize(ctx, len(xs) - 1, ("weight", "bias"))
    owner = ctx.parameter_owner(a.get("weight"))
    if e is not None and owner is not None:
        ctx.set_attribute(owner, "normalized_shape", e, "shape")
    elif e is not None:
        ctx.keep_full({0: e}, "a LayerNorm without weight")


@register_rule("aten::group_norm", "aten::_group_norm")
def group_norm(ctx: RuleContext) -> None:
    """GroupNorm with one group, or one group per channel (``num_groups`` follows); other group
    counts are kept at full width."""
    a = ctx.args()
    c, groups = ctx.shape(a["input"])[1], a["num_groups"]
    e = normalize(ctx, 1, ("weight", "bias"))
    owner = ctx.parameter_owner(a.get("weight"))
    if e is None or groups == 1:
        return
    if groups == c and owner is not None:
        ctx.set_attribute(owner, "num_groups", e, "count")
    else:
        ctx.keep_full({0: e}, f"a GroupNorm with {groups} groups of channels")
