"""The walk: every node of the exported graph, once, in graph order, gets a channel
expression for each tensor dimension; rules are looked up by qualified op name.

Dispatch order for a ``call_function`` node:

1. ``operator.getitem`` on a tuple output: the element's dimensions (built in);
2. a result that is not a tensor (sizes, asserts): nothing to follow;
3. the per-call ``rules=`` of :func:`pareco.slim`, by ``ns::op.overload`` then ``ns::op``;
4. the registry (:func:`pareco.register_rule`, which holds pareco's own rules), the same way;
5. an op tagged ``torch.Tag.pointwise``: the element-wise rule (broadcasting ties dimensions);
6. otherwise the op is a *blocker* if a searchable channel reaches it: :class:`SlimError`
   names it (qualified) with its source line, or ``ignored="auto"`` keeps it at full width.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, fx
from torch.utils import _pytree as pytree

from pareco.slimming import registry
from pareco.slimming.context import RuleContext, ShapeLike
from pareco.slimming.groups import Expr, Groups, Info
from pareco.slimming.rules.elementwise import pointwise


@dataclass
class Blocker:
    node: fx.Node
    exprs: list[Expr]
    what: str


def qualified_name(target: Any) -> tuple[str, str] | None:
    """``("aten::conv2d", "default")`` for an op overload; None for anything else."""
    schema = getattr(target, "_schema", None)
    if schema is None or not isinstance(target, torch._ops.OpOverload):
        return None
    return schema.name, schema.overload_name or "default"


class Walker:
    """Walks the exported ATen graph once, giving every tensor dimension a channel expression."""

    def __init__(
        self,
        ep: torch.export.ExportedProgram,
        batch: int,
        rules: Mapping[str, registry.Rule] | None = None,
        literal_parts_follow: bool = True,
    ) -> None:
        self.ep = ep
        self.literal_parts_follow = literal_parts_follow
        self.guessed_parts: list[fx.Node] = []  # views split on a literal part size (a guess)
        self.batch = batch
        self.rules = dict(rules or {})
        self.g = Groups()
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
        self.blockers: list[Blocker] = []
        self.notes: list[str] = []
        self.macs: list[tuple[list[Any], float]] = []
        self.const_flop_nodes: list[fx.Node] = []
        self.attrs: list[tuple[str, str, Expr, str | ShapeLike]] = []
        self.storage: dict[fx.Node, fx.Node] = {}

    # --- helpers shared with the rules (through RuleContext) -------------------------------
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
        line = f"{text} (at {where(node)})"
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

    def empty_output(self, node: fx.Node) -> None:
        v = self.val(node)
        self.info[node] = (
            {}
            if isinstance(v, Tensor)
            else [{} for _ in v]
            if isinstance(v, (list, tuple))
            else None
        )

    def block(self, node: fx.Node, what: str) -> None:
        """An op pareco cannot follow: a blocker if a searchable channel reaches it."""
        exprs = []
        for a in node.all_input_nodes:
            exprs += list((self.tinfo(a) or {}).values())
        if exprs:
            self.blockers.append(Blocker(node, exprs, what))
        self.empty_output(node)
        if isinstance(node.target, torch._ops.OpOverload):
            self.const_flop_nodes.append(node)

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
        name = qualified_name(target)
        if name is None:
            return self.block(node, getattr(target, "__name__", str(target)))
        if not isinstance(self.val(node), (Tensor, list, tuple)):
            return  # sizes, asserts and other non-tensor results
        schema = target._schema
        if schema.returns and schema.returns[0].alias_info is not None:
            src = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
            if src is not None:
                self.storage[node] = self.storage.get(src, src)
        rule = registry.lookup(name[0], name[1], self.rules)
        if rule is None and torch.Tag.pointwise in target.tags:
            rule = pointwise
        if rule is None:
            return self.block(node, name[0])
        rule(RuleContext(self, node, name[0]))


def where(node: fx.Node) -> str:
    """``node 'x', module 'layer1.0', file.py:12 `code``` — where an op came from."""
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
