"""What a channel rule sees: one node of the graph and a few operations on channel groups.

A rule (``def rule(ctx: RuleContext) -> None``, registered with :func:`pareco.register_rule`)
reads the channel *expressions* of its inputs and sets those of its output. An expression
describes one tensor dimension whose size follows the widths: a tuple of segments ``(group,
elements per channel)`` — ``((g, 1),)`` for a plain channel dimension. A dimension with no
expression (absent from the dict) never changes size.

Every method here is the whole interface; rules never touch pareco's internals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from torch import Tensor, fx

from pareco.slimming.groups import Expr, Info

if TYPE_CHECKING:
    from pareco.slimming.walker import Walker


class ShapeLike(NamedTuple):
    """An attribute request whose name the walker cannot know: whichever size tuple of the
    module equals ``shape`` follows the active size of entry ``dim`` (resolved in the plan,
    which has the module)."""

    dim: int
    shape: tuple[int, ...]


class RuleContext:
    """One node, seen by its rule.

    Attributes:
        node: the ``torch.fx`` node (``node.args``, ``node.kwargs``, ``node.meta["val"]``).
        op: its qualified name, ``"aten::conv2d"`` or ``"mylib::fused"``.
    """

    def __init__(self, walker: Walker, node: fx.Node, op: str) -> None:
        self._w = walker
        self.node = node
        self.op = op

    # --- reading ---------------------------------------------------------------------------
    def may_split_parts(self, certain: bool) -> bool:
        """Whether a view into equal parts may split its channels, the part size following the
        width (a channel shuffle's ``view(n, g, c // g, h, w)``). ``certain``: the code asked
        for the part size as ``-1``. A size written as a number may be a constant of the module
        (an attention head's size) instead: ``slim()`` first guesses that it follows and, if the
        narrowest network then fails, walks again keeping such views whole."""
        if certain:
            return True
        if self._w.literal_parts_follow:
            self._w.guessed_parts.append(self.node)
        return self._w.literal_parts_follow

    def args(self) -> dict[str, Any]:
        """The op's arguments by schema name, defaults filled in (``{"input": node, ...}``)."""
        return self._w.args(self.node)

    def shape(self, x: Any) -> tuple[int, ...] | None:
        """Shape of a tensor argument; None for anything else."""
        return self._w.shape(x)

    def output_shape(self) -> tuple[int, ...] | None:
        """Shape of the output (None for a tuple of tensors)."""
        return self._w.shape(self.node)

    def output_value(self) -> Any:
        """The fake value recorded for the output: a tensor, or a tuple of them."""
        return self._w.val(self.node)

    def dims(self, x: Any) -> Info:
        """Channel expressions of a tensor argument, ``{dim: expr}`` (a copy; {} if none)."""
        return dict(self._w.tinfo(x) or {})

    def size_of(self, x: Any, d: int) -> Expr | int:
        """Dimension ``d`` of ``x`` as a cost factor: its expression, or its fixed size."""
        e = (self._w.tinfo(x) or {}).get(d)
        return e if e is not None else self.shape(x)[d]

    def parameter_owner(self, x: Any) -> str | None:
        """The module that owns ``x`` when ``x`` is a parameter or buffer, else None."""
        fqn = self._w.param_fqn(x)
        return None if fqn is None else fqn.rpartition(".")[0]

    # --- writing ---------------------------------------------------------------------------
    def set_output(self, info: Info | list[Info] | None) -> None:
        """The output's channel expressions (a list for a tuple of tensors)."""
        self._w.info[self.node] = info

    def set_param_dims(self, x: Any, d: int, expr: Expr) -> None:
        """Record that dimension ``d`` of the parameter ``x`` is read as ``expr``."""
        info = self._w.tinfo(x)
        if info is not None:
            info[d] = expr

    def tie(self, entries: list[tuple[Expr | None, int]], size: int, why: str) -> Expr | None:
        """Tie the dimensions ``[(expr or None, size), ...]`` that meet in one output dimension
        of ``size`` (broadcasting, a weight reading an input); an untracked one of that size
        keeps them at full width (with ``why`` as the note). Returns the tied expression."""
        return self._w.unify_dims(entries, size, self.node, why)

    def unify(self, a: Expr, b: Expr) -> Expr:
        """Tie two expressions of the same total size (both kept at full width if they do not
        line up)."""
        return self._w.g.unify(a, b)[0]

    def keep_full(self, info: Info | None, why: str) -> None:
        """Keep every group in ``info`` at full width, with a note saying ``why``."""
        self._w.fix_all(info, self.node, why)

    def note(self, text: str) -> None:
        """A line for ``net.notes``, with where the op is."""
        self._w.note(self.node, text)

    def add_macs(self, factors: list[Expr | int], count: float) -> None:
        """This op costs ``count * prod(factors)`` multiply-adds (``count`` includes the batch);
        at most two factors may follow the widths."""
        self._w.macs.append((factors, count))

    def set_attribute(self, owner: str, attr: str, expr: Expr, kind: str) -> None:
        """Set ``owner.attr`` to the active size of ``expr`` at every width (``kind``:
        ``"count"`` an int, ``"shape"`` a 1-tuple, ``"groups"`` a conv's groups)."""
        self._w.attrs.append((owner, attr, expr, kind))

    def follow_shape_attribute(
        self, owner: str, shape: tuple[int, ...], dim: int, expr: Expr
    ) -> None:
        """``owner``'s forward() may pass a size tuple of its own to a view (timm's
        ``x * self.scale.view(self.shape)``): the attribute of ``owner`` equal to ``shape``, if
        there is one, gets ``expr``'s active size at ``dim`` at every width."""
        self._w.attrs.append((owner, "", expr, ShapeLike(dim, tuple(shape))))

    def new_group(self, size: int, fixed: bool = False) -> Expr:
        """A fresh group of ``size`` channels, as an expression."""
        return ((self._w.g.new(size, fixed), 1),)

    def resolve(self, expr: Expr) -> Expr:
        """``expr`` in terms of current group roots (segments spelled out)."""
        return self._w.g.resolve(expr)

    def group_size(self, g: int) -> int:
        """Full channels of group ``g`` (a root from :meth:`resolve`)."""
        return self._w.g.size[self._w.g.find(g)]

    def bind(self, g: int, expr: Expr) -> None:
        """Read group ``g`` (a root) as ``expr`` (segments of other groups) from now on."""
        self._w.g.bind(g, expr)

    def split(self, expr: Expr, sizes: list[int]) -> list[Expr] | None:
        """Cut ``expr`` into consecutive pieces of ``sizes`` elements (a group a cut falls
        inside becomes two); None where a cut falls inside a channel."""
        return self._w.g.split(expr, sizes)

    def block(self, what: str | None = None) -> None:
        """Give up on this op: a blocker if a searchable channel reaches it."""
        self._w.block(self.node, what or self.op)

    def keep_input_dims(self, x: Any = None) -> None:
        """Output dimensions as those of ``x`` (default: the first argument); extra outputs of a
        tuple result get none."""
        src = self.dims(self.node.args[0] if x is None else x)
        v = self.output_value()
        self.set_output(dict(src) if isinstance(v, Tensor) else [dict(src)] + [{} for _ in v[1:]])
