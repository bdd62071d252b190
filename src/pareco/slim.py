"""Turn a plain PyTorch model into a slimmable one.

``pareco.slim(model, example_input)`` captures one forward pass with ``torch.export`` (an ATen
graph: every conv, linear, norm, concatenation or permute, whoever called it — a subclass, a
functional call with a module's parameters, a Hugging Face model with keyword inputs), follows the
channel dimensions of every tensor through it to find the *channel groups*, and then makes the
user's own module tree slice its parameters where they are read (:mod:`pareco.layers`). The model
keeps running its own Python code, so train/eval behaviour, dropout and BatchNorm statistics are
those of the original. The rules (one small handler per kind of operation, in ``_Discovery``):

* a parameter's dimensions are channel groups; a conv or linear output has the group of its
  weight's output dimension, and its input dimension is tied to the input's;
* element-wise ops (tagged pointwise by ATen), norms, pooling, dropout tie or keep groups;
* views, reshapes, permutes and flattening move a group between dimensions (``channel x H x W``
  flattened keeps the channel outermost, so the first ``k`` channels are the first ``k*H*W``);
* a concatenation on a channel dimension is a list of *segments*, sliced segment by segment;
* what cannot shrink exactly — a grouped conv, a split or shuffle of channels, attention heads
  — keeps its groups at full width, with a note;
* any other op on a searchable channel dimension is a *blocker*: :class:`SlimError` lists all of
  them, or ``ignored="auto"`` keeps their groups at full width and says so.

Costs come from the same graph and are checked against ``FlopCounterMode`` before ``slim`` returns.
"""

from __future__ import annotations

import contextlib
import copy
import math
import operator
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, fx, nn
from torch.utils import _pytree as pytree
from torch.utils.flop_counter import FlopCounterMode

from pareco.cost import CostModel, Factor, Polynomial, normalize_metric
from pareco.layers import SliceSwitch, is_sliceable, make_sliceable, set_cuts, to_plain, write_back
from pareco.space import ChannelGroup, WidthSpace


class SlimError(ValueError):
    """A model that pareco cannot make slimmable, with what to do about it."""


Seg = tuple[int, int]  # (group, elements per channel)
Expr = tuple[Seg, ...]

_KEEP = {
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
}  # fmt: skip
_POOL = {
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "avg_pool1d",
    "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "_adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "upsample_nearest2d", "upsample_bilinear2d", "_upsample_nearest_exact2d",
    "_upsample_bilinear2d_aa", "upsample_bicubic2d", "reflection_pad2d", "replication_pad2d",
    "reflection_pad1d", "replication_pad1d",
}  # fmt: skip
_REDUCE = {
    "mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean",
    "logsumexp", "linalg_vector_norm", "argmax", "argmin", "prod", "norm",
}  # fmt: skip
_RESHAPE = {
    "view", "reshape", "_unsafe_view", "flatten", "unflatten", "view_as", "reshape_as",
    "squeeze", "squeeze_", "unsqueeze", "unsqueeze_",
}  # fmt: skip
_NEW = {
    "new_empty",
    "new_zeros",
    "new_ones",
    "new_full",
    "scalar_tensor",
    "arange",
    "zeros",
    "ones",
    "full",
    "empty",
    "rand",
    "randn",
    "empty_strided",
}
_BN = {
    "batch_norm", "native_batch_norm", "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training", "_native_batch_norm_legit_functional", "instance_norm",
}  # fmt: skip
_NO_FLOPS = _KEEP | _POOL | _REDUCE | _RESHAPE | _NEW | _BN


def flop_counter() -> FlopCounterMode:
    """``FlopCounterMode`` that also counts CPU attention (torch's registry names the CUDA kernels
    only), so that a model with attention is priced, not silently undercounted."""
    from torch.utils.flop_counter import sdpa_flop_count

    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:

        def cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return sdpa_flop_count(query_shape, key_shape, value_shape)

        mapping[op] = cpu_sdpa
    return FlopCounterMode(display=False, custom_mapping=mapping)


# --- channel groups --------------------------------------------------------------------------
@dataclass
class _Groups:
    """Union-find over channel groups; a group may be *bound* to a list of segments (a weight
    that reads a concatenation is sliced the way the concatenation is)."""

    parent: list[int] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    fixed: list[bool] = field(default_factory=list)
    live: list[int | None] = field(default_factory=list)  # first node where an activation has it
    binding: dict[int, Expr] = field(default_factory=dict)

    def new(self, size: int, fixed: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.fixed.append(fixed)
        self.live.append(None)
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def resolve(self, expr: Expr) -> Expr:
        out: list[Seg] = []
        for g, per in expr:
            r = self.find(g)
            if r in self.binding:
                out += [(g2, per * p2) for g2, p2 in self.resolve(self.binding[r])]
            else:
                out.append((r, per))
        return tuple(out)

    def numel(self, expr: Expr) -> int:
        return sum(self.size[self.find(g)] * per for g, per in self.resolve(expr))

    def fix(self, expr: Expr) -> None:
        for g, _ in self.resolve(expr):
            self.fixed[g] = True

    def mark_live(self, expr: Expr, index: int) -> None:
        for g, _ in self.resolve(expr):
            if self.live[g] is None or self.live[g] > index:
                self.live[g] = index

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        lo, hi = min(ra, rb), max(ra, rb)
        self.parent[hi] = lo
        self.fixed[lo] = self.fixed[lo] or self.fixed[hi]
        lives = [v for v in (self.live[lo], self.live[hi]) if v is not None]
        self.live[lo] = min(lives) if lives else None

    def unify(self, a: Expr, b: Expr) -> tuple[Expr, bool]:
        """Tie two channel expressions of equal total size; False when their segments do not
        line up (both are then fixed)."""
        a, b = self.resolve(a), self.resolve(b)
        if a == b:
            return a, True
        if len(a) == len(b) and all(
            pa == pb and self.size[ga] == self.size[gb] for (ga, pa), (gb, pb) in zip(a, b)
        ):
            for (ga, _), (gb, _) in zip(a, b):
                self.union(ga, gb)
            return self.resolve(a), True
        for one, other in ((a, b), (b, a)):
            ((g, per),) = one if len(one) == 1 else ((None, 0),)
            if (
                g is not None
                and self.live[g] is None
                and all(p % per == 0 and g2 != g for g2, p in other)
            ):
                self.binding[g] = tuple((g2, p // per) for g2, p in other)
                if self.fixed[g]:
                    self.fix(other)
                return self.resolve(other), True
        self.fix(a)
        self.fix(b)
        return a, False


Info = dict[int, Expr]  # tensor dimension → channel expression (untracked dims keep their size)


@dataclass
class _Blocker:
    node: fx.Node
    exprs: list[Expr]
    what: str


@dataclass
class _Plan:
    """What slicing and costing needs, in terms of group roots."""

    sliced: dict[str, dict[str, list[tuple[int, Expr]]]]  # module → tensor name → dims
    attrs: list[tuple[str, str, Expr, str]]  # module, attribute, channels, kind
    macs: list[tuple[list[Any], float]]
    params: list[list[Any]]
    memory: list[tuple[list[Any], int, int]]
    members: dict[int, list[str]]
    consumers: dict[int, list[str]]


class _Discovery:
    """Walks the exported ATen graph once, giving every tensor dimension a channel expression."""

    def __init__(self, ep: torch.export.ExportedProgram, batch: int) -> None:
        self.ep = ep
        self.batch = batch
        self.g = _Groups()
        self.nodes = list(ep.graph.nodes)
        self.index = {n: i for i, n in enumerate(self.nodes)}
        self.info: dict[fx.Node, Any] = {}
        self.from_input: dict[fx.Node, bool] = {}
        sig = ep.graph_signature
        self.param_of = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
        self.buffers = set(sig.inputs_to_buffers.values())
        self.user_inputs = set(sig.user_inputs)
        self.param_dims: dict[str, Info] = {}
        self.param_first_use: dict[str, int] = {}
        self.blockers: list[_Blocker] = []
        self.notes: list[str] = []
        self.macs: list[tuple[list[Any], float]] = []
        self.const_flop_nodes: list[fx.Node] = []
        self.attrs: list[tuple[str, str, Expr, str]] = []
        self.storage: dict[fx.Node, fx.Node] = {}

    # --- helpers ---------------------------------------------------------------------------
    @staticmethod
    def val(node: Any) -> Any:
        return node.meta.get("val") if isinstance(node, fx.Node) else None

    def shape(self, node: Any) -> tuple[int, ...] | None:
        v = self.val(node)
        return tuple(int(s) for s in v.shape) if isinstance(v, Tensor) else None

    def tinfo(self, node: Any) -> Info | None:
        i = self.info.get(node) if isinstance(node, fx.Node) else None
        return i if isinstance(i, dict) else None

    def note(self, node: fx.Node, text: str) -> None:
        line = f"{text} (at {_where(node)})"
        if line not in self.notes:
            self.notes.append(line)

    def fix_all(self, info: Info | None, node: fx.Node, why: str) -> None:
        if info:
            live_before = any(
                self.g.live[g] is not None and not self.g.fixed[g]
                for e in info.values()
                for g, _ in self.g.resolve(e)
            )
            for e in info.values():
                self.g.fix(e)
            if live_before:
                self.note(node, f"kept at full width: {why}")

    def unify_dims(
        self, entries: list[tuple[Expr | None, int]], size: int, node: fx.Node, why: str
    ) -> Expr | None:
        """One output dimension fed by several operands (broadcasting, concatenation)."""
        tracked = [e for e, s in entries if e is not None and s == size]
        if not tracked:
            return None
        e = tracked[0]
        for other in tracked[1:]:
            e, ok = self.g.unify(e, other)
            if not ok:
                self.note(node, "kept at full width: channel segments that do not line up")
        if any(ex is None and s == size and s > 1 for ex, s in entries):
            self.fix_all({0: e}, node, why)
        return e

    def param_fqn(self, node: Any) -> str | None:
        return self.param_of.get(node.name) if isinstance(node, fx.Node) else None

    def args(self, node: fx.Node) -> dict[str, Any]:
        schema = node.target._schema
        out = {}
        for i, a in enumerate(schema.arguments):
            if i < len(node.args):
                out[a.name] = node.args[i]
            elif a.name in node.kwargs:
                out[a.name] = node.kwargs[a.name]
            else:
                out[a.name] = a.default_value if a.has_default_value() else None
        return out

    # --- the walk --------------------------------------------------------------------------
    def run(self) -> None:
        for node in self.nodes:
            self.from_input[node] = False
            if node.op == "placeholder":
                self._placeholder(node)
            elif node.op == "call_function":
                self.from_input[node] = any(
                    self.from_input.get(a, False) for a in node.all_input_nodes
                )
                for a in node.all_input_nodes:
                    fqn = self.param_fqn(a)
                    if fqn is not None and fqn not in self.param_first_use:
                        self.param_first_use[fqn] = self.index[node]
                self._call(node)
                out = self.info.get(node)
                if self.from_input[node]:
                    for i in out if isinstance(out, list) else [out]:
                        for e in (i or {}).values():
                            self.g.mark_live(e, self.index[node])
            elif node.op == "output":
                for leaf in pytree.tree_leaves(node.args):  # the outputs keep their size
                    for e in (self.tinfo(leaf) or {}).values():
                        self.g.fix(e)

    def _placeholder(self, node: fx.Node) -> None:
        shape = self.shape(node)
        fqn = self.param_fqn(node)
        if fqn is not None and shape is not None:
            info = {d: ((self.g.new(s), 1),) for d, s in enumerate(shape) if s > 1}
            self.param_dims[fqn] = info
            self.info[node] = info
        else:
            self.info[node] = {} if shape is not None else None
            self.from_input[node] = node.name in self.user_inputs

    def _call(self, node: fx.Node) -> None:
        target = node.target
        if target is operator.getitem:
            src, i = node.args
            out = self.info.get(src)
            self.info[node] = out[i] if isinstance(out, list) and i < len(out) else None
            if isinstance(out, list):
                self.storage[node] = self.storage.get(src, src)
            return
        v = self.val(node)
        name = getattr(getattr(target, "overloadpacket", None), "__name__", None)
        if name is None:
            return self._unknown(node, getattr(target, "__name__", str(target)))
        if not isinstance(v, (Tensor, list, tuple)):
            return  # sizes, asserts and other non-tensor results
        schema = target._schema
        if schema.returns and schema.returns[0].alias_info is not None:
            src = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
            if src is not None:
                self.storage[node] = self.storage.get(src, src)
        handler = getattr(self, f"_op_{name.lstrip('_')}", None)
        if handler is not None:
            return handler(node)
        if name in _KEEP:
            return self._keep(node)
        if name in _POOL:
            return self._pool(node)
        if name in _REDUCE:
            return self._reduce(node)
        if name in _RESHAPE:
            return self._reshape(node)
        if name in _BN:
            return self._norm(node, 1, ("weight", "bias", "running_mean", "running_var"))
        if name in _NEW:
            self.info[node] = {} if isinstance(v, Tensor) else [{} for _ in v]
            return None
        if torch.Tag.pointwise in target.tags:
            return self._pointwise(node)
        return self._unknown(node, str(target.overloadpacket))

    def _unknown(self, node: fx.Node, what: str) -> None:
        exprs = []
        for a in node.all_input_nodes:
            exprs += list((self.tinfo(a) or {}).values())
        if exprs:
            self.blockers.append(_Blocker(node, exprs, what))
        v = self.val(node)
        self.info[node] = (
            {}
            if isinstance(v, Tensor)
            else [{} for _ in v]
            if isinstance(v, (list, tuple))
            else None
        )
        if isinstance(node.target, torch._ops.OpOverload) and name_has_flops(node):
            self.const_flop_nodes.append(node)

    # --- per-operation rules -----------------------------------------------------------------
    def _keep(self, node: fx.Node) -> None:
        src = self.tinfo(node.args[0]) or {}
        v = self.val(node)
        self.info[node] = dict(src) if isinstance(v, Tensor) else [dict(src)] + [{} for _ in v[1:]]

    def _pointwise(self, node: fx.Node) -> None:
        out_shape = self.shape(node)
        if out_shape is None:
            return self._unknown(node, str(node.target))
        operands = [a for a in node.all_input_nodes if self.shape(a) is not None]
        info: Info = {}
        for d, size in enumerate(out_shape):
            entries = []
            for a in operands:
                s = self.shape(a)
                k = d - (len(out_shape) - len(s))
                if k >= 0:
                    entries.append(((self.tinfo(a) or {}).get(k), s[k]))
            e = self.unify_dims(
                entries,
                size,
                node,
                "an element-wise op mixes it with a tensor pareco does not follow",
            )
            if e is not None:
                info[d] = e
        self.info[node] = info

    def _op_conv(self, node: fx.Node, transposed: bool, groups: int) -> None:
        a = self.args(node)
        x, w, b = a["input"], a["weight"], a.get("bias")
        if transposed:
            return self._unknown(node, "a transposed convolution")
        xi, wi = self.tinfo(x) or {}, self.tinfo(w) or {}
        xs, ws, out_shape = self.shape(x), self.shape(w), self.shape(node)
        cin, cout = xs[1], ws[0]
        wout = wi.get(0)
        if groups == 1:
            win = self.unify_dims(
                [(xi.get(1), cin), (wi.get(1), ws[1])],
                cin,
                node,
                "a conv reads channels pareco does not follow",
            )
            if win is not None:
                wi[1] = win
        elif groups == cin == cout and ws[1] == 1 and wout is not None:
            e = self.unify_dims(
                [(xi.get(1), cin), (wout, cout)],
                cout,
                node,
                "a depthwise conv reads channels pareco does not follow",
            )
            wi[0] = wout = e
            owner = _owner(self.param_fqn(w))
            if owner is not None and e is not None:
                self.attrs.append((owner, "groups", e, "groups"))
            else:
                self.fix_all(
                    {0: e} if e is not None else None,
                    node,
                    "a depthwise conv whose weight is computed",
                )
        else:
            self.fix_all({1: xi[1]} if 1 in xi else None, node, f"a grouped conv (groups={groups})")
            self.fix_all(wi, node, f"a grouped conv (groups={groups})")
        if b is not None and wout is not None:
            bi = self.tinfo(b) or {}
            wi[0] = self.unify_dims([(wout, cout), (bi.get(0), cout)], cout, node, "conv bias")
        self.info[node] = {1: wi[0]} if wi.get(0) is not None else {}
        spatial = math.prod(out_shape[2:])
        self.macs.append(([self._dim(w, d) for d in range(len(ws))], spatial * out_shape[0]))

    def _op_conv1d(self, node: fx.Node) -> None:
        self._op_conv(node, False, self.args(node)["groups"])

    _op_conv2d = _op_conv3d = _op_conv1d

    def _op_convolution(self, node: fx.Node) -> None:
        a = self.args(node)
        self._op_conv(node, bool(a["transposed"]), a["groups"])

    def _dim(self, node: fx.Node, d: int) -> Expr | int:
        e = (self.tinfo(node) or {}).get(d)
        return e if e is not None else self.shape(node)[d]

    def _op_linear(self, node: fx.Node) -> None:
        a = self.args(node)
        x, w, b = a["input"], a["weight"], a.get("bias")
        xi, wi = dict(self.tinfo(x) or {}), self.tinfo(w) or {}
        xs, ws = self.shape(x), self.shape(w)
        last = len(xs) - 1
        e = self.unify_dims(
            [(xi.get(last), xs[last]), (wi.get(1), ws[1])],
            ws[1],
            node,
            "a linear layer reads features pareco does not follow",
        )
        if e is not None:
            wi[1] = e
        if b is not None and 0 in wi:
            bi = self.tinfo(b) or {}
            wi[0] = self.unify_dims([(wi[0], ws[0]), (bi.get(0), ws[0])], ws[0], node, "bias")
        xi.pop(last, None)
        if xi:  # the rows of a linear layer would multiply with its features: keep them fixed
            self.fix_all(xi, node, "a linear layer over a channel dimension")
        out = {last: wi[0]} if wi.get(0) is not None else {}
        self.info[node] = out
        rows = math.prod(xs[:-1])
        self.macs.append(([self._dim(w, 0), self._dim(w, 1)], rows))

    def _op_mm(self, node: fx.Node) -> None:
        self._matmul(node, node.args[0], node.args[1])

    _op_bmm = _op_matmul = _op_mm

    def _op_addmm(self, node: fx.Node) -> None:
        self._matmul(node, node.args[1], node.args[2], bias=node.args[0])

    _op_baddbmm = _op_addmm

    def _matmul(self, node: fx.Node, a: fx.Node, b: fx.Node, bias: Any = None) -> None:
        sa, sb, so = self.shape(a), self.shape(b), self.shape(node)
        if len(sa) < 2 or len(sb) < 2:
            return self._unknown(node, str(node.target))
        ia, ib = dict(self.tinfo(a) or {}), dict(self.tinfo(b) or {})
        k = self.unify_dims(
            [(ia.get(len(sa) - 1), sa[-1]), (ib.get(len(sb) - 2), sb[-2])],
            sa[-1],
            node,
            "a matmul contracts channels pareco does not follow",
        )
        out: Info = {}
        if ia.get(len(sa) - 2) is not None:
            out[len(so) - 2] = ia[len(sa) - 2]
        if ib.get(len(sb) - 1) is not None:
            out[len(so) - 1] = ib[len(sb) - 1]
        for d in list(ia) + list(ib):  # batch dimensions of a matmul stay fixed
            if (d in ia and d < len(sa) - 2) or (d in ib and d < len(sb) - 2):
                self.fix_all({0: (ia if d in ia else ib)[d]}, node, "a batched matmul")
        if bias is not None:
            bi, bs = self.tinfo(bias) or {}, self.shape(bias)
            for d, e in bi.items():
                od = d + len(so) - len(bs)
                if od in out:
                    out[od], _ = self.g.unify(out[od], e)
                else:
                    self.fix_all({0: e}, node, "a matmul bias")
        self.info[node] = out
        factors: list[Any] = [k if k is not None else sa[-1]]
        factors += [out.get(len(so) - 2, so[-2]), out.get(len(so) - 1, so[-1])]
        self.macs.append((factors, math.prod(so[:-2])))

    def _norm(self, node: fx.Node, dim: int, names: tuple[str, ...]) -> None:
        a = self.args(node)
        x = a["input"]
        xi, xs = self.tinfo(x) or {}, self.shape(x)
        size = xs[dim]
        entries = [(xi.get(dim), size)]
        for n in names:
            p = a.get(n)
            if isinstance(p, fx.Node):
                entries.append(((self.tinfo(p) or {}).get(0), self.shape(p)[0]))
        e = self.unify_dims(entries, size, node, "a norm over channels pareco does not follow")
        for n in names:
            p = a.get(n)
            if isinstance(p, fx.Node) and self.tinfo(p) is not None and e is not None:
                self.tinfo(p)[0] = e
        out = dict(xi)
        if e is not None:
            out[dim] = e
        v = self.val(node)
        self.info[node] = out if isinstance(v, Tensor) else [out] + [{} for _ in v[1:]]
        return e

    def _op_layer_norm(self, node: fx.Node) -> None:
        a = self.args(node)
        xs = self.shape(a["input"])
        shape = list(a["normalized_shape"])
        if len(shape) != 1:
            xi = self.tinfo(a["input"]) or {}
            self.fix_all(
                {d: e for d, e in xi.items() if d >= len(xs) - len(shape)},
                node,
                "a LayerNorm over several dimensions",
            )
            return self._keep(node)
        e = self._norm(node, len(xs) - 1, ("weight", "bias"))
        owner = _owner(self.param_fqn(a.get("weight")))
        if e is not None and owner is not None:
            self.attrs.append((owner, "normalized_shape", e, "shape"))
        elif e is not None:
            self.fix_all({0: e}, node, "a LayerNorm without weight")

    _op_native_layer_norm = _op_layer_norm

    def _op_group_norm(self, node: fx.Node) -> None:
        a = self.args(node)
        c, groups = self.shape(a["input"])[1], a["num_groups"]
        e = self._norm(node, 1, ("weight", "bias"))
        owner = _owner(self.param_fqn(a.get("weight")))
        if e is None or groups == 1:
            return
        if groups == c and owner is not None:
            self.attrs.append((owner, "num_groups", e, "count"))
        else:
            self.fix_all({0: e}, node, f"a GroupNorm with {groups} groups of channels")

    def _op_prelu(self, node: fx.Node) -> None:
        x, w = node.args[0], node.args[1]
        xi = dict(self.tinfo(x) or {})
        ws = self.shape(w)
        if ws[0] > 1:
            e = self.unify_dims(
                [(xi.get(1), self.shape(x)[1]), ((self.tinfo(w) or {}).get(0), ws[0])],
                ws[0],
                node,
                "PReLU",
            )
            if e is not None:
                xi[1] = e
        self.info[node] = xi

    def _op_embedding(self, node: fx.Node) -> None:
        w = node.args[0]
        e = (self.tinfo(w) or {}).get(1)
        out_nd = len(self.shape(node))
        self.info[node] = {out_nd - 1: e} if e is not None else {}

    def _pool(self, node: fx.Node) -> None:
        x = node.args[0]
        xi, nd = self.tinfo(x) or {}, len(self.shape(x))
        n_spatial = 1 if "1d" in str(node.target) else 3 if "3d" in str(node.target) else 2
        keep = {d: e for d, e in xi.items() if d < nd - n_spatial}
        lost = {d: e for d, e in xi.items() if d >= nd - n_spatial}
        self.fix_all(lost, node, "pooling over a channel dimension")
        v = self.val(node)
        self.info[node] = keep if isinstance(v, Tensor) else [keep] + [{} for _ in v[1:]]

    def _op_constant_pad_nd(self, node: fx.Node) -> None:
        x, pad = node.args[0], node.args[1]
        xi, nd = self.tinfo(x) or {}, len(self.shape(x))
        padded = {nd - 1 - i // 2 for i, p in enumerate(pad) if p}
        self.fix_all({d: e for d, e in xi.items() if d in padded}, node, "padding channels")
        self.info[node] = {d: e for d, e in xi.items() if d not in padded}

    _op_pad = _op_constant_pad_nd

    def _reduce(self, node: fx.Node) -> None:
        a = self.args(node)
        x = a.get("self", a.get("input"))
        xi, nd = self.tinfo(x) or {}, len(self.shape(x))
        dims = a.get("dim")
        if dims is None or dims == []:
            dims = list(range(nd))
        dims = {d % nd for d in ([dims] if isinstance(dims, int) else dims)}
        keepdim = bool(a.get("keepdim") or False)
        out: Info = {}
        for d, e in xi.items():
            if d in dims:
                continue  # a reduction over channels: the sub-network reduces its own channels
            out[d - (0 if keepdim else sum(1 for r in dims if r < d))] = e
        v = self.val(node)
        self.info[node] = out if isinstance(v, Tensor) else [dict(out) for _ in v]

    def _reshape(self, node: fx.Node) -> None:
        x = node.args[0]
        xi = self.tinfo(x) or {}
        out = self._reshape_info(xi, self.shape(x), self.shape(node), node)
        self.info[node] = out

    def _reshape_info(self, xi: Info, a: tuple, b: tuple, node: fx.Node) -> Info:
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
            elif len(dst_dims) == 1 and tracked == [
                src_dims[0]
            ]:  # flatten with the channel outermost
                inner = math.prod(a[d] for d in src_dims[1:])
                segs = self.g.resolve(xi[src_dims[0]])
                out[dst_dims[0]] = tuple((g, p * inner) for g, p in segs)
            elif len(src_dims) == 1:  # unflatten: the channel comes back as the outer dimension
                inner = math.prod(b[d] for d in dst_dims[1:])
                segs = self.g.resolve(xi[src_dims[0]])
                if all(p % inner == 0 for _, p in segs):
                    out[dst_dims[0]] = tuple((g, p // inner) for g, p in segs)
                else:
                    self.fix_all(
                        {d: xi[d] for d in tracked},
                        node,
                        "a reshape splits channels (heads, a shuffle)",
                    )
            else:
                self.fix_all(
                    {d: xi[d] for d in tracked},
                    node,
                    "a reshape mixes channels with another dimension",
                )
        return out

    def _op_expand(self, node: fx.Node) -> None:
        x = node.args[0]
        xi, a, b = self.tinfo(x) or {}, self.shape(x), self.shape(node)
        self.info[node] = {d + len(b) - len(a): e for d, e in xi.items()}

    _op_expand_as = _op_expand

    def _op_permute(self, node: fx.Node) -> None:
        x, perm = node.args[0], node.args[1]
        xi, nd = self.tinfo(x) or {}, len(self.shape(x))
        perm = [p % nd for p in perm]
        self.info[node] = {i: xi[p] for i, p in enumerate(perm) if p in xi}

    def _op_transpose(self, node: fx.Node) -> None:
        x = node.args[0]
        xi, nd = self.tinfo(x) or {}, len(self.shape(x))
        d0, d1 = (node.args[1] % nd, node.args[2] % nd) if len(node.args) > 2 else (0, 1)
        swap = {d0: d1, d1: d0}
        self.info[node] = {swap.get(d, d): e for d, e in xi.items()}

    _op_t = _op_transpose

    def _op_movedim(self, node: fx.Node) -> None:
        x = node.args[0]
        nd = len(self.shape(x))
        src = [node.args[1]] if isinstance(node.args[1], int) else list(node.args[1])
        dst = [node.args[2]] if isinstance(node.args[2], int) else list(node.args[2])
        src, dst = [s % nd for s in src], [d % nd for d in dst]
        rest = iter(d for d in range(nd) if d not in src)
        perm = [src[dst.index(i)] if i in dst else next(rest) for i in range(nd)]
        xi = self.tinfo(x) or {}
        self.info[node] = {i: xi[p] for i, p in enumerate(perm) if p in xi}

    def _slice_like(self, node: fx.Node, dim: int, full_range: bool, drop: bool) -> None:
        x = node.args[0]
        xi, nd = self.tinfo(x) or {}, len(self.shape(x))
        dim %= nd
        out = dict(xi)
        if dim in xi and not full_range:
            self.fix_all({dim: xi[dim]}, node, "a slice or split of channels")
            out.pop(dim)
        if drop:
            out = {d - (d > dim): e for d, e in out.items() if d != dim}
        return out

    def _op_slice(self, node: fx.Node) -> None:
        a = self.args(node)
        size = self.shape(a["self"])[a["dim"] % len(self.shape(a["self"]))]
        start, end, step = a.get("start") or 0, a.get("end"), a.get("step") or 1
        full = start in (0, None) and (end is None or end >= size) and step == 1
        self.info[node] = self._slice_like(node, a["dim"], full, False)

    def _op_select(self, node: fx.Node) -> None:
        self.info[node] = self._slice_like(node, node.args[1], False, True)

    def _op_narrow(self, node: fx.Node) -> None:
        size = self.shape(node.args[0])[node.args[1]]
        full = node.args[2] == 0 and node.args[3] >= size
        self.info[node] = self._slice_like(node, node.args[1], full, False)

    def _op_split(self, node: fx.Node) -> None:
        dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
        pieces = self.val(node)
        one = len(pieces) == 1
        out = self._slice_like(node, dim, one, False)
        self.info[node] = [dict(out) for _ in pieces]

    _op_split_with_sizes = _op_chunk = _op_tensor_split = _op_split

    def _op_unbind(self, node: fx.Node) -> None:
        dim = node.args[1] if len(node.args) > 1 else 0
        out = self._slice_like(node, dim, False, True)
        self.info[node] = [dict(out) for _ in self.val(node)]

    def _op_roll(self, node: fx.Node) -> None:
        """Rolls and flips move elements along their dimensions: fine away from channels (Swin's
        shifted windows), a blocker on a searchable channel dimension."""
        x = node.args[0]
        xi, nd = self.tinfo(x) or {}, len(self.shape(x))
        dims = self.args(node)["dims"]
        dims = {d % nd for d in ([dims] if isinstance(dims, int) else dims or range(nd))}
        if any(d in xi for d in dims):
            return self._unknown(node, str(node.target.overloadpacket))
        self.info[node] = dict(xi)

    _op_flip = _op_roll

    def _op_cat(self, node: fx.Node) -> None:
        tensors = [t for t in node.args[0] if self.shape(t) is not None]
        out_shape = self.shape(node)
        nd = len(out_shape)
        dim = (node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)) % nd
        tensors = [t for t in tensors if len(self.shape(t)) == nd]  # torch.cat skips empty 1-D
        info: Info = {}
        segs: list[Seg] = []
        for t in tensors:
            e = (self.tinfo(t) or {}).get(dim)
            segs += (
                list(self.g.resolve(e))
                if e is not None
                else [(self.g.new(self.shape(t)[dim], fixed=True), 1)]
            )
        if any((self.tinfo(t) or {}).get(dim) is not None for t in tensors):
            info[dim] = tuple(segs)
        for d in range(nd):
            if d == dim:
                continue
            entries = [((self.tinfo(t) or {}).get(d), self.shape(t)[d]) for t in tensors]
            e = self.unify_dims(
                entries,
                out_shape[d],
                node,
                "a concatenation of tensors that pareco does not follow",
            )
            if e is not None:
                info[d] = e
        self.info[node] = info

    def _op_stack(self, node: fx.Node) -> None:
        tensors = node.args[0]
        nd = len(self.shape(node))
        dim = (node.args[1] if len(node.args) > 1 else 0) % nd
        info: Info = {}
        for d in range(nd - 1):
            entries = [((self.tinfo(t) or {}).get(d), self.shape(t)[d]) for t in tensors]
            e = self.unify_dims(entries, self.shape(tensors[0])[d], node, "a stack")
            if e is not None:
                info[d + (d >= dim)] = e
        self.info[node] = info

    def _op_scaled_dot_product_attention(self, node: fx.Node) -> None:
        for t in node.args[:3]:
            self.fix_all(self.tinfo(t), node, "attention heads")
        self._unknown(node, "attention")


def name_has_flops(node: fx.Node) -> bool:
    packet = getattr(node.target, "overloadpacket", None)
    name = getattr(packet, "__name__", "")
    return name not in _NO_FLOPS


def _owner(fqn: str | None) -> str | None:
    if fqn is None:
        return None
    return fqn.rpartition(".")[0]


def _where(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    module = next(reversed(stack.values()))[0] if stack else ""
    module = re.sub(r"^L\['self'\]\.?", "", str(module))
    trace = (node.meta.get("stack_trace") or "").strip().splitlines()
    src = ""
    for i in range(len(trace) - 1, -1, -1):
        m = re.match(r'\s*File "([^"]+)", line (\d+)', trace[i])
        if m:
            code = trace[i + 1].strip() if i + 1 < len(trace) else ""
            src = f"{m.group(1).rsplit('/', 1)[-1]}:{m.group(2)} `{code}`"
            break
    parts = [f"node '{node.name}'"]
    if module:
        parts.append(f"module '{module}'")
    if src:
        parts.append(src)
    return ", ".join(parts)


# --- the slimmable network -------------------------------------------------------------------
@dataclass
class _Cut:
    module: nn.Module
    tensor: str
    dims: list[tuple[int, list[tuple[int | None, int, int]]]]  # dim → [(col, per, full size)]


class SlimmableNet(nn.Module):
    """A model whose channel groups can be narrowed at run time; build it with :func:`slim`.

    Attributes:
        module: the user's model (a copy) whose layers read their parameters sliced.
        space: the :class:`~pareco.space.WidthSpace` of its searchable groups.
        notes: what was kept at full width and why, one line each.
    """

    def __init__(
        self,
        module: nn.Module,
        space: WidthSpace,
        cuts: list[_Cut],
        attrs: list[tuple[nn.Module, str, list[tuple[int | None, int, int]], str]],
        costs: CostModel,
        example: tuple[tuple, dict],
        notes: list[str],
        switch: SliceSwitch,
    ) -> None:
        super().__init__()
        self.module = module
        self._switch = switch
        self._sliceable = [m for m in module.modules() if is_sliceable(m)]
        self.space = space
        self.notes = list(notes)
        first = next((t for t in pytree.tree_leaves(example) if isinstance(t, Tensor)), None)
        self.input_shape = tuple(first.shape) if first is not None else ()
        self._example = example
        self._cuts = cuts
        self._attrs = attrs
        self._costs = costs
        self._alpha = space.largest()
        self._full_cost: dict[str, Tensor] = {}
        self.set_widths(self._alpha)

    def forward(self, *args, **kwargs):
        with self._slicing():
            return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def _slicing(self) -> Iterator[None]:
        """Parameters read as their active slices (only inside forward: code that reads them
        elsewhere, such as BN recalibration, sees the full tensors)."""
        before = self._switch.active
        self._switch.active = True
        try:
            yield
        finally:
            self._switch.active = before
            if not before:
                for m in self._sliceable:
                    write_back(m)

    # --- widths ---------------------------------------------------------------------------
    @property
    def alpha(self) -> Tensor:
        """The active width vector, ``dim``."""
        return self._alpha.clone()

    def set_widths(self, alpha: Tensor | Sequence[float]) -> None:
        """Make ``alpha`` (``dim``, in ``[min_multiplier, 1]``) the active sub-network."""
        a = self.space.check(alpha)
        if a.ndim != 1:
            raise ValueError(f"set_widths takes one width vector of shape ({self.space.dim},)")
        ch = self.space.channels(a).tolist()

        def active(segs: list[tuple[int | None, int, int]]) -> list[tuple[int, int, int]]:
            return [(full if col is None else ch[col], per, full) for col, per, full in segs]

        per_module: dict[int, dict] = {}
        for cut in self._cuts:
            dims = []
            for dim, segs in cut.dims:
                act = active(segs)
                if len(act) == 1 or all(n == full for n, _, full in act):
                    dims.append((dim, sum(n * per for n, per, _ in act)))
                else:
                    idx, off = [], 0
                    for n, per, full in act:
                        idx.append(torch.arange(off, off + n * per))
                        off += full * per
                    dims.append((dim, torch.cat(idx)))
            per_module.setdefault(id(cut.module), {"m": cut.module, "cuts": {}})["cuts"][
                cut.tensor
            ] = dims
        for entry in per_module.values():
            set_cuts(entry["m"], entry["cuts"])
        for module, attr, segs, kind in self._attrs:
            n = sum(c * per for c, per, _ in active(segs))
            value = (n,) if kind == "shape" else n
            setattr(module, attr, value)
        for entry in per_module.values():  # sizes that forward() may read (timm's StdConv does)
            m = entry["m"]
            with self._slicing():
                w = getattr(m, "weight", None) if "weight" in entry["cuts"] else None
            if not isinstance(w, Tensor) or w.ndim < 2:
                continue
            m.active_out = w.shape[0]
            m.active_in = w.shape[1] * getattr(m, "groups", 1)
            if isinstance(m, nn.modules.conv._ConvNd):
                m.out_channels, m.in_channels = m.active_out, m.active_in
            elif isinstance(m, nn.Linear):
                m.out_features, m.in_features = m.active_out, m.active_in
        self._alpha = a.clone()

    @contextlib.contextmanager
    def widths(self, alpha: Tensor | Sequence[float]) -> Iterator[SlimmableNet]:
        """``with net.widths(alpha): y = net(x)`` — the previous widths come back afterwards."""
        previous = self._alpha
        self.set_widths(alpha)
        try:
            yield self
        finally:
            self.set_widths(previous)

    # --- costs ----------------------------------------------------------------------------
    def cost(self, alpha: Tensor | Sequence[float], metric: str = "macs") -> Tensor:
        """Exact absolute cost of ``alpha`` (``dim`` → scalar, ``n x dim`` → ``n``), float64.

        ``metric``: ``macs``, ``flops`` (2 per MAC), ``params``, or ``memory`` (peak activation
        elements at batch 1).
        """
        return self._costs.evaluate(self.space.channels(alpha), normalize_metric(metric))

    def cost_ratio(self, alpha: Tensor | Sequence[float], metric: str = "macs") -> Tensor:
        """Cost relative to the full network, in (0, 1]."""
        metric = normalize_metric(metric)
        if metric not in self._full_cost:
            self._full_cost[metric] = self.cost(self.space.largest(), metric)
        return self.cost(alpha, metric) / self._full_cost[metric]

    # --- export ---------------------------------------------------------------------------
    def export(self, alpha: Tensor | Sequence[float] | None = None) -> nn.Module:
        """The sub-network at ``alpha`` (default: the active one) as a plain copy of the model:
        the same classes and code, with physically smaller parameters and BN statistics."""
        if alpha is None:
            return _materialize(self)
        with self.widths(alpha):
            return _materialize(self)

    def describe(self) -> str:
        """The width space and the notes on what stays at full width."""
        lines = [self.space.describe()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _materialize(net: SlimmableNet) -> nn.Module:
    sub = copy.deepcopy(net.module)
    for m in sub.modules():
        if is_sliceable(m):
            to_plain(m)
    sub.train(net.training)
    sub._pareco_example = net._example  # lets pareco.export.save trace it without being told
    return sub


# --- slim() ----------------------------------------------------------------------------------
def _as_call(example_input: Any, example_kwargs: dict | None) -> tuple[tuple, dict]:
    kwargs = dict(example_kwargs or {})
    if example_input is None:
        args: tuple = ()
    elif isinstance(example_input, dict):
        kwargs = {**example_input, **kwargs}
        args = ()
    elif isinstance(example_input, (tuple, list)):
        args = tuple(example_input)
    else:
        args = (example_input,)
    if not any(isinstance(t, Tensor) for t in pytree.tree_leaves((args, kwargs))):
        raise SlimError("example_input holds no tensor; pass a batch the model accepts")
    return args, kwargs


def slim(
    model: nn.Module,
    example_input: Tensor | tuple | dict | None = None,
    *,
    example_kwargs: dict[str, Any] | None = None,
    ignored: Iterable[str | nn.Module] | str = (),
    round_to: int = 1,
    min_multiplier: float = 0.42,
) -> SlimmableNet:
    """Make a plain model slimmable.

    Args:
        model: any ``nn.Module`` that ``torch.export`` can capture for this input (Python
            control flow is fine as long as it does not branch on tensor values). It is copied,
            never modified.
        example_input: a batch the model accepts: a tensor (``N x C x H x W``; N = 1 is
            enough), a tuple of positional inputs, or a dict of keyword inputs. Its size sets
            the costs, which are given per sample.
        example_kwargs: keyword inputs (``pixel_values=...`` for Hugging Face models).
        ignored: layers (names, or the modules themselves) whose outputs keep their full width;
            a name also covers everything below it (``"layer4"``). ``"auto"`` keeps every part
            pareco cannot follow at full width and slims the rest (see ``net.notes``).
        round_to: channel counts are multiples of this (the largest network is always full).
        min_multiplier: the smallest multiplier of any group.

    Raises:
        SlimError: the model cannot be captured, an operation on a searchable channel dimension
            cannot be followed (all of them are listed, with what to pass in ``ignored``), or
            the costs disagree with ``FlopCounterMode``.
    """
    if not isinstance(model, nn.Module):
        raise SlimError(f"pareco.slim needs an nn.Module, got {type(model).__name__}")
    auto = isinstance(ignored, str) and ignored == "auto"
    if isinstance(ignored, str) and not auto:
        ignored = [ignored]
    names_by_id = {id(m): n for n, m in model.named_modules()}
    ignored_names = set()
    for item in () if auto else ignored:
        name = names_by_id.get(id(item)) if isinstance(item, nn.Module) else str(item)
        if name is None or (name not in names_by_id.values()):
            raise SlimError(f"ignored= names {item!r}, which is not a layer of the model")
        ignored_names.add(name)
    args, kwargs = _as_call(example_input, example_kwargs)
    first = next(t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, Tensor))
    batch = int(first.shape[0]) if first.ndim else 1

    model = copy.deepcopy(model)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        try:
            reference = model(*args, **kwargs)
        except Exception as err:
            raise SlimError(
                f"the model failed on example_input: {_first_line(err)}; pass an input it accepts"
            ) from err
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ep = torch.export.export(model, args, kwargs, strict=False)
    except Exception as err:  # export raises many types; the user needs one message
        raise SlimError(
            f"torch.export could not trace {type(model).__name__}: {_first_line(err)}. "
            "Python control flow that branches on tensor values cannot be followed; branch on "
            "shapes or attributes instead, or move that part out of forward()."
        ) from err

    walk = _Discovery(ep, batch)
    walk.run()
    plan_notes = _apply_ignored(walk, ignored_names)
    _resolve_blockers(walk, auto)
    net = _build(model, walk, round_to, min_multiplier, (args, kwargs), plan_notes)
    net.train(was_training)
    _check(net, model, reference, args, kwargs, batch)
    _warn_if_little(net)
    return net


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _apply_ignored(walk: _Discovery, ignored: set[str]) -> list[str]:
    notes = []
    for fqn, info in walk.param_dims.items():
        owner = _owner(fqn) or fqn
        under = any(owner == i or owner.startswith(i + ".") or i == "" for i in ignored)
        if under and 0 in info:
            walk.g.fix(info[0])
    if ignored:
        notes.append(f"kept at full width as asked: {', '.join(sorted(ignored))}")
    return notes


def _resolve_blockers(walk: _Discovery, auto: bool) -> None:
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
            kept.append(f"{b.what} at {_where(b.node)}")
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
        lines.append(f"  - {b.what} at {_where(b.node)}; its input comes from {layers or '-'}")
    hint = ", ".join(repr(p) for p in sorted(producers))
    raise SlimError(
        f"cannot slim through {len(blocking)} operation(s) that act on a searchable channel "
        "dimension:\n" + "\n".join(lines) + f"\nKeep them at full width with "
        f"pareco.slim(..., ignored=[{hint}]), or pass ignored='auto' to do so automatically."
    )


def _producers(walk: _Discovery, roots: set[int]) -> set[str]:
    out = set()
    for fqn, info in walk.param_dims.items():
        if 0 in info and any(r in roots for r, _ in walk.g.resolve(info[0])):
            out.add(_owner(fqn) or fqn)
    return out


def _build(
    model: nn.Module,
    walk: _Discovery,
    round_to: int,
    min_multiplier: float,
    example: tuple[tuple, dict],
    notes: list[str],
) -> SlimmableNet:
    g = walk.g
    macs_terms, params_terms, memory_terms = _cost_terms(walk)
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
        {g.find(i) for i in range(len(g.parent)) if g.find(i) == i and searchable(i)},
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
    macs.const += _constant_flops(walk) / 2 / walk.batch
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
        {g.find(i) for i in range(len(g.parent)) if g.live[g.find(i)] is not None} - set(roots),
        key=lambda r: (g.live[r], r),
    )
    members: dict[int, list[str]] = {r: [] for r in roots + fixed_roots}
    consumers: dict[int, list[str]] = {r: [] for r in roots + fixed_roots}
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
            for r, _ in g.resolve(e):
                target = members if d == 0 else consumers if d == 1 else None
                label = owner or fqn
                if target is not None and r in target and label not in target[r]:
                    target[r].append(label)
    switch = SliceSwitch()
    for owner, tensors in by_module.items():
        make_sliceable(model.get_submodule(owner), tuple(tensors), switch)
    attrs = []
    for owner, attr, e, kind in walk.attrs:
        s = segs(e)
        if any(c is not None for c, _, _ in s):
            attrs.append((model.get_submodule(owner), attr, s, kind))

    def group(r: int, searchable: bool) -> ChannelGroup:
        name = members[r][0] if members[r] else f"group{col[r]}" if searchable else "input"
        return ChannelGroup(name, g.size[r], tuple(members[r]), tuple(consumers[r]), searchable)

    space = WidthSpace(
        tuple(group(r, True) for r in roots),
        tuple(group(r, False) for r in fixed_roots),
        min_multiplier=min_multiplier,
        round_to=round_to,
    )
    return SlimmableNet(model, space, cuts, attrs, costs, example, notes + walk.notes, switch)


def _cost_terms(walk: _Discovery):
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


def _constant_flops(walk: _Discovery) -> float:
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


# --- checks ------------------------------------------------------------------------------------
def _leaves(out: Any) -> list[Tensor]:
    if hasattr(out, "to_tuple"):  # Hugging Face ModelOutput
        out = out.to_tuple()
    return [t for t in pytree.tree_leaves(out) if isinstance(t, Tensor)]


def _count(module: nn.Module, args: tuple, kwargs: dict) -> tuple[float, Any]:
    with torch.no_grad(), flop_counter() as counter:
        out = module(*args, **kwargs)
    return counter.get_total_flops() / 2, out


@contextlib.contextmanager
def _state_kept(module: nn.Module) -> Iterator[None]:
    saved = {k: v.clone() for k, v in module.state_dict().items()}
    rng = torch.get_rng_state()
    try:
        yield
    finally:
        module.load_state_dict(saved)
        torch.set_rng_state(rng)


def _check(
    net: SlimmableNet, model: nn.Module, reference: Any, args: tuple, kwargs: dict, batch: int
) -> None:
    """Full width equals the original; the narrowest runs in both modes; costs equal
    ``FlopCounterMode`` and the exported parameter count at full width and at a sampled width."""
    was_training = net.training
    net.eval()
    try:
        macs_full, out = _count(net, args, kwargs)
        for a, b in zip(_leaves(out), _leaves(reference)):
            if a.shape != b.shape or not torch.equal(a, b):
                raise SlimError("internal: the slimmable model at full width differs from yours")
        with _state_kept(net.module):
            for mode in (False, True):
                net.train(mode)
                # train-mode BatchNorm needs two samples
                a2, k2 = (_twice(args), _twice(kwargs)) if mode and batch == 1 else (args, kwargs)
                try:
                    with torch.no_grad(), net.widths(net.space.smallest()):
                        small = net(*a2, **k2)
                except Exception as err:
                    raise SlimError(
                        f"the slimmed model fails at its smallest width in "
                        f"{'train' if mode else 'eval'} mode: {_first_line(err)}. A size written "
                        "into forward() (e.g. x.view(-1, 512)) cannot shrink; compute it from "
                        "the tensor (x.flatten(1)), or keep that layer in ignored=."
                    ) from err
                if [t.shape[1:] for t in _leaves(small)] != [t.shape[1:] for t in _leaves(out)]:
                    raise SlimError(
                        "the output shape changes with width: "
                        f"{[tuple(t.shape) for t in _leaves(out)]} vs "
                        f"{[tuple(t.shape) for t in _leaves(small)]}"
                    )
        net.eval()
        expected = net.cost(net.space.largest(), "macs").item() * batch
        params = sum(p.numel() for p in model.parameters())
        _compare("MACs at full width", expected, macs_full)
        _compare("parameters at full width", net.cost(net.space.largest(), "params").item(), params)
        if net.space.dim:
            alpha = net.space.sample(1, torch.Generator().manual_seed(0))[0]
            with net.widths(alpha):
                with torch.no_grad():
                    want = net(*args, **kwargs)
                sub = net.export().eval()
            macs_sub, got = _count(sub, args, kwargs)
            _compare("MACs at a sampled width", net.cost(alpha, "macs").item() * batch, macs_sub)
            sub_params = sum(p.numel() for p in sub.parameters())
            _compare("parameters at a sampled width", net.cost(alpha, "params").item(), sub_params)
            for a, b in zip(_leaves(got), _leaves(want)):
                if a.shape != b.shape or not torch.allclose(a, b, atol=1e-4, rtol=1e-4):
                    raise SlimError(
                        "internal: the exported sub-network differs from the slimmable one; "
                        "please report this model"
                    )
    finally:
        net.train(was_training)


def _twice(tree: Any) -> Any:
    return pytree.tree_map(
        lambda t: torch.cat([t, t]) if isinstance(t, Tensor) and t.ndim else t, tree
    )


def _compare(what: str, priced: float, counted: float) -> None:
    if abs(priced - counted) > 1e-6 * max(1.0, abs(counted)):
        raise SlimError(
            f"cost check failed: pareco prices {what} at {priced:.6g}, FlopCounterMode and the "
            f"model count {counted:.6g}. An operation pareco does not follow changes the cost; "
            "keep its layers in ignored= (or ignored='auto') and report the model."
        )


def _warn_if_little(net: SlimmableNet) -> None:
    if net.space.dim == 0:
        msg = "pareco.slim found no searchable channel group: every width is the full model"
    else:
        ratio = net.cost_ratio(net.space.uniform(max(0.5, net.space.min_multiplier))).item()
        if ratio <= 0.9:
            return
        msg = (
            f"pareco.slim: the uniform 0.5 network keeps {ratio:.0%} of the MACs; most of the "
            "model is held at full width"
        )
    if net.notes:
        msg += " (" + "; ".join(net.notes[:3]) + (" ..." if len(net.notes) > 3 else "") + ")"
    net.notes.append(msg)
    warnings.warn(msg, stacklevel=3)
