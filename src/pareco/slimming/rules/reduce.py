"""Rules for reductions and pooling.

A reduction over a channel dimension is fine: the sub-network reduces its own channels. Pooling
works on spatial dimensions; pooling over a channel dimension keeps it at full width.
"""

from __future__ import annotations

from pareco.slimming.context import RuleContext
from pareco.slimming.registry import register_rule

_REDUCE = (
    "mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean",
    "logsumexp", "linalg_vector_norm", "argmax", "argmin", "prod", "norm",
)  # fmt: skip
_POOL = (
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "avg_pool1d",
    "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "_adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "upsample_nearest2d", "upsample_bilinear2d", "_upsample_nearest_exact2d",
    "_upsample_bilinear2d_aa", "upsample_bicubic2d", "reflection_pad2d", "replication_pad2d",
    "reflection_pad1d", "replication_pad1d",
)  # fmt: skip


@register_rule(*(f"aten::{n}" for n in _REDUCE))
def reduce(ctx: RuleContext) -> None:
    a = ctx.args()
    x = a.get("self", a.get("input"))
    xi, nd = ctx.dims(x), len(ctx.shape(x))
    dims = a.get("dim")
    if dims is None or dims == []:
        dims = list(range(nd))
    dims = {d % nd for d in ([dims] if isinstance(dims, int) else dims)}
    keepdim = bool(a.get("keepdim") or False)
    out = {}
    for d, e in xi.items():
        if d in dims:
            continue  # a reduction over channels: the sub-network reduces its own channels
        out[d - (0 if keepdim else sum(1 for r in dims if r < d))] = e
    v = ctx.output_value()
    ctx.set_output(out if ctx.output_shape() is not None else [dict(out) for _ in v])


@register_rule(*(f"aten::{n}" for n in _POOL))
def pool(ctx: RuleContext) -> None:
    """Pooling, upsampling and spatial padding over the last 1, 2 or 3 dimensions."""
    x = ctx.node.args[0]
    xi, nd = ctx.dims(x), len(ctx.shape(x))
    target = str(ctx.node.target)
    n_spatial = 1 if "1d" in target else 3 if "3d" in target else 2
    keep = {d: e for d, e in xi.items() if d < nd - n_spatial}
    lost = {d: e for d, e in xi.items() if d >= nd - n_spatial}
    ctx.keep_full(lost, "pooling over a channel dimension")
    v = ctx.output_value()
    ctx.set_output(keep if ctx.output_shape() is not None else [keep] + [{} for _ in v[1:]])
