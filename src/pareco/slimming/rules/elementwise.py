"""Element-wise rules: ops that keep their input's channels, broadcasting, new tensors."""

from __future__ import annotations

from pareco.slimming.context import RuleContext
from pareco.slimming.registry import register_rule

_KEEP = (
    "dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "native_dropout",
    "clone", "contiguous", "detach", "alias", "lift_fresh_copy", "_to_copy", "to", "type_as",
    "softmax", "_softmax", "log_softmax", "_log_softmax", "zeros_like", "ones_like", "empty_like",
    "full_like", "rand_like", "randn_like", "bernoulli", "bernoulli_", "fill_", "zero_",
    "_safe_softmax", "dropout_", "copy_",
    # activations (some in-place forms carry no pointwise tag)
    "relu", "relu_", "relu6", "relu6_", "hardtanh", "hardtanh_", "hardswish", "hardswish_",
    "hardsigmoid", "hardsigmoid_", "silu", "silu_", "gelu", "gelu_", "mish", "mish_", "elu",
    "elu_", "leaky_relu", "leaky_relu_", "celu", "celu_", "selu", "selu_", "softplus",
    "threshold", "threshold_", "log_sigmoid", "sigmoid", "sigmoid_", "tanh", "tanh_",
)  # fmt: skip
_NEW = (
    "new_empty", "new_zeros", "new_ones", "new_full", "scalar_tensor", "arange", "zeros", "ones",
    "full", "empty", "rand", "randn", "empty_strided",
)  # fmt: skip


@register_rule(*(f"aten::{n}" for n in _KEEP))
def keep(ctx: RuleContext) -> None:
    """The output has the first argument's channels (activations, dropout, copies, softmax)."""
    ctx.keep_input_dims()


@register_rule(*(f"aten::{n}" for n in _NEW))
def new_tensor(ctx: RuleContext) -> None:
    """A tensor made from sizes alone follows no channel."""
    v = ctx.output_value()
    ctx.set_output({} if ctx.output_shape() is not None else [{} for _ in v])


def pointwise(ctx: RuleContext) -> None:
    """Element-wise with broadcasting: each output dimension ties the operands' dimensions that
    meet in it (used for every op tagged ``torch.Tag.pointwise``)."""
    out_shape = ctx.output_shape()
    if out_shape is None:
        return ctx.block()
    operands = [a for a in ctx.node.all_input_nodes if ctx.shape(a) is not None]
    info = {}
    for d, size in enumerate(out_shape):
        entries = []
        for a in operands:
            s = ctx.shape(a)
            k = d - (len(out_shape) - len(s))
            if k >= 0:
                entries.append((ctx.dims(a).get(k), s[k]))
        e = ctx.tie(
            entries, size, "an element-wise op mixes it with a tensor pareco does not follow"
        )
        if e is not None:
            info[d] = e
    ctx.set_output(info)


@register_rule("aten::prelu", "aten::_prelu")
def prelu(ctx: RuleContext) -> None:
    """PReLU with one slope per channel ties the slopes to the input's channels."""
    x, w = ctx.node.args[0], ctx.node.args[1]
    xi = ctx.dims(x)
    ws = ctx.shape(w)
    if ws[0] > 1:
        e = ctx.tie([(xi.get(1), ctx.shape(x)[1]), (ctx.dims(w).get(0), ws[0])], ws[0], "PReLU")
        if e is not None:
            xi[1] = e
    ctx.set_output(xi)
