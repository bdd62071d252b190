"""Attention: its heads split the channel axis, so query, key and value stay at full width
(priced as a constant by ``FlopCounterMode``); the residual stream and MLPs around it slim."""

from __future__ import annotations

from pareco.slimming.context import RuleContext
from pareco.slimming.registry import register_rule


@register_rule("aten::scaled_dot_product_attention", "aten::_scaled_dot_product_attention")
def scaled_dot_product_attention(ctx: RuleContext) -> None:
    for t in ctx.node.args[:3]:
        ctx.keep_full(ctx.dims(t), "attention heads")
    ctx.block("attention")
