"""The layers a latency table prices, and how their shapes follow the channel counts.

One forward pass of the slimmable net with hooks on its leaf modules records every call of a layer
that a table measures (2-d and 1-d conv, linear, embedding, norm, activation, pool) with its shapes.
Its varying sizes (``c_in``, ``c_out``, or ``c`` for one-axis layers) are affine in the ``G`` group
channel counts: ``dims = weights @ c + bias``. The map is found by probing — the full net, then each
group alone at its smallest — and checked at random widths; a layer whose sizes do not follow an
affine map is left out (the end-to-end correction carries it, with the ops that are not modules).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from pareco.slimming import SlimmableNet

ACTIVATIONS = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.SiLU: "silu",
    nn.GELU: "gelu",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.LeakyReLU: "leaky_relu",
}


@dataclass(frozen=True)
class LayerCall:
    """One call of a measured layer.

    Attributes:
        name: the module's qualified name (``#k`` for its k-th call when it runs several times).
        kind: the table key of its fixed shape (op, kernel, stride, spatial size, ...) as text.
        spec: the fixed shape as a dict (what the runtime builds the layer from).
        dims: the names of its varying sizes, e.g. ``("c_in", "c_out")``.
        weights: ``len(dims) x G`` coefficients on the group channel counts.
        bias: ``len(dims)`` sizes that never shrink.
    """

    name: str
    kind: str
    spec: dict[str, Any]
    dims: tuple[str, ...]
    weights: Tensor
    bias: Tensor

    def sizes(self, channels: Tensor) -> Tensor:
        """``n x G`` channel counts → ``n x len(dims)`` sizes (float64)."""
        return channels.to(torch.float64) @ self.weights.T + self.bias

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "dims": list(self.dims),
            "weights": self.weights.tolist(),
            "bias": self.bias.tolist(),
        }


def record_call(module: nn.Module, x: Tensor, y: Tensor) -> tuple[dict, dict] | None:
    """``(spec, sizes)`` of one call, or None for a layer no table measures."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d)) and x.ndim == module.weight.ndim:
        w = module.weight  # the active slice inside net(...)
        c_in, c_out = int(x.shape[1]), int(y.shape[1])
        groups = c_in // int(w.shape[1])
        d = x.ndim - 2  # 1-d convolutions over sequences, 2-d over images
        spec = {
            "op": f"conv{d}d",
            "kernel": list(w.shape[2:]),
            "stride": list(module.stride),
            "padding": module.padding if isinstance(module.padding, str) else list(module.padding),
            "dilation": list(module.dilation),
            "bias": module.bias is not None,
            "hw": list(x.shape[2:]),  # height and width; for a 1-d conv, the sequence's length
        }
        if groups == c_in == c_out and groups > 1:
            return {**spec, "op": f"dwconv{d}d"}, {"c": c_in}
        return {**spec, "groups": groups}, {"c_in": c_in, "c_out": c_out}
    if isinstance(module, nn.Embedding):
        rows = x.numel() // max(int(x.shape[0]), 1) if x.ndim > 1 else 1
        return {"op": "embedding", "vocab": module.num_embeddings, "rows": rows}, {
            "c": int(y.shape[-1])
        }
    if isinstance(module, nn.Linear):
        rows = x.numel() // int(x.shape[-1]) // int(x.shape[0])
        spec = {"op": "linear", "rows": rows, "bias": module.bias is not None}
        return spec, {"c_in": int(x.shape[-1]), "c_out": int(y.shape[-1])}
    if isinstance(module, nn.BatchNorm2d) and x.ndim == 4:
        return {"op": "batchnorm2d", "hw": list(x.shape[2:])}, {"c": int(x.shape[1])}
    if isinstance(module, nn.BatchNorm1d) and x.ndim in (2, 3):
        return {"op": "batchnorm1d", "length": int(x.shape[2]) if x.ndim == 3 else 0}, {
            "c": int(x.shape[1])
        }
    if isinstance(module, nn.LayerNorm):
        rows = x.numel() // int(x.shape[-1]) // int(x.shape[0])
        return {"op": "layernorm", "rows": rows}, {"c": int(x.shape[-1])}
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)) and x.ndim == 4:
        spec = {
            "op": "maxpool2d" if isinstance(module, nn.MaxPool2d) else "avgpool2d",
            "kernel": _pair(module.kernel_size),
            "stride": _pair(module.stride),
            "padding": _pair(module.padding),
            "hw": list(x.shape[2:]),
        }
        return spec, {"c": int(x.shape[1])}
    if isinstance(module, nn.AdaptiveAvgPool2d) and x.ndim == 4:
        return {
            "op": "adaptiveavgpool2d",
            "out": _pair(module.output_size),
            "hw": list(x.shape[2:]),
        }, {"c": int(x.shape[1])}
    op = ACTIVATIONS.get(type(module))
    if op is not None and x.ndim >= 2:
        per = x.numel() // int(x.shape[0]) // int(x.shape[1])
        return {"op": op, "per_channel": per}, {"c": int(x.shape[1])}
    return None


def _pair(v: Any) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(t) for t in v]


def _calls(net: SlimmableNet, alpha: Tensor) -> list[tuple[str, dict, dict]]:
    """Every measured layer call of one forward pass at ``alpha``, in execution order."""
    calls: list[tuple[str, dict, dict]] = []
    counts: dict[str, int] = {}
    handles = []

    def hook(name: str):
        def run(module: nn.Module, args: tuple, out: Any) -> None:
            x = next((a for a in args if isinstance(a, Tensor)), None)
            if x is None or not isinstance(out, Tensor):
                return
            rec = record_call(module, x, out)
            if rec is not None:
                k = counts.get(name, 0)
                counts[name] = k + 1
                calls.append((name if k == 0 else f"{name}#{k}", *rec))

        return run

    for name, m in net.module.named_modules():
        if not list(m.children()):
            handles.append(m.register_forward_hook(hook(name)))
    args, kwargs = net._example
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), net.widths(alpha):
            net(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return calls


def kind_key(spec: dict[str, Any]) -> str:
    """The table key of a fixed layer shape: its spec as compact sorted JSON."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def discover_layers(
    net: SlimmableNet, checks: int = 2, seed: int = 0
) -> tuple[list[LayerCall], list[str]]:
    """The measured layer calls of ``net`` with their affine channel maps, and notes on the
    layers left out. ``checks`` random widths confirm every map exactly."""
    space = net.space
    full_alpha = space.largest()
    full_c = space.channels(full_alpha).to(torch.float64)
    base = _calls(net, full_alpha)
    n_cols = full_c.numel()
    weights = {
        name: torch.zeros(len(sizes), n_cols, dtype=torch.float64) for name, _, sizes in base
    }
    notes: list[str] = []
    bad: set[str] = set()
    small = space.smallest()
    for g in range(space.dim):
        alpha = full_alpha.clone()
        alpha[g] = small[g]
        c = space.channels(alpha).to(torch.float64)
        delta = c - full_c
        if not bool(delta.any()):
            continue
        probe = _calls(net, alpha)
        if [p[0] for p in probe] != [b[0] for b in base]:
            bad.update(b[0] for b in base)
            notes.append(f"group {space.groups[g].name}: the layer calls change with the widths")
            break
        col = int(delta.nonzero()[0])
        for (name, spec, sizes), (_, spec2, sizes2) in zip(base, probe):
            if kind_key(spec) != kind_key(spec2):
                bad.add(name)
                continue
            for d, key in enumerate(sizes):
                weights[name][d, col] = (sizes2[key] - sizes[key]) / float(delta[col])
    layers = []
    for name, spec, sizes in base:
        w = weights[name]
        b = torch.tensor([float(v) for v in sizes.values()], dtype=torch.float64) - w @ full_c
        layers.append((name, spec, tuple(sizes), w, b))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(checks):
        alpha = space.sample(1, generator=gen)[0]
        c = space.channels(alpha).to(torch.float64)
        got = {name: (spec, sizes) for name, spec, sizes in _calls(net, alpha)}
        for name, _spec, dims, w, b in layers:
            if name not in got:
                bad.add(name)
                continue
            want = torch.tensor([float(got[name][1][k]) for k in dims], dtype=torch.float64)
            if not torch.allclose(w @ c + b, want):
                bad.add(name)
    out = []
    for name, spec, dims, w, b in layers:
        if name in bad:
            notes.append(
                f"{name}: its sizes do not follow the channel counts; left to the "
                "end-to-end correction"
            )
            continue
        out.append(LayerCall(name, kind_key(spec), spec, dims, w, b))
    return out, notes


def fingerprint(net: SlimmableNet) -> str:
    """SHA-256 (16 hex digits) of the width space, the module tree with its full parameter
    shapes, and the example input's shapes: what a latency table must have been built from."""
    params = [(n, list(p.shape)) for n, p in net.module.named_parameters()]
    modules = [(n, type(m).__name__) for n, m in net.module.named_modules()]
    args, kwargs = net._example
    inputs = [
        list(t.shape)
        for t in torch.utils._pytree.tree_leaves((args, kwargs))
        if isinstance(t, Tensor)
    ]
    blob = json.dumps(
        {"space": net.space.to_dict(), "params": params, "modules": modules, "inputs": inputs},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
