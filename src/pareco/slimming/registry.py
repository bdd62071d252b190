"""The rule registry: one channel rule per operation, looked up by its qualified name.

A rule is a function ``rule(ctx: RuleContext) -> None`` that tells pareco how the channel
dimensions of an operation's output follow from those of its inputs (see
:class:`~pareco.slimming.context.RuleContext`). Names are qualified, ``"namespace::op"``
(``"aten::conv2d"``, ``"mylib::fused"``), optionally with an overload (``"aten::split.Tensor"``):
a user's op ``demo::mean`` is never routed to ATen's ``mean`` rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pareco.slimming.context import RuleContext

Rule = Callable[["RuleContext"], None]

_RULES: dict[str, Rule] = {}


def _check_name(name: str) -> str:
    if not isinstance(name, str) or "::" not in name or name.startswith("::"):
        raise ValueError(
            f"a rule is registered under a qualified op name such as 'aten::conv2d' or "
            f"'mylib::fused', got {name!r}"
        )
    return name


def register_rule(*names: str) -> Callable[[Rule], Rule]:
    """Register a channel rule for the operations ``names`` (decorator).

    ``@pareco.register_rule("mylib::fused")`` over ``def fused(ctx): ...``; a name may carry an
    overload (``"mylib::fused.out"``), which is looked up before the bare name. Registering a
    name again replaces its rule (pareco's own rules included). For one call only, pass
    ``pareco.slim(..., rules={"mylib::fused": fused})``.
    """
    for name in names:
        _check_name(name)

    def wrap(fn: Rule) -> Rule:
        for name in names:
            _RULES[name] = fn
        return fn

    return wrap


def check_rules(rules: Mapping[str, Rule] | None) -> dict[str, Rule]:
    """Validate the per-call ``rules=`` of :func:`pareco.slim`."""
    out = {}
    for name, fn in (rules or {}).items():
        _check_name(name)
        if not callable(fn):
            raise ValueError(f"rules[{name!r}] must be a function taking a RuleContext")
        out[name] = fn
    return out


def lookup(qualified: str, overload: str, per_call: Mapping[str, Rule]) -> Rule | None:
    """The rule of an op: per-call rules first, then the registry; each by ``ns::op.overload``
    then ``ns::op``."""
    keys = (f"{qualified}.{overload}", qualified) if overload else (qualified,)
    for table in (per_call, _RULES):
        for key in keys:
            if key in table:
                return table[key]
    return None


def registered() -> list[str]:
    """Every registered qualified name, sorted (pareco's own rules and the user's)."""
    return sorted(_RULES)
