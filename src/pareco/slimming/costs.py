"""Cost terms read off the walked graph: MACs of every op a rule priced, parameter sizes, and
each activation's size and lifetime (for peak memory); ops no rule prices are counted once
with ``FlopCounterMode`` (their inputs never shrink)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, fx

from pareco.slimming.capture import flop_counter
from pareco.slimming.walker import Walker


def cost_terms(walk: Walker):
    params_terms = []
    shapes = {walk.param_fqn(n): walk.shape(n) for n in walk.nodes if n.op == "placeholder"}
    for fqn, info in walk.param_dims.items():
        if fqn in walk.buffers:
            continue
        shape = shapes[fqn]
        params_terms.append([info.get(d, s) for d, s in enumerate(shape)])
    # Activation memory: every tensor computed from the input, alive until its last reader.
    last: dict[fx.Node, int] = {}
    for node in walk.nodes:
        for user in node.users:
            owner = walk.storage.get(node, node)
            last[owner] = max(last.get(owner, -1), walk.index[user])
    memory = []
    for node in walk.nodes:
        if not walk.from_input.get(node) or node in walk.storage or node.op == "output":
            continue
        info = walk.info.get(node)
        v = walk.val(node)
        if isinstance(info, list) and isinstance(v, (list, tuple)) and v:
            info, v = info[0], v[0]
        if not isinstance(info, dict) or not isinstance(v, Tensor):
            continue
        i = walk.index[node]
        factors = [info.get(d, int(s)) for d, s in enumerate(v.shape)]
        memory.append((factors, i, max(i, last.get(node, i))))
    return walk.macs, params_terms, memory


def constant_flops(walk: Walker) -> float:
    """FLOPs of ops pareco does not price by rule (attention on fixed heads, einsum...): their
    inputs never shrink, so they are counted once, the way ``FlopCounterMode`` counts them."""
    total = 0.0
    for node in walk.const_flop_nodes:

        def real(a: Any) -> Any:
            v = walk.val(a) if isinstance(a, fx.Node) else None
            if isinstance(v, Tensor):
                if v.dtype.is_floating_point:
                    return torch.randn(v.shape, dtype=v.dtype)
                return torch.zeros(v.shape, dtype=v.dtype)
            return a

        args = fx.node.map_arg(node.args, real)
        kwargs = fx.node.map_arg(node.kwargs, real)
        try:
            with torch.no_grad(), flop_counter() as counter:
                node.target(*args, **kwargs)
            total += counter.get_total_flops()
        except Exception:  # the check in slim() compares the total with the real model
            continue
    return total
