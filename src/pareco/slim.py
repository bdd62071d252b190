"""Turn a plain PyTorch model into a slimmable one.

``pareco.slim(model, example_input)`` traces the model with torch.fx, follows the channel axis
through the graph to find the *channel groups* (channels that must be sliced together), and
replaces Conv2d, Linear and BatchNorm layers by slicing twins. The rules:

* a conv or linear output starts a new group; BatchNorm, activations, pooling, dropout keep it;
* a depthwise conv (groups == channels) ties its output to its input;
* an element-wise ``add``/``mul``/``sub`` of two maps ties their groups (residuals, SE gates);
* ``flatten``/``view`` of a map into a vector keeps the group, so the next linear layer slices
  its input in blocks of ``H*W`` features;
* the network input, the network output and the outputs of ``ignored`` layers stay at full width;
* any other operation is *opaque*: allowed only where all its inputs are at full width, else
  a :class:`SlimError` names the node and the layers to list in ``ignored=``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from pareco.cost import CostModel, LayerFacts, TensorFacts, normalize_metric
from pareco.layers import SLIM_TYPES, make_slim
from pareco.space import ChannelGroup, WidthSpace


class SlimError(ValueError):
    """A model that pareco cannot make slimmable, with what to do about it."""


# Modules and functions that keep the channel axis as it is.
_KEEP_MODULES = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.GELU, nn.Sigmoid, nn.Tanh,
    nn.LeakyReLU, nn.ELU, nn.Mish, nn.Dropout, nn.Dropout2d, nn.Identity, nn.MaxPool2d,
    nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten,
)  # fmt: skip
_KEEP_FUNCTIONS = {
    F.relu, F.relu6, F.silu, F.hardswish, F.hardsigmoid, F.gelu, F.sigmoid, F.tanh, F.leaky_relu,
    F.elu, F.mish, F.dropout, F.dropout2d, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d, torch.relu, torch.sigmoid, torch.tanh, torch.flatten,
    torch.mean, torch.amax, torch.sum,
}  # fmt: skip
_KEEP_METHODS = {
    "relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "flatten", "view", "reshape",
    "mean", "amax", "sum", "float", "to", "type_as",
}  # fmt: skip
_REDUCTIONS = {torch.mean, torch.amax, torch.sum, "mean", "amax", "sum"}
_BINARY = {
    operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul,
    operator.truediv, torch.add, torch.sub, torch.mul, "add", "add_", "sub", "mul", "mul_", "div",
}  # fmt: skip
# Nodes whose output is storage shared with their input (for peak memory).
_VIEW_MODULES = (nn.Identity, nn.Flatten, nn.Dropout, nn.Dropout2d)
_VIEW_TARGETS = {torch.flatten, F.dropout, F.dropout2d, "flatten", "view", "reshape", "contiguous"}


@dataclass
class _Tensor:
    group: int
    per_channel: int  # elements per channel per sample


@dataclass
class _Groups:
    """Union-find over channel groups."""

    parent: list[int] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    fixed: list[bool] = field(default_factory=list)
    members: list[list[str]] = field(default_factory=list)
    consumers: list[list[str]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def new(self, size: int, name: str, fixed: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.fixed.append(fixed)
        self.members.append([])
        self.consumers.append([])
        self.names.append(name)
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int, where: str) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] != self.size[rb]:
            raise SlimError(f"node '{where}' joins {self.size[ra]} and {self.size[rb]} channels")
        lo, hi = min(ra, rb), max(ra, rb)  # the older group keeps its name
        self.parent[hi] = lo
        self.fixed[lo] = self.fixed[lo] or self.fixed[hi]
        return lo


@dataclass
class _Layer:
    name: str
    kind: str  # conv, dwconv, linear, bn
    in_group: int
    out_group: int
    facts: dict


class SlimmableNet(nn.Module):
    """A model whose channel groups can be narrowed at run time; build it with :func:`slim`.

    Attributes:
        module: the traced model with slicing layers.
        space: the :class:`~pareco.space.WidthSpace` of its searchable groups.
    """

    def __init__(
        self,
        module: fx.GraphModule,
        space: WidthSpace,
        layers: list[tuple[str, int, int]],
        costs: CostModel,
        input_shape: Sequence[int],
    ) -> None:
        super().__init__()
        self.module = module
        self.space = space
        self.input_shape = tuple(input_shape)
        self._layers = [(module.get_submodule(n), i, o) for n, i, o in layers]
        self._costs = costs
        self._fixed_sizes = torch.tensor([g.size for g in space.fixed], dtype=torch.int64)
        self._alpha = space.largest()
        self._full_cost: dict[str, Tensor] = {}

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    # --- widths ---------------------------------------------------------------------------
    @property
    def alpha(self) -> Tensor:
        """The active width vector, ``dim``."""
        return self._alpha.clone()

    def full_channels(self, alpha: Tensor | Sequence[float]) -> Tensor:
        """Channels of every group, searchable then fixed: ``(n x) dim`` → ``(n x) G``."""
        c = self.space.channels(alpha)
        fixed = self._fixed_sizes.expand(*c.shape[:-1], -1)
        return torch.cat([c, fixed], dim=-1)

    def set_widths(self, alpha: Tensor | Sequence[float]) -> None:
        """Make ``alpha`` (``dim``, in ``[min_multiplier, 1]``) the active sub-network."""
        a = self.space.check(alpha)
        if a.ndim != 1:
            raise ValueError(f"set_widths takes one width vector of shape ({self.space.dim},)")
        ch = self.full_channels(a).tolist()
        for layer, i, o in self._layers:
            layer.active_in = ch[i]
            layer.active_out = ch[o]
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
        return self._costs.evaluate(self.full_channels(alpha), normalize_metric(metric))

    def cost_ratio(self, alpha: Tensor | Sequence[float], metric: str = "macs") -> Tensor:
        """Cost relative to the full network, in (0, 1]."""
        metric = normalize_metric(metric)
        if metric not in self._full_cost:
            self._full_cost[metric] = self.cost(self.space.largest(), metric)
        return self.cost(alpha, metric) / self._full_cost[metric]

    # --- export ---------------------------------------------------------------------------
    def export(self, alpha: Tensor | Sequence[float] | None = None) -> fx.GraphModule:
        """The sub-network at ``alpha`` (default: the active one) as a plain module with
        physically smaller layers, a copy of the sliced weights and of the BN statistics."""
        from pareco.export import materialize

        if alpha is None:
            return materialize(self.module)
        with self.widths(alpha):
            return materialize(self.module)


def slim(
    model: nn.Module,
    example_input: Tensor,
    *,
    ignored: Iterable[str | nn.Module] = (),
    round_to: int = 1,
    min_multiplier: float = 0.42,
) -> SlimmableNet:
    """Make a plain model slimmable.

    Args:
        model: any ``nn.Module`` that torch.fx can trace. It is copied, never modified.
        example_input: a batch the model accepts, ``N x C x H x W`` (N = 1 is enough); its
            spatial size sets the costs.
        ignored: layers (names, or the modules themselves) whose outputs keep their full width;
            a name also covers everything below it (``"layer4"``).
        round_to: channel counts are multiples of this (the largest network is always full).
        min_multiplier: the smallest multiplier of any group.

    Raises:
        SlimError: the model cannot be traced, or an operation on the channel axis cannot be
            followed; the message names the node and what to pass in ``ignored``.
    """
    if not isinstance(model, nn.Module):
        raise SlimError(f"pareco.slim needs an nn.Module, got {type(model).__name__}")
    names_by_id = {id(m): n for n, m in model.named_modules()}
    ignored_names = set()
    for item in ignored:
        name = names_by_id.get(id(item)) if isinstance(item, nn.Module) else str(item)
        if name is None or (name not in names_by_id.values()):
            raise SlimError(f"ignored= names {item!r}, which is not a layer of the model")
        ignored_names.add(name)

    model = copy.deepcopy(model)
    was_training = model.training
    try:
        gm = fx.symbolic_trace(model)
    except Exception as err:  # fx raises many types; the user needs one message
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SlimError(
            f"torch.fx could not trace {type(model).__name__}: {first}. Data-dependent control "
            "flow (if/for on tensor values) cannot be traced; move it out of forward() or wrap "
            "that part in a leaf module."
        ) from err
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example_input)
    except Exception as err:
        raise SlimError(
            f"the model failed on example_input {tuple(example_input.shape)}: {err}"
        ) from err

    tracer = _ChannelTracer(gm, ignored_names)
    tracer.run()
    net = tracer.build(round_to, min_multiplier, tuple(example_input.shape))
    net.train(was_training)
    _smoke_test(net, example_input)
    return net


class _ChannelTracer:
    """Walks the traced graph once, assigning a channel group to every feature tensor."""

    def __init__(self, gm: fx.GraphModule, ignored: set[str]) -> None:
        self.gm = gm
        self.ignored = ignored
        self.groups = _Groups()
        self.info: dict[fx.Node, _Tensor | None] = {}
        self.layers: list[_Layer] = []
        self.opaque: list[tuple[fx.Node, list[int], str]] = []
        self.seen_layers: set[str] = set()
        self.const_params = 0
        self.nodes = list(gm.graph.nodes)
        self.index = {n: i for i, n in enumerate(self.nodes)}
        self.storage: dict[fx.Node, fx.Node] = {}  # view → the node that owns the memory

    # --- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _shape(node: fx.Node) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def _tensor_args(self, node: fx.Node) -> list[fx.Node]:
        out: list[fx.Node] = []
        fx.node.map_arg((node.args, node.kwargs), lambda a: out.append(a))
        return [a for a in out if self.info.get(a) is not None]

    def _is_ignored(self, name: str) -> bool:
        return any(name == i or name.startswith(i + ".") for i in self.ignored)

    def _keep(self, node: fx.Node, src: fx.Node) -> bool:
        """Give ``node`` the group of ``src`` if its channel axis is unchanged."""
        shape, s = self._shape(node), self.info[src]
        size = self.groups.size[self.groups.find(s.group)]
        if shape is None or len(shape) < 2:
            return False
        if shape[1] == size:
            self.info[node] = _Tensor(s.group, math.prod(shape[2:]))
            return True
        if len(shape) == 2 and shape[1] == size * s.per_channel:  # flatten, channel-major
            self.info[node] = _Tensor(s.group, s.per_channel)
            return True
        return False

    # --- the walk ---------------------------------------------------------------------------
    def run(self) -> None:
        for node in self.nodes:
            self.info[node] = None
            if node.op == "placeholder":
                shape = self._shape(node)
                if shape is not None and len(shape) >= 2:
                    g = self.groups.new(shape[1], "input", fixed=True)
                    self.info[node] = _Tensor(g, math.prod(shape[2:]))
            elif node.op == "get_attr":
                attr = self.gm
                for part in node.target.split("."):
                    attr = getattr(attr, part)
                if isinstance(attr, Tensor) and attr.requires_grad:
                    self.const_params += attr.numel()
            elif node.op == "call_module":
                self._module(node)
            elif node.op in ("call_function", "call_method"):
                self._function(node)
            elif node.op == "output":
                for a in self._tensor_args(node):
                    g = self.groups.find(self.info[a].group)
                    self.groups.fixed[g] = True

    def _module(self, node: fx.Node) -> None:
        m = self.gm.get_submodule(node.target)
        args = self._tensor_args(node)
        src = node.args[0] if node.args and node.args[0] in args else None
        shape = self._shape(node)
        name = node.target
        if src is not None and type(m) in SLIM_TYPES:
            if name in self.seen_layers:
                raise SlimError(
                    f"layer '{name}' is called more than once in forward(); pareco "
                    "slices each layer for one place in the graph"
                )
            self.seen_layers.add(name)
            s = self.info[src]
            g_in = self.groups.find(s.group)
            if isinstance(m, nn.Conv2d):
                k, hw = math.prod(m.kernel_size), math.prod(shape[2:])
                if m.groups == 1:
                    g_out = self.groups.new(m.out_channels, name)
                    facts = dict(kernel=k, out_spatial=hw, bias=m.bias is not None)
                    self._add_layer(name, "conv", g_in, g_out, facts)
                elif m.groups == m.in_channels == m.out_channels:
                    facts = dict(kernel=k, out_spatial=hw, bias=m.bias is not None)
                    self._add_layer(name, "dwconv", g_in, g_in, facts)
                    g_out = g_in
                else:
                    return self._opaque(node, "a grouped convolution that is not depthwise")
            elif isinstance(m, nn.Linear):
                if len(shape) != 2:
                    return self._opaque(node, "a linear layer on a tensor that is not N x features")
                g_out = self.groups.new(m.out_features, name)
                facts = dict(in_per_channel=s.per_channel, bias=m.bias is not None)
                self._add_layer(name, "linear", g_in, g_out, facts)
                m.in_per_channel = s.per_channel
            else:  # BatchNorm
                if m.num_features != self.groups.size[g_in]:
                    return self._opaque(node, "a BatchNorm over a flattened map")
                self._add_layer(name, "bn", g_in, g_in, dict(affine=m.affine))
                g_out = g_in
            self.info[node] = _Tensor(g_out, math.prod(shape[2:]))
        elif src is not None and isinstance(m, _KEEP_MODULES) and self._keep(node, src):
            if isinstance(m, _VIEW_MODULES):
                self.storage[node] = self.storage.get(src, src)
        else:
            return self._opaque(node, f"module {type(m).__name__}")
        if self._is_ignored(name):
            self.groups.fixed[self.groups.find(self.info[node].group)] = True

    def _add_layer(self, name: str, kind: str, g_in: int, g_out: int, facts: dict) -> None:
        self.layers.append(_Layer(name, kind, g_in, g_out, facts))
        self.groups.members[g_out].append(name)
        if kind in ("conv", "linear"):
            self.groups.consumers[g_in].append(name)

    def _function(self, node: fx.Node) -> None:
        target = node.target
        args = self._tensor_args(node)
        shape = self._shape(node)
        if shape is None:  # size(), dim() and other non-tensor results
            return
        if not args:  # a constant built inside forward, e.g. torch.zeros(...)
            return self._opaque(node, "a tensor created inside forward()")
        if target in _BINARY:
            return self._binary(node, args, shape)
        src = node.args[0] if node.args and node.args[0] in args else None
        known = target in (_KEEP_METHODS if node.op == "call_method" else _KEEP_FUNCTIONS)
        if target in _REDUCTIONS:
            dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
            dims = (dims,) if isinstance(dims, int) else dims
            ndim = len(self._shape(src) or (0, 0))
            known = dims is not None and all(d % ndim != 1 for d in dims)
        if src is not None and known and len(args) == 1 and self._keep(node, src):
            if target in _VIEW_TARGETS:
                self.storage[node] = self.storage.get(src, src)
            return
        self._opaque(node, f"{getattr(target, '__name__', target)}")

    def _binary(self, node: fx.Node, args: list[fx.Node], shape: tuple[int, ...]) -> None:
        sized = []
        for a in args:
            s = self._shape(a)
            if s is not None and len(s) >= 2 and s[1] > 1:
                sized.append(a)
        if not sized:
            sized = args[:1]
        if any(self._shape(a) is None or len(self._shape(a)) < 2 for a in args):
            return self._opaque(node, "an element-wise op with a non-batched tensor")
        g = self.info[sized[0]].group
        for other in sized[1:]:
            g = self.groups.union(g, self.info[other].group, node.name)
        self.info[node] = _Tensor(g, math.prod(shape[2:]))
        if self.groups.size[self.groups.find(g)] != shape[1]:
            self._opaque(node, "an element-wise op that broadcasts over channels")

    def _opaque(self, node: fx.Node, what: str) -> None:
        """An op pareco cannot slim through: fine only while its inputs stay at full width."""
        shape = self._shape(node)
        inputs = [self.info[a].group for a in self._tensor_args(node)]
        self.opaque.append((node, inputs, what))
        if shape is not None and len(shape) >= 2:
            g = self.groups.new(shape[1], node.name, fixed=True)
            self.info[node] = _Tensor(g, math.prod(shape[2:]))

    # --- build ------------------------------------------------------------------------------
    def build(self, round_to: int, min_multiplier: float, input_shape: tuple) -> SlimmableNet:
        G = self.groups
        for node, inputs, what in self.opaque:
            loose = [g for g in inputs if not G.fixed[G.find(g)]]
            if loose:
                producers = sorted({m for g in loose for m in self._members_of(G.find(g))})
                hint = ", ".join(repr(p) for p in producers) or "its input layers"
                raise SlimError(
                    f"cannot slim through node '{node.name}' ({what}, from `{node.format_node()}`)"
                    f": it acts on the channel axis of a searchable group. Keep its inputs at full"
                    f" width with pareco.slim(..., ignored=[{hint}])."
                )
        roots = sorted({G.find(g) for g in range(len(G.parent))})
        used = {G.find(t.group) for t in self.info.values() if t is not None}
        roots = [r for r in roots if r in used]
        searchable = [r for r in roots if not G.fixed[r]]
        fixed = [r for r in roots if G.fixed[r]]
        col = {r: i for i, r in enumerate(searchable + fixed)}
        members = {r: self._members_of(r) for r in roots}
        consumers = {
            r: [c for g in range(len(G.parent)) if G.find(g) == r for c in G.consumers[g]]
            for r in roots
        }

        def group(r: int, is_searchable: bool) -> ChannelGroup:
            name = members[r][0] if members[r] else G.names[r]
            return ChannelGroup(
                name, G.size[r], tuple(members[r]), tuple(consumers[r]), is_searchable
            )

        space = WidthSpace(
            tuple(group(r, True) for r in searchable),
            tuple(group(r, False) for r in fixed),
            min_multiplier=min_multiplier,
            round_to=round_to,
        )
        layer_facts = []
        for layer in self.layers:
            i, o = col[G.find(layer.in_group)], col[G.find(layer.out_group)]
            layer_facts.append(LayerFacts(layer.kind, i, o, **layer.facts))
            make_slim(self.gm.get_submodule(layer.name))
        costs = CostModel.from_facts(layer_facts, self._tensor_facts(col), len(col), self._const())
        layers = [(f.name, lf.in_col, lf.out_col) for f, lf in zip(self.layers, layer_facts)]
        return SlimmableNet(self.gm, space, layers, costs, input_shape)

    def _members_of(self, root: int) -> list[str]:
        G = self.groups
        return [m for g in range(len(G.parent)) if G.find(g) == root for m in G.members[g]]

    def _tensor_facts(self, col: dict[int, int]) -> list[TensorFacts]:
        last: dict[fx.Node, int] = {}
        for node in self.nodes:
            for user in node.users:
                owner = self.storage.get(node, node)
                last[owner] = max(last.get(owner, -1), self.index[user])
        facts = []
        for node, t in self.info.items():
            if t is None or node in self.storage:
                continue
            i = self.index[node]
            facts.append(
                TensorFacts(
                    col[self.groups.find(t.group)], t.per_channel, i, max(i, last.get(node, i))
                )
            )
        return facts

    def _const(self) -> int:
        """Parameters outside the slicing layers (opaque modules and attributes): never shrink."""
        slim_names = {layer.name for layer in self.layers}
        total = self.const_params
        for node in self.nodes:
            if node.op == "call_module" and node.target not in slim_names:
                total += sum(p.numel() for p in self.gm.get_submodule(node.target).parameters())
        return total


def _smoke_test(net: SlimmableNet, example_input: Tensor) -> None:
    """Run the narrowest network once: a size hard-coded in forward() fails here, not later."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            full = net(example_input)
            with net.widths(net.space.smallest()):
                small = net(example_input)
    except Exception as err:
        raise SlimError(
            f"the slimmed model fails at its smallest width: {str(err).splitlines()[0]}. A size "
            "written into forward() (e.g. x.view(-1, 512)) cannot shrink; use x.flatten(1)."
        ) from err
    finally:
        net.train(was_training)
    if isinstance(full, Tensor) and full.shape != small.shape:
        raise SlimError(
            f"the output shape changes with width: {tuple(full.shape)} vs {tuple(small.shape)}"
        )
